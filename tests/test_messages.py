"""Rendering e-mails in worker processes: the same messages, in order, whatever happens to a
worker or to the parent."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from paperwire.deliver import messages
from paperwire.links import Signer
from paperwire.paper import Pick

NOW = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)
SIGNER = Signer("test-key")


def make_jobs(n: int) -> list[messages.MailJob]:
    jobs = []
    for i in range(n):
        picks = [
            Pick(
                f"2511.{i:03d}{j:02d}",
                f"Paper {j} for reader {i} — über <b>bold</b>",
                f"https://arxiv.org/abs/2511.{i:03d}{j:02d}",
                2.0 - j / 10,
                ["matches “kv cache”"],
                {"abstract": "Sparse attention " * 30, "authors": ["A. Author", "B. Author"]},
            )
            for j in range(3)
        ]
        jobs.append(
            messages.MailJob(
                key=1000 + i,
                subscriber_id=f"r{i}",
                name=f"Reader {i}",
                recipient=f"r{i}@example.org",
                kind="digest",
                period="2026-11-23",
                message_id=f"<digest.r{i}@paperwire.test>",
                picks=picks,
                since=NOW - dt.timedelta(days=1),
            )
        )
    return jobs


RUN = messages.MailRun(
    "https://pw.example", "Paperwire <d@pw.example>", "pw.example", NOW.timestamp(), SIGNER
)


@pytest.fixture
def pooled(monkeypatch):
    """Small runs use the pool too, in tasks of two (several tasks per worker, in order)."""
    monkeypatch.setattr(messages, "POOL_MIN_MESSAGES", 2)
    monkeypatch.setattr(messages, "BATCH", 2)


def comparable(raw: bytes) -> tuple:
    """A message with what legitimately differs per build masked: the MIME boundary and the
    signed tokens' timestamps (each token is checked to name its own subscriber)."""
    msg = message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    subscribers = {SIGNER.read_vote(t).subscriber_id for t in re.findall(r"/v/([\w.-]+)", text)}
    mask = re.compile(r"/(v|unsubscribe|profile|feed)/[\w.-]+")
    return (
        msg["To"],
        msg["Subject"],
        msg["Message-ID"],
        subscribers,
        mask.sub("/TOKEN", text),
        mask.sub("/TOKEN", html),
    )


def test_workers_render_what_this_process_renders(pooled, caplog):
    jobs = make_jobs(9)
    caplog.set_level("INFO", logger="paperwire")
    here = list(messages.render_all(jobs, RUN, processes=1))
    there = list(messages.render_all(jobs, RUN, processes=2))
    assert caplog.messages == ["rendering 9 e-mails in 2 processes"]
    assert [o.key for o in there] == [o.key for o in here] == [j.key for j in jobs]
    assert [(o.mail_from, o.recipient) for o in there] == [
        ("d@pw.example", f"r{i}@example.org") for i in range(9)
    ]
    for a, b in zip(here, there, strict=True):
        assert comparable(a.message) == comparable(b.message)
    assert comparable(there[4].message)[3] == {"r4"}  # links signed for that reader only


# Enough tasks that work is still queued when a worker dies: with a few, the live workers can
# finish everything before the pool notices the death, and nothing is left to hand back.
KILL_TEST_JOBS = 120


def test_a_killed_worker_hands_its_share_back(pooled, caplog):
    jobs = make_jobs(KILL_TEST_JOBS)
    out = messages.render_all(jobs, RUN, processes=2)
    first = next(out)
    for worker in multiprocessing.active_children():
        os.kill(worker.pid, signal.SIGKILL)  # as the OOM killer would
    rest = list(out)
    assert [o.key for o in [first, *rest]] == [j.key for j in jobs]
    assert any("rendering" in m and "in this process" in m for m in caplog.messages)
    assert comparable(rest[-1].message)[3] == {f"r{KILL_TEST_JOBS - 1}"}


