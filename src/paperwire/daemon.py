"""``paperwire run``: one long-running process with the scheduler and the feedback web app.

Jobs (APScheduler 3, in a background thread):

* **fetch** every ``fetch_interval_minutes`` (a thread of its own; a reload that changes it
  reschedules the job): fetch all feeds, then send instant alerts;
* **tick** every ``tick_seconds``: send every digest whose slot has come (each subscriber's
  own time zone, digest time and days), and reload ``subscribers.yaml`` if it changed. A
  reader who never had a digest gets the first at their next slot after the daemon first saw
  them (never at start-up, nor at the reload that adds them); ``send`` and ``run --once`` send
  it at once.

A slow fetch never holds up a tick: digests go out with the papers already stored. Sends (ticks
and alerts) take turns, since they share the ledger; a tick that comes while a send is running
is skipped, so a digest whose minute came during a long send goes out when that send ends.

The scheduler only decides *when to look*; the delivery ledger decides *what is due*, so a
restart, a missed run or a DST change can neither skip nor double a digest. SIGTERM and Ctrl-C
stop new work and new requests, let in-flight sends stop between messages and in-flight
requests finish, join every worker thread, and exit 0 within ``SHUTDOWN_SECONDS``; SIGHUP
reloads the config (an invalid one is reported and the old one kept).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from . import pipeline, schedule
from .config import DEFAULT_CONFIG, DEFAULT_GRACE, Config, load_config
from .errors import PaperwireError
from .links import signer_for
from .rank.session import RankingSession
from .store import Store, utcnow

if TYPE_CHECKING:
    import socket

    import uvicorn

    from .web.app import Guard

log = logging.getLogger("paperwire")

SHUTDOWN_SECONDS = 8.0  # how long in-flight work may take to stop before we exit anyway
WEB_GRACE_SECONDS = 3  # of those, how long in-flight requests may take to finish
CLOCK_STEP_SECONDS = 2.0  # a wall clock set back by more than this moves the jobs back with it
BLAS_THREADS = 1  # ranking runs beside the web app on a small machine; no BLAS thread pools


class ConfigHolder:
    """The current config; a reload that fails validation keeps the old one."""

    def __init__(self, path: str | None, loader: Callable[[str | None], Config] = load_config):
        self.path = path
        self._loader = loader
        self._lock = threading.Lock()
        self.config = self._load()
        self._mtime = self._stat()
        # called with each config a reload puts in use (the daemon's fetch interval follows it)
        self.listeners: list[Callable[[Config], None]] = []

    def _stat(self) -> float | None:
        try:
            return Path(self.path or "subscribers.yaml").stat().st_mtime
        except OSError:
            return None

    def _load(self) -> Config:
        """The config file, read. Without a path, ./subscribers.yaml (else the bundled example,
        the demo's): once it was read, reloads read it, so a moment without it (moved aside,
        replaced by a deploy) is a failed reload, never the bundled example's readers."""
        if self.path is not None or not Path(DEFAULT_CONFIG).exists():
            return self._loader(self.path)
        config = self._loader(DEFAULT_CONFIG)
        self.path = DEFAULT_CONFIG
        return config

    def get(self) -> Config:
        return self.config

    def reload(self, reason: str = "SIGHUP") -> bool:
        """Re-read the file; returns True if the new config is now in use."""
        with self._lock:
            return self._reload(reason)

    def _reload(self, reason: str) -> bool:
        self._mtime = self._stat()
        try:
            new = self._load()
        except PaperwireError as exc:
            log.error("config reload (%s) failed, keeping the old config: %s", reason, exc)
            return False
        self.config = new
        log.info(
            "config reloaded (%s): %d feeds, %d subscribers",
            reason,
            len(new.feeds),
            len(new.subscribers),
        )
        for listener in self.listeners:
            listener(new)
        return True

    def reload_if_changed(self) -> None:
        if self._stat() != self._mtime:
            with self._lock:  # two callers that saw the change: one reload
                if self._stat() != self._mtime:
                    self._reload("file changed")

    def current(self) -> Config:
        """The config, read again first if its file changed: for callers with no tick of their
        own (``paperwire serve``'s requests), so a reader added or removed since the start
        is known to the next request."""
        self.reload_if_changed()
        return self.config


