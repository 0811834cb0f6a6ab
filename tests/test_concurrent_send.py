"""Exactly once with several senders at the same time: ``paperwire send`` beside ``run --once``
(a cron job beside the daemon), and many senders at once, all against one SQLite file and one
aiosmtpd relay that answers slowly, as a remote relay does."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import paperwire.rank.compose  # noqa: F401 (loaded once here: forked senders start at once)
from paperwire.config import load_config
from paperwire.pipeline import fetch_all
from paperwire.store import Store

from .conftest import FIXTURES

N = 30


def write_config(path: Path, n: int = N) -> None:
    subs = "".join(
        f'  - id: r{i:02d}\n    email: r{i:02d}@example.org\n    interests: "language models"\n'
        f"    digest_size: 3\n    digest_days: daily\n"
        for i in range(n)
    )
    path.write_text(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n{subs}"
        "sender:\n  smtp_connections: 2\n  retry_backoff: 0.05\n"
    )


@pytest.fixture
def fetched(tmp_path: Path, smtp_server, monkeypatch) -> Path:
    """A config of N daily readers, its papers fetched into ./paperwire.db; the relay slow."""
    write_config(tmp_path / "subscribers.yaml")
    monkeypatch.setenv("PAPERWIRE_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("PAPERWIRE_SECRET", "k-test-signing-key")
    with Store(tmp_path / "paperwire.db") as store:
        fetch_all(store, load_config(tmp_path / "subscribers.yaml"))
    smtp_server.delay = 0.3  # per DATA: every sender is still sending when the others start
    return tmp_path


def assert_each_digest_once(smtp_server, db: Path) -> None:
    ids = Counter(m["Message-ID"] for m in smtp_server.messages)
    twice = {i: n for i, n in ids.items() if n > 1}
    assert twice == {}, f"{len(twice)} of {N} digests delivered more than once"
    recipients = {r for _, rcpts in smtp_server.envelopes for r in rcpts}
    assert recipients == {f"r{i:02d}@example.org" for i in range(N)}  # none left behind
    with Store(db) as store:
        rows = store.deliveries(limit=1000)
    assert len(rows) == N
    assert {(r["state"], r["attempts"]) for r in rows} == {("sent", 1)}
    assert {r["message_id"] for r in rows} == set(ids)  # what arrived is what the ledger holds


def wait_for_first_message(smtp_server, procs: list) -> None:
    """Until the relay has a message (the senders are mid-way), or every sender ended."""
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts Python slowly
    while (
        not smtp_server.messages
        and any(proc_alive(p) for p in procs)
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert smtp_server.messages, "the first senders ended without sending anything"


def proc_alive(proc) -> bool:
    return proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_alive()


def _cli(args: list[str], log: str) -> None:
    """A forked child: run the real ``paperwire`` command, its output to a file."""
    from paperwire.cli import cli

    # (pytest's capture replaced sys.stdout; the child writes to its own file instead)
    sys.stdout = sys.stderr = open(log, "w", buffering=1)  # noqa: SIM115 (the child exits)
    cli.main(args=args, prog_name="paperwire")  # exits: the status becomes the exit code


# forked from this process: real processes (own pid, own SQLite connection) that start at once,
# without paying an interpreter start-up and scikit-learn import each on a small CI machine
FORK = multiprocessing.get_context("fork")


def test_run_once_beside_a_send_in_flight_delivers_each_digest_once(fetched, smtp_server):
    send = subprocess.Popen(
        [sys.executable, "-m", "paperwire", "send"],
        cwd=fetched,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_first_message(smtp_server, [send])
    # the daemon's cycle (or a second cron job) starts while the first send is mid-way
    other = FORK.Process(target=_cli, args=(["run", "--once"], str(fetched / "run.log")))
    other.start()
    out, err = send.communicate(timeout=60)
    other.join(timeout=60)
    other_out = (fetched / "run.log").read_text()
    assert (send.returncode, other.exitcode) == (0, 0), out + err + other_out
    assert_each_digest_once(smtp_server, fetched / "paperwire.db")
    assert out.splitlines()[-1] == f"{N} sent, 0 failed, 0 to retry, 0 with nothing new."
    assert other_out.splitlines()[-1] == "0 sent, 0 failed, 0 to retry, 0 with nothing new."


@pytest.mark.parametrize("senders", [3, 10])
def test_many_senders_at_once_deliver_each_digest_once(fetched, smtp_server, senders):
    children = [
        FORK.Process(
            target=_cli,
            args=(["send"] if i % 2 else ["run", "--once"], str(fetched / f"sender{i}.log")),
        )
        for i in range(senders)
    ]
    first, rest = children[: senders // 2], children[senders // 2 :]
    for child in first:  # these race each other from the start ...
        child.start()
    wait_for_first_message(smtp_server, first)
    for child in rest:  # ... and these start while digests are in flight
        child.start()
    for child in children:
        child.join(timeout=60)
    logs = [(fetched / f"sender{i}.log").read_text() for i in range(senders)]
    assert [c.exitcode for c in children] == [0] * senders, logs
    assert_each_digest_once(smtp_server, fetched / "paperwire.db")
    assert sum(int(log.splitlines()[-1].split()[0]) for log in logs) == N
