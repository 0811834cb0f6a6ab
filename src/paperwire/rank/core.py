"""The TF-IDF half of ranking: pure functions from vectors, labels and ``now`` to scores.

Feature space. Hashed term counts (:mod:`.hashing`: scikit-learn's ``HashingVectorizer`` with
word 1-2-grams and English stop words, bit for bit) with an IDF vector
fitted on the stored corpus (:class:`TextModel`). Hashing keeps the columns fixed while the
corpus grows every day (a term means the same column tomorrow), and we do not try to keep old
profiles alive across days: every run refits the IDF and rebuilds every profile from its raw
signals (interests, topics not wanted, seed papers, dated votes), so all profiles always live
in the same, current space.

Profile. Each subscriber gets one linear weight row, so scoring every subscriber against every
candidate is one sparse product (:func:`score`): Rocchio over the interests text, seed papers
and time-decayed thumbs-up, minus the topics not wanted and decayed thumbs-down. No training;
it works from zero labels, and every reader gets the same model however many are due. The
row is divided by its score spread over (a sample of) the corpus, so a score reads as
"standard deviations above this subscriber's average paper" and rows mix and compare. The
crowd prior is added on that scale here (:func:`crowd_lift`); the sentence encoder's terms
(``semantic``) and the whole interest phrases a paper contains (``phrases``) by ``compose``.

A per-subscriber logistic regression (:func:`classifier_row`) is still here for the
benchmarks: beside the encoder it adds nothing measurable for ~1 s a reader, so no run fits
one unless ``Weights.classifier_max_subscribers`` asks (benchmarks/README.md, "Sentence
encoder").

Silence ("sent, never voted on") is not a thumbs-down: simulated on CiteULike-t it helped a
little in one setting and hurt in another (benchmarks/README.md).

Nothing here touches the database or the clock.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .hashing import N_FEATURES, TermHasher, unit_rows
from .phrases import interest_parts

# Score spreads are measured on at most this many corpus papers (a fixed-seed sample). The
# spread only sets each row's scale (a subscriber's own ranking does not depend on it), and
# 1,500 papers estimate it within a few per cent at a third of the cost of 5,000, the
# largest single step of a 100,000-subscriber run (benchmarks/scale/README.md).
CALIBRATION_SAMPLE = 1500
# The classifier's background is at most this many corpus papers (a fixed-seed sample), so the
# per-subscriber fit stays bounded as the store grows for years. CiteULike-t's 25,975 papers
# fit under it, i.e. the evaluation measured the uncapped model.
CLASSIFIER_BACKGROUND = 30000
# The TF-IDF cosine from which a pick is "similar to" a liked paper: 14 of the 539,241 pairs of
# the reader evaluation's 1,039 real papers reach it (semantic.SIMILAR_RARITY).
SIMILAR_LIKED_BAR = 0.25


@dataclass(frozen=True)
class Weights:
    """How much each signal counts (each value is measured in benchmarks/README.md)."""

    interests: float = 1.0
    seeds: float = 1.0
    liked: float = 1.0
    disliked: float = 1.0
    # the topics a reader said they do not want (``not_interested``), pulling the other way.
    # TF-IDF alone on arxiv-frontpage's 40 random halves (cold start / thumbs-up / up and
    # down): 0.25 lifts all three (0.695 -> 0.738, 0.832 -> 0.854, 0.853 -> 0.858); at 1 the
    # text outweighs the reader's votes and loses with them (0.823, 0.829): benchmarks/README.md,
    # "Topics a reader does not want"
    not_interested: float = 0.25
    half_life_days: float = 180.0
    # The classifier takes over from this many positives (liked + seed papers) on.
    classifier_min_likes: int = 3
    classifier_c: float = 0.5
    # An explicit thumbs-down weighs this many unlabelled background papers in the classifier.
    classifier_dislike_weight: float = 10.0
    # Share of the Rocchio row kept beside the classifier (0: classifier only).
    rocchio_share: float = 0.0
    # A logistic regression on TF-IDF costs ~1 s per subscriber, which a run of 20,000 cannot
    # afford, and beside the sentence encoder's whitened centroid it adds nothing measurable
    # (benchmarks/README.md, "Sentence encoder"): so no run fits one, and every subscriber gets
    # the same model whatever the size of the run. A positive number brings it back for runs
    # of at most that many subscribers (benchmarks compare with it).
    classifier_max_subscribers: int = 0
    # Weight of the standardised log-upvotes in the final score (0 turns popularity off).
    # Through compose at a 10-paper digest, on 300 CiteULike-t tuning readers ranking every
    # paper with the sentence encoder on (whose terms widen the relevance scale): 3.5 gives
    # recall@10 0.1247 against 0.1105 at 0.75, 0.1157 at 1.5, 0.1184 at 2.5 and 0.1249 at 5
    # (benchmarks/README.md, "Sentence encoder").
    popularity: float = 3.5
    # The crowd prior only orders papers the subscriber already finds relevant: it lifts a
    # paper scoring at least this many standard deviations above their average paper. Anything
    # below the bar keeps its bare relevance, so upvotes never lift it over a paper above it
    # (benchmarks/README.md). Bars 0 to 3 gave the same recall on the tuning readers.
    popularity_bar: float = 1.0
    # Each reader's share of that weight (rank.crowd_affinity): the mean standardised
    # log-upvotes of their liked and seed papers, shrunk towards 1 as if this many papers of
    # share 1 came first (no jump when a third like arrives), clipped to [0, cap]. On 300
    # tuning readers +0.0067 ± 0.0050 recall@10 over every paper and +0.0101 ± 0.0059 on the
    # 6,000 pool, where a shared weight was neutral; the shrinking and the cap each cost
    # ≤ 0.002, and the cap keeps any reader's weight ≤ 1.5. A cap of 0 turns it off.
    popularity_affinity_cap: float = 2.0
    popularity_affinity_prior_likes: int = 3
    # MMR trade-off: 1.0 is pure relevance.
    mmr_lambda: float = 0.5
    # Added to the score of a paper that contains a whole interest phrase (log2(1 + phrases
    # matched) times this), so "graph neural networks" beats "spiking neural networks" for a
    # reader who wrote the former (benchmarks/README.md, "Reader-facing evaluation").
    phrase_match: float = 1.0
    # ``ranking.embeddings: off``: the candidate's own nearest papers by TF-IDF, how many of
    # them are the reader's (rank/nearest.py), standardised per reader, this weight, for a
    # reader with ``nearest_min_papers`` seed and 👍 papers (the encoder's terms carry the
    # vote when it is on: semantic.SemanticWeights.nearest)
    nearest: float = 0.6
    nearest_papers: int = 40
    nearest_min_papers: int = 5
    # Beside an interests text, a reader's seed and voted papers weigh n / (n + this) of their
    # kinds' weights in the Rocchio row, n their count: one 👎 weighed as much as the whole
    # text, and took three of the demo's ada's other nine picks with it (none, with this and
    # the encoder's own priors). With the encoder on, which carries the text phrase by phrase;
    # with it off TF-IDF is all there is, its text alone is weak, and full weight from the
    # first vote learned faster (compose passes 0): benchmarks/README.md, "The first votes"
    evidence_prior: float = 40.0


@dataclass
class Signals:
    """Everything known about one subscriber's taste, as texts and dated votes."""

    interests: str = ""
    # topics the reader does not want, written like the interests ("blockchain, robotics")
    not_interested: str = ""
    seed_texts: list[str] = field(default_factory=list)
    # (text, +1/-1, when) for each vote
    votes: list[tuple[str, int, dt.datetime]] = field(default_factory=list)
    liked_titles: list[tuple[str, str]] = field(default_factory=list)  # (paper_id, title)
    # what each of liked_titles is to the reader: "liked" (a thumbs-up), "seed" (a config
    # seed paper) or "library" (imported with `seeds import`); "like <title> ..." says which
    liked_kinds: list[str] = field(default_factory=list)
    # Corpus rows of the voted and seed papers, kept out of the classifier's background.
    corpus_rows: list[int] = field(default_factory=list)
    # When set, the vectors of the seed papers and of the voted papers (same order as
    # seed_texts and votes) are these corpus rows: nothing is re-hashed.
    seed_rows: list[int] | None = None
    vote_rows: list[int] | None = None

    def paper_rows(self) -> tuple[list[int], list[int]] | None:
        """(seed rows, vote rows) when the papers are named by corpus row, else None."""
        if self.seed_rows is None or self.vote_rows is None:
            return None
        return self.seed_rows, self.vote_rows


