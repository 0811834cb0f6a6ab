"""Slack digests posted to a real local HTTP server standing in for Slack's webhook endpoint."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time

import pytest
from pydantic import SecretStr

from paperwire import pipeline
from paperwire.deliver.slack import MAX_BLOCKS, MAX_HEADER, MAX_SECTION, escape, retry_after
from paperwire.links import Signer
from paperwire.paper import Paper

from .conftest import FIXTURES, Route

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def config_with_hook(make_config, hook: str, size: int = 5, extra: str = ""):
    return make_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n"
        f"  - id: team\n    slack_webhook: {hook}\n"  # no interests: every paper is a pick
        f"    digest_size: {size}\n    digest_days: daily\n{extra}",
        env={"PAPERWIRE_SECRET": "k-test-signing-key"},
    )


def payloads(http_server) -> list[dict]:
    return [json.loads(body) for method, path, _, body in http_server.requests if method == "POST"]


def check_limits(payload: dict) -> None:
    blocks = payload["blocks"]
    assert 0 < len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION
        if block["type"] == "actions":
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= 75
                assert element["url"].startswith("http://127.0.0.1:8000/v/")


def test_a_digest_is_posted_as_block_kit(store, make_config, http_server):
    http_server.routes["/hook"] = Route(b"ok")
    config = config_with_hook(make_config, http_server.url("/hook"))
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    assert [(line.status, line.detail) for line in report.lines] == [
        ("sent", "5 papers to Slack (1 message(s))")
    ]
    [payload] = payloads(http_server)
    check_limits(payload)
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds[0] == "header" and kinds.count("section") == 5 and kinds.count("actions") == 5
    assert "Why:" in payload["blocks"][1]["text"]["text"]
    # with interactivity on, the button's value is the same signed token as its URL
    buttons = [b for b in payload["blocks"] if b["type"] == "actions"][0]["elements"]
    claims = [Signer("k-test-signing-key").read_vote(button["value"]) for button in buttons]
    assert [(c.subscriber_id, c.action) for c in claims] == [("team", "up"), ("team", "down")]
    assert payload["text"].startswith("Paperwire 2026-11-23: ")  # notification fallback
    assert pipeline.send_due(store, config, now=NOW).count("sent") == 0  # once only


def test_a_long_digest_is_split_within_the_block_limit(store, make_config, http_server):
    http_server.routes["/hook"] = Route(b"ok")
    config = config_with_hook(make_config, http_server.url("/hook"), size=40)
    pipeline.fetch_all(store, config, now=NOW)
    pipeline.send_due(store, config, now=NOW)
    sent = payloads(http_server)
    assert len(sent) == 2
    for payload in sent:
        check_limits(payload)
    sections = sum(b["type"] == "section" for p in sent for b in p["blocks"])
    assert sections == 40


def test_feed_text_is_escaped_and_long_text_trimmed(store, make_config, http_server):
    http_server.routes["/hook"] = Route(b"ok")
    config = config_with_hook(make_config, http_server.url("/hook"))
    store.add_papers(
        [
            Paper(
                "2501.00009",
                "Models <!channel> & |pipes| for language",
                abstract="language models " * 400,
                authors=["A" * 50] * 200,
                url="https://arxiv.org/abs/2501.00009",
                source="t",
            )
        ],
        now=NOW,
    )
    pipeline.send_due(store, config, now=NOW)
    [payload] = payloads(http_server)
    check_limits(payload)
    text = payload["blocks"][1]["text"]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; ¦pipes¦" in text


def test_429_is_retried_after_retry_after(store, make_config, http_server):
    http_server.routes["/hook"] = [
        Route(b"rate_limited", status=429, headers={"Retry-After": "1"}),
        Route(b"ok"),
    ]
    config = config_with_hook(make_config, http_server.url("/hook"))
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    assert report.lines[0].status == "sent"
    assert len(payloads(http_server)) == 2


def test_a_400_is_permanent_and_says_why(store, make_config, http_server):
    http_server.routes["/hook"] = Route(b"invalid_blocks", status=400)
    config = config_with_hook(make_config, http_server.url("/hook"))
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    assert [(line.status, line.detail) for line in report.lines] == [
        ("failed", "Slack webhook refused the message: HTTP 400 invalid_blocks")
    ]
    assert len(payloads(http_server)) == 1  # not retried
    assert store.last_delivery("team")["state"] == "failed"
    assert http_server.url("/hook") not in str(
        store.last_delivery("team")
    )  # the secret URL stays out


def test_escape():
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_a_split_digest_resumes_at_the_first_message_not_accepted(store, make_config, http_server):
    # Slack accepts the 1st message, fails the 2nd once (a 500 this run does not retry)
    http_server.routes["/hook"] = [Route(b"ok"), Route(b"boom", status=500), Route(b"ok")]
    config = make_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n"
        f"  - id: team\n    slack_webhook: {http_server.url('/hook')}\n"
        "    digest_size: 30\n    digest_days: daily\n"  # no interests: every paper a pick
        "sender:\n  retry_attempts: 1\n",
        env={"PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    pipeline.fetch_all(store, config, now=NOW)
    first = pipeline.send_due(store, config, now=NOW)
    assert [(line.status, line.detail) for line in first.lines] == [
        ("retry", "Slack webhook kept answering HTTP 500; tried again after 2026-11-23 12:05 UTC")
    ]
    row = store.last_delivery("team")
    assert (row["state"], row["parts_sent"]) == ("pending", 1)

    again = pipeline.send_due(store, config, now=NOW + dt.timedelta(hours=1))
    assert [(line.status, line.detail) for line in again.lines] == [
        ("sent", "30 papers to Slack (2 message(s), resumed at message 2)")
    ]
    posted = payloads(http_server)
    assert len(posted) == 3  # the 1st message once; the 2nd failed, then accepted
    assert posted[0]["blocks"][0]["type"] == "header"  # the start of the digest, posted once
    assert [b["type"] for b in posted[1]["blocks"]] == [b["type"] for b in posted[2]["blocks"]]
    assert posted[2]["blocks"][0]["type"] == "section"  # the resend is the 2nd message only
    assert store.last_delivery("team")["state"] == "sent"


def test_retry_after_in_seconds_or_as_an_http_date():
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC).timestamp()
    assert retry_after("7", now=now) == 7.0
    assert retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now=now) == 0.0  # already past
    assert retry_after("soon", now=now) is None


# -- issue 26: a slow webhook, and one reader's broken channel ------------------------------


@pytest.mark.timeout(30)
def test_a_webhook_whose_200_drips_ends_at_the_deadline_sent_not_posted_again(
    store, make_config, caplog
):
    """Headers at once, HTTP 200, then a byte of the body every 0.3 s: every read succeeds, so
    only a deadline around the whole post ends it. Slack said 200: it was posted. (It was
    "maybe delivered", and a later run posted it again: a second copy in the channel; found
    in review.)"""
    from . import hostile
    from .conftest import free_port

    state = hostile.Hostile(port=free_port(), drip_every=0.3)
    with hostile.serving(state):
        # the encoder off: what is timed is the deadline, not the ranking before it
        config = config_with_hook(
            make_config,
            state.url("/drip/hook"),
            size=3,
            extra="sender: {timeout: 1}\nranking: {embeddings: off}\n",
        )
        pipeline.fetch_all(store, config, now=NOW)
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="paperwire"):
            first = pipeline.send_due(store, config, now=NOW)
        took = time.monotonic() - began
        again = pipeline.send_due(store, config, now=NOW + dt.timedelta(hours=2))
        posted = len(state.posts)
    [line] = first.lines
    assert took < 2.5, took
    assert line.status == "sent"
    assert "answered HTTP 200 and its body did not end within 1 s; counted as sent" in caplog.text
    assert [line.status for line in again.lines] == ["not-due"]
    assert posted == 1
    assert store.last_delivery("team")["state"] == "sent"


def test_whatever_one_readers_channel_raises_fails_that_row_and_the_run_goes_on(
    store, make_config, http_server, tmp_path
):
    """A webhook httpx cannot use (here a CR the config check would now refuse, put in behind
    its back) raised httpx.InvalidURL out of `send`: the next reader's e-mail never went out."""
    http_server.routes["/hook"] = Route(b"ok")
    config = config_with_hook(
        make_config,
        http_server.url("/hook"),
        size=3,
        extra='  - id: ada\n    email: ada@example.org\n    interests: "language models"\n'
        "    digest_size: 3\n    digest_days: daily\n",
    )
    team = config.subscribers[0].model_copy(
        update={"slack_webhook": SecretStr(http_server.url("/hook") + "\r")}
    )
    config = config.model_copy(update={"subscribers": (team, config.subscribers[1])})
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
    lines = {line.subscriber_id: (line.status, line.detail) for line in report.lines}
    assert lines["team"][0] == "failed"
    assert lines["team"][1].startswith("slack: unexpected InvalidURL: ")
    assert "\n" not in lines["team"][1] and "/hook" not in lines["team"][1]
    assert lines["ada"][0] == "sent"
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert store.last_delivery("team")["state"] == "failed"


