"""Compose digests: gather each subscriber's signals and candidates from the store, rank them
all in one pass with :mod:`paperwire.rank`, and return the picks with their reasons.

Nothing here sends or marks anything; ``paperwire digest`` previews exactly what ``send`` would
deliver.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..config import Config, SubscriberConfig
from ..paper import Pick, arxiv_id, paper_text
from ..store import Store
from . import core as rank
from . import terms
from .authors import Following
from .filters import PhraseFilter, fold_text

# Score rows for this many subscribers at a time, so memory stays flat as subscribers grow
# (a chunk holds a few subscribers × candidates arrays, the encoder's in float64 while they are
# made: 28 MB each at 7,000 papers). 500: 20,000 readers peak at 887 MiB, 1,026 at 1,000.
SUBSCRIBER_CHUNK = 500
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


def seed_ids(subscriber: SubscriberConfig) -> list[str]:
    """The subscriber's seed papers as stored ids: ``2309.06180v2``, ``arXiv:2309.06180`` and
    ``https://arxiv.org/abs/2309.06180v2`` are all the paper ``2309.06180``."""
    ids = (arxiv_id(p) or p.strip() for p in subscriber.seed_papers)
    return list(dict.fromkeys(p for p in ids if p))


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
        kinds = ["liked"] * len(liked)
        liked.extend((p, papers[p]["title"]) for p in stored_seeds)
        kinds += ["seed" if p in configured[sub.id] else "library" for p in stored_seeds]
        out.append(
            rank.Signals(
                interests=interests.get(sub.id, sub.interests),
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


@dataclass
class _Corpus:
    """The stored corpus, vectorised once: every profile and candidate shares it."""

    model: rank.TextModel
    ids: list[str]
    rows: list[dict[str, Any]]
    texts: list[str]
    matrix: sp.csr_matrix
    index: dict[str, int]
    # Raw term counts (before IDF): whole interest phrases are looked for in these, since a
    # phrase of common words ("large language models") has no weight in ``matrix``.
    counts: sp.csr_matrix
    # Per paper, the word pairs a reason may name and their columns.
    analysed: terms.Analysed

    @cached_property
    def upvote_scale(self) -> tuple[float, float] | None:
        """:func:`rank.upvote_scale` of every stored paper with a count, once per corpus: the
        readers' shares are read on it, not on today's candidates (a small window, or one
        absurd count, would swing them from run to run)."""
        return rank.upvote_scale([r.get("upvotes") for r in self.rows])

    @classmethod
    def load(cls, store: Store) -> _Corpus:
        """The corpus of this store, reused while no paper has been added or changed.

        Each paper's text is analysed once and stored (paperwire.terms); what a run adds is
        the IDF fit and the weighing. The last corpus is kept per database for the daemon's
        ticks and alerts, which rank few subscribers.
        """
        key = (str(store.path.resolve()), *store.corpus_version())
        cached = _CORPUS_CACHE.get(key[0])
        if cached is not None and cached[0] == key:
            return cached[1]
        rows = store.corpus()
        texts = [paper_text(r["title"], r["abstract"]) for r in rows]
        model = rank.TextModel()
        ids = [r["paper_id"] for r in rows]
        analysed = terms.load(store, model, ids, texts)
        counts = analysed.counts  # for IDF and for the vectors
        model.fit_counts(counts)
        matrix = model.weigh(counts)
        counts.data = np.ones_like(counts.data)  # presence is all phrase matching needs
        corpus = cls(
            model, ids, rows, texts, matrix, {p: i for i, p in enumerate(ids)}, counts, analysed
        )  # fmt: skip
        corpus.matrix.sort_indices()
        _CORPUS_CACHE.clear()  # one corpus at a time: a daemon serves one database
        _CORPUS_CACHE[key[0]] = (key, corpus)
        return corpus


# database path -> (version key, corpus); see _Corpus.load
_CORPUS_CACHE: dict[str, tuple[tuple, _Corpus]] = {}


class _Phrases:
    """The interest phrases of a run and the papers that contain each, found once per phrase
    (thousands of subscribers share "retrieval-augmented generation")."""

    def __init__(self, model: rank.TextModel, counts: sp.csr_matrix, texts: list[str]):
        self.model = model
        self.texts = texts
        self.presence = counts.tocsc()
        self.rows = counts.tocsr()
        self.rows.sort_indices()
        self.words: list[np.ndarray] = []  # per phrase, the columns of its words
        self.index: dict[str, int] = {}
        self.blocks: list[sp.csr_matrix] = []
        self.hits = sp.csr_matrix((0, counts.shape[0]), dtype=np.float32)
        self.papers_of: list[set[int]] = []
        self._word_sets: list[tuple[int, ...]] = []  # self.words as Python ints, for closest
        # per phrase, each word's weight in it: its IDF over the run's candidates (closest)
        self._word_weights: list[tuple[float, ...]] = []
        # candidate -> its columns that are words of some phrase (kept small: a set of all its
        # columns for 7,000 candidates would hold ~80 MB)
        self._present: dict[int, frozenset[int]] = {}
        self._vocabulary: set[int] = set()

    def of(self, signals: list[rank.Signals]) -> list[list[tuple[int, str]]]:
        """Per subscriber, (phrase index, phrase as the reader wrote it) for each interest."""
        out, new = [], []
        for sig in signals:
            mine = []
            for phrase in rank.interest_phrases(sig.interests):
                key = phrase.lower()
                if key not in self.index:
                    self.index[key] = len(self.index)
                    new.append(phrase)
                mine.append((self.index[key], phrase))
            out.append(mine)
        if new:
            block = rank.phrase_hits(self.model, new, self.presence, self.texts)
            self.words += [
                np.unique(self.model.columns([t for t in self.model.tokens(p) if " " not in t]))
                for p in new
            ]
            added = self.words[len(self._word_sets) :]
            self._word_sets += [tuple(w.tolist()) for w in added]
            papers = self.presence.shape[0]
            found_in = np.diff(self.presence.indptr)
            self._word_weights += [
                tuple((np.log((1 + papers) / (1 + found_in[w])) + 1).tolist()) for w in added
            ]
            self._vocabulary.update(w for words in self._word_sets for w in words)
            self._present.clear()  # new words: the kept sets may lack them
            self.hits = sp.vstack([self.hits, block]).tocsr()
            self.papers_of += [set(block.indices[block.indptr[i] : block.indptr[i + 1]].tolist())
                               for i in range(block.shape[0])]  # fmt: skip
        return out

    def closest(self, mine: list[tuple[int, str]], col: int) -> str | None:
        """The phrase of which the paper has most words, if none is there whole: at least two
        of them, carrying at least 60 % of the phrase's weight (each word weighs its IDF over
        the candidates, so "large language models" in every paper does not make a paper close
        to "smaller, cheaper large language models")."""
        present = self._present.get(col)
        if present is None:  # a set per candidate: np.isin per phrase and pick cost ~70 µs
            row = self.rows.indices[self.rows.indptr[col] : self.rows.indptr[col + 1]]
            vocabulary = self._vocabulary
            present = self._present[col] = frozenset(c for c in row.tolist() if c in vocabulary)
        best, best_share = None, 0.0
        for i, text in mine:
            words, weights = self._word_sets[i], self._word_weights[i]
            found = [k for k, w in enumerate(words) if w in present]
            share = sum(weights[k] for k in found) / sum(weights) if words else 0.0
            if len(found) >= 2 and share >= 0.6 and share > best_share:
                best, best_share = text, share
        return best

    def matched(self, mine: list[list[tuple[int, str]]]) -> np.ndarray:
        """(subscribers × papers): how many of each subscriber's phrases each paper contains."""
        rows = [r for r, phrases in enumerate(mine) for _ in phrases]
        cols = [i for phrases in mine for i, _ in phrases]
        owner = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(mine), self.hits.shape[0]),
        )
        return (owner @ self.hits).toarray()


