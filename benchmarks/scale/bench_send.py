"""End to end: ``paperwire send`` for N subscribers after one ``paperwire fetch`` of 50 local
feeds, delivering to the 20 ms aiosmtpd sink (its own process) over SMTP.

Both commands are the real CLI in fresh processes (wall time and peak RSS are theirs). A second
``send`` on a copy of the fetched database runs under cProfile; the summary says where the time
goes. Subscribers have an interests text (a real paper title) and no votes, so every profile is
the Rocchio row; bench_rank.py measures what votes (the per-subscriber classifier) add.

    python -m benchmarks.scale.bench_send --subscribers 10000
    python -m benchmarks.scale.bench_send --quick          # 500 subscribers
"""

from __future__ import annotations

import argparse
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scale import _common, feeds


def _profile_summary(path: Path, n: int = 20) -> dict[str, list[str]]:
    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, name), (_, nc, tt, ct, _) in stats.stats.items():
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}({name})"
        rows.append((tt, ct, nc, where))
    own = sorted(rows, reverse=True)[:n]
    ours = sorted((r for r in rows if "paperwire/" in r[3]), key=lambda r: -r[1])[:n]
    fmt = "{:8.2f}s own {:8.2f}s cum {:>9} calls  {}"
    return {
        "by_own_time": [fmt.format(*r) for r in own],
        "paperwire_by_cumulative_time": [fmt.format(*r) for r in ours],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=10_000)
    ap.add_argument("--connections", type=int, default=4, help="sender.smtp_connections")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=_common.HERE / "results" / "send.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.subscribers = 500
    titles = [item["title"] for item in _common.real_items()]
    paperwire = [sys.executable, "-m", "paperwire"]
    results: dict = {"machine": _common.machine(), "subscribers": args.subscribers}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sizes = feeds.write_feeds(tmp / "feeds", 50)
        servers, ports = feeds.start(tmp / "feeds", 1, 0.0)
        sink, smtp_port = _common.start_sink(0.02)
        try:
            config = tmp / "subscribers.yaml"
            config.write_text(
                _common.subscribers_yaml(
                    args.subscribers,
                    interests=titles,
                    smtp_url=f"smtp://127.0.0.1:{smtp_port}",
                    feeds=feeds.urls(ports, 50),
                    connections=args.connections,
                )
            )
            base = [*paperwire, "--config", str(config), "--db", str(tmp / "p.db")]
            fetch = _common.run_cmd([*base, "fetch"], cwd=tmp)
            results["fetch"] = fetch
            shutil.copy(tmp / "p.db", tmp / "fetched.db")
            print("fetch", json.dumps(fetch), file=sys.stderr, flush=True)
            send = _common.run_cmd([*base, "send"], cwd=tmp)
            results["send"] = send
            print("send", json.dumps(send), file=sys.stderr, flush=True)
            if not args.no_profile:
                prof = tmp / "send.prof"
                cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "paperwire"]
                cmd += ["--config", str(config), "--db", str(tmp / "fetched.db"), "send"]
                t0 = time.perf_counter()
                profiled = _common.run_cmd(cmd, cwd=tmp)
                results["profiled_send_s"] = round(time.perf_counter() - t0, 2)
                results["profiled_tail"] = profiled["stdout_tail"]
                results["profile"] = _profile_summary(prof)
        finally:
            _common.stop(sink)
            for proc in servers:
                _common.stop(proc)
    results["feed_items"] = sum(sizes)
    n = args.subscribers
    s = results["send"]
    print(f"\nEnd to end, {n} subscribers, 50 feeds ({sum(sizes)} items), sink 20 ms")
    print(f"fetch: {results['fetch']['process_wall_s']} s, {results['fetch']['peak_rss_mib']} MiB")
    print(
        f"send:  {s['process_wall_s']} s ({1000 * s['process_wall_s'] / n:.1f} ms/subscriber), "
        f"{s['peak_rss_mib']} MiB; {s['stdout_tail'][-1] if s['stdout_tail'] else ''}"
    )
    if "profile" in results:
        print("\nwhere the time goes (paperwire functions, cumulative):")
        print("\n".join(results["profile"]["paperwire_by_cumulative_time"]))
        print("\nby own time:")
        print("\n".join(results["profile"]["by_own_time"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
