"""The SQLite store: the only module that reads or writes the database.

Tables: ``papers`` (one row per paper, arXiv versions merged), ``feeds`` (HTTP validators and
last result per feed), ``votes`` (the latest thumbs per subscriber and paper), ``deliveries``
and ``delivery_papers`` (the ledger that makes sending exactly-once), ``subscriber_state``
(unsubscribes, edited interests) and ``settings``. WAL mode lets the web app read and write
while ``fetch`` and ``send`` run.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from .errors import StoreError
from .paper import Paper

migrations = Migrations("paperwire")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db["papers"].create(
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
    db["papers"].create_index(["first_seen"])
    db["feeds"].create(
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
    db["votes"].create(
        {"subscriber_id": str, "paper_id": str, "vote": int, "voted_at": str, "via": str},
        pk=("subscriber_id", "paper_id"),
    )
    db["deliveries"].create(
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
    db["deliveries"].create_index(["subscriber_id", "kind", "period", "channel"], unique=True)
    db["delivery_papers"].create(
        {"delivery_id": int, "paper_id": str, "rank": int, "score": float, "reasons": str},
        pk=("delivery_id", "paper_id"),
        foreign_keys=[("delivery_id", "deliveries", "id")],
    )
    db["delivery_papers"].create_index(["paper_id"])
    db["subscriber_state"].create(
        {"subscriber_id": str, "unsubscribed_at": str, "interests": str, "updated": str},
        pk="subscriber_id",
    )
    db["settings"].create({"key": str, "value": str}, pk="key")
    db["events"].create({"id": int, "at": str, "kind": str, "detail": str}, pk="id")


@migrations()
def m004_embeddings(db: sqlite_utils.Database) -> None:
    # One vector per paper (float16 blob) from the model named beside it; written by
    # paperwire.embed, which re-embeds when the model or the text (hash) changes.
    db["embeddings"].create(
        {"paper_id": str, "model": str, "text_hash": str, "vector": bytes}, pk="paper_id"
    )


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """UTC ISO 8601 with microseconds: stored dates compare correctly as text, and a paper
    fetched just after a digest was composed is not mistaken for one it already covered."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


