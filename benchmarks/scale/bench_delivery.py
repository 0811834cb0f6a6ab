"""Delivery at scale: N digests rendered and sent into a local aiosmtpd sink (its own process)
that answers each message after 20 ms, as a remote relay does.

Through paperwire's public code (render.context → render.render_email →
deliver.email.build_message → SmtpSender.send_all, as ``pipeline.deliver_jobs`` runs them: each
message rendered lazily when a connection is free), at the default ``smtp_connections`` (4)
and at higher settings.
Beside it, in the same run: the same messages one by one with ``smtplib`` on one connection,
and the sink's own limit (many connections pushing one prebuilt message).

    python benchmarks/scale/bench_delivery.py              # the figures in README.md
    python benchmarks/scale/bench_delivery.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import smtplib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NOW = dt.datetime(2025, 4, 11, 6, 0, tzinfo=dt.UTC)
DIGEST_SIZE = 10
SENDER = "Paperwire <digest@paperwire.example>"


def _picks(n: int):
    """n digests' picks: 10 real papers each, drawn round-robin from 2,000 papers."""
    from paperwire.digest import Pick

    papers = _common.new_papers(2000)
    out = []
    for i in range(n):
        picks = []
        for j in range(DIGEST_SIZE):
            p = papers[(i * 7 + j * 131) % len(papers)]
            pid = p["arxiv_id"]
            paper = {
                "paper_id": pid,
                "title": p["title"],
                "abstract": p["abstract"],
                "authors": p["authors"],
                "url": f"https://arxiv.org/abs/{pid}",
                "pdf_url": f"https://arxiv.org/pdf/{pid}",
                "published": "2025-04-11T00:00:00+00:00",
                "upvotes": None,
            }
            reasons = ["matches “kv cache”", "similar to “Efficient Memory Management”"]
            picks.append(Pick(pid, p["title"], paper["url"], 3.2 - j / 10, reasons, paper))
        out.append(picks)
    return out


def render_all(n: int):
    """Render and build n messages exactly as pipeline.deliver_jobs does; timed."""
    from paperwire import render
    from paperwire.deliver import email as email_mod
    from paperwire.feedback import Links, Signer

    all_picks = _picks(n)
    signer = Signer("bench-secret-not-for-production")
    domain = email_mod.domain_of(SENDER)
    t0 = time.perf_counter()
    out = []
    stages = dict.fromkeys(("context_and_signing", "render_email", "build_message"), 0.0)
    for i, picks in enumerate(all_picks):
        sub_id = f"s{i:06d}"
        links = Links("https://paperwire.example", signer, sub_id)
        period = "2025-04-11"
        t = time.perf_counter()
        ctx = render.context(
            subscriber_name=sub_id,
            picks=picks,
            links=links,
            kind="digest",
            period=period,
            since=NOW - dt.timedelta(days=1),
        )
        subject = render.subject_for("digest", period, picks)
        t1 = time.perf_counter()
        rendered = render.render_email(ctx, subject)
        t2 = time.perf_counter()
        msg = email_mod.build_message(
            rendered,
            sender=SENDER,
            recipient=f"{sub_id}@mail.example",
            message_id=email_mod.make_message_id("digest", sub_id, period, domain),
            list_id="paperwire.example",
            unsubscribe_url=links.unsubscribe,
            date=NOW.timestamp(),
        )
        t3 = time.perf_counter()
        stages["context_and_signing"] += t1 - t
        stages["render_email"] += t2 - t1
        stages["build_message"] += t3 - t2
        out.append((i, msg, f"{sub_id}@mail.example"))
    RENDER_STAGES.update({k: round(1000 * v / max(n, 1), 3) for k, v in stages.items()})
    return out, time.perf_counter() - t0


RENDER_STAGES: dict[str, float] = {}  # ms per message, filled by render_all


