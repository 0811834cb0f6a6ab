"""Secrets stay secret: feed credentials and webhook URLs never reach stdout, stderr, the logs
(plain or JSON, ours or httpx's) or the SQLite file. Real processes, a real local server, and
the bytes of every file they leave behind are searched."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from paperwire.links import Signer
from paperwire.redact import MASK, RedactingFilter, redact, redact_url

from . import hostile
from .conftest import environ_without_paperwire, free_port

WEBHOOK_SECRET = "XyZ0webhook0Secret0Path"
SECRETS = [hostile.PASSWORD, hostile.TOKEN, WEBHOOK_SECRET]

CONFIG = """\
feeds:
  - url: "http://{user}:{password}@127.0.0.1:{port}/private"
  - url: "http://127.0.0.1:{port}/private-token?api_key={token}"
  - url: "http://{user}:{password}@127.0.0.1:{port}/drop"
subscribers:
  - id: team
    slack_webhook: "http://127.0.0.1:{port}/services/T01/B02/{webhook}"
    interests: "attention, quantised caches, speculative decoding"
    digest_days: daily
    digest_time: "00:00"
fetch_timeout_seconds: 1.5
"""


@pytest.fixture
def server() -> Iterator[hostile.Hostile]:
    with hostile.serving(hostile.Hostile(port=free_port())) as state:
        yield state


@pytest.fixture
def workdir(tmp_path: Path, server: hostile.Hostile) -> Path:
    (tmp_path / "subscribers.yaml").write_text(
        CONFIG.format(
            user=hostile.USER,
            password=hostile.PASSWORD,
            token=hostile.TOKEN,
            port=server.port,
            webhook=WEBHOOK_SECRET,
        )
    )
    return tmp_path


def _env() -> dict[str, str]:
    base = environ_without_paperwire()
    return {**base, "PAPERWIRE_SECRET": "signing-key-for-tests", "PYTHONUNBUFFERED": "1"}


def paperwire(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paperwire", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        timeout=60,
    )


def assert_no_secret(where: str, data: bytes) -> None:
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret!r} found in {where}"


def assert_no_secret_in_files(folder: Path) -> None:
    """Every file left behind: the database (and its -wal), the outbox, anything else."""
    for path in folder.rglob("*"):
        if path.is_file() and path.name != "subscribers.yaml":
            assert_no_secret(str(path), path.read_bytes())


def test_fetch_verbose_prints_and_stores_no_credentials(workdir, server):
    result = paperwire("-v", "fetch", cwd=workdir)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert f"http://***@127.0.0.1:{server.port}/private: 2 new, 0 already known" in out
    assert f"http://127.0.0.1:{server.port}/private-token?api_key=***: 1 new" in out
    assert (
        f"http://***@127.0.0.1:{server.port}/drop: error: broken response: peer closed connection"
        in out
    )
    err = result.stderr.decode()
    assert f'HTTP Request: GET http://***@127.0.0.1:{server.port}/private "HTTP/1.1 200' in err
    assert_no_secret("stdout", result.stdout)
    assert_no_secret("stderr", result.stderr)
    assert_no_secret_in_files(workdir)
    # the credentials were really sent, so the feed really needed them (the feeds are fetched
    # concurrently: the first request to arrive may be another feed's)
    private = [headers for path, headers in server.requests if path == "/private"]
    assert private and private[0]["Authorization"].startswith("Basic ")


def test_run_once_posts_to_the_webhook_and_logs_none_of_it(workdir, server):
    result = paperwire("-v", "run", "--once", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert [path for path, _ in server.posts] == [f"/services/T01/B02/{WEBHOOK_SECRET}"]
    err = result.stderr.decode()
    # not a Slack host, so it is the configured webhook's path that is masked, exactly
    assert f'HTTP Request: POST http://127.0.0.1:{server.port}/*** "HTTP/1.1 200' in err
    assert_no_secret("stdout", result.stdout)
    assert_no_secret("stderr", result.stderr)
    assert_no_secret_in_files(workdir)


def test_the_daemon_json_log_carries_no_secret(workdir, server):
    log = workdir / "daemon.log"
    with log.open("wb") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "paperwire", "-v", "run", "--log-json", "--no-web"],
            cwd=workdir,
            env=_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while b"fetch:" not in log.read_bytes() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=20)
    data = log.read_bytes()
    lines = [json.loads(line) for line in data.decode().splitlines()]
    messages = [line["message"] for line in lines]
    assert any(
        m.startswith(f"HTTP Request: GET http://***@127.0.0.1:{server.port}/private")
        for m in messages
    ), messages
    assert any(m.startswith("fetch http://***@127.0.0.1") for m in messages), messages
    assert_no_secret("the JSON log", data)
    assert_no_secret_in_files(workdir)


# -- the redaction rules themselves -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pa55@host.example/feed", "https://***@host.example/feed"),
        ("https://ghp_token123@host.example/feed", "https://***@host.example/feed"),
        (
            "https://host.example/rss?cat=cs.LG&api_key=k1&token=t2&access_token=t3",
            "https://host.example/rss?cat=cs.LG&api_key=***&token=***&access_token=***",
        ),
        ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/services/***"),
        ("https://chat.example/hooks/abcdef", "https://chat.example/hooks/***"),
        ("https://discord.com/api/webhooks/123/tok", "https://discord.com/api/webhooks/***"),
        (
            "https://export.arxiv.org/api/query?id_list=2309.06180&max_results=1",
            "https://export.arxiv.org/api/query?id_list=2309.06180&max_results=1",
        ),
        ("https://arxiv.org/abs/2401.12345v2", "https://arxiv.org/abs/2401.12345v2"),
        ("smtp://user:pa55@mail.example:587", "smtp://***@mail.example:587"),
        ("feeds/lab.xml", "feeds/lab.xml"),
        ("bundled:sample-daily-papers.xml", "bundled:sample-daily-papers.xml"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_finds_urls_inside_text():
    text = (
        'GET https://u:p@h.example/x?key=abc "200 OK", then https://hooks.slack.com/services/T/B/C'
    )
    assert redact(text) == (
        'GET https://***@h.example/x?key=*** "200 OK", then https://hooks.slack.com/services/***'
    )
    # a signed path in parentheses keeps its closing one; other paths are left as they are
    token = "eyJzIjoiYWRhIiwicCI6IjI1MDEuMDAwMDEiLCJhIjoidXAifQ.axSyyw.806Wyj"
    assert redact(f"(/v/{token}) and /home/v/notes") == "(/v/***) and /home/v/notes"
    # a token the line already leaves out (the web app's "POST /v/…: the client left ...") is
    # said as it is: once any command had installed the redaction, it read "/v/***... had"
    left = "POST /v/…: the client left before its request body had arrived"
    assert redact(left) == left


@contextlib.contextmanager
def filtered_log(name: str):
    """A logger whose records are kept, formatted, through the RedactingFilter."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, records
    finally:
        logger.removeHandler(handler)


