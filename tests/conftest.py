"""Shared fixtures: real SQLite files, a real SMTP server, a real local HTTP server.

Every test runs in its own temporary directory with every PAPERWIRE_* variable cleared, so
nothing on the developer's machine leaks in.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from paperwire.config import Config, parse_config
from paperwire.store import Store
from tests.encoded_texts import ENV, SharedVectors, cached
from tests.site import pwtest_offline

# The suite's worker processes (pyproject's -n auto: one per core) each get one BLAS thread, and
# so does every process they start: a pool per worker sized for the whole machine spins while it
# waits, against the other workers. On two cores the suite took 222 s and 5 min 52 s of CPU with
# those pools, 198 s and 4 min 54 s without. Set here, in the first process, before it starts
# the workers; the sums are the same on any number of threads.
for _blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas, "1")

# Seconds a test HTTP server's serve_forever sleeps between looks at shutdown(): the default 0.5
# made every teardown of a served feed wait up to half a second.
SHUTDOWN_POLL = 0.05

# Real feed documents the tests read; tests/fixtures/README.md says where each came from. The
# suite never reads anything outside the repository: a user's clone has nothing beside it.
FIXTURES = Path(__file__).parent / "fixtures"
# Debian's Chromium, driven by Playwright (which must never download a browser of its own);
# the flags keep it off the network, which this machine does not have.
# PAPERWIRE_CHROMIUM names another Chromium build (a test also uses it to play a machine without).
CHROMIUM = os.environ.get("PAPERWIRE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


REQUIRE_BROWSER = "PAPERWIRE_REQUIRE_BROWSER"  # .ci/run sets it: there a missing browser fails
NO_BROWSER = (
    "needs Debian's chromium, which is not installed (apt-get install chromium); "
    f"set {REQUIRE_BROWSER}=1 to make this a failure"
)


@pytest.hookimpl(tryfirst=True)  # before any fixture launches the browser
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip browser tests on a machine without Chromium, unless the run requires a browser."""
    if item.get_closest_marker("browser") is None or Path(CHROMIUM).exists():
        return
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{REQUIRE_BROWSER}=1 but Debian's chromium is not installed at {CHROMIUM}")
    pytest.skip(NO_BROWSER)


def environ_without_paperwire() -> dict[str, str]:
    """This process's environment without any PAPERWIRE_* variable: what a test gives the
    ``paperwire`` process it starts, adding the variables it means to set."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("PAPERWIRE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# The bundled sentence encoder is most of the suite's CPU: each text is encoded once a run, by
# the real model (tests/encoded_texts.py says why that is exact), in every worker from the
# session's start, so module fixtures (a fetched demo) use it too; and in the CLI and daemon
# processes the tests start, through tests/site/sitecustomize.py on their PYTHONPATH.
# test_encoder.py's own tests run the encoder uncached (marker ``uncached_encoder``, on a
# module or a test), and so does a subprocess whose environment a test builds from nothing.
_UNCACHED = [False]  # the running module or test is marked ``uncached_encoder``
_SITE = Path(__file__).parent / "site"


@pytest.fixture(scope="session", autouse=True)
def _encode_each_text_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    from paperwire.rank import encoder

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # popen-gwN/: its parent is this run's alone
        root = root.parent
    path = root / "encoded-texts.sqlite"
    shared = SharedVectors(path)
    load, embed = cached(encoder, shared, uncached=lambda: _UNCACHED[0])
    python_path = os.pathsep.join(p for p in (str(_SITE), os.environ.get("PYTHONPATH")) if p)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoder, "load", load)
        patch.setattr(encoder.SentenceEncoder, "embed", embed)
        patch.setenv(ENV, str(path))
        patch.setenv("PYTHONPATH", python_path)
        patch.setenv(pwtest_offline.ENV, str(root / "foreign-hosts.log"))
        pwtest_offline.keep_off_the_network()
        yield
    shared.close()


@pytest.fixture(autouse=True)
def _stays_on_127_0_0_1(request: pytest.FixtureRequest) -> Iterator[None]:
    """The brief's rule, kept: a test (or a process it started) that looked up any host but
    127.0.0.1 fails, naming it. Such a look-up fails at once here, as offline, but its retries'
    pauses cost the suite ~20 s, and on a machine with a network it would reach a real server."""
    yield
    log = Path(os.environ.get(pwtest_offline.ENV, "/nonexistent"))
    if not log.exists():
        return
    hosts = {
        host
        for line in log.read_text(encoding="utf-8").splitlines()
        for who, _, host in [line.partition("\t")]
        if who == request.node.nodeid
    }
    if hosts:
        pytest.fail(f"looked up {sorted(hosts)}: tests reach 127.0.0.1 only (serve it locally)")


@pytest.fixture(scope="module", autouse=True)
def _uncached_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """Before the module's own fixtures: its marker turns the cache off for all of them."""
    _UNCACHED[0] = request.node.get_closest_marker("uncached_encoder") is not None
    yield
    _UNCACHED[0] = False


