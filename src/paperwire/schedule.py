"""When each subscriber's digest is due, in their own time zone.

A digest *slot* is a local date on one of the subscriber's digest days at their digest time.
The slot's local date is the delivery's period in the ledger, so whatever runs ``send`` (the
daemon, cron, a person) at most one digest per slot ever goes out.
"""

from __future__ import annotations

import datetime as dt

from .config import DEFAULT_GRACE, WEEKDAYS, SubscriberConfig


def slot_time(sub: SubscriberConfig, day: dt.date) -> dt.datetime:
    """The aware moment of the digest on a local date (DST gaps resolve forward, folds once)."""
    naive = dt.datetime.combine(day, sub.digest_time)
    local = naive.replace(tzinfo=sub.tz, fold=0)
    # A time inside a spring-forward gap does not exist; zoneinfo maps it consistently, and
    # round-tripping through UTC gives the moment the wall clock actually reaches it.
    return local.astimezone(dt.UTC).astimezone(sub.tz)


def latest_slot(
    sub: SubscriberConfig, now: dt.datetime, grace: dt.timedelta = DEFAULT_GRACE
) -> dt.datetime | None:
    """The most recent digest slot at or before ``now``, if it is no older than ``grace``."""
    local_now = now.astimezone(sub.tz)
    for back in range(8):
        day = local_now.date() - dt.timedelta(days=back)
        if WEEKDAYS[day.weekday()] not in sub.digest_days:
            continue
        moment = slot_time(sub, day)
        if moment <= now:
            return moment if now - moment <= grace else None
    return None


def next_slot(sub: SubscriberConfig, after: dt.datetime) -> dt.datetime:
    """The first digest slot strictly after ``after``."""
    local = after.astimezone(sub.tz)
    for ahead in range(9):
        day = local.date() + dt.timedelta(days=ahead)
        if WEEKDAYS[day.weekday()] in sub.digest_days:
            moment = slot_time(sub, day)
            if moment > after:
                return moment
    raise ValueError(f"subscriber {sub.id} has no digest days")


def period(slot: dt.datetime) -> str:
    """The ledger key of a slot: its local date."""
    return slot.date().isoformat()
