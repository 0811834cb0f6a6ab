"""Semantic scores beside TF-IDF: pure functions from embedded signals to a score matrix.

Each subscriber gets one profile vector in the embedding space:

* a centroid (from zero labels on): interests text, seed papers and time-decayed thumbs-up,
  minus decayed thumbs-down, each kind averaged (as :func:`paperwire.rank.rocchio_rows`);
* from ``classifier_min_likes`` positives on, a logistic regression of the positives (and the
  interests text) against a sample of the corpus, explicit thumbs-down as weighted negatives,
  the dense twin of ``rank.classifier_row``.

A row is standardised over a sample of the corpus, so its score reads like the TF-IDF score
("standard deviations above this subscriber's average paper") and the two add:
``total = tfidf + weight × semantic``, the weight depending on the profile's kind. Beside a
classifier comes a nearest-neighbour contrast: the mean cosine of a paper to its closest liked
papers, minus that to its closest thumbed-down papers (a classifier trained against thousands
of background papers hardly hears a handful of thumbs-down; the neighbours do), minus the
paper's *density*, its mean cosine to its closest corpus papers. The density is the
thumbs-down a reader without thumbs-down lacks: a paper in a crowded region is close to some
liked paper whatever the reader likes (the "hubness" of embedding spaces). Neighbour cosines
are taken after removing the corpus mean, the common direction every static-embedding vector
shares. Each term is standardised over the corpus sample. Every weight is measured in
benchmarks/README.md ("Semantic ranking"). :func:`extra_scores` is the one hook ``digest``
calls.

:func:`similar_liked` names the liked or seed paper a pick is closest to in the embedding, for
the "similar to <liked paper>" reason, and :func:`closest_interest` the interest phrase a pick
with no other reason is closest to in meaning.

Nothing here touches the clock; only those three read the store (through
:mod:`paperwire.embed`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sklearn.linear_model import LogisticRegression

from .core import decay_factor
from .embed import unit_rows

if TYPE_CHECKING:
    from ..store import Store
    from .core import Signals
    from .embed import StaticModel

# Corpus papers the classifier is trained against and the rows are calibrated on (fixed-seed
# samples): the per-subscriber cost stays bounded as the store grows.
BACKGROUND = 5000


@dataclass(frozen=True)
class SemanticWeights:
    """How the embedding profile is built and how much it adds to the TF-IDF score."""

    # Share of the (standardised) semantic score added to the TF-IDF score: for a centroid
    # profile (cold start, where TF-IDF is weakest) and for a classifier profile, with the
    # neighbour contrast beside it. Chosen on arxiv-frontpage's random halves (seeds 100-139)
    # and 1,200 CiteULike-t tuning readers, never on the reported split or held-out readers
    # (benchmarks/README.md). Without thumbs-down the two disagree: frontpage's one reader
    # prefers 0.5 (AUC 0.917 over the halves; 0.909 at 0.75, 0.901 at 1), CiteULike's readers
    # 1 to 2 (recall@10 0.0954 at 0.5, 0.0986 at 0.75, 0.1003 at 1); 0.75 keeps the larger
    # share of each one's gain over the second phase's weights (0.899, 0.0907). With
    # thumbs-down the contrast already has a second side: 0.25 (frontpage up and down 0.935;
    # 0.930 at 0.5).
    weight: float = 1.0
    classifier_weight: float = 0.25
    neighbour_weight: float = 0.75
    neighbour_weight_with_dislikes: float = 0.25
    neighbours: int = 3
    # The density subtracted inside the contrast (× neighbour weight): the mean cosine to the
    # 20 closest papers of the corpus sample, standardised. 1.5 beat 0.5 / 1 on both data
    # sets; 2 / 2.5 lost with thumbs-down.
    density_weight: float = 1.5
    density_neighbours: int = 20
    # Neighbour cosines after removing the corpus sample's mean (False: raw cosines, the
    # second phase's contrast, kept to measure against).
    centred: bool = True
    interests: float = 1.0
    seeds: float = 1.0
    liked: float = 1.0
    disliked: float = 1.0
    half_life_days: float = 180.0
    classifier_min_likes: int = 3
    classifier_c: float = 1.0
    classifier_dislike_weight: float = 10.0
    # As rank.Weights.classifier_max_subscribers: beyond this many in one run, centroids only.
    classifier_max_subscribers: int = 200


@dataclass
class EmbeddedSignals:
    """One subscriber's signals as vectors: the interests text, then labelled papers."""

    interests: np.ndarray | None  # (dim,), None when there is no interests text
    vectors: np.ndarray  # (n, dim): seed and voted papers
    kinds: np.ndarray  # per row: "seed" | "liked" | "disliked"
    ages: np.ndarray  # per row, days since the vote (0 for seeds)
    corpus_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def positives(self) -> int:
        return int(np.isin(self.kinds, ("seed", "liked")).sum())


