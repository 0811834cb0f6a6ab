"""More channels through Apprise, against real local HTTP servers: Apprise's json:// target and
Mattermost's self-hosted webhook form (mmost://127.0.0.1:PORT/TOKEN), through the real ledger."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from paperwire import pipeline
from paperwire.cli import cli
from paperwire.deliver.apprise import channel_id, split_messages
from paperwire.paper import Paper
from paperwire.sources import parse_document
from paperwire.store import Store

from .conftest import HttpServer, Route, environ_without_paperwire

NOW = dt.datetime(2026, 6, 12, 9, 0, tzinfo=dt.UTC)
FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "abcdefghijklmnop1234"  # Mattermost's webhook token: a secret


def config_text(port: int, extra: str = "") -> str:
    return f"""
secret: s3cret-signing-key
subscribers:
  - id: ada
    email: ada@example.org
    notify:
      - "json://127.0.0.1:{port}/notify"
      - "mmost://127.0.0.1:{port}/{TOKEN}"
{extra}"""


def stocked(db: Path) -> Store:
    store = Store(db)
    papers, _ = parse_document((FIXTURES / "hf_daily_papers_extras.json").read_bytes(), source="hf")
    store.add_papers(papers, now=NOW - dt.timedelta(hours=2))
    return store


def posts(server: HttpServer, path: str) -> list[bytes]:
    return [body for method, p, _, body in server.requests if method == "POST" and p == path]


def test_each_url_gets_the_digest_once_formatted_for_its_service(
    http_server: HttpServer, make_config, tmp_path: Path
):
    http_server.routes["/notify"] = Route(b"{}")
    http_server.routes[f"/hooks/{TOKEN}"] = Route(b"ok")
    config = make_config(config_text(http_server.port))
    with stocked(tmp_path / "pw.db") as store:
        report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
        again = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
        ledger = {d["channel"]: d["state"] for d in store.deliveries("ada")}
    assert sorted(line.detail for line in report.lines) == [
        "3 papers to json (1 message(s))",
        "3 papers to mmost (1 message(s))",
        f"3 papers → {tmp_path / 'outbox' / '2026-06-12-ada-digest.eml'}",
    ]
    assert [line.status for line in again.lines] == ["not-due"]
    json_channel = channel_id(f"json://127.0.0.1:{http_server.port}/notify")
    assert ledger == {"email": "sent", json_channel: "sent", channel_id(
        f"mmost://127.0.0.1:{http_server.port}/{TOKEN}"): "sent"}  # fmt: skip
    assert TOKEN not in json.dumps(ledger)  # the ledger names a channel by scheme and hash
    # json:// renders Markdown: links, bold TL;DR, 👍/👎 links
    [body] = posts(http_server, "/notify")
    message = json.loads(body)
    assert message["title"].startswith("Paperwire 2026-06-12: ")
    text = message["message"]
    assert "[Code](https://github.com/jayoohwang1/webchallenger)" in text
    assert "**TL;DR** WebChallenger presents a web agent framework" in text
    assert text.count("[👍 More like this](http://127.0.0.1:8000/v/") == 3
    # Mattermost (plain text in Apprise): bare URLs, no Markdown
    [hook] = posts(http_server, f"/hooks/{TOKEN}")
    plain = json.loads(hook)["text"]
    assert "Code: https://github.com/jayoohwang1/webchallenger" in plain
    assert "TL;DR: WebChallenger presents" in plain
    assert "**" not in plain and "](" not in plain


def test_a_failing_service_stays_due_and_status_says_so(
    http_server: HttpServer, make_config, tmp_path: Path
):
    http_server.routes["/notify"] = Route(b"{}")
    http_server.routes[f"/hooks/{TOKEN}"] = Route(b"down", status=500)
    text = config_text(http_server.port)
    config = make_config(text)
    with stocked(tmp_path / "pw.db") as store:
        report = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
        failed = [line for line in report.lines if line.status == "retry"]
        assert len(failed) == 1
        assert failed[0].detail.startswith("notify mmost://…: message 1 of 1 failed: ")
        assert TOKEN not in failed[0].detail
        pending = store.unsent_deliveries("ada")
        assert [d["channel"].split(":")[1] for d in pending] == ["mmost"]
        # the service is back: the next run sends the pending digest, and nothing twice
        http_server.routes[f"/hooks/{TOKEN}"] = Route(b"ok")
        later = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=5))
    assert [(line.status, line.detail) for line in later.lines] == [
        ("sent", "3 papers to mmost (1 message(s))")
    ]
    assert len(posts(http_server, "/notify")) == 1


def test_status_shows_a_failed_channel(http_server: HttpServer, tmp_path: Path):
    # (a URL Apprise cannot read no longer gets this far: the config refuses it at load)
    http_server.routes[f"/hooks/{TOKEN}"] = Route(b"down", status=500)
    (tmp_path / "subscribers.yaml").write_text(
        "secret: s3cret-signing-key\nsubscribers:\n  - id: ada\n"
        f"    notify: ['mmost://127.0.0.1:{http_server.port}/{TOKEN}']\n"
    )
    with stocked(tmp_path / "paperwire.db") as store:
        from paperwire.config import load_config

        report = pipeline.send_due(store, load_config(tmp_path / "subscribers.yaml"), now=NOW)
    [line] = report.lines
    assert line.status == "retry"
    assert line.detail.startswith("notify mmost://…: message 1 of 1 failed: ")
    result = CliRunner().invoke(cli, ["status"])
    assert "last digest 2026-06-12 (pending: notify mmost://…: message 1 of 1 failed: " in (
        result.output
    )
    assert TOKEN not in result.output


def test_split_between_papers_within_the_limit():
    blocks = ["a" * 40, "b" * 40, "c" * 40]
    assert split_messages(blocks, "footer", 90) == [
        "a" * 40 + "\n\n" + "b" * 40,
        "c" * 40 + "\n\nfooter",
    ]
    assert all(len(m) <= 30 for m in split_messages(["x " * 40], "f", 30))


def ten_more() -> list[Paper]:
    """Ten long papers: a digest Mattermost (4000 characters a message) gets in several parts."""
    return [
        Paper(
            f"2606.200{n:02d}",
            f"Web agents that talk: multi-agent communication study {n}",
            "We study web agents and multi-agent communication protocols. " * 8,
            authors=["A. Author", "B. Author"],
            url=f"https://arxiv.org/abs/2606.200{n:02d}",
            source="test",
        )
        for n in range(10)
    ]


def test_a_split_digest_resumes_at_the_first_message_not_accepted(
    http_server: HttpServer, make_config, tmp_path: Path
):
    """Mattermost's webhook (4000 characters a message) gets a 10-paper digest in parts; the
    server fails the 2nd part once: the next run posts from the 2nd on, never the 1st again."""
    hook = f"/hooks/{TOKEN}"
    http_server.routes[hook] = [Route(b"ok"), Route(b"down", status=500), Route(b"ok")]
    config = make_config(
        "secret: s3cret-signing-key\nsubscribers:\n  - id: ada\n"
        f"    notify: ['mmost://127.0.0.1:{http_server.port}/{TOKEN}']\n"
    )
    with stocked(tmp_path / "pw.db") as store:
        store.add_papers(ten_more(), now=NOW - dt.timedelta(hours=2))
        first = pipeline.send_due(store, config, now=NOW)
        [pending] = store.unsent_deliveries("ada")
        later = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=5))
        again = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=10))
    bodies = [json.loads(body)["text"] for body in posts(http_server, hook)]
    total = len(bodies) - 1  # the 2nd message was posted twice: refused, then accepted
    assert total >= 2 and all(len(text) <= 4000 for text in bodies)
    [line] = first.lines
    assert line.status == "retry"
    assert line.detail == (
        f"notify mmost://…: message 2 of {total} failed: Failed to send Mattermost notification "
        "to channel None: Internal server error., error=500.; tried again after 2026-06-12 09:05 UTC"
    )
    assert TOKEN not in line.detail
    assert pending["parts_sent"] == 1
    assert [(line.status, line.detail) for line in later.lines] == [
        ("sent", f"10 papers to mmost ({total} message(s), resumed at message 2)")
    ]
    # the refused message was sent again (its vote links signed anew), the accepted one was not
    unsigned = [re.sub(r"/(v|unsubscribe|feed|profile)/[\w.-]+", r"/\1/…", text) for text in bodies]
    assert unsigned[1] == unsigned[2] and unsigned[0] not in unsigned[1:]
    assert bodies[0].startswith("Paperwire 2026-06-12: ")  # no titles: the subject leads
    assert "Unsubscribe: " in bodies[-1] and "Unsubscribe: " not in bodies[0]
    assert [line.status for line in again.lines] == ["not-due"]


# -- issue 26: a slow service gets a digest once, not on every run ---------------------------


def wait_for_late_answers(seconds: float = 5.0) -> None:
    """Until every Apprise call given up on at its deadline has ended (its thread is left to)."""
    import time

    from paperwire.deadline import running_late

    end = time.monotonic() + seconds
    while running_late() and time.monotonic() < end:
        time.sleep(0.02)
    assert not running_late()


def test_a_slow_service_is_maybe_delivered_and_retried_after_a_back_off_not_every_run(
    http_server: HttpServer, make_config, tmp_path: Path
):
    """The endpoint takes the POST and answers (a 500) after 1.6 s. Apprise gave up after its
    own 4 s read timeout and the digest stayed due: every daemon tick (30 s) posted it again.
    Now the post ends at sender.timeout as "maybe delivered", and is sent again only after 5
    minutes (once the call given up on has ended: it was not accepted)."""
    import time

    http_server.routes["/slow"] = [Route(b"down", status=500, delay=1.6), Route(b"{}")]
    config = make_config(  # what is timed is the post, not loading the sentence encoder
        "ranking: {embeddings: off}\n"
        "secret: s3cret-signing-key\nsender: {timeout: 1}\nsubscribers:\n  - id: ada\n"
        '    interests: "web agents, multi-agent communication"\n'
        f"    notify: ['json://127.0.0.1:{http_server.port}/slow']\n"
    )
    with stocked(tmp_path / "pw.db") as store:
        began = time.monotonic()
        first = pipeline.send_due(store, config, now=NOW)
        took = time.monotonic() - began
        tick = pipeline.send_due(store, config, now=NOW + dt.timedelta(seconds=30))
        tick_posts = len(posts(http_server, "/slow"))
        wait_for_late_answers()
        later = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=6))
        row = store.deliveries("ada")[0]
    assert took < 2.5, took
    [line] = first.lines
    assert (line.status, line.detail) == (
        "retry",
        "maybe delivered: notify json://…: message 1 of 1: no answer within 1 s "
        "(sender.timeout); it may have arrived; sent again after 2026-06-12 09:05 UTC",
    )
    assert [(line.status, line.detail) for line in tick.lines] == [("waiting", line.detail)]
    assert tick_posts == 1  # not posted again on the next tick
    [sent] = later.lines  # the digest as composed (a pick nothing explains is left out)
    assert sent.status == "sent"
    assert re.fullmatch(r"[1-3] papers? to json \(1 message\(s\)\)", sent.detail), sent.detail
    assert len(posts(http_server, "/slow")) == 2
    assert (row["state"], row["maybe_sent"]) == ("sent", 1)


def test_a_service_that_is_maybe_delivered_three_times_is_not_sent_again(
    http_server: HttpServer, make_config, tmp_path: Path
):
    http_server.routes["/slow"] = Route(b"down", status=500, delay=0.8)
    config = make_config(
        "secret: s3cret-signing-key\nsender: {timeout: 0.3}\nsubscribers:\n  - id: ada\n"
        '    interests: "web agents"\n'
        f"    notify: ['json://127.0.0.1:{http_server.port}/slow']\n"
    )
    runs = []
    with stocked(tmp_path / "pw.db") as store:
        for minutes in (0, 6, 30, 200):
            runs.append(pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=minutes)))
            wait_for_late_answers()
    statuses = [[line.status for line in run.lines] for run in runs]
    assert statuses == [["retry"], ["retry"], ["failed"], ["not-due"]]
    assert runs[2].lines[0].detail.startswith("maybe delivered 3 times: notify json://…: ")
    assert len(posts(http_server, "/slow")) == 3


# -- an Apprise call given up on at its deadline -----------------------------------------------


def late_config(port: int, timeout: float) -> str:
    """Ada, on a json:// endpoint at /late, each message given ``timeout`` seconds."""
    return (
        "ranking: {embeddings: off}\n"
        f"secret: s3cret-signing-key\nsender: {{timeout: {timeout}}}\nsubscribers:\n  - id: ada\n"
        '    interests: "web agents"\n'
        f"    notify: ['json://127.0.0.1:{port}/late']\n"
    )


