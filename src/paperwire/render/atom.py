"""The reader's own feed: a private Atom document of each subscriber's picks.

Served at ``/feed/<signed token>.atom``; the token binds the subscriber and is the only key.
It carries no timestamp, so it is the same URL in every digest and never expires (a feed reader
polls one URL for years); ``paperwire feed rotate`` revokes one reader's URL (a new generation
in the token), a new ``PAPERWIRE_SECRET`` every feed at once. The entries are what the ledger says was sent, on any channel,
including the ``feed`` channel of a subscriber who takes no e-mail or Slack at all. Each entry
carries the signed 👍/👎 links of the digest. Feed text is untrusted: the template escapes it
(Jinja autoescape for ``.xml``), and the entry's HTML is escaped once more as Atom ``type="html"``
content requires.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any
from urllib.parse import quote

import jinja2

from ..config import Config, SubscriberConfig
from ..errors import LinkExpired
from ..links import Links, Signer, signer_for
from ..links import feed_url as links_feed_url
from ..paper import web_url
from ..store import Store
from ..tex import readable
from . import RenderError, environment, shorten

FEED_ENTRIES = 50
# What XML 1.0 cannot hold (a Char is none of these): one such character from a feed, stored
# before paperwire dropped them at ingest, makes a strict reader drop the whole feed
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def read_feed_token(store: Store, signer: Signer, token: str) -> str:
    """The subscriber a feed token was made for; FeedbackError if it is not exactly a token
    this key issued, LinkExpired if that subscriber's feed URL was rotated since."""
    subscriber_id, generation = signer.read_feed(token)
    if generation != store.feed_generations().get(subscriber_id, 0):
        # it was this reader's: gone for good (410), not a bad request as a forged one is
        raise LinkExpired(
            "this feed link was replaced; use the feed link on your profile page or in your "
            "newest digest"
        )
    return subscriber_id


def feed_url(store: Store, base_url: str, signer: Signer, subscriber_id: str) -> str:
    """The subscriber's one feed URL, under their current generation as the store says now
    (the web app's signer may be older than a ``paperwire feed rotate``)."""
    generation = store.feed_generations().get(subscriber_id, 0)
    return links_feed_url(base_url, signer.feed_token(subscriber_id, generation))


def subscriber_feed_url(store: Store, config: Config, subscriber_id: str) -> str:
    """The reader's current feed URL, as their digests and profile page give it."""
    signer = signer_for(config, store, sends=False)  # printed, not sent
    return feed_url(store, config.base_url, signer, subscriber_id)


def rotate_feed(store: Store, config: Config, subscriber_id: str) -> str:
    """Give the reader a new feed URL (the old one stops working: a leaked URL is revoked);
    the new URL."""
    store.rotate_feed(subscriber_id)
    return subscriber_feed_url(store, config, subscriber_id)


def render_feed(store: Store, config: Config, signer: Signer, sub: SubscriberConfig) -> str:
    """The Atom document of a subscriber's latest picks.

    The same picks give the same document, byte for byte, at every poll of a month: each
    entry's links are signed when its pick was sent (as its e-mail's were), the feed's own
    when its newest was, or at the start of this 30-day period where that is later
    (:func:`_signing_time`). Links signed at each request made every entry look changed to a
    feed reader that compares them, and no ETag could ever match."""
    picks = store.picks_sent(sub.id, FEED_ENTRIES)
    papers = store.papers(p["paper_id"] for p in picks)
    env = environment()
    entries = []
    for pick in picks:
        paper = papers.get(pick["paper_id"])
        if paper is None:
            continue
        shown = {
            **paper,
            "title": readable(paper["title"]),
            "abstract": readable(paper.get("abstract") or ""),
            "pdf_url": web_url(paper.get("pdf_url")),
            "code_url": web_url(paper.get("code_url")),
            "project_url": web_url(paper.get("project_url")),
        }
        links = Links(config.base_url, signer, sub.id, _signing_time(pick["sent_at"]))
        html = env.get_template("feed/entry.html").render(
            paper=shown,
            reasons=pick["reasons"],
            up_url=links.vote(paper["paper_id"], "up"),
            down_url=links.vote(paper["paper_id"], "down"),
        )
        entries.append(
            {
                "id": f"{_feed_id(config, sub)}:{_iri_part(paper['paper_id'])}",
                "title": shown["title"],
                "updated": _rfc3339(pick["sent_at"]),
                "published": _rfc3339(paper.get("published")),
                "url": web_url(paper.get("url")),
                "pdf_url": shown["pdf_url"],
                "authors": paper.get("authors") or [],
                "summary": paper.get("tldr") or shorten(shown["abstract"], 300),
                "html": html,
            }
        )
    try:
        document = env.get_template("feed/picks.xml").render(
            feed_id=_feed_id(config, sub),
            name=sub.name or sub.id,
            updated=entries[0]["updated"] if entries else "1970-01-01T00:00:00Z",
            self_url=feed_url(store, config.base_url, signer, sub.id),
            profile_url=Links(
                config.base_url,
                signer,
                sub.id,
                _signing_time(picks[0]["sent_at"] if picks else None),
            ).profile,
            entries=entries,
        )
    except jinja2.TemplateError as exc:
        raise RenderError(f"template error in feed/picks.xml: {exc}") from exc
    return _NOT_XML.sub("", document)


# feed links older than this are signed again at the start of the period they are read in: a
# link works for six months from its signing, and an old entry's must not stop working
SIGNING_PERIOD = 30 * 86400


def _signing_time(sent_at: Any) -> int:
    """A feed link's signing time: when its pick was sent, or the start of this 30-day period
    where that is earlier (the same time for every poll of a month: it changes 12 times a
    year, not at each request)."""
    period = int(time.time()) // SIGNING_PERIOD * SIGNING_PERIOD
    sent = _moment(sent_at)
    return period if sent is None else max(int(sent.timestamp()), period)


def _feed_id(config: Config, sub: SubscriberConfig) -> str:
    # stable across secret rotations (the URL changes, the feed's identity does not)
    return f"urn:paperwire:{config.base_url.rstrip('/').split('://', 1)[-1]}:{sub.id}"


def _iri_part(text: str) -> str:
    """A paper id as part of an entry's id, an IRI (RFC 4287): what an IRI cannot hold (a
    blog's "Post 9 <x>") percent-encoded, letters of any script kept; an arXiv id as it is."""
    return _NOT_IN_IRI.sub(lambda m: quote(m.group(0), safe=""), text)


# What RFC 3987 keeps out of an IRI: in ASCII, controls, the space and "<>\"[]\\^`{|}"; beyond,
# the C1 controls, private use, the specials (U+FFF0-U+FFFF) and each plane's last two; and a
# "%" that starts no escape (one that does, "caf%C3%A9", stays: encoded again, every such
# entry would get a new id, and feed readers would show it again as new)
_NOT_IN_IRI = re.compile(
    '[\x00-\x20"<>\\[\\]\\\\^`{|}\x7f-\x9f\ue000-\uf8ff\ufff0-\uffff\U000f0000-\U0010ffff'
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(1, 15))
    + "]|%(?![0-9A-Fa-f]{2})"
)


def _rfc3339(stamp: Any) -> str | None:
    """Atom dates: RFC 3339 with a zone, no microseconds."""
    moment = _moment(stamp)
    return None if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(stamp: Any) -> dt.datetime | None:
    """A stored ISO 8601 time, UTC where it names no zone; None for none."""
    if not isinstance(stamp, str) or not stamp:
        return None
    moment = dt.datetime.fromisoformat(stamp)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
