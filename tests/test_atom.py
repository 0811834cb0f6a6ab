"""The reader's own Atom feed, served by a real uvicorn from a real SQLite ledger, read back
with feedparser and checked element by element against RFC 4287's requirements."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import feedparser
import httpx
import pytest

from paperwire import pipeline
from paperwire.config import Config
from paperwire.links import Links, Signer, signer_for
from paperwire.paper import Paper
from paperwire.sources import parse_document
from paperwire.store import Store
from paperwire.web.app import create_app

from .conftest import free_port
from .test_web import serve

SECRET = "feed-secret-signing-key"
NOW = dt.datetime(2026, 6, 12, 9, 0, tzinfo=dt.UTC)
FIXTURES = Path(__file__).parent / "fixtures"
ATOM = "{http://www.w3.org/2005/Atom}"
EVIL_TITLE = "<script>alert('x')</script> & ]]> agents"
CONFIG = """
base_url: http://127.0.0.1:{port}
subscribers:
  - id: ada
    name: Ada
    email: ada@example.org
  - id: fay
    name: Fay
    feed: true
"""
# (no interests: every stored paper is a pick, with "new in your feeds" or its upvotes: issue 27)


@dataclass
class Served:
    url: str
    config: Config
    db_path: Path
    outbox: Path


@pytest.fixture
def served(tmp_path: Path, make_config) -> Iterator[Served]:
    port = free_port()
    config = make_config(CONFIG.format(port=port), env={"PAPERWIRE_SECRET": SECRET})
    db_path = tmp_path / "pw.db"
    content = (FIXTURES / "hf_daily_papers_extras.json").read_bytes()
    papers, _ = parse_document(content, source="hf")
    papers.append(Paper("2606.99999", EVIL_TITLE, "Web agents <b>bold</b> & more.", source="x"))
    with Store(db_path) as store:
        store.add_papers(papers, now=NOW - dt.timedelta(hours=2))
        report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert sorted((line.subscriber_id, line.status) for line in report.lines) == [
        ("ada", "sent"),
        ("fay", "sent"),
    ]
    stop = serve(create_app(lambda: config, db_path), port)
    try:
        yield Served(f"http://127.0.0.1:{port}", config, db_path, tmp_path / "outbox")
    finally:
        stop()


def feed_path(subscriber_id: str, purpose: str = "feed") -> str:
    signer = Signer(SECRET)
    if purpose == "feed":
        return f"/feed/{signer.feed_token(subscriber_id)}.atom"
    return f"/feed/{signer.subscriber_token(purpose, subscriber_id)}.atom"


def feed_owner(url: str) -> str:
    """The subscriber a feed URL is signed for."""
    return Signer(SECRET).read_feed(url.rsplit("/", 1)[1].removesuffix(".atom"))[0]


def test_a_feed_only_subscriber_gets_their_picks_as_valid_atom(served: Served):
    with Store(served.db_path) as store:
        ledger = store.deliveries("fay")
    assert [(d["channel"], d["state"]) for d in ledger] == [("feed", "sent")]
    response = httpx.get(served.url + feed_path("fay"), timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0 and parsed.version == "atom10"
    assert parsed.feed.title == "Paperwire picks for Fay"
    assert len(parsed.entries) == 4
    titles = {e.title for e in parsed.entries}
    assert EVIL_TITLE in titles  # escaped on the way out, exactly itself on the way in
    web = next(e for e in parsed.entries if e.title.startswith("WebChallenger"))
    assert web.link == "https://arxiv.org/abs/2606.10423"
    assert web.summary.startswith("WebChallenger presents a web agent framework")
    html = web.content[0].value
    assert '<a href="https://github.com/jayoohwang1/webchallenger">Code</a>' in html
    # the 👍 link is a vote for fay on this very paper
    up = re.search(r'<a href="([^"]+)">👍 More like this</a>', html).group(1)
    claim = Signer(SECRET).read_vote(up.rsplit("/", 1)[1])
    assert (claim.subscriber_id, claim.paper_id, claim.action) == ("fay", "2606.10423", "up")
    assert "<script>" not in response.text


def test_the_feed_meets_rfc_4287(served: Served):
    root = ET.fromstring(httpx.get(served.url + feed_path("fay"), timeout=10).content)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert len(root.findall(f"{ATOM}{name}")) == 1, name  # §4.1.1: exactly one each
    own = root.find(f"{ATOM}link[@rel='self']").get("href")
    assert feed_owner(own) == "fay"
    ids = []
    for entry in root.findall(f"{ATOM}entry"):
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"{ATOM}{name}")) == 1, name  # §4.1.2
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry.findtext(f"{ATOM}updated"))
        assert entry.find(f"{ATOM}content").get("type") == "html"
        ids.append(entry.findtext(f"{ATOM}id"))
    assert len(set(ids)) == len(ids) == 4


def test_the_email_footer_links_to_the_feed_of_its_reader(served: Served):
    [eml] = served.outbox.glob("*ada-digest.eml")
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    link = re.search(r'<a class="feed" href="([^"]+)"', html).group(1)
    assert link.startswith(served.url + "/feed/") and link.endswith(".atom")
    assert feed_owner(link) == "ada"
    assert f"Your picks as a private Atom feed: {link}" in msg.get_body(("plain",)).get_content()
    parsed = feedparser.parse(httpx.get(link, timeout=10).content)
    assert parsed.feed.title == "Paperwire picks for Ada"
    assert len(parsed.entries) == 4


def test_the_profile_page_links_to_the_feed(served: Served):
    token = Signer(SECRET).subscriber_token("profile", "ada")
    html = httpx.get(f"{served.url}/profile/{token}", timeout=10).text
    link = re.search(r'<a href="([^"]+)" id="feed-link">', html).group(1)
    assert feed_owner(link) == "ada"


def test_a_forged_or_foreign_token_gets_no_feed(served: Served):
    forged = feed_path("fay").replace(".atom", "x.atom")
    for path in (forged, feed_path("fay", purpose="profile"), "/feed/nothing.atom"):
        response = httpx.get(served.url + path, timeout=10)
        assert response.status_code == 400, path
        assert "Paperwire picks" not in response.text


def test_status_of_a_feed_only_subscriber(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from paperwire.cli import cli
    from paperwire.config import load_config

    (tmp_path / "subscribers.yaml").write_text(
        "secret: s-test-signing-key\nsubscribers:\n  - id: fay\n    feed: true\n    digest_days: daily\n"
    )
    now = dt.datetime.now(dt.UTC)
    with Store(tmp_path / "paperwire.db") as store:
        store.add_papers([Paper("2606.00001", "A paper", "An abstract.")], now=now)
        config = load_config(tmp_path / "subscribers.yaml")
        before = CliRunner().invoke(cli, ["status"]).output
        # as `paperwire send` does: a new reader's first digest may come from any slot of the
        # past week (with the 12 h grace alone, this failed after 20:00 UTC)
        pipeline.send_due(store, config, now=now, first_reach=pipeline.FIRST_DIGEST_REACH)
    after = CliRunner().invoke(cli, ["status"]).output
    assert "due now" in before  # a new daily subscriber always has a slot in the past week
    assert "due now" not in after
    assert "last digest" in after and "(sent)" in after


def footer_feed_link(eml: Path) -> str:
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    return re.search(r'<a class="feed" href="([^"]+)"', msg.get_body(("html",)).get_content())[1]


def test_one_feed_url_in_every_digest_and_on_the_profile_page(served: Served):
    """No timestamp in the token: a feed reader subscribes once, to the URL every digest shows."""
    later = NOW + dt.timedelta(days=1)
    paper = Paper("2606.88888", "Web agents that coordinate", "Multi-agent web agents.", source="x")
    with Store(served.db_path) as store:
        store.add_papers([paper], now=later - dt.timedelta(hours=2))
        report = pipeline.send_due(store, served.config, now=later, outbox=served.outbox)
    assert ("ada", "sent") in [(line.subscriber_id, line.status) for line in report.lines]
    first, second = sorted(served.outbox.glob("*ada-digest.eml"))
    token = Signer(SECRET).subscriber_token("profile", "ada")
    profile = httpx.get(f"{served.url}/profile/{token}", timeout=10).text
    on_profile = re.search(r'<a href="([^"]+)" id="feed-link">', profile)[1]
    assert footer_feed_link(first) == footer_feed_link(second) == on_profile
    assert on_profile == served.url + feed_path("ada")
    root = ET.fromstring(httpx.get(on_profile, timeout=10).content)
    assert root.find(f"{ATOM}link[@rel='self']").get("href") == on_profile


def test_a_feed_token_opens_only_its_own_feed_and_only_as_issued(served: Served):
    fay, ada = feed_path("fay"), feed_path("ada")
    assert fay != ada
    titles = {
        path: feedparser.parse(httpx.get(served.url + path, timeout=10).content).feed.title
        for path in (fay, ada)
    }
    assert titles == {fay: "Paperwire picks for Fay", ada: "Paperwire picks for Ada"}
    token = fay.removeprefix("/feed/").removesuffix(".atom")
    payload, signature = token.split(".")
    ada_payload = ada.removeprefix("/feed/").split(".")[0]
    refused = [
        f"{token}!!",  # junk base64 decoding would skip
        f"{token}A",
        f"{token[:-1]}{'B' if token[-1] == 'A' else 'A'}",  # the last character's spare bits
        f"{ada_payload}.{signature}",  # another reader's payload under fay's signature
        f"{payload}.{signature}.{signature}",
        Signer(SECRET).subscriber_token("feed", "fay"),  # the old timed form
        Signer(SECRET).subscriber_token("profile", "fay"),
        Signer("another key").feed_token("fay"),
    ]
    for bad in refused:
        response = httpx.get(f"{served.url}/feed/{bad}.atom", timeout=10)
        assert response.status_code == 400, bad
        assert "Paperwire picks" not in response.text
        assert "This feed link is invalid or was altered." in response.text


def test_feed_rotate_gives_one_reader_a_new_url_and_the_old_one_stops(
    served: Served, monkeypatch: pytest.MonkeyPatch
):
    from click.testing import CliRunner

    from paperwire.cli import cli

    old_fay, ada = served.url + feed_path("fay"), served.url + feed_path("ada")
    (served.db_path.parent / "subscribers.yaml").write_text(
        CONFIG.format(port=served.url.rsplit(":", 1)[1])
    )
    monkeypatch.chdir(served.db_path.parent)
    monkeypatch.setenv("PAPERWIRE_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["--db", str(served.db_path), "feed", "rotate", "fay"])
    assert result.exit_code == 0, result.output
    new_fay = result.output.strip().rsplit(" ", 1)[1]
    assert result.output == f"fay: the old feed URL no longer works; the new one is {new_fay}\n"
    assert new_fay != old_fay and new_fay.startswith(served.url + "/feed/")
    gone = httpx.get(old_fay, timeout=10)
    # gone for good, which tells a feed reader to stop polling it (400 said "a bad request":
    # found in review); a forged or altered link is still a 400
    assert gone.status_code == 410
    assert "This feed link was replaced; use the feed link on your profile page" in gone.text
    parsed = feedparser.parse(httpx.get(new_fay, timeout=10).content)
    assert parsed.feed.title == "Paperwire picks for Fay" and len(parsed.entries) == 4
    assert httpx.get(ada, timeout=10).status_code == 200  # another reader's feed is untouched
    with Store(served.db_path) as store:  # the next digest's signer makes the new URL
        links = Links(served.config.base_url, signer_for(served.config, store), "fay")
    assert links.feed == new_fay


def test_the_slack_and_apprise_footers_link_to_the_feed_of_their_reader(
    tmp_path: Path, make_config, http_server
):
    from .conftest import Route

    http_server.routes["/slack"] = Route(b"ok")
    http_server.routes["/notify"] = Route(b"{}")
    config = make_config(
        "base_url: http://127.0.0.1:8000\nsubscribers:\n  - id: team\n"
        f"    slack_webhook: {http_server.url('/slack')}\n"
        f"    notify: ['json://127.0.0.1:{http_server.port}/notify']\n"
        '    interests: "web agents, multi-agent communication"\n',
        env={"PAPERWIRE_SECRET": SECRET},
    )
    content = (FIXTURES / "hf_daily_papers_extras.json").read_bytes()
    papers, _ = parse_document(content, source="hf")
    with Store(tmp_path / "pw.db") as store:
        store.add_papers(papers, now=NOW - dt.timedelta(hours=2))
        report = pipeline.send_due(store, config, now=NOW)
    assert [line.status for line in report.lines] == ["sent", "sent"]
    feed = "http://127.0.0.1:8000" + feed_path("team")
    bodies = {path: body for method, path, _, body in http_server.requests if method == "POST"}
    [footer] = json.loads(bodies["/slack"])["blocks"][-1]["elements"]
    assert f"<{feed}|Your picks as an Atom feed>" in footer["text"]
    assert f"[Your picks as an Atom feed]({feed})" in json.loads(bodies["/notify"])["message"]


def test_feed_show_and_status_give_a_feed_only_reader_their_url_without_rotating_it(
    served: Served, monkeypatch: pytest.MonkeyPatch
):
    """A `feed: true` reader's URL could only be seen through `feed rotate`, which also
    revoked the one they had."""
    from click.testing import CliRunner

    from paperwire.cli import cli

    fay = served.url + feed_path("fay")
    (served.db_path.parent / "subscribers.yaml").write_text(
        CONFIG.format(port=served.url.rsplit(":", 1)[1])
    )
    monkeypatch.chdir(served.db_path.parent)
    monkeypatch.setenv("PAPERWIRE_SECRET", SECRET)
    db = ["--db", str(served.db_path)]
    shown = CliRunner().invoke(cli, [*db, "feed", "show", "fay"])
    assert (shown.exit_code, shown.output) == (0, f"fay: {fay}\n")
    status = CliRunner().invoke(cli, [*db, "status", "--subscriber", "fay"])
    assert status.exit_code == 0, status.output
    assert f"  feed URL: {fay}" in status.output.splitlines()
    everyone = CliRunner().invoke(cli, [*db, "status"])
    assert "/feed/" not in everyone.output  # each reader's key only when asked for that reader
    assert httpx.get(fay, timeout=10).status_code == 200  # still the one they subscribed to


def test_the_feed_writes_out_the_tex_of_titles_and_abstracts(tmp_path: Path, make_config):
    # a field feed showed "\emph{DMol}" and "$1.5\%$" (arXiv's cs feed of 2025-04-11)
    from paperwire.render.atom import render_feed

    config = make_config(CONFIG.format(port=8000), env={"PAPERWIRE_SECRET": SECRET})
    tex = Paper(
        "2504.06312",
        r"$\Pi$-NeSy: \emph{DMol}",
        r"A graph diffusion model, \emph{DMol}, better by $1.5\%$ with $10$-fold fewer steps.",
        url="https://arxiv.org/abs/2504.06312",
        source="x",
    )
    with Store(tmp_path / "pw.db") as store:
        store.add_papers([tex], now=NOW - dt.timedelta(hours=2))
        pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
        fay = next(s for s in config.subscribers if s.id == "fay")
        document = render_feed(store, config, signer_for(config, store), fay)
    entry = feedparser.parse(document.encode()).entries[0]
    assert entry.title == "Π-NeSy: DMol"
    assert (
        entry.summary == "A graph diffusion model, DMol, better by 1.5% with 10-fold fewer steps."
    )
    assert "<p>A graph diffusion model, DMol, better by 1.5% with 10-fold" in entry.content[0].value
    with Store(tmp_path / "pw.db") as store:  # what is stored, and ranked, keeps the TeX
        assert store.paper("2504.06312")["title"] == r"$\Pi$-NeSy: \emph{DMol}"


def test_the_feed_is_the_same_document_at_every_poll_and_answers_its_etag_with_304(
    served: Served,
):
    """Each request signed the feed's links afresh: two polls a second apart were two different
    documents, so a reader that compares entries saw all 50 changed at every poll, and every
    poll downloaded the whole feed (found in review)."""
    url = served.url + feed_path("fay")
    first = httpx.get(url, timeout=10)
    time.sleep(1.1)  # a token's time is in whole seconds: a new one would differ now
    second = httpx.get(url, timeout=10)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    etag = first.headers["etag"]
    assert etag == second.headers["etag"] and etag.startswith('"')
    assert first.headers["cache-control"] == "private, no-cache"
    again = httpx.get(url, headers={"If-None-Match": f'"other", {etag}'}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    assert httpx.get(url, headers={"If-None-Match": '"other"'}, timeout=10).status_code == 200
    # its links still act: the 👍 of an entry records fay's vote
    html = feedparser.parse(first.content).entries[0].content[0].value
    up = re.search(r'<a href="([^"]+)">👍 More like this</a>', html).group(1)
    assert httpx.post(up, timeout=10).status_code == 303
    with Store(served.db_path) as store:
        assert [v["subscriber_id"] for v in store.votes()] == ["fay"]


def test_entry_ids_are_iris_whatever_a_feed_calls_its_papers(tmp_path: Path, make_config):
    """An entry's id is the feed's id and the paper's: a blog's guid "Post 9 <x> & ü" made
    "urn:paperwire:…:fay:lab-blog#Post 9 <x> & ü", which RFC 4287 (atom:id is an IRI) does not
    allow (found in review). What an IRI cannot hold is percent-encoded; arXiv ids, which
    need none, keep the ids feed readers already have."""
    from paperwire.render.atom import render_feed

    config = make_config(CONFIG.format(port=8000), env={"PAPERWIRE_SECRET": SECRET})
    odd = [
        Paper('lab-blog#Post 9 <x> & ü "q" {a|b}', "A post", "Text.", source="blog"),
        Paper("lab-blog#Post 9 <x> & ü 'q' {a|b}", "Another post", "Text.", source="blog"),
        Paper("2504.06312", "An arXiv paper", "Text.", source="x"),
        Paper("https://blog.example/caf%C3%A9 100%", "Café", "Text.", source="blog"),
    ]
    with Store(tmp_path / "pw.db") as store:
        store.add_papers(odd, now=NOW - dt.timedelta(hours=2))
        pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
        fay = next(s for s in config.subscribers if s.id == "fay")
        document = render_feed(store, config, signer_for(config, store), fay)
    root = ET.fromstring(document)
    ids = [entry.findtext(f"{ATOM}id") for entry in root.findall(f"{ATOM}entry")]
    assert len(set(ids)) == 4
    for entry_id in ids:  # RFC 3987: none of these, and no space, anywhere in an IRI
        assert not re.search(r'[\s<>"{}|\\^`]', entry_id), entry_id
    assert "urn:paperwire:127.0.0.1:8000:fay:2504.06312" in ids
    # an escape already there is kept (its id is what it was), a lone '%' is escaped
    assert "urn:paperwire:127.0.0.1:8000:fay:https://blog.example/caf%C3%A9%20100%25" in ids
    assert any("ü" in entry_id for entry_id in ids)  # a letter of any script is kept
