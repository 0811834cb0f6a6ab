"""The Hugging Face Daily Papers API (``/api/daily_papers``): a JSON list, upvotes kept."""

from __future__ import annotations

from typing import Any

from ..errors import SourceError
from ..extras import hf_extras
from ..paper import Paper, arxiv_id, clean_text


def parse(data: Any, *, source: str) -> list[Paper]:
    """Papers in a Daily Papers response; each item is keyed by its arXiv id."""
    if not isinstance(data, list):
        raise SourceError(
            f"feed {source}: expected a JSON list of daily papers, got {type(data).__name__}"
        )
    papers = []
    for index, item in enumerate(data):
        paper = item.get("paper") if isinstance(item, dict) else None
        if not isinstance(paper, dict):
            raise SourceError(f"feed {source}: item {index}: no 'paper' object")
        aid = arxiv_id(str(paper.get("id", "")))
        if not aid:
            raise SourceError(
                f"feed {source}: item {index}: {paper.get('id')!r} is not an arXiv id"
            )
        authors = [
            clean_text(a.get("name"))
            for a in paper.get("authors", [])
            if isinstance(a, dict) and a.get("name") and not a.get("hidden")
        ]
        upvotes = paper.get("upvotes", item.get("upvotes"))
        papers.append(
            Paper(
                paper_id=aid,
                title=clean_text(paper.get("title") or item.get("title")),
                abstract=clean_text(paper.get("summary") or item.get("summary")),
                authors=authors,
                url=f"https://arxiv.org/abs/{aid}",
                pdf_url=f"https://arxiv.org/pdf/{aid}",
                published=_iso(paper.get("publishedAt") or item.get("publishedAt")),
                source=source,
                upvotes=int(upvotes) if isinstance(upvotes, int | float) else None,
                **hf_extras(paper),
            )
        )
    return papers


def _iso(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value.replace(".000Z", "+00:00").replace("Z", "+00:00")