def test_an_answer_after_the_deadline_is_recorded_and_the_digest_never_sent_twice(
    http_server: HttpServer, make_config, tmp_path: Path
):
    """Apprise's request cannot be cancelled: at the deadline its thread is left running. It
    used to be forgotten: the next run after the back-off posted the digest again, while the
    first post was still waiting, or after it had been accepted. Now no second try starts
    while the first runs, and an acceptance that comes late is recorded as sent."""
    import threading
    import time

    http_server.routes["/late"] = Route(b"{}", delay=1.2)  # accepted, after the deadline
    config = make_config(late_config(http_server.port, 0.4))
    with stocked(tmp_path / "pw.db") as store:
        began = time.monotonic()
        first = pipeline.send_due(store, config, now=NOW)
        took = time.monotonic() - began
        # the abandoned call holds up neither this run nor the process's exit
        waiting = [t for t in threading.enumerate() if t.name.startswith("notify json")]
        retried = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=6))
        wait_for_late_answers()
        row = store.deliveries("ada")[0]
        later = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=30))
    assert took < 1.2, took
    assert waiting and all(t.daemon for t in waiting)
    assert [line.status for line in first.lines] == ["retry"]
    [line] = retried.lines
    assert (line.status, line.detail.split("; tried again")[0]) == (
        "retry",
        "notify json://…: not sent, an earlier try is still waiting for an answer",
    )
    assert (row["state"], row["error"], row["parts_sent"]) == ("sent", None, 1)
    assert [line.status for line in later.lines] == ["not-due"]
    assert len(posts(http_server, "/late")) == 1


