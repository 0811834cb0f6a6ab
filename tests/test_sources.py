"""Parsing real feed documents, and fetching them over real local HTTP."""

from __future__ import annotations

import asyncio
import gzip
import html
import json

import pytest

from paperwire import pipeline
from paperwire.config import FeedConfig
from paperwire.errors import SourceError
from paperwire.paper import arxiv_id, arxiv_link_id, arxiv_link_version, clean_text
from paperwire.rank.authors import Following
from paperwire.sources import feed, fetch_feed, parse_document
from paperwire.sources.http import HttpCache, Limits, get, make_async_client

from .conftest import FIXTURES, Route

FEEDS = FIXTURES


@pytest.mark.parametrize(
    ("text", "expected", "version"),
    [
        ("2401.12345", "2401.12345", None),
        ("2401.12345v2", "2401.12345", 2),
        ("https://arxiv.org/abs/2401.12345v3", "2401.12345", 3),
        ("http://arxiv.org/pdf/2401.12345v1.pdf", "2401.12345", 1),
        ("oai:arXiv.org:2504.07119v1", "2504.07119", 1),
        ("arXiv:0704.0001", "0704.0001", None),
        ("hep-th/9901001", "hep-th/9901001", None),
        # old-style ids as arXiv's API and feeds write them: no subject class, lower case (a
        # seed written "math.GT/0309136" never met the feed's paper, found in review)
        ("http://arxiv.org/abs/math.GT/0309136v2", "math/0309136", 2),
        ("HEP-TH/9901001", "hep-th/9901001", None),
        # a month that is none, or digits its month does not take: no id (arXiv's API answers
        # a batch holding one with an error, and no seed of the batch was ever looked up)
        ("1234.12345", None, None),
        ("2513.00001", None, None),
        ("1412.12345", None, None),
        ("1501.0001", None, None),
        ("https://example.org/post/1", None, None),
        ("", None, None),
    ],
)
def test_arxiv_id_normalises_every_form(text, expected, version):
    assert arxiv_id(text) == expected
    # a feed item's link or guid, read whole, the same (the forms here are all arXiv's own)
    assert arxiv_link_id(text) == expected
    assert arxiv_link_version(text) == version


def test_clean_text_drops_markup_and_collapses_space():
    assert clean_text("<p>Fast &amp; <b>exact</b>\n\n attention</p>") == "Fast & exact attention"


def test_a_less_than_sign_in_an_abstract_is_text_not_the_start_of_a_tag():
    # Two of the 690 items of arXiv's cs feed of 2025-04-11, as rss.arxiv.org escapes them:
    # everything from "<" to the next ">" was dropped as a tag, and a reader read
    # "outperformed ($p $ 1cm" and "low latency ( 100 km;"
    items = [
        (
            "2504.06924",
            "significantly outperformed ($p &lt; .001$) the model trained with anatomy priors. "
            "For detecting clinically significant lesions $&gt;$ 1cm, a precision of 71.3%",
        ),
        (
            "2409.16507",
            "low latency (&lt; 10 min) during both day and night, offset by 48 km on average "
            "and sometimes &gt; 100 km; GeoCenter is tasked with correcting this offset.",
        ),
    ]
    rss = "".join(
        f"<item><title>T{i}</title><link>https://arxiv.org/abs/{aid}</link>"
        f"<description>arXiv:{aid}v1 Announce Type: new \nAbstract: {text}</description></item>"
        for i, (aid, text) in enumerate(items)
    )
    document = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>cs</title>{rss}</channel></rss>'
    )
    papers, _ = parse_document(document.encode(), source="arxiv")
    assert [p.abstract for p in papers] == [html.unescape(text) for _, text in items]
    # markup is still dropped, whatever its case or attributes
    assert clean_text('<P class="x">Fast <BR/>&amp; <a href="u">exact</a><!-- c --></P>') == (
        "Fast & exact"
    )


def test_arxiv_api_atom_2026():
    papers, warnings = parse_document(
        (FEEDS / "arxiv_api_atom_2026_transformer-cs.LG_m5.xml").read_bytes(), source="api"
    )
    assert warnings == []
    assert len(papers) == 5
    first = papers[0]
    assert first.paper_id == "2606.13677"
    assert first.version == 1
    assert first.url == "https://arxiv.org/abs/2606.13677"
    assert first.authors[:2] == ["Zhao-Heng Yin", "Guanya Shi"]
    assert first.categories[0] == "cs.RO"  # the primary category comes first
    assert first.published == "2026-06-11T17:59:49+00:00"


