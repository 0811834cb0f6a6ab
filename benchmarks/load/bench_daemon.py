"""``paperwire run`` under web load while it sends: latency per page kind, RSS, CPU, exactly-once
delivery and the SIGTERM exit, all against real parts on 127.0.0.1.

* a real feed over HTTP (``python -m http.server`` on a folder), re-written every
  ``--grow-every`` seconds with ``--grow-by`` more papers of real text, and fetched by a
  ``paperwire fetch`` beside the daemon (the daemon's own fetch interval is at least 5 min), so
  the corpus changes under the web app;
* a real aiosmtpd relay in its own process answering DATA after ``--relay-ms``, recording each
  recipient and Message-ID;
* the daemon (``python -m paperwire run``) with ``--subscribers`` readers whose digest times are
  spread over the first half of the run, each with 5 stored 👍;
* HTTP load at ``--rate`` requests a second for ``--duration`` seconds (open loop: a slow answer
  does not slow the arrivals), from links signed with the install's key: 35 % vote pages, 25 %
  vote POSTs, 25 % profile pages, 15 % /healthz, each with a 30 s timeout;
* SIGTERM one second before the load ends (requests still arriving), then the exit time and code.

    PYTHONPATH=src python benchmarks/load/bench_daemon.py --duration 300 --rate 20 \\
        --subscribers 200 --label after
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scale"))
import _common  # noqa: E402

SECRET = "bench-secret-not-for-production"  # noqa: S105 (a throwaway key for local links)
MIX = [("vote_page", 0.35), ("vote_post", 0.25), ("profile", 0.25), ("healthz", 0.15)]
TIMEOUT = 30.0


# -- the relay, in its own process -----------------------------------------------------------


class RecordingRelay:
    """aiosmtpd handler: answers DATA after a delay and appends ``rcpt<TAB>message-id``."""

    def __init__(self, delay: float, log_path: str):
        self.delay, self.log = delay, open(log_path, "a", buffering=1)  # noqa: SIM115

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        await asyncio.sleep(self.delay)
        message_id = ""
        for line in (envelope.content or b"").split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode()
                break
            if not line:
                break
        for rcpt in envelope.rcpt_tos:
            self.log.write(f"{rcpt}\t{message_id}\n")
        return "250 OK"


def serve_relay(port: int, delay: float, log_path: str) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(
        RecordingRelay(delay, log_path), hostname="127.0.0.1", port=port, ready_timeout=20
    )
    controller.start()
    while True:
        time.sleep(3600)


# -- set-up ----------------------------------------------------------------------------------


def write_feed(folder: Path, items: list[dict]) -> None:
    sys.path.insert(0, str(_common.REPO / "scripts"))
    import arxiv_rss

    tmp = folder / "feed.xml.tmp"
    tmp.write_text(arxiv_rss.rss(items, "cs.LG"), encoding="utf-8")
    tmp.replace(folder / "feed.xml")  # atomic: the server never serves half a file


def feed_items(n: int) -> list[dict]:
    return [
        {**item, "version": 1, "announce_type": "new"} for item in _common.new_papers(n, seed=7)
    ]


def config_yaml(
    n: int, feed_url: str, relay_port: int, web_port: int, start: dt.datetime, spread: float
) -> str:
    interests = [json.loads(line)["title"] for line in _common.SEEDS.open(encoding="utf-8")]
    lines = [
        "sender:",
        '  from_address: "Paperwire <digest@paperwire.example>"',
        f'  smtp_url: "smtp://127.0.0.1:{relay_port}"',
        "  retry_backoff: 0.1",
        f"secret: {SECRET}",
        f"base_url: http://127.0.0.1:{web_port}",
        "first_digest_days: 3",
        "fetch_interval_minutes: 60",
        "feeds:",
        f"  - url: {feed_url}",
        "subscribers:",
    ]
    for i in range(n):
        due = (start + dt.timedelta(seconds=spread * i / max(n - 1, 1))).strftime("%H:%M:%S")
        lines.append(
            f"  - {{id: s{i:04d}, email: s{i:04d}@mail.example, digest_days: daily, "
            f"timezone: UTC, digest_time: '{due}', alerts: false, "
            f"interests: {json.dumps(interests[i % len(interests)])}}}"
        )
    return "\n".join(lines) + "\n"


def paperwire(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paperwire", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


# -- measuring -------------------------------------------------------------------------------


def proc_sample(pid: int) -> tuple[float, float, int] | None:
    """(RSS MiB, CPU seconds, threads) of a live process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if "VmRSS" not in status:  # exited, not yet reaped
        return None
    rss = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) / 1024
    threads = int(next(x for x in status.splitlines() if x.startswith("Threads")).split()[1])
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu, threads