def test_calls_left_running_are_bounded():
    import threading

    from paperwire.deadline import MAX_ABANDONED, StillRunning, blocking_call, running_late

    release = threading.Event()
    try:
        for n in range(MAX_ABANDONED):
            with pytest.raises(TimeoutError):
                blocking_call(lambda: release.wait(5), 0.01, name="stuck", key=f"k{n}")
        with pytest.raises(StillRunning) as same:
            blocking_call(lambda: None, 1, name="again", key="k0")
        with pytest.raises(StillRunning) as full:
            blocking_call(lambda: None, 1, name="another", key="new")
    finally:
        release.set()
    wait_for_late_answers()
    assert same.value.same_key and not full.value.same_key
    assert running_late() == 0
    assert blocking_call(lambda: 7, 1, name="now", key="k0") == 7


def test_a_refusal_fails_at_once_and_an_outage_waits_out_a_back_off(
    http_server: HttpServer, make_config, tmp_path: Path
):
    """Every failure was "stays due", posted again on every daemon tick: a revoked hook (403)
    forever, a 500 every 30 s. Now a 4xx refusal fails at once, with the service's one-line
    answer, and a 5xx is tried again only after the back-off."""
    http_server.routes["/notify"] = Route(b"down", status=500)
    http_server.routes[f"/hooks/{TOKEN}"] = Route(b"revoked", status=403)
    config = make_config(config_text(http_server.port))
    with stocked(tmp_path / "pw.db") as store:
        first = pipeline.send_due(store, config, now=NOW, outbox=tmp_path / "outbox")
        tick = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=1))
    said = {line.detail.split(":")[0]: (line.status, line.detail) for line in first.lines}
    assert said["notify mmost"][0] == "failed"
    assert said["notify mmost"][1].startswith("notify mmost://…: message 1 of 1 failed: ")
    assert "error=403" in said["notify mmost"][1] and "\n" not in said["notify mmost"][1]
    assert said["notify json"] == (
        "retry",
        "notify json://…: message 1 of 1 failed: Failed to send JSON POST notification: "
        "Internal server error., error=500.; tried again after 2026-06-12 09:05 UTC",
    )
    assert [line.status for line in tick.lines] == ["waiting"]
    assert (
        len(posts(http_server, "/notify")) == 1 and len(posts(http_server, f"/hooks/{TOKEN}")) == 1
    )