def test_arxiv_api_atom_legacy_2016_is_read_the_same_way():
    papers, _ = parse_document(
        (FEEDS / "arxiv_api_atom_legacy2016_id-1111.2011v2.xml").read_bytes(), source="api"
    )
    assert [p.paper_id for p in papers] == ["1111.2011"]
    assert papers[0].version == 2
    assert "\n" not in papers[0].abstract  # hard-wrapped summaries are unwrapped


def test_hugging_face_daily_papers_keeps_upvotes():
    papers, _ = parse_document(
        (FEEDS / "hf_daily_papers_2026-06-12_sotawhat.json").read_bytes(), source="hf"
    )
    raw = json.loads((FEEDS / "hf_daily_papers_2026-06-12_sotawhat.json").read_text())
    assert len(papers) == len(raw) == 30
    assert [p.upvotes for p in papers] == [item["paper"]["upvotes"] for item in raw]
    assert max(p.upvotes for p in papers) == 118
    assert papers[0].paper_id == raw[0]["paper"]["id"]
    assert papers[0].authors[0] == "Etienne Casanova"


def test_arxiv_rss_announce_types_and_authors():
    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="rss")
    assert len(papers) == 60
    kinds = {p.announce_type for p in papers}
    assert {"new", "cross", "replace"} <= kinds
    ertag = next(p for p in papers if p.paper_id == "2504.06271")
    assert ertag.title.startswith("ER-RAG")
    assert not ertag.abstract.startswith("arXiv:")  # the "Announce Type" prefix is stripped
    assert ertag.authors[:2] == ["Yikuan Xia", "Jiazun Chen"]


def test_legacy_rdf_titles_lose_the_arxiv_suffix():
    papers, _ = parse_document((FIXTURES / "arxiv_rdf_legacy.xml").read_bytes(), source="rdf")
    assert len(papers) == 10
    assert all("(arXiv:" not in p.title for p in papers)
    assert all(p.paper_id == arxiv_id(p.paper_id) for p in papers)
    assert all(p.authors and "<a" not in p.authors[0] for p in papers)


def test_generic_feed_uses_guid_verbatim(tmp_path):
    doc = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Lab blog</title>
    <item><title>Our new result</title><guid>tag:lab.example,2026:post-7</guid>
    <link>https://lab.example/post-7</link><description>Text</description></item>
    <item><title>Linked arXiv paper</title><link>https://arxiv.org/abs/2401.00001v2</link></item>
    <item><title>Only a link</title><link>https://lab.example/post-9</link></item>
    </channel></rss>"""
    papers, _ = parse_document(doc, source="blog")
    assert [p.paper_id for p in papers] == [
        "tag:lab.example,2026:post-7",
        "2401.00001",
        "https://lab.example/post-9",
    ]


@pytest.mark.parametrize(
    "upvotes",
    [b"1" + b"0" * 400, b"-1" + b"0" * 30, b"1e400", b"NaN", b"true", b'"12"'],
    ids=["401 digits", "-1e30", "1e400", "NaN", "true", "a string"],
)
def test_an_upvote_count_that_is_no_count_is_none_and_the_feed_is_read(upvotes):
    """A 401-digit integer made 'OverflowError: int too large to convert to float' the whole
    feed's error, a traceback in the log (Infinity, NaN and 1e400 were already none); one past
    SQLite's 64 bits would have failed the store."""
    content = (
        b'[{"paper": {"id": "2401.00001", "title": "T", "upvotes": ' + upvotes + b"}},"
        b' {"paper": {"id": "2401.00002", "title": "U", "upvotes": 7}}]'
    )
    papers, _ = parse_document(content, source="hf")
    assert [(p.paper_id, p.upvotes) for p in papers] == [("2401.00001", None), ("2401.00002", 7)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html><body><p>Service unavailable</body>", "an HTML web page, not an RSS/Atom feed"),
        (b'<?xml version="1.0"?><rss><channel><item><title>x</ti', "not a valid RSS/Atom document"),
        (b'{"error": "rate limited"}', "expected a JSON list of daily papers, got dict"),
        (b'[{"paper": {"id": "not-an-id"}}]', "item 0: 'not-an-id' is not an arXiv id"),
        (b"[1, 2", "not valid JSON"),
        # Python refuses an integer of more than 4,300 digits with a ValueError of its own:
        # it was 'unexpected error' with a traceback
        (b"[" + b"1" * 5000 + b"]", "not valid JSON: a number too long to read"),
    ],
    ids=["html", "cut xml", "json object", "no arxiv id", "cut json", "5000 digits"],
)
def test_malformed_documents_raise_a_clear_error(content, message):
    with pytest.raises(SourceError) as info:
        parse_document(content, source="broken-feed")
    assert str(info.value).startswith("feed broken-feed: ")
    assert message in str(info.value)


