"""Compose digests: gather each subscriber's signals and candidates from the store, rank them
all in one pass with :mod:`paperwire.rank.core`, and return the picks with their reasons.

A run goes through four stages, a chunk of subscribers at a time after the first:
:func:`candidates` (the papers a run may pick, and what every chunk shares) → :func:`score`
(every subscriber's profile against every candidate) → :func:`diversify` (each reader's
allowed best, MMR, followed authors first) → :func:`explain` (the reasons, as data: render
words them). Nothing here sends or marks anything; ``paperwire digest`` previews exactly what
``send`` would deliver.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..config import CLOCK_SLACK, Config, SubscriberConfig
from ..paper import paper_text
from ..paper import seed_ids as paper_seed_ids
from ..store import Store
from . import core as rank
from . import evidence, nearest
from .authors import Following
from .corpus import Corpus, InterestPhrases
from .embedded import EmbeddedCorpus
from .filters import PhraseFilter, fold_text
from .gc_chunks import old_objects_frozen
from .phrases import add_phrase_bonus
from .reasons import Ranked, Reason
from .scope import MAX_WINDOW_DAYS
from .scope import scope as corpus_scope
from .semantic import EmbeddedSignals, contrast_fades, one_blas_thread
from .session import RankingSession
from .twins import Among

# Score rows for this many subscribers at a time, so memory stays flat as subscribers grow
# (a chunk holds a few subscribers × candidates arrays: 13 MB each at 26,000 papers, and
# three chunks are in hand at once, two scored while the third is explained). A multiple of
# semantic's product height (128): a chunk of 160 is two products, one mostly padding.
# 20,000 readers of 25,975 papers peak at 914 MiB with 160, 1,087 MiB with 250
# (benchmarks/README.md).
SUBSCRIBER_CHUNK = 128
# Chunks scored at once, each on its own thread, while the caller explains the one before.
SCORING_THREADS = 2
# Rank this many more than the digest holds, then diversify down to the digest size (MMR;
# the effect of its trade-off, weights.mmr_lambda, is measured in benchmarks/README.md).
MMR_POOL = 3
# Picks past the digest size kept in MMR's order, as a share of it: they stand in for picks that
# nothing of the reader's explains (left out of the digest).
SPARE = 1
DEFAULT_WEIGHTS = rank.Weights()
# Candidates up to which the run keeps a dense rank.CandidateGram (float32; 10,000: 400 MB;
# 7,000: 196 MB, plus a row per voted paper that is not a candidate); beyond, scores are one
# sparse product per chunk and MMR's pools get their own cosines, the same numbers, a chunk's
# in one product (rank.pool_cosines).
MAX_DENSE_SIMILARITY = 10_000


@dataclass
class Digest:
    """One subscriber's picks in the order they get them, each with the reasons that hold
    (render/reasons.py words them), and how many candidates they were chosen from."""

    subscriber: SubscriberConfig
    since: dt.datetime
    picks: list[Ranked]
    candidates: int = 0
    # papers first seen in the window, before what the reader has had, rated or filtered out
    # (must_match / never_match) is taken away: an empty digest says which it was
    new: int = 0


# how long a failed alert's paper waits for a digest to take it back (a weekly reader's too)
FAILED_ALERTS_RETURN = dt.timedelta(days=8)


def window_starts(
    store: Store, config: Config, subscriber_ids: list[str], now: dt.datetime
) -> dict[str, dt.datetime]:
    """Where each subscriber's candidates start: papers first seen since their last digest, or
    in the last ``first_digest_days`` if they have had none (one query for all); never more
    than :data:`MAX_WINDOW_DAYS` back."""
    last = store.last_digest_times(subscriber_ids)
    first = now - dt.timedelta(days=config.first_digest_days)
    oldest = now - dt.timedelta(days=MAX_WINDOW_DAYS)
    ahead = now + CLOCK_SLACK  # a digest recorded in the future: the clock was ahead then
    return {
        s: max(first if last.get(s, first) > ahead else last.get(s, first), oldest)
        for s in subscriber_ids
    }


def seed_ids(subscriber: SubscriberConfig) -> list[str]:
    """The subscriber's seed papers as stored ids: ``2309.06180v2``, ``arXiv:2309.06180`` and
    ``https://arxiv.org/abs/2309.06180v2`` are all the paper ``2309.06180``."""
    return paper_seed_ids(subscriber.seed_papers)


