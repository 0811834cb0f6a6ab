"""Instant alerts: after a fetch, a new paper far above a subscriber's usual bar goes out at once.

The bar is a percentile of the subscriber's own scores over the papers of the last weeks, so
``percentile: 99.5`` means "rarer than one paper in two hundred *for this reader*", whatever
the scale of their profile. On a new install, with fewer than ``alerts.min_history`` papers
older than a day, the bar is set over every recent paper, the new ones included: alerts work
from the first week and stay as rare. Alerts go through the same ledger as digests (kind
``alert``, the paper id as period): never twice, at most ``max_per_day`` a day, and never again
in a digest.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from ..config import Config, SubscriberConfig
from ..store import Store
from . import compose as digest_mod
from . import evidence
from .authors import Following
from .corpus import Corpus
from .embedded import EmbeddedCorpus
from .filters import PhraseFilter, fold_text
from .phrases import interest_phrases, phrase_pattern
from .reasons import Ranked, Reason
from .scope import scope as corpus_scope
from .session import RankingSession

log = logging.getLogger("paperwire")

HISTORY_DAYS = 30
HISTORY_MAX = 3000  # enough recent papers to estimate a 99.5th percentile


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
    scores = digest_mod.score_matrix(store, config, subscribers, columns, now=now, session=session)
    usual = scores[:, [at[p] for p in history]]
    # the papers each bar is set over are those the reader's scores reach: past
    # ranking.corpus_papers a day of feeds can be all the corpus holds, and a bar of no paper
    # (NaN) let every fresh paper with a reason through
    calibrated = np.isfinite(usual).sum(axis=1) >= settings.min_history
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": not calibrated
        bars = np.nanpercentile(usual, settings.percentile, axis=1)
    fresh_scores = scores[:, [at[p] for p in fresh]]
    excluded = store.excluded_ids(s.id for s in subscribers)
    seeds = {s.id: set(digest_mod.seed_ids(s)) for s in subscribers}
    edited = store.interests_overrides()
    papers = store.papers(fresh)

    @functools.cache  # read at the first alert's reasons, not at every fetch that has none
    def ranked_against() -> tuple[Corpus, EmbeddedCorpus | None]:
        corpus = session.corpus(store, corpus_scope(store, config))
        spec = config.ranking.embeddings
        return corpus, session.embedded(store, spec, corpus.ids, corpus.texts(store))

    mine = _own_papers(store, subscribers, ranked_against)
    meaning = _close_in_meaning(store, ranked_against)
    since = now - dt.timedelta(days=1)
    alerts: list[Alert] = []
    for row, sub in enumerate(subscribers):
        if not calibrated[row]:
            log.info(
                "alerts: %s: fewer than %d recent papers scored to set a bar on "
                "(ranking.corpus_papers: %d); none sent",
                sub.id,
                settings.min_history,
                config.ranking.corpus_papers,
            )
            continue
        budget = settings.max_per_day - store.alerts_since(sub.id, since)
        if budget <= 0:
            continue
        following = Following(sub.follow_authors)
        order = np.argsort(-np.nan_to_num(fresh_scores[row], nan=-np.inf), kind="stable")
        for col in order[: budget * 4]:
            value = float(fresh_scores[row, col])
            if not np.isfinite(value) or value <= bars[row] or budget <= 0:
                break
            paper_id = fresh[col]
            if paper_id in excluded[sub.id] or paper_id in seeds[sub.id]:
                continue  # delivered, rated, or the reader's own seed paper, as in a digest
            paper = papers[paper_id]
            if not _passes(sub, paper, following):
                continue
            share = 100 - settings.percentile
            # the reader's own paper it is like and their own words, as a digest names them;
            # then how rare the score is
            interests = edited.get(sub.id, sub.interests)
            reasons = mine(row, paper_id)
            reasons += [
                Reason("matches_interest", phrase) for phrase in _interests_in(interests, paper)[:2]
            ]
            if not reasons:
                reasons = meaning(interests, paper_id)
            followed = following.match(paper.get("authors") or [])
            if followed:
                reasons.insert(0, Reason("followed_author", followed))
            if not reasons:
                # as a digest leaves out a pick nothing of the reader's explains: a score far
                # above the bar with no reason is a word the profile misread ("policy" in
                # "AI ethics and policy" on a reinforcement-learning paper), not news
                log.info("alerts: %s for %s has no reason to give; not sent", paper_id, sub.id)
                continue
            reasons.append(Reason("above_bar", numbers=(value, float(bars[row]), share)))
            alerts.append(
                Alert(
                    sub,
                    Ranked(paper_id, paper["title"], paper["url"], value, reasons, paper),
                    float(bars[row]),
                )
            )
            budget -= 1
    return alerts


# The run's corpus and its vectors (None with the encoder off), read once when first asked for.
RankedAgainst = Callable[[], tuple[Corpus, EmbeddedCorpus | None]]


def _own_papers(
    store: Store, subscribers: list[SubscriberConfig], ranked_against: RankedAgainst
) -> Callable[[int, str], list[Reason]]:
    """For a subscriber (their row) and a new paper: "like <their paper>" when the paper is
    close to one they liked or seeded, by the digest's rule (compose.explain), else nothing.
    The readers' signals are read at the first alert, not at every fetch that has none."""

    @functools.cache
    def signals() -> list:
        corpus, _ = ranked_against()
        return digest_mod.subscriber_signals(
            store, subscribers, store.interests_overrides(), corpus.index, corpus.rows,
            store.not_interested_overrides(),
        )  # fmt: skip

    def like(row: int, paper_id: str) -> list[Reason]:
        corpus, embedded = ranked_against()
        col = corpus.index.get(paper_id)
        if col is None:
            return []
        mine = signals()[row]
        if embedded is not None:
            [liked] = embedded.similar_liked(mine, np.array([col]))
        else:
            [liked] = evidence.similar_liked(corpus, mine, corpus.matrix, [col], corpus.ids)
        return [] if liked is None else [evidence.like_reason(mine, liked)]

    return like