# -- over real HTTP --------------------------------------------------------------------------


def test_conditional_get_turns_an_unchanged_feed_into_a_304(http_server):
    body = (FIXTURES / "arxiv_rss_cs.xml").read_bytes()
    http_server.routes["/rss/cs"] = Route(
        body, headers={"Content-Type": "application/rss+xml"}, etag='"v1"'
    )
    feed = FeedConfig(url=http_server.url("/rss/cs"), name="cs")
    first = fetch_feed(feed)
    second = fetch_feed(feed, cache=first.cache)
    assert len(first.papers) == 60 and first.cache == HttpCache(etag='"v1"', last_modified=None)
    assert second.not_modified and second.papers == []
    assert http_server.requests[1][2].get("If-None-Match") == '"v1"'
    assert "paperwire/" in http_server.requests[0][2]["User-Agent"]


def test_gzip_bodies_are_decoded(http_server):
    body = (FEEDS / "hf_daily_papers_2026-06-12_sotawhat.json").read_bytes()
    http_server.routes["/api/daily_papers"] = Route(
        gzip.compress(body),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    result = fetch_feed(FeedConfig(url=http_server.url("/api/daily_papers")))
    assert len(result.papers) == 30


def test_retry_after_is_honoured_then_the_feed_is_read(http_server):
    body = (FIXTURES / "arxiv_rss_cs.xml").read_bytes()
    http_server.routes["/rss"] = [
        Route(b"slow down", status=429, headers={"Retry-After": "0"}),
        Route(b"busy", status=503, headers={"Retry-After": "0"}),
        Route(body),
    ]
    fetched = _get(http_server.url("/rss"))
    assert fetched.content == body
    assert len(http_server.requests) == 3


def test_persistent_errors_become_a_source_error(http_server):
    http_server.routes["/gone"] = Route(b"", status=404)
    http_server.routes["/down"] = Route(b"", status=503, headers={"Retry-After": "0"})
    with pytest.raises(SourceError, match=r"^feed gone: HTTP 404 Not Found$"):
        _get(http_server.url("/gone"), label="gone")
    with pytest.raises(SourceError, match=r"^feed down: HTTP 503 \(after 2 attempts\)$"):
        _get(http_server.url("/down"), label="down", limits=Limits(attempts=2))


def _one_item_rss(title: str, abstract: str) -> str:
    # no XML declaration: the HTTP header is the document's only word on its encoding
    return (
        '<rss version="2.0"><channel><title>c</title><item><title>' + title + "</title>"
        "<link>https://example.org/p1</link><description>" + abstract + "</description>"
        "</item></channel></rss>"
    )


@pytest.mark.parametrize(
    ("charset", "codec", "title", "abstract"),
    [
        ("koi8-r", "koi8-r", "Нейронные сети", "Обучение с подкреплением"),
        # labelled Latin-1 and written by Windows, as browsers read it (WHATWG: windows-1252)
        ("ISO-8859-1", "cp1252", "Café “au lait” – a study", "Naïve résumé…"),
    ],
)
def test_a_charset_given_only_in_the_http_header_is_the_documents(
    http_server, charset, codec, title, abstract
):
    """A feed without an XML declaration served as 'application/rss+xml; charset=koi8-r' read
    as 'îÅÊÒÏÎÎÙÅ ÓÅÔÉ' (feedparser, not given the header, fell back to windows-1252), with a
    'recovered from a malformed document' warning on every fetch and its ETag dropped, so it
    was downloaded whole every time."""
    http_server.routes["/feed"] = Route(
        _one_item_rss(title, abstract).encode(codec),
        headers={"Content-Type": f"application/rss+xml; charset={charset}"},
        etag='"v1"',
    )
    result = fetch_feed(FeedConfig(url=http_server.url("/feed"), name="lab"))
    assert [(p.title, p.abstract) for p in result.papers] == [(title, abstract)]
    assert (result.warnings, result.whole) == ([], True)
    assert result.cache == HttpCache(etag='"v1"', last_modified=None)


def test_an_xml_declaration_or_utf_8_wins_over_the_http_charset(http_server):
    """The header is used only where the document says nothing itself and is not UTF-8: a
    server labelling every file Latin-1 (Apache's AddDefaultCharset) leaves UTF-8 feeds, and
    feeds that declare their encoding, as they are."""
    title = "Café “au lait” – Нейронные"
    http_server.routes["/utf8"] = Route(
        _one_item_rss(title, "x").encode(),
        headers={"Content-Type": "application/rss+xml; charset=ISO-8859-1"},
    )
    declared = '<?xml version="1.0" encoding="koi8-r"?>' + _one_item_rss("Сети", "x")
    http_server.routes["/declared"] = Route(
        declared.encode("koi8-r"), headers={"Content-Type": "text/xml; charset=ISO-8859-1"}
    )
    utf8 = fetch_feed(FeedConfig(url=http_server.url("/utf8"), name="u"))
    assert [p.title for p in utf8.papers] == [title]
    assert fetch_feed(FeedConfig(url=http_server.url("/declared"), name="d")).papers[0].title == (
        "Сети"
    )


@pytest.mark.parametrize("charset", ["base64", "hex", "zlib", "undefined"])
def test_a_charset_label_that_names_no_text_encoding_is_ignored(http_server, charset):
    """'charset=base64' (or hex, zlib: names Python knows, of no text encoding) made the feed's
    error 'not a readable RSS/Atom document: LookupError: 'base64' is not a text encoding';
    'undefined' its UnicodeError. A label that cannot be read leaves the document to feedparser,
    as an unknown one does."""
    http_server.routes["/feed"] = Route(
        _one_item_rss("Café", "Naïve").encode("cp1252"),
        headers={"Content-Type": f"application/rss+xml; charset={charset}"},
    )
    result = fetch_feed(FeedConfig(url=http_server.url("/feed"), name="lab"))
    assert [(p.title, p.abstract) for p in result.papers] == [("Café", "Naïve")]


def test_a_wait_longer_than_the_deadline_is_named_in_the_error(http_server):
    """A 503 asking for an hour read 'HTTP 503 (after 1 attempt)': nothing said why one
    attempt of four, nor that the server had asked paperwire to come back later."""
    http_server.routes["/busy"] = Route(b"", status=503, headers={"Retry-After": "3600"})
    with pytest.raises(SourceError) as info:
        _get(http_server.url("/busy"), label="busy", limits=Limits(deadline=60))
    assert str(info.value) == "feed busy: HTTP 503 (after 1 attempt; it asked to wait 3600 s)"
    assert len(http_server.requests) == 1


def _get(url: str, **options):
    """One ``sources.http.get`` on its own client and event loop."""

    async def one():
        async with make_async_client() as client:
            return await get(client, url, **options)

    return asyncio.run(one())


@pytest.mark.parametrize(
    ("tex", "text"),
    [
        ("D\\'aniel Gerbner", "Dániel Gerbner"),
        ('Erd{\\H o}s and G{\\"o}del', "Erdős and Gödel"),
        ("Fran\\c{c}ois", "François"),
        ("costs $O(n)$ and 20% less", "costs $O(n)$ and 20% less"),  # math and % untouched
        # TeX's letter commands (found in review: real arXiv metadata showed them raw, and a
        # reader following "Paweł Nowak" never got "Pawe{\l} Nowak"'s papers)
        ("Martin Gr{\\o}nneb{\\ae}k Tolsgaard", "Martin Grønnebæk Tolsgaard"),
        ("Nis{\\ae}l Sh\\'artov", "Nisæl Shártov"),
        ("Pawe\\l{} Nowak and Cla{\\ss}en", "Paweł Nowak and Claßen"),
        # the space after a bare command stays (TeX would take it; metadata needs it)
        ("Pawe\\l de Jong at 6563 \\AA emission", "Paweł de Jong at 6563 Å emission"),
        ("a \\\\o line", "a \\\\o line"),  # an escaped backslash, then a letter
        ("{\\O}stergaard, {\\AA}ngstr{\\\"o}m, Mar{\\'\\i}a", "Østergaard, Ångström, María"),
        ("$\\omega \\log n \\in S$", "$\\omega \\log n \\in S$"),  # longer commands: not letters
    ],
)
def test_tex_accents_in_names_become_letters(tex, text):
    assert clean_text(tex) == text


def test_a_followed_author_written_with_tex_letters_is_found():
    doc = rb"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
    <entry><id>http://arxiv.org/abs/2504.00001v1</id><title>On caches</title>
    <summary>Caches at 19.2 K.</summary><author><name>Pawe{\l} Nowak</name></author>
    <author><name>Nis{\ae}l Sh\'artov</name></author></entry></feed>"""
    [paper], _ = parse_document(doc, source="api")
    assert paper.authors == ["Paweł Nowak", "Nisæl Shártov"]
    assert Following(["Paweł Nowak"]).match(paper.authors) == "Paweł Nowak"
    assert Following(["Nisael Shartov"]).match(paper.authors) == "Nisael Shartov"


def test_only_web_links_survive():
    doc = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
    <item><title>Evil</title><guid>g1</guid><link>javascript:alert(1)</link></item>
    <item><title>Fine</title><guid>g2</guid><link>https://lab.example/p</link></item>
    </channel></rss>"""
    papers, _ = parse_document(doc, source="blog")
    assert [p.url for p in papers] == ["", "https://lab.example/p"]


# -- issue 26: an arXiv API error document is the feed's error ------------------------------

# The arXiv API's answer to a bad query (HTTP 200), as its user manual (section 3.4) shows it.
ARXIV_API_ERROR = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <link href="http://arxiv.org/api/query?search_query%3D%26id_list%3D1234.12345%26start%3D0%26max_results%3D10" rel="self" type="application/atom+xml"/>
  <title type="html">ArXiv Query: search_query=&amp;id_list=1234.12345&amp;start=0&amp;max_results=10</title>
  <id>http://arxiv.org/api/kvuntZ8c9a4Eq5CF7KY03nMug+Q</id>
  <updated>2007-10-12T00:00:00-04:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:totalResults>
  <opensearch:startIndex xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">0</opensearch:startIndex>
  <opensearch:itemsPerPage xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:itemsPerPage>
  <entry>
    <id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345</id>
    <title>Error</title>
    <summary>incorrect id format for 1234.12345</summary>
    <updated>2007-10-12T00:00:00-04:00</updated>
    <link href="http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345" rel="alternate" type="text/html"/>
    <author>
      <name>arXiv api core</name>
    </author>
  </entry>
</feed>
"""


def test_an_arxiv_api_error_document_is_the_feeds_error_not_a_paper(
    store, make_config, http_server
):
    """It was stored, and mailed, as a paper titled "Error"."""
    http_server.routes["/api/query?id_list=1234.12345"] = Route(
        ARXIV_API_ERROR, headers={"Content-Type": "application/atom+xml"}
    )
    config = make_config(
        f"feeds:\n  - url: {http_server.url('/api/query?id_list=1234.12345')}\n"
        "    name: arxiv-api\n"
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
    )
    report = pipeline.fetch_all(store, config)
    [feed] = report.feeds
    assert feed.error == (
        "feed arxiv-api: the arXiv API answered with an error: incorrect id format for 1234.12345"
    )
    assert store.count_papers() == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xef\xbb\xbf  <!-- up -->\n<!DOCTYPE html><title>Sign in</title>", "an HTML web page"),
        (b"<HTML><body>Bad gateway</body></HTML>", "an HTML web page"),
        (b"Service temporarily unavailable", "not a valid RSS/Atom document"),
        (b"<html><body><p>unclosed <b>tags</body>", "an HTML web page"),
    ],
)
def test_a_web_page_where_a_feed_was_expected_is_said_to_be_one(content, expected):
    """A login, error or listing page said only 'not an RSS/Atom document' (found in review):
    an HTML page now says what it is and what to use instead."""
    with pytest.raises(SourceError) as info:
        feed.read(content, source="lab")
    assert str(info.value).startswith(f"feed lab: {expected}")


