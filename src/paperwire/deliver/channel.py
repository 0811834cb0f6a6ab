"""One interface for every way a digest reaches a reader: e-mail, Slack, an Apprise URL and the
reader's private Atom feed (:mod:`.dispatch` implements it for each).

A :class:`Channel` says which ledger channels a subscriber has on it, names the check its setting
gets when the config loads, and delivers ledger entries, writing each outcome to the ledger as it
happens (:func:`settle`): sent; failed for good (a recipient refused); or still pending (an
outage), for the next run to resend with the same Message-ID.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

from ..config import Config, SubscriberConfig
from ..errors import DeliveryError
from ..sources.http import make_client
from ..store import Store
from . import messages

if TYPE_CHECKING:
    from ..paper import Pick


@dataclass
class SendLine:
    subscriber_id: str
    status: str  # sent | failed | retry | nothing-new | not-due | unsubscribed | disabled
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
    http_client: httpx.Client | None = None  # the caller's, else made when a channel needs one
    _own_http: bool = False

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    @property
    def http(self) -> httpx.Client:
        if self.http_client is None:
            self.http_client, self._own_http = make_client(), True
        return self.http_client

    def close(self) -> None:
        if self._own_http and self.http_client is not None:
            self.http_client.close()


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
    or still pending (an outage: the next run sends it, with the same Message-ID)."""
    if error is None:
        store.mark_delivery(job.delivery_id, "sent", now=now)
        return SendLine(job.sub.id, "sent", sent or "", job.kind)
    if error.permanent:
        store.mark_delivery(job.delivery_id, "failed", error=str(error))
        return SendLine(job.sub.id, "failed", str(error), job.kind)
    store.mark_delivery(job.delivery_id, "pending", error=str(error))
    return SendLine(job.sub.id, "retry", f"{error}; stays due", job.kind)
