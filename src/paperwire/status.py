"""``paperwire status`` as a library call: where each subscriber's digests stand, channel by
channel, and the feeds whose last fetch failed, read from the store and the config (nothing is
changed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from . import pipeline, schedule
from .config import DEFAULT_GRACE, Config, SubscriberConfig
from .deliver.dispatch import channel_ids
from .paper import arxiv_id
from .rank.scope import scope as corpus_scope
from .redact import redact_url
from .store import Store

SHOWN_MISSES = 5  # seed entries named per reader; all of them with ``all_seed_misses``


@dataclass(frozen=True)
class Delivery:
    """One ledger row of a channel: what went out (or did not), and why."""

    kind: str  # digest, alert
    period: str
    state: str  # sent, pending, failed
    sent_at: str | None  # when it was sent, "YYYY-MM-DD HH:MM" UTC; None if it was not
    error: str | None  # why it is pending or failed


@dataclass(frozen=True)
class ChannelDeliveries:
    """One channel of a reader that the ledger has rows for: its last delivery first, then
    every other one still pending, or failed since the channel last delivered."""

    channel: str
    deliveries: tuple[Delivery, ...]  # none for a channel added since the reader's last digest


@dataclass(frozen=True)
class SubscriberStatus:
    id: str
    last_period: str | None  # the last digest's period, None before the first
    # its worst ledger state over the channels: failed, pending, sent; or nothing-new (the
    # ledger's "empty"), as send and the logs word a quiet day
    last_state: str | None
    last_error: str | None  # the reason of the channel with that state
    unsubscribed: bool
    disabled: bool  # ``enabled: false`` in the config: send skips the reader
    due: str | None  # the period of a digest due now, if any; None while disabled or unsubscribed
    next_slot: dt.datetime | None  # None while disabled or unsubscribed
    # seeds not in use: config seed papers and imported ones not stored ("… (imported)"), and
    # library entries an import could not match ("library.bib:35 'Title' (why)"); the first
    # SHOWN_MISSES of them, or all with ``all_seed_misses``
    seeds_missing: tuple[str, ...]
    seeds_missing_count: int  # all of them, shown or not
    seeds: int  # config seed papers, imported seeds and unmatched entries, in all
    channels: tuple[ChannelDeliveries, ...]  # configured channels first, then any no longer named
    feed_url: str | None  # the reader's private feed URL, only with ``feed_urls``
    # the period of the reader's latest digest if it was skipped: its slot passed more than
    # the grace period ago with none sent (paperwire was not running); None otherwise
    missed: str | None = None


@dataclass(frozen=True)
class FeedFailure:
    label: str
    when: str  # the failed fetch, "YYYY-MM-DD HH:MM" UTC
    error: str


@dataclass(frozen=True)
class Status:
    papers: int
    # the papers digests rank against, when ranking.corpus_papers leaves some out, and since
    ranked: tuple[int, str] | None
    subscribers: list[SubscriberStatus]
    failed_feeds: list[FeedFailure]


def status(
    store: Store,
    config: Config,
    *,
    now: dt.datetime,
    subscribers: list[SubscriberConfig] | None = None,
    grace: dt.timedelta = DEFAULT_GRACE,
    all_seed_misses: bool = False,
    feed_urls: bool = False,
) -> Status:
    """Each subscriber's (all, or those given) last digest, whether one is due now, the next
    one, the seeds not in use and each channel's deliveries; then every feed whose last fetch
    failed (its state is kept under the masked URL, so a feed with credentials is listed too).

    ``all_seed_misses`` names every seed not in use, not only the first SHOWN_MISSES;
    ``feed_urls`` adds each reader's private feed URL (the key to their feed: ask for it only
    for the reader it is shown to)."""
    subs = list(config.subscribers) if subscribers is None else subscribers
    gone = pipeline.unsubscribed(store, subs)
    signer = None
    if feed_urls:
        from .links import signer_for

        signer = signer_for(config, store, sends=False)
    out = []
    for sub in subs:
        last = pipeline.last_digest_state(store, sub)
        due = next_slot = missed = None
        if sub.enabled and sub.id not in gone:  # as send decides who gets mail
            late = pipeline.missed_slots(store, pipeline.late_slots([sub], now, grace), now)
            missed = schedule.period(late[sub.id]) if sub.id in late else None
            slot = pipeline.digest_slots(store, [sub], now, grace, pipeline.FIRST_DIGEST_REACH)[
                sub.id
            ]
            # due while the slot has no ledger row on any channel, as send decides it (a
            # channel added after the slot's digest went out starts with the next one)
            if (
                slot
                and not store.handled(sub.id, "digest", schedule.period(slot))
                and not pipeline.covered(slot, store.last_composed([sub.id]).get(sub.id), now)
            ):
                due = schedule.period(slot)
            next_slot = pipeline.next_slot(store, sub, now)
        missing, seeds = _seeds_not_found(store, sub)
        url = None
        if signer is not None:
            from .render.atom import feed_url

            url = feed_url(store, config.base_url, signer, sub.id)
        out.append(
            SubscriberStatus(
                id=sub.id,
                last_period=last["period"] if last else None,
                last_state=_worded(last["state"]) if last else None,
                last_error=last["error"] if last else None,
                unsubscribed=sub.id in gone,
                disabled=not sub.enabled,
                due=due,
                next_slot=next_slot,
                seeds_missing=tuple(missing if all_seed_misses else missing[:SHOWN_MISSES]),
                seeds_missing_count=len(missing),
                seeds=seeds,
                channels=_channels(store, sub, had_one=last is not None),
                feed_url=url,
                missed=missed,
            )
        )
    failed = []
    for feed in config.feeds:
        state = store.feed_state(redact_url(feed.url)) or store.feed_state(feed.url)
        if state and state.get("last_error"):
            failed.append(
                FeedFailure(
                    feed.label,
                    _minutes(state["last_fetch"]),
                    state["last_error"].removeprefix(f"feed {feed.label}: "),
                )
            )
    scope = corpus_scope(store, config)
    ranked = None
    if scope.since is not None:
        ranked = (store.corpus_count(scope.since, scope.keep), _minutes(scope.since))
    return Status(store.count_papers(), ranked, out, failed)


def _worded(state: str) -> str:
    return "nothing-new" if state == "empty" else state


def _seeds_not_found(store: Store, sub: SubscriberConfig) -> tuple[list[str], int]:
    """The reader's seeds not in use: config seed papers and imported ones not stored, and
    library entries an import could not match; and how many seeds there are in all."""
    # a paper written twice (``2501.00001``, ``arXiv:2501.00001v2``), or both in the config and
    # in an imported library, is one seed: counted and named once, as first written
    in_config: dict[str, str] = {}
    for p in sub.seed_papers:
        in_config.setdefault(arxiv_id(p) or p.strip(), p)
    written = list(in_config.values())
    missing = [p for p in written if store.stored_id(p) is None]
    imported = [p for p in store.seeds([sub.id]).get(sub.id, []) if p not in in_config]
    stored = store.papers(imported).keys()
    missing += [f"{p} (imported)" for p in imported if p not in stored]
    misses = store.seed_misses(sub.id)
    missing += [f"{m['entry']} {m['label']} ({m['why']})" for m in misses]
    return missing, len(written) + len(imported) + len(misses)


def _channels(
    store: Store, sub: SubscriberConfig, *, had_one: bool
) -> tuple[ChannelDeliveries, ...]:
    """Each channel the ledger has rows for; and, for a reader who had a digest, each
    configured channel it has none for, last (no deliveries: added since, it gets the next one)."""
    listed = tuple(
        ChannelDeliveries(
            channel.channel,
            tuple(
                _delivery(row)
                for row in [channel.last] + [r for r in channel.open if r is not channel.last]
            ),
        )
        for channel in pipeline.channel_status(store, sub)
    )
    if not had_one:
        return listed
    named = {c.channel for c in listed}
    added = tuple(ChannelDeliveries(c, ()) for c in channel_ids(sub) if c not in named)
    return listed + added


def _delivery(row: dict[str, Any]) -> Delivery:
    sent = row["sent_at"] if row["state"] == "sent" and row["sent_at"] else None
    return Delivery(
        row["kind"],
        row["period"],
        row["state"],
        _minutes(sent) if sent else None,
        row["error"],
    )


def _minutes(stamp: str) -> str:
    """An ISO timestamp to the minute, "YYYY-MM-DD HH:MM"."""
    return stamp[:16].replace("T", " ")
