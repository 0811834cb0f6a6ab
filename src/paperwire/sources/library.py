"""Seeds from a reader's own library: BibTeX, a Zotero export (CSL JSON or RIS), or a plain list
of arXiv ids, URLs and DOIs.

Each entry is matched to an arXiv id from what it names (``eprint``, a URL, an arXiv DOI
``10.48550/arXiv.NNNN.NNNNN``, ``note = {arXiv:…}`` or ``journal = {arXiv preprint arXiv:…}`` as
arXiv's own BibTeX writes them), else to a stored paper with the same title (letters and digits
compared, case and accents ignored), else by its title through the arXiv API: one request at a
time, at least :data:`API_PAUSE` seconds apart (arXiv's terms ask robots for 3 s), each within
the feeds' deadline, and every answer, a miss included, cached in the store so a second import
asks again only after :data:`LOOKUP_TTL`. After :data:`MAX_FAILURES` failed look-ups in a row
the API is not asked again: the entries left are reported as not looked up. The matched
papers are stored as the subscriber's seeds: they shape the profile and are never picked for
a digest. Entries not matched are kept too (``paperwire status`` lists them).

An import is linear in the library's size: 100,000 BibTeX entries take seconds
(benchmarks/README.md, "Seeds import at library size").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ..config import FeedConfig
from ..errors import SourceError
from ..paper import Paper, arxiv_id, clean_text
from ..store import Store, utcnow
from . import fetch_feed
from .http import Limits

API_PAUSE = 3.0  # seconds between two arXiv API requests
LOOKUP_TTL = dt.timedelta(days=30)  # a cached title miss is asked again after this
ID_BATCH = 100  # ids per arXiv API id_list request


def id_list_url(api_url: str, ids: list[str]) -> str:
    """The arXiv API request for these papers by id (at most :data:`ID_BATCH` of them)."""
    return f"{api_url}?{urlencode({'id_list': ','.join(ids), 'max_results': len(ids)}, safe=',')}"


MAX_FAILURES = 3  # title look-ups failing in a row before the API is left alone
NOT_LOOKED_UP = "not looked up: the arXiv API failed {n} times in a row (import again later)"
_ARXIV_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/)?10\.48550/arxiv\.(.+)$", re.IGNORECASE)
_COMMENT = re.compile(r"(?:^|\s)#.*$")
_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)


@dataclass
class LibraryEntry:
    """One reference of a library file, with the arXiv id it names (if it names one)."""

    where: str  # "library.bib:12", for messages
    title: str = ""
    arxiv_id: str | None = None
    doi: str | None = None
    text: str = ""  # the line itself, for a plain list

    @property
    def label(self) -> str:
        return repr(self.title) if self.title else (self.doi or self.text or "(empty entry)")


@dataclass
class ImportReport:
    """What an import found: matched ids (new seeds counted) and what it could not match."""

    matched: list[tuple[LibraryEntry, str]] = field(default_factory=list)
    unmatched: list[tuple[LibraryEntry, str]] = field(default_factory=list)  # (entry, why)
    new_seeds: int = 0
    removed_seeds: int = 0  # an earlier import's of this file, no longer in it
    fetched: int = 0  # papers whose metadata came from the arXiv API
    api_requests: int = 0
    fetch_error: str | None = None
    # ids the arXiv API was asked for and did not return: kept as seeds (a paper announced
    # today can be missing from the API for hours), but not reported as matched
    not_on_arxiv: list[str] = field(default_factory=list)


# -- reading files ----------------------------------------------------------------------------


def read_library(path: Path) -> list[LibraryEntry]:
    """The entries of a BibTeX (.bib), CSL JSON (.json), RIS (.ris) or plain-list file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    entries = _read_any(text, path)
    if not entries:  # a Zotero export named .bib read as an empty library, "0 of 0", exit 0
        raise SourceError(
            f"{path.name}: no entries found: is it BibTeX (.bib), CSL JSON (.json), RIS (.ris) "
            "or a list of ids, one a line?"
        )
    # two entries on one line ("@article{a,...} @article{b,...}") shared a place, the key
    # of what an import could not match: a UNIQUE failure after the seeds were stored
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry.where] = seen.get(entry.where, 0) + 1
        if seen[entry.where] > 1:
            entry.where = f"{entry.where} (entry {seen[entry.where]} of the line)"
    return entries


