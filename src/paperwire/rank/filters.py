"""Hard filters: ``must_match`` and ``never_match`` phrase lists per subscriber.

A phrase matches a paper when it occurs in its title or abstract as whole words, case and
accents ignored: "LLM" matches "an LLM judge", not "LLMs" (list both to catch both).
``never_match`` wins over everything, ``must_match`` keeps only papers with at least one of its
phrases. Unlike the ranking, a filter is never weighed: it is a yes or no.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .authors import fold


def _pattern(phrases: Sequence[str]) -> re.Pattern | None:
    words = [" ".join(fold(p).split()) for p in phrases if p.strip()]
    if not words:
        return None
    # whole words: (?<!\w) and (?!\w) also work for phrases that start or end with a symbol
    alternatives = "|".join(r"\s+".join(map(re.escape, w.split(" "))) for w in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


class PhraseFilter:
    """A subscriber's must/never phrases, applied to folded paper texts."""

    def __init__(self, must: Sequence[str] = (), never: Sequence[str] = ()):
        self.must = _pattern(must)
        self.never = _pattern(never)

    def __bool__(self) -> bool:
        return self.must is not None or self.never is not None

    def allows(self, folded_text: str) -> bool:
        """Whether a paper (its text already passed through :func:`fold_text`) passes."""
        if self.never is not None and self.never.search(folded_text):
            return False
        return self.must is None or self.must.search(folded_text) is not None

    def mask(self, folded_texts: Sequence[str]) -> np.ndarray:
        """A boolean array: which of these texts pass."""
        return np.fromiter((self.allows(t) for t in folded_texts), bool, len(folded_texts))


def fold_text(title: str | None, abstract: str | None) -> str:
    """What the filters read: title and abstract, folded once per paper."""
    return fold(f"{title or ''}\n{abstract or ''}")
