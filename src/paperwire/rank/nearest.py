"""Each candidate's nearest papers in the corpus, and how many of them a reader has.

The other terms ask how close a paper is to the reader's papers. This one asks the paper: of
the ``k`` stored papers nearest to it, how much are the reader's own (seeds and 👍)? A paper in
a crowded field is near many papers, few of them the reader's; a paper whose own nearest
papers are the reader's is squarely in their field, however crowded. A k-nearest-neighbour
vote, from the candidate's side, in two views of the papers: the encoder's (centred cosines)
and TF-IDF's. Through compose, on all 1,949 CiteULike-t tuning readers, recall@10 0.0960 →
0.1060; arxiv-frontpage's halves, thumbs-up only, AUC 0.852 → 0.867 (benchmarks/README.md,
"The candidate's nearest papers"). With the encoder off, TF-IDF's view votes alone
(:meth:`NearestPapers.of_terms`): 0.0827 → 0.0945 ("... with the encoder off").

Each candidate's lists are found once per corpus (the session keeps the corpus, and with it
this, until a fetch or a vote changes it): a product with every corpus paper, ``_BLOCK``
candidates at a time, keeping the ``k`` best.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from .semantic import Calibration, one_blas_thread

NEAREST = 20  # papers each candidate's vote is taken over
# candidates a product holds at once: 256 × 60,000 corpus papers is 61 MB of float32 a thread
_BLOCK = 256
THREADS = 2  # as many as compose's scoring threads: the run's parallelism on two cores


def nearest(
    products: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    n: int,
    k: int = NEAREST,
    threads: int = THREADS,
) -> tuple[np.ndarray, np.ndarray]:
    """For the corpus rows ``rows``, the ``k`` others of the corpus's ``n`` papers with the
    largest positive ``products(block)`` (a block of rows' similarities to every paper, a
    dense ``len(block)`` × ``n`` array; :func:`top_positive`), and their weights: the
    similarities as shares of each row's sum. Ties go to the lower row, on every NumPy.
    Blocks are worked out on ``threads`` threads, one BLAS thread each (the dense products
    and the selections release the GIL: the encoder's lists in about half the time of one
    thread, measured on 8,192 rows)."""
    k = min(k, n - 1)
    idx = np.zeros((len(rows), max(k, 0)), dtype=np.int64)
    weights = np.zeros((len(rows), max(k, 0)), dtype=np.float32)
    if k <= 0 or not len(rows):
        return idx, weights

    def block_of(start: int) -> None:
        block = rows[start : start + _BLOCK]
        sims = np.asarray(products(block), dtype=np.float32)
        sims[np.arange(len(block)), block] = -np.inf  # a paper is not its own neighbour
        cols, values = top_positive(sims, k)  # NaN: never a neighbour (compares false)
        idx[start : start + len(block)] = cols
        total = values.sum(axis=1, keepdims=True)
        weights[start : start + len(block)] = np.divide(
            values, total, out=np.zeros_like(values), where=total > 0
        )

    starts = list(range(0, len(rows), _BLOCK))
    # one BLAS thread for every product, however many blocks: a product's last bits follow
    # how BLAS splits it between threads (where a row falls in a kernel's tile), and a near
    # tie between two neighbours must not follow the machine's or the process's BLAS setting
    with one_blas_thread():
        if threads <= 1 or len(starts) == 1:
            for start in starts:
                block_of(start)
            return idx, weights
        with ThreadPoolExecutor(threads, thread_name_prefix="nearest") as pool:
            list(pool.map(block_of, starts))  # list: a block's error is raised here
    return idx, weights


def votes(rows: np.ndarray, min_papers: int) -> bool:
    """Whether a reader with these labelled papers (corpus rows) gets the vote: ``min_papers``
    distinct papers at least (a seed also 👍 is one paper). From one or two, which candidates
    happen to have them among their nearest is a lottery, and standardised per reader it
    outweighed the rest."""
    return len(np.unique(rows)) >= min_papers


def _terms_view(tfidf: sp.csr_matrix) -> View:
    """TF-IDF's similarities of a block of rows with every paper (unit rows: cosines)."""
    # rows with their terms in column order: what makes the sparse product's sums the dense
    # route's (the corpus's are; a copy otherwise)
    tfidf = tfidf if tfidf.has_sorted_indices else tfidf.sorted_indices()
    columns = tfidf.T.tocsr()
    return lambda block: (tfidf[block] @ columns).toarray()


