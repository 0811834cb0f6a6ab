"""``paperwire status`` as a library call: where each subscriber's digests stand, and the feeds
whose last fetch failed, read from the store and the config (nothing is changed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from . import pipeline, schedule
from .config import DEFAULT_GRACE, Config, SubscriberConfig
from .deliver.dispatch import channel_ids
from .store import Store


@dataclass(frozen=True)
class SubscriberStatus:
    id: str
    last_period: str | None  # the last digest's period, None before the first
    last_state: str | None  # its ledger state: sent, pending, failed, ...
    last_error: str | None  # the server's answer when it failed
    unsubscribed: bool
    due: str | None  # the period of a digest due now, if any
    next_slot: dt.datetime | None  # None once unsubscribed
    seeds_missing: tuple[str, ...]  # seed papers not stored (yet)
    seeds: int  # how many seed papers the config names


@dataclass(frozen=True)
class FeedFailure:
    label: str
    when: str  # the failed fetch, "YYYY-MM-DD HH:MM" UTC
    error: str


@dataclass(frozen=True)
class Status:
    papers: int
    subscribers: list[SubscriberStatus]
    failed_feeds: list[FeedFailure]


def status(
    store: Store,
    config: Config,
    *,
    now: dt.datetime,
    subscribers: list[SubscriberConfig] | None = None,
    grace: dt.timedelta = DEFAULT_GRACE,
) -> Status:
    """Each subscriber's (all, or those given) last digest, whether one is due now, the next
    one and missing seed papers; then every feed whose last fetch failed."""
    subs = list(config.subscribers) if subscribers is None else subscribers
    gone = store.unsubscribed()
    out = []
    for sub in subs:
        last = store.last_delivery(sub.id)
        due = next_slot = None
        if sub.id not in gone:
            slot = pipeline.digest_slots(store, [sub], now, grace, pipeline.FIRST_DIGEST_REACH)[
                sub.id
            ]
            if slot and not store.delivery(
                sub.id, "digest", schedule.period(slot), channel_ids(sub)[0]
            ):
                due = schedule.period(slot)
            next_slot = schedule.next_slot(sub, now)
        out.append(
            SubscriberStatus(
                id=sub.id,
                last_period=last["period"] if last else None,
                last_state=last["state"] if last else None,
                last_error=last["error"] if last else None,
                unsubscribed=sub.id in gone,
                due=due,
                next_slot=next_slot,
                seeds_missing=tuple(p for p in sub.seed_papers if store.stored_id(p) is None),
                seeds=len(sub.seed_papers),
            )
        )
    failed = []
    for feed in config.feeds:
        state = store.feed_state(feed.url)
        if state and state.get("last_error"):
            failed.append(
                FeedFailure(
                    feed.label,
                    state["last_fetch"][:16].replace("T", " "),
                    state["last_error"].removeprefix(f"feed {feed.label}: "),
                )
            )
    return Status(store.count_papers(), out, failed)