@pytest.fixture(autouse=True)
def _uncached_test(request: pytest.FixtureRequest) -> Iterator[None]:
    module = _UNCACHED[0]
    _UNCACHED[0] = request.node.get_closest_marker("uncached_encoder") is not None
    yield
    _UNCACHED[0] = module


def fetch_here(folder: Path) -> None:
    """What `paperwire fetch` run in ``folder`` does (its subscribers.yaml, or the bundled
    defaults; its paperwire.db), in this process: a test whose subject is what comes after
    the fetch encodes the papers with the cache above, not once more in a subprocess."""
    from paperwire import pipeline
    from paperwire.config import load_config

    config_file = folder / "subscribers.yaml"
    config = load_config(config_file if config_file.exists() else None, env={})
    with Store(folder / "paperwire.db") as store:
        report = pipeline.fetch_all(store, config, base_dir=folder)
    assert report.errors == 0, [f.error for f in report.feeds]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "paperwire.db") as opened:
        yield opened


@pytest.fixture
def make_config() -> Callable[..., Config]:
    """Build a validated Config from YAML text (with an optional environment)."""

    def make(text: str, env: dict[str, str] | None = None) -> Config:
        return parse_config(text, label="subscribers.yaml", env=env or {})

    return make


# -- a real SMTP server --------------------------------------------------------------------


