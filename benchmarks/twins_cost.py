"""What finding one paper under two ids (rank/twins.py) costs a corpus build, on real text.

A store of arxiv-frontpage's and the 2025-04-11 RSS day's real titles, authors and abstracts
(../shared/data), repeated with a counter so that every title is its own, 500 papers a day; a
third of the older papers sent to a reader (the papers a bounded corpus leaves out are read by
title when they went out). ``Corpus.build`` bounded at ``--corpus`` papers, timed ``--runs``
times. Run it under another checkout's ``src`` to compare:

    python -m benchmarks.twins_cost                                   # this checkout
    PYTHONPATH=.:/path/to/other/src python -m benchmarks.twins_cost   # another one, same store
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

from benchmarks import eval_semantic as es
from paperwire.paper import Paper
from paperwire.rank import terms
from paperwire.rank.corpus import Corpus
from paperwire.rank.scope import Scope
from paperwire.store import Store

OUT = Path(__file__).resolve().parent / "out"
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def build_store(path: Path, papers: int, sent_before: int) -> None:
    items, downloads = es.frontpage_data()
    real = [p for p in items + downloads if p.get("authors")]
    with Store(path) as store:
        batch = []
        for i in range(papers):
            p = real[i % len(real)]
            batch.append(
                Paper(f"x{i}", f"{p['title']} {i}", f"{p['abstract']} {i}", authors=p["authors"])
            )
            if len(batch) == 5000 or i == papers - 1:
                store.add_papers(batch, now=NOW - dt.timedelta(days=(papers - i) / 500))
                batch = []
        sent = [f"x{i}" for i in range(0, sent_before, 3)]
        for k in range(0, len(sent), 10):
            store.open_delivery(
                "reader", "digest", f"p{k}", "email", message_id=f"<{k}@bench>",
                content_hash="h", papers=[(p, 1.0, []) for p in sent[k : k + 10]], now=NOW,
            )  # fmt: skip
        terms.refresh(store)  # as fetch does: each paper's text analysed once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=160_000)
    parser.add_argument("--corpus", type=int, default=60_000, help="ranking.corpus_papers")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    path = OUT / f"twins-{args.papers}.db"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        started = time.perf_counter()
        build_store(path, args.papers, sent_before=args.papers - args.corpus)
        print(f"# store built in {time.perf_counter() - started:.0f} s: {path}")
    with Store(path) as store:
        scope = Scope(store.corpus_since(args.corpus), frozenset())
        took = []
        for _ in range(args.runs):
            started = time.perf_counter()
            corpus = Corpus.build(store, scope)
            took.append(time.perf_counter() - started)
    print(
        f"Corpus.build of {len(corpus.ids)} papers (of {args.papers}): "
        + " / ".join(f"{t:.2f}" for t in took)
        + " s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