class Store:
    """Read and write paperwire's state in one SQLite file, migrating it on open."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            migrations.apply(self.db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the paperwire database: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        with self.db.atomic():
            yield

    # -- papers ---------------------------------------------------------------------------

    def add_papers(
        self, papers: Iterable[Paper], now: dt.datetime | None = None
    ) -> tuple[int, int]:
        """Merge papers into the store in one transaction; returns (new, already known).

        A known paper keeps its first-seen date (arXiv re-announces replacements and
        cross-lists; they must not look new), gains the new source, and takes the newest
        version's title and abstract.
        """
        stamp = iso(now or utcnow())
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
            existing = {
                row["paper_id"]: row
                for chunk in _chunks(list(batch), 500)
                for row in self.db.query(
                    f"select * from papers where paper_id in ({','.join('?' * len(chunk))})",
                    chunk,
                )
            }
            rows = []
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
                    if (old["version"] or 0) > (paper.version or 0):
                        for key in ("title", "abstract", "version", "authors"):
                            row[key] = old[key]
                    if old["upvotes"] is not None and paper.upvotes is None:
                        row["upvotes"] = old["upvotes"]
                    row["published"] = old["published"] or row["published"]
                    row["categories"] = json.dumps(
                        list(
                            dict.fromkeys(json.loads(old["categories"] or "[]") + paper.categories)
                        )
                    )
                rows.append(row)
            self.db["papers"].upsert_all(rows, pk="paper_id")
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

    def paper(self, paper_id: str) -> dict[str, Any] | None:
        return self.papers([paper_id]).get(paper_id)

    def corpus(self) -> list[dict[str, Any]]:
        """Every paper's id, title, abstract, first-seen date and upvotes, oldest first."""
        return list(
            self.db.query(
                "select paper_id, title, abstract, first_seen, upvotes from papers "
                "order by first_seen, paper_id"
            )
        )

    def corpus_version(self) -> tuple[int, str | None]:
        """Changes whenever a paper is added or updated: (count, latest update)."""
        row = next(iter(self.db.query("select count(*) as n, max(updated) as u from papers")))
        return row["n"], row["u"]

    def count_papers(self) -> int:
        return self.db["papers"].count

    def papers_since(self, since: dt.datetime) -> list[str]:
        sql = "select paper_id from papers where first_seen > ? order by first_seen, paper_id"
        return [r["paper_id"] for r in self.db.query(sql, [iso(since)])]

    def excluded_ids(self, subscriber_ids: Iterable[str]) -> dict[str, set[str]]:
        """For each subscriber, the papers already delivered (or in flight) or rated."""
        out: dict[str, set[str]] = {s: set() for s in subscriber_ids}
        sql = """
            select d.subscriber_id as s, dp.paper_id as p from delivery_papers dp
            join deliveries d on d.id = dp.delivery_id where d.state in ('pending', 'sent')
            union select subscriber_id, paper_id from votes
        """
        for row in self.db.query(sql):
            if row["s"] in out:
                out[row["s"]].add(row["p"])
        return out

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
        now: dt.datetime | None = None,
    ) -> None:
        stamp = iso(now or utcnow())
        row: dict[str, Any] = {"url": url, "last_fetch": stamp, "last_error": error}
        if ok:
            row.update(last_ok=stamp, last_new=new)
            if etag is not None or last_modified is not None:
                row.update(etag=etag, last_modified=last_modified)
        self.db["feeds"].upsert(row, pk="url")

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
        self.db["votes"].upsert(
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
            self.db["votes"].upsert_all(rows, pk=("subscriber_id", "paper_id"))
        return len(rows)

    def remove_vote(self, subscriber_id: str, paper_id: str) -> bool:
        cursor = self.db.execute(
            "delete from votes where subscriber_id = ? and paper_id = ?", [subscriber_id, paper_id]
        )
        return cursor.rowcount > 0

    def vote(self, subscriber_id: str, paper_id: str) -> int | None:
        rows = list(
            self.db.query(
                "select vote from votes where subscriber_id = ? and paper_id = ?",
                [subscriber_id, paper_id],
            )
        )
        return rows[0]["vote"] if rows else None

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
        now: dt.datetime | None = None,
    ) -> int | None:
        """Record a delivery as pending, with its papers, before anything is sent.

        Committed before the first byte goes out, so a crash leaves a pending row that the next
        run resends with the same Message-ID (a duplicate is then detectable). Returns None if
        another process recorded the same delivery first (the unique index decides).
        """
        # plain SQL: sqlite-utils' insert() inspects the table on every call (16 statements a
        # delivery), which was 10 s of a 10,000-subscriber send under the profiler
        try:
            with self.atomic():
                delivery_id = self.db.execute(
                    "insert into deliveries (subscriber_id, kind, period, channel, state,"
                    " message_id, content_hash, created, attempts)"
                    " values (?, ?, ?, ?, 'pending', ?, ?, ?, 0)",
                    [
                        subscriber_id,
                        kind,
                        period,
                        channel,
                        message_id,
                        content_hash,
                        iso(now or utcnow()),
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
        self.db["deliveries"].insert(
            {
                "subscriber_id": subscriber_id,
                "kind": kind,
                "period": period,
                "channel": channel,
                "state": "empty",
                "created": iso(now or utcnow()),
                "attempts": 0,
                "error": reason,
            },
            ignore=True,
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
    ) -> None:
        """Move a delivery to sent / failed / pending, counting the attempt."""
        if state not in ("pending", "sent", "failed"):
            raise ValueError(state)
        row = {"state": state, "error": error}
        if state == "sent":
            row["sent_at"] = iso(now or utcnow())
        self.db.execute(
            "update deliveries set state = :state, error = :error, "
            "sent_at = coalesce(:sent_at, sent_at), attempts = attempts + 1 where id = :id",
            {"sent_at": row.get("sent_at"), "id": delivery_id, **row},
        )
        self.db.conn.commit()

    def unsent_deliveries(self, subscriber_id: str | None = None) -> list[dict[str, Any]]:
        """Pending deliveries (a crash or an outage left them): to be sent again as they are."""
        sql = "select * from deliveries where state = 'pending'"
        params: list[Any] = []
        if subscriber_id:
            sql += " and subscriber_id = ?"
            params.append(subscriber_id)
        return list(self.db.query(sql + " order by id", params))

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

    def subscriber_state(self, subscriber_id: str) -> dict[str, Any]:
        rows = list(
            self.db.query("select * from subscriber_state where subscriber_id = ?", [subscriber_id])
        )
        return rows[0] if rows else {"subscriber_id": subscriber_id}

    def set_unsubscribed(self, subscriber_id: str, unsubscribed: bool) -> None:
        self.db["subscriber_state"].upsert(
            {
                "subscriber_id": subscriber_id,
                "unsubscribed_at": iso(utcnow()) if unsubscribed else None,
                "updated": iso(utcnow()),
            },
            pk="subscriber_id",
        )

    def set_interests(self, subscriber_id: str, interests: str) -> None:
        self.db["subscriber_state"].upsert(
            {"subscriber_id": subscriber_id, "interests": interests, "updated": iso(utcnow())},
            pk="subscriber_id",
        )

    def unsubscribed(self) -> set[str]:
        rows = self.db.query(
            "select subscriber_id from subscriber_state where unsubscribed_at is not null"
        )
        return {r["subscriber_id"] for r in rows}

    def interests_overrides(self) -> dict[str, str]:
        rows = self.db.query(
            "select subscriber_id, interests from subscriber_state where interests is not null"
        )
        return {r["subscriber_id"]: r["interests"] for r in rows}

    # -- settings and events --------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        rows = list(self.db.query("select value from settings where key = ?", [key]))
        return rows[0]["value"] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        self.db["settings"].upsert({"key": key, "value": value}, pk="key")

    def generated_secret(self) -> str:
        """A random signing key kept in the database, for installs without PAPERWIRE_SECRET."""
        key = self.setting("generated_secret")
        if key is None:
            self.db.execute(
                "insert or ignore into settings (key, value) values ('generated_secret', ?)",
                [secrets.token_urlsafe(32)],
            )
            self.db.conn.commit()
            key = self.setting("generated_secret")
        return key

    def log_event(self, kind: str, detail: dict[str, Any]) -> None:
        self.db["events"].insert({"at": iso(utcnow()), "kind": kind, "detail": json.dumps(detail)})

    def last_event(self, kind: str) -> dict[str, Any] | None:
        rows = list(
            self.db.query("select * from events where kind = ? order by id desc limit 1", [kind])
        )
        return {**rows[0], "detail": json.loads(rows[0]["detail"])} if rows else None


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _newer(a: Paper, b: Paper) -> Paper:
    """Of two sightings of one paper in the same fetch, keep the later version's text."""
    keep = b if (b.version or 0) >= (a.version or 0) else a
    other = a if keep is b else b
    if keep.upvotes is None:
        keep.upvotes = other.upvotes
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
    }


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "authors": json.loads(row["authors"] or "[]"),
        "categories": json.loads(row["categories"] or "[]"),
        "sources": json.loads(row["sources"] or "[]"),
    }