# -- the send run's budget; back-off for every failure ---------------------------------------


def test_stuck_channels_cost_the_run_its_budget_not_each_its_timeout(
    store, make_config, http_server, caplog
):
    """Three readers' webhooks answer after 3 s. Each post had sender.timeout (1 s) of its own,
    so N stuck channels held a run N seconds. With run_budget 1.5 the first post gets 1 s, the
    second what is left (0.5 s), and the third is not tried: it stays due, untried, says why in
    the log and in `status`, and the next run sends it."""
    http_server.routes["/slow"] = Route(b"ok", delay=3)
    http_server.routes["/fast"] = Route(b"ok")
    # three hosts (one server): a host that let a post reach its deadline gets no more posts
    # this run (the next test), so each reader here is on a host of its own
    hosts = {"a": "127.0.0.1", "b": "localhost", "c": "127.0.0.1."}
    readers = "".join(
        f"  - id: {name}\n    slack_webhook: "
        f"{http_server.url('/slow').replace('127.0.0.1', hosts[name], 1)}\n"
        "    digest_size: 3\n    digest_days: daily\n"
        for name in ("a", "b", "c")
    )
    config = make_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n{readers}"
        "sender: {timeout: 1, run_budget: 1.5}\nranking: {embeddings: off}\n",
        env={"PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    pipeline.fetch_all(store, config, now=NOW)
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="paperwire"):
        first = pipeline.send_due(store, config, now=NOW)
    took = time.monotonic() - began
    lines = {line.subscriber_id: (line.status, line.detail) for line in first.lines}
    assert took < 2.5, took
    assert lines["a"][1].startswith("maybe delivered: Slack webhook: no answer within 1 s ")
    assert re.match(  # what was left of the budget, about 0.5 s
        r"maybe delivered: Slack webhook: no answer within 0\.\d+ s \(sender\.run_budget\) ",
        lines["b"][1],
    )
    untried = (
        "not sent: the send run's budget of 1.5 s (sender.run_budget) was spent before it; "
        "the next run sends it"
    )
    assert lines["c"] == ("retry", untried)
    row = store.last_delivery("c")
    assert (row["state"], row["attempts"], row["error"]) == ("pending", 0, untried)
    assert "1 deliveries stay due for the next run" in caplog.text

    from paperwire.status import status

    [shown] = [s for s in status(store, config, now=NOW).subscribers if s.id == "c"]
    assert shown.channels[0].deliveries[0].error == untried

    fast = config.model_copy(
        update={
            "subscribers": tuple(
                s.model_copy(update={"slack_webhook": SecretStr(http_server.url("/fast"))})
                for s in config.subscribers
            )
        }
    )
    later = pipeline.send_due(store, fast, now=NOW + dt.timedelta(minutes=1))
    assert sorted((line.subscriber_id, line.status) for line in later.lines) == [
        ("a", "waiting"),
        ("b", "waiting"),
        ("c", "sent"),
    ]


