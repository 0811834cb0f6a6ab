"""Two source trees' ``paperwire digest --json`` alternated on fresh copies of one store.

The machines these figures come from move their speed by a third within the hour, so a run
compares only with a run beside it: each pair runs A and B back to back (B first in every
other pair, so that a drift favours neither), each on its own copy of the store (a migration
or a cache one run writes is not the next one's gift), and says whether their digests are the
same byte for byte. The store is ``eval_crowd``'s (build it with that first). A tree older
than the store's schema refuses it ("written by a newer paperwire"): give ``--store`` a copy
made before the newer tree first opened it (each run migrates its own copy):

    python -m benchmarks.ab_digest --a /path/to/other/checkout/src --pairs 3
    python -m benchmarks.ab_digest --a ../old/src --b src --store benchmarks/out/crowd-20000/hf.db
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.eval_crowd import digest_run

HERE = Path(__file__).resolve().parent
STORE = HERE / "out" / "crowd-20000" / "atom.db"


def run_tree(tree: Path, store: Path, config: Path, scratch: Path) -> dict:
    """One ``digest_run`` of the paperwire under ``tree`` (its ``src``) on a copy of ``store``."""
    copy = scratch / "store.db"
    for old in scratch.glob("store.db*"):
        old.unlink()
    shutil.copyfile(store, copy)
    out = scratch / "digests.json"
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)  # ahead of the installed paperwire
    try:
        figures = digest_run(copy, config, out)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    figures["md5"] = hashlib.md5(out.read_bytes(), usedforsecurity=False).hexdigest()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="the other tree's src folder")
    parser.add_argument("--b", type=Path, default=HERE.parent / "src", help="default: this one")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--config", type=Path, help="default: subscribers.yaml beside the store")
    args = parser.parse_args(argv)
    config = args.config or args.store.parent / "subscribers.yaml"
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    for name, tree in trees.items():
        if not (tree / "paperwire" / "__init__.py").exists():
            parser.error(f"--{name.lower()} {tree}: no paperwire package in it")
    if not args.store.exists():
        parser.error(f"--store {args.store}: not built (python -m benchmarks.eval_crowd first)")
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as scratch:
        for pair in range(args.pairs):
            for name in "AB" if pair % 2 == 0 else "BA":
                figures = run_tree(trees[name], args.store, config, Path(scratch))
                runs[name].append(figures)
                print(
                    f"pair {pair + 1} {name}: {figures['wall_s']:.1f} s wall, "
                    f"{figures['cpu_s']:.1f} s CPU, {figures['peak_rss_mib']:.0f} MiB, "
                    f"load {figures['load'][0]:.1f}, md5 {figures['md5'][:8]}",
                    flush=True,
                )
    ratios = [b["wall_s"] / a["wall_s"] for a, b in zip(runs["A"], runs["B"], strict=True)]
    for name in ("A", "B"):
        walls = [r["wall_s"] for r in runs[name]]
        print(f"{name} {trees[name]}: median {statistics.median(walls):.1f} s wall")
    print("B / A wall, pair by pair: " + " / ".join(f"{r:.2f}" for r in ratios))
    same = {r["md5"] for r in runs["A"] + runs["B"]}
    print("the same digests in every run" if len(same) == 1 else f"digests differ: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