def test_one_daily_papers_item_that_is_no_paper_costs_that_item_not_the_day():
    """One item without a 'paper' object (or with an id that is no arXiv id) made the whole
    day's Hugging Face feed 'item 3: no 'paper' object', 0 of its papers stored (found in
    review), where an RSS entry is skipped with a warning. It is skipped too now, and said."""
    content = (
        b'[{"paper": {"id": "2401.00001", "title": "T", "upvotes": 3}},'
        b' {"kind": "ad", "title": "Sponsored"},'
        b' {"paper": {"id": "hf-blog-42", "title": "A blog post"}},'
        b' {"paper": {"id": "2401.00002", "title": "U", "upvotes": 7}}]'
    )
    papers, warnings = parse_document(content, source="hf")
    assert [p.paper_id for p in papers] == ["2401.00001", "2401.00002"]
    assert warnings == [
        "feed hf: item 1: no 'paper' object; skipped",
        "feed hf: item 2: 'hf-blog-42' is not an arXiv id; skipped",
    ]


def test_a_text_summary_of_comment_openers_is_read_in_one_pass():
    # an Atom summary of type "text" is taken as it is: 2 MB of "<!--" with no "-->" (a feed
    # may be 20 MB) made the comment pattern try each of its 500,000 "<!--" to the end, hours of
    # one core with the GIL held (80 KB took 6 s); now a comment is dropped in one pass
    body = "&lt;!--" * 500_000
    doc = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        "<entry><title>A <!-- x --> paper</title><id>x</id>"
        '<link href="https://arxiv.org/abs/2401.00001"/>'
        f'<summary type="text">{body}</summary></entry></feed>'
    ).encode()
    papers, _ = feed.parse(doc, source="x")
    assert papers[0].abstract.startswith("<!--<!--")
    assert clean_text("p<!-- a <b> -->q<!-- one <!-- two -->r") == "p q r"


