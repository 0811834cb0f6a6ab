"""Semantic scores beside TF-IDF: pure functions from embedded signals to a score matrix.

Every subscriber gets the same model, however many are ranked in one run (a deployment ranks
everyone due at 07:30 at once, so a model that only small runs can afford is a model most
readers never get). Two terms, both cheap enough for 20,000 readers in one run:

* a **whitened centroid**: the direction ``Σ⁻¹ (m − μ)``, where ``m`` is the weighted mean of
  the reader's interests text, seed papers and time-decayed thumbs-up (thumbs-down pull the
  other way), ``μ`` the corpus mean and ``Σ`` the corpus covariance, shrunk towards its mean
  variance. It is the linear classifier of the reader's papers against the corpus that a
  shared Gaussian gives in closed form (linear discriminant analysis): one 384 × 384 solve per
  run for everyone, instead of one logistic regression per reader. A reader with only an
  interests text keeps the plain cosine to it (a short query is not an abstract: whitening
  its offset from the corpus mean amplifies noise, measured in benchmarks/README.md);
* a **neighbour contrast**: the mean cosine of a paper to its closest liked papers minus that
  to the closest thumbed-down ones, minus the paper's *density* (its mean cosine to its closest
  corpus papers: a paper in a crowded region is close to some liked paper whatever the reader
  likes). It is what hears a handful of thumbs-down, and a library of several topics, that a
  single direction averages away. It is computed for each reader's shortlist only (the best
  ``shortlist`` candidates by everything else), on one calibration shared by the run.

Each term reads as "standard deviations above this subscriber's average paper", like the
TF-IDF score, and they add: ``total = tfidf + weight × linear + neighbour_weight × contrast``.
Every weight is measured in benchmarks/README.md ("Sentence encoder").

:func:`closest_liked` (with the bars :func:`similar_bars` and :func:`own_bars`) names the liked
or seed paper a pick is closest to in the embedding, for the "like <title> in your library"
reason, and :func:`phrase_bar` says how close to an interest phrase is close in meaning.

Nothing here touches the clock or the store: rank/embedded.py applies these to a store's corpus
and keeps what a run derives from it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from .core import best_columns, decay_factor, earned_shares, vote_ages
from .embed import unit_rows
from .phrases import interest_phrases

if TYPE_CHECKING:
    from .core import Signals
    from .embed import EmbeddingModel

# Corpus papers the covariance and the standardisation are estimated on (a fixed-seed sample):
# the per-run cost stays bounded as the store grows.
BACKGROUND = 5000


@dataclass(frozen=True)
class SemanticWeights:
    """How the embedding profile is built and how much it adds to the TF-IDF score (chosen on
    CiteULike-t tuning readers and arxiv-frontpage's random halves, never on held-out readers:
    benchmarks/README.md, "Sentence encoder")."""

    # Shares beside the TF-IDF score (which counts 1): on 200 CiteULike-t tuning readers,
    # ranking every paper, TF-IDF : whitened centroid : neighbours of 0.4 : 1 : 0.75 gave
    # recall@10 1.18x the recipe's, against 1.00x for TF-IDF alone and 1.01x for the centroid
    # alone (benchmarks/README.md, "Sentence encoder").
    weight: float = 2.5
    neighbour_weight: float = 1.9
    neighbour_weight_with_dislikes: float = 1.9
    neighbours: int = 5
    # the density subtracted inside the contrast, and how many close papers define it
    density_weight: float = 0.0
    density_neighbours: int = 20
    # the covariance shrunk towards its mean variance: 0 is plain LDA, 1 a plain centroid
    shrinkage: float = 0.05
    # candidates per reader the neighbour contrast is computed for
    shortlist: int = 300
    # neighbour cosines after removing the corpus mean (the direction every vector shares)
    centred: bool = True
    interests: float = 1.0
    # the interests text matched phrase by phrase: a paper's best cosine to any one of its
    # phrases, standardised (a text of ten topics averaged into one vector matches none of
    # them well: arxiv-frontpage's cold start, benchmarks/README.md "Interest phrases")
    phrases: float = 2.0
    # the topics a reader does not want (``not_interested``), matched phrase by phrase the same
    # way: a paper closer than average to one of them loses this many of its standard
    # deviations above average (only above: being far from a dislike is no merit), the same
    # weight as the interests' phrases (benchmarks/README.md, "Topics a reader does not want")
    not_interested: float = 2.0
    seeds: float = 1.0
    liked: float = 1.0
    disliked: float = 1.0
    half_life_days: float = 180.0
    # the candidate's own nearest papers, how many of them are the reader's (rank/nearest.py):
    # each view's vote standardised per reader, the encoder's and TF-IDF's summed, this weight.
    # On all 1,949 CiteULike-t tuning readers 0.3 / 0.5 / 0.8 / 1.2 gave recall@10 0.1029 /
    # 0.1056 / 0.1053 / 0.1033 against 0.0960 without; arxiv-frontpage's 40 halves, thumbs-up
    # only, 0.852 without, 0.861 / 0.868 / 0.879 at 0.3 / 0.6 / 1.2 (benchmarks/README.md,
    # "The candidate's nearest papers"); 20 papers, against 10 / 40: 0.1029 / 0.1021 / 0.1019
    nearest: float = 0.6
    nearest_papers: int = 20
    # ... only for a reader with this many seed and 👍 papers: from one or two, which candidates
    # happen to have them among their 20 nearest is a lottery, and standardised per reader it
    # outweighed the rest (a reader with one 👍 on speculative decoding was offered a paper on
    # speculative execution in processors, over one on their interest "pruning tokens")
    nearest_min_papers: int = 5
    # Beside an interests text, what a reader's papers add counts n / (n + prior) of its
    # weight, n their seed and voted papers: each term is standardised per reader, so it was
    # as strong from one paper as from a hundred, and one random honest vote took
    # arxiv-frontpage's reader from AUC 0.823 to 0.732 (0 of 10 draws better than the text
    # alone; learning paid from ~20 votes). The whitened centroid moves every paper's score:
    # its prior is 40. The neighbour contrast and the nearest-papers vote move the papers near
    # the reader's own most: theirs is 10, so a first 👎 still sinks its 5 nearest papers ~12
    # percentile points (4 at 40, 33 unshrunk). One vote 0.821, five 0.818, 20 0.850, 40
    # 0.883, 160 the same as before (benchmarks/README.md, "The first votes"). A reader without
    # an interests text has nothing to shrink towards: their papers count whole.
    evidence_prior: float = 40.0
    neighbour_evidence_prior: float = 10.0


@dataclass
class EmbeddedSignals:
    """One subscriber's signals as vectors: the interests text, then labelled papers."""

    interests: np.ndarray | None  # (dim,), None when there is no interests text
    vectors: np.ndarray  # (n, dim): seed and voted papers
    kinds: np.ndarray  # per row: "seed" | "liked" | "disliked"
    ages: np.ndarray  # per row, days since the vote (0 for seeds)
    corpus_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # (p, dim) unit rows: the interests text's phrases (phrases.interest_phrases); None: none
    phrases: np.ndarray | None = None
    # (q, dim) unit rows: the phrases of the topics the reader does not want; None: none
    avoid: np.ndarray | None = None
    # per row of ``vectors``, its corpus row (empty: not known, e.g. vectors made elsewhere)
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def positives(self) -> int:
        return int(np.isin(self.kinds, ("seed", "liked")).sum())


