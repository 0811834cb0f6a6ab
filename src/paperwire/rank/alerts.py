"""Instant alerts: after a fetch, a new paper far above a subscriber's usual bar goes out at once.

The bar is a percentile of the subscriber's own scores over the papers of the last weeks (but
those they rated or seeded, which their profile scores as its own), so
``percentile: 99.5`` means "rarer than one paper in two hundred *for this reader*", whatever
the scale of their profile. On a new install, with fewer than ``alerts.min_history`` papers
older than a day, the bar is set over every recent paper, the new ones included: alerts work
from the first week and stay as rare. Alerts go through the same ledger as digests (kind
``alert``, the paper id as period): never twice, at most ``max_per_day`` a day, and never again
in a digest.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np

from ..config import AlertConfig, Config, SubscriberConfig
from ..paper import revision_note
from ..store import Store
from . import compose as digest_mod
from .authors import Following
from .filters import PhraseFilter, fold_text
from .reasons import Ranked, Reason, ReasonKind
from .session import RankingSession
from .twins import Among

log = logging.getLogger("paperwire")

HISTORY_DAYS = 30
HISTORY_MAX = 3000  # enough recent papers to estimate a 99.5th percentile
# What a digest says of a pick when nothing of the reader's explains it (compose.explain's
# fallbacks): an alert, which interrupts, is not sent on them
FALLBACKS: frozenset[ReasonKind] = frozenset({"popular", "new", "must_match"})


@dataclass
class Alert:
    subscriber: SubscriberConfig
    pick: Ranked
    bar: float


def find_alerts(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig],
    *,
    now: dt.datetime,
    fresh_hours: float = 24,
    session: RankingSession | None = None,
) -> list[Alert]:
    """New papers (first seen in the last ``fresh_hours``) above each subscriber's bar
    (``session``: the caller's, whose corpus and model the scores reuse)."""
    settings = config.alerts
    subscribers = [s for s in subscribers if s.alerts]
    if not settings.enabled or settings.max_per_day == 0 or not subscribers:
        return []
    session = session or RankingSession()  # the scores' corpus and vectors name the reasons
    fresh = store.papers_since(now - dt.timedelta(hours=fresh_hours))
    if not fresh:
        return []
    fresh_set = set(fresh)
    recent = store.papers_since(now - dt.timedelta(days=HISTORY_DAYS))
    history = [p for p in recent if p not in fresh_set][-HISTORY_MAX:]
    if len(history) < settings.min_history:
        # A new install: too few older papers to know what "usual" is. Calibrate on what is
        # there, the new papers included: no more than (100 - percentile) % of them can be
        # above the bar, so alerts stay as rare as the percentile says (at most one in 200
        # papers by default), and below min_history papers in all there are none.
        history = recent[-HISTORY_MAX:]
        if len(history) < settings.min_history:
            log.info(
                "alerts: only %d recent papers to calibrate on (need %d); none sent",
                len(history),
                settings.min_history,
            )
            return []
    columns = list(dict.fromkeys(history + fresh))
    at = {paper_id: i for i, paper_id in enumerate(columns)}
    history_cols, fresh_cols = [at[p] for p in history], [at[p] for p in fresh]
    # a reader's bar is set over the recent papers they have not rated and are not their seeds
    # (``own``): a 👍 paper is in their profile and scores far above anything (a reader who
    # voted on their best papers got no more alerts), and 👎 on them pulled the bar down
    excluded, own = store.excluded_and_own_ids(s.id for s in subscribers)
    seeds = {s.id: set(digest_mod.seed_ids(s)) for s in subscribers}
    position = {paper_id: i for i, paper_id in enumerate(history)}
    # the run's corpus and vectors, once: the scores, the reasons and the twins read its rows
    models = digest_mod.run_models(store, config, session)
    corpus = models[0]
    # one paper under several ids (rank/twins.py)
    twins = corpus.twins.among(corpus.ids, [corpus.index.get(p, -1) for p in fresh])
    news = _Fresh(fresh, store.papers(fresh), twins)
    explainer: digest_mod.PaperExplainer | None = None  # made at the first paper above a bar
    explained_at: list[int] = []  # its candidates' columns in the scores
    alerts: list[Alert] = []
    for start, scored, block in digest_mod.iter_scored_blocks(
        store, config, subscribers, columns, now=now, models=models
    ):
        chunk = subscribers[start : start + len(block)]
        theirs = [
            [
                position[p]
                for papers in (own[sub.id], seeds[sub.id])
                for p in papers
                if p in position
            ]
            for sub in chunk
        ]
        bars, calibrated, best = _bars_and_best(block, history_cols, fresh_cols, settings, theirs)
        # per reader (their row in the chunk): what they may still get today, and the fresh
        # papers above their bar that a digest of theirs would allow (score order: best first)
        due: dict[int, tuple[int, Following, list[int]]] = {}
        for row, sub in enumerate(chunk):
            if not calibrated[row]:
                log.info(
                    "alerts: %s: fewer than %d recent papers scored to set a bar on "
                    "(ranking.corpus_papers: %d); none sent",
                    sub.id,
                    settings.min_history,
                    config.ranking.corpus_papers,
                )
                continue
            budget = settings.max_per_day - store.alerts_since(sub.id, _day_start(sub, now))
            if budget <= 0:
                continue
            following = Following(sub.follow_authors)
            above = _allowed(
                sub, best[row][: budget * 4], excluded[sub.id], seeds[sub.id], news, following
            )
            if above:
                due[row] = (budget, following, above)
        if not due or scored is None:
            continue
        # the reasons a digest of the fresh papers would give each of them (compose.explain:
        # the reader's own paper it is like, their words it matches or is close to, the key
        # phrases their profile weighs in it, the interest it is close to in meaning), from
        # the profiles that scored them, for the readers with a paper above their bar only
        if explainer is None:
            explainer = digest_mod.PaperExplainer(store, models, fresh)
            explained_at = [at[p] for p in explainer.ids]
        explained = explainer.reasons(
            scored,
            block[:, explained_at],
            {row: [fresh[col] for col in due[row][2]] for row in due},
        )
        for row, (budget, following, above) in due.items():
            alerts += _alerts_of(
                chunk[row], above, budget, explained.get(row, {}), dict(best[row]),
                float(bars[row]), news, following, settings,
            )  # fmt: skip
    return alerts


def _day_start(sub: SubscriberConfig, now: dt.datetime) -> dt.datetime:
    """The start of the reader's calendar day (their ``timezone``) at ``now``: what
    ``max_per_day`` counts in. The last 24 hours held a daily fetch's alerts back whenever it
    ran a few seconds quicker than the day before's."""
    local = now.astimezone(sub.tz)
    return dt.datetime.combine(local.date(), dt.time(), tzinfo=sub.tz).astimezone(dt.UTC)


@dataclass
class _Fresh:
    """The papers an alert may be about: their ids (a column of the scores is an index here),
    their stored records, and which of them are one paper under two ids."""

    ids: list[str]
    papers: dict[str, dict]
    twins: Among


def _allowed(
    sub: SubscriberConfig,
    best: list[tuple[int, float]],
    mine: set[str],
    seeded: set[str],
    news: _Fresh,
    following: Following,
) -> list[int]:
    """Of a reader's best fresh papers above their bar (index in ``news``, score), those a
    digest of theirs would allow, best first: not delivered or rated (``mine``), not their own
    seed paper (``seeded``), under any id, through their must/never phrases; one a paper."""
    # their own under another id (an alert's paper again from another feed), as in a digest;
    # a run's twins are few, a reader's history may be thousands of papers
    theirs = {
        col for p, cols in news.twins.others.items() if p in mine or p in seeded for col in cols
    }
    above = []
    for col, _ in best:
        paper_id = news.ids[col]
        if paper_id in mine or paper_id in seeded or col in theirs:
            continue  # delivered, rated, or the reader's own seed paper, as in a digest
        if revision_note(paper_id, news.papers[paper_id]) is not None:
            continue  # an old paper's new version: "just appeared" it did not (digests say so)
        if _passes(sub, news.papers[paper_id], following):
            above.append(int(col))
    return news.twins.distinct(above)  # two feeds' copies of one paper: one alert


def _alerts_of(
    sub: SubscriberConfig,
    above: list[int],
    budget: int,
    said: dict[str, list[Reason]],
    value_of: dict[int, float],
    bar: float,
    news: _Fresh,
    following: Following,
    settings: AlertConfig,
) -> list[Alert]:
    """A reader's alerts for the papers ``above`` their bar, best first, as many as their
    ``budget`` for the day, with the reasons their digest gives each (``said``), a followed
    author's name first and how rare the score is last; a paper with no reason of the
    reader's is none."""
    out: list[Alert] = []
    for col in above:
        if len(out) == budget:
            break
        paper_id, value = news.ids[col], value_of[col]
        paper = news.papers[paper_id]
        # a digest's fallbacks (popular, new in the feeds, must_match for a reader with
        # nothing liked) say nothing the reader's profile found
        reasons = [r for r in said.get(paper_id, []) if r.kind not in FALLBACKS]
        followed = following.match(paper.get("authors") or [])
        if followed:
            reasons.insert(0, Reason("followed_author", followed))
        if not reasons:
            # as a digest leaves out a pick nothing of the reader's explains: a score far
            # above the bar with no reason is a word the profile misread ("policy" in "AI
            # ethics and policy" on a reinforcement-learning paper), not news
            log.info("alerts: %s for %s has no reason to give; not sent", paper_id, sub.id)
            continue
        share = 100 - settings.percentile
        reasons.append(Reason("above_bar", numbers=(value, bar, share)))
        ranked = Ranked(paper_id, paper["title"], paper["url"], value, reasons, paper)
        out.append(Alert(sub, ranked, bar))
    return out


def _bars_and_best(
    block: np.ndarray,
    history: list[int],
    fresh: list[int],
    settings: AlertConfig,
    theirs: list[list[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, float]]]]:
    """From a chunk of readers' scores (:func:`compose.iter_scored_blocks`): each reader's bar
    (their ``percentile`` over the ``history`` columns but their own papers, ``theirs``: per
    row, positions in ``history``), whether enough of those were scored to set one, and their
    best fresh papers above it, best first, as many as a day of alerts may look at (index in
    ``fresh``, score). Only these outlive their chunk."""
    best: list[list[tuple[int, float]]] = [[] for _ in range(len(block))]
    looked_at = settings.max_per_day * 4  # some are the reader's own or filtered out
    usual = block[:, history]  # a copy: the reader's own papers are left out of it
    for row, positions in enumerate(theirs or []):
        usual[row, positions] = np.nan
    # the papers each bar is set over are those the reader's scores reach: past
    # ranking.corpus_papers a day of feeds can be all the corpus holds, and a bar of no paper
    # (NaN) let every fresh paper with a reason through
    scored = np.isfinite(usual)
    calibrated = scored.sum(axis=1) >= settings.min_history
    bars = _percentiles(usual, settings.percentile)
    # each reader's fresh papers above their bar, best first (equal scores: the earlier paper
    # first), found among the few above it rather than by sorting all of them
    scores = block[:, fresh]
    with np.errstate(invalid="ignore"):
        above = scores > bars[:, None]
    for row in np.flatnonzero(calibrated & above.any(axis=1)).tolist():
        cols = np.flatnonzero(above[row])
        ranked = cols[np.argsort(-scores[row, cols], kind="stable")][:looked_at]
        for col in ranked.tolist():
            value = float(scores[row, col])
            if not np.isfinite(value):
                break
            best[row].append((col, value))
    return bars, calibrated, best


