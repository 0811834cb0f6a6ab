"""RSS / Atom / RDF documents through feedparser: arXiv's three formats and any other feed."""

from __future__ import annotations

import calendar
import codecs
import datetime as dt
import re
from typing import Any

import feedparser

from ..errors import SourceError
from ..paper import Paper, arxiv_link_id, arxiv_link_version, clean_text, web_url
from .extras import code_link, project_link

# arXiv RSS (2024+) descriptions start "arXiv:2504.07119v1 Announce Type: new \nAbstract: ...".
_ARXIV_RSS_PREFIX = re.compile(
    r"^\s*arXiv:\S+\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.IGNORECASE
)
# Old arXiv RDF titles end "(arXiv:1234.5678v2 [cs.LG] UPDATED)".
_RDF_TITLE_SUFFIX = re.compile(r"\s*\(arXiv:[^)]*\)\s*$")
_AUTHOR_SPLIT = re.compile(r"\s*(?:,|;|\band\b)\s*")


def parse(content: bytes, *, source: str) -> tuple[list[Paper], list[str]]:
    """Papers in a feed document, and warnings for entries that had to be skipped."""
    papers, warnings, _ = read(content, source=source)
    return papers, warnings


# an HTML document's start, after any byte-order mark, white space and comments
_HTML = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S
)


def read(
    content: bytes, *, source: str, content_type: str = ""
) -> tuple[list[Paper], list[str], bool]:
    """:func:`parse`, and whether the document was whole: False for a malformed one that still
    gave papers (a download cut off with no Content-Length to tell), whose papers are kept but
    whose ETag and Last-Modified must not be, or the rest of it would never be fetched.

    An arXiv API error document (an entry titled "Error" whose id is under
    ``arxiv.org/api/errors``) is the feed's error, never a paper."""
    if not content.strip():
        # a 200 with no body (a server mid-deploy, a script that died): feedparser gives an
        # empty result without even a version for it
        raise SourceError(
            f"feed {source}: an empty document ({len(content)} bytes): no RSS/Atom feed in it"
        )
    try:
        doc = feedparser.parse(_valid_char_refs(_in_http_charset(content, content_type)))
    except Exception as exc:  # feedparser raises on a few malformed documents (its issue #599)
        raise SourceError(
            f"feed {source}: not a readable RSS/Atom document: {type(exc).__name__}: {exc}"
        ) from None
    _raise_arxiv_api_error(doc, source)
    papers, warnings = [], []
    for index, entry in enumerate(doc.entries):
        try:
            papers.append(_paper(entry, source))
        except ValueError as exc:
            warnings.append(f"feed {source}: entry {index + 1} skipped: {exc}")
    if not papers and not doc.version and _HTML.match(content[:512]):
        # a login, error or listing page where a feed was expected, well formed or not
        raise SourceError(
            f"feed {source}: an HTML web page, not an RSS/Atom feed (a login or error page, "
            "or the site itself: use the address of its feed)"
        )
    if doc.bozo and not papers:
        # Nothing usable came out of a broken document (an HTML error page, a truncated
        # download): an error, not a quiet day.
        problem = doc.get("bozo_exception")
        where = f" at line {problem.getLineNumber()}" if hasattr(problem, "getLineNumber") else ""
        raise SourceError(f"feed {source}: not a valid RSS/Atom document{where}: {problem}")
    if not doc.version and not doc.entries:
        raise SourceError(f"feed {source}: not an RSS/Atom document (no feed or entries found)")
    if doc.bozo:
        warnings.append(
            f"feed {source}: recovered from a malformed document: {doc.bozo_exception}; "
            "it is downloaded whole again the next time"
        )
    return papers, warnings, not doc.bozo


