"""``paperwire run`` as a real process: a local feed server, a real SMTP server, real signals."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import FIXTURES, Route, environ_without_paperwire, fetch_here, free_port

# a config of one e-mail reader and no feeds: the daemon runs, with nothing to fetch
ONE_READER = "feeds: []\nsubscribers:\n  - {id: ada, email: ada@example.org}\n"


def wait_for(predicate, timeout: float = 30.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def start(tmp_path: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    with open(tmp_path / "daemon.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paperwire",
                "run",
                "--tick",
                "0.5",
                "--port",
                str(port),
                "--log-json",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, float]:
    began = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout=15)
    return code, time.monotonic() - began


def test_daemon_sends_the_digest_once_stops_cleanly_and_does_not_resend(
    tmp_path, http_server, smtp_server
):
    from zoneinfo import ZoneInfo

    http_server.routes["/rss/cs"] = Route((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), etag='"1"')
    berlin = ZoneInfo("Europe/Berlin")
    # after start-up has seen the reader (imports and the encoder: seconds on a loaded machine;
    # a reader who never had a digest gets the first at their next slot after that)
    due = (dt.datetime.now(berlin) + dt.timedelta(seconds=8)).replace(microsecond=0)
    (tmp_path / "subscribers.yaml").write_text(
        f"feeds:\n  - url: {http_server.url('/rss/cs')}\n    name: arxiv-cs\n"
        "subscribers:\n"
        '  - id: ada\n    email: ada@example.org\n    interests: "language models"\n'
        f'    timezone: Europe/Berlin\n    digest_time: "{due.strftime("%H:%M:%S")}"\n'
        "    digest_days: daily\n    digest_size: 3\n"
    )
    env = environ_without_paperwire()
    env.update(PAPERWIRE_SMTP_URL=smtp_server.url, PAPERWIRE_SECRET="s3cret-signing-key-4711")
    port = free_port()
    proc = start(tmp_path, env, port)
    try:
        assert wait_for(lambda: len(smtp_server.messages) >= 1, timeout=40), (
            tmp_path / "daemon.log"
        ).read_text()
        assert dt.datetime.now(berlin) >= due  # not before its time
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health["last_fetch"] and health["last_send"]
        time.sleep(2)  # several more ticks: nothing more goes out
        assert len(smtp_server.messages) == 1
        # SIGHUP with a broken config: reported, the old one kept, still serving
        config_text = (tmp_path / "subscribers.yaml").read_text()
        (tmp_path / "subscribers.yaml").write_text("subscribers:\n  - id: 'bad id'\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(
            lambda: "config reload" in (tmp_path / "daemon.log").read_text(), timeout=10
        )
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        (tmp_path / "subscribers.yaml").write_text(config_text)
    finally:
        code, took = stop(proc)
    assert code == 0
    assert took < 10
    log = (tmp_path / "daemon.log").read_text()
    assert (
        '"message": "config reload (SIGHUP) failed, keeping the old config: subscribers.yaml:2: '
        in log
    )
    assert "digest ada: sent" in log
    assert all(line.startswith('{"time": ') for line in log.splitlines())  # --log-json
    assert "s3cret-signing-key-4711" not in log and smtp_server.url not in log

    # restart: the ledger, not the scheduler's memory, decides: no second digest
    proc = start(tmp_path, env, port)
    try:
        assert wait_for(
            lambda: (
                "paperwire running" in (tmp_path / "daemon.log").read_text().split("stopped")[-1]
            ),
            timeout=20,
        )
        time.sleep(3)
        assert len(smtp_server.messages) == 1
        assert any(
            m == "GET" and h.get("If-None-Match") == '"1"' for m, _, h, _ in http_server.requests
        )
    finally:
        code, _ = stop(proc, signal.SIGINT)
    assert code == 0


# -- SIGTERM at any moment ------------------------------------------------------------------


class DripServer:
    """A feed server that sends its headers, then one byte every ``every`` seconds, forever:
    each read succeeds, so only an overall deadline (or a stop) ends the download."""

    def __init__(self, every: float = 1.0):
        import socket
        import threading

        self.every = every
        self.requests = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/drip.xml"

    def _accept(self) -> None:
        import threading

        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn) -> None:
        with conn:
            try:
                conn.recv(65536)
                self.requests += 1
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                    b"Content-Length: 100000000\r\n\r\n<"
                )
                while not self._stop.wait(self.every):
                    conn.sendall(b" ")
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


def _config(tmp_path: Path, feeds: list[str], *, due: str = "00:00:00") -> None:
    lines = ["feeds:"] + [f"  - url: {url}" for url in feeds]
    lines += [
        "subscribers:",
        '  - id: ada\n    email: ada@example.org\n    interests: "language models"',
        f'    timezone: UTC\n    digest_time: "{due}"\n    digest_days: daily\n    digest_size: 3',
    ]
    (tmp_path / "subscribers.yaml").write_text("\n".join(lines) + "\n")


def _env(smtp_server) -> dict[str, str]:
    env = environ_without_paperwire()
    env.update(PAPERWIRE_SMTP_URL=smtp_server.url, PAPERWIRE_SECRET="s3cret-signing-key-4711")
    return env


def _answers(url: str) -> dict:
    try:
        return httpx.get(url, timeout=5).json()
    except httpx.HTTPError:
        return {}


def _no_crash(log: str) -> None:
    assert "Traceback" not in log and "Fatal Python error" not in log, log[-3000:]


def test_sigterm_while_serving_concurrent_requests_exits_0(tmp_path, http_server, smtp_server):
    import threading

    from paperwire.links import Signer

    http_server.routes["/rss/cs"] = Route((FIXTURES / "arxiv_rss_cs.xml").read_bytes())
    _config(tmp_path, [http_server.url("/rss/cs")])
    port = free_port()
    proc = start(tmp_path, _env(smtp_server), port)
    signer = Signer("s3cret-signing-key-4711")
    base = f"http://127.0.0.1:{port}"
    answers: list[int | str] = []
    stop_load = threading.Event()
    try:
        assert wait_for(lambda: _answers(f"{base}/healthz"), timeout=30)
        assert wait_for(lambda: _answers(f"{base}/healthz").get("last_fetch"), timeout=30)
        from paperwire.store import Store

        with Store(tmp_path / "paperwire.db") as store:
            papers = [p["paper_id"] for p in store.corpus()][:20]
        assert papers
        paths = [f"/profile/{signer.subscriber_token('profile', 'ada')}", "/healthz"]
        paths += [f"/v/{signer.vote_token('ada', p, 'up')}" for p in papers]

        def clicker(k: int) -> None:
            with httpx.Client(base_url=base, timeout=20) as client:
                i = k
                while not stop_load.is_set():
                    path = paths[i % len(paths)]
                    i += 1
                    try:
                        if path.startswith("/v/") and i % 2:
                            answers.append(client.post(path).status_code)
                        else:
                            answers.append(client.get(path).status_code)
                    except httpx.HTTPError as exc:
                        answers.append(type(exc).__name__)

        clickers = [threading.Thread(target=clicker, args=(k,)) for k in range(8)]
        for thread in clickers:
            thread.start()
        assert wait_for(lambda: answers.count(200) >= 20, timeout=30)
        code, _ = stop(proc)  # in the middle of the requests
    finally:
        stop_load.set()
        if proc.poll() is None:
            proc.kill()
    for thread in clickers:
        thread.join(30)
    assert code == 0
    assert {a for a in answers if isinstance(a, int)} <= {200, 303, 503}
    log = (tmp_path / "daemon.log").read_text()
    _no_crash(log)
    assert '"message": "stopped"' in log


@pytest.mark.timeout(120)
def test_sigterm_while_a_fetch_drips_exits_0_and_digests_do_not_wait_for_it(
    tmp_path, http_server, smtp_server
):
    http_server.routes["/rss/cs"] = Route((FIXTURES / "arxiv_rss_cs.xml").read_bytes())
    drip = DripServer(every=1.0)
    env = _env(smtp_server)
    try:
        # The papers already stored, from an earlier fetch.
        _config(tmp_path, [http_server.url("/rss/cs")])
        fetch_here(tmp_path)
        # due after the daemon has started and seen the reader (a reader who never had a
        # digest gets the first at their next slot after that): start-up, with the encoder,
        # can take several seconds on a loaded machine
        due = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12)).strftime("%H:%M:%S")
        _config(tmp_path, [drip.url(), http_server.url("/rss/cs")], due=due)
        proc = start(tmp_path, env, free_port())
        try:
            assert wait_for(lambda: drip.requests >= 1, timeout=30)
            # The fetch is stuck on the drip feed; the due digest goes out anyway.
            assert wait_for(lambda: len(smtp_server.messages) == 1, timeout=50), (
                tmp_path / "daemon.log"
            ).read_text()
            assert proc.poll() is None
            code, _ = stop(proc)  # while the download still drips
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        drip.close()
    assert code == 0
    log = (tmp_path / "daemon.log").read_text()
    _no_crash(log)
    assert '"message": "stopped"' in log


def test_the_daemon_sends_a_new_readers_first_digest_at_their_next_slot_not_at_start_up(
    tmp_path, smtp_server
):
    """README: "the daemon waits for the reader's next slot". It sent a new reader's digest at
    start-up whenever their slot was less than 12 hours old. A reader who had digests before
    still gets a slot missed while the daemon was down (within the grace period)."""
    from paperwire import pipeline
    from paperwire.config import load_config
    from paperwire.paper import Paper
    from paperwire.store import Store

    earlier = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%H:%M:%S")
    (tmp_path / "subscribers.yaml").write_text(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n"
        + "".join(
            f'  - id: {sid}\n    email: {sid}@example.org\n    interests: "language models"\n'
            f'    timezone: UTC\n    digest_time: "{earlier}"\n    digest_days: daily\n'
            "    digest_size: 3\n"
            for sid in ("new", "old")
        )
    )
    config = load_config(tmp_path / "subscribers.yaml")
    with Store(tmp_path / "paperwire.db") as store:  # "old" had yesterday's digest
        pipeline.fetch_all(store, config, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
        yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        old = [s for s in config.subscribers if s.id == "old"]
        report = pipeline.send_due(
            store, config.model_copy(update={"subscribers": tuple(old)}), now=yesterday,
            outbox=tmp_path / "outbox",
        )  # fmt: skip
        assert [line.status for line in report.lines] == ["sent"]
        fresh = [
            Paper(f"2612.0000{n}", f"Small language models, study {n}", "Language models.")
            for n in (1, 2)
        ]
        store.add_papers(fresh, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    proc = start(tmp_path, _env(smtp_server), free_port())
    try:
        assert wait_for(lambda: len(smtp_server.messages) >= 1, timeout=30), (
            tmp_path / "daemon.log"
        ).read_text()
        time.sleep(2)  # four more ticks
    finally:
        code, _ = stop(proc)
    assert code == 0
    assert [m["To"] for m in smtp_server.messages] == ["old@example.org"]
    with Store(tmp_path / "paperwire.db") as store:
        assert store.last_delivery("new") is None


def test_a_reload_that_changes_fetch_interval_minutes_reschedules_the_fetch_job(tmp_path, caplog):
    """fetch_interval_minutes was read once at start: after 'config reloaded (file changed)'
    the fetch job kept the old interval."""
    import logging

    config = tmp_path / "subscribers.yaml"
    base = ONE_READER
    config.write_text(base + "fetch_interval_minutes: 60\n")
    daemon = in_process_daemon(tmp_path, config)
    scheduler = daemon.schedule(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    scheduler.start(paused=True)  # no job runs: only the schedule is looked at
    try:
        assert scheduler.get_job("fetch").trigger.interval == dt.timedelta(minutes=60)
        config.write_text(base + "fetch_interval_minutes: 15\n")
        os.utime(config, (time.time() + 5, time.time() + 5))  # a changed mtime, however fast
        with caplog.at_level(logging.INFO, logger="paperwire"):
            daemon.holder.reload_if_changed()
            daemon.holder.reload("SIGHUP")  # the same interval again: nothing to reschedule
        job = scheduler.get_job("fetch")
        assert job.trigger.interval == dt.timedelta(minutes=15)
        assert job.next_run_time <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)
        moved = [r.getMessage() for r in caplog.records if "fetch interval" in r.getMessage()]
        assert len(moved) == 1 and moved[0].startswith("fetch interval now 15 min (was 60)")
    finally:
        scheduler.shutdown(wait=False)


def test_a_new_reader_seen_before_a_long_wait_for_the_store_still_gets_today_s_slot(tmp_path):
    """The daemon's first tick noted when it first saw a reader only once it had the send lock
    and the store: behind a fetch encoding new papers (9 s on a loaded machine) a slot due
    meanwhile counted as before the reader was seen, and their first digest waited a day."""
    import threading

    from paperwire.sources import parse_document
    from paperwire.store import Store

    start = dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)
    config = tmp_path / "subscribers.yaml"
    config.write_text(
        "ranking: {embeddings: off}\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "language models"\n    timezone: UTC\n    digest_time: "07:05"\n'
    )
    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="rss")
    with Store(tmp_path / "pw.db") as store:
        store.add_papers(papers, now=start - dt.timedelta(hours=1))
    now = [start]
    read = threading.Event()

    def clock() -> dt.datetime:
        read.set()
        return now[0]

    daemon = in_process_daemon(tmp_path, config, clock=clock)
    with daemon._sending:  # a fetch's alerts (or a send) hold it
        tick = threading.Thread(target=daemon.tick_job)
        tick.start()
        read.wait(timeout=5)  # the tick saw the reader (before the fix: not until it had the lock)
        now[0] = start + dt.timedelta(minutes=10)  # 07:05 passed while it waited
    tick.join(timeout=30)
    assert [p.name.split("-")[-2] for p in (tmp_path / "outbox").glob("*.eml")] == ["ada"]


def in_process_daemon(tmp_path: Path, config: Path, **options):
    """A daemon in this process on ``config`` (its jobs called by the test; no web app)."""
    from paperwire.daemon import ConfigHolder, Daemon

    return Daemon(
        ConfigHolder(str(config)),
        tmp_path / "pw.db",
        base_dir=tmp_path,
        outbox=tmp_path / "outbox",
        web=None,
        **options,
    )


def test_a_config_file_missing_for_a_moment_keeps_the_config_not_the_bundled_example(
    tmp_path, caplog
):
    """`paperwire run` without --config read ./subscribers.yaml; while the file was gone for a
    moment (moved aside, replaced by a deploy, a checkout), a reload fell back to the bundled
    example: 'config reloaded (file changed): 2 feeds, 3 subscribers', the demo's readers and
    sample feeds in place of the operator's, until the file came back."""
    import logging

    from paperwire.daemon import ConfigHolder

    config = tmp_path / "subscribers.yaml"  # the test runs in tmp_path (conftest: isolated)
    config.write_text("feeds: []\nsubscribers:\n  - {id: zed, email: zed@example.org}\n")
    holder = ConfigHolder(None)
    assert [s.id for s in holder.get().subscribers] == ["zed"]
    config.rename(tmp_path / "moved-aside.yaml")
    with caplog.at_level(logging.ERROR, logger="paperwire"):
        holder.reload_if_changed()
    assert [s.id for s in holder.get().subscribers] == ["zed"]
    assert [r.getMessage() for r in caplog.records] == [
        "config reload (file changed) failed, keeping the old config: subscribers.yaml: "
        "no such config file (see `paperwire --help`)"
    ]
    (tmp_path / "moved-aside.yaml").rename(config)
    config.write_text(config.read_text().replace("zed", "amy"))
    holder.reload_if_changed()
    assert [s.id for s in holder.get().subscribers] == ["amy"]