def job_paperwire(n: int, port: int, connections: int, profile: bool) -> dict:
    """As ``pipeline.deliver_jobs`` runs it: each message rendered lazily, when a connection
    is free, in a worker thread while the other connections wait on the relay."""
    from paperwire.deliver import email as email_mod

    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    items, t_render = render_all(min(n, 200))  # render cost per message, measured apart
    sizes = [len(m.as_bytes()) for _, m, _ in items[:20]]
    render_ms = 1000 * t_render / len(items)
    all_picks = _picks(n)

    def lazily():
        from paperwire import render
        from paperwire.feedback import Links, Signer

        signer = Signer("bench-secret-not-for-production")
        domain = email_mod.domain_of(SENDER)
        for i, picks in enumerate(all_picks):
            sub_id = f"s{i:06d}"
            links = Links("https://paperwire.example", signer, sub_id)
            ctx = render.context(subscriber_name=sub_id, picks=picks, links=links, kind="digest",
                                 period="2025-04-11", since=NOW - dt.timedelta(days=1))
            rendered = render.render_email(ctx, render.subject_for("digest", "2025-04-11", picks))
            msg = email_mod.build_message(
                rendered, sender=SENDER, recipient=f"{sub_id}@mail.example",
                message_id=email_mod.make_message_id("digest", sub_id, "2025-04-11", domain),
                list_id="paperwire.example", unsubscribe_url=links.unsubscribe,
                date=NOW.timestamp(),
            )
            yield email_mod.Outgoing(i, msg, f"{sub_id}@mail.example")

    sender = email_mod.SmtpSender(
        email_mod.SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"),
        connections=connections,
        attempts=2,
        backoff=0.1,
    )
    t0 = time.perf_counter()
    outcomes = asyncio.run(sender.send_all(lazily()))
    total = time.perf_counter() - t0
    out = {
        "job": f"paperwire-c{connections}",
        "messages": n,
        "ok": sum(o.ok for o in outcomes),
        "message_bytes": int(sum(sizes) / len(sizes)),
        "total_s": round(total, 2),
        "render_ms_per_message": round(render_ms, 3),
        "render_stages_ms_per_message": RENDER_STAGES,
        "rate": round(n / total, 1),
    }
    if prof:
        prof.disable()
        from bench_rank import _summary

        out["profile"] = _summary(prof, 15)
    return out


def job_smtplib(n: int, port: int) -> dict:
    """The same rendered messages, one by one on one smtplib connection."""
    items, t_render = render_all(n)
    t0 = time.perf_counter()
    ok = 0
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for _, msg, rcpt in items:
            smtp.send_message(msg, to_addrs=[rcpt])
            ok += 1
    t_send = time.perf_counter() - t0
    return {
        "job": "smtplib-one-by-one",
        "messages": n,
        "ok": ok,
        "render_s": round(t_render, 2),
        "send_s": round(t_send, 2),
        "send_rate": round(n / t_send, 1),
        "rate": round(n / (t_render + t_send), 1),
    }


def job_sink_limit(n: int, port: int, connections: int) -> dict:
    """Many connections pushing one prebuilt message: what the sink itself can take."""
    import aiosmtplib

    items, _ = render_all(1)
    raw = items[0][1].as_bytes()

    async def run() -> int:
        queue = list(range(n))
        done = 0

        async def worker() -> None:
            nonlocal done
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
            await client.connect()
            while queue:
                queue.pop()
                await client.sendmail("digest@paperwire.example", ["x@mail.example"], raw)
                done += 1
            await client.quit()

        await asyncio.gather(*(worker() for _ in range(connections)))
        return done

    t0 = time.perf_counter()
    done = asyncio.run(run())
    t = time.perf_counter() - t0
    return {
        "job": f"sink-limit-c{connections}",
        "messages": done,
        "message_bytes": len(raw),
        "send_s": round(t, 2),
        "send_rate": round(done / t, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--job", choices=("paperwire", "smtplib", "sink"))
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--smtplib-messages", type=int, default=1000)
    ap.add_argument("--port", type=int)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--connection-settings", default="4,16,64")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=_common.HERE / "results" / "delivery.json")
    args = ap.parse_args(argv)
    if args.job == "paperwire":
        _common.emit(job_paperwire(args.messages, args.port, args.connections, args.profile))
        return 0
    if args.job == "smtplib":
        _common.emit(job_smtplib(args.messages, args.port))
        return 0
    if args.job == "sink":
        _common.emit(job_sink_limit(args.messages, args.port, args.connections))
        return 0

    if args.quick:
        args.messages, args.smtplib_messages = 1000, 200
    me = Path(__file__).resolve()
    results = []
    sink, port = _common.start_sink(args.delay)
    try:
        n = str(args.messages)
        runs = [["--job", "smtplib", "--messages", str(args.smtplib_messages)]]
        runs += [["--job", "sink", "--messages", n, "--connections", c] for c in ("64", "256")]
        for c in args.connection_settings.split(","):
            runs.append(["--job", "paperwire", "--messages", n, "--connections", c])
        for run in runs:
            print("running", " ".join(run), file=sys.stderr, flush=True)
            results.append(_common.run_job(me, [*run, "--port", str(port)]))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        _common.stop(sink)
    one = results[0]["rate"]  # smtplib one by one, rendering included
    limit = max(r["send_rate"] for r in results if r["job"].startswith("sink"))
    print(f"\nDelivery, {args.messages} digests, sink answers after {args.delay * 1000:.0f} ms")
    print(f"{'job':<22}{'msgs':>7}{'send/s':>8}{'with rendering/s':>18}{'RSS MiB':>9}")
    for r in results:
        print(
            f"{r['job']:<22}{r['messages']:>7}{r.get('send_rate', '-'):>8}"
            f"{r.get('rate', '-'):>18}{r['peak_rss_mib']:>9}"
        )
    print(f"targets: >= {10 * one:.0f}/s (10x one-by-one) and >= {limit / 2:.0f}/s (half the sink)")
    report = {"machine": _common.machine(), "delay_s": args.delay, "runs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
