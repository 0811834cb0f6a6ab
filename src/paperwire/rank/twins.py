"""One paper under two ids: the same title by the same first author, or the same title and
opening of the abstract.

arXiv ids already make a replacement, a cross-listing and Hugging Face's copy of an arXiv
paper one paper (paper.py). Other feeds name a paper their own way (an RSS item's link or
guid): a journal's or a lab's feed may bring a preprint arXiv brought the week before, two
aggregators the same item, and a library imported as seeds may hold the journal version of a
preprint a feed brings. Such a copy was sent again, or offered back to the reader who owns it.

Two papers are one when they share a key: their titles folded to their words (case, accents
and punctuation aside) with the surname of their first author, or their titles and the
openings of their abstracts (their first 400 characters) folded the same way. TeX is read as
written out first (``$\\Pi$-NeSy`` is a journal's "Π-NeSy", ``$\\ell_1$`` its "ℓ1"), and
the words of a title are keyed as one run of letters, so a subscript's place ("ℓ_1", "ℓ1")
or a split word ("KV-Cache", "KVCache") is no other paper. A title without an author has no
key of its own (two papers titled "A Survey of Large Language Models" are not one paper, and
nothing else tells them apart), nor has an abstract without its title ("..., Part I" and
"..., Part II" may share one). A reader's own
paper (sent, rated or a seed) is theirs under every id, and a digest holds a paper once: the
id their ranking puts first (no id is "the" paper's: a data set's readers saved either).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..store import Store
from ..tex import written_out
from .batches import CacheWrites, WriteGate

# a paper's keys to store: (paper id, what they were made from, the keys joined by newlines,
# the paper's ``updated`` when it was read: Store.set_paper_keys)
Keyed = tuple[str, str, str, str]

# A key needs enough words to name one paper: "Introduction", "Editorial" and "Erratum" are
# titles many papers share, and a withdrawn paper's one-line abstract is many papers' abstract.
MIN_TITLE_WORDS = 4
MIN_ABSTRACT_WORDS = 20
ABSTRACT_OPENING = 400  # characters of an abstract its key reads (its first ~60 words)
# Bump when how a key is made changes: keys stored by another version are made again.
KEYS_VERSION = 4  # 4: TeX letters (\\o, \\ae); 3: ties, TeX quotes, control spaces, text symbols (2: fractions, roots, links)

_WORD = re.compile(r"[^\W_]+")
_NOT_LETTERS = str.maketrans("", "", string.punctuation + string.whitespace)
# the combining marks NFKD leaves apart ("í" is "i" and U+0301): Unicode's combining blocks
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# what an author string carries beside the name: an affiliation, "Jr.", "III", "PhD"
_ASIDE = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md"})
# "G.", "GM", "J.-P.": initials, as PubMed and journals write the given names after the surname
_INITIALS = re.compile(r"^(?:[A-Z]\.?-?){1,3}$")
# an author that is a body, not a person: "ATLAS Collaboration" and "CMS Collaboration" are
# told apart by their whole name, not by the word they share
_BODIES = frozenset({"collaboration", "consortium", "team", "group", "project", "committee"})


def _fold(text: str | None) -> str:
    """Case-folded, accents dropped: "Ramírez" is "ramirez", not "rami" and "rez"."""
    text = text or ""
    if text.isascii():  # most titles and names: the NFKD pass below costs three times this
        return text.lower()
    return _MARKS.sub("", unicodedata.normalize("NFKD", text)).casefold()


def _words(text: str | None) -> list[str]:
    """The text's words, case-folded, accents dropped."""
    return _WORD.findall(_fold(text))


def _title_words(title: str | None) -> list[str]:
    """A title's words as a reader reads it: its TeX written out (tex.py), then folded."""
    return _words(written_out(title) if title else title)


def _letters(text: str | None) -> str:
    """The text's letters and digits in one run, case-folded, accents dropped: what an
    abstract's key is made of (a Unicode word search over 1,500 characters took 40 µs; ASCII
    punctuation and spaces deleted, 7)."""
    folded = _fold(text)
    if folded.isascii():
        return folded.translate(_NOT_LETTERS)
    return "".join(_WORD.findall(folded))


def surname(author: str) -> str:
    """The family name of an author as feeds write them: "Grace Hopper", "G. Hopper", "Hopper,
    Grace", "Hopper GM" and "Grace Hopper Jr. (Navy)" all give "hopper"; a body its whole name."""
    author = _ASIDE.sub(" ", author)
    words = _words(author)
    if _BODIES.intersection(words):
        return " ".join(words)
    if "," in author:  # "Surname, Given" (and "Surname, Jr., Given")
        author = author.split(",", 1)[0]
    else:  # "Given Surname" or "Surname GM": the initials and suffixes are not it
        author = " ".join(
            t for t in author.split() if not _INITIALS.match(t) or len(author.split()) == 1
        )
    family = [w for w in _words(author) if w not in _SUFFIXES]
    return family[-1] if family else ""


def keys(title: str | None, abstract: str | None, authors: Sequence[str] = ()) -> list[str]:
    """The keys a paper shares with its copies (none for a paper too short to tell apart)."""
    out = []
    words = _title_words(title)
    first = surname(authors[0]) if authors else ""
    if len(words) >= MIN_TITLE_WORDS and first:
        out.append(f"t:{''.join(words)}|{first}")
    # the abstract's opening is enough to tell papers of one title apart; reading 400
    # characters, not 1,500, is a quarter of the time a key takes
    opening = (abstract or "")[:ABSTRACT_OPENING]
    if len(opening.split()) >= MIN_ABSTRACT_WORDS:
        text = f"{''.join(words)}|{_letters(written_out(opening))[: ABSTRACT_OPENING // 2]}"
        digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        out.append(f"a:{digest[:20]}")
    return out