def test_a_daemon_started_on_the_bundled_example_takes_a_subscribers_yaml_written_later(tmp_path):
    from paperwire.daemon import ConfigHolder

    holder = ConfigHolder(None)  # no ./subscribers.yaml: the demo's readers
    assert "ada" in [s.id for s in holder.get().subscribers]
    (tmp_path / "subscribers.yaml").write_text(
        "feeds: []\nsubscribers:\n  - {id: zed, email: zed@example.org}\n"
    )
    holder.reload_if_changed()
    assert [s.id for s in holder.get().subscribers] == ["zed"]


def test_ticks_that_come_while_a_send_runs_are_skipped_without_a_warning_each(tmp_path, caplog):
    """A tick that comes while a send runs is skipped by design (the digest goes out when the
    send ends), but APScheduler logged each one as a WARNING: 'Execution of job
    "Daemon.tick_job (trigger: interval[0:00:30], ...)" skipped: maximum number of running
    instances reached (1)', every tick of a long send, and every second of a database held
    locked with --tick 1 (64 lines in a minute)."""
    import logging

    config = tmp_path / "subscribers.yaml"
    config.write_text(ONE_READER)
    daemon = in_process_daemon(tmp_path, config, tick_seconds=0.2)
    ticks: list[float] = []
    real_tick = daemon._tick
    daemon._tick = lambda: (ticks.append(time.monotonic()), real_tick())  # type: ignore[method-assign]
    scheduler = daemon.schedule(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    scheduler.reschedule_job("tick", trigger="interval", seconds=0.2)  # from now, not in an hour
    with caplog.at_level(logging.INFO):
        with daemon._sending:  # a long send
            scheduler.start()
            assert wait_for(lambda: len(ticks) == 1, timeout=10)
            time.sleep(1.0)  # about five ticks come meanwhile
        try:
            assert wait_for(lambda: len(ticks) >= 3, timeout=10)  # ticking again
        finally:
            scheduler.shutdown(wait=True)
    skipped = [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    assert skipped == []


def test_a_store_that_cannot_be_opened_is_one_line_per_job_not_a_traceback(tmp_path, caplog):
    """The jobs opened the store outside their error handling: with the disk full (reproduced
    on a full 12 MB tmpfs: 'disk I/O error' as the store opened) every tick and fetch ended in
    APScheduler's 'Job "Daemon.tick_job (...)" raised an exception' and a 13-line traceback,
    346 log lines in 50 s with --tick 2. A damaged file fails the same way, as it opens."""
    import logging

    config = tmp_path / "subscribers.yaml"
    config.write_text(ONE_READER)
    (tmp_path / "pw.db").write_bytes(b"this is no SQLite database, " * 100)
    daemon = in_process_daemon(tmp_path, config)
    with caplog.at_level(logging.INFO, logger="paperwire"):
        daemon.tick_job()
        daemon.fetch_job()
    errors = [(r.getMessage(), r.exc_info) for r in caplog.records if r.levelno >= logging.ERROR]
    damaged = f"{tmp_path / 'pw.db'}: the database is damaged"
    assert [(m.split(damaged)[0], info) for m, info in errors] == [
        ("send job failed: ", None),
        ("fetch job failed: ", None),
    ]


def _running(tmp_path: Path) -> bool:
    return '"message": "paperwire running' in (tmp_path / "daemon.log").read_text()


def test_the_web_server_s_own_log_lines_are_json_with_log_json(tmp_path, smtp_server):
    """--log-json: the web server (uvicorn) kept a log format of its own, so any port scanner's
    request wrote 'WARNING:  Invalid HTTP request received.' into the JSON stream: a line no
    log shipper parses, without a time."""
    import socket

    (tmp_path / "subscribers.yaml").write_text(ONE_READER)
    port = free_port()
    proc = start(tmp_path, _env(smtp_server), port)
    try:
        assert wait_for(lambda: _running(tmp_path), timeout=30)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"NOT HTTP\x01\x02\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 400")
        assert wait_for(lambda: "Invalid HTTP" in (tmp_path / "daemon.log").read_text(), 10)
    finally:
        code, _ = stop(proc)
    assert code == 0
    lines = (tmp_path / "daemon.log").read_text().splitlines()
    assert [line for line in lines if not line.startswith('{"time": ')] == []
    assert any(
        '"level": "warning", "logger": "uvicorn.error", "message": "Invalid HTTP request' in line
        for line in lines
    )


def test_log_json_keeps_the_exception_of_a_logged_error(tmp_path, smtp_server):
    """--log-json wrote only a record's message: 'healthz could not read the store', with
    neither the exception nor its traceback (the plain format prints both), so the JSON log of
    a database that does not open (damaged, full, gone) said nothing of why."""
    import json

    (tmp_path / "subscribers.yaml").write_text(ONE_READER)
    port = free_port()
    proc = start(tmp_path, _env(smtp_server), port)
    try:
        assert wait_for(lambda: _running(tmp_path), timeout=30)
        for path in tmp_path.glob("paperwire.db*"):
            path.unlink()
        (tmp_path / "paperwire.db").mkdir()  # a store that no longer opens
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert wait_for(lambda: "healthz could not" in (tmp_path / "daemon.log").read_text(), 10)
    finally:
        code, _ = stop(proc)
    assert code == 0
    records = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()]
    (health,) = [r for r in records if r["message"] == "healthz could not read the store"]
    assert health["level"] == "error"
    assert health["exception"].startswith("Traceback (most recent call last):")
    assert (
        "StoreError: " in health["exception"] and "cannot open the database" in health["exception"]
    )


