"""When each subscriber's digest is due, in their own time zone.

A digest *slot* is a local date on one of the subscriber's digest days at their digest time.
The slot's local date is the delivery's period in the ledger, so whatever runs ``send`` (the
daemon, cron, a person) at most one digest per slot ever goes out.
"""

from __future__ import annotations

import datetime as dt

from .config import DEFAULT_GRACE, WEEKDAYS, SubscriberConfig


def slot_time(sub: SubscriberConfig, day: dt.date) -> dt.datetime:
    """The aware moment of the digest on a local date: in a fall-back fold, the first of the
    two; inside a spring-forward gap (02:30 on a day the clock goes from 02:00 to 03:00), the
    moment the clock jumps past it (03:00)."""
    naive = dt.datetime.combine(day, sub.digest_time)
    local = naive.replace(tzinfo=sub.tz, fold=0)
    moment = local.astimezone(dt.UTC)
    if moment.astimezone(sub.tz).replace(tzinfo=None) == naive:
        return moment.astimezone(sub.tz)
    # a time that does not exist: zoneinfo reads it with the offset before the gap, which is
    # the gap's length after the jump (03:30). The jump is the first moment whose wall time
    # is past it, between that reading and the one with the offset after the gap.
    early = naive.replace(tzinfo=sub.tz, fold=1).astimezone(dt.UTC)
    low, high = min(early, moment), max(early, moment)
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(sub.tz).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0).astimezone(sub.tz)


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
