"""One interface for every way a digest reaches a reader: e-mail, Slack, an Apprise URL and the
reader's private Atom feed (:mod:`.dispatch` implements it for each).

A :class:`Channel` says which ledger channels a subscriber has on it, names the check its setting
gets when the config loads, and delivers ledger entries, writing each outcome to the ledger as it
happens (:meth:`Run.settle`): sent; failed for good (a refusal, or whatever a channel raised that
it should not have: one reader's row, never the run); or still pending, tried again by a later
run only after a back-off (:data:`BACKOFF`, four times that, then hourly). A delivery that failed
for now (an HTTP 5xx, an SMTP 4xx, a service out of reach) fails after :data:`TRIES` tries, about
three and a half hours of outage; one that was "maybe delivered" (sent, then no answer within
``sender.timeout``) after :data:`MAYBE_TRIES`, since each of those may have arrived. So a slow or failing service
never gets the same digest on every run. A run also has a budget (``sender.run_budget``): what it
had no time left for stays pending, untried, for the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import store as store_module
from ..config import Config, SubscriberConfig
from ..deadline import Budget
from ..errors import DeliveryError, StoreBusy
from ..redact import redact
from ..render import shorten
from ..sources.http import make_async_client
from ..store import Store
from . import messages

if TYPE_CHECKING:
    import httpx

    from ..paper import Pick

log = logging.getLogger("paperwire")

# A delivery that failed for now, or went out and got no answer in time (it may have arrived),
# is tried again only after BACKOFF (then four times that, then every MAX_BACKOFF), or later if
# the service asked to be left alone for longer (Retry-After, up to MAX_RETRY_AFTER). An outage
# (a relay restarting, a 503 for an hour) is waited out for TRIES tries; a delivery that may have
# arrived is sent at most MAYBE_TRIES times, so a reader gets at most that many copies.
TRIES = 6
MAYBE_TRIES = 3
BACKOFF = dt.timedelta(minutes=5)
MAX_BACKOFF = dt.timedelta(hours=1)
MAX_RETRY_AFTER = dt.timedelta(hours=1)


@dataclass
class SendLine:
    subscriber_id: str
    # sent | failed | retry | waiting (maybe delivered, in back-off) | nothing-new | not-due |
    # unsubscribed | disabled
    status: str
    detail: str = ""
    kind: str = "digest"  # or alert


@dataclass
class Job:
    """One ledger entry to deliver now, held by this run."""

    delivery_id: int
    sub: SubscriberConfig
    kind: str
    period: str
    channel: str
    message_id: str
    picks: list[Pick]
    since: dt.datetime | None = None
    parts_sent: int = 0  # messages of a split Slack or Apprise digest an earlier run got accepted
    maybe_sent: int = 0  # earlier tries that went out and got no answer in time
    tries: int = 0  # earlier tries, whatever their outcome
    composed: dt.datetime | None = None  # when the ledger entry was made (its ``created``)

    def dated(self) -> str:
        """The date a digest's subject and title name: the day it was composed, in the
        reader's time zone. The period (its slot's local date, the ledger's key) may be days
        earlier: a reader's first digest takes the last slot of the past week, so a weekly
        Monday reader who subscribed on a Sunday read 'Paperwire <last Monday>', and a daily
        07:30 reader in Los Angeles sent one at 00:01 read yesterday's date."""
        if self.kind != "digest" or self.composed is None:
            return self.period
        return self.composed.astimezone(self.sub.tz).date().isoformat()


