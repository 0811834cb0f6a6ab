"""What a reader receives: digests of real arXiv and Hugging Face papers, judged as a reader would.

Ten subscribers write their interests the way readers do (phrases split by commas, semicolons or
new lines, chosen before looking at any pick); four of them also name seed papers (as a
versioned id or an arXiv URL) or thumb up papers found by a word of their title. The store holds
the 690 real items of arXiv's cs RSS feed of 2025-04-11, the 30 papers of a real Hugging Face
``/api/daily_papers`` response (upvotes, ``ai_keywords``) and the 319 distinct papers of the
Hugging Face listings in ``daily-papers-seeds.jsonl`` (upvotes). Everything goes through
``digest.compose`` / ``digest.score_matrix``, the code ``paperwire digest`` and alerts run.

Reported, over every subscriber's 10 picks:

* **on topic**: the share of picks that contain one of the reader's phrases (case-insensitive,
  hyphens as spaces, a plural last word allowed) or resemble a liked or seed paper (cosine ≥ 0.3
  on a TF-IDF of this harness's own, not paperwire's);
* **reasons in the reader's words**: the share of reasons that quote one of their phrases or
  a liked/seed paper's title;
* **own papers back**: picks that are a seed or a voted paper (must be 0);
* **lifted by upvotes**: picks that are in the digest only because of upvotes (absent when
  ``Weights.popularity`` is 0) while a paper that matches more of the reader's phrases or liked
  papers was pushed out by them;
* **arxiv-frontpage AUC**: one researcher's labelled papers (benchmarks/README.md) scored
  through ``digest.score_matrix`` with the interests text of ``eval_ranking.py``.

    python benchmarks/eval_reader.py              # about a minute
    python benchmarks/eval_reader.py --show 3     # and each reader's top 3 with reasons
    python benchmarks/eval_reader.py --embeddings wordllama   # with semantic ranking (issue 15)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score

from paperwire.config import parse_config
from paperwire.paper import Paper
from paperwire.rank import compose as digest
from paperwire.sources import hf_daily
from paperwire.store import Store

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # --data to point elsewhere
NOW = dt.datetime(2025, 4, 12, 8, 0, tzinfo=dt.UTC)
LIKED_COSINE = 0.3

# (id, interests, seed papers as "title words" to look up, thumbs-up as "title words")
READERS = [
    ("inference", "speculative decoding, KV cache, LLM inference throughput, sparse attention",
     ["KV cache"], ["speculative"]),
    ("gnn", "graph neural networks", [], []),
    ("rag", "retrieval-augmented generation; dense retrieval; reranking", [], ["retrieval"]),
    ("quant", "post-training quantization\nlow-bit LLM weights\nGPTQ", ["weight quantization"],
     []),
    ("robots", "robot manipulation, imitation learning, sim-to-real", [], []),
    ("agents", "LLM agents, tool use, web navigation", ["web agent"], ["agent"]),
    ("rlhf", "reinforcement learning from human feedback, reward models, preference optimization",
     [], []),
    ("vision", "diffusion models, text-to-image generation, video generation", [], []),
    ("privacy", "federated learning, differential privacy", [], []),
    ("bandits", "multi-armed bandits, Bayesian optimization, hyperparameter optimization", [], []),
]  # fmt: skip


def corpus_papers() -> list[Paper]:
    """The real papers of the three sources, as the fetch stage would store them."""
    papers = []
    for line in (DATA / "arxiv-frontpage" / "downloads_2025-04-11.jsonl").open():
        item = json.loads(line)
        aid = item["url"].rsplit("/", 1)[1]
        papers.append(Paper(aid, item["title"], item["abstract"], url=item["url"], source="arxiv"))
    hf = sorted((DATA / "feeds").glob("hf_daily_papers_*.json"))[0]
    papers += hf_daily.parse(json.loads(hf.read_text()), source="hf-daily")
    seen = set()
    for line in (DATA / "daily-papers-seeds.jsonl").open():
        item = json.loads(line)
        if item["title"] in seen:
            continue
        seen.add(item["title"])
        key = "hf-" + hashlib.sha1(item["title"].encode()).hexdigest()[:10]
        papers.append(
            Paper(key, item["title"], item["abstract"], url="", source="hf-listing",
                  upvotes=item.get("upvotes"))
        )  # fmt: skip
    return papers


def _find(papers: list[Paper], word: str, skip: set[str]) -> Paper:
    return next(p for p in papers if word.lower() in p.title.lower() and p.paper_id not in skip)


def _as_given(paper_id: str, i: int) -> str:
    """How a reader pastes a seed: a versioned id or an arXiv URL."""
    if not re.match(r"\d{4}\.\d{4,5}$", paper_id):
        return paper_id
    return f"{paper_id}v2" if i % 2 == 0 else f"https://arxiv.org/abs/{paper_id}v3"


def _ranking(embeddings: str | None) -> str:
    """The config's ``ranking`` section: semantic ranking on with this model, or nothing."""
    return f"ranking:\n  embeddings: {embeddings}\n" if embeddings else ""


