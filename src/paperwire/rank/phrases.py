"""What a reader wrote they follow: the topics of an interests text (:func:`interest_phrases`)
and where the papers contain one whole (:func:`phrase_hits`), the match that lifts a paper
(:func:`add_phrase_bonus`) and that a reason names."""

from __future__ import annotations

import re
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from . import topics
from .stop_words import ENGLISH_STOP_WORDS


class Vocabulary(Protocol):
    """What phrases are matched with: the TF-IDF model's tokens, hashed columns, stop words
    and IDF (:class:`core.TextModel`, which imports this module)."""

    stop_words: frozenset[str]
    idf: np.ndarray

    def tokens(self, text: str) -> list[str]: ...

    def columns(self, tokens: list[str]) -> np.ndarray: ...


# Readers separate what they follow with commas, semicolons or new lines; "and", "of" or a
# hyphen stay inside one phrase ("eviction and quantization of the KV cache").
_PART_BREAK = re.compile(r"[,;\n\r]+")
# ... and a heading from its list with a colon ("faster LLM inference: KV cache prefetching,
# speculative decoding"); a comma between two adjectives separates no topics ("smaller, cheaper
# large language models"), which interest_phrases tells apart.
_PHRASE_BREAK = re.compile(r"([,;\n\r]+|:(?=\s|$))")
# A word, as the hasher's terms are made of (pairs of words are key-phrase candidates).
WORD = re.compile(r"(\w+)")


def interest_parts(text: str | None) -> list[str]:
    """The pieces of an interests text as the reader separated them (commas, semicolons, new
    lines), each once: what the interests vector hashes one by one, so that no bigram spans two
    of them ("KV cache, long-context" has no "cache long")."""
    parts: dict[str, str] = {}
    for part in _PART_BREAK.split(text or ""):
        part = " ".join(part.split()).strip(" .:")
        if part and part.lower() not in parts:
            parts[part.lower()] = part
    return list(parts.values())


def interest_phrases(text: str | None, unwanted: bool = False) -> list[str]:
    """The topics of an interests text, as written: what is matched whole, named in reasons and
    shown on the profile page.

    The text is split at commas, semicolons, new lines and a colon after a heading, and each
    piece must stand as a topic (:func:`topics.stands_alone`). A piece of adjectives alone qualifies
    the next one when a comma separates them: "smaller, cheaper large language models" is one
    phrase, never "smaller"; a generic word alone ("applications", "etc.") is no phrase, except
    in the topics a reader does not want (``unwanted``: "benchmarks" is then a kind of paper)."""
    pieces = _PHRASE_BREAK.split(text or "")
    phrases: dict[str, str] = {}
    pending = ""  # adjectives waiting for the noun phrase they qualify
    for i in range(0, len(pieces), 2):
        part = " ".join(pieces[i].split()).strip(" .:")
        if not part:
            pending = ""
            continue
        phrase = f"{pending}, {part}" if pending else part
        pending = ""
        if topics.stands_alone(phrase, ENGLISH_STOP_WORDS, unwanted):
            phrases.setdefault(phrase.lower(), phrase)
        elif i + 1 < len(pieces) and "," in pieces[i + 1] and _only_adjectives(part):
            pending = phrase
    return list(phrases.values())


def _only_adjectives(part: str) -> bool:
    words = [w for w in WORD.findall(part.lower()) if w not in ENGLISH_STOP_WORDS]
    return bool(words) and all(topics.adjective_like(w) for w in words)


def phrase_groups(model: Vocabulary, phrase: str) -> list[np.ndarray]:
    """The columns a paper must contain to contain the whole phrase: one group per consecutive
    word pair (one word if the phrase has one), any column of a group will do.

    The last word may be singular or plural ("graph neural network" matches "... networks").
    Stop words are left out the way the hasher leaves them out, so "quantization of the KV
    cache" asks for the pairs "quantization kv" and "kv cache"."""
    words = [t for t in model.tokens(phrase) if " " not in t]
    if not words:
        return []
    last = words[-1]
    variants = [last, last + "s"] + ([last[:-1]] if last.endswith("s") and len(last) > 3 else [])
    if len(words) == 1:
        return [model.columns(variants)]
    pairs = [[f"{a} {b}"] for a, b in zip(words, words[1:], strict=False)]
    pairs[-1] = [f"{words[-2]} {v}" for v in variants]
    return [model.columns(group) for group in pairs]


def phrase_hits(
    model: Vocabulary, phrases: list[str], presence: sp.csc_matrix, texts: list[str]
) -> sp.csr_matrix:
    """Which papers contain each phrase: a (phrases × papers) 0/1 matrix.

    ``presence`` holds raw term counts of the papers (not TF-IDF: a phrase made of common
    words, "large language models", must still be found); papers that have every word pair
    of the phrase are then read (``texts``) for the phrase itself, in order, only stop words
    between its words (:func:`phrase_pattern`): "4-bit and 2-bit" is not "bit ... bit"."""
    rows: list[int] = []
    cols: list[int] = []
    indptr, indices = presence.indptr, presence.indices
    for i, phrase in enumerate(phrases):
        found: np.ndarray | None = None
        for group in phrase_groups(model, phrase):
            papers = np.unique(np.concatenate([indices[indptr[c] : indptr[c + 1]] for c in group]))
            found = papers if found is None else np.intersect1d(found, papers, assume_unique=True)
            if not len(found):
                break
        if found is None or not len(found):
            continue
        pattern = phrase_pattern(phrase, model.stop_words)
        kept = [j for j in found.tolist() if pattern.search(texts[j])]
        rows.extend([i] * len(kept))
        cols.extend(kept)
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(phrases), presence.shape[0]),
    )


def phrase_pattern(phrase: str, stop_words: frozenset[str]) -> re.Pattern:
    """A phrase as a reader means it: its words in order (case, hyphens and punctuation-free
    spacing aside), stop words allowed between them ("quantization of the KV cache" matches
    "quantization of KV cache"), the last word singular or plural."""
    words = [w for w in re.findall(r"\w+", phrase.lower()) if w not in stop_words]
    if not words:
        return re.compile(r"(?!)")
    stops = "|".join(sorted(stop_words, key=len, reverse=True))
    gap = rf"[\s\-/]+(?:(?:{stops})[\s\-/]+)*"
    last = re.escape(words[-1].removesuffix("s")) + "s?"
    body = gap.join([re.escape(w) for w in words[:-1]] + [last])
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def add_phrase_bonus(scores: np.ndarray, matched: sp.csr_matrix, weight: float) -> None:
    """Add to ``scores`` what whole interest phrases add: ``weight`` (``Weights.phrase_match``)
    × log2(1 + phrases found), where ``matched`` (subscribers × papers) found any.

    Only there: a paper holds few readers' phrases, and worked out over the whole chunk (a
    dense log2 of 128 readers × 26,000 papers) it was a tenth of a 20,000-reader run's CPU,
    most of it for readers who wrote no interests at all. The same float32 numbers."""
    matched = matched.tocoo()
    if not matched.nnz:
        return
    bonus = matched.data.astype(np.float32)
    np.add(bonus, 1, out=bonus)
    np.log2(bonus, out=bonus)
    np.multiply(bonus, weight, out=bonus)
    scores[matched.row, matched.col] += bonus
