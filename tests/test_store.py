"""The store shared safely: real SQLite files written by several processes at once, and every
way a database can fail at run time (read-only, damaged, full, from a newer paperwire) as a
one-line StoreError that says what to do."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from paperwire import pipeline
from paperwire import store as store_mod
from paperwire.cli import cli
from paperwire.deliver.email import write_outbox
from paperwire.errors import DeliveryError, StoreError
from paperwire.store import Store, holder_id

from .conftest import FIXTURES

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
FORK = multiprocessing.get_context("fork")
CONFIG = f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n" + "".join(
    f'  - id: r{i}\n    email: r{i}@example.org\n    interests: "language models"\n'
    "    digest_size: 3\n    digest_days: daily\n"
    for i in range(5)
)


@pytest.fixture
def config(make_config):
    return make_config(CONFIG, env={"PAPERWIRE_SECRET": "k-test-signing-key"})


# -- several processes at once ------------------------------------------------------------------


def _vote_hammer(db: str, votes: int, started) -> None:
    """A forked child voting as fast as it can, as a busy web app would."""
    with Store(db) as store:
        started.set()
        for i in range(votes):
            store.record_vote(f"web{i % 7}", f"2511.{i:05d}", 1 if i % 2 else -1, via="web")
    os._exit(0)


def test_votes_from_another_process_never_break_fetch_or_send(store, config, tmp_path):
    votes = 1500
    started = FORK.Event()
    voter = FORK.Process(target=_vote_hammer, args=(str(store.path), votes, started))
    voter.start()
    started.wait(30)
    cycles = 0
    while voter.is_alive() or cycles < 2:  # fetch and send while the votes pour in
        later = NOW + dt.timedelta(days=cycles)
        assert pipeline.fetch_all(store, config, now=later).errors == 0
        report = pipeline.send_due(store, config, now=later, outbox=tmp_path / "outbox")
        assert report.count("failed") == report.count("retry") == 0
        cycles += 1
    voter.join(30)
    assert voter.exitcode == 0
    assert len(store.votes([f"web{i}" for i in range(7)])) == votes  # none lost


# -- who holds a pending delivery ----------------------------------------------------------------


def _pending(store: Store, claim: str | None, subscriber: str = "ada") -> int:
    return store.open_delivery(
        subscriber,
        "digest",
        "2026-11-23",
        "email",
        message_id=f"<{subscriber}@x>",
        content_hash="h",
        papers=[],
        claim=claim,
    )


def _set_holder(store: Store, delivery_id: int, holder: str, lease_until: str) -> None:
    store.db.execute(
        "update deliveries set holder = ?, lease_until = ? where id = ?",
        [holder, lease_until, delivery_id],
    )


def test_a_live_holders_rows_are_never_taken(tmp_path):
    with Store(tmp_path / "p.db") as a, Store(tmp_path / "p.db") as b:
        mine = _pending(a, "run-a")
        assert b.claim_unsent("run-b") == []  # held by a live process (this one)
        a.release_claim("run-a")  # the run ended, leaving it pending: free at once
        assert [r["id"] for r in b.claim_unsent("run-b")] == [mine]
        assert a.claim_unsent("run-a") == []  # one winner


def test_a_dead_holders_rows_are_resumed_at_once(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer exists
    with Store(tmp_path / "p.db") as store:
        held = _pending(store, "crashed-run")
        far = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        _set_holder(store, held, f"{dead.pid}@{socket.gethostname()}", far)
        [row] = store.claim_unsent("next-run")
        assert (row["id"], row["claim"], row["holder"]) == (held, "next-run", holder_id())


def test_another_hosts_rows_wait_for_their_lease(tmp_path):
    with Store(tmp_path / "p.db") as store:
        held = _pending(store, "remote-run")
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()
        _set_holder(store, held, "4242@another-host", soon)
        assert store.claim_unsent("local-run") == []  # alive as far as we can tell
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
        _set_holder(store, held, "4242@another-host", past)
        assert [r["id"] for r in store.claim_unsent("local-run")] == [held]


def test_a_run_renews_its_lease_while_it_lasts(tmp_path):
    with Store(tmp_path / "p.db") as store:
        lease = dt.timedelta(seconds=0.6)
        with store.holding(lease=lease) as claim:
            held = _pending(store, claim)
            first = store.delivery("ada", "digest", "2026-11-23", "email")["lease_until"]
            deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
            while store.delivery("ada", "digest", "2026-11-23", "email")["lease_until"] == first:
                assert dt.datetime.now(dt.UTC) < deadline, "the lease was never renewed"
            row = store.delivery("ada", "digest", "2026-11-23", "email")
            assert (row["id"], row["claim"]) == (held, claim)
        row = store.delivery("ada", "digest", "2026-11-23", "email")
        assert (row["state"], row["claim"], row["lease_until"]) == ("pending", None, None)


# -- runtime failures, one line each -------------------------------------------------------------


def test_a_read_only_database_is_one_line(tmp_path, config):
    db = tmp_path / "p.db"
    with Store(db) as store:
        pipeline.fetch_all(store, config, now=NOW)
    immutable = os.geteuid() == 0  # root writes through file modes: make it immutable instead
    db.chmod(0o444)
    if immutable:
        subprocess.run(["chattr", "+i", str(db)], check=True)
    try:
        with Store(db) as store, pytest.raises(StoreError) as caught:
            store.record_vote("r0", "2511.00001", 1, via="cli")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(db)], check=True)
    assert str(caught.value) == (
        f"{db}: the database is read-only (attempt to write a readonly database); make the "
        "file and its folder writable by the user running paperwire"
    )


def test_a_damaged_database_is_one_line(tmp_path):
    db = tmp_path / "p.db"
    with Store(db) as store:
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with db.open("r+b") as handle:  # pages 3-5 overwritten, as a failing disk would
        handle.seek(4096 * 2)
        handle.write(b"\xff" * 4096 * 3)
    result = CliRunner().invoke(cli, ["--db", str(db), "status"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {db}: the database is damaged (database disk image is malformed); restore it "
        f"from a backup (or try `sqlite3 {db} .recover`)\n"
    )


def test_a_full_disk_is_one_line_and_loses_nothing(store, config, tmp_path):
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # not one page more: the disk is full
    with pytest.raises(StoreError) as caught:
        pipeline.fetch_all(store, config, now=NOW)
    assert str(caught.value) == (
        f"{store.path}: the disk is full (database or disk is full); free some space and run "
        "again: what was not recorded is done on the next run"
    )
    assert store.count_papers() == 0  # the transaction was rolled back whole
    store.db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    assert pipeline.fetch_all(store, config, now=NOW).new == 60
    report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert report.count("sent") == 5


def _write_with_a_full_disk(folder: str, result: str) -> None:
    """A forked child whose files may not grow past 2 KB: writes fail half-way (EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
    msg = EmailMessage()
    msg["Subject"] = "digest"
    msg.set_content("x" * 10_000)
    try:
        write_outbox(Path(folder), "2026-11-23-r0-digest", msg, "<p>preview</p>")
    except DeliveryError as exc:
        Path(result).write_text(str(exc))
    os._exit(0)


def test_an_outbox_write_that_fails_leaves_no_temporary_file(tmp_path):
    result = tmp_path / "result.txt"
    child = FORK.Process(
        target=_write_with_a_full_disk, args=(str(tmp_path / "outbox"), str(result))
    )
    child.start()
    child.join(30)
    assert result.read_text() == (
        f"{tmp_path / 'outbox'}: cannot write 2026-11-23-r0-digest.eml: File too large; free "
        "some space or fix the folder's permissions: the digest stays due"
    )
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == []


def test_a_database_from_a_newer_paperwire_is_refused_untouched(tmp_path):
    db = tmp_path / "p.db"
    with Store(db) as store:
        store.db.execute(
            "insert into _sqlite_migrations (migration_set, name, applied_at) "
            "values ('paperwire', 'm042_from_the_future', '2030-01-01')"
        )
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes()
    with pytest.raises(StoreError) as caught:
        Store(db)
    assert str(caught.value) == (
        f"{db}: written by a newer paperwire (migration m042_from_the_future is unknown to "
        "paperwire 0.1.0); upgrade paperwire, or pass --db another file"
    )
    assert db.read_bytes() == before


def test_a_database_from_before_topics_not_wanted_keeps_its_edits(tmp_path):
    db_path = tmp_path / "old.db"
    old = sqlite_utils.Database(db_path)
    store_mod.migrations.apply(old, stop_before="m008_not_interested")
    old["subscriber_state"].insert(
        {"subscriber_id": "ada", "interests": "KV cache eviction", "updated": "2026-01-01"}
    )
    old.close()
    with Store(db_path) as store:  # migrated on open
        assert store.interests_overrides() == {"ada": "KV cache eviction"}
        assert store.not_interested_overrides() == {}
        store.set_interests("ada", "KV cache eviction", "robotics")
        assert store.not_interested_overrides() == {"ada": "robotics"}
        store.set_unsubscribed("ada", True)  # another column of the same row: kept
        assert store.not_interested_overrides() == {"ada": "robotics"}
        assert store.unsubscribed() == {"ada"}
        store.set_interests("ada", None, None)
        assert store.unsubscribed() == {"ada"} and store.interests_overrides() == {}


def _old_store(path: Path, name: str, make) -> None:
    """A store as an earlier paperwire left it: the first migration, then one under its old
    name (``make`` is the schema change that name made)."""
    old = sqlite_utils.Database(path)
    store_mod.migrations.apply(old, stop_before="m002_delivery_claims")
    make(old)
    old["_sqlite_migrations"].insert(
        {"migration_set": "paperwire", "name": name, "applied_at": "2026-12-01 17:40:00"}
    )
    old["papers"].insert({"paper_id": "2504.04713", "title": "NIAH", "first_seen": "2026-12-01"})
    old.close()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        # main at 0552de1 (35 minutes): the library migration under its branch's name
        ("m_issue16_library_and_extras", store_mod.m003_library_and_extras),
        # main at 62d4acf: only the keywords column, which the library migration adds too
        ("m002_paper_keywords", lambda db: db["papers"].add_column("keywords", str)),
        # the semantic branch before its merge numbered the embeddings migration m003
        ("m003_embeddings", store_mod.m004_embeddings),
    ],
)
def test_a_store_from_a_migration_since_renamed_opens_and_keeps_its_rows(tmp_path, name, make):
    db = tmp_path / "old.db"
    _old_store(db, name, make)
    with Store(db) as store:  # was: "written by a newer paperwire (migration ... is unknown"
        assert {m.name for m in store_mod.migrations.applied(store.db)} == set(
            store_mod.KNOWN_MIGRATIONS
        )
        assert store.paper("2504.04713")["title"] == "NIAH"
        store.add_seeds("ada", ["2504.04713"], origin="lib.txt")
        assert store.seeds(["ada"]) == {"ada": ["2504.04713"]}
    with Store(db) as store:  # and opens again, nothing left to apply
        assert not store_mod.migrations.pending(store.db)