def test_a_stalled_webhook_host_gets_one_deadline_a_run_and_the_e_mails_still_go(
    store, make_config, http_server, smtp_server
):
    """Four readers' webhooks on one host that takes a post and never answers, then e-mail:
    each post waited its deadline, the run's budget was spent on them, and no e-mail went out
    (found in review; at the defaults 15 such webhooks take the whole 900 s). Now the host gets
    one deadline: its other posts wait, untried, for the next run, and the e-mails go."""
    http_server.routes["/slow"] = Route(b"ok", delay=3)
    slack = "".join(
        f"  - id: s{i}\n    slack_webhook: {http_server.url('/slow')}\n"
        "    digest_size: 3\n    digest_days: daily\n"
        for i in range(4)
    )
    mail = "".join(
        f"  - id: m{i}\n    email: m{i}@example.org\n    digest_size: 3\n    digest_days: daily\n"
        for i in range(3)
    )
    config = make_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n{slack}{mail}"
        "sender: {timeout: 1, run_budget: 3}\nranking: {embeddings: off}\n",
        env={"PAPERWIRE_SECRET": "k-test-signing-key", "PAPERWIRE_SMTP_URL": smtp_server.url},
    )
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    lines = {line.subscriber_id: (line.status, line.detail) for line in report.lines}
    assert lines["s0"][1].startswith("maybe delivered: Slack webhook: no answer within 1 s")
    waiting = (
        "not sent: the Slack webhook host 127.0.0.1 let an earlier delivery of this run reach "
        "its deadline (sender.timeout) unanswered; the next run tries again"
    )
    assert [lines[f"s{i}"] for i in (1, 2, 3)] == [("retry", waiting)] * 3
    assert [store.last_delivery(f"s{i}")["attempts"] for i in (1, 2, 3)] == [0, 0, 0]
    assert [lines[f"m{i}"][0] for i in range(3)] == ["sent"] * 3
    assert len(smtp_server.messages) == 3