def centroid(sig: EmbeddedSignals, w: SemanticWeights) -> np.ndarray:
    """Weighted mean of each kind of signal (thumbs-down subtracted), L2-normalised."""
    dim = sig.vectors.shape[1] if sig.interests is None else len(sig.interests)
    out = np.zeros(dim, dtype=np.float64)
    if sig.interests is not None:
        out += w.interests * sig.interests
    decay = decay_factor(sig.ages, w.half_life_days)
    for kind, weight in (("seed", w.seeds), ("liked", w.liked), ("disliked", -w.disliked)):
        idx = sig.kinds == kind
        if idx.any():
            out += weight * (decay[idx, None] * sig.vectors[idx]).sum(axis=0) / idx.sum()
    norm = np.linalg.norm(out)
    return (out / norm if norm > 0 else out).astype(np.float32)


def classifier(
    sig: EmbeddedSignals, background: np.ndarray, w: SemanticWeights
) -> tuple[np.ndarray, float]:
    """A logistic regression's weights and intercept: positives (seeds, thumbs-up, the interests
    text) balanced against the background papers, thumbs-down weighted as negatives."""
    decay = decay_factor(sig.ages, w.half_life_days)
    pos = np.isin(sig.kinds, ("seed", "liked"))
    neg = sig.kinds == "disliked"
    pos_x = sig.vectors[pos]
    pos_w = decay[pos]
    if sig.interests is not None:
        pos_x = np.vstack([pos_x, sig.interests[None, :]])
        pos_w = np.r_[pos_w, 1.0]
    x = np.vstack([background, pos_x, sig.vectors[neg]])
    y = np.r_[np.zeros(len(background)), np.ones(len(pos_x)), np.zeros(int(neg.sum()))]
    balance = len(background) / max(len(pos_x), 1)
    sample_weight = np.r_[
        np.ones(len(background)), balance * pos_w, w.classifier_dislike_weight * decay[neg]
    ]
    clf = LogisticRegression(C=w.classifier_c, max_iter=500)
    clf.fit(x, y, sample_weight=sample_weight)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


@dataclass
class Neighbours:
    """Labelled papers of one side (liked or thumbed-down) and how their k-nearest mean
    cosine is spread over the corpus: score = (mean of the k best cosines − offset) / scale."""

    vectors: np.ndarray  # (n, dim)
    k: int
    offset: float = 0.0
    scale: float = 1.0

    def raw(self, papers: np.ndarray) -> np.ndarray:
        cosines = papers @ self.vectors.T
        k = min(self.k, cosines.shape[1])
        return np.partition(cosines, -k, axis=1)[:, -k:].mean(axis=1)

    def score(self, papers: np.ndarray) -> np.ndarray:
        return (self.raw(papers) - self.offset) / self.scale


def neighbours(vectors: np.ndarray, k: int, sample: np.ndarray) -> Neighbours | None:
    """One side's neighbours, standardised over the corpus sample; None when it is empty."""
    if not len(vectors):
        return None
    side = Neighbours(np.asarray(vectors, dtype=np.float32), k)
    raw = side.raw(sample) if len(sample) else np.zeros(0)
    side.offset = float(raw.mean()) if len(raw) else 0.0
    spread = float(raw.std()) if len(raw) > 1 else 0.0
    side.scale = spread if spread > 0 else 1.0
    return side


# Papers whose cosines are computed at once (a 2,000 × 5,000 block: 40 MB).
_BLOCK = 2000


