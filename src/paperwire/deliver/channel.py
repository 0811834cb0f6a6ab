"""One interface for every way a digest reaches a reader: e-mail, Slack, an Apprise URL and the
reader's private Atom feed (:mod:`.dispatch` implements it for each).

A :class:`Channel` says which ledger channels a subscriber has on it, names the check its setting
gets when the config loads, and delivers ledger entries, writing each outcome to the ledger as it
happens (:func:`settle`): sent; failed for good (a recipient refused, or whatever a channel
raised that it should not have: one reader's row, never the run); still pending (an outage),
for the next run to resend with the same Message-ID; or "maybe delivered" (sent, then no answer
within ``sender.timeout``), sent again only after a back-off and at most :data:`MAYBE_TRIES`
times, so a slow service never gets the same digest on every run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..config import Config, SubscriberConfig
from ..errors import DeliveryError
from ..redact import redact
from ..render import shorten
from ..sources.http import make_async_client
from ..store import Store
from . import messages

if TYPE_CHECKING:
    import httpx

    from ..paper import Pick

log = logging.getLogger("paperwire")

# A message that went out and got no answer in time may have arrived: it is sent again only
# after MAYBE_BACKOFF (then four times that), and after MAYBE_TRIES such tries not at all.
MAYBE_TRIES = 3
MAYBE_BACKOFF = dt.timedelta(minutes=5)


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

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def close(self) -> None:
        self.poster.close()


class AsyncPoster:
    """One event loop (in a thread of its own) and one HTTP client for a run's webhook posts,
    so connections are reused and each post's deadline can cancel it; started at the first."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._portal: Any = None
        self._client: httpx.AsyncClient | None = None

    def call(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """``await fn(client, **kwargs)`` on the poster's loop, from this thread."""
        if self._portal is None:
            from anyio.from_thread import start_blocking_portal

            self._portal = self._stack.enter_context(start_blocking_portal())
            client = make_async_client()
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
) -> SendLine:
    """Write a delivery's outcome to the ledger and say it: sent; failed for good (a refusal);
    still pending (an outage: the next run sends it, with the same Message-ID); or maybe
    delivered (pending, but not before a back-off, and failed after :data:`MAYBE_TRIES`)."""
    if error is None:
        store.mark_delivery(job.delivery_id, "sent", now=now)
        return SendLine(job.sub.id, "sent", sent or "", job.kind)
    if error.maybe_delivered:
        tries = job.maybe_sent + 1
        if tries >= MAYBE_TRIES:
            reason = (
                f"maybe delivered {tries} times: {error}; not sent again (check the service, "
                "then `paperwire send` sends what is due)"
            )
            store.mark_delivery(job.delivery_id, "failed", error=reason, maybe_sent=tries)
            return SendLine(job.sub.id, "failed", reason, job.kind)
        retry_at = now + MAYBE_BACKOFF * 4 ** (tries - 1)
        when = retry_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        reason = f"maybe delivered: {error}; sent again after {when}"
        store.mark_delivery(
            job.delivery_id, "pending", error=reason, retry_at=retry_at, maybe_sent=tries
        )
        return SendLine(job.sub.id, "retry", reason, job.kind)
    if error.permanent:
        store.mark_delivery(job.delivery_id, "failed", error=str(error))
        return SendLine(job.sub.id, "failed", str(error), job.kind)
    store.mark_delivery(job.delivery_id, "pending", error=str(error))
    return SendLine(job.sub.id, "retry", f"{error}; stays due", job.kind)


def unexpected(job: Job, exc: BaseException) -> DeliveryError:
    """Whatever a channel raised beyond its own errors (a bug, a value the checks missed), as
    this delivery's one-line reason: failed for good, and the run goes on with the others."""
    log.debug("%s %s via %s raised", job.kind, job.sub.id, job.channel, exc_info=exc)
    text = " ".join(redact(str(exc)).split())
    reason = f"{job.channel}: unexpected {type(exc).__name__}"
    return DeliveryError(f"{reason}: {shorten(text, 200)}" if text else reason, permanent=True)
