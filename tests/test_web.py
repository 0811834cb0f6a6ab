"""The feedback web app under a real uvicorn on 127.0.0.1, driven over HTTP with httpx.

A mail scanner is modelled exactly as it behaves: plain GETs (and HEADs) of every link.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from itsdangerous import TimestampSigner

from paperwire import pipeline, render
from paperwire.config import Config
from paperwire.deliver.slack import digest_blocks
from paperwire.links import Links, Signer
from paperwire.paper import Paper, Pick
from paperwire.rank import compose as digest
from paperwire.rank.phrases import interest_phrases
from paperwire.store import Store, utcnow
from paperwire.web.app import SLACK_MAX_BODY, create_app

from .conftest import HttpServer, Route, free_port

SECRET = "test-secret-for-links"
SLACK_SECRET = "slack-signing-secret"
CONFIG = """
base_url: http://127.0.0.1:{port}
subscribers:
  - id: ada
    name: Ada Lovelace
    email: ada@example.org
    interests: "KV cache compression and eviction for long-context inference"
  - id: grace
    name: Grace Hopper
    email: grace@example.org
    interests: "low-bit weight quantization of language models"
"""
PAPERS = [
    Paper(
        "2401.00001",
        "Evicting the KV cache: heavy hitters for long-context inference",
        "We compress the key-value cache by evicting tokens with low attention scores, "
        "cutting memory for long-context inference by 5x.",
        authors=["A. Author", "B. Author"],
        url="https://arxiv.org/abs/2401.00001",
        published="2024-01-02T00:00:00+00:00",
        source="test",
    ),
    Paper(
        "2401.00002",
        "Protein folding with diffusion models",
        "A diffusion model generates protein backbones; structural biology benchmarks.",
        authors=["C. Author"],
        url="https://arxiv.org/abs/2401.00002",
        source="test",
    ),
    Paper(
        "2401.00003",
        "GPTQ revisited: 2-bit weight quantization",
        "Post-training weight quantization to 2 bits with second-order error correction.",
        authors=["D. Author"],
        url="https://arxiv.org/abs/2401.00003",
        source="test",
    ),
    Paper(
        "2401.00666",
        "<script>alert('x')</script> Attention is <b>all</b> you need",
        "An abstract with <img src=x onerror=alert(1)> markup.",
        url="javascript:alert(1)",
        source="test",
    ),
]
KV, PROTEIN, GPTQ, EVIL = (p.paper_id for p in PAPERS)


@dataclass
class WebApp:
    """A running feedback app: its URL, config, database, and the signer of its links."""

    url: str
    config: Config
    db_path: Path
    signer: Signer

    def link(self, subscriber_id: str, paper_id: str, action: str) -> str:
        return f"{self.url}/v/{self.signer.vote_token(subscriber_id, paper_id, action)}"

    def page(self, purpose: str, subscriber_id: str) -> str:
        return f"{self.url}/{purpose}/{self.signer.subscriber_token(purpose, subscriber_id)}"

    def votes(self) -> list[tuple[str, str, int]]:
        with Store(self.db_path) as store:
            return sorted((v["subscriber_id"], v["paper_id"], v["vote"]) for v in store.votes())

    def store(self) -> Store:
        return Store(self.db_path)


def serve(app, port: int) -> Callable[[], None]:
    """Run an ASGI app under uvicorn in a thread; returns the function that stops it."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="error", ws="none", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return stop


@pytest.fixture(name="web")
def web_fixture(tmp_path: Path, make_config, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebApp]:
    """The app on a free port, with papers stored, links signed with SECRET and Slack enabled."""
    port = free_port()
    config = make_config(
        CONFIG.format(port=port),
        env={"PAPERWIRE_SECRET": SECRET, "PAPERWIRE_SLACK_SIGNING_SECRET": SLACK_SECRET},
    )
    db_path = tmp_path / "paperwire.db"
    with Store(db_path) as store:
        store.add_papers(PAPERS)
    # Pages wait for the profile model as long as it takes: tests assert terms, not timings.
    app = create_app(lambda: config, db_path, profile_wait=60)
    stop = serve(app, port)
    try:
        yield WebApp(f"http://127.0.0.1:{port}", config, db_path, Signer(SECRET))
    finally:
        stop()
        assert app.close(10)


@pytest.fixture
def client(web: WebApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.url, timeout=10) as opened:
        yield opened


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


def tampered(token: str) -> str:
    """The token with one character in the middle of its signature changed."""
    # Not the last character: its low bits are base64 padding, so changing it may not count.
    head, sig = token.rsplit(".", 1)
    middle = len(sig) // 2
    return f"{head}.{sig[:middle]}{'A' if sig[middle] != 'A' else 'B'}{sig[middle + 1 :]}"


# -- a scanner's GETs change nothing --------------------------------------------------------


def test_scanner_gets_of_both_thumbs_record_nothing(web: WebApp, client: httpx.Client):
    for action in ("up", "down", "undo"):
        url = web.link("ada", KV, action)
        for _ in range(2):
            assert client.get(url, follow_redirects=True).status_code == 200
            assert client.head(url).status_code == 200
    for url in (web.page("profile", "ada"), web.page("unsubscribe", "ada"), web.url + "/healthz"):
        assert client.get(url).status_code == 200
    assert web.votes() == []
    with web.store() as store:
        assert store.unsubscribed() == set()
        assert store.interests_overrides() == {}


def test_vote_page_offers_the_vote_in_a_form_that_posts_to_itself(
    web: WebApp, client: httpx.Client
):
    url = web.link("ada", KV, "up")
    page = client.get(url)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    html = page.text
    assert "Evicting the KV cache: heavy hitters for long-context inference" in html
    assert f'<form method="post" action="{path_of(url)}" id="vote-form" data-autosubmit>' in html
    assert "Record 👍 More like this</button>" in html
    assert '<script src="/static/vote.js" defer></script>' in html
    script = client.get("/static/vote.js")
    assert script.status_code == 200
    assert "form.submit()" in script.text
    assert client.get("/static/style.css").status_code == 200


# -- a POST records exactly one vote ----------------------------------------------------------


def test_post_records_one_vote_and_repeating_it_changes_nothing(web: WebApp, client: httpx.Client):
    url = web.link("ada", KV, "up")
    first = client.post(url)
    assert first.status_code == 303
    assert first.headers["location"] == path_of(url)
    assert client.post(url).status_code == 303
    assert web.votes() == [("ada", KV, 1)]
    with web.store() as store:
        assert store.votes()[0]["via"] == "web"
    page = client.get(url).text
    assert "✓ Recorded: <strong>👍 More like this</strong>" in page
    assert "data-autosubmit" not in page  # a reload does not post again
    assert "Change to 👎 Less like this</button>" in page


def test_a_later_vote_replaces_the_earlier_and_undo_removes_it(web: WebApp, client: httpx.Client):
    client.post(web.link("ada", KV, "up"))
    client.post(web.link("ada", KV, "down"))
    assert web.votes() == [("ada", KV, -1)]
    undo = web.link("ada", KV, "undo")
    assert "Your vote: <strong>👎 Less like this</strong>. Remove it?" in client.get(undo).text
    assert web.votes() == [("ada", KV, -1)]
    assert client.post(undo).headers["location"] == path_of(undo)
    assert web.votes() == []
    assert "No vote on this paper." in client.get(undo).text
    assert client.post(undo).status_code == 303  # undoing nothing is fine


def test_change_and_undo_buttons_carry_fresh_tokens_for_the_same_subscriber(
    web: WebApp, client: httpx.Client
):
    url = web.link("ada", KV, "up")
    client.post(url)
    html = client.get(url).text
    forms = [part.split('"', 1)[0] for part in html.split('<form method="post" action="')[1:]]
    claims = [web.signer.read_vote(path.removeprefix("/v/")) for path in forms]
    assert [(c.subscriber_id, c.paper_id, c.action) for c in claims] == [
        ("ada", KV, "down"),
        ("ada", KV, "undo"),
    ]


