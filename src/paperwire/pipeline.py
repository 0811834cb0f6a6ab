"""The pipeline's two jobs, as library calls the CLI, the daemon and the tests share:
:func:`fetch_all` (fetch → store) and :func:`send_due` (rank → render → deliver, via the ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import httpx

from . import render, schedule
from .config import DEFAULT_GRACE, Config, FeedConfig, SubscriberConfig
from .deliver import email as email_mod
from .deliver import messages, slack
from .errors import DeliveryError, SourceError
from .feedback import signer_for
from .sources import fetch_feed, parse_document
from .sources.http import HttpCache, get, make_client
from .store import Store

if TYPE_CHECKING:
    from .digest import Pick

log = logging.getLogger("paperwire")


# -- fetch -------------------------------------------------------------------------------------


@dataclass
class FeedReport:
    label: str
    new: int = 0
    known: int = 0
    not_modified: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class FetchReport:
    feeds: list[FeedReport]

    @property
    def new(self) -> int:
        return sum(f.new for f in self.feeds)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.feeds if f.error)


FETCH_WORKERS = 8  # feeds downloaded at once, across hosts
PER_HOST = 1  # at once per host: arXiv asks robots to be gentle, and so would any blog


def fetch_all(
    store: Store,
    config: Config,
    *,
    client: httpx.Client | None = None,
    base_dir: Path | None = None,
    now: dt.datetime | None = None,
    progress: Callable[[FeedReport], None] | None = None,
    stop: threading.Event | None = None,
) -> FetchReport:
    """Fetch every feed (one broken feed never stops the others) and store what is new.

    Feeds are downloaded and parsed concurrently, one request at a time per host; results are
    stored in config order by this thread, the database's only writer here. ``stop``, when set
    (the daemon is shutting down), ends the run between two feeds."""
    own_client = client is None
    client = client or make_client()
    host_locks: dict[str, threading.Semaphore] = {}
    for feed in config.feeds:
        host_locks.setdefault(urlparse(feed.url).netloc, threading.Semaphore(PER_HOST))
    caches = {}
    for feed in config.feeds:
        state = store.feed_state(feed.url)
        caches[feed.url] = HttpCache(state["etag"], state["last_modified"]) if state else None

    def download(feed: FeedConfig):
        if stop is not None and stop.is_set():
            return None
        with host_locks[urlparse(feed.url).netloc]:
            return fetch_feed(feed, client=client, cache=caches[feed.url], base_dir=base_dir)

    reports = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(FETCH_WORKERS, len(config.feeds)))) as pool:
            futures = [(feed, pool.submit(download, feed)) for feed in config.feeds]
            for feed, future in futures:
                report = FeedReport(feed.label)
                try:
                    result = future.result()
                except SourceError as exc:
                    report.error = str(exc)
                    store.record_feed(feed.url, ok=False, error=str(exc), now=now)
                    log.error("fetch %s: %s", feed.label, exc)
                else:
                    if result is None:  # stopping
                        continue
                    _store_result(store, feed, result, report, now)
                reports.append(report)
                if progress:
                    progress(report)
        if stop is None or not stop.is_set():
            seeds = _fetch_missing_seeds(store, config, client, now)
            if seeds:
                reports.append(seeds)
    finally:
        if own_client:
            client.close()
    report = FetchReport(reports)
    store.log_event("fetch", {"new": report.new, "errors": report.errors})
    if report.new == 0 and not report.errors:
        log.info("fetch: nothing new in any feed")
    return report


def _store_result(store: Store, feed: FeedConfig, result, report: FeedReport, now) -> None:
    report.not_modified = result.not_modified
    report.warnings = result.warnings
    report.new, report.known = store.add_papers(result.papers, now=now)
    cache = result.cache or HttpCache()
    store.record_feed(
        feed.url,
        ok=True,
        new=report.new,
        etag=cache.etag,
        last_modified=cache.last_modified,
        now=now,
    )
    for warning in result.warnings:
        log.warning("fetch %s: %s", feed.label, warning)
    log.info(
        "fetch %s: %s",
        feed.label,
        "not modified" if result.not_modified else f"{report.new} new, {report.known} known",
    )


def _fetch_missing_seeds(
    store: Store, config: Config, client: httpx.Client, now: dt.datetime | None
) -> FeedReport | None:
    """Seed papers named in the config but not yet stored, from the arXiv API."""
    wanted = sorted({p for s in config.subscribers for p in s.seed_papers})
    missing = [p for p in wanted if p not in store.papers(wanted)]
    if not missing:
        return None
    report = FeedReport("seed papers (arXiv API)")
    url = f"{config.arxiv_api_url}?id_list={','.join(missing)}&max_results={len(missing)}"
    try:
        fetched = get(client, url, label=report.label)
        papers, report.warnings = parse_document(fetched.content, source="arxiv-api")
    except SourceError as exc:
        report.error = f"{exc} (seed papers stay unused until they can be fetched)"
        log.warning("%s", report.error)
        return report
    report.new, report.known = store.add_papers(papers, now=now)
    return report


# -- send --------------------------------------------------------------------------------------


@dataclass
class SendLine:
    subscriber_id: str
    status: str  # sent | failed | retry | nothing-new | not-due | unsubscribed | disabled
    detail: str = ""
    kind: str = "digest"  # or alert


@dataclass
class SendReport:
    lines: list[SendLine] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for line in self.lines if line.status == status)


@dataclass
class _Job:
    """One ledger entry to deliver now."""

    delivery_id: int
    sub: SubscriberConfig
    kind: str
    period: str
    channel: str
    message_id: str
    picks: list[Pick]
    since: dt.datetime | None = None


def active_subscribers(
    store: Store, config: Config, subscriber_id: str | None = None
) -> tuple[list[SubscriberConfig], list[SendLine]]:
    """Subscribers who should receive mail now, and lines for those who should not."""
    subs = [config.subscriber(subscriber_id)] if subscriber_id else list(config.subscribers)
    gone = store.unsubscribed()
    active, skipped = [], []
    for sub in subs:
        if not sub.enabled:
            skipped.append(SendLine(sub.id, "disabled", "enabled: false in the config"))
        elif sub.id in gone:
            skipped.append(SendLine(sub.id, "unsubscribed", "unsubscribed by link"))
        else:
            active.append(sub)
    return active, skipped


# One-shot runs (`paperwire send`, `run --once`) give a reader who never had a digest the first
# one from any slot of the past week: a new reader, or the demo at any hour, need not wait for
# tomorrow. The daemon waits for the slot itself. After a first digest, a missed slot is caught
# up only within the grace period.
FIRST_DIGEST_REACH = dt.timedelta(days=7)


def digest_slots(
    store: Store,
    subs: list[SubscriberConfig],
    now: dt.datetime,
    grace: dt.timedelta,
    first_reach: dt.timedelta | None = None,
) -> dict[str, dt.datetime | None]:
    """The digest slot each subscriber is due for now, if any; ``first_reach`` (when given)
    replaces ``grace`` for readers who never had a digest."""
    had_one = store.last_digest_times(s.id for s in subs) if first_reach else {}
    return {
        s.id: schedule.latest_slot(
            s, now, grace if first_reach is None or s.id in had_one else first_reach
        )
        for s in subs
    }


def send_due(
    store: Store,
    config: Config,
    *,
    now: dt.datetime,
    subscriber_id: str | None = None,
    grace: dt.timedelta = DEFAULT_GRACE,
    first_reach: dt.timedelta | None = None,
    outbox: Path | None = None,
    http: httpx.Client | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[SendLine], None] | None = None,
) -> SendReport:
    """Deliver every due digest exactly once: first what a crash or outage left pending, then
    each subscriber whose latest digest slot has no ledger entry yet."""
    from . import digest as digest_mod  # scikit-learn only when ranking is needed

    report = SendReport()
    subs, skipped = active_subscribers(store, config, subscriber_id)
    report.lines.extend(skipped)
    by_id = {s.id: s for s in subs}
    jobs: list[_Job] = []
    resumed: set[tuple[str, str]] = set()
    for row in store.unsent_deliveries(subscriber_id):
        sub = by_id.get(row["subscriber_id"])
        if sub is None:
            continue
        listed = store.delivery_papers(row["id"])
        papers = store.papers(p["paper_id"] for p in listed)
        picks = [
            digest_mod.Pick(
                p["paper_id"],
                papers[p["paper_id"]]["title"],
                papers[p["paper_id"]]["url"],
                p["score"],
                p["reasons"],
                papers[p["paper_id"]],
            )
            for p in listed
            if p["paper_id"] in papers
        ]
        jobs.append(
            _Job(
                row["id"], sub, row["kind"], row["period"], row["channel"], row["message_id"], picks
            )
        )
        resumed.add((sub.id, row["period"]))

    slots = digest_slots(store, subs, now, grace, first_reach)
    # what the ledger already holds for those slots, in one query: the daemon asks every tick
    recorded = store.recorded("digest", {schedule.period(t) for t in slots.values() if t})
    due: dict[str, tuple[str, list[str]]] = {}
    for sub in subs:
        slot = slots[sub.id]
        if slot is None:
            report.lines.append(SendLine(sub.id, "not-due", "no digest slot in the grace period"))
            continue
        period = schedule.period(slot)
        channels = [c for c in _channels(sub) if (sub.id, period, c) not in recorded]
        if channels:
            due[sub.id] = (period, channels)
        elif (sub.id, period) not in resumed:
            report.lines.append(SendLine(sub.id, "not-due", f"digest for {period} already handled"))

    if due:
        digests = digest_mod.compose(store, config, [by_id[s] for s in due], now=now)
        domain = email_mod.domain_of(config.sender.from_address)
        for sub_id, (period, channels) in due.items():
            composed = digests[sub_id]
            if not composed.picks:
                since = composed.since.date().isoformat()
                detail = f"no new papers since {since}"
                report.lines.append(SendLine(sub_id, "nothing-new", detail))
                log.info("send %s: nothing new since %s; no digest sent", sub_id, since)
                for channel in channels:  # reported once; the next slot takes what comes
                    store.record_empty(sub_id, "digest", period, channel, reason=detail, now=now)
                continue
            for channel in channels:
                job = _open_job(
                    store,
                    by_id[sub_id],
                    "digest",
                    period,
                    channel,
                    composed.picks,
                    domain=domain,
                    now=now,
                    since=composed.since,
                )
                if job is not None:
                    jobs.append(job)
    if jobs:
        report.lines.extend(
            deliver_jobs(
                store, config, jobs, outbox=outbox, http=http, now=now, stop=stop, progress=progress
            )
        )
    store.log_event("send", {"sent": report.count("sent"), "failed": report.count("failed")})
    return report


def send_alerts(
    store: Store,
    config: Config,
    *,
    now: dt.datetime,
    outbox: Path | None = None,
    http: httpx.Client | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send each instant alert due after a fetch, through the same ledger as digests."""
    from .alerts import find_alerts

    report = SendReport()
    subs, _ = active_subscribers(store, config)
    domain = email_mod.domain_of(config.sender.from_address)
    jobs: list[_Job] = []
    for alert in find_alerts(store, config, subs, now=now):
        for channel in _channels(alert.subscriber):
            # the alert's period is its paper: the ledger admits each alert once
            job = _open_job(
                store,
                alert.subscriber,
                "alert",
                alert.pick.paper_id,
                channel,
                [alert.pick],
                domain=domain,
                now=now,
            )
            if job is not None:
                jobs.append(job)
    if jobs:
        report.lines.extend(
            deliver_jobs(store, config, jobs, outbox=outbox, http=http, now=now, stop=stop)
        )
    return report


