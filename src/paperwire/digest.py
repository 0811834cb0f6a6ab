"""Compose digests: gather each subscriber's signals and candidates from the store, rank them
all in one pass with :mod:`paperwire.rank`, and return the picks with their reasons.

Nothing here sends or marks anything; ``paperwire digest`` previews exactly what ``send`` would
deliver.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import rank
from .config import Config, SubscriberConfig
from .paper import paper_text
from .store import Store, iso

# Score rows for this many subscribers at a time, so memory stays flat as subscribers grow.
SUBSCRIBER_CHUNK = 2000
# Rank this many more than the digest holds, then diversify down to the digest size (MMR;
# the effect of its trade-off, weights.mmr_lambda, is measured in benchmarks/README.md).
MMR_POOL = 3
DEFAULT_WEIGHTS = rank.Weights()


@dataclass
class Pick:
    """One paper chosen for one subscriber, with the score and the words that explain it."""

    paper_id: str
    title: str
    url: str
    score: float
    reasons: list[str]
    paper: dict[str, Any] = field(repr=False, default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "paper_id": self.paper_id,
            "title": self.title,
            "url": self.url,
            "score": round(float(self.score), 6),
            "reasons": self.reasons,
            "authors": self.paper.get("authors", []),
            "published": self.paper.get("published"),
            "upvotes": self.paper.get("upvotes"),
        }


@dataclass
class Digest:
    subscriber: SubscriberConfig
    since: dt.datetime
    picks: list[Pick]
    candidates: int = 0


def window_start(store: Store, config: Config, subscriber_id: str, now: dt.datetime) -> dt.datetime:
    """Papers first seen since the subscriber's last digest (or the last few days if none)."""
    last = store.last_digest_time(subscriber_id)
    return last if last is not None else now - dt.timedelta(days=config.first_digest_days)


def subscriber_signals(
    store: Store,
    subscribers: list[SubscriberConfig],
    interests: dict[str, str],
    corpus_index: dict[str, int] | None = None,
) -> list[rank.Signals]:
    """Interests (as edited on the profile page, else the config), seed papers and votes."""
    corpus_index = corpus_index or {}
    votes_by_sub: dict[str, list[dict]] = {s.id: [] for s in subscribers}
    for vote in store.votes(votes_by_sub):
        votes_by_sub[vote["subscriber_id"]].append(vote)
    needed = {v["paper_id"] for vs in votes_by_sub.values() for v in vs}
    needed |= {p for s in subscribers for p in s.seed_papers}
    papers = store.papers(needed)
    out = []
    for sub in subscribers:
        seed_ids = [p for p in sub.seed_papers if p in papers]
        seeds = [paper_text(papers[p]["title"], papers[p]["abstract"]) for p in seed_ids]
        votes, liked, rated = [], [], list(seed_ids)
        for vote in votes_by_sub[sub.id]:
            paper = papers.get(vote["paper_id"])
            if paper is None:
                continue  # a vote imported for a paper we never stored carries no text
            when = dt.datetime.fromisoformat(vote["voted_at"])
            votes.append((paper_text(paper["title"], paper["abstract"]), vote["vote"], when))
            rated.append(paper["paper_id"])
            if vote["vote"] > 0:
                liked.append((paper["paper_id"], paper["title"]))
        liked.extend((p, papers[p]["title"]) for p in seed_ids)
        out.append(
            rank.Signals(
                interests=interests.get(sub.id, sub.interests),
                seed_texts=seeds,
                votes=votes,
                liked_titles=liked,
                corpus_rows=[corpus_index[p] for p in rated if p in corpus_index],
            )
        )
    return out


@dataclass
class _Corpus:
    """The stored corpus, vectorised once per run: every profile and candidate shares it."""

    model: rank.TextModel
    ids: list[str]
    rows: list[dict[str, Any]]
    texts: list[str]
    matrix: sp.csr_matrix
    index: dict[str, int]

    @classmethod
    def load(cls, store: Store) -> _Corpus:
        rows = store.corpus()
        texts = [paper_text(r["title"], r["abstract"]) for r in rows]
        model = rank.TextModel().fit(texts)
        ids = [r["paper_id"] for r in rows]
        return cls(
            model, ids, rows, texts, model.transform(texts), {p: i for i, p in enumerate(ids)}
        )


