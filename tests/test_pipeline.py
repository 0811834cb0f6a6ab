"""The pipeline end to end over real parts: local HTTP feeds, a real SQLite file, aiosmtpd."""

from __future__ import annotations

import datetime as dt
import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from paperwire import pipeline
from paperwire.errors import FeedbackError
from paperwire.links import Signer
from paperwire.rank import embed

from .conftest import FIXTURES, Route

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)

CONFIG = """\
feeds:
  - url: {cs}
    name: arxiv-cs
  - url: {lg}
    name: arxiv-cs-lg
subscribers:
  - id: ada
    email: ada@example.org
    interests: "retrieval augmented generation, large language models question answering"
    digest_size: 5
    digest_days: daily
  - id: bob
    email: bob@example.org
    interests: "power systems, electrical energy, carbon-neutral grids"
    digest_size: 5
    digest_days: daily
sender:
  from_address: "Paperwire <digest@paperwire.test>"
base_url: https://papers.example.org
"""


@pytest.fixture
def feeds(http_server):
    http_server.routes["/rss/cs"] = Route((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), etag='"a"')
    http_server.routes["/rss/cs.LG"] = Route((FIXTURES / "arxiv_rss_cs_LG.xml").read_bytes())
    return http_server


@pytest.fixture
def config(make_config, feeds, smtp_server):
    return make_config(
        CONFIG.format(cs=feeds.url("/rss/cs"), lg=feeds.url("/rss/cs.LG")),
        env={"PAPERWIRE_SMTP_URL": smtp_server.url, "PAPERWIRE_SECRET": "test-secret-signing-key"},
    )


def test_cross_listings_and_new_versions_are_stored_once(store, config, feeds):
    report = pipeline.fetch_all(store, config, now=NOW)
    assert [(f.label, f.new, f.known, f.error) for f in report.feeds] == [
        ("arxiv-cs", 60, 0, None),
        ("arxiv-cs-lg", 20, 20, None),  # 20 cross-listed from cs, 20 new
    ]
    assert store.count_papers() == 80
    feeds.routes["/rss/cs"] = Route((FIXTURES / "arxiv_rss_cs_replaced.xml").read_bytes())
    later = NOW + dt.timedelta(days=1)
    again = pipeline.fetch_all(store, config, now=later)
    assert again.feeds[0].new == 0 and again.feeds[0].known == 10
    replaced = store.paper("2504.06271")
    assert replaced["version"] == 3
    assert replaced["first_seen"] == NOW.isoformat(timespec="microseconds")  # still not "new"
    assert replaced["sources"] == ["arxiv-cs"]
    assert store.paper("2504.06373")["sources"] == ["arxiv-cs", "arxiv-cs-lg"]


def test_a_broken_feed_does_not_stop_the_others(store, make_config, feeds):
    feeds.routes["/broken"] = Route(b"<html>Bad gateway</html>", status=200)
    config = make_config(
        f"feeds:\n  - url: {feeds.url('/broken')}\n    name: broken\n"
        f"  - url: {feeds.url('/missing')}\n    name: missing\n"
        f"  - url: {feeds.url('/rss/cs')}\n    name: cs\n"
        "subscribers: []\n"
    )
    report = pipeline.fetch_all(store, config, now=NOW)
    assert report.feeds[0].error == (
        "feed broken: an HTML web page, not an RSS/Atom feed (a login or error page, or the "
        "site itself: use the address of its feed)"
    )
    assert report.feeds[1].error == "feed missing: HTTP 404 Not Found"
    assert report.feeds[2].new == 60
    assert store.feed_state(feeds.url("/broken"))["last_error"].startswith("feed broken:")


def test_an_unchanged_feed_costs_a_304(store, config, feeds):
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.fetch_all(store, config, now=NOW)
    assert report.feeds[0].not_modified
    assert report.new == 0