def test_a_folder_that_does_not_exist_is_one_line(tmp_path):
    missing = tmp_path / "no" / "such" / "p.db"
    with pytest.raises(StoreError) as caught:
        Store(missing)
    assert str(caught.value) == (
        f"{missing}: cannot open the database (unable to open database file); check that its "
        "folder exists and is writable (or pass --db)"
    )
    assert not missing.parent.exists()


def test_embeddings_are_stored_one_per_paper_and_read_back_by_id(tmp_path):
    ids = [f"2611.{i:05d}" for i in range(1200)]  # more than one query's worth of ids
    with Store(tmp_path / "p.db") as store:
        assert store.embeddings(ids) == {}
        store.set_embeddings(
            (pid, "m1", f"h{i}", bytes([i % 256]) * 4) for i, pid in enumerate(ids)
        )
        store.set_embeddings([("2611.00001", "m2", "new", b"\x01\x02")])  # replaces, not adds
        got = store.embeddings([*ids, "2611.99999"])
    assert len(got) == 1200
    assert got["2611.00000"] == ("m1", "h0", b"\x00" * 4)
    assert got["2611.01199"] == ("m1", "h1199", bytes([1199 % 256]) * 4)
    assert got["2611.00001"] == ("m2", "new", b"\x01\x02")
    assert "2611.99999" not in got
    with Store(tmp_path / "p.db") as store:  # committed: another connection sees them
        assert store.embeddings(["2611.00001"]) == {"2611.00001": ("m2", "new", b"\x01\x02")}