def _channels(sub: SubscriberConfig) -> list[str]:
    return [c for c, present in (("email", sub.email), ("slack", sub.slack_webhook)) if present]


def _open_job(
    store: Store,
    sub: SubscriberConfig,
    kind: str,
    period: str,
    channel: str,
    picks: list[Pick],
    *,
    domain: str,
    now: dt.datetime,
    since: dt.datetime | None = None,
) -> _Job | None:
    """Record a delivery as pending in the ledger and return its job; None if it was already
    recorded (by an earlier run or a concurrent sender)."""
    # a digest's Message-ID names its date; an alert's (whose period is a paper id) today's
    dated = now.date().isoformat() if kind == "alert" else period
    message_id = email_mod.make_message_id(kind, sub.id, dated, domain)
    delivery_id = store.open_delivery(
        sub.id,
        kind,
        period,
        channel,
        message_id=message_id,
        content_hash=_content_hash(picks),
        papers=[(p.paper_id, p.score, p.reasons) for p in picks],
        now=now,
    )
    if delivery_id is None:
        return None
    return _Job(delivery_id, sub, kind, period, channel, message_id, picks, since)


def _content_hash(picks: list[Pick]) -> str:
    return hashlib.sha256("\n".join(p.paper_id for p in picks).encode()).hexdigest()[:16]