def test_papers_a_fetch_writes_while_a_send_reads_are_in_a_later_digest(tmp_path, make_config):
    """A fetch stamped its papers, then waited for the write lock (the web app or another
    send held it); a send started meanwhile composed without them and began its reader's next
    window after them: they were never offered to anyone again."""
    import sqlite3
    import threading

    from paperwire import digests as worded
    from paperwire.sources import parse_document
    from paperwire.store import Store, utcnow

    due = (utcnow() - dt.timedelta(minutes=1)).strftime("%H:%M")  # her slot has just passed
    config = make_config(
        "ranking: {embeddings: off}\nsubscribers:\n"
        '  - {id: ada, email: ada@example.org, interests: "language models", digest_size: 5,'
        f' timezone: UTC, digest_time: "{due}", digest_days: daily}}\n'
    )
    db = tmp_path / "race.db"
    arxiv, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    daily, _ = parse_document(
        (FIXTURES / "hf_daily_papers_2026-06-12_sotawhat.json").read_bytes(), source="hf"
    )
    with Store(db) as store:
        store.add_papers(arxiv, now=utcnow() - dt.timedelta(hours=1))

    # each with its store closed after: Python 3.13 warns of a connection left to the collector
    def fetch() -> None:
        with Store(db) as store:
            store.add_papers(daily)

    def send() -> None:
        with Store(db) as store:
            pipeline.send_due(store, config, now=sent_at, outbox=tmp_path / "out")

    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    fetching = threading.Thread(target=fetch)
    fetching.start()
    time.sleep(0.5)  # the fetch waits for the lock
    sent_at = utcnow()
    sending = threading.Thread(target=send)
    sending.start()
    time.sleep(2)  # the send reads (or waits to) meanwhile
    holder.rollback()
    holder.close()
    fetching.join(30)
    sending.join(30)
    with Store(db) as store:
        first = store.last_delivery("ada")
        delivered = {p["paper_id"] for p in store.delivery_papers(first["id"])}
        later = worded.compose(store, config, now=sent_at + dt.timedelta(days=1))["ada"]
        next_window = set(store.papers_since(later.since))
    assert first["state"] == "sent" and later.since == sent_at
    # each Hugging Face paper went out in that digest or is in her next window
    assert {p.paper_id for p in daily} - delivered <= next_window


def test_switching_the_encoder_on_encodes_the_store_at_the_next_fetch_even_if_nothing_is_new(
    store, make_config, feeds
):
    """The feed says "not modified"; before, only a fetch that brought papers encoded, and
    the whole store fell to the next digest, encoded there in one silent call."""
    feed = f"feeds:\n  - url: {feeds.url('/rss/cs')}\n    name: cs\nsubscribers: []\n"
    pipeline.fetch_all(store, make_config("ranking: {embeddings: off}\n" + feed), now=NOW)
    assert store.count_papers() == 60 and store.embeddings_made() == {}
    report = pipeline.fetch_all(store, make_config(feed), now=NOW)  # the default: the encoder
    assert report.feeds[0].not_modified
    made = store.embeddings_made()
    bundled = embed.load_model("minilm").name
    assert len(made) == 60 and {m for m, _, _ in made.values()} == {bundled}


def _links(msg: EmailMessage) -> list[str]:
    html = msg.get_body(("html",)).get_content()
    return re.findall(r'href="(https://papers\.example\.org/[^"]+)"', html)


def test_digests_arrive_by_smtp_with_signed_links(store, config, smtp_server):
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    assert sorted((line.subscriber_id, line.status) for line in report.lines) == [
        ("ada", "sent"),
        ("bob", "sent"),
    ]
    received = smtp_server.by_recipient()
    assert set(received) == {"ada@example.org", "bob@example.org"}
    ada = received["ada@example.org"][0]
    assert ada.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in ada.iter_parts()] == ["text/plain", "text/html"]
    assert ada["Subject"].startswith("Paperwire 2026-11-23: ")
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert ada["Message-ID"].endswith("@paperwire.test>")
    text = ada.get_body(("plain",)).get_content()
    assert "Why: matches" in text
    # the two digests differ: each reader gets their own topic first
    bob_subject = received["bob@example.org"][0]["Subject"]
    assert ada["Subject"] != bob_subject

    signer = Signer("test-secret-signing-key")
    votes = [u for u in _links(ada) if "/v/" in u]
    sent_ids = [r["paper_id"] for r in store.delivery_papers(store.last_delivery("ada")["id"])]
    # up to five papers (those her interests explain: issue 27), 👍 and 👎 for each
    assert 3 <= len(sent_ids) <= 5 and len(votes) == 2 * len(sent_ids)
    claims = [signer.read_vote(u.rsplit("/", 1)[1]) for u in votes]
    assert {c.subscriber_id for c in claims} == {"ada"}
    assert [c.action for c in claims[:2]] == ["up", "down"]
    assert [c.paper_id for c in claims[::2]] == sent_ids
    token = votes[0].rsplit("/", 1)[1]
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    with pytest.raises(FeedbackError, match="invalid or was altered"):
        signer.read_vote(tampered)
    with pytest.raises(FeedbackError):
        Signer("another-key").read_vote(token)