# the charset parameter of a Content-Type header
_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
# an XML declaration that names its encoding (in any ASCII-compatible encoding)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*\bencoding\s*=", re.IGNORECASE)
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _in_http_charset(content: bytes, content_type: str) -> bytes:
    """``content`` as UTF-8 when the HTTP header's charset is the only word on its encoding: no
    byte-order mark, no XML declaration naming one, and not UTF-8 itself (feedparser, never
    given the header, read such a feed as UTF-8, then as windows-1252: 'îÅÊÒÏÎÎÙÅ' for koi8-r,
    with a 'malformed document' warning on every fetch). A Latin-1 or ASCII label is read as
    windows-1252, as browsers do (WHATWG), which it nearly always is. Otherwise unchanged."""
    found = _CHARSET.search(content_type)
    if found is None or content.startswith(_BOMS) or _XML_ENCODING.match(content[:512]):
        return content
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return content  # UTF-8 whatever the header says: a server labelling every file Latin-1
    try:
        codec = codecs.lookup(found.group(1)).name
    except LookupError:
        return content
    if codec in ("latin-1", "iso8859-1", "ascii"):
        codec = "cp1252"
    try:
        return content.decode(codec).encode("utf-8")
    except (UnicodeError, LookupError):  # LookupError: a codec of no text ('base64', 'zlib')
        return content


# a numeric character reference: &#xD83D; or &#55357;
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));")
_REPLACEMENT = b"&#xFFFD;"


def _code_point(ref: re.Match[bytes]) -> int:
    hex_digits, digits = ref.groups()
    text = (hex_digits or digits).lstrip(b"0") or b"0"  # '&#0000000065;' is 'A'
    if len(text) > 8:  # past U+10FFFF whatever the digits (and never a 4,300-digit int)
        return 0x110000
    return int(text, 16 if hex_digits else 10)


def _valid_char_refs(content: bytes) -> bytes:
    """``content`` with every numeric character reference feedparser cannot take (6.0.14
    raises on one to a surrogate or past U+10FFFF, its issue #591, losing the whole feed) made
    one it can: a UTF-16 pair of references side by side (``&#55357;&#56832;``, an emoji as
    some serializers write it) becomes its character, any other such reference U+FFFD. Valid
    references and everything else are left as they are."""
    if b"&#" not in content:
        return content
    out: list[bytes] = []
    done = 0  # content[:done] is in out
    pending: tuple[re.Match[bytes], int] | None = None  # a high surrogate, waiting for its pair
    for ref in _CHAR_REF.finditer(content):
        point = _code_point(ref)
        if pending is not None:
            high, high_point = pending
            pending = None
            if ref.start() == high.end() and 0xDC00 <= point <= 0xDFFF:
                out += [
                    content[done : high.start()],
                    b"&#%d;" % (0x10000 + ((high_point - 0xD800) << 10) + (point - 0xDC00)),
                ]
                done = ref.end()
                continue
            out += [content[done : high.start()], _REPLACEMENT]
            done = high.end()
        if 0xD800 <= point <= 0xDBFF:
            pending = (ref, point)
        elif point > 0x10FFFF or 0xDC00 <= point <= 0xDFFF:
            out += [content[done : ref.start()], _REPLACEMENT]
            done = ref.end()
    if pending is not None:
        out += [content[done : pending[0].start()], _REPLACEMENT]
        done = pending[0].end()
    if not out:
        return content
    out.append(content[done:])
    return b"".join(out)


_ARXIV_API_ERROR = re.compile(r"^https?://(?:export\.)?arxiv\.org/api/errors\b", re.IGNORECASE)


def _raise_arxiv_api_error(doc: Any, source: str) -> None:
    """The arXiv API answers a bad query with HTTP 200 and an Atom feed of one entry that
    describes the error: that is the feed's error."""
    for entry in doc.entries:
        if _ARXIV_API_ERROR.match(entry.get("id") or "") or _ARXIV_API_ERROR.match(
            entry.get("link") or ""
        ):
            said = clean_text(entry.get("summary")) or clean_text(entry.get("title")) or "?"
            raise SourceError(f"feed {source}: the arXiv API answered with an error: {said}")