class Daemon:
    """Scheduler + web app + signal handling, around the same library calls the CLI makes."""

    def __init__(
        self,
        holder: ConfigHolder,
        db_path: str | os.PathLike,
        *,
        base_dir: Path,
        outbox: Path,
        web: tuple[str, int] | None = ("127.0.0.1", 8000),
        listening: socket.socket | None = None,
        tick_seconds: float = 30.0,
        grace: dt.timedelta = DEFAULT_GRACE,
        clock: Callable[[], dt.datetime] = utcnow,
    ):
        self.holder = holder
        self.db_path = Path(db_path)
        self.base_dir = base_dir
        self.outbox = outbox
        self.web = web
        # the web app's socket, bound and listening before anything started (``paperwire run``
        # refuses a port in use in one line, as ``serve`` does); without it uvicorn binds ``web``
        self.listening = listening
        self.tick_seconds = tick_seconds
        self.grace = grace
        self.clock = clock
        self.stopping = threading.Event()
        self._sending = threading.Lock()  # one send (digests or alerts) at a time: the ledger
        self._fetching = threading.Lock()  # held while a fetch job runs (its own thread)
        self._running = 0  # jobs in progress; shutdown waits for none (or exits without them)
        self._idle = threading.Condition()
        self._scheduler: BackgroundScheduler | None = None
        self._server: uvicorn.Server | None = None
        self._app: Guard | None = None
        # when this process first saw each reader: one who never had a digest gets the first at
        # their next slot after it, never at start-up or at a reload that adds them
        self._first_seen: dict[str, dt.datetime] = {}
        # each reader's latest slot past the grace period that a tick looked at (its period):
        # a missed digest is said once, and each slot looked up once, not every tick
        self._late_seen: dict[str, str] = {}
        # the embedding model and the corpus, kept for the daemon's life: a tick whose store has
        # not changed ranks without reloading or recomputing either
        self.ranking = RankingSession()

    # -- jobs ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _job(self) -> Iterator[None]:
        with self._idle:
            self._running += 1
        try:
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def fetch_job(self) -> None:
        with self._job():
            self._fetch()

    def _fetch(self) -> None:
        if self.stopping.is_set():
            return
        with self._fetching, self._store("fetch") as store:
            if store is None:
                return
            config = self.holder.get()
            try:
                # Without the send lock: ticks go on sending with the papers already stored.
                report = pipeline.fetch_all(
                    store, config, base_dir=self.base_dir, stop=self.stopping, session=self.ranking
                )
                if report.new or report.errors:
                    log.info("fetch: %d new papers, %d feed errors", report.new, report.errors)
                if self.stopping.is_set():
                    return
                with self._sending:
                    if self.stopping.is_set():  # it came while this job waited for the lock
                        return
                    alerts = pipeline.send_alerts(
                        store,
                        config,
                        now=self.clock(),
                        outbox=self.outbox,
                        stop=self.stopping,
                        session=self.ranking,
                    )
                _log_lines(alerts)
            except PaperwireError as exc:
                log.error("fetch job failed: %s", exc)

    @contextlib.contextmanager
    def _store(self, job: str) -> Iterator[Store | None]:
        """The store, or None when it cannot be opened (the disk full, the file damaged): one
        line, as the job's other failures, not a traceback from the scheduler every tick."""
        try:
            store = Store(self.db_path)
        except PaperwireError as exc:
            log.error("%s job failed: %s", job, exc)
            yield None
            return
        with store:
            yield store

    def tick_job(self) -> None:
        with self._job():
            self._tick()

    def _tick(self) -> None:
        if self.stopping.is_set():
            return
        self.holder.reload_if_changed()
        # a reader's first digest comes at their next slot after this tick saw them in the
        # config: seen now, not once the lock below is had (a fetch encoding new papers can hold
        # the store for many seconds, and a slot that passed meanwhile would wait a whole day)
        seen = self.clock()
        for sub in self.holder.get().subscribers:
            self._first_seen.setdefault(sub.id, seen)
        with self._sending, self._store("send") as store:
            if store is None or self.stopping.is_set():  # stopping came while this job waited
                return
            try:
                config, now = self.holder.get(), self.clock()
                for sub in config.subscribers:  # one a reload added while this tick waited
                    self._first_seen.setdefault(sub.id, now)
                report = pipeline.send_due(
                    store,
                    config,
                    now=now,
                    grace=self.grace,
                    first_after=self._first_seen,
                    outbox=self.outbox,
                    stop=self.stopping,
                    session=self.ranking,
                )
                _log_lines(report)
                self._tell_missed(store, config, now)
            except PaperwireError as exc:
                log.error("send job failed: %s", exc)

    def _tell_missed(self, store: Store, config: Config, now: dt.datetime) -> None:
        """One line for each reader whose latest digest was skipped, its slot passed more than
        the grace period ago with no digest (the daemon down, the machine asleep): said once
        per slot. It was skipped without a word, in the log and in ``status`` alike."""
        subs, _ = pipeline.active_subscribers(store, config)
        late = {
            sub_id: slot
            for sub_id, slot in pipeline.late_slots(subs, now, self.grace).items()
            if self._late_seen.get(sub_id) != schedule.period(slot)
        }
        self._late_seen.update((sub_id, schedule.period(t)) for sub_id, t in late.items())
        by_id = {s.id: s for s in subs}
        for sub_id, slot in pipeline.missed_slots(store, late, now, self._first_seen).items():
            reason = pipeline.missed_reason(store, by_id[sub_id], slot, now, self.grace)
            log.warning("digest %s: missed (%s)", sub_id, reason)

    # -- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM / SIGINT; returns the exit status."""
        from threadpoolctl import threadpool_limits

        # BLAS pools of their own would fight the web app's threads for the cores, and a BLAS
        # thread still working when the interpreter tears down has crashed the process.
        with threadpool_limits(limits=BLAS_THREADS):
            return self._run()

    def _run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(
                signal.SIGHUP, lambda *_: threading.Thread(target=self.holder.reload).start()
            )
        _import_before_threads(web=bool(self.web))
        running = _claim_store(self.db_path)  # held (its lock) while this process lives
        with Store(self.db_path) as store:  # a new signing key is said at start-up
            signer_for(self.holder.get(), store)
        scheduler = self.schedule(dt.datetime.now(dt.UTC))
        scheduler.start()
        web_thread = self._start_web(*self.web) if self.web else None
        log.info(
            "paperwire running: fetch every %d min, digests checked every %gs%s",
            self._fetch_minutes(),
            self.tick_seconds,
            f", web app on http://{self.web[0]}:{self.web[1]}" if self.web else "",
        )
        offset = time.time() - time.monotonic()  # the wall clock against the monotonic one
        while not self.stopping.wait(0.5):
            offset, was = time.time() - time.monotonic(), offset
            if was - offset > CLOCK_STEP_SECONDS:
                self._clock_went_back(dt.timedelta(seconds=was - offset))
        log.info("stopping: no new work; in-flight sends stop between messages")
        if running is not None:
            running.close()
        deadline = time.monotonic() + SHUTDOWN_SECONDS

        def left() -> float:
            return max(deadline - time.monotonic(), 0.0)

        scheduler.shutdown(wait=False)
        clean = True
        if self._server is not None and web_thread is not None:
            # Stop accepting; requests in flight get WEB_GRACE_SECONDS, then are cancelled.
            self._server.should_exit = True
            web_thread.join(timeout=min(WEB_GRACE_SECONDS + 1, left()))
            clean &= not web_thread.is_alive()
        if self._app is not None:
            clean &= self._app.close(timeout=min(2.0, left()))
        # The jobs in progress see `stopping` between feeds and between messages.
        with self._idle:
            if not self._idle.wait_for(lambda: self._running == 0, timeout=left()):
                clean = False
                log.warning(
                    "%s still running at shutdown; what it had not finished resumes on restart",
                    " and ".join(
                        name
                        for name, lock in (("a send", self._sending), ("a fetch", self._fetching))
                        if lock.locked()
                    )
                    or "a job",
                )
        log.info("stopped")
        if not clean:
            # A thread still inside a download or native code would keep the interpreter from
            # exiting, or crash it as it tears down; the ledger makes stopping here safe.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return 0

    def schedule(self, now: dt.datetime) -> BackgroundScheduler:
        """The scheduler with the fetch job (first at ``now``) and the tick job, not started;
        from now on a reloaded config's ``fetch_interval_minutes`` reschedules the fetch job."""
        scheduler = self._scheduler = BackgroundScheduler(
            # A fetch has a thread of its own, so a slow feed never holds up a tick.
            executors={"default": ThreadPoolExecutor(1), "fetch": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.UTC,
        )
        scheduler.add_job(
            self.fetch_job,
            "interval",
            minutes=self.holder.get().fetch_interval_minutes,
            id="fetch",
            next_run_time=now,
            executor="fetch",
        )
        scheduler.add_job(
            self.tick_job,
            "interval",
            seconds=self.tick_seconds,
            id="tick",
            next_run_time=now + dt.timedelta(seconds=1),
        )
        self.holder.listeners.append(self._follow_interval)
        logging.getLogger("apscheduler.scheduler").addFilter(_quiet_tick_skips)
        return scheduler

    def _follow_interval(self, config: Config) -> None:
        """Reschedule the fetch job when a reloaded config changed its interval: the next fetch
        comes one new interval after the reload."""
        interval = config.fetch_interval_minutes
        if self._scheduler is None or interval == (was := self._fetch_minutes()):
            return
        job = self._scheduler.reschedule_job("fetch", trigger="interval", minutes=interval)
        log.info(
            "fetch interval now %d min (was %d); next fetch at %s",
            interval,
            was,
            job.next_run_time.isoformat(timespec="seconds") if job.next_run_time else "(paused)",
        )

    def _clock_went_back(self, by: dt.timedelta) -> None:
        """Move the jobs' next runs back with the wall clock. The scheduler waits for them on
        the monotonic clock: after the clock was set back an hour, no tick and no fetch came
        for that hour, even once the clock was set right again."""
        assert self._scheduler is not None
        for job in self._scheduler.get_jobs():
            if job.next_run_time is not None:
                job.modify(next_run_time=job.next_run_time - by)
        log.warning(
            "the clock went back by %s; the next fetch and digest check moved back with it",
            dt.timedelta(seconds=round(by.total_seconds())),
        )

    def _fetch_minutes(self) -> float:
        """The fetch job's interval as scheduled (its trigger's own, not a copy of it)."""
        assert self._scheduler is not None
        return self._scheduler.get_job("fetch").trigger.interval.total_seconds() / 60

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping.set()

    def _start_web(self, host: str, port: int) -> threading.Thread:
        import uvicorn

        from .web.app import create_app

        app = create_app(self.holder.get, self.db_path, session=self.ranking)
        self._app = app
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            # uvicorn's lines go through our handlers (one format, JSON with --log-json, redacted),
            # not a handler and format of its own
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=WEB_GRACE_SECONDS,
        )
        server = self._server = uvicorn.Server(config)
        # Signals are ours: uvicorn only installs handlers in the main thread.
        sockets = [self.listening] if self.listening is not None else None
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": sockets}, name="web", daemon=True
        )
        thread.start()
        return thread