def _percentiles(usual: np.ndarray, percentile: float) -> np.ndarray:
    """Each row's ``percentile`` of its scores, NaN (a paper the reader's scores do not reach,
    or their own) left out; NaN for a row of none. The rows with as many scores are taken
    together by numpy's vectorised percentile (the numbers ``nanpercentile`` gives, which goes
    row by row: 5.7 s of 20,000 readers' alerts)."""
    out = np.full(len(usual), np.nan)
    valid = np.isfinite(usual)
    counts = valid.sum(axis=1)
    for count in np.unique(counts).tolist():
        rows = np.flatnonzero(counts == count)
        if count:  # each row's scores, in order, without the NaN: one row a reader
            kept = usual[rows][valid[rows]].reshape(len(rows), count)
            out[rows] = np.percentile(kept, percentile, axis=1)
    return out


def _passes(sub: SubscriberConfig, paper: dict, following: Following) -> bool:
    """The digest's rules for one paper: ``never_match`` keeps it out; ``must_match`` too,
    unless an author the reader follows (``following``) wrote it (compose.FollowAndFilter)."""
    if not PhraseFilter(sub.must_match, sub.never_match):
        return True  # most readers: no phrase, no text to fold (3 s of 20,000 readers' alerts)
    text = fold_text(paper["title"], paper["abstract"])
    if not PhraseFilter(never=sub.never_match).allows(text):
        return False
    if PhraseFilter(must=sub.must_match).allows(text):
        return True
    return bool(following.match(paper.get("authors") or []))
