"""The phrases of a paper a reason may name (:func:`key_phrases`): the source's keywords and the
word pairs written side by side in it that name a topic, and which of them raised a score
(:func:`best_key_phrases`)."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import cast

import numpy as np

from . import topics
from .phrases import WORD, Vocabulary

# What joins the two words of a pair as written: a space or a hyphen ("long-context").
_PAIR_JOINT = re.compile(r"[ -]")
# Bump when phrase_pairs' rules change: stored pairs (paperwire.terms) are then made again.
PAIRS_VERSION = 2
# A term in half of all papers or more says nothing about this paper (smoothed IDF ≤ 1 + ln 2).
GENERIC_IDF = 1 + math.log(2)


@dataclass(frozen=True)
class KeyPhrases:
    """The phrases of one paper a reason may name, as written, with their hashed columns
    concatenated (phrase i owns ``columns[starts[i]:starts[i + 1]]``)."""

    texts: list[str]
    columns: np.ndarray
    starts: np.ndarray


def key_phrases(model: Vocabulary, text: str, keywords: list[str] | tuple = ()) -> KeyPhrases:
    """The phrases of a paper a reader would recognise: the source's own keywords (Hugging Face
    ``ai_keywords``) and the word pairs written side by side in it (:func:`phrase_pairs`,
    judged by :func:`key_phrases_of`)."""
    return key_phrases_of(model, phrase_pairs(text, model.stop_words), None, keywords)


def phrase_pairs(text: str, stop_words: frozenset[str]) -> list[str]:
    """The word pairs of a text that may name it, as written, first written first: those
    that name a topic (:func:`topics.is_topic`).

    A pair never spans punctuation ("KV cache, long-context" gives "KV cache" and
    "long-context", never "cache long") or a stop word, and a hyphenated compound is taken
    whole or not at all ("long-context inference" gives "long-context"). Whether a pair is
    specific enough to name the paper depends on the corpus (:func:`key_phrases_of`); this part
    does not, so it is worked out once per paper when the paper is stored (paperwire.terms)."""
    pairs: dict[str, str] = {}
    # words and what separates them: [sep, word, sep, word, ..., sep]
    parts = WORD.split(text)
    words, seps = parts[1::2], parts[0::2]
    lowered = [w.lower() for w in words]
    usable = [len(w) >= 2 and not w.isdigit() and w not in stop_words for w in lowered]
    for i in range(len(words) - 1):
        sep, before, after = seps[i + 1], seps[i], seps[i + 2]
        if not (usable[i] and usable[i + 1]):
            continue
        if sep == "-":
            if before.endswith("-") or after.startswith("-"):
                continue  # part of a longer compound ("state-of-the-art")
        elif sep.strip() or not sep:
            continue  # punctuation between them: "KV cache, long-context" has no "cache long"
        elif before.endswith("-") or after.startswith("-"):
            continue  # "context inference" out of "long-context inference"
        elif lowered[i + 1].endswith("ed") or lowered[i].endswith("ly"):
            continue  # a verb or an adverb, not a name: "codec designed", "greatly improves"
        key = f"{lowered[i]} {lowered[i + 1]}"
        if key not in pairs:
            pairs[key] = f"{words[i]}{'-' if sep == '-' else ' '}{words[i + 1]}"
    # judged here, once a paper, and kept: not for every pick of every run (0.2 ms a paper)
    return [pair for pair in pairs.values() if topics.is_topic(pair, stop_words)]


def pair_tokens(written: str) -> tuple[str, str, str]:
    """A pair's bigram token and its two words, as the hasher writes them."""
    first, second = _PAIR_JOINT.split(written.lower(), maxsplit=1)
    return f"{first} {second}", first, second


def pair_columns(model: Vocabulary, pairs: list[str]) -> np.ndarray:
    """(pairs × 3) hashed columns of each pair's bigram and its two words."""
    tokens = [t for written in pairs for t in pair_tokens(written)]
    return model.columns(tokens).reshape(-1, 3)