def _ada_after_her_first_digest(tmp_path, more: str = ""):
    """An in-process daemon on a fake clock (``now[0]``) and a store of real arXiv items, after
    ada's first daily 07:05 digest on 2026-11-23 (``more``: other readers' config lines)."""
    from paperwire.sources import parse_document
    from paperwire.store import Store

    start = dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)
    config = tmp_path / "subscribers.yaml"
    config.write_text(
        "ranking: {embeddings: off}\nalerts: {enabled: false}\nsubscribers:\n"
        '  - id: ada\n    email: ada@example.org\n    interests: "language models"\n'
        '    timezone: UTC\n    digest_time: "07:05"\n    digest_days: daily\n' + more
    )
    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="rss")
    with Store(tmp_path / "pw.db") as store:
        store.add_papers(papers, now=start - dt.timedelta(hours=1))
    now = [start]
    daemon = in_process_daemon(tmp_path, config, clock=lambda: now[0])
    daemon.tick_job()  # sees ada
    now[0] = start + dt.timedelta(minutes=10)
    daemon.tick_job()  # her first digest
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    return daemon, now, config


def test_a_quiet_day_is_one_log_line_per_reader(tmp_path, caplog):
    """A digest with nothing new was logged twice by the daemon: 'send ada: no new papers since
    2026-11-23; no digest sent' and 'digest ada: nothing-new (no new papers since 2026-11-23)',
    two lines per reader on every quiet day (every weekend for a daily reader of arXiv)."""
    import logging

    daemon, now, _ = _ada_after_her_first_digest(tmp_path)
    now[0] += dt.timedelta(days=1)  # nothing fetched since
    with caplog.at_level(logging.INFO, logger="paperwire"):
        daemon.tick_job()
    assert [r.getMessage() for r in caplog.records if "ada" in r.getMessage()] == [
        "digest ada: nothing-new (no new papers since 2026-11-23)"
    ]