def _scored_chunks(
    store: Store,
    corpus: _Corpus,
    subscribers: list[SubscriberConfig],
    papers: sp.csr_matrix,
    prior: np.ndarray,
    now: dt.datetime,
    weights: rank.Weights,
    phrases: _Phrases,
    gram: rank.CandidateGram | None = None,
    calibration: rank.CandidateGram | None = None,
):
    """Yield (start, chunk, signals, profiles, scores, interest phrases) per chunk of
    subscribers: what ``compose`` and ``score_matrix`` share, so memory stays flat as they grow.

    A score is the profile's (calibrated) score plus the popularity prior (each subscriber's
    share of it from their liked papers' upvotes, :func:`rank.crowd_affinity`) plus the bonus
    for whole interest phrases the paper contains (:func:`rank.phrase_bonus`)."""
    interests = store.interests_overrides()
    for start in range(0, len(subscribers), SUBSCRIBER_CHUNK):
        chunk = subscribers[start : start + SUBSCRIBER_CHUNK]
        signals = subscriber_signals(store, chunk, interests, corpus.index, corpus.rows)
        profiles = rank.build_profiles_from_signals(
            corpus.model, signals, corpus.matrix, now, weights, calibration
        )
        affinity = rank.crowd_affinity(
            [_liked_upvotes(corpus, sig) for sig in signals], corpus.upvote_scale, weights
        )
        scores = rank.score(profiles, papers, prior, weights, gram, affinity)
        mine = phrases.of(signals)
        if weights.phrase_match:
            scores += rank.phrase_bonus(phrases.matched(mine), weights)
        yield start, chunk, signals, profiles, scores, mine


