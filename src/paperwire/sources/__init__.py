"""Fetch stage: turn each configured feed into :class:`~paperwire.paper.Paper` records.

One module per kind of document behind one function, :func:`fetch_feed`:

- ``feed``: anything feedparser reads (arXiv RSS and old RDF, arXiv API Atom, any RSS/Atom)
- ``hf_daily``: the Hugging Face Daily Papers JSON API
- ``http``: polite conditional GETs with retries, shared by both
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from ..config import BUNDLED_PREFIX, FeedConfig, bundled_path
from ..errors import SourceError
from ..paper import Paper
from . import feed, hf_daily
from .http import Fetched, HttpCache, get

__all__ = ["FetchResult", "fetch_feed", "parse_document"]


@dataclass
class FetchResult:
    """What one feed gave: its papers, or that it had not changed (HTTP 304)."""

    feed: FeedConfig
    papers: list[Paper] = field(default_factory=list)
    not_modified: bool = False
    cache: HttpCache | None = None
    warnings: list[str] = field(default_factory=list)


def _local_path(url: str) -> Path | None:
    if url.startswith(BUNDLED_PREFIX):
        return bundled_path(url[len(BUNDLED_PREFIX) :])
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme in ("http", "https"):
        return None
    return Path(url)


def fetch_feed(
    feed_config: FeedConfig,
    *,
    client: httpx.Client,
    cache: HttpCache | None = None,
    base_dir: Path | None = None,
) -> FetchResult:
    """Fetch and parse one feed; raises SourceError with the feed's name on any failure."""
    label = feed_config.label
    path = _local_path(feed_config.url)
    if path is not None:
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            fetched = Fetched(content=path.read_bytes(), content_type="")
        except OSError as exc:
            raise SourceError(f"feed {label}: cannot read {path}: {exc.strerror}") from None
    else:
        fetched = get(client, feed_config.url, cache=cache, label=label)
        if fetched.not_modified:
            return FetchResult(feed_config, not_modified=True, cache=fetched.cache)
    papers, warnings = parse_document(
        fetched.content, source=label, kind=feed_config.kind, content_type=fetched.content_type
    )
    return FetchResult(feed_config, papers=papers, cache=fetched.cache, warnings=warnings)


def parse_document(
    content: bytes, *, source: str, kind: str = "auto", content_type: str = ""
) -> tuple[list[Paper], list[str]]:
    """Parse a feed document of any supported kind into papers (and non-fatal warnings)."""
    if kind == "hf-daily" or (kind == "auto" and _looks_like_json(content, content_type)):
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(f"feed {source}: not valid JSON: {exc}") from None
        return hf_daily.parse(data, source=source), []
    return feed.parse(content, source=source)


def _looks_like_json(content: bytes, content_type: str) -> bool:
    if "json" in content_type:
        return True
    head = content.lstrip()[:1]
    return head in (b"[", b"{")
