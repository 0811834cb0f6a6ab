"""The words of each reason a pick is in a digest (rank/reasons.py says which hold)."""

from __future__ import annotations

from ..paper import Pick
from ..rank.reasons import Ranked, Reason


def words(reason: Reason) -> str:
    """One reason as the reader reads it, in the e-mail, Slack, the feed and ``digest``."""
    kind, text = reason.kind, reason.text
    if kind == "followed_author":
        return f"by an author you follow ({text})"
    if kind == "like_library":
        return f"like “{text}” in your library"
    if kind == "like_seed":
        return f"like “{text}”, one of your seed papers"
    if kind == "like_liked":
        return f"like “{text}”, which you liked"
    if kind == "matches_interest":
        return f"matches your interest “{text}”"
    if kind == "close_to_interest":
        return f"close to your interest “{text}”"
    if kind == "about":
        return f"about “{text}”"
    if kind == "close_in_meaning":
        return f"close in meaning to your interest “{text}”"
    if kind == "popular":
        return f"popular today: {reason.count} upvotes"
    if kind == "new":
        return "new in your feeds"
    if kind == "above_bar":
        score, bar, share = reason.numbers
        return f"scored {score:.2f}, above your usual bar of {bar:.2f} (your top {share:g}% of recent papers)"
    raise ValueError(f"no words for a reason of kind {kind!r}")


def worded(ranked: Ranked) -> Pick:
    """A ranked pick with its reasons in words, as it is delivered and kept in the ledger."""
    reasons = [words(r) for r in ranked.reasons]
    return Pick(ranked.paper_id, ranked.title, ranked.url, ranked.score, reasons, ranked.paper)
