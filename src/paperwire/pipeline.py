"""The pipeline's two jobs, as library calls the CLI, the daemon and the tests share:
:func:`fetch_all` (fetch → store) and :func:`send_due` (rank → render → deliver, via the ledger).

Sending is exactly once because each run works only on ledger rows it holds: the ones it opens,
and pending ones whose holder is gone (:meth:`Store.claim_unsent`); the delivery itself is
:mod:`.deliver.dispatch`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx

from . import redact, schedule
from .config import CLOCK_SLACK, DEFAULT_GRACE, Config, FeedConfig, SubscriberConfig
from .deadline import Budget
from .deliver import email as email_mod
from .deliver.channel import Job, SendLine
from .deliver.dispatch import channel_ids, deliver_jobs, resume_if_relay_changed
from .errors import PaperwireError, SourceError
from .links import signer_for
from .paper import seed_ids
from .rank.scope import scope as corpus_scope
from .rank.session import RankingSession
from .sources import fetch, parse_in_time
from .sources.http import MB, HttpCache, Limits, get, make_async_client
from .sources.library import API_PAUSE, ID_BATCH, id_list_url, store_seed_papers
from .store import Store, iso

if TYPE_CHECKING:
    from .paper import Pick
    from .sources.library import ImportReport

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
    feeds: list[FeedReport]  # the configured feeds only: what "every feed failed" counts
    stopped: bool = False  # ``stop`` was set: feeds still in flight were left out
    # the seed papers looked up in the arXiv API, if any were missing: no feed, so neither in
    # ``new`` (they are stored as first seen when published) nor in ``errors``
    seeds: FeedReport | None = None

    @property
    def new(self) -> int:
        return sum(f.new for f in self.feeds)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.feeds if f.error)


FETCH_WORKERS = 8  # feeds downloaded at once, across hosts
PER_HOST = 1  # at once per host: arXiv asks robots to be gentle, and so would any blog
STOP_POLL_SECONDS = 0.1  # how often a run looks at its ``stop`` event


def fetch_all(
    store: Store,
    config: Config,
    *,
    base_dir: Path | None = None,
    now: dt.datetime | None = None,
    progress: Callable[[FeedReport], None] | None = None,
    stop: threading.Event | None = None,
    session: RankingSession | None = None,
) -> FetchReport:
    """Fetch every feed (one broken feed never stops the others) and store what is new.

    Feeds are downloaded concurrently, least recently fetched first, one request at a time
    per host, each within
    ``config.fetch_timeout_seconds`` and ``config.fetch_max_mb``, and all of them within
    ``config.fetch_run_budget_seconds`` (a feed whose turn comes after that is this run's error,
    fetched the next time); results are stored in config order by the calling thread, the
    database's only writer here. Setting ``stop`` (from any
    thread: the daemon is shutting down) cancels every download in flight within about
    ``STOP_POLL_SECONDS``; feeds not finished by then are neither stored nor reported, and
    ``FetchReport.stopped`` is True. It runs its own event loop: call it from a thread that
    has none running."""
    # Passwords and tokens in feed URLs are masked in every log line from now on, also in
    # text that third-party libraries build (httpx logs each request URL).
    for feed in config.feeds:
        redact.remember(*redact.secrets_in_url(feed.url))
    limits = Limits(deadline=config.fetch_timeout_seconds, max_bytes=int(config.fetch_max_mb * MB))
    reports, seeds = asyncio.run(
        _fetch_and_store(store, config, limits, base_dir, now, progress, stop)
    )
    report = FetchReport(reports, stopped=stop is not None and stop.is_set(), seeds=seeds)
    # Not only when a feed brought papers: after the encoder is switched on or to another
    # model, or a fetch stopped half-way, the feeds may well say "not modified", and what is
    # missing would otherwise fall to the next digest (both passes skip what is up to date).
    if not report.stopped and store.count_papers():
        # Each paper's text is analysed once, now, not by every run that ranks against it.
        from .rank import terms  # SciPy only when there is text to analyse

        # the papers a digest ranks against (ranking.corpus_papers): after an upgrade or a
        # model switch, a store years old is not analysed and encoded whole
        scope = corpus_scope(store, config)
        try:
            terms.refresh(store, stop=stop, scope=scope)
        except Exception:  # a cache: the papers are stored, and a run analyses what is missing
            log.exception("fetch: analysing the stored papers' text failed")
        # ... and encoded once, now, by the sentence encoder (ranking.embeddings)
        try:
            session = session or RankingSession()
            session.embed_stored(store, config.ranking.embeddings, stop=stop, scope=scope)
        except PaperwireError as exc:  # a missing model says how to fix it, once per fetch
            # not "fetch: %s": the command drops those lines, the feed errors it prints itself
            log.error("fetch: the stored papers were not encoded: %s", exc)
        except Exception:  # a cache too: a run embeds what is missing itself
            log.exception("fetch: embedding the stored papers failed")
    store.log_event("fetch", {"new": report.new, "errors": report.errors})
    if report.new == 0 and not report.errors and not report.stopped:
        log.info("fetch: nothing new in any feed")
    return report


async def _fetch_and_store(
    store: Store,
    config: Config,
    limits: Limits,
    base_dir: Path | None,
    now: dt.datetime | None,
    progress: Callable[[FeedReport], None] | None,
    stop: threading.Event | None,
) -> tuple[list[FeedReport], FeedReport | None]:
    """The feeds' reports in config order, and the seed look-up's (None if none ran)."""
    caches = {}
    turns: dict[str, str] = {}
    for feed in config.feeds:
        state = store.feed_state(redact.redact_url(feed.url))
        caches[feed.url] = HttpCache(state["etag"], state["last_modified"]) if state else None
        turns[feed.url] = _last_turn(state)
    # Feeds start (and take their turn at a host) least recently fetched first, ties in config
    # order: when the budget runs out, the feeds it left out go first the next time, instead of
    # the same first feeds dripping until it is spent on every run.
    starting = sorted(config.feeds, key=lambda feed: turns[feed.url])
    workers = asyncio.Semaphore(FETCH_WORKERS)
    host_gates = {urlparse(f.url).netloc: asyncio.Semaphore(PER_HOST) for f in config.feeds}
    budget = Budget(config.fetch_run_budget_seconds, setting="fetch_run_budget_seconds")

    async with make_async_client() as client:

        async def download(feed: FeedConfig):
            # its host's turn first, then a worker: a feed queued behind its host's other
            # feeds must not hold a worker that a feed of another host could use
            async with host_gates[urlparse(feed.url).netloc], workers:
                # the deadline is set when the download starts, after its turn came
                return await fetch(
                    feed,
                    client=client,
                    cache=caches[feed.url],
                    base_dir=base_dir,
                    limits=_within(limits, budget, feed.label),
                )

        started = {feed.url: asyncio.create_task(download(feed)) for feed in starting}
        tasks = [(feed, started[feed.url]) for feed in config.feeds]  # stored in config order
        watcher = asyncio.create_task(_cancel_when_set(stop, [t for _, t in tasks]))
        reports = []
        seeds = None
        try:
            for feed, task in tasks:
                report = FeedReport(feed.label)
                try:
                    result = await task
                except asyncio.CancelledError:
                    if not task.cancelled():
                        raise  # this coroutine itself is being cancelled
                    continue  # stopping: this feed is neither stored nor reported
                except SourceError as exc:
                    _record_feed_error(store, feed, report, str(exc), now)
                except (
                    Exception
                ) as exc:  # a bug met by one feed is that feed's error, not the run's
                    log.exception("fetch %s: unexpected error", feed.label)
                    problem = f"feed {feed.label}: " + redact.redact(f"{type(exc).__name__}: {exc}")
                    _record_feed_error(store, feed, report, problem, now)
                else:
                    _store_result(store, feed, result, report, now)
                reports.append(report)
                if progress:
                    progress(report)
            if stop is None or not stop.is_set():
                seeds = await _fetch_missing_seeds(store, config, client, limits, budget)
        finally:
            watcher.cancel()
            for _, task in tasks:
                task.cancel()
    return reports, seeds


# how a feed the fetch budget left out says so (its last_error): it did not have its turn
_NO_TURN = "was spent before its turn"


def _last_turn(state: dict[str, Any] | None) -> str:
    """When a feed was last fetched, successfully or not ("" if never): a try the run's budget
    left out does not count (so it goes first the next time)."""
    if not state:
        return ""
    if _NO_TURN in (state.get("last_error") or ""):
        return state.get("last_ok") or ""
    return state.get("last_fetch") or state.get("last_ok") or ""


def _within(limits: Limits, budget: Budget, label: str) -> Limits:
    """``limits`` with the deadline cut to what is left of the run's budget; a SourceError once
    it is spent (the run has no time left for this feed). The deadline covers the feed's
    download and its parse (:func:`~paperwire.sources.parse_in_time`)."""
    deadline, setting = budget.deadline(limits.deadline, limits.deadline_setting)
    if deadline <= 0:
        raise SourceError(
            f"feed {label}: not fetched: the fetch run's budget of {budget.seconds:g} s "
            f"({setting}) {_NO_TURN}; it is fetched the next time"
        )
    return dataclasses.replace(limits, deadline=deadline, deadline_setting=setting)


async def _cancel_when_set(stop: threading.Event | None, tasks: list[asyncio.Task]) -> None:
    """Cancel ``tasks`` as soon as ``stop`` is set (it is set from another thread)."""
    if stop is None:
        return
    while not stop.is_set():
        await asyncio.sleep(STOP_POLL_SECONDS)
    for task in tasks:
        task.cancel()


def _record_feed_error(
    store: Store, feed: FeedConfig, report: FeedReport, error: str, now: dt.datetime | None
) -> None:
    report.error = error
    store.record_feed(redact.redact_url(feed.url), ok=False, error=error, now=now)
    log.error("fetch: %s", error)  # the error names the feed already


def _store_result(store: Store, feed: FeedConfig, result, report: FeedReport, now) -> None:
    report.not_modified = result.not_modified
    report.warnings = result.warnings
    report.new, report.known = store.add_papers(result.papers, now=now)
    cache = result.cache or HttpCache()
    # Feed state is keyed by the redacted URL: the database never holds a feed's password.
    key = redact.redact_url(feed.url)
    if key != feed.url:
        store.forget_feed(feed.url)  # a row written by a version that stored the full URL
    store.record_feed(
        key,
        ok=True,
        new=report.new,
        etag=cache.etag,
        last_modified=cache.last_modified,
        # a malformed (maybe cut off) document: the validators of the last whole one go too
        forget_validators=not result.whole,
        now=now,
    )
    for warning in result.warnings:
        log.warning("fetch %s: %s", feed.label, warning)
    log.info(
        "fetch %s: %s",
        feed.label,
        "not modified" if result.not_modified else f"{report.new} new, {report.known} known",
    )


SEED_LOOKUP_TURN = "seed_lookup_turn"  # where the next look-up of missing seeds starts


async def _fetch_missing_seeds(
    store: Store,
    config: Config,
    client: httpx.AsyncClient,
    limits: Limits,
    budget: Budget,
) -> FeedReport | None:
    """Seed papers named in the config but not yet stored, from the arXiv API."""
    # as stored: "1706.03762v5" or "arXiv:1706.03762" is the stored 1706.03762, not missing
    configured = set(seed_ids(p for s in config.subscribers for p in s.seed_papers))
    # imported by the readers in the config: a reader removed from it costs no more look-ups
    imported = store.seeds([s.id for s in config.subscribers]).values()
    wanted = sorted(configured | {p for ids in imported for p in ids})
    known = store.papers(wanted).keys()
    missing = [p for p in wanted if p not in known]
    if not missing:
        return None
    report = FeedReport("seed papers (arXiv API)")
    # one request of at most ID_BATCH ids a fetch, as the library import asks: a library whose
    # import could not fetch its papers is looked up a batch a fetch, never in one huge URL,
    # and the arXiv API is asked at most once a fetch for them. Each fetch takes the next
    # batch round the list: the first 100 asked every time, a hundred ids arXiv does not have
    # kept every later seed from ever being looked up
    start = int(store.setting(SEED_LOOKUP_TURN) or 0) % len(missing)
    batch = (missing[start:] + missing[:start])[:ID_BATCH]
    store.set_setting(SEED_LOOKUP_TURN, str(start + len(batch)))
    if len(missing) > len(batch):
        report.warnings.append(
            f"{len(missing) - len(batch)} more seed papers are looked up in the next fetches"
        )
    url = id_list_url(config.arxiv_api_url, batch)
    try:
        within = _within(limits, budget, report.label)
        began = asyncio.get_running_loop().time()
        # its retries 3 s apart at least, as arXiv's terms ask of robots
        within = dataclasses.replace(within, retry_pause=API_PAUSE)
        fetched = await get(client, url, label=report.label, limits=within)
        parsed = await parse_in_time(
            fetched, source="arxiv-api", label=report.label, limits=within, began=began
        )
    except SourceError as exc:
        report.error = f"{exc} (seed papers stay unused until they can be fetched)"
        log.warning("%s", report.error)
        return report
    report.warnings += parsed.warnings
    # as the library import stores them: first seen when published, so one reader's 2017 seed
    # is not another reader's news today
    report.new, report.known = store_seed_papers(store, parsed.papers)
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
    gone = unsubscribed(store, subs)
    active, skipped = [], []
    for sub in subs:
        if not sub.enabled:
            skipped.append(SendLine(sub.id, "disabled", "enabled: false in the config"))
        elif sub.id in gone:
            skipped.append(SendLine(sub.id, "unsubscribed", gone[sub.id]))
        else:
            active.append(sub)
    return active, skipped


def unsubscribed(store: Store, subs: list[SubscriberConfig]) -> dict[str, str]:
    """Reader id -> how they unsubscribed, for those of ``subs`` who did
    (:meth:`Store.unsubscribes`: by this id, the same id in other case, or this address)."""
    return store.unsubscribes((sub.id, sub.email) for sub in subs)


# One-shot runs (`paperwire send`, `run --once`) give a reader who never had a digest the first
# one from any slot of the past week: a new reader, or the demo at any hour, need not wait for
# tomorrow. The daemon waits for the reader's next slot after it first saw them (``first_after``):
# starting it, or adding a reader, sends nothing at once. After a first digest, a missed slot is
# caught up only within the grace period.
FIRST_DIGEST_REACH = dt.timedelta(days=7)


def digest_slots(
    store: Store,
    subs: list[SubscriberConfig],
    now: dt.datetime,
    grace: dt.timedelta,
    first_reach: dt.timedelta | None = None,
    first_after: Mapping[str, dt.datetime] | None = None,
) -> dict[str, dt.datetime | None]:
    """The digest slot each subscriber is due for now, if any. For readers who never had a
    digest composed (not even a quiet day's), ``first_reach`` (when given) replaces ``grace``, and ``first_after`` (when given)
    keeps only a slot at or after the moment it gives for them."""
    new_rules = first_reach is not None or first_after is not None
    # any digest composed for them, sent or not (a quiet day's 'nothing-new' too): a reader
    # whose slots were all quiet is no new reader, and a missed slot waits out the grace
    had_one = store.last_composed(s.id for s in subs) if new_rules else {}
    slots = {}
    for s in subs:
        first = new_rules and s.id not in had_one
        slot = schedule.latest_slot(s, now, first_reach if first and first_reach else grace)
        if first and slot is not None and first_after is not None and s.id in first_after:
            slot = slot if slot >= first_after[s.id] else None
        slots[s.id] = slot
    return slots


def late_slots(
    subs: list[SubscriberConfig], now: dt.datetime, grace: dt.timedelta
) -> dict[str, dt.datetime]:
    """Each reader's latest digest slot, where it passed more than ``grace`` ago: none is due."""
    late = {}
    for sub in subs:
        slot = schedule.latest_slot(sub, now, dt.timedelta.max)
        if slot is not None and now - slot > grace:
            late[sub.id] = slot
    return late


def missed_slots(
    store: Store,
    late: Mapping[str, dt.datetime],
    now: dt.datetime,
    first_after: Mapping[str, dt.datetime] | None = None,
) -> dict[str, dt.datetime]:
    """Of these slots past the grace period (:func:`late_slots`), those skipped: no digest was
    composed for them (paperwire was not running, the machine slept), nor after them; their
    papers wait for the next digest. A reader who never had a digest missed none, unless the
    daemon saw them before the slot (``first_after``). Two queries, whatever the readers."""
    if not late:
        return {}
    recorded = store.recorded("digest", {schedule.period(t) for t in late.values()})
    handled = {(sub_id, period) for sub_id, period, _ in recorded}
    last = store.last_composed(late)
    missed = {}
    for sub_id, slot in late.items():
        if (sub_id, schedule.period(slot)) in handled or covered(slot, last.get(sub_id), now):
            continue
        seen = (first_after or {}).get(sub_id)
        if sub_id not in last and (seen is None or slot < seen):
            continue
        missed[sub_id] = slot
    return missed


def missed_reason(
    store: Store, sub: SubscriberConfig, slot: dt.datetime, now: dt.datetime, grace: dt.timedelta
) -> str:
    """Why a missed slot (:func:`missed_slots`) had no digest, and when the next one comes."""
    return (
        f"the {schedule.period(slot)} digest, due {slot.isoformat(timespec='minutes')}, was "
        f"skipped: its time passed more than the grace period ({_hours(grace)} h, "
        "--grace-hours) ago with no paperwire running to send it (stopped, or the machine "
        "asleep); its papers go in the next digest, "
        f"{next_slot(store, sub, now).isoformat(timespec='minutes')}"
    )


def _hours(span: dt.timedelta) -> str:
    return f"{span.total_seconds() / 3600:g}"


def covered(
    slot: dt.datetime, last: tuple[dt.datetime, str] | None, now: dt.datetime
) -> str | None:
    """The period of the reader's last digest (``last``: when it was composed, and its period)
    if it was composed at or after ``slot``, and so covered it: a reader whose time zone moved
    west, or whose digest time moved later, has a latest slot (another date) that passed
    before their last digest went out. None if the slot is newer, or if the digest was
    composed after ``now``: the clock was ahead then (a wrong RTC, a mistyped ``date -s``),
    and once set right every slot until that moment would have been "covered", days without
    a digest and without a word (found in review)."""
    if last is None or last[0] > now + CLOCK_SLACK:
        return None
    return last[1] if slot <= last[0] else None


def next_slot(store: Store, sub: SubscriberConfig, now: dt.datetime) -> dt.datetime:
    """The reader's next digest slot after ``now`` that is not handled already: after their
    time zone or digest time changed, the next slot of the new schedule may fall on a date
    whose digest went out."""
    slot = schedule.next_slot(sub, now)
    for _ in range(8):
        if not store.handled(sub.id, "digest", schedule.period(slot)):
            break
        slot = schedule.next_slot(sub, slot)
    return slot


def send_due(
    store: Store,
    config: Config,
    *,
    now: dt.datetime,
    subscriber_id: str | None = None,
    grace: dt.timedelta = DEFAULT_GRACE,
    first_reach: dt.timedelta | None = None,
    first_after: Mapping[str, dt.datetime] | None = None,
    outbox: Path | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[SendLine], None] | None = None,
    session: RankingSession | None = None,
    stalled: set[str] | None = None,
) -> SendReport:
    """Deliver every due digest exactly once: first what a crash or outage left pending (and
    no live run holds), then each subscriber whose latest digest slot has no ledger entry yet.

    The run holds what it sends (a lease renewed while it lasts) and lets go of what is left
    when it ends, so a concurrent ``send`` never touches it and the next run resumes it.
    ``stalled``: the webhook hosts an earlier part of the same run waited out
    (:func:`~paperwire.deliver.dispatch.deliver_jobs`)."""
    report = SendReport()
    resume_if_relay_changed(store, config)
    subs, skipped = active_subscribers(store, config, subscriber_id)
    report.lines.extend(skipped)
    # Each digest's reader starts their next window at ``now``: a fetch that stamped papers
    # before it (it holds the write lock when it stamps) must be written before we read, or
    # its papers fall between this window and the next
    store.settle()
    with store.holding() as claim:
        jobs = _due_jobs(
            store,
            config,
            report,
            subs,
            claim,
            now=now,
            grace=grace,
            first_reach=first_reach,
            first_after=first_after,
            only=subscriber_id,
            session=session,
        )
        if jobs:
            report.lines.extend(
                deliver_jobs(
                    store,
                    config,
                    jobs,
                    outbox=outbox,
                    now=now,
                    stop=stop,
                    progress=progress,
                    stalled=stalled,
                )
            )
    # what /healthz shows: a relay refusing every login sends nothing and fails nothing, and
    # a monitor reading only those two said all was well while no e-mail went out
    counts = {status: report.count(status) for status in ("sent", "failed", "retry", "waiting")}
    store.log_event("send", counts)
    return report