def compose(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None = None,
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    limit: int | None = None,
    weights: rank.Weights = DEFAULT_WEIGHTS,
) -> dict[str, Digest]:
    """Rank the candidates of every given subscriber in one pass; returns digests by id.

    A candidate is a paper first seen after the subscriber's window start that they have not
    rated and were not already sent (or are being sent).
    """
    subscribers = list(config.subscribers if subscribers is None else subscribers)
    if not subscribers:
        return {}
    starts = {s.id: since or window_start(store, config, s.id, now) for s in subscribers}
    candidate_ids = store.papers_since(min(starts.values()))
    digests = {s.id: Digest(s, starts[s.id], []) for s in subscribers}
    if not candidate_ids:
        return digests
    candidates = store.papers(candidate_ids)
    rows = [candidates[p] for p in candidate_ids]
    corpus = _Corpus.load(store)
    cols = np.array([corpus.index[p] for p in candidate_ids])
    texts = [corpus.texts[c] for c in cols]
    matrix = corpus.matrix[cols]
    first_seen = np.array([r["first_seen"] for r in rows])
    prior = rank.popularity_prior([r.get("upvotes") for r in rows])
    excluded = store.excluded_ids(s.id for s in subscribers)
    interests = store.interests_overrides()
    column = {p: i for i, p in enumerate(candidate_ids)}

    for start in range(0, len(subscribers), SUBSCRIBER_CHUNK):
        chunk = subscribers[start : start + SUBSCRIBER_CHUNK]
        signals = subscriber_signals(store, chunk, interests, corpus.index)
        profiles = rank.build_profiles_from_signals(
            corpus.model, signals, corpus.matrix, now, weights
        )
        scores = rank.score(profiles, matrix, prior, weights)
        allowed = np.empty(scores.shape, dtype=bool)
        for row, sub in enumerate(chunk):
            allowed[row] = first_seen > iso(starts[sub.id])
            for paper_id in excluded.get(sub.id, ()):
                if paper_id in column:
                    allowed[row, column[paper_id]] = False
        sizes = [limit or sub.digest_size for sub in chunk]
        pools = rank.top_k(scores, max(sizes) * MMR_POOL, allowed)
        for row, sub in enumerate(chunk):
            digest = digests[sub.id]
            digest.candidates = int(allowed[row].sum())
            chosen = rank.mmr(pools[row], scores[row], matrix, sizes[row], weights.mmr_lambda)
            sig = signals[row]
            liked_texts = [t for t, v, _ in sig.votes if v > 0] + sig.seed_texts
            liked_vecs = corpus.model.transform(liked_texts) if liked_texts else None
            profile = profiles.matrix[row].toarray().ravel()
            for col in chosen:
                paper = rows[col]
                terms = rank.explain(corpus.model, profile, texts[col])
                reasons = [f"matches “{term}”" for term in terms]
                similar = rank.similar_liked(matrix[col], liked_vecs)
                if similar is not None and similar < len(sig.liked_titles):
                    reasons.append(f"similar to “{sig.liked_titles[similar][1]}”")
                if not reasons:
                    reasons = ["popular today" if paper.get("upvotes") else "new in your feeds"]
                pick = Pick(
                    paper["paper_id"],
                    paper["title"],
                    paper["url"],
                    float(scores[row, col]),
                    reasons,
                    paper,
                )
                digest.picks.append(pick)
    return digests


def score_matrix(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None,
    paper_ids: list[str],
    *,
    now: dt.datetime,
    weights: rank.Weights = DEFAULT_WEIGHTS,
) -> np.ndarray:
    """Scores (subscribers × papers) with the very profiles ``compose`` uses, nothing excluded.

    A score is in standard deviations above the subscriber's average stored paper (plus the
    popularity prior), so a percentile of a subscriber's scores over recent papers is their
    "usual bar" for instant alerts. Papers not in the store get NaN.
    """
    subscribers = list(config.subscribers if subscribers is None else subscribers)
    out = np.full((len(subscribers), len(paper_ids)), np.nan, dtype=np.float32)
    corpus = _Corpus.load(store)
    known = [i for i, p in enumerate(paper_ids) if p in corpus.index]
    if not subscribers or not known:
        return out
    cols = np.array([corpus.index[paper_ids[i]] for i in known])
    prior = rank.popularity_prior([corpus.rows[c]["upvotes"] for c in cols])
    interests = store.interests_overrides()
    for start in range(0, len(subscribers), SUBSCRIBER_CHUNK):
        chunk = subscribers[start : start + SUBSCRIBER_CHUNK]
        signals = subscriber_signals(store, chunk, interests, corpus.index)
        profiles = rank.build_profiles_from_signals(
            corpus.model, signals, corpus.matrix, now, weights
        )
        scores = rank.score(profiles, corpus.matrix[cols], prior, weights)
        out[start : start + len(chunk), known] = scores
    return out
