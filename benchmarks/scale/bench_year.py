"""A store a year old: what one ``paperwire digest`` costs when the corpus holds a year of
arXiv-sized days (benchmarks/scale/README.md, "A year of papers").

Every stored paper is part of the run's corpus (IDF, the whitening sample, profiles of papers
liked months ago), so a deployment's memory grows with its store. This builds a store of
``--days`` days of ``--per-day`` papers (550 a day is arXiv cs.* with cross-lists), each a real
arXiv abstract of arxiv-frontpage's 690 with its sentences rotated (each of the 690 returns
every 690 papers, with a different first sentence) and its real vector, stored and analysed as
``fetch`` stores them; 30 readers with an interests text, 40 thumbs-up and 10 thumbs-down
spread over the year; then ``paperwire digest --json --limit 10 --since <yesterday>`` in a
fresh process (wall, CPU, peak RSS from ``os.wait4``).

    python -m benchmarks.scale.bench_year                       # 365 days × 550: 200,750 papers
    python -m benchmarks.scale.bench_year --days 90             # a quarter
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import eval_product as ep
from benchmarks.eval_crowd import digest_run
from paperwire.paper import Paper, paper_text, text_hash
from paperwire.rank import core as rank
from paperwire.rank import embed, terms
from paperwire.store import Store

LISTING = (
    Path(__file__).resolve().parents[3] / "shared/data/arxiv-frontpage/downloads_2025-04-11.jsonl"
)
OUT = Path(__file__).resolve().parents[1] / "out"
NOW = ep.NOW
READERS = 30
TOPICS = [
    "speculative decoding; KV cache compression",
    "medical imaging; segmentation",
    "reinforcement learning for language model reasoning",
    "retrieval-augmented generation",
    "graph neural networks",
]


def build(db: Path, days: int, per_day: int) -> int:
    rows = [json.loads(line) for line in LISTING.open()]
    model = embed.load_model(embed.ENCODER)
    vectors = model.embed([paper_text(r["title"], r["abstract"]) for r in rows])
    sentences = [re.split(r"(?<=\.) ", r["abstract"]) for r in rows]
    n = 0
    with Store(db) as store:
        for day in range(days):
            papers, blobs = [], []
            for _ in range(per_day):
                i, turn = n % len(rows), n // len(rows)
                s = sentences[i]
                abstract = " ".join(s[turn % len(s) :] + s[: turn % len(s)])
                paper_id = f"{2500 + day // 31:04d}.{n:06d}"
                papers.append(Paper(paper_id, rows[i]["title"], abstract, authors=["A. Author"],
                                    url=f"https://arxiv.org/abs/{paper_id}", source="arxiv"))  # fmt: skip
                text = paper_text(rows[i]["title"], abstract)
                blobs.append((paper_id, model.name, text_hash(text), embed.to_blob(vectors[i])))
                n += 1
            store.add_papers(papers, now=NOW - dt.timedelta(days=days - day, hours=-1))
            store.set_embeddings(blobs)
        terms.refresh(store)  # what fetch does after storing
        ids = [r["paper_id"] for r in store.db.query("select paper_id from papers")]
        rng = np.random.default_rng(0)
        older = len(ids) - per_day  # votes on papers before the last day
        store.record_votes(
            (
                (f"r{u}", ids[int(j)], vote)
                for u in range(READERS)
                for vote, k in ((1, 40), (-1, 10))
                for j in rng.choice(older, k, replace=False)
            ),
            via="import",
        )
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=550)
    args = parser.parse_args(argv)
    # a store analysed by another analyser (new rules) would be analysed again by every run
    folder = OUT / f"year-{args.days}x{args.per_day}-{terms.analyser(rank.TextModel())}"
    db, config = folder / "store.db", folder / "subscribers.yaml"
    if not db.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        made = build(folder / "building.db", args.days, args.per_day)
        (folder / "building.db").rename(db)
        print(f"built {made:,} papers in {time.perf_counter() - started:.0f} s", flush=True)
    lines = ["ranking:", "  embeddings: minilm", "subscribers:"]
    for u in range(READERS):
        lines += [f"  - id: r{u}", f"    email: r{u}@example.org",
                  f'    interests: "{TOPICS[u % len(TOPICS)]}"']  # fmt: skip
    config.write_text("\n".join(lines) + "\n")
    run = folder / "run.db"
    shutil.copyfile(db, run)  # each run from the same store: a digest writes caches
    figures = digest_run(run, config, folder / "digest.json", since=NOW - dt.timedelta(days=1))
    picks = json.loads((folder / "digest.json").read_text())
    figures["papers"] = args.days * args.per_day
    figures["readers_with_picks"] = sum(1 for p in picks.values() if p)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