def subscriber_signals(
    store: Store,
    subscribers: list[SubscriberConfig],
    interests: dict[str, str],
    corpus_index: dict[str, int] | None = None,
    corpus_rows: list[dict[str, Any]] | None = None,
    not_interested: dict[str, str] | None = None,
) -> list[rank.Signals]:
    """Interests and the topics not wanted (as edited on the profile page, else the config:
    ``interests`` and ``not_interested`` are the edits), seed papers and votes.

    Given the run's corpus (``corpus_index`` and its ``corpus_rows``), stored papers are named
    by their corpus row and read from memory: no abstracts are loaded or hashed again.
    """
    corpus_index = corpus_index or {}
    not_interested = not_interested or {}
    # per subscriber: (paper_id, vote, voted_at), newest first
    votes_by_sub: dict[str, list[tuple[str, int, str]]] = {s.id: [] for s in subscribers}
    for subscriber_id, paper_id, value, voted_at in store.vote_rows(list(votes_by_sub)):
        votes_by_sub[subscriber_id].append((paper_id, value, voted_at))
    needed = {paper_id for vs in votes_by_sub.values() for paper_id, _, _ in vs}
    # seeds: the config's seed_papers, then those imported from the reader's library
    imported = store.seeds(votes_by_sub)
    seeds = {
        s.id: list(dict.fromkeys([*seed_ids(s), *imported.get(s.id, ())])) for s in subscribers
    }
    configured = {s.id: set(seed_ids(s)) for s in subscribers}
    needed |= {p for ids in seeds.values() for p in ids}
    if corpus_rows is not None:
        papers = {p: corpus_rows[corpus_index[p]] for p in needed if p in corpus_index}
    else:
        papers = store.papers(needed)
    from_rows = corpus_rows is not None
    out = []
    for sub in subscribers:
        stored_seeds = [p for p in seeds[sub.id] if p in papers]
        votes, liked, rated, vote_ids = [], [], list(stored_seeds), []
        for paper_id, value, voted_at in votes_by_sub[sub.id]:
            paper = papers.get(paper_id)
            if paper is None:
                continue  # a vote imported for a paper we never stored carries no text
            when = dt.datetime.fromisoformat(voted_at)
            text = "" if from_rows else paper_text(paper["title"], paper["abstract"])
            votes.append((text, value, when))
            vote_ids.append(paper["paper_id"])
            rated.append(paper["paper_id"])
            if value > 0:
                liked.append((paper["paper_id"], paper["title"]))
        kinds = ["liked"] * len(liked)
        liked.extend((p, papers[p]["title"]) for p in stored_seeds)
        kinds += ["seed" if p in configured[sub.id] else "library" for p in stored_seeds]
        out.append(
            rank.Signals(
                interests=interests.get(sub.id, sub.interests),
                not_interested=not_interested.get(sub.id, sub.not_interested),
                seed_texts=[]
                if from_rows
                else [paper_text(papers[p]["title"], papers[p]["abstract"]) for p in stored_seeds],
                votes=votes,
                liked_titles=liked,
                liked_kinds=kinds,
                corpus_rows=[corpus_index[p] for p in rated if p in corpus_index],
                seed_rows=[corpus_index[p] for p in stored_seeds] if from_rows else None,
                vote_rows=[corpus_index[p] for p in vote_ids] if from_rows else None,
            )
        )
    return out


# -- stage 1: candidates -------------------------------------------------------------------------


@dataclass
class Candidates:
    """The papers a run may pick (first seen since the earliest window start, in the corpus)
    and what every chunk of subscribers shares about them."""

    ids: list[str]
    cols: np.ndarray  # their corpus rows
    matrix: sp.csr_matrix  # their TF-IDF rows
    first_seen: np.ndarray  # POSIX seconds
    prior: np.ndarray  # rank.popularity_prior of their upvotes
    column: dict[str, int]  # paper id -> candidate column
    column_of_row: np.ndarray  # corpus row -> candidate column, -1 for the rest
    # per subscriber: sent, voted or a seed (config or imported), the reader's own, never a pick
    excluded: dict[str, set[str]]
    # the candidates that are one paper under several ids (rank/twins.py): a reader's own
    # paper is theirs under every id, and a digest holds a paper once
    twins: Among
    # Dot products of stored papers with the candidates, once per run: scores are weighted sums
    # of their rows, and the candidates' own rows are MMR's cosines (None past
    # MAX_DENSE_SIMILARITY candidates) ...
    gram: rank.CandidateGram | None
    similarity: Float16Cosines | None
    # ... and of stored papers with the calibration sample: each profile's score spread
    calibration: rank.CandidateGram | None
    phrases: InterestPhrases
    explainer: evidence.ProfilePhrases
    follow_and_filter: FollowAndFilter


def candidates(
    store: Store,
    corpus: Corpus,
    subscribers: list[SubscriberConfig],
    ids: list[str],
    *,
    dense: bool = True,
) -> Candidates:
    """What the run shares about the papers ``ids`` (those of the corpus are kept); ``dense``
    False: no candidate Gram at any size (a few readers' reasons, :class:`PaperExplainer`,
    do not repay its product over the corpus)."""
    ids = [p for p in ids if p in corpus.index]
    cols = np.array([corpus.index[p] for p in ids])
    rows = [corpus.rows[c] for c in cols]
    first_seen = np.array([dt.datetime.fromisoformat(r["first_seen"]).timestamp() for r in rows])
    excluded = store.excluded_ids(s.id for s in subscribers)
    for sub in subscribers:  # a seed paper is the reader's own: never a candidate
        excluded.setdefault(sub.id, set()).update(seed_ids(sub))
    small = dense and len(cols) <= MAX_DENSE_SIMILARITY
    column_of_row = np.full(len(corpus.ids), -1, dtype=np.int64)
    column_of_row[cols.astype(np.int64)] = np.arange(len(cols))
    gram = rank.CandidateGram(corpus.matrix, cols) if small else None
    return Candidates(
        ids=ids,
        cols=cols,
        matrix=corpus.matrix[cols],
        first_seen=first_seen,
        prior=rank.popularity_prior([r.get("upvotes") for r in rows]),
        column={p: i for i, p in enumerate(ids)},
        column_of_row=column_of_row,
        excluded=excluded,
        twins=corpus.twins.among(corpus.ids, cols),
        gram=gram,
        similarity=None if gram is None else Float16Cosines(gram.candidates),
        calibration=(
            None
            if gram is None
            else rank.CandidateGram(corpus.matrix, rank.calibration_rows(corpus.matrix))
        ),
        phrases=_phrases_of(store, corpus, cols),
        explainer=evidence.ProfilePhrases(corpus, cols),
        follow_and_filter=FollowAndFilter(store, ids),
    )


def _phrases_of(store: Store, corpus: Corpus, cols: np.ndarray) -> InterestPhrases:
    texts = corpus.texts(store).many(cols.tolist())
    return InterestPhrases(corpus.model, corpus.counts[cols].astype(np.float32), texts)


class Float16Cosines:
    """The candidates' cosines as MMR reads them: float16, so the same picks as when the run
    kept a float16 matrix (MMR needs two or three digits of a cosine, not seven)."""

    def __init__(self, cosines: np.ndarray):
        self.cosines = cosines

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.cosines[key].astype(np.float16)


# -- stage 2: score ------------------------------------------------------------------------------