NOTHING_STORED = "no papers stored yet: run paperwire fetch; the digest stays due"


def _due_jobs(
    store: Store,
    config: Config,
    report: SendReport,
    subs: list[SubscriberConfig],
    claim: str,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    first_reach: dt.timedelta | None,
    first_after: Mapping[str, dt.datetime] | None,
    only: str | None,
    session: RankingSession | None,
) -> list[Job]:
    """The ledger entries this run is to deliver, claimed for it: pending ones nobody holds,
    then a new one per due digest. Lines for subscribers with nothing to send go to ``report``."""
    from . import digests  # SciPy only when ranking is needed
    from .paper import Pick

    by_id = {s.id: s for s in subs}
    jobs: list[Job] = []
    resumed: set[tuple[str, str]] = set()
    # pending rows whose holder is gone (a crash, an outage); those a live run holds are its own
    for row in store.claim_unsent(claim, only, run_time=now):
        sub = by_id.get(row["subscriber_id"])
        if sub is None:
            continue
        listed = store.delivery_papers(row["id"])
        papers = store.papers(p["paper_id"] for p in listed)
        picks = [
            Pick(
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
                since=dt.datetime.fromisoformat(row["since"]) if row.get("since") else None,
                parts_sent=row["parts_sent"] or 0,
                maybe_sent=row["maybe_sent"] or 0,
                tries=row["attempts"] or 0,
                composed=dt.datetime.fromisoformat(row["created"]) if row.get("created") else None,
            )
        )
        resumed.add((sub.id, row["period"]))

    # maybe delivered and waiting out their back-off: said, not sent again yet
    waiting = {
        (row["subscriber_id"], row["period"]): row["error"]
        for row in store.unsent_deliveries(only)
        if row["kind"] == "digest" and row["retry_at"] and row["retry_at"] > iso(now)
    }
    slots = digest_slots(store, subs, now, grace, first_reach, first_after)
    # what the ledger already holds for those slots, in one query: the daemon asks every tick
    recorded = store.recorded("digest", {schedule.period(t) for t in slots.values() if t})
    # a slot is handled once its digest was composed for any channel: the rows of all the
    # reader's channels are opened at once (below), so a channel without one was added since
    handled = {(sub_id, period) for sub_id, period, _ in recorded}
    last_composed = store.last_composed(
        s.id for s in subs if (t := slots[s.id]) and (s.id, schedule.period(t)) not in handled
    )
    due: dict[str, tuple[str, list[str]]] = {}
    for sub in subs:
        slot = slots[sub.id]
        if slot is None:
            # a digest waiting out its back-off may be for a slot the grace period has passed
            # since (a first try late in it): still due, and said so, as status says it
            # (and one resumed now is reported by its send, not as not due)
            held = [period for s, period in waiting if s == sub.id]
            if held:
                report.lines.append(SendLine(sub.id, "waiting", waiting[sub.id, max(held)]))
            elif not any(s == sub.id for s, _ in resumed):
                # when it is due, as `status` says it ("no slot in the grace period" told a
                # first-day user nothing)
                upcoming = next_slot(store, sub, now).isoformat(timespec="minutes")
                report.lines.append(SendLine(sub.id, "not-due", f"next digest {upcoming}"))
            continue
        period = schedule.period(slot)
        last = covered(slot, last_composed.get(sub.id), now)
        if (sub.id, period) not in handled and last:
            report.lines.append(
                SendLine(sub.id, "not-due", f"the {period} slot came before the {last} digest")
            )
        elif (sub.id, period) not in handled:
            due[sub.id] = (period, channel_ids(sub))
        elif (sub.id, period) in waiting:
            report.lines.append(SendLine(sub.id, "waiting", waiting[sub.id, period]))
        elif (sub.id, period) not in resumed:
            report.lines.append(SendLine(sub.id, "not-due", _handled(sub, period, recorded)))

    if due and not store.count_papers():
        # send before the first fetch: a slot spent on an empty store would hold the reader's
        # first digest until the next one ("already handled" after the fetch)
        for sub_id in due:
            report.lines.append(SendLine(sub_id, "nothing-new", NOTHING_STORED))
        return jobs
    if due:
        composed_by_id = digests.compose(
            store, config, [by_id[s] for s in due], now=now, session=session
        )
        if config.summariser.enabled:  # TL;DRs for picks without one; never fails
            from .render.summarise import summarise_picks

            picks = [p for d in composed_by_id.values() for p in d.picks]
            try:
                summarise_picks(store, config.summariser, picks, now=now)
            except Exception:  # a TL;DR is a nicety: whatever broke, the digests go out
                log.exception("summariser failed; the digests go out with their abstracts")
        domain = email_mod.domain_of(config.sender.from_address)
        for sub_id, (period, channels) in due.items():
            composed = composed_by_id[sub_id]
            if not composed.picks:
                detail = composed.why_empty()
                # one line, the report's: the daemon logs it, send and run --once print it
                report.lines.append(SendLine(sub_id, "nothing-new", detail))
                with store.atomic():  # reported once; the next slot takes what comes
                    for channel in channels:
                        store.record_empty(
                            sub_id, "digest", period, channel, reason=detail, now=now
                        )
                continue
            # every channel's row in one transaction: a crash never leaves a channel of this
            # digest without one, which would read as a channel added after it went out
            with store.atomic():
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


