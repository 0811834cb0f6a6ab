"""A real HTTP server on 127.0.0.1 that misbehaves on purpose, one path per fault.

Used by the hostile-fetch and secrets tests (as a fixture) and runnable on its own to
reproduce a fault by hand: ``python tests/hostile.py PORT``.

    /ok              a small valid RSS feed (2 papers)
    /ok2             another valid feed (1 paper), for "the other feeds are stored"
    /drip            announces 100,000 bytes, then sends one byte every ``drip_every`` seconds
    /stall           accepts the request and never answers
    /loop            a redirect to itself, forever
    /ftp             a redirect to ftp://example.org/feed.xml (a site moved off http)
    /bomb            a gzip body that expands to ``bomb_mb`` MB of zeros
    /huge            a plain feed of ``huge_mb`` MB (one entry with a giant abstract)
    /drop            announces 100,000 bytes, sends 200, closes the connection
    /short           Content-Length says 5,000; 200 bytes come, then the socket closes
    /badchunk        chunked transfer encoding with a chunk size that is not hex
    /cutchunk        chunked transfer encoding that ends without its last (empty) chunk
    /cut             ETag "v1", no Content-Length: the first answer closes half-way through
                     LAB (100 papers), later ones send all of it (304 to If-None-Match "v1")
    /cutlength       ETag "v1" and LAB's Content-Length, then half of it and the socket closes
    /many            a valid feed of ``many_items`` items of a few bytes each (25,000: ~4 MB,
                     seconds to parse)
    /badgzip         Content-Encoding: gzip over bytes that are not gzip
    /html            an HTML error page with status 200
    /empty           status 200 with an empty body (a server mid-deploy, a crashed script)
    /private         the valid feed, only with HTTP Basic user ``reader`` / ``s3cret-pa55``
    /private-token   the valid feed, only with ``?api_key=tok-9f8e7d6c5b4a``
    POST /services/… a webhook that accepts anything (records the body)
    POST /drip…      reads the request, then answers as GET /drip does (a dripping webhook or
                     summariser: headers at once, then one byte every ``drip_every`` seconds)
    POST /hangup…    reads the request, then closes the connection without a word
    POST /cutok…     reads the request, answers 200 announcing 100 bytes, sends 'ok' and closes
    POST /huge/NNN…  reads the request, then answers status NNN with ``huge_mb`` MB of text
                     (``huge_sent`` counts the bytes the client took before it hung up)
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import socket
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from .conftest import SHUTDOWN_POLL

USER = "reader"
PASSWORD = "s3cret-pa55"  # noqa: S105 (a test credential; the tests grep for it)
TOKEN = "tok-9f8e7d6c5b4a"  # noqa: S105

ITEM = """<item><title>{title}</title><link>https://arxiv.org/abs/{aid}v1</link>
<description>{abstract}</description><dc:creator>Ada Lovelace, Alan Turing</dc:creator></item>"""
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
    "<title>{name}</title><link>https://example.org/</link><description>d</description>"
)
TAIL = "</channel></rss>"


def feed(name: str, *items: tuple[str, str, str]) -> bytes:
    """An RSS 2.0 document with the given (arXiv id, title, abstract) items."""
    body = "".join(ITEM.format(aid=a, title=t, abstract=s) for a, t, s in items)
    return (HEAD.format(name=name) + body + TAIL).encode()


OK = feed(
    "ok",
    ("2401.00001", "Attention sinks in long context", "We study sinks."),
    ("2401.00002", "Quantised KV caches", "We quantise caches."),
)
OK2 = feed("ok2", ("2401.00003", "Speculative decoding revisited", "Faster decoding."))
LAB = feed("lab", *((f"2402.{i:05d}", f"Lab paper {i}", "An abstract.") for i in range(1, 101)))


@functools.cache
def _bomb(megabytes: int) -> bytes:
    """A gzip member of ``megabytes`` MB of zeros (about 1,000:1), built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * (1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(megabytes)) + packer.flush()


@functools.cache
def many(items: int) -> bytes:
    """A valid feed of ``items`` tiny items: what costs feedparser the most time a byte."""
    return feed("many", *((f"2403.{i:05d}", f"P{i}", "a") for i in range(items)))