def _read_any(text: str, path: Path) -> list[LibraryEntry]:
    """The entries in the format the text is in: its first character when that says another
    format than the name (a CSL JSON or RIS export named .bib), else the name's."""
    suffix = path.suffix.lower()
    head = text.lstrip()[:1]
    ris = re.match(r"\s*TY  - ", text) is not None
    if head in ("[", "{"):
        return _read_csl_json(text, path.name)
    if ris:
        return _read_ris(text, path.name)
    if suffix in (".bib", ".bibtex") or head == "@":
        return _read_bibtex(text, path.name)
    if suffix in (".json", ".csljson"):
        return _read_csl_json(text, path.name)
    if suffix == ".ris":
        return _read_ris(text, path.name)
    return _read_plain_list(text, path.name)


def _read_bibtex(text: str, name: str) -> list[LibraryEntry]:
    import bibtexparser
    from bibtexparser.library import Library
    from bibtexparser.middlewares import RemoveEnclosingMiddleware
    from bibtexparser.model import Block, DuplicateBlockKeyBlock, Entry

    # no LaTeX-decoding middleware: it decodes every field of every entry (0.5 ms an entry,
    # most of a 100,000-entry import); only titles are read as text, each decoded on its own
    library = bibtexparser.parse_string(text)
    # an entry whose key an earlier one has is still a paper of the reader's (keys mean
    # nothing here; exports merged from two libraries repeat them): it is read, not refused
    duplicates = [b for b in library.failed_blocks if isinstance(b, DuplicateBlockKeyBlock)]
    failed = [b for b in library.failed_blocks if not isinstance(b, DuplicateBlockKeyBlock)]
    if failed:
        block = failed[0]
        error = getattr(block, "error", None)
        # the parser's own words ("Duplicate field keys on entry: 'title'"), not its class name
        said = getattr(error, "abort_reason", "") or str(error or "").split(". Note:")[0]
        said = _one_line(said)[:200]
        said = said or (type(error).__name__ if error is not None else "parse error")
        raise SourceError(
            f"{name}:{(block.start_line or 0) + 1}: not a valid BibTeX entry ({said}); "
            "fix or remove it and import again"
        )
    twins: list[Block] = [
        b.ignore_error_block for b in duplicates if isinstance(b.ignore_error_block, Entry)
    ]
    # the parser's own unwrapping ({...} and "..." around values), which failed blocks skip
    read = [*library.entries, *RemoveEnclosingMiddleware().transform(Library(twins)).entries]
    entries = []
    for entry in sorted(read, key=lambda e: e.start_line or 0):
        fields = {f.key.lower(): str(f.value).strip() for f in entry.fields}
        title = _tex_title(fields.get("title", ""))
        found = LibraryEntry(f"{name}:{(entry.start_line or 0) + 1}", title=title)
        prefix = fields.get("archiveprefix", "").lower()
        eprint = fields.get("eprint", "")
        # eprint alone may be another archive's number; with archivePrefix, or id-shaped, it's arXiv
        if eprint and (prefix == "arxiv" or not prefix):
            found.arxiv_id = arxiv_id(eprint)
        # arXiv's own BibTeX: journal = {arXiv preprint arXiv:2309.06180}; others put it in a note
        links = ("url", "journal", "note", "howpublished")
        doi = fields.get("doi", "").replace("\\_", "_") or None
        _from_links(found, doi, [fields.get(key) for key in links])
        entries.append(found)
    return entries


_LATEX: Any = None  # one pylatexenc converter per process: building one costs ~0.1 ms


def _tex_title(title: str) -> str:
    """A BibTeX title as a reader sees it: accents and commands decoded (by pylatexenc, only
    for what the common accents leave), capital-protecting braces dropped, on one line."""
    text = clean_text(title)
    if "\\" in text:
        global _LATEX
        if _LATEX is None:
            from pylatexenc.latex2text import LatexNodes2Text

            _LATEX = LatexNodes2Text()
        # commands nested hundreds deep: read as written, not a RecursionError traceback
        with contextlib.suppress(RecursionError):
            text = _LATEX.latex_to_text(text)
    return _one_line(text)


