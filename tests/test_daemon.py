"""``paperwire run`` as a real process: a local feed server, a real SMTP server, real signals."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import FIXTURES, Route, free_port


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
    due = (dt.datetime.now(berlin) + dt.timedelta(seconds=4)).replace(microsecond=0)
    (tmp_path / "subscribers.yaml").write_text(
        f"feeds:\n  - url: {http_server.url('/rss/cs')}\n    name: arxiv-cs\n"
        "subscribers:\n"
        '  - id: ada\n    email: ada@example.org\n    interests: "language models"\n'
        f'    timezone: Europe/Berlin\n    digest_time: "{due.strftime("%H:%M:%S")}"\n'
        "    digest_days: daily\n    digest_size: 3\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
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
