"""Delivery at scale: N digests rendered and sent into a local aiosmtpd sink (its own process)
that answers each message after 20 ms, as a remote relay does.

Through paperwire's public code, as ``pipeline.deliver_jobs`` runs it:
``deliver.messages.render_all`` (render.context → render.render_email →
deliver.email.build_message → flatten; in worker processes, or in the sending process with
``--processes 1``) feeding ``SmtpSender.send_all``, each message taken when a connection is
free; at the default ``smtp_connections`` (4) and at higher settings.
Beside it, in the same run: the same messages one by one with ``smtplib`` on one connection,
and the sink's own limit (many connections pushing one prebuilt message).

    python -m benchmarks.scale.bench_delivery              # the figures in README.md
    python -m benchmarks.scale.bench_delivery --quick
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import smtplib
import sys
import time
from pathlib import Path

from benchmarks.scale import _common

NOW = dt.datetime(2025, 4, 11, 6, 0, tzinfo=dt.UTC)
DIGEST_SIZE = 10
SENDER = "Paperwire <digest@paperwire.example>"


def _picks(n: int):
    """n digests' picks: 10 real papers each, drawn round-robin from 2,000 papers."""
    from paperwire.paper import Pick

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


def _run():
    from paperwire.deliver import messages
    from paperwire.links import Signer

    signer = Signer("bench-secret-not-for-production")
    return messages.MailRun(
        "https://paperwire.example", SENDER, "paperwire.example", NOW.timestamp(), signer
    )


def _jobs(n: int):
    """n digests as the pipeline hands them to delivery (one ledger entry each)."""
    from paperwire.deliver import email as email_mod
    from paperwire.deliver import messages

    domain = email_mod.domain_of(SENDER)
    return [
        messages.MailJob(
            key=i,
            subscriber_id=f"s{i:06d}",
            name=f"s{i:06d}",
            recipient=f"s{i:06d}@mail.example",
            kind="digest",
            period="2025-04-11",
            message_id=email_mod.make_message_id("digest", f"s{i:06d}", "2025-04-11", domain),
            picks=picks,
            since=NOW - dt.timedelta(days=1),
        )
        for i, picks in enumerate(_picks(n))
    ]


def render_all(n: int):
    """Render, build and flatten n messages in this process, each stage timed apart."""
    from paperwire import render
    from paperwire.deliver import email as email_mod
    from paperwire.deliver import messages

    run = _run()
    t0 = time.perf_counter()
    out = []
    stages = dict.fromkeys(("context_and_signing", "render_email", "build_message", "flatten"), 0.0)
    for job in _jobs(n):
        t = time.perf_counter()
        ctx, links = messages.context(job, run)
        subject = render.subject_for(job.kind, job.period, job.picks)
        t1 = time.perf_counter()
        rendered = render.render_email(ctx, subject)
        t2 = time.perf_counter()
        msg = messages.message(job, run, rendered, links)
        t3 = time.perf_counter()
        raw = email_mod.flatten(msg)
        t4 = time.perf_counter()
        for stage, took in zip(stages, (t1 - t, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[stage] += took
        out.append(email_mod.Outgoing(job.key, raw, run.mail_from, job.recipient))
    RENDER_STAGES.update({k: round(1000 * v / max(n, 1), 3) for k, v in stages.items()})
    return out, time.perf_counter() - t0


RENDER_STAGES: dict[str, float] = {}  # ms per message, filled by render_all


def job_paperwire(n: int, port: int, connections: int, processes: int, profile: bool) -> dict:
    """As ``pipeline.deliver_jobs`` runs it: ``messages.render_all`` (worker processes when
    ``processes`` > 1) feeding ``SmtpSender.send_all``, each message taken when a connection
    is free."""
    from paperwire.config.channels import SmtpSettings
    from paperwire.deliver import email as email_mod
    from paperwire.deliver import messages

    items, t_render = render_all(min(n, 200))  # render cost per message, measured apart
    sizes = [len(o.message) for o in items[:20]]
    render_ms = 1000 * t_render / len(items)
    jobs, run = _jobs(n), _run()

    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    sender = email_mod.SmtpSender(
        SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"),
        connections=connections,
        attempts=2,
        backoff=0.1,
    )
    cpu0 = os.times()
    t0 = time.perf_counter()
    worker_peaks: dict[int, float] = {}
    rendered = _sampling_workers(messages.render_all(jobs, run, processes=processes), worker_peaks)
    outcomes = asyncio.run(sender.send_all(rendered))
    total = time.perf_counter() - t0
    cpu = os.times()
    out = {
        "job": f"paperwire-c{connections}-p{processes}",
        "messages": n,
        "ok": sum(o.ok for o in outcomes),
        "message_bytes": int(sum(sizes) / len(sizes)),
        "total_s": round(total, 2),
        # CPU of this (sending) process and of its rendering workers, per message
        "sender_cpu_ms_per_message": round(
            1000 * (cpu.user + cpu.system - cpu0.user - cpu0.system) / n, 3
        ),
        "workers_cpu_ms_per_message": round(
            1000
            * (cpu.children_user + cpu.children_system - cpu0.children_user - cpu0.children_system)
            / n,
            3,
        ),
        "render_ms_per_message": round(render_ms, 3),
        "render_stages_ms_per_message": RENDER_STAGES,
        "rate": round(n / total, 1),
        # each rendering worker's own peak (VmHWM, sampled while they run; ru_maxrss of a
        # spawned child would count the parent's pages it had between fork and exec); this
        # process's own peak is peak_rss_mib, added by the runner
        "worker_peak_rss_mib": sorted(worker_peaks.values()),
    }
    if prof:
        prof.disable()
        from bench_rank import _summary

        out["profile"] = _summary(prof, 15)
    return out


def _sampling_workers(items, peaks: dict[int, float], every: int = 500):
    """Pass items through, noting each live worker process's peak RSS every ``every`` items."""
    import multiprocessing

    for i, item in enumerate(items):
        if i % every == every - 1:
            for proc in multiprocessing.active_children():
                status = Path(f"/proc/{proc.pid}/status").read_text()
                kib = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
                peaks[proc.pid] = max(peaks.get(proc.pid, 0), round(kib / 1024, 1))
        yield item


def job_smtplib(n: int, port: int) -> dict:
    """The same rendered messages, one by one on one smtplib connection."""
    items, t_render = render_all(n)
    t0 = time.perf_counter()
    ok = 0
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for item in items:
            smtp.sendmail(item.mail_from, [item.recipient], item.message)
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
    raw = items[0].message

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
    ap.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="rendering processes for --job paperwire (1: in the sending process)",
    )
    ap.add_argument("--process-settings", default=f"1,{os.cpu_count() or 1}")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=_common.HERE / "results" / "delivery.json")
    args = ap.parse_args(argv)
    if args.job == "paperwire":
        _common.emit(
            job_paperwire(args.messages, args.port, args.connections, args.processes, args.profile)
        )
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
        for p in args.process_settings.split(","):
            for c in args.connection_settings.split(","):
                runs.append(
                    ["--job", "paperwire", "--messages", n, "--connections", c, "--processes", p]
                )
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