@dataclass
class Labels:
    """One subscriber's signals in vector space: rows with a kind and an age in days."""

    vectors: sp.csr_matrix  # interests text, the topics not wanted, seed papers, voted papers
    kinds: np.ndarray  # per row: "interests" | "not_interested" | "seed" | "liked" | "disliked"
    ages: np.ndarray  # per row, days since the vote (0 for interests and seeds)
    corpus_rows: np.ndarray  # corpus rows to leave out of the background

    @property
    def positives(self) -> int:
        return int(np.isin(self.kinds, ("seed", "liked")).sum())


@dataclass
class Profiles:
    """One weight row per subscriber, and each row's mean score over the corpus."""

    matrix: sp.csr_matrix
    offset: np.ndarray
    used_classifier: np.ndarray  # per subscriber, whether the classifier row is in use
    # Rocchio rows as what they are made of, when no classifier row is in use: ``matrix`` ==
    # ``mix[0] @ corpus + mix[1]`` (coefficients over corpus rows, the weighted interests
    # vectors), up to float rounding. :class:`CandidateGram` scores them without the big product.
    mix: tuple[sp.csr_matrix, sp.csr_matrix | None] | None = None
    # per subscriber, whether nothing says what they like (no seed paper, no thumbs-up and no
    # interests text with a word in it): their scores only say what they do not want, the
    # crowd is all they have to go on for the rest (crowd_lift), and their picks are new in
    # their feeds as a blank reader's are
    nothing_liked: np.ndarray | None = None


class TextModel:
    """Hashed TF-IDF: ``fit`` learns IDF from a corpus, ``transform`` gives L2-normalised rows.

    The same weighting serves count matrices (``fit_counts`` / ``weigh``), which is how the
    offline evaluation feeds CiteULike's bags of words through the product's code.
    """

    def __init__(self, n_features: int = N_FEATURES, min_df: int = 2, max_df: float = 0.1):
        self.n_features = n_features
        self.min_df = min_df
        self.max_df = max_df
        self.hasher = TermHasher(n_features)
        self.idf = np.ones(n_features, dtype=np.float32)
        self.stop_words = self.hasher.stop_words

    def fit(self, texts: list[str]) -> TextModel:
        """Learn IDF weights from the corpus texts."""
        return self.fit_counts(self.hasher.transform(texts))

    def fit_counts(self, counts: sp.spmatrix) -> TextModel:
        """Learn smoothed IDF from a count matrix; too rare or too common terms weigh 0.

        Terms in more than ``max_df`` of the papers ("model", "results") say nothing about
        taste and, as in arxiv-sanity-lite, are dropped; so are terms seen in fewer than
        ``min_df`` papers. With a tiny corpus (a fresh install) the filters are relaxed so
        that something is left to rank with.
        """
        counts = sp.csr_matrix(counts)
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=self.n_features)
        idf = np.log((1 + n) / (1 + df)) + 1
        if n >= 50:
            idf[(df < self.min_df) | (df > self.max_df * n)] = 0
        self.idf = idf.astype(np.float32)
        return self

    def weigh(self, counts: sp.spmatrix) -> sp.csr_matrix:
        """Sublinear tf times IDF, L2-normalised rows, from a count matrix."""
        weighted = sp.csr_matrix(counts, dtype=np.float32, copy=True)
        # scale each stored value by its column's IDF in place: a 2**20 diagonal matrix
        # product costs milliseconds per call, this costs microseconds
        weighted.data = (1 + np.log(weighted.data)) * self.idf[weighted.indices]
        weighted.eliminate_zeros()
        return unit_rows(weighted)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        """Weighted, normalised vectors of texts."""
        return self.weigh(self.hasher.transform(texts))

    def interests_counts(self, texts: list[str]) -> sp.csr_matrix:
        """Term counts of interests texts, each phrase counted on its own.

        "KV cache, long-context" must not make the bigram "cache long": the reader wrote two
        phrases, so each is hashed separately and the counts are summed per text."""
        owners, which = [], []
        phrases: dict[str, int] = {}  # each distinct phrase hashed once: readers share them
        for i, text in enumerate(texts):
            for phrase in interest_parts(text):
                owners.append(i)
                which.append(phrases.setdefault(phrase, len(phrases)))
        if not phrases:
            return sp.csr_matrix((len(texts), self.n_features), dtype=np.float32)
        counts = self.hasher.transform(list(phrases))
        # whole-number counts in float32: their sums are exact in any order
        mix = sp.csr_matrix(
            (np.ones(len(owners), dtype=np.float32), (owners, which)),
            shape=(len(texts), len(phrases)),
        )
        return (mix @ counts).tocsr()

    def transform_interests(self, texts: list[str]) -> sp.csr_matrix:
        """Weighted, normalised vectors of interests texts (phrase by phrase, see above)."""
        return self.weigh(self.interests_counts(texts))

    def tokens(self, text: str) -> list[str]:
        """The text's terms: words, then word pairs (:meth:`.TermHasher.terms`)."""
        return self.hasher.terms(text)

    def columns(self, tokens: list[str]) -> np.ndarray:
        """The hashed column of each token, remembered per token, since reasons look up the
        same phrases for thousands of subscribers."""
        return self.hasher.columns(tokens)


def decay_factor(age_days: float | np.ndarray, half_life_days: float) -> np.ndarray:
    """How much a vote of this age still counts: halves every ``half_life_days``."""
    return np.power(0.5, np.maximum(age_days, 0) / half_life_days)


def labelled_rows(
    signals: Signals, now: dt.datetime, weights: Weights
) -> tuple[np.ndarray, np.ndarray]:
    """A reader's seed and 👍 papers as corpus rows, each with its weight (seeds
    ``weights.seeds``, votes ``weights.liked`` decayed by their age): what the nearest-papers
    vote counts; none when the signals do not name their papers by corpus row."""
    named = signals.paper_rows()
    if named is None or len(named[1]) != len(signals.votes):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    seed_rows, vote_rows = named
    dated = zip(vote_rows, signals.votes, vote_ages(signals, now), strict=True)
    liked = [(row, age) for row, (_, value, _), age in dated if value > 0]
    ages = np.array([age for _, age in liked], dtype=np.float64)
    shares = np.r_[
        np.full(len(seed_rows), weights.seeds),
        weights.liked * decay_factor(ages, weights.half_life_days),
    ].astype(np.float32)
    rows = np.array([*seed_rows, *(row for row, _ in liked)], dtype=np.int64)
    keep = shares > 0
    return rows[keep], shares[keep]


def labels_from_signals(
    model: TextModel,
    signals: Signals,
    now: dt.datetime,
    corpus: sp.csr_matrix | None = None,
    interests_vector: sp.csr_matrix | None = None,
    avoid_vector: sp.csr_matrix | None = None,
) -> Labels:
    """Vectorise one subscriber's texts; votes carry their age at ``now``.

    With ``corpus`` and the signals' ``seed_rows`` / ``vote_rows``, stored papers are taken
    from the already weighted corpus matrix instead of being hashed again, and
    ``interests_vector`` / ``avoid_vector`` (rows of a batched ``transform_interests``) do the
    same for the interests and the topics not wanted."""
    texts_of_reader = _reader_texts(signals)
    given = signals.paper_rows() if corpus is not None else None
    n_seeds = len(given[0]) if given is not None else len(signals.seed_texts)
    kinds = [kind for kind, _ in texts_of_reader] + ["seed"] * n_seeds
    kinds += ["liked" if vote > 0 else "disliked" for _, vote, _ in signals.votes]
    batched = {"interests": interests_vector, "not_interested": avoid_vector}
    parts = [
        batched[kind] if batched[kind] is not None else model.transform_interests([text])
        for kind, text in texts_of_reader
    ]
    vectors: sp.csr_matrix | None
    if given is not None and corpus is not None:
        rows = list(given[0]) + list(given[1])
        if rows:
            parts.append(corpus[rows])
        vectors = sp.vstack(parts).tocsr() if parts else None
    else:
        texts = list(signals.seed_texts) + [text for text, _, _ in signals.votes]
        if texts:
            parts.append(model.transform(texts))
        vectors = sp.vstack(parts).tocsr() if parts else None
    if vectors is None:
        vectors = sp.csr_matrix((0, model.n_features))
    return Labels(
        vectors.astype(np.float32),
        np.array(kinds, dtype=object),
        np.array(_ages(kinds, signals, now), dtype=np.float64),
        np.array(signals.corpus_rows, dtype=np.int64),
    )