def test_the_filter_redacts_arguments_and_tracebacks_of_any_logger():
    with filtered_log("thirdparty.test") as (logger, records):
        logger.warning("posting to %s (%d)", "https://hooks.slack.com/services/T/B/C", 3)
        try:
            raise ValueError("bad https://u:secretpw@h.example/")
        except ValueError:
            logger.exception("failed")
    assert records[0] == "posting to https://hooks.slack.com/services/*** (3)"
    assert records[1].startswith("failed\nTraceback")
    assert "secretpw" not in records[1] and "https://***@h.example/" in records[1]


def test_a_secret_split_by_a_control_character_is_still_masked():
    """The filter removes control characters and masks secrets: in that order, or a secret
    written with an escape inside it would pass the mask and be joined up again."""
    from paperwire import redact as redact_module

    redact_module.remember("s3cret-smtp-password")
    try:
        with filtered_log("thirdparty.split") as (logger, records):
            logger.warning(
                "relay said: s3cret-\x1b[0msmtp-password and %s", "s3cret-smtp\x07-password"
            )
    finally:
        redact_module._known.discard("s3cret-smtp-password")
    assert records == ["relay said: *** and ***"]


def test_a_remembered_secret_is_masked_percent_encoded_too():
    """A webhook's path came back inside another URL's query (a proxy's login page: "?return_to=
    https%3A%2F%2Fhooks…%2Fservices%2F…"), where the raw secret is not found."""
    from urllib.parse import quote

    from paperwire import redact as redact_module

    path = "services/T0AB12CD3/B0EF45GH6/xYzSeCrEtToKeN1234567890"
    before = set(redact_module._known)
    redact_module.remember(path)
    try:
        encoded = quote("https://hooks.example/" + path, safe="")
        lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)
        for text in (encoded, lower_hex, quote(path)):
            shown = redact_module.redact(f"went to https://sso.example/login?return_to={text} ok")
            assert "xYzSeCrEtToKeN" not in shown and "xyzsecrettoken" not in shown.lower(), shown
    finally:
        redact_module._known.intersection_update(before)


