"""The SQLite store: the only module that reads or writes the database.

Tables: ``papers`` (one row per paper, arXiv versions merged), ``feeds`` (HTTP validators and
last result per feed), ``votes`` (the latest thumbs per subscriber and paper), ``deliveries``
and ``delivery_papers`` (the ledger that makes sending exactly-once), ``subscriber_state``
(unsubscribes, edited interests) and ``settings``. WAL mode lets the web app read and write
while ``fetch`` and ``send`` run.

Sharing the file safely: every write runs in a transaction that takes the write lock first
(``BEGIN IMMEDIATE``) and waits up to :data:`BUSY_TIMEOUT` for it. A deferred transaction that
reads and then writes cannot wait: SQLite fails it at once with "database is locked" when
another process wrote in between. Every SQLite failure leaves this module as a one-line
:class:`StoreError` naming the file and what to do.

Who holds a pending delivery: each sending run claims ledger rows with a random token, its
``pid@host`` and a lease time, in one ``UPDATE ... WHERE`` that only one process can win, and
renews the lease while it sends. Another run resumes a pending row only when its holder is gone:
the lease ran out, or the holder's process no longer exists on this host.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils
from sqlite_utils import Migrations

from ..errors import StoreBusy, StoreError
from ..paper import Paper, arxiv_id

log = logging.getLogger("paperwire")

migrations = Migrations("paperwire")

BRIEF_WAIT = 0.5  # seconds a cache's write waits for another process's lock (Store.briefly)
BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's write (a vote, a fetch)
LEASE = dt.timedelta(minutes=5)  # a claim on a pending delivery lasts this long unless renewed


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.table("papers").create(
        {
            "paper_id": str,
            "title": str,
            "abstract": str,
            "authors": str,  # JSON list
            "categories": str,  # JSON list
            "url": str,
            "pdf_url": str,
            "published": str,
            "first_seen": str,
            "updated": str,
            "version": int,
            "upvotes": int,
            "sources": str,  # JSON list of feed labels
            "announce_type": str,
        },
        pk="paper_id",
    )
    db.table("papers").create_index(["first_seen"])
    db.table("feeds").create(
        {
            "url": str,
            "etag": str,
            "last_modified": str,
            "last_fetch": str,
            "last_ok": str,
            "last_new": int,
            "last_error": str,
        },
        pk="url",
    )
    db.table("votes").create(
        {"subscriber_id": str, "paper_id": str, "vote": int, "voted_at": str, "via": str},
        pk=("subscriber_id", "paper_id"),
    )
    db.table("deliveries").create(
        {
            "id": int,
            "subscriber_id": str,
            "kind": str,  # digest | alert
            "period": str,  # the local date of the digest, or the alert's paper id
            "channel": str,  # email | slack
            "state": str,  # pending | sent | failed | empty (nothing new for that slot)
            "message_id": str,
            "content_hash": str,
            "created": str,
            "sent_at": str,
            "attempts": int,
            "error": str,
        },
        pk="id",
    )
    db.table("deliveries").create_index(["subscriber_id", "kind", "period", "channel"], unique=True)
    db.table("delivery_papers").create(
        {"delivery_id": int, "paper_id": str, "rank": int, "score": float, "reasons": str},
        pk=("delivery_id", "paper_id"),
        foreign_keys=[("delivery_id", "deliveries", "id")],
    )
    db.table("delivery_papers").create_index(["paper_id"])
    db.table("subscriber_state").create(
        {"subscriber_id": str, "unsubscribed_at": str, "interests": str, "updated": str},
        pk="subscriber_id",
    )
    db.table("settings").create({"key": str, "value": str}, pk="key")
    db.table("events").create({"id": int, "at": str, "kind": str, "detail": str}, pk="id")


@migrations()
def m002_delivery_claims(db: sqlite_utils.Database) -> None:
    # who holds a pending delivery (a random token per sending run, its pid@host) and until
    # when; and, for a Slack digest split across messages, how many were accepted already
    db.table("deliveries").add_column("claim", str)
    db.table("deliveries").add_column("holder", str)
    db.table("deliveries").add_column("lease_until", str)
    db.table("deliveries").add_column("parts_sent", int, not_null_default=0)


@migrations()
def m003_library_and_extras(db: sqlite_utils.Database) -> None:
    """Seeds imported from a reader's library, the arXiv title look-ups that found them, and
    what a paper says beyond its abstract (TL;DR, keywords, code and project links)."""
    db.table("seeds").create(
        {"subscriber_id": str, "paper_id": str, "origin": str, "added": str},
        pk=("subscriber_id", "paper_id"),
    )
    db.table("seeds").create_index(["paper_id"])
    db.table("arxiv_title_lookups").create(
        {"title_key": str, "paper_id": str, "looked_up": str}, pk="title_key"
    )
    have = set(db.table("papers").columns_dict)  # 'keywords' came first as m002_paper_keywords
    for column in ("tldr", "tldr_source", "keywords", "code_url", "project_url"):
        if column not in have:
            db.table("papers").add_column(column, str)


@migrations()
def m004_embeddings(db: sqlite_utils.Database) -> None:
    # One vector per paper (float16 blob) from the model named beside it; written by
    # paperwire.rank.embed, which re-embeds when the model or the text (hash) changes.
    db.table("embeddings").create(
        {"paper_id": str, "model": str, "text_hash": str, "vector": bytes}, pk="paper_id"
    )


@migrations()
def m005_paper_terms(db: sqlite_utils.Database) -> None:
    # A paper's text analysed once (paperwire.rank.terms): hashed term columns (uint32 blob) and
    # their counts (uint8 blob), the word pairs a reason may name ("\n"-joined) and their
    # columns, beside the analyser's version and a hash of the text they were made from.
    db.table("paper_terms").create(
        {
            "paper_id": str,
            "analyser": str,
            "text_hash": str,
            "terms": bytes,
            "counts": bytes,
            "pairs": str,
            "pair_columns": bytes,
        },
        pk="paper_id",
    )


@migrations()
def m006_retries_and_seed_misses(db: sqlite_utils.Database) -> None:
    """A delivery that went out and got no answer in time ("maybe delivered") is
    retried only after ``retry_at``, and counted; library entries a seeds import could not
    match are kept, for ``status``."""
    db.table("deliveries").add_column("retry_at", str)
    db.table("deliveries").add_column("maybe_sent", int, not_null_default=0)
    db.table("seed_misses").create(
        {
            "subscriber_id": str,
            "origin": str,
            "entry": str,  # where in the file ("library.bib:12")
            "label": str,  # its title or text
            "why": str,
            "added": str,
        },
        pk=("subscriber_id", "origin", "entry"),
    )


@migrations()
def m007_text_vectors(db: sqlite_utils.Database) -> None:
    # Short texts' vectors (subscribers' interests), one per model and text hash: encoded once
    # by paperwire.rank.embed.text_vectors, not by every run that ranks 20,000 readers.
    db.table("text_vectors").create(
        {"model": str, "text_hash": str, "vector": bytes}, pk=("model", "text_hash")
    )


@migrations()
def m008_not_interested(db: sqlite_utils.Database) -> None:
    # The topics a reader does not want, as edited on the profile page beside the interests.
    db.table("subscriber_state").add_column("not_interested", str)


@migrations()
def m009_delivery_since(db: sqlite_utils.Database) -> None:
    # The start of the window a digest was composed from: a digest resumed by a later run (a
    # retry, a crash) says "received since ..." as its first try would.
    db.table("deliveries").add_column("since", str)


@migrations()
def m010_paper_keys(db: sqlite_utils.Database) -> None:
    # The keys a paper shares with its copies under other ids (paperwire.rank.twins), worked
    # out once, beside what they were made from (``made``: the keys' version, the text's hash
    # and the first author): a corpus build reads them, and a paper sent months ago that a
    # bounded corpus leaves out is still known by them when its copy comes.
    db.table("paper_keys").create({"paper_id": str, "made": str, "keys": str}, pk="paper_id")


@migrations()
def m011_unsubscribed_address(db: sqlite_utils.Database) -> None:
    # The address a reader unsubscribed with: an unsubscribe holds for the address, so a
    # reader whose id was edited in subscribers.yaml ("ada" to "ada-l") gets no mail again.
    db.table("subscriber_state").add_column("unsubscribed_address", str)


KNOWN_MIGRATIONS = frozenset(
    f.__name__
    for f in (
        m001_initial,
        m002_delivery_claims,
        m003_library_and_extras,
        m004_embeddings,
        m005_paper_terms,
        m006_retries_and_seed_misses,
        m007_text_vectors,
        m008_not_interested,
        m009_delivery_since,
        m010_paper_keys,
        m011_unsubscribed_address,
    )
)


# Names earlier paperwires recorded for a migration now known by another name (a branch's
# migration renumbered when it was merged), or, as None, one whose change a later migration
# makes itself. main ran 'm_issue16_library_and_extras' for 35 minutes (0552de1) and
# 'm002_paper_keywords' (62d4acf); the semantic branch numbered its embeddings m003. Their
# schemas are those of the migrations named here, so a store they made is renamed on open,
# not refused as "written by a newer paperwire".
RENAMED_MIGRATIONS: dict[str, str | None] = {
    "m_issue16_library_and_extras": "m003_library_and_extras",
    "m003_embeddings": "m004_embeddings",
    "m002_paper_keywords": None,
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Days of fetch, send and summariser events kept (the summariser's daily cap reads one day).
EVENTS_KEPT_DAYS = 30


def _corpus_scope(since: str, keep: Iterable[str]) -> tuple[str, dict[str, str]]:
    """The papers a bounded corpus holds (:meth:`Store.iter_corpus`), as a WHERE clause and
    its parameters: first seen after ``since``, voted on or seeded, or named in ``keep``."""
    where = (
        "first_seen > :since or paper_id in (select paper_id from votes union select paper_id"
        " from seeds union select value from json_each(:keep))"
    )
    return where, {"since": since, "keep": json.dumps(sorted(set(keep)))}


def iso(moment: dt.datetime) -> str:
    """UTC ISO 8601 with microseconds: stored dates compare correctly as text, and a paper
    fetched just after a digest was composed is not mistaken for one it already covered."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