def test_a_redirect_is_a_failure_never_followed(
    http_server: HttpServer, make_config, tmp_path: Path
):
    """Apprise's requests followed redirects: a 301 or 302 turned the POST into a GET of
    the Location, answered 200, and the digest counted as sent with nothing delivered (a 307
    re-posted it, token and all, wherever the Location said). Now a 3xx is not followed and
    the delivery fails for good, naming the service and the status, as a Slack webhook's
    redirect does; never the URL, which holds the token."""
    landing = {"Location": "/landing?token=elsewhere"}
    for code in (301, 302, 307):
        http_server.routes[f"/r{code}/{TOKEN}"] = Route(b"", status=code, headers=landing)
    http_server.routes["/landing?token=elsewhere"] = Route(b"{}")
    urls = "".join(
        f"      - json://127.0.0.1:{http_server.port}/r{code}/{TOKEN}\n" for code in (301, 302, 307)
    )
    config = make_config(
        "ranking: {embeddings: off}\nsecret: s3cret-signing-key\nsubscribers:\n"
        f'  - id: ada\n    interests: "web agents"\n    notify:\n{urls}'
    )
    with stocked(tmp_path / "pw.db") as store:
        report = pipeline.send_due(store, config, now=NOW)
        ledger = sorted(d["state"] for d in store.deliveries("ada"))
    assert ledger == ["failed"] * 3
    assert sorted(line.detail for line in report.lines) == [
        f"notify json://…: message 1 of 1 failed: the service answered HTTP {code}, a "
        "redirect; not followed (a followed redirect can turn the message into a GET that "
        "delivers nothing): check the URL"
        for code in (301, 302, 307)
    ]
    assert [(method, path) for method, path, _, _ in http_server.requests] == [
        ("POST", f"/r{code}/{TOKEN}") for code in (301, 302, 307)
    ]


