"""Time ``load_config`` on a 10,000-subscriber subscribers.yaml (block style, as a person writes
it, and one flow mapping per line, as a script writes it), and on hostile files that must be
refused at once (an alias bomb, a 50 MB file).

    PYTHONPATH=src python -m benchmarks.config.bench_load
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from paperwire.config import load_config
from paperwire.errors import ConfigError

N = 10_000
ZONES = ("Europe/London", "America/New_York", "Asia/Tokyo", "UTC")


def block_style(n: int) -> str:
    lines = ["feeds:", "  - url: https://rss.arxiv.org/rss/cs.CL", "subscribers:"]
    for i in range(n):
        lines += [
            f"  - id: reader-{i:05d}",
            f"    name: Reader {i}",
            f"    email: reader{i}@example.org",
            '    interests: "speculative decoding, KV cache compression, quantization"',
            f"    timezone: {ZONES[i % len(ZONES)]}",
            "    digest_time: 7:30",
            "    digest_days: [mon, wed, fri]",
            "    digest_size: 8",
        ]
    return "\n".join(lines) + "\n"


def flow_style(n: int) -> str:
    lines = ["feeds: []", "subscribers:"]
    lines += [
        f"  - {{id: s{i:06d}, email: s{i:06d}@mail.example, digest_days: daily, "
        "digest_time: '00:00', interests: \"retrieval augmented generation\"}"
        for i in range(n)
    ]
    return "\n".join(lines) + "\n"


def alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, 10):
        refs = ", ".join([f"*a{k - 1}"] * 9)
        lines.append(f"a{k}: &a{k} [{refs}]")
    return "\n".join(lines) + "\nsubscribers: *a9\n"


def timed(path: Path, runs: int = 3) -> tuple[float, str]:
    times, outcome = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        try:
            config = load_config(path, env={})
            outcome = f"{len(config.subscribers)} subscribers"
        except ConfigError as exc:
            outcome = "refused: " + str(exc).splitlines()[0][:110]
        times.append(time.perf_counter() - start)
    return statistics.median(times), outcome


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        cases = {
            f"{N:,} subscribers, block style": block_style(N),
            f"{N:,} subscribers, one flow mapping a line": flow_style(N),
            "alias bomb (9^10 values)": alias_bomb(),
            "50 MB file": "subscribers:\n" + "  # padding\n" * (50 * 1024 * 1024 // 12),
        }
        for name, text in cases.items():
            path = Path(folder) / "subscribers.yaml"
            path.write_text(text, encoding="utf-8")
            seconds, outcome = timed(path)
            print(f"{name:45} {seconds:6.2f} s  {len(text) / 1e6:5.1f} MB  {outcome}")


if __name__ == "__main__":
    main()