def build(store: Store, papers: list[Paper], embeddings: str | None = None):
    store.add_papers(papers, now=NOW - dt.timedelta(days=1))
    lines = [_ranking(embeddings) + "subscribers:"]
    own: dict[str, set[str]] = {}
    liked: dict[str, list[str]] = {}
    for i, (sid, interests, seeds, likes) in enumerate(READERS):
        taken: set[str] = set()
        seed_papers = [_find(papers, w, taken) for w in seeds]
        taken |= {p.paper_id for p in seed_papers}
        liked_papers = [_find(papers, w, taken) for w in likes]
        for paper in liked_papers:
            store.record_vote(sid, paper.paper_id, 1, via="eval", now=NOW - dt.timedelta(hours=3))
        own[sid] = {p.paper_id for p in seed_papers + liked_papers}
        liked[sid] = [p.paper_id for p in seed_papers + liked_papers]
        given = [_as_given(p.paper_id, i + k) for k, p in enumerate(seed_papers)]
        lines.append(f"  - id: {sid}\n    email: {sid}@example.org\n    digest_size: 10")
        lines.append(f"    interests: {json.dumps(interests)}")
        if given:
            lines.append(f"    seed_papers: {json.dumps(given)}")
    config = parse_config("\n".join(lines) + "\n", label="eval.yaml", env={})
    return config, own, liked