def first_send(store, make_config, http_server, answers: list[Route]):
    """The webhook answering ``answers`` in turn: the config, and the report of the first
    send (papers fetched first; retries within a run a hundredth of a second apart)."""
    http_server.routes["/hook"] = answers
    config = config_with_hook(
        make_config, http_server.url("/hook"), extra="sender:\n  retry_backoff: 0.01\n"
    )
    pipeline.fetch_all(store, config, now=NOW)
    return config, pipeline.send_due(store, config, now=NOW)


def test_a_retry_after_past_what_a_date_holds_waits_the_longest_wait_not_fails(
    store, make_config, http_server
):
    """ "Retry-After: 99999999999999" became a timedelta before it was capped: OverflowError,
    and the digest failed for good where a 429 is to be waited out (found in review)."""
    config, first = first_send(
        store,
        make_config,
        http_server,
        [
            Route(b"rate_limited", status=429, headers={"Retry-After": "99999999999999"}),
            Route(b"ok"),
        ],
    )
    assert [(line.status, line.detail) for line in first.lines] == [
        (
            "retry",
            "Slack webhook answered HTTP 429 and asked to wait 1e+14 s; tried again after "
            "2026-11-23 13:00 UTC",
        )
    ]
    later = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=61))
    assert [line.status for line in later.lines] == ["sent"]


def test_a_500_is_tried_again_after_a_back_off_and_retry_after_is_honoured(
    store, make_config, http_server
):
    """Slack answering 500 (after this run's retries) left the digest due, posted again on
    every daemon tick. Now a later run tries only after the back-off (5 minutes, then 20), or
    after the Retry-After Slack gave when that is longer; a 408 is retried like a 5xx."""
    config, first = first_send(
        store,
        make_config,
        http_server,
        [
            Route(b"slow", status=408),
            Route(b"busy", status=503, headers={"Retry-After": "1800"}),
            Route(b"ok"),
        ],
    )
    tick = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=10))
    later = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=31))
    assert [(line.status, line.detail) for line in first.lines] == [
        (
            "retry",
            "Slack webhook answered HTTP 503 and asked to wait 1800 s; tried again after "
            "2026-11-23 12:30 UTC",
        )
    ]
    assert [line.status for line in tick.lines] == ["waiting"]
    assert [line.status for line in later.lines] == ["sent"]
    assert len(payloads(http_server)) == 3  # 408, then 503 (not waited for in the run), then ok


