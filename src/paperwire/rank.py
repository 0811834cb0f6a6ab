"""Rank stage: pure functions from texts, signals and ``now`` to scores and reasons.

Feature space: a ``HashingVectorizer`` (word 1-2-grams, English stop words) with an IDF vector
fitted on the stored corpus. Hashing keeps the feature space fixed while the corpus grows
every day, so a term means the same column tomorrow; only the IDF weights are refitted, and
profiles are rebuilt from their raw signals (interests, seed papers, votes) on every run, so
they always live in the current space. Nothing here touches the database or the clock.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize
from sklearn.utils import murmurhash3_32

N_FEATURES = 2**20


@dataclass(frozen=True)
class Weights:
    """How much each signal counts in a profile (see benchmarks/README.md for how they were set)."""

    interests: float = 1.0
    seeds: float = 1.0
    liked: float = 1.5
    disliked: float = 0.5
    half_life_days: float = 120.0


@dataclass
class Signals:
    """Everything known about one subscriber's taste, as texts and dated votes."""

    interests: str = ""
    seed_texts: list[str] = field(default_factory=list)
    # (text, +1/-1, when) for each vote
    votes: list[tuple[str, int, dt.datetime]] = field(default_factory=list)
    liked_titles: list[tuple[str, str]] = field(default_factory=list)  # (paper_id, title)


class TextModel:
    """Hashed TF-IDF: ``fit`` learns IDF from a corpus, ``transform`` gives L2-normalised rows."""

    def __init__(self, n_features: int = N_FEATURES):
        self.n_features = n_features
        self.vectorizer = HashingVectorizer(
            n_features=n_features,
            ngram_range=(1, 2),
            stop_words="english",
            alternate_sign=False,
            norm=None,
            dtype=np.float32,
        )
        self.idf = np.ones(n_features, dtype=np.float32)
        self._analyzer = self.vectorizer.build_analyzer()

    def fit(self, texts: list[str]) -> TextModel:
        """Learn smoothed IDF weights from the corpus (unseen terms get the maximum)."""
        counts = self.vectorizer.transform(texts)
        df = np.bincount(counts.indices, minlength=self.n_features).astype(np.float32)
        n = counts.shape[0]
        self.idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
        return self

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        counts = self.vectorizer.transform(texts).tocsr()
        counts.data = 1 + np.log(counts.data)  # sublinear tf
        weighted = counts @ sp.diags(self.idf)
        return normalize(weighted.tocsr(), copy=False)

    def tokens(self, text: str) -> list[str]:
        return self._analyzer(text)

    def column(self, token: str) -> int:
        # HashingVectorizer with alternate_sign=False uses abs(murmurhash3_32(token, seed=0))
        return abs(murmurhash3_32(token, seed=0)) % self.n_features


def build_profiles(
    model: TextModel, signals: list[Signals], now: dt.datetime, weights: Weights = Weights()
) -> sp.csr_matrix:
    """One L2-normalised row per subscriber: a Rocchio mix of interests, seeds and decayed votes."""
    rows = []
    for sig in signals:
        parts: list[sp.csr_matrix] = []
        if sig.interests.strip():
            parts.append(weights.interests * model.transform([sig.interests]))
        if sig.seed_texts:
            seeds = model.transform(sig.seed_texts)
            parts.append(weights.seeds * sp.csr_matrix(seeds.mean(axis=0)))
        if sig.votes:
            texts = [text for text, _, _ in sig.votes]
            vectors = model.transform(texts)
            ages = np.array([max((now - when).total_seconds() / 86400, 0) for _, _, when in sig.votes])
            decay = np.power(0.5, ages / weights.half_life_days)
            signs = np.array([vote for _, vote, _ in sig.votes], dtype=np.float32)
            for sign, weight in ((1, weights.liked), (-1, -weights.disliked)):
                mask = signs == sign
                if mask.any():
                    coef = decay * mask
                    mean = sp.csr_matrix(coef @ vectors / coef.sum())
                    parts.append(weight * mean * float(coef.sum() / mask.sum()))
        if parts:
            rows.append(sum(parts[1:], parts[0]))
        else:
            rows.append(sp.csr_matrix((1, model.n_features), dtype=np.float32))
    return normalize(sp.vstack(rows).tocsr()) if rows else sp.csr_matrix((0, model.n_features))


def score(profiles: sp.csr_matrix, papers: sp.csr_matrix) -> np.ndarray:
    """Cosine similarity of every profile with every paper, in one sparse product."""
    return (profiles @ papers.T).toarray()


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[int]]:
    """Per row, the column indices of the k best scores (best first), among allowed columns."""
    scores = np.where(allowed, scores, -np.inf) if allowed is not None else scores
    k = min(k, scores.shape[1])
    if k == 0:
        return [[] for _ in range(scores.shape[0])]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    out = []
    for row, cols in enumerate(part):
        cols = cols[np.argsort(-scores[row, cols], kind="stable")]
        out.append([int(c) for c in cols if np.isfinite(scores[row, c])])
    return out


def explain(model: TextModel, profile: sp.csr_matrix, paper_text: str, n: int = 3) -> list[str]:
    """The terms of the paper that contributed most to its score for this profile."""
    dense = profile.toarray().ravel() if sp.issparse(profile) else profile
    contributions: dict[str, float] = {}
    for token in model.tokens(paper_text):
        if token in contributions:
            continue
        weight = float(dense[model.column(token)]) * float(model.idf[model.column(token)])
        if weight > 0:
            contributions[token] = weight
    ranked = sorted(contributions.items(), key=lambda item: -item[1])
    chosen: list[str] = []
    for term, _ in ranked:
        # A bigram says more than its words; skip words already inside a chosen bigram and
        # bigrams whose words are both already chosen.
        words = term.split()
        if any(term in c.split() for c in chosen) or (len(words) > 1 and all(w in chosen for w in words)):
            continue
        chosen = [c for c in chosen if c not in words]
        chosen.append(term)
        if len(chosen) == n:
            break
    return chosen


def similar_liked(
    paper_vec: sp.csr_matrix, liked_vecs: sp.csr_matrix, threshold: float = 0.25
) -> int | None:
    """Index of the liked paper most similar to this one, if similar enough to mention."""
    if liked_vecs is None or liked_vecs.shape[0] == 0:
        return None
    sims = (liked_vecs @ paper_vec.T).toarray().ravel()
    best = int(np.argmax(sims))
    return best if sims[best] >= threshold else None


def mmr(
    candidates: list[int], scores: np.ndarray, vectors: sp.csr_matrix, k: int, lam: float = 0.7
) -> list[int]:
    """Maximal marginal relevance: trade a little score for not repeating the same idea."""
    if len(candidates) <= 1:
        return candidates[:k]
    sub = vectors[candidates]
    sim = (sub @ sub.T).toarray()
    chosen: list[int] = []
    remaining = list(range(len(candidates)))
    while remaining and len(chosen) < k:
        if chosen:
            redundancy = sim[np.ix_(remaining, chosen)].max(axis=1)
        else:
            redundancy = np.zeros(len(remaining))
        values = lam * scores[[candidates[i] for i in remaining]] - (1 - lam) * redundancy
        pick = remaining[int(np.argmax(values))]
        chosen.append(pick)
        remaining.remove(pick)
    return [candidates[i] for i in chosen]


def decay_factor(age_days: float, half_life_days: float) -> float:
    return math.pow(0.5, max(age_days, 0) / half_life_days)