def density(papers: np.ndarray, sample: np.ndarray, k: int) -> np.ndarray:
    """Each paper's mean cosine to its ``k`` closest papers of the sample, itself (or an exact
    duplicate: cosine 1) left out. Both are unit rows."""
    out = np.zeros(len(papers), dtype=np.float32)
    k = max(min(k, len(sample) - 1), 1)
    for start in range(0, len(papers), _BLOCK):
        cosines = papers[start : start + _BLOCK] @ sample.T
        cosines[cosines > 0.9999] = -1.0  # the least a cosine can be
        out[start : start + _BLOCK] = np.partition(cosines, -k, axis=1)[:, -k:].mean(axis=1)
    return out


@dataclass
class SemanticProfiles:
    """Per subscriber a direction and its standardisation: score = (x·d − offset) / scale;
    beside each classifier, the liked and thumbed-down neighbours."""

    directions: np.ndarray  # (subscribers, dim)
    offset: np.ndarray
    scale: np.ndarray
    used_classifier: np.ndarray
    # per subscriber (liked, thumbed-down) neighbours, or None beside a centroid
    sides: list[tuple[Neighbours | None, Neighbours | None] | None] = field(default_factory=list)
    # what neighbour cosines are taken against: the corpus sample's mean (subtracted) and the
    # sample itself, centred (the density's reference)
    centre: np.ndarray | None = None
    sample: np.ndarray | None = None

    def score(self, papers: np.ndarray) -> np.ndarray:
        raw = self.directions @ papers.T
        return (raw - self.offset[:, None]) / self.scale[:, None]

    def weights(self, w: SemanticWeights) -> np.ndarray:
        """Each row's share in the sum with TF-IDF (centroid or classifier weight)."""
        return np.where(self.used_classifier, w.classifier_weight, w.weight).astype(np.float32)

    def neighbour_weights(self, w: SemanticWeights) -> np.ndarray:
        """Each row's weight of the neighbour contrast: none beside a centroid, less when the
        reader has thumbs-down (the contrast then has two sides)."""
        out = np.zeros(len(self.directions), dtype=np.float32)
        for row, sides in enumerate(self.sides):
            if sides is not None:
                disliked = sides[1] is not None
                out[row] = w.neighbour_weight_with_dislikes if disliked else w.neighbour_weight
        return out

    def centred(self, papers: np.ndarray) -> np.ndarray:
        """Papers as the neighbours compare them (the corpus mean removed, unit rows)."""
        return papers if self.centre is None else unit_rows(papers - self.centre)

    def density(self, papers: np.ndarray, w: SemanticWeights) -> np.ndarray:
        """Each paper's density (see :func:`density`), standardised over the corpus sample;
        zeros without a sample."""
        if self.sample is None or len(self.sample) < 3:
            return np.zeros(len(papers), dtype=np.float32)
        ref = density(self.sample, self.sample, w.density_neighbours)
        spread = float(ref.std())
        raw = density(self.centred(papers), self.sample, w.density_neighbours)
        return (raw - ref.mean()) / (spread if spread > 0 else 1.0)

    def neighbour_score(self, papers: np.ndarray) -> np.ndarray:
        """Closeness to the liked papers minus closeness to the thumbed-down ones (zero rows
        beside a centroid)."""
        papers = self.centred(papers)
        out = np.zeros((len(self.directions), len(papers)), dtype=np.float32)
        for row, sides in enumerate(self.sides):
            liked, disliked = sides or (None, None)
            if liked is not None:
                out[row] += liked.score(papers)
            if disliked is not None:
                out[row] -= disliked.score(papers)
        return out

    def added(
        self, papers: np.ndarray, w: SemanticWeights, density: np.ndarray | None = None
    ) -> np.ndarray:
        """What these profiles add to the TF-IDF scores of these papers, weights included.
        ``density``: the papers' :meth:`density`, when the caller has it cached."""
        total = self.weights(w)[:, None] * self.score(papers)
        near = self.neighbour_weights(w)
        if near.any():
            contrast = self.neighbour_score(papers)
            if w.density_weight:
                dense = self.density(papers, w) if density is None else density
                contrast -= w.density_weight * dense[None, :]
            total += near[:, None] * contrast
        return total


