"""Votes: what a verified 👍 / 👎 / undo click changes in the store, and votes recorded by
hand (``paperwire feedback``) or imported from a CSV file."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from ..config import Config, SubscriberConfig
from ..errors import ConfigError, FeedbackError
from ..links import VoteClaim
from ..store import Store, iso, utcnow

VOTES = {"up": 1, "down": -1}


def apply_vote(
    store: Store,
    config: Config,
    claim: VoteClaim,
    *,
    via: str,
    clicked_at: dt.datetime | None = None,
) -> bool:
    """Record (or undo) the vote a verified claim carries; False if it was not applied.

    With ``clicked_at`` (when the click reached the server), a click older than the stored
    vote is not applied: the reader's latest click wins, whatever order they are processed in.
    """
    config.subscriber(claim.subscriber_id)  # a removed subscriber's old links act for nobody
    if clicked_at is not None:
        # the one row, not the reader's every vote: a reader with 5,000 votes read them all
        # on each click (18 ms of a 70 ms vote, growing with every vote they gave)
        stored = store.vote_row(claim.subscriber_id, claim.paper_id)
        # a vote stored "in the future" (the clock ran ahead, then was set back) says nothing
        # of the order of clicks: the click now wins, or every later one was ignored unseen
        if stored is not None and iso(clicked_at) < stored["voted_at"] <= iso(utcnow()):
            return False
    if claim.action == "undo":
        store.remove_vote(claim.subscriber_id, claim.paper_id)
        return True
    if store.paper(claim.paper_id) is None:
        raise FeedbackError(f"unknown paper {claim.paper_id!r}")
    store.record_vote(
        claim.subscriber_id, claim.paper_id, VOTES[claim.action], via=via, now=clicked_at
    )
    return True


def vote_value(word: str) -> int | None:
    """+1 for ``up``, -1 for ``down`` (any case), None for anything else."""
    return VOTES.get(word.strip().lower())


def unknown_paper(written: str) -> str:
    return (
        f"unknown paper {written!r}: no stored paper has this id; "
        "run `paperwire fetch` first, or check the id"
    )


def record_vote(store: Store, sub: SubscriberConfig, written: str, vote: int) -> str:
    """Record a vote given on the command line; the stored paper's id. ``written`` is a stored
    id or an arXiv id written any way; a paper that is not stored is refused (FeedbackError)."""
    paper_id = store.stored_id(written)
    if paper_id is None:
        raise FeedbackError(unknown_paper(written))
    store.record_vote(sub.id, paper_id, vote, via="cli")
    return paper_id


def import_votes(store: Store, config: Config, path: Path) -> tuple[int, int]:
    """Import ``subscriber,paper_id,vote`` rows, all or none: every row is checked before any
    is stored, so a file with a mistake (ConfigError, with its line) stores nothing. How many
    votes were stored, and how many rows repeated an earlier row's reader and paper (the last
    row of a pair is the vote, as it would be clicked)."""
    rows = read_votes_csv(path, config, store)
    last = {(sid, paper_id): vote for sid, paper_id, vote in rows}
    unique = [(sid, paper_id, vote) for (sid, paper_id), vote in last.items()]
    return store.record_votes(unique, via="import"), len(rows) - len(unique)


def read_votes_csv(path: Path, config: Config, store: Store) -> list[tuple[str, str, int]]:
    """The votes in a CSV file, each paper resolved to its stored id."""
    known = {s.id for s in config.subscribers}
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, not part of "subscriber"
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as CSV UTF-8"
        ) from None
    with io.StringIO(text, newline="") as handle:
        # strict: a quote never closed was read as one field holding every row after it
        # ("Imported 1 votes" from 101, exit 0), or as csv.Error's traceback past 128 KiB
        reader = csv.DictReader(handle, strict=True)
        try:
            missing = {"subscriber", "paper_id", "vote"} - set(reader.fieldnames or [])
            if missing:
                raise ConfigError(f"{path}:1: missing column(s): {', '.join(sorted(missing))}")
            votes = _rows(path, reader, known, store)
        except csv.Error as exc:
            # the row after the last one read is where it went wrong (the error is raised
            # where the file ends, for a quote opened and never closed)
            raise ConfigError(
                f"{path}:{reader.line_num + 1}: not CSV as a spreadsheet writes it ({exc}); "
                "a quote opened in a field must be closed"
            ) from None
    return votes


def _rows(
    path: Path, reader: csv.DictReader, known: set[str], store: Store
) -> list[tuple[str, str, int]]:
    """The votes of the CSV rows, each paper resolved to its stored id."""
    votes = []
    for row in reader:
        line = reader.line_num
        if row["subscriber"] not in known:
            raise ConfigError(
                f"{path}:{line}: subscriber: unknown subscriber {row['subscriber']!r}"
            )
        vote = vote_value(row["vote"] or "")
        if vote is None:
            raise ConfigError(f"{path}:{line}: vote: {row['vote']!r} is not 'up' or 'down'")
        written = (row["paper_id"] or "").strip()
        if not written:
            raise ConfigError(f"{path}:{line}: paper_id: is empty")
        paper_id = store.stored_id(written)
        if paper_id is None:
            raise ConfigError(f"{path}:{line}: paper_id: {unknown_paper(written)}")
        votes.append((row["subscriber"], paper_id, vote))
    return votes