async def load(url: str, plan: list[tuple[float, str, str, str]], results: list) -> None:
    import httpx

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as client:
        start = time.monotonic()

        async def one(at: float, kind: str, method: str, path: str) -> None:
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            began = time.monotonic()
            try:
                if method == "POST":
                    response = await client.post(path, data={"vote": "1"})
                else:
                    response = await client.get(path)
                outcome = str(response.status_code)
            except httpx.TimeoutException:
                outcome = "timeout"
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            results.append((kind, began - start, time.monotonic() - began, outcome))

        await asyncio.gather(*(one(*item) for item in plan))


def percentile_ms(values: list[float], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of HTTP load")
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second")
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--relay-ms", type=float, default=50.0)
    parser.add_argument("--initial-papers", type=int, default=1000)
    parser.add_argument("--grow-by", type=int, default=50)
    parser.add_argument("--grow-every", type=float, default=120.0)
    parser.add_argument("--label", default="run")
    parser.add_argument(
        "--daemon-cpus",
        help="pin the daemon (and its render workers) to these CPUs, e.g. 0,1: measure it on "
        "2 cores of a larger machine while the relay and the load run on the others",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="paperwire-load-"))
    (work / "www").mkdir()
    items = feed_items(
        args.initial_papers + args.grow_by * int(args.duration // args.grow_every + 1)
    )
    shown = args.initial_papers
    write_feed(work / "www", items[:shown])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    children: list[subprocess.Popen] = []
    try:
        feed_port = _common.free_port()
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(work / "www"),
                    str(feed_port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        relay_port = _common.free_port()
        relay_log = work / "relay.tsv"
        code = (
            f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_daemon; "
            f"bench_daemon.serve_relay({relay_port}, {args.relay_ms / 1000}, {str(relay_log)!r})"
        )
        children.append(subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL))
        _common.wait_port(feed_port)
        _common.wait_port(relay_port)
        web_port = _common.free_port()
        feed_url = f"http://127.0.0.1:{feed_port}/feed.xml"

        def write_config(first_due: dt.datetime) -> None:
            (work / "subscribers.yaml").write_text(
                config_yaml(
                    args.subscribers, feed_url, relay_port, web_port, first_due, args.duration / 2
                )
            )

        write_config(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        fetched = paperwire("fetch", cwd=work, env=env)
        if fetched.returncode:
            raise SystemExit(f"initial fetch failed: {fetched.stderr}")

        from paperwire.links import Signer
        from paperwire.store import Store

        rng = random.Random(4711)
        with Store(work / "paperwire.db") as store:
            papers = [p["paper_id"] for p in store.corpus()]
            for i in range(args.subscribers):  # readers with 4-5 thumbs-up, as in the issue
                for paper in rng.sample(papers, 5):
                    store.record_vote(f"s{i:04d}", paper, 1, via="web")
        signer = Signer(SECRET)
        readers = [f"s{i:04d}" for i in range(args.subscribers)]
        plan = []
        kinds, weights = zip(*MIX, strict=True)
        for k in range(int(args.duration * args.rate)):
            kind = rng.choices(kinds, weights)[0]
            reader, paper = rng.choice(readers), rng.choice(papers)
            if kind == "vote_page":
                item = ("GET", f"/v/{signer.vote_token(reader, paper, rng.choice(['up', 'down']))}")
            elif kind == "vote_post":
                action = rng.choice(["up", "down", "undo"])
                item = ("POST", f"/v/{signer.vote_token(reader, paper, action)}")
            elif kind == "profile":
                item = ("GET", f"/profile/{signer.subscriber_token('profile', reader)}")
            else:
                item = ("GET", "/healthz")
            plan.append((k / args.rate, kind, *item))

        # Digests fall due from 10 s after the daemon starts, over the first half of the load.
        write_config(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10))
        loadavg_start = os.getloadavg()
        daemon_log = open(work / "daemon.log", "wb")  # noqa: SIM115
        pin = ["taskset", "-c", args.daemon_cpus] if args.daemon_cpus else []
        daemon = subprocess.Popen(
            [
                *pin,
                sys.executable,
                "-m",
                "paperwire",
                "run",
                "--port",
                str(web_port),
                "--tick",
                "1",
                "--log-json",
            ],
            cwd=work,
            env=env,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )
        children.append(daemon)
        _common.wait_port(web_port, timeout=60)
        time.sleep(2)
        samples = [(time.monotonic(), *proc_sample(daemon.pid))]
        results: list = []
        state = {"stop": False, "term_at": None, "exit": None}

        def sampler() -> None:
            while daemon.poll() is None:
                sample = proc_sample(daemon.pid)
                if sample:
                    samples.append((time.monotonic(), *sample))
                time.sleep(0.5)

        def grower() -> None:
            nonlocal shown
            began = time.monotonic()
            step = 1
            while not state["stop"]:
                time.sleep(0.5)
                if time.monotonic() - began >= step * args.grow_every:
                    step += 1
                    shown += args.grow_by
                    write_feed(work / "www", items[:shown])
                    paperwire("fetch", cwd=work, env=env)

        def terminator() -> None:
            time.sleep(max(args.duration - 1.0, 0))
            state["term_at"] = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            try:
                state["exit"] = daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                state["exit"] = f"killed after 60 s ({daemon.wait()})"
            state["exited_at"] = time.monotonic()

        import threading

        threads = [threading.Thread(target=f, daemon=True) for f in (sampler, grower, terminator)]
        load_start = time.monotonic()
        for thread in threads:
            thread.start()
        asyncio.run(load(f"http://127.0.0.1:{web_port}", plan, results))
        state["stop"] = True
        threads[2].join(90)
        daemon_log.close()
        wall = time.monotonic() - load_start
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(5)
                except subprocess.TimeoutExpired:
                    child.kill()

    # -- the report --------------------------------------------------------------------------
    term_at = state["term_at"]
    by_kind = collections.defaultdict(list)
    for kind, at, latency, outcome in results:
        by_kind[kind].append((at, latency, outcome))
    table = {}
    for kind, _ in MIX:
        rows = by_kind[kind]
        # Requests sent before SIGTERM are the load; those after it test the shutdown.
        before = [r for r in rows if load_start + r[0] < term_at]
        ok = [lat for _, lat, out in before if out[0] in "23"]
        table[kind] = {
            "requests": len(before),
            "ok": len(ok),
            "p50_ms": percentile_ms(ok, 0.5),
            "p99_ms": percentile_ms(ok, 0.99),
            "max_ms": round(max(ok) * 1000) if ok else None,
            "timeouts": sum(1 for _, _, out in before if out == "timeout"),
            "outcomes": dict(collections.Counter(out for _, _, out in before)),
        }
    deliveries = collections.Counter()
    ids = collections.defaultdict(set)
    if relay_log.exists():
        for line in relay_log.read_text().splitlines():
            rcpt, message_id = line.split("\t")
            deliveries[rcpt] += 1
            ids[rcpt].add(message_id)
    log_text = (work / "daemon.log").read_text(errors="replace")
    rss = [s[1] for s in samples]
    cpu = samples[-1][2] - samples[0][2]
    report = {
        "label": args.label,
        "args": vars(args),
        "machine": _common.machine(),
        "loadavg_start_end": [loadavg_start, os.getloadavg()],
        "wall_s": round(wall, 1),
        "pages": table,
        "rss_mib": {"start": round(rss[0]), "peak": round(max(rss)), "end": round(rss[-1])},
        "threads_peak": max(s[3] for s in samples),
        "cpu_s": round(cpu, 1),
        "cpu_cores_avg": round(cpu / (samples[-1][0] - samples[0][0]), 2),
        "digests": {
            "subscribers": args.subscribers,
            "delivered_to": len(deliveries),
            "messages": sum(deliveries.values()),
            "twice_or_more": sum(1 for n in deliveries.values() if n > 1),
            "distinct_message_ids_over_1": sum(1 for v in ids.values() if len(v) > 1),
        },
        "sigterm": {
            "exit_status": state["exit"],
            "seconds": round(state["exited_at"] - term_at, 2) if state.get("exited_at") else None,
            "requests_after": sum(1 for r in results if load_start + r[1] >= term_at),
        },
        "log_errors": sum(1 for line in log_text.splitlines() if '"level": "error"' in line),
        "segfault_in_log": "Segmentation fault" in log_text or "Fatal Python error" in log_text,
        "work": str(work),
        "failures": [
            (kind, round(at, 2), round(latency, 2), outcome)
            for kind, at, latency, outcome in results
            if outcome[0] not in "23"
        ],
    }
    out = HERE / "results" / f"{args.label}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"{'page':<10} {'sent':>5} {'ok':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'timeouts':>8}"
    )
    for kind, row in table.items():
        print(
            f"{kind:<10} {row['requests']:>5} {row['ok']:>5} {row['p50_ms'] or '-':>7} {row['p99_ms'] or '-':>7} "
            f"{row['max_ms'] or '-':>7} {row['timeouts']:>8}  {row['outcomes']}"
        )
    print(
        json.dumps(
            {k: v for k, v in report.items() if k not in ("pages", "args", "machine")}, indent=1
        )
    )
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