def test_votes_are_used_by_the_next_ranking(web: WebApp, client: httpx.Client):
    client.post(web.link("ada", KV, "up"))
    client.post(web.link("ada", PROTEIN, "down"))
    with web.store() as store:
        (signals,) = digest.subscriber_signals(store, [web.config.subscriber("ada")], {})
    assert sorted(vote for _, vote, _ in signals.votes) == [-1, 1]
    assert [paper_id for paper_id, _ in signals.liked_titles] == [KV]


# -- refused links change nothing -------------------------------------------------------------


def refusal(response: httpx.Response, status: int, title: str) -> str:
    assert response.status_code == status
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<h1>{title}</h1>" in response.text
    assert "Traceback" not in response.text
    return response.text


def test_tampered_tokens_are_refused_and_change_nothing(web: WebApp, client: httpx.Client):
    token = web.signer.vote_token("ada", KV, "up")
    for method in ("GET", "POST"):
        page = refusal(
            client.request(method, f"/v/{tampered(token)}"), 400, "This link does not work"
        )
        assert "This vote link is invalid or was altered." in page
    refusal(client.post("/v/not-a-token"), 400, "This link does not work")
    bad_profile = tampered(web.signer.subscriber_token("profile", "ada"))
    refusal(client.get(f"/profile/{bad_profile}"), 400, "This link does not work")
    bad_unsub = tampered(web.signer.subscriber_token("unsubscribe", "ada"))
    refusal(client.post(f"/unsubscribe/{bad_unsub}"), 400, "This link does not work")
    assert web.votes() == []
    with web.store() as store:
        assert store.unsubscribed() == set()


def signed_ahead(web: WebApp, purpose: str, payload: dict, seconds: int) -> str:
    """A token of this install's key, signed while the clock ran ``seconds`` ahead."""

    class Ahead(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) + seconds

    serializer = web.signer._serializer(purpose)
    serializer.signer = Ahead
    return serializer.dumps(payload)


def test_links_sent_while_the_clock_ran_ahead_work_once_it_is_set_right(
    web: WebApp, client: httpx.Client
):
    """itsdangerous refuses a token dated in the future: a digest sent while the server's
    clock ran an hour ahead had a one-click unsubscribe that answered 410 "expired" and did
    not unsubscribe, until the clock caught up (found in review)."""
    vote = signed_ahead(web, "vote", {"s": "ada", "p": KV, "a": "up"}, 3600)
    assert client.post(f"/v/{vote}").status_code == 303
    assert web.votes() == [("ada", KV, 1)]
    unsubscribe = signed_ahead(web, "unsubscribe", {"s": "grace"}, 3600)
    response = client.post(f"/unsubscribe/{unsubscribe}", data={"List-Unsubscribe": "One-Click"})
    assert "You are unsubscribed" in response.text
    # beyond a day ahead, the page says to look at the clock, and nothing changes
    far = signed_ahead(web, "vote", {"s": "ada", "p": PROTEIN, "a": "up"}, 3 * 86400)
    page = refusal(client.post(f"/v/{far}"), 400, "This link does not work")
    assert "dated more than a day ahead of this server" in page
    assert web.votes() == [("ada", KV, 1)]


def test_a_vote_stored_while_the_clock_ran_ahead_does_not_block_the_next_click(
    web: WebApp, client: httpx.Client
):
    """Clicks are applied in the order they came (a later click wins), by their times: a vote
    stored with a time in the future made every click after it "older", ignored unseen."""
    with web.store() as store:
        store.record_vote("ada", KV, 1, via="web", now=utcnow() + dt.timedelta(minutes=30))
    client.post(web.link("ada", KV, "down"))
    assert web.votes() == [("ada", KV, -1)]
    client.post(web.link("ada", KV, "undo"))
    assert web.votes() == []


def test_expired_tokens_are_refused_with_410(web: WebApp, client: httpx.Client):
    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 200 * 86400  # links work for 180 days

    serializer = web.signer._serializer("vote")
    serializer.signer = LongAgo
    token = serializer.dumps({"s": "ada", "p": KV, "a": "up"})
    page = refusal(client.post(f"/v/{token}"), 410, "This link has expired")
    assert "This link has expired; use the links in a newer digest." in page
    assert page.count("newer digest") == 1  # said once (it was said twice; found in review)
    assert "Nothing was changed." in page
    assert web.votes() == []


def test_links_signed_with_another_key_or_for_another_purpose_are_refused(
    web: WebApp, client: httpx.Client
):
    foreign = Signer("another-install").vote_token("ada", KV, "up")
    refusal(client.post(f"/v/{foreign}"), 400, "This link does not work")
    profile_token = web.signer.subscriber_token("profile", "ada")
    refusal(client.post(f"/v/{profile_token}"), 400, "This link does not work")
    refusal(client.post(f"/unsubscribe/{profile_token}"), 400, "This link does not work")
    unsubscribe_token = web.signer.subscriber_token("unsubscribe", "ada")
    refusal(client.get(f"/profile/{unsubscribe_token}"), 400, "This link does not work")
    assert web.votes() == []
    with web.store() as store:
        assert store.unsubscribed() == set()


def test_a_link_for_one_subscriber_never_acts_for_another(web: WebApp, client: httpx.Client):
    ada = web.signer.vote_token("ada", KV, "up")
    grace = web.signer.vote_token("grace", KV, "up")
    # Grace's claim under Ada's signature, and the reverse: both fail the signature check.
    forged = grace.split(".")[0] + "." + ".".join(ada.split(".")[1:])
    refusal(client.post(f"/v/{forged}"), 400, "This link does not work")
    # Form fields and query strings cannot redirect a valid token to someone else.
    client.post(
        f"/v/{ada}?s=grace&subscriber_id=grace", data={"s": "grace", "subscriber_id": "grace"}
    )
    assert web.votes() == [("ada", KV, 1)]


def test_a_removed_subscribers_links_act_for_nobody(web: WebApp, client: httpx.Client):
    page = refusal(client.post(web.link("carol", KV, "up")), 404, "No such subscriber")
    assert "ada" not in page and "grace" not in page  # the config's ids stay private
    refusal(client.get(web.page("profile", "carol")), 404, "No such subscriber")
    assert web.votes() == []


def test_a_vote_on_an_unknown_paper_is_404(web: WebApp, client: httpx.Client):
    page = refusal(client.get(web.link("ada", "2401.99999", "up")), 404, "Unknown paper")
    assert "Paper 2401.99999 is not in this server&#39;s store." in page
    refusal(client.post(web.link("ada", "2401.99999", "down")), 404, "Unknown paper")
    assert web.votes() == []


# -- cross-site POSTs and redirects ---------------------------------------------------------


