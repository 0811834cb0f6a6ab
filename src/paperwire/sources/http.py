"""Polite, bounded HTTP for feeds: conditional GETs, retries, a deadline and a size cap.

Every download is bounded three ways, because a feed is untrusted input:

- a wall-clock **deadline** per feed (``fetch_timeout_seconds``), retries and Retry-After waits
  included. httpx's own timeouts are per read, so a server sending one byte every 10 s would
  never time out; the deadline is an asyncio timeout around the whole download, which also
  makes a download cancellable at once (the daemon stopping);
- a cap on the **decompressed** size (``fetch_max_mb``): the body is inflated here, chunk by
  chunk, never asking zlib for more than the bytes left, so a gzip bomb costs at most the cap;
- every transport or protocol failure (a redirect loop, bad TLS, a dropped connection, broken
  chunked encoding, a lying Content-Length, invalid gzip) becomes a :class:`SourceError` naming
  the feed, which is that feed's error and never the run's.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
import zlib
from dataclasses import dataclass

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from .. import __version__
from ..errors import SourceError
from ..redact import redact

USER_AGENT = (
    f"paperwire/{__version__} (self-hosted paper digest; +https://pypi.org/project/paperwire/)"
)
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 120.0  # seconds; a longer wait means "try on the next scheduled fetch"
MAX_REDIRECTS = 10
# seconds one connection attempt may take: a host that drops SYNs is tried again (with back-off)
# within the deadline, instead of holding one attempt to the end of it
CONNECT_TIMEOUT = 10.0
MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """How much one feed may cost: wall-clock seconds (retries included), bytes, attempts."""

    deadline: float = 60.0
    max_bytes: int = 20 * MB
    attempts: int = 4
    deadline_setting: str = "fetch_timeout_seconds"  # named when the deadline passes
    # the least wait before a retry: the arXiv API asks for 3 s between requests, and a 503
    # with "Retry-After: 0" had four within 20 ms (found in review)
    retry_pause: float = 0.0

    @property
    def max_label(self) -> str:
        return f"{self.max_bytes / MB:g} MB"


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


def _headers() -> dict[str, str]:
    # Only encodings we inflate ourselves (under the size cap): no br, no zstd.
    return {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}


def make_client(timeout: float = 30.0) -> httpx.Client:
    """A synchronous client with paperwire's User-Agent (the Slack poster uses it)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=10.0),
        headers=_headers(),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
    )