@dataclass
class Scored:
    """A chunk of subscribers (from ``start`` in the run's list) scored against the
    candidates: their signals, profiles, scores and interest phrases (index, text)."""

    start: int
    chunk: list[SubscriberConfig]
    signals: list[rank.Signals]
    profiles: rank.Profiles
    scores: np.ndarray  # (subscribers × candidates)
    mine: list[list[tuple[int, str]]]
    # what iter_compose asks with the chunk (see score's ``select``, on the caller's thread,
    # and ``order``, on the scoring thread): the candidates each reader may get, and the
    # allowed best of them in MMR's order
    allowed: np.ndarray | None = None
    ordered: list[list[int]] | None = None


def score(
    store: Store,
    corpus: Corpus,
    embedded: EmbeddedCorpus | None,
    subscribers: list[SubscriberConfig],
    cols: np.ndarray,
    papers: sp.csr_matrix,
    prior: np.ndarray,
    phrases: InterestPhrases,
    *,
    now: dt.datetime,
    weights: rank.Weights,
    gram: rank.CandidateGram | None = None,
    calibration: rank.CandidateGram | None = None,
    select: Callable[[list[SubscriberConfig], list[rank.Signals]], np.ndarray] | None = None,
    order: Callable[[np.ndarray, np.ndarray, list[SubscriberConfig]], list[list[int]]]
    | None = None,
) -> Iterator[Scored]:
    """Each chunk of subscribers scored: what ``compose`` and ``score_matrix`` share, so memory
    stays flat as they grow.

    A score is the profile's (calibrated) score plus the popularity prior (each subscriber's
    share of it from their liked papers' upvotes, :func:`rank.crowd_affinity`) plus the bonus
    for whole interest phrases the paper contains (:func:`add_phrase_bonus`), plus the
    embedding model's terms when ``ranking.embeddings`` is on (``embedded``). ``cols``: the
    candidates' corpus rows, ``papers`` their TF-IDF rows. ``select`` (a chunk's allowed
    candidates, from the store: the caller's thread) and ``order`` (their best in the order
    the readers get them, from the scores: the scoring thread) go with each chunk, when given.

    The next ``SCORING_THREADS`` chunks' numbers are worked out on threads of their own while
    the caller diversifies and explains the chunk before them (the products and selections
    release the GIL, the reasons are Python). Everything that reads the store, or fills a
    cache the reasons read, is gathered on the caller's thread first; no chunk is started
    before one is taken, so memory holds ``SCORING_THREADS`` + 1 chunks; and a chunk's scores
    are what they would be alone, on one thread."""
    interests, not_interested = store.interests_overrides(), store.not_interested_overrides()
    weights = terms_weights(weights, encoder_on=embedded is not None)
    # the sparse products' right side, once a run, not once a chunk; with the dense Gram the
    # scores come from it instead (rank.score transposes for itself if a chunk ever needs it)
    papers_t = papers.T.tocsr() if gram is None else None
    nearest_found = False  # the candidates' nearest papers (gather runs on this thread only)

    def gather(start: int) -> _Gathered:
        nonlocal nearest_found
        chunk = subscribers[start : start + SUBSCRIBER_CHUNK]
        signals = subscriber_signals(
            store, chunk, interests, corpus.index, corpus.rows, not_interested
        )
        vectors = None if embedded is None else embedded.vectors_of(store, signals, now)
        if embedded is not None and vectors is not None and not nearest_found:
            # the candidates' nearest papers, once a run and only where a reader has the
            # papers to vote with (most readers of a new deployment have none)
            nearest_found = embedded.votes_nearest(vectors)
            if nearest_found:
                embedded.nearest_papers(corpus.matrix, cols)
        elif embedded is None and weights.nearest and not nearest_found:
            nearest_found = any(
                nearest.votes(rank.labelled_rows(sig, now, weights)[0], weights.nearest_min_papers)
                for sig in signals
            )
            if nearest_found:
                corpus.nearest_papers(weights.nearest_papers).prepare(cols)
        allowed = None if select is None else select(chunk, signals)
        return _Gathered(start, chunk, signals, phrases.of(signals), vectors, allowed)

    def work_out(got: _Gathered) -> Scored:
        profiles = rank.build_profiles_from_signals(
            corpus.model, got.signals, corpus.matrix, now, weights, calibration
        )
        affinity = rank.crowd_affinity(
            [evidence.liked_upvotes(corpus, sig) for sig in got.signals],
            corpus.upvote_scale,
            weights,
        )
        scores = rank.score(profiles, papers, prior, weights, gram, affinity, papers_t)
        if weights.phrase_match:
            add_phrase_bonus(scores, phrases.matched(got.mine), weights.phrase_match)
        if embedded is not None and got.vectors is not None:
            added = embedded.added(got.vectors, cols, base=scores)
            if np.result_type(added, scores) == added.dtype:
                added += scores  # the same sums as scores + added, in the array they are in
                scores = added
            else:
                scores = scores + added
        elif embedded is None and weights.nearest and nearest_found:
            _add_terms_vote(corpus, got.signals, cols, scores, now, weights)
        scored = Scored(got.start, got.chunk, got.signals, profiles, scores, got.mine)
        if got.allowed is not None and order is not None:
            scored.allowed, scored.ordered = got.allowed, order(scores, got.allowed, got.chunk)
        return scored

    starts = list(range(0, len(subscribers), SUBSCRIBER_CHUNK))
    if len(starts) <= 1:  # nothing to overlap: no thread
        for start in starts:
            yield work_out(gather(start))
        return
    # the threads are the run's parallelism: a BLAS pool beside them only spins (measured:
    # CPU 4.0 -> 3.2 ms a reader at the same wall). The limit holds until the last digest is
    # taken, so the caller's own work between digests (rendering, sending) has one BLAS thread
    with (
        one_blas_thread(),
        ThreadPoolExecutor(max_workers=SCORING_THREADS, thread_name_prefix="paperwire") as pool,
    ):
        ahead = deque(pool.submit(work_out, gather(s)) for s in starts[:SCORING_THREADS])
        following = iter(starts[SCORING_THREADS:])

        def chunks() -> Iterator[Scored]:
            while ahead:
                scored = ahead.popleft().result()
                upcoming = next(following, None)
                if upcoming is not None:
                    ahead.append(pool.submit(work_out, gather(upcoming)))
                yield scored
                del scored  # the caller's copy is all that keeps it

        # many chunks keep many objects alive: collections walk only each chunk's own
        yield from old_objects_frozen(chunks())


