"""Why each pick is there, found for a whole chunk of subscribers at once: the key phrases a
reader's profile weighs in a pick, the reader's own paper a pick resembles, and the fallback
when nothing of the reader's explains it. Reasons are data (rank/reasons.py); render words them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import core as rank
from .corpus import Corpus
from .paper_phrases import KeyPhrases, choose_key_phrases, key_phrases_many, raised_totals
from .reasons import Ranked, Reason


class ProfilePhrases:
    """Each candidate's key phrases and its vector's values at their columns, found once per
    run, not per pick."""

    def __init__(self, corpus: Corpus, cols: np.ndarray):
        self.corpus = corpus
        self.cols = cols
        # col -> (its key phrases, the paper's values at their columns)
        self._cache: dict[int, tuple[KeyPhrases, np.ndarray]] = {}

    def _find(self, cols: list[int]) -> None:
        """Cache the key phrases of the candidates ``cols`` not seen yet, and their values."""
        new = [col for col in dict.fromkeys(cols) if col not in self._cache]
        if not new:
            return
        analysed, model = self.corpus.analysed, self.corpus.model
        rows = [int(self.cols[col]) for col in new]
        found = key_phrases_many(
            model,
            [
                (analysed.pairs(r), analysed.columns(r), _keywords(self.corpus.rows[r]))
                for r in rows
            ],
        )
        # the papers' values at their phrases' columns in one look-up (one a paper let the GIL go
        # ~17,000 times a run, and the thread that words the reasons waited for it each time)
        sizes = np.array([len(f.columns) for f in found], dtype=np.int64)
        values = _values_of_rows(
            self.corpus.matrix[rows],
            np.repeat(np.arange(len(rows), dtype=np.int64), sizes),
            np.concatenate([f.columns for f in found]),
        )
        for col, phrases, paper in zip(
            new, found, np.split(values, np.cumsum(sizes)[:-1]), strict=True
        ):
            self._cache[col] = (phrases, paper)

    def best(
        self, profiles: sp.csr_matrix, wants: list[tuple[int, int, int, list[str]]]
    ) -> list[list[str]]:
        """For each (profile row, candidate ``col``, ``n``, phrases already named), up to ``n``
        key phrases of the candidate that this profile weighs most: what
        :func:`paper_phrases.best_key_phrases` gives, with the numbers of a whole chunk of subscribers'
        picks worked out in one pass. ``profiles`` must have sorted indices."""
        out: list[list[str]] = [[] for _ in wants]
        live = [(i, row, col, n, skip) for i, (row, col, n, skip) in enumerate(wants) if n > 0]
        # the chunk's distinct candidates, their phrases' numbers side by side, once each
        distinct = list(dict.fromkeys(col for _, _, col, _, _ in live))
        self._find(distinct)
        found = [self._cache[col] for col in distinct]
        slot = {col: k for k, col in enumerate(distinct)}
        live = [w for w in live if found[slot[w[2]]][0].texts]
        if not live:
            return out
        which = np.array([slot[col] for _, _, col, _, _ in live], dtype=np.int64)
        sizes = np.array([len(f.columns) for f, _ in found], dtype=np.int64)
        counts = np.array([len(f.texts) for f, _ in found], dtype=np.int64)
        columns = _gather(np.concatenate([f.columns for f, _ in found]), sizes, which)
        paper = _gather(np.concatenate([p for _, p in found]), sizes, which)
        local = _gather(np.concatenate([f.starts[:-1] for f, _ in found]), counts, which)
        rows = np.array([row for _, row, _, _, _ in live], dtype=np.int64)
        # the profile's weight times the paper's at each column of each pick's phrases
        weight = _values_of_rows(profiles, np.repeat(rows, sizes[which]), columns)
        contributions = weight * paper
        starts = local + np.repeat(np.cumsum(sizes[which]) - sizes[which], counts[which])
        totals = raised_totals(contributions, starts)  # best_key_phrases' rule, every pick
        # Every pick's phrases best first in one sort (what paper_phrases.pick_key_phrases does per
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
            out[i] = choose_key_phrases(texts, mine[bounds[k] : bounds[k + 1]], n, skip)
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


def _keywords(row: dict[str, Any]) -> list[str]:
    """The source's key phrases of a stored paper (Hugging Face ``ai_keywords``), if any."""
    value = row.get("keywords")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [str(k) for k in value] if isinstance(value, list) else []


def similar_liked(
    corpus: Corpus,
    signals: rank.Signals,
    matrix: sp.csr_matrix,
    chosen: list[int],
    candidate_ids: list[str],
) -> list[int | None]:
    """For each pick, the liked (or seed) paper it resembles, if any, as its position in
    ``signals.liked_titles``: one product for the whole digest, for runs without a candidate
    Gram (:func:`similar_liked_many` reads the Gram). A paper is never "like" itself."""
    rows = liked_rows(signals)
    if not rows or not chosen:
        return [None] * len(chosen)
    # liked_titles lists the liked papers in the same order: thumbs-up first, then seeds
    liked = signals.liked_titles[: len(rows)]
    same = np.array([[candidate_ids[c] == pid for pid, _ in liked] for c in chosen])
    return rank.most_similar_liked(matrix, chosen, corpus.matrix, rows, same)


