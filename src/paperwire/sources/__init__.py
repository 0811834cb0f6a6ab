"""Fetch stage: turn each configured feed into :class:`~paperwire.paper.Paper` records.

One module per kind of document behind one function, :func:`fetch_feed`:

- ``feed``: anything feedparser reads (arXiv RSS and old RDF, arXiv API Atom, any RSS/Atom)
- ``hf_daily``: the Hugging Face Daily Papers JSON API
- ``http``: polite conditional GETs with retries, a deadline and a size cap, shared by both
- ``extras``: TL;DRs, keywords, code and project links read from what a feed says
- ``library``: a reader's own library (BibTeX, CSL JSON, RIS, id lists) as seed papers

Every paper, from any source, leaves through :func:`parse_document`, which bounds the length of
each stored field: a feed is untrusted, and one 200-million-character abstract would slow every
later digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import json
import multiprocessing
import multiprocessing.connection
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from ..config import BUNDLED_PREFIX, FeedConfig, bundled_path
from ..errors import ConfigError, SourceError
from ..paper import Paper, on_domain
from ..redact import redact_url
from . import feed, hf_daily
from .http import Fetched, HttpCache, Limits, feed_error, get, make_async_client

__all__ = ["FetchResult", "Limits", "Parsed", "fetch", "fetch_feed", "parse_document"]

# Longest stored fields. arXiv caps abstracts at 1,920 characters and titles are far shorter;
# these leave room for any honest feed and stop a hostile one.
MAX_TITLE = 1_000
MAX_ABSTRACT = 10_000
MAX_AUTHORS = 100  # collaborations list thousands; the first hundred, then "et al."
MAX_AUTHOR_NAME = 200
MAX_CATEGORIES = 20
MAX_CATEGORY = 64
MAX_URL = 2_000  # a longer link is dropped: cut short it would lead nowhere
MAX_ID = 500  # a longer id is skipped: cut short it could merge two papers
MAX_SHORT = 64  # dates, announce types
MAX_VERSION = 10_000  # arXiv's v1, v2, …; a larger one (v<30 digits>) is none, not SQLite's error
MAX_KEYWORDS = 20  # a source's key phrases (Hugging Face gives about 15)
MAX_KEYWORD = 200  # one becomes a reason: 'about "<keyword>"'

# A document up to this size is parsed in a thread of this process; a larger one in a worker
# process, killed when the feed's deadline passes (a thread cannot be stopped). feedparser takes
# ~0.3 ms a kB for arXiv's listings (a 200-paper one is ~380 kB, ~0.1 s) and ~1.7 ms a kB at
# worst (items of a few bytes each), so a parse given up at its deadline here ends by itself
# within about a second; a 19 MB feed of 122,696 tiny items took 45 s. A process costs ~40 ms
# a parse, and ~0.5 s once to start the fork server.
INLINE_PARSE_MAX = 512 * 1024


@dataclass
class FetchResult:
    """What one feed gave: its papers, or that it had not changed (HTTP 304)."""

    feed: FeedConfig
    papers: list[Paper] = field(default_factory=list)
    not_modified: bool = False
    cache: HttpCache | None = None
    warnings: list[str] = field(default_factory=list)
    # False: a malformed document (maybe cut off) that still gave papers; its validators must
    # not be kept, so the next fetch downloads it whole instead of getting a 304
    whole: bool = True


@dataclass
class Parsed:
    """A parsed document: its papers, warnings, and whether it was whole (see FetchResult)."""

    papers: list[Paper]
    warnings: list[str]
    whole: bool = True


def _local_path(url: str) -> Path | None:
    if url.startswith(BUNDLED_PREFIX):
        return bundled_path(url[len(BUNDLED_PREFIX) :])
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme in ("http", "https"):
        return None
    return Path(url)


# a relative "path" that starts with a host name and a slash (rss.arxiv.org/rss/cs.CL) is
# most likely a web address without its https://: said so when no such file exists
_HOST_FIRST = re.compile(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}(?::\d{1,5})?/")


async def fetch(
    feed_config: FeedConfig,
    *,
    client: httpx.AsyncClient,
    cache: HttpCache | None = None,
    base_dir: Path | None = None,
    limits: Limits = Limits(),  # noqa: B008 (frozen)
    speaks_for_papers: bool | None = None,
) -> FetchResult:
    """Fetch and parse one feed within ``limits``; raises SourceError naming the feed.

    ``speaks_for_papers``: whether the feed's word on an arXiv paper's text is the paper's
    own; by default a local file's or arXiv's or Hugging Face's (:func:`speaks_for_arxiv`).

    The deadline (``limits.deadline``) covers the download and the parse. Cancelling the task
    stops the download at once, and the parse (see :func:`parse_off_loop`)."""
    label = feed_config.label
    began = asyncio.get_running_loop().time()
    try:
        path = _local_path(feed_config.url)
    except ConfigError as exc:  # an unknown bundled: name is this feed's error, not the run's
        raise feed_error(label, str(exc)) from None
    if path is not None:
        relative = not path.is_absolute()
        if base_dir is not None and relative:
            path = base_dir / path
        try:
            content = await _read_local_in_time(path, label, limits, began)
            fetched = Fetched(content=content, content_type="")
        except SourceError as exc:
            host = _HOST_FIRST.match(feed_config.url.strip()) if relative else None
            if host is None or path.exists():
                raise
            # rss.arxiv.org/rss/cs.CL, copied without its https://, is read as a file path
            # masked as the URL it is: without its scheme, redact_url leaves ?api_key= whole
            web = redact_url(f"https://{feed_config.url.strip()}")
            raise SourceError(f"{exc} (a web address is written with its scheme: {web})") from None
    else:
        fetched = await get(client, feed_config.url, cache=cache, label=label, limits=limits)
        if fetched.not_modified:
            return FetchResult(feed_config, not_modified=True, cache=fetched.cache)
    parsed = await parse_in_time(
        fetched,
        source=label,
        label=label,
        limits=limits,
        began=began,
        kind=feed_config.kind,
    )
    papers = parsed.papers
    if speaks_for_papers is None:
        speaks_for_papers = path is not None or speaks_for_arxiv(feed_config.url)
    if not speaks_for_papers:
        papers = only_naming(papers)
    return FetchResult(
        feed_config,
        papers=papers,
        cache=fetched.cache if parsed.whole else None,
        warnings=parsed.warnings,
        whole=parsed.whole,
    )


def fetch_feed(
    feed_config: FeedConfig,
    *,
    cache: HttpCache | None = None,
    base_dir: Path | None = None,
    limits: Limits = Limits(),  # noqa: B008 (frozen)
    speaks_for_papers: bool | None = None,
) -> FetchResult:
    """:func:`fetch` for synchronous callers (one feed, its own client and event loop)."""

    async def one() -> FetchResult:
        async with make_async_client() as client:
            return await fetch(
                feed_config,
                client=client,
                cache=cache,
                base_dir=base_dir,
                limits=limits,
                speaks_for_papers=speaks_for_papers,
            )

    return asyncio.run(one())


# Hugging Face's papers API and pages: with arXiv's feeds and API, the sources whose word on an
# arXiv paper (title, abstract, authors, version, upvotes) is the paper's own
HF_PAPER_PATHS = ("/api/daily_papers", "/api/papers", "/papers")


def speaks_for_arxiv(url: str) -> bool:
    """Whether ``url`` is on arxiv.org (or a subdomain), under Hugging Face's
    :data:`HF_PAPER_PATHS`, or on this machine, as a local file is (a mirror or a caching
    proxy the operator runs)."""
    try:
        parts = urlparse(url.strip())
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    if on_domain(host, "huggingface.co"):
        # its papers' pages and API, not the files anyone may upload there (/datasets/…)
        return parts.path.startswith(HF_PAPER_PATHS)
    return on_domain(host, "arxiv.org")


def only_naming(papers: list[Paper]) -> list[Paper]:
    """The arXiv papers of a feed that is not arXiv's (a blog, a lab's list, a feed that only
    looks like arXiv's) as items that name them: their title, abstract and authors are stored
    for a paper not stored yet, until arXiv's feeds or API say otherwise, and never over what
    those said; nothing else of theirs is.
    Such an item titled "BUY CRYPTO" with "v99" in its link replaced a paper's text for every
    reader, and for good: no real version was ever newer (found in review)."""
    return [
        # nor its upvotes, TL;DR, keywords or links: a JSON of any host is read as Hugging
        # Face's, and "upvotes: 99999" or a "Code:" link to a drainer came through (review)
        dataclasses.replace(
            p,
            names_only=True,
            version=None,
            upvotes=None,
            tldr=None,
            keywords=[],
            code_url=None,
            project_url=None,
        )
        if p.is_arxiv
        else p
        for p in papers
    ]


# local files whose read has not returned: a stalled network mount (or a named pipe nobody
# writes) blocks open() and read() in the kernel, where no deadline reaches them
_READING: set[Path] = set()
_READING_LOCK = threading.Lock()


async def _read_local_in_time(path: Path, label: str, limits: Limits, began: float) -> bytes:
    """:func:`_read_local` on a thread of its own, given up on at the feed's deadline (counted
    from ``began``, as a download's): it held the fetch, ``run --once`` and every later
    scheduled fetch for good (found in review). The thread is left blocked (a daemon thread:
    it keeps no process from exiting), and the file is not read again while it is."""
    loop = asyncio.get_running_loop()
    with _READING_LOCK:
        if path in _READING:
            raise feed_error(label, f"cannot read {path}: an earlier read has not returned yet")
        _READING.add(path)
    answer: asyncio.Future[bytes] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not answer.done():
            (answer.set_result if ok else answer.set_exception)(value)

    def work() -> None:
        try:
            result: tuple[bool, Any] = (True, _read_local(path, label, limits))
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting fetch)
            result = (False, exc)
        finally:
            with _READING_LOCK:
                _READING.discard(path)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits for it
            loop.call_soon_threadsafe(settle, *result)

    try:
        threading.Thread(target=work, name=f"read {label}", daemon=True).start()
    except BaseException:  # no thread to let the path go
        with _READING_LOCK:
            _READING.discard(path)
        raise
    left = limits.deadline - (loop.time() - began)
    try:
        return await asyncio.wait_for(asyncio.shield(answer), max(left, 0.0))
    except TimeoutError:
        answer.cancel()  # a late answer (an error too) is nobody's: never logged as unread
        raise feed_error(
            label,
            f"cannot read {path}: nothing within {limits.deadline:g} s "
            f"({limits.deadline_setting}; a stalled mount or a pipe nobody writes?)",
        ) from None


def _read_local(path: Path, label: str, limits: Limits) -> bytes:
    try:
        with path.open("rb") as handle:
            content = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise feed_error(label, f"cannot read {path}: {exc.strerror}") from None
    if len(content) > limits.max_bytes:
        raise feed_error(label, f"{path} is larger than {limits.max_label} (limit: fetch_max_mb)")
    return content


async def parse_in_time(
    fetched: Fetched,
    *,
    source: str,
    label: str,
    limits: Limits,
    began: float,
    kind: str = "auto",
) -> Parsed:
    """:func:`parse_off_loop` within what is left of ``limits.deadline``, counted from ``began``
    (the event loop's clock when the download started): a SourceError naming the feed, and the
    setting that set the deadline, when it passes."""
    left = limits.deadline - (asyncio.get_running_loop().time() - began)
    try:
        if left <= 0:
            raise TimeoutError
        return await parse_off_loop(
            fetched.content,
            source=source,
            kind=kind,
            content_type=fetched.content_type,
            seconds=left,
        )
    except TimeoutError:
        raise feed_error(
            label, f"not parsed within {limits.deadline:g} s ({limits.deadline_setting})"
        ) from None


async def parse_off_loop(
    content: bytes,
    *,
    source: str,
    kind: str = "auto",
    content_type: str = "",
    seconds: float | None = None,
) -> Parsed:
    """:func:`read_document` off the event loop, so it (downloads, the stop watcher) runs on
    meanwhile; TimeoutError when it is not done within ``seconds``.

    A document up to :data:`INLINE_PARSE_MAX` is parsed in a daemon thread, a larger one in a
    worker process (started from a daemon thread). At the deadline, or when the task is
    cancelled (a run stopped), the worker process is killed; a thread, which cannot be, is left
    to end by itself (it is small) and its answer dropped. Not ``asyncio.to_thread``: a run that
    is stopped would then wait for the parse before it could return, and the process for it
    before it could exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    worker = _ParseProcess(source) if len(content) > INLINE_PARSE_MAX else None

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():  # the run may have been stopped, or the deadline passed, meanwhile
            outcome()

    def work() -> None:
        try:
            if worker is None:
                result = read_document(content, source=source, kind=kind, content_type=content_type)
            else:
                result = worker.parse(content, kind=kind, content_type=content_type)
        except BaseException as exc:  # delivered to the awaiting task, raised there
            answer = functools.partial(settle, functools.partial(done.set_exception, exc))
        else:
            answer = functools.partial(settle, functools.partial(done.set_result, result))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(answer)

    threading.Thread(target=work, name=f"parse {source}", daemon=True).start()
    try:
        async with asyncio.timeout(seconds):
            return await done
    finally:
        if worker is not None:
            worker.kill()  # nothing when it has ended: its answer is in


def _parse_context() -> multiprocessing.context.BaseContext:
    """Fork server: each worker is forked from a small process that has imported this module
    once (no threads: this one has the event loop's, the daemon's), not spawned (~0.35 s of
    imports a worker). Spawn where there is no fork server (Windows).

    Each worker runs the main script again (multiprocessing's fix-up of ``__main__``; asking the
    fork server to preload ``__main__`` does not spare it): the ``paperwire`` command's imports
    ``paperwire.cli``, preloaded here too, so that costs ~3 ms a worker, not ~250 ms."""
    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:
        return multiprocessing.get_context("spawn")
    preload = [__name__]
    if "paperwire.cli" in sys.modules:
        preload.append("paperwire.cli")
    context.set_forkserver_preload(preload)
    return context


class _ParseProcess:
    """One document parsed in a worker process that :meth:`kill` ends at once, from any thread."""

    def __init__(self, source: str):
        self.source = source
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._killed = False

    def parse(self, content: bytes, *, kind: str, content_type: str) -> Parsed:
        context = _parse_context()
        here, there = context.Pipe()
        process = context.Process(  # type: ignore[attr-defined]
            target=_parse_in_worker, args=(there,), name=f"parse {self.source}", daemon=True
        )
        process.start()
        there.close()
        with self._lock:
            self._process = process
            killed = self._killed
        try:
            if killed:  # given up on while it started: nobody waits for the answer
                process.kill()
            # as bytes, not send()'s pickle: that is a BytesIO sent through a view of it, and a
            # send cut short (the worker killed) left the two in a cycle with its exception,
            # whose collection prints a BufferError (3.13) or crashes the process (3.12)
            here.send_bytes(json.dumps([self.source, kind, content_type]).encode())
            here.send_bytes(content)
            ok, value = here.recv()
        except (EOFError, OSError):  # killed (at the deadline, by an operator, out of memory)
            process.join()
            raise SourceError(
                f"feed {self.source}: the parser process ended without an answer "
                f"(exit code {process.exitcode})"
            ) from None
        finally:
            here.close()
        process.join()
        if ok:
            return value
        raise value

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            process = self._process
        if process is not None:
            with contextlib.suppress(OSError, ValueError):  # ended already
                process.kill()


def _parse_in_worker(conn: multiprocessing.connection.Connection) -> None:
    """A worker process's one parse: the document in, ``(ok, Parsed or an exception)`` out."""
    # Ctrl-C reaches the whole process group: the parent decides (it kills this process).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source, kind, content_type = json.loads(conn.recv_bytes())
    content = conn.recv_bytes()
    answer: tuple[bool, object]
    try:
        answer = (True, read_document(content, source=source, kind=kind, content_type=content_type))
    except SourceError as exc:
        answer = (False, exc)
    except Exception as exc:  # anything else, as text: it may not survive pickling
        answer = (False, RuntimeError(f"{type(exc).__name__}: {exc}"))
    conn.send(answer)
    conn.close()


def parse_document(
    content: bytes, *, source: str, kind: str = "auto", content_type: str = ""
) -> tuple[list[Paper], list[str]]:
    """Parse a feed document of any supported kind into papers (and non-fatal warnings)."""
    parsed = read_document(content, source=source, kind=kind, content_type=content_type)
    return parsed.papers, parsed.warnings


def read_document(
    content: bytes, *, source: str, kind: str = "auto", content_type: str = ""
) -> Parsed:
    """:func:`parse_document`, and whether the document was whole."""
    whole = True
    if kind == "hf-daily" or (kind == "auto" and _looks_like_json(content, content_type)):
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(f"feed {source}: not valid JSON: {exc}") from None
        except ValueError:  # Python's own limit on an integer's digits, not a JSON error
            raise SourceError(
                f"feed {source}: not valid JSON: a number too long to read (over 4,300 digits)"
            ) from None
        except RecursionError:
            raise SourceError(f"feed {source}: not valid JSON: nested too deeply") from None
        warnings: list[str] = []
        papers = hf_daily.parse(data, source=source, warnings=warnings)
    else:
        papers, warnings, whole = feed.read(content, source=source, content_type=content_type)
    kept = []
    for paper in papers:
        if len(paper.paper_id) > MAX_ID:
            warnings.append(
                f"feed {source}: {_clip(paper.title, 60)!r} skipped: its id is longer than "
                f"{MAX_ID} characters"
            )
        else:
            kept.append(bounded(paper))
    return Parsed(kept, warnings, whole)


def bounded(paper: Paper) -> Paper:
    """The paper with every field cut to a sane length (the one place this is done)."""
    authors = [_clip(name, MAX_AUTHOR_NAME) for name in paper.authors[:MAX_AUTHORS]]
    if len(paper.authors) > MAX_AUTHORS:
        authors.append("et al.")
    return dataclasses.replace(
        paper,
        title=_clip(paper.title, MAX_TITLE),
        abstract=_clip(paper.abstract, MAX_ABSTRACT),
        authors=authors,
        categories=[_clip(c, MAX_CATEGORY) for c in paper.categories[:MAX_CATEGORIES]],
        url=_link(paper.url) or "",
        pdf_url=_link(paper.pdf_url) or "",
        code_url=_link(paper.code_url),
        project_url=_link(paper.project_url),
        keywords=[_clip(k, MAX_KEYWORD) for k in paper.keywords[:MAX_KEYWORDS]],
        published=paper.published if len(paper.published or "") <= MAX_SHORT else None,
        version=paper.version if 0 <= (paper.version or 0) <= MAX_VERSION else None,
        announce_type=_clip(paper.announce_type, MAX_SHORT) if paper.announce_type else None,
    )


def _link(url: str | None) -> str | None:
    """The link, unless it is too long (cut short it would lead nowhere): then None."""
    return url if url and len(url) <= MAX_URL else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _looks_like_json(content: bytes, content_type: str) -> bool:
    """The body says first, the header second: a valid RSS document served as
    application/json was "not valid JSON" (found in review), as JSON served as RSS is read."""
    head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return False
    return "json" in content_type or head in (b"[", b"{")
