"""The delivery stage: ledger entries the pipeline opened (and claimed) go out by e-mail
(SMTP, or the outbox folder), Slack, the reader's Atom feed or an Apprise URL, and each outcome
is written back to the ledger as it happens: sent; failed for good (a recipient refused, or
whatever a channel raised that it should not have: one reader's row, never the run); still
pending (an outage), for the next run to resend with the same Message-ID; or "maybe delivered"
(sent, then no answer within ``sender.timeout``), retried only after a back-off and at most
:data:`MAYBE_TRIES` times, so a slow service never gets the same digest on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import render
from ..config import Config, SubscriberConfig
from ..errors import DeliveryError, StoreError
from ..links import signer_for
from ..redact import redact
from ..sources.http import make_async_client
from ..store import Store
from . import apprise as apprise_mod
from . import email as email_mod
from . import messages, slack

if TYPE_CHECKING:
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


def deliver_jobs(
    store: Store,
    config: Config,
    jobs: list[Job],
    *,
    outbox: Path | None,
    now: dt.datetime,
    stop: threading.Event | None = None,
    progress: Callable[[SendLine], None] | None = None,
) -> list[SendLine]:
    """Render and deliver ledger entries; each outcome is written to the ledger as it happens.

    E-mails for SMTP are rendered lazily, as the sending connections ask for the next one (in
    worker processes when there are many: :mod:`.messages`), so memory stays flat however
    many digests go out. When ``stop`` is set, delivery ends between two messages; what was
    not sent stays pending in the ledger and goes out, with the same Message-ID, on the next
    run. So does everything when the SMTP server or account fails (greeting, AUTH, …)."""
    signer = signer_for(config, store)
    lines: list[SendLine] = []

    def done(line: SendLine) -> None:
        lines.append(line)
        if progress is not None:
            progress(line)

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    run = messages.MailRun(
        base_url=config.base_url,
        from_address=config.sender.from_address,
        list_id=config.sender.list_id,
        date=now.timestamp(),
        signer=signer,
    )
    smtp_url = config.sender.smtp_url.get_secret_value() if config.sender.smtp_url else None
    outbox = outbox or Path(config.outbox)
    by_key: dict[int, Job] = {}  # SMTP jobs, in order, by ledger id
    with contextlib.closing(_AsyncPoster()) as poster:
        for job in jobs:
            if stopped():
                break
            if job.channel == "email" and smtp_url is not None:
                by_key[job.delivery_id] = job
                continue
            try:
                line = _deliver_one(store, config, job, run, outbox, poster, now)
            except StoreError:
                raise  # the ledger itself failed: nothing more can be recorded
            except Exception as exc:  # one reader's channel, never the run
                line = settle(store, job, now, error=unexpected(job, exc))
            done(line)
    if by_key and not stopped():
        for line in _deliver_smtp(store, config, by_key, run, smtp_url, now, stop, done):
            done(line)
    return lines


def _deliver_one(
    store: Store,
    config: Config,
    job: Job,
    run: messages.MailRun,
    outbox: Path,
    poster: _AsyncPoster,
    now: dt.datetime,
) -> SendLine:
    """One delivery through a channel other than SMTP."""
    if job.channel == "slack":
        ctx, _ = messages.context(mail_job(job), run)
        return _deliver_slack(store, config, job, poster, ctx, now)
    if job.channel == "feed":  # recorded as sent is delivered: the Atom feed reads it
        return settle(store, job, now, sent=f"{len(job.picks)} papers to the feed")
    if job.channel.startswith(apprise_mod.PREFIX):  # one Apprise URL of `notify`
        ctx, _ = messages.context(mail_job(job), run)
        return _deliver_apprise(store, config, job, ctx, now)
    return _deliver_outbox(store, job, run, outbox, now)


def unexpected(job: Job, exc: BaseException) -> DeliveryError:
    """Whatever a channel raised beyond its own errors (a bug, a value the checks missed), as
    this delivery's one-line reason: failed for good, and the run goes on with the others."""
    log.debug("%s %s via %s raised", job.kind, job.sub.id, job.channel, exc_info=exc)
    text = " ".join(redact(str(exc)).split())
    reason = f"{job.channel}: unexpected {type(exc).__name__}"
    return DeliveryError(
        f"{reason}: {render.shorten(text, 200)}" if text else reason, permanent=True
    )


class _AsyncPoster:
    """One event loop (in a thread of its own) and one HTTP client for a run's webhook posts,
    so connections are reused and each post's deadline can cancel it; started at the first."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._portal: Any = None
        self._client = None

    def call(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """``await fn(client, **kwargs)`` on the poster's loop, from this thread."""
        if self._portal is None:
            from anyio.from_thread import start_blocking_portal

            self._portal = self._stack.enter_context(start_blocking_portal())
            self._client = make_async_client()
            self._stack.callback(self._portal.call, self._client.aclose)
        return self._portal.call(functools.partial(fn, self._client, **kwargs))

    def close(self) -> None:
        self._stack.close()