def terms_weights(weights: rank.Weights, *, encoder_on: bool) -> rank.Weights:
    """The TF-IDF weights a run ranks with: with the encoder off, a reader's papers have their
    whole weight from the first (``rank.Weights.evidence_prior`` says why the encoder's runs
    shrink them beside an interests text); the profile page shows the same row."""
    if encoder_on or not weights.evidence_prior:
        return weights
    return replace(weights, evidence_prior=0.0)


def _add_terms_vote(
    corpus: Corpus,
    signals: list[rank.Signals],
    cols: np.ndarray,
    scores: np.ndarray,
    now: dt.datetime,
    weights: rank.Weights,
) -> None:
    """With the encoder off, the candidates' nearest papers by TF-IDF vote (rank/nearest.py),
    added to ``scores`` in place, for readers with the papers to vote with."""
    labelled = [rank.labelled_rows(sig, now, weights) for sig in signals]
    weight = np.array(
        [
            weights.nearest * _vote_fade(sig, now, weights)
            if nearest.votes(rows, weights.nearest_min_papers)
            else 0.0
            for sig, (rows, _) in zip(signals, labelled, strict=True)
        ],
        dtype=np.float32,
    )
    corpus.nearest_papers(weights.nearest_papers).add_votes(
        scores, cols, [r for r, _ in labelled], [s for _, s in labelled], weight
    )


def _vote_fade(signals: rank.Signals, now: dt.datetime, weights: rank.Weights) -> float:
    """How much a reader's vote counts (:func:`~paperwire.rank.semantic.contrast_fades`, as the
    encoder's vote does): standardised per reader, the vote would undo its papers' decay, and
    months-old 👍 would weigh as much beside an interests text edited today as on their day."""
    left: dict[str, tuple[float, float]] = {}
    if signals.interests.strip():
        left["interests"] = (weights.interests, 1.0)
    if signals.seed_rows:
        left["seed"] = (weights.seeds, 1.0)
    ages_now = rank.vote_ages(signals, now)
    for kind, weight, up in (("liked", weights.liked, True), ("disliked", weights.disliked, False)):
        ages = [age for (_, value, _), age in zip(signals.votes, ages_now, strict=True)
                if (value > 0) == up]  # fmt: skip
        if ages:
            left[kind] = (
                weight,
                float(rank.decay_factor(np.array(ages), weights.half_life_days).mean()),
            )
    return contrast_fades(left)[0]


@dataclass
class _Gathered:
    """What scoring a chunk needs from the store, read on the caller's thread."""

    start: int
    chunk: list[SubscriberConfig]
    signals: list[rank.Signals]
    mine: list[list[tuple[int, str]]]
    vectors: list[EmbeddedSignals] | None
    allowed: np.ndarray | None


# -- stage 3: diversify --------------------------------------------------------------------------


@dataclass
class Chosen:
    """Per subscriber of a chunk: the candidates they may get, their picks (candidate columns,
    in the order they get them) and the followed author of each pick by one."""

    allowed: np.ndarray  # (subscribers × candidates) bool
    picks: list[list[int]]
    followed: list[dict[int, str]]
    # per subscriber, the next picks in MMR's order: what takes the place of a pick that
    # nothing explains (see explain), so a digest keeps its size while the pool lasts
    spare: list[list[int]] = field(default_factory=list)


def allowed_of(
    run: Candidates,
    chunk: list[SubscriberConfig],
    starts: dict[str, dt.datetime],
    signals: list[rank.Signals] | None = None,
    returned: dict[str, set[str]] | None = None,
) -> np.ndarray:
    """(subscribers × candidates) what each reader may get: in their window (or ``returned``
    to them: the papers of their failed alerts), not their own (under any id: rank/twins.py),
    through their must/never phrases (read from the store: the caller's thread); nor a paper
    their ``signals`` (the chunk's, as scored) rate."""
    window = np.array([starts[sub.id].timestamp() for sub in chunk])
    allowed = run.first_seen[None, :] > window[:, None]
    others = run.twins.others
    for row, sub in enumerate(chunk):
        for paper_id in (returned or {}).get(sub.id, ()):
            col = run.column.get(paper_id)
            if col is not None:
                allowed[row, col] = True
        # sent, voted or a seed (config or imported): the reader's own, never a pick, under
        # this id or another
        for paper_id in run.excluded.get(sub.id, ()):
            col = run.column.get(paper_id)
            if col is not None:
                allowed[row, col] = False
            if paper_id in others:
                allowed[row, others[paper_id]] = False
        run.follow_and_filter.filter(sub, allowed[row])  # must_match / never_match
    if signals is not None:
        # the excluded papers were read when the run began, a chunk's votes and seeds when it
        # is scored: a vote imported meanwhile put a paper in the reader's profile, and it
        # came back as a pick "like" itself
        sizes = [len(sig.corpus_rows) for sig in signals]
        rows = np.fromiter(
            (r for sig in signals for r in sig.corpus_rows), dtype=np.int64, count=sum(sizes)
        )
        cols = run.column_of_row[rows]
        owners = np.repeat(np.arange(len(signals)), sizes)
        allowed[owners[cols >= 0], cols[cols >= 0]] = False
    return allowed


def ordered_of(
    run: Candidates,
    scores: np.ndarray,
    allowed: np.ndarray,
    sizes: list[int],
    weights: rank.Weights,
) -> list[list[int]]:
    """Per reader, the best ``MMR_POOL`` × digest size allowed candidates diversified (MMR)
    into the order they get them, digest size + ``SPARE`` long: numbers only, no store."""
    pools = rank.top_k(scores, max(sizes) * MMR_POOL, allowed)
    pools = [pools[row][: sizes[row] * MMR_POOL] for row in range(len(sizes))]
    # MMR is greedy: its first k picks of k + SPARE are its k picks, and the rest come next
    longer = [size + SPARE * size for size in sizes]
    # the whole chunk side by side, with the run's cosines or, past MAX_DENSE_SIMILARITY
    # candidates, each pool's own (the same numbers)
    return rank.mmr_many(pools, scores, longer, weights.mmr_lambda, run.similarity, run.matrix)