def key_phrases_of(
    model: Vocabulary,
    pairs: list[str],
    columns: np.ndarray | None,
    keywords: list[str] | tuple = (),
) -> KeyPhrases:
    """The key phrases of a paper from its word pairs (:func:`phrase_pairs`: topics only, with
    their :func:`pair_columns`, worked out when None) and the source's keywords.

    A key phrase names a topic (:func:`topics.is_topic`: no boilerplate verb, a noun-like head,
    a topical word: never "work presents", "important benefits" or "fine-grained") and has two
    words at least: a single word, even the source's ("decoding", "lightweight"), says too
    little. A pair whose last word is in a large share of papers (more than the model's
    ``max_df``: "experimental results", "contributions include") and a phrase whose terms are
    all in half of all papers are dropped."""
    found: dict[str, tuple[str, list[str]]] = {}
    for keyword in keywords:
        keyword = " ".join(str(keyword).split())
        tokens = model.tokens(keyword)
        if (
            tokens
            and keyword.lower() not in found
            and len(_PAIR_JOINT.split(keyword)) > 1
            and topics.is_topic(keyword, model.stop_words)
        ):
            found[keyword.lower()] = (keyword, tokens)
    idf = model.idf
    texts: list[str] = []
    parts: list[np.ndarray] = []
    if found:
        token_lists = [tokens for _, tokens in found.values()]
        flat = model.columns([t for tokens in token_lists for t in tokens])
        offsets = np.r_[0, np.cumsum([len(tokens) for tokens in token_lists])]
        for i, (written, tokens) in enumerate(found.values()):
            cols = flat[offsets[i] : offsets[i + 1]]
            # a keyword is judged by its best term (a pair-shaped one by its own column)
            best = idf[cols[0]] if len(tokens) == 3 and " " in tokens[0] else idf[cols].max()
            if best >= GENERIC_IDF:
                texts.append(written)
                # two words (the hasher writes the words, then the pair): kept pair first, as a
                # written pair's columns are, for best_key_phrases to find the pair's
                two = len(tokens) == 3 and " " in tokens[2]
                parts.append(cols[[2, 0, 1]] if two else cols)
    if pairs:
        if columns is None:
            columns = pair_columns(model, pairs)
        kept = [i for i, w in enumerate(pairs) if pair_tokens(w)[0] not in found] if found else None
        if kept is not None:
            pairs, columns = [pairs[i] for i in kept], columns[kept]
        hyphenated = np.array(["-" in written for written in pairs], dtype=bool)
        keep = _pairs_kept(idf, columns, hyphenated)
        for i in np.flatnonzero(keep).tolist():  # pairs name topics (phrase_pairs)
            texts.append(pairs[i])
            parts.append(columns[i])
    return KeyPhrases(
        texts,
        np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64),
        np.r_[0, np.cumsum([len(cols) for cols in parts])].astype(np.int64),
    )


def _pairs_kept(idf: np.ndarray, columns: np.ndarray, hyphenated: np.ndarray) -> np.ndarray:
    """Which word pairs (their :func:`pair_columns`, and whether each is hyphenated) name a
    topic specific enough. A name ends in a word that tells papers apart ("KV cache", "memory
    footprint"); "contributions include", "tackle complex", "diverse domains" end in common
    words. A hyphenated compound ("long-context") may end in a common word if it starts with a
    rare one. A pair is then judged by its own column (its words may well be common)."""
    rare = idf[columns] >= GENERIC_IDF if len(columns) else np.zeros((0, 3), dtype=bool)
    return (rare[:, 2] | (hyphenated & rare[:, 1])) & rare[:, 0]


def key_phrases_many(
    model: Vocabulary, papers: list[tuple[list[str], np.ndarray, list[str] | tuple]]
) -> list[KeyPhrases]:
    """:func:`key_phrases_of` of many papers, each (its pairs, their columns, its keywords):
    the pairs of every paper without keywords judged in one pass (a run's candidates as they
    are first picked: ~10 numpy calls a paper held the GIL 40 µs each), the rest one by one."""
    out: list[KeyPhrases | None] = [None] * len(papers)
    plain = []
    for i, (pairs, columns, keywords) in enumerate(papers):
        if keywords:  # the keywords come first, and a pair they name is left out
            out[i] = key_phrases_of(model, pairs, columns, keywords)
        else:
            plain.append(i)
    sizes = [len(papers[i][0]) for i in plain]
    keep = np.zeros(0, dtype=bool)
    if sum(sizes):
        columns = np.concatenate(
            [papers[i][1] for i, size in zip(plain, sizes, strict=True) if size]
        )
        hyphenated = np.array(["-" in w for i in plain for w in papers[i][0]], dtype=bool)
        keep = _pairs_kept(model.idf, columns, hyphenated)
    at = 0
    for i, size in zip(plain, sizes, strict=True):
        pairs, columns = papers[i][0], papers[i][1]
        kept = np.flatnonzero(keep[at : at + size]) if size else np.zeros(0, dtype=np.int64)
        at += size
        out[i] = KeyPhrases(
            [pairs[k] for k in kept.tolist()],
            columns[kept].reshape(-1).astype(np.int64) if size else np.zeros(0, dtype=np.int64),
            np.arange(0, 3 * len(kept) + 1, 3, dtype=np.int64),
        )
    return cast(list[KeyPhrases], out)  # every paper's, filled above