def _liked_upvotes(corpus: _Corpus, signals: rank.Signals) -> list[int | None]:
    """The upvote counts (None: not from a source that counts) of a subscriber's seed papers
    and thumbed-up papers: what :func:`rank.crowd_affinity` reads their taste from."""
    if signals.vote_rows is None or signals.seed_rows is None:
        return []
    # a seed paper the reader also thumbed up is one paper
    return [corpus.rows[r].get("upvotes") for r in dict.fromkeys(_liked_rows(signals))]


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
    """Every given subscriber's digest, by id: :func:`iter_compose` collected.

    Callers that go through the digests one by one (``paperwire digest --json``) should
    iterate :func:`iter_compose` instead: 100,000 digests held at once cost ~1 GB."""
    return {
        d.subscriber.id: d
        for d in iter_compose(
            store, config, subscribers, now=now, since=since, limit=limit, weights=weights
        )
    }


def iter_compose(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None = None,
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    limit: int | None = None,
    weights: rank.Weights = DEFAULT_WEIGHTS,
) -> Iterator[Digest]:
    """Rank the candidates of every given subscriber in one pass; yields their digests in the
    order given, a chunk of subscribers at a time (memory does not grow with subscribers).

    A candidate is a paper first seen after the subscriber's window start that is not their
    own: not a seed paper, not rated, not already sent (or being sent) to them. Papers are
    keyed by bare arXiv id, so another version or another feed's copy is the same paper.
    Picks come in the order the reader gets them (MMR's, which may differ from score order),
    each with its reasons; a pick that nothing of a reader's (interests, seeds, votes, followed
    authors) nor its upvotes explain is left out, so a digest may hold fewer than its size
    (README.md, "Why each paper is in your digest"). The store must stay open until the last
    digest is taken.
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
    if not candidate_ids:
        for sub in subscribers:
            yield Digest(sub, starts[sub.id], [])
        return
    corpus = _Corpus.load(store)
    candidate_ids = [p for p in candidate_ids if p in corpus.index]
    cols = np.array([corpus.index[p] for p in candidate_ids])
    rows = [corpus.rows[c] for c in cols]
    matrix = corpus.matrix[cols]
    first_seen = np.array([dt.datetime.fromisoformat(r["first_seen"]).timestamp() for r in rows])
    prior = rank.popularity_prior([r.get("upvotes") for r in rows])
    excluded = store.excluded_ids(s.id for s in subscribers)
    for sub in subscribers:  # a seed paper is the reader's own: never a candidate
        excluded.setdefault(sub.id, set()).update(seed_ids(sub))
    column = {p: i for i, p in enumerate(candidate_ids)}
    # Dot products of stored papers with the candidates, once per run: scores are weighted
    # sums of their rows, and the candidates' own rows are MMR's cosines.
    gram = rank.CandidateGram(corpus.matrix, cols) if len(cols) <= MAX_DENSE_SIMILARITY else None
    similarity = None if gram is None else _Float16Cosines(gram.candidates)
    # and of stored papers with the calibration sample: each profile's score spread
    calibration = (
        None
        if gram is None
        else rank.CandidateGram(corpus.matrix, rank.calibration_rows(corpus.matrix))
    )
    explainer = _Explainer(corpus, cols)
    phrases = _Phrases(corpus.model, corpus.counts[cols], [corpus.texts[c] for c in cols])
    # the picks' stored records (authors, links ...), read per chunk in one query each
    details: dict[str, dict[str, Any]] = {}
    follow_and_filter = _FollowAndFilter(store, candidate_ids)

    for _, chunk, signals, profiles, scores, mine in _scored_chunks(
        store, corpus, subscribers, matrix, prior, now, weights, phrases, gram, calibration
    ):
        scores = _with_semantic(store, config, corpus, cols, signals, now, scores)
        profiles.matrix.sort_indices()  # _Explainer looks values up by binary search
        window = np.array([starts[sub.id].timestamp() for sub in chunk])
        allowed = first_seen[None, :] > window[:, None]
        for row, sub in enumerate(chunk):
            # sent, voted or a seed (config or imported): the reader's own, never a pick
            for paper_id in excluded.get(sub.id, ()):
                col = column.get(paper_id)
                if col is not None:
                    allowed[row, col] = False
            follow_and_filter.filter(sub, allowed[row])  # must_match / never_match
        sizes = [limit or sub.digest_size for sub in chunk]
        pools = rank.top_k(scores, max(sizes) * MMR_POOL, allowed)
        pools = [pools[row][: sizes[row] * MMR_POOL] for row in range(len(chunk))]
        if similarity is not None:  # the whole chunk side by side
            chosen_rows = rank.mmr_many(pools, scores, sizes, weights.mmr_lambda, similarity)
        else:
            chosen_rows = [
                rank.mmr(pools[row], scores[row], matrix, sizes[row], weights.mmr_lambda)
                for row in range(len(chunk))
            ]
        wanted = {candidate_ids[c] for chosen in chosen_rows for c in chosen} - details.keys()
        details.update(store.papers(wanted))
        follows = []
        for row, sub in enumerate(chunk):
            followed = follow_and_filter.followed(sub, allowed[row])  # always in, and said so
            if followed:
                rest = [c for c in chosen_rows[row] if c not in followed]
                chosen_rows[row] = [*followed, *rest][: max(sizes[row], len(followed))]
                details.update(store.papers(candidate_ids[c] for c in followed))
            follows.append(followed)
        # "like <your paper>": by embedding when ranking.embeddings is on, else the TF-IDF
        # cosines, the whole chunk's in one pass when the run keeps the candidate Gram
        alike = None
        if not config.ranking.embeddings and gram is not None:
            alike = _similar_liked_many(corpus, signals, chosen_rows, cols, gram)
        drafted = []  # per subscriber: (followed, [(col, reasons so far, named) per pick])
        for row, _sub in enumerate(chunk):
            chosen, followed = chosen_rows[row], follows[row]
            if alike is not None:
                similar = alike[row]
            else:
                similar = _similar_by_embedding(store, config, corpus, cols[chosen], signals[row])
            if similar is None:  # embeddings off and no Gram: one product per digest
                similar = _similar_liked(corpus, signals[row], matrix, chosen, candidate_ids)
            drafts = []  # (col, reasons so far, phrases already named) per pick
            for col, liked in zip(chosen, similar, strict=True):
                # the reader's own paper first: it is what a reader recognises at once
                reasons = [] if liked is None else [_like_reason(signals[row], liked)]
                matched = [text for i, text in mine[row] if col in phrases.papers_of[i]]
                reasons += [f"matches your interest “{text}”" for text in matched[:2]]
                close = None if matched else phrases.closest(mine[row], col)
                if close is not None:
                    reasons.append(f"close to your interest “{close}”")
                drafts.append((col, reasons, matched + ([close] if close else [])))
            drafted.append((followed, drafts))
        # the key phrases each profile weighs most, for every pick that still has room for
        # one: the whole chunk in one lookup (one per pick cost ~50 µs each)
        about = iter(
            explainer.best(
                profiles.matrix,
                [(row, col, 3 - len(r), named) for row, (_, drafts) in enumerate(drafted)
                 for col, r, named in drafts],
            )
        )  # fmt: skip
        for row, (sub, (followed, drafts)) in enumerate(zip(chunk, drafted, strict=True)):
            digest = Digest(sub, starts[sub.id], [], int(allowed[row].sum()))
            for _col, reasons, _ in drafts:
                reasons.extend(f"about “{phrase}”" for phrase in next(about))
            _add_meaning(store, config, corpus, cols, mine[row], drafts)
            profiled = _has_profile(signals[row])
            for col, reasons, _ in drafts:
                paper = details[candidate_ids[col]]
                if not reasons:
                    reasons = _fallback(paper, prior[col], profiled)
                if col in followed:
                    reasons.insert(0, f"by an author you follow ({followed[col]})")
                if not reasons:
                    continue  # nothing of the reader's explains it: not in their digest
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
            yield digest
            excluded.pop(sub.id, None)  # taken: a run of 100,000 need not keep them all


# Candidates up to which the run keeps a dense rank.CandidateGram (float32; 10,000: 400 MB;
# 7,000: 196 MB, plus a row per voted paper that is not a candidate); beyond, scores are one
# sparse product per chunk and each subscriber's MMR pool computes its own cosines
# (rank.dot_rows, ~2 ms a pool of 30).
MAX_DENSE_SIMILARITY = 10_000


class _Float16Cosines:
    """The candidates' cosines as MMR reads them: float16, so the same picks as when the run
    kept a float16 matrix (MMR needs two or three digits of a cosine, not seven)."""

    def __init__(self, cosines: np.ndarray):
        self.cosines = cosines

    def __getitem__(self, key) -> np.ndarray:
        return self.cosines[key].astype(np.float16)


def _similar_liked(
    corpus: _Corpus,
    signals: rank.Signals,
    matrix: sp.csr_matrix,
    chosen: list[int],
    candidate_ids: list[str],
) -> list[int | None]:
    """For each pick, the liked (or seed) paper it resembles, if any, as its position in
    ``signals.liked_titles``: one product for the whole digest, for runs without a candidate
    Gram (:func:`_similar_liked_many` reads the Gram). A paper is never "like" itself."""
    liked_rows = _liked_rows(signals)
    if not liked_rows or not chosen:
        return [None] * len(chosen)
    # liked_titles lists the liked papers in the same order: thumbs-up first, then seeds
    liked = signals.liked_titles[: len(liked_rows)]
    same = np.array([[candidate_ids[c] == pid for pid, _ in liked] for c in chosen])
    return rank.most_similar_liked(matrix, chosen, corpus.matrix, liked_rows, same)


def _has_profile(signals: rank.Signals) -> bool:
    """Whether a reader told us anything: an interests text, a seed paper or a vote."""
    return bool(signals.interests.strip() or signals.liked_titles or signals.votes)


def _fallback(paper: dict[str, Any], popularity: float, profiled: bool) -> list[str]:
    """The reason of a pick that nothing of the reader's explains: popular today (more
    upvotes than the candidates' average with a count), else, for a reader who told us nothing
    and so follows the feeds for everything, new in them; else none (the pick is left out)."""
    if paper.get("upvotes") and popularity > 0:
        return [f"popular today: {paper['upvotes']} upvotes"]
    return [] if profiled else ["new in your feeds"]


def _like_reason(signals: rank.Signals, position: int) -> str:
    """ "like <title> ...": the reader's own paper a pick resembles, and what it is to them."""
    title = signals.liked_titles[position][1]
    kinds = signals.liked_kinds
    kind = kinds[position] if position < len(kinds) else "liked"
    if kind == "library":
        return f"like “{title}” in your library"
    if kind == "seed":
        return f"like “{title}”, one of your seed papers"
    return f"like “{title}”, which you liked"


