"""Each paper's text analysed once, when it is stored, not on every run.

Every run ranks against every stored paper: IDF is fitted on all of them and every profile lives
in their space. Hashing all their abstracts again on each run cost O(store) per run (~2 s for
7,000 papers on two cores; a year of arXiv is tens of thousands), and finding the word pairs a
reason may name cost another 0.5 ms per candidate. Neither depends on the other papers,
so both are kept in the ``paper_terms`` table beside the paper: the hashed term columns and
counts, and the word pairs with their columns. What does depend on the corpus (IDF, which pairs
are specific enough to name a paper) is still worked out per run, from these.

An analysis is reused only while the paper's text (its hash) and the analyser (:data:`ANALYSER`:
the vectorizer's settings and stop words, and this format) are unchanged; anything else is
analysed again and stored, so an upgrade or an edited abstract never ranks on stale terms.
``fetch`` analyses the papers it stored (:func:`refresh`); a run that finds papers without an
analysis (stored by an older paperwire, or by ``library import``) analyses them itself.
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse as sp
import sklearn

from ..paper import paper_text, text_hash
from ..store import Store
from . import core as rank
from . import topics
from .batches import CacheWrites, batch_bounds
from .paper_phrases import PAIRS_VERSION, pair_columns, phrase_pairs
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
    again. That is the vectorizer's settings and stop words, scikit-learn's version (its
    tokenizer) and Python's Unicode tables (what ``\\w`` matches), the word-pair rules
    (``PAIRS_VERSION``, ``topics.RULES_VERSION``) and this format."""
    v = model.vectorizer
    settings = repr(
        (FORMAT, PAIRS_VERSION, topics.RULES_VERSION, sklearn.__version__, unicodedata.unidata_version,
         v.n_features, v.ngram_range, v.token_pattern, v.lowercase, v.strip_accents,
         sorted(model.stop_words))
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

    counts: sp.csr_matrix  # raw term counts, float32, sorted columns (what the vectorizer gives)
    pair_texts: list[str]  # per paper, its word pairs as written, "\n"-joined (phrase_pairs)
    pair_columns: np.ndarray  # (all pairs × 3) columns (pair_columns), paper after paper
    pair_starts: np.ndarray  # paper i's pairs are rows pair_starts[i] : pair_starts[i + 1]

    def pairs(self, i: int) -> list[str]:
        return self.pair_texts[i].split("\n") if self.pair_texts[i] else []

    def columns(self, i: int) -> np.ndarray:
        return self.pair_columns[self.pair_starts[i] : self.pair_starts[i + 1]]


def analyse(model: rank.TextModel, texts: list[str]) -> Analysed:
    """Analyse texts afresh."""
    counts = model.vectorizer.transform(texts) if texts else _empty(model, 0)
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
    store: Store, model: rank.TextModel, paper_ids: list[str], texts: Sequence[str]
) -> Analysed:
    """The analyses of these papers (rows in the given order): the stored ones where they are
    up to date, the rest analysed now and stored for the next run.

    Storing them is a cache write: if it fails (a read-only database, a lock held past the busy
    timeout), the run goes on with what it analysed and says so in the log."""
    name = analyser(model)
    stored = store.paper_terms(name)
    hashes = hashes_of(texts)
    todo = [i for i, (p, h) in enumerate(zip(paper_ids, hashes, strict=True))
            if not _usable(stored.get(p), h)]  # fmt: skip
    fresh: Iterator[tuple[np.ndarray, np.ndarray, str, np.ndarray]] = iter(())
    if todo:
        made = _analyse_and_store(store, model, name, [paper_ids[i] for i in todo],
                                  texts_at(texts, todo), [hashes[i] for i in todo])  # fmt: skip
        fresh = iter(made)
    done = set(todo)
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    lengths: list[int] = []
    pair_texts: list[str] = []
    pair_cols: list[np.ndarray] = []
    for i, paper_id in enumerate(paper_ids):
        if i in done:
            cols, counts, written, columns = next(fresh)
        else:
            _, terms_blob, counts_blob, written, columns_blob = stored.pop(paper_id)
            cols = np.frombuffer(terms_blob, dtype=np.uint32)
            counts = np.frombuffer(counts_blob, dtype=np.uint8)
            columns = np.frombuffer(columns_blob, dtype=np.uint32).reshape(-1, 3)
        indices.append(cols)
        data.append(counts)
        lengths.append(len(cols))
        pair_texts.append(written)
        pair_cols.append(columns)
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    matrix = sp.csr_matrix(
        (
            np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
            np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
            indptr,
        ),
        shape=(len(paper_ids), model.n_features),
    )
    matrix.has_sorted_indices = True  # stored as the vectorizer gave them: sorted, summed
    return _analysed(matrix, pair_texts, pair_cols)


def _usable(hit: tuple | None, digest: str) -> bool:
    """A stored analysis of this text whose blobs fit together (a damaged row is redone)."""
    if hit is None or hit[0] != digest:
        return False
    _, terms_blob, counts_blob, pairs_text, columns_blob = hit
    pairs = pairs_text.count("\n") + 1 if pairs_text else 0
    return len(terms_blob) == 4 * len(counts_blob) and len(columns_blob) == 12 * pairs


def refresh(
    store: Store, model: rank.TextModel | None = None, stop: threading.Event | None = None
) -> int:
    """Analyse and store every stored paper whose analysis is missing or out of date (what
    ``fetch`` runs after storing papers); returns how many were analysed.

    Like :func:`load`, a failed write (a full disk, a lock held too long) is logged, not
    raised: the papers are stored, and the next run analyses what is missing itself. Setting
    ``stop`` (the daemon is shutting down) ends it after the batch in hand: the first fetch
    after an upgrade may have a whole store to analyse."""
    model = model or rank.TextModel()
    name = analyser(model)
    made = store.paper_terms_made()
    todo = []
    for row in store.iter_corpus():  # row by row: a year of abstracts is ~300 MB
        text = paper_text(row["title"], row["abstract"])
        digest = text_hash(text)
        if made.get(row["paper_id"]) != (name, digest):
            todo.append((row["paper_id"], text, digest))
    if todo:
        ids, texts, hashes = (list(column) for column in zip(*todo, strict=True))
        return len(_analyse_and_store(store, model, name, ids, texts, hashes, stop))
    return 0


def _analyse_and_store(
    store: Store,
    model: rank.TextModel,
    name: str,
    paper_ids: list[str],
    texts: list[str],
    hashes: list[str],
    stop: threading.Event | None = None,
) -> list[tuple[np.ndarray, np.ndarray, str, np.ndarray]]:
    """Analyse these papers batch by batch and store each batch; returns per paper (term
    columns, counts, pairs, pair columns) as stored. A failed write is logged and the analyses
    are returned anyway: they are a cache, and the caller can rank without it."""
    out: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]] = []
    writes = CacheWrites("analysed text", len(texts))
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


def _empty(model: rank.TextModel, n: int) -> sp.csr_matrix:
    return sp.csr_matrix((n, model.n_features), dtype=np.float32)
