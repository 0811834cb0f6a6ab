"""Ranking at scale: N subscribers (CiteULike-t libraries as thumbs-up, resampled) against 2,000
new papers of real arXiv text, through ``paperwire.rank``'s public functions in the order
``digest.compose`` calls them (chunks of ``digest.SUBSCRIBER_CHUNK``: signals → profiles →
score → top-k). Beside it, in the same run, arxiv-sanity-lite's recipe: per subscriber a
``LinearSVC(C=0.01, class_weight="balanced")`` over its TF-IDF features of the same corpus.

The corpus (what ``store.corpus()`` would hold): the 25,975 CiteULike-t papers the subscribers
voted on plus the 2,000 new papers. Each job runs in a fresh process (peak RSS is its own).

    python benchmarks/scale/bench_rank.py                   # the figures in README.md
    python benchmarks/scale/bench_rank.py --quick           # a smoke run (under a minute)
    python benchmarks/scale/bench_rank.py --job paperwire --subscribers 100000 --weights rocchio
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import pstats
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NOW = dt.datetime(2025, 4, 11, 6, 0, tzinfo=dt.UTC)
NEW_PAPERS = 2000
POOL = 30  # top-k per subscriber before MMR (digest size 10 × digest.MMR_POOL)
TARGET_S = 30.0
TARGET_RSS_MIB = 1024.0
FULL = 100_000


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
    from paperwire import digest, rank

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


def _summary(prof: cProfile.Profile, n: int = 12) -> list[str]:
    """The top functions by own time, one line each."""
    stream = io.StringIO()
    stats = pstats.Stats(prof, stream=stream)
    rows = []
    for (file, line, name), (_cc, nc, tt, ct, _) in stats.stats.items():
        rows.append((tt, ct, nc, f"{Path(file).name}:{line}({name})"))
    rows.sort(reverse=True)
    return [
        f"{tt:8.2f}s own {ct:8.2f}s cum {nc:>9} calls  {where}" for tt, ct, nc, where in rows[:n]
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--job", choices=("paperwire", "svm"))
    ap.add_argument("--subscribers", type=int)
    ap.add_argument("--weights", choices=("default", "rocchio"), default="default")
    ap.add_argument("--profile", action="store_true", help="add a cProfile summary")
    ap.add_argument("--background", type=int, default=0, help="classifier background sample")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rocchio-subscribers", type=int, default=5000)
    ap.add_argument("--classifier-subscribers", type=int, default=20)
    ap.add_argument("--svm-subscribers", type=int, default=200)
    ap.add_argument("--out", type=Path, default=_common.HERE / "results" / "rank.json")
    args = ap.parse_args(argv)
    if args.job == "paperwire":
        _common.emit(
            job_paperwire(args.subscribers or 1000, args.weights, args.profile, args.background)
        )
        return 0
    if args.job == "svm":
        _common.emit(job_svm(args.subscribers or 200))
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