def _close_in_meaning(
    store: Store, ranked_against: RankedAgainst
) -> Callable[[str, str], list[Reason]]:
    """For an interests text and a new paper: "close in meaning to your interest" when the
    paper is among the papers nearest one of its phrases, by the digest's rule
    (``EmbeddedCorpus.closest_interest``); nothing with the encoder off."""

    def meaning(interests: str, paper_id: str) -> list[Reason]:
        phrases = interest_phrases(interests)
        if not phrases:
            return []
        corpus, embedded = ranked_against()
        col = corpus.index.get(paper_id)
        if col is None or embedded is None:
            return []
        [phrase] = embedded.closest_interest(store, phrases, [col])
        return [] if phrase is None else [Reason("close_in_meaning", phrase)]

    return meaning


def _interests_in(interests: str, paper: dict) -> list[str]:
    """The reader's interest phrases the paper contains whole (as compose finds them)."""
    text = f"{paper['title'] or ''}\n{paper['abstract'] or ''}"
    return [
        phrase
        for phrase in interest_phrases(interests)
        if phrase_pattern(phrase, ENGLISH_STOP_WORDS).search(text)
    ]


def _passes(sub: SubscriberConfig, paper: dict, following: Following) -> bool:
    """The digest's rules for one paper: ``never_match`` keeps it out; ``must_match`` too,
    unless an author the reader follows (``following``) wrote it (compose.FollowAndFilter)."""
    text = fold_text(paper["title"], paper["abstract"])
    if not PhraseFilter(never=sub.never_match).allows(text):
        return False
    if PhraseFilter(must=sub.must_match).allows(text):
        return True
    return bool(following.match(paper.get("authors") or []))
