"""The one record every source produces, and how a paper is identified.

arXiv papers are keyed by the bare arXiv id without version, whichever feed they came from, so a
replacement (v2) or a cross-listing is the same paper and is never sent twice.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import idna

from .redact import printable

# New-style ids (0704.0001 onwards: YYMM.NNNN, YYMM.NNNNN from 1501) and old-style
# archive/YYMMNNN ids (written with a subject class too: math.DG/0211159). A month that is none
# ("1234.12345") is no id: arXiv's API answers a batch holding one with an error, and the
# reader's other seed papers were never looked up (found in review).
_NEW_ID = r"(?:0[7-9]|[1-9]\d)(?:0[1-9]|1[0-2])\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_URL = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|oai:arXiv\.org:|\barXiv:|\b10\.48550/arXiv\.)"
    rf"({_NEW_ID}|{_OLD_ID})(v\d+)?",
    re.IGNORECASE,
)
_BARE_ID = re.compile(rf"^(?:arXiv:)?({_NEW_ID}|{_OLD_ID})(v\d+)?$", re.IGNORECASE)
# A tag: "<", a name ("p", "/b", "o:p") ended by a space, "/" or ">", up to the next ">"; or a
# comment or declaration. Not every "<" up to the next ">": "($p < .001$) ... $>$ 1cm" and
# "(< 10 min) ... > 100 km" in arXiv abstracts are text, and were dropped with all between.
# (comments first, by _drop_comments: "<!--.*?-->" here tried every "<!--" to the end of a text
# with no "-->", quadratic: a feed's 80 KB of "<!--" took 6 s, its 20 MB the fetch for good)
_TAG = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>|<![A-Za-z\[][^<>]*>")
# TeX accents as arXiv metadata writes them in author names and titles: D\'aniel, {\"o}, \c{c}
_TEX_ACCENT = re.compile(r"\{?\\(['`^\"~=.]|[cvuH](?=[\s{]))\s*\{?([A-Za-z])\}?\}?")
_COMBINING = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    "=": "\u0304",
    ".": "\u0307",
    "c": "\u0327",
    "v": "\u030c",
    "u": "\u0306",
    "H": "\u030b",
}
# TeX's letters that are commands, as arXiv metadata writes them: Gr{\o}nneb{\ae}k, Pawe\l{},
# the dotless i and j under an accent (\'{\i}). Not a longer command (\omega, \log, \in), nor
# one after an escaped backslash. The space after a bare command stays: TeX would take it
# ("Bj\o rn"), but metadata's "6563 \AA emission" and "Pawe\l de Jong" need it more.
_LETTERS = {
    "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "o": "ø", "O": "Ø", "ss": "ß",
    "aa": "å", "AA": "Å", "l": "ł", "L": "Ł", "i": "i", "j": "j",
}  # fmt: skip
_TEX_LETTER = re.compile(
    r"\{\\(ae|AE|oe|OE|o|O|ss|aa|AA|l|L|i|j)\}|(?<!\\)\\(ae|AE|oe|OE|o|O|ss|aa|AA|l|L|i|j)(?![A-Za-z])(?:\{\})?"
)
_SPACE = re.compile(r"\s+")
# What no feed text may keep: C0/C1 controls (whitespace aside: it is collapsed), what XML 1.0
# cannot hold (lone surrogates, U+FFFE/U+FFFF: one made the reader's Atom feed unreadable), and
# the bidi embeddings/overrides/isolates that reverse the text after them (a Subject line).
# U+200E/U+200F, single marks, stay.
_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]"
)
# RFC 3986's reserved and unreserved characters, and "%" so an escape already made is kept:
# quote() encodes the rest (whitespace, controls, <>"|\\^`{} and non-ASCII), once only.
_URL_SAFE = ":/?#[]@!$&'()*+,;=-._~%"


def arxiv_id(text: str | None) -> str | None:
    """The versionless arXiv id in a URL, ``oai:`` guid, ``arXiv:`` label or bare id, else None."""
    if not text:
        return None
    text = text.strip()
    return _id_of(_BARE_ID.match(text) or _ARXIV_URL.search(text))


def _id_of(match: re.Match[str] | None) -> str | None:
    """The canonical id a match of an arXiv id pattern found (group 1), else None."""
    return _canonical(match.group(1)) if match else None


# a whole link or guid that is arXiv's own: /abs/, /pdf/ or /html/ and an id on arxiv.org or a
# subdomain, an "oai:arXiv.org:" or "arXiv:" label
_ARXIV_PATH = re.compile(rf"^/(?:abs|pdf|html)/({_NEW_ID}|{_OLD_ID})(v\d+)?", re.I)
_ARXIV_LABEL = re.compile(rf"^(?:oai:arXiv\.org:|arXiv:)({_NEW_ID}|{_OLD_ID})(v\d+)?$", re.I)


def _arxiv_link(text: str | None) -> re.Match[str] | None:
    """The id (group 1) and version (group 2) of a feed item's link or guid that is arXiv's,
    whole: not an id inside another site's address ("https://evil.example/arxiv.org/abs/…",
    "notarxiv.org/abs/…", "…?next=https://arxiv.org/abs/…"), which named an arXiv paper, and a
    "v99" in it, for a feed that was none of arXiv's (found in review)."""
    text = (text or "").strip()
    found = _BARE_ID.match(text) or _ARXIV_LABEL.match(text)
    if found or not text:
        return found
    try:
        parts = urlsplit(text if "://" in text else f"https://{text}")
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    return _ARXIV_PATH.match(parts.path) if on_domain(host, "arxiv.org") else None


