"""Polite HTTP for feeds: conditional GETs, gzip, timeouts and Retry-After-aware retries."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

import httpx
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from .. import __version__
from ..errors import SourceError

USER_AGENT = (
    f"paperwire/{__version__} (self-hosted paper digest; +https://pypi.org/project/paperwire/)"
)
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 120.0  # seconds; a longer wait means "try on the next scheduled fetch"


@dataclass(frozen=True)
class HttpCache:
    """Validators from the last 200 response, sent back so an unchanged feed costs a 304."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass
class Fetched:
    content: bytes = b""
    content_type: str = ""
    not_modified: bool = False
    cache: HttpCache | None = None


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def make_client(timeout: float = 30.0) -> httpx.Client:
    """The one HTTP client a fetch run shares (connection reuse, gzip, a real User-Agent)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=10.0),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
        limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    backoff = wait_exponential(multiplier=1, min=1, max=30)(state)
    if isinstance(exc, _Retryable) and exc.retry_after is not None:
        return min(exc.retry_after, MAX_RETRY_AFTER)
    return backoff


def get(
    client: httpx.Client,
    url: str,
    *,
    cache: HttpCache | None = None,
    label: str | None = None,
    attempts: int = 4,
) -> Fetched:
    """GET ``url``; a 304 against ``cache`` returns ``not_modified``. Raises SourceError."""
    label = label or url
    headers = {}
    if cache and cache.etag:
        headers["If-None-Match"] = cache.etag
    if cache and cache.last_modified:
        headers["If-Modified-Since"] = cache.last_modified

    @retry(
        retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
        stop=stop_after_attempt(attempts),
        wait=_wait,
        reraise=True,
    )
    def attempt() -> httpx.Response:
        try:
            response = client.get(url, headers=headers)
        except httpx.TimeoutException:
            raise _Retryable("timed out") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot connect: {exc}") from None
        if response.status_code in RETRY_STATUSES:
            raise _Retryable(
                f"HTTP {response.status_code}", _retry_after(response.headers.get("Retry-After"))
            )
        return response

    try:
        response = attempt()
    except _Retryable as exc:
        raise SourceError(f"feed {label}: {exc} (after {attempts} attempts)") from None
    if response.status_code == 304:
        return Fetched(not_modified=True, cache=cache)
    if response.status_code >= 400:
        raise SourceError(f"feed {label}: HTTP {response.status_code} {response.reason_phrase}")
    return Fetched(
        content=response.content,
        content_type=response.headers.get("Content-Type", ""),
        cache=HttpCache(
            etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified")
        ),
    )