# -- a message accepted after its deadline ------------------------------------------------------


def test_a_delivery_recorded_sent_late_is_never_moved_back(tmp_path):
    """The thread left behind at a deadline can record the message accepted between the
    TimeoutError and its run settling the row: that settling used to overwrite sent with
    pending (sent again later) or failed."""
    with Store(tmp_path / "p.db") as store:
        row = _pending(store, "run-a")
        store.record_late_part(row, 1, 1, now=NOW)
        assert not store.mark_delivery(row, "pending", error="maybe delivered", retry_at=NOW)
        assert not store.mark_delivery(row, "failed", error="maybe delivered 3 times")
        [after] = store.deliveries("ada")
        assert (after["state"], after["error"], after["attempts"]) == ("sent", None, 0)
        assert after["claim"] is None  # let go of all the same
        assert store.mark_delivery(_pending(store, None, "bob"), "pending", error="x")


def test_a_fetch_lets_go_of_events_older_than_a_month(tmp_path):
    """The daemon records a send event every tick (2,880 a day at 30 s) and nothing pruned
    them (found in review): a year held a million rows that nothing reads. A fetch now deletes
    those older than EVENTS_KEPT_DAYS; the last of each kind (what /healthz reads) and the
    summariser's day of requests stay."""
    import json as json_mod

    from paperwire.store import EVENTS_KEPT_DAYS, iso, utcnow

    with Store(tmp_path / "pw.db") as store:
        now = utcnow()
        old = iso(now - dt.timedelta(days=EVENTS_KEPT_DAYS + 1))
        recent = iso(now - dt.timedelta(days=EVENTS_KEPT_DAYS - 1))
        rows = [(old, "send"), (old, "summary"), (recent, "send"), (recent, "summary")] * 50
        store.db.conn.executemany(
            "insert into events (at, kind, detail) values (?, ?, ?)",
            [(at, kind, json_mod.dumps({"sent": 0})) for at, kind in rows],
        )
        store.db.conn.commit()
        store.log_event("send", {"sent": 1, "failed": 0})
        assert store.db.execute("select count(*) from events").fetchone()[0] == 201
        store.log_event("fetch", {"new": 3, "errors": 0})
        left = store.db.execute("select at, count(*) from events group by at").fetchall()
        assert sorted(count for _, count in left) == [1, 1, 100]
        assert all(at >= recent for at, _ in left)
        assert store.last_event("send")["detail"] == {"sent": 1, "failed": 0}
        assert store.last_event("fetch")["detail"] == {"new": 3, "errors": 0}
        assert store.summary_requests_since(now - dt.timedelta(days=EVENTS_KEPT_DAYS)) == 50