def test_cross_site_posts_are_refused(web: WebApp, client: httpx.Client):
    url = web.link("ada", KV, "up")
    refusal(
        client.post(url, headers={"Origin": "https://evil.example"}),
        403,
        "Cross-site request refused",
    )
    refusal(
        client.post(url, headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"}),
        403,
        "Cross-site request refused",
    )
    refusal(
        client.post(web.page("unsubscribe", "ada"), headers={"Origin": "http://127.0.0.1:1"}),
        403,
        "Cross-site request refused",
    )
    assert web.votes() == []
    # Our own pages: the exact origin, or "null" (no-referrer) from the same origin.
    assert client.post(url, headers={"Origin": web.url}).status_code == 303
    same = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert client.post(web.link("ada", PROTEIN, "down"), headers=same).status_code == 303
    assert web.votes() == [("ada", KV, 1), ("ada", PROTEIN, -1)]


def test_redirects_only_go_to_paths_the_app_builds(web: WebApp, client: httpx.Client):
    url = web.link("ada", KV, "up")
    for data in ({"return_to": "https://evil.example/"}, {"next": "//evil.example"}):
        response = client.post(url + "?next=https://evil.example", data=data)
        assert response.headers["location"] == path_of(url)
    undo = web.link("ada", KV, "undo")
    location = client.post(undo, data={"return_to": "profile"}).headers["location"]
    assert location.startswith("/profile/")
    assert web.signer.read_subscriber("profile", location.removeprefix("/profile/")) == "ada"


# -- unsubscribe -----------------------------------------------------------------------------


def test_one_click_unsubscribe_with_the_exact_post_mail_providers_send(web: WebApp):
    url = web.page("unsubscribe", "ada")
    # RFC 8058 section 3.2: a POST of "List-Unsubscribe=One-Click", no cookies, no Origin.
    response = httpx.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    with web.store() as store:
        assert store.unsubscribed() == {"ada"}
        active, skipped = pipeline.active_subscribers(store, web.config)
    assert [s.id for s in active] == ["grace"]
    assert [(line.subscriber_id, line.status) for line in skipped] == [("ada", "unsubscribed")]


def test_unsubscribe_get_only_confirms_and_the_page_can_resubscribe(
    web: WebApp, client: httpx.Client
):
    url = web.page("unsubscribe", "ada")
    page = client.get(url).text
    assert "<h1>Unsubscribe Ada Lovelace?</h1>" in page
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page
    with web.store() as store:
        assert store.unsubscribed() == set()
    assert "You are unsubscribed" in client.post(url, data={"List-Unsubscribe": "One-Click"}).text
    assert "You are unsubscribed" in client.get(url).text
    again = client.post(url, data={"action": "resubscribe"})
    assert "<h1>Unsubscribe Ada Lovelace?</h1>" in again.text
    with web.store() as store:
        assert store.unsubscribed() == set()


@pytest.mark.parametrize(
    ("edited", "why"),
    [
        ("id: Ada", "unsubscribed by link as 'ada'"),  # the same reader to the config
        ("id: ada-l", "ada@example.org unsubscribed by link as 'ada'"),  # a renamed id
    ],
)
def test_an_unsubscribe_holds_for_the_address_after_the_id_is_edited(
    web: WebApp, make_config, edited, why
):
    """A reader unsubscribed by the link in her e-mail, then her id was edited by hand in
    subscribers.yaml: she was mailed again that day (found in review)."""
    response = httpx.post(web.page("unsubscribe", "ada"), data={"List-Unsubscribe": "One-Click"})
    assert "You are unsubscribed" in response.text
    text = CONFIG.format(port=1).replace("id: ada", edited)
    config = make_config(text, env={"PAPERWIRE_SECRET": SECRET})
    with web.store() as store:
        active, skipped = pipeline.active_subscribers(store, config)
        assert [s.id for s in active] == ["grace"]
        assert [(line.status, line.detail) for line in skipped] == [("unsubscribed", why)]
        # another reader with another address is not held by it
        other = make_config(text.replace("ada@example.org", "ada.new@example.org"))
        if edited == "id: ada-l":
            assert [s.id for s in pipeline.active_subscribers(store, other)[0]] == [
                "ada-l",
                "grace",
            ]
        store.set_unsubscribed("ada", False)  # subscribed again from the page: mail again
        assert len(pipeline.active_subscribers(store, config)[0]) == 2


def test_multipart_one_click_unsubscribe_also_works(web: WebApp):
    url = web.page("unsubscribe", "grace")
    response = httpx.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    with web.store() as store:
        assert store.unsubscribed() == {"grace"}


# -- the profile page ------------------------------------------------------------------------


def test_profile_shows_learned_terms_votes_and_interests(web: WebApp, client: httpx.Client):
    client.post(web.link("ada", KV, "up"))
    client.post(web.link("ada", PROTEIN, "down"))
    html = client.get(web.page("profile", "ada")).text
    assert "<h1>What paperwire has learned about Ada Lovelace</h1>" in html
    positive = html.split('id="positive-terms"')[1].split("</ul>")[0]
    negative = html.split('id="negative-terms"')[1].split("</ul>")[0]
    # readable phrases as written, never a bare token ("kv") or a generic word
    assert "KV cache</li>" in positive and ">kv</li>" not in positive.lower()
    assert "Protein folding</li>" in negative and "diffusion models</li>" in negative
    assert "protein" not in positive.lower() and "kv cache" not in negative.lower()
    assert "KV cache compression and eviction for long-context inference</textarea>" in html
    assert "(1 👍, 1 👎)" in html
    votes = html.split('id="votes"')[1].split("</table>")[0]
    assert votes.count("<tr>") == 2
    assert "Protein folding with diffusion models" in votes
    assert web.votes() == [("ada", KV, 1), ("ada", PROTEIN, -1)]


def test_profile_with_a_thumbs_down_that_names_no_term_does_not_ask_for_one(
    web: WebApp, client: httpx.Client
):
    # A field review: Ada's one 👎 (a CPU paper, "ShadowBinding") gave no phrase that weighed
    # against her, and the page under "Terms that push papers down" still told her "Nothing
    # yet: a 👎 on a paper teaches paperwire what to avoid", right above that 👎.
    with web.store() as store:
        store.add_papers(
            [
                Paper(
                    "2401.00010", "Notes", "", url="https://arxiv.org/abs/2401.00010", source="test"
                )
            ]
        )
    client.post(web.link("ada", "2401.00010", "down"))
    html = client.get(web.page("profile", "ada")).text
    assert "(0 👍, 1 👎)" in html and 'id="negative-terms"' not in html
    assert "teaches paperwire what to avoid" not in html
    assert 'id="no-negative-terms"' in html
    assert "No term stands out yet in the 1 paper you marked 👎" in html
    # without a 👎, the page still says what one does
    client.post(web.link("ada", "2401.00010", "undo"))
    html = client.get(web.page("profile", "ada")).text
    assert "Nothing yet: a 👎 on a paper teaches paperwire what to avoid." in html


def test_profile_dates_each_vote_in_the_readers_own_time_zone(tmp_path: Path, make_config):
    # A reader in Tokyo who voted at 08:30 on 7 December read "2026-12-06 · via web": the
    # UTC date, a day before the one they voted on
    port = free_port()
    config = make_config(
        CONFIG.format(port=port).replace(
            "    email: ada@example.org\n", "    email: ada@example.org\n    timezone: Asia/Tokyo\n"
        ),
        env={"PAPERWIRE_SECRET": SECRET},
    )
    db_path = tmp_path / "paperwire.db"
    with Store(db_path) as store:
        store.add_papers(PAPERS)
        store.record_vote(
            "ada", KV, 1, via="web", now=dt.datetime(2026, 12, 6, 23, 30, tzinfo=dt.UTC)
        )
        store.record_vote(
            "grace", GPTQ, 1, via="web", now=dt.datetime(2026, 12, 6, 23, 30, tzinfo=dt.UTC)
        )
    app = create_app(lambda: config, db_path, profile_wait=60)
    stop = serve(app, port)
    try:
        web = WebApp(f"http://127.0.0.1:{port}", config, db_path, Signer(SECRET))
        ada = httpx.get(web.page("profile", "ada"), timeout=10).text.split('id="votes"')[1]
        grace = httpx.get(web.page("profile", "grace"), timeout=10).text.split('id="votes"')[1]
    finally:
        stop()
        assert app.close(10)
    assert "2026-12-07 · via web" in ada and "2026-12-06" not in ada
    assert "2026-12-06 · via web" in grace  # no time zone: UTC, as before


def test_vote_page_and_profile_write_out_the_tex_of_a_title_and_abstract(
    web: WebApp, client: httpx.Client
):
    # arXiv's cs feed of 2025-04-11: "$\Pi$-NeSy", "\emph{DMol}", "$1.5\%$"
    tex = Paper(
        "2504.06312",
        r"$\Pi$-NeSy: \emph{DMol}",
        r"A graph diffusion model, \emph{DMol}, better by $1.5\%$.",
        url="https://arxiv.org/abs/2504.06312",
        source="test",
    )
    with web.store() as store:
        store.add_papers([tex])
    page = client.get(web.link("ada", tex.paper_id, "up")).text
    assert "<title>👍 More like this: Π-NeSy: DMol · paperwire</title>" in page
    assert 'rel="noreferrer noopener">Π-NeSy: DMol</a></h1>' in page
    assert '<p class="abstract">A graph diffusion model, DMol, better by 1.5%.</p>' in page
    client.post(web.link("ada", tex.paper_id, "up"))
    votes = client.get(web.page("profile", "ada")).text.split('id="votes"')[1]
    assert 'rel="noreferrer noopener">Π-NeSy: DMol</a>' in votes


def test_profile_with_interests_in_no_paper_does_not_ask_for_interests(
    web: WebApp, client: httpx.Client
):
    # The upgrade review: past ranking.corpus_papers (150 on a store of 720 papers) a weekly
    # reader's interests ("weight quantization of large language models") named no term of the
    # recent papers, and her profile page said "Nothing yet: write some interests or vote 👍 on
    # papers" right above those interests.
    url = web.page("profile", "ada")
    client.post(url, data={"interests": "new methods and their applications", "action": "save"})
    html = client.get(url).text
    assert (
        'id="positive-terms"' not in html
        and "new methods and their applications</textarea>" in html
    )
    assert "write some interests" not in html
    assert 'id="no-positive-terms"' in html
    assert "No term stands out yet in your interests among the papers digests rank" in html
    # with no interests, no votes and no seeds, the page still says what would teach it
    client.post(url, data={"interests": "", "action": "save"})
    html = client.get(url).text
    assert "Nothing yet: write some interests or vote 👍 on papers." in html


def test_profile_with_enough_votes_for_the_classifier(web: WebApp, client: httpx.Client):
    for paper_id in (KV, GPTQ, EVIL):
        client.post(web.link("ada", paper_id, "up"))
    client.post(web.link("ada", PROTEIN, "down"))
    response = client.get(web.page("profile", "ada"))
    assert response.status_code == 200
    assert "(3 👍, 1 👎)" in response.text
    assert 'id="positive-terms"' in response.text


def test_profile_undo_removes_the_vote_and_returns_to_the_profile(
    web: WebApp, client: httpx.Client
):
    client.post(web.link("ada", KV, "up"))
    html = client.get(web.page("profile", "ada")).text
    undo_path = html.split('id="votes"')[1].split('action="')[1].split('"')[0]
    response = client.post(undo_path, data={"return_to": "profile"}, follow_redirects=True)
    assert 'id="no-votes"' in response.text
    assert web.votes() == []


def test_profile_edits_and_resets_interests(web: WebApp, client: httpx.Client):
    url = web.page("profile", "ada")
    response = client.post(url, data={"interests": "  speculative   decoding\n", "action": "save"})
    assert response.status_code == 303
    assert response.headers["location"] == path_of(url) + "?saved=1"
    html = client.get(response.headers["location"]).text
    assert 'id="saved"' in html and "speculative decoding</textarea>" in html
    assert "speculative decoding</li>" in html.split('id="positive-terms"')[1].split("</ul>")[0]
    with web.store() as store:
        assert store.interests_overrides() == {"ada": "speculative decoding"}
    client.post(url, data={"action": "reset"})
    with web.store() as store:
        assert store.interests_overrides() == {}
    too_long = client.post(url, data={"interests": "x" * 2001})
    assert "Interests can be at most 2000 characters; yours have 2001." in refusal(
        too_long, 400, "Interests too long"
    )


def test_profile_edits_the_topics_not_wanted_beside_the_interests(
    web: WebApp, client: httpx.Client
):
    url = web.page("profile", "ada")
    ada = web.config.subscriber("ada")

    def protein_score() -> float:
        with web.store() as store:  # the next ranking, as compose reads the edits
            return float(
                digest.score_matrix(store, web.config, [ada], [PROTEIN], now=utcnow())[0, 0]
            )

    before = protein_score()
    form = {"interests": ada.interests, "not_interested": " protein  folding ", "action": "save"}
    response = client.post(url, data=form, follow_redirects=True)
    assert "protein folding</textarea>" in response.text
    # the page's learned terms say what now pushes papers down
    negative = response.text.split('id="negative-terms"')[1].split("</ul>")[0]
    assert "protein folding</li>" in negative
    with web.store() as store:
        assert store.not_interested_overrides() == {"ada": "protein folding"}
        # the config's own interests, saved unchanged, are no edit: the config still rules them
        assert store.interests_overrides() == {}
    assert protein_score() < before - 1  # standard deviations
    # a form without the field (a page from before it had one) keeps the edit
    client.post(url, data={"interests": "KV cache eviction", "action": "save"})
    with web.store() as store:
        assert store.not_interested_overrides() == {"ada": "protein folding"}
        assert store.interests_overrides() == {"ada": "KV cache eviction"}
    client.post(url, data={"action": "reset"})
    with web.store() as store:
        assert store.not_interested_overrides() == {} and store.interests_overrides() == {}
    assert protein_score() == pytest.approx(before, abs=1e-5)
    too_long = {"interests": "x", "not_interested": "y" * 2001}
    assert "Topics not wanted can be at most 2000 characters; yours have 2001." in refusal(
        client.post(url, data=too_long), 400, "Topics not wanted too long"
    )


def test_profile_keeps_one_topic_a_line(web: WebApp, client: httpx.Client):
    """A new line separates topics as a comma does: saving must not fold three topics into
    one ("robotics speech recognition blockchain") that matches nothing."""
    url = web.page("profile", "ada")
    written = " robotics \r\n  speech   recognition\r\n\r\nbenchmarks "
    client.post(url, data={"interests": "KV cache", "not_interested": written, "action": "save"})
    with web.store() as store:
        kept = store.not_interested_overrides()["ada"]
    assert kept == "robotics\nspeech recognition\nbenchmarks"
    assert interest_phrases(kept, unwanted=True) == ["robotics", "speech recognition", "benchmarks"]
    page = client.get(url).text
    assert "robotics\nspeech recognition\nbenchmarks</textarea>" in page
    # a kind of paper named in one word is shown among what pushes papers down
    assert "benchmarks</li>" in page.split('id="negative-terms"')[1].split("</ul>")[0]
    # a hand-made request's control characters are not kept (NULs, an escape, a bidi override)
    hostile = "KV\x00 cache\x1b[2J\u202e, speculative\x07 decoding"
    client.post(url, data={"interests": hostile, "not_interested": written, "action": "save"})
    with web.store() as store:
        assert store.interests_overrides()["ada"] == "KV cache, speculative decoding"


def test_a_config_text_over_the_page_limit_does_not_stop_the_reader_saving(
    tmp_path: Path, make_config
):
    """The form sends back the config's own text unasked (a textarea's maxlength does not
    stop a filled-in value): it is no edit, so the page's limit is not its to enforce."""
    port = free_port()
    long_topics = ", ".join(f"topic number {i}" for i in range(200))
    assert len(long_topics) > 2000
    config = make_config(
        CONFIG.format(port=port) + f'    not_interested: "{long_topics}"\n',
        env={"PAPERWIRE_SECRET": SECRET},
    )
    db_path = tmp_path / "paperwire.db"
    Store(db_path).close()
    app = create_app(lambda: config, db_path, profile_wait=60)
    stop = serve(app, port)
    try:
        url = (
            f"http://127.0.0.1:{port}/profile/{Signer(SECRET).subscriber_token('profile', 'grace')}"
        )
        form = {"interests": "KV cache", "not_interested": long_topics, "action": "save"}
        saved = httpx.post(url, data=form, timeout=10)
        too_long = httpx.post(url, data={**form, "not_interested": long_topics + ", more"})
    finally:
        stop()
        assert app.close(10)
    assert saved.status_code == 303
    with Store(db_path) as store:
        assert store.interests_overrides() == {"grace": "KV cache"}
        assert store.not_interested_overrides() == {}
    # an edit of it is held to the limit
    assert "Topics not wanted can be at most 2000 characters" in refusal(
        too_long, 400, "Topics not wanted too long"
    )


# -- safety ----------------------------------------------------------------------------------


def test_feed_text_is_escaped_and_unsafe_links_are_not_followed(web: WebApp, client: httpx.Client):
    html = client.get(web.link("ada", EVIL, "up")).text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "javascript:" not in html
    client.post(web.link("ada", EVIL, "up"))
    assert "javascript:" not in client.get(web.page("profile", "ada")).text


def test_every_response_carries_the_security_headers(web: WebApp, client: httpx.Client):
    for response in (
        client.get(web.link("ada", KV, "up")),
        client.get("/no/such/page"),
        client.post(f"/v/{tampered(web.signer.vote_token('ada', KV, 'up'))}"),
        client.get("/static/vote.js"),
    ):
        headers = response.headers
        assert headers["content-security-policy"].startswith(
            "default-src 'none'; script-src 'self'"
        )
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
    assert client.get(web.link("ada", KV, "up")).headers["cache-control"] == "no-store"
    refusal(client.get("/no/such/page"), 404, "Not found")
    refusal(client.put(web.link("ada", KV, "up")), 405, "Method not allowed")


def test_request_bodies_are_limited(web: WebApp, client: httpx.Client):
    url = web.page("profile", "ada")
    refusal(client.post(url, content=b"interests=" + b"x" * 70_000), 413, "Request too large")

    def chunks():  # no Content-Length: the limit is counted as the body streams in
        for _ in range(20):
            yield b"x" * 8192

    response = client.post(
        url, content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    refusal(response, 413, "Request too large")
    with web.store() as store:
        assert store.interests_overrides() == {}


def test_a_server_error_is_a_plain_page_without_a_traceback(tmp_path: Path):
    def broken_config() -> Config:
        raise RuntimeError("boom: /secret/path/subscribers.yaml")

    port = free_port()
    stop = serve(create_app(broken_config, tmp_path / "paperwire.db"), port)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/v/anything")
    finally:
        stop()
    page = refusal(response, 500, "Something went wrong")
    assert "boom" not in page and "secret" not in page and "RuntimeError" not in page
    assert response.headers["x-frame-options"] == "DENY"


def test_healthz_reports_the_last_fetch_and_send(web: WebApp, client: httpx.Client):
    assert client.get("/healthz").json() == {"status": "ok", "last_fetch": None, "last_send": None}
    with web.store() as store:
        store.log_event("fetch", {"new": 3, "errors": 0})
        store.log_event("send", {"sent": 2, "failed": 0})
    health = client.get("/healthz").json()
    assert health["last_fetch"]["new"] == 3 and health["last_fetch"]["errors"] == 0
    assert health["last_send"]["sent"] == 2
    assert health["last_fetch"]["at"].endswith("+00:00")


# -- Slack interactivity ---------------------------------------------------------------------


def slack_request(payload: dict, *, secret: str = SLACK_SECRET, age: int = 0) -> tuple[bytes, dict]:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time()) - age)
    digest_ = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + digest_.hexdigest(),
    }
    return body, headers