def test_feed_state_is_kept_under_the_redacted_url(store, server, make_config):
    from paperwire import pipeline

    private = f"http://{hostile.USER}:{hostile.PASSWORD}@127.0.0.1:{server.port}/private"
    store.record_feed(private, ok=True, etag='"old"')  # as a version before this one kept it
    config = make_config(
        f'feeds:\n  - url: "{private}"\nsubscribers:\n  - {{id: a, email: a@example.org}}\n'
    )
    report = pipeline.fetch_all(store, config)
    assert [(f.label, f.new, f.error) for f in report.feeds] == [
        (f"http://***@127.0.0.1:{server.port}/private", 2, None)
    ]
    assert store.feed_state(private) is None  # the row with the password is gone
    assert store.feed_state(f"http://***@127.0.0.1:{server.port}/private")["last_new"] == 2
    sources = {tuple(p["sources"]) for p in store.papers(["2401.00001", "2401.00002"]).values()}
    assert sources == {(f"http://***@127.0.0.1:{server.port}/private",)}


def test_escape_codes_from_a_server_never_reach_the_log(http_server, tmp_path):
    """An error document whose text carries terminal escapes (a screen clear, a window title,
    a bell) and a line break: `paperwire -v fetch` logged them raw, so tailing the log rewrote
    the terminal and a feed could forge a log line. Now the log line is printable, one line."""
    from .conftest import Route
    from .test_cli import paperwire

    said = "bad id \x1b[2J\x1b]0;pwned\x07 ok\r\n2026-01-01 ERROR forged"
    http_server.routes["/api"] = Route(
        (
            '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry>'
            "<id>http://arxiv.org/api/errors#bad</id><title>Error</title>"
            f"<summary>{said}</summary></entry></feed>"
        ).encode()
    )
    (tmp_path / "subscribers.yaml").write_text(
        f"feeds:\n  - {{url: '{http_server.url('/api')}', name: api}}\n"
        "subscribers:\n  - {id: a, email: a@example.org}\n"
    )
    result = paperwire("-v", "fetch", cwd=tmp_path)
    [line] = [x for x in result.stderr.splitlines() if "answered with an error" in x]
    assert line.endswith(
        "ERROR paperwire: fetch: feed api: the arXiv API answered with an error: bad id "
        "ok 2026-01-01 ERROR forged"  # the window title went with its escape (at ingest)
    ), line
    assert not any(c in result.stderr for c in "\x1b\x07\r")


def test_serve_verbose_logs_no_signed_token_of_any_link(tmp_path: Path):
    """``paperwire -v serve`` logs every request path; vote, unsubscribe, profile and feed
    links carry a signed token there (a feed's never expires)."""
    (tmp_path / "subscribers.yaml").write_text(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
    )
    signer = Signer(_env()["PAPERWIRE_SECRET"])
    tokens = [
        signer.vote_token("ada", "2401.00001", "up"),
        signer.subscriber_token("unsubscribe", "ada"),
        signer.subscriber_token("profile", "ada"),
        signer.feed_token("ada"),
    ]
    paths = [f"/v/{tokens[0]}", f"/unsubscribe/{tokens[1]}", f"/profile/{tokens[2]}"]
    paths.append(f"/feed/{tokens[3]}.atom")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "paperwire", "-v", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        for path in paths:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        # the same token in paths written otherwise than the routes (a client's escapes, a
        # proxy's prefix or doubled slash): the log shows them as sent (found in review)
        for odd in ODD_PATHS:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(f"GET {odd.format(tokens[0])} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                sock.recv(4096)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    log = out.decode() + err.decode()
    for token in tokens:
        assert token not in log
        assert token.split(".")[0] not in log  # not even the readable part
    for shown in ("/v/***", "/unsubscribe/***", "/profile/***", "/feed/***.atom"):
        assert f'"GET {shown} HTTP/1.1"' in log  # the access log still says what was asked
    for odd in ODD_PATHS:
        assert f'"GET {odd.format(MASK)} HTTP/1.1"' in log


ODD_PATHS = ["/%76/{}", "/v%2f{}", "//v/{}", "/x/v/{}", "/v/{}/"]


def test_a_new_signing_key_is_said_once_since_every_link_already_sent_stops_working(
    store, make_config, caplog
):
    """Setting PAPERWIRE_SECRET on an install that ran without it (a random key kept in the
    database), or changing it, makes every link of every digest already sent — unsubscribe
    included — 'invalid or was altered', and nothing said so."""
    from paperwire.links import signer_for

    text = "subscribers:\n  - id: ada\n    email: ada@example.org\n"
    first_key, second_key = "k" * 16 + "first", "k" * 16 + "second"

    def sign(env: dict[str, str]) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="paperwire.links"):
            signer_for(make_config(text, env), store)
        return [r.getMessage() for r in caplog.records if "key" in r.getMessage()]

    assert sign({}) == [  # the random key: its usual warning, nothing about a change
        f"PAPERWIRE_SECRET is not set; signing links with a random key kept in {store.path}"
    ]
    changed = sign({"PAPERWIRE_SECRET": first_key})
    assert len(changed) == 1 and "not the one links were signed with before" in changed[0]
    assert "unsubscribe" in changed[0] and first_key not in changed[0]
    assert sign({"PAPERWIRE_SECRET": first_key}) == []  # said once, not on every run
    assert len(sign({"PAPERWIRE_SECRET": second_key})) == 1
    assert first_key not in store.path.read_bytes().decode("latin-1")  # never stored
    assert second_key not in store.path.read_bytes().decode("latin-1")


