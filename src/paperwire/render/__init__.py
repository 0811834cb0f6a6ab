"""Render stage: Jinja2 templates (``templates/``) for e-mail, and Block Kit for Slack.

One Jinja2 environment with autoescape on for HTML and ``StrictUndefined`` everywhere: a typo in
a template is an error, not an empty string. Feed text is untrusted and reaches HTML only through
autoescaping. CSS is inlined by css-inline because mail clients drop ``<style>`` blocks.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import css_inline
import jinja2

from ..errors import RenderError
from ..links import Links
from ..paper import no_encoded_words, revision_note, safe_chars, web_url
from ..tex import readable

if TYPE_CHECKING:
    from ..paper import Pick

ABSTRACT_CHARS = 420


def templates_dir() -> Path:
    """``paperwire/templates`` in an installed wheel, else the repository's ``templates/``."""
    packaged = Path(str(resources.files("paperwire"))) / "templates"
    if packaged.is_dir():
        return packaged
    repo = Path(__file__).resolve().parents[3] / "templates"
    if repo.is_dir():
        return repo
    raise RenderError("cannot find paperwire's templates/ folder; reinstall the package")


@functools.cache
def environment(path: str | None = None) -> jinja2.Environment:
    """The one Jinja2 environment, compiled once per process."""
    env = jinja2.Environment(
        loader=_InliningLoader(path or templates_dir()),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["shorten"] = shorten
    env.filters["authors"] = format_authors
    env.filters["plain_abstract"] = plain_abstract
    env.filters["readable"] = readable  # TeX a reader cannot read, written out (tex.py)
    return env


def shorten(text: str | None, limit: int = ABSTRACT_CHARS) -> str:
    """Cut text at a word boundary near ``limit`` characters, with an ellipsis."""
    text = (text or "").strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.")
    return cut + "…"


@functools.lru_cache(maxsize=8192)
def plain_abstract(text: str | None) -> str:
    """An abstract for the plain-text part: shortened, wrapped at 72 and indented by 3.

    A day's digests share a few thousand papers, so each is wrapped once per process rather
    than once per digest (textwrap was ~0.8 ms of every message)."""
    env = environment()
    # the digest's own vote lines read "   More like this: <link>": an abstract padded so that
    # a wrapped line begins with those words would pass its link for one (found in review)
    text = _OWN_LABEL.sub(r"\1 -", shorten(text))
    return env.call_filter("indent", env.call_filter("wordwrap", text, [72]), [3])


# between its words any space or invisible character (a zero-width space, a word joiner, a
# soft hyphen: kept at ingest), and any colon a reader takes for one (full-width, ratio, …):
# "More like this\u200b: <link>" read as the digest's own line (found in review)
_GAP = r"[\s\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]"
_OWN_LABEL = re.compile(
    rf"\b((?:more|less){_GAP}+like{_GAP}+this){_GAP}*[:\uff1a\ufe13\ufe55\u2236\ua789\u02d0]",
    re.IGNORECASE,
)


def format_authors(authors: list[str] | None, limit: int = 4) -> str:
    authors = authors or []
    if len(authors) <= limit:
        return ", ".join(authors)
    return ", ".join(authors[:limit]) + f" and {len(authors) - limit} more"


@dataclass
class Rendered:
    subject: str
    html: str
    text: str


def context(
    *,
    subscriber_name: str,
    picks: list[Pick],
    links: Links,
    kind: str,
    period: str,
    since: dt.datetime | None = None,
) -> dict[str, Any]:
    """What the e-mail templates see: plain data, with every link already signed, and every
    feed link made safe again (:func:`~paperwire.paper.web_url`: a store filled by an older
    paperwire may hold links that are not)."""
    items = []
    for number, pick in enumerate(picks, 1):
        paper = pick.paper
        items.append(
            {
                "number": number,
                "paper_id": pick.paper_id,
                "title": readable(pick.title),
                "url": web_url(pick.url or paper.get("url")),
                "pdf_url": web_url(paper.get("pdf_url")),
                "authors": paper.get("authors") or [],
                "abstract": readable(paper.get("abstract") or ""),
                # a revision's feed date is its re-announcement's: say what it is instead
                "published": revision_note(pick.paper_id, paper)
                or (paper.get("published") or "")[:10],
                "upvotes": paper.get("upvotes"),
                "reasons": pick.reasons,
                "score": pick.score,
                "up_url": links.vote(pick.paper_id, "up"),
                "down_url": links.vote(pick.paper_id, "down"),
                # a one-line TL;DR and code/project links, when a feed gave them
                "tldr": paper.get("tldr") or "",
                "code_url": web_url(paper.get("code_url")),
                "project_url": web_url(paper.get("project_url")),
            }
        )
    return {
        "name": subscriber_name,
        "kind": kind,
        "period": period,
        "since": since.date().isoformat() if since else None,
        "papers": items,
        "profile_url": links.profile,
        "unsubscribe_url": links.unsubscribe,
        "feed_url": links.feed,  # the reader's private Atom feed
    }


SUBJECT_CHARS = 150  # a subject at most this long (the mail library folds it into lines)


def subject_for(kind: str, period: str, picks: list[Pick]) -> str:
    """One line naming the date and the top paper; no newlines, bounded length."""
    # a title stored before ingest dropped them may hold controls or a bidi override
    # an encoded word in it would be decoded by the mail header it becomes (no_encoded_words)
    top = no_encoded_words(" ".join(safe_chars(readable(picks[0].title) if picks else "").split()))
    head = "Paperwire alert: " if kind == "alert" else f"Paperwire {period}: "
    # every digest of more than one paper says how many more, a long title cut to make room
    # (it was said only after a title under 60 characters)
    more = f" (+{len(picks) - 1} more)" if kind != "alert" and len(picks) > 1 else ""
    return head + shorten(top, SUBJECT_CHARS - len(head) - len(more)) + more


def render_email(ctx: dict[str, Any], subject: str) -> Rendered:
    """The HTML (CSS inlined) and plain-text parts of one digest or alert."""
    env = environment()
    try:
        html = env.get_template("email/digest.html").render(subject=subject, **ctx)
        text = env.get_template("email/digest.txt").render(subject=subject, **ctx)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template error: {exc}") from exc
    return Rendered(subject=subject, html=html, text=text)


class _InliningLoader(jinja2.FileSystemLoader):
    """Loads ``email/*.html`` with its CSS already inlined (css-inline), once per process.

    Mail clients drop ``<style>`` blocks, so every element needs its styles inline; the styles
    hang on the template's own elements, so inlining the template source once gives the same
    message as inlining every rendered message, at none of the per-message cost (~3 ms each,
    benchmarks/scale/README.md). ``keep_style_tags`` keeps the phone ``@media`` rules."""

    def get_source(self, environment: jinja2.Environment, template: str):
        source, filename, uptodate = super().get_source(environment, template)
        if template.startswith("email/") and template.endswith(".html"):
            inliner = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)
            source = inliner.inline(source)
        return source, filename, uptodate


def render_page(name: str, **ctx: Any) -> str:
    """A web page of the feedback app (``templates/web/NAME``)."""
    try:
        return environment().get_template(f"web/{name}").render(**ctx)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template error in web/{name}: {exc}") from exc