def block_actions(
    web: WebApp, response_url: str, action: str, *, signed_value: bool = True
) -> dict:
    """A block_actions payload as Slack sends it for a click on one digest button.

    The button's value is the signed vote token, or (as deliver/slack.py builds it today)
    "paper|action", when only the button's URL carries the token.
    """
    buttons = [
        {
            "type": "button",
            "action_id": f"vote_{a}",
            "text": {"type": "plain_text", "text": label, "emoji": True},
            "value": web.signer.vote_token("ada", KV, a) if signed_value else f"{KV}|{a}",
            "url": web.link("ada", KV, a),
        }
        for a, label in (("up", "👍 More like this"), ("down", "👎 Less like this"))
    ]
    clicked = next(b for b in buttons if b["action_id"] == f"vote_{action}")
    return {
        "type": "block_actions",
        "user": {"id": "U123", "name": "ada"},
        "response_url": response_url,
        "message": {
            "text": "Your papers",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "*1. KV*"}},
                {"type": "actions", "block_id": f"p:{KV}", "elements": buttons},
            ],
        },
        "actions": [{**clicked, "block_id": f"p:{KV}", "action_ts": str(time.time())}],
    }


def wait_for(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.mark.parametrize("signed_value", [True, False], ids=["token-value", "url-only"])
def test_slack_button_records_the_vote_and_updates_the_message(
    web: WebApp, client: httpx.Client, http_server: HttpServer, signed_value: bool
):
    http_server.routes["/respond"] = Route(b"ok")
    payload = block_actions(web, http_server.url("/respond"), "down", signed_value=signed_value)
    body, headers = slack_request(payload)
    response = client.post("/slack/actions", content=body, headers=headers)
    assert response.status_code == 200
    assert web.votes() == [("ada", KV, -1)]
    with web.store() as store:
        assert store.votes()[0]["via"] == "slack"
    wait_for(lambda: len(http_server.requests) == 1)
    method, path, _, sent = http_server.requests[0]
    update = json.loads(sent)
    assert (method, path, update["replace_original"]) == ("POST", "/respond", True)
    labels = [e["text"]["text"] for e in update["blocks"][1]["elements"]]
    assert labels == ["👍 More like this", "✓ 👎 Less like this"]
    assert update["blocks"][1]["elements"][1]["style"] == "primary"


@pytest.mark.timeout(30)
def test_slack_message_update_reads_no_more_than_a_small_cap_of_the_answer(
    web: WebApp, client: httpx.Client
):
    """The message update needs only the status: a response_url answering 100 MB is read no
    further than slack.MAX_ANSWER (the whole answer was read, within the update's 10 s)."""
    from . import hostile

    state = hostile.Hostile(port=free_port(), huge_mb=100)
    with hostile.serving(state):
        body, headers = slack_request(block_actions(web, state.url("/huge/200"), "up"))
        assert client.post("/slack/actions", content=body, headers=headers).status_code == 200
        wait_for(lambda: len(state.posts) == 1)
        time.sleep(0.5)  # the server's last write fails once the client has hung up
    assert web.votes() == [("ada", KV, 1)]
    assert json.loads(state.posts[0][1])["replace_original"] is True
    # what the kernel's socket buffers took, at most; the whole answer is 100 MB
    assert state.huge_sent < 32 << 20, state.huge_sent


def test_slack_requests_without_a_valid_fresh_signature_get_401(web: WebApp, client: httpx.Client):
    payload = block_actions(web, "http://127.0.0.1:1/respond", "up")
    body, headers = slack_request(payload, secret="wrong-secret")
    assert client.post("/slack/actions", content=body, headers=headers).status_code == 401
    body, headers = slack_request(payload, age=6 * 60)  # older than Slack's 5-minute window
    assert client.post("/slack/actions", content=body, headers=headers).status_code == 401
    body, _ = slack_request(payload)
    assert client.post("/slack/actions", content=body).status_code == 401
    assert (
        client.post(
            "/slack/actions", content=body, headers={**headers, "X-Slack-Request-Timestamp": "soon"}
        ).status_code
        == 401
    )
    # what slack_sdk cannot read was a 500 and a traceback, for a request anyone can send: a
    # body that is no UTF-8, a timestamp of "²" (a digit to str.isdigit, from latin-1 headers)
    _, fresh = slack_request(payload)
    assert client.post("/slack/actions", content=b"\xff", headers=fresh).status_code == 401
    odd = {**fresh, "X-Slack-Request-Timestamp": b"\xb2"}
    assert client.post("/slack/actions", content=body, headers=odd).status_code == 401
    assert web.votes() == []


def test_slack_endpoint_is_off_without_a_signing_secret(tmp_path: Path, make_config, monkeypatch):
    monkeypatch.delenv("PAPERWIRE_SLACK_SIGNING_SECRET", raising=False)
    port = free_port()
    config = make_config(CONFIG.format(port=port), env={"PAPERWIRE_SECRET": SECRET})
    stop = serve(create_app(lambda: config, tmp_path / "paperwire.db"), port)
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/slack/actions", content=b"payload={}")
    finally:
        stop()
    assert response.status_code == 404


def test_a_click_in_a_full_slack_message_of_non_latin_text_is_read(
    web: WebApp, client: httpx.Client, http_server: HttpServer
):
    """Slack's block_actions payload carries the whole message, form-encoded: a message as
    paperwire splits them (24 papers, 48 blocks of 50) whose titles and TL;DRs are Japanese
    (a character is 8 bytes once \\u-escaped and %-encoded) is over the 64 KiB of the page
    forms, and its every click was refused 413, the vote lost from Slack."""
    http_server.routes["/respond"] = Route(b"ok")
    payload = block_actions(web, http_server.url("/respond"), "up")
    [section, actions] = payload["message"]["blocks"]
    title = "長文脈推論のためのキー・バリューキャッシュ圧縮と退避に関する研究"
    tldr = (
        "注意スコアの低いトークンを退避することで、長い文脈の推論に必要なメモリを五分の一に削減する。"
        * 3
    )
    others = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*<https://arxiv.org/abs/2401.{n:05d}|{n}. {title}>*\n"
                f"山田 太郎, 佐藤 花子, 鈴木 一郎 · <https://arxiv.org/pdf/2401.{n:05d}|PDF>\n"
                f"_Why: close in meaning to your interest “KV cache compression”_\n"
                f"*TL;DR* {tldr}",
            },
        }
        for n in range(2, 25)
    ]
    payload["message"]["blocks"] = [section, actions] + [
        block for other in others for block in (other, {**actions, "block_id": "p:other"})
    ]
    body, headers = slack_request(payload)
    assert 64 * 1024 < len(body) < 256 * 1024
    response = client.post("/slack/actions", content=body, headers=headers)
    assert response.status_code == 200
    assert web.votes() == [("ada", KV, 1)]
    # bounded still: a body no Slack message comes near, read before its signature is checked
    huge = client.post("/slack/actions", content=b"x" * (SLACK_MAX_BODY + 1), headers=headers)
    assert huge.status_code == 413