def deliver_jobs(
    store: Store,
    config: Config,
    jobs: list[_Job],
    *,
    outbox: Path | None,
    http: httpx.Client | None,
    now: dt.datetime,
    stop: threading.Event | None = None,
    progress: Callable[[SendLine], None] | None = None,
) -> list[SendLine]:
    """Render and deliver ledger entries; each outcome is written to the ledger as it happens.

    E-mails for SMTP are rendered lazily, as the sending connections ask for the next one (in
    worker processes when there are many: :mod:`.deliver.messages`), so memory stays flat
    however many digests go out. When ``stop`` is set, delivery ends between
    two messages; what was not sent stays pending in the ledger and goes out, with the same
    Message-ID, on the next run."""
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
    by_key: dict[int, _Job] = {}  # SMTP jobs, in order, by ledger id
    own_http = http is None and any(j.channel == "slack" for j in jobs)
    http = http or (make_client() if own_http else None)
    try:
        for job in jobs:
            if stopped():
                break
            if job.channel == "slack":
                ctx, _ = messages.context(_mail_job(job), run)
                done(_deliver_slack(store, job, http, ctx, now))
            elif smtp_url is None:
                msg, rendered = messages.build(_mail_job(job), run)
                name = _outbox_name(job, now)
                path = email_mod.write_outbox(outbox, name, msg, rendered.html)
                store.mark_delivery(job.delivery_id, "sent", now=now)
                done(SendLine(job.sub.id, "sent", f"{len(job.picks)} papers → {path}", job.kind))
            else:
                by_key[job.delivery_id] = job
        if by_key and not stopped():
            sender = email_mod.SmtpSender(
                email_mod.SmtpSettings.from_url(smtp_url),
                connections=config.sender.smtp_connections,
                attempts=config.sender.retry_attempts,
                backoff=config.sender.retry_backoff,
            )

            def record(outcome: email_mod.Outcome) -> None:
                job = by_key[outcome.key]
                if outcome.ok:
                    done(_settle(store, job, now, sent=f"{len(job.picks)} papers by e-mail"))
                else:
                    done(
                        _settle(
                            store,
                            job,
                            now,
                            error=DeliveryError(outcome.error or "", permanent=outcome.permanent),
                        )
                    )

            mail_jobs = [_mail_job(job) for job in by_key.values()]
            processes = config.sender.render_processes
            with contextlib.closing(
                messages.render_all(mail_jobs, run, processes=processes)
            ) as out:
                asyncio.run(sender.send_all(out, on_done=record, stop=stop))
    finally:
        if own_http and http is not None:
            http.close()
    return lines


def _mail_job(job: _Job) -> messages.MailJob:
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


def _outbox_name(job: _Job, now: dt.datetime) -> str:
    if job.kind == "digest":
        return f"{job.period}-{job.sub.id}-digest"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in job.period)[-60:]
    return f"{now.date().isoformat()}-{job.sub.id}-alert-{safe}"


def _deliver_slack(
    store: Store, job: _Job, http: httpx.Client, ctx: dict, now: dt.datetime
) -> SendLine:
    webhook = job.sub.slack_webhook.get_secret_value()
    subject = render.subject_for(job.kind, job.period, job.picks)
    try:
        count = slack.send_digest(http, webhook, ctx, subject)
    except DeliveryError as exc:
        return _settle(store, job, now, error=exc)
    return _settle(store, job, now, sent=f"{len(job.picks)} papers to Slack ({count} message(s))")


def _settle(
    store: Store,
    job: _Job,
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