def _liked_rows(signals: rank.Signals) -> list[int]:
    """The corpus rows of the reader's thumbs-up, then seeds: the order of liked_titles."""
    rows = [c for c, (_, v, _) in zip(signals.vote_rows, signals.votes, strict=True) if v > 0]
    return rows + list(signals.seed_rows)


def _similar_liked_many(
    corpus: _Corpus,
    signals: list[rank.Signals],
    chosen_rows: list[list[int]],
    cols: np.ndarray,
    gram: rank.CandidateGram,
) -> list[list[int | None]]:
    """What :func:`_similar_liked` gives each subscriber of a chunk, with every (pick, liked
    paper) cosine read from the candidate Gram at once (:meth:`rank.CandidateGram.pair_dots`):
    the same first-best rule and the same bar, without ~10 numpy calls per digest."""
    liked = [_liked_rows(sig) for sig in signals]
    # one entry per (subscriber, pick, liked paper), picks in order, liked papers in order
    picks, likes = [], []
    for chosen, rows in zip(chosen_rows, liked, strict=True):
        for c in chosen:
            picks += [c] * len(rows)
            likes += rows
    out: list[list[int | None]] = [[None] * len(chosen) for chosen in chosen_rows]
    if not likes:
        return out
    pick = np.array(picks, dtype=np.int64)
    values = gram.pair_dots(np.array(likes, dtype=np.int64), pick).astype(np.float64)
    values[cols[pick] == np.array(likes)] = -np.inf  # a pick is never similar to itself
    # the best liked paper per pick: the first of the highest (np.argmax's rule)
    sizes = np.array([len(rows) for rows in liked], dtype=np.int64)
    per_pick = np.repeat(sizes, [len(chosen) for chosen in chosen_rows])
    per_pick = per_pick[per_pick > 0]
    starts = np.r_[0, np.cumsum(per_pick)[:-1]]
    best = np.maximum.reduceat(values, starts)
    position = np.arange(len(values))
    first = np.where(values == np.repeat(best, per_pick), position, len(values))
    first = np.minimum.reduceat(first, starts) - starts
    k = 0
    for row, (chosen, rows) in enumerate(zip(chosen_rows, liked, strict=True)):
        if not rows:
            continue
        for i in range(len(chosen)):
            if best[k] >= rank.SIMILAR_LIKED_BAR:
                out[row][i] = int(first[k])
            k += 1
    return out