# -- under load: bounded work, clear refusals, clicks in order -------------------------------


def test_a_saturated_app_answers_503_with_retry_after_and_healthz_still_answers(
    tmp_path: Path, make_config
):
    port = free_port()
    config = make_config(CONFIG.format(port=port), env={"PAPERWIRE_SECRET": SECRET})
    db_path = tmp_path / "paperwire.db"
    with Store(db_path) as store:
        store.add_papers(PAPERS)
    gate = threading.Event()

    def slow_config() -> Config:  # every page's work starts by reading the config
        gate.wait(20)
        return config

    app = create_app(slow_config, db_path, workers=1, max_pending=2)
    stop = serve(app, port)
    url = f"http://127.0.0.1:{port}/v/{Signer(SECRET).vote_token('ada', KV, 'up')}"
    held: list[int] = []
    holders = [
        threading.Thread(target=lambda: held.append(httpx.get(url, timeout=30).status_code))
        for _ in range(2)
    ]
    try:
        for thread in holders:
            thread.start()
        wait_for(lambda: app_pending(app) == 2)
        busy = httpx.get(url, timeout=10)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        gate.set()
        for thread in holders:
            thread.join(30)
        stop()
        assert app.close(10)
    assert refusal(busy, 503, "Busy")
    assert busy.headers["retry-after"] == "2"
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert held == [200, 200]