T = TypeVar("T")


def explain(path: Path, exc: sqlite3.Error) -> StoreError:
    """One line for a SQLite failure: the file, what went wrong, and what to do about it."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_READONLY"):
        fix = "make the file and its folder writable by the user running paperwire"
        return StoreError(f"{path}: the database is read-only ({exc}); {fix}")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        fix = f"restore it from a backup (or try `sqlite3 {path} .recover`)"
        return StoreError(f"{path}: the database is damaged ({exc}); {fix}")
    if name.startswith("SQLITE_FULL"):
        fix = "free some space and run again: what was not recorded is done on the next run"
        return StoreError(f"{path}: the disk is full ({exc}); {fix}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        fix = "another process held it too long; run again, and look for a stuck paperwire"
        return StoreBusy(f"{path}: the database stayed locked for {BUSY_TIMEOUT:g} s; {fix}")
    if name.startswith("SQLITE_CANTOPEN"):
        fix = "check that its folder exists and is writable (or pass --db)"
        return StoreError(f"{path}: cannot open the database ({exc}); {fix}")
    if name.startswith("SQLITE_IOERR"):
        fix = "check the disk (dmesg) and free space, then run again"
        return StoreError(f"{path}: disk I/O error ({exc}); {fix}")
    return StoreError(f"{path}: SQLite failed: {exc}")


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """A Store method whose SQLite failures come out as one-line StoreErrors."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise explain(self.path, exc) from None

    return wrapper


def _guard_public_methods(cls: type[T]) -> type[T]:
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_") and name not in ("atomic", "close"):
            setattr(cls, name, _guarded(value))
    return cls


def holder_id() -> str:
    """This process, as recorded on the ledger rows it claims: ``pid@hostname``."""
    return f"{os.getpid()}@{socket.gethostname()}"