@dataclass
class Run:
    """What one delivery run shares between its channels."""

    store: Store
    config: Config
    now: dt.datetime
    mail: messages.MailRun
    outbox: Path
    done: Callable[[SendLine], None]  # each outcome, as it is settled
    stop: threading.Event | None = None
    poster: AsyncPoster = field(default_factory=lambda: AsyncPoster())
    budget: Budget = field(default_factory=Budget)  # what is left of sender.run_budget
    left_for_later: int = 0  # deliveries the budget left untried
    # hosts that let a delivery of this run reach its deadline unanswered (dispatch._one_by_one)
    stalled: set[str] = field(default_factory=set)

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def out_of_time(self, job: Job) -> SendLine:
        """Leave a delivery the run has no time left for pending, untried: the next run sends
        it (with the same Message-ID), and ``status`` says why it waits."""
        self.left_for_later += 1
        reason = (
            f"not sent: the send run's budget of {self.config.sender.run_budget:g} s "
            "(sender.run_budget) was spent before it; the next run sends it"
        )
        return untried(self.store, job, reason)

    def settle(
        self,
        job: Job,
        *,
        sent: str | None = None,
        error: DeliveryError | None = None,
        patient: bool = True,
    ) -> SendLine:
        """:func:`settle`, except that a message the run's budget cut short before it went out
        (a failure once the budget is spent, neither a refusal nor maybe delivered) counts as
        not tried: the next run sends it, with no back-off; and a call that was never made
        (``error.untried``) is not counted as a try either, only tried again after a back-off."""
        if error is not None and not (error.permanent or error.maybe_delivered):
            if self.budget.spent or error.out_of_time:
                return self.out_of_time(job)
            if error.untried:  # the call was not made: not a try
                retry_at = retry_time(self.now, job.tries + 1, error.retry_after)
                return untried(self.store, job, again_after(error, retry_at), retry_at)
        return settle(self.store, job, self.now, sent=sent, error=error, patient=patient)

    def close(self) -> None:
        self.poster.close()
        if self.left_for_later:
            log.warning(
                "send: the run's budget of %g s (sender.run_budget) was spent; %d deliveries "
                "stay due for the next run",
                self.config.sender.run_budget,
                self.left_for_later,
            )


class AsyncPoster:
    """One event loop (in a thread of its own) and one HTTP client for a run's webhook posts,
    so connections are reused and each post's deadline can cancel it; started at the first.
    The client follows no redirect: a webhook that redirects has a wrong URL, and a followed
    301 or 302 turns the POST into a GET that posts nothing (slack.py says so, permanently)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._portal: Any = None
        self._client: httpx.AsyncClient | None = None

    def call(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """``await fn(client, **kwargs)`` on the poster's loop, from this thread."""
        if self._portal is None:
            from anyio.from_thread import start_blocking_portal

            self._portal = self._stack.enter_context(start_blocking_portal())
            client = make_async_client(follow_redirects=False)
            self._client = client
            self._stack.callback(self._portal.call, client.aclose)
        return self._portal.call(functools.partial(fn, self._client, **kwargs))

    def close(self) -> None:
        self._stack.close()


class Channel(Protocol):
    """A way a digest reaches a reader."""

    # the ledger channel (``email``, ``slack``, ``feed``), or the prefix of one per URL
    # (``notify`` for ``notify:<scheme>:<hash>``)
    name: str

    def ids(self, sub: SubscriberConfig) -> list[str]:
        """The ledger channels this subscriber has here; none if they did not set it up."""
        ...

    def check(self, value: str) -> str | None:
        """What is wrong with this channel's setting (an SMTP or Apprise URL), None if nothing.
        The config runs the same check as it loads (config/channels.py), with the setting's
        line; it never imports delivery code to do so."""
        ...

    def pooled(self, config: Config) -> bool:
        """Whether its entries go out together at the end of a run (SMTP's pooled connections)
        rather than one by one, in order."""
        ...

    def deliver(self, jobs: list[Job], run: Run) -> None:
        """Deliver these entries of this channel, settling each in the ledger (:func:`settle`)
        and passing its line to ``run.done``; stop between two messages once ``run.stopped()``."""
        ...