class _FollowAndFilter:
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


class _Explainer:
    """Each candidate's key phrases and its vector's values at their columns, found once per
    run, not per pick."""

    def __init__(self, corpus: _Corpus, cols: np.ndarray):
        self.corpus = corpus
        self.cols = cols
        # col -> (its key phrases, the paper's values at their columns, and per phrase how
        # many of its terms must raise the score: see rank.best_key_phrases)
        self._cache: dict[int, tuple[rank.KeyPhrases, np.ndarray, np.ndarray]] = {}

    def _found(self, col: int) -> tuple[rank.KeyPhrases, np.ndarray, np.ndarray]:
        if col not in self._cache:
            row = self.cols[col]
            stored = self.corpus.rows[row]
            analysed = self.corpus.analysed
            found = rank.key_phrases_of(
                self.corpus.model, analysed.pairs(row), analysed.columns(row), _keywords(stored)
            )
            paper = _values_at(_row_of(self.corpus.matrix, row), found.columns)
            self._cache[col] = (found, paper, np.minimum(np.diff(found.starts), 2))
        return self._cache[col]

    def best(
        self, profiles: sp.csr_matrix, wants: list[tuple[int, int, int, list[str]]]
    ) -> list[list[str]]:
        """For each (profile row, candidate ``col``, ``n``, phrases already named), up to ``n``
        key phrases of the candidate that this profile weighs most: what
        :func:`rank.best_key_phrases` gives, with the numbers of a whole chunk of subscribers'
        picks worked out in one pass. ``profiles`` must have sorted indices."""
        out: list[list[str]] = [[] for _ in wants]
        live = [(i, row, col, n, skip) for i, (row, col, n, skip) in enumerate(wants) if n > 0]
        # the chunk's distinct candidates, their phrases' numbers side by side, once each
        distinct = list(dict.fromkeys(col for _, _, col, _, _ in live))
        found = [self._found(col) for col in distinct]
        slot = {col: k for k, col in enumerate(distinct)}
        live = [w for w in live if found[slot[w[2]]][0].texts]
        if not live:
            return out
        which = np.array([slot[col] for _, _, col, _, _ in live], dtype=np.int64)
        sizes = np.array([len(f.columns) for f, _, _ in found], dtype=np.int64)
        counts = np.array([len(f.texts) for f, _, _ in found], dtype=np.int64)
        columns = _gather(np.concatenate([f.columns for f, _, _ in found]), sizes, which)
        paper = _gather(np.concatenate([p for _, p, _ in found]), sizes, which)
        needed = _gather(np.concatenate([n for _, _, n in found]), counts, which)
        local = _gather(np.concatenate([f.starts[:-1] for f, _, _ in found]), counts, which)
        rows = np.array([row for _, row, _, _, _ in live], dtype=np.int64)
        # the profile's weight times the paper's at each column of each pick's phrases
        weight = _values_of_rows(profiles, np.repeat(rows, sizes[which]), columns)
        contributions = weight * paper
        starts = local + np.repeat(np.cumsum(sizes[which]) - sizes[which], counts[which])
        totals = np.add.reduceat(contributions, starts)
        raising = np.add.reduceat((contributions > 0).astype(np.int64), starts)
        totals = np.where(raising >= needed, totals, 0.0)
        # Every pick's phrases best first in one sort (what rank.pick_key_phrases does per
        # pick): by pick, then by total, highest first; lexsort is stable, so equal totals keep
        # the order they were written in.
        owner = np.repeat(np.arange(len(live)), counts[which])
        positive = np.flatnonzero(totals > 0)
        order = positive[np.lexsort((-totals[positive], owner[positive]))]
        bounds = np.searchsorted(owner[order], np.arange(len(live) + 1)).tolist()
        firsts = np.r_[0, np.cumsum(counts[which])[:-1]]
        mine = (order - firsts[owner[order]]).tolist()  # each phrase's index in its own pick
        for k, (i, _, col, n, skip) in enumerate(live):
            texts = found[slot[col]][0].texts
            out[i] = rank.choose_key_phrases(texts, mine[bounds[k] : bounds[k + 1]], n, skip)
        return out


