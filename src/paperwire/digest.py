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

from . import rank
from .config import Config, SubscriberConfig
from .paper import paper_text
from .store import Store, iso

# Score rows for this many subscribers at a time, so memory stays flat as subscribers grow.
SUBSCRIBER_CHUNK = 2000
# Rank this many more than the digest holds, then diversify down to the digest size.
MMR_POOL = 3


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
    store: Store, subscribers: list[SubscriberConfig], interests: dict[str, str]
) -> list[rank.Signals]:
    """Interests (as edited on the profile page, else the config), seed papers and votes."""
    votes_by_sub: dict[str, list[dict]] = {s.id: [] for s in subscribers}
    for vote in store.votes(votes_by_sub):
        votes_by_sub[vote["subscriber_id"]].append(vote)
    needed = {v["paper_id"] for vs in votes_by_sub.values() for v in vs}
    needed |= {p for s in subscribers for p in s.seed_papers}
    papers = store.papers(needed)
    out = []
    for sub in subscribers:
        seeds = [paper_text(papers[p]["title"], papers[p]["abstract"]) for p in sub.seed_papers if p in papers]
        votes, liked = [], []
        for vote in votes_by_sub[sub.id]:
            paper = papers.get(vote["paper_id"])
            if paper is None:
                continue  # a vote imported for a paper we never stored carries no text
            votes.append(
                (paper_text(paper["title"], paper["abstract"]), vote["vote"],
                 dt.datetime.fromisoformat(vote["voted_at"]))
            )
            if vote["vote"] > 0:
                liked.append((paper["paper_id"], paper["title"]))
        for paper_id in sub.seed_papers:
            if paper_id in papers:
                liked.append((paper_id, papers[paper_id]["title"]))
        out.append(
            rank.Signals(
                interests=interests.get(sub.id, sub.interests),
                seed_texts=seeds,
                votes=votes,
                liked_titles=liked,
            )
        )
    return out


def compose(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None = None,
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    limit: int | None = None,
    weights: rank.Weights = rank.Weights(),
) -> dict[str, Digest]:
    """Rank the candidates of every given subscriber in one pass; returns digests by id."""
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
    model = rank.TextModel().fit([paper_text(r["title"], r["abstract"]) for r in store.corpus()])
    texts = [paper_text(r["title"], r["abstract"]) for r in rows]
    matrix = model.transform(texts)
    first_seen = np.array([r["first_seen"] for r in rows])
    prior = _popularity_prior(rows)
    excluded = store.excluded_ids(s.id for s in subscribers)
    interests = store.interests_overrides()
    column = {p: i for i, p in enumerate(candidate_ids)}

    for start in range(0, len(subscribers), SUBSCRIBER_CHUNK):
        chunk = subscribers[start : start + SUBSCRIBER_CHUNK]
        signals = subscriber_signals(store, chunk, interests)
        profiles = rank.build_profiles(model, signals, now, weights)
        scores = rank.score(profiles, matrix) + prior
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
            chosen = rank.mmr(pools[row], scores[row], matrix, sizes[row])
            liked_vecs = (
                model.transform([t for t, v, _ in signals[row].votes if v > 0] + signals[row].seed_texts)
                if signals[row].liked_titles
                else None
            )
            for col in chosen:
                paper = rows[col]
                reasons = rank.explain(model, profiles[row], texts[col])
                reasons = [f"matches “{term}”" for term in reasons]
                similar = rank.similar_liked(matrix[col], liked_vecs)
                if similar is not None and similar < len(signals[row].liked_titles):
                    reasons.append(f"similar to “{signals[row].liked_titles[similar][1]}”")
                if not reasons:
                    reasons = ["popular today" if paper.get("upvotes") else "new in your feeds"]
                digest.picks.append(
                    Pick(paper["paper_id"], paper["title"], paper["url"], float(scores[row, col]), reasons, paper)
                )
    return digests


def _popularity_prior(rows: list[dict]) -> np.ndarray:
    """A tiny upvote-based tie-breaker (≤ 0.01): it orders papers nobody's profile separates."""
    upvotes = np.array([r.get("upvotes") or 0 for r in rows], dtype=np.float32)
    if upvotes.max(initial=0) <= 0:
        return np.zeros(len(rows), dtype=np.float32)
    return 0.01 * np.log1p(upvotes) / np.log1p(upvotes.max())
