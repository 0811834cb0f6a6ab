"""What a reader receives: digests of real arXiv and Hugging Face papers, judged as a reader would.

Ten subscribers write their interests the way readers do (phrases split by commas, semicolons or
new lines, chosen before looking at any pick); four of them also name seed papers (as a
versioned id or an arXiv URL) or thumb up papers found by a word of their title. Issue 27 adds
six readers who imported a library (``seeds import``: papers found by a word of their title,
recorded as the command records them; one also wrote interests, one also thumbed up five
papers), one with a single seed paper, two with thumbs-up only, and the demo's three readers
(ada, grace, rag-team: the bundled sample feeds and example-subscribers.yaml as shipped). The store holds
the 690 real items of arXiv's cs RSS feed of 2025-04-11, the 30 papers of a real Hugging Face
``/api/daily_papers`` response (upvotes, ``ai_keywords``) and the 319 distinct papers of the
Hugging Face listings in ``daily-papers-seeds.jsonl`` (upvotes). Everything goes through
``digest.compose`` / ``digest.score_matrix``, the code ``paperwire digest`` and alerts run.

Reported, over every subscriber's 10 picks (issue 14's readers):

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

and, per group of readers (issue 27: reasons a reader recognises):

* **own words**: the share of picks with a reason that names one of the reader's own papers
  (a seed, library or thumbed-up paper's title) or phrases (of their interests text);
* **cite their paper**: the share of picks whose reasons name one of the reader's papers, and
  of the picks that are there *because of* those papers (not in the digest of the same reader
  without them: same interests, no seeds, no votes);
* **one-word reasons**: reasons quoting a single word that the reader did not write as an
  interest of its own; **boilerplate reasons**: "about" reasons the harness's own judge
  (:data:`BOILERPLATE`, written apart from paperwire's word lists) calls academic prose, not a
  topic: both must be 0;
* **only "new in your feeds"**: picks with no other reason (must be 0), and **left out**:
  digest places left empty because no pick had a reason (paperwire leaves such a paper out).

    python -m benchmarks.eval_reader              # about a minute
    python -m benchmarks.eval_reader --show 3     # and each reader's top 3 with reasons
    python -m benchmarks.eval_reader --embeddings wordllama   # with semantic ranking (issue 15)
    python -m benchmarks.eval_reader --reasons 10  # and every seeded/demo reader's picks + reasons
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

from paperwire import digests, pipeline
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

# Issue 27: readers who imported a library (id, interests, library papers as "title words",
# thumbs-up as "title words"), as a researcher's export holds a few papers of their field.
LIBRARY_READERS = [
    ("lib-agents", "", ["agent"] * 3, []),
    ("lib-quant", "", ["quantization"] * 3 + ["pruning"], []),
    ("lib-video", "", ["diffusion", "diffusion", "video", "video"], []),
    ("lib-two-topics", "", ["retrieval", "retrieval", "graph neural", "graph neural"], []),
    ("lib-rl-reasoning", "reinforcement learning for language model reasoning",
     ["reinforcement"] * 3, []),
    ("lib-agents-up-rl", "", ["agent"] * 3, ["reinforcement learning"] * 5),
]  # fmt: skip
# ... a reader with one seed paper (in the config), and readers with thumbs-up only
SEED_READERS = [("one-seed", "", ["speculative"], [])]
THUMBS_READERS = [
    ("up-rl", "", [], ["reinforcement learning"] * 5),
    ("up-robots", "", [], ["robot"] * 4),
]
# The demo's readers, as shipped: example-subscribers.yaml over the bundled sample feeds.
DEMO = Path(pipeline.__file__).parent / "data" / "example-subscribers.yaml"

# The harness's own judge of boilerplate (written apart from paperwire's rank/topics.py): a
# quoted "about" phrase with one of these words, or ending like an adjective, names no topic.
BOILERPLATE = {
    "achieve", "achieves", "approach", "benefit", "benefits", "crucial", "demonstrate",
    "demonstrates", "existing", "findings", "highlight", "highlights", "important", "insights",
    "key", "method", "methods", "novel", "outperforms", "paper", "present", "presents",
    "promising", "propose", "proposes", "range", "recent", "remarkable", "results", "reveal",
    "reveals", "role", "show", "shows", "significant", "spanning", "study", "substantial",
    "underscoring", "valuable", "various", "wide", "work",
}  # fmt: skip
ADJECTIVE_TAILS = ("ed", "ly", "ous", "ful", "free", "based", "aware", "like", "specific")


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


def build(
    store: Store,
    papers: list[Paper],
    embeddings: str | None = None,
    readers: list[tuple] | None = None,
    library: list[tuple] = (),
):
    """The store and config of ``readers`` (seed papers in the config, thumbs-up) and of
    ``library`` readers (seeds imported as ``seeds import`` records them, thumbs-up); every
    library reader also gets a twin, "<id>.plain", with the same interests and nothing else."""
    store.add_papers(papers, now=NOW - dt.timedelta(days=1))
    lines = [_ranking(embeddings) + "subscribers:"]
    own: dict[str, set[str]] = {}
    liked: dict[str, list[str]] = {}
    readers = READERS if readers is None else readers
    specs = [(sid, text, seeds, [], likes) for sid, text, seeds, likes in readers]
    specs += [(sid, text, [], words, likes) for sid, text, words, likes in library]
    for i, (sid, interests, seeds, imported, likes) in enumerate(specs):
        taken: set[str] = set()
        found = {}
        for kind, words in (("seed", seeds), ("library", imported), ("like", likes)):
            found[kind] = []
            for word in words:
                found[kind].append(_find(papers, word, taken))
                taken.add(found[kind][-1].paper_id)
        for paper in found["like"]:
            store.record_vote(sid, paper.paper_id, 1, via="eval", now=NOW - dt.timedelta(hours=3))
        if found["library"]:
            store.add_seeds(sid, [p.paper_id for p in found["library"]], origin="library.bib")
        mine = found["seed"] + found["library"] + found["like"]
        own[sid] = {p.paper_id for p in mine}
        liked[sid] = [p.paper_id for p in mine]
        given = [_as_given(p.paper_id, i + k) for k, p in enumerate(found["seed"])]
        lines.append(f"  - id: {sid}\n    email: {sid}@example.org\n    digest_size: 10")
        lines.append(f"    interests: {json.dumps(interests)}")
        if given:
            lines.append(f"    seed_papers: {json.dumps(given)}")
        if (sid, interests, seeds, likes) not in READERS:  # issue 27's readers: a twin each
            lines.append(f"  - id: {sid}.plain\n    email: {sid}@example.org\n    digest_size: 10")
            lines.append(f"    interests: {json.dumps(interests)}")
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


def evaluate(
    store: Store, config, papers: list[Paper], own, liked, show: int, only: set[str] | None = None
) -> dict:
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
    default = digests.compose(store, config, now=NOW, since=since, limit=10)
    no_pop = digests.compose(
        store, config, now=NOW, since=since, limit=10,
        weights=replace(digest.DEFAULT_WEIGHTS, popularity=0.0),
    )  # fmt: skip
    picks = on_topic = reasons = reader_reasons = own_back = lifted = 0
    subscribers = [s for s in config.subscribers if only is None or s.id in only]
    for sub in subscribers:
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
        "subscribers": len(subscribers),
        "picks": picks,
        "on topic (phrase or liked paper)": round(on_topic / picks, 3),
        "reasons that are interest phrases or liked titles": round(reader_reasons / reasons, 3),
        "reasons": reasons,
        "own papers back": own_back,
        "picks lifted by upvotes over a better-matching paper": lifted,
    }


# -- issue 27: reasons a reader recognises -----------------------------------------------------


def quoted(reason: str) -> str | None:
    """The phrase or title a reason quotes ("about “KV cache”" → "KV cache"), if any."""
    if "“" not in reason:
        return None
    return reason.split("“", 1)[1].rsplit("”", 1)[0]


def words_of(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def boilerplate(phrase: str) -> bool:
    """The harness's judge: academic prose, not a topic (see BOILERPLATE)."""
    words = words_of(phrase)
    return not words or bool(set(words) & BOILERPLATE) or words[-1].endswith(ADJECTIVE_TAILS)