# -- a webhook that redirects, or answers without end ----------------------------------------


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("/landing", "http://127.0.0.1:{port}"),  # relative: resolved, and the host said
        # only where it goes: no path, where a secret could be (found in review: a webhook
        # path on another host was shown whole)
        ("ftp://files.example/hooks/T0001/B0002/s3cretWebhookPathXyz", "ftp://files.example"),
        ("https://evil.example/services/T/B/SECRET", "https://evil.example"),
        # a proxy's login page, given the webhook to come back to: percent-encoded, which no
        # mask of the raw path found (found in review: in the error, status and the database)
        (
            "https://sso.example.com:8443/login?return_to=http%3A%2F%2F127.0.0.1%2Fservices"
            "%2FT0001%2FB0002%2Fs3cretWebhookPathXyz",
            "https://sso.example.com:8443",
        ),
    ],
)
def test_a_redirecting_webhook_is_a_permanent_failure_never_followed(
    store, make_config, http_server, location, shown
):
    """A 301 was followed with a GET (nothing posted, recorded as sent); one to ftp:// was
    posted 4 times (retried as unreachable). Webhooks never redirect: one POST, failed."""
    http_server.routes["/post-redirect"] = Route(status=301, headers={"Location": location})
    http_server.routes["/landing"] = Route(b"<html>welcome</html>")
    config = config_with_hook(
        make_config, http_server.url("/post-redirect"), size=3, extra="ranking: {embeddings: off}\n"
    )
    pipeline.fetch_all(store, config, now=NOW)
    report = pipeline.send_due(store, config, now=NOW)
    reason = (
        f"Slack webhook answered HTTP 301 (a redirect to {shown.format(port=http_server.port)}): "
        "webhooks are not redirected; check the URL"
    )
    assert [(line.status, line.detail) for line in report.lines] == [("failed", reason)]
    assert [(m, p) for m, p, _, _ in http_server.requests] == [("POST", "/post-redirect")]
    row = store.last_delivery("team")
    assert (row["state"], row["error"]) == ("failed", reason)
    assert "s3cretWebhookPathXyz" not in str(row)


def test_a_200_that_is_not_slacks_ok_is_sent_with_a_warning(
    store, make_config, http_server, caplog
):
    """Slack (and Mattermost) answer 'ok'; other Slack-compatible receivers answer JSON, so
    another body is no failure, but it is worth a warning: a proxy's login page answers 200."""
    http_server.routes["/hook"] = Route(b"<html><body>Sign in to continue</body></html>")
    http_server.routes["/real"] = Route(b"ok")
    config = config_with_hook(
        make_config,
        http_server.url("/hook"),
        size=3,
        extra=(
            f"  - id: ops\n    slack_webhook: {http_server.url('/real')}\n"
            "    digest_size: 3\n    digest_days: daily\nranking: {embeddings: off}\n"
        ),
    )
    pipeline.fetch_all(store, config, now=NOW)
    with caplog.at_level("WARNING", logger="paperwire"):
        report = pipeline.send_due(store, config, now=NOW)
    assert sorted((line.subscriber_id, line.status) for line in report.lines) == [
        ("ops", "sent"),
        ("team", "sent"),
    ]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "Slack webhook of team answered HTTP 200 with '<html><body>Sign in to continue</body></html>', "
        "not Slack's 'ok'; counted as sent (if that is a proxy's or login page, nothing "
        "arrived: check the URL)"
    ]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("status", [200, 400])
def test_a_huge_answer_is_read_no_further_than_a_small_cap(store, make_config, status):
    """A webhook answering 100 MB (2 GB in the report: 4.45 GB of memory) is read no further
    than slack.MAX_ANSWER: the decision needs the status and the first bytes."""
    from . import hostile
    from .conftest import free_port

    state = hostile.Hostile(port=free_port(), huge_mb=100)
    with hostile.serving(state):
        config = config_with_hook(
            make_config, state.url(f"/huge/{status}"), size=3, extra="ranking: {embeddings: off}\n"
        )
        pipeline.fetch_all(store, config, now=NOW)
        report = pipeline.send_due(store, config, now=NOW)
        time.sleep(0.2)  # the server's last write fails once the client has hung up
    [line] = report.lines
    if status == 200:
        assert line.status == "sent"
    else:
        assert line.status == "failed"
        assert line.detail.startswith("Slack webhook refused the message: HTTP 400 <html>xxx")
        assert len(line.detail) < 300
    assert len(state.posts) == 1
    # what the kernel's socket buffers took, at most; the whole answer is 100 MB
    assert state.huge_sent < 32 << 20, state.huge_sent