_KINDS = ("seed", "liked", "disliked")


class _Labelled:
    """A chunk of readers' labelled papers side by side: per reader and kind of paper (seed,
    liked, thumbed-down), their decayed vectors' sum, how many there are, and their mean decay,
    in a few numpy calls for the chunk. Per reader that took a dozen calls on tiny arrays
    (~200 µs, holding the GIL the thread that words the digests needs: 4 s of 20,000 readers'
    run). Each sum adds a kind's papers in the order the reader's signals list them, as a
    reader's own ``sum(axis=0)`` did: the same numbers whoever else is in the chunk."""

    def __init__(self, signals: list[EmbeddedSignals], w: SemanticWeights, dim: int):
        n = len(signals)
        self.sums = np.zeros((n, len(_KINDS), dim), dtype=np.float64)
        self.counts = np.zeros((n, len(_KINDS)), dtype=np.int64)
        self.decays = np.zeros((n, len(_KINDS)), dtype=np.float64)  # each kind's mean decay
        sizes = np.array([len(sig.vectors) for sig in signals], dtype=np.int64)
        ends = np.cumsum(sizes)
        # per reader, where their papers are in ``vectors``, and each paper's kind (a code)
        self.rows = [np.arange(end - size, end) for size, end in zip(sizes, ends, strict=True)]
        self.codes = np.full(int(ends[-1]) if n else 0, len(_KINDS), dtype=np.int64)
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        if not len(self.codes):
            return
        self.vectors = np.concatenate([sig.vectors for sig in signals if len(sig.vectors)])
        kinds = np.concatenate([sig.kinds for sig in signals if len(sig.vectors)])
        for code, kind in enumerate(_KINDS):
            self.codes[kinds == kind] = code
        owner = np.repeat(np.arange(n), sizes)
        order = np.lexsort((self.codes, owner))  # stable: each kind's papers in their order
        order = order[self.codes[order] < len(_KINDS)]
        ages = np.concatenate([sig.ages for sig in signals if len(sig.vectors)])
        decay = decay_factor(ages, w.half_life_days)
        decay = decay[order]
        group = owner[order] * len(_KINDS) + self.codes[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(order) else order
        ends_of = np.r_[starts[1:], len(order)].astype(np.int64)
        which = group[starts]
        # each group's decayed vectors summed by a sparse product, which adds each decay ×
        # vector in turn as sum(axis=0) does (the same bits), a third of numpy's time
        weights = sp.csr_matrix(
            (decay, order, np.r_[starts, len(order)]), shape=(len(starts), len(self.vectors))
        )
        self.sums.reshape(-1, dim)[which] = weights @ self.vectors
        self.counts.reshape(-1)[which] = ends_of - starts
        # each mean decay as ``ndarray.mean`` sums it (pairwise), one slice a kind
        means = [
            float(np.add.reduce(decay[a:b])) / (b - a)
            for a, b in zip(starts.tolist(), ends_of.tolist(), strict=True)
        ]
        self.decays.reshape(-1)[which] = means

    def means(
        self,
        rows: np.ndarray,
        signals: list[EmbeddedSignals],
        w: SemanticWeights,
        sides: tuple[str, ...],
        papers_share: np.ndarray | None = None,
    ) -> np.ndarray:
        """(rows × dim) float64: for each of these readers, the weighted mean of each kind of
        signal in ``sides`` (each kind averaged first, so a library of 300 papers does not
        drown the interests text): the interests text's share, then each kind's, added in
        that order, element by element, as for a reader alone. ``papers_share``: per row, what
        share of their weights the papers' kinds have earned (:func:`evidence_shares`; 1:
        all)."""
        out = np.zeros((len(rows), self.sums.shape[2]), dtype=np.float64)
        if "interests" in sides:
            wrote = [k for k, row in enumerate(rows.tolist()) if signals[row].interests is not None]
            if wrote:
                texts = np.stack([signals[row].interests for row in rows[wrote].tolist()])
                out[wrote] += w.interests * texts
        for code, (kind, weight) in enumerate(zip(_KINDS, _weights(w), strict=True)):
            has = self.counts[rows, code] > 0
            if kind in sides and has.any():
                some = rows[has]
                part = weight * self.sums[some, code] / self.counts[some, code][:, None]
                if papers_share is not None:
                    part *= papers_share[has][:, None]
                out[has] += part
        return out

    def directions(
        self,
        signals: list[EmbeddedSignals],
        w: SemanticWeights,
        cal: Calibration,
        left: list[dict[str, tuple[float, float]]],
        papers_share: np.ndarray | None = None,
    ) -> np.ndarray:
        """Every reader's whitened centroid, ``Σ⁻¹ (positives − μ) − f Σ⁻¹ (thumbs-down − μ)``
        (each side's weighted mean, ``f`` how much the thumbs-down have faded beside the
        positives: :func:`fades`), or the plain centroid for an interests text alone (none when
        its phrases are matched one by one instead: :func:`phrase_match`). The whitening is one
        product a side for the chunk, in blocks of ``_SCORE_ROWS`` readers padded with zero
        rows, as :meth:`SemanticProfiles.score` multiplies (a reader's row the same sums
        whoever shares its block, but for the last bits of its place in it: float64's, far
        below the float32 the direction is kept in); per reader it was a matrix-vector product,
        a norm and a dozen calls holding the GIL (~60 µs). ``left``: each reader's
        :meth:`left`; ``papers_share``: per reader, the share of their papers' weights inside
        the centroid (:func:`evidence_shares`; None: whole)."""
        dim = self.sums.shape[2]
        out = np.zeros((len(signals), dim), dtype=np.float32)
        papers = np.array([len(sig.vectors) > 0 for sig in signals], dtype=bool)
        for row in np.flatnonzero(~papers).tolist():
            if not _phrased(signals[row], w):
                out[row] = centroid(signals[row], w)
        rows = np.flatnonzero(papers)
        if not len(rows):
            return out
        share = None if papers_share is None else papers_share[rows]
        pos = self.means(rows, signals, w, POSITIVE, share)
        neg = self.means(rows, signals, w, ("disliked",))
        whitened = _whitened(pos, cal)
        down = np.flatnonzero(neg.any(axis=1))
        if len(down):
            # each side is a unit vector here, which would undo the thumbs-downs' decay: an old
            # 👎 would pull as hard as today's, beside an interests text edited today, forever
            factor = []
            for k in down.tolist():
                mine = left[rows[k]]
                up, gone = fades(mine, POSITIVE), fades(mine, ("disliked",))
                fade = gone / up if up > 0 else 1.0
                factor.append(fade if share is None else fade * share[k])
            whitened[down] -= np.array(factor)[:, None] * _whitened(neg[down], cal)
        out[rows] = whitened.astype(np.float32)
        return out

    def left(
        self, row: int, sig: EmbeddedSignals, w: SemanticWeights
    ) -> dict[str, tuple[float, float]]:
        """Per kind of signal the reader has: its weight, and the share of it left at the votes'
        ages (the mean decay; 1 for the interests text and seed papers, which never age)."""
        out = {}
        if sig.interests is not None:
            out["interests"] = (w.interests, 1.0)
        for code, (kind, weight) in enumerate(zip(_KINDS, _weights(w), strict=True)):
            if self.counts[row, code]:
                out[kind] = (weight, float(self.decays[row, code]))
        return out

    def sides(self, cal: Calibration) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per reader, their liked (and seed) papers and their thumbed-down ones, centred
        (:meth:`Calibration.centred`), each in the order of their signals."""
        labelled = cal.centred(self.vectors)
        dim = labelled.shape[1]
        empty = np.zeros((0, dim), dtype=np.float32)
        liked, disliked = [], []
        for rows in self.rows:
            codes = self.codes[rows]
            up = rows[codes <= 1]
            down = rows[codes == 2]
            liked.append(labelled[up] if len(up) else empty)
            disliked.append(labelled[down] if len(down) else empty)
        return liked, disliked


def _weights(w: SemanticWeights) -> tuple[float, float, float]:
    return w.seeds, w.liked, w.disliked


def _mean_of(sig: EmbeddedSignals, w: SemanticWeights, sides: tuple[str, ...]) -> np.ndarray:
    """:meth:`_Labelled.means` for one reader."""
    dim = sig.vectors.shape[1] if sig.interests is None else len(sig.interests)
    return _Labelled([sig], w, dim).means(np.zeros(1, dtype=np.int64), [sig], w, sides)[0]


def centroid(sig: EmbeddedSignals, w: SemanticWeights) -> np.ndarray:
    """Weighted mean of each kind of signal (thumbs-down subtracted), L2-normalised."""
    out = _mean_of(sig, w, ("interests", "seed", "liked")) - _mean_of(sig, w, ("disliked",))
    norm = np.linalg.norm(out)
    return (out / norm if norm > 0 else out).astype(np.float32)


def whitening(sample: np.ndarray, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """The sample's mean and the inverse of its covariance shrunk towards its mean variance
    (Ledoit-Wolf's target; ``shrinkage`` fixed, measured): one solve per run."""
    mean = sample.mean(axis=0).astype(np.float64)
    if len(sample) < 2:
        return mean, np.eye(sample.shape[1])
    cov = np.cov(sample.T.astype(np.float64))
    target = np.trace(cov) / cov.shape[0]
    shrunk = (1 - shrinkage) * cov + shrinkage * target * np.eye(cov.shape[0])
    # a pseudo-inverse: a tiny or degenerate store (every paper alike) has a singular one
    return mean, np.linalg.pinv(shrunk, hermitian=True)


POSITIVE = ("interests", "seed", "liked")
EVERY_SIGNAL = ("interests", "seed", "liked", "disliked")


def fades(left: dict[str, tuple[float, float]], sides: tuple[str, ...]) -> float:
    """How much of these kinds' weight is left (:meth:`_Labelled.left`), as a share of what it was
    when they were new: 1 when all are new, 0 for none."""
    now = sum(weight * share for kind, (weight, share) in left.items() if kind in sides)
    fresh = sum(weight for kind, (weight, _) in left.items() if kind in sides)
    return now / fresh if fresh else 0.0


def _whitened(means: np.ndarray, cal: Calibration) -> np.ndarray:
    """``Σ⁻¹ (m / |m| − μ)`` for each row ``m`` of ``means`` (zero rows stay zero), float64,
    in blocks of ``_SCORE_ROWS`` rows padded with zero rows: every product the same shape."""
    norms = np.sqrt(np.einsum("ij,ij->i", means, means))
    centred = means / np.where(norms > 0, norms, 1.0)[:, None] - cal.mean
    out = np.zeros_like(means)
    block = np.zeros((_SCORE_ROWS, means.shape[1]), dtype=np.float64)
    for start in range(0, len(means), _SCORE_ROWS):
        part = centred[start : start + _SCORE_ROWS]
        block[: len(part)] = part
        block[len(part) :] = 0
        out[start : start + len(part)] = (block @ cal.precision.T)[: len(part)]
    out[norms == 0] = 0
    return out


# Papers whose cosines are computed at once (a 2,000 × 5,000 block: 40 MB).
_BLOCK = 2000


def top_k_mean(cosines: np.ndarray, k: int) -> np.ndarray:
    """Per row, the mean of its ``k`` largest values (all of them when there are fewer)."""
    k = min(k, cosines.shape[1])
    if k <= 0:
        return np.zeros(len(cosines), dtype=np.float32)
    return np.partition(cosines, -k, axis=1)[:, -k:].mean(axis=1)


def density(papers: np.ndarray, sample: np.ndarray, k: int) -> np.ndarray:
    """Each paper's mean cosine to its ``k`` closest papers of the sample, itself (or an exact
    duplicate: cosine 1) left out. Both are unit rows."""
    out = np.zeros(len(papers), dtype=np.float32)
    k = max(min(k, len(sample) - 1), 1)
    for start in range(0, len(papers), _BLOCK):
        cosines = papers[start : start + _BLOCK] @ sample.T
        cosines[cosines > 0.9999] = -1.0  # the least a cosine can be
        out[start : start + _BLOCK] = top_k_mean(cosines, k)
    return out


# Papers of the corpus sample the phrase match is standardised on.
PHRASE_SAMPLE = 1000
# Readers whose phrases are compared with the papers at once (~4 phrases each: a 2,000 × 26,000
# float64 block is 400 MB, so 128 readers keep it near 100 MB).
_PHRASE_READERS = 128


def phrase_match(phrases: list[np.ndarray | None], papers: np.ndarray) -> np.ndarray:
    """Per reader, each paper's largest cosine to one of the reader's phrases (0 for a reader
    with none). In float64, like the linear scores: the same whoever else is due."""
    out = np.zeros((len(phrases), len(papers)), dtype=np.float32)
    if all(p is None for p in phrases):
        return out  # the common case without interests texts: no float64 copy of the papers
    papers64 = papers.T.astype(np.float64)
    for start in range(0, len(phrases), _PHRASE_READERS):
        block = [
            (row, p)
            for row, p in enumerate(phrases[start : start + _PHRASE_READERS], start)
            if p is not None and len(p)
        ]
        if not block:
            continue
        cosines = np.vstack([p for _, p in block]).astype(np.float64) @ papers64
        at = 0
        for row, p in block:
            out[row] = cosines[at : at + len(p)].max(axis=0)
            at += len(p)
    return out


def _standardised_match(
    phrases: list[np.ndarray | None], papers: np.ndarray, offset: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """:func:`phrase_match` less each reader's ``offset``, over their ``scale``."""
    out = phrase_match(phrases, papers)
    out -= offset[:, None]
    out /= scale[:, None]
    return out


@dataclass
class Calibration:
    """What the run's readers share: the corpus mean, the whitening, the sample the linear
    scores are standardised on, and how the neighbour contrast and the density spread."""

    mean: np.ndarray  # (dim,) float64
    precision: np.ndarray  # (dim, dim) float64
    sample: np.ndarray  # (n, dim) the corpus sample (unit rows)
    centre: np.ndarray | None  # subtracted before neighbour cosines (None: raw cosines)
    centred_sample: np.ndarray
    near_offset: float = 0.0
    near_scale: float = 1.0
    # closest-papers count -> (mean, spread) of the sample's own densities, made when first
    # asked for: the shipped weights subtract no density, and it costs a sample × sample product
    _density_spreads: dict[int, tuple[float, float]] = field(default_factory=dict)
    # the sample's mean and (population) covariance in float64, made when first asked for
    _moments: tuple[np.ndarray, np.ndarray] | None = None
    # the sample's rows of the corpus (the nearest-papers vote is standardised over them)
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def spread_of(self, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per direction d, the mean and spread of ``x · d`` over the sample's papers x (1 for
        no spread), in closed form: ``d · mean`` and ``√(dᵀ C d)``, C the sample's covariance,
        one 384 × 384 form a reader instead of a product with 5,000 papers."""
        if not len(self.sample):
            return np.zeros(len(directions), np.float32), np.ones(len(directions), np.float32)
        if self._moments is None:
            sample = self.sample.astype(np.float64)
            self._moments = (
                sample.mean(axis=0),
                np.cov(sample.T, bias=True).reshape(sample.shape[1], sample.shape[1]),
            )
        mean, cov = self._moments
        d = directions.astype(np.float64)
        variance = ((d @ cov) * d).sum(axis=1) if len(self.sample) > 1 else 0 * d[:, 0]
        spread = np.sqrt(np.maximum(variance, 0.0))
        scale = np.where(spread > 0, spread, 1.0)
        return (d @ mean).astype(np.float32), scale.astype(np.float32)

    def centred(self, papers: np.ndarray) -> np.ndarray:
        """Papers as the neighbours compare them (the corpus mean removed, unit rows)."""
        return papers if self.centre is None else unit_rows(papers - self.centre)

    def density_spread(self, k: int) -> tuple[float, float]:
        """Mean and spread of the sample papers' densities (:func:`density`) at ``k``."""
        if k not in self._density_spreads:
            ref = density(self.centred_sample, self.centred_sample, k)
            self._density_spreads[k] = (float(ref.mean()), float(ref.std()) or 1.0)
        return self._density_spreads[k]


def calibrate(corpus: np.ndarray, w: SemanticWeights) -> Calibration:
    """One calibration per run and corpus (what ``EmbeddedCorpus.calibration`` keeps)."""
    rng = np.random.default_rng(0)
    rows = (
        np.arange(len(corpus))
        if len(corpus) <= BACKGROUND
        else np.sort(rng.choice(len(corpus), BACKGROUND, replace=False))
    )
    sample = corpus[rows]
    mean, precision = whitening(sample, w.shrinkage)
    centre = sample.mean(axis=0).astype(np.float32) if w.centred and len(sample) else None
    cal = Calibration(mean, precision, sample, centre, sample, rows=rows)
    cal.centred_sample = cal.centred(sample)
    if len(sample) >= 3:
        # the contrast's spread: a paper's mean cosine to its k closest of random "libraries"
        # of 20 papers, over 20 such libraries (one scale for everyone: per reader it would
        # cost a product with the sample each)
        probe = cal.centred_sample[rng.choice(len(sample), min(len(sample), 1000), replace=False)]
        raws = [
            top_k_mean(probe @ cal.centred_sample[rng.choice(len(sample), 20)].T, w.neighbours)
            for _ in range(20)
        ]
        values = np.concatenate(raws)
        cal.near_offset, cal.near_scale = float(values.mean()), float(values.std()) or 1.0
    return cal


# Readers whose linear scores are one product (128 of 26,000 papers: 13 MB), a multiple of
# the usual BLAS kernels' tile heights, so that no row of it is in a partial tile.
_SCORE_ROWS = 128


@dataclass
class SemanticProfiles:
    """Per subscriber a direction and its standardisation, score = (x·d − offset) / scale; and
    the labelled papers (corpus rows) the neighbour contrast compares with."""

    directions: np.ndarray  # (subscribers, dim)
    offset: np.ndarray
    scale: np.ndarray
    liked: list[np.ndarray]  # per subscriber, centred unit rows of seeds and thumbs-up
    disliked: list[np.ndarray]  # per subscriber, of thumbs-down
    calibration: Calibration
    # per subscriber, the interests' phrase vectors (None: no phrases), and the phrase match's
    # standardisation over the corpus sample
    phrases: list[np.ndarray | None]
    phrase_offset: np.ndarray
    phrase_scale: np.ndarray
    # the same for the topics each reader does not want
    avoid: list[np.ndarray | None] = field(default_factory=list)
    avoid_offset: np.ndarray | None = None
    avoid_scale: np.ndarray | None = None
    # per subscriber, how much the liked (seeds and thumbs-up) and the thumbed-down side of the
    # contrast count: what is left of their weight at their ages beside what is left of all
    # the reader's signals (:func:`contrast_fades`); None: 1 for everyone
    up_fade: np.ndarray | None = None
    down_fade: np.ndarray | None = None
    # ... and how much the whitened centroid counts, the same way (:func:`linear_fade`)
    linear_fade: np.ndarray | None = None

    def score(self, papers: np.ndarray) -> np.ndarray:
        """Each reader's linear score of these papers, in standard deviations.

        A reader's digest must not depend on who else is due in the same run, and a float32
        product's last bits can depend on the shape of the product it is part of (how many
        readers share it): so every product has the same shape, ``_SCORE_ROWS`` readers (the
        last block padded with zero rows), and a reader's row is the same sums whatever block
        it is in (every row of a block is in a full tile of the BLAS kernel). Where in its
        block can still move the last bit: OpenBLAS's AVX2 kernel sums rows 6-11 of every 12
        in another order than rows 0-5 (on the Xeons CI ran on, every row came out alike): a
        few parts in 10^7, float32's rounding."""
        n, dim = self.directions.shape
        right = papers.T.astype(np.float32, copy=False)  # a view: BLAS reads it transposed
        block = np.zeros((_SCORE_ROWS, dim), dtype=np.float32)
        if n == _SCORE_ROWS:  # a chunk of compose's: the product is the result, no copy
            block[:] = self.directions
            out = block @ right
            np.subtract(out, self.offset[:, None], out=out)
            out /= self.scale[:, None]
            return out
        out = np.empty((n, len(papers)), dtype=np.float32)
        for start in range(0, n, _SCORE_ROWS):
            rows = self.directions[start : start + _SCORE_ROWS]
            block[: len(rows)] = rows
            block[len(rows) :] = 0
            raw = block @ right
            part = out[start : start + len(rows)]
            np.subtract(raw[: len(rows)], self.offset[start : start + len(rows), None], out=part)
            part /= self.scale[start : start + len(rows), None]
        return out

    def phrase_scores(self, papers: np.ndarray) -> np.ndarray:
        """:func:`phrase_match` in standard deviations above the reader's average paper."""
        return _standardised_match(self.phrases, papers, self.phrase_offset, self.phrase_scale)

    def avoid_penalty(self, papers: np.ndarray) -> np.ndarray | None:
        """Per reader, how much closer than average each paper is to one of the topics they
        do not want, in standard deviations (0 at or below average); None: nobody has any."""
        if self.avoid_offset is None or self.avoid_scale is None:
            return None
        out = _standardised_match(self.avoid, papers, self.avoid_offset, self.avoid_scale)
        np.maximum(out, 0, out=out)
        return out

    def neighbour_weights(self, w: SemanticWeights) -> np.ndarray:
        """Each row's weight of the neighbour contrast: none without a labelled paper."""
        out = np.zeros(len(self.directions), dtype=np.float32)
        for row, (up, down) in enumerate(zip(self.liked, self.disliked, strict=True)):
            if len(up) or len(down):
                out[row] = w.neighbour_weight_with_dislikes if len(down) else w.neighbour_weight
        return out

    def density(self, papers: np.ndarray, w: SemanticWeights) -> np.ndarray:
        """Each paper's density (see :func:`density`), standardised over the corpus sample."""
        cal = self.calibration
        if len(cal.sample) < 3:
            return np.zeros(len(papers), dtype=np.float32)
        offset, scale = cal.density_spread(w.density_neighbours)
        raw = density(cal.centred(papers), cal.centred_sample, w.density_neighbours)
        return (raw - offset) / scale

    def contrast(self, row: int, centred: np.ndarray, w: SemanticWeights) -> np.ndarray:
        """Closeness of these (centred) papers to the reader's liked papers minus closeness to
        the thumbed-down ones, in the run's standard deviations."""
        cal = self.calibration
        out = np.zeros(len(centred), dtype=np.float32)
        up, down = self.liked[row], self.disliked[row]
        # float32 products of this reader's papers alone: their shape is the reader's own, so
        # the numbers are whoever else is due
        if len(up):
            near = top_k_mean(centred @ up.T, w.neighbours)
            fade = 1.0 if self.up_fade is None else float(self.up_fade[row])
            out += fade * (near - cal.near_offset) / cal.near_scale
        if len(down):
            near = top_k_mean(centred @ down.T, w.neighbours)
            fade = 1.0 if self.down_fade is None else float(self.down_fade[row])
            out -= fade * (near - cal.near_offset) / cal.near_scale
        return out

    def added(
        self,
        papers: np.ndarray,
        w: SemanticWeights,
        base: np.ndarray | None = None,
        density: np.ndarray | None = None,
        centred: np.ndarray | None = None,
    ) -> np.ndarray:
        """What these profiles add to the scores ``base`` (subscribers × papers, e.g. TF-IDF)
        of these papers, weights included. The neighbour contrast is computed for each
        reader's ``w.shortlist`` best papers by everything else; the rest get the lowest
        contrast of that shortlist (they were not going to be picked). ``density``: the
        papers' :meth:`density`, and ``centred`` their :meth:`Calibration.centred` form, when
        the caller has them cached."""
        total = self.score(papers)
        total *= w.weight
        if self.linear_fade is not None:
            total *= self.linear_fade[:, None]
        # a reader without phrases scores 0 on them (offset 0, scale 1): a chunk where nobody
        # has any (readers known only by their papers) needs no three passes over its scores
        if w.phrases and any(p is not None and len(p) for p in self.phrases):
            total += w.phrases * self.phrase_scores(papers)
        if w.not_interested:
            penalty = self.avoid_penalty(papers)
            if penalty is not None:
                total -= w.not_interested * penalty
        near = self.neighbour_weights(w)
        if not near.any() or not len(papers):
            return total
        if w.density_weight:
            dense = self.density(papers, w) if density is None else density
        if centred is None:
            centred = self.calibration.centred(papers)
        ranked = total if base is None else total + base  # float32, like both
        short = min(w.shortlist, len(papers))
        # one BLAS thread: these products are small (300 × 384 by a library), and a second
        # thread waking for each costs ten times the product itself (6 ms a reader, measured)
        rows = np.flatnonzero(near)
        every = len(rows) == len(total)  # as a chunk of libraries is: no copy of its rows
        # every shortlist in one call, and every reader's contrast added in one: long stretches
        # without the GIL (two chunks are scored at once), not a few numpy calls per reader
        shortlists = best_columns(ranked if every else ranked[rows], short)  # ties: in order
        del ranked
        contrasts = np.empty(shortlists.shape, dtype=np.float32)
        with one_blas_thread():
            for k, (row, cols) in enumerate(zip(rows.tolist(), shortlists, strict=True)):
                contrasts[k] = self.contrast(row, centred[cols], w)
        if w.density_weight:
            contrasts -= w.density_weight * dense[shortlists]
        weighted = near[rows, None] * contrasts
        low = weighted.min(axis=1)
        if every:
            total += low[:, None]
        else:
            total[rows] += low[:, None]
        weighted -= low[:, None]
        total[rows[:, None], shortlists] += weighted
        return total


def one_blas_thread() -> Any:
    """A context in which BLAS (and OpenMP) run on the calling thread alone."""
    return _thread_pools().limit(limits=1)


@functools.cache
def _thread_pools() -> ThreadpoolController:
    # found once a process: finding the loaded BLAS libraries walks every shared object, which
    # ``threadpool_limits`` did for each chunk of readers on the scoring threads, holding the GIL
    return ThreadpoolController()


def build_profiles(
    signals: list[EmbeddedSignals],
    corpus: np.ndarray,
    w: SemanticWeights = SemanticWeights(),
    calibration: Calibration | None = None,
) -> SemanticProfiles:
    """Everyone's whitened centroid and labelled papers, standardised over the corpus sample
    (``calibration``: the run's, when the caller has it cached)."""
    cal = calibration or calibrate(corpus, w)
    dim = corpus.shape[1]
    labelled = _Labelled(signals, w, dim)
    left = [labelled.left(i, sig, w) for i, sig in enumerate(signals)]
    # Beside an interests text the papers earn their weight (SemanticWeights.evidence_prior):
    # a text matched phrase by phrase has a term of its own, and the centroid (all papers)
    # earns its share of its weight; a text without phrases is in the centroid itself, and its
    # papers earn their share inside it (scaling the whole term would drop the text with it)
    phrased = np.array([_phrased(sig, w) for sig in signals], dtype=bool)
    texts = np.array([_wrote(sig) for sig in signals], dtype=bool)
    beside = _papers_beside_text(signals, texts)
    earned = _shares(beside, w.evidence_prior)
    inside = np.where(phrased, 1.0, earned)
    directions = labelled.directions(signals, w, cal, left, inside)
    liked, disliked = labelled.sides(cal)
    offset, scale = cal.spread_of(directions)
    phrases = [sig.phrases for sig in signals]
    # every PHRASE_SAMPLE-th paper of the sample is enough for a mean and a spread, and the
    # phrase match costs a product per phrase (four a reader) where the linear term costs one
    spaced = cal.sample[:: max(1, len(cal.sample) // PHRASE_SAMPLE)]
    phrase_offset, phrase_scale = _standardisation(phrase_match(phrases, spaced))
    avoid = [sig.avoid for sig in signals]
    avoid_offset = avoid_scale = None
    if any(a is not None and len(a) for a in avoid):
        avoid_offset, avoid_scale = _standardisation(phrase_match(avoid, spaced))
    fade = np.array([contrast_fades(sig) for sig in left], dtype=np.float32).reshape(-1, 2)
    linear = np.array(
        [
            linear_fade(kinds) if len(sig.vectors) else 1.0
            for sig, kinds in zip(signals, left, strict=True)
        ],
        dtype=np.float32,
    )
    # a text without phrases is inside the centroid, whose papers' means are decayed by age
    # already: fading the whole term as its votes aged faded the text out with them
    linear = np.where(phrased, linear * earned, np.where(texts, 1.0, linear)).astype(np.float32)
    fade *= _shares(beside, w.neighbour_evidence_prior)[:, None]
    return SemanticProfiles(
        directions, offset, scale, liked, disliked, cal, phrases, phrase_offset, phrase_scale,
        avoid, avoid_offset, avoid_scale, fade[:, 0], fade[:, 1], linear,
    )  # fmt: skip


def linear_fade(left: dict[str, tuple[float, float]]) -> float:
    """How much the whitened centroid counts for a reader with papers (:meth:`_Labelled.left`),
    in [0, 1]: 1 unless their seed and voted papers have aged beside an interests text (which
    never ages), then the papers' weight left over that of all their signals. Each term of the
    score is standardised per reader, which undoes any decay inside it: without this a
    reader's months-old votes kept their whole weight beside the interests they edited today,
    and as they aged the reader's profile did not come back to that of the interests alone."""
    if "interests" not in left:
        return 1.0
    everything = fades(left, EVERY_SIGNAL)
    papers = fades(left, ("seed", "liked", "disliked"))
    return min(1.0, papers / everything) if everything > 0 else 1.0


def evidence_shares(signals: list[EmbeddedSignals], prior: float) -> np.ndarray:
    """Per reader, the share of a term's weight their papers have earned beside an interests
    text: ``n / (n + prior)`` for n seed and voted papers (a vote counts whatever its age:
    :func:`linear_fade` and :func:`contrast_fades` weigh that); 1 for a reader without an
    interests text (:func:`_wrote`), or without papers (whose linear term is the text's own)."""
    texts = np.array([_wrote(sig) for sig in signals], dtype=bool)
    return _shares(_papers_beside_text(signals, texts), prior)


def _papers_beside_text(signals: list[EmbeddedSignals], texts: np.ndarray) -> np.ndarray:
    """Per reader, their seed and voted papers where they have an interests text (``texts``:
    :func:`_wrote`), else 0."""
    return np.where(texts, [len(sig.vectors) for sig in signals], 0).astype(np.int64)


def _shares(papers: np.ndarray, prior: float) -> np.ndarray:
    """:func:`core.earned_shares` in float32, the width the terms are kept in."""
    return earned_shares(papers, prior).astype(np.float32)


def _phrased(sig: EmbeddedSignals, w: SemanticWeights) -> bool:
    """Whether the reader's interests text is matched phrase by phrase (:func:`phrase_match`):
    then the centroid is their papers' term, not the text's."""
    return bool(w.phrases and sig.phrases is not None and len(sig.phrases))


def _wrote(sig: EmbeddedSignals) -> bool:
    """Whether the reader has an interests text the model read something in (a static model
    gives a text of no word it knows a zero vector: no text to shrink towards)."""
    return sig.interests is not None and bool(np.any(sig.interests))


def contrast_fades(left: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """How much the contrast's liked and thumbed-down sides count for a reader
    (:meth:`_Labelled.left`): each side's weight left at its ages over that of all the reader's
    signals. Both are 1 while nothing has aged, and for a reader whose votes are all as old
    (nothing newer to weigh them against); beside an interests text (which never ages) an old
    vote fades as it does in the centroid and in TF-IDF, instead of lifting its neighbours as
    much as on its day (and a side newer than the rest counts a little more, as there)."""
    everything = fades(left, EVERY_SIGNAL)
    if everything <= 0:
        return 1.0, 1.0
    return fades(left, ("seed", "liked")) / everything, fades(left, ("disliked",)) / everything


def _standardisation(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row (reader) of scores over the corpus sample, their mean and spread (1 if none)."""
    offset = raw.mean(axis=1) if raw.shape[1] else np.zeros(len(raw))
    spread = raw.std(axis=1) if raw.shape[1] > 1 else np.ones(len(raw))
    scale = np.where(spread > 0, spread, 1.0)
    return offset.astype(np.float32), scale.astype(np.float32)


# -- signals as vectors ------------------------------------------------------------------------


def embedded_signals(
    model: EmbeddingModel,
    signals: list[Signals],
    corpus: np.ndarray,
    now: dt.datetime,
    interests: np.ndarray | None = None,
    phrases: list[np.ndarray | None] | None = None,
    avoid: list[np.ndarray | None] | None = None,
) -> list[EmbeddedSignals]:
    """``core.Signals`` whose papers are corpus rows (as ``compose`` builds them) in vectors;
    ``interests``: the interests texts' vectors, when the caller has them (stored ones),
    ``phrases`` each text's phrase vectors (:func:`phrase_vectors`; None: not matched) and
    ``avoid`` those of each reader's topics not wanted."""
    if interests is None:
        interests = model.embed([s.interests for s in signals])
    out = []
    for i, sig in enumerate(signals):
        seed_rows = list(sig.seed_rows or [])
        vote_rows = list(sig.vote_rows or [])
        kinds = ["seed"] * len(seed_rows) + [
            "liked" if vote > 0 else "disliked" for _, vote, _ in sig.votes
        ]
        ages = [0.0] * len(seed_rows) + vote_ages(sig, now)
        rows = seed_rows + vote_rows
        out.append(
            EmbeddedSignals(
                interests[i] if sig.interests.strip() else None,
                corpus[rows] if rows else np.zeros((0, corpus.shape[1]), dtype=np.float32),
                np.array(kinds, dtype=object),
                np.array(ages, dtype=np.float64),
                np.array(sig.corpus_rows, dtype=np.int64),
                phrases[i] if phrases is not None else None,
                avoid[i] if avoid is not None else None,
                np.array(rows, dtype=np.int64),
            )
        )
    return out


def labelled_rows(sig: EmbeddedSignals, w: SemanticWeights) -> tuple[np.ndarray, np.ndarray]:
    """A reader's seed and 👍 papers as corpus rows, each with its weight: seeds ``w.seeds``,
    votes ``w.liked`` decayed by their age (as in the centroid); none when the rows are not
    known."""
    if len(sig.rows) != len(sig.kinds):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    seed = sig.kinds == "seed"
    liked = sig.kinds == "liked"
    share = np.where(seed, w.seeds, w.liked * decay_factor(sig.ages, w.half_life_days)).astype(
        np.float32
    )
    keep = (seed | liked) & (share > 0)
    return sig.rows[keep], share[keep]


def phrase_vectors(
    embed_texts: Callable[[list[str]], np.ndarray], texts: list[str], unwanted: bool = False
) -> list[np.ndarray | None]:
    """Per interests text (or topics-not-wanted text: ``unwanted``), its phrases' vectors
    (:func:`interest_phrases`; None for a text with none); ``embed_texts`` encodes each
    distinct phrase once for the whole run."""
    per_text = [interest_phrases(t, unwanted) for t in texts]
    distinct = list(dict.fromkeys(p for phrases in per_text for p in phrases))
    if not distinct:
        return [None] * len(texts)
    vectors = unit_rows(np.asarray(embed_texts(distinct), dtype=np.float32))
    where = {p: i for i, p in enumerate(distinct)}
    return [vectors[[where[p] for p in ps]] if ps else None for ps in per_text]


# "Like <your paper>": a pick is named beside the liked or seed paper it is closest to when the
# two are close as few pairs of stored papers are. Cosines differ from model to model (MiniLM: a
# random pair of the reader evaluation's papers 0.24 ± 0.15; wordllama: 0.34 ± 0.11), so each bar
# is a rarity among the store's own pairs, not a number. Two ways to be close, measured on the
# reader evaluation's seeded readers (benchmarks/README.md, "Reasons a reader recognises"):
# * closer than all but SIMILAR_RARITY of the pairs (1 in 50: MiniLM 0.56 there), which a paper
#   in a crowded region (LLM quantization) reaches with its many close papers;
# * or among the liked paper's own nearest SIMILAR_SHARE of stored papers, and still closer than
#   all but SIMILAR_FLOOR of the pairs (1 in 10: 0.44): what a paper in a sparse region
#   (multi-robot planning) reaches with the few papers near it;
# and either way each among the other's own nearest SIMILAR_NEAREST stored papers. Without it,
# in a crowded region (a field test's store of LLM papers, 2026-12-08) a quality-diversity
# reader's one 👍 on "Diverse Prompts: … Prompt Space of Large Language Models with MAP-Elites"
# was named under 34 picks in two months, LLM-efficiency papers among its 16th to 58th nearest
# of 1,229 that mostly had it past their own 20th ("Command A: An Enterprise-Ready Large
# Language Model": 45th and 44th), and a restless-bandits caching paper under "CacheBlend: Fast
# Large Language Model Serving", its 16th nearest, which has it as its 225th. Asked both ways
# (40: the length of the nearest-paper lists), 24 of that reader's 42 picks named so keep the
# name, the 4 they liked among them, and that paper is named under 4 of its 13 (at 20: 15, 3
# liked; in issue 14's library readers a true "MergeQuant … 4-bit" like "GWQ" lost then, and
# with its only reason its place). Alone (without the two ways above) it named more in a small
# store, where 40 papers are a large share.
SIMILAR_RARITY = 1 / 50
SIMILAR_SHARE = 0.01
SIMILAR_NEAREST = 40
SIMILAR_FLOOR = 1 / 10
# Papers whose pairs set the bars (2,000: ~2 million pairs, ~0.1 s once per corpus), and whose
# cosines with a liked paper set its own bar (once per liked paper and corpus).
SIMILAR_SAMPLE = 2000


def similar_bar(corpus: np.ndarray, rarity: float = SIMILAR_RARITY) -> float:
    """The cosine that only ``rarity`` of the pairs of stored papers reach."""
    return similar_bars(corpus, (rarity,))[0]


def similar_bars(corpus: np.ndarray, rarities: tuple[float, ...]) -> tuple[float, ...]:
    """:func:`similar_bar` at each rarity, from one look at the pairs."""
    rows = corpus[_similar_sample(len(corpus))]
    pairs = (rows @ rows.T)[np.triu(np.ones((len(rows), len(rows)), dtype=bool), 1)]
    if not len(pairs):
        return tuple(1.0 for _ in rarities)
    return tuple(float(q) for q in np.quantile(pairs, [1 - r for r in rarities]))


def _similar_sample(n: int) -> np.ndarray:
    """The stored papers (rows) the bars are measured on: all, or a fixed-seed sample."""
    if n <= SIMILAR_SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, SIMILAR_SAMPLE, replace=False))


def similar_sample(corpus: np.ndarray) -> np.ndarray:
    """The stored papers' vectors the bars are measured on (:func:`_similar_sample`)."""
    return corpus[_similar_sample(len(corpus))]


def own_bars(
    corpus: np.ndarray,
    rows: np.ndarray,
    share: float = SIMILAR_SHARE,
    sample: np.ndarray | None = None,
) -> np.ndarray:
    """Per stored paper (``rows``), the cosine its nearest ``share`` of the stored papers reach
    (the paper itself, and an exact duplicate, left out); ``sample``: :func:`similar_sample`,
    when the caller keeps it (drawing it costs more than a few rows' bars)."""
    sample = similar_sample(corpus) if sample is None else sample
    out = np.ones(len(rows), dtype=np.float64)
    if len(sample) < 2 or not len(rows):
        return out
    cosines = corpus[np.asarray(rows, dtype=np.int64)] @ sample.T
    cosines[cosines > 0.9999] = -1.0
    return np.quantile(cosines, 1 - share, axis=1)


def closest_liked(
    vectors: np.ndarray,
    pick_rows: np.ndarray,
    liked_rows: list[int],
    bar: float,
    floor: float | None = None,
    own: Callable[[list[int], float], np.ndarray] | None = None,
) -> list[int | None]:
    """For each pick (a row of ``vectors``), the position in ``liked_rows`` of the closest
    liked paper when their cosine reaches ``bar``, or reaches ``floor`` and that paper's own
    bar (``own``: rows to their :func:`own_bars`). A paper is never "like" itself.
    :func:`closest_liked_many` does a chunk of readers, and says how close."""
    return closest_liked_many(vectors, [pick_rows], [liked_rows], bar, floor, own)[0][0]


# the most liked papers' rows (padding included) one stacked product of closest_liked_many
# holds: 16,384 x 384 float32, 25 MB
_STACKED_ROWS = 1 << 14


def closest_liked_many(
    vectors: np.ndarray,
    picks: list[np.ndarray],
    liked: list[list[int]],
    bar: float,
    floor: float | None = None,
    own: Callable[[list[int], float], np.ndarray] | None = None,
) -> tuple[list[list[int | None]], list[list[float]]]:
    """:func:`closest_liked` for each reader of a chunk (their ``picks`` and ``liked`` rows),
    and each pick's cosine to the paper it is closest to (-inf: none).

    Readers are multiplied in a few stacked products, those of about as many liked papers
    together, not one product each: the thread that words the reasons waits for the GIL after
    every call that lets it go (a reader's product cost ~0.3 ms so in a run of 20,000)."""
    found: list[list[int | None]] = [[None] * len(p) for p in picks]
    how_close: list[list[float]] = [[-np.inf] * len(p) for p in picks]
    by_size: dict[int, list[int]] = {}  # liked papers rounded up to a power of two -> readers
    for r, (mine, theirs) in enumerate(zip(picks, liked, strict=True)):
        if len(mine) and len(theirs):
            by_size.setdefault((len(theirs) - 1).bit_length(), []).append(r)
    chosen: list[tuple[list[int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    # ... in products of at most _STACKED_ROWS liked rows: a chunk of readers who imported
    # libraries of thousands of papers would otherwise hold them all at once
    groups = []
    for size, readers in by_size.items():
        step = max(1, _STACKED_ROWS >> size)
        groups += [readers[i : i + step] for i in range(0, len(readers), step)]
    for readers in groups:
        width = max(len(picks[r]) for r in readers)
        depth = max(len(liked[r]) for r in readers)
        pick_rows = np.full((len(readers), width), -1, dtype=np.int64)
        liked_rows = np.full((len(readers), depth), -2, dtype=np.int64)
        for k, r in enumerate(readers):
            pick_rows[k, : len(picks[r])] = picks[r]
            liked_rows[k, : len(liked[r])] = liked[r]
        # in float32: NumPy has no BLAS for float16 (the stored width), and multiplies it ten
        # times slower, rounding every partial sum to three digits
        left = vectors[np.maximum(pick_rows, 0)].astype(np.float32)
        right = vectors[np.maximum(liked_rows, 0)].astype(np.float32)
        sims = left @ right.transpose(0, 2, 1)  # readers x picks x liked
        # padding and a pick's own row never count; argmax keeps the first of equals
        sims[
            (liked_rows < 0)[:, None, :] | (pick_rows[:, :, None] == liked_rows[:, None, :])
        ] = -np.inf
        best = np.argmax(sims, axis=2)
        values = np.take_along_axis(sims, best[:, :, None], axis=2)[:, :, 0]
        chosen.append((readers, best, values, liked_rows, pick_rows))
    # the liked papers' own bars for the whole chunk at once: the floor's way, then each named
    # pair asked both ways (without ``own``, the store's bar alone)
    maybe_rows: list[int] = []
    verdicts = []
    for _, best, values, liked_rows, pick_rows in chosen:
        named = np.isfinite(values) & (pick_rows >= 0)  # not the padding
        near = named & (values >= bar)
        maybe = named & ~near & (values >= (bar if floor is None else floor))
        if own is None:
            maybe[:] = False
        maybe_rows += np.take_along_axis(liked_rows, best, axis=1)[maybe].tolist()
        verdicts.append((near, maybe))
    bars = own(maybe_rows, SIMILAR_SHARE) if maybe_rows and own is not None else np.zeros(0)
    used = 0
    mutual: list[int] = []
    for (_, best, values, liked_rows, pick_rows), (near, maybe) in zip(
        chosen, verdicts, strict=True
    ):
        count = int(maybe.sum())
        near[maybe] = values[maybe] >= bars[used : used + count]
        used += count
        if own is not None:
            closest = np.take_along_axis(liked_rows, best, axis=1)
            mutual += np.stack([closest[near], pick_rows[near]], axis=1).ravel().tolist()
    # each paper's nearest SIMILAR_NEAREST: that share of the sample the bars are read on
    nearest = min(1.0, SIMILAR_NEAREST / max(len(vectors), 1))
    both = own(mutual, nearest).reshape(-1, 2).max(axis=1) if mutual and own is not None else None
    used = 0
    for (readers, best, values, _, _), (near, _) in zip(chosen, verdicts, strict=True):
        if both is not None:
            count = int(near.sum())
            near[near] = values[near] >= both[used : used + count]
            used += count
        cosines = values.astype(np.float64)
        for k, r in enumerate(readers):
            n = len(picks[r])
            how_close[r] = cosines[k, :n].tolist()
            found[r] = [
                int(b) if ok else None for b, ok in zip(best[k, :n], near[k, :n], strict=True)
            ]
    return found, how_close


# -- "close in meaning to your interest ..." ----------------------------------------------------

# A pick with no other reason is named beside the interest phrase it is closest to in meaning
# when no more than this share of the stored papers is closer to that phrase: the phrase's own
# top 5 %, since a short phrase and an abstract reach very different cosines per phrase. A pick
# nothing explains is left out of the digest (compose), so this bar decides between a shorter
# digest and "close in meaning": 2 % left out a paper on KV-cache reuse for LLM serving, 5th
# closest of the demo's 200 to ada's "faster LLM inference", and 5 % still leaves out a
# recommender paper 15th closest to grace's "weight quantization" (benchmarks/README.md,
# "Reasons a reader recognises").
MEANING_SHARE = 0.05


# ... and only when it is at least as close as papers are to phrases of their own: as close as
# 60 % of stored papers are to their own key phrases (their first few word pairs that name a
# topic). The nearest 5 % alone always holds 5 % of the papers, however far: a theory reader's
# "category theory" was "close in meaning" to a few-shot object detection paper, "Sierpinski
# cones" to one on attention in the thalamus (cosines 0.26-0.38 with MiniLM, where papers sit
# at 0.39 from their own phrases and the demo's right answers at 0.48-0.52; found in review).
MEANING_FLOOR_PAPERS = 300  # papers sampled, evenly over the corpus
MEANING_FLOOR_PHRASES = 3  # key phrases a paper
MEANING_FLOOR_MIN = 30  # phrases below which a corpus sets no floor (too few to say)
# the floor's quantile of those cosines: the median also dropped right answers on a small
# feed (60 papers: "question answering" for a paper on query understanding in conversational
# search, 0.43, where its papers' own phrases sit at 0.44), and 0.4 still drops the review's
# 0.26-0.36
MEANING_FLOOR_QUANTILE = 0.4


def meaning_floor(
    vectors: np.ndarray, pairs: Callable[[int], list[str]], embed: Callable[[list[str]], np.ndarray]
) -> float:
    """The cosine of stored papers (unit ``vectors``) to their own key phrases (``pairs(row)``,
    encoded by ``embed``) that 60 % of them reach (``MEANING_FLOOR_QUANTILE``); -inf where the
    corpus has too few to say."""
    rows = np.unique(np.linspace(0, len(vectors) - 1, min(len(vectors), MEANING_FLOOR_PAPERS)))
    owners, phrases = [], []
    for row in rows.astype(np.int64):
        for phrase in pairs(int(row))[:MEANING_FLOOR_PHRASES]:
            owners.append(row)
            phrases.append(phrase)
    if len(phrases) < MEANING_FLOOR_MIN:
        return -np.inf
    own = unit_rows(np.asarray(embed(phrases), dtype=np.float32))
    cosines = np.einsum("ij,ij->i", own, vectors[np.array(owners)])
    return float(np.quantile(cosines, MEANING_FLOOR_QUANTILE))


def phrase_bar(vectors: np.ndarray, direction: np.ndarray) -> float:
    """The cosine to a phrase's vector that only its nearest ``MEANING_SHARE`` of the stored
    papers reach (infinite for a phrase with no known word: nothing is close to it)."""
    if not direction.any() or not len(vectors):
        return np.inf
    return float(np.quantile(vectors @ direction, 1 - MEANING_SHARE))
