"""Fetch at scale: 50 arXiv-format feeds of real items (50-690 items each, overlapping) served
locally by 5 origins that answer after 100 ms, cold and then again (every feed answers 304).

Through ``pipeline.fetch_all`` (one feed after another), and beside it, in the same run, the
obvious alternative: the same public ``sources.fetch_feed`` + ``Store.add_papers`` with feeds
fetched concurrently, at most 2 requests in flight per origin (polite to a single host).

    python -m benchmarks.scale.bench_fetch
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from benchmarks.scale import _common, feeds

PER_ORIGIN = 2


def _config(urls: list[str]):
    from paperwire.config import parse_config

    text = _common.subscribers_yaml(1, interests=["kv cache"], feeds=urls)
    return parse_config(text, label="bench.yaml", env={})


def job_paperwire(urls: list[str]) -> dict:
    from paperwire import pipeline
    from paperwire.store import Store

    config = _config(urls)
    out = {"job": "paperwire-fetch_all", "feeds": len(urls)}
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "p.db") as store:
        for label in ("cold", "304"):
            t0 = time.perf_counter()
            report = pipeline.fetch_all(store, config)
            out[f"{label}_s"] = round(time.perf_counter() - t0, 2)
            out[f"{label}_new"] = report.new
            out[f"{label}_not_modified"] = sum(f.not_modified for f in report.feeds)
            out[f"{label}_errors"] = report.errors
        out["papers_stored"] = store.count_papers()
    return out


def job_concurrent(urls: list[str]) -> dict:
    """fetch_feed per feed on a thread pool, ≤ PER_ORIGIN in flight per origin; stores in order."""
    from paperwire.sources import fetch_feed
    from paperwire.sources.http import HttpCache
    from paperwire.store import Store

    config = _config(urls)
    gates: dict[str, threading.Semaphore] = {}
    for url in urls:
        gates.setdefault(urlparse(url).netloc, threading.Semaphore(PER_ORIGIN))
    out = {"job": f"concurrent-{PER_ORIGIN}-per-origin", "feeds": len(urls)}
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "p.db") as store:
        for label in ("cold", "304"):
            t0 = time.perf_counter()

            states = {f.url: store.feed_state(f.url) for f in config.feeds}

            def one(feed, states=states):
                state = states.get(feed.url) or {}
                cache = HttpCache(state.get("etag"), state.get("last_modified")) if state else None
                with gates[urlparse(feed.url).netloc]:
                    return fetch_feed(feed, cache=cache)  # its own client and event loop

            new = not_modified = 0
            with ThreadPoolExecutor(max_workers=len(gates) * PER_ORIGIN) as pool:
                for result in pool.map(one, config.feeds):
                    if result.not_modified:
                        not_modified += 1
                    else:
                        new += store.add_papers(result.papers)[0]
                    cache = result.cache or HttpCache()
                    store.record_feed(
                        result.feed.url, ok=True, etag=cache.etag, last_modified=cache.last_modified
                    )
            out[f"{label}_s"] = round(time.perf_counter() - t0, 2)
            out[f"{label}_new"] = new
            out[f"{label}_not_modified"] = not_modified
        out["papers_stored"] = store.count_papers()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--job", choices=("paperwire", "concurrent"))
    ap.add_argument("--urls")
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--origins", type=int, default=5)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=_common.HERE / "results" / "fetch.json")
    args = ap.parse_args(argv)
    if args.job:
        urls = json.loads(Path(args.urls).read_text())
        _common.emit(job_paperwire(urls) if args.job == "paperwire" else job_concurrent(urls))
        return 0
    me = Path(__file__).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "feeds"
        sizes = feeds.write_feeds(folder, args.feeds)
        procs, ports = feeds.start(folder, args.origins, args.latency)
        url_file = Path(tmp) / "urls.json"
        url_file.write_text(json.dumps(feeds.urls(ports, args.feeds)))
        results = []
        try:
            for job in ("paperwire", "concurrent"):
                results.append(_common.run_job(me, ["--job", job, "--urls", str(url_file)]))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        finally:
            for proc in procs:
                _common.stop(proc)
        mib = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    print(
        f"\nFetch: {args.feeds} feeds, {sum(sizes)} items ({mib:.1f} MiB), "
        f"{args.origins} origins, {args.latency * 1000:.0f} ms latency"
    )
    print(f"{'job':<28}{'cold s':>8}{'new':>7}{'304 s':>7}{'304s':>6}{'RSS MiB':>9}")
    for r in results:
        print(
            f"{r['job']:<28}{r['cold_s']:>8}{r['cold_new']:>7}{r['304_s']:>7}"
            f"{r['304_not_modified']:>6}{r['peak_rss_mib']:>9}"
        )
    report = {"machine": _common.machine(), "items": sum(sizes), "mib": mib, "runs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
