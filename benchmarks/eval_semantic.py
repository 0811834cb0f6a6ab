"""Semantic ranking: the embedding profile beside TF-IDF, measured (issue 15).

Three checks, each with the command in benchmarks/README.md ("Semantic ranking"):

* ``--speed``: embed 2,000 real abstracts (arxiv-frontpage papers and the 2025-04-11 RSS day),
  wall and CPU time, peak memory, the machine's load.
* arxiv-frontpage: AUC of liked vs disliked papers for the interests text alone and with half
  the papers voted, TF-IDF (``paperwire.rank``, as eval_ranking.py) + ``weight`` × semantic
  (``paperwire.semantic``) for several weights; ``--halves N``: the mean over N other random
  halves, which the weights are chosen on.
* CiteULike-t (``--users tune`` to choose, ``held`` to report): recall@10 / @50 of the hidden
  20 %, TF-IDF content model (no popularity) + weight × semantic, beside the arxiv-sanity-lite
  recipe. CiteULike ships bags of words; a static model's text vector is the mean of its
  tokens' vectors, so ``counts @ word_sums(vocabulary)`` is exactly the vector of the words
  written out.

    python benchmarks/eval_semantic.py --speed
    python benchmarks/eval_semantic.py --frontpage
    python benchmarks/eval_semantic.py --frontpage --halves 40
    python benchmarks/eval_semantic.py --citeulike --users tune --max-users 300
    python benchmarks/eval_semantic.py --citeulike --users held
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_ranking as er  # noqa: E402

from paperwire.paper import paper_text  # noqa: E402
from paperwire.rank import core as rank  # noqa: E402
from paperwire.rank import embed, semantic  # noqa: E402

DATA = er.DATA
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
# Earlier shipped weights, measured beside the current ones.
FIRST_PHASE = replace(
    semantic.SemanticWeights(),
    classifier_weight=0.5,
    neighbour_weight=0.0,
    neighbour_weight_with_dislikes=0.0,
)
SECOND_PHASE = replace(
    semantic.SemanticWeights(),
    neighbour_weight=0.25,
    density_weight=0.0,
    centred=False,
)
NOW = dt.datetime(2025, 4, 30, tzinfo=dt.UTC)


def frontpage_data() -> tuple[list[dict], list[dict]]:
    """The labelled papers exactly as eval_ranking.frontpage_auc builds them, and the RSS day."""
    root = DATA / "arxiv-frontpage"
    items = er.frontpage_items(root)
    downloads = [
        json.loads(line) for line in (root / "downloads_2025-04-11.jsonl").read_text().splitlines()
    ]
    return items, downloads


def speed(spec: str) -> None:
    items, downloads = frontpage_data()
    texts = [paper_text(p["title"], p["abstract"]) for p in items + downloads]
    texts = (texts * 2)[:2000]
    wall, cpu = time.time(), time.process_time()
    model = embed.load_model(spec)
    load_wall, load_cpu = time.time() - wall, time.process_time() - cpu
    wall, cpu = time.time(), time.process_time()
    vectors = model.embed(texts)
    print(
        f"{model.name}: load {load_wall:.1f} s wall ({load_cpu:.1f} s CPU); "
        f"embed {len(texts)} abstracts {time.time() - wall:.1f} s wall "
        f"({time.process_time() - cpu:.1f} s CPU), {vectors.shape[1]} dims; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


# -- arxiv-frontpage --------------------------------------------------------------------------


def _frontpage_setup(spec: str) -> tuple:
    """The labelled items, their texts and the corpus's (items, then the other downloads),
    which are liked, the TF-IDF model and vectors, the embedding model, its corpus vectors and
    the interests' vector."""
    items, downloads = frontpage_data()
    texts = [paper_text(p["title"], p["abstract"]) for p in items]
    corpus_texts = texts + [paper_text(r["title"], r["abstract"]) for r in downloads]
    liked = np.array([p["weight"] > 0 for p in items])
    tfidf = rank.TextModel().fit(corpus_texts)
    corpus_tfidf = tfidf.transform(corpus_texts)
    model = embed.load_model(spec)
    corpus_emb = model.embed(corpus_texts)
    interests_emb = model.embed([er.FRONTPAGE_INTERESTS])[0]
    return items, texts, corpus_texts, liked, tfidf, corpus_tfidf, model, corpus_emb, interests_emb