def digest_sizes(chunk: list[SubscriberConfig], limit: int | None) -> list[int]:
    return [limit or sub.digest_size for sub in chunk]


def diversify(run: Candidates, scored: Scored, *, limit: int | None) -> Chosen:
    """Each reader's allowed candidates and their best in MMR's order, made beside the
    chunk's scores (``score``'s ``select`` and ``order``: :func:`allowed_of`,
    :func:`ordered_of`), cut to the digest size with every allowed paper by a followed author
    first."""
    allowed, ordered = scored.allowed, scored.ordered
    if allowed is None or ordered is None:
        raise ValueError("diversify needs a chunk scored with select and order")
    chunk, sizes = scored.chunk, digest_sizes(scored.chunk, limit)
    picks, spare, follows = [], [], []
    for row, sub in enumerate(chunk):
        followed = run.follow_and_filter.followed(sub, allowed[row])  # always in, and said so
        # one paper under two ids (rank/twins.py) once: the first in the reader's order
        if len(followed) > 1:
            place = {c: i for i, c in enumerate(ordered[row])}
            kept = set(run.twins.distinct(sorted(followed, key=lambda c: place.get(c, len(place)))))
            followed = {c: author for c, author in followed.items() if c in kept}
        rest = [c for c in run.twins.distinct([*followed, *ordered[row]]) if c not in followed]
        size = max(sizes[row], len(followed))
        picks.append([*followed, *rest][:size])
        spare.append(rest[size - len(followed) :])  # size >= len(followed)
        follows.append(followed)
    return Chosen(allowed, picks, follows, spare)


class FollowAndFilter:
    """Followed authors and must/never phrases over one run's candidates. Author lists
    and folded texts are read once per run, and only when some subscriber needs them.

    A followed author's paper is in the digest even without a ``must_match`` phrase (a reader
    who follows an author expects their papers); ``never_match`` still keeps it out."""

    def __init__(self, store: Store, candidate_ids: list[str]):
        self.store, self.ids = store, candidate_ids
        self._papers: dict | None = None
        self._texts: list[str] | None = None
        # per subscriber with both follow_authors and must_match: candidates before must_match
        self._followable: dict[str, np.ndarray] = {}

    def _rows(self) -> dict:
        if self._papers is None:
            self._papers = self.store.papers(self.ids)
        return self._papers

    def filter(self, sub: SubscriberConfig, allowed: np.ndarray) -> None:
        phrases = PhraseFilter(sub.must_match, sub.never_match)
        if not phrases:
            return
        if self._texts is None:
            rows = self._rows()
            self._texts = [fold_text(rows[p]["title"], rows[p]["abstract"]) for p in self.ids]
        if sub.follow_authors and phrases.must is not None:
            never = PhraseFilter(never=sub.never_match)
            self._followable[sub.id] = allowed & never.mask(self._texts)
        allowed &= phrases.mask(self._texts)

    def asked_for(self, sub: SubscriberConfig, col: int) -> str | None:
        """The reader's first ``must_match`` phrase that candidate ``col`` mentions, as they
        wrote it (None without one)."""
        if not sub.must_match or self._texts is None:
            return None
        text = self._texts[col]
        return next((p for p in sub.must_match if PhraseFilter(must=[p]).allows(text)), None)

    def followed(self, sub: SubscriberConfig, allowed: np.ndarray) -> dict[int, str]:
        """Candidate column -> the followed name, for papers by a followed author that are
        allowed, or that only ``must_match`` kept out."""
        following = Following(sub.follow_authors)
        if not following:
            return {}
        rows = self._rows()
        out = {}
        for col in np.flatnonzero(self._followable.pop(sub.id, allowed)):
            name = following.match(rows[self.ids[col]]["authors"])
            if name is not None:
                out[int(col)] = name
        return out


# -- stage 4: explain ----------------------------------------------------------------------------


