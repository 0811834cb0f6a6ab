"""The words of each reason a pick is in a digest (rank/reasons.py says which hold)."""

from __future__ import annotations

from ..paper import Pick
from ..rank.reasons import Ranked, Reason

# Each kind of reason as the reader reads it; ``{text}`` is the reason's phrase or title.
_WORDS = {
    "followed_author": "by an author you follow ({text})",
    "like_library": "like “{text}” in your library",
    "like_seed": "like “{text}”, one of your seed papers",
    "like_liked": "like “{text}”, which you liked",
    "matches_interest": "matches your interest “{text}”",
    "close_to_interest": "close to your interest “{text}”",
    "about": "about “{text}”",
    "close_in_meaning": "close in meaning to your interest “{text}”",
    "must_match": "mentions “{text}”, as you asked",
    "new": "new in your feeds",
}


def words(reason: Reason) -> str:
    """One reason as the reader reads it, in the e-mail, Slack, the feed and ``digest``."""
    kind = reason.kind
    if kind in _WORDS:
        # str.replace, not str.format: a title may hold braces of its own
        return _WORDS[kind].replace("{text}", reason.text)
    if kind == "popular":
        # the count is the one Hugging Face showed when the paper was last fetched: "today"
        # would be wrong in a weekly digest, and only that feed carries upvotes
        count = reason.count
        return f"popular on Hugging Face: {count} upvote{'' if count == 1 else 's'}"
    if kind == "above_bar":
        score, bar, share = reason.numbers
        return f"scored {score:.2f}, above your usual bar of {bar:.2f} (your top {share:g}% of recent papers)"
    raise ValueError(f"no words for a reason of kind {kind!r}")


def worded(ranked: Ranked) -> Pick:
    """A ranked pick with its reasons in words, as it is delivered and kept in the ledger."""
    reasons = [words(r) for r in ranked.reasons]
    return Pick(ranked.paper_id, ranked.title, ranked.url, ranked.score, reasons, ranked.paper)
