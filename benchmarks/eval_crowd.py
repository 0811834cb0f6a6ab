"""The held-out readers ranked among a deployment's crowd, through the CLI, timed.

What issue 25 asks of a run at scale: N subscribers with real libraries (CiteULike-t's held-out
readers, each with their 80 %, and the rest of the N drawn with replacement from the other
readers' whole libraries) against every CiteULike-t paper (25,975 candidates), ranked by one
``paperwire digest --json --limit 10`` in a fresh process, with the bundled encoder. It reports
the wall and CPU time per subscriber, the process's peak RSS, and the held-out readers'
recall@10 against the arxiv-sanity-lite recipe on the same candidates (eval_product.py's
protocol and split): the quality figure of a run that size, not of a small one.

    python -m benchmarks.eval_crowd --subscribers 20000 --vectors ~/.cache/paperwire-bench/citeulike-minilm.npy
    python -m benchmarks.eval_crowd --subscribers 20000 --vectors V.npy --feeds atom,hf

The store and its config are kept under benchmarks/out/crowd-N/ (git-ignored) and reused while
they were built from the same feed, readers and vectors; ``--vectors``
is what ``encode_citeulike.py`` writes (without it, the first run encodes every paper).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import eval_product as ep
from benchmarks import eval_ranking
from benchmarks.scale.bench_rank import FIXED_CLOCK
from paperwire.paper import paper_text, text_hash
from paperwire.rank import core as rank
from paperwire.rank import terms
from paperwire.sources import parse_document
from paperwire.store import Store

OUT = Path(__file__).resolve().parent / "out"


def crowd(libraries: list[np.ndarray], users: list[int], n: int) -> list[np.ndarray]:
    """``n`` libraries drawn with replacement from the readers not evaluated (seeded)."""
    others = [u for u, lib in enumerate(libraries) if len(lib) and u not in set(users)]
    picks = np.random.default_rng(ep.SEED).choice(others, max(n, 0), replace=True)
    return [libraries[u] for u in picks]


def config_text(users: list[int], extra: int) -> str:
    lines = ["ranking:", "  embeddings: minilm", "subscribers:"]
    for sid in [f"u{u}" for u in users] + [f"c{j}" for j in range(extra)]:
        lines += [f"  - id: {sid}", f"    email: {sid}@example.org"]
    return "\n".join(lines) + "\n"


def build(
    folder: Path, kind: str, counts, vocab, libraries, users, train, upvotes, extra, vectors
) -> tuple[Path, Path]:
    db, config = folder / f"{kind}.db", folder / "subscribers.yaml"
    pool = np.arange(counts.shape[0])
    document = ep.feed_document(counts, vocab, pool, upvotes if kind == "hf" else None)
    # A kept store is reused only if it was built from this very feed and these vectors and
    # crowd: the stamp beside it says what it was built from.
    made_of = hashlib.sha256(document)
    made_of.update(json.dumps([[int(u) for u in users], int(extra)]).encode())
    # ... and what this code reads from the feed and analyses: a store whose texts were cleaned
    # by older code (6851fe4 kept "p<0.05" as text) gave the old recall, from the old texts
    papers, _ = parse_document(document, source="citeulike-t")
    for paper in papers:
        made_of.update(text_hash(paper_text(paper.title, paper.abstract)).encode())
    made_of.update(terms.analyser(rank.TextModel()).encode())
    if vectors is not None:
        made_of.update(vectors[0].encode() + np.ascontiguousarray(vectors[1]).tobytes())
    stamp = folder / f"{kind}.built-from"
    if db.exists() and stamp.exists() and stamp.read_text() == made_of.hexdigest():
        return db, config
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (db, stamp, *folder.glob(f"{kind}.db-*")):
        stale.unlink(missing_ok=True)
    ep.build_store(db, document, train, vectors)
    with Store(db) as store:
        store.record_votes(
            (
                (f"c{j}", ep.paper_id(int(i)), 1)
                for j, lib in enumerate(crowd(libraries, users, extra))
                for i in lib
            ),
            via="import",
        )
    config.write_text(config_text(users, extra))
    stamp.write_text(made_of.hexdigest())
    return db, config


def digest_run(db: Path, config: Path, out: Path, since: dt.datetime | None = None) -> dict:
    """``paperwire digest --json --limit 10`` in a fresh process at ``ep.NOW``, for the papers
    since ``since`` (a week before): wall, CPU, peak RSS."""
    since = (since or ep.NOW - dt.timedelta(days=7)).strftime("%Y-%m-%d")
    cmd = [sys.executable, "-c", OWN_PEAK + FIXED_CLOCK.format(at=ep.NOW.isoformat())]
    cmd += ["--config", str(config), "--db", str(db), "digest", "--json", "--limit", "10"]
    cmd += ["--since", since]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with out.open("w") as sink, tempfile.TemporaryFile("w+") as said:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=said)
        _, status, usage = os.wait4(proc.pid, 0)
        said.seek(0)
        errors = said.read()
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"paperwire digest failed ({status}): {errors[-2000:]}")
    peak = re.search(r"^VmHWM:\s+(\d+) kB", errors, re.MULTILINE)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        # the process's own high-water mark since exec; ru_maxrss (beside it) also counts the
        # parent's memory the child began with (Linux keeps the pre-exec peak)
        "peak_rss_mib": int(peak.group(1)) / 1024 if peak else usage.ru_maxrss / 1024,
        "ru_maxrss_mib": usage.ru_maxrss / 1024,
        "load": (load, os.getloadavg()[0]),
    }


# the measured process writes its own peak (VmHWM) to stderr as it exits
OWN_PEAK = (
    "import atexit, sys; atexit.register(lambda: sys.stderr.write("
    "next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))); "
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20000, help="in the run, in all")
    parser.add_argument("--users", type=int, default=0, help="held-out readers (0: all)")
    parser.add_argument("--feeds", default="atom", help="atom, hf or both")
    parser.add_argument("--vectors", type=Path, help="encode_citeulike.py's vectors")
    args = parser.parse_args(argv)
    counts, libraries, vocab = ep.citeulike()
    users = ep.readers(libraries, args.users, tune=False)
    splits = eval_ranking.split(libraries, users, ep.SEED)
    train = {u: splits[u][0] for u in users}
    test = {u: splits[u][1] for u in users}
    upvotes = eval_ranking.popularity_counts(libraries, splits, counts.shape[0])
    extra = args.subscribers - len(users)
    folder = OUT / f"crowd-{args.subscribers}"
    vectors = None
    if args.vectors is not None:
        vectors = ep.stored_vectors(
            argparse.Namespace(vectors=args.vectors, embeddings="minilm"), counts, vocab
        )
    recipe_file = ep.CACHE / f"recipe-heldout-{len(users)}.json"
    if recipe_file.exists():
        recipe = {int(u): r for u, r in json.loads(recipe_file.read_text()).items()}
    else:
        pool = np.arange(counts.shape[0])
        recipe = ep.per_reader(ep.recipe_digests(counts, pool, users, train), test)
        recipe_file.write_text(json.dumps(recipe))
    base = float(np.mean(list(recipe.values())))
    print(
        f"# {len(users)} held-out readers among {args.subscribers} subscribers, "
        f"{counts.shape[0]} candidates; recipe recall@10 {base:.4f}",
        flush=True,
    )
    for kind in args.feeds.split(","):
        db, config = build(
            folder, kind, counts, vocab, libraries, users, train, upvotes, extra, vectors
        )
        run = digest_run(db, config, folder / f"digest-{kind}.json")
        digests = json.loads((folder / f"digest-{kind}.json").read_text())
        if len(digests) != args.subscribers:  # a run that drops readers is no faster run
            raise SystemExit(f"{len(digests)} digests for {args.subscribers} subscribers")
        picks = {u: [int(p["paper_id"].split(".")[1]) for p in digests[f"u{u}"]] for u in users}
        mine = ep.per_reader(picks, test)
        value = float(np.mean(list(mine.values())))
        low, high = ep.ratio_interval(mine, recipe)
        n = args.subscribers
        print(
            f"{kind}: recall@10 {value:.4f} = {value / base:.2f}x the recipe (90 % {low:.2f}-"
            f"{high:.2f}); {run['wall_s']:.1f} s wall = {1000 * run['wall_s'] / n:.2f} ms a "
            f"subscriber, CPU {1000 * run['cpu_s'] / n:.2f} ms a subscriber, peak RSS "
            f"{run['peak_rss_mib']:.0f} MiB; load {run['load'][0]:.1f} -> {run['load'][1]:.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