def similar_liked_many(
    corpus: Corpus,
    signals: list[rank.Signals],
    chosen_rows: list[list[int]],
    cols: np.ndarray,
    gram: rank.CandidateGram,
) -> list[list[int | None]]:
    """What :func:`similar_liked` gives each subscriber of a chunk, with every (pick, liked
    paper) cosine read from the candidate Gram at once (:meth:`rank.CandidateGram.pair_dots`):
    the same first-best rule and the same bar, without ~10 numpy calls per digest."""
    liked = [liked_rows(sig) for sig in signals]
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


# "like <your paper>" names one of the reader's papers under at most this share of a digest's
# picks (rounded up), the closest to it: on a day of arXiv's cs feed a reader with one seed read
# "like <it>" under 9 of 10 picks (a jailbreak detector, a prompt-tuning and a text-to-image
# paper "like" a weight-quantization seed among them), where the next reason of most said more.
LIKE_SHARE = 1 / 3


def spread_likes(picks: list[Ranked]) -> None:
    """Keep "like <your paper>" under at most ``LIKE_SHARE`` of a whole digest's ``picks``
    (rounded up) for each of the reader's papers: under the pick closest to that paper
    (``Ranked.likeness``), where it is the pick's only reason (nothing else explains it), and
    under the next closest picks while there is room; the others say their next reason
    instead (``Ranked.spare``)."""
    cap = max(1, math.ceil(len(picks) * LIKE_SHARE))
    named: dict[Reason, list[int]] = {}
    for i, pick in enumerate(picks):
        like = _like_of(pick)
        if like is not None:
            named.setdefault(like, []).append(i)
    for like, where in named.items():
        if len(where) <= cap:
            continue
        where = sorted(where, key=lambda i: -(picks[i].likeness or 0.0))  # closest first
        rest = [i for i in where[1:] if len(picks[i].reasons) > 1]  # the others need it
        room = max(0, cap - (len(where) - len(rest)))
        for i in rest[room:]:
            pick = picks[i]
            pick.reasons.remove(like)
            pick.reasons.extend(Reason("about", phrase) for phrase in pick.spare[:1])


def _like_of(pick: Ranked) -> Reason | None:
    return next((r for r in pick.reasons if r.kind.startswith("like_")), None)


def liked_rows(signals: rank.Signals) -> list[int]:
    """The corpus rows of the reader's thumbs-up, then seeds: the order of liked_titles (none
    for signals that do not name their papers by corpus row)."""
    votes = zip(signals.vote_rows or [], signals.votes, strict=True)
    return [c for c, (_, v, _) in votes if v > 0] + list(signals.seed_rows or [])


def liked_upvotes(corpus: Corpus, signals: rank.Signals) -> list[int | None]:
    """The upvote counts (None: not from a source that counts) of a subscriber's seed papers
    and thumbed-up papers: what :func:`rank.crowd_affinity` reads their taste from."""
    if signals.vote_rows is None or signals.seed_rows is None:
        return []
    # a seed paper the reader also thumbed up is one paper
    return [corpus.rows[r].get("upvotes") for r in dict.fromkeys(liked_rows(signals))]


# How popular a pick must be (its standardised log-upvotes among the candidates with a count)
# to be in the digest of a reader with interests, seeds or 👍 on that alone: about the top
# sixth. Above the average was enough, and two months of a field test's digests held 26 picks
# whose one reason was "popular on Hugging Face: 2 upvotes" (found in review).
POPULAR_ALONE = 1.0


def fallback(paper: dict[str, Any], popularity: float, profiled: bool) -> list[Reason]:
    """The reason of a pick that nothing of the reader's explains: popular (more upvotes than
    the candidates' average with a count; for a reader who told us what they like, among the
    most upvoted, :data:`POPULAR_ALONE`), else, for a reader who told us nothing and so follows
    the feeds for everything, new in them; else none (the pick is left out)."""
    if paper.get("upvotes") and popularity > (POPULAR_ALONE if profiled else 0.0):
        return [Reason("popular", upvotes=paper["upvotes"])]
    return [] if profiled else [Reason("new")]


def like_reason(signals: rank.Signals, position: int) -> Reason:
    """ "like <title> ...": the reader's own paper a pick resembles, and what it is to them."""
    title = signals.liked_titles[position][1]
    kinds = signals.liked_kinds
    kind = kinds[position] if position < len(kinds) else "liked"
    if kind == "library":
        return Reason("like_library", title)
    if kind == "seed":
        return Reason("like_seed", title)
    return Reason("like_liked", title)