def _reader_texts(signals: Signals) -> list[tuple[str, str]]:
    """(kind, text) of the texts a reader wrote: the interests, then the topics not wanted."""
    texts = [("interests", signals.interests), ("not_interested", signals.not_interested)]
    return [(kind, text) for kind, text in texts if text.strip()]


def _ages(kinds: list[str], signals: Signals, now: dt.datetime) -> list[float]:
    ages = vote_ages(signals, now)
    return [0.0] * (len(kinds) - len(ages)) + ages


def vote_ages(signals: Signals, now: dt.datetime) -> list[float]:
    """Each of the reader's votes' age at ``now`` in days (0 for one dated later)."""
    return [max((now - when).total_seconds() / 86400, 0.0) for _, _, when in signals.votes]


def _kind_coefficients(
    kinds: np.ndarray,
    ages: np.ndarray,
    weights: Weights,
    owners: np.ndarray | None = None,
    blank: np.ndarray | None = None,
) -> np.ndarray:
    """Each label's weight in a Rocchio row: its kind's weight, averaged over the labels of
    that kind (so ten liked papers do not drown the interests text), decayed by age, and a
    paper's, beside an interests text, by the share its reader's papers have earned
    (:func:`_earned`). ``owners``: each label's reader, for a chunk of readers' labels at once
    (None: one reader's); a kind is averaged over its reader's labels of that kind. ``blank``:
    per label, a text the reader wrote that has no term the corpus weighs (it pulls nothing,
    so it is no text to shrink the papers towards)."""
    decay = decay_factor(ages, weights.half_life_days)
    owners = np.zeros(len(kinds), dtype=np.int64) if owners is None else owners
    out = np.zeros(len(kinds), dtype=np.float64)
    wrote = kinds == "interests"
    if blank is not None:
        wrote &= ~blank
    earned = _earned(kinds, owners, wrote, weights.evidence_prior)
    for kind, weight in (
        ("interests", weights.interests),
        ("seed", weights.seeds),
        ("liked", weights.liked),
        ("disliked", -weights.disliked),
        ("not_interested", -weights.not_interested),
    ):
        idx = kinds == kind
        if idx.any():
            mine = owners[idx]
            out[idx] = weight * decay[idx] / np.bincount(mine)[mine]
            if kind in PAPER_KINDS:
                out[idx] *= earned[mine]
    return out


# the kinds of label that are a paper (the rest are texts the reader wrote)
PAPER_KINDS = ("seed", "liked", "disliked")


def _earned(kinds: np.ndarray, owners: np.ndarray, texts: np.ndarray, prior: float) -> np.ndarray:
    """Per owner, the share of their papers' weights their papers have earned beside an
    interests text (``texts``: the labels that are one, with terms; ``Weights.evidence_prior``):
    n / (n + prior) for n papers; 1 without such a text or a prior."""
    size = int(owners.max()) + 1 if len(owners) else 0
    papers = np.bincount(owners[np.isin(kinds, PAPER_KINDS)], minlength=size)
    wrote = np.zeros(size, dtype=bool)
    wrote[owners[texts]] = True
    return earned_shares(np.where(wrote, papers, 0), prior)


def earned_shares(papers: np.ndarray, prior: float) -> np.ndarray:
    """``n / (n + prior)`` for each reader's n papers beside an interests text (the rest of
    their weight is the text's); 1 for none, or without a prior (float64)."""
    if prior <= 0:
        return np.ones(len(papers), dtype=np.float64)
    return np.where(papers > 0, papers / (papers + prior), 1.0)


def rocchio_rows(labels: list[Labels], n_features: int, weights: Weights) -> sp.csr_matrix:
    """Rocchio rows for every subscriber at once: one sparse product of label weights × vectors,
    L2-normalised (the weights: :func:`_kind_coefficients`)."""
    coef_rows: list[int] = []
    coef_cols: list[int] = []
    coef_vals: list[float] = []
    offset = 0
    for row, lab in enumerate(labels):
        n = lab.vectors.shape[0]
        coef_rows.extend([row] * n)
        coef_cols.extend(range(offset, offset + n))
        blank = np.diff(lab.vectors.indptr) == 0
        coef_vals.extend(_kind_coefficients(lab.kinds, lab.ages, weights, blank=blank))
        offset += n
    if offset == 0:
        return sp.csr_matrix((len(labels), n_features), dtype=np.float32)
    mix = sp.csr_matrix(
        (np.array(coef_vals, dtype=np.float32), (coef_rows, coef_cols)), shape=(len(labels), offset)
    )
    stacked = sp.vstack([lab.vectors for lab in labels]).tocsr()
    return unit_rows((mix @ stacked).tocsr())


def classifier_row(lab: Labels, corpus: sp.csr_matrix, weights: Weights) -> sp.csr_matrix:
    """A logistic regression of liked (and seed) papers against the corpus, as a sparse row.

    The corpus is background, not dislikes: its papers are the classifier's negatives at weight
    one, as in arxiv-sanity-lite, while explicit thumbs-down weigh ``classifier_dislike_weight``
    and every vote is decayed by age. ``class_weight="balanced"`` keeps few positives from
    being swamped by thousands of background papers.
    """
    decay = decay_factor(lab.ages, weights.half_life_days)
    keep = np.ones(corpus.shape[0], dtype=bool)
    keep[lab.corpus_rows[lab.corpus_rows < corpus.shape[0]]] = False
    if keep.sum() > CLASSIFIER_BACKGROUND:
        rows = np.flatnonzero(keep)
        keep[:] = False
        keep[np.random.default_rng(0).choice(rows, CLASSIFIER_BACKGROUND, replace=False)] = True
    background = corpus[keep]
    pos = np.isin(lab.kinds, ("seed", "liked", "interests"))
    neg = np.isin(lab.kinds, ("disliked", "not_interested"))
    x = sp.vstack([background, lab.vectors[pos], lab.vectors[neg]]).tocsr()
    y = np.r_[np.zeros(background.shape[0]), np.ones(pos.sum()), np.zeros(neg.sum())]
    balance = background.shape[0] / max(pos.sum(), 1)
    sample_weight = np.r_[
        np.ones(background.shape[0]),
        balance * decay[pos],
        weights.classifier_dislike_weight * decay[neg],
    ]
    # imported here: the classifier is off by default (classifier_max_subscribers), its module
    # adds ~0.15 s to every process that ranks, and scikit-learn is an extra (benchmarks only)
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as missing:
        raise RuntimeError(
            "the per-reader classifier (Weights.classifier_max_subscribers) needs "
            "scikit-learn, which paperwire does not install: pip install 'paperwire[bench]'"
        ) from missing

    clf = LogisticRegression(C=weights.classifier_c, solver="liblinear")
    clf.fit(x, y, sample_weight=sample_weight)
    coef = sp.csr_matrix(clf.coef_.astype(np.float32))
    coef.eliminate_zeros()
    return coef


def build_profiles(
    labels: list[Labels],
    corpus: sp.csr_matrix,
    weights: Weights = Weights(),
    nothing_liked: np.ndarray | None = None,
) -> Profiles:
    """One calibrated weight row per subscriber (see the module docstring). ``nothing_liked``
    (:attr:`Profiles.nothing_liked`) when the caller knows it from the texts; else a reader
    with an interests text, a seed or a thumbs-up likes something."""
    rocchio = rocchio_rows(labels, corpus.shape[1], weights)
    positives = np.array([lab.positives for lab in labels], dtype=np.int64)
    if nothing_liked is None:
        nothing_liked = np.array(
            [not np.isin(lab.kinds, ("interests", "seed", "liked")).any() for lab in labels],
            dtype=bool,
        )
    return _calibrated(rocchio, positives, labels.__getitem__, corpus, weights, nothing_liked)