def _paper(entry: Any, source: str) -> Paper:
    links = [entry.get("link", "")] + [link.get("href", "") for link in entry.get("links", [])]
    guid = entry.get("id") or ""
    candidates = [guid, *links]
    aid = next((a for a in map(arxiv_link_id, candidates) if a), None)
    title = clean_text(entry.get("title"))
    title = _RDF_TITLE_SUFFIX.sub("", title)
    if not title:
        raise ValueError("no title")
    summary = entry.get("summary") or entry.get("description") or ""
    announce = entry.get("arxiv_announce_type")
    abstract = clean_text(summary)
    prefix = _ARXIV_RSS_PREFIX.match(abstract)
    if prefix:
        announce = announce or prefix.group("type")
        abstract = abstract[prefix.end() :]
    # an item whose own id is another (a blog post's URL) and that links an arXiv paper only
    # names it: its title is the post's, and its "v9999" replaced the paper's text for good
    names_only = bool(aid and guid and not arxiv_link_id(guid))
    if aid:
        paper_id = aid
        version = (
            None
            if names_only
            else next((v for v in map(arxiv_link_version, candidates) if v), None)
        )
        url = f"https://arxiv.org/abs/{aid}"
        pdf_url = f"https://arxiv.org/pdf/{aid}"
    else:
        paper_id = _feed_id(guid, entry.get("link") or "", source)
        if not paper_id:
            raise ValueError(f"{title[:60]!r} has neither an id nor a link")
        version = None
        url = entry.get("link") or (guid if guid.startswith("http") else "")
        pdf_url = next(
            (
                link["href"]
                for link in entry.get("links", [])
                if link.get("type") == "application/pdf"
            ),
            "",
        )
    comment = clean_text(entry.get("arxiv_comment"))  # the arXiv API's "Code: https://..."
    return Paper(
        code_url=code_link(comment, abstract),
        project_url=project_link(comment, abstract),
        paper_id=paper_id,
        title=title,
        abstract=abstract,
        authors=_authors(entry),
        categories=_categories(entry),
        url=web_url(url),
        pdf_url=web_url(pdf_url),
        published=_published(entry),
        source=source,
        version=version,
        announce_type=announce,
        names_only=names_only,
    )


def _feed_id(guid: str, link: str, source: str) -> str:
    """A non-arXiv entry's id: its guid when that is a URI (a URL, ``urn:``, ``tag:``), unique
    anywhere; a bare guid ("1", "post-42") is unique in its feed only, and two labs' post "1"
    were one paper, the second feed's text over the first's (found in review): it is kept
    under the feed's name. (The same post in two feeds is then two ids, one paper to the
    twin keys: rank/twins.py.)"""
    if ":" in guid or not guid:
        return guid or link
    return f"{source}#{guid}"


def _authors(entry: Any) -> list[str]:
    names = [clean_text(a.get("name")) for a in entry.get("authors", []) if a.get("name")]
    if len(names) == 1 and ("," in names[0] or " and " in names[0]):
        # arXiv RSS puts every author in one dc:creator: "A, B, and C"
        names = [n for n in _AUTHOR_SPLIT.split(names[0]) if n]
    if not names and entry.get("author"):
        names = [n for n in _AUTHOR_SPLIT.split(clean_text(entry["author"])) if n]
    return names


def _categories(entry: Any) -> list[str]:
    seen: list[str] = []
    primary = (entry.get("arxiv_primary_category") or {}).get("term")
    for term in [primary, *(t.get("term") for t in entry.get("tags", []))]:
        if term and term not in seen:
            seen.append(term)
    return seen


def _published(entry: Any) -> str | None:
    """The entry's date, or None: a date past what a datetime holds ("0001-01-01T00:00:00+01:00"
    is year 0) is no date, and cost the whole paper (found in review)."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                stamp = calendar.timegm(parsed)
                return dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat(timespec="seconds")
            except (ValueError, OverflowError, OSError):
                continue
    return None
