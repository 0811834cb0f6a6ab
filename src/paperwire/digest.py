"""Compose digests: gather each subscriber's signals and candidates from the store, rank them
all in one pass with :mod:`paperwire.rank`, and return the picks with their reasons.

Nothing here sends or marks anything; ``paperwire digest`` previews exactly what ``send`` would
deliver.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import rank
from .config import Config, SubscriberConfig
from .paper import Pick, paper_text
from .store import Store

# Score rows for this many subscribers at a time, so memory stays flat as subscribers grow.
SUBSCRIBER_CHUNK = 2000
# Rank this many more than the digest holds, then diversify down to the digest size (MMR;
# the effect of its trade-off, weights.mmr_lambda, is measured in benchmarks/README.md).
MMR_POOL = 3
DEFAULT_WEIGHTS = rank.Weights()


@dataclass
class Digest:
    subscriber: SubscriberConfig
    since: dt.datetime
    picks: list[Pick]
    candidates: int = 0


def window_starts(
    store: Store, config: Config, subscriber_ids: list[str], now: dt.datetime
) -> dict[str, dt.datetime]:
    """Where each subscriber's candidates start: papers first seen since their last digest, or
    in the last ``first_digest_days`` if they have had none (one query for all)."""
    last = store.last_digest_times(subscriber_ids)
    first = now - dt.timedelta(days=config.first_digest_days)
    return {s: last.get(s, first) for s in subscriber_ids}


def subscriber_signals(
    store: Store,
    subscribers: list[SubscriberConfig],
    interests: dict[str, str],
    corpus_index: dict[str, int] | None = None,
    corpus_rows: list[dict[str, Any]] | None = None,
) -> list[rank.Signals]:
    """Interests (as edited on the profile page, else the config), seed papers and votes.

    Given the run's corpus (``corpus_index`` and its ``corpus_rows``), stored papers are named
    by their corpus row and read from memory: no abstracts are loaded or hashed again.
    """
    corpus_index = corpus_index or {}
    votes_by_sub: dict[str, list[dict]] = {s.id: [] for s in subscribers}
    for vote in store.votes(list(votes_by_sub)):
        votes_by_sub[vote["subscriber_id"]].append(vote)
    needed = {v["paper_id"] for vs in votes_by_sub.values() for v in vs}
    needed |= {p for s in subscribers for p in s.seed_papers}
    if corpus_rows is not None:
        papers = {p: corpus_rows[corpus_index[p]] for p in needed if p in corpus_index}
    else:
        papers = store.papers(needed)
    from_rows = corpus_rows is not None
    out = []
    for sub in subscribers:
        seed_ids = [p for p in sub.seed_papers if p in papers]
        votes, liked, rated, vote_ids = [], [], list(seed_ids), []
        for vote in votes_by_sub[sub.id]:
            paper = papers.get(vote["paper_id"])
            if paper is None:
                continue  # a vote imported for a paper we never stored carries no text
            when = dt.datetime.fromisoformat(vote["voted_at"])
            text = "" if from_rows else paper_text(paper["title"], paper["abstract"])
            votes.append((text, vote["vote"], when))
            vote_ids.append(paper["paper_id"])
            rated.append(paper["paper_id"])
            if vote["vote"] > 0:
                liked.append((paper["paper_id"], paper["title"]))
        liked.extend((p, papers[p]["title"]) for p in seed_ids)
        out.append(
            rank.Signals(
                interests=interests.get(sub.id, sub.interests),
                seed_texts=[]
                if from_rows
                else [paper_text(papers[p]["title"], papers[p]["abstract"]) for p in seed_ids],
                votes=votes,
                liked_titles=liked,
                corpus_rows=[corpus_index[p] for p in rated if p in corpus_index],
                seed_rows=[corpus_index[p] for p in seed_ids] if from_rows else None,
                vote_rows=[corpus_index[p] for p in vote_ids] if from_rows else None,
            )
        )
    return out


@dataclass
class _Corpus:
    """The stored corpus, vectorised once: every profile and candidate shares it."""

    model: rank.TextModel
    ids: list[str]
    rows: list[dict[str, Any]]
    texts: list[str]
    matrix: sp.csr_matrix
    index: dict[str, int]

    @classmethod
    def load(cls, store: Store) -> _Corpus:
        """The corpus of this store, reused while no paper has been added or changed.

        Hashing every abstract is the most expensive step of a run that ranks few
        subscribers (the daemon's ticks and alerts), so the last one is kept per database.
        """
        key = (str(store.path.resolve()), *store.corpus_version())
        cached = _CORPUS_CACHE.get(key[0])
        if cached is not None and cached[0] == key:
            return cached[1]
        rows = store.corpus()
        texts = [paper_text(r["title"], r["abstract"]) for r in rows]
        model = rank.TextModel().fit(texts)
        ids = [r["paper_id"] for r in rows]
        corpus = cls(
            model, ids, rows, texts, model.transform(texts), {p: i for i, p in enumerate(ids)}
        )
        corpus.matrix.sort_indices()
        _CORPUS_CACHE.clear()  # one corpus at a time: a daemon serves one database
        _CORPUS_CACHE[key[0]] = (key, corpus)
        return corpus


# database path -> (version key, corpus); see _Corpus.load
_CORPUS_CACHE: dict[str, tuple[tuple, _Corpus]] = {}


def _scored_chunks(
    store: Store,
    corpus: _Corpus,
    subscribers: list[SubscriberConfig],
    papers: sp.csr_matrix,
    prior: np.ndarray,
    now: dt.datetime,
    weights: rank.Weights,
):
    """Yield (start, chunk, signals, profiles, scores) per chunk of subscribers: the profiles
    and scores ``compose`` and ``score_matrix`` share, so memory stays flat as they grow."""
    interests = store.interests_overrides()
    for start in range(0, len(subscribers), SUBSCRIBER_CHUNK):
        chunk = subscribers[start : start + SUBSCRIBER_CHUNK]
        signals = subscriber_signals(store, chunk, interests, corpus.index, corpus.rows)
        profiles = rank.build_profiles_from_signals(
            corpus.model, signals, corpus.matrix, now, weights
        )
        yield start, chunk, signals, profiles, rank.score(profiles, papers, prior, weights)


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
    starts = (
        {s.id: since for s in subscribers}
        if since is not None
        else window_starts(store, config, [s.id for s in subscribers], now)
    )
    candidate_ids = store.papers_since(min(starts.values()))
    digests = {s.id: Digest(s, starts[s.id], []) for s in subscribers}
    if not candidate_ids:
        return digests
    corpus = _Corpus.load(store)
    candidate_ids = [p for p in candidate_ids if p in corpus.index]
    cols = np.array([corpus.index[p] for p in candidate_ids])
    rows = [corpus.rows[c] for c in cols]
    matrix = corpus.matrix[cols]
    first_seen = np.array([dt.datetime.fromisoformat(r["first_seen"]).timestamp() for r in rows])
    prior = rank.popularity_prior([r.get("upvotes") for r in rows])
    excluded = store.excluded_ids(s.id for s in subscribers)
    column = {p: i for i, p in enumerate(candidate_ids)}
    # Cosine between candidates, for MMR: once per run, not per subscriber.
    similarity = (matrix @ matrix.T).toarray() if len(cols) <= MAX_DENSE_SIMILARITY else None
    explainer = _Explainer(corpus, cols)
    details = store.papers(candidate_ids) if len(candidate_ids) <= 5000 else None

    for _, chunk, signals, profiles, scores in _scored_chunks(
        store, corpus, subscribers, matrix, prior, now, weights
    ):
        scores = _with_semantic(store, config, corpus, cols, signals, now, scores)
        profiles.matrix.sort_indices()  # _Explainer looks values up by binary search
        window = np.array([starts[sub.id].timestamp() for sub in chunk])
        allowed = first_seen[None, :] > window[:, None]
        for row, sub in enumerate(chunk):
            for paper_id in excluded.get(sub.id, ()):
                col = column.get(paper_id)
                if col is not None:
                    allowed[row, col] = False
        sizes = [limit or sub.digest_size for sub in chunk]
        pools = rank.top_k(scores, max(sizes) * MMR_POOL, allowed)
        for row, sub in enumerate(chunk):
            digest = digests[sub.id]
            digest.candidates = int(allowed[row].sum())
            chosen = rank.mmr(
                pools[row][: sizes[row] * MMR_POOL],
                scores[row],
                matrix,
                sizes[row],
                weights.mmr_lambda,
                similarity=similarity,
            )
            sig = signals[row]
            liked_rows = [c for c, (_, v, _) in zip(sig.vote_rows, sig.votes, strict=True) if v > 0]
            liked_rows += sig.seed_rows
            liked_vecs = corpus.matrix[liked_rows] if liked_rows else None
            profile = profiles.matrix[row]  # sliced once per subscriber: ~70 µs a slice
            for col in chosen:
                paper = details[candidate_ids[col]] if details else store.paper(candidate_ids[col])
                terms = explainer.terms(profile, col)
                reasons = [f"matches “{term}”" for term in terms]
                similar = (
                    None if liked_vecs is None else rank.similar_liked(matrix[col], liked_vecs)
                )
                if similar is not None and similar < len(sig.liked_titles):
                    reasons.append(f"similar to “{sig.liked_titles[similar][1]}”")
                if not reasons:
                    reasons = ["popular today" if paper.get("upvotes") else "new in your feeds"]
                digest.picks.append(
                    Pick(
                        paper["paper_id"],
                        paper["title"],
                        paper["url"],
                        float(scores[row, col]),
                        reasons,
                        paper,
                    )
                )
    return digests


MAX_DENSE_SIMILARITY = 6000  # candidates; beyond this MMR computes similarity per pool


class _Explainer:
    """The terms of each candidate and their columns, tokenised once per run, not per pick."""

    def __init__(self, corpus: _Corpus, cols: np.ndarray):
        self.corpus = corpus
        self.cols = cols
        self._cache: dict[int, tuple[list[str], np.ndarray, np.ndarray]] = {}

    def terms(self, profile: sp.csr_matrix, col: int, n: int = 3) -> list[str]:
        if col not in self._cache:
            text = self.corpus.texts[self.cols[col]]
            tokens = list(dict.fromkeys(self.corpus.model.tokens(text)))
            columns = self.corpus.model.columns(tokens)
            weights = _values_at(self.corpus.matrix[self.cols[col]], columns)
            self._cache[col] = (tokens, columns, weights)
        tokens, columns, weights = self._cache[col]
        return rank.explain_terms(tokens, _values_at(profile, columns) * weights, n)


def _values_at(row: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """The values of a one-row CSR matrix (sorted indices) at the given columns."""
    out = np.zeros(len(columns), dtype=np.float64)
    if row.nnz == 0 or len(columns) == 0:
        return out
    where = np.searchsorted(row.indices, columns)
    inside = where < row.indices.size
    hit = inside.copy()
    hit[inside] = row.indices[where[inside]] == columns[inside]
    out[hit] = row.data[where[hit]]
    return out


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
    for start, chunk, signals, _, scores in _scored_chunks(
        store, corpus, subscribers, corpus.matrix[cols], prior, now, weights
    ):
        scores = _with_semantic(store, config, corpus, cols, signals, now, scores)
        out[start : start + len(chunk), known] = scores
    return out


# -- semantic ranking hook (issue 15) ---------------------------------------------------------


def _with_semantic(store, config, corpus, cols, signals, now, scores):
    """The TF-IDF scores plus the embedding model's, when ``ranking.embeddings`` is set."""
    from . import semantic  # scikit-learn is already loaded; the model only when configured

    extra = semantic.extra_scores(
        store, config.ranking.embeddings, corpus.ids, corpus.texts, cols, signals, now
    )
    return scores if extra is None else scores + extra
