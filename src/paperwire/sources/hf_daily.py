"""The Hugging Face Daily Papers API (``/api/daily_papers``): a JSON list, upvotes kept."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..errors import SourceError
from ..paper import Paper, arxiv_id, clean_text
from .extras import hf_extras

MAX_UPVOTES = 10**15  # far above any real count; compared exactly, never turned into a float


def parse(data: Any, *, source: str, warnings: list[str] | None = None) -> list[Paper]:
    """Papers in a Daily Papers response; each item is keyed by its arXiv id. Given
    ``warnings``, an item that is no paper (no 'paper' object, no arXiv id) is skipped and
    said there, as an RSS entry is, unless no item is a paper; without it, it is the error."""
    if not isinstance(data, list):
        raise SourceError(
            f"feed {source}: expected a JSON list of daily papers, got {type(data).__name__}"
        )
    papers = []
    problems: list[str] = []
    for index, item in enumerate(data):
        paper = item.get("paper") if isinstance(item, dict) else None
        if not isinstance(paper, dict):
            problems.append(f"feed {source}: item {index}: no 'paper' object")
            continue
        aid = arxiv_id(str(paper.get("id", "")))
        if not aid:
            shown = str(paper.get("id"))[:60]
            problems.append(f"feed {source}: item {index}: {shown!r} is not an arXiv id")
            continue
        title = _text(paper.get("title") or item.get("title"))
        if not title:  # a blank entry in a digest, as an RSS entry without one is skipped
            problems.append(f"feed {source}: item {index}: {aid} has no title")
            continue
        listed = paper.get("authors")
        authors = [
            _text(a.get("name"))
            for a in (listed if isinstance(listed, list) else [])
            if isinstance(a, dict) and _text(a.get("name")) and not a.get("hidden")
        ]
        upvotes = paper.get("upvotes", item.get("upvotes"))
        # JSON is untrusted: Infinity, NaN, 1e400 or a 400-digit integer (too large for a float,
        # and for SQLite) must not become an error for the whole feed; true is no count.
        if isinstance(upvotes, bool) or not (
            isinstance(upvotes, int | float) and -MAX_UPVOTES <= upvotes <= MAX_UPVOTES
        ):
            upvotes = None
        papers.append(
            Paper(
                paper_id=aid,
                title=title,
                abstract=_text(paper.get("summary") or item.get("summary")),
                authors=authors,
                url=f"https://arxiv.org/abs/{aid}",
                pdf_url=f"https://arxiv.org/pdf/{aid}",
                published=_iso(paper.get("publishedAt") or item.get("publishedAt")),
                source=source,
                upvotes=None if upvotes is None else int(upvotes),
                **hf_extras(paper),
            )
        )
    if problems and (warnings is None or not papers):
        raise SourceError(problems[0])  # nothing read: the feed's error, not a quiet day
    if warnings is not None:
        # one odd item (a listing that is no paper) must not cost the day's other papers
        warnings += [f"{problem}; skipped" for problem in problems]
    return papers


def _text(value: Any) -> str:
    """Clean text from a JSON value that should be a string (anything else counts as none)."""
    return clean_text(value) if isinstance(value, str) else ""


def _iso(value: Any) -> str | None:
    """An ISO date as stored, or None for what is none ("garbage-date" was stored as it was)."""
    if not isinstance(value, str) or not value:
        return None
    value = value.replace(".000Z", "+00:00").replace("Z", "+00:00")
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return value
