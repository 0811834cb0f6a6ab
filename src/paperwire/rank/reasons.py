"""Why a paper is picked, as data: what kind of reason, and what it names. The words a reader
sees are render's (render/reasons.py); ranking only says which reasons hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

ReasonKind = Literal[
    "followed_author",  # text: the followed name as the reader wrote it
    "like_liked",  # text: the title of a paper the reader thumbed up that the pick resembles
    "like_seed",  # text: ... of one of the config's seed papers
    "like_library",  # text: ... of a paper imported from the reader's library
    "matches_interest",  # text: an interest phrase the paper contains whole
    "close_to_interest",  # text: an interest phrase of which the paper has most words
    "about",  # text: a key phrase of the paper that the reader's profile weighs
    "close_in_meaning",  # text: the interest phrase the paper is closest to in meaning
    "popular",  # upvotes: the paper's
    "must_match",  # text: the reader's must_match phrase the paper mentions
    "new",  # a reader who told us nothing follows the feeds for everything
    "above_bar",  # numbers: (score, the reader's usual bar, the share of papers above it, %)
]


class Reason(NamedTuple):
    """A named tuple: ~1 million are made and compared in a digest of 20,000 readers, three
    times as fast as a frozen dataclass."""

    kind: ReasonKind
    text: str = ""
    upvotes: int = 0  # "popular"
    numbers: tuple[float, ...] = ()  # "above_bar"


@dataclass
class Ranked:
    """One paper chosen for one subscriber, with its score and the reasons that hold."""

    paper_id: str
    title: str
    url: str
    score: float
    reasons: list[Reason]
    paper: dict[str, Any] = field(repr=False, default_factory=dict)
    # with a "like <your paper>" reason: how close the pick is to that paper, and the reason
    # (an about phrase) said instead where the digest names that paper under enough closer picks
    likeness: float | None = field(repr=False, default=None)
    spare: list[str] = field(repr=False, default_factory=list)