def on_domain(host: str, domain: str) -> bool:
    """Whether ``host`` (lower case, no trailing dot) is ``domain`` or one of its subdomains."""
    return host == domain or host.endswith("." + domain)


def arxiv_link_id(text: str | None) -> str | None:
    """:func:`arxiv_id` of a feed item's link or guid, read whole (:func:`_arxiv_link`)."""
    return _id_of(_arxiv_link(text))


def arxiv_link_version(text: str | None) -> int | None:
    """The version number (``v2`` → 2) of a feed item's link or guid that is arXiv's, read
    whole (:func:`_arxiv_link`), if it has one."""
    match = _arxiv_link(text)
    return int(match.group(2)[1:]) if match and match.group(2) else None


def _canonical(found: str) -> str | None:
    """An id as arXiv writes it: an old-style one in lower case without its subject class
    (math.DG/0211159 and MATH/0211159 are math/0211159, the feed's and the API's form); a
    new-style one with the digits its month takes (four before 2015, five from 1501)."""
    if "/" in found:
        archive, number = found.split("/", 1)
        return f"{archive.split('.', 1)[0].lower()}/{number}"
    month, number = found.split(".", 1)
    return found if (len(number) == 5) == (month >= "1501") else None


# arXiv's feeds announce a revised paper again ("replace"; "replace-cross" from another
# listing): on the day a store first sees it, it is no new paper, whatever its feed date says
REVISION_ANNOUNCEMENTS = frozenset({"replace", "replace-cross"})


def first_posted(paper_id: str) -> str | None:
    """The month an arXiv paper was first posted (``2411.00850`` → ``2024-11``; ``math/0211159``
    → ``2002-11``): its id says so, whatever version a feed announces; None for other ids."""
    if arxiv_id(paper_id) != paper_id:
        return None
    digits = paper_id.rsplit("/", 1)[-1][:4]
    year = int(digits[:2])
    return f"{(1900 if year >= 91 else 2000) + year}-{digits[2:]}"


def revision_note(paper_id: str, paper: dict) -> str | None:
    """What a reader is told of a paper (``paper``: its stored record) its feed announced as a
    revision of an older one ("revised v2, first posted 2024-11"), or None for a new one."""
    if paper.get("announce_type") not in REVISION_ANNOUNCEMENTS:
        return None
    version = paper.get("version")
    posted = first_posted(paper_id)
    revised = f"revised v{version}" if version else "revised"
    return f"{revised}, first posted {posted}" if posted else revised


def seed_ids(written: Iterable[str]) -> list[str]:
    """Seed papers as stored ids, each once: ``2309.06180v2``, ``arXiv:2309.06180`` and
    ``https://arxiv.org/abs/2309.06180v2`` are all the paper ``2309.06180``; an id of no
    arXiv shape stays as written."""
    ids = (arxiv_id(p) or p.strip() for p in written)
    return list(dict.fromkeys(p for p in ids if p))


# what shows nothing: format characters (zero-width spaces, a BOM, the soft hyphen), spaces,
# and combining marks with nothing to combine with (U+034F)
_INVISIBLE = frozenset({"Cf", "Mn", "Zs"})


def shows_something(text: str) -> bool:
    """Whether ``text`` holds a character a reader would see: a TL;DR or a profile edit of
    zero-width characters alone is none."""
    return any(unicodedata.category(c) not in _INVISIBLE for c in text)


def safe_chars(text: str) -> str:
    """``text`` without terminal escape sequences (whole: an ESC alone would leave "[2J"),
    control, XML-invalid and bidi override characters."""
    return _UNSAFE_CHARS.sub("", printable(text))


def no_encoded_words(text: str) -> str:
    """``text`` for an e-mail header with every RFC 2047 encoded-word opener ``=?`` broken
    (``= ?``). A feed's title reaches the Subject, and Python's header parser decodes an
    encoded word it finds there: ``=?utf-8?b?…?=`` is printable ASCII that :func:`safe_chars`
    keeps, and decoded it can hold the CR/LF, bidi overrides and escapes that were dropped
    (on 3.11.7, CVE-2024-6923: a CR/LF written out raw, new headers, a new body). A title
    never needs one: the policy encodes what it must itself, from the clean text."""
    return text.replace("=?", "= ?")