def reasons_report(
    digests: dict[str, digest.Digest],
    readers: list[str],
    interests: dict[str, str],
    titles: dict[str, set[str]],
    limit: dict[str, int],
    show: int = 0,
) -> dict:
    """The issue 27 figures over ``readers``' digests (see the module's docstring)."""
    picks = own_words = cite = because = because_cite = one_word = boiler = only_new = 0
    left_out = 0
    examples = {"one-word": [], "boilerplate": []}
    for sid in readers:
        got = digests[sid].picks
        text = " ".join(interests[sid].lower().split())
        # single words the reader wrote as interests of their own: between semicolons or new
        # lines ("reranking"), or a name ("GPTQ"); "smaller," before the rest of a phrase is not
        pieces = {p.strip().lower() for p in re.split(r"[;\n]+", interests[sid]) if p.strip()}
        pieces |= {w.lower() for w in re.findall(r"\S+", interests[sid])
                   if re.search(r"[A-Z0-9]", w.strip(",;:."))}  # fmt: skip
        mine = {t.lower() for t in titles[sid]}
        twin = digests.get(f"{sid}.plain")
        plain = {p.paper_id for p in twin.picks} if twin else set()
        left_out += max(limit[sid] - len(got), 0) if digests[sid].candidates >= limit[sid] else 0
        if show:
            print(f"\n{sid}: {interests[sid]!r}; own papers: {sorted(titles[sid])}")
        for n, pick in enumerate(got, 1):
            said = [q.lower() for q in map(quoted, pick.reasons) if q]
            picks += 1
            own_words += any(q in mine or q in text for q in said)
            names_paper = any(q in mine for q in said)
            cite += names_paper
            if twin is not None and pick.paper_id not in plain:
                because += 1
                because_cite += names_paper
            for reason, q in zip(pick.reasons, map(quoted, pick.reasons), strict=True):
                if q is None or q.lower() in mine:
                    continue
                if len(words_of(q)) == 1 and q.lower() not in pieces:
                    one_word += 1
                    examples["one-word"].append(reason)
                if reason.startswith("about") and boilerplate(q):
                    boiler += 1
                    examples["boilerplate"].append(reason)
            only_new += pick.reasons == ["new in your feeds"] and bool(text or mine)
            if n <= show:
                print(f"  {n}. {pick.title[:90]}  (upvotes {pick.paper.get('upvotes')})")
                print(f"     why: {'; '.join(pick.reasons)}")
    return {
        "readers": len(readers),
        "picks": picks,
        "left out (no reason)": left_out,
        "picks naming the reader's own paper or phrase": round(own_words / max(picks, 1), 3),
        "picks naming one of their papers": round(cite / max(picks, 1), 3),
        "picks there because of their papers": because,
        "... of which name one of their papers": round(because_cite / max(because, 1), 3),
        "one-word reasons": one_word,
        "boilerplate reasons": boiler,
        "picks with only 'new in your feeds'": only_new,
        "examples": {k: v[:5] for k, v in examples.items() if v},
    }