@pytest.mark.timeout(60)  # the bug this guards against was a hang
def test_one_killed_worker_beside_live_ones_never_hangs_the_sender(pooled, caplog):
    jobs = make_jobs(KILL_TEST_JOBS)
    out = messages.render_all(jobs, RUN, processes=3)
    first = next(out)
    workers = multiprocessing.active_children()
    assert len(workers) == 3
    os.kill(workers[0].pid, signal.SIGKILL)  # one, as the OOM killer would; two live on
    rest = list(out)  # the broken pool terminates the survivors: they must obey
    assert [o.key for o in [first, *rest]] == [j.key for j in jobs]
    assert any("rendering" in m and "in this process" in m for m in caplog.messages)
    assert [w for w in workers if w.is_alive()] == []


@pytest.mark.timeout(60)
def test_a_worker_killed_while_it_sends_a_result_never_hangs_the_sender(
    pooled, caplog, monkeypatch
):
    """Killed half-way through writing a result, a worker leaves the pool reading the rest of
    that message for ever, and the pool never says it broke: a CI run hung so, in the pool's
    shutdown. Here the half message is written by hand, and every worker is then stopped."""
    import struct

    pools = []

    class Recorded(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Recorded)
    jobs = make_jobs(KILL_TEST_JOBS)
    out = messages.render_all(jobs, RUN, processes=2)
    first = next(out)
    workers = multiprocessing.active_children()
    for worker in workers:
        os.kill(worker.pid, signal.SIGSTOP)  # no worker writes any more
    # the head of a 1 MB message and 16 bytes of it: the pool's reader waits for the rest
    os.write(pools[0]._result_queue._writer.fileno(), struct.pack("!i", 1 << 20) + bytes(16))
    time.sleep(0.5)
    for worker in workers:
        os.kill(worker.pid, signal.SIGKILL)
    rest = list(out)
    assert [o.key for o in [first, *rest]] == [j.key for j in jobs]
    assert any("the pool did not notice" in m for m in caplog.messages)
    assert [w for w in workers if w.is_alive()] == []


def test_ctrl_c_in_a_terminal_leaves_the_pool_to_the_sender(pooled, caplog):
    # a terminal's Ctrl-C (and systemd's SIGTERM) reach every process of the group
    jobs = make_jobs(12)
    out = messages.render_all(jobs, RUN, processes=2)
    first = next(out)
    workers = multiprocessing.active_children()
    deadline = time.monotonic() + 30  # a worker still starting up has no handlers yet
    while not all(_ignores_stop_signals(w.pid) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    for worker in workers:
        # from another process, as a terminal's or systemd's signals are
        subprocess.run(["kill", "-INT", str(worker.pid)], check=True)
        subprocess.run(["kill", "-TERM", str(worker.pid)], check=True)
    time.sleep(0.2)
    assert [o.key for o in [first, *out]] == [j.key for j in jobs]
    assert not any("in this process" in m for m in caplog.messages)  # no worker died


def test_workers_leave_when_the_sender_is_killed(tmp_path: Path):
    script = tmp_path / "sender.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import multiprocessing, sys, time
            sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
            from tests.test_messages import RUN, make_jobs
            from paperwire.deliver import messages

            if __name__ == "__main__":
                messages.POOL_MIN_MESSAGES = 2
                out = messages.render_all(make_jobs(200), RUN, processes=2)
                next(out)
                print(*[p.pid for p in multiprocessing.active_children()], flush=True)
                time.sleep(60)
            """
        )
    )
    # (its resource tracker reports the killed sender's semaphores on stderr: expected)
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 15
    while (alive := [p for p in pids if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive == []


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _ignores_stop_signals(pid: int) -> bool:
    """True once the worker's initializer ran: it ignores SIGINT, then SIGTERM. Both are read:
    a suite run as a script's background job starts every process with SIGINT ignored
    already, so SIGINT alone said "ready" before the initializer ran, and SIGTERM killed it."""
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16) & wanted == wanted
    return False