def _handled(sub: SubscriberConfig, period: str, recorded: set[tuple[str, str, str]]) -> str:
    """Why a reader's slot is not due: its digest was composed already; a channel added
    after that starts with the next digest (the papers went out on the others)."""
    added = [c for c in channel_ids(sub) if (sub.id, period, c) not in recorded]
    if not added:
        return f"digest for {period} already handled"
    return (
        f"digest for {period} already handled; {', '.join(added)} added since, "
        "from the next digest on"
    )


def send_alerts(
    store: Store,
    config: Config,
    *,
    now: dt.datetime,
    outbox: Path | None = None,
    stop: threading.Event | None = None,
    session: RankingSession | None = None,
    stalled: set[str] | None = None,
) -> SendReport:
    """Send each instant alert due after a fetch, through the same ledger as digests
    (``stalled``: as :func:`send_due`'s)."""
    from .rank.alerts import find_alerts
    from .render.reasons import worded

    report = SendReport()
    resume_if_relay_changed(store, config)
    subs, _ = active_subscribers(store, config)
    domain = email_mod.domain_of(config.sender.from_address)
    jobs: list[Job] = []
    with store.holding() as claim:
        for alert in find_alerts(store, config, subs, now=now, session=session):
            for channel in channel_ids(alert.subscriber):
                # the alert's period is its paper: the ledger admits each alert once
                job = _open_job(
                    store,
                    alert.subscriber,
                    "alert",
                    alert.pick.paper_id,
                    channel,
                    [worded(alert.pick)],
                    claim=claim,
                    domain=domain,
                    now=now,
                )
                if job is not None:
                    jobs.append(job)
        if jobs:
            report.lines.extend(
                deliver_jobs(
                    store, config, jobs, outbox=outbox, now=now, stop=stop, stalled=stalled
                )
            )
    return report