def build_profiles(
    signals: list[EmbeddedSignals], corpus: np.ndarray, w: SemanticWeights = SemanticWeights()
) -> SemanticProfiles:
    """Centroids for everyone, classifiers where there are enough positives (and the run's
    budget allows), every row standardised over a corpus sample."""
    dim = corpus.shape[1]
    rng = np.random.default_rng(0)
    sample_rows = (
        np.arange(len(corpus))
        if len(corpus) <= BACKGROUND
        else np.sort(rng.choice(len(corpus), BACKGROUND, replace=False))
    )
    directions = np.zeros((len(signals), dim), dtype=np.float32)
    used = np.zeros(len(signals), dtype=bool)
    sample = corpus[sample_rows]
    centre = sample.mean(axis=0) if w.centred and len(sample) else None
    centred_sample = sample if centre is None else unit_rows(sample - centre)
    sides: list[tuple[Neighbours | None, Neighbours | None] | None] = [None] * len(signals)
    wants = [
        i
        for i, s in enumerate(signals)
        if s.positives >= w.classifier_min_likes and len(corpus) > s.positives
    ]
    fit = set(wants) if len(wants) <= w.classifier_max_subscribers else set()
    for i, sig in enumerate(signals):
        if i in fit:
            keep = np.ones(len(corpus), dtype=bool)
            keep[sig.corpus_rows[sig.corpus_rows < len(corpus)]] = False
            background = corpus[sample_rows[keep[sample_rows]]]
            directions[i], _ = classifier(sig, background, w)
            used[i] = True
            if w.neighbour_weight or w.neighbour_weight_with_dislikes:
                pos = np.isin(sig.kinds, ("seed", "liked"))
                neg = sig.kinds == "disliked"
                labelled = sig.vectors if centre is None else unit_rows(sig.vectors - centre)
                sides[i] = (
                    neighbours(labelled[pos], w.neighbours, centred_sample),
                    neighbours(labelled[neg], w.neighbours, centred_sample),
                )
        else:
            directions[i] = centroid(sig, w)
    raw = directions @ sample.T if len(sample) else np.zeros((len(signals), 0))
    offset = raw.mean(axis=1) if raw.shape[1] else np.zeros(len(signals))
    spread = raw.std(axis=1) if raw.shape[1] > 1 else np.ones(len(signals))
    scale = np.where(spread > 0, spread, 1.0)
    return SemanticProfiles(
        directions,
        offset.astype(np.float32),
        scale.astype(np.float32),
        used,
        sides,
        None if centre is None else centre.astype(np.float32),
        centred_sample,
    )


# -- the hook digest calls --------------------------------------------------------------------


def embedded_signals(
    model: StaticModel, signals: list[Signals], corpus: np.ndarray, now: dt.datetime
) -> list[EmbeddedSignals]:
    """``rank.Signals`` whose papers are corpus rows (as ``digest`` builds them) in vectors."""
    texts = [s.interests for s in signals]
    interests = model.embed(texts)
    out = []
    for i, sig in enumerate(signals):
        seed_rows = list(sig.seed_rows or [])
        vote_rows = list(sig.vote_rows or [])
        kinds = ["seed"] * len(seed_rows) + [
            "liked" if vote > 0 else "disliked" for _, vote, _ in sig.votes
        ]
        ages = [0.0] * len(seed_rows) + [
            max((now - when).total_seconds() / 86400, 0.0) for _, _, when in sig.votes
        ]
        rows = seed_rows + vote_rows
        out.append(
            EmbeddedSignals(
                interests[i] if sig.interests.strip() else None,
                corpus[rows] if rows else np.zeros((0, corpus.shape[1]), dtype=np.float32),
                np.array(kinds, dtype=object),
                np.array(ages, dtype=np.float64),
                np.array(sig.corpus_rows, dtype=np.int64),
            )
        )
    return out


def extra_scores(
    store: Store,
    spec: str | None,
    corpus_ids: list[str],
    corpus_texts: list[str],
    candidate_rows: np.ndarray,
    signals: list[Signals],
    now: dt.datetime,
    w: SemanticWeights = SemanticWeights(),
) -> np.ndarray | None:
    """What the embedding model adds to the TF-IDF scores of these candidates (corpus rows) for
    these subscribers, the weights included; None when ``ranking.embeddings`` is off.

    ``signals`` must name their papers by corpus row (``seed_rows`` / ``vote_rows``), as
    ``digest.subscriber_signals`` does given the run's corpus. Papers not yet embedded are
    embedded and stored first (once per paper and model)."""
    if not spec:
        return None
    from .embed import load_model

    model = load_model(spec)
    corpus = _corpus_vectors(store, model, corpus_ids, corpus_texts)
    profiles = build_profiles(embedded_signals(model, signals, corpus, now), corpus, w)
    rows = np.asarray(candidate_rows, dtype=np.int64)
    dense = None
    if profiles.neighbour_weights(w).any() and w.density_weight:
        dense = _corpus_density(store, model, corpus, profiles, w)[rows]
    return profiles.added(corpus[rows], w, dense)