# -- review fixes: a try never made is not a try, and never a second send --------------------


def test_a_try_still_running_is_not_resent_even_if_it_ends_in_the_gap(
    http_server: HttpServer, make_config, tmp_path: Path, monkeypatch
):
    """While the previous try of a delivery still waits for its answer, the next run used to
    skip re-reading the row and call Apprise with the old progress: if the earlier try was
    accepted in between, the message was posted again. Now no call is made at all: the row
    stays pending, not counted as a try, and the late acceptance makes it sent."""
    from paperwire.deliver import dispatch

    http_server.routes["/late"] = Route(b"{}", delay=1.0)  # accepted, after the deadline
    config = make_config(late_config(http_server.port, 0.3))
    real_context = dispatch.messages.context

    def context_after_the_late_answer(*args, **kwargs):  # the gap, made wide
        wait_for_late_answers()
        return real_context(*args, **kwargs)

    with stocked(tmp_path / "pw.db") as store:
        pipeline.send_due(store, config, now=NOW)
        tried = store.deliveries("ada")[0]
        monkeypatch.setattr(dispatch.messages, "context", context_after_the_late_answer)
        retried = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=6))
        wait_for_late_answers()
        row = store.deliveries("ada")[0]
    [line] = retried.lines
    assert line.status == "retry"
    assert "not sent, an earlier try is still waiting for an answer" in line.detail
    assert len(posts(http_server, "/late")) == 1
    assert (row["state"], row["attempts"], row["maybe_sent"]) == (
        "sent",
        tried["attempts"],
        tried["maybe_sent"],
    )


def test_a_call_not_made_because_eight_are_running_is_not_a_try(
    http_server: HttpServer, make_config, tmp_path: Path
):
    import threading

    from paperwire.deadline import MAX_ABANDONED, blocking_call

    http_server.routes["/notify"] = Route(b"{}")
    config = make_config(
        "secret: s3cret-signing-key\nsubscribers:\n  - id: ada\n"
        f"    notify: ['json://127.0.0.1:{http_server.port}/notify']\n"
    )
    release = threading.Event()
    try:
        for n in range(MAX_ABANDONED):
            with pytest.raises(TimeoutError):
                blocking_call(lambda: release.wait(5), 0.01, name="stuck", key=f"busy{n}")
        with stocked(tmp_path / "pw.db") as store:
            report = pipeline.send_due(store, config, now=NOW)
            row = store.deliveries("ada")[0]
    finally:
        release.set()
    wait_for_late_answers()
    [line] = report.lines
    assert line.status == "retry"
    assert line.detail.startswith(
        "notify json://…: message 1 of 1: not sent, too many earlier messages still wait for "
        "answers; tried again after 2026-06-12 09:05 UTC"
    )
    assert (row["state"], row["attempts"], row["maybe_sent"]) == ("pending", 0, 0)
    assert row["retry_at"] and not posts(http_server, "/notify")