def _drop_comments(markup: str) -> str:
    """``markup`` with each ``<!-- … -->`` a space, in one pass (what ``<!--.*?-->`` drops); a
    ``<!--`` with no ``-->`` after it, and what follows, stay."""
    if "<!--" not in markup:
        return markup
    parts, at = [], 0
    while (start := markup.find("<!--", at)) != -1:
        end = markup.find("-->", start + 4)
        if end == -1:
            break
        parts += [markup[at:start], " "]
        at = end + 3
    parts.append(markup[at:])
    return "".join(parts)


def clean_text(markup: str | None) -> str:
    """Plain text from feed HTML: tags dropped, entities decoded, control and bidi override
    characters dropped (:func:`safe_chars`), whitespace collapsed.

    The result is still untrusted; templates escape it on output.
    """
    if not markup:
        return ""
    text = _TAG.sub(" ", _drop_comments(markup))
    text = html.unescape(text)
    if "\\" in text:
        text = tex_letters(text)
        text = _TEX_ACCENT.sub(lambda m: m.group(2) + _COMBINING[m.group(1)], text)
        text = unicodedata.normalize("NFC", text)
    return _SPACE.sub(" ", safe_chars(text)).strip()


def tex_letters(text: str) -> str:
    """TeX's letter commands written as the letters (``Gr{\\o}nneb{\\ae}k``: Grønnebæk)."""
    return _TEX_LETTER.sub(lambda m: _LETTERS[m.group(1) or m.group(2)], text)


def web_url(url: object) -> str:
    """A feed's link made safe to write anywhere: an http(s) URL with a host, with every
    character no URL may hold bare percent-encoded (a CR/LF, "<", "|" or space would end the
    link in a text e-mail, Slack or Markdown and start the sender's own text); else "".

    Idempotent, so it is applied at ingest and again when rendering (older stored links)."""
    if not isinstance(url, str):
        return ""
    url = quote(_ascii_host(url.strip()), safe=_URL_SAFE)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # a malformed IPv6 host
        return ""
    return url if parts.scheme.lower() in ("http", "https") and host else ""


def _ascii_host(url: str) -> str:
    """The URL with an international host name in its ASCII form ("münchen.de" is
    "xn--mnchen-3ya.de"): percent-encoded, as the rest of a URL is, a host name is no host.
    A host IDNA cannot encode is no link ("")."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return url
    if not host or host.isascii():
        return url
    try:
        # IDNA 2008 with UTS 46 (non-transitional), as browsers resolve it: Python's own
        # "idna" codec is IDNA 2003, which maps "faß.de" to fass.de, someone else's domain
        ascii_host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return ""
    user, at, host_port = parts.netloc.rpartition("@")
    _, colon, port = host_port.rpartition(":")  # a non-ASCII host is no IPv6 address
    netloc = f"{user}{at}{ascii_host}{colon}{port if colon else ''}"
    return parts._replace(netloc=netloc).geturl()


@dataclass
class Paper:
    """A paper as one source saw it, before it is merged into the store."""

    paper_id: str
    title: str
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    url: str = ""
    pdf_url: str = ""
    published: str | None = None  # ISO 8601 date-time in UTC, when the source says
    source: str = ""
    version: int | None = None
    upvotes: int | None = None
    announce_type: str | None = None
    # what the feed says beyond the abstract (see sources/extras.py); None when it says nothing
    tldr: str | None = None
    keywords: list[str] = field(default_factory=list)
    code_url: str | None = None
    project_url: str | None = None
    # an item that only links an arXiv paper (a blog's post, its own guid): stored when it is
    # the first to bring the paper, never over what arXiv or another source said of it
    names_only: bool = False

    @property
    def is_arxiv(self) -> bool:
        return arxiv_id(self.paper_id) == self.paper_id

    def text(self) -> str:
        return paper_text(self.title, self.abstract)


def paper_text(title: str | None, abstract: str | None) -> str:
    """What ranking reads: the title twice (it is dense with signal), then the abstract."""
    return f"{title or ''}. {title or ''}. {abstract or ''}"


def text_hash(text: str) -> str:
    """A short fingerprint of a paper's text: what is derived from it (stored vectors and
    analyses) is made again when it changes."""
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


@dataclass
class Pick:
    """One paper chosen for one subscriber, with the score and the words that explain it.

    Lives here, not in ``digest``, so rendering (and its worker processes) never imports the
    ranking stack (SciPy)."""

    paper_id: str
    title: str
    url: str
    score: float
    reasons: list[str]
    paper: dict[str, Any] = field(repr=False, default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "paper_id": self.paper_id,
            "title": self.title,
            "url": self.url,
            "score": round(float(self.score), 6),
            "reasons": self.reasons,
            "authors": self.paper.get("authors", []),
            "published": self.paper.get("published"),
            "upvotes": self.paper.get("upvotes"),
        }