def test_send_twice_sends_once_and_a_quiet_day_sends_nothing(store, config, smtp_server):
    pipeline.fetch_all(store, config, now=NOW)
    pipeline.send_due(store, config, now=NOW)
    second = pipeline.send_due(store, config, now=NOW + dt.timedelta(hours=1))
    assert {line.status for line in second.lines} == {"not-due"}
    assert len(smtp_server.messages) == 2
    # next day: nothing new was fetched, so nothing is sent, and the report says why
    tomorrow = pipeline.send_due(store, config, now=NOW + dt.timedelta(days=1))
    assert [(line.subscriber_id, line.status, line.detail) for line in tomorrow.lines] == [
        ("ada", "nothing-new", "no new papers since 2026-11-23"),
        ("bob", "nothing-new", "no new papers since 2026-11-23"),
    ]
    assert len(smtp_server.messages) == 2
    # reported once per slot, not at every check
    later = pipeline.send_due(store, config, now=NOW + dt.timedelta(days=1, hours=1))
    assert {line.status for line in later.lines} == {"not-due"}


def test_send_before_any_fetch_keeps_the_first_digest_due(store, config, smtp_server):
    """A newcomer's `send` before their first `fetch` spent every reader's first slot on an
    empty store ("no new papers since ..."), and the `send` after the fetch said "already
    handled": their first digest came a day later (found in review)."""
    early = pipeline.send_due(store, config, now=NOW)
    assert [(line.subscriber_id, line.status, line.detail) for line in early.lines] == [
        (sub, "nothing-new", "no papers stored yet: run paperwire fetch; the digest stays due")
        for sub in ("ada", "bob")
    ]
    pipeline.fetch_all(store, config, now=NOW + dt.timedelta(minutes=5))
    report = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=10))
    assert {line.status for line in report.lines} == {"sent"}
    assert len(smtp_server.messages) == 2


def test_a_day_whose_new_papers_are_all_filtered_out_says_so_not_that_nothing_came(
    store, make_config, feeds
):
    """'No new papers' sent a reader whose must_match kept out all 60 to fetch, or to wait."""
    config = make_config(
        f"feeds:\n  - url: {feeds.url('/rss/cs')}\n    name: cs\nsubscribers:\n"
        '  - {id: qcd, email: q@example.org, must_match: ["quantum chromodynamics"]}\n'
    )
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW, outbox=store.path.parent / "out")
    assert [(line.status, line.detail) for line in report.lines] == [
        (
            "nothing-new",
            "60 new papers since 2026-11-16, none left for you: already sent or rated, or kept "
            "out by must_match / never_match",
        )
    ]