def test_a_run_budget_spent_midway_leaves_the_rest_of_a_split_digest_untried(
    http_server: HttpServer, make_config, tmp_path: Path
):
    """The run's budget was checked per digest only: the 2nd message of a split digest was
    still posted with the few tenths of a second left, and ended "maybe delivered"."""
    hook = f"/hooks/{TOKEN}"
    http_server.routes[hook] = Route(b"ok", delay=1.3)
    config = make_config(
        "ranking: {embeddings: off}\n"
        "secret: s3cret-signing-key\nsender: {timeout: 5, run_budget: 2}\nsubscribers:\n  - id: ada\n"
        f"    notify: ['mmost://127.0.0.1:{http_server.port}/{TOKEN}']\n"
    )
    with stocked(tmp_path / "pw.db") as store:
        store.add_papers(ten_more(), now=NOW - dt.timedelta(hours=2))
        report = pipeline.send_due(store, config, now=NOW)
        row = store.deliveries("ada")[0]
    [line] = report.lines
    assert line.status == "retry" and "sender.run_budget" in line.detail, line.detail
    assert len(posts(http_server, hook)) == 1
    assert (row["state"], row["parts_sent"], row["attempts"], row["maybe_sent"]) == (
        "pending",
        1,
        0,
        0,
    )
    assert row["retry_at"] is None  # the next run sends the rest


def test_a_call_sees_only_its_own_apprise_warnings(http_server: HttpServer):
    """Apprise's LogCapture listens on the process-wide ``apprise`` logger: a call that failed
    without an HTTP status read another thread's "error=404" as its own refusal (failed for
    good) while both were in flight."""
    import socket
    import threading
    import time

    from paperwire.deliver import apprise as apprise_mod
    from paperwire.errors import DeliveryError

    from .conftest import free_port

    http_server.routes["/gone"] = Route(b"no", status=404, delay=0.3)
    listener = socket.create_server(("127.0.0.1", free_port()))

    def hang_up() -> None:  # reads the request, then closes without an answer
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            time.sleep(0.8)

    threading.Thread(target=hang_up, daemon=True).start()
    ctx = {
        "papers": [
            {
                "number": 1,
                "title": "T",
                "url": "https://arxiv.org/abs/1",
                "authors": ["A. B"],
                "reasons": ["r"],
                "abstract": "a",
                "up_url": "u",
                "down_url": "d",
            }  # fmt: skip
        ],
        "profile_url": "p",
        "feed_url": "f",
        "unsubscribe_url": "x",
    }
    errors: dict[str, DeliveryError] = {}

    def send(name: str, url: str) -> None:
        try:
            apprise_mod.send_digest(url, ctx, "S", deadline=3)
        except DeliveryError as exc:
            errors[name] = exc

    port = listener.getsockname()[1]
    threads = [
        threading.Thread(target=send, args=("hung", f"json://127.0.0.1:{port}/x")),
        threading.Thread(target=send, args=("gone", f"json://127.0.0.1:{http_server.port}/gone")),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    finally:
        listener.close()
    assert errors["gone"].permanent and "error=404" in str(errors["gone"])
    assert not errors["hung"].permanent, str(errors["hung"])
    assert "error=404" not in str(errors["hung"])


def test_a_late_acceptance_is_recorded_even_if_the_first_write_fails(
    http_server: HttpServer, make_config, tmp_path: Path, monkeypatch
):
    """Recording a message accepted after its deadline runs in the thread left behind; if that
    write failed (the database locked too long), the key was freed and the acceptance lost:
    the next run posted the message again. Now it is tried again after a short wait. (The
    fault is injected: a lock held past the 30 s busy timeout is too slow for a test.)"""
    from paperwire.deliver import dispatch
    from paperwire.errors import StoreError

    http_server.routes["/late"] = Route(b"{}", delay=0.8)  # accepted, after the deadline
    config = make_config(late_config(http_server.port, 0.3))
    real = Store.record_late_part
    failures = [StoreError("pw.db: the database stayed locked for 30 s")]

    def locked_once(self, *args, **kwargs):
        if failures:
            raise failures.pop()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "record_late_part", locked_once)
    monkeypatch.setattr(dispatch, "LATE_RECORD_WAITS", (0.1,), raising=False)
    with stocked(tmp_path / "pw.db") as store:
        pipeline.send_due(store, config, now=NOW)
        wait_for_late_answers()
        row = store.deliveries("ada")[0]
        later = pipeline.send_due(store, config, now=NOW + dt.timedelta(minutes=6))
    assert not failures
    assert (row["state"], row["parts_sent"]) == ("sent", 1)
    assert [line.status for line in later.lines] == ["not-due"]
    assert len(posts(http_server, "/late")) == 1