def demo_digests(tmp: Path, embeddings: str | None = None):
    """The demo as shipped: example-subscribers.yaml's readers over the bundled sample feeds,
    fetched and ranked at NOW (through pipeline.fetch_all and digest.compose)."""
    text = DEMO.read_text()
    if embeddings:
        text = text.replace("subscribers:\n", _ranking(embeddings) + "subscribers:\n", 1)
    config = parse_config(text, label="example-subscribers.yaml", env={})
    store = Store(tmp / "demo.db")
    pipeline.fetch_all(store, config, now=NOW)
    return store, config, digests.compose(store, config, now=NOW)


def frontpage_papers() -> tuple[list[dict], list[str], list[Paper]]:
    """arxiv-frontpage's labelled items, their ids, and every paper to store: the labelled
    ones, then the 690 arXiv items of the day (the ranking's corpus beside them)."""
    from benchmarks.eval_ranking import frontpage_items

    root = DATA / "arxiv-frontpage"
    items = frontpage_items(root)
    keys = ["fp-" + hashlib.sha1(p["title"].encode()).hexdigest()[:10] for p in items]
    papers = [Paper(k, p["title"], p["abstract"], source="frontpage") for k, p in zip(keys, items, strict=True)]  # fmt: skip
    for line in (root / "downloads_2025-04-11.jsonl").open():
        item = json.loads(line)
        papers.append(Paper(item["url"].rsplit("/", 1)[1], item["title"], item["abstract"]))
    return items, keys, papers