def explain(
    store: Store,
    corpus: Corpus,
    embedded: EmbeddedCorpus | None,
    run: Candidates,
    scored: Scored,
    chosen: Chosen,
    details: dict[str, dict[str, Any]],
) -> list[list[Ranked]]:
    """Each subscriber's picks with their reasons, in order: the reader's own paper a pick
    resembles, the interest phrases it matches or is close to, the key phrases the profile
    weighs in it, then (embeddings on) the interest it is close to in meaning, else popular or
    new; a followed author's paper says so first. A pick with no reason is left out.
    ``details`` keeps the picks' stored records (authors, links ...) across chunks."""
    cols, signals, mine = run.cols, scored.signals, scored.mine
    wanted = {run.ids[c] for picks in chosen.picks for c in picks} - details.keys()
    details.update(store.papers(wanted))
    # "like <your paper>": by embedding when ranking.embeddings is on, else the TF-IDF
    # cosines, the whole chunk's in one pass when the run keeps the candidate Gram
    alike = None
    if embedded is None and run.gram is not None:
        alike = evidence.similar_liked_many(corpus, signals, chosen.picks, cols, run.gram)
    # per subscriber: [(col, reasons so far, phrases already named) per pick], and per pick
    # the position of the reader's own paper it resembles (signals.liked_titles), if any
    drafted: list[list[tuple[int, list[Reason], list[str]]]] = []
    likes: list[list[int | None]] = []
    # per subscriber, each pick's cosine to the paper it resembles, where the encoder found it
    # (None: worked out below, by the measure that named it)
    found_cosines: list[list[float] | None] = []
    closeness: list[list[float]] | None = None
    if embedded is not None:  # the whole chunk's in a few products, not one a reader
        alike, closeness = embedded.similar_liked_many(
            signals, [cols[picks] for picks in chosen.picks]
        )
    for row, picks in enumerate(chosen.picks):
        cosines: list[float] | None = None
        if not picks:  # e.g. a reader whose digest needs no stand-ins (_fill_in)
            drafted.append([])
            likes.append([])
            found_cosines.append(None)
            continue
        if alike is not None:
            similar = alike[row]
            cosines = None if closeness is None else closeness[row]
        else:  # embeddings off and no Gram: one product per digest
            similar = evidence.similar_liked(corpus, signals[row], run.matrix, picks, run.ids)
        drafts = []
        for col, liked in zip(picks, similar, strict=True):
            # the reader's own paper first: it is what a reader recognises at once
            reasons = [] if liked is None else [evidence.like_reason(signals[row], liked)]
            matched = [text for i, text in mine[row] if col in run.phrases.papers_of[i]]
            reasons += [Reason("matches_interest", text) for text in matched[:2]]
            close = None if matched else run.phrases.closest(mine[row], col)
            if close is not None:
                reasons.append(Reason("close_to_interest", close))
            drafts.append((col, reasons, matched + ([close] if close else [])))
        drafted.append(drafts)
        likes.append(similar)
        found_cosines.append(cosines)
    # the key phrases each profile weighs most, for every pick that still has room for one
    # (a "like" counted out: spread_likes may take it back), the whole chunk in one lookup
    # (one per pick cost ~50 µs each)
    scored.profiles.matrix.sort_indices()  # ProfilePhrases looks values up by binary search
    about = iter(
        run.explainer.best(
            scored.profiles.matrix,
            [(row, col, 3 - len(r) + (liked is not None), named)
             for row, drafts in enumerate(drafted)
             for (col, r, named), liked in zip(drafts, likes[row], strict=True)],
        )
    )  # fmt: skip
    out = []
    for row, drafts in enumerate(drafted):
        # how close each pick named "like <your paper>" is to it: spread_likes keeps the name
        # under the closest few once the digest is whole (_fill_in may add picks)
        likeness = _likeness(
            corpus, run, signals[row], [col for col, _, _ in drafts], likes[row], found_cosines[row]
        )
        spares: list[list[str]] = []  # made Reasons only where spread_likes takes one
        for (_col, reasons, _), phrases in zip(drafts, (next(about) for _ in drafts), strict=True):
            room = 3 - len(reasons)
            reasons.extend(Reason("about", phrase) for phrase in phrases[:room])
            spares.append(phrases[room:])
        if embedded is not None:
            _add_meaning(embedded, store, corpus, cols, mine[row], drafts)
        # a reader with nothing liked (only 👎, topics not wanted or must_match, or interests
        # with no word in them) is new to the feeds, as a blank one is: their picks say so
        nothing = scored.profiles.nothing_liked
        profiled = not (nothing is not None and nothing[row])
        sub = scored.chunk[row]
        followed = chosen.followed[row]
        ranked = []
        for (col, reasons, _), near, spare in zip(drafts, likeness, spares, strict=True):
            paper = details[run.ids[col]]
            if not reasons:  # for a reader with nothing liked: the phrase they required
                asked = None if profiled else run.follow_and_filter.asked_for(sub, col)
                reasons = (
                    [Reason("must_match", asked)]
                    if asked
                    else evidence.fallback(paper, run.prior[col], profiled)
                )
            if col in followed:
                reasons.insert(0, Reason("followed_author", followed[col]))
            if not reasons:
                continue  # nothing of the reader's explains it: not in their digest
            ranked.append(
                Ranked(
                    paper["paper_id"],
                    paper["title"],
                    paper["url"],
                    float(scored.scores[row, col]),
                    reasons,
                    paper,
                    likeness=near,
                    spare=spare,
                )
            )
        out.append(ranked)
    return out


def _likeness(
    corpus: Corpus,
    run: Candidates,
    signals: rank.Signals,
    picks: list[int],
    similar: list[int | None],
    cosines: list[float] | None,
) -> list[float | None]:
    """Per pick (a candidate column), how close it is to the reader's own paper it resembles
    (``similar``: its position in liked_rows, or None): the encoder's cosines as closest_liked
    found them, else TF-IDF's, one product per paper of the reader's."""
    if cosines is not None:
        return [None if p is None else c for p, c in zip(similar, cosines, strict=True)]
    out: list[float | None] = [None] * len(picks)
    positions = {p for p in similar if p is not None}
    own = evidence.liked_rows(signals) if positions else []  # once a reader
    for position in positions:
        resembling = [i for i, p in enumerate(similar) if p == position]
        values = _closeness(corpus, run, [picks[i] for i in resembling], own[position])
        for i, value in zip(resembling, values.tolist(), strict=True):
            out[i] = value
    return out


def _closeness(corpus: Corpus, run: Candidates, picks: list[int], liked: int) -> np.ndarray:
    """How close each of these picks (candidate columns) is to one of the reader's own papers
    (a corpus row) by TF-IDF, the measure that named it with embeddings off (from the run's
    candidate Gram when it keeps one, as similar_liked_many reads it); with embeddings on,
    closest_liked gives the encoder's cosines as it finds the paper."""
    rows = run.cols[np.asarray(picks, dtype=np.int64)]
    if run.gram is not None:
        wanted = np.full(len(picks), liked, dtype=np.int64)
        return run.gram.pair_dots(wanted, np.asarray(picks, dtype=np.int64)).astype(np.float64)
    return rank.dot_rows(corpus.matrix, rows, corpus.matrix, [liked])[:, 0]