def _read_csl_json(text: str, name: str) -> list[LibraryEntry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{name}:{exc.lineno}: not valid CSL JSON: {exc.msg}") from None
    except RecursionError:  # no library nests deeper than a few levels
        raise SourceError(
            f"{name}: not valid CSL JSON: nested too deeply (an export is a list of items)"
        ) from None
    except ValueError as exc:  # an integer of thousands of digits: Python's limit, a traceback
        raise SourceError(f"{name}: not valid CSL JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("items", [data])
    if not isinstance(data, list):
        raise SourceError(f"{name}:1: expected a CSL JSON list of items")
    entries = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise SourceError(
                f"{name}: item {index}: expected an object, got {type(item).__name__}"
            )
        title = item.get("title")
        found = LibraryEntry(
            f"{name}: item {index}", title=_one_line(title if isinstance(title, str) else "")
        )
        # Zotero writes an arXiv preprint's id as "number": "arXiv:1706.03762"
        _from_links(
            found,
            item.get("DOI"),
            [item.get("URL"), item.get("number"), item.get("archive_location")],
        )
        entries.append(found)
    return entries


def _read_ris(text: str, name: str) -> list[LibraryEntry]:
    import rispy

    try:
        records = rispy.loads(text)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # rispy raises KeyError for an untagged line after TY in a later record
        raise SourceError(f"{name}: not valid RIS: {type(exc).__name__} {exc}") from None
    starts = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("TY  - ")]
    entries = []
    for index, record in enumerate(records):
        line = starts[index] if index < len(starts) else index + 1
        title = record.get("title") or record.get("primary_title") or ""
        found = LibraryEntry(f"{name}:{line}", title=_one_line(title))
        candidates = [*record.get("urls", []), record.get("type_of_work"), record.get("number")]
        _from_links(found, record.get("doi"), candidates)
        entries.append(found)
    return entries


def _read_plain_list(text: str, name: str) -> list[LibraryEntry]:
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).strip()  # "# note" or "id  # note"; a URL's #anchor stays
        if not line:
            continue
        found = LibraryEntry(f"{name}:{number}", text=line)
        _from_links(found, line if _DOI.match(line) else None, [line])
        entries.append(found)
    return entries


def _from_links(found: LibraryEntry, doi: object, texts: list[object]) -> None:
    """Fill in the arXiv id from an arXiv DOI or any arXiv URL/label among ``texts``."""
    if doi and isinstance(doi, str):  # a CSL JSON export may hold a number there
        doi = doi.strip()
        match = _DOI.match(doi)
        found.doi = match.group(1) if match else doi
        arxiv_doi = _ARXIV_DOI.match(found.doi)
        if arxiv_doi and not found.arxiv_id:
            found.arxiv_id = arxiv_id(arxiv_doi.group(1))
    for text in texts:
        if found.arxiv_id:
            return
        if text and isinstance(text, str):
            found.arxiv_id = arxiv_id(text)


def _one_line(text: str | None) -> str:
    return " ".join(str(text or "").replace("{", "").replace("}", "").split())


def title_key(title: str) -> str:
    """A title reduced to its letters and digits: what two spellings of it share."""
    folded = unicodedata.normalize("NFKD", title.casefold())
    return "".join(c for c in folded if c.isalnum())


# -- matching and storing ---------------------------------------------------------------------