def build_profiles_from_signals(
    model: TextModel,
    signals: list[Signals],
    corpus: sp.csr_matrix,
    now: dt.datetime,
    weights: Weights = Weights(),
    calibration: CandidateGram | None = None,
) -> Profiles:
    """The product's entry point: texts and dated votes in, profiles out.

    Interests texts (and the topics not wanted) are hashed in one batch. When every subscriber
    names their stored papers by corpus row (``seed_rows`` / ``vote_rows``, as ``digest``
    does), the Rocchio rows of the whole chunk are one sparse product over the corpus, with no
    per-subscriber matrices.
    ``calibration`` (a :class:`CandidateGram` over :func:`calibration_rows`, kept by the run)
    then gives the rows' score spreads over the calibration sample without that product."""
    # (reader, kind) -> row of the batch, in reading order: the interests part's rows
    position: dict[tuple[int, str], int] = {}
    texts: list[str] = []
    for i, sig in enumerate(signals):
        for kind, text in _reader_texts(sig):
            position[i, kind] = len(texts)
            texts.append(text)
    counts = model.interests_counts(texts) if texts else None
    batch = model.weigh(counts) if counts is not None else None
    # what says a reader likes something: a seed, a thumbs-up, or an interests text with a
    # word the hasher keeps, even one the corpus weighs 0 as yet (too rare, too common);
    # "R, C" has none, and a reader who wrote only that is as blank as one who wrote nothing
    liked = np.array(
        [
            bool(s.seed_texts or s.seed_rows or any(vote > 0 for _, vote, _ in s.votes))
            for s in signals
        ],
        dtype=bool,
    )
    if counts is not None:
        terms = np.diff(counts.indptr)
        for (i, kind), k in position.items():
            liked[i] |= kind == "interests" and terms[k] > 0

    def labels_of(i: int) -> Labels:
        rows = {
            kind: batch[position[i, kind]] if batch is not None and (i, kind) in position else None
            for kind in ("interests", "not_interested")
        }
        return labels_from_signals(
            model, signals[i], now, corpus, rows["interests"], rows["not_interested"]
        )

    given = [s.paper_rows() for s in signals]
    named = [rows for rows in given if rows is not None]
    if len(named) < len(signals):
        labels = [labels_of(i) for i in range(len(signals))]
        return build_profiles(labels, corpus, weights, nothing_liked=~liked)
    coef, interest_part = _rocchio_parts(signals, named, corpus, batch, now, weights)
    mixed = coef @ corpus
    if interest_part is not None:
        mixed = mixed + interest_part
    mixed = mixed.tocsr()
    norms = np.sqrt(np.asarray(mixed.multiply(mixed).sum(axis=1), dtype=np.float64).ravel())
    rocchio = unit_rows(mixed)
    parts = (coef, interest_part, norms)
    positives = np.array(
        [
            len(seeds) + sum(1 for _, vote, _ in s.votes if vote > 0)
            for s, (seeds, _) in zip(signals, named, strict=True)
        ],
        dtype=np.int64,
    )
    spread = None
    if calibration is not None and len(signals) and calibration.right.shape[1] >= 2:
        # the normalised rows' scores over the sample: the raw rows' scores / their norms
        dots = calibration.scores(coef, interest_part) / np.where(norms > 0, norms, 1.0)[:, None]
        spread = dots.astype(np.float32).std(axis=1).astype(np.float64)
    return _calibrated(rocchio, positives, labels_of, corpus, weights, ~liked, parts, spread)


def _rocchio_parts(
    signals: list[Signals],
    paper_rows: list[tuple[list[int], list[int]]],
    corpus: sp.csr_matrix,
    interests: sp.csr_matrix | None,
    now: dt.datetime,
    weights: Weights,
) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """``rocchio_rows`` for signals whose papers are corpus rows, before normalising: the same
    coefficients, as (a matrix to multiply the corpus by, the weighted vectors of the texts the
    readers wrote), with no per-subscriber vector stacks. ``paper_rows``: each one's (seed
    rows, vote rows); ``interests``: the texts' batch, each reader's in :func:`_reader_texts`
    order, reader after reader."""
    # every reader's labels side by side (the texts they wrote, then their papers), their
    # coefficients in one pass: a dozen numpy calls a reader held the GIL ~30 µs each
    kinds: list[str] = []
    ages: list[float] = []
    owners: list[int] = []
    wrote: list[bool] = []  # per label: a text the reader wrote (else a corpus row)
    cols: list[int] = []
    for i, (sig, (seed_rows, vote_rows)) in enumerate(zip(signals, paper_rows, strict=True)):
        written = [kind for kind, _ in _reader_texts(sig)]
        mine = written + ["seed"] * len(seed_rows)
        mine += ["liked" if vote > 0 else "disliked" for _, vote, _ in sig.votes]
        kinds += mine
        ages += _ages(mine, sig, now)
        owners += [i] * len(mine)
        wrote += [True] * len(written) + [False] * (len(mine) - len(written))
        cols += list(seed_rows) + list(vote_rows)
    owner = np.array(owners, dtype=np.int64)
    text = np.array(wrote, dtype=bool)
    blank = np.zeros(len(text), dtype=bool)
    if interests is not None:  # the batch's rows are the texts, in the order met here
        blank[text] = np.diff(interests.indptr)[: int(text.sum())] == 0
    coef = _kind_coefficients(
        np.array(kinds, dtype=object), np.array(ages, dtype=np.float64), weights, owner, blank
    )
    corpus_coef = sp.csr_matrix(
        (coef[~text].astype(np.float32), (owner[~text], np.array(cols, dtype=np.int64))),
        shape=(len(signals), corpus.shape[0]),
    )
    if interests is None or not text.any():
        return corpus_coef, None
    # the batch's rows are the readers' texts in the order they were met here
    interest_coef = sp.csr_matrix(
        (coef[text].astype(np.float32), (owner[text], np.arange(int(text.sum())))),
        shape=(len(signals), interests.shape[0]),
    )
    return corpus_coef, (interest_coef @ interests).tocsr()


def _calibrated(
    rocchio: sp.csr_matrix,
    positives: np.ndarray,
    labels_of,
    corpus: sp.csr_matrix,
    weights: Weights,
    nothing_liked: np.ndarray,
    parts: tuple | None = None,
    spread: np.ndarray | None = None,
) -> Profiles:
    """Standardise the Rocchio rows, swap in classifier rows where there are enough likes
    (and the run's classifier budget allows), and compute each row's corpus-average score.

    ``parts`` (from :func:`_rocchio_parts`) are kept, scaled like the rows, as ``mix``;
    ``spread``, the rows' score spreads over the sample, is given when the caller has them."""
    n_features = corpus.shape[1]
    sample, centre = _calibration_sample(corpus)
    matrix, scale = _standardised_rows(rocchio, sample, with_scale=True, spread=spread)
    used = np.zeros(rocchio.shape[0], dtype=bool)
    wants = np.flatnonzero(
        (positives >= weights.classifier_min_likes) & (positives < corpus.shape[0])
    )
    if 0 < len(wants) <= weights.classifier_max_subscribers:
        replaced = {}
        for i in wants:
            clf = _standardised_rows(classifier_row(labels_of(int(i)), corpus, weights), sample)
            share = weights.rocchio_share
            replaced[int(i)] = share * matrix[i] + (1 - share) * clf if share else clf
            used[i] = True
        matrix = sp.vstack([replaced.get(i, matrix[i]) for i in range(matrix.shape[0])]).tocsr()
    matrix = matrix.astype(np.float32)
    if matrix.shape[0] == 0:
        empty = sp.csr_matrix((0, n_features), dtype=np.float32)
        return Profiles(empty, np.zeros(0), used, nothing_liked=nothing_liked)
    offset = np.asarray(matrix @ centre, dtype=np.float32).ravel()
    mix = None
    if parts is not None and not used.any():
        mix = _scaled_parts(parts, scale)
    return Profiles(matrix, offset, used, mix, nothing_liked)


