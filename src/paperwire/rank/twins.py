"""One paper under two ids: the same title by the same first author, or the same title and
abstract.

arXiv ids already make a replacement, a cross-listing and Hugging Face's copy of an arXiv
paper one paper (paper.py). Other feeds name a paper their own way (an RSS item's link or
guid): a journal's or a lab's feed may bring a preprint arXiv brought the week before, two
aggregators the same item, and a library imported as seeds may hold the journal version of a
preprint a feed brings. Such a copy was sent again, or offered back to the reader who owns it.

Two papers are one when they share a key: their titles folded to their words (case, accents
and punctuation aside) with the surname of their first author, or their titles and abstracts
folded the same way. A title without an author has no key of its own (two papers titled "A
Survey of Large Language Models" are not one paper, and nothing else tells them apart), nor has
an abstract without its title ("..., Part I" and "..., Part II" may share one). A reader's own
paper (sent, rated or a seed) is theirs under every id, and a digest holds a paper once: the
id their ranking puts first (no id is "the" paper's: a data set's readers saved either).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# A key needs enough words to name one paper: "Introduction", "Editorial" and "Erratum" are
# titles many papers share, and a withdrawn paper's one-line abstract is many papers' abstract.
MIN_TITLE_WORDS = 4
MIN_ABSTRACT_WORDS = 20

_WORD = re.compile(r"[^\W_]+")


def _words(text: str | None) -> list[str]:
    """The text's words, case-folded, accents dropped (NFKD leaves them as marks apart)."""
    return _WORD.findall(unicodedata.normalize("NFKD", text or "").casefold())


def surname(author: str) -> str:
    """The family name of an author as feeds write them: "Grace Hopper", "G. Hopper", "Hopper,
    Grace" and "Hopper G" all give "hopper"."""
    if "," in author:
        words = _words(author.split(",", 1)[0])
        return words[-1] if words else ""
    words = [w for w in _words(author) if len(w) > 1]  # initials are not the surname
    return words[-1] if words else ""


def keys(title: str | None, abstract: str | None, authors: Sequence[str] = ()) -> list[str]:
    """The keys a paper shares with its copies (none for a paper too short to tell apart)."""
    out = []
    words = _words(title)
    first = surname(authors[0]) if authors else ""
    if len(words) >= MIN_TITLE_WORDS and first:
        out.append(f"t:{' '.join(words)}|{first}")
    abstract_words = _words(abstract)
    if len(abstract_words) >= MIN_ABSTRACT_WORDS:
        text = f"{' '.join(words)}|{' '.join(abstract_words)}"
        digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        out.append(f"a:{digest[:20]}")
    return out


@dataclass
class Twins:
    """Which rows of a corpus (oldest first) are copies, and of which row."""

    original: dict[int, int]  # a copy's row -> the row of the paper first stored

    @classmethod
    def of(cls, keyed: Iterable[list[str]]) -> Twins:
        """From each row's :func:`keys`, in the corpus's order (first seen, then id)."""
        first: dict[str, int] = {}
        original: dict[int, int] = {}
        for row, row_keys in enumerate(keyed):
            found = [first[k] for k in row_keys if k in first]
            if found:
                original[row] = min(found)
            for k in row_keys:
                first.setdefault(k, original.get(row, row))
        return cls(original)

    def among(self, ids: Sequence[str], cols: Sequence[int] | np.ndarray) -> Among:
        """What the candidates at corpus rows ``cols`` (of a corpus whose papers are ``ids``)
        have of these twins."""
        column_of_row = {int(c): i for i, c in enumerate(cols)}
        groups: dict[int, list[int]] = {}
        for copy, first in self.original.items():
            groups.setdefault(first, [first]).append(copy)
        group = np.full(len(cols), -1, dtype=np.int64)
        others: dict[str, list[int]] = {}
        for first, rows in groups.items():
            candidates = [column_of_row[r] for r in rows if r in column_of_row]
            if not candidates:
                continue
            group[candidates] = first
            for r in rows:
                mine = [c for c in candidates if c != column_of_row.get(r)]
                if mine:
                    others[ids[r]] = mine
        return Among(group, others)


@dataclass
class Among:
    """One run's candidates and the papers they are under other ids."""

    # per candidate column: the corpus row of the first paper of its group (-1: none)
    group: np.ndarray
    # a paper id (a candidate or not) -> the candidate columns that are that paper too
    others: dict[str, list[int]]

    def distinct(self, columns: Iterable[int]) -> list[int]:
        """``columns`` in order, each group's first only: one paper once in a digest."""
        seen: set[int] = set()
        out = []
        for col in columns:
            g = int(self.group[col])
            if g >= 0:
                if g in seen:
                    continue
                seen.add(g)
            out.append(col)
        return out