def frontpage(
    spec: str,
    sw: semantic.SemanticWeights,
    vectors_file: str | None = None,
    interests_row: int = 0,
) -> None:
    items, texts, corpus_texts, liked, tfidf, corpus_tfidf, model, corpus_emb, interests_emb = (
        _frontpage_setup(spec)
    )
    if vectors_file:  # precomputed vectors of another model, for the items only (the order above)
        corpus_emb = np.load(vectors_file)
        # row 0: the interests embedded as a query ("query: " prefix), row 1: as a passage
        interests_emb = np.load(vectors_file.replace("frontpage", "interests"))[interests_row]
    n = len(items)
    rng = np.random.default_rng(er.SEED)
    voted = rng.random(n) < 0.5
    rest = ~voted
    everyone = np.ones(n, dtype=bool)
    up = np.flatnonzero(voted & liked)
    down = np.flatnonzero(voted & ~liked)
    weights = rank.Weights()

    def tfidf_scores(votes_up, votes_down) -> np.ndarray:
        votes = [(texts[i], 1, NOW) for i in votes_up] + [(texts[i], -1, NOW) for i in votes_down]
        sig = rank.Signals(interests=er.FRONTPAGE_INTERESTS, votes=votes)
        profiles = rank.build_profiles_from_signals(tfidf, [sig], corpus_tfidf, NOW, weights)
        return rank.score(profiles, corpus_tfidf[:n], None, weights)[0]

    def sem_profiles(votes_up, votes_down, w) -> semantic.SemanticProfiles:
        rows = np.r_[votes_up, votes_down].astype(np.int64)
        sig = semantic.EmbeddedSignals(
            interests_emb,
            corpus_emb[rows],
            np.array(["liked"] * len(votes_up) + ["disliked"] * len(votes_down), dtype=object),
            np.zeros(len(rows)),
            rows,
        )
        return semantic.build_profiles([sig], corpus_emb, w)

    def sem_scores(votes_up, votes_down, w) -> np.ndarray:
        return sem_profiles(votes_up, votes_down, w).score(corpus_emb[:n])[0]

    def chosen(votes_up, votes_down, w) -> np.ndarray:
        """TF-IDF plus what the product adds (weights and neighbours included)."""
        added = sem_profiles(votes_up, votes_down, w).added(corpus_emb[:n], w)[0]
        return tfidf_scores(votes_up, votes_down) + added

    none = np.zeros(0, dtype=np.int64)
    cases = (
        ("interests text, all papers", none, none, everyone),
        ("interests text, the other half", none, none, rest),
        ("+ thumbs-up on half", up, none, rest),
        ("+ thumbs-up and -down on half", up, down, rest),
    )
    label = (
        f"vectors of {vectors_file} (interests row {interests_row})" if vectors_file else model.name
    )
    print(f"# arxiv-frontpage AUC, {n} papers, {int(liked.sum())} liked; {label}")
    print(
        f"{'case':<34} {'TF-IDF':>7} {'chosen':>7} {'sem.':>7} "
        + " ".join(f"+{a:g}×sem" for a in WEIGHTS[1:])
    )
    for name, u, d, mask in cases:
        t = tfidf_scores(u, d)
        cells = [
            roc_auc_score(liked[mask], t[mask]),
            roc_auc_score(liked[mask], chosen(u, d, sw)[mask]),
        ]
        s = sem_scores(u, d, sw)
        cells.append(roc_auc_score(liked[mask], s[mask]))
        cells += [roc_auc_score(liked[mask], (t + a * s)[mask]) for a in WEIGHTS[1:]]
        print(f"{name:<34} " + " ".join(f"{c:7.3f}" for c in cells), flush=True)
    print("# variants of the chosen sum (half voted; AUC of the other half): up only / up+down")
    for label, w in (
        ("first phase: classifier × 0.5, no neighbours", FIRST_PHASE),
        ("second phase: raw neighbours × 0.25, no density", SECOND_PHASE),
        (
            "no neighbours (classifier × 0.25)",
            replace(sw, neighbour_weight=0.0, neighbour_weight_with_dislikes=0.0),
        ),
        ("no density (centred neighbours)", replace(sw, density_weight=0.0)),
        ("density, neighbours not centred", replace(sw, centred=False)),
        ("density × 1", replace(sw, density_weight=1.0)),
        ("density × 2", replace(sw, density_weight=2.0)),
        ("density of the 10 / 50 closest: 10", replace(sw, density_neighbours=10)),
        ("density of the 10 / 50 closest: 50", replace(sw, density_neighbours=50)),
        ("neighbours × 0.5 with thumbs-down too", replace(sw, neighbour_weight_with_dislikes=0.5)),
        ("neighbours × 0.25 without thumbs-down too", replace(sw, neighbour_weight=0.25)),
        ("neighbours k 1", replace(sw, neighbours=1)),
        ("neighbours k 5", replace(sw, neighbours=5)),
        ("classifier × 0.5", replace(sw, classifier_weight=0.5)),
        ("centroid only (no classifier)", replace(sw, classifier_min_likes=10**9)),
        ("classifier C 0.1", replace(sw, classifier_c=0.1)),
        ("classifier C 10", replace(sw, classifier_c=10.0)),
        ("classifier thumbs-down weight 1", replace(sw, classifier_dislike_weight=1.0)),
    ):
        cells = [
            roc_auc_score(liked[rest], chosen(u, d, w)[rest]) for u, d in ((up, none), (up, down))
        ]
        print(f"  {label:<46} {cells[0]:.3f} / {cells[1]:.3f}", flush=True)