def _scaled_parts(parts: tuple, scale: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """The Rocchio parts times what turned them into profile rows: 1 / the row's norm (as
    ``unit_rows``) times its standardising scale."""
    coef, interest_part, norms = parts
    factor = sp.diags(scale / np.where(norms > 0, norms, 1.0))
    # float32 like the profile rows (and like CandidateGram's rows: a mixed product would
    # copy them to float64)
    coef = (factor @ coef.astype(np.float64)).tocsr().astype(np.float32)
    if interest_part is not None:
        interest_part = (factor @ interest_part.astype(np.float64)).tocsr().astype(np.float32)
    return coef, interest_part


# More upvotes than any paper has had: a larger count is a feed's lie, read as this many (so
# one absurd count cannot flatten every other paper's prior and every reader's share).
MAX_UPVOTES = 1_000_000


def _known_logs(upvotes: list[int | None] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which papers have a count (None or NaN: none), and log(1 + count) of those."""
    values = np.array([np.nan if u is None else u for u in upvotes], dtype=np.float64)
    known = ~np.isnan(values)
    return known, np.log1p(np.clip(values[known], 0, MAX_UPVOTES))


def _scale_of(logs: np.ndarray) -> tuple[float, float] | None:
    if len(logs) < 2 or not logs.std() > 0:
        return None
    return float(logs.mean()), float(logs.std())


def upvote_scale(upvotes: list[int | None] | np.ndarray) -> tuple[float, float] | None:
    """Mean and standard deviation of log(1 + upvotes) over the papers that have a count: the
    prior's scale. None with fewer than two counts or no spread."""
    return _scale_of(_known_logs(upvotes)[1])


def popularity_prior(upvotes: list[int | None] | np.ndarray) -> np.ndarray:
    """Standardised log-upvotes; a paper with no count (not on that source) gets 0 (neutral)."""
    known, logs = _known_logs(upvotes)
    out = np.zeros(len(known), dtype=np.float32)
    scale = _scale_of(logs)
    if scale is not None:
        out[known] = (logs - scale[0]) / scale[1]
    return out


def crowd_affinity(
    liked_upvotes: list[list[int | None]] | list[np.ndarray],
    scale: tuple[float, float] | None,
    weights: Weights = Weights(),
) -> np.ndarray:
    """Per subscriber, how much the crowd's taste is theirs: the mean of their liked and seed
    papers' log-upvotes on ``scale`` (:func:`upvote_scale` of the stored papers), shrunk
    towards 1 as if ``popularity_affinity_prior_likes`` papers of share 1 came first, clipped
    to [0, ``popularity_affinity_cap``]. 1 without a count or a scale. :func:`crowd_lift`
    multiplies the lift by it, so a reader whose likes are the crowd's favourites hears more of
    the crowd and a reader of papers nobody upvotes comes to hear none (benchmarks/README.md,
    "Each reader's share of the crowd")."""
    out = np.ones(len(liked_upvotes), dtype=np.float32)
    if scale is None or not weights.popularity_affinity_cap > 0 or not len(liked_upvotes):
        return out
    # every subscriber's papers in one flat array (20,000 subscribers: ~50 ms, not ~0.7 s)
    owner = np.repeat(np.arange(len(liked_upvotes)), [len(u) for u in liked_upvotes])
    known, logs = _known_logs([u for ups in liked_upvotes for u in ups])
    owner = owner[known]
    count = np.bincount(owner, minlength=len(out))
    total = np.bincount(owner, weights=(logs - scale[0]) / scale[1], minlength=len(out))
    prior = max(weights.popularity_affinity_prior_likes, 0)
    share = (total + prior) / np.maximum(count + prior, 1)
    has = count > 0
    out[has] = np.clip(share[has], 0.0, weights.popularity_affinity_cap)
    return out


def score(
    profiles: Profiles,
    papers: sp.csr_matrix,
    popularity: np.ndarray | None = None,
    weights: Weights = Weights(),
    gram: CandidateGram | None = None,
    affinity: np.ndarray | None = None,
    papers_t: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Every subscriber against every paper in one sparse product, plus the crowd prior
    (scaled per subscriber by ``affinity``, :func:`crowd_affinity`, when given).
    ``papers_t``: ``papers.T`` as CSR, when the caller keeps it for a run's chunks.

    With ``gram`` (built on these ``papers``), Rocchio profiles are scored as what they are:
    a few stored papers and an interests vector, weighted (``profiles.mix``).

    Relevance is in standard deviations above the subscriber's average corpus paper, so the
    same number means the same rarity for every subscriber (what instant alerts need); the
    prior is added only where :func:`crowd_lift` allows.
    """
    if gram is not None and profiles.mix is not None:
        relevance = gram.scores(*profiles.mix) - profiles.offset[:, None]
    else:
        right = papers.T.tocsr() if papers_t is None else papers_t
        relevance = _sparse_scores(profiles.matrix, right)
        if np.result_type(relevance, profiles.offset) == relevance.dtype:
            relevance -= profiles.offset[:, None]  # in place: one array of the chunk's size
        else:
            relevance = relevance - profiles.offset[:, None]
    # no paper with more upvotes than another (an arXiv feed: none has a count) lifts nothing
    if (
        popularity is None
        or not weights.popularity
        or not len(popularity)
        or not np.ptp(popularity)
    ):
        return relevance
    return relevance + crowd_lift(relevance, popularity, weights, affinity, profiles.nothing_liked)


# Profiles multiplied with the papers at once, this many at a time: the product is nearly
# dense, and scipy holds it as a sparse matrix (12 bytes an entry) before it is made dense (100
# rows of 26,000 papers: 31 MB, where a chunk of 500 held 156 MB).
_SPARSE_ROWS = 100
# ... unless the block's profiles, made dense over the terms they use, hold at most this many
# entries (8M float32: 32 MB), when a block is a chunk of readers (compose's 128)
_DENSE_TERMS = 1 << 23
_DENSE_ROWS = 128
# A dense block is multiplied 64 readers at a time: each of a paper's terms reads the block's
# row for it, and 128 readers' rows (~31,000 terms: 16 MB) left the cache where 64's (~20,000:
# 5 MB) stay: 230-260 against 460-550 ms for 256 CiteULike-t readers' libraries by 25,975
# papers on the AMD EPYC (16 to 64 alike). The same numbers bit for bit: which blocks go
# sparse is still decided 128 readers at a time, and in a dense block a term another reader
# uses adds an exact 0
_CACHED_ROWS = 64
_TILE = 512


def _sparse_scores(profiles: sp.csr_matrix, right: sp.csr_matrix) -> np.ndarray:
    """``profiles @ right`` (the papers transposed, CSR) as a dense array.

    A block of profiles is made dense over the terms it uses, and the papers' rows of those
    terms multiply it: scipy's sparse product builds the nearly dense result as a sparse
    matrix first, twice the time (0.105 against 0.053 s for 128 readers of 26,000 papers).
    Each score is its reader's terms summed in the order of their columns either way, a term
    only another reader of the block uses adding an exact zero: the same whoever else is in
    the block (the last bits may differ from the sparse product's, which rounds otherwise).
    Blocks too wide for that (readers with libraries of thousands of papers) are multiplied
    sparse, ``_SPARSE_ROWS`` at a time."""
    dtype = np.result_type(profiles.dtype, right.dtype)
    out = np.empty((profiles.shape[0], right.shape[1]), dtype=dtype)
    for start in range(0, profiles.shape[0], _DENSE_ROWS):
        block = profiles[start : start + _DENSE_ROWS]
        if len(_terms_used(block)) * block.shape[0] <= _DENSE_TERMS:
            for part in range(0, block.shape[0], _CACHED_ROWS):
                _dense_scores(block[part : part + _CACHED_ROWS], right, out[start + part :])
            continue
        for at in range(0, block.shape[0], _SPARSE_ROWS):
            end = start + min(at + _SPARSE_ROWS, block.shape[0])
            out[start + at : end] = (block[at : at + _SPARSE_ROWS] @ right).toarray()
    return out


def _dense_scores(block: sp.csr_matrix, right: sp.csr_matrix, out: np.ndarray) -> None:
    """:func:`_sparse_scores`' dense route for one block, into ``out``'s first rows."""
    used = _terms_used(block)
    # (terms x readers, dense) by (candidates x terms, CSC: right's rows as they are)
    dense = block[:, used].T.toarray().astype(out.dtype, copy=False)
    product = right[used].T @ dense  # candidates x readers
    scores = out[: block.shape[0]]
    for at in range(0, len(product), _TILE):  # a transposing copy a cache's worth
        scores[:, at : at + _TILE] = product[at : at + _TILE].T  # at a time: 25 -> 4 ms


def _terms_used(block: sp.csr_matrix) -> np.ndarray:
    """The columns (terms) any row of ``block`` has, in order."""
    seen = np.zeros(block.shape[1], dtype=bool)
    seen[block.indices] = True
    return np.flatnonzero(seen)


class CandidateGram:
    """Dot products of corpus rows with one run's candidate papers, each row computed once.

    A Rocchio profile is a weighted sum of a few corpus rows (seeds, votes) and an interests
    vector, so its scores are the same weighted sum of those rows' dot products with the
    candidates. The profile × candidates sparse product (~1,200 terms a profile, each meeting
    every candidate that has it) was the costliest step per subscriber; here a subscriber costs
    ~7 dense rows and one small interests product. The candidates' own rows come first: they
    are also MMR's cosines (:attr:`candidates`)."""

    def __init__(self, corpus: sp.csr_matrix, candidate_rows: np.ndarray, block: int = 1000):
        self.corpus = corpus
        self.block = block
        # compose scores a chunk (scores) while it explains the one before (pair_dots): both
        # add rows, and a row's slot must not be seen before its block is there
        self._adding = threading.RLock()
        self.right = corpus[candidate_rows].T.tocsr()
        self.slot: dict[int, tuple[int, int]] = {}  # corpus row -> (block, row in it)
        self.blocks: list[np.ndarray] = []
        self._add_own(np.asarray(candidate_rows))
        self.candidates = self.blocks[0] if self.blocks else np.zeros((0, 0), np.float32)

    def _add_own(self, rows: np.ndarray) -> None:
        """The candidates' block with themselves, C @ C.T. It is symmetric, so each pair is
        computed once and mirrored: half the run's largest product. Either way a value is the
        same sum in the same (column) order, so the block is bit for bit what :meth:`_add`
        gives."""
        if len(rows) == 0 or len(np.unique(rows)) != len(rows):
            self._add(rows)
            return
        own = self.corpus[rows]
        own.sort_indices()
        out = np.empty((len(rows), len(rows)), dtype=np.float32)
        for start in range(0, len(rows), self.block):
            stop = min(start + self.block, len(rows))
            part = (own[start:stop] @ own[start:].T.tocsr()).toarray()
            out[start:stop, start:] = part
            out[start:, start:stop] = part.T
        self.blocks.append(out)
        self.slot.update({int(r): (0, i) for i, r in enumerate(rows.tolist())})

    def _add(self, rows: np.ndarray) -> None:
        new = [int(r) for r in dict.fromkeys(rows.tolist()) if int(r) not in self.slot]
        if not new:
            return
        out = np.empty((len(new), self.right.shape[1]), dtype=np.float32)
        for start in range(0, len(new), self.block):
            part = new[start : start + self.block]
            out[start : start + len(part)] = (self.corpus[part] @ self.right).toarray()
        b = len(self.blocks)
        self.slot.update({r: (b, i) for i, r in enumerate(new)})
        self.blocks.append(out)

    def dots(self, rows: list[int], candidates: list[int]) -> np.ndarray:
        """(candidates × rows) dot products of the given corpus rows with given candidates."""
        wanted = np.asarray(rows, dtype=np.int64)
        picked = np.asarray(candidates, dtype=np.int64)
        pairs = self.pair_dots(np.tile(wanted, len(picked)), np.repeat(picked, len(wanted)))
        return pairs.reshape(len(picked), len(wanted))

    def pair_dots(self, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """The dot product of corpus row ``rows[k]`` with candidate ``candidates[k]``, for every
        k: one gather per block, however many subscribers' pairs are asked for at once."""
        rows = np.asarray(rows, dtype=np.int64)
        with self._adding:
            self._add(rows)
            where = np.array([self.slot[int(r)] for r in rows], dtype=np.int64).reshape(-1, 2)
            blocks = list(self.blocks)
        out = np.empty(len(rows), dtype=np.float32)
        for b, block in enumerate(blocks):
            mine = where[:, 0] == b
            out[mine] = block[where[mine, 1], np.asarray(candidates, dtype=np.int64)[mine]]
        return out

    def scores(
        self, coef: sp.csr_matrix, interest_part: sp.csr_matrix | None, block: int = 250
    ) -> np.ndarray:
        """(rows × candidates) scores of ``coef @ corpus + interest_part``, as float32."""
        coef = coef.tocsr()
        with self._adding:
            self._add(np.unique(coef.indices))
            where = np.array([self.slot[int(c)] for c in coef.indices], dtype=np.int64)
            blocks = list(self.blocks)
        where = where.reshape(-1, 2)
        out = np.empty((coef.shape[0], self.right.shape[1]), dtype=np.float32)
        for start in range(0, coef.shape[0], block):
            stop = min(start + block, coef.shape[0])
            lo, hi = coef.indptr[start], coef.indptr[stop]
            total = np.zeros((stop - start, self.right.shape[1]))
            for b, rows in enumerate(blocks):
                mine = np.flatnonzero(where[lo:hi, 0] == b)
                if not len(mine):
                    continue
                owner = np.searchsorted(coef.indptr[start : stop + 1], lo + mine, side="right") - 1
                part = sp.csr_matrix(
                    (coef.data[lo + mine], (owner, where[lo + mine, 1])),
                    shape=(stop - start, rows.shape[0]),
                )
                total += part @ rows
            if interest_part is not None:  # per block: the whole chunk's product is ~100 MB
                total += (interest_part[start:stop] @ self.right).toarray()
            out[start:stop] = total
        return out


def crowd_lift(
    relevance: np.ndarray,
    popularity: np.ndarray,
    weights: Weights,
    affinity: np.ndarray | None = None,
    nothing_liked: np.ndarray | None = None,
) -> np.ndarray:
    """The prior's share of each score: a tie-breaker among relevant papers, never more.

    The standardised prior is shifted to start at 0 (the least upvoted paper gets no lift; a
    shift changes no order among lifted papers), scaled by ``weights.popularity`` and by each
    subscriber's ``affinity`` (:func:`crowd_affinity`; 1 when not given) and given only to
    papers at or above the subscriber's relevance bar (``popularity_bar``). A paper below the
    bar keeps its relevance, which is below every lifted paper's: no upvote count lifts it
    over them. A subscriber with ``nothing_liked`` (only thumbs-down or topics not wanted) gets
    it on every paper too: their scores say what to avoid, not what is relevant.
    """
    lift = weights.popularity * (popularity - popularity.min())
    # A subscriber with nothing to go on yet (every paper equally relevant) takes the crowd's
    # word for all of them: the prior is all a cold-start digest has.
    blank = relevance.max(axis=1, keepdims=True) == relevance.min(axis=1, keepdims=True)
    eligible = relevance >= weights.popularity_bar
    eligible |= blank
    if nothing_liked is not None:
        eligible |= nothing_liked[:, None]
    if affinity is None:
        return np.where(eligible, lift[None, :], 0).astype(relevance.dtype)
    out = np.multiply.outer(affinity, lift)  # float64, then rounded once, as it always was
    out *= eligible
    return out.astype(relevance.dtype, copy=False)


def top_k(
    scores: np.ndarray, k: int, allowed: np.ndarray | None = None, block: int = 256
) -> list[list[int]]:
    """Per row, the column indices of the k best scores (best first), among allowed columns;
    equal scores in :func:`best_columns`' order. Rows go ``block`` at a time, so the masked
    copy and the partition's int64 indices stay a few MB instead of three more arrays the
    size of ``scores``."""
    k = min(k, scores.shape[1])
    if k == 0:
        return [[] for _ in range(scores.shape[0])]
    out: list[list[int]] = []
    for start in range(0, scores.shape[0], block):
        part_scores = scores[start : start + block]
        if allowed is not None:
            part_scores = np.where(allowed[start : start + block], part_scores, -np.inf)
        best = best_columns(part_scores, k)
        finite = np.isfinite(np.take_along_axis(part_scores, best, axis=1))
        out += [row[keep].tolist() for row, keep in zip(best, finite, strict=True)]
    return out


def best_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """(rows × k) each row's k best columns, best first; 0 < k <= the number of columns.

    Equal scores go to the later column first (candidates come oldest first, so: the newest
    paper first): an explicit order, so a reader whose scores tie (a blank reader, a paper
    stored twice) gets the same digest on every NumPy, whose selection otherwise breaks ties
    by its internals. A NaN counts as no score (below every number).

    Each row's k-th largest score is found by a partition of the values (half the time of
    one of the indices: 5.6 against 10.2 ms for 128 readers by 25,975 papers), and the columns
    at or above it read off a comparison; a row where that is not exactly k columns (a tie at
    the k-th score, a NaN) is worked out by :func:`_best_columns_partitioned`."""
    rows, n = scores.shape
    if not rows or k >= n:
        return _best_columns_partitioned(scores, k)
    top = np.partition(scores, n - k, axis=1)[:, n - k :]
    kth = top[:, 0]
    above = scores >= kth[:, None]
    counts = np.count_nonzero(above, axis=1)
    # a partition puts NaN last, so a row's NaN are among its top k unless the k-th is one
    # (which no score is >= ): those rows are settled as NaN were -inf
    exact = (counts == k) & ~np.isnan(top).any(axis=1)
    out = np.empty((rows, k), dtype=np.int64)
    if exact.any():
        flat = np.flatnonzero(above)  # row by row, each row's columns in order
        ok = np.flatnonzero(exact)
        at = flat[(np.cumsum(counts) - counts)[ok, None] + np.arange(k)]
        part = at - (ok * n)[:, None]
        values = scores.reshape(-1)[at]
        order = np.lexsort((-part, -values), axis=1)  # best first, then the later column
        out[exact] = np.take_along_axis(part, order, axis=1)
    if not exact.all():
        out[~exact] = _best_columns_partitioned(scores[~exact], k)
    return out


def _best_columns_partitioned(scores: np.ndarray, k: int) -> np.ndarray:
    """:func:`best_columns` by a partition of each row's indices, ties and NaN settled."""
    n = scores.shape[1]
    # the k largest from the top end: half the time of partitioning a negated copy
    part = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    values = np.take_along_axis(scores, part, axis=1)
    _settle_ties(scores, part, values, k)
    order = np.lexsort((-part, -values), axis=1)  # best first, then the later column
    return np.take_along_axis(part, order, axis=1)


def _settle_ties(scores: np.ndarray, part: np.ndarray, values: np.ndarray, k: int) -> None:
    """Redo, in place, the rows of a partition whose k-th score is shared with a column left
    out (which of the equal columns came in was the partition's choice), or is NaN (which the
    partition ranks above everything): scores above the k-th first, then the equal ones from
    the last column back; a NaN counts as no score."""
    kth = values.min(axis=1)  # NaN where a NaN came in
    crowded = np.count_nonzero(scores >= kth[:, None], axis=1) > k
    # below -inf nothing is left out that counts: those columns are dropped as not allowed
    for r in np.flatnonzero((crowded & (kth > -np.inf)) | np.isnan(kth)).tolist():
        row = np.where(np.isnan(scores[r]), -np.inf, scores[r])
        cut = np.partition(row, len(row) - k)[len(row) - k]
        cols = np.concatenate([np.flatnonzero(row > cut), np.flatnonzero(row == cut)[::-1]])[:k]
        part[r] = cols
        values[r] = row[cols]


def explain(
    model: TextModel, profile: sp.csr_matrix | np.ndarray, paper_text: str, n: int = 3
) -> list[str]:
    """The terms of the paper that contributed most to its score for this profile.

    A term's contribution is its weight in the profile times its weight in the paper; only
    terms that raised the score are named, and every one of them occurs in ``paper_text``.
    """
    # scipy ships no type information: issparse does not narrow ``profile`` for mypy
    dense = profile.toarray().ravel() if sp.issparse(profile) else np.asarray(profile).ravel()  # type: ignore[union-attr]
    tokens = list(dict.fromkeys(model.tokens(paper_text)))
    if not tokens:
        return []
    vector = model.transform([paper_text]).toarray().ravel()
    cols = model.columns(tokens)
    return explain_terms(tokens, dense[cols] * vector[cols], n)


def explain_terms(tokens: list[str], contributions: np.ndarray, n: int = 3) -> list[str]:
    """Up to ``n`` tokens with the largest positive contributions, bigrams preferred."""
    order = np.argsort(-contributions, kind="stable")
    chosen: list[str] = []
    for i in order:
        if contributions[i] <= 0:
            break
        term = tokens[i]
        # A bigram says more than its words; skip words already inside a chosen bigram and
        # bigrams whose words are both already chosen.
        words = term.split()
        if any(term in c.split() for c in chosen) or (
            len(words) > 1 and all(w in chosen for w in words)
        ):
            continue
        chosen = [c for c in chosen if c not in words]
        chosen.append(term)
        if len(chosen) == n:
            break
    return chosen


def similar_liked(
    paper_vec: sp.csr_matrix, liked_vecs: sp.csr_matrix | None, threshold: float = SIMILAR_LIKED_BAR
) -> int | None:
    """Index of the liked paper most similar to this one, if similar enough to mention (one
    paper; :func:`most_similar_liked` does a digest's picks in one product)."""
    if liked_vecs is None:
        return None
    paper_vec, liked_vecs = sp.csr_matrix(paper_vec), sp.csr_matrix(liked_vecs)
    everyone = np.arange(liked_vecs.shape[0])
    return most_similar_liked(paper_vec, [0], liked_vecs, everyone, threshold=threshold)[0]


def mmr(
    candidates: list[int],
    scores: np.ndarray,
    vectors: sp.csr_matrix,
    k: int,
    lam: float = 0.5,
    similarity: np.ndarray | None = None,
) -> list[int]:
    """Maximal marginal relevance: trade a little score for not repeating the same idea.

    Scores are rescaled to [0, 1] within the pool so that ``lam`` means the same thing whatever
    the score scale; redundancy is the cosine to the closest paper already chosen.
    """
    if len(candidates) <= 1 or lam >= 1:
        return candidates[:k]
    pool = np.asarray(scores[candidates], dtype=np.float64)
    spread = pool.max() - pool.min()
    relevance = (pool - pool.min()) / spread if spread > 0 else np.ones_like(pool)
    if similarity is not None:  # precomputed for all candidates of a run
        sim = similarity[np.ix_(candidates, candidates)]
    else:
        sim = dot_rows(vectors, candidates, vectors, candidates)
    chosen: list[int] = []
    redundancy = np.zeros(len(candidates))
    available = np.ones(len(candidates), dtype=bool)
    while available.any() and len(chosen) < k:
        values = np.where(available, lam * relevance - (1 - lam) * redundancy, -np.inf)
        pick = int(np.argmax(values))
        chosen.append(pick)
        available[pick] = False
        redundancy = np.maximum(redundancy, sim[:, pick])
    return [candidates[i] for i in chosen]


def mmr_many(
    pools: list[list[int]],
    scores: np.ndarray,
    ks: list[int],
    lam: float,
    similarity=None,
    vectors: sp.csr_matrix | None = None,
) -> list[list[int]]:
    """:func:`mmr` for many subscribers at once (row i of ``scores``, its pool ``pools[i]``
    and digest size ``ks[i]``), with the run's ``similarity`` (indexable like an array), or
    without one each pool's own cosines of ``vectors`` (:func:`pool_cosines`, the same
    numbers): the same arithmetic on every row, side by side, instead of ~60 small numpy calls
    a digest."""
    out: list[list[int] | None] = [None] * len(pools)
    rows = []
    for i, candidates in enumerate(pools):
        if len(candidates) <= 1 or lam >= 1:
            out[i] = list(candidates[: ks[i]])
        else:
            rows.append(i)
    if rows:
        width = max(len(pools[i]) for i in rows)
        cols = np.zeros((len(rows), width), dtype=np.int64)
        available = np.zeros((len(rows), width), dtype=bool)
        for r, i in enumerate(rows):
            cols[r, : len(pools[i])] = pools[i]
            available[r, : len(pools[i])] = True
        pool = np.take_along_axis(scores[rows], cols, axis=1).astype(np.float64)
        low = np.where(available, pool, np.inf).min(axis=1, keepdims=True)
        spread = np.where(available, pool, -np.inf).max(axis=1, keepdims=True) - low
        relevance = np.where(
            spread > 0, (pool - low) / np.where(spread > 0, spread, 1), np.ones_like(pool)
        )
        if similarity is not None:
            sim = similarity[cols[:, :, None], cols[:, None, :]]
        elif vectors is not None:
            sim = pool_cosines(vectors, [pools[i] for i in rows])
        else:
            raise ValueError("mmr_many needs the run's similarity or the papers' vectors")
        redundancy = np.zeros(pool.shape)
        wanted = np.array([ks[i] for i in rows])
        picks = np.zeros((len(rows), width), dtype=np.int64)
        taken = np.zeros(len(rows), dtype=np.int64)
        everyone = np.arange(len(rows))
        for step in range(int(wanted.max())):
            going = available.any(axis=1) & (taken < wanted)
            if not going.any():
                break
            values = np.where(available, lam * relevance - (1 - lam) * redundancy, -np.inf)
            pick = np.argmax(values, axis=1)
            picks[going, step] = pick[going]
            taken += going
            available[everyone[going], pick[going]] = False
            column = sim[everyone, :, pick]  # each row's cosines to its pick
            redundancy = np.where(going[:, None], np.maximum(redundancy, column), redundancy)
        for r, i in enumerate(rows):
            out[i] = [pools[i][j] for j in picks[r, : taken[r]].tolist()]
    return out  # type: ignore[return-value]


def pool_cosines(vectors: sp.csr_matrix, pools: list[list[int]]) -> np.ndarray:
    """(pools × width × width) the cosines of each pool's papers (rows of ``vectors``, unit
    rows with sorted columns) with each other, as float16, zero past a pool's end: each is
    the very number the run's dense Gram gives (:class:`CandidateGram`, float32 sums over the
    shared columns in column order) and MMR reads (``compose.Float16Cosines``), so a digest is
    diversified the same way whether its run kept the Gram or not.

    One sparse product for all the pools: each pool's columns are renumbered apart from every
    other pool's (in order), so the product is block diagonal and holds each pool's pairs and
    no others (a chunk of 250 digests: 225,000 pairs, not 250 products of 30 rows)."""
    width = max((len(p) for p in pools), default=0)
    out = np.zeros((len(pools), width, width), dtype=np.float16)
    sizes = np.array([len(p) for p in pools], dtype=np.int64)
    if not sizes.sum():
        return out
    flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in pools])
    rows = vectors[flat]
    rows.sort_indices()
    owner = np.repeat(np.arange(len(pools), dtype=np.int64), sizes)
    keys = np.repeat(owner, np.diff(rows.indptr)) * np.int64(vectors.shape[1]) + rows.indices
    distinct, compact = np.unique(keys, return_inverse=True)
    apart = sp.csr_matrix(
        (rows.data, compact.ravel(), rows.indptr), shape=(len(flat), len(distinct))
    )
    pairs = (apart @ apart.T.tocsr()).tocoo()
    local = np.arange(len(flat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    out[owner[pairs.row], local[pairs.row], local[pairs.col]] = pairs.data
    return out


def calibration_rows(corpus: sp.csr_matrix) -> np.ndarray:
    """The corpus rows that score spreads are measured on (a fixed-seed sample)."""
    if corpus.shape[0] <= CALIBRATION_SAMPLE:
        return np.arange(corpus.shape[0])
    rows = np.random.default_rng(0).choice(corpus.shape[0], CALIBRATION_SAMPLE, replace=False)
    return np.sort(rows)


def _calibration_sample(corpus: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """The corpus's :func:`calibration_rows` and their mean row, made once per corpus: every
    chunk of a run calibrates on them (a dense mean of 2^20 terms and a gather of 1,500 rows
    were ~20 ms a chunk, 157 chunks at 20,000 readers)."""
    with _SAMPLE_LOCK:
        if _SAMPLE and _SAMPLE[0][0]() is corpus:
            return _SAMPLE[0][1], _SAMPLE[0][2]
    sample = corpus if corpus.shape[0] <= CALIBRATION_SAMPLE else corpus[calibration_rows(corpus)]
    # shared by the scoring threads: sorted now, not by a product while another reads it (the
    # corpus's terms are sorted already: nothing moves)
    sample.sort_indices()
    if sample.shape[0]:
        centre = np.asarray(sample.mean(axis=0)).ravel()
    else:
        centre = np.zeros(corpus.shape[1])
    with _SAMPLE_LOCK:  # the last corpus's only: a daemon's next corpus frees it
        _SAMPLE[:] = [(weakref.ref(corpus), sample, centre)]
    return sample, centre


# (the corpus, its calibration sample, their mean row) of the last corpus calibrated on; a
# corpus matrix is never changed in place (RankingSession builds another)
_SAMPLE: list[tuple[weakref.ref, sp.csr_matrix, np.ndarray]] = []
_SAMPLE_LOCK = threading.Lock()


def _standardised_rows(
    rows: sp.csr_matrix,
    sample: sp.csr_matrix,
    with_scale: bool = False,
    spread: np.ndarray | None = None,
):
    """Every row divided by the spread of its scores over the sample, in one product (and,
    ``with_scale``, the factors); ``spread`` when the caller has worked it out already."""
    if rows.shape[0] == 0 or sample.shape[0] < 2:
        scale = np.ones(rows.shape[0], dtype=np.float32)
        return (rows.tocsr(), scale) if with_scale else rows.tocsr()
    if spread is None:
        spread = np.asarray((sample @ rows.T).toarray().std(axis=0), dtype=np.float64)
    scale = np.where((spread > 0) & np.isfinite(spread), 1 / np.where(spread > 0, spread, 1), 1)
    scale = scale.astype(np.float32)
    out = (sp.diags(scale) @ rows).tocsr()
    return (out, scale) if with_scale else out


def most_similar_liked(
    papers: sp.csr_matrix,
    picks: list[int] | np.ndarray,
    liked: sp.csr_matrix,
    liked_rows: list[int] | np.ndarray,
    same: np.ndarray | None = None,
    threshold: float = SIMILAR_LIKED_BAR,
    sims: np.ndarray | None = None,
) -> list[int | None]:
    """For each pick (a row of ``papers``), the position in ``liked_rows`` (rows of ``liked``)
    of the most similar liked paper, if similar enough to mention: one product for a whole
    digest. ``same[i, j]`` True means pick i *is* liked paper j: never "similar to" itself.
    ``sims`` (picks × liked) is given when the caller already has them (a CandidateGram)."""
    if len(liked_rows) == 0 or len(picks) == 0:
        return [None] * len(picks)
    if sims is None:
        sims = dot_rows(papers, picks, liked, liked_rows)
    else:
        sims = np.array(sims, dtype=np.float64)
    if same is not None:
        sims[same] = -np.inf
    best = np.argmax(sims, axis=1)
    values = sims[np.arange(len(best)), best]
    return [int(b) if v >= threshold else None for b, v in zip(best, values, strict=True)]


def dot_rows(
    a: sp.csr_matrix,
    rows_a: list[int] | np.ndarray,
    b: sp.csr_matrix,
    rows_b: list[int] | np.ndarray,
) -> np.ndarray:
    """Dot products of the given rows of ``a`` with the given rows of ``b`` (dense,
    ``len(rows_a)`` × ``len(rows_b)``), for the few rows of one digest.

    ``a[rows_a] @ b[rows_b].T`` over 2**20 columns slices both matrices and converts the
    transpose, allocating and scanning a 2**20 index array (~7 ms a call, the cost that made
    20,000 subscribers with votes take 834 s). Here the rows' entries are read straight from
    the CSR arrays, their columns renumbered 0..k-1, and the products summed per row of ``b``
    with numpy alone (no BLAS threads, which a busy machine makes 100x slower)."""
    cols_a, vals_a, owner_a = _row_entries(a, rows_a)
    cols_b, vals_b, _ = _row_entries(b, rows_b)
    if not len(cols_a) or not len(cols_b):
        return np.zeros((len(rows_a), len(rows_b)))
    cols, where = np.unique(np.r_[cols_a, cols_b], return_inverse=True)
    dense_a = np.zeros((len(rows_a), len(cols)))
    dense_a[owner_a, where[: len(cols_a)]] = vals_a
    products = dense_a[:, where[len(cols_a) :]] * vals_b  # rows_a × entries of rows_b
    totals = np.concatenate([np.zeros((len(rows_a), 1)), np.cumsum(products, axis=1)], axis=1)
    ends = np.cumsum(np.diff(b.indptr)[np.asarray(rows_b, dtype=np.int64)])
    starts = ends - np.diff(b.indptr)[np.asarray(rows_b, dtype=np.int64)]
    return totals[:, ends] - totals[:, starts]


def _row_entries(m: sp.csr_matrix, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(columns, values, which of ``rows``) of every stored entry of the given CSR rows."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = m.indptr[rows], m.indptr[rows + 1]
    lengths = ends - starts
    shift = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    positions = np.arange(int(lengths.sum())) + shift
    return m.indices[positions], m.data[positions], np.repeat(np.arange(len(rows)), lengths)