def app_pending(app) -> int:
    """How many requests the app's page workers hold (running or queued)."""
    return app.pool.pending


def test_a_vote_that_waited_past_the_deadline_is_dropped_not_applied_late(
    tmp_path: Path, make_config
):
    port = free_port()
    config = make_config(CONFIG.format(port=port), env={"PAPERWIRE_SECRET": SECRET})
    db_path = tmp_path / "paperwire.db"
    with Store(db_path) as store:
        store.add_papers(PAPERS)
    gate = threading.Event()
    calls = []

    def slow_config() -> Config:
        calls.append(1)
        if len(calls) == 1:  # the vote page holds the only worker; later calls pass
            gate.wait(20)
        return config

    app = create_app(slow_config, db_path, workers=1, deadline=0.2)
    stop = serve(app, port)
    signer = Signer(SECRET)
    base = f"http://127.0.0.1:{port}"
    answers: dict[str, int] = {}
    blocker = threading.Thread(
        target=lambda: answers.update(
            page=httpx.get(f"{base}/v/{signer.vote_token('ada', GPTQ, 'up')}").status_code
        )
    )
    try:
        blocker.start()
        wait_for(lambda: len(calls) >= 1)  # the only worker is now held
        voter = threading.Thread(
            target=lambda: answers.update(
                vote=httpx.post(f"{base}/v/{signer.vote_token('ada', KV, 'up')}").status_code
            )
        )
        voter.start()
        wait_for(lambda: app_pending(app) == 2)
        time.sleep(0.5)  # the queued vote is now older than its 0.2 s deadline
        gate.set()
        voter.join(20)
        blocker.join(20)
    finally:
        gate.set()
        stop()
        assert app.close(10)
    assert answers == {"page": 200, "vote": 503}
    with Store(db_path) as store:
        assert store.votes() == []


def test_a_vote_whose_body_arrives_slowly_is_not_busy(tmp_path: Path, make_config):
    """The queue's deadline counted from the request's first byte: a vote whose three-byte body
    came after the deadline (a phone on a slow line) was answered 503 "Busy" on an idle server
    and not recorded."""
    import socket

    port = free_port()
    config = make_config(CONFIG.format(port=port), env={"PAPERWIRE_SECRET": SECRET})
    db_path = tmp_path / "paperwire.db"
    with Store(db_path) as store:
        store.add_papers(PAPERS)
    app = create_app(lambda: config, db_path, deadline=0.2)
    stop = serve(app, port)
    token = Signer(SECRET).vote_token("ada", KV, "up")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(
                f"POST /v/{token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            time.sleep(0.6)  # three times the deadline, with the server idle
            conn.sendall(b"x=1")
            answer = conn.makefile("rb").readline()
    finally:
        stop()
        assert app.close(10)
    assert answer.split()[1] == b"303", answer
    with Store(db_path) as store:
        assert [(v["paper_id"], v["vote"]) for v in store.votes()] == [(KV, 1)]


def test_an_older_click_processed_after_a_newer_one_is_not_applied(web: WebApp):
    import datetime as dt

    from paperwire.links import VoteClaim
    from paperwire.web.app import FeedbackApp
    from paperwire.web.votes import apply_vote

    app = FeedbackApp(
        lambda: web.config,
        web.db_path,
        None,
        pool=_Pool(),
        profiles=None,  # type: ignore[arg-type]
    )
    t0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    up, undo = VoteClaim("ada", KV, "up"), VoteClaim("ada", KV, "undo")
    with web.store() as store:
        # Clicked 👍 (arrived at 1.0) then undo (2.0); a worker got to the undo first.
        assert app.apply_in_order(
            store, web.config, undo, (2.0, t0 + dt.timedelta(seconds=2)), via="web"
        )
        assert not app.apply_in_order(
            store, web.config, up, (1.0, t0 + dt.timedelta(seconds=1)), via="web"
        )
        assert store.vote("ada", KV) is None
        # 👎 (3.0) then 👍 (4.0), processed in reverse: 👍 stays.
        down = VoteClaim("ada", KV, "down")
        assert app.apply_in_order(
            store, web.config, up, (4.0, t0 + dt.timedelta(seconds=4)), via="web"
        )
        assert not app.apply_in_order(
            store, web.config, down, (3.0, t0 + dt.timedelta(seconds=3)), via="web"
        )
        assert store.vote("ada", KV) == 1
        # Another process's older click (by the stored click time) is not applied either.
        assert not apply_vote(store, web.config, down, via="slack", clicked_at=t0)
        assert store.vote("ada", KV) == 1
        assert apply_vote(
            store, web.config, down, via="slack", clicked_at=t0 + dt.timedelta(hours=1)
        )
        assert store.vote("ada", KV) == -1


def test_a_click_reads_the_one_stored_vote_not_all_the_readers_votes(web: WebApp, monkeypatch):
    # A reader with months of votes: each click read every one of them (5,000 rows, 18 ms of a
    # 70 ms vote in a field run) to find the one on this paper.
    import datetime as dt

    from paperwire.links import VoteClaim
    from paperwire.store import Store
    from paperwire.web.votes import apply_vote

    t0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    with web.store() as store:
        store.record_vote("ada", KV, 1, via="web", now=t0)

        def every_vote(self, subscriber_ids=None):
            raise AssertionError("a click read all of the reader's votes")

        monkeypatch.setattr(Store, "votes", every_vote)
        down = VoteClaim("ada", KV, "down")
        older, newer = t0 - dt.timedelta(seconds=1), t0 + dt.timedelta(seconds=1)
        assert not apply_vote(store, web.config, down, via="web", clicked_at=older)
        assert apply_vote(store, web.config, down, via="web", clicked_at=newer)
        assert store.vote_row("ada", KV)["vote"] == -1


class _Pool:
    deadline = 10.0


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://127.0.0.1:notaport"},
        {"origin": "http://[::1"},
        {"origin": "http://127.0.0.1:99999"},
        {"origin": "https://example.org", "host": "127.0.0.1:notaport"},
        {"origin": "https://example.org", "host": "[::1"},
    ],
)
def test_a_malformed_origin_or_host_is_a_400(web: WebApp, headers: dict[str, str]):
    with httpx.Client(base_url=web.url, timeout=10) as client:
        response = client.post(path_of(web.link("ada", KV, "up")), headers=headers)
    page = refusal(response, 400, "Bad request")
    assert "The request&#39;s Origin or Host header is malformed." in page
    assert web.votes() == []