def frontpage_halves(spec: str, sw: semantic.SemanticWeights, halves: int) -> None:
    """Mean AUC of the unvoted half over random halves (seeds 100, 101, ...; not the reported
    split, er.SEED), the product's sum for several weights: what the weights were chosen on."""
    items, texts, corpus_texts, liked, tfidf, corpus_tfidf, model, corpus_emb, interests_emb = (
        _frontpage_setup(spec)
    )
    n = len(items)
    weights = rank.Weights()
    variants = {
        "TF-IDF alone": None,
        "first phase": FIRST_PHASE,
        "second phase": SECOND_PHASE,
        "chosen": sw,
        "no density": replace(sw, density_weight=0.0),
        "neighbours not centred": replace(sw, centred=False),
        "neighbours × 0.5 without thumbs-down": replace(sw, neighbour_weight=0.5),
        "neighbours × 1 without thumbs-down": replace(sw, neighbour_weight=1.0),
    }
    aucs: dict[tuple[str, str], list[float]] = {}
    for seed in range(100, 100 + halves):
        voted = np.random.default_rng(seed).random(n) < 0.5
        rest = ~voted
        up = np.flatnonzero(voted & liked)
        down = np.flatnonzero(voted & ~liked)
        for case, u, d in (("up", up, up[:0]), ("up+down", up, down)):
            votes = [(texts[i], 1, NOW) for i in u] + [(texts[i], -1, NOW) for i in d]
            sig = rank.Signals(interests=er.FRONTPAGE_INTERESTS, votes=votes)
            profiles = rank.build_profiles_from_signals(tfidf, [sig], corpus_tfidf, NOW, weights)
            t = rank.score(profiles, corpus_tfidf[:n], None, weights)[0]
            rows = np.r_[u, d].astype(np.int64)
            kinds = np.array(["liked"] * len(u) + ["disliked"] * len(d), dtype=object)
            emb = semantic.EmbeddedSignals(
                interests_emb, corpus_emb[rows], kinds, np.zeros(len(rows)), rows
            )
            for name, w in variants.items():
                total = t
                if w is not None:
                    total = (
                        t
                        + semantic.build_profiles([emb], corpus_emb, w).added(corpus_emb[:n], w)[0]
                    )
                aucs.setdefault((name, case), []).append(roc_auc_score(liked[rest], total[rest]))
    print(f"# arxiv-frontpage, {halves} random halves voted (seeds 100-{99 + halves}): mean AUC")
    print(f"{'':<38} {'thumbs-up only':>16} {'up and down':>16}")
    for name in variants:
        cells = []
        for case in ("up", "up+down"):
            a = np.array(aucs[(name, case)])
            cells.append(f"{a.mean():.3f} ± {a.std() / np.sqrt(len(a)):.3f}")
        print(f"{name:<38} {cells[0]:>16} {cells[1]:>16}", flush=True)


# -- CiteULike-t ------------------------------------------------------------------------------


def _sem_chunk(corpus_emb, signals, w) -> tuple[np.ndarray, np.ndarray]:
    profiles = semantic.build_profiles(signals, corpus_emb, w)
    return profiles.score(corpus_emb).astype(np.float32), profiles.weights(w)


def _added_chunk(corpus_emb, signals, w) -> np.ndarray:
    return semantic.build_profiles(signals, corpus_emb, w).added(corpus_emb, w).astype(np.float32)