def test_a_character_reference_padded_with_zeros_is_its_character():
    # '&#0000000065;' is 'A' in XML, however many zeros lead; past eight digits it was taken
    # for one beyond U+10FFFF and became U+FFFD (0911c7a); an emoji's surrogate pair stays one
    doc = _one_item_rss("&#0000000065;&#x00000000000042; &#x0000D83D;&#000056832;", "x")
    papers, _ = feed.parse(doc.encode(), source="x")
    assert papers[0].title == "AB \U0001f600"


# -- found in review (2026-12-07): what one feed's item could do to another's, and lost items --


def _rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>t</title>{''.join(items)}</channel></rss>"
    ).encode()


def test_two_feeds_posts_under_one_bare_guid_are_two_papers(store):
    """An RSS guid is unique in its feed only: lab A's post "1" and lab B's were one paper,
    lab B's text over lab A's. A guid that is a URI stays as it is."""
    post = '<item><title>{}</title><guid isPermaLink="false">1</guid><link>{}</link></item>'
    lab_a = _rss(post.format("Alpha lab: sparse attention", "https://laba.example/p?id=1"))
    lab_b = _rss(post.format("Beta lab: protein folding", "https://labb.example/p?id=1"))
    (a,), _ = parse_document(lab_a, source="labA")
    (b,), _ = parse_document(lab_b, source="labB")
    assert (a.paper_id, b.paper_id) == ("labA#1", "labB#1")
    store.add_papers([a])
    store.add_papers([b])
    titles = sorted(row["title"] for row in store.papers([a.paper_id, b.paper_id]).values())
    assert titles == ["Alpha lab: sparse attention", "Beta lab: protein folding"]
    uri = _rss("<item><title>T</title><guid>tag:lab.example,2026:1</guid></item>")
    assert parse_document(uri, source="labA")[0][0].paper_id == "tag:lab.example,2026:1"