class Throttle:
    """At least ``pause`` seconds between the starts of two requests (the clock injectable)."""

    def __init__(
        self,
        pause: float = API_PAUSE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.pause, self.clock, self.sleep = pause, clock, sleep
        self._last: float | None = None

    def wait(self) -> None:
        if self._last is not None:
            left = self._last + self.pause - self.clock()
            if left > 0:
                self.sleep(left)
        self._last = self.clock()


def import_seeds(
    store: Store,
    subscriber_id: str,
    entries: list[LibraryEntry],
    *,
    api_url: str,
    origin: str,
    throttle: Throttle | None = None,
    now: dt.datetime | None = None,
    timeout: float = 60.0,
) -> ImportReport:
    """Match entries to arXiv ids (their own, a stored paper's title, else the arXiv API's
    title search, each request within ``timeout`` seconds), fetch the papers not yet stored,
    record them as seeds, and keep the entries not matched for ``status``."""
    throttle = throttle or Throttle()
    now = now or utcnow()
    # a retry waits as long as the next request would: arXiv's 3 s (a 503 with "Retry-After:
    # 0" had four requests within 20 ms)
    limits = Limits(deadline=timeout, retry_pause=throttle.pause)
    report = ImportReport()
    found_papers: dict[str, Paper] = {}
    stored_titles: dict[str, str] | None = None
    failures = 0  # title look-ups failed in a row
    for entry in entries:
        if entry.arxiv_id:
            report.matched.append((entry, entry.arxiv_id))
            continue
        if not entry.title:
            why = f"DOI {entry.doi} is not an arXiv DOI" if entry.doi else "no arXiv id or title"
            report.unmatched.append((entry, why))
            continue
        if stored_titles is None:  # read once, and only for a library that has titles to look up
            stored_titles = _stored_titles(store)
        stored = stored_titles.get(title_key(entry.title))
        if stored is not None:  # already in paperwire.db: no request
            report.matched.append((entry, stored))
            continue
        if failures >= MAX_FAILURES:
            report.unmatched.append((entry, NOT_LOOKED_UP.format(n=failures)))
            continue
        try:
            paper_id = _by_title(store, entry.title, api_url, throttle, report, now, limits)
        except SourceError as exc:
            failures += 1
            report.unmatched.append((entry, f"arXiv API: {exc}"))
            continue
        failures = 0
        if isinstance(paper_id, Paper):
            found_papers[paper_id.paper_id] = paper_id
            paper_id = paper_id.paper_id
        if paper_id:
            report.matched.append((entry, paper_id))
        else:
            report.unmatched.append((entry, "no arXiv paper has this title"))
    ids = list(dict.fromkeys(p for _, p in report.matched))
    store_seed_papers(store, found_papers.values())
    known = store.papers(ids).keys()  # one pass over the ids, not one per id
    missing = [p for p in ids if p not in known]
    # the seeds are kept before their papers are fetched, 100 ids every 3 s (a 1,000-paper
    # library takes half a minute): a Ctrl-C or an outage on the way loses no seed, and the
    # next `paperwire fetch` looks up what is still missing
    report.new_seeds = store.add_seeds(subscriber_id, ids, origin=origin, now=now)
    # the library as it is now: an entry removed since the last import of this file goes
    report.removed_seeds = store.drop_seeds_not_in(subscriber_id, origin, ids)
    store.set_seed_misses(
        subscriber_id, origin, [(e.where, e.label, why) for e, why in report.unmatched], now=now
    )
    if missing and failures >= MAX_FAILURES:
        report.fetch_error = f"arXiv API: {NOT_LOOKED_UP.format(n=failures)}"
        missing = []
    asked: list[str] = []
    for start in range(0, len(missing), ID_BATCH):
        batch = missing[start : start + ID_BATCH]
        try:
            papers = _api(id_list_url(api_url, batch), throttle, report, limits)
        except SourceError as exc:
            report.fetch_error = str(exc)  # the seeds are kept (above)
            break
        report.fetched += sum(store_seed_papers(store, papers))
        asked += batch
    if asked:
        known = store.papers(asked).keys()
        report.not_on_arxiv = [p for p in asked if p not in known]
    return report


def _stored_titles(store: Store) -> dict[str, str]:
    """Every stored paper by its title key (an arXiv paper's id wins over another feed's)."""
    out: dict[str, str] = {}
    for paper_id, title in store.titles():
        key = title_key(title or "")
        if key and (
            key not in out or (arxiv_id(paper_id) == paper_id and arxiv_id(out[key]) != out[key])
        ):
            out[key] = paper_id
    return out


def _by_title(
    store: Store,
    title: str,
    api_url: str,
    throttle: Throttle,
    report: ImportReport,
    now: dt.datetime,
    limits: Limits,
) -> Paper | str | None:
    key = title_key(title)
    cached = store.title_lookup(key)
    if cached is not None and (
        cached["paper_id"] or dt.datetime.fromisoformat(cached["looked_up"]) > now - LOOKUP_TTL
    ):
        return cached["paper_id"]
    # arXiv's search wants words, not punctuation: quotes or colons would end the phrase
    words = " ".join(re.sub(r"[^\w\s-]", " ", title).split())
    query = urlencode({"search_query": f'ti:"{words}"', "max_results": 5})
    papers = _api(f"{api_url}?{query}", throttle, report, limits)
    match = next((p for p in papers if title_key(p.title) == key), None)
    store.record_title_lookup(key, match.paper_id if match else None, now=now)
    return match


def _api(url: str, throttle: Throttle, report: ImportReport, limits: Limits) -> list[Paper]:
    # the feeds' own download path: its deadline, size cap and one-line errors
    throttle.wait()
    report.api_requests += 1
    # the configured arXiv API (a mirror, or a test's server) is arXiv's word wherever it is
    feed = FeedConfig(url=url, name="arXiv API", kind="feed")
    fetched = fetch_feed(feed, limits=limits, speaks_for_papers=True)
    return [p for p in fetched.papers if p.is_arxiv]


def store_seed_papers(store: Store, papers: Iterable[Paper]) -> tuple[int, int]:
    """Store seed papers as first seen when they were published, so a 2017 paper imported
    today, or named in one reader's ``seed_papers``, is not "new" in anyone's next digest (one
    write per publication date); returns (new, already known), as :meth:`Store.add_papers`."""
    by_date: dict[str | None, list[Paper]] = {}
    for paper in papers:
        by_date.setdefault(paper.published or None, []).append(paper)
    new = known = 0
    for published, same in by_date.items():
        when = dt.datetime.fromisoformat(published) if published else None
        added, had = store.add_papers(same, now=when or dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        new, known = new + added, known + had
    return new, known