def sem_chosen(corpus_emb, liked, interests, w) -> np.ndarray:
    """What the product adds: each row times its profile kind's weight, plus neighbours."""
    sigs = _citeulike_signals(corpus_emb, liked, interests)
    w = replace(w, classifier_max_subscribers=10**9)  # each user is their own run
    chunks = np.array_split(np.arange(len(sigs)), er.JOBS * 4)
    parts = Parallel(n_jobs=er.JOBS, max_nbytes=None)(
        delayed(_added_chunk)(corpus_emb, [sigs[i] for i in c], w) for c in chunks if len(c)
    )
    return np.vstack(parts)


def _citeulike_signals(corpus_emb, liked, interests) -> list[semantic.EmbeddedSignals]:
    return [
        semantic.EmbeddedSignals(
            it,
            corpus_emb[lk],
            np.array(["liked"] * len(lk), dtype=object),
            np.zeros(len(lk)),
            np.asarray(lk, dtype=np.int64),
        )
        for lk, it in zip(liked, interests, strict=True)
    ]


def sem_citeulike(corpus_emb, liked, interests, w, with_weights=False):
    sigs = _citeulike_signals(corpus_emb, liked, interests)
    # the classifier budget is per run; here each user is their own run
    w = replace(w, classifier_max_subscribers=10**9)
    chunks = np.array_split(np.arange(len(sigs)), er.JOBS * 4)
    parts = Parallel(n_jobs=er.JOBS, max_nbytes=None)(
        delayed(_sem_chunk)(corpus_emb, [sigs[i] for i in c], w) for c in chunks if len(c)
    )
    scores = np.vstack([p for p, _ in parts])
    return (scores, np.concatenate([r for _, r in parts])) if with_weights else scores