def import_library(
    store: Store, config: Config, subscriber_id: str, path: Path
) -> tuple[ImportReport, int]:
    """Import a reader's library file (BibTeX, CSL JSON, RIS or a list of ids) as their seed
    papers, looking entries up on the arXiv API as the config says; the report and how many
    entries the file held."""
    from .sources import library

    entries = library.read_library(path)
    report = library.import_seeds(
        store,
        subscriber_id,
        entries,
        api_url=config.arxiv_api_url,
        origin=path.name,
        timeout=config.fetch_timeout_seconds,
    )
    return report, len(entries)


def run_once(
    store: Store,
    config: Config,
    *,
    now: Callable[[], dt.datetime],
    base_dir: Path | None = None,
    grace: dt.timedelta = DEFAULT_GRACE,
    outbox: Path | None = None,
    first_reach: dt.timedelta | None = None,
) -> tuple[FetchReport, SendReport]:
    """One cycle, as ``paperwire run --once`` does it: fetch, the instant alerts, then the
    digests that are due (``now``: the clock, read at each step). One ranking session for the
    whole cycle: the model is loaded once. The report's lines are the alerts', then the
    digests'."""
    # the key links are signed with: a new one is said now, not at the first link signed
    signer_for(config, store)
    session = RankingSession()
    fetched = fetch_all(store, config, base_dir=base_dir, session=session)
    # a webhook host the alerts waited out is not waited for again by the digests: one run
    stalled: set[str] = set()
    alerts = send_alerts(store, config, now=now(), outbox=outbox, session=session, stalled=stalled)
    report = send_due(
        store,
        config,
        now=now(),
        grace=grace,
        outbox=outbox,
        first_reach=first_reach,
        session=session,
        stalled=stalled,
    )
    report.lines[:0] = alerts.lines
    return fetched, report


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
    if it was already recorded (by an earlier run or a concurrent sender), or, for an alert,
    if a digest holds its paper.

    A paper goes to a reader once, as an alert or in a digest: a `send` composing digests
    while `run --once` (or the daemon) opened alerts mailed one paper both ways (found in
    review). Each side looks at the other's rows in the transaction that writes its own, and
    write transactions take turns: a digest leaves out the papers alerted before it, an
    alert is not opened for a paper a digest took first."""
    # a digest's Message-ID names its date; an alert's (whose period is a paper id) today's
    dated = now.date().isoformat() if kind == "alert" else period
    message_id = email_mod.make_message_id(kind, sub.id, dated, domain)
    with store.atomic():
        if kind == "alert" and store.in_a_digest(sub.id, period):
            return None
        if kind == "digest":
            alerted = store.alerted(sub.id, [p.paper_id for p in picks])
            picks = [p for p in picks if p.paper_id not in alerted]
            if not picks:  # every pick went out as an alert: the next run composes again
                return None
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
            since=since,
        )
    if delivery_id is None:
        return None
    return Job(delivery_id, sub, kind, period, channel, message_id, picks, since, composed=now)


def _content_hash(picks: list[Pick]) -> str:
    return hashlib.sha256("\n".join(p.paper_id for p in picks).encode()).hexdigest()[:16]


# -- status ------------------------------------------------------------------------------------


@dataclass
class ChannelStatus:
    """One channel of a reader, as ``paperwire status`` shows it: its latest ledger row, and
    every row still open (pending, or failed since the channel last delivered)."""

    channel: str
    last: dict[str, Any]
    open: list[dict[str, Any]]


def channel_status(store: Store, sub: SubscriberConfig, history: int = 200) -> list[ChannelStatus]:
    """Each channel of a reader that the ledger has rows for: the configured ones first, in
    config order, then any the config no longer names."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in store.deliveries(sub.id, limit=history):  # newest first
        if row["state"] != "empty":
            rows.setdefault(row["channel"], []).append(row)
    configured = channel_ids(sub)
    order = [c for c in configured if c in rows] + [c for c in rows if c not in configured]
    out = []
    for channel in order:
        newest = rows[channel]
        since_sent = next((i for i, r in enumerate(newest) if r["state"] == "sent"), len(newest))
        still_open = [r for r in newest[:since_sent] if r["state"] in ("pending", "failed")]
        still_open += [r for r in newest[since_sent:] if r["state"] == "pending"]
        out.append(ChannelStatus(channel, newest[0], still_open))
    return out


def last_digest_state(store: Store, sub: SubscriberConfig) -> dict[str, Any] | None:
    """The reader's latest digest over all its channels: its period, and the worst state of
    any channel (failed, then pending, then sent; empty when it had nothing to send) with that
    channel's reason."""
    last = store.last_delivery(sub.id)
    if last is None:
        return None
    rows = [r for r in store.deliveries(sub.id, limit=200) if r["kind"] == "digest"]
    same = [r for r in rows if r["period"] == last["period"]] or [last]
    for state in ("failed", "pending", "sent", "empty"):
        worst = next((r for r in same if r["state"] == state), None)
        if worst is not None:
            return worst
    return last
