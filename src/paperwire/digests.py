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
    new: int = 0  # first seen in the window, before exclusions and filters

    def why_empty(self) -> str:
        """Why a digest has no picks, in a line a reader (or ``paperwire status``) can act on."""
        since = self.since.astimezone(self.subscriber.tz).date().isoformat()  # the reader's date
        if not self.new:
            return f"no new papers since {since}"
        if not self.candidates:
            return (
                f"{_papers(self.new)} since {since}, none left for you: already sent or "
                "rated, or kept out by must_match / never_match"
            )
        return (
            f"{_papers(self.candidates)} since {since}, none close enough to your interests "
            "to say why"
        )


def _papers(n: int) -> str:
    return f"{n} new paper{'' if n == 1 else 's'}"


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
        yield Digest(ranked.subscriber, ranked.since, picks, ranked.candidates, ranked.new)


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