def _fill_in(
    chosen: Chosen,
    picks: list[list[Ranked]],
    explained: Callable[[Chosen], list[list[Ranked]]],
) -> None:
    """Digests short of their size because a pick had no reason take the next explained
    picks in MMR's order (``chosen.spare``), explained for those readers only."""
    short = [len(picks[row]) < len(chosen.picks[row]) for row in range(len(picks))]
    if not any(short) or not any(chosen.spare):
        return
    more = Chosen(
        chosen.allowed,
        [chosen.spare[row] if short[row] else [] for row in range(len(picks))],
        [{} for _ in picks],
    )
    extra = explained(more)
    for row, wanted in enumerate(short):
        if wanted:
            picks[row].extend(extra[row][: len(chosen.picks[row]) - len(picks[row])])


def _add_meaning(
    embedded: EmbeddedCorpus,
    store: Store,
    corpus: Corpus,
    cols: np.ndarray,
    mine: list[tuple[int, str]],
    drafts: list[tuple[int, list[Reason], list[str]]],
) -> None:
    """With embeddings on, a pick that has no reason yet says which interest it is close to in
    meaning (one a bag of words cannot see): better than "new in your feeds"."""
    if not mine:
        return  # the common case: no list built per subscriber
    bare = [col for col, reasons, _ in drafts if not reasons]
    if not bare:
        return
    closest = embedded.closest_interest(
        store,
        [text for _, text in mine],
        [int(cols[c]) for c in bare],
        embedded.meaning_floor(corpus.analysed.pairs),
    )
    named = dict(zip(bare, closest, strict=False))
    for col, reasons, _ in drafts:
        phrase = named.get(col)
        if not reasons and phrase:
            reasons.append(Reason("close_in_meaning", phrase))


# -- the run ----------------------------------------------------------------------------------


def iter_compose(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None = None,
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    limit: int | None = None,
    weights: rank.Weights = DEFAULT_WEIGHTS,
    session: RankingSession | None = None,
) -> Iterator[Digest]:
    """Rank the candidates of every given subscriber in one pass; yields their digests in the
    order given, a chunk of subscribers at a time (memory does not grow with subscribers).

    A candidate is a paper first seen after the subscriber's window start that is not their
    own: not a seed paper, not rated, not already sent (or being sent) to them. Papers are
    keyed by bare arXiv id, so another version or another feed's copy is the same paper;
    one paper under other ids (the same title and first author, or the same title and
    abstract: rank/twins.py) is the reader's own under each, and in a digest once.
    Picks come in the order the reader gets them (MMR's, which may differ from score order),
    each with its reasons; a pick that nothing of a reader's (interests, seeds, votes, followed
    authors) nor its upvotes explain is left out, so a digest may hold fewer than its size
    (README.md, "Why each paper is in your digest"). The store must stay open until the last
    digest is taken. ``session``: the caller's, to reuse its corpus and model across runs.
    The reasons are data: ``paperwire.digests`` gives the digests with them in words.
    """
    subscribers = list(config.subscribers if subscribers is None else subscribers)
    if not subscribers:
        return
    starts = (
        {s.id: since for s in subscribers}
        if since is not None
        else window_starts(store, config, [s.id for s in subscribers], now)
    )
    candidate_ids = store.papers_since(min(starts.values()))
    # a paper whose alert failed is in no window (it was left out while the alert was tried):
    # the next digest takes it back, where it is not delivered, voted or a seed since
    returned = (
        {} if since is not None else store.failed_alert_papers(starts, now - FAILED_ALERTS_RETURN)
    )
    behind = {p for papers in returned.values() for p in papers}.difference(candidate_ids)
    candidate_ids += sorted(behind)
    if not candidate_ids:
        for sub in subscribers:
            yield Digest(sub, starts[sub.id], [])
        return
    session = session or RankingSession()
    scope = corpus_scope(store, config, min(starts.values()))
    if behind and scope.since is not None:  # older than every window: kept like seeds
        scope = replace(scope, keep=scope.keep | behind)
    corpus = session.corpus(store, scope)
    run = candidates(store, corpus, subscribers, candidate_ids)
    embedded = _embedded(store, config, session, corpus)
    details: dict[str, dict[str, Any]] = {}  # the picks' stored records, read once per chunk

    def select(chunk: list[SubscriberConfig], signals: list[rank.Signals]) -> np.ndarray:
        return allowed_of(run, chunk, starts, signals, returned)

    def order(
        scores: np.ndarray, allowed: np.ndarray, chunk: list[SubscriberConfig]
    ) -> list[list[int]]:
        return ordered_of(run, scores, allowed, digest_sizes(chunk, limit), weights)

    seen = np.sort(run.first_seen)  # a paper is new to a reader first seen after their window
    # each chunk's allowed candidates are read on this thread (select: the store, and the
    # must/never texts asked_for reads later), its order beside its scores (the scoring thread)
    for scored in score(
        store, corpus, embedded, subscribers, run.cols, run.matrix, run.prior, run.phrases,
        now=now, weights=weights, gram=run.gram, calibration=run.calibration,
        select=select, order=order,
    ):  # fmt: skip
        chosen = diversify(run, scored, limit=limit)

        def explained(picked: Chosen, scored: Scored = scored) -> list[list[Ranked]]:
            return explain(store, corpus, embedded, run, scored, picked, details)

        picks = explained(chosen)
        _fill_in(chosen, picks, explained)
        for digest_picks in picks:
            evidence.spread_likes(digest_picks)
        # how many papers each reader's window holds, and how many they may get: counted for
        # the chunk at once (per reader, two passes over every candidate: ~0.1 ms each)
        windows = [starts[sub.id].timestamp() for sub in scored.chunk]
        new = len(seen) - np.searchsorted(seen, windows, side="right")
        allowed = chosen.allowed.sum(axis=1)
        for row, sub in enumerate(scored.chunk):
            yield Digest(sub, starts[sub.id], picks[row], int(allowed[row]), int(new[row]))
            run.excluded.pop(sub.id, None)  # taken: a run of 100,000 need not keep them all


