"""Shared helpers for the scale benchmarks: real data, fresh-process jobs, the 20 ms SMTP sink.

Every measured job runs in a fresh ``python`` subprocess so that its peak RSS (``ru_maxrss`` from
``os.wait4``) is its own and nothing is warm from an earlier job.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# ../shared/data beside the clone; PAPERWIRE_BENCH_DATA points elsewhere (another machine)
DATA = Path(os.environ.get("PAPERWIRE_BENCH_DATA") or REPO.parent / "shared" / "data")
FRONTPAGE = DATA / "arxiv-frontpage" / "downloads_2025-04-11.jsonl"
SEEDS = DATA / "daily-papers-seeds.jsonl"
CITEULIKE = DATA / "citeulike-t"
SEED = 20250411


# -- running a job in a fresh process --------------------------------------------------------


def run_job(script: Path, args: list[str]) -> dict[str, Any]:
    """Run ``python -m <the script's module> args`` from the repository in a fresh process; its
    JSON result plus its peak RSS."""
    module = ".".join(script.resolve().relative_to(REPO).with_suffix("").parts)
    return run_cmd([sys.executable, "-m", module, *args], cwd=REPO)


def run_cmd(cmd: list[str], cwd: Path | None = None) -> dict[str, Any]:
    """Run a command in a fresh process: its last JSON line (if any), wall time, peak RSS."""
    import tempfile

    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=cwd)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be a max over all jobs)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-4000:]}")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    result["process_wall_s"] = round(wall, 3)
    result["stdout_tail"] = stdout.splitlines()[-3:]
    result["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)
    return result


def emit(result: dict[str, Any]) -> None:
    """Print a job's result as the last JSON line, with the process's own peak RSS (VmHWM)."""
    result["peak_rss_mib"] = vm_hwm_mib()
    print(json.dumps(result), flush=True)


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare figures."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(int(mem) / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


# -- real texts -------------------------------------------------------------------------------


def real_items() -> list[dict[str, Any]]:
    """The distinct real arXiv items (title, abstract, authors) of the two bundled datasets."""
    items, seen = [], set()
    for line in FRONTPAGE.open(encoding="utf-8"):
        item = json.loads(line)
        items.append(
            {
                "title": item["title"],
                "abstract": item["abstract"],
                "authors": item["authors"],
                "arxiv_id": item["url"].rsplit("/", 1)[1],
            }
        )
        seen.add(item["title"])
    for line in SEEDS.open(encoding="utf-8"):
        item = json.loads(line)
        if item["title"] in seen:
            continue
        seen.add(item["title"])
        authors = [item.get("org") or "Anonymous"] * max(1, int(item.get("authors_count") or 1))
        items.append({"title": item["title"], "abstract": item["abstract"], "authors": authors})
    return items


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def new_papers(n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``n`` papers of real text: the real items first, then recombinations of real sentences
    (the title of one, the first half of a second abstract, the second half of a third)."""
    base = real_items()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i < len(base):
            item = dict(base[i])
        else:
            a, b, c = rng.sample(base, 3)
            sb, sc = _SENTENCE.split(b["abstract"]), _SENTENCE.split(c["abstract"])
            abstract = " ".join(sb[: max(1, len(sb) // 2)] + sc[len(sc) // 2 :])
            item = {"title": a["title"], "abstract": abstract, "authors": b["authors"]}
        item["arxiv_id"] = f"2504.{90000 + i:05d}" if i >= len(base) else item.get("arxiv_id")
        item["arxiv_id"] = item["arxiv_id"] or f"2504.{80000 + i:05d}"
        out.append(item)
    return out


def citeulike() -> tuple[list[str], list[list[int]]]:
    """CiteULike-t papers as texts (each word repeated by its count) and users' libraries."""
    vocab = (CITEULIKE / "vocabulary.dat").read_text().split("\n")
    texts = []
    with open(CITEULIKE / "mult.dat") as f:
        for line in f:
            words = []
            for pair in line.split()[1:]:
                word, count = pair.split(":")
                words.extend([vocab[int(word)]] * int(count))
            texts.append(" ".join(words))
    with open(CITEULIKE / "users.dat") as f:
        users = [[int(x) for x in line.split()[1:]] for line in f]
    return texts, users


def resampled_libraries(
    users: list[list[int]], n: int, *, max_votes: int = 30, seed: int = SEED
) -> list[list[int]]:
    """``n`` subscribers' liked papers: real CiteULike libraries drawn with replacement, each
    thinned to a random 80 % (so copies differ) and capped at ``max_votes`` papers."""
    rng = random.Random(seed)
    pool = [u for u in users if len(u) >= 3]
    out = []
    for _ in range(n):
        lib = rng.choice(pool)
        keep = [p for p in lib if rng.random() < 0.8] or lib[:1]
        rng.shuffle(keep)
        out.append(keep[:max_votes])
    return out


# -- the SMTP sink ----------------------------------------------------------------------------


class DelayedSink:
    """aiosmtpd handler that answers DATA after ``delay`` seconds, like a remote relay."""

    def __init__(self, delay: float):
        self.delay = delay
        self.count = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.count += 1
        self.bytes += len(envelope.content or b"")
        return "250 OK"


def serve_sink(port: int, delay: float) -> None:
    """Run an aiosmtpd sink on 127.0.0.1:port until killed (call in its own process)."""
    from aiosmtpd.controller import Controller

    handler = DelayedSink(delay)
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, data_size_limit=0, ready_timeout=20
    )
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def start_sink(delay: float = 0.02) -> tuple[subprocess.Popen, int]:
    """The sink in its own process (it must not share our CPU or our event loop)."""
    port = free_port()
    code = f"from benchmarks.scale import _common; _common.serve_sink({port}, {delay})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def subscribers_yaml(
    n: int,
    *,
    interests: list[str],
    smtp_url: str | None = None,
    feeds: list[str] = (),
    connections: int = 4,
) -> str:
    """A config with ``n`` subscribers, each with an interests text (one line of YAML each)."""
    lines = ["sender:", '  from_address: "Paperwire <digest@paperwire.example>"']
    lines.append(f"  smtp_connections: {connections}")
    lines.append("  retry_backoff: 0.1")
    if smtp_url:
        lines.append(f"  smtp_url: {json.dumps(smtp_url)}")
    lines.append("secret: bench-secret-not-for-production")
    lines.append("first_digest_days: 3")
    lines.append("feeds:")
    lines.extend(f"  - url: {json.dumps(url)}" for url in feeds)
    if not feeds:
        lines[-1] = "feeds: []"
    lines.append("subscribers:")
    for i in range(n):
        text = " ".join(interests[i % len(interests)].split())
        lines.append(
            f"  - {{id: s{i:06d}, email: s{i:06d}@mail.example, digest_days: daily, "
            f"digest_time: '00:00', interests: {json.dumps(text)}}}"
        )
    return "\n".join(lines) + "\n"
