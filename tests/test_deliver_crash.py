"""Exactly once, even when ``paperwire send`` is killed with SIGKILL in the middle of a send."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .conftest import FIXTURES, environ_without_paperwire, fetch_here

N = 30


def write_config(path: Path) -> None:
    subs = "".join(
        f'  - id: r{i:02d}\n    email: r{i:02d}@example.org\n    interests: "language models"\n'
        f"    digest_size: 3\n    digest_days: daily\n"
        for i in range(N)
    )
    path.write_text(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n{subs}"
        "sender:\n  smtp_connections: 1\n  retry_backoff: 0.05\n"
    )


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paperwire", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sigkill_mid_send_then_rerun_delivers_each_digest_once(tmp_path, smtp_server):
    write_config(tmp_path / "subscribers.yaml")
    env = environ_without_paperwire()
    env.update(PAPERWIRE_SMTP_URL=smtp_server.url, PAPERWIRE_SECRET="k-test-signing-key")
    fetch_here(tmp_path)  # the subject is the send
    smtp_server.delay = 0.1  # a relay that takes 100 ms per message keeps the send in flight

    first = subprocess.Popen(
        [sys.executable, "-m", "paperwire", "send"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120  # generous: a loaded CI machine starts Python slowly
    while len(smtp_server.messages) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    received_before = len(smtp_server.messages)
    assert 8 <= received_before < N, "the kill must land in the middle of the send"

    second = run(["send"], tmp_path, env)
    assert second.returncode == 0, second.stderr
    third = run(["send"], tmp_path, env)
    assert third.stdout.splitlines()[-1].startswith("0 sent, 0 failed")

    per_recipient = Counter(r for _, rcpts in smtp_server.envelopes for r in rcpts)
    assert set(per_recipient) == {f"r{i:02d}@example.org" for i in range(N)}
    duplicates = {r: n for r, n in per_recipient.items() if n > 1}
    assert len(duplicates) <= 1, duplicates  # only the one message in flight at the kill
    for recipient in duplicates:
        ids = {
            m["Message-ID"]
            for (_, rcpts), m in zip(smtp_server.envelopes, smtp_server.messages, strict=True)
            if recipient in rcpts
        }
        assert len(ids) == 1  # the duplicate is recognisable by its Message-ID