def test_received_since_is_the_readers_own_date(store, make_config, feeds, tmp_path):
    """A Los Angeles reader's digest at 18:30 on the 23rd (02:30 UTC on the 24th) made the next
    one say 'received since 2026-11-24', a date that had not begun where the reader is."""
    cs, lg = feeds.url("/rss/cs"), feeds.url("/rss/cs.LG")
    reader = (
        "subscribers:\n  - id: lena\n    email: lena@example.org\n    digest_size: 3\n"
        '    timezone: America/Los_Angeles\n    digest_time: "18:00"\n'
    )
    first_day = dt.datetime(2026, 11, 24, 2, 30, tzinfo=dt.UTC)  # the 23rd, 18:30 in LA
    config = make_config(f"feeds:\n  - url: {cs}\n    name: cs\n{reader}")
    pipeline.fetch_all(store, config, now=first_day - dt.timedelta(hours=1))
    outbox = tmp_path / "out"
    assert pipeline.send_due(store, config, now=first_day, outbox=outbox).count("sent") == 1
    config = make_config(f"feeds:\n  - url: {lg}\n    name: lg\n{reader}")  # the next day's
    next_day = first_day + dt.timedelta(days=1)
    pipeline.fetch_all(store, config, now=next_day - dt.timedelta(hours=1))
    assert pipeline.send_due(store, config, now=next_day, outbox=outbox).count("sent") == 1
    [second] = [p for p in outbox.glob("*.eml") if "2026-11-24" in p.name]
    message = message_from_bytes(second.read_bytes(), policy=policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "received since 2026-11-23" in " ".join(text.split())
    # and a quiet day says the same date
    quiet = pipeline.send_due(store, config, now=next_day + dt.timedelta(days=1), outbox=outbox)
    assert [line.detail for line in quiet.lines] == ["no new papers since 2026-11-24"]


def test_no_paper_is_sent_twice_across_days(store, config, feeds, smtp_server):
    pipeline.fetch_all(store, config, now=NOW)
    pipeline.send_due(store, config, now=NOW)
    feeds.routes["/rss/cs"] = Route((FIXTURES / "arxiv_rss_cs_replaced.xml").read_bytes())
    feeds.routes["/rss/cs.LG"] = Route((FIXTURES / "arxiv_rss_cs.xml").read_bytes())
    pipeline.fetch_all(store, config, now=NOW + dt.timedelta(hours=20))
    pipeline.send_due(store, config, now=NOW + dt.timedelta(days=1))
    per_sub: dict[str, list[str]] = {}
    for delivery in store.deliveries():
        ids = [p["paper_id"] for p in store.delivery_papers(delivery["id"])]
        per_sub.setdefault(delivery["subscriber_id"], []).extend(ids)
    for ids in per_sub.values():
        assert len(ids) == len(set(ids))


def test_without_smtp_messages_go_to_the_outbox(store, make_config, feeds, tmp_path):
    config = make_config(CONFIG.format(cs=feeds.url("/rss/cs"), lg=feeds.url("/rss/cs.LG")))
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    assert {line.status for line in report.lines} == {"sent"}
    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert files == [
        "2026-11-23-ada-digest.eml",
        "2026-11-23-ada-digest.html",
        "2026-11-23-bob-digest.eml",
        "2026-11-23-bob-digest.html",
    ]


def test_feeds_are_fetched_concurrently_but_one_at_a_time_per_host(store, make_config, http_server):
    body = (FIXTURES / "arxiv_rss_cs.xml").read_bytes()
    for n in range(4):
        http_server.routes[f"/feed{n}"] = Route(body, delay=0.3)
    # 127.0.0.1 and localhost are two hosts as far as politeness goes
    urls = [http_server.url(f"/feed{n}") for n in range(2)] + [
        http_server.url(f"/feed{n}").replace("127.0.0.1", "localhost") for n in range(2, 4)
    ]
    config = make_config(
        "feeds:\n"
        + "".join(f"  - url: {u}\n    name: f{i}\n" for i, u in enumerate(urls))
        + "subscribers: []\n"
    )
    report = pipeline.fetch_all(store, config, now=NOW)
    assert [f.label for f in report.feeds] == ["f0", "f1", "f2", "f3"]  # reported in config order
    assert [f.new for f in report.feeds] == [60, 0, 0, 0]
    assert http_server.max_in_flight == 2  # both hosts at once, never two requests to one host


def test_the_ledger_admits_each_delivery_once(store):
    first = store.open_delivery(
        "ada", "digest", "2026-11-23", "email", message_id="<a@x>", content_hash="h", papers=[]
    )
    second = store.open_delivery(
        "ada", "digest", "2026-11-23", "email", message_id="<b@x>", content_hash="h", papers=[]
    )
    assert first is not None and second is None  # a concurrent sender backs off
    assert [d["message_id"] for d in store.deliveries()] == ["<a@x>"]


def test_seed_papers_are_fetched_from_the_arxiv_api(store, make_config, http_server):
    from .conftest import FIXTURES

    http_server.routes["/api/query?id_list=1605.08386&max_results=1"] = Route(
        (FIXTURES / "arxiv_api_atom_2026_id-1605.08386.xml").read_bytes()
    )
    config = make_config(
        f"feeds: []\narxiv_api_url: {http_server.url('/api/query')}\nsubscribers:\n"
        "  - id: ada\n    email: ada@example.org\n    seed_papers: ['1605.08386']\n"
    )
    report = pipeline.fetch_all(store, config, now=NOW)
    assert report.feeds == []  # the seed look-up is no feed
    assert (report.seeds.label, report.seeds.new) == ("seed papers (arXiv API)", 1)
    assert store.paper("1605.08386")["authors"] == ["Caprice Stanley", "Tobias Windisch"]
    assert pipeline.fetch_all(store, config, now=NOW).seeds is None  # fetched once


def test_a_config_seed_is_stored_as_first_seen_when_published(store, make_config):
    # one reader's 2017 seed must not be "new" for another reader's digest today
    from .arxiv_api import arxiv_api_server

    with arxiv_api_server() as api:
        config = make_config(
            f"feeds: []\narxiv_api_url: {api.url}\nsubscribers:\n"
            "  - id: ada\n    email: ada@example.org\n    seed_papers: ['1706.03762']\n"
        )
        report = pipeline.fetch_all(store, config, now=NOW)
    assert report.feeds == []  # the seed look-up is no feed
    assert (report.seeds.label, report.seeds.new) == ("seed papers (arXiv API)", 1)
    assert store.paper("1706.03762")["first_seen"].startswith("2017-06-12")
    assert store.papers_since(NOW - dt.timedelta(days=7)) == []


def test_a_seed_written_with_a_version_or_prefix_is_fetched_once(store, make_config):
    from .arxiv_api import arxiv_api_server

    with arxiv_api_server() as api:
        config = make_config(
            f"feeds: []\narxiv_api_url: {api.url}\nsubscribers:\n"
            "  - id: ada\n    email: ada@example.org\n    seed_papers: ['1706.03762v5', "
            "'arXiv:1810.04805', 'https://arxiv.org/abs/1512.03385v2']\n"
        )
        report = pipeline.fetch_all(store, config, now=NOW)
        assert report.feeds == []  # the seed look-up is no feed
        assert (report.seeds.label, report.seeds.new) == ("seed papers (arXiv API)", 3)
        assert [q["id_list"] for q in api.requests] == [["1512.03385,1706.03762,1810.04805"]]
        assert pipeline.fetch_all(store, config, now=NOW).seeds is None  # stored: not asked again
        assert len(api.requests) == 1


def test_a_backlog_of_seeds_is_looked_up_a_batch_a_fetch(store, make_config):
    """A library whose import could not fetch its papers left hundreds missing: the next
    fetch asked for all of them in one id_list (one huge URL, one huge answer)."""
    from paperwire.sources.library import ID_BATCH

    from .arxiv_api import arxiv_api_server

    # real ids that the API does not know stay missing, so every fetch asks again
    wanted = [f"2401.{n:05d}" for n in range(ID_BATCH + 30)]
    store.add_seeds("ada", wanted, origin="library.bib", now=NOW)
    with arxiv_api_server() as api:
        config = make_config(
            f"feeds: []\narxiv_api_url: {api.url}\nsubscribers:\n"
            "  - id: ada\n    email: ada@example.org\n"
        )
        report = pipeline.fetch_all(store, config, now=NOW)
        asked = api.requests[0]["id_list"][0].split(",")
        assert asked == wanted[:ID_BATCH]
        assert api.requests[0]["max_results"] == [str(ID_BATCH)]
        assert report.seeds.warnings == ["30 more seed papers are looked up in the next fetches"]
        # the next fetch takes the next batch round the list: the first 100 asked every time,
        # ids arXiv does not have kept every later seed from ever being looked up (found in
        # review)
        pipeline.fetch_all(store, config, now=NOW)
        second = api.requests[1]["id_list"][0].split(",")
        assert second == wanted[ID_BATCH:] + wanted[: ID_BATCH - 30]
        # a reader removed from the config costs no look-up
        pipeline.fetch_all(store, make_config(
            f"feeds: []\narxiv_api_url: {api.url}\nsubscribers:\n  - id: bob\n    email: b@example.org\n"
        ), now=NOW)  # fmt: skip
        assert len(api.requests) == 2