def test_a_date_no_datetime_holds_is_no_date_not_a_lost_paper():
    doc = _rss(
        "<item><title>Zero</title><link>https://lab.example/0</link>"
        "<dc:date>0001-01-01T00:00:00+01:00</dc:date></item>",
        "<item><title>Ten thousand</title><link>https://lab.example/1</link>"
        "<dc:date>9999-12-31T23:59:59-23:59</dc:date></item>",
    )
    papers, warnings = parse_document(doc, source="lab")
    assert [(p.title, p.published) for p in papers] == [("Zero", None), ("Ten thousand", None)]
    assert warnings == []


def test_the_body_says_it_is_rss_though_the_header_says_json():
    doc = _rss("<item><title>Served as JSON</title><link>https://lab.example/1</link></item>")
    papers, _ = parse_document(doc, source="lab", content_type="application/json")
    assert [p.title for p in papers] == ["Served as JSON"]


def test_a_hugging_face_date_that_is_none_is_not_stored():
    daily = json.dumps(
        [{"paper": {"id": "2406.00002", "title": "T", "publishedAt": "garbage-date"}},
         {"paper": {"id": "2406.00003", "title": "U", "publishedAt": "2025-04-10T08:00:00.000Z"}}]
    ).encode()  # fmt: skip
    papers, _ = parse_document(daily, source="hf", kind="hf-daily")
    assert [p.published for p in papers] == [None, "2025-04-10T08:00:00+00:00"]