# Debian's libfaketime: the daemon's wall clock stepped while it runs (its monotonic clock
# not). .ci/run installs it and sets PAPERWIRE_REQUIRE_FAKETIME=1: there a missing one fails.
LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)
REQUIRE_FAKETIME = os.environ.get("PAPERWIRE_REQUIRE_FAKETIME") == "1"  # read before the
# tests' own environment is cleared of PAPERWIRE_* (conftest.isolated)


def test_ticks_go_on_when_the_clock_goes_back(tmp_path, smtp_server):
    """The scheduler sleeps until its next run on the wall clock, measured on the monotonic
    one: after the clock was set back an hour (an NTP step at boot, a restored VM, `date -s`)
    no tick and no fetch ran for that hour, even once the clock was set right again, so no
    digest went out. The daemon now moves its jobs back with the clock (one line says so)."""
    import sqlite3

    if LIBFAKETIME is None:
        if REQUIRE_FAKETIME:
            pytest.fail("PAPERWIRE_REQUIRE_FAKETIME=1 but Debian's libfaketime is not installed")
        pytest.skip("needs Debian's libfaketime (apt-get install libfaketime)")

    (tmp_path / "subscribers.yaml").write_text(ONE_READER)
    offset = tmp_path / "faketime"
    offset.write_text("+0")
    env = _env(smtp_server) | {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }

    def ticks() -> int:  # each tick records a send event
        try:
            with contextlib.closing(sqlite3.connect(tmp_path / "paperwire.db")) as db:
                return db.execute("select count(*) from events where kind = 'send'").fetchone()[0]
        except sqlite3.Error:
            return 0

    proc = start(tmp_path, env, free_port())
    try:
        assert wait_for(lambda: ticks() >= 2, timeout=30), (tmp_path / "daemon.log").read_text()
        offset.write_text("-1h")
        before = ticks()
        assert wait_for(lambda: ticks() >= before + 3, timeout=10)
    finally:
        code, _ = stop(proc)
    assert code == 0
    log = (tmp_path / "daemon.log").read_text()
    _no_crash(log)
    assert '"message": "the clock went back by 1:00:00' in log