def frontpage_auc(tmp: Path, embeddings: str | None = None) -> dict:
    """AUC of liked vs disliked labelled papers through ``digest.score_matrix``: the reader
    with their interests text, and again with the topics they do not want as well."""
    from benchmarks.eval_ranking import FRONTPAGE_INTERESTS, FRONTPAGE_NOT_INTERESTED

    items, keys, papers = frontpage_papers()
    liked = np.array([p["weight"] > 0 for p in items])
    strong = np.array([abs(p["weight"]) >= 1 for p in items])
    text = _ranking(embeddings) + (
        "subscribers:\n"
        f"  - id: fp\n    email: fp@example.org\n    interests: {json.dumps(FRONTPAGE_INTERESTS)}\n"
        f"  - id: fp-not\n    email: fp@example.org\n    interests: {json.dumps(FRONTPAGE_INTERESTS)}\n"
        f"    not_interested: {json.dumps(FRONTPAGE_NOT_INTERESTED)}\n"
    )  # fmt: skip
    config = parse_config(text, label="fp.yaml", env={})
    with Store(tmp / "frontpage.db") as store:
        store.add_papers(papers, now=NOW - dt.timedelta(days=1))
        scores, avoiding = digest.score_matrix(store, config, None, keys, now=NOW)
    out = {}
    for label, row in (("interests text", scores), ("+ topics not wanted", avoiding)):
        out[f"{label}, all labelled papers"] = round(float(roc_auc_score(liked, row)), 3)
        out[f"{label}, |weight| >= 1"] = round(float(roc_auc_score(liked[strong], row[strong])), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=0, help="print each reader's top N")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--embeddings", help="ranking.embeddings: wordllama or a model folder")
    parser.add_argument(
        "--reasons", type=int, default=0, help="print each issue 27 reader's top N and reasons"
    )
    parser.add_argument("--no-auc", action="store_true", help="leave out arxiv-frontpage's AUC")
    parser.add_argument(
        "--auc-only", action="store_true", help="only arxiv-frontpage's AUC (score_matrix)"
    )
    args = parser.parse_args(argv)
    globals()["DATA"] = args.data
    if args.auc_only:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(frontpage_auc(Path(tmp), args.embeddings), indent=1))
        return 0
    papers = corpus_papers()
    by_id = {p.paper_id: p for p in papers}
    seeded = SEED_READERS + THUMBS_READERS
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "reader.db") as store:
            config, own, liked = build(
                store, papers, args.embeddings, READERS + seeded, LIBRARY_READERS
            )
            result = evaluate(store, config, papers, own, liked, args.show, {r[0] for r in READERS})
            composed = digests.compose(store, config, now=NOW, since=NOW - dt.timedelta(days=3))
            interests = {s.id: s.interests for s in config.subscribers}
            titles = {sid: {by_id[p].title for p in ids} for sid, ids in own.items()}
            limit = {s.id: s.digest_size for s in config.subscribers}
            groups = {
                "interests (issue 14's 10 readers)": [r[0] for r in READERS],
                "library (seeds import)": [r[0] for r in LIBRARY_READERS],
                "one seed paper": [r[0] for r in SEED_READERS],
                "thumbs-up only": [r[0] for r in THUMBS_READERS],
            }
            issue27 = {
                name: reasons_report(composed, ids, interests, titles, limit,
                                     args.reasons if name != groups_first(groups) else 0)
                for name, ids in groups.items()
            }  # fmt: skip
        store, demo, shown = demo_digests(Path(tmp), args.embeddings)
        with store:
            demo_ids = [s.id for s in demo.subscribers]
            issue27["demo (ada, grace, rag-team)"] = reasons_report(
                shown, demo_ids, {s.id: s.interests for s in demo.subscribers},
                {s: set() for s in demo_ids}, {s.id: s.digest_size for s in demo.subscribers},
                args.reasons,
            )  # fmt: skip
        result["issue 27: reasons"] = issue27
        if not args.no_auc:
            result["arxiv-frontpage AUC (digest.score_matrix)"] = frontpage_auc(
                Path(tmp), args.embeddings
            )
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


def groups_first(groups: dict) -> str:
    """issue 14's readers are shown with --show, not --reasons."""
    return next(iter(groups))


if __name__ == "__main__":
    sys.exit(main())
