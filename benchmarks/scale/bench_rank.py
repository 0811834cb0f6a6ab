"""Ranking at scale: N subscribers (CiteULike-t libraries as thumbs-up, resampled) against 2,000
new papers of real arXiv text, through ``paperwire.rank``'s public functions in the order
``digest.compose`` calls them (chunks of ``digest.SUBSCRIBER_CHUNK``: signals → profiles →
score → top-k). Beside it, in the same run, arxiv-sanity-lite's recipe: per subscriber a
``LinearSVC(C=0.01, class_weight="balanced")`` over its TF-IDF features of the same corpus.

The corpus (what ``store.corpus()`` would hold): the 25,975 CiteULike-t papers the subscribers
voted on plus the 2,000 new papers. Each job runs in a fresh process (peak RSS is its own).

    python -m benchmarks.scale.bench_rank                   # the figures in README.md
    python -m benchmarks.scale.bench_rank --quick           # a smoke run (under a minute)
    python -m benchmarks.scale.bench_rank --job paperwire --subscribers 100000 --weights rocchio
    python -m benchmarks.scale.bench_rank --job cli --subscribers 20000   # through the CLI
    python -m benchmarks.scale.bench_rank --job cli --subscribers 20000 --src /tmp/main/src \
        --at 2026-12-01T21:00:00+00:00      # another checkout, the clock fixed
    python -m benchmarks.scale.bench_rank --compare BEFORE.json AFTER.json   # pick by pick

The ``cli`` job is what a real install runs: a SQLite store of ``CLI_PAPERS`` candidate papers
of real text (a third with Hugging Face-like upvotes) and a subscribers.yaml of N readers, each
with an interests text of real phrases, 5 thumbs-up, and in a realistic mix 1-3 seed papers
(written as versioned ids or arXiv URLs, 30 %) and 1-2 thumbs-down (30 %); then
``paperwire digest --json`` in a fresh process, timed whole (start-up, corpus, ranking,
reasons, JSON) with its peak RSS. The store is built once per N under benchmarks/out/.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.scale import _common

NOW = dt.datetime(2025, 4, 11, 6, 0, tzinfo=dt.UTC)
NEW_PAPERS = 2000
POOL = 30  # top-k per subscriber before MMR (digest size 10 × digest.MMR_POOL)
TARGET_S = 30.0
TARGET_RSS_MIB = 1024.0
FULL = 100_000
CLI_PAPERS = 7000
# Interests as readers write them (phrases split by commas): the subscribers cycle through these.
CLI_INTERESTS = [
    "speculative decoding, KV cache, LLM inference throughput, sparse attention",
    "graph neural networks",
    "retrieval-augmented generation; dense retrieval; reranking",
    "post-training quantization, low-bit LLM weights, GPTQ",
    "robot manipulation, imitation learning, sim-to-real",
    "LLM agents, tool use, web navigation",
    "reinforcement learning from human feedback, reward models, preference optimization",
    "diffusion models, text-to-image generation, video generation",
    "federated learning, differential privacy",
    "multi-armed bandits, Bayesian optimization, hyperparameter optimization",
    "code generation, program synthesis",
    "speech recognition; text-to-speech",
]


def _data(n_subscribers: int):
    from paperwire.paper import paper_text

    texts, users = _common.citeulike()
    new = _common.new_papers(NEW_PAPERS)
    new_texts = [paper_text(p["title"], p["abstract"]) for p in new]
    libraries = _common.resampled_libraries(users, n_subscribers)
    titles = [p["title"] for p in new]
    return texts, new_texts, libraries, titles


def _signals(texts, libraries, titles, start, stop, rank):
    rng = random.Random(start)
    out = []
    for i in range(start, stop):
        lib = libraries[i]
        # as digest.subscriber_signals builds them: stored papers named by their corpus row
        votes = [("", 1, NOW - dt.timedelta(days=rng.uniform(0, 365))) for p in lib]
        out.append(
            rank.Signals(
                interests=titles[i % len(titles)],
                votes=votes,
                liked_titles=[(str(p), "") for p in lib],
                corpus_rows=list(lib),
                seed_rows=[],
                vote_rows=list(lib),
            )
        )
    return out


def job_paperwire(n: int, weights_name: str, profile: bool, background: int = 0) -> dict:
    """paperwire.rank over n subscribers, timed per stage.

    ``background`` > 0 hands ``build_profiles`` a fixed-seed sample of that many corpus rows
    instead of the whole corpus: what recommendation "classifier on a bounded background"
    would cost, measured through the same public function.
    """
    from paperwire.rank import compose as digest
    from paperwire.rank import core as rank

    weights = (
        rank.Weights() if weights_name == "default" else rank.Weights(classifier_min_likes=10**9)
    )
    t0 = time.perf_counter()
    texts, new_texts, libraries, titles = _data(n)
    t_data = time.perf_counter() - t0
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    t0 = time.perf_counter()
    corpus_texts = texts + new_texts
    model = rank.TextModel().fit(corpus_texts)
    corpus = model.transform(corpus_texts)
    papers = corpus[len(texts) :]
    prior = rank.popularity_prior([None] * NEW_PAPERS)
    position = None
    if background:
        rows = np.sort(np.random.default_rng(0).choice(corpus.shape[0], background, replace=False))
        position = {int(r): i for i, r in enumerate(rows)}
        background_matrix = corpus[rows]
    t_corpus = time.perf_counter() - t0
    stages = {"signals": 0.0, "labels": 0.0, "profiles": 0.0, "score": 0.0, "top_k": 0.0}
    profile_nnz = 0
    classifier_rows = 0
    checksum = 0
    for start in range(0, n, digest.SUBSCRIBER_CHUNK):
        stop = min(n, start + digest.SUBSCRIBER_CHUNK)
        t = time.perf_counter()
        signals = _signals(texts, libraries, titles, start, stop, rank)
        stages["signals"] += time.perf_counter() - t
        t = time.perf_counter()
        if position is not None:
            texts_batch = model.transform([sig.interests for sig in signals])
            labels = [
                rank.labels_from_signals(model, sig, NOW, corpus, texts_batch[k])
                for k, sig in enumerate(signals)
            ]
            stages["labels"] += time.perf_counter() - t
            t = time.perf_counter()
            for lab in labels:
                lab.corpus_rows = np.array(
                    [position[r] for r in lab.corpus_rows if r in position], dtype=np.int64
                )
            profiles = rank.build_profiles(labels, background_matrix, weights)
        else:  # the product's path (digest.compose)
            profiles = rank.build_profiles_from_signals(model, signals, corpus, NOW, weights)
        stages["profiles"] += time.perf_counter() - t
        t = time.perf_counter()
        scores = rank.score(profiles, papers, prior, weights)
        stages["score"] += time.perf_counter() - t
        t = time.perf_counter()
        pools = rank.top_k(scores, POOL)
        stages["top_k"] += time.perf_counter() - t
        profile_nnz += profiles.matrix.nnz
        classifier_rows += int(profiles.used_classifier.sum())
        checksum += sum(p[0] for p in pools)
        del scores, profiles, signals
    rank_s = sum(stages.values())
    out = {
        "job": f"paperwire-{weights_name}" + (f"-background{background}" if background else ""),
        "subscribers": n,
        "corpus_papers": corpus.shape[0],
        "new_papers": NEW_PAPERS,
        "data_load_s": round(t_data, 2),
        "corpus_vectorise_s": round(t_corpus, 2),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "rank_s": round(rank_s, 2),
        "total_s": round(rank_s + t_corpus, 2),
        "per_subscriber_ms": round(1000 * rank_s / n, 3),
        "mean_profile_nnz": round(profile_nnz / n),
        "classifier_rows": classifier_rows,
        "checksum": int(checksum),
    }
    if prof:
        prof.disable()
        out["profile"] = _summary(prof)
    return out


def _cli_store(n: int) -> tuple[Path, Path]:
    """A store of CLI_PAPERS real-text papers and a config of n subscribers with votes, seeds
    and thumbs-down (see the module docstring); built once per n."""
    from paperwire.paper import Paper
    from paperwire.rank import embed, terms
    from paperwire.rank.session import RankingSession
    from paperwire.store import Store

    folder = _common.REPO / "benchmarks" / "out" / f"cli-{n}"
    db, config = folder / "paperwire.db", folder / "subscribers.yaml"
    if db.exists() and config.exists():
        return db, config
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(_common.SEED)
    items = _common.new_papers(CLI_PAPERS)
    papers = [
        Paper(it["arxiv_id"], it["title"], it["abstract"], authors=it["authors"],
              url=f"https://arxiv.org/abs/{it['arxiv_id']}", source="bench",
              upvotes=rng.randint(0, 150) if rng.random() < 0.33 else None)
        for it in items
    ]  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    ids = [p.paper_id for p in papers]
    lines = ["secret: bench-secret-not-for-production", "first_digest_days: 3", "feeds: []"]
    lines.append("subscribers:")
    votes = []
    for i in range(n):
        sid = f"s{i:06d}"
        picked = rng.sample(ids, 9)
        votes += [(sid, pid, 1) for pid in picked[:5]]
        if rng.random() < 0.3:
            votes += [(sid, pid, -1) for pid in picked[5 : 5 + rng.randint(1, 2)]]
        seeds = []
        if rng.random() < 0.3:
            seeds = [f"{pid}v2" if k % 2 else f"https://arxiv.org/abs/{pid}v1"
                     for k, pid in enumerate(picked[7 : 7 + rng.randint(1, 2)])]  # fmt: skip
        lines.append(
            f"  - {{id: {sid}, email: {sid}@mail.example, digest_size: 10, "
            f"interests: {json.dumps(CLI_INTERESTS[i % len(CLI_INTERESTS)])}, "
            f"seed_papers: {json.dumps(seeds)}}}"
        )
    with Store(db) as store:
        store.add_papers(papers, now=now - dt.timedelta(hours=12))
        terms.refresh(store)  # what `fetch` does after storing papers ...
        RankingSession().embed_stored(store, embed.ENCODER)  # ... with the default sentence encoder
        store.record_votes(votes, via="bench")
    config.write_text("\n".join(lines) + "\n")
    return db, config


def _with_embeddings(db: Path, config: Path, model: str) -> tuple[Path, Path]:
    """A copy of the store and config with ``ranking.embeddings`` set (issue 15): its first
    run embeds every stored paper and keeps the vectors, later runs read them."""
    folder = db.parent.with_name(f"{db.parent.name}-{Path(model).name}")
    if not (folder / "paperwire.db").exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, folder / "paperwire.db")
        text = config.read_text().replace(
            "feeds: []", f"feeds: []\nranking: {{embeddings: {model}}}"
        )
        (folder / "subscribers.yaml").write_text(text)
    return folder / "paperwire.db", folder / "subscribers.yaml"


def _with_not_interested(db: Path, config: Path) -> tuple[Path, Path]:
    """A copy of the store and config where every subscriber also writes topics they do not
    want (``not_interested``: another reader's interests, six along the list): the worst case,
    each reader's phrases matched twice."""
    folder = db.parent.with_name(f"{db.parent.name}-not-interested")
    if not (folder / "paperwire.db").exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, folder / "paperwire.db")
        lines, k = [], 0
        for line in config.read_text().splitlines():
            if line.startswith("  - {id: "):
                avoid = CLI_INTERESTS[(k + len(CLI_INTERESTS) // 2) % len(CLI_INTERESTS)]
                line = line.replace(
                    ", seed_papers:", f", not_interested: {json.dumps(avoid)}, seed_papers:"
                )
                k += 1
            lines.append(line)
        (folder / "subscribers.yaml").write_text("\n".join(lines) + "\n")
    return folder / "paperwire.db", folder / "subscribers.yaml"


def job_cli(
    n: int,
    profile: bool = False,
    src: Path | None = None,
    at: str | None = None,
    embeddings: str | None = None,
    not_interested: bool = False,
) -> dict:
    """``paperwire digest --json`` over n subscribers, in a fresh process (wall, peak RSS);
    ``profile`` runs that process under cProfile (slower; its top functions are added).

    ``src`` runs another checkout's ``src`` folder (e.g. main's, extracted with git archive);
    ``at`` (ISO 8601) fixes the clock the command reads, so that two versions' outputs can be
    compared pick by pick (``--compare``): vote decay moves scores between runs minutes apart.
    The output is kept as digest.json (digest-AT.json with ``at``) beside the store."""
    db, config = _cli_store(n)
    if embeddings:
        db, config = _with_embeddings(db, config, embeddings)
    if not_interested:
        db, config = _with_not_interested(db, config)
    stats = db.parent / "digest.prof"
    under = ["-m", "cProfile", "-o", str(stats)] if profile else []
    entry = ["-m", "paperwire"]
    if at is not None:  # the CLI with its clock fixed (a benchmark-only launcher)
        dt.datetime.fromisoformat(at)  # a bad value fails here, not in the child
        entry = ["-c", FIXED_CLOCK.format(at=at)]
        if profile:
            raise SystemExit("--profile and --at do not combine")
    cmd = [sys.executable, *under, *entry, "--config", str(config), "--db", str(db)]
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src.resolve()), env.get("PYTHONPATH", "")])
    name = "digest.json" if at is None else f"digest-{at.replace(':', '')}.json"
    out = db.parent / name
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with out.open("w") as sink:
        proc = subprocess.Popen([*cmd, "digest", "--json"], stdout=sink, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"paperwire digest failed ({status})")
    digests = json.loads(out.read_text())
    picks = [p for picks in digests.values() for p in picks]
    summary = {"profile": _summary(pstats.Stats(str(stats)), 20)} if profile else {}
    return {
        "job": "paperwire-digest-cli",
        "paperwire": _paperwire_file(env),
        "output": str(out),
        "subscribers": n,
        "embeddings": embeddings,
        "not_interested": not_interested,
        "candidate_papers": CLI_PAPERS,
        "wall_s": round(wall, 2),
        "per_subscriber_ms": round(1000 * wall / n, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "cpu_per_subscriber_ms": round(1000 * (usage.ru_utime + usage.ru_stime) / n, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "picks": len(picks),
        "picks_with_a_liked_reason": sum(
            any(r.startswith("like “") for r in p["reasons"]) for p in picks
        ),
        **summary,
    }


# The CLI with its clock fixed at ``at`` (a benchmark-only launcher; eval_crowd uses it too).
FIXED_CLOCK = (
    "import sys, datetime as dt, paperwire.cli as c; "
    "c.utcnow = lambda: dt.datetime.fromisoformat({at!r}); "
    "sys.argv[0] = 'paperwire'; c.main()"
)


def _paperwire_file(env: dict) -> str:
    """Which paperwire the child imported (``--src`` or the installed one)."""
    code = "import paperwire; print(paperwire.__file__)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def compare_digests(before: Path, after: Path) -> dict:
    """Two ``digest --json`` outputs of the same store and clock, pick by pick."""
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    if a.keys() != b.keys():
        raise SystemExit(f"different subscribers: {len(a.keys() ^ b.keys())} not in both")
    ids = [s for s in a if [p["paper_id"] for p in a[s]] != [p["paper_id"] for p in b[s]]]
    reasons = [s for s in a if [p["reasons"] for p in a[s]] != [p["reasons"] for p in b[s]]]
    fields = [s for s in a if a[s] != b[s]]
    pairs = [pair for s in a for pair in zip(a[s], b[s], strict=False)]
    same = [(x, y) for x, y in pairs if x["paper_id"] == y["paper_id"]]
    return {
        "subscribers": len(a),
        "picks": sum(len(v) for v in a.values()),
        "pick_lists_differing": len(ids),
        "reason_lists_differing": len(reasons),
        "digests_differing_in_any_field": len(fields),
        "max_score_difference": max((abs(x["score"] - y["score"]) for x, y in same), default=0),
        "first_differing": ids[:5],
    }


def job_svm(n: int) -> dict:
    """arxiv-sanity-lite's recipe (serve.py): TF-IDF as its compute.py, LinearSVC per user."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    texts, new_texts, libraries, _ = _data(n)
    t0 = time.perf_counter()
    vectorizer = TfidfVectorizer(
        input="content",
        encoding="utf-8",
        decode_error="replace",
        strip_accents="unicode",
        lowercase=True,
        analyzer="word",
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
        ngram_range=(1, 2),
        max_features=20000,
        norm="l2",
        use_idf=True,
        smooth_idf=True,
        sublinear_tf=True,
        max_df=0.1,
        min_df=5,
        dtype=np.float32,
    )
    x = vectorizer.fit_transform(texts + new_texts).tocsr()
    new_rows = np.arange(len(texts), x.shape[0])
    t_corpus = time.perf_counter() - t0
    t0 = time.perf_counter()
    checksum = 0
    for lib in libraries:
        y = np.zeros(x.shape[0])
        y[lib] = 1
        clf = LinearSVC(class_weight="balanced", verbose=0, max_iter=10000, tol=1e-6, C=0.01)
        clf.fit(x, y)
        scores = clf.decision_function(x[new_rows])
        top = np.argsort(-scores)[:POOL]
        checksum += int(top[0])
    rank_s = time.perf_counter() - t0
    return {
        "job": "arxiv-sanity-lite-svm",
        "subscribers": n,
        "corpus_papers": x.shape[0],
        "corpus_vectorise_s": round(t_corpus, 2),
        "rank_s": round(rank_s, 2),
        "per_subscriber_ms": round(1000 * rank_s / n, 3),
        "checksum": checksum,
    }


def _summary(prof: cProfile.Profile | pstats.Stats, n: int = 12) -> list[str]:
    """The top functions by own time, one line each."""
    stream = io.StringIO()
    stats = prof if isinstance(prof, pstats.Stats) else pstats.Stats(prof, stream=stream)
    rows = []
    for (file, line, name), (_cc, nc, tt, ct, _) in stats.stats.items():
        rows.append((tt, ct, nc, f"{Path(file).name}:{line}({name})"))
    rows.sort(reverse=True)
    return [
        f"{tt:8.2f}s own {ct:8.2f}s cum {nc:>9} calls  {where}" for tt, ct, nc, where in rows[:n]
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--job", choices=("paperwire", "svm", "cli"))
    ap.add_argument("--subscribers", type=int)
    ap.add_argument("--weights", choices=("default", "rocchio"), default="default")
    ap.add_argument("--profile", action="store_true", help="add a cProfile summary")
    ap.add_argument("--background", type=int, default=0, help="classifier background sample")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rocchio-subscribers", type=int, default=5000)
    ap.add_argument("--classifier-subscribers", type=int, default=20)
    ap.add_argument("--svm-subscribers", type=int, default=200)
    ap.add_argument("--out", type=Path, default=_common.HERE / "results" / "rank.json")
    ap.add_argument("--src", type=Path, help="cli job: run this checkout's src folder")
    ap.add_argument(
        "--embeddings", help="cli job: with ranking.embeddings set to this model (issue 15)"
    )
    ap.add_argument("--at", help="cli job: fix the clock (ISO 8601), for --compare")
    ap.add_argument(
        "--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
        help="compare two digest --json outputs pick by pick, and exit",
    )  # fmt: skip
    ap.add_argument(
        "--not-interested",
        action="store_true",
        help="cli job: every subscriber also writes topics they do not want",
    )
    args = ap.parse_args(argv)
    if args.compare:
        print(json.dumps(compare_digests(*args.compare), indent=1))
        return 0
    if args.job == "paperwire":
        _common.emit(
            job_paperwire(args.subscribers or 1000, args.weights, args.profile, args.background)
        )
        return 0
    if args.job == "svm":
        _common.emit(job_svm(args.subscribers or 200))
        return 0
    if args.job == "cli":
        result = job_cli(
            args.subscribers or 2000,
            args.profile,
            args.src,
            args.at,
            args.embeddings,
            args.not_interested,
        )
        print(json.dumps(result), flush=True)
        return 0

    if args.quick:
        args.rocchio_subscribers, args.classifier_subscribers, args.svm_subscribers = 500, 3, 20
    me = Path(__file__).resolve()
    runs = [
        ["--job", "paperwire", "--weights", "rocchio", "--subscribers", "1"],
        ["--job", "paperwire", "--weights", "rocchio",
         "--subscribers", str(args.rocchio_subscribers)],
        ["--job", "paperwire", "--weights", "default", "--profile",
         "--subscribers", str(args.classifier_subscribers)],
        ["--job", "svm", "--subscribers", str(args.svm_subscribers)],
    ]  # fmt: skip
    results = []
    for run in runs:
        print("running", " ".join(run), file=sys.stderr, flush=True)
        results.append(_common.run_job(me, run))
        print(json.dumps(results[-1], indent=1), file=sys.stderr, flush=True)
    baseline, rocchio, default, svm = results
    report = {"machine": _common.machine(), "runs": results, "extrapolated_to": FULL}
    print(f"\nRanking, {NEW_PAPERS} new papers, corpus {rocchio['corpus_papers']} papers")
    print(
        f"{'model':<34}{'measured on':>12}{'ms/subscriber':>15}{'100k (s)':>11}{'peak RSS MiB':>14}"
    )
    for r in (rocchio, default, svm):
        est = r["per_subscriber_ms"] * FULL / 1000 + r["corpus_vectorise_s"]
        r["estimate_100k_s"] = round(est, 1)
        print(
            f"{r['job']:<34}{r['subscribers']:>12}{r['per_subscriber_ms']:>15.2f}"
            f"{est:>11.0f}{r['peak_rss_mib']:>14.0f}"
        )
    for r in (rocchio, default):
        r["speedup_vs_svm_per_subscriber"] = round(
            svm["per_subscriber_ms"] / r["per_subscriber_ms"], 2
        )
        print(f"{r['job']}: {r['speedup_vs_svm_per_subscriber']}x the SVM recipe per subscriber")
    print(f"baseline process (1 subscriber) peak RSS {baseline['peak_rss_mib']} MiB")
    print(f"targets: whole ranking < {TARGET_S} s, peak RSS < {TARGET_RSS_MIB} MiB, >= 20x SVM")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