def test_a_second_daemon_on_the_same_store_says_so_once_and_both_run(tmp_path, smtp_server):
    """Two `paperwire run` on one store share the digests out safely (the ledger), but both
    fetch every feed, and nothing said so (found in review). The second says which process
    holds the store, once; the first says nothing."""
    (tmp_path / "subscribers.yaml").write_text(ONE_READER)
    first = start(tmp_path, _env(smtp_server), free_port())
    second = None
    try:
        assert wait_for(lambda: _running(tmp_path), timeout=60)
        second = start(tmp_path, _env(smtp_server), free_port())
        assert wait_for(
            lambda: "another paperwire run" in (tmp_path / "daemon.log").read_text(), timeout=60
        )
        assert second.poll() is None  # it runs on
    finally:
        codes = [stop(p)[0] for p in (first, second) if p is not None]
    assert codes == [0, 0]
    log = (tmp_path / "daemon.log").read_text()
    _no_crash(log)
    warned = [line for line in log.splitlines() if "another paperwire run" in line]
    assert len(warned) == 1
    assert f"another paperwire run (pid {first.pid} on " in warned[0]


def test_a_daemon_that_found_the_store_held_holds_it_once_the_first_has_stopped(
    tmp_path, smtp_server
):
    """The upgrade review: a daemon that started second (and said so) never took the lock
    once the first stopped, so a third started beside it said nothing (old daemon A, new B
    started before A was stopped, then a restarted C: B and C both ran, fetching every feed,
    and the lock file named C alone)."""
    (tmp_path / "subscribers.yaml").write_text(ONE_READER)
    lock = tmp_path / "paperwire.db.run.lock"
    first = start(tmp_path, _env(smtp_server), free_port())
    second = third = None
    try:
        assert wait_for(lambda: _running(tmp_path), timeout=60)
        second = start(tmp_path, _env(smtp_server), free_port())
        assert wait_for(
            lambda: "another paperwire run" in (tmp_path / "daemon.log").read_text(), timeout=60
        )
        assert stop(first)[0] == 0
        first = None
        # the second takes the store over, and says which process holds it now
        assert wait_for(lambda: lock.read_text() == f"pid {second.pid} on {socket.gethostname()}")
        third = start(tmp_path, _env(smtp_server), free_port())
        assert wait_for(
            lambda: (
                f"another paperwire run (pid {second.pid} on "
                in (tmp_path / "daemon.log").read_text()
            ),
            timeout=60,
        ), (tmp_path / "daemon.log").read_text()
    finally:
        codes = [stop(p)[0] for p in (first, second, third) if p is not None]
    assert codes == [0, 0]
    log = (tmp_path / "daemon.log").read_text()
    _no_crash(log)
    assert len([line for line in log.splitlines() if "another paperwire run" in line]) == 2