@contextlib.contextmanager
def _fetched_for_a_hostile_hook(store, make_config, path: str):
    """A reader whose Slack webhook is ``path`` of a misbehaving server (tests/hostile.py),
    3 papers a digest, the feeds fetched: (the server's state, the config) while it serves."""
    from . import hostile
    from .conftest import free_port

    state = hostile.Hostile(port=free_port())
    with hostile.serving(state):
        config = config_with_hook(
            make_config,
            state.url(path),
            size=3,
            extra="sender: {retry_backoff: 0.05}\nranking: {embeddings: off}\n",
        )
        pipeline.fetch_all(store, config, now=NOW)
        yield state, config


def test_a_webhook_that_hangs_up_after_the_post_is_maybe_delivered_not_posted_again(
    store, make_config
):
    """The post went out whole and the line dropped before any answer: it may have arrived
    (Slack posted it, a proxy in front timed out), as e-mail's line dropped after the message
    is. It was retried at once as a webhook out of reach: four posts in one run, and again on
    every run after a back-off."""
    with _fetched_for_a_hostile_hook(store, make_config, "/hangup/hook") as (state, config):
        [line] = pipeline.send_due(store, config, now=NOW).lines
        posted = len(state.posts)
    assert posted == 1
    assert (line.status, line.detail) == (
        "retry",
        "maybe delivered: Slack webhook: the line dropped after the message was sent, before "
        "any answer (RemoteProtocolError); it may have arrived; sent again after "
        "2026-11-23 12:05 UTC",
    )
    row = store.last_delivery("team")
    assert (row["state"], row["maybe_sent"]) == ("pending", 1)


def test_a_webhook_that_answers_200_and_drops_the_line_is_sent_not_maybe_delivered(
    store, make_config
):
    """Slack answered 200 (it posted the message) and the line dropped within the answer's
    body: that read as 'the line dropped after the message was sent, before any answer; it may
    have arrived', and the message was posted again after the back-off, a second copy in the
    channel. The status came: it decides, and the digest is sent."""
    with _fetched_for_a_hostile_hook(store, make_config, "/cutok/hook") as (state, config):
        [line] = pipeline.send_due(store, config, now=NOW).lines
        again = pipeline.send_due(store, config, now=NOW + dt.timedelta(hours=1)).lines
    assert (line.status, line.detail) == ("sent", "3 papers to Slack (1 message(s))")
    assert [entry.status for entry in again] == ["not-due"]
    assert len(state.posts) == 1
    assert store.last_delivery("team")["state"] == "sent"


def test_a_webhook_whose_certificate_is_not_trusted_says_so(store, make_config):
    """A self-hosted Slack-compatible server (Mattermost, Rocket.Chat) with a certificate the
    machine does not trust read 'Slack webhook unreachable: ConnectError' for three and a half
    hours of tries, in `send` and `status`: nothing said it was the certificate."""
    from . import hostile
    from .conftest import _server_tls_context, free_port

    tls = _server_tls_context()  # a CA the client does not know
    with hostile.serving(hostile.Hostile(port=free_port()), tls=tls) as state:
        hook = state.url("/services/T/B/x").replace("http://", "https://")
        config = config_with_hook(
            make_config,
            hook,
            size=3,
            extra="sender: {retry_backoff: 0.05}\nranking: {embeddings: off}\n",
        )
        pipeline.fetch_all(store, config, now=NOW)
        [line] = pipeline.send_due(store, config, now=NOW).lines
    assert (line.status, line.detail) == (
        "retry",
        "Slack webhook unreachable: ConnectError: TLS failed: certificate verify failed: "
        "unable to get local issuer certificate; tried again after 2026-11-23 12:05 UTC",
    )


