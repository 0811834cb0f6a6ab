"""A local feed server for the benchmarks: arXiv-format RSS documents of real items, served
with ETag / Last-Modified (a repeat request gets 304) after a fixed latency, on several ports
so that each port is one origin ("host")."""

from __future__ import annotations

import hashlib
import importlib.util
import random
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.scale import _common

LAST_MODIFIED = "Fri, 11 Apr 2025 04:00:00 GMT"


def _arxiv_rss():
    spec = importlib.util.spec_from_file_location(
        "arxiv_rss", _common.REPO / "scripts" / "arxiv_rss.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_feeds(folder: Path, n: int = 50, seed: int = _common.SEED) -> list[int]:
    """n arXiv RSS feeds (categories of one day): 50-690 real items each, overlapping as
    cross-lists do. Returns the item count of each."""
    arxiv = _arxiv_rss()
    items = arxiv.load_items()
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = []
    for k in range(n):
        size = len(items) if k == 0 else rng.randint(50, 400)
        chosen = items if k == 0 else rng.sample(items, size)
        (folder / f"cat{k:02d}.xml").write_text(arxiv.rss(chosen, f"cs.X{k:02d}"), encoding="utf-8")
        sizes.append(size)
    return sizes


def serve(folder: str, port: int, latency: float) -> None:
    root = Path(folder)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            time.sleep(latency)
            path = root / Path(self.path).name
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", LAST_MODIFIED)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def start(folder: Path, origins: int, latency: float) -> tuple[list[subprocess.Popen], list[int]]:
    """One server process per origin."""
    procs, ports = [], []
    for _ in range(origins):
        port = _common.free_port()
        code = (
            f"from benchmarks.scale import feeds; feeds.serve({str(folder)!r}, {port}, {latency})"
        )
        procs.append(subprocess.Popen([sys.executable, "-c", code], cwd=_common.REPO))
        ports.append(port)
    for port in ports:
        _common.wait_port(port)
    return procs, ports


def urls(ports: list[int], n: int) -> list[str]:
    """Feed k on origin k mod len(ports)."""
    return [f"http://127.0.0.1:{ports[k % len(ports)]}/cat{k:02d}.xml" for k in range(n)]