@pytest.mark.parametrize("junk", ["!!", "~", "%20", "=", "==", "%0A", ".", "é"])
def test_a_signed_link_with_junk_appended_is_refused(web: WebApp, client: httpx.Client, junk: str):
    link = web.link("ada", KV, "up") + junk
    assert refusal(client.post(path_of(link)), 400, "This link does not work")
    profile = web.page("profile", "ada") + junk
    assert refusal(client.get(path_of(profile)), 400, "This link does not work")
    assert web.votes() == []


def test_the_profile_page_of_a_fresh_install_with_no_papers(tmp_path: Path, make_config):
    """No paper stored yet (before the first fetch): the page shows the interests' terms."""
    port = free_port()
    config = make_config(CONFIG.format(port=port), env={"PAPERWIRE_SECRET": SECRET})
    db_path = tmp_path / "paperwire.db"
    Store(db_path).close()
    app = create_app(lambda: config, db_path, profile_wait=60)
    stop = serve(app, port)
    try:
        token = Signer(SECRET).subscriber_token("profile", "grace")
        response = httpx.get(f"http://127.0.0.1:{port}/profile/{token}", timeout=10)
    finally:
        stop()
        assert app.close(10)
    assert response.status_code == 200
    assert "<h1>What paperwire has learned about Grace Hopper</h1>" in response.text
    assert "low-bit weight quantization of language models</textarea>" in response.text
    # the terms were computed (from no papers), not left "still being learned" by a failure
    assert 'id="terms-updating"' not in response.text


# -- issue 26: a client that leaves mid-body -------------------------------------------------


def test_a_client_leaving_mid_body_is_one_log_line_not_a_traceback(web: WebApp, caplog):
    """20 sockets that announce a form and hang up after a few bytes wrote 20 ERRORs with a
    30-line traceback each."""
    import logging
    import socket

    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    port = int(web.url.rsplit(":", 1)[1])
    path = path_of(web.link("ada", KV, "up"))
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    "Content-Length: 1000\r\n\r\nvote=u".encode()
                )
                time.sleep(0.2)
        time.sleep(0.5)  # the app notices the third one leave
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert web.votes() == []
    said = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert all(r.exc_info is None and r.exc_text is None for r in said), caplog.text
    left = [r.getMessage() for r in said if "left" in r.getMessage()]
    assert left == ["POST /v/…: the client left before its request body had arrived"] * 3
    assert "Traceback" not in caplog.text


def test_papers_whose_long_ids_share_a_prefix_get_their_own_slack_block_and_vote(
    web: WebApp, client: httpx.Client, http_server: HttpServer
):
    # non-arXiv ids may have 500 characters; these two share their first 300
    ids = [f"https://blog.example/{'a' * 280}/post-{n}" for n in (1, 2)]
    with web.store() as store:
        store.add_papers([Paper(i, f"Post {i[-1]}", source="blog") for i in ids])
    ctx = render.context(
        subscriber_name="Ada",
        picks=[Pick(i, f"Post {i[-1]}", "", 1.0, ["new"], {}) for i in ids],
        links=Links(web.url, web.signer, "ada"),
        kind="digest",
        period="2026-11-23",
    )
    [blocks] = digest_blocks(ctx)
    actions = [b for b in blocks if b["type"] == "actions"]
    block_ids = [b["block_id"] for b in actions]
    assert len(set(block_ids)) == 2 and max(map(len, block_ids)) <= 255
    http_server.routes["/respond"] = Route(b"ok")
    clicked = actions[0]["elements"][0]  # 👍 on the first post
    payload = {
        "type": "block_actions",
        "response_url": http_server.url("/respond"),
        "message": {"text": "Your papers", "blocks": blocks},
        "actions": [{**clicked, "block_id": block_ids[0], "action_ts": str(time.time())}],
    }
    body, headers = slack_request(payload)
    assert client.post("/slack/actions", content=body, headers=headers).status_code == 200
    assert web.votes() == [("ada", ids[0], 1)]
    wait_for(lambda: len(http_server.requests) == 1)
    update = json.loads(http_server.requests[0][3])
    marked = [
        [e["text"]["text"] for e in b["elements"]] for b in update["blocks"] if "block_id" in b
    ]
    assert marked == [
        ["✓ 👍 More like this", "👎 Less like this"],  # the post voted on
        ["👍 More like this", "👎 Less like this"],  # not its namesake
    ]


@contextlib.contextmanager
def another_app(web: WebApp, config: Config) -> Iterator[WebApp]:
    """A second app on the web fixture's database, with another config (readers added)."""
    port = free_port()
    app = create_app(lambda: config, web.db_path, profile_wait=60)
    stop = serve(app, port)
    try:
        yield WebApp(f"http://127.0.0.1:{port}", config, web.db_path, Signer(SECRET))
    finally:
        stop()
        assert app.close(10)


def test_an_unsubscribe_under_another_id_shows_on_the_page_and_subscribing_again_undoes_it(
    web: WebApp, make_config, tmp_path: Path
):
    """Two ids with one address: the unsubscribe made through one holds for the other (no
    mail), so the other's pages say so, and "subscribe again" from it mails both again; before,
    her page said subscribed while nothing was sent, and its button changed nothing (found in
    review)."""
    text = CONFIG.format(port=1) + (
        "  - id: ada2\n    name: Ada second list\n    email: ADA@example.org\n"
        "    interests: pruning\n"
    )
    config = make_config(text, env={"PAPERWIRE_SECRET": SECRET})
    with another_app(web, config) as other:
        httpx.post(other.page("unsubscribe", "ada"), data={"List-Unsubscribe": "One-Click"})
        with web.store() as store:
            assert [s.id for s in pipeline.active_subscribers(store, config)[0]] == ["grace"]
        page = httpx.get(other.page("unsubscribe", "ada2")).text
        assert "<h1>You are unsubscribed</h1>" in page
        assert '<button type="submit" class="button">Subscribe again</button>' in page
        assert (
            "<strong>You are unsubscribed</strong>" in httpx.get(other.page("profile", "ada2")).text
        )
        again = httpx.post(other.page("unsubscribe", "ada2"), data={"action": "resubscribe"})
        assert "<h1>Unsubscribe Ada second list?</h1>" in again.text
        with web.store() as store:
            assert store.unsubscribed() == set()
            active = [s.id for s in pipeline.active_subscribers(store, config)[0]]
        assert active == ["ada", "grace", "ada2"]


