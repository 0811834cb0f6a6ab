"""The stored corpus as ranking reads it (TF-IDF vectors, term counts, analysed word pairs), and
the interest phrases of a run found in its candidates."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..paper import paper_text, text_hash
from ..store import Store
from . import core as rank
from . import terms
from .batches import WriteGate
from .nearest import NearestPapers
from .phrases import interest_phrases, phrase_hits
from .scope import EVERY_PAPER, Scope
from .texts import StoredTexts
from .twins import Keyed, Twins, keep_keys, keys_of_row, stored_keys, stored_version


@dataclass
class Corpus:
    """The stored corpus, vectorised once: every profile and candidate shares it."""

    model: rank.TextModel
    ids: list[str]
    # per paper: id, title, first-seen date, upvotes and key phrases; no abstract (rank/texts.py)
    rows: list[dict[str, Any]]
    hashes: list[str]  # per paper, the text_hash of its text when the corpus was read
    matrix: sp.csr_matrix
    index: dict[str, int]
    # Which terms each paper has (before IDF; bool): whole interest phrases are looked for in
    # these, since a phrase of common words ("large language models") has no weight in
    # ``matrix``.
    counts: sp.csr_matrix
    # Per paper, the word pairs a reason may name and their columns.
    analysed: terms.Analysed
    # Which papers are one paper under several ids (rank/twins.py), and, past a bounded
    # corpus's start, which stored papers it leaves out are one of its papers.
    twins: Twins
    # each paper's nearest papers by TF-IDF, found as runs ask (``ranking.embeddings: off``),
    # by the papers a list holds (runs with other weights, e.g. a benchmark's, keep theirs)
    _nearest: dict[int, NearestPapers] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _making: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def nearest_papers(self, k: int) -> NearestPapers:
        """TF-IDF's nearest-papers lists (:meth:`NearestPapers.of_terms`), made once per
        corpus (a daemon's threads may both rank at once: one set of lists)."""
        with self._making:
            if k not in self._nearest:
                reference = rank.calibration_rows(self.matrix)
                self._nearest[k] = NearestPapers.of_terms(self.matrix, reference, k)
            return self._nearest[k]

    @cached_property
    def upvote_scale(self) -> tuple[float, float] | None:
        """:func:`rank.upvote_scale` of every stored paper with a count, once per corpus: the
        readers' shares are read on it, not on today's candidates (a small window, or one
        absurd count, would swing them from run to run)."""
        return rank.upvote_scale([r.get("upvotes") for r in self.rows])

    @classmethod
    def build(cls, store: Store, scope: Scope = EVERY_PAPER) -> Corpus:
        """The corpus of this store, vectorised. Each paper's text is analysed once and stored
        (rank/terms.py); what a build adds is the IDF fit and the weighing.
        :meth:`RankingSession.corpus <paperwire.rank.session.RankingSession.corpus>` keeps one
        while no paper is added or changed."""
        ids: list[str] = []
        rows: list[dict[str, Any]] = []
        hashes: list[str] = []
        keyed: list[list[str]] = []
        fresh: list[Keyed] = []  # keys made now (``fetch`` stores most), to store
        # each abstract hashed and keyed (its stored keys read), then let go, and the authors
        # with it
        for row in store.iter_corpus(scope.since, scope.keep, keyed=True):
            ids.append(row["paper_id"])
            hashes.append(text_hash(paper_text(row["title"], row["abstract"])))
            found, made = keys_of_row(row, hashes[-1])
            keyed.append(found)
            if made is not None:
                fresh.append(made)
            for column in ("abstract", "authors", "updated", "keys_made", "twin_keys"):
                del row[column]
            rows.append(row)
        model = rank.TextModel()
        gate = WriteGate()  # a locked database: one busy wait for the analyses and keys
        analysed = terms.load(store, model, ids, StoredTexts(store, ids, hashes), gate)
        counts = analysed.counts  # for IDF and for the vectors
        model.fit_counts(counts)
        matrix = model.weigh(counts)
        # presence is all phrase matching needs: one byte a term, not four (a year of arXiv
        # holds ~38 million terms); the float counts go with the analyses' reference to them
        counts = sp.csr_matrix(
            (np.ones(len(counts.data), dtype=bool), counts.indices, counts.indptr), counts.shape
        )
        analysed.counts = counts
        corpus = cls(
            model, ids, rows, hashes, matrix, {p: i for i, p in enumerate(ids)}, counts, analysed,
            _twins(store, scope, keyed, fresh),
        )  # fmt: skip
        keep_keys(store, fresh, gate)
        corpus.matrix.sort_indices()
        return corpus

    def texts(self, store: Store) -> StoredTexts:
        """The papers' texts, read from ``store`` when asked for (a corpus outlives the
        store it was read from: the session keeps it for the next run)."""
        return StoredTexts(store, self.ids, self.hashes)


def _twins(store: Store, scope: Scope, keyed: list[list[str]], fresh: list[Keyed]) -> Twins:
    """The corpus's papers that are one paper under several ids (rank/twins.py), and the papers
    sent to readers that a bounded corpus leaves out: a reader sent a preprint months ago owns
    its journal version now. Those by their stored keys (the fetch that stored a paper, or the
    first run that read it, keyed it; one sent by an older paperwire is keyed here, once), and
    only those sent: a year's store holds far more papers nobody was sent. The keys made here
    join ``fresh``."""
    twins = Twins.of(keyed)
    if scope.since is None:
        return twins
    first: dict[str, int] = {}
    for row, row_keys in enumerate(keyed):
        for key in row_keys:
            first.setdefault(key, row)
    if not first:
        return twins
    unkeyed = []
    for paper_id, made, stored in store.iter_sent_outside_corpus(scope.since, scope.keep):
        if not stored_version(made):
            unkeyed.append(paper_id)
            continue
        _add_outside(twins, first, paper_id, stored_keys(stored or ""))
    for start in range(0, len(unkeyed), terms.BATCH):
        for source in store.key_sources(unkeyed[start : start + terms.BATCH]):
            text = paper_text(source["title"], source["abstract"])
            found, keep = keys_of_row(source, text_hash(text))
            if keep is not None:
                fresh.append(keep)
            _add_outside(twins, first, source["paper_id"], found)
    return twins


def _add_outside(twins: Twins, first: dict[str, int], paper_id: str, keys: list[str]) -> None:
    """``paper_id`` (outside the corpus) is the corpus paper it shares a key with; where it
    shares keys with two (its journal version with a revised abstract, and an aggregator's copy
    of its first text), those are one paper too."""
    rows = [first[k] for k in keys if k in first]
    if rows:
        twins.add_outside(twins.join(rows), paper_id)


# a hyphenated compound as a reader writes it ("quality-diversity", "state-of-the-art")
_HYPHENATED = re.compile(r"\w+(?:-\w+)+")
# endings cut before two forms of a word are compared: "parameter-efficiently fine-tune" writes
# "parameter-efficient fine-tuning" (the demo's PiSSA)
_ENDINGS = ("ations", "ation", "ings", "ing", "edly", "ed", "ly", "es", "s", "e")


def _stem(word: str) -> str:
    word = word.lower()
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[: -len(ending)]
    return word


def _compounds(
    model: rank.TextModel, phrase: str, words: np.ndarray
) -> list[tuple[frozenset[int], re.Pattern[str]]]:
    """The hyphenated compounds of an interest phrase: for each, the positions in ``words``
    (the phrase's word columns) of its words, and a pattern for the compound as a paper may
    write it: its words side by side, joined by a hyphen or a space, each in any form that
    starts like it ("Quality-Diversity", "quality diversity", "fine-tune", "parameter-
    efficiently"). Two words apart ("quality and diversity") are two other things."""
    position = {int(column): k for k, column in enumerate(words.tolist())}
    out = []
    for compound in _HYPHENATED.findall(phrase):
        parts = compound.split("-")
        columns = model.columns([t for t in model.tokens(" ".join(parts)) if " " not in t])
        at = frozenset(position[c] for c in columns.tolist() if c in position)
        if len(at) < 2:  # a stop word or a lone letter: nothing of two words to hold apart
            continue
        written = r"[\s-]+".join(re.escape(_stem(part)) + r"\w*" for part in parts)
        out.append((at, re.compile(rf"\b{written}", re.IGNORECASE)))
    return out


class InterestPhrases:
    """The interest phrases of a run and the papers that contain each, found once per phrase
    (thousands of subscribers share "retrieval-augmented generation")."""

    def __init__(self, model: rank.TextModel, counts: sp.csr_matrix, texts: list[str]):
        self.model = model
        self.texts = texts
        self.presence = counts.tocsc()
        self.rows = counts.tocsr()
        self.rows.sort_indices()
        self.words: list[np.ndarray] = []  # per phrase, the columns of its words
        self.index: dict[str, int] = {}
        self.blocks: list[sp.csr_matrix] = []
        self.hits = sp.csr_matrix((0, counts.shape[0]), dtype=np.float32)
        self.papers_of: list[set[int]] = []
        self._word_sets: list[tuple[int, ...]] = []  # self.words as Python ints, for closest
        # per phrase, each word's weight in it: its IDF over the run's candidates (closest)
        self._word_weights: list[tuple[float, ...]] = []
        # per phrase, its hyphenated compounds: the positions of their words in _word_sets, and
        # how a paper writes the compound (closest)
        self._compounds: list[list[tuple[frozenset[int], re.Pattern[str]]]] = []
        # candidate -> its columns that are words of some phrase (kept small: a set of all its
        # columns for 7,000 candidates would hold ~80 MB)
        self._present: dict[int, frozenset[int]] = {}
        self._vocabulary: set[int] = set()

    def of(self, signals: list[rank.Signals]) -> list[list[tuple[int, str]]]:
        """Per subscriber, (phrase index, phrase as the reader wrote it) for each interest."""
        out, new = [], []
        for sig in signals:
            mine = []
            for phrase in interest_phrases(sig.interests):
                key = phrase.lower()
                if key not in self.index:
                    self.index[key] = len(self.index)
                    new.append(phrase)
                mine.append((self.index[key], phrase))
            out.append(mine)
        if new:
            block = phrase_hits(self.model, new, self.presence, self.texts)
            self.words += [
                np.unique(self.model.columns([t for t in self.model.tokens(p) if " " not in t]))
                for p in new
            ]
            added = self.words[len(self._word_sets) :]
            self._word_sets += [tuple(w.tolist()) for w in added]
            papers = self.presence.shape[0]
            found_in = np.diff(self.presence.indptr)
            self._word_weights += [
                tuple((np.log((1 + papers) / (1 + found_in[w])) + 1).tolist()) for w in added
            ]
            self._compounds += [_compounds(self.model, p, words) for p, words in zip(new, added, strict=True)]  # fmt: skip
            self._vocabulary.update(w for words in self._word_sets for w in words)
            self._present.clear()  # new words: the kept sets may lack them
            self.hits = sp.vstack([self.hits, block]).tocsr()
            self.papers_of += [set(block.indices[block.indptr[i] : block.indptr[i + 1]].tolist())
                               for i in range(block.shape[0])]  # fmt: skip
        return out

    def closest(self, mine: list[tuple[int, str]], col: int) -> str | None:
        """The phrase of which the paper has most words, if none is there whole: at least two
        of them, carrying at least 60 % of the phrase's weight (each word weighs its IDF over
        the candidates, so "large language models" in every paper does not make a paper close
        to "smaller, cheaper large language models"). A hyphenated compound of the phrase
        counts only where the paper writes its words side by side (:func:`_compounds`): a paper
        on "the diversity of driving datasets" (or their "quality and diversity") is not close
        to "quality-diversity algorithms"."""
        present = self._present.get(col)
        if present is None:  # a set per candidate: np.isin per phrase and pick cost ~70 µs
            row = self.rows.indices[self.rows.indptr[col] : self.rows.indptr[col + 1]]
            vocabulary = self._vocabulary
            present = self._present[col] = frozenset(c for c in row.tolist() if c in vocabulary)
        best, best_share = None, 0.0
        for i, text in mine:
            words, weights = self._word_sets[i], self._word_weights[i]
            found = [k for k, w in enumerate(words) if w in present]
            for parts, written in self._compounds[i]:
                if not parts.isdisjoint(found) and not written.search(self.texts[col]):
                    found = [k for k in found if k not in parts]  # its words, apart or alone
            share = sum(weights[k] for k in found) / sum(weights) if words else 0.0
            if len(found) >= 2 and share >= 0.6 and share > best_share:
                best, best_share = text, share
        return best

    def matched(self, mine: list[list[tuple[int, str]]]) -> sp.csr_matrix:
        """(subscribers × papers, sparse): how many of each subscriber's phrases each paper
        contains."""
        hits = self.hits  # once: a chunk's :meth:`of` may add rows meanwhile, on another thread
        rows = [r for r, phrases in enumerate(mine) for _ in phrases]
        cols = [i for phrases in mine for i, _ in phrases]
        owner = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(mine), hits.shape[0])
        )
        return (owner @ hits).tocsr()
