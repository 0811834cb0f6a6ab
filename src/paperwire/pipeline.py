"""The pipeline's two jobs, as library calls the CLI, the daemon and the tests share:
:func:`fetch_all` (fetch → store) and :func:`send_due` (rank → render → deliver, via the ledger).

Sending is exactly once because each run works only on ledger rows it holds: the ones it opens,
and pending ones whose holder is gone (:meth:`Store.claim_unsent`); the delivery itself is
:mod:`.deliver.dispatch`.
"""

from __future__ import annotations

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

from . import schedule
from .config import Config, FeedConfig, SubscriberConfig
from .deliver import email as email_mod
from .deliver.dispatch import Job, SendLine, deliver_jobs  # noqa: F401 (SendLine: API)
from .errors import SourceError
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
class SendReport:
    lines: list[SendLine] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for line in self.lines if line.status == status)


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


def send_due(
    store: Store,
    config: Config,
    *,
    now: dt.datetime,
    subscriber_id: str | None = None,
    grace: dt.timedelta = dt.timedelta(days=7),
    outbox: Path | None = None,
    http: httpx.Client | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[SendLine], None] | None = None,
) -> SendReport:
    """Deliver every due digest exactly once: first what a crash or outage left pending (and
    no live run holds), then each subscriber whose latest digest slot has no ledger entry yet.

    The run holds what it sends (a lease renewed while it lasts) and lets go of what is left
    when it ends, so a concurrent ``send`` never touches it and the next run resumes it."""
    report = SendReport()
    subs, skipped = active_subscribers(store, config, subscriber_id)
    report.lines.extend(skipped)
    with store.holding() as claim:
        jobs = _due_jobs(
            store, config, report, subs, claim, now=now, grace=grace, only=subscriber_id
        )
        if jobs:
            report.lines.extend(
                deliver_jobs(
                    store,
                    config,
                    jobs,
                    outbox=outbox,
                    http=http,
                    now=now,
                    stop=stop,
                    progress=progress,
                )
            )
    store.log_event("send", {"sent": report.count("sent"), "failed": report.count("failed")})
    return report


def _due_jobs(
    store: Store,
    config: Config,
    report: SendReport,
    subs: list[SubscriberConfig],
    claim: str,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    only: str | None,
) -> list[Job]:
    """The ledger entries this run is to deliver, claimed for it: pending ones nobody holds,
    then a new one per due digest. Lines for subscribers with nothing to send go to ``report``."""
    from . import digest as digest_mod  # scikit-learn only when ranking is needed

    by_id = {s.id: s for s in subs}
    jobs: list[Job] = []
    resumed: set[tuple[str, str]] = set()
    # pending rows whose holder is gone (a crash, an outage); those a live run holds are its own
    for row in store.claim_unsent(claim, only):
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
            Job(
                row["id"],
                sub,
                row["kind"],
                row["period"],
                row["channel"],
                row["message_id"],
                picks,
                parts_sent=row["parts_sent"] or 0,
            )
        )
        resumed.add((sub.id, row["period"]))

    slots = {sub.id: schedule.latest_slot(sub, now, grace) for sub in subs}
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
                    claim=claim,
                    domain=domain,
                    now=now,
                    since=composed.since,
                )
                if job is not None:
                    jobs.append(job)
    return jobs


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
    jobs: list[Job] = []
    with store.holding() as claim:
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
                    claim=claim,
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
    claim: str,
    domain: str,
    now: dt.datetime,
    since: dt.datetime | None = None,
) -> Job | None:
    """Record a delivery as pending in the ledger, held by this run, and return its job; None
    if it was already recorded (by an earlier run or a concurrent sender)."""
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
        claim=claim,
        now=now,
    )
    if delivery_id is None:
        return None
    return Job(delivery_id, sub, kind, period, channel, message_id, picks, since)


def _content_hash(picks: list[Pick]) -> str:
    return hashlib.sha256("\n".join(p.paper_id for p in picks).encode()).hexdigest()[:16]