def test_retry_now_lets_go_of_waiting_e_mails_but_not_maybe_delivered_ones(tmp_path):
    """What a changed SMTP URL frees (dispatch.resume_if_relay_changed): e-mails waiting out
    a relay failure's back-off; one maybe delivered keeps its wait (it may have arrived), and
    so do other channels."""
    import datetime as dt

    with Store(tmp_path / "pw.db") as store:
        later = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        ids = {}
        for name, channel, maybe in (("refused", "email", None), ("maybe", "email", 1),
                                     ("slack", "slack", None)):  # fmt: skip
            ids[name] = store.open_delivery(
                name, "digest", "2026-11-23", channel, message_id=f"<{name}@x>",
                content_hash="h", papers=[],
            )  # fmt: skip
            store.mark_delivery(ids[name], "pending", error="x", retry_at=later, maybe_sent=maybe)
        assert store.retry_now("email") == 1
        waiting = {row["subscriber_id"]: row["retry_at"] for row in store.unsent_deliveries()}
        assert waiting["refused"] is None
        assert waiting["maybe"] is not None and waiting["slack"] is not None


def test_vote_rows_are_the_votes_ranking_reads_in_the_same_order(tmp_path):
    # ranking reads votes as tuples (Store.vote_rows), the web app as dicts (Store.votes): the
    # same votes, newest first, ties in time by the order they came, a reader's alone
    when = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    with Store(tmp_path / "votes.db") as store:
        for i, (who, vote, minutes) in enumerate(
            [("ada", 1, 0), ("bob", -1, 0), ("ada", -1, 5), ("ada", 1, 5), ("ada", 1, 2)]
        ):
            stamp = when + dt.timedelta(minutes=minutes)
            store.record_vote(who, f"2512.{i:05d}", vote, via="web", now=stamp)
        store.record_vote("ada", "2512.00000", -1, via="web", now=when)  # a changed vote
        tuples = store.vote_rows(["ada"])
        dicts = [
            (v["subscriber_id"], v["paper_id"], v["vote"], v["voted_at"])
            for v in store.votes(["ada"])
        ]
    assert tuples == dicts
    # newest first; at equal times the later vote first
    order = ["2512.00003", "2512.00002", "2512.00004", "2512.00000"]
    assert [paper for _, paper, _, _ in tuples] == order
    assert tuples[-1][2] == -1