def top_positive(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``sims``, its ``k`` largest positive entries, best first and equal ones by
    column (every NumPy alike), as (columns, values); a row with fewer has zeros after them
    (column 0, value 0: no weight). A paper no more similar than 0 counts for nothing in a
    vote, so only positive entries are ranked, and only those at or above the ``k``-th
    largest of every eighth column, which no entry of the top ``k`` is below: ~160 entries a
    row, not 26,000. (A partition of the whole row took six times as long where most entries
    are 0, as TF-IDF's are: 190 ms for 256 rows.)"""
    sims = np.ascontiguousarray(sims)
    rows, n = sims.shape
    cols = np.zeros((rows, k), dtype=np.int64)
    values = np.zeros((rows, k), dtype=np.float32)
    sub = np.nan_to_num(sims[:, ::8], nan=-np.inf)  # a copy, NaN never above the bar
    bar = np.zeros(rows, dtype=sims.dtype)
    if sub.shape[1] >= k:
        sub.partition(sub.shape[1] - k, axis=1)
        bar = sub[:, sub.shape[1] - k]
    # at or above the smallest positive number is above 0: one comparison, not two; NaN
    # compares false. Positions found in the flat array: a 2-D nonzero is twice the time
    tiny = np.nextafter(sims.dtype.type(0), sims.dtype.type(1))
    flat = np.flatnonzero(sims >= np.maximum(bar, tiny)[:, None])
    r, c = np.divmod(flat, n)
    # +inf (a broken vector) counts as the largest number k of which still sum in float32:
    # a neighbour's weight is then a share, never inf / inf (NaN, which a vote would spread
    # over a reader's whole row)
    v = np.minimum(sims.reshape(-1)[flat], np.finfo(np.float32).max / k)
    order = np.lexsort((c, -v, r))  # by row, then best first, then by column
    r, c, v = r[order], c[order], v[order]
    first = np.searchsorted(r, np.arange(rows))
    place = np.arange(len(r)) - first[r]
    keep = place < k
    cols[r[keep], place[keep]] = c[keep]
    values[r[keep], place[keep]] = v[keep]
    return cols, values


View = Callable[[np.ndarray], np.ndarray]


class NearestPapers:
    """Each corpus row's nearest papers in the views ``views()`` makes (functions from a block
    of rows to its similarities with every paper), found for the rows a run asks about and
    kept. The views are made for each :meth:`prepare` that finds something and let go after
    it: what they hold (the corpus's centred vectors, TF-IDF's columns: ~160 MB at 60,000
    papers) is not kept between runs for lists that are.

    A vote is standardised over ``reference``, a fixed sample of the corpus (the calibration's,
    which the other terms are standardised on), not over a run's candidates: those depend on
    who else is due (a weekly reader widens the window), and a reader's digest must not."""

    def __init__(
        self,
        views: Callable[[], list[View]],
        count: int,
        n: int,
        reference: np.ndarray,
        k: int = NEAREST,
    ):
        self.views = views
        self.n = n
        self.k = min(k, max(n - 1, 0))
        self.reference = np.asarray(reference, dtype=np.int64)
        self._idx = [np.zeros((n, self.k), dtype=np.int64) for _ in range(count)]
        self._weights = [np.zeros((n, self.k), dtype=np.float32) for _ in range(count)]
        self._found = np.zeros(n, dtype=bool)
        self._finding = threading.Lock()  # two scoring threads may ask at once: one finds
        # rows' bytes -> their graphs (:meth:`_graphs`): the reference's, and the last run's
        self._kept: dict[bytes, list[sp.csr_matrix]] = {}

    @classmethod
    def of_corpus(
        cls, vectors: np.ndarray, tfidf: sp.csr_matrix, cal: Calibration, k: int = NEAREST
    ) -> NearestPapers:
        """A corpus's two views: its encoder ``vectors`` centred as ``cal`` centres them,
        and its ``tfidf`` rows (unit rows: their products are cosines); the vote standardised
        over ``cal``'s sample. TF-IDF's products are scipy's sparse product made dense: a
        paper has ~35 terms, and a block's result is ~15 % filled (26,000 papers: 51 ms for
        256 rows, where the dense route over the block's terms that scores readers took 164
        ms). Both sum a pair's shared terms in column order in float32: the same numbers, bit
        for bit (13 blocks across the 20,000-reader store, checked; its digests the same)."""

        def views() -> list[View]:
            centred = cal.centred(vectors)
            return [lambda block: centred[block] @ centred.T, _terms_view(tfidf)]

        return cls(views, 2, len(vectors), cal.rows, k)

    @classmethod
    def of_terms(
        cls, tfidf: sp.csr_matrix, reference: np.ndarray, k: int = NEAREST
    ) -> NearestPapers:
        """TF-IDF's view alone (``ranking.embeddings: off``), the vote standardised over
        ``reference`` (the rows TF-IDF's score spreads are measured on)."""
        return cls(lambda: [_terms_view(tfidf)], 1, tfidf.shape[0], reference, k)

    def prepare(self, rows: np.ndarray) -> None:
        """Find the lists of these rows, and of the reference, that are not found yet."""
        with self._finding:
            todo = np.unique(np.r_[np.asarray(rows, dtype=np.int64), self.reference])
            todo = todo[~self._found[todo]]
            if not len(todo) or not self.k:
                return
            views = self.views()
            for view, idx, weights in zip(views, self._idx, self._weights, strict=True):
                idx[todo], weights[todo] = nearest(view, todo, self.n, self.k)
            self._found[todo] = True

    def votes(
        self, rows: np.ndarray, labelled: list[np.ndarray], shares: list[np.ndarray]
    ) -> np.ndarray:
        """(readers × candidates) each candidate's vote: the shares of its nearest papers that
        are each reader's ``labelled`` rows (weighted by ``shares``, e.g. decayed votes), in
        standard deviations above the reader's mean vote over the reference, summed over the
        views. A reader with no labelled paper, or none near a reference paper, gets 0."""
        out = np.zeros((len(labelled), len(rows)), dtype=np.float32)
        self.add_votes(out, rows, labelled, shares, np.ones(len(labelled), dtype=np.float32))
        return out

    def add_votes(
        self,
        total: np.ndarray,
        rows: np.ndarray,
        labelled: list[np.ndarray],
        shares: list[np.ndarray],
        weights: np.ndarray,
    ) -> None:
        """:meth:`votes` times each reader's weight, added to ``total`` in place: a vote is
        sparse (a reader's papers are among the nearest of few papers), so its mean and spread
        over the reference come from its entries, and the dense scores are passed over once."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows) or not self.k or not len(self.reference):
            return
        if not any(len(lab) for lab, w in zip(labelled, weights, strict=True) if w):
            return
        mine = sp.csr_matrix(
            (
                np.concatenate(shares).astype(np.float32),
                np.concatenate(labelled).astype(np.int64),
                np.r_[0, np.cumsum([len(lab) for lab in labelled])],
            ),
            shape=(len(labelled), self.n),
        )
        readers = len(labelled)
        offset = np.zeros(readers, dtype=np.float64)
        pairs = zip(self._graphs(self.reference), self._graphs(rows), strict=True)
        for reference, graph in pairs:
            known = (mine @ reference).tocsr()  # readers × reference papers, mostly empty
            values = known.data.astype(np.float64)
            owner = np.repeat(np.arange(readers), np.diff(known.indptr))
            mean = np.bincount(owner, values, readers) / len(self.reference)
            square = np.bincount(owner, values * values, readers) / len(self.reference)
            spread = np.sqrt(np.maximum(square - mean * mean, 0.0))
            scale = np.divide(weights, spread, out=np.zeros_like(spread), where=spread > 0)
            offset += mean * scale
            raw = (mine @ graph).tocsr()  # readers × candidates
            owner = np.repeat(np.arange(readers), np.diff(raw.indptr))
            add = (raw.data.astype(np.float64) * scale[owner]).astype(total.dtype)
            # a sparse product holds each (reader, candidate) once, so one indexed add does
            # what np.add.at does (19 against 1.6 ms for 256,000 entries), on the flat view
            if total.flags.c_contiguous:
                total.reshape(-1)[owner * total.shape[1] + raw.indices] += add
            else:
                np.add.at(total, (owner, raw.indices), add)
        total -= offset.astype(total.dtype)[:, None]

    def _graphs(self, rows: np.ndarray) -> list[sp.csr_matrix]:
        """Per view, (corpus × ``rows``) each row's nearest papers and their weights: made
        once for the reference and for a run's candidates, which every chunk shares."""
        key = rows.tobytes()
        with self._finding:
            kept = self._kept.get(key)
        if kept is not None:
            return kept
        self.prepare(rows)
        cols = np.repeat(np.arange(len(rows)), self.k)
        graphs = [
            sp.csr_matrix(
                (weights[rows].ravel(), (idx[rows].ravel(), cols)), shape=(self.n, len(rows))
            )
            for idx, weights in zip(self._idx, self._weights, strict=True)
        ]
        with self._finding:
            reference = self._kept.get(self.reference.tobytes())
            self._kept = {key: graphs}  # the last run's candidates, and the reference
            if reference is not None:
                self._kept[self.reference.tobytes()] = reference
        return graphs