def made_from(text_digest: str, authors: Sequence[str]) -> str:
    """What a paper's stored keys were made from: this version of :func:`keys`, the hash of
    its text (:func:`paperwire.paper.text_hash`) and its first author. Stored keys are used
    only while this is unchanged."""
    return f"{KEYS_VERSION}|{text_digest}|{authors[0] if authors else ''}"


def stored_version(made: str | None) -> bool:
    """Whether keys stored with ``made`` were made by this version of :func:`keys`."""
    return made is not None and made.startswith(f"{KEYS_VERSION}|")


def stored_keys(stored: str) -> list[str]:
    """The keys of a ``paper_keys`` row, as :func:`keep_keys` joined them."""
    return stored.split("\n") if stored else []


def keys_of_row(row: dict[str, Any], digest: str) -> tuple[list[str], Keyed | None]:
    """The keys of a paper read by ``Store.iter_corpus(keyed=True)`` (or ``key_sources``,
    without stored keys) whose text hashes to ``digest``: its stored ones while they were made
    from this text and first author, else made now, with the row to store them by
    (:func:`keep_keys`)."""
    authors = first_author(row["authors"])
    made, stored = made_from(digest, authors), row.get("twin_keys")
    if row.get("keys_made") == made and stored is not None:
        return stored_keys(stored), None
    found = keys(row["title"], row["abstract"], authors)
    return found, (row["paper_id"], made, "\n".join(found), row["updated"])


def keep_keys(
    store: Store, fresh: list[Keyed], gate: WriteGate | None = None, batch: int = 2000
) -> None:
    """Store keys made now (:func:`keys_of_row`) for the next run and for the look-up of papers
    a bounded corpus leaves out. A cache write: a failure (a read-only database, a lock held
    too long) is logged once, and the run goes on with the keys it made; none is tried once
    another write through ``gate`` (the run's analyses) failed."""
    writes = CacheWrites("twin keys", len(fresh), gate=gate)
    for start in range(0, len(fresh), batch):
        writes.write(partial(store.set_paper_keys, fresh[start : start + batch]), start)


@dataclass
class Twins:
    """Which rows of a corpus (oldest first) are copies, and of which row."""

    original: dict[int, int]  # a copy's row -> the row of the paper first stored
    # the first row of a paper -> its copies outside the corpus (a bounded corpus leaves out a
    # paper sent months ago; its journal version comes now): known by their stored keys
    outside: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, keyed: Iterable[list[str]]) -> Twins:
        """From each row's :func:`keys`, in the corpus's order (first seen, then id): rows that
        share a key are one paper, and so are rows joined through a third (an arXiv paper, a
        journal's copy with its title and author, an aggregator's with the journal's title and
        abstract), whatever order they came in."""
        parent: list[int] = []

        def root(row: int) -> int:
            while parent[row] != row:
                parent[row] = parent[parent[row]]
                row = parent[row]
            return row

        first: dict[str, int] = {}
        for row, row_keys in enumerate(keyed):
            parent.append(row)
            for k in row_keys:
                if k not in first:
                    first[k] = row
                    continue
                a, b = root(first[k]), root(row)
                if a != b:  # the earlier row stands for the paper
                    parent[max(a, b)] = min(a, b)
        original = {row: root(row) for row in range(len(parent)) if root(row) != row}
        return cls(original)

    def add_outside(self, row: int, paper_id: str) -> None:
        """``paper_id``, a paper outside the corpus, is the paper at ``row`` of it."""
        self.outside.setdefault(self.original.get(row, row), []).append(paper_id)

    def join(self, rows: Iterable[int]) -> int:
        """The papers at these corpus rows are one paper (a paper outside the corpus shares a
        key with each: its journal version with a revised abstract, and an aggregator's copy
        of its first text); returns the row that stands for it, the earliest."""
        firsts = sorted({self.original.get(r, r) for r in rows})
        first = firsts[0]
        if len(firsts) == 1:  # most papers outside share keys with one paper, or its copies
            return first
        later = set(firsts[1:])
        for copy, was in self.original.items():
            if was in later:
                self.original[copy] = first
        for row in later:
            self.original[row] = first
            self.outside.setdefault(first, []).extend(self.outside.pop(row, []))
        return first

    def among(self, ids: Sequence[str], cols: Sequence[int] | np.ndarray) -> Among:
        """What the candidates at corpus rows ``cols`` (of a corpus whose papers are ``ids``)
        have of these twins."""
        column_of_row = {int(c): i for i, c in enumerate(cols)}
        groups: dict[int, list[int]] = {}
        for copy, first in self.original.items():
            groups.setdefault(first, [first]).append(copy)
        for first in self.outside:
            groups.setdefault(first, [first])
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
            for paper_id in self.outside.get(first, ()):
                others[paper_id] = candidates
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


_JSON = json.JSONDecoder()


def first_author(authors: str | None) -> list[str]:
    """The first name of a stored JSON list of authors, alone in a list (a collaboration's
    paper lists thousands, and a key needs one)."""
    start = (authors or "").find('"')
    if start < 0:
        return []
    name, _ = _JSON.raw_decode(authors or "", start)
    return [name] if isinstance(name, str) else []