# -- "similar to <liked paper>" ----------------------------------------------------------------

# How rarely two stored papers must be alike for one to be named beside the other: the rarity
# of rank.most_similar_liked's TF-IDF bar (cosine 0.25), which 14 of the 539,241 pairs of the
# reader evaluation's 1,039 real papers pass (1 in 38,500). wordllama's cosine at that rarity
# there is 0.80 (a random pair: 0.34 ± 0.11), so a fixed bar would not carry across models.
SIMILAR_RARITY = 1 / 38_500
# Papers whose pairs set the bar (2,000: ~2 million pairs, ~0.1 s once per corpus).
SIMILAR_SAMPLE = 2000


def similar_bar(corpus: np.ndarray) -> float:
    """The cosine that only ``SIMILAR_RARITY`` of the pairs of stored papers reach."""
    rng = np.random.default_rng(0)
    rows = (
        corpus
        if len(corpus) <= SIMILAR_SAMPLE
        else corpus[np.sort(rng.choice(len(corpus), SIMILAR_SAMPLE, replace=False))]
    )
    pairs = (rows @ rows.T)[np.triu(np.ones((len(rows), len(rows)), dtype=bool), 1)]
    return float(np.quantile(pairs, 1 - SIMILAR_RARITY)) if len(pairs) else 1.0


def closest_liked(
    vectors: np.ndarray, pick_rows: np.ndarray, liked_rows: list[int], bar: float
) -> list[int | None]:
    """For each pick (a row of ``vectors``), the position in ``liked_rows`` of the closest
    liked paper when its cosine reaches ``bar``. A paper is never "similar to" itself."""
    picks = np.asarray(pick_rows, dtype=np.int64)
    if not len(liked_rows) or not len(picks):
        return [None] * len(picks)
    liked = np.asarray(liked_rows, dtype=np.int64)
    sims = vectors[picks] @ vectors[liked].T
    sims[picks[:, None] == liked[None, :]] = -np.inf
    best = np.argmax(sims, axis=1)
    return [
        int(b) if sims[i, b] >= bar and np.isfinite(sims[i, b]) else None
        for i, b in enumerate(best)
    ]


def similar_liked(
    store: Store,
    spec: str | None,
    corpus_ids: list[str],
    corpus_texts: list[str],
    signals: Signals,
    pick_rows: np.ndarray,
) -> list[str | None] | None:
    """For each pick (a corpus row), the title of the liked or seed paper it is closest to in
    the embedding, if close enough to mention; None when ``ranking.embeddings`` is off (then
    ``digest`` compares TF-IDF vectors). ``signals`` name their papers by corpus row."""
    if not spec:
        return None
    from .embed import load_model

    model = load_model(spec)
    vectors = _corpus_vectors(store, model, corpus_ids, corpus_texts)
    # thumbs-up first, then seeds: the order of signals.liked_titles
    votes = zip(signals.vote_rows or [], signals.votes, strict=True)
    liked_rows = [row for row, (_, vote, _) in votes if vote > 0] + list(signals.seed_rows or [])
    titles = signals.liked_titles[: len(liked_rows)]
    bar = _similar_bar(store, model, vectors) if liked_rows else 1.0
    best = closest_liked(vectors, pick_rows, liked_rows, bar)
    return [None if b is None else titles[b][1] for b in best]


# -- "close in meaning to your interest ..." ----------------------------------------------------

# A pick with no other reason is named beside the interest phrase it is closest to in meaning
# when no more than this share of the stored papers is closer to that phrase: the phrase's own
# top 2 %, since a short phrase and an abstract reach very different cosines per phrase.
MEANING_SHARE = 0.02