def _gather(flat: np.ndarray, lengths: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The concatenation of the ``which``-th pieces of ``flat``, whose pieces have ``lengths``
    (piece k is ``flat[offsets[k] : offsets[k] + lengths[k]]``), in one fancy index."""
    offsets = np.cumsum(lengths) - lengths
    taken = lengths[which]
    shift = np.repeat(offsets[which] - (np.cumsum(taken) - taken), taken)
    return flat[np.arange(int(taken.sum())) + shift]


def _values_of_rows(matrix: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix[rows[i], columns[i]]`` for every i, as float64, by one binary search over
    (row, column) keys (``matrix`` with sorted indices)."""
    width = np.int64(matrix.shape[1])
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keys = keys * width + matrix.indices
    wanted = rows.astype(np.int64) * width + columns
    out = np.zeros(len(wanted), dtype=np.float64)
    if keys.size == 0 or wanted.size == 0:
        return out
    where = np.searchsorted(keys, wanted)
    inside = where < keys.size
    hit = inside.copy()
    hit[inside] = keys[where[inside]] == wanted[inside]
    out[hit] = matrix.data[where[hit]]
    return out


def _row_of(matrix: sp.csr_matrix, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) of one row of a CSR matrix, as views of its arrays."""
    lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
    return matrix.indices[lo:hi], matrix.data[lo:hi]


def _keywords(row: dict[str, Any]) -> list[str]:
    """The source's key phrases of a stored paper (Hugging Face ``ai_keywords``), if any."""
    value = row.get("keywords")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [str(k) for k in value] if isinstance(value, list) else []


def _values_at(row: tuple[np.ndarray, np.ndarray], columns: np.ndarray) -> np.ndarray:
    """The values of one CSR row (:func:`_row_of`; sorted indices) at the given columns."""
    indices, data = row
    out = np.zeros(len(columns), dtype=np.float64)
    if indices.size == 0 or len(columns) == 0:
        return out
    where = np.searchsorted(indices, columns)
    inside = where < indices.size
    hit = inside.copy()
    hit[inside] = indices[where[inside]] == columns[inside]
    out[hit] = data[where[hit]]
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
    popularity prior and the interest-phrase bonus), so a percentile of a subscriber's scores
    over recent papers is their "usual bar" for instant alerts. Papers not in the store get NaN.
    """
    subscribers = list(config.subscribers if subscribers is None else subscribers)
    out = np.full((len(subscribers), len(paper_ids)), np.nan, dtype=np.float32)
    corpus = _Corpus.load(store)
    known = [i for i, p in enumerate(paper_ids) if p in corpus.index]
    if not subscribers or not known:
        return out
    cols = np.array([corpus.index[paper_ids[i]] for i in known])
    prior = rank.popularity_prior([corpus.rows[c]["upvotes"] for c in cols])
    phrases = _Phrases(corpus.model, corpus.counts[cols], [corpus.texts[c] for c in cols])
    for start, chunk, signals, _, scores, _ in _scored_chunks(
        store, corpus, subscribers, corpus.matrix[cols], prior, now, weights, phrases
    ):
        scores = _with_semantic(store, config, corpus, cols, signals, now, scores)
        out[start : start + len(chunk), known] = scores
    return out


# -- the embedding model's hook --------------------------------------------------------------------


def _with_semantic(store, config, corpus, cols, signals, now, scores):
    """The TF-IDF scores plus the embedding model's, when ``ranking.embeddings`` is set."""
    from . import semantic  # scikit-learn is already loaded; the model only when configured

    extra = semantic.extra_scores(
        store, config.ranking.embeddings, corpus.ids, corpus.texts, cols, signals, now, base=scores
    )
    return scores if extra is None else scores + extra


def _add_meaning(store, config, corpus, cols, mine, drafts) -> None:
    """With embeddings on, a pick that has no reason yet says which interest it is close to in
    meaning (one a bag of words cannot see): better than "new in your feeds"."""
    if not config.ranking.embeddings or not mine:
        return  # the common case: no list built per subscriber
    bare = [col for col, reasons, _ in drafts if not reasons]
    if not bare:
        return
    from . import semantic

    closest = semantic.closest_interest(
        store,
        config.ranking.embeddings,
        corpus.ids,
        corpus.texts,
        [text for _, text in mine],
        [int(cols[col]) for col in bare],
    )
    named = dict(zip(bare, closest or [], strict=False))
    for col, reasons, _ in drafts:
        if not reasons and named.get(col):
            reasons.append(f"close in meaning to your interest “{named[col]}”")


def _similar_by_embedding(store, config, corpus, pick_rows, signals):
    """The "similar to" titles by embedding cosine; None when ``ranking.embeddings`` is off."""
    from . import semantic

    return semantic.similar_liked(
        store, config.ranking.embeddings, corpus.ids, corpus.texts, signals, pick_rows
    )
