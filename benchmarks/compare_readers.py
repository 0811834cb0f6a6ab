"""Two runs of ``eval_product --per-reader`` compared reader by reader (benchmarks/README.md,
"Every tuning reader at once").

A change is judged on the same readers: each reader's recall@10 after minus before, and the
90 % bootstrap interval of the mean difference (readers resampled). Sample-to-sample movement of
the ratio (±0.1 between draws of a few hundred readers) hides what pairing shows.

    python -m benchmarks.eval_product --tune --users 1949 --vectors V --per-reader before.json
    python -m benchmarks.eval_product --tune --users 1949 --vectors V --skip-recipe \\
        --weights mmr_lambda=0.7 --per-reader after.json
    python -m benchmarks.compare_readers before.json after.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

RECIPE = "arxiv-sanity-lite recipe"


class Paired(NamedTuple):
    before: float  # mean recall@10
    after: float
    low: float  # 90 % bootstrap interval of the mean difference
    high: float
    better: int  # readers whose recall rose
    worse: int


def paired(before: dict[str, float], after: dict[str, float], draws: int = 2000) -> Paired:
    """The readers both runs scored, after against before."""
    readers = sorted(set(before) & set(after), key=int)
    if not readers:
        raise SystemExit("compare_readers: the two runs share no reader")
    a = np.array([before[r] for r in readers])
    b = np.array([after[r] for r in readers])
    diff = b - a
    draw = np.random.default_rng(0).integers(0, len(diff), (draws, len(diff)))
    low, high = np.quantile(diff[draw].mean(axis=1), [0.05, 0.95])
    return Paired(
        float(a.mean()), float(b.mean()), float(low), float(high),
        int((diff > 0).sum()), int((diff < 0).sum()),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="eval_product --per-reader of the baseline")
    parser.add_argument("after", type=Path, help="... of the change")
    args = parser.parse_args(argv)
    before, after = (json.loads(p.read_text()) for p in (args.before, args.after))
    recipe = before.get(RECIPE) or after.get(RECIPE)
    for name in [n for n in before if n in after and n != RECIPE]:
        got = paired(before[name], after[name])
        line = (
            f"{name}: {got.before:.4f} -> {got.after:.4f}; difference 90 % "
            f"{got.low:+.4f} to {got.high:+.4f}; {got.better} readers better, {got.worse} worse"
        )
        if recipe:
            base = float(np.mean([recipe[r] for r in before[name]]))
            line += f"; ratio {got.before / base:.3f}x -> {got.after / base:.3f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