def test_a_path_with_a_trailing_slash_is_not_redirected_to_the_host_a_request_names(
    web: WebApp,
):
    """Starlette redirected "/v/<token>/" to an absolute URL built from the Host header: behind
    a proxy that rewrites Host, the token went to the proxy's upstream in clear text."""
    for method in ("GET", "POST"):
        response = httpx.request(
            method,
            web.link("ada", PAPERS[0].paper_id, "up") + "/",
            headers={"Host": "evil.example"},
        )
        assert response.status_code == 404
        assert "location" not in response.headers
    assert web.votes() == []


def test_serve_reads_the_config_again_when_it_changes(tmp_path: Path):
    """`paperwire serve` used the config it started with for every request: a reader added
    later got 404 from the one-click unsubscribe in their first digest (mail providers do not
    retry a 404: they kept getting mail), and a removed reader's votes were still stored."""
    import os
    import socket
    import subprocess
    import sys

    from .conftest import environ_without_paperwire

    port = free_port()
    path = tmp_path / "subscribers.yaml"
    path.write_text(CONFIG.format(port=port))
    db_path = tmp_path / "paperwire.db"
    with Store(db_path) as store:
        store.add_papers(PAPERS)
    server = subprocess.Popen(
        [sys.executable, "-m", "paperwire", "--config", str(path), "--db", str(db_path),
         "serve", "--port", str(port)],
        env={**environ_without_paperwire(), "PAPERWIRE_SECRET": SECRET},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    web = WebApp(f"http://127.0.0.1:{port}", None, db_path, Signer(SECRET))  # type: ignore[arg-type]
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        grace_vote = web.link("grace", PAPERS[0].paper_id, "up")
        assert httpx.post(grace_vote).status_code == 303
        cy_unsubscribe = web.page("unsubscribe", "cy")
        assert httpx.post(cy_unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 404
        # cy joins, grace leaves; the file's time moved on as an editor's save moves it
        path.write_text(
            CONFIG.format(port=port).split("  - id: grace")[0]
            + "  - id: cy\n    email: cy@example.org\n    interests: pruning\n"
        )
        later = time.time() + 5
        os.utime(path, (later, later))
        response = httpx.post(cy_unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
        assert "You are unsubscribed" in response.text
        assert httpx.post(web.link("grace", PAPERS[1].paper_id, "up")).status_code == 404
        with Store(db_path) as store:
            assert store.unsubscribed() == {"cy"}
            assert [(v["subscriber_id"], v["paper_id"]) for v in store.votes()] == [
                ("grace", PAPERS[0].paper_id)
            ]
    finally:
        server.terminate()
        server.communicate(timeout=20)


def test_the_profile_of_a_reader_known_by_an_imported_library_names_its_terms(
    web: WebApp, make_config
):
    """A reader with no interests and a library imported with `seeds import`: the digest was
    driven by it, and the profile page said "No term stands out yet" (it read the config's
    seed papers only; found in review)."""
    text = CONFIG.format(port=1) + "  - id: lib\n    name: Lib\n    email: lib@example.org\n"
    config = make_config(text, env={"PAPERWIRE_SECRET": SECRET})
    with another_app(web, config) as other:
        before = httpx.get(other.page("profile", "lib"), timeout=30).text
        assert "weight quantization" not in before.lower()
        with web.store() as store:
            store.add_seeds("lib", ["2401.00003"], origin="library.bib")
        html = httpx.get(other.page("profile", "lib"), timeout=30).text
        positive = html.split('id="positive-terms"')[1].split("</ul>")[0]
        assert "weight quantization</li>" in positive.lower(), positive
        # what ranks this reader's digest, and nothing they did not give (a field test's
        # seeds-only reader was told of "your interests")
        lede = html.split('id="lede">')[1].split("</p>")[0]
        assert lede == (
            "Your digest is ranked by how close each new paper is to the profile below: "
            "1 seed paper and your votes (0 👍, 0 👎)."
        )
        grace = httpx.get(other.page("profile", "grace"), timeout=30).text
        assert (
            grace.split('id="lede">')[1]
            .split("</p>")[0]
            .endswith("profile below: your interests and your votes (0 👍, 0 👎).")
        )


def test_a_profile_edit_of_invisible_characters_only_is_an_empty_one():
    """'\u00a0\u2028\u200b' was kept as the reader's interests: '\u200b', an edit that looked
    empty on the page (found in review). Zero-width characters alone make no line."""
    from paperwire.web.app import tidy

    assert tidy("\u00a0\u2028\u200b") == ""
    assert tidy("KV cache\n\u200b\u2060\nspeculative decoding") == "KV cache\nspeculative decoding"
    assert tidy("  KV   cache  ") == "KV cache"


def test_a_vote_or_unsubscribe_while_another_process_holds_the_database_is_a_503_to_retry(
    web: WebApp, client: httpx.Client, monkeypatch, caplog
):
    """A write lock held past the busy timeout (another process's long transaction) made a
    vote or a one-click unsubscribe a 500 with ~65 lines of traceback (found in review): the
    lock is temporary, so 503 with Retry-After, one log line, nothing recorded."""
    import functools
    import logging
    import sqlite3

    from paperwire.web import app as app_module

    with web.store() as store:  # migrated and settled before the lock is taken
        store.votes()
    # the app's stores wait a moment, not 30 s, for the lock
    monkeypatch.setattr(app_module, "Store", functools.partial(Store, busy_timeout=0.3))
    holder = sqlite3.connect(web.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.ERROR, logger="paperwire"):
            vote = client.post(web.link("ada", KV, "up"))
            gone = client.post(
                web.page("unsubscribe", "ada"), data={"List-Unsubscribe": "One-Click"}
            )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for response in (vote, gone):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert "Nothing was changed." in response.text
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and all("stayed locked" in m and "Traceback" not in m for m in said)
    assert all("/v/…" in m or "/unsubscribe/…" in m for m in said)
    assert web.votes() == []
    # once the lock is gone, the same click is recorded
    assert client.post(web.link("ada", KV, "up")).status_code == 303
    assert web.votes() == [("ada", KV, 1)]


def test_profile_lists_every_vote_on_asking_so_an_old_one_can_be_taken_back(
    web: WebApp, client: httpx.Client, monkeypatch
):
    # A field test: a reader whose interests moved on still got papers "like" one of her
    # first 👍; the page listed her latest 30 of 71 votes, none of the old ones, and no way to
    # reach them
    from paperwire.web import app as app_module

    monkeypatch.setattr(app_module, "RECENT_VOTES", 1)
    client.post(web.link("ada", KV, "up"))  # the old one
    client.post(web.link("ada", PROTEIN, "down"))
    html = client.get(web.page("profile", "ada")).text
    votes = html.split('id="votes"')[1].split("</table>")[0]
    assert votes.count("<tr>") == 1 and "Protein folding" in votes
    note = html.split('id="all-votes"')[1].split("</p>")[0]
    assert "The latest 1 of your 2 votes" in note
    every = note.split('href="')[1].split('"')[0]
    assert every.endswith("?votes=all")
    html = client.get(web.url + every).text
    assert "<h2>All your votes</h2>" in html and 'id="all-votes"' not in html
    votes = html.split('id="votes"')[1].split("</table>")[0]
    assert votes.count("<tr>") == 2
    # ... and the old 👍 taken back from there
    undo = votes.split("</tr>")[1].split('action="')[1].split('"')[0]
    client.post(web.url + undo, data={"return_to": "profile"}, follow_redirects=True)
    assert web.votes() == [("ada", PROTEIN, -1)]