def _quiet_tick_skips(record: logging.LogRecord) -> bool:
    """Leave out APScheduler's warning for each tick that came while the last one still ran
    (it waits for a send, or for the database): by design, the next tick sends what is due, and
    a long send logged one such WARNING a tick. A fetch that outlasts its interval still warns."""
    job = record.args[0] if isinstance(record.args, tuple) and record.args else None
    return not (
        "maximum number of running instances" in str(record.msg)
        and getattr(job, "id", None) == "tick"
    )


def _import_before_threads(web: bool) -> None:
    """Import what the daemon's threads import, here, before they start. Two threads importing
    the ranking stack (scikit-learn then, SciPy now) for the first time at once (the first
    fetch analysing papers, the web app ranking) can each find the other's half-made module
    and fail with "cannot import name ... from partially initialized module" (seen in CI)."""
    from .rank import compose, terms  # noqa: F401  (SciPy, NumPy, ONNX Runtime)

    if web:
        import uvicorn  # noqa: F401

        from .web import app  # noqa: F401


def _log_lines(report: pipeline.SendReport) -> None:
    for line in report.lines:
        if line.status in ("sent", "failed", "retry", "nothing-new"):
            level = logging.INFO if line.status in ("sent", "nothing-new") else logging.WARNING
            log.log(
                level,
                "%s %s: %s%s",
                line.kind,
                line.subscriber_id,
                line.status,
                f" ({line.detail})" if line.detail else "",
            )


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (``--log-json``)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # the traceback, as the plain format prints it (redacted by the handler's filter)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def _claim_store(db_path: Path) -> IO[str] | None:
    """Lock ``<database>.run.lock`` for this daemon's life. Two daemons on one store share the
    work safely (the ledger's claims), but each fetches every feed and nothing said so: the
    second says which process holds the store, once, runs on, and holds it once the first stops."""
    try:
        import fcntl  # not on Windows: no claim there
    except ImportError:
        return None
    lock = db_path.with_name(db_path.name + ".run.lock")
    try:
        held = lock.open("a+", encoding="utf-8")
    except OSError:  # a read-only folder: the store is read-only too, and says so itself
        return None
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        held.seek(0)
        other = held.read().strip() or "another process"
        log.warning(
            "another paperwire run (%s) is running on %s: both send (the ledger shares the "
            "digests out, none twice), and both fetch every feed; stop one unless that is meant",
            other,
            db_path,
        )
        # once the other stops, this one holds the store: a daemon started after that says so
        # (it would say nothing, and name no process, while this one ran on without the lock)
        threading.Thread(
            target=_hold_when_free, args=(held,), name="store-lock", daemon=True
        ).start()
        return held
    _write_holder(held)
    return held


def _hold_when_free(held: IO[str]) -> None:
    import fcntl

    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # waits for the other process to let go
        _write_holder(held)
    except (OSError, ValueError):  # the file closed as this process ends
        return


def _write_holder(held: IO[str]) -> None:
    held.seek(0)
    held.truncate()
    held.write(f"pid {os.getpid()} on {socket.gethostname()}")
    held.flush()