def best_key_phrases(
    phrases: KeyPhrases, contributions: np.ndarray, n: int = 2, skip: tuple[str, ...] = ()
) -> list[str]:
    """Up to ``n`` key phrases that raised the score most. ``contributions`` holds, for each of
    ``phrases.columns`` (a pair's own column and its words'), the profile's weight times the
    paper's; a phrase inside an already named interest phrase (``skip``), or overlapping a
    chosen one, is left out."""
    if n <= 0 or not phrases.texts:
        return []
    totals = raised_totals(contributions, phrases.starts[:-1])
    return pick_key_phrases(phrases.texts, np.asarray(totals).tolist(), n, skip)


def raised_totals(contributions: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per phrase (its columns ``contributions[starts[i] : starts[i + 1]]``, the last to the
    end), the sum of its contributions where the phrase is the reader's, else 0: what
    :func:`best_key_phrases` ranks by, and evidence.ProfilePhrases for a whole chunk."""
    totals = np.add.reduceat(contributions, starts)
    # At least two of a phrase's terms (the pair and a word of it, say) must raise the score:
    # one alone can be a hash collision ("bit bit" and "vision tokens" share a column).
    raising = np.add.reduceat((contributions > 0).astype(np.int64), starts)
    sizes = np.diff(np.r_[starts, len(contributions)])
    # A two-word phrase (its pair's column, then its two words') is a reader's topic only where
    # their own papers or interests hold the pair itself: the two words apart ("search" in one
    # title, "space" in another) make no "search space" of theirs (found in a two-month field
    # test: "about “user collects”" and "about “ongoing updates”" under a voter's picks).
    # (Such a phrase's three columns are its pair's and its words', the pair's first.)
    whole = (contributions[starts] > 0) | (sizes != 3)
    return np.where((raising >= np.minimum(sizes, 2)) & whole, totals, 0.0)


def pick_key_phrases(
    texts: list[str], totals: list[float], n: int, skip: tuple[str, ...] | list[str] = ()
) -> list[str]:
    """Up to ``n`` of ``texts`` with the highest positive ``totals``, first written first among
    equals; one inside an already named phrase (``skip``) or overlapping a chosen one is left
    out (:func:`best_key_phrases`, with its totals already worked out)."""
    order = sorted((i for i, t in enumerate(totals) if t > 0), key=lambda i: -totals[i])
    return choose_key_phrases(texts, order, n, skip)


def choose_key_phrases(
    texts: list[str], order: list[int], n: int, skip: tuple[str, ...] | list[str] = ()
) -> list[str]:
    """Up to ``n`` of ``texts`` taken in ``order`` (best first), leaving out one inside an
    already named phrase (``skip``) or overlapping a chosen one."""
    taken = [_compared(s) for s in skip]
    chosen: list[str] = []
    for i in order:
        compared = _compared(texts[i])
        if any(compared in t or t in compared for t in taken):  # whole words: " gan " is
            continue  # not in " organ transplant "
        chosen.append(texts[i])
        taken.append(compared)
        if len(chosen) == n:
            break
    return chosen


@functools.lru_cache(maxsize=65536)
def _compared(phrase: str) -> str:
    """A phrase as a reader compares two: any case, a hyphen a space ("Fine-Tuning" and
    "fine-tuning", "DeepSeek-R1" and "Deepseek R1" are one), a plural its singular ("Nash
    Equilibria" and "Nash Equilibrium" stood under one pick: found in review). One inside the
    other is one too ("language model" in "large language models"); two that overlap at their
    ends ("KV cache", "cache compression") are both kept: the reasons say them as the one run
    of words they are (render/reasons.py). Cached: a paper's phrases come back under reader
    after reader."""
    words = " ".join(_singular(word) for word in phrase.replace("-", " ").split())
    return f" {words} "


def _singular(word: str) -> str:
    """A word as two phrases are compared by: any case, a plural as its singular, near enough
    (a key, not a word to show: "caches" and "cache" are both "cach", "policies" and "policy"
    both "polici")."""
    if re.fullmatch(r"[A-Z]{2,}s", word):  # LMs, GANs, LLMs
        return word[:-1].lower()
    word = word.lower()
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word  # process, corpus, analysis; and short words (gas, bus, its)
    if word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        word = word[:-2]  # processes, boxes, matches (and caches, as "cach" below)
    elif word.endswith("ia") and len(word) > 5:
        word = word[:-2] + "ium"  # equilibria, criteria (media, bacteria)
    elif word.endswith("s"):
        word = word[:-1]
    if word.endswith("y"):
        return word[:-1] + "i"
    return word[:-1] if word.endswith("e") else word