def holder_gone(holder: str | None) -> bool:
    """True when ``pid@host`` names a process of this host that no longer exists.

    A process on another host cannot be checked from here: its lease decides."""
    pid, _, host = (holder or "").partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but another user's
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet: dead, though the pid still answers."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@_guard_public_methods
class Store:
    """Read and write paperwire's state in one SQLite file, migrating it on open."""

    def __init__(self, path: str | Path, *, busy_timeout: float | None = None):
        self.path = Path(path)
        busy_timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        try:
            # isolation_level=None: no implicit deferred transactions; atomic() opens each one
            conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise explain(self.path, exc) from None
        self.db = sqlite_utils.Database(conn)
        try:
            self._rename_old_migrations()
            self._refuse_newer()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            if migrations.pending(self.db):
                with self.atomic():  # two processes opening a new file: one migrates it
                    migrations.apply(self.db)
        except sqlite3.Error as exc:
            self.db.close()
            raise explain(self.path, exc) from None
        except StoreError:
            self.db.close()
            raise

    def _rename_old_migrations(self) -> None:
        """Record a migration an earlier paperwire applied under another name by its name now
        (:data:`RENAMED_MIGRATIONS`), so it is neither refused as unknown nor applied twice."""
        applied = {m.name for m in migrations.applied(self.db)}
        old = [name for name in RENAMED_MIGRATIONS if name in applied]
        if not old:
            return
        where = f"from [{migrations.migrations_table}] where migration_set = ? and name = ?"
        with self.atomic():
            for name in old:
                new = RENAMED_MIGRATIONS[name]
                if new is None or new in applied:
                    self.db.execute(f"delete {where}", [migrations.name, name])
                else:
                    self.db.execute(
                        f"update [{migrations.migrations_table}] set name = ? "
                        "where migration_set = ? and name = ?",
                        [new, migrations.name, name],
                    )

    def _refuse_newer(self) -> None:
        """Never write into a database a newer paperwire has migrated: its schema is not ours."""
        from .. import __version__

        unknown = [m.name for m in migrations.applied(self.db) if m.name not in KNOWN_MIGRATIONS]
        if unknown:
            raise StoreError(
                f"{self.path}: written by a newer paperwire (migration {unknown[-1]} is unknown "
                f"to paperwire {__version__}); upgrade paperwire, or pass --db another file"
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def briefly(self, seconds: float = BRIEF_WAIT) -> Iterator[None]:
        """Writes within that wait ``seconds`` at most for another process's lock, not the busy
        timeout: for what is only a cache (a preview waited 30 s for each of three caches of
        interests' vectors behind a held lock, 93 s in all). StoreBusy if the lock stayed."""
        waits = self.db.execute("PRAGMA busy_timeout").fetchone()[0]
        self.db.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        try:
            yield
        except StoreBusy:
            raise StoreBusy(
                f"{self.path}: the database was locked by another process; not waited for"
            ) from None
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(waits)}")

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One write transaction: takes the write lock first (waiting up to the busy timeout),
        so it never fails half-way because another process wrote meanwhile. Nests."""
        if self.db.conn.in_transaction:
            with self.db.atomic():  # a savepoint inside the outer transaction
                yield
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise explain(self.path, exc) from None
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.db.rollback()
            raise explain(self.path, exc) from None

    # -- papers ---------------------------------------------------------------------------

    def add_papers(
        self, papers: Iterable[Paper], now: dt.datetime | None = None
    ) -> tuple[int, int]:
        """Merge papers into the store in one transaction; returns (new, already known).

        A known paper keeps its first-seen date (arXiv re-announces replacements and
        cross-lists; they must not look new), gains the new source, and takes the newest
        version's title and abstract.

        Without ``now``, a new paper is first seen when this transaction holds the write lock,
        not before it waited for it: a send starts its readers' next windows at its own start,
        and a paper stamped before that but written after the send read would fall between
        two windows for good (:meth:`settle` is the send's side of it).
        """
        batch: dict[str, Paper] = {}
        for paper in papers:
            if paper.paper_id in batch:
                batch[paper.paper_id] = _newer(batch[paper.paper_id], paper)
            else:
                batch[paper.paper_id] = paper
        if not batch:
            return 0, 0
        new = known = 0
        with self.atomic():
            stamp = iso(now or utcnow())
            existing = {
                row["paper_id"]: row
                for chunk in _chunks(list(batch), 500)
                for row in self.db.query(
                    f"select * from papers where paper_id in ({','.join('?' * len(chunk))})",
                    chunk,
                )
            }
            rows = []
            rewritten = []  # known papers whose title, abstract or authors change
            for paper_id, paper in batch.items():
                old = existing.get(paper_id)
                row = _paper_row(paper, stamp)
                if old is None:
                    new += 1
                else:
                    known += 1
                    row["first_seen"] = old["first_seen"]
                    sources = json.loads(old["sources"] or "[]")
                    if paper.source not in sources:
                        sources.append(paper.source)
                    row["sources"] = json.dumps(sources)
                    # an older version, or an item that only links the paper (a blog's):
                    # the stored text stays
                    if paper.names_only or (old["version"] or 0) > (paper.version or 0):
                        for key in ("title", "abstract", "version", "authors"):
                            row[key] = old[key]
                    if paper.names_only:  # nor what else another source said of it
                        for key in ("upvotes", "published", "url", "pdf_url", *_EXTRAS):
                            row[key] = old[key]
                    if old["upvotes"] is not None and paper.upvotes is None:
                        row["upvotes"] = old["upvotes"]
                    for key in _EXTRAS:  # a feed that says less does not erase what another said
                        if row[key] is None:
                            row[key] = old[key]
                    row["published"] = old["published"] or row["published"]
                    said = [] if paper.names_only else paper.categories
                    row["categories"] = json.dumps(
                        list(dict.fromkeys(json.loads(old["categories"] or "[]") + said))
                    )
                    if any(row[key] != old[key] for key in ("title", "abstract", "authors")):
                        rewritten.append(paper_id)
                rows.append(row)
            self.db.table("papers").upsert_all(rows, pk="paper_id")
            # their twin keys are made again when next read (rank/corpus.py): a paper that a
            # bounded corpus leaves out is known by its stored keys alone
            for chunk in _chunks(rewritten, 500):
                self.db.execute(
                    f"delete from paper_keys where paper_id in ({','.join('?' * len(chunk))})",
                    chunk,
                )
        return new, known

    def papers(self, paper_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Papers by id, decoded (authors, categories and sources as lists)."""
        ids = list(dict.fromkeys(paper_ids))
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ids, 500):
            sql = f"select * from papers where paper_id in ({','.join('?' * len(chunk))})"
            for row in self.db.query(sql, chunk):
                out[row["paper_id"]] = _decode(row)
        return out

    def texts(self, paper_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """(title, abstract) by paper id: what ranking reads of every candidate, as tuples, with
        none of :meth:`papers`' other columns or their JSON decoded (a run's 26,000 candidates:
        0.5 s of its start went to decoding authors, categories, sources and keywords)."""
        ids = list(dict.fromkeys(paper_ids))
        out: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(ids, 500):
            sql = f"select paper_id, title, abstract from papers where paper_id in ({','.join('?' * len(chunk))})"
            out.update(
                (paper_id, (title, abstract))
                for paper_id, title, abstract in self.db.execute(sql, chunk)
            )
        return out

    def paper(self, paper_id: str) -> dict[str, Any] | None:
        return self.papers([paper_id]).get(paper_id)

    def stored_id(self, written: str) -> str | None:
        """The stored paper a user means: an id as stored, or any way of writing an arXiv id
        (``arXiv:2504.04514``, ``2504.04514v2``, ``https://arxiv.org/abs/2504.04514v2``)."""
        written = written.strip()
        for candidate in (written, arxiv_id(written)):
            if candidate and self.paper(candidate) is not None:
                return candidate
        return None

    def corpus(self) -> list[dict[str, Any]]:
        """Every paper's id, title, abstract, authors (a JSON list), first-seen date, upvotes
        and key phrases (a JSON list or null), oldest first."""
        return list(self.iter_corpus())

    def iter_corpus(
        self, since: str | None = None, keep: Iterable[str] = (), *, keyed: bool = False
    ) -> Iterator[dict[str, Any]]:
        """:meth:`corpus` row by row, for a reader that keeps only part of each row (read it
        to the end before the next query). With ``since`` (a stored first-seen time, as
        :meth:`corpus_since` gives), only the papers first seen after it, every paper a reader
        voted on or imported as a seed, and the papers ``keep`` names. ``keyed``: each row
        also has its stored twin keys (:meth:`set_paper_keys`: ``keys_made`` and
        ``twin_keys``, None where the paper has none stored) and when it was last ``updated``."""
        columns = "select paper_id, title, abstract, authors, first_seen, upvotes, keywords"
        source = " from papers"
        if keyed:
            columns += ", updated, paper_keys.made as keys_made, paper_keys.keys as twin_keys"
            source += " left join paper_keys using (paper_id)"
        if since is None:
            return self.db.query(f"{columns}{source} order by first_seen, paper_id")
        where, params = _corpus_scope(since, keep)
        return self.db.query(
            f"{columns}{source} where {where} order by first_seen, paper_id", params
        )

    def iter_sent_outside_corpus(
        self, since: str, keep: Iterable[str] = ()
    ) -> Iterator[tuple[str, str | None, str | None]]:
        """(paper id, the stored twin keys' ``made`` and ``keys``, None where there are none)
        of every paper that went out to a reader (in a digest or an alert) and that a bounded
        corpus (:meth:`iter_corpus` with ``since`` and ``keep``) leaves out: what a preprint
        sent months ago is known by when its journal version comes (rank/twins.py). Voted and
        seeded papers are in the corpus already."""
        where, params = _corpus_scope(since, keep)
        # coalesce: a NULL anywhere in the clause would make "not (...)" NULL for every paper
        return self.db.execute(
            "select paper_id, paper_keys.made, paper_keys.keys from papers"
            " left join paper_keys using (paper_id) where not coalesce(("
            + where
            + "), 0) and paper_id in (select paper_id from delivery_papers)",
            params,
        )

    def corpus_count(self, since: str, keep: Iterable[str] = ()) -> int:
        """How many papers :meth:`iter_corpus` gives for ``since`` and ``keep``."""
        where, params = _corpus_scope(since, keep)
        row = self.db.execute(f"select count(*) from papers where {where}", params).fetchone()
        return int(row[0])

    def corpus_kept_before(self, since: str) -> tuple[str, ...]:
        """The papers a bounded corpus (:meth:`iter_corpus` with ``since``) holds though first
        seen at or before ``since``: those a reader voted on or imported as a seed. A vote on
        such a paper changes the corpus without changing :meth:`corpus_version`."""
        sql = (
            "select paper_id from papers where first_seen <= ? and paper_id in "
            "(select paper_id from votes union select paper_id from seeds) order by paper_id"
        )
        return tuple(row["paper_id"] for row in self.db.query(sql, [since]))

    def corpus_since(self, papers: int) -> str | None:
        """The first-seen time after which the ``papers`` most recently seen papers were first
        seen (more where the papers first seen at the bound's edge share one time: a fetch's
        papers are never split, nor left out); None when the store holds no more than that."""
        rows = [
            row["first_seen"]
            for row in self.db.query(
                "select first_seen from papers order by first_seen desc limit 2 offset ?",
                [papers - 1],
            )
        ]
        if len(rows) < 2:
            return None
        if rows[0] != rows[1]:
            return rows[1]
        # the last paper in and the first left out came in together (one fetch of more papers
        # than the bound): "after it" would leave out all of them, even the newest of all
        row = self.db.execute(
            "select max(first_seen) from papers where first_seen < ?", [rows[1]]
        ).fetchone()
        return row[0]

    def corpus_version(self) -> tuple[int, str | None]:
        """Changes whenever a paper is added or updated: (count, latest update)."""
        row = next(iter(self.db.query("select count(*) as n, max(updated) as u from papers")))
        return row["n"], row["u"]

    def count_papers(self) -> int:
        return self.db.table("papers").count

    def papers_since(self, since: dt.datetime) -> list[str]:
        sql = "select paper_id from papers where first_seen > ? order by first_seen, paper_id"
        return [r["paper_id"] for r in self.db.query(sql, [iso(since)])]

    def failed_alert_papers(
        self, subscriber_ids: Iterable[str], since: dt.datetime
    ) -> dict[str, set[str]]:
        """For each subscriber, the papers of their alerts made since ``since`` that failed on
        every channel: papers a digest must take back, or they reach the reader nowhere (a
        pending alert's paper is left out of digests, and by the time it fails the next
        digest's window has passed it)."""
        out: dict[str, set[str]] = {s: set() for s in subscriber_ids}
        sql = """
            select d.subscriber_id, dp.paper_id from delivery_papers dp
            join deliveries d on d.id = dp.delivery_id
            where d.kind = 'alert' and d.state = 'failed' and d.created >= ?
        """
        for subscriber_id, paper_id in self.db.execute(sql, [iso(since)]):
            if subscriber_id in out:
                out[subscriber_id].add(paper_id)
        return out

    def excluded_ids(self, subscriber_ids: Iterable[str]) -> dict[str, set[str]]:
        """For each subscriber, the papers already delivered (or in flight), rated, or
        imported as seeds."""
        return self._excluded(subscriber_ids, None)

    def excluded_and_own_ids(
        self, subscriber_ids: Iterable[str]
    ) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """For each subscriber, :meth:`excluded_ids`, and of those the papers they rated or
        imported as seeds (their own: their config's seeds are the caller's to add)."""
        own: dict[str, set[str]] = {}
        return self._excluded(subscriber_ids, own), own

    def _excluded(
        self, subscriber_ids: Iterable[str], own: dict[str, set[str]] | None
    ) -> dict[str, set[str]]:
        """:meth:`excluded_ids`, filling ``own`` (when given) with the rated and seeded ones in
        the same pass: a digest run, which needs no such split, builds no second set a reader."""
        excluded: dict[str, set[str]] = {s: set() for s in subscriber_ids}
        if own is not None:
            own.update((s, set()) for s in excluded)
        sql = """
            select 0, d.subscriber_id as s, dp.paper_id as p from delivery_papers dp
            join deliveries d on d.id = dp.delivery_id where d.state in ('pending', 'sent')
            union all select 1, subscriber_id, paper_id from votes
            union all select 1, subscriber_id, paper_id from seeds
        """
        # rows as tuples (~300,000 votes), kept in sets: SQLite need not sort them for "union"
        for theirs, subscriber_id, paper_id in self.db.execute(sql):
            if subscriber_id in excluded:
                excluded[subscriber_id].add(paper_id)
                if theirs and own is not None:
                    own[subscriber_id].add(paper_id)
        return excluded

    # -- feeds ----------------------------------------------------------------------------

    def feed_state(self, url: str) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from feeds where url = ?", [url]))
        return rows[0] if rows else None

    def record_feed(
        self,
        url: str,
        *,
        ok: bool,
        new: int = 0,
        etag: str | None = None,
        last_modified: str | None = None,
        error: str | None = None,
        forget_validators: bool = False,
        now: dt.datetime | None = None,
    ) -> None:
        """A fetch of the feed at ``url``: validators given are kept (none given: the last ones
        stay), ``forget_validators`` drops them (the next fetch is unconditional)."""
        stamp = iso(now or utcnow())
        row: dict[str, Any] = {"url": url, "last_fetch": stamp, "last_error": error}
        if ok:
            row.update(last_ok=stamp, last_new=new)
            if forget_validators:
                row.update(etag=None, last_modified=None)
            elif etag is not None or last_modified is not None:
                row.update(etag=etag, last_modified=last_modified)
        with self.atomic():
            self.db.table("feeds").upsert(row, pk="url")

    def forget_feed(self, url: str) -> None:
        """Drop the state row kept under ``url`` (one keyed by a URL with credentials)."""
        with self.atomic():
            self.db.table("feeds").delete_where("url = ?", [url])

    # -- votes ----------------------------------------------------------------------------

    def record_vote(
        self,
        subscriber_id: str,
        paper_id: str,
        vote: int,
        *,
        via: str,
        now: dt.datetime | None = None,
    ) -> None:
        """Set the subscriber's vote on a paper (+1 or -1); a later vote replaces an earlier one."""
        if vote not in (1, -1):
            raise ValueError("vote must be +1 or -1")
        with self.atomic():
            self.db.table("votes").upsert(
                {
                    "subscriber_id": subscriber_id,
                    "paper_id": paper_id,
                    "vote": vote,
                    "voted_at": iso(now or utcnow()),
                    "via": via,
                },
                pk=("subscriber_id", "paper_id"),
            )

    def record_votes(self, votes: Iterable[tuple[str, str, int]], *, via: str) -> int:
        stamp = iso(utcnow())
        rows = [
            {"subscriber_id": s, "paper_id": p, "vote": v, "voted_at": stamp, "via": via}
            for s, p, v in votes
        ]
        with self.atomic():
            self.db.table("votes").upsert_all(rows, pk=("subscriber_id", "paper_id"))
        return len(rows)

    def remove_vote(self, subscriber_id: str, paper_id: str) -> bool:
        with self.atomic():
            cursor = self.db.execute(
                "delete from votes where subscriber_id = ? and paper_id = ?",
                [subscriber_id, paper_id],
            )
        return cursor.rowcount > 0

    def vote(self, subscriber_id: str, paper_id: str) -> int | None:
        row = self.vote_row(subscriber_id, paper_id)
        return row["vote"] if row else None

    def vote_row(self, subscriber_id: str, paper_id: str) -> dict[str, Any] | None:
        """The subscriber's stored vote on one paper (subscriber_id, paper_id, vote, voted_at,
        via), or None: one row by the primary key, however many votes the reader has."""
        rows = list(
            self.db.query(
                "select * from votes where subscriber_id = ? and paper_id = ?",
                [subscriber_id, paper_id],
            )
        )
        return rows[0] if rows else None

    def votes(self, subscriber_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Votes (subscriber_id, paper_id, vote, voted_at), newest first; all of them, or only
        those of the given subscribers (indexed look-ups, 500 ids at a time)."""
        order = " order by voted_at desc, rowid desc"
        if subscriber_ids is None:
            return list(self.db.query("select * from votes" + order))
        out: list[dict[str, Any]] = []
        for chunk in _chunks(list(subscriber_ids), 500):
            where = f" where subscriber_id in ({','.join('?' * len(chunk))})"
            out.extend(self.db.query("select * from votes" + where + order, chunk))
        return out

    def vote_rows(self, subscriber_ids: Iterable[str]) -> list[tuple[str, str, int, str]]:
        """:meth:`votes` of the given subscribers as (subscriber_id, paper_id, vote, voted_at)
        tuples, in the same order: what ranking reads for every reader of a run (a dict a
        vote cost a digest of 20,000 readers ~1 s)."""
        out: list[tuple[str, str, int, str]] = []
        for chunk in _chunks(list(subscriber_ids), 500):
            out.extend(
                self.db.execute(
                    "select subscriber_id, paper_id, vote, voted_at from votes where "
                    f"subscriber_id in ({','.join('?' * len(chunk))}) "
                    "order by voted_at desc, rowid desc",
                    chunk,
                )
            )
        return out

    # -- the delivery ledger --------------------------------------------------------------

    def delivery(self, subscriber_id: str, kind: str, period: str, channel: str) -> dict | None:
        rows = list(
            self.db.query(
                "select * from deliveries where subscriber_id = ? and kind = ? and period = ? "
                "and channel = ?",
                [subscriber_id, kind, period, channel],
            )
        )
        return rows[0] if rows else None

    def handled(self, subscriber_id: str, kind: str, period: str) -> bool:
        """Whether the ledger has a row of this period for the reader, on any channel."""
        rows = self.db.query(
            "select 1 from deliveries where subscriber_id = ? and kind = ? and period = ? limit 1",
            [subscriber_id, kind, period],
        )
        return next(iter(rows), None) is not None

    def recorded(self, kind: str, periods: Iterable[str]) -> set[tuple[str, str, str]]:
        """(subscriber, period, channel) of every ledger entry of this kind for these periods."""
        out: set[tuple[str, str, str]] = set()
        for chunk in _chunks(sorted(periods), 500):
            sql = (
                "select subscriber_id, period, channel from deliveries where kind = ? "
                f"and period in ({','.join('?' * len(chunk))})"
            )
            out.update(
                (r["subscriber_id"], r["period"], r["channel"])
                for r in self.db.query(sql, [kind, *chunk])
            )
        return out

    def open_delivery(
        self,
        subscriber_id: str,
        kind: str,
        period: str,
        channel: str,
        *,
        message_id: str,
        content_hash: str,
        papers: list[tuple[str, float, list[str]]],
        claim: str | None = None,
        lease: dt.timedelta = LEASE,
        now: dt.datetime | None = None,
        since: dt.datetime | None = None,
    ) -> int | None:
        """Record a delivery as pending, with its papers (and a digest's window start,
        ``since``), before anything is sent.

        Committed before the first byte goes out, so a crash leaves a pending row that the next
        run resends with the same Message-ID (a duplicate is then detectable). Returns None if
        another process recorded the same delivery first (the unique index decides). With
        ``claim``, the row is born held by that run (see :meth:`claim_unsent`).
        """
        # plain SQL: sqlite-utils' insert() inspects the table on every call (16 statements a
        # delivery), which was 10 s of a 10,000-subscriber send under the profiler
        try:
            with self.atomic():
                delivery_id = self.db.execute(
                    "insert into deliveries (subscriber_id, kind, period, channel, state,"
                    " message_id, content_hash, created, attempts, claim, holder, lease_until,"
                    " since) values (?, ?, ?, ?, 'pending', ?, ?, ?, 0, ?, ?, ?, ?)",
                    [
                        subscriber_id,
                        kind,
                        period,
                        channel,
                        message_id,
                        content_hash,
                        iso(now or utcnow()),
                        claim,
                        holder_id() if claim else None,
                        iso(utcnow() + lease) if claim else None,
                        iso(since) if since else None,
                    ],
                ).lastrowid
                self.db.conn.executemany(
                    "insert into delivery_papers (delivery_id, paper_id, rank, score, reasons)"
                    " values (?, ?, ?, ?, ?)",
                    [
                        (delivery_id, paper_id, rank, float(score), json.dumps(reasons))
                        for rank, (paper_id, score, reasons) in enumerate(papers, 1)
                    ],
                )
        except sqlite3.IntegrityError:
            return None  # the unique index: another process recorded it first
        return delivery_id

    def record_empty(
        self,
        subscriber_id: str,
        kind: str,
        period: str,
        channel: str,
        *,
        reason: str,
        now: dt.datetime | None = None,
    ) -> None:
        """Note that a slot had nothing to send, so it is reported once and not re-checked."""
        with self.atomic():
            self.db.execute(
                "insert or ignore into deliveries (subscriber_id, kind, period, channel, state,"
                " created, attempts, error) values (?, ?, ?, ?, 'empty', ?, 0, ?)",
                [subscriber_id, kind, period, channel, iso(now or utcnow()), reason],
            )

    def delivery_papers(self, delivery_id: int) -> list[dict[str, Any]]:
        rows = self.db.query(
            "select * from delivery_papers where delivery_id = ? order by rank", [delivery_id]
        )
        return [{**r, "reasons": json.loads(r["reasons"] or "[]")} for r in rows]

    def mark_delivery(
        self,
        delivery_id: int,
        state: str,
        *,
        error: str | None = None,
        now: dt.datetime | None = None,
        retry_at: dt.datetime | None = None,
        maybe_sent: int | None = None,
        tried: bool = True,
    ) -> bool:
        """Move a delivery to sent / failed / pending, counting the attempt (unless it was
        not ``tried``: the run ran out of time first); a pending one with ``retry_at`` waits
        until then (it was maybe delivered ``maybe_sent`` times). Never out of sent: a message
        given up on at its deadline may be accepted, and recorded (:meth:`record_late_part`),
        before its run settles it. Returns False when the row was sent already and stays so."""
        if state not in ("pending", "sent", "failed"):
            raise ValueError(state)
        row = {"state": state, "error": error}
        if state == "sent":
            row["sent_at"] = iso(now or utcnow())
        # whatever the outcome, the run lets go of the row: a pending one is free for the next run
        with self.atomic():
            # a row already sent stays sent (only let go of)
            self.db.execute(
                "update deliveries set claim = null, holder = null, lease_until = null "
                "where id = :id and state = 'sent' and :state != 'sent'",
                {"id": delivery_id, "state": state},
            )
            cursor = self.db.execute(
                "update deliveries set state = :state, error = :error, "
                "sent_at = coalesce(:sent_at, sent_at), attempts = attempts + :tried, "
                "retry_at = :retry_at, maybe_sent = coalesce(:maybe_sent, maybe_sent), "
                "claim = null, holder = null, lease_until = null "
                "where id = :id and (state != 'sent' or :state = 'sent')",
                {
                    "sent_at": row.get("sent_at"),
                    "id": delivery_id,
                    "retry_at": iso(retry_at) if retry_at else None,
                    "maybe_sent": maybe_sent,
                    "tried": int(tried),
                    **row,
                },
            )
        return cursor.rowcount > 0

    def unsent_deliveries(self, subscriber_id: str | None = None) -> list[dict[str, Any]]:
        """Pending deliveries, whoever holds them (a run in flight, a crash, an outage)."""
        sql = "select * from deliveries where state = 'pending'"
        params: list[Any] = []
        if subscriber_id:
            sql += " and subscriber_id = ?"
            params.append(subscriber_id)
        return list(self.db.query(sql + " order by id", params))

    def claim_unsent(
        self,
        claim: str,
        subscriber_id: str | None = None,
        *,
        lease: dt.timedelta = LEASE,
        run_time: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Claim, for the run ``claim``, each pending delivery nobody holds any more: never
        claimed or let go, its lease run out, or its holder's process gone; and not waiting
        for a retry later than ``run_time`` (the run's clock). Returns them.

        Each row is taken with a compare-and-set on its previous claim, so of two runs that
        both saw it free only one wins, whatever the transaction does."""
        now = utcnow()
        due = iso(run_time or now)
        won: list[int] = []
        with self.atomic():
            for row in self.unsent_deliveries(subscriber_id):
                if row["retry_at"] and row["retry_at"] > due:
                    continue  # maybe delivered: sent again only after its back-off
                free = (
                    row["claim"] is None
                    or (row["lease_until"] or "") < iso(now)
                    or holder_gone(row["holder"])
                )
                if free and self._take(row["id"], row["claim"], claim, now + lease):
                    won.append(row["id"])
        if not won:
            return []
        rows = self.db.query(
            f"select * from deliveries where id in ({','.join('?' * len(won))}) order by id", won
        )
        return list(rows)

    def _take(self, delivery_id: int, previous: str | None, claim: str, until: dt.datetime) -> bool:
        cursor = self.db.execute(
            "update deliveries set claim = ?, holder = ?, lease_until = ? "
            "where id = ? and state = 'pending' and claim is ?",
            [claim, holder_id(), iso(until), delivery_id, previous],
        )
        return cursor.rowcount == 1

    def renew_claim(self, claim: str, *, lease: dt.timedelta = LEASE) -> int:
        """Push the lease of every row the run still holds; returns how many it holds."""
        with self.atomic():
            cursor = self.db.execute(
                "update deliveries set lease_until = ? where claim = ? and state = 'pending'",
                [iso(utcnow() + lease), claim],
            )
        return cursor.rowcount

    def release_claim(self, claim: str) -> None:
        """Let go of what the run still holds (it stopped): the next run resumes it at once."""
        with self.atomic():
            self.db.execute(
                "update deliveries set claim = null, holder = null, lease_until = null "
                "where claim = ? and state = 'pending'",
                [claim],
            )

    def settle(self) -> None:
        """Wait until the write that holds the write lock now has committed: an empty write
        transaction (SQLite grants the lock only once that writer is done). What a writer
        stamped while holding the lock before this call is then visible to what reads after
        (one still waiting for the lock stamps after it gets it)."""
        with self.atomic():
            pass

    @contextmanager
    def holding(self, *, lease: dt.timedelta = LEASE) -> Iterator[str]:
        """A claim token for one sending run. While the run lasts, a thread renews the lease
        of every row it holds (on a connection of its own, so a slow message or a long render
        never lets it lapse); at the end, what the run still holds is let go."""
        claim = secrets.token_hex(8)
        finished = threading.Event()
        keeper = threading.Thread(
            target=self._keep_lease,
            args=(claim, lease, finished),
            name="paperwire-lease",
            daemon=True,
        )
        keeper.start()
        try:
            yield claim
        finally:
            finished.set()
            keeper.join()
            try:
                self.release_claim(claim)
            except StoreError as exc:  # the rows' holder is this process: once gone, resumed
                log.warning("%s", exc)

    def _keep_lease(self, claim: str, lease: dt.timedelta, finished: threading.Event) -> None:
        every = lease.total_seconds() / 3
        other: Store | None = None
        try:
            while not finished.wait(every):
                try:
                    other = other or Store(self.path)
                    other.renew_claim(claim, lease=lease)
                except StoreError as exc:
                    log.warning("cannot renew the claim on pending deliveries: %s", exc)
        finally:
            if other is not None:
                other.close()

    def record_parts(self, delivery_id: int, parts_sent: int) -> None:
        """How many messages of a split (Slack) delivery were accepted: a resend starts after."""
        with self.atomic():
            self.db.execute(
                "update deliveries set parts_sent = ? where id = ?", [parts_sent, delivery_id]
            )

    def record_late_part(
        self, delivery_id: int, part: int, parts: int, *, now: dt.datetime | None = None
    ) -> None:
        """Message ``part`` of ``parts`` of a delivery was accepted after its run gave up
        waiting for it: a resend starts after it, and the last one makes the delivery sent
        (also one failed meanwhile for being maybe delivered too often: it did arrive)."""
        with self.atomic():
            self.db.execute(
                "update deliveries set parts_sent = max(coalesce(parts_sent, 0), ?) "
                "where id = ? and state in ('pending', 'failed')",
                [part, delivery_id],
            )
            if part >= parts:
                self.db.execute(
                    "update deliveries set state = 'sent', sent_at = ?, error = null, "
                    "retry_at = null where id = ? and state in ('pending', 'failed')",
                    [iso(now or utcnow()), delivery_id],
                )

    def last_delivery(self, subscriber_id: str, kind: str = "digest") -> dict[str, Any] | None:
        rows = list(
            self.db.query(
                "select * from deliveries where subscriber_id = ? and kind = ? "
                "order by created desc, id desc limit 1",
                [subscriber_id, kind],
            )
        )
        return rows[0] if rows else None

    def last_digest_times(self, subscriber_ids: Iterable[str]) -> dict[str, dt.datetime]:
        """When each subscriber's last digest (sent or in flight) was composed: the start of
        their next window. One query; subscribers with no digest yet are absent."""
        wanted = set(subscriber_ids)
        rows = self.db.query(
            "select subscriber_id, max(created) as t from deliveries where kind = 'digest' "
            "and state in ('pending', 'sent') group by subscriber_id"
        )
        return {
            r["subscriber_id"]: dt.datetime.fromisoformat(r["t"])
            for r in rows
            if r["subscriber_id"] in wanted
        }

    def last_composed(self, subscriber_ids: Iterable[str]) -> dict[str, tuple[dt.datetime, str]]:
        """When each subscriber's last digest was composed, whatever became of it (sent, in
        flight, failed, or empty: nothing to send), and its period; those with none are absent.
        Indexed look-ups, 500 ids at a time."""
        out: dict[str, tuple[dt.datetime, str]] = {}
        for chunk in _chunks(sorted(set(subscriber_ids)), 500):
            # SQLite: the bare column (period) comes from the row that holds the max
            sql = (
                "select subscriber_id, max(created) as t, period from deliveries where "
                f"kind = 'digest' and subscriber_id in ({','.join('?' * len(chunk))}) "
                "group by subscriber_id"
            )
            for r in self.db.query(sql, chunk):
                out[r["subscriber_id"]] = (dt.datetime.fromisoformat(r["t"]), r["period"])
        return out

    def alerted(self, subscriber_id: str, paper_ids: list[str]) -> set[str]:
        """Of these papers, those whose alert to the reader is in flight or sent (any
        channel): what a digest opened now must leave out."""
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(paper_ids)), 500):
            rows = self.db.execute(
                "select period from deliveries where subscriber_id = ? and kind = 'alert' "
                f"and state in ('pending', 'sent') and period in ({','.join('?' * len(chunk))})",
                [subscriber_id, *chunk],
            )
            found.update(r[0] for r in rows)
        return found

    def in_a_digest(self, subscriber_id: str, paper_id: str) -> bool:
        """Whether a digest to the reader in flight or sent holds this paper: an alert for it
        opened now would send it twice."""
        row = self.db.execute(
            "select 1 from delivery_papers dp join deliveries d on d.id = dp.delivery_id "
            "where d.subscriber_id = ? and d.kind = 'digest' and d.state in ('pending', 'sent') "
            "and dp.paper_id = ? limit 1",
            [subscriber_id, paper_id],
        ).fetchone()
        return row is not None

    def alerts_since(self, subscriber_id: str, since: dt.datetime) -> int:
        rows = self.db.query(
            "select count(distinct period) as n from deliveries where subscriber_id = ? "
            "and kind = 'alert' and created >= ? and state in ('pending', 'sent')",
            [subscriber_id, iso(since)],
        )
        return next(iter(rows))["n"]

    def deliveries(self, subscriber_id: str | None = None, limit: int = 50) -> list[dict]:
        sql = "select * from deliveries"
        params: list[Any] = []
        if subscriber_id:
            sql += " where subscriber_id = ?"
            params.append(subscriber_id)
        return list(self.db.query(sql + " order by id desc limit ?", [*params, limit]))

    # -- subscribers' own changes ---------------------------------------------------------

    def set_unsubscribed(
        self, subscriber_id: str, unsubscribed: bool, address: str | None = None
    ) -> None:
        """Unsubscribe a reader (``address``: their e-mail address, which the unsubscribe
        then holds for under any id: :meth:`unsubscribes`), or subscribe them again: then
        every unsubscribe that holds for them goes, the one under this id, under the same id
        in other case, and under another id with this ``address``, or "subscribe again"
        would leave them as unsubscribed as before."""
        with self.atomic():
            if not unsubscribed:
                self.db.execute(
                    "update subscriber_state set unsubscribed_at = null,"
                    " unsubscribed_address = null, updated = ?"
                    " where unsubscribed_at is not null and (lower(subscriber_id) = ?"
                    " or (unsubscribed_address is not null and unsubscribed_address = ?))",
                    [iso(utcnow()), subscriber_id.lower(), (address or "").strip().lower()],
                )
            self.db.table("subscriber_state").upsert(
                {
                    "subscriber_id": subscriber_id,
                    "unsubscribed_at": iso(utcnow()) if unsubscribed else None,
                    "unsubscribed_address": address.strip().lower()
                    if unsubscribed and address
                    else None,
                    "updated": iso(utcnow()),
                },
                pk="subscriber_id",
            )

    def set_interests(
        self, subscriber_id: str, interests: str | None, not_interested: str | None
    ) -> None:
        """The interests and the topics not wanted, as the profile form saves them together;
        None clears an edit, so the config's text applies again."""
        with self.atomic():
            self.db.table("subscriber_state").upsert(
                {
                    "subscriber_id": subscriber_id,
                    "interests": interests,
                    "not_interested": not_interested,
                    "updated": iso(utcnow()),
                },
                pk="subscriber_id",
            )

    def unsubscribed(self) -> set[str]:
        rows = self.db.query(
            "select subscriber_id from subscriber_state where unsubscribed_at is not null"
        )
        return {r["subscriber_id"] for r in rows}

    def unsubscribes(self, readers: Iterable[tuple[str, str | None]]) -> dict[str, str]:
        """Reader id -> how they unsubscribed, for those of ``readers`` (id, e-mail address)
        who did: by a link to this id, or to the same id in other case (the config holds them
        for one reader), or by a link to another id with this reader's address (an id edited
        in subscribers.yaml: "ada" became "ada-l"; an unsubscribe is the address's, and mail
        after it the one thing never to send). What ``send``, the alerts, ``status`` and the
        web pages all go by."""
        rows = self.db.query(
            "select subscriber_id, unsubscribed_address from subscriber_state"
            " where unsubscribed_at is not null"
        )
        ids = {r["subscriber_id"]: r["unsubscribed_address"] for r in rows}
        by_case = {gone.lower(): gone for gone in ids}
        addresses = {address: gone for gone, address in ids.items() if address}
        out = {}
        for reader_id, email in readers:
            address = (email or "").strip().lower()
            if reader_id in ids:
                out[reader_id] = "unsubscribed by link"
            elif reader_id.lower() in by_case:
                out[reader_id] = f"unsubscribed by link as {by_case[reader_id.lower()]!r}"
            elif address and address in addresses:
                out[reader_id] = f"{address} unsubscribed by link as {addresses[address]!r}"
        return out

    def interests_overrides(self) -> dict[str, str]:
        return self._edits("interests")

    def not_interested_overrides(self) -> dict[str, str]:
        return self._edits("not_interested")

    def _edits(self, column: str) -> dict[str, str]:
        """Subscriber id -> the text they edited on the profile page (``column``: one of
        subscriber_state's text columns, never a caller's string)."""
        rows = self.db.query(
            f"select subscriber_id, {column} from subscriber_state where {column} is not null"
        )
        return {r["subscriber_id"]: r[column] for r in rows}

    # -- settings and events --------------------------------------------------------------

    def retry_now(self, channel: str) -> int:
        """Let the pending deliveries of ``channel`` waiting out a back-off go at the next run,
        except those maybe delivered (one may have arrived: they keep their wait); how many."""
        with self.atomic():
            cursor = self.db.execute(
                "update deliveries set retry_at = null where state = 'pending' and channel = ? "
                "and retry_at is not null and maybe_sent = 0",
                [channel],
            )
        return cursor.rowcount

    def setting(self, key: str) -> str | None:
        rows = list(self.db.query("select value from settings where key = ?", [key]))
        return rows[0]["value"] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        with self.atomic():
            self.db.execute(
                "insert into settings (key, value) values (?, ?) "
                "on conflict (key) do update set value = excluded.value",
                [key, value],
            )

    def feed_generations(self) -> dict[str, int]:
        """Each subscriber's feed key generation, for those whose feed URL was ever rotated."""
        rows = self.db.query("select key, value from settings where key glob 'feed_generation:*'")
        return {r["key"].split(":", 1)[1]: int(r["value"]) for r in rows}

    def rotate_feed(self, subscriber_id: str) -> int:
        """A new feed key generation for one subscriber: their old feed URL stops working."""
        key = f"feed_generation:{subscriber_id}"
        with self.atomic():
            self.db.execute(
                "insert into settings (key, value) values (?, '1') on conflict(key) "
                "do update set value = cast(value as integer) + 1",
                [key],
            )
        return int(self.setting(key) or 0)

    def generated_secret(self) -> str:
        """A random signing key kept in the database, for installs without PAPERWIRE_SECRET."""
        key = self.setting("generated_secret")
        if key is None:
            with self.atomic():
                self.db.execute(
                    "insert or ignore into settings (key, value) values ('generated_secret', ?)",
                    [secrets.token_urlsafe(32)],
                )
            key = self.setting("generated_secret")
            if key is None:  # the row was just written in this transaction's database
                raise StoreError(f"{self.path}: could not keep a generated signing key")
        return key

    def log_event(self, kind: str, detail: dict[str, Any]) -> None:
        """Record a fetch or send run (``/healthz`` reads the last of each). A fetch also lets
        go of events older than :data:`EVENTS_KEPT_DAYS`: the daemon records a send every tick
        (2,880 a day at 30 s), and nothing reads an old one."""
        now = utcnow()
        with self.atomic():
            self.db.execute(
                "insert into events (at, kind, detail) values (?, ?, ?)",
                [iso(now), kind, json.dumps(detail)],
            )
            if kind == "fetch":
                self.db.execute(
                    "delete from events where at < ?",
                    [iso(now - dt.timedelta(days=EVENTS_KEPT_DAYS))],
                )

    def last_event(self, kind: str) -> dict[str, Any] | None:
        rows = list(
            self.db.query("select * from events where kind = ? order by id desc limit 1", [kind])
        )
        return {**rows[0], "detail": json.loads(rows[0]["detail"])} if rows else None

    # -- seeds from a reader's library, arXiv title look-ups ------------------------------

    def add_seeds(
        self, subscriber_id: str, paper_ids: Iterable[str], *, origin: str, now=None
    ) -> int:
        """Record papers as a subscriber's seeds (profile signal, never a pick); returns how
        many were not seeds already."""
        stamp = iso(now or utcnow())
        rows = [
            {"subscriber_id": subscriber_id, "paper_id": p, "origin": origin, "added": stamp}
            for p in dict.fromkeys(paper_ids)
        ]
        before = self.db.table("seeds").count
        with self.atomic():
            self.db.table("seeds").insert_all(rows, pk=("subscriber_id", "paper_id"), ignore=True)
        return self.db.table("seeds").count - before

    def drop_seeds_not_in(self, subscriber_id: str, origin: str, paper_ids: Iterable[str]) -> int:
        """Remove the reader's seeds an earlier import of ``origin`` gave that are not among
        ``paper_ids`` (the library as it is now: an entry removed from it is no seed any more);
        returns how many."""
        keep = set(paper_ids)
        rows = self.db.execute(
            "select paper_id from seeds where subscriber_id = ? and origin = ?",
            [subscriber_id, origin],
        ).fetchall()
        gone = [p for (p,) in rows if p not in keep]
        with self.atomic():
            for chunk in _chunks(gone, 500):
                self.db.execute(
                    f"delete from seeds where subscriber_id = ? and origin = ? "
                    f"and paper_id in ({','.join('?' * len(chunk))})",
                    [subscriber_id, origin, *chunk],
                )
        return len(gone)

    def remove_seeds(
        self, subscriber_id: str, *, origin: str | None = None, paper_ids: Iterable[str] = ()
    ) -> int:
        """Remove a reader's imported seeds: those of ``paper_ids``, else those an import of
        ``origin`` gave, else all of them; the entries those imports could not match go with
        them. Returns how many seeds were removed."""
        ids = list(paper_ids)
        where, params = "subscriber_id = ?", [subscriber_id]
        if ids:
            where += f" and paper_id in ({','.join('?' * len(ids))})"
            params += ids
        elif origin is not None:
            where += " and origin = ?"
            params.append(origin)
        with self.atomic():
            removed = self.db.execute(f"delete from seeds where {where}", params).rowcount
            if not ids:
                misses, values = "subscriber_id = ?", [subscriber_id]
                if origin is not None:
                    misses += " and origin = ?"
                    values.append(origin)
                self.db.execute(f"delete from seed_misses where {misses}", values)
        return removed

    def seed_rows(self, subscriber_id: str) -> list[dict[str, Any]]:
        """A reader's imported seeds: paper id, the import (file name) it came from, when."""
        return list(
            self.db.query(
                "select paper_id, origin, added from seeds where subscriber_id = ? order by rowid",
                [subscriber_id],
            )
        )

    def seeds(self, subscriber_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Imported seed papers by subscriber, in the order they were added."""
        out: dict[str, list[str]] = {}
        ids = None if subscriber_ids is None else list(subscriber_ids)
        chunks = [None] if ids is None else list(_chunks(ids, 500))
        for chunk in chunks:
            sql = "select subscriber_id, paper_id from seeds"
            if chunk is not None:
                sql += f" where subscriber_id in ({','.join('?' * len(chunk))})"
            for row in self.db.query(sql + " order by rowid", chunk or []):
                out.setdefault(row["subscriber_id"], []).append(row["paper_id"])
        return out

    def set_seed_misses(
        self,
        subscriber_id: str,
        origin: str,
        misses: Iterable[tuple[str, str, str]],
        *,
        now: dt.datetime | None = None,
    ) -> None:
        """Replace what an import of ``origin`` could not match: (where, label, why) each."""
        stamp = iso(now or utcnow())
        rows = [
            {"subscriber_id": subscriber_id, "origin": origin, "entry": where, "label": label,
             "why": why, "added": stamp}
            for where, label, why in misses
        ]  # fmt: skip
        with self.atomic():
            self.db.table("seed_misses").delete_where(
                "subscriber_id = ? and origin = ?", [subscriber_id, origin]
            )
            self.db.table("seed_misses").insert_all(rows, pk=("subscriber_id", "origin", "entry"))

    def seed_misses(self, subscriber_id: str) -> list[dict[str, Any]]:
        """Library entries the reader's imports could not match, in file order per import."""
        return list(
            self.db.query(
                "select * from seed_misses where subscriber_id = ? order by origin, rowid",
                [subscriber_id],
            )
        )

    def titles(self) -> Iterator[tuple[str, str]]:
        """Every stored paper's (id, title)."""
        yield from self.db.execute("select paper_id, title from papers").fetchall()

    def picks_sent(self, subscriber_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The papers a subscriber was sent (any channel, digests and alerts), newest first,
        each once: paper_id, reasons, when it was first sent (``sent_at``)."""
        rows = self.db.query(
            "select dp.paper_id, dp.reasons, min(d.sent_at) as sent_at, min(d.id) as delivery,"
            " min(dp.rank) as rank from delivery_papers dp join deliveries d"
            " on d.id = dp.delivery_id where d.subscriber_id = ? and d.state = 'sent'"
            " group by dp.paper_id order by sent_at desc, delivery desc, rank limit ?",
            [subscriber_id, limit],
        )
        return [{**r, "reasons": json.loads(r["reasons"] or "[]")} for r in rows]

    def set_tldr(self, paper_id: str, tldr: str, *, source: str) -> None:
        """Store a TL;DR written for a paper (by the summariser): it is written once."""
        self.db.execute(
            "update papers set tldr = ?, tldr_source = ? where paper_id = ?",
            [tldr, source, paper_id],
        )
        self.db.conn.commit()

    def record_summary_request(self, paper_id: str, outcome: str, now: dt.datetime) -> None:
        """Log one summariser request (each counts against the daily cap, failed ones too)."""
        self.db.table("events").insert(
            {
                "at": iso(now),
                "kind": "summary",
                "detail": json.dumps({"paper": paper_id, "outcome": outcome}),
            }
        )

    def summary_requests_since(self, since: dt.datetime) -> int:
        rows = self.db.query(
            "select count(*) as n from events where kind = 'summary' and at >= ?", [iso(since)]
        )
        return next(iter(rows))["n"]

    def title_lookup(self, title_key: str) -> dict[str, Any] | None:
        """A cached arXiv title search: ``paper_id`` (None when nothing matched), ``looked_up``."""
        rows = list(
            self.db.query("select * from arxiv_title_lookups where title_key = ?", [title_key])
        )
        return rows[0] if rows else None

    def record_title_lookup(self, title_key: str, paper_id: str | None, now=None) -> None:
        self.db.table("arxiv_title_lookups").upsert(
            {"title_key": title_key, "paper_id": paper_id, "looked_up": iso(now or utcnow())},
            pk="title_key",
        )

    # -- paper vectors for semantic ranking (written by paperwire.rank.embed) ---------------------

    def embeddings(self, paper_ids: Iterable[str]) -> dict[str, tuple[str, str, bytes]]:
        """Stored vectors by paper id: (model name, text hash, float16 blob)."""
        ids = list(dict.fromkeys(paper_ids))
        out: dict[str, tuple[str, str, bytes]] = {}
        for chunk in _chunks(ids, 500):
            sql = (
                "select paper_id, model, text_hash, vector from embeddings "
                f"where paper_id in ({','.join('?' * len(chunk))})"
            )
            for row in self.db.execute(sql, chunk).fetchall():
                out[row[0]] = (row[1], row[2], row[3])
        return out

    def embeddings_made(self) -> dict[str, tuple[str, str, int]]:
        """(model name, text hash, vector length in bytes) of every stored paper vector, by
        paper id: what is up to date, without reading the vectors."""
        sql = "select paper_id, model, text_hash, length(vector) from embeddings"
        return {row[0]: (row[1], row[2], row[3]) for row in self.db.execute(sql).fetchall()}

    def text_vectors(self, model: str, hashes: list[str]) -> dict[str, bytes]:
        """Stored vectors of short texts (interests) by text hash, for this model."""
        out: dict[str, bytes] = {}
        for chunk in _chunks(list(dict.fromkeys(hashes)), 500):
            sql = (
                "select text_hash, vector from text_vectors where model = ? "
                f"and text_hash in ({','.join('?' * len(chunk))})"
            )
            out.update(self.db.execute(sql, [model, *chunk]).fetchall())
        return out

    def set_text_vectors(self, rows: Iterable[tuple[str, str, bytes]]) -> None:
        """Store (model, text hash, float16 blob) rows in one transaction."""
        with self.atomic():
            self.db.table("text_vectors").upsert_all(
                ({"model": m, "text_hash": h, "vector": b} for m, h, b in rows),
                pk=("model", "text_hash"),
            )

    def set_embeddings(self, rows: Iterable[tuple[str, str, str, bytes]]) -> None:
        """Store (paper id, model name, text hash, blob) rows in one transaction, replacing a
        paper's earlier vector (one per paper: a model change re-embeds every paper)."""
        with self.atomic():
            self.db.table("embeddings").upsert_all(
                (
                    {"paper_id": pid, "model": model, "text_hash": digest, "vector": blob}
                    for pid, model, digest, blob in rows
                ),
                pk="paper_id",
            )

    # -- each paper's text analysed once (written by paperwire.rank.terms) ------------------------

    def paper_terms_made(self) -> dict[str, tuple[str, str]]:
        """(analyser, text hash) of every stored analysis, by paper id: what is up to date."""
        sql = "select paper_id, analyser, text_hash from paper_terms"
        return {row[0]: (row[1], row[2]) for row in self.db.execute(sql).fetchall()}

    def paper_terms(
        self, analyser: str, paper_ids: Iterable[str] | None = None
    ) -> dict[str, tuple[str, bytes, bytes, str, bytes]]:
        """Every analysis this analyser made (of these papers, when given), by paper id:
        (text hash, terms, counts, pairs, pair columns)."""
        sql = (
            "select paper_id, text_hash, terms, counts, pairs, pair_columns from paper_terms "
            "where analyser = ?"
        )
        if paper_ids is None:
            return {row[0]: row[1:] for row in self.db.execute(sql, [analyser]).fetchall()}
        out: dict[str, tuple[str, bytes, bytes, str, bytes]] = {}
        for chunk in _chunks(list(paper_ids), 500):
            query = f"{sql} and paper_id in ({','.join('?' * len(chunk))})"
            out.update((row[0], row[1:]) for row in self.db.execute(query, [analyser, *chunk]))
        return out

    def set_paper_keys(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """Store papers' twin keys as (paper id, what they were made from, the keys joined by
        newlines, the paper's ``updated`` when it was read) in one transaction, replacing a
        paper's earlier ones; not a paper stored again since it was read (a fetch's new
        version, whose keys :meth:`add_papers` dropped, must not get the old text's back)."""
        with self.atomic():
            self.db.conn.executemany(
                "insert or replace into paper_keys (paper_id, made, keys) select ?, ?, ?"
                " where exists (select 1 from papers where paper_id = ? and updated = ?)",
                (
                    (paper_id, made, keys, paper_id, updated)
                    for paper_id, made, keys, updated in rows
                ),
            )

    def key_sources(self, paper_ids: Iterable[str]) -> list[dict[str, Any]]:
        """What twin keys are made from, by paper id: its title, abstract, authors (the JSON
        list as stored) and ``updated``, for papers :meth:`iter_sent_outside_corpus` found
        without keys."""
        ids = list(dict.fromkeys(paper_ids))
        columns = "paper_id, title, abstract, authors, updated"
        return [
            row
            for chunk in _chunks(ids, 500)
            for row in self.db.query(
                f"select {columns} from papers where paper_id in ({','.join('?' * len(chunk))})",
                chunk,
            )
        ]

    def set_paper_terms(self, rows: Iterable[dict[str, Any]]) -> None:
        """Store analyses (the columns of ``paper_terms``) in one transaction, replacing a
        paper's earlier one."""
        with self.atomic():
            self.db.table("paper_terms").upsert_all(rows, pk="paper_id")


_EXTRAS = ("tldr", "tldr_source", "keywords", "code_url", "project_url")  # beyond the abstract


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _newer(a: Paper, b: Paper) -> Paper:
    """Of two sightings of one paper in the same fetch, keep the later version's text, and a
    source's own over an item that only links it."""
    if a.names_only != b.names_only:
        keep = a if b.names_only else b
    else:
        keep = b if (b.version or 0) >= (a.version or 0) else a
    other = a if keep is b else b
    if other.names_only:  # an item that only names the paper lends it nothing
        return keep
    if keep.upvotes is None:
        keep.upvotes = other.upvotes
    if not keep.keywords:
        keep.keywords = other.keywords
    return keep


def _paper_row(paper: Paper, stamp: str) -> dict[str, Any]:
    return {
        "paper_id": paper.paper_id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": json.dumps(paper.authors),
        "categories": json.dumps(paper.categories),
        "url": paper.url,
        "pdf_url": paper.pdf_url,
        "published": paper.published,
        "first_seen": stamp,
        "updated": stamp,
        "version": paper.version,
        "upvotes": paper.upvotes,
        "sources": json.dumps([paper.source]),
        "announce_type": paper.announce_type,
        "tldr": paper.tldr,
        "tldr_source": "feed" if paper.tldr else None,
        "keywords": json.dumps(paper.keywords) if paper.keywords else None,
        "code_url": paper.code_url,
        "project_url": paper.project_url,
    }


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "authors": json.loads(row["authors"] or "[]"),
        "categories": json.loads(row["categories"] or "[]"),
        "sources": json.loads(row["sources"] or "[]"),
        "keywords": json.loads(row.get("keywords") or "[]"),
    }