def test_a_digest_missed_past_the_grace_period_is_one_log_line_and_shown_in_status(
    tmp_path, caplog
):
    """A digest whose slot passed more than the grace period ago (the machine asleep, the
    daemon down) was skipped without a word: nothing in the log, nothing in status. Now the
    daemon says it once per reader and slot (who, which slot, why, the next one), status
    shows it, and what is sent stays as it was: nothing for the missed slot."""
    import logging

    from paperwire import status
    from paperwire.config import load_config
    from paperwire.store import Store

    bob = (
        '  - id: bob\n    email: bob@example.org\n    interests: "language models"\n'
        '    timezone: UTC\n    digest_time: "07:05"\n    digest_days: daily\n    enabled: false\n'
    )
    daemon, now, config = _ada_after_her_first_digest(tmp_path, bob)
    # asleep from the 23rd to the evening of the 25th: the 24th's and 25th's slots passed,
    # the 25th's 13 hours ago, past the 12 h grace
    now[0] = dt.datetime(2026, 11, 25, 20, 5, tzinfo=dt.UTC)
    with caplog.at_level(logging.INFO, logger="paperwire"):
        daemon.tick_job()
        now[0] += dt.timedelta(minutes=1)
        daemon.tick_job()  # said once, not every tick
    assert [r.getMessage() for r in caplog.records if "ada" in r.getMessage()] == [
        "digest ada: missed (the 2026-11-25 digest, due 2026-11-25T07:05+00:00, was skipped: "
        "its time passed more than the grace period (12 h, --grace-hours) ago with no "
        "paperwire running to send it (stopped, or the machine asleep); its papers go in the "
        "next digest, 2026-11-26T07:05+00:00)"
    ]
    assert [r.levelname for r in caplog.records if "ada" in r.getMessage()] == ["WARNING"]
    assert not [r for r in caplog.records if "bob" in r.getMessage()]  # disabled: no digests
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1  # nothing more sent
    with Store(tmp_path / "pw.db") as store:
        shown = status.status(store, load_config(config), now=now[0])
    assert [(s.id, s.missed) for s in shown.subscribers] == [("ada", "2026-11-25"), ("bob", None)]