@dataclass
class Hostile:
    port: int
    drip_every: float = 10.0
    bomb_mb: int = 200
    huge_mb: int = 60
    many_items: int = 25_000
    stop: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    posts: list[tuple[str, bytes]] = field(default_factory=list)
    huge_sent: int = 0  # bytes of a POST /huge/NNN answer written before the client hung up

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(state: Hostile) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _head(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()

        def _body(self, body: bytes, status: int = 200, **headers: str) -> None:
            self._head(status, {"Content-Length": str(len(body)), **headers})
            self.wfile.write(body)

        def do_GET(self):
            state.requests.append((self.path, dict(self.headers)))
            try:
                self._serve()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up on us: that is the point

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.requests.append((self.path, dict(self.headers)))
            state.posts.append((self.path, body))
            if self.path.startswith("/drip"):
                try:
                    self._drip({"Content-Type": "application/json"})
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
            if self.path.startswith("/hangup"):
                # the whole request read (and kept in ``posts``), then the line dropped with no
                # answer: a proxy timing out upstream, a server restarting mid-request
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if self.path.startswith("/cutok"):
                # the answer's status and its first bytes, then the line dropped: a proxy
                # cutting the connection, a server restarting as it answers
                self._head(200, {"Content-Length": "100"})
                self.wfile.write(b"ok")
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if self.path.startswith("/huge/"):
                try:
                    self._huge_answer(int(self.path.split("/")[2]))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
            self._body(b"ok", 200 if self.path.startswith("/services/") else 404)

        def _huge_answer(self, status: int) -> None:
            block = b"<html>" + b"x" * (1 << 20) + b"</html>\n"
            self._head(status, {"Content-Length": str(len(block) * state.huge_mb)})
            for _ in range(state.huge_mb):
                self.wfile.write(block)
                state.huge_sent += len(block)

        def _drip(self, headers: dict[str, str] | None = None):
            self._head(200, {"Content-Length": "100000", **(headers or {})})
            for _ in range(100000):
                if state.stop.wait(state.drip_every):
                    return
                self.wfile.write(b" ")
                self.wfile.flush()

        def _serve(self):  # noqa: C901 (one branch per fault, on purpose)
            path, _, query = self.path.partition("?")
            if path == "/ok":
                self._body(OK, **{"Content-Type": "application/rss+xml"})
            elif path == "/ok2":
                self._body(OK2, **{"Content-Type": "application/rss+xml"})
            elif path == "/drip":
                self._drip()
            elif path == "/stall":
                state.stop.wait(600)
            elif path == "/loop":
                self._body(b"", 302, Location="/loop")
            elif path == "/ftp":
                self._body(b"", 301, Location="ftp://example.org/feed.xml")
            elif path == "/bomb":
                self._body(_bomb(state.bomb_mb), **{"Content-Encoding": "gzip"})
            elif path == "/huge":
                self._head(200, {"Content-Type": "application/rss+xml"})  # no length: to EOF
                self.close_connection = True
                self.wfile.write(HEAD.format(name="huge").encode())
                self.wfile.write(b"<item><title>Huge</title><link>https://arxiv.org/abs/2401.09999")
                self.wfile.write(b"</link><description>")
                block = b"word " * 200_000  # 1 MB
                for _ in range(state.huge_mb):
                    self.wfile.write(block)
                self.wfile.write(b"</description></item>" + TAIL.encode())
            elif path == "/drop":
                self._head(200, {"Content-Length": "100000"})
                self.wfile.write(OK[:200])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
            elif path == "/short":
                self._head(200, {"Content-Length": "5000"})
                self.wfile.write(OK[:200])
                self.wfile.flush()
                self.close_connection = True
            elif path == "/badchunk":
                self._head(200, {"Transfer-Encoding": "chunked"})
                self.wfile.write(b"zz\r\nnot a chunk\r\n0\r\n\r\n")
                self.close_connection = True
            elif path == "/many":
                self._body(many(state.many_items), **{"Content-Type": "application/rss+xml"})
            elif path == "/cutchunk":
                self._head(200, {"Transfer-Encoding": "chunked", "ETag": '"v1"'})
                self.wfile.write(b"%x\r\n%s\r\n" % (len(OK) // 2, OK[: len(OK) // 2]))
                self.wfile.flush()
                self.close_connection = True
            elif path == "/cut":
                if self.headers.get("If-None-Match") == '"v1"':
                    self._body(b"", 304, ETag='"v1"')
                    return
                first = sum(1 for asked, _ in state.requests if asked == "/cut") == 1
                self._head(200, {"ETag": '"v1"', "Content-Type": "application/rss+xml"})
                self.wfile.write(LAB[: len(LAB) // 2] if first else LAB)  # no length: to EOF
                self.close_connection = True
            elif path == "/cutlength":
                self._head(200, {"ETag": '"v1"', "Content-Length": str(len(LAB))})
                self.wfile.write(LAB[: len(LAB) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif path == "/badgzip":
                self._body(b"this is not gzip at all" * 10, **{"Content-Encoding": "gzip"})
            elif path == "/empty":
                self._body(b"", **{"Content-Type": "application/rss+xml"})
            elif path == "/html":
                self._body(b"<html><body><h1>Service unavailable</h1></body></html>")
            elif path == "/private":
                expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") == f"Basic {expected}":
                    self._body(OK, **{"Content-Type": "application/rss+xml"})
                else:
                    self._body(b"who are you?", 401)
            elif path == "/private-token":
                if f"api_key={TOKEN}" in query:
                    self._body(OK2, **{"Content-Type": "application/rss+xml"})
                else:
                    self._body(b"no token", 403)
            else:
                self._body(b"", 404)

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a drip or stall handler never keeps the test process alive


def start(state: Hostile, tls: ssl.SSLContext | None = None) -> Server:
    """Serve ``state`` in a background thread (over TLS with ``tls``); stop with ``stop``."""
    server = Server(("127.0.0.1", state.port), _handler(state))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL}, daemon=True
    ).start()
    return server


def stop(server: Server, state: Hostile) -> None:
    state.stop.set()
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def serving(state: Hostile, tls: ssl.SSLContext | None = None) -> Iterator[Hostile]:
    """``state`` served for the length of a ``with`` block (a test fixture's body)."""
    running = start(state, tls)
    try:
        yield state
    finally:
        stop(running, state)


if __name__ == "__main__":
    hostile = Hostile(port=int(sys.argv[1]))
    running = start(hostile)
    print(f"hostile feeds on http://127.0.0.1:{hostile.port}/", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop(running, hostile)