@pytest.mark.timeout(60)
def test_a_service_that_drips_its_answer_never_keeps_send_from_exiting(tmp_path: Path):
    """An endpoint that sends its headers, then a byte a second: each read succeeds, so
    Apprise's per-read timeout never trips. The digest was reported "maybe delivered" on time,
    but `paperwire send` never exited: Apprise sent from its own thread pool, whose threads the
    interpreter joins at exit. Now the call runs in paperwire's own daemon thread only."""
    import subprocess
    import sys
    import time

    from .test_daemon import DripServer

    drip = DripServer(every=0.5)
    try:
        (tmp_path / "subscribers.yaml").write_text(
            "ranking: {embeddings: off}\nsender: {timeout: 1}\nsubscribers:\n  - id: ada\n"
            '    interests: "web agents, multi-agent communication"\n'
            f"    notify: ['json://127.0.0.1:{drip.port}/notify']\n"
        )
        papers, _ = parse_document(
            (FIXTURES / "hf_daily_papers_extras.json").read_bytes(), source="hf"
        )
        with Store(tmp_path / "paperwire.db") as store:  # stored an hour ago: due today
            store.add_papers(papers, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        env = environ_without_paperwire()
        env["PAPERWIRE_SECRET"] = "s3cret-signing-key-4711"
        began = time.monotonic()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "paperwire", "send"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"send did not exit: {exc.stdout!r}")
        took = time.monotonic() - began
    finally:
        drip.close()
    assert drip.requests == 1
    assert "maybe delivered: notify json://…: message 1 of 1: no answer within 1 s" in result.stdout
    assert result.returncode == 1  # a delivery to retry
    assert took < 20, took


def test_a_stalled_service_host_gets_one_deadline_a_run(
    http_server: HttpServer, make_config, tmp_path: Path
):
    """Three readers' json:// URLs on one host that takes each post and answers after the
    deadline: the first waits its deadline, the others wait, untried, for the next run, and
    the reason names the service, never the URL (it holds the token)."""
    http_server.routes["/slow"] = Route(b"down", status=500, delay=1.6)
    readers = "".join(
        f'  - id: r{i}\n    interests: "web agents, multi-agent communication"\n'
        f"    notify: ['json://127.0.0.1:{http_server.port}/slow?token=t{i}']\n"
        for i in range(3)
    )
    config = make_config(
        "ranking: {embeddings: off}\n"
        f"secret: s3cret-signing-key\nsender: {{timeout: 1}}\nsubscribers:\n{readers}"
    )
    with stocked(tmp_path / "pw.db") as store:
        report = pipeline.send_due(store, config, now=NOW)
        tries = [store.deliveries(f"r{i}")[0]["attempts"] for i in range(3)]
    wait_for_late_answers()
    lines = {line.subscriber_id: (line.status, line.detail) for line in report.lines}
    assert lines["r0"][1].startswith("maybe delivered: notify json://…: ")
    waiting = (
        "not sent: the json:// service let an earlier delivery of this run reach its deadline "
        "(sender.timeout) unanswered; the next run tries again"
    )
    assert [lines["r1"], lines["r2"]] == [("retry", waiting)] * 2
    assert tries[1:] == [0, 0]
    assert len(posts(http_server, "/slow")) == 1


def test_readers_of_one_service_whose_url_host_is_their_own_token_share_its_stall():
    """``discord://ID/TOKEN``: the URL's "host" is each reader's webhook id, and every reader's
    message goes to discord.com. Keyed by that id, one stalled Discord cost each reader's
    message its whole deadline in turn, and the run's budget before any e-mail went out (found
    in review). A URL naming a host (a DNS name, an address) is keyed by it."""
    from types import SimpleNamespace

    from pydantic import SecretStr

    from paperwire.deliver import apprise as apprise_mod
    from paperwire.deliver.dispatch import _apprise_host

    def key(url: str) -> str:
        sub = SimpleNamespace(notify=[SecretStr(url)])
        return _apprise_host(SimpleNamespace(channel=apprise_mod.channel_id(url), sub=sub))[0]

    assert key("discord://111111/tokenA") == key("discord://222222/tokenB") == "discord://"
    assert key("tgram://123456:ABCdef/987") == key("tgram://654321:XYZabc/555")
    assert key("json://127.0.0.1:8080/a") == "json://127.0.0.1"
    assert key("json://hooks.example.org/a") != key("json://other.example.org/a")
    assert key("json://localhost/a") == "json://localhost"