def settle(
    store: Store,
    job: Job,
    now: dt.datetime,
    *,
    sent: str | None = None,
    error: DeliveryError | None = None,
    patient: bool = True,
) -> SendLine:
    """Write a delivery's outcome to the ledger and say it: sent; failed for good (a refusal);
    or pending, tried again after a back-off (:func:`retry_time`) — an outage, or maybe
    delivered — and failed once it was tried :data:`TRIES` times, or maybe delivered
    :data:`MAYBE_TRIES` times. Sent is written down through locks (:func:`_written_down`)
    unless not ``patient``: one try, StoreBusy if the lock stayed."""
    if error is None:
        write = functools.partial(store.mark_delivery, job.delivery_id, "sent", now=now)
        if patient:
            _written_down(write, job)
        else:
            write()
        return SendLine(job.sub.id, "sent", sent or "", job.kind)
    if error.permanent:
        if not store.mark_delivery(job.delivery_id, "failed", error=str(error)):
            return accepted_late(job)
        return SendLine(job.sub.id, "failed", str(error), job.kind)
    tries = job.tries + 1
    maybe = job.maybe_sent + int(error.maybe_delivered)
    if tries >= TRIES or maybe >= MAYBE_TRIES:
        if maybe == tries:
            what = f"maybe delivered {tries} times"
        else:
            what = f"failed {tries} times" + (f" ({maybe} maybe delivered)" if maybe else "")
        reason = (
            f"{what}: {error}; not sent again (check the service, then `paperwire send` sends "
            "what is due)"
        )
        if not store.mark_delivery(job.delivery_id, "failed", error=reason, maybe_sent=maybe):
            return accepted_late(job)
        return SendLine(job.sub.id, "failed", reason, job.kind)
    retry_at = retry_time(now, tries, error.retry_after)
    if error.maybe_delivered:
        reason = f"maybe delivered: {error}; sent again after {_utc(retry_at)}"
    else:
        reason = again_after(error, retry_at)
    if not store.mark_delivery(
        job.delivery_id, "pending", error=reason, retry_at=retry_at, maybe_sent=maybe
    ):
        return accepted_late(job)
    return SendLine(job.sub.id, "retry", reason, job.kind)


RETRY_PAUSE = 1.0  # seconds between two tries at writing down a delivery that went out


def _written_down(write: Callable[[], bool], job: Job) -> None:
    """Record a delivery that went out, whoever holds the database meanwhile. One write waits
    :data:`~paperwire.store.BUSY_TIMEOUT` for the lock; it is tried again for as long as the
    run's claim on the row lasts (:data:`~paperwire.store.LEASE`), as no other run takes the
    row before then. Past that, StoreBusy ends the run and the row stays pending: the next run
    sends it again with the same Message-ID, as a message in flight at a kill."""
    ends = time.monotonic() + store_module.LEASE.total_seconds()
    while True:
        try:
            write()
            return
        except StoreBusy:
            if time.monotonic() >= ends:
                raise
            log.warning(
                "%s %s: went out, and the database is locked: writing that down again",
                job.kind,
                job.sub.id,
            )
            time.sleep(RETRY_PAUSE)  # a lock refused at once (SQLITE_LOCKED) is no busy wait


def untried(store: Store, job: Job, reason: str, retry_at: dt.datetime | None = None) -> SendLine:
    """Leave a delivery pending with its reason, not counted as a try (it was not tried: the
    run ran out of time, or the server failed before it); with ``retry_at``, not before then."""
    if not store.mark_delivery(
        job.delivery_id, "pending", error=reason, retry_at=retry_at, tried=False
    ):
        return accepted_late(job)
    return SendLine(job.sub.id, "retry", reason, job.kind)


def accepted_late(job: Job) -> SendLine:
    """A delivery whose message, given up on at its deadline, was accepted after all (the
    ledger says sent: :meth:`~paperwire.store.Store.record_late_part`)."""
    return SendLine(job.sub.id, "sent", "accepted after an earlier try's deadline", job.kind)


def retry_time(now: dt.datetime, tries: int, retry_after: float | None = None) -> dt.datetime:
    """When a delivery that failed for now is tried again: :data:`BACKOFF` after its first try,
    four times longer after each next one up to :data:`MAX_BACKOFF`, and never before the
    service asked (capped)."""
    wait = min(BACKOFF * 4 ** min(max(tries, 1) - 1, 8), MAX_BACKOFF)
    if retry_after:
        # capped as seconds first: "Retry-After: 99999999999999" is past what a timedelta
        # holds (OverflowError: the digest failed for good instead of waiting)
        wait = max(wait, dt.timedelta(seconds=min(retry_after, MAX_RETRY_AFTER.total_seconds())))
    return now + wait


def again_after(reason: object, retry_at: dt.datetime) -> str:
    return f"{reason}; tried again after {_utc(retry_at)}"


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def unexpected(job: Job, exc: BaseException) -> DeliveryError:
    """Whatever a channel raised beyond its own errors (a bug, a value the checks missed), as
    this delivery's one-line reason: failed for good, and the run goes on with the others."""
    log.debug("%s %s via %s raised", job.kind, job.sub.id, job.channel, exc_info=exc)
    text = " ".join(redact(str(exc)).split())
    reason = f"{job.channel}: unexpected {type(exc).__name__}"
    return DeliveryError(f"{reason}: {shorten(text, 200)}" if text else reason, permanent=True)