def test_the_first_run_with_a_new_key_says_so_with_nothing_to_send(store, make_config, caplog):
    """The README says the first run with a new key says so; it was said only when a link was
    first signed: a run with nothing due said nothing (found in review)."""
    import datetime as dt

    from paperwire import pipeline

    text = "subscribers:\n  - id: ada\n    email: ada@example.org\n    enabled: false\n"
    now = dt.datetime(2026, 6, 12, 8, 0, tzinfo=dt.UTC)
    for key in ("k" * 16 + "first", "k" * 16 + "second"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="paperwire.links"):
            fetched, report = pipeline.run_once(
                store, make_config(text, {"PAPERWIRE_SECRET": key}), now=lambda: now
            )
        assert [line.status for line in report.lines] == ["disabled"]
    assert [r.getMessage() for r in caplog.records if "not the one links" in r.getMessage()]


ONE_READER = "subscribers:\n  - id: ada\n    email: ada@example.org\n"
SENDS_KEY = {"PAPERWIRE_SECRET": "k" * 16 + "daemon"}


def key_warnings(caplog, step) -> list[str]:
    """The "not the one links ..." warnings ``step()`` logs."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="paperwire.links"):
        step()
    return [r.getMessage() for r in caplog.records if "not the one links" in r.getMessage()]


def test_a_command_that_only_prints_a_link_leaves_the_signing_key_record_alone(
    store, make_config, caplog
):
    """A send signs with PAPERWIRE_SECRET; then `status --subscriber` in a shell without it
    (the database's generated key) recorded that key as the one links are signed with, and the
    next send said 'every link in digests already sent ... no longer works', though each was
    signed with PAPERWIRE_SECRET and still opens. The shell is told its key differs."""
    import datetime as dt

    from paperwire.links import signer_for
    from paperwire.status import status

    text, key = ONE_READER, SENDS_KEY

    def send(env: dict[str, str]) -> list[str]:
        return key_warnings(caplog, lambda: signer_for(make_config(text, env), store))

    def shell_status() -> list[str]:  # status --subscriber ada, PAPERWIRE_SECRET not set
        now = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
        config = make_config(text, {})
        return key_warnings(caplog, lambda: status(store, config, now=now, feed_urls=True))

    assert send(key) == []  # the first send: nothing to compare with
    shell = shell_status()
    assert len(shell) == 1 and "a link printed here does not open" in shell[0]
    assert send(key) == []  # every link sent was signed with this key
    assert len(send({})) == 1  # a send on the other key: said, as before


def test_the_web_app_on_another_key_says_so_once_and_leaves_the_record_to_the_sends(
    store, make_config, caplog
):
    """`serve` started without the send's PAPERWIRE_SECRET recorded its own key at the first
    click, refused every link sent, and made the next send say each of them was dead; the
    warning came only at a click (found in review). It now says at once that the links sent
    are refused here, once, and the sends' record stays."""
    from paperwire.links import signer_for

    def send(env: dict[str, str]) -> list[str]:
        return key_warnings(caplog, lambda: signer_for(make_config(ONE_READER, env), store))

    def serve(env: dict[str, str]) -> list[str]:  # what serve's start and the app ask
        config = make_config(ONE_READER, env)
        return key_warnings(caplog, lambda: signer_for(config, store, checks=True))

    key = SENDS_KEY

    assert send(key) == []  # the first send: nothing to compare with
    refused = serve({})  # serve without PAPERWIRE_SECRET: the database's generated key
    assert len(refused) == 1 and "is refused here; run serve with" in refused[0]
    assert serve({}) == []  # once, not at every click
    assert serve(key) == []  # on the sends' key: nothing to say
    assert send(key) == []  # the record is still the sends' key: no false "links are dead"