def test_an_item_that_only_links_an_arxiv_paper_never_renames_it(store):
    """A blog's post linking arxiv.org/abs/2401.00013v9999 replaced the paper's title and
    abstract for good, and arXiv's own feed could not put them back (a lower version). An
    item that is the paper (arXiv's own, by its guid) still updates it; one that only names
    it is stored only when it is the first to bring the paper."""
    arxiv_item = (
        "<item><title>{title}</title><guid>oai:arXiv.org:2401.00013v{v}</guid>"
        "<link>https://arxiv.org/abs/2401.00013v{v}</link><description>{text}</description></item>"
    )
    blog_item = (
        "<item><title>BUY CRYPTO NOW</title><guid>https://blog.example/p/1</guid>"
        "<link>https://arxiv.org/abs/2401.00013v9999</link><description>pwned</description></item>"
    )
    (good,), _ = parse_document(
        _rss(arxiv_item.format(title="Good one", v=1, text="The abstract.")), source="arxiv"
    )
    (blog,), _ = parse_document(_rss(blog_item), source="blog")
    assert (blog.paper_id, blog.names_only, blog.version) == ("2401.00013", True, None)
    store.add_papers([good])
    store.add_papers([blog])
    row = store.papers(["2401.00013"])["2401.00013"]
    assert (row["title"], row["abstract"], row["version"]) == ("Good one", "The abstract.", 1)
    assert row["sources"] == ["arxiv", "blog"]
    (v2,), _ = parse_document(
        _rss(arxiv_item.format(title="Better one", v=2, text="Revised.")), source="arxiv"
    )
    store.add_papers([v2])  # arXiv's own replacement still replaces
    assert store.papers(["2401.00013"])["2401.00013"]["title"] == "Better one"


def test_a_paper_a_blog_brought_first_takes_arxivs_text_when_it_comes(store):
    blog = "<item><title>Our new paper!</title><guid>https://blog.example/p/2</guid>"
    blog += "<link>https://arxiv.org/abs/2401.00014</link></item>"
    (first,), _ = parse_document(_rss(blog), source="blog")
    store.add_papers([first])
    assert store.papers(["2401.00014"])["2401.00014"]["title"] == "Our new paper!"
    own = "<item><title>Sparse attention</title><guid>oai:arXiv.org:2401.00014v1</guid>"
    own += "<link>https://arxiv.org/abs/2401.00014v1</link></item>"
    (paper,), _ = parse_document(_rss(own), source="arxiv")
    store.add_papers([paper])
    assert store.papers(["2401.00014"])["2401.00014"]["title"] == "Sparse attention"
    # both in one fetch: the source's own text, whichever came last
    store.add_papers([first, paper])
    assert store.papers(["2401.00014"])["2401.00014"]["title"] == "Sparse attention"
