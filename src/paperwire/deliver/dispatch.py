"""The delivery stage: ledger entries the pipeline opened (and claimed) go out by e-mail
(SMTP, or the outbox folder), Slack, the reader's Atom feed or an Apprise URL, and each outcome is written back to the ledger as it
happens: sent; failed for good (a recipient refused); or still pending (an outage), for the
next run to resend with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from .. import render
from ..config import Config, SubscriberConfig
from ..config.channels import SmtpSettings
from ..errors import DeliveryError
from ..links import signer_for
from ..sources.http import make_client
from ..store import Store
from . import apprise as apprise_mod
from . import email as email_mod
from . import messages, slack

if TYPE_CHECKING:
    from ..paper import Pick

log = logging.getLogger("paperwire")


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


def deliver_jobs(
    store: Store,
    config: Config,
    jobs: list[Job],
    *,
    outbox: Path | None,
    http: httpx.Client | None,
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
    smtp = config.sender.smtp
    outbox = outbox or Path(config.outbox)
    by_key: dict[int, Job] = {}  # SMTP jobs, in order, by ledger id
    own_http = http is None and any(j.channel == "slack" for j in jobs)
    http = http or (make_client() if own_http else None)
    try:
        for job in jobs:
            if stopped():
                break
            if job.channel == "slack":
                ctx, _ = messages.context(mail_job(job), run)
                done(_deliver_slack(store, config, job, http, ctx, now))
            elif job.channel == "feed":  # recorded as sent is delivered: the Atom feed reads it
                done(settle(store, job, now, sent=f"{len(job.picks)} papers to the feed"))
            elif job.channel.startswith(apprise_mod.PREFIX):  # one Apprise URL of `notify`
                ctx, _ = messages.context(mail_job(job), run)
                done(_deliver_apprise(store, job, ctx, now))
            elif smtp is None:
                done(_deliver_outbox(store, job, run, outbox, now))
            else:
                by_key[job.delivery_id] = job
        if by_key and not stopped():
            for line in _deliver_smtp(store, config, by_key, run, smtp, now, stop, done):
                done(line)
    finally:
        if own_http and http is not None:
            http.close()
    return lines


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
    smtp: SmtpSettings,
    now: dt.datetime,
    stop: threading.Event | None,
    done: Callable[[SendLine], None],
) -> list[SendLine]:
    """Send over SMTP; returns lines for the digests a failed server left unsent."""
    sender = email_mod.SmtpSender(
        smtp,
        connections=config.sender.smtp_connections,
        attempts=config.sender.retry_attempts,
        backoff=config.sender.retry_backoff,
    )
    settled: set[int] = set()

    def record(outcome: email_mod.Outcome) -> None:
        job = by_key[outcome.key]
        settled.add(outcome.key)
        if outcome.ok:
            done(settle(store, job, now, sent=f"{len(job.picks)} papers by e-mail"))
        else:
            error = DeliveryError(outcome.error or "", permanent=outcome.permanent)
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
    store: Store, config: Config, job: Job, http: httpx.Client, ctx: dict, now: dt.datetime
) -> SendLine:
    """Post a digest to Slack, recording each accepted message: a resend starts after them."""
    webhook = job.sub.slack_webhook.get_secret_value()
    subject = render.subject_for(job.kind, job.period, job.picks)
    return _send_in_parts(
        store,
        job,
        now,
        "Slack",
        lambda start, on_part: slack.send_digest(
            http,
            webhook,
            ctx,
            subject,
            start=start,
            on_part=on_part,
            attempts=config.sender.retry_attempts,
            backoff=config.sender.retry_backoff,
        ),
    )


def _deliver_apprise(store: Store, job: Job, ctx: dict, now: dt.datetime) -> SendLine:
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
            url, ctx, subject, start=start, on_part=on_part
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
    or still pending (an outage: the next run sends it, with the same Message-ID)."""
    if error is None:
        store.mark_delivery(job.delivery_id, "sent", now=now)
        return SendLine(job.sub.id, "sent", sent or "", job.kind)
    if error.permanent:
        store.mark_delivery(job.delivery_id, "failed", error=str(error))
        return SendLine(job.sub.id, "failed", str(error), job.kind)
    store.mark_delivery(job.delivery_id, "pending", error=str(error))
    return SendLine(job.sub.id, "retry", f"{error}; stays due", job.kind)