def make_async_client(
    timeout: float | None = None, *, follow_redirects: bool = True
) -> httpx.AsyncClient:
    """The one client a fetch run shares (connection reuse, a real User-Agent); a send run's
    webhook poster has one that follows no redirect (deliver/channel.py). No timeout per read
    by default: each caller's wall-clock deadline (``fetch_timeout_seconds``,
    ``sender.timeout``) is the timeout; a read cut at 30 s failed an arXiv API that took 35 s
    to answer within a ``fetch_timeout_seconds`` of 120 (found in review)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
        headers=_headers(),
        follow_redirects=follow_redirects,
        max_redirects=MAX_REDIRECTS,
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


def feed_error(label: str, problem: str) -> SourceError:
    """The one-line error of one feed; exception texts may carry URLs, so it is redacted (the
    label is masked already: redacting it again would eat the colon after a masked query)."""
    return SourceError(f"feed {label}: {redact(problem)}")


async def get(
    client: httpx.AsyncClient,
    url: str,
    *,
    cache: HttpCache | None = None,
    label: str | None = None,
    limits: Limits = Limits(),  # noqa: B008 (frozen)
) -> Fetched:
    """GET ``url`` within ``limits``; a 304 against ``cache`` returns ``not_modified``.

    Raises SourceError for every failure, including the deadline passing."""
    label = label or redact(url)
    tried = 0
    last_problem = ""

    async def attempt() -> Fetched:
        nonlocal tried, last_problem
        tried += 1
        try:
            return await _get_once(client, url, cache=cache, label=label, limits=limits)
        except _Retryable as exc:
            last_problem = str(exc)
            raise

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_Retryable),
        # Give up early when the next wait would end past the deadline: the error then names
        # the server's last answer instead of only "out of time".
        stop=stop_after_attempt(limits.attempts) | stop_before_delay(limits.deadline),
        wait=lambda state: max(_wait(state), limits.retry_pause),
        reraise=True,
    )
    try:
        async with asyncio.timeout(limits.deadline):
            async for retry_state in retrying:
                with retry_state:
                    fetched = await attempt()
            return fetched
    except _Retryable as exc:
        plural = "s" if tried > 1 else ""
        # a wait past the deadline ended the tries: the server's own word for when to come back
        asked = f"; it asked to wait {exc.retry_after:.0f} s" if exc.retry_after else ""
        raise feed_error(label, f"{exc} (after {tried} attempt{plural}{asked})") from None
    except TimeoutError:
        then = f"; last problem: {last_problem}" if last_problem else ""
        raise feed_error(
            label,
            f"no complete answer within {limits.deadline:g} s ({limits.deadline_setting}){then}",
        ) from None


async def _get_once(
    client: httpx.AsyncClient,
    url: str,
    *,
    cache: HttpCache | None,
    label: str,
    limits: Limits,
) -> Fetched:
    headers = {}
    if cache and cache.etag:
        headers["If-None-Match"] = cache.etag
    if cache and cache.last_modified:
        headers["If-Modified-Since"] = cache.last_modified
    try:
        async with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status in RETRY_STATUSES:
                raise _Retryable(
                    f"HTTP {status}", _retry_after(response.headers.get("Retry-After"))
                )
            if status == 304:
                return Fetched(not_modified=True, cache=cache)
            if status >= 400:
                raise feed_error(label, f"HTTP {status} {response.reason_phrase}")
            content = await _read_capped(response, label, limits)
            return Fetched(
                content=content,
                content_type=response.headers.get("Content-Type", ""),
                cache=HttpCache(
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                ),
            )
    except httpx.TooManyRedirects:
        raise feed_error(label, f"more than {MAX_REDIRECTS} redirects (a redirect loop?)") from None
    except httpx.UnsupportedProtocol as exc:
        # a redirect to ftp://, file:// or feed:// (a configured URL is http(s) or a file): a
        # TransportError to httpx, but no connection was lost and asking again changes nothing
        try:
            target = str(exc.request.url)
        except RuntimeError:  # no request attached: the error's own words name the scheme
            target = _reason(exc)
        # the address last: a masked ?token= would eat the punctuation after it
        raise feed_error(label, f"redirected to an address that is not http(s): {target}") from None
    except httpx.ConnectTimeout:
        raise _Retryable("connection timed out") from None
    except httpx.TimeoutException as exc:  # a client given a read timeout, or the pool's
        waited = client.timeout.read
        said = f"the server sent nothing for {waited:g} s" if waited else f"timed out: {exc}"
        raise _Retryable(said) from None
    except httpx.ConnectError as exc:
        if _is_tls(exc):
            raise feed_error(label, f"TLS failed: {_reason(exc)}") from None
        raise _Retryable(f"cannot connect: {_reason(exc)}") from None
    except httpx.RemoteProtocolError as exc:
        # A dropped connection, a body shorter than its Content-Length, broken chunking.
        raise _Retryable(f"broken response: {_reason(exc)}") from None
    except httpx.TransportError as exc:
        if _is_tls(exc):
            raise feed_error(label, f"TLS failed: {_reason(exc)}") from None
        raise _Retryable(f"connection lost: {_reason(exc)}") from None
    except httpx.HTTPError as exc:  # invalid URL, unsupported scheme, a local protocol error
        raise feed_error(label, f"{type(exc).__name__}: {_reason(exc)}") from None
    except httpx.InvalidURL as exc:
        raise feed_error(label, f"invalid URL: {_reason(exc)}") from None


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "SSL" in str(exc) or "TLS" in str(exc)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _Inflater:
    """Content-Encoding decoding that never produces more than it is asked for."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        # 32 + MAX_WBITS reads gzip or zlib headers; "deflate" is zlib, or raw from some servers.
        self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes, max_length: int) -> bytes:
        try:
            out = self._zlib.decompress(data, max_length)
        except zlib.error:
            if self.encoding != "deflate" or self._started:
                raise
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, max_length)
        self._started = True
        return out

    @property
    def complete(self) -> bool:
        return self._zlib.eof


async def _read_capped(response: httpx.Response, label: str, limits: Limits) -> bytes:
    """The body, decoded, or a SourceError as soon as it would pass ``limits.max_bytes``."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise feed_error(label, f"unsupported Content-Encoding {encoding!r}")
    inflater = None if encoding in ("identity", "") else _Inflater(encoding)
    too_big = feed_error(
        label, f"larger than {limits.max_label} once decompressed (limit: fetch_max_mb)"
    )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise too_big  # compressed size already over: no need to download it
    chunks: list[bytes] = []
    size = 0
    received = False
    async for raw in response.aiter_raw():
        received = received or bool(raw)
        if inflater is None:
            data = raw
        else:
            # One byte more than is left tells "over the cap" from "exactly at it".
            budget = limits.max_bytes - size + 1
            try:
                data = inflater.feed(raw, budget)
            except zlib.error as exc:
                raise feed_error(label, f"invalid {encoding} body: {exc}") from None
        size += len(data)
        if size > limits.max_bytes:
            raise too_big
        chunks.append(data)
    if inflater is not None and received and not inflater.complete:
        raise feed_error(label, f"the {encoding} body ends early (a truncated download)")
    return b"".join(chunks)
