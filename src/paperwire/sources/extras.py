"""What a paper says beyond its abstract: a one-line TL;DR, keywords, code and project links.

The Hugging Face Daily Papers JSON carries them (``ai_summary``, ``ai_keywords``,
``githubRepo``, ``projectPage``); arXiv has only free text, so links are read from the comments
field ("Code: https://github.com/...") and the abstract. Every link is untrusted feed content:
only http(s) URLs are kept, made safe by :func:`~paperwire.paper.web_url`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from ..paper import safe_chars, shows_something, web_url

TLDR_CHARS = 300  # a TL;DR is one line; anything longer is cut at a word
KEYWORDS_MAX = 8
_URL = r"https?://[^\s<>\"'()\[\]{}]+"
_URLS = re.compile(_URL, re.IGNORECASE)
_CODE_HOST_NAMES = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org")
_PROJECT = re.compile(
    rf"(?:project\s*page|project\s*website|webpage|website|homepage|demo)\s*(?:is\s+)?(?:at\s*)?:?\s*({_URL})",
    re.IGNORECASE,
)


def web_link(url: Any) -> str | None:
    """The URL made safe if it is an http(s) URL with a host, else None (``javascript:`` never
    passes); a sentence's full stop after it is not part of it."""
    if not isinstance(url, str):
        return None
    return web_url(url.strip().rstrip(".,;:")) or None


def code_link(*texts: str | None) -> str | None:
    """The first repository URL (GitHub, GitLab, Bitbucket, Codeberg) in free text."""
    for text in texts:
        for match in _URLS.finditer(text or ""):
            url = web_link(match.group(0))
            if url is None:
                continue
            parts = urlparse(url)
            host = parts.netloc.lower().removeprefix("www.")
            # a repository, not the host's front page: github.com/owner/name
            if host in _CODE_HOST_NAMES and len(parts.path.strip("/").split("/")) >= 2:
                return url
    return None


def project_link(*texts: str | None) -> str | None:
    """A URL introduced as a project page / website / demo in free text."""
    for text in texts:
        match = _PROJECT.search(text or "")
        if match:
            return web_link(match.group(1))
    return None


def one_line(text: Any, limit: int = TLDR_CHARS) -> str | None:
    """A summary as one line of at most ``limit`` characters (cut at a word), or None."""
    if not isinstance(text, str):
        return None
    text = " ".join(safe_chars(text).split())
    if not shows_something(text):
        return None  # zero-width spaces, a BOM, soft hyphens: nothing a reader would see
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"
    return text


def hf_extras(paper: dict[str, Any]) -> dict[str, Any]:
    """TL;DR, keywords and links of one Hugging Face Daily Papers ``paper`` object."""
    keywords = paper.get("ai_keywords")
    if not isinstance(keywords, list):
        keywords = []
    words = (" ".join(safe_chars(str(k)).split()) for k in keywords)
    return {
        "tldr": one_line(paper.get("ai_summary")),
        "keywords": [word for word in words if word][:KEYWORDS_MAX],
        "code_url": web_link(paper.get("githubRepo")),
        "project_url": web_link(paper.get("projectPage")),
    }
