"""Each paper's text analysed once, when it is stored, not on every run.

Every run ranks against every stored paper: IDF is fitted on all of them and every profile lives
in their space. Hashing all their abstracts again on each run cost O(store) per run (~2 s for
7,000 papers on two cores; a year of arXiv is tens of thousands), and finding the word pairs a
reason may name cost another 0.5 ms per candidate. Neither depends on the other papers,
so both are kept in the ``paper_terms`` table beside the paper: the hashed term columns and
counts, and the word pairs with their columns. What does depend on the corpus (IDF, which pairs
are specific enough to name a paper) is still worked out per run, from these.

An analysis is reused only while the paper's text (its hash) and the analyser (:func:`analyser`:
the hasher's settings and stop words, and this format) are unchanged; anything else is
analysed again and stored, so an upgrade or an edited abstract never ranks on stale terms.
``fetch`` analyses the papers it stored (:func:`refresh`); a run that finds papers without an
analysis (stored by an older paperwire, or by ``library import``) analyses them itself.
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse as sp

from ..paper import paper_text, text_hash
from ..store import Store
from . import core as rank
from . import hashing, topics, twins
from .batches import CacheWrites, WriteGate, batch_bounds
from .paper_phrases import PAIRS_VERSION, pair_columns, phrase_pairs
from .scope import EVERY_PAPER, Scope
from .texts import hashes_of, texts_at

# Bump when what is stored, or how it is made, changes.
FORMAT = 1
# Texts analysed per batch: bounds the memory of one batch's rows, not the speed.
BATCH = 2000
# Counts are stored as one byte: a term repeated more often than this in one paper (no abstract
# does) counts as this many, which sublinear tf (1 + ln 255 = 6.5) barely tells apart.
MAX_COUNT = np.iinfo(np.uint8).max


def analyser(model: rank.TextModel) -> str:
    """A name for everything an analysis depends on: change any of it and papers are analysed
    again. That is the hasher's settings, version and stop words and Python's Unicode tables
    (what ``\\w`` matches), the word-pair rules (``PAIRS_VERSION``, ``topics.RULES_VERSION``) and
    this format."""
    h = model.hasher
    settings = repr(
        (FORMAT, PAIRS_VERSION, topics.RULES_VERSION, hashing.VERSION, unicodedata.unidata_version,
         h.n_features, h.ngram_range, h.word_pattern, sorted(h.stop_words))
    )  # fmt: skip
    return (
        f"terms{FORMAT}-" + hashlib.sha1(settings.encode(), usedforsecurity=False).hexdigest()[:12]
    )


@dataclass
class Analysed:
    """The analyses of papers, row i for paper i.

    A paper's word pairs are kept as the one string they are stored as, and their columns in
    one array for all papers: only candidates ever need them, and a list of strings and an
    array per paper cost ~200 MB at 28,000 papers."""

    # raw term counts, sorted columns: float32 as the hasher gives them (analyse), uint8 as
    # stored (load)
    counts: sp.csr_matrix
    pair_texts: list[str]  # per paper, its word pairs as written, "\n"-joined (phrase_pairs)
    pair_columns: np.ndarray  # (all pairs × 3) columns (pair_columns), paper after paper
    pair_starts: np.ndarray  # paper i's pairs are rows pair_starts[i] : pair_starts[i + 1]

    def pairs(self, i: int) -> list[str]:
        return self.pair_texts[i].split("\n") if self.pair_texts[i] else []

    def columns(self, i: int) -> np.ndarray:
        return self.pair_columns[self.pair_starts[i] : self.pair_starts[i + 1]]


def analyse(model: rank.TextModel, texts: list[str]) -> Analysed:
    """Analyse texts afresh."""
    counts = model.hasher.transform(texts)
    pairs = [phrase_pairs(t, model.stop_words) for t in texts]
    return _analysed(
        counts.tocsr(), ["\n".join(p) for p in pairs], [pair_columns(model, p) for p in pairs]
    )


def _analysed(counts: sp.csr_matrix, pair_texts: list[str], columns: list[np.ndarray]) -> Analysed:
    sizes = [len(c) for c in columns]
    flat = np.concatenate(columns) if columns else np.zeros((0, 3))
    return Analysed(
        counts, pair_texts, flat.astype(np.uint32).reshape(-1, 3), np.r_[0, np.cumsum(sizes)]
    )


def load(
    store: Store,
    model: rank.TextModel,
    paper_ids: list[str],
    texts: Sequence[str],
    gate: WriteGate | None = None,
) -> Analysed:
    """The analyses of these papers (rows in the given order): the stored ones where they are
    up to date, the rest analysed now and stored for the next run. The counts are read back
    as stored, one byte a term (what a fresh analysis gives is float).

    Storing them is a cache write: if it fails (a read-only database, a lock held past the busy
    timeout), the run goes on with what it analysed and says so in the log, and no other write
    through ``gate`` is tried."""
    name = analyser(model)
    hashes = hashes_of(texts)
    # per paper: (term columns, counts, pairs as written, pair columns)
    found: list[tuple[np.ndarray, np.ndarray, str, np.ndarray] | None] = [None] * len(paper_ids)
    todo = []
    for start in range(0, len(paper_ids), BATCH):
        # one batch's blobs at a time, copied into three arrays of its own and let go: all of
        # a year's blobs at once (200,000 papers) held ~450 MB beside what is made of them
        stored = store.paper_terms(name, paper_ids[start : start + BATCH])
        usable = []
        for i in range(start, min(start + BATCH, len(paper_ids))):
            hit = stored.get(paper_ids[i])
            if hit is not None and _usable(hit, hashes[i]):
                usable.append((i, hit))
            else:
                todo.append(i)
        terms_all = np.frombuffer(b"".join(hit[1] for _, hit in usable), dtype=np.uint32)
        counts_all = np.frombuffer(b"".join(hit[2] for _, hit in usable), dtype=np.uint8)
        columns_all = np.frombuffer(b"".join(hit[4] for _, hit in usable), dtype=np.uint32)
        columns_all = columns_all.reshape(-1, 3)
        at = row = 0
        for i, hit in usable:
            size, pairs = len(hit[2]), len(hit[4]) // 12
            found[i] = (terms_all[at : at + size], counts_all[at : at + size], hit[3],
                        columns_all[row : row + pairs])  # fmt: skip
            at, row = at + size, row + pairs
        del stored, usable
    if todo:
        made = _analyse_and_store(store, model, name, [paper_ids[i] for i in todo],
                                  texts_at(texts, todo), [hashes[i] for i in todo],
                                  gate=gate)  # fmt: skip
        for i, analysis in zip(todo, made, strict=True):
            found[i] = analysis
    every = [f for f in found if f is not None]
    if len(every) != len(found):  # each was read back or analysed above
        raise RuntimeError("terms.load: a paper was neither read back nor analysed")
    lengths = [len(f[0]) for f in every]
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    matrix = sp.csr_matrix(
        (
            np.concatenate([f[1] for f in every]) if every else np.zeros(0, np.uint8),
            np.concatenate([f[0] for f in every], dtype=np.int32, casting="unsafe")
            if every
            else np.zeros(0, np.int32),
            indptr,
        ),
        shape=(len(paper_ids), model.n_features),
    )
    matrix.has_sorted_indices = True  # stored as the hasher gave them: sorted, summed
    return _analysed(matrix, [f[2] for f in every], [f[3] for f in every])


def _usable(hit: tuple | None, digest: str) -> bool:
    """A stored analysis of this text whose blobs fit together (a damaged row is redone)."""
    if hit is None or hit[0] != digest:
        return False
    _, terms_blob, counts_blob, pairs_text, columns_blob = hit
    pairs = pairs_text.count("\n") + 1 if pairs_text else 0
    return len(terms_blob) == 4 * len(counts_blob) and len(columns_blob) == 12 * pairs


def refresh(
    store: Store,
    model: rank.TextModel | None = None,
    stop: threading.Event | None = None,
    scope: Scope | None = None,
) -> int:
    """Analyse and store every paper of ``scope`` (the papers a run ranks against; without
    it, every stored paper) whose analysis is missing or out of date (what ``fetch`` runs
    after storing papers), and the keys it shares with its copies (rank/twins.py); returns
    how many were analysed. A paper left out (older than
    ``ranking.corpus_papers``) is analysed by the first run that needs it, if one does.

    Like :func:`load`, a failed write (a full disk, a lock held too long) is logged, not
    raised: the papers are stored, and the next run analyses what is missing itself. Setting
    ``stop`` (the daemon is shutting down) ends it after the batch in hand: the first fetch
    after an upgrade may have a whole store to analyse."""
    model = model or rank.TextModel()
    name = analyser(model)
    made = store.paper_terms_made()
    todo = []
    keyed: list[twins.Keyed] = []  # and the keys it shares with its copies (rank/twins.py)
    scope = scope or EVERY_PAPER
    # row by row: a year of abstracts is ~300 MB
    for row in store.iter_corpus(scope.since, scope.keep, keyed=True):
        text = paper_text(row["title"], row["abstract"])
        digest = text_hash(text)
        if made.get(row["paper_id"]) != (name, digest):
            todo.append((row["paper_id"], text, digest))
        fresh = twins.keys_of_row(row, digest)[1]
        if fresh is not None:
            keyed.append(fresh)
    gate = WriteGate()  # a locked database: one busy wait for the analyses and keys, not two
    analysed = 0
    if todo:
        ids, texts, hashes = (list(column) for column in zip(*todo, strict=True))
        analysed = len(_analyse_and_store(store, model, name, ids, texts, hashes, stop, gate))
    twins.keep_keys(store, keyed, gate)
    return analysed


def _analyse_and_store(
    store: Store,
    model: rank.TextModel,
    name: str,
    paper_ids: list[str],
    texts: list[str],
    hashes: list[str],
    stop: threading.Event | None = None,
    gate: WriteGate | None = None,
) -> list[tuple[np.ndarray, np.ndarray, str, np.ndarray]]:
    """Analyse these papers batch by batch and store each batch; returns per paper (term
    columns, counts, pairs, pair columns) as stored. A failed write is logged and the analyses
    are returned anyway: they are a cache, and the caller can rank without it."""
    out: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]] = []
    writes = CacheWrites("analysed text", len(texts), gate=gate)
    for start, end in batch_bounds(len(texts), BATCH, stop):
        batch = analyse(model, texts[start:end])
        rows = []
        for j in range(batch.counts.shape[0]):
            lo, hi = batch.counts.indptr[j], batch.counts.indptr[j + 1]
            cols = batch.counts.indices[lo:hi].astype(np.uint32)
            counts = np.minimum(batch.counts.data[lo:hi], MAX_COUNT).astype(np.uint8)
            columns = batch.columns(j).astype(np.uint32)
            out.append((cols, counts, batch.pair_texts[j], columns))
            rows.append(
                {
                    "paper_id": paper_ids[start + j],
                    "analyser": name,
                    "text_hash": hashes[start + j],
                    "terms": cols.tobytes(),
                    "counts": counts.tobytes(),
                    "pairs": batch.pair_texts[j],
                    "pair_columns": columns.tobytes(),
                }
            )
        writes.write(partial(store.set_paper_terms, rows), start)
    return out