def citeulike(
    spec: str,
    users_kind: str,
    max_users: int,
    sw: semantic.SemanticWeights,
    skip_baseline: bool = False,
) -> None:
    started = time.time()
    root = DATA / "citeulike-t"
    counts, libraries = er.load_citeulike(root)
    vocab = (root / "vocabulary.dat").read_text().split("\n")[: counts.shape[1]]
    eligible = [u for u, lib in enumerate(libraries) if len(lib) >= 10]
    users = [u for u in eligible if (u % 5 == 0) == (users_kind == "held")]
    if max_users and len(users) > max_users:
        rng = np.random.default_rng(er.SEED)
        users = sorted(rng.choice(users, max_users, replace=False).tolist())
    splits = er.split(libraries, users, er.SEED)
    train = {u: splits[u][0] for u in users}
    test = {u: splits[u][1] for u in users}
    liked = [train[u] for u in users]
    popularity = np.zeros(counts.shape[0], dtype=np.float32)  # no crowd signal in this check

    model = embed.load_model(spec)
    corpus_emb = embed.unit_rows(counts @ model.word_sums(vocab)).astype(np.float32)
    tfidf = rank.TextModel(n_features=counts.shape[1]).fit_counts(counts)
    vectors = tfidf.weigh(counts)
    print(f"# CiteULike-t {users_kind} users {len(users)}; model {model.name}", flush=True)

    def show(name, scores, subset=None, tr=None):
        res = er.evaluate(scores, subset or users, tr or train, test)
        print(f"{name:<52} {er._cells(res)}  ({time.time() - started:.0f}s)", flush=True)
        return res

    asl_x = er.asl_features(counts)
    asl = {"recall@10": np.nan, "recall@50": np.nan}
    if not skip_baseline:
        asl = show("arxiv-sanity-lite (LinearSVC C=0.01)", er.arxiv_sanity(asl_x, liked))
    tf_scores, _ = er.paperwire(vectors, liked, popularity, rank.Weights())
    show("paperwire TF-IDF content only", tf_scores)
    none = [None] * len(users)
    sem = sem_citeulike(corpus_emb, liked, none, sw)
    show("semantic only", sem)
    best = None
    for a in WEIGHTS[1:]:
        res = show(f"TF-IDF + {a:g} × semantic", tf_scores + a * sem)
        if best is None or res["recall@10"] > best[1]["recall@10"]:
            best = (a, res)
    chosen = show(
        "chosen (classifier × 0.25 + (neighbours − 1.5 density) × 0.75)",
        tf_scores + sem_chosen(corpus_emb, liked, none, sw),
    )
    print(
        f"chosen: recall@10 {chosen['recall@10'] / asl['recall@10']:.3f}× and "
        f"recall@50 {chosen['recall@50'] / asl['recall@50']:.3f}× arxiv-sanity-lite",
        flush=True,
    )
    print(
        f"best weight {best[0]:g}: recall@10 {best[1]['recall@10'] / asl['recall@10']:.3f}× and "
        f"recall@50 {best[1]['recall@50'] / asl['recall@50']:.3f}× arxiv-sanity-lite",
        flush=True,
    )
    for label, w in (
        ("first phase (classifier × 0.5, no neighbours)", FIRST_PHASE),
        ("second phase (classifier × 0.25 + raw neighbours × 0.25)", SECOND_PHASE),
        ("no density (centred neighbours)", replace(sw, density_weight=0.0)),
    ):
        res = show(label, tf_scores + sem_chosen(corpus_emb, liked, none, w))
        print(
            f"  recall@10 {res['recall@10'] / asl['recall@10']:.3f}× arxiv-sanity-lite", flush=True
        )
    for label, w in (
        ("centroid only", replace(sw, classifier_min_likes=10**9)),
        ("classifier C 0.03", replace(sw, classifier_c=0.03)),
        ("classifier C 0.1", replace(sw, classifier_c=0.1)),
        ("classifier C 0.3", replace(sw, classifier_c=0.3)),
        ("classifier C 3", replace(sw, classifier_c=3.0)),
    ):
        s = sem_citeulike(corpus_emb, liked, none, w)
        show(f"  semantic {label}", s)
        show(f"  TF-IDF + {sw.weight:g} × semantic {label}", tf_scores + sw.weight * s)

    # Cold start: interests text only (the 8 heaviest terms, as eval_ranking.py) and few likes.
    print("# cold start", flush=True)
    texts = [er.keywords(vectors, train[u], vocab) for u in users]
    it_tfidf = [tfidf.weigh(er._bag(t, vocab)) for t in texts]
    it_emb = list(model.embed(texts))
    empty = [np.zeros(0, dtype=np.int64)] * len(users)
    tf_cold, _ = er.paperwire(vectors, empty, popularity, rank.Weights(), it_tfidf)
    sem_cold = sem_citeulike(corpus_emb, empty, it_emb, sw)
    show("interests text: TF-IDF", tf_cold)
    show("interests text: semantic", sem_cold)
    for a in WEIGHTS[1:]:
        show(f"interests text: TF-IDF + {a:g} × semantic", tf_cold + a * sem_cold)
    for k in (1, 3):
        subset = [u for u in users if len(train[u]) >= k]
        few = [train[u][:k] for u in subset]
        tf_k, _ = er.paperwire(vectors, few, popularity, rank.Weights())
        sem_k = sem_citeulike(corpus_emb, few, [None] * len(few), sw)
        if not skip_baseline:
            show(f"{k} liked: arxiv-sanity-lite", er.arxiv_sanity(asl_x, few), subset)
        show(f"{k} liked: TF-IDF", tf_k, subset)
        show(f"{k} liked: TF-IDF + {sw.weight:g} × semantic", tf_k + sw.weight * sem_k, subset)
        chosen_k = tf_k + sem_chosen(corpus_emb, few, [None] * len(few), sw)
        show(f"{k} liked: chosen weights", chosen_k, subset)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=embed.BUNDLED, help="wordllama or a model folder")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--frontpage", action="store_true")
    parser.add_argument(
        "--halves", type=int, default=0, help="with --frontpage: mean AUC over N random halves"
    )
    parser.add_argument("--vectors", help="precomputed frontpage vectors (.npy) of another model")
    parser.add_argument("--interests-row", type=int, default=0, help="0: query, 1: passage")
    parser.add_argument("--citeulike", action="store_true")
    parser.add_argument("--users", choices=("held", "tune"), default="held")
    parser.add_argument("--max-users", type=int, default=0)
    parser.add_argument("--skip-baseline", action="store_true", help="no arxiv-sanity-lite rows")
    parser.add_argument("--weight", type=float, default=semantic.SemanticWeights().weight)
    args = parser.parse_args(argv)
    sw = replace(semantic.SemanticWeights(), weight=args.weight)
    if args.speed:
        speed(args.model)
    if args.frontpage and args.halves:
        frontpage_halves(args.model, sw, args.halves)
    elif args.frontpage:
        frontpage(args.model, sw, args.vectors, args.interests_row)
    if args.citeulike:
        citeulike(args.model, args.users, args.max_users, sw, args.skip_baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
