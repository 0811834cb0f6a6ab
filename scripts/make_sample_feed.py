"""Build the bundled offline sample feeds (``src/paperwire/data/sample-*``) from real records.

- ``sample-arxiv-cs.xml``: 170 of the 690 real items of arXiv's ``cs`` RSS feed of 2025-04-11
  (``../shared/data/arxiv-frontpage/downloads_2025-04-11.jsonl``), written in rss.arxiv.org's
  format by ``scripts/arxiv_rss.py``: every item about what the demo readers follow (faster or
  smaller language models, retrieval), then the day's other items in feed order, as the rest of
  a real day's listing.
- ``sample-hf-daily-papers.json``: the 30 papers of Hugging Face's ``/api/daily_papers`` for
  2026-06-12 (``../shared/data/feeds/hf_daily_papers_2026-06-12_sotawhat.json``), keeping the
  fields paperwire reads.

Every paper keeps its real arXiv id, authors and date, so its links open the real abstract page
and PDF.

    python scripts/make_sample_feed.py ../shared/data src/paperwire/data
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from arxiv_rss import load_items, rss

ARXIV_PAPERS = 170
# What the three demo readers follow (src/paperwire/data/example-subscribers.yaml).
DEMO_TOPICS = re.compile(
    r"retriev|rerank|quantiz|KV cache|key-value|speculative|pruning|distill|low-rank|LoRA|compress",
    re.IGNORECASE,
)
HF_PAPER_FIELDS = (
    "id", "authors", "publishedAt", "title", "summary", "upvotes",
    # what the digest shows beside the abstract: a one-line TL;DR, key phrases, code and project
    "ai_summary", "ai_keywords", "githubRepo", "projectPage",
)  # fmt: skip


def arxiv_sample(source: Path) -> str:
    items = load_items(source / "arxiv-frontpage" / "downloads_2025-04-11.jsonl")
    on_topic = [i for i in items if DEMO_TOPICS.search(f"{i['title']} {i['abstract']}")]
    others = [i for i in items if i not in on_topic]
    chosen = {id(i) for i in on_topic + others[: max(0, ARXIV_PAPERS - len(on_topic))]}
    return rss([i for i in items if id(i) in chosen])  # in the day's own order


def hf_sample(source: Path) -> str:
    raw = json.loads(
        (source / "feeds" / "hf_daily_papers_2026-06-12_sotawhat.json").read_text("utf-8")
    )
    kept = []
    for item in raw:
        paper = {key: item["paper"][key] for key in HF_PAPER_FIELDS if key in item["paper"]}
        paper["authors"] = [
            {"name": a["name"], "hidden": a.get("hidden", False)} for a in paper["authors"]
        ]
        kept.append({"paper": paper, "publishedAt": item["publishedAt"], "title": item["title"]})
    return json.dumps(kept, ensure_ascii=False, indent=1) + "\n"


def main(source: str, target: str) -> None:
    source_dir, target_dir = Path(source), Path(target)
    arxiv = arxiv_sample(source_dir)
    (target_dir / "sample-arxiv-cs.xml").write_text(arxiv, encoding="utf-8")
    (target_dir / "sample-hf-daily-papers.json").write_text(hf_sample(source_dir), "utf-8")
    print(f"{arxiv.count('<item>')} arXiv items and 30 Daily Papers written to {target_dir}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
