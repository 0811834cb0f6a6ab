"""Digests as readers get them: ranked by rank/ (picks, scores, reasons as data), worded by
render/reasons.py. What ``paperwire digest`` previews and ``send`` delivers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from .config import Config, SubscriberConfig
from .paper import Pick
from .rank import compose as ranking
from .rank import core as rank
from .rank.session import RankingSession
from .render.reasons import worded
from .store import Store


@dataclass
class Digest:
    subscriber: SubscriberConfig
    since: dt.datetime
    picks: list[Pick]
    candidates: int = 0


def iter_compose(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None = None,
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    limit: int | None = None,
    weights: rank.Weights = ranking.DEFAULT_WEIGHTS,
    session: RankingSession | None = None,
) -> Iterator[Digest]:
    """Every given subscriber's digest (:func:`paperwire.rank.compose.iter_compose`), in the
    order given, each pick's reasons in words."""
    for ranked in ranking.iter_compose(
        store, config, subscribers, now=now, since=since, limit=limit, weights=weights,
        session=session,
    ):  # fmt: skip
        picks = [worded(pick) for pick in ranked.picks]
        yield Digest(ranked.subscriber, ranked.since, picks, ranked.candidates)


def compose(
    store: Store,
    config: Config,
    subscribers: list[SubscriberConfig] | None = None,
    *,
    now: dt.datetime,
    since: dt.datetime | None = None,
    limit: int | None = None,
    weights: rank.Weights = ranking.DEFAULT_WEIGHTS,
    session: RankingSession | None = None,
) -> dict[str, Digest]:
    """Every given subscriber's digest, by id: :func:`iter_compose` collected (a caller that
    goes through 100,000 digests one by one should iterate instead: held at once, ~1 GB)."""
    return {
        d.subscriber.id: d
        for d in iter_compose(
            store, config, subscribers, now=now, since=since, limit=limit, weights=weights,
            session=session,
        )
    }  # fmt: skip