def test_a_section_cut_short_keeps_its_link_its_bold_and_why(store, make_config, http_server):
    """The section was cut short after escaping: a title of 900 '&' (each '&amp;' in mrkdwn)
    left "*<http://…|1. KV cache compression…" with the link and the bold never closed and the
    authors, "Why" and abstract gone (found in review). Each part is cut short as text now."""
    http_server.routes["/hook"] = Route(b"ok")
    config = config_with_hook(make_config, http_server.url("/hook"), size=1)
    paper = Paper(
        "2501.00010", "KV cache compression for speculative decoding " + "&" * 900,
        abstract="We compress the cache. " * 40, authors=["Ada Lovelace"],
        url="https://arxiv.org/abs/2501.00010", source="t",
    )  # fmt: skip
    store.add_papers([paper], now=NOW)
    pipeline.send_due(store, config, now=NOW)
    [payload] = payloads(http_server)
    check_limits(payload)
    text = payload["blocks"][1]["text"]["text"]
    head, meta, why, summary = text.split("\n")
    assert re.fullmatch(r"\*<https://arxiv\.org/abs/2501\.00010\|1\. [^<>|]+>\*", head), head
    assert why.startswith("_Why: ") and why.endswith("_") and len(why) > 8
    assert summary.startswith("We compress the cache.")
    # every '&' is a whole entity: none was cut in two
    assert not re.search(r"&(?!amp;|lt;|gt;)", text), text
    assert meta


def test_an_alert_is_not_numbered_and_a_post_without_authors_has_no_empty_line():
    """In Slack an alert's one paper read "1. …" (its e-mail is not numbered), and a blog post
    with no authors left an empty line under its title (found in review)."""
    from paperwire.deliver.slack import digest_blocks

    paper = {
        "paper_id": "lab-blog#8", "number": 1, "title": "KV cache notes", "authors": [],
        "reasons": ["about “KV cache”"], "abstract": "Notes on caches.",
        "url": "https://lab.example/posts/8", "up_url": "http://127.0.0.1:8000/v/a",
        "down_url": "http://127.0.0.1:8000/v/b",
    }  # fmt: skip
    links = {"profile_url": "http://x/p", "feed_url": "http://x/f", "unsubscribe_url": "http://x/u"}
    for kind, title in (("alert", "KV cache notes"), ("digest", "1. KV cache notes")):
        [blocks] = digest_blocks({"kind": kind, "period": "2026-11-23", "papers": [paper], **links})
        text = blocks[1]["text"]["text"]
        assert text.split("\n") == [
            f"*<https://lab.example/posts/8|{title}>*",
            "_Why: about “KV cache”_",
            "Notes on caches.",
        ]


@pytest.mark.parametrize(
    ("title", "url", "pdf_url"),
    [
        # links of 2,000 characters (sources.MAX_URL) go before the text does
        ("Sparse attention", "https://x.org/" + "a" * 1980, "https://x.org/" + "b&" * 990),
        # one long word, or a script without spaces: cut where it must, not to "1…"
        ("注意力机制的稀疏化" * 400, "https://x.org/p", ""),
    ],
)
def test_a_long_section_gives_up_its_links_before_its_text(title, url, pdf_url):
    from paperwire.deliver.slack import digest_blocks

    paper = {
        "paper_id": "p1", "number": 1, "title": title, "authors": ["Ada Lovelace"],
        "reasons": ["about “sparse attention”"], "abstract": "We sparsify attention. " * 20,
        "url": url, "pdf_url": pdf_url, "up_url": "http://127.0.0.1:8000/v/a",
        "down_url": "http://127.0.0.1:8000/v/b",
    }  # fmt: skip
    links = {"profile_url": "http://x/p", "feed_url": "http://x/f", "unsubscribe_url": "http://x/u"}
    [blocks] = digest_blocks({"kind": "digest", "period": "2026-11-23", "papers": [paper], **links})
    text = blocks[1]["text"]["text"]
    assert len(text) <= MAX_SECTION
    head, meta, why, summary = text.split("\n")
    assert head.startswith("*<https://x.org/") and head.endswith(">*")
    label = head.split("|", 1)[1][:-2]
    assert label == "1. " + title or (label.startswith("1. " + title[:20]) and len(label) > 100)
    assert meta.startswith("Ada Lovelace")
    assert why == "_Why: about “sparse attention”_"
    assert summary.startswith("We sparsify attention.")