def score_matrix(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None,
    paper_ids: list[str],
    *,
    now: dt.datetime,
    weights: rank.Weights = DEFAULT_WEIGHTS,
    session: RankingSession | None = None,
) -> np.ndarray:
    """Scores (subscribers × papers) with the very profiles ``compose`` uses, nothing excluded.

    A score is in standard deviations above the subscriber's average stored paper (plus the
    popularity prior and the interest-phrase bonus), so a percentile of a subscriber's scores
    over recent papers is their "usual bar" for instant alerts. Papers not in the store get NaN.
    The whole matrix at once: :func:`iter_scored_blocks` gives it a chunk of readers at a time.
    """
    subscribers = list(config.subscribers if subscribers is None else subscribers)
    out = np.full((len(subscribers), len(paper_ids)), np.nan, dtype=np.float32)
    for start, _scored, block in iter_scored_blocks(
        store, config, subscribers, paper_ids, now=now, weights=weights, session=session
    ):
        out[start : start + len(block)] = block
    return out


def run_models(
    store: Store, config: Config, session: RankingSession
) -> tuple[Corpus, EmbeddedCorpus | None]:
    """The corpus and (embeddings on) its vectors a run ranks with, from ``session``: taken
    once a run, so that everything the run works out reads the same rows (a vote or a fetch
    meanwhile makes the session build another corpus, whose rows are other papers')."""
    corpus = session.corpus(store, corpus_scope(store, config))
    return corpus, _embedded(store, config, session, corpus)


def _embedded(
    store: Store, config: Config, session: RankingSession, corpus: Corpus
) -> EmbeddedCorpus | None:
    """The vectors of ``corpus`` under the model ``ranking.embeddings`` names (None: off)."""
    return session.embedded(store, config.ranking.embeddings, corpus.ids, corpus.texts(store))


def iter_scored_blocks(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None,
    paper_ids: list[str],
    *,
    now: dt.datetime,
    weights: rank.Weights = DEFAULT_WEIGHTS,
    session: RankingSession | None = None,
    models: tuple[Corpus, EmbeddedCorpus | None] | None = None,
) -> Iterator[tuple[int, Scored | None, np.ndarray]]:
    """:func:`score_matrix` a chunk of subscribers at a time, in order: (the chunk's first
    row, its :class:`Scored`, its scores, chunk × papers). Memory holds a chunk, not every
    reader's row (alerts over 20,000 readers and a month of papers held 1.5 GiB as one
    matrix); the ``Scored`` (None when no paper is in the corpus) keeps the chunk's profiles,
    so instant alerts explain what the scores found without building them twice
    (:class:`PaperExplainer`, given the same ``models``: :func:`run_models`)."""
    subscribers = list(config.subscribers if subscribers is None else subscribers)
    session = session or RankingSession()
    corpus = models[0] if models else session.corpus(store, corpus_scope(store, config))
    known = [i for i, p in enumerate(paper_ids) if p in corpus.index]
    if not subscribers:
        return
    if not known:
        for start in range(0, len(subscribers), SUBSCRIBER_CHUNK):
            rows = len(subscribers[start : start + SUBSCRIBER_CHUNK])
            yield start, None, np.full((rows, len(paper_ids)), np.nan, dtype=np.float32)
        return
    cols = np.array([corpus.index[paper_ids[i]] for i in known])
    prior = rank.popularity_prior([corpus.rows[c]["upvotes"] for c in cols])
    embedded = models[1] if models else _embedded(store, config, session, corpus)
    for scored in score(
        store, corpus, embedded, subscribers, cols, corpus.matrix[cols], prior,
        _phrases_of(store, corpus, cols),
        now=now, weights=weights,
    ):  # fmt: skip
        block = np.full((len(scored.chunk), len(paper_ids)), np.nan, dtype=np.float32)
        block[:, known] = scored.scores
        yield scored.start, scored, block


class PaperExplainer:
    """The reasons :func:`explain` gives a reader's papers in a digest whose candidates are
    ``among`` (instant alerts: a paper far above a reader's bar says what their digest of the
    fresh papers would say of it), from a chunk :func:`iter_scored_blocks` has scored: its
    profiles, not a second build of them. Followed authors are the caller's to name."""

    def __init__(
        self,
        store: Store,
        models: tuple[Corpus, EmbeddedCorpus | None],
        among: list[str],
    ):
        self.store = store
        # the scores' own corpus and vectors (:func:`run_models`): the chunks' signals name
        # their rows, which another build of the corpus would give to other papers
        self.corpus, self.embedded = models
        # the digest's candidates: their interest phrases' matches, key phrases and the IDF
        # that "close to" weighs words by are those of the fresh papers, as a digest's are
        # (no reader's own papers: the caller left them out of what it asks about)
        self.run = candidates(store, self.corpus, [], among, dense=False)
        self.details: dict[str, dict[str, Any]] = {}

    @property
    def ids(self) -> list[str]:
        """The candidates of ``among`` in the corpus, in the order ``reasons`` reads scores."""
        return self.run.ids

    def reasons(
        self, scored: Scored, scores: np.ndarray, papers: dict[int, list[str]]
    ) -> dict[int, dict[str, list[Reason]]]:
        """Per row of the chunk in ``papers`` (row -> paper ids): paper id -> its reasons,
        nothing for a paper nothing explains. ``scores``: the chunk's at :attr:`ids`."""
        run = self.run
        rows = [row for row, wanted in papers.items() if wanted]
        if not rows:
            return {}
        picks = [[run.column[p] for p in papers.get(row, ()) if p in run.column]
                 for row in range(len(scored.chunk))]  # fmt: skip
        # the phrases' indices are this run's, not the scores': found for these readers only
        mine: list[list[tuple[int, str]]] = [[] for _ in scored.chunk]
        for row, phrases in zip(
            rows, run.phrases.of([scored.signals[r] for r in rows]), strict=True
        ):
            mine[row] = phrases
        chosen = Chosen(np.ones(scores.shape, dtype=bool), picks, [{} for _ in picks])
        explained = explain(
            self.store, self.corpus, self.embedded, run,
            replace(scored, mine=mine, scores=scores), chosen, self.details,
        )  # fmt: skip
        return {row: {pick.paper_id: pick.reasons for pick in explained[row]} for row in rows}