def test_texts_are_each_papers_title_and_abstract_as_papers_gives_them(store):
    """Store.texts reads only what ranking needs of every candidate (title, abstract), 500 ids
    a query, without papers()' decoding: the same strings, unknown ids left out."""
    from paperwire.paper import Paper

    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    papers = [
        Paper(f"2611.{i:05d}", f"Title {i} <b>&</b>", f"Abstract {i}\nsecond line" if i % 3 else "",
              [f"A{i}"], url=f"https://arxiv.org/abs/2611.{i:05d}")
        for i in range(1203)
    ]  # fmt: skip
    store.add_papers(papers, now=now)
    ids = [p.paper_id for p in papers] + ["2611.99999"]
    texts = store.texts(ids)
    full = store.papers(ids)
    assert len(texts) == len(full) == 1203 and "2611.99999" not in texts
    assert texts == {pid: (row["title"], row["abstract"]) for pid, row in full.items()}


def test_a_caches_write_waits_a_moment_for_another_process_not_the_busy_timeout(tmp_path):
    """`digest --json` behind another process's held lock waited 30 s for each of three caches
    of interests' vectors (93 s, a preview that changes nothing; found in review). A cache's
    write waits half a second, is skipped with a warning, and the run goes on."""
    import sqlite3
    import time as time_module

    import numpy as np

    from paperwire.errors import StoreBusy
    from paperwire.rank import embed

    class Model:  # the interests' vectors, as an encoder gives them
        name, dim = "stub", 4

        def embed(self, texts):
            return np.ones((len(texts), 4), dtype=np.float32)

    with Store(tmp_path / "pw.db") as store:
        holder = sqlite3.connect(tmp_path / "pw.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            began = time_module.monotonic()
            busy = pytest.raises(StoreBusy, match="locked by another process; not waited for")
            with busy, store.briefly():
                store.set_setting("x", "1")
            vectors = embed.text_vectors(store, Model(), ["KV cache", "speculative decoding"])
            took = time_module.monotonic() - began
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert took < 10, took  # two short waits, not two of 30 s
        assert vectors.shape == (2, 4) and vectors.all()  # the run goes on with them in hand
        assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000  # put back
        assert store.text_vectors("stub", [embed.text_hash("KV cache")]) == {}  # not kept
