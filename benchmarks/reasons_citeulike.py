"""Reasons on CiteULike-t's real libraries: how many picks ``digest.compose`` leaves out for want
of a reason (issue 27), which reason leads each pick, and recall@10, through eval_product.py's
own store (held-out readers, issue 17's 6,000-paper pool, the Hugging Face feed with upvotes,
the bundled encoder's vectors from encode_citeulike.py).

A quick check beside eval_product.py, not a recall evaluation: run it before and after a change
to reasons; recall@10 must not move (reasons never change scores).

    python -m benchmarks.reasons_citeulike --users 30 --vectors ~/.cache/paperwire-bench/citeulike-minilm.npy
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import eval_product as ep  # the store, readers and split of the recall evaluation
from paperwire import digests  # noqa: E402
from paperwire.store import Store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30, help="held-out readers")
    parser.add_argument("--pool", type=int, default=6000, help="papers in the pool, at least")
    parser.add_argument("--vectors", type=Path, required=True, help="encode_citeulike.py's .npy")
    args = parser.parse_args(argv)
    counts, libraries, vocab = ep.citeulike()
    users = ep.readers(libraries, args.users, False)
    splits = ep.eval_ranking.split(libraries, users, ep.SEED)
    train = {u: splits[u][0] for u in users}
    test = {u: splits[u][1] for u in users}
    upvotes = ep.eval_ranking.popularity_counts(libraries, splits, counts.shape[0])
    pool = ep.pool_of(libraries, users, args.pool, counts.shape[0])
    vectors = (ep.embed.ENCODER, np.load(args.vectors).astype(np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hf.db"
        ep.build_store(db, ep.feed_document(counts, vocab, pool, upvotes), train, vectors)
        config = ep.config_for(users, ep.embed.ENCODER)
        with Store(db) as store:
            composed = digests.compose(
                store, config, now=ep.NOW, since=ep.NOW - dt.timedelta(days=7), limit=ep.DIGEST
            )
    picks = {
        int(s.id[1:]): [int(p.paper_id.split(".")[1]) for p in composed[s.id].picks]
        for s in config.subscribers
    }
    lengths = collections.Counter(len(p) for p in picks.values())
    leading = collections.Counter(
        p.reasons[0].split(" ", 1)[0] for d in composed.values() for p in d.picks
    )
    print(f"{len(users)} held-out readers, pool {len(pool)}, digest {ep.DIGEST}")
    print(f"digest lengths: {dict(sorted(lengths.items()))}")
    print(f"picks left out: {ep.DIGEST * len(users) - sum(len(p) for p in picks.values())}")
    print(f"first word of each pick's first reason: {dict(leading.most_common())}")
    print(f"recall@10: {ep.recall(picks, test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