@dataclass
class SmtpSink:
    """Messages an aiosmtpd server on 127.0.0.1 received; ``behaviour`` shapes its answers."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # each message's bytes as received
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)  # client address of each message
    # recipient -> SMTP reply to give at RCPT (e.g. "550 5.1.1 no such user")
    refuse: dict[str, str] = field(default_factory=dict)
    # replies to give at DATA before accepting, consumed in order (e.g. ["451 try later"])
    data_replies: list[str] = field(default_factory=list)
    # close the connection on the next N RCPT commands (nothing sent yet: a retry is safe)
    drop_rcpt_next: int = 0
    # take the next N messages, then close the connection before answering: a relay that got
    # the message (it is kept in ``messages``) and lost the line
    drop_next: int = 0
    delay: float = 0.0  # seconds to wait before answering DATA, like a remote relay
    rcpt_delay: float = 0.0  # seconds to wait before answering RCPT (nothing sent yet)
    on_data: Callable[[], None] | None = None  # called as DATA comes, before it is answered

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def by_recipient(self) -> dict[str, list[EmailMessage]]:
        out: dict[str, list[EmailMessage]] = {}
        for (_, rcpts), msg in zip(self.envelopes, self.messages, strict=True):
            for rcpt in rcpts:
                out.setdefault(rcpt, []).append(msg)
        return out


class _Handler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.rcpt_delay:
            await asyncio.sleep(self.sink.rcpt_delay)
        if self.sink.drop_rcpt_next > 0:
            self.sink.drop_rcpt_next -= 1
            server.transport.close()
            return "421 closing"
        if address in self.sink.refuse:
            return self.sink.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.on_data is not None:
            self.sink.on_data()
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        if self.sink.data_replies:
            return self.sink.data_replies.pop(0)
        self.sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.sink.peers.append(session.peer)
        self.sink.raw.append(envelope.original_content)
        self.sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        if self.sink.drop_next > 0:
            self.sink.drop_next -= 1
            server.transport.close()
            return "421 closing"
        return "250 Message accepted"


@pytest.fixture
def smtp_server(smtp_relay) -> SmtpSink:
    return smtp_relay()


@pytest.fixture
def ascii_smtp_server(smtp_relay) -> SmtpSink:
    """A relay without SMTPUTF8 (aiosmtpd's Controller offers it unless told not to): only
    ASCII addresses, as many small relays."""
    return smtp_relay(enable_SMTPUTF8=False)


@pytest.fixture
def smtp_relay() -> Iterator[Callable[..., SmtpSink]]:
    """Start a relay with aiosmtpd's own settings (``data_size_limit=...``: the SIZE it
    announces and holds MAIL FROM to); each is stopped after the test."""
    controllers: list[Controller] = []

    def start(**settings: Any) -> SmtpSink:
        sink = SmtpSink(port=free_port())
        controller = Controller(_Handler(sink), hostname=sink.host, port=sink.port, **settings)
        controller.start()
        controllers.append(controller)
        return sink

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


def _server_tls_context():
    """A server TLS context with a throwaway trustme certificate for 127.0.0.1."""
    import ssl

    import trustme

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def implicit_tls_smtp_server() -> Iterator[SmtpSink]:
    """aiosmtpd speaking TLS from the first byte (what ``smtps://`` expects), trustme cert."""
    sink = SmtpSink(port=free_port())
    controller = Controller(
        _Handler(sink), hostname=sink.host, port=sink.port, ssl_context=_server_tls_context()
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def tls_smtp_server(tmp_path: Path) -> Iterator[SmtpSink]:
    """aiosmtpd requiring STARTTLS (a trustme certificate) and AUTH as user/secret-pass."""
    from aiosmtpd.smtp import AuthResult

    context = _server_tls_context()
    sink = SmtpSink(port=free_port())

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"user" and auth_data.password == b"secret-pass"
        # handled=False makes aiosmtpd answer 535 itself on failure
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        _Handler(sink),
        hostname=sink.host,
        port=sink.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# -- a real HTTP server ----------------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # answer 304 when If-None-Match matches
    delay: float = 0.0  # seconds before answering


@dataclass
class HttpServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``routes`` and recording every request."""

    port: int
    routes: dict[str, Route | list[Route]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class LocalHTTPServer(http.server.ThreadingHTTPServer):
    """The tests' HTTP server. A client under test that gives up (a timeout, a deadline, a
    stop) hangs up before the answer is written, which is the test's point: socketserver
    printed each such BrokenPipeError's traceback into the suite's output as if the server
    had failed. Any other error is still printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server_state = HttpServer(port=free_port())

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server_state.requests.append((method, self.path, dict(self.headers), body))
            route = server_state.routes.get(self.path)
            if isinstance(route, list):  # a sequence of answers, the last one repeats
                route = route.pop(0) if len(route) > 1 else route[0]
            if route is not None and route.delay:
                with server_state.lock:
                    server_state.in_flight += 1
                    server_state.max_in_flight = max(
                        server_state.max_in_flight, server_state.in_flight
                    )
                time.sleep(route.delay)
                with server_state.lock:
                    server_state.in_flight -= 1
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.etag and self.headers.get("If-None-Match") == route.etag:
                self.send_response(304)
                self.send_header("ETag", route.etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(route.status)
            for key, value in route.headers.items():
                self.send_header(key, value)
            if route.etag:
                self.send_header("ETag", route.etag)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def do_GET(self):
            self._answer("GET")

        def do_POST(self):
            self._answer("POST")

    server = LocalHTTPServer(("127.0.0.1", server_state.port), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL}, daemon=True
    )
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