def _norm(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def phrases_of(interests: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,;\n]+", interests) if p.strip()]


def contains(text: str, phrase: str) -> bool:
    """The reader's test: the phrase as written (a plural or singular last word allowed)."""
    body, words = _norm(text), _norm(phrase).split()
    last = words[-1]
    variants = {last, last + "s", last[:-1] if last.endswith("s") else last}
    return any(_norm(" ".join(words[:-1] + [v])) in body for v in variants)


def evaluate(store: Store, config, papers: list[Paper], own, liked, show: int) -> dict:
    by_id = {p.paper_id: p for p in papers}
    text = {p.paper_id: f"{p.title}. {p.abstract}" for p in papers}
    ids = list(text)
    tfidf = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit([text[i] for i in ids])
    vec = dict(zip(ids, tfidf.transform([text[i] for i in ids]), strict=True))

    def match(sub, pid: str) -> int:
        """How many of the reader's phrases and liked papers this paper matches."""
        n = sum(contains(text[pid], ph) for ph in phrases_of(sub.interests))
        return n + sum(float((vec[pid] @ vec[lp].T).toarray()[0, 0]) >= LIKED_COSINE
                       for lp in liked[sub.id])  # fmt: skip

    since = NOW - dt.timedelta(days=3)
    default = digest.compose(store, config, now=NOW, since=since, limit=10)
    no_pop = digest.compose(
        store, config, now=NOW, since=since, limit=10,
        weights=replace(digest.DEFAULT_WEIGHTS, popularity=0.0),
    )  # fmt: skip
    picks = on_topic = reasons = reader_reasons = own_back = lifted = 0
    for sub in config.subscribers:
        got = default[sub.id].picks
        titles = [by_id[p].title.lower() for p in liked[sub.id]]
        words = [ph.lower() for ph in phrases_of(sub.interests)]
        if show:
            print(f"\n{sub.id}: {sub.interests!r}")
        for n, pick in enumerate(got, 1):
            picks += 1
            on_topic += match(sub, pick.paper_id) > 0
            own_back += pick.paper_id in own[sub.id]
            for reason in pick.reasons:
                reasons += 1
                low = reason.lower()
                reader_reasons += any(w in low for w in words) or any(t in low for t in titles)
            if n <= show:
                print(f"  {n}. {pick.title[:90]}  (upvotes {pick.paper.get('upvotes')})")
                print(f"     why: {'; '.join(pick.reasons)}")
        with_pop = {p.paper_id for p in got}
        without = {p.paper_id for p in no_pop[sub.id].picks}
        pushed_out = [match(sub, p) for p in without - with_pop]
        for pid in with_pop - without:
            lifted += bool(pushed_out) and match(sub, pid) < max(pushed_out)
    return {
        "subscribers": len(config.subscribers),
        "picks": picks,
        "on topic (phrase or liked paper)": round(on_topic / picks, 3),
        "reasons that are interest phrases or liked titles": round(reader_reasons / reasons, 3),
        "reasons": reasons,
        "own papers back": own_back,
        "picks lifted by upvotes over a better-matching paper": lifted,
    }


def frontpage_auc(tmp: Path, embeddings: str | None = None) -> dict:
    """AUC of liked vs disliked labelled papers through ``digest.score_matrix``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_ranking import FRONTPAGE_INTERESTS, frontpage_items

    root = DATA / "arxiv-frontpage"
    items = frontpage_items(root)
    keys = ["fp-" + hashlib.sha1(p["title"].encode()).hexdigest()[:10] for p in items]
    papers = [Paper(k, p["title"], p["abstract"], source="frontpage") for k, p in zip(keys, items, strict=True)]  # fmt: skip
    for line in (root / "downloads_2025-04-11.jsonl").open():
        item = json.loads(line)
        papers.append(Paper(item["url"].rsplit("/", 1)[1], item["title"], item["abstract"]))
    liked = np.array([p["weight"] > 0 for p in items])
    strong = np.array([abs(p["weight"]) >= 1 for p in items])
    text = _ranking(embeddings) + f"subscribers:\n  - id: fp\n    email: fp@example.org\n    interests: {json.dumps(FRONTPAGE_INTERESTS)}\n"  # fmt: skip
    config = parse_config(text, label="fp.yaml", env={})
    with Store(tmp / "frontpage.db") as store:
        store.add_papers(papers, now=NOW - dt.timedelta(days=1))
        scores = digest.score_matrix(store, config, None, keys, now=NOW)[0]
    return {
        "interests text, all labelled papers": round(float(roc_auc_score(liked, scores)), 3),
        "interests text, |weight| >= 1": round(
            float(roc_auc_score(liked[strong], scores[strong])), 3
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=0, help="print each reader's top N")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--embeddings", help="ranking.embeddings: wordllama or a model folder")
    args = parser.parse_args(argv)
    globals()["DATA"] = args.data
    papers = corpus_papers()
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "reader.db") as store:
            config, own, liked = build(store, papers, args.embeddings)
            result = evaluate(store, config, papers, own, liked, args.show)
        result["arxiv-frontpage AUC (digest.score_matrix)"] = frontpage_auc(
            Path(tmp), args.embeddings
        )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