def closest_interest(
    store: Store,
    spec: str | None,
    corpus_ids: list[str],
    corpus_texts: list[str],
    phrases: list[str],
    pick_rows: list[int],
) -> list[str | None] | None:
    """For each pick (a corpus row), the interest phrase it is closest to in meaning, if it
    is among that phrase's nearest ``MEANING_SHARE`` of stored papers; None when
    ``ranking.embeddings`` is off."""
    if not spec:
        return None
    if not phrases or not pick_rows:
        return [None] * len(pick_rows)
    from .embed import load_model

    model = load_model(spec)
    vectors = _corpus_vectors(store, model, corpus_ids, corpus_texts)
    bars, directions = _phrase_bars(store, model, vectors, phrases)
    sims = vectors[np.asarray(pick_rows, dtype=np.int64)] @ directions.T
    margins = sims - bars[None, :]
    best = np.argmax(margins, axis=1)
    return [phrases[b] if margins[i, b] >= 0 else None for i, b in enumerate(best)]


# (database, model, phrase) -> (the phrase's bar, its vector): thousands of readers share a
# phrase, and the bar costs one product with the corpus (cleared with the corpus vectors)
_PHRASES: dict[tuple[str, str, str], tuple[float, np.ndarray]] = {}


def _phrase_bars(
    store: Store, model: StaticModel, vectors: np.ndarray, phrases: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    where = str(store.path.resolve())
    new = [p for p in dict.fromkeys(phrases) if (where, model.name, p) not in _PHRASES]
    if new:
        embedded = model.embed(new)
        for phrase, direction in zip(new, embedded, strict=True):
            if not direction.any():  # no known word: nothing to be close to
                _PHRASES[(where, model.name, phrase)] = (np.inf, direction)
                continue
            cosines = vectors @ direction
            bar = float(np.quantile(cosines, 1 - MEANING_SHARE)) if len(cosines) else np.inf
            _PHRASES[(where, model.name, phrase)] = (bar, direction)
    found = [_PHRASES[(where, model.name, p)] for p in phrases]
    return np.array([b for b, _ in found]), np.stack([d for _, d in found])


# (database, model) -> (corpus version, vectors, the list of ids they were asked for): digest
# calls extra_scores once per chunk of subscribers, and the daemon every tick; the vectors are
# read from SQLite once per corpus.
_VECTORS: dict[tuple[str, str], tuple[tuple, np.ndarray, list[str]]] = {}


def _corpus_vectors(store: Store, model: StaticModel, ids: list[str], texts: list[str]):
    from .embed import paper_vectors

    key = (str(store.path.resolve()), model.name)
    cached = _VECTORS.get(key)
    # digest asks once per subscriber (similar_liked) with its run's very list of ids: no
    # query then (counting a big store's papers 100,000 times would take minutes)
    if cached is not None and cached[2] is ids:
        return cached[1]
    version = (*store.corpus_version(), len(ids))
    if cached is not None and cached[0] == version:
        _VECTORS[key] = (version, cached[1], ids)
        return cached[1]
    vectors = paper_vectors(store, model, ids, texts)
    _VECTORS.clear()
    _VECTORS[key] = (version, vectors, ids)
    _BARS.clear()
    _PHRASES.clear()
    _DENSITY.clear()
    return vectors


# (database, model) -> similar_bar of the cached corpus vectors (cleared with them)
_BARS: dict[tuple[str, str], float] = {}


def _similar_bar(store: Store, model: StaticModel, vectors: np.ndarray) -> float:
    key = (str(store.path.resolve()), model.name)
    if key not in _BARS:
        _BARS[key] = similar_bar(vectors)
    return _BARS[key]


# (database, model, density settings) -> every corpus paper's standardised density (cleared
# with the vectors): digest scores chunks of subscribers against the same corpus, and the
# sample the density is taken against depends on the corpus only
_DENSITY: dict[tuple[str, str, int, bool], np.ndarray] = {}


def _corpus_density(
    store: Store,
    model: StaticModel,
    corpus: np.ndarray,
    profiles: SemanticProfiles,
    w: SemanticWeights,
) -> np.ndarray:
    key = (str(store.path.resolve()), model.name, w.density_neighbours, w.centred)
    if key not in _DENSITY:
        _DENSITY[key] = profiles.density(corpus, w)
    return _DENSITY[key]
