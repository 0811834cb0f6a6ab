"""Votes: what a verified 👍 / 👎 / undo click changes in the store."""

from __future__ import annotations

import datetime as dt

from ..config import Config
from ..errors import FeedbackError
from ..links import VoteClaim
from ..store import Store, iso

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
        stored = next(
            (v for v in store.votes([claim.subscriber_id]) if v["paper_id"] == claim.paper_id),
            None,
        )
        if stored is not None and stored["voted_at"] > iso(clicked_at):
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
