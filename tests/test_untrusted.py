"""Feed text and links written to break out of their place in a digest: hostile feeds served
over real local HTTP, fetched into a real SQLite store, sent to a real Slack webhook stand-in,
Apprise's json:// target and the e-mail outbox, and read back from what arrived."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from email import message_from_bytes, policy
from pathlib import Path
from xml.dom import minidom

import pytest

from paperwire import pipeline
from paperwire.links import signer_for
from paperwire.paper import Paper, web_url
from paperwire.render.atom import render_feed
from paperwire.sources import MAX_KEYWORDS, MAX_URL, bounded
from paperwire.store import Store

from .conftest import HttpServer, Route

NOW = dt.datetime(2026, 6, 12, 9, 0, tzinfo=dt.UTC)
SECRET = "untrusted-tests-signing-key-0123456789"
EVIL_CODE = "https://github.com/a/b><!channel><http://evil.example|Totally legit"
EVIL_PROJECT = (
    "https://proj.example/x) **URGENT** [Reset your password](https://phish.example/login"
)
EVIL_LINK = "https://blog.example/p1\r\n\r\n   More like this: https://phish.example/v"


def hf_json(*papers: dict) -> bytes:
    """A Hugging Face Daily Papers answer of the given ``paper`` objects."""
    items = []
    for number, fields in enumerate(papers, 1):
        paper = {
            "id": f"2606.{number:05d}",
            "title": f"Paper {number}",
            "summary": "An abstract.",
            "authors": [{"name": "Ada Lovelace"}],
            **fields,
        }
        items.append({"paper": paper})
    return json.dumps(items).encode()


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>blog</title>'
        f"<link>https://blog.example/</link><description>d</description>{''.join(items)}"
        "</channel></rss>"
    ).encode()


def item(guid: str, link: str, title: str = "A blog post") -> str:
    link = link.replace("\r", "&#13;").replace("\n", "&#10;")
    return f"<item><title>{title}</title><guid>{guid}</guid><link>{link}</link></item>"


def deliver(
    http_server: HttpServer, make_config, tmp_path: Path, interests: str = "", **feeds: bytes
) -> dict:
    """Serve ``feeds`` (name → document), fetch them and send one reader's digest by e-mail,
    Slack and Apprise (json://); what each channel received."""
    config_feeds = ""
    for name, body in feeds.items():
        http_server.routes[f"/{name}"] = Route(body)
        config_feeds += f"  - {{url: '{http_server.url('/' + name)}', name: {name}}}\n"
    http_server.routes["/hook"] = Route(b"ok")
    http_server.routes["/notify"] = Route(b"{}")
    config = make_config(
        f"feeds:\n{config_feeds}subscribers:\n"
        "  - id: ada\n    email: ada@example.org\n    digest_size: 20\n    feed: true\n"
        f"    interests: '{interests}'\n"
        f"    slack_webhook: {http_server.url('/hook')}\n"
        f"    notify: ['json://127.0.0.1:{http_server.port}/notify']\n",
        env={"PAPERWIRE_SECRET": SECRET},
    )
    with Store(tmp_path / "pw.db") as store:
        report = pipeline.fetch_all(store, config, now=NOW - dt.timedelta(hours=1))
        assert report.errors == 0
        sent = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert {line.status for line in sent.lines} == {"sent"}, sent.lines
    posts = {path: body for method, path, _, body in http_server.requests if method == "POST"}
    [eml] = (tmp_path / "outbox").glob("*.eml")
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    return {
        "slack": json.loads(posts["/hook"]),
        "markdown": json.loads(posts["/notify"])["message"],
        "text": mail.get_body(("plain",)).get_content().replace("\r\n", "\n"),
        "html": mail.get_body(("html",)).get_content(),
        "subject": mail["Subject"],
        "eml": eml.read_bytes(),
        "atom": atom_feed(config, tmp_path / "pw.db"),
    }


def atom_feed(config, db: Path) -> str:
    """The reader's private Atom feed, as the web app serves it."""
    with Store(db) as store:
        return render_feed(store, config, signer_for(config, store), config.subscribers[0])


def phishing_lines(text: str) -> list[str]:
    """Lines that a link's CR/LF would have made look like the digest's own."""
    return [line for line in text.splitlines() if "More like this: https://phish" in line[:40]]


def slack_text(payload: dict) -> str:
    return "\n".join(b["text"]["text"] for b in payload["blocks"] if b["type"] == "section")


def test_web_url_encodes_what_would_end_a_link_and_is_idempotent():
    assert web_url(EVIL_CODE) == (
        "https://github.com/a/b%3E%3C!channel%3E%3Chttp://evil.example%7CTotally%20legit"
    )
    assert web_url(EVIL_LINK) == (
        "https://blog.example/p1%0D%0A%0D%0A%20%20%20More%20like%20this:%20https://phish.example/v"
    )
    for url in (EVIL_CODE, EVIL_PROJECT, EVIL_LINK, 'https://x.example/a"b\\c^d`e{f}g é\x07'):
        once = web_url(url)
        assert once and web_url(once) == once  # never encoded twice
        assert not re.search(r"[\s<>\"|\\^`{}\x00-\x1f\x7f-\uffff]", once)
    assert web_url("https://arxiv.org/abs/2401.00001?a=1&b=%20#x") == (
        "https://arxiv.org/abs/2401.00001?a=1&b=%20#x"  # a good link is left as it is
    )
    # an international host name in its ASCII form, the path percent-encoded
    assert web_url("https://münchen.de:8443/straße?q=ü") == (
        "https://xn--mnchen-3ya.de:8443/stra%C3%9Fe?q=%C3%BC"
    )
    assert web_url("https://user@bücher.example/") == "https://user@xn--bcher-kva.example/"
    # as browsers resolve them (IDNA 2008, UTS 46), not IDNA 2003: faß.de is not fass.de
    assert web_url("https://faß.de/") == "https://xn--fa-hia.de/"
    assert web_url("https://βόλος.gr/") == "https://xn--nxasmm1c.gr/"
    assert web_url("https://a\u200db.com/") == ""  # a joiner no registry allows there
    for bad in ("javascript:alert(1)", "http://", "https:///path", "ftp://x.example/", None, 7):
        assert web_url(bad) == ""


def test_hostile_links_stay_links_in_every_channel(http_server, make_config, tmp_path):
    got = deliver(
        http_server,
        make_config,
        tmp_path,
        hf=hf_json({"githubRepo": EVIL_CODE, "projectPage": EVIL_PROJECT}),
        blog=rss(item("https://blog.example/p1", EVIL_LINK)),
    )
    slack = slack_text(got["slack"])
    assert "<!channel>" not in slack and "<http://evil.example" not in slack
    # every mrkdwn link is one <url|label>: no '<', '>' or '|' inside a URL
    links = re.findall(r"<([^<>]*)>", slack)
    assert [link.count("|") for link in links] == [1] * len(links)
    assert "|Code>" in slack
    markdown = got["markdown"]
    assert "[Reset your password](https://phish.example/login)" not in markdown
    assert ") **URGENT**" not in markdown
    assert "[Project page](https://proj.example/x%29%20**URGENT**%20%5BReset%20your" in markdown
    for text in (got["text"], markdown):
        assert not phishing_lines(text)
        assert "https://blog.example/p1%0D%0A%0D%0A%20%20%20More" in text
    assert 'href="https://github.com/a/b%3E%3C!channel%3E%3Chttp://evil.example%7C' in got["html"]


def test_links_stored_before_the_fix_are_made_safe_when_rendering(
    http_server, make_config, tmp_path
):
    with Store(tmp_path / "pw.db") as store:  # a store filled by an older paperwire
        store.add_papers(
            [
                Paper(
                    "2606.00001",
                    "Old paper",
                    url=EVIL_LINK,
                    pdf_url="https://x.example/a.pdf|<!here>",
                    code_url=EVIL_CODE,
                    project_url=EVIL_PROJECT,
                    source="old",
                )
            ],
            now=NOW - dt.timedelta(hours=1),
        )
    got = deliver(http_server, make_config, tmp_path, empty=hf_json())
    slack = slack_text(got["slack"])
    assert "<!channel>" not in slack and "<!here>" not in slack
    assert "[Reset your password](https://phish.example/login)" not in got["markdown"]
    assert not phishing_lines(got["text"])


def test_a_safe_link_is_unchanged(http_server, make_config, tmp_path):
    got = deliver(
        http_server,
        make_config,
        tmp_path,
        hf=hf_json({"githubRepo": "https://github.com/a/b", "projectPage": "https://p.example/"}),
    )
    assert "<https://github.com/a/b|Code> · <https://p.example/|Project page>" in slack_text(
        got["slack"]
    )
    assert "[Code](https://github.com/a/b) · [Project page](https://p.example/)" in got["markdown"]
    assert "   Code: https://github.com/a/b\n   Project page: https://p.example/\n" in got["text"]


def test_a_title_cannot_mention_the_channel_in_the_slack_notification(
    http_server, make_config, tmp_path
):
    # "&lt;" in the JSON decodes to "<": the title reads "<!channel> Attention sinks"
    got = deliver(
        http_server, make_config, tmp_path, hf=hf_json({"title": "&lt;!channel&gt; Sinks"})
    )
    assert got["subject"] == "Paperwire 2026-06-12: <!channel> Sinks"  # e-mail: plain text
    fallback = got["slack"]["text"]
    assert "<!channel>" not in fallback
    assert fallback == "Paperwire 2026-06-12: &lt;!channel&gt; Sinks"


CONTROLS = "\x1b[31m\x07\x00\x7f\x85\ud800\ufffe\uffff"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_control_and_bidi_characters_are_dropped_and_the_atom_feed_stays_well_formed(
    http_server, make_config, tmp_path
):
    title = f"Sinks{CONTROLS} in {BIDI}attention \u200fmarked"
    got = deliver(
        http_server,
        make_config,
        tmp_path,
        hf=hf_json({"title": title, "ai_summary": f"TL{CONTROLS};DR", "ai_keywords": ["k\x07w"]}),
    )
    with Store(tmp_path / "pw.db") as store:
        paper = store.paper("2606.00001")
    assert paper["title"] == "Sinks in attention \u200fmarked"  # U+200F, a mark, is kept
    assert (paper["tldr"], paper["keywords"]) == ("TL;DR", ["kw"])
    assert got["subject"] == "Paperwire 2026-06-12: Sinks in attention \u200fmarked"
    entry = minidom.parseString(got["atom"].encode()).getElementsByTagName("entry")[0]
    assert entry.getElementsByTagName("title")[0].firstChild.data == paper["title"]


def test_a_title_stored_before_the_fix_leaves_the_atom_feed_well_formed(
    http_server, make_config, tmp_path
):
    with Store(tmp_path / "pw.db") as store:  # a store filled by an older paperwire
        stored = CONTROLS.replace("\ud800", "")  # SQLite cannot hold a lone surrogate
        old = Paper("2606.00001", f"Old{stored}{BIDI} paper", f"ab{stored}stract", source="o")
        store.add_papers([old], now=NOW - dt.timedelta(hours=1))
    got = deliver(http_server, make_config, tmp_path, empty=hf_json())
    feed = minidom.parseString(got["atom"].encode())  # raised "not well-formed" before
    titles = [t.firstChild.data for t in feed.getElementsByTagName("title")]
    assert titles[1] == "Old[31m\x7f\x85" + BIDI + " paper"  # only what XML cannot hold is gone
    assert got["subject"] == "Paperwire 2026-06-12: Old paper"


def test_huge_links_and_keywords_from_a_feed_are_capped(http_server, make_config, tmp_path):
    huge = "https://github.com/a/" + "b" * 300_000
    keyword = "attention sinks " + "in attention " * 10_000
    got = deliver(
        http_server,
        make_config,
        tmp_path,
        interests="attention sinks",
        hf=hf_json(
            *[
                {"githubRepo": huge, "projectPage": huge, "ai_keywords": [keyword] * 8}
                for _ in range(2)
            ]
        ),
    )
    assert len(got["eml"]) < 100_000  # 15 MB for every reader before
    with Store(tmp_path / "pw.db") as store:
        papers = store.papers(["2606.00001", "2606.00002"]).values()
    for paper in papers:
        assert (paper["code_url"], paper["project_url"]) == (None, None)  # too long: dropped
        assert max(map(len, paper["keywords"])) <= 200


def test_bounded_caps_every_list_and_link():
    paper = Paper(
        "2606.00001",
        "t",
        keywords=[f"keyword {n}" for n in range(1000)],
        code_url="https://c.example/" + "x" * MAX_URL,
        project_url="https://p.example/x",
    )
    capped = bounded(paper)
    assert (capped.code_url, capped.project_url) == (None, "https://p.example/x")
    assert capped.keywords == paper.keywords[:MAX_KEYWORDS]


def test_a_paper_without_a_safe_link_has_a_title_without_a_link(http_server, make_config, tmp_path):
    got = deliver(
        http_server,
        make_config,
        tmp_path,
        blog=rss(item("urn:blog:1", "javascript:alert(document.cookie)", "Scripted")),
    )
    assert b"javascript" not in got["eml"] and "javascript" not in json.dumps(got["slack"])
    assert 'href=""' not in got["html"]
    assert re.search(r'<span class="title"[^>]*>1\. Scripted</span>', got["html"])
    assert "*1. Scripted*\n" in slack_text(got["slack"])  # was "*<|1. Scripted>*"
    assert got["markdown"].startswith("**1. Scripted**\n")
    # the text part: the title, then the why; no line of spaces where the link was
    assert "\n1. Scripted\n   Why: new in your feeds\n" in got["text"]


def looks_like_a_vote_line(line: str) -> bool:
    """A line a reader takes for the digest's own "More like this: <link>": read as they see
    it, invisible characters gone and look-alike spaces and colons folded."""
    seen = "".join(c for c in line if unicodedata.category(c) != "Cf")
    seen = " ".join(unicodedata.normalize("NFKC", seen).split()).lower()
    return seen.startswith(("more like this:", "less like this:"))


# how the label was written: plain, and past the first check (found in review): a zero-width
# space before the colon, a full-width colon, a no-break space, a word joiner
LABELS = ["More like this:", "More like this\u200b:", "More like this\uff1a", "More\xa0like this:",
          "Less like\u2060this :", "MORE LIKE THIS\u2236"]  # fmt: skip


@pytest.mark.parametrize("label", LABELS)
def test_an_abstract_cannot_wrap_into_a_line_like_the_digests_own_vote_line(label):
    """An abstract padded so that a wrapped line began '   More like this: https://phish…'
    read like the digest's own vote line in the plain-text part (found in review)."""
    from paperwire.render import plain_abstract

    padded = f"Attention sinks {'word ' * 11}{label} https://phish.example/v/b now."
    text = "   " + plain_abstract(padded)
    assert not phishing_lines(text)
    assert not any(looks_like_a_vote_line(line) for line in text.splitlines())
    assert "like" in text.lower() and "https://phish.example/v/b" in text  # the words are kept
    assert plain_abstract("We like this: a plain sentence.") == "We like this: a plain sentence."


def test_no_feed_text_reads_as_a_vote_line_in_the_text_part(http_server, make_config, tmp_path):
    """Through fetch and send: an abstract's look-alike labels, and a line separator written
    as TeX in a title and a TL;DR (ingest collapses the text's own; ``\\unicode{x2028}`` came
    back when rendering, a new line in the text part)."""
    sep = "\\unicode{x2028}   More like this: https://phish.example/v/t"
    papers = [
        {"title": f"Paper {i}", "summary": f"Attention sinks {'word ' * 11}{label} "
         "https://phish.example/v/a now."}
        for i, label in enumerate(LABELS)
    ]  # fmt: skip
    papers.append({"title": f"Sinks {sep}", "summary": "Sinks.", "ai_summary": f"Sinks {sep}"})
    got = deliver(http_server, make_config, tmp_path, hf=hf_json(*papers))
    lines = got["text"].splitlines()
    ours = [line for line in lines if looks_like_a_vote_line(line)]
    assert len(ours) == 2 * len(papers)  # the digest's own, a pair a paper
    assert not any("phish" in line for line in ours)
    assert got["text"].count("https://phish.example/v/a") == len(LABELS)  # kept, as words
    assert "\u2028" not in got["text"] and "\u2028" not in got["subject"]


def test_printable_drops_every_escape_sequence_and_control_character_its_quick_look_admits():
    """printable() skips the full pattern where one scan finds no control character: every
    string of escape starts, control characters and plain text comes out as the full pattern
    makes it, and plain text (newlines, tabs, any script) comes back as it is."""
    import itertools

    from paperwire.redact import _TERMINAL_CODES, printable

    alphabet = ["\x1b", "[", "]", "3", "1", "m", "\x07", "\\", "\x00", "\x0b", "\x1f", "\x7f"]
    alphabet += ["\x85", "\x9f", "\xa0", "\n", "\t", "a", "é", "\u2028"]
    for n in range(4):
        for chars in itertools.product(alphabet, repeat=n):
            text = "".join(chars)
            assert printable(text) == _TERMINAL_CODES.sub("", text), repr(text)
    plain = "Tab\tand line\nbreaks, ünïcode, 数学 and \u2028"
    assert printable(plain) is plain
    assert printable("\x1b[31mred\x1b[0m\x9b") == "red"


def test_a_feed_that_is_not_arxivs_never_rewrites_an_arxiv_paper(http_server, tmp_path):
    """An item whose own guid was https://arxiv.org/abs/ID v99, in a feed of another host,
    gave the paper its title ("BUY CRYPTO…") for every reader, and for good: no real version
    was ever newer (found in review). What such a feed says of an arXiv paper is stored only
    for a paper not stored yet, and arXiv's own next word replaces it."""
    from paperwire.config import FeedConfig
    from paperwire.sources import fetch_feed

    def item(guid: str, title: str) -> str:
        return (
            f"<item><title>{title}</title><guid>{guid}</guid><link>{guid}</link>"
            "<description>An abstract.</description></item>"
        )

    def arxiv_feed(version: int, title: str) -> bytes:  # arXiv's own, on this machine
        return rss(item(f"oai:arXiv.org:2504.06419v{version}", title))

    def stored(path: str, speaks: bool | None = None) -> dict:
        feed = FeedConfig(url=http_server.url(path), name=path.strip("/"), kind="feed")
        with Store(tmp_path / "pw.db") as store:
            store.add_papers(fetch_feed(feed, speaks_for_papers=speaks).papers, now=NOW)
            return store.paper("2504.06419")

    http_server.routes["/arxiv"] = Route(arxiv_feed(1, "SPIRe: speculative decoding"))
    spoof = item("https://arxiv.org/abs/2504.06419v99", "BUY CRYPTO NOW at evil.example")
    http_server.routes["/evil"] = Route(rss(spoof))
    assert stored("/arxiv")["title"] == "SPIRe: speculative decoding"
    # another host's feed (speaks_for_papers=False is what its address decides): no rewrite
    after = stored("/evil", speaks=False)
    assert (after["title"], after["version"]) == ("SPIRe: speculative decoding", 1)
    # ... nor of what else a source says of a paper: a JSON of any host is read as Hugging
    # Face's, and its upvotes, TL;DR and code link came through (found in review)
    http_server.routes["/evil.json"] = Route(
        hf_json(
            {
                "id": "2504.06419",
                "title": "BUY CRYPTO",
                "upvotes": 99999,
                "ai_summary": "Send BTC to evil.example",
                "githubRepo": "https://github.com/evil/drainer",
            }
        )
    )
    feed = FeedConfig(url=http_server.url("/evil.json"), name="evil-json", kind="hf-daily")
    with Store(tmp_path / "pw.db") as store:
        store.add_papers(fetch_feed(feed, speaks_for_papers=False).papers, now=NOW)
        kept = store.paper("2504.06419")
    assert (kept["title"], kept["upvotes"], kept["tldr"], kept["code_url"]) == (
        "SPIRe: speculative decoding",
        None,
        None,
        None,
    )
    # and the same from Hugging Face itself is its word
    with Store(tmp_path / "pw.db") as store:
        store.add_papers(fetch_feed(feed, speaks_for_papers=True).papers, now=NOW)
        assert store.paper("2504.06419")["upvotes"] == 99999
    # a paper first named by such a feed takes its text until arXiv's own word comes
    (tmp_path / "pw.db").unlink()
    assert stored("/evil", speaks=False)["title"] == "BUY CRYPTO NOW at evil.example"
    http_server.routes["/arxiv"] = Route(arxiv_feed(2, "SPIRe, revised"))
    assert stored("/arxiv")["title"] == "SPIRe, revised"


@pytest.mark.parametrize(
    ("url", "speaks"),
    [
        ("https://export.arxiv.org/api/query?id_list=1", True),
        ("https://rss.arxiv.org/rss/cs", True),
        ("https://huggingface.co/api/daily_papers", True),
        ("https://huggingface.co/datasets/anyone/feed/resolve/main/daily.json", False),
        ("http://127.0.0.1:8080/mirror.xml", True),  # this machine, as a local file
        ("https://arxiv.org.evil.example/rss/cs", False),
        ("https://notarxiv.org/rss", False),
        ("https://blog.example/feed", False),
    ],
)
def test_only_arxiv_and_hugging_face_speak_for_an_arxiv_papers_text(url, speaks):
    from paperwire.sources import speaks_for_arxiv

    assert speaks_for_arxiv(url) is speaks


@pytest.mark.parametrize(
    ("link", "paper"),
    [
        ("https://arxiv.org/abs/2504.06419v2", "2504.06419"),
        ("http://export.arxiv.org/pdf/2504.06419v1.pdf", "2504.06419"),
        ("oai:arXiv.org:2504.06419v1", "2504.06419"),
        ("https://evil.example/arxiv.org/abs/2504.06419v99", None),
        ("https://notarxiv.org/abs/2504.06419", None),
        ("https://evil.example/go?to=https://arxiv.org/abs/2504.06419", None),
        ("tag:evil.example,2025:arXiv:2504.06419v99", None),
    ],
)
def test_a_feed_items_link_names_an_arxiv_paper_only_on_arxivs_host(link, paper):
    from paperwire.paper import arxiv_link_id

    assert arxiv_link_id(link) == paper