def _deliver_outbox(
    store: Store, job: Job, run: messages.MailRun, outbox: Path, now: dt.datetime
) -> SendLine:
    msg, rendered = messages.build(mail_job(job), run)
    try:
        path = email_mod.write_outbox(outbox, outbox_name(job, now), msg, rendered.html)
    except DeliveryError as exc:
        return settle(store, job, now, error=exc)
    return settle(store, job, now, sent=f"{len(job.picks)} papers → {path}")


def _deliver_smtp(
    store: Store,
    config: Config,
    by_key: dict[int, Job],
    run: messages.MailRun,
    smtp_url: str,
    now: dt.datetime,
    stop: threading.Event | None,
    done: Callable[[SendLine], None],
) -> list[SendLine]:
    """Send over SMTP; returns lines for the digests a failed server left unsent."""
    sender = email_mod.SmtpSender(
        email_mod.SmtpSettings.from_url(smtp_url),
        connections=config.sender.smtp_connections,
        attempts=config.sender.retry_attempts,
        backoff=config.sender.retry_backoff,
        deadline=config.sender.timeout,
    )
    settled: set[int] = set()

    def record(outcome: email_mod.Outcome) -> None:
        job = by_key[outcome.key]
        settled.add(outcome.key)
        if outcome.ok:
            done(settle(store, job, now, sent=f"{len(job.picks)} papers by e-mail"))
        else:
            error = DeliveryError(
                outcome.error or "",
                permanent=outcome.permanent,
                maybe_delivered=outcome.maybe_delivered,
            )
            done(settle(store, job, now, error=error))

    mail_jobs = [mail_job(job) for job in by_key.values()]
    processes = config.sender.render_processes
    with contextlib.closing(messages.render_all(mail_jobs, run, processes=processes)) as out:
        asyncio.run(sender.send_all(out, on_done=record, stop=stop))
    if sender.failure is None:
        return []  # (stopped: what was not sent stays pending, let go for the next run)
    # the server or the account failed: no recipient was refused, every digest stays due, and
    # the ledger says why (``paperwire status``)
    left = [job for key, job in by_key.items() if key not in settled]
    log.error("send: %s (%d more digests stay due)", sender.failure, len(left))
    return [settle(store, job, now, error=sender.failure) for job in left]


def mail_job(job: Job) -> messages.MailJob:
    return messages.MailJob(
        key=job.delivery_id,
        subscriber_id=job.sub.id,
        name=job.sub.name or job.sub.id,
        recipient=str(job.sub.email) if job.sub.email else "",  # none for a Slack delivery
        kind=job.kind,
        period=job.period,
        message_id=job.message_id,
        picks=job.picks,
        since=job.since,
    )


def outbox_name(job: Job, now: dt.datetime) -> str:
    if job.kind == "digest":
        return f"{job.period}-{job.sub.id}-digest"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in job.period)[-60:]
    return f"{now.date().isoformat()}-{job.sub.id}-alert-{safe}"


def _deliver_slack(
    store: Store, config: Config, job: Job, poster: _AsyncPoster, ctx: dict, now: dt.datetime
) -> SendLine:
    """Post a digest to Slack, recording each accepted message: a resend starts after them."""
    webhook = job.sub.slack_webhook.get_secret_value()
    subject = render.subject_for(job.kind, job.period, job.picks)
    return _send_in_parts(
        store,
        job,
        now,
        "Slack",
        lambda start, on_part: poster.call(
            slack.send_digest,
            webhook_url=webhook,
            ctx=ctx,
            fallback=subject,
            start=start,
            on_part=on_part,
            attempts=config.sender.retry_attempts,
            backoff=config.sender.retry_backoff,
            deadline=config.sender.timeout,
        ),
    )


def _deliver_apprise(
    store: Store, config: Config, job: Job, ctx: dict, now: dt.datetime
) -> SendLine:
    urls = [u.get_secret_value() for u in job.sub.notify]
    url = apprise_mod.url_for(job.channel, urls)
    if url is None:  # the URL left the config while its digest was pending
        error = DeliveryError(f"{job.channel}: no longer in the config", permanent=True)
        return settle(store, job, now, error=error)
    subject = render.subject_for(job.kind, job.period, job.picks)
    return _send_in_parts(
        store,
        job,
        now,
        job.channel.split(":")[1],
        lambda start, on_part: apprise_mod.send_digest(
            url, ctx, subject, start=start, on_part=on_part, deadline=config.sender.timeout
        ),
    )


def _send_in_parts(
    store: Store,
    job: Job,
    now: dt.datetime,
    where: str,
    send: Callable[[int, Callable[[int], None]], int],
) -> SendLine:
    """Send a digest that goes out as several messages (Slack, Apprise), recording each one
    accepted: a resend starts at the first message not accepted. ``send(start, on_part)``
    returns how many messages the digest took."""
    try:
        count = send(job.parts_sent, lambda n: store.record_parts(job.delivery_id, n))
    except DeliveryError as exc:
        return settle(store, job, now, error=exc)
    resumed = f", resumed at message {job.parts_sent + 1}" if job.parts_sent else ""
    return settle(
        store, job, now, sent=f"{len(job.picks)} papers to {where} ({count} message(s){resumed})"
    )


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
