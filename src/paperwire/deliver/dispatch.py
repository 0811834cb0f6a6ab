"""The delivery stage: ledger entries the pipeline opened (and claimed) go out through their
:class:`~.channel.Channel`: e-mail (SMTP, or the outbox folder), Slack, the reader's Atom feed or
an Apprise URL, and each outcome is written back to the ledger as it happens (see
:func:`~.channel.settle`): sent; failed for good; still pending, for the next run to resend with
the same Message-ID, after a back-off. Each outbound call ends within ``sender.timeout`` in
all and within what is left of the run's ``sender.run_budget``; what the run had no time left
for stays pending, untried. Whatever one reader's channel raises fails that row only: the run
goes on with everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from .. import render
from ..config import Config, SubscriberConfig
from ..config.channels import apprise_url_problem, parse_smtp_url
from ..deadline import Budget, still_running
from ..errors import DeliveryError, StoreBusy, StoreError
from ..links import signer_for
from ..store import Store
from . import apprise as apprise_mod
from . import email as email_mod
from . import messages, slack
from .channel import (
    Channel,
    Job,
    Run,
    SendLine,
    accepted_late,
    again_after,
    retry_time,
    unexpected,
    untried,
)

log = logging.getLogger("paperwire")

# seconds between the tries at recording a message accepted after its deadline
LATE_RECORD_WAITS = (0.2, 0.5, 1.0, 2.0)


class EmailChannel:
    """E-mail: over SMTP when ``PAPERWIRE_SMTP_URL`` is set, else into the outbox folder."""

    name = "email"

    def ids(self, sub: SubscriberConfig) -> list[str]:
        return [self.name] if sub.email else []

    def check(self, value: str) -> str | None:
        try:
            parse_smtp_url(value)
        except ValueError as exc:
            return str(exc)
        return None

    def pooled(self, config: Config) -> bool:
        return config.sender.smtp is not None

    def deliver(self, jobs: list[Job], run: Run) -> None:
        if run.config.sender.smtp is None:
            _one_by_one(jobs, run, lambda job: _deliver_outbox(run, job))
            return
        for line in _deliver_smtp(run, {job.delivery_id: job for job in jobs}):
            run.done(line)


class SlackChannel:
    """A Slack incoming webhook (``slack_webhook``): Block Kit messages, split to fit."""

    name = "slack"

    def ids(self, sub: SubscriberConfig) -> list[str]:
        return [self.name] if sub.slack_webhook else []

    def check(self, value: str) -> str | None:
        return None  # a secret URL, used as given

    def pooled(self, config: Config) -> bool:
        return False

    def deliver(self, jobs: list[Job], run: Run) -> None:
        _one_by_one(jobs, run, lambda job: _deliver_slack(run, job), _slack_host)


class FeedChannel:
    """The reader's private Atom feed (``feed: true``): recorded as sent is delivered, since the
    feed reads the ledger."""

    name = "feed"

    def ids(self, sub: SubscriberConfig) -> list[str]:
        return [self.name] if sub.feed else []

    def check(self, value: str) -> str | None:
        return None

    def pooled(self, config: Config) -> bool:
        return False

    def deliver(self, jobs: list[Job], run: Run) -> None:
        _one_by_one(
            jobs,
            run,
            lambda job: run.settle(job, sent=f"{_papers(job.picks)} to the feed"),
        )


class AppriseChannel:
    """Each Apprise URL of ``notify`` (Discord, Telegram, ntfy, ...) is a ledger channel of its
    own, named by scheme and hash, never by its token."""

    name = apprise_mod.PREFIX.rstrip(":")

    def ids(self, sub: SubscriberConfig) -> list[str]:
        return [apprise_mod.channel_id(u.get_secret_value()) for u in sub.notify]

    def check(self, value: str) -> str | None:
        return apprise_url_problem(value)

    def pooled(self, config: Config) -> bool:
        return False

    def deliver(self, jobs: list[Job], run: Run) -> None:
        _one_by_one(jobs, run, lambda job: _deliver_apprise(run, job), _apprise_host)


EMAIL = EmailChannel()
# in the order a subscriber's channels are opened and listed
CHANNELS: tuple[Channel, ...] = (EMAIL, SlackChannel(), FeedChannel(), AppriseChannel())


def channel_ids(sub: SubscriberConfig) -> list[str]:
    """Every ledger channel a subscriber has, e-mail first."""
    return [ledger_id for channel in CHANNELS for ledger_id in channel.ids(sub)]


def channel_for(ledger_id: str) -> Channel:
    """The channel a ledger entry goes out on (e-mail for anything else, as it always was)."""
    for channel in CHANNELS:
        if ledger_id == channel.name or ledger_id.startswith(f"{channel.name}:"):
            return channel
    return EMAIL


def deliver_jobs(
    store: Store,
    config: Config,
    jobs: list[Job],
    *,
    outbox: Path | None,
    now: dt.datetime,
    stop: threading.Event | None = None,
    progress: Callable[[SendLine], None] | None = None,
    stalled: set[str] | None = None,
) -> list[SendLine]:
    """Render and deliver ledger entries; each outcome is written to the ledger as it happens.

    E-mails for SMTP are rendered lazily, as the sending connections ask for the next one (in
    worker processes when there are many: :mod:`.messages`), so memory stays flat however
    many digests go out. When ``stop`` is set, or ``sender.run_budget`` is spent, delivery
    ends between two messages; what was not sent stays pending in the ledger and goes out,
    with the same Message-ID, on the next run. So does everything when the SMTP server or
    account fails (greeting, AUTH, …), after a back-off. ``stalled``: the hosts an earlier
    delivery of the same run found stalled (``run --once``: its alerts', for its digests), which
    this one adds to."""
    lines: list[SendLine] = []

    def done(line: SendLine) -> None:
        lines.append(line)
        if progress is not None:
            progress(line)

    run = Run(
        store=store,
        config=config,
        now=now,
        mail=messages.MailRun(
            base_url=config.base_url,
            from_address=config.sender.from_address,
            list_id=config.sender.list_id,
            date=now.timestamp(),
            signer=signer_for(config, store),
        ),
        outbox=outbox or Path(config.outbox),
        done=done,
        stop=stop,
        budget=Budget(config.sender.run_budget, setting="sender.run_budget"),
        stalled=set() if stalled is None else stalled,
    )
    pooled: dict[str, tuple[Channel, list[Job]]] = {}
    try:
        for job in jobs:
            if run.stopped():
                break
            channel = channel_for(job.channel)
            if channel.pooled(config):
                pooled.setdefault(channel.name, (channel, []))[1].append(job)
            else:
                channel.deliver([job], run)
        for channel, held in pooled.values():
            if run.stopped():
                break
            channel.deliver(held, run)
    finally:
        run.close()
    return lines


def _one_by_one(
    jobs: list[Job],
    run: Run,
    deliver: Callable[[Job], SendLine],
    host_of: Callable[[Job], tuple[str, str] | None] = lambda job: None,
) -> None:
    """Deliver each job in turn. A host that let one delivery run to its deadline
    (``sender.timeout``) without taking it gets no more of this run's time: its other jobs
    wait, untried, for the next run. Fifteen readers' webhooks on one stalled host took the
    whole ``sender.run_budget`` (15 × 60 s), and every e-mail after them went unsent."""
    stalled = run.stalled
    for job in jobs:
        if run.stopped():
            break
        if run.budget.spent:
            run.done(run.out_of_time(job))
            continue
        found = host_of(job)
        host, shown = found if found is not None else (None, "")
        if host is not None and host in stalled:
            reason = (
                f"not sent: {shown} let an earlier delivery of this run reach its deadline "
                "(sender.timeout) unanswered; the next run tries again"
            )
            run.done(untried(run.store, job, reason))
            continue
        started = time.monotonic()
        try:
            line = deliver(job)
        except StoreError:
            raise  # the ledger itself failed: nothing more can be recorded
        except Exception as exc:  # one reader's channel, never the run
            line = run.settle(job, error=unexpected(job, exc))
        took = time.monotonic() - started
        # (its deadline's timer may fire a hair early: 90 % of it is "reached its deadline")
        if host is not None and line.status != "sent" and took >= 0.9 * run.config.sender.timeout:
            stalled.add(host)
        run.done(line)


def _slack_host(job: Job) -> tuple[str, str] | None:
    webhook = job.sub.slack_webhook
    host = urlsplit(webhook.get_secret_value()).hostname if webhook is not None else None
    return (host, f"the Slack webhook host {host}") if host else None


def _apprise_host(job: Job) -> tuple[str, str] | None:
    """The server the job's Apprise URL reaches, shown as its service alone: its host where
    the URL names one (``json://hooks.example.org/…``, an IP address), else the service itself.
    In ``discord://ID/TOKEN`` or ``tgram://TOKEN/CHAT`` the "host" is a reader's own id or
    token and every reader's messages go to one server (discord.com): keyed by that id, one
    stalled Discord cost each reader's message its whole deadline in turn, and the run's
    budget before any e-mail went out (found in review)."""
    url = apprise_mod.url_for(job.channel, [u.get_secret_value() for u in job.sub.notify])
    parts = urlsplit(url) if url is not None else None
    if parts is None or not parts.hostname:
        return None
    host = parts.hostname
    named = "." in host or ":" in host or host == "localhost"  # a DNS name or an address
    key = f"{parts.scheme}://{host}" if named else f"{parts.scheme}://"
    return key, f"the {parts.scheme}:// service"


def _deliver_outbox(run: Run, job: Job) -> SendLine:
    msg, rendered = messages.build(mail_job(job), run.mail)
    try:
        path = email_mod.write_outbox(run.outbox, outbox_name(job, run.now), msg, rendered.html)
    except DeliveryError as exc:
        return run.settle(job, error=exc)
    return run.settle(job, sent=f"{_papers(job.picks)} → {path}")


def _deliver_smtp(run: Run, by_key: dict[int, Job]) -> list[SendLine]:
    """Send over SMTP; returns lines for the digests the run did not get to."""
    config = run.config
    assert config.sender.smtp is not None
    sender = email_mod.SmtpSender(
        config.sender.smtp,
        connections=config.sender.smtp_connections,
        attempts=config.sender.retry_attempts,
        backoff=config.sender.retry_backoff,
        deadline=config.sender.timeout,
        budget=run.budget,
    )
    settled: set[int] = set()
    waiting = 0  # settled, not sent, and tried again later: due, as the untried ones are
    # accepted while another process held the database: written down once the sending is over.
    # This runs on the sending loop, and a write waiting out a lock there froze the other
    # connections until their deadlines passed on answers already in (found in review)
    accepted: list[Job] = []

    def emailed(job: Job) -> str:
        return f"{_papers(job.picks)} by e-mail"

    def record(outcome: email_mod.Outcome) -> None:
        nonlocal waiting
        job = by_key[outcome.key]
        settled.add(outcome.key)
        waiting += not outcome.ok and not outcome.permanent
        if outcome.ok:
            try:
                with run.store.briefly():
                    line = run.settle(job, sent=emailed(job), patient=False)
            except StoreBusy:
                accepted.append(job)
                return
            run.done(line)
        else:
            error = DeliveryError(
                outcome.error or "",
                permanent=outcome.permanent,
                maybe_delivered=outcome.maybe_delivered,
            )
            run.done(run.settle(job, error=error))

    mail_jobs = [mail_job(job) for job in by_key.values()]
    processes = config.sender.render_processes
    try:
        with contextlib.closing(
            messages.render_all(mail_jobs, run.mail, processes=processes)
        ) as out:
            asyncio.run(sender.send_all(out, on_done=record, stop=run.stop))
    finally:  # (a run that ended in an error too: these went out)
        for job in accepted:  # waiting for the lock as long as the run's claim lasts
            run.done(run.settle(job, sent=emailed(job)))
    left = [job for key, job in by_key.items() if key not in settled]
    if run.budget.spent and sender.failure is None:
        return [run.out_of_time(job) for job in left]
    if sender.failure is None:
        return []  # (stopped: what was not sent stays pending, let go for the next run)
    # the server or the account failed: no recipient was refused, and none of these was tried;
    # each stays due, tried again after a back-off, and the ledger says why (`paperwire status`)
    # every one still due, the failed messages too ("0 more" read as none, with 9 due)
    log.error("send: %s (%d e-mails stay due)", sender.failure, waiting + len(left))
    run.store.set_setting(
        RELAY_FAILED,
        relay_fingerprint(run.store, config.sender.smtp_url, config.sender.from_address),
    )
    lines = []
    for job in left:
        retry_at = retry_time(run.now, job.tries + 1)
        lines.append(untried(run.store, job, again_after(sender.failure, retry_at), retry_at))
    return lines


def mail_job(job: Job) -> messages.MailJob:
    return messages.MailJob(
        key=job.delivery_id,
        subscriber_id=job.sub.id,
        name=job.sub.name or job.sub.id,
        recipient=str(job.sub.email) if job.sub.email else "",  # none for a Slack delivery
        kind=job.kind,
        period=job.dated(),  # what the subject and title name
        message_id=job.message_id,
        picks=job.picks,
        # "received since <date>" in the reader's own time zone, as the digest's date is
        since=job.since.astimezone(job.sub.tz) if job.since else None,
    )


def outbox_name(job: Job, now: dt.datetime) -> str:
    if job.kind == "digest":
        return f"{job.period}-{job.sub.id}-digest"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in job.period)[-60:]
    return f"{now.date().isoformat()}-{job.sub.id}-alert-{safe}"


def _deliver_slack(run: Run, job: Job) -> SendLine:
    """Post a digest to Slack, recording each accepted message: a resend starts after them."""
    if job.sub.slack_webhook is None:  # the webhook left the config while its digest was pending
        error = DeliveryError("slack: no longer in the config", permanent=True)
        return run.settle(job, error=error)
    ctx, _ = messages.context(mail_job(job), run.mail)
    webhook = job.sub.slack_webhook.get_secret_value()
    subject = render.subject_for(job.kind, job.dated(), job.picks)
    sender = run.config.sender
    return _send_in_parts(
        run,
        job,
        "Slack",
        lambda start, on_part: run.poster.call(
            slack.send_digest,
            webhook_url=webhook,
            ctx=ctx,
            fallback=subject,
            start=start,
            on_part=on_part,
            attempts=sender.retry_attempts,
            backoff=sender.retry_backoff,
            deadline=sender.timeout,
            budget=run.budget,
            reader=job.sub.id,
        ),
    )


def _deliver_apprise(run: Run, job: Job) -> SendLine:
    urls = [u.get_secret_value() for u in job.sub.notify]
    url = apprise_mod.url_for(job.channel, urls)
    if url is None:  # the URL left the config while its digest was pending
        error = DeliveryError(f"{job.channel}: no longer in the config", permanent=True)
        return run.settle(job, error=error)
    path, delivery_id = run.store.path, job.delivery_id
    key = f"{path}#{delivery_id}"  # one try at a time per delivery, whatever the database
    if still_running(key):
        # not sent at all: the earlier try's answer may yet come, and once it has, the row
        # says which messages were accepted. Not a try; tried again after a back-off.
        retry_at = retry_time(run.now, job.tries + 1)
        scheme = job.channel.split(":")[1]
        reason = f"notify {scheme}://…: not sent, an earlier try is still waiting for an answer"
        return untried(run.store, job, again_after(reason, retry_at), retry_at)
    # an earlier try, given up on, may have been answered since this run read the row
    fresh = run.store.delivery(job.sub.id, job.kind, job.period, job.channel)
    if fresh is not None and fresh["state"] == "sent":
        return accepted_late(job)
    job.parts_sent = max(job.parts_sent, (fresh or {}).get("parts_sent") or 0)
    ctx, _ = messages.context(mail_job(job), run.mail)
    subject = render.subject_for(job.kind, job.dated(), job.picks)

    def late(number: int, total: int) -> None:
        # Apprise's thread was given up on at the deadline and its message was accepted after
        # all: recorded, so that no later run sends it again. This runs in that thread, maybe
        # after the run ended: it opens a connection of its own. Should that fail (the
        # database locked, say), it is tried again a few times: once this returns, the key is
        # free and the acceptance, unrecorded, would be sent again.
        for wait in (*LATE_RECORD_WAITS, None):
            try:
                with Store(path) as store:
                    now = dt.datetime.now(dt.UTC)
                    store.record_late_part(delivery_id, number, total, now=now)
                break
            except Exception as exc:  # any failure: this thread's last word
                again = f"; trying again in {wait:g} s" if wait is not None else "; given up"
                log.warning(
                    "send %s: %s message %d of %d was accepted after its deadline, not "
                    "recorded: %s%s",
                    job.sub.id,
                    job.channel,
                    number,
                    total,
                    " ".join(str(exc).split()),
                    again,
                )
                if wait is None:
                    return
                time.sleep(wait)
        log.info(
            "send %s: %s message %d of %d was accepted after its deadline; recorded",
            job.sub.id,
            job.channel,
            number,
            total,
        )

    return _send_in_parts(
        run,
        job,
        job.channel.split(":")[1],
        lambda start, on_part: apprise_mod.send_digest(
            url,
            ctx,
            subject,
            start=start,
            on_part=on_part,
            deadline=run.config.sender.timeout,
            budget=run.budget,
            key=key,
            on_late=late,
        ),
    )


def _send_in_parts(
    run: Run,
    job: Job,
    where: str,
    send: Callable[[int, Callable[[int], None]], int],
) -> SendLine:
    """Send a digest that goes out as several messages (Slack, Apprise), recording each one
    accepted: a resend starts at the first message not accepted. ``send(start, on_part)``
    returns how many messages the digest took."""
    try:
        count = send(job.parts_sent, lambda n: run.store.record_parts(job.delivery_id, n))
    except DeliveryError as exc:
        return run.settle(job, error=exc)
    resumed = f", resumed at message {job.parts_sent + 1}" if job.parts_sent else ""
    return run.settle(job, sent=f"{_papers(job.picks)} to {where} ({count} message(s){resumed})")


def _papers(picks: list) -> str:
    """'1 paper', '3 papers': how a sent line counts a delivery's papers (an alert has one)."""
    return f"{len(picks)} paper{'' if len(picks) == 1 else 's'}"


# The store setting that holds which SMTP settings the relay last failed with (a salted hash):
# once the operator changes them, what waits out that failure's back-off goes at once.
RELAY_FAILED = "smtp_failed_with"


def relay_fingerprint(store: Store, url: SecretStr | None, sender: str = "") -> str:
    """A salted hash of the SMTP URL (it holds a password: never stored as it is) and the
    sender: a relay that refused the From takes a corrected one at once, as a new URL."""
    salt = store.setting("relay_salt")
    if salt is None:
        salt = secrets.token_hex(16)
        store.set_setting("relay_salt", salt)
    value = url.get_secret_value() if url is not None else ""
    return hashlib.sha256(f"{salt}\n{value}\n{sender}".encode()).hexdigest()


def resume_if_relay_changed(store: Store, config: Config) -> int:
    """E-mails waiting out the back-off of a relay failure (refused login, no TLS, unreachable)
    go at once when the SMTP settings changed since: an operator who fixed the URL saw
    "waiting ... tried again after ..." with the old error for up to an hour. Maybe-delivered
    ones keep their wait. Returns how many were let go."""
    failed_with = store.setting(RELAY_FAILED)
    if not failed_with or failed_with == relay_fingerprint(
        store, config.sender.smtp_url, config.sender.from_address
    ):
        return 0
    freed = store.retry_now("email")
    store.set_setting(RELAY_FAILED, "")
    if freed:
        log.info(
            "send: the SMTP settings changed since the relay failed: %d e-mails waiting for "
            "their back-off go now",
            freed,
        )
    return freed
