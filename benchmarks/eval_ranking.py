"""Offline ranking evaluation: paperwire's model against random, popularity and arxiv-sanity-lite.

Protocol (../shared/data/README.md): CiteULike-t users with at least 10 papers; per user a
seeded 80/20 split of the library; the 80 % are thumbs-up; every paper the user has not rated
is ranked; recall@10, recall@50 and nDCG@50 of the hidden 20 %. The reported table uses users
whose line number in users.dat is a multiple of 5 (``--users held``); every weight was tuned on
the others (``--users tune``). Paperwire's rows go through ``paperwire.rank``'s public
functions, the very code ``digest.compose`` runs; only the count-matrix entry point differs
from the product's text entry point (CiteULike ships bags of words, not abstracts).

Second check: ../shared/data/arxiv-frontpage, 370 arXiv papers one researcher labelled by
topic with an interest weight per topic. An interests text written from the liked topics
ranks the papers; AUC of liked (weight > 0) against disliked (weight < 0) papers.

    python -m benchmarks.eval_ranking                 # the table in benchmarks/README.md
    python -m benchmarks.eval_ranking --users tune    # the same on tuning users
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.metrics import roc_auc_score
from sklearn.svm import LinearSVC

from paperwire.paper import paper_text
from paperwire.rank import core as rank

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED = 20240611
JOBS = 2
# What paperwire runs with: the rank.Weights defaults digest.compose uses for TF-IDF alone (a
# reader's papers at their whole weight beside an interests text: compose.terms_weights).
MODEL = rank.Weights(evidence_prior=0)


# -- data -------------------------------------------------------------------------------------


def load_citeulike(root: Path) -> tuple[sp.csr_matrix, list[np.ndarray]]:
    """Papers × vocabulary counts from mult.dat, and each user's library from users.dat."""
    rows, cols, vals = [], [], []
    with open(root / "mult.dat") as f:
        for i, line in enumerate(f):
            for pair in line.split()[1:]:
                word, count = pair.split(":")
                rows.append(i)
                cols.append(int(word))
                vals.append(float(count))
    with open(root / "vocabulary.dat") as f:
        n_words = sum(1 for _ in f)
    counts = sp.csr_matrix((vals, (rows, cols)), shape=(i + 1, n_words), dtype=np.float32)
    with open(root / "users.dat") as f:
        users = [np.array([int(x) for x in line.split()[1:]], dtype=np.int64) for line in f]
    return counts, users


def split(users: list[np.ndarray], ids: list[int], seed: int) -> dict[int, tuple]:
    """Per user a seeded shuffle; the first 20 % (at least one) is hidden, the rest is liked."""
    out = {}
    for u in ids:
        items = users[u].copy()
        np.random.default_rng([seed, u]).shuffle(items)
        n_test = max(1, round(0.2 * len(items)))
        out[u] = (items[n_test:], items[:n_test])  # train in shuffled order, test
    return out


def popularity_counts(users: list[np.ndarray], splits: dict, n_papers: int) -> np.ndarray:
    """How many users have each paper, counting evaluated users' training part only."""
    counts = np.zeros(n_papers)
    for u, items in enumerate(users):
        counts[splits[u][0] if u in splits else items] += 1
    return counts


# -- metrics ----------------------------------------------------------------------------------


def evaluate(scores: np.ndarray, users: list[int], train: dict, test: dict) -> dict[str, float]:
    """Mean recall@10, recall@50 and nDCG@50 of the hidden papers; rated papers are skipped."""
    disc = 1 / np.log2(np.arange(2, 52))
    r10, r50, nd = [], [], []
    for i, u in enumerate(users):
        row = scores[i].astype(np.float64, copy=True)
        row[train[u]] = -np.inf
        top = np.argpartition(-row, 50)[:50]
        top = top[np.argsort(-row[top], kind="stable")]
        hit = np.isin(top, test[u])
        r10.append(hit[:10].sum() / len(test[u]))
        r50.append(hit.sum() / len(test[u]))
        nd.append((hit * disc).sum() / disc[: min(len(test[u]), 50)].sum())
    return {"recall@10": np.mean(r10), "recall@50": np.mean(r50), "ndcg@50": np.mean(nd)}


# -- models -----------------------------------------------------------------------------------


def asl_features(counts: sp.csr_matrix) -> sp.csr_matrix:
    """arxiv-sanity-lite's TF-IDF: min_df 5, max_df 0.1, sublinear tf, max 20000 features.

    Bigrams and authors are not available in CiteULike's bags of words (equal terms for all).
    """
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    keep = np.flatnonzero((df >= 5) & (df <= 0.1 * n))
    keep = keep[np.argsort(-counts[:, keep].sum(axis=0).A1, kind="stable")[:20000]]
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts[:, np.sort(keep)])
    return tfidf.astype(np.float32).tocsr()


def _svm_row(x: sp.csr_matrix, positives: np.ndarray) -> np.ndarray:
    y = np.zeros(x.shape[0])
    y[positives] = 1
    clf = LinearSVC(class_weight="balanced", C=0.01, max_iter=10000, tol=1e-6)
    return clf.fit(x, y).decision_function(x).astype(np.float32)


def arxiv_sanity(x: sp.csr_matrix, positives: list[np.ndarray]) -> np.ndarray:
    """Per user a LinearSVC (C=0.01, balanced): their papers against every other paper."""
    rows = Parallel(n_jobs=JOBS, max_nbytes=None)(delayed(_svm_row)(x, p) for p in positives)
    return np.vstack(rows)


def _labels(vectors: sp.csr_matrix, liked: np.ndarray, interests: sp.csr_matrix | None):
    parts, kinds = [], []
    if interests is not None:
        parts.append(interests)
        kinds.append("interests")
    parts.append(vectors[liked])
    kinds.extend(["liked"] * len(liked))
    return rank.Labels(
        sp.vstack(parts).tocsr(),
        np.array(kinds, dtype=object),
        np.zeros(len(kinds)),
        np.asarray(liked, dtype=np.int64),
    )


def _paperwire_chunk(vectors, labels, popularity, weights) -> tuple[np.ndarray, np.ndarray]:
    profiles = rank.build_profiles(labels, vectors, weights)
    return rank.score(profiles, vectors, None, weights), rank.score(
        profiles, vectors, popularity, weights
    )


def paperwire(
    vectors: sp.csr_matrix,
    liked: list[np.ndarray],
    popularity: np.ndarray,
    weights: rank.Weights,
    interests: list[sp.csr_matrix | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """paperwire.rank's scores without and with the popularity prior, users over the cores."""
    interests = interests or [None] * len(liked)
    labels = [_labels(vectors, lk, it) for lk, it in zip(liked, interests, strict=True)]
    chunks = np.array_split(np.arange(len(labels)), JOBS * 4)
    parts = Parallel(n_jobs=JOBS, max_nbytes=None)(
        delayed(_paperwire_chunk)(vectors, [labels[i] for i in c], popularity, weights)
        for c in chunks
        if len(c)
    )
    return np.vstack([a for a, _ in parts]), np.vstack([b for _, b in parts])


def keywords(vectors: sp.csr_matrix, liked: np.ndarray, vocab: list[str], n: int = 8) -> str:
    """A stand-in for an interests text: the n heaviest terms of the user's liked papers."""
    centroid = np.asarray(vectors[liked].sum(axis=0)).ravel()
    return " ".join(vocab[j] for j in np.argsort(-centroid)[:n])


def mmr_effect(scores, vectors, users, train, test, lam, pool=30, k=10) -> dict[str, float]:
    """Recall@10 and the mean pairwise cosine inside each top-10, with and without MMR."""
    out = {"recall@10": [], "recall@10 mmr": [], "similarity": [], "similarity mmr": []}
    for i, u in enumerate(users):
        row = scores[i].astype(np.float64, copy=True)
        row[train[u]] = -np.inf
        cands = rank.top_k(row[None, :], pool)[0]
        for tag, picks in (("", cands[:k]), (" mmr", rank.mmr(cands, row, vectors, k, lam))):
            sub = vectors[picks]
            sim = (sub @ sub.T).toarray()
            out["recall@10" + tag].append(np.isin(picks, test[u]).sum() / len(test[u]))
            out["similarity" + tag].append((sim.sum() - np.trace(sim)) / (k * (k - 1)))
    return {key: float(np.mean(v)) for key, v in out.items()}


# -- arxiv-frontpage --------------------------------------------------------------------------

# Written by hand from the topics weighted ≥ 1 in tags.json (but "Cool", which names no
# subject), as a subscriber would write it.
FRONTPAGE_INTERESTS = (
    "multi-armed bandits, quality diversity and open-endedness, skill rating systems such as "
    "Elo and TrueSkill, expert iteration and self-play, hyperparameter optimization and AutoML, "
    "optimizers for training neural networks, evolutionary algorithms, reinforcement learning, "
    "decision trees, game theory, pathfinding"
)
# The same reader naming every topic they weight above zero (tags.json), the weak ones too: the
# labels count a paper liked when its topics' weights sum above zero, and 52 of the 125 liked
# papers are in topics the text above leaves out (computer vision alone: 19).
FRONTPAGE_INTERESTS_EVERY = (
    FRONTPAGE_INTERESTS
    + ", computer vision, Bayesian optimization, attention, text-to-image generation, fuzzy logic"
)
# The same reader's topics not wanted (``not_interested``), written by the mirror of the rule
# above: every topic weighted ≤ -1 in tags.json, as a subscriber would write it.
FRONTPAGE_NOT_INTERESTED = (
    "blockchain, quantum computing, graph neural networks, astronomy, finance, medicine, "
    "spiking neural networks, new datasets and benchmarks, 3D vision, hardware, robotics"
)


def frontpage_items(root: Path | None = None) -> list[dict]:
    """arxiv-frontpage's labelled papers, each once, with its summed topic weight (0 dropped)."""
    root = root or DATA / "arxiv-frontpage"
    tags = json.loads((root / "tags.json").read_text())
    papers: dict[str, dict] = {}
    for path in sorted((root / "train").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            entry = papers.setdefault(rec["title"], {**rec, "weight": 0.0})
            entry["weight"] += tags[path.stem]
    return [p for p in papers.values() if p["weight"] != 0]


def frontpage_auc(weights: rank.Weights) -> dict[str, float]:
    """AUC of liked vs disliked papers for the interests text, then with half the papers voted."""
    root = DATA / "arxiv-frontpage"
    items = frontpage_items(root)
    texts = [paper_text(p["title"], p["abstract"]) for p in items]
    liked = np.array([p["weight"] > 0 for p in items])
    strong = np.array([abs(p["weight"]) >= 1 for p in items])
    downloads = (root / "downloads_2025-04-11.jsonl").read_text().splitlines()
    corpus_texts = texts + [
        paper_text(r["title"], r["abstract"]) for r in map(json.loads, downloads)
    ]
    model = rank.TextModel().fit(corpus_texts)
    corpus = model.transform(corpus_texts)
    vectors = corpus[: len(items)]
    now = rank_now()
    out = {"papers": len(items), "liked": int(liked.sum())}

    def auc(signals: rank.Signals, w: rank.Weights, mask: np.ndarray) -> float:
        profiles = rank.build_profiles_from_signals(model, [signals], corpus, now, w)
        s = rank.score(profiles, vectors, None, w)[0]
        return float(roc_auc_score(liked[mask], s[mask]))

    everyone = np.ones(len(items), dtype=bool)
    out["interests text"] = auc(rank.Signals(interests=FRONTPAGE_INTERESTS), weights, everyone)
    out["interests text, |weight| >= 1 only"] = auc(
        rank.Signals(interests=FRONTPAGE_INTERESTS), weights, strong
    )
    rng = np.random.default_rng(SEED)
    votes_half = rng.random(len(items)) < 0.5
    rest = ~votes_half
    liked_votes = [(texts[i], 1, now) for i in np.flatnonzero(votes_half & liked)]
    disliked_votes = [(texts[i], -1, now) for i in np.flatnonzero(votes_half & ~liked)]
    base = rank.Signals(interests=FRONTPAGE_INTERESTS)
    out["interests (same half)"] = auc(base, weights, rest)
    out["+ thumbs-up on half"] = auc(replace(base, votes=liked_votes), weights, rest)
    out["+ thumbs-up and -down on half"] = auc(
        replace(base, votes=liked_votes + disliked_votes), weights, rest
    )
    both = replace(base, votes=liked_votes + disliked_votes)
    for d in (0.0, weights.classifier_dislike_weight, 2 * weights.classifier_dislike_weight):
        w = replace(weights, classifier_dislike_weight=d)
        out[f"  classifier thumbs-down weight {d:g}"] = auc(both, w, rest)
    rocchio = replace(weights, classifier_min_likes=10**9)
    out["Rocchio only, thumbs-up"] = auc(replace(base, votes=liked_votes), rocchio, rest)
    for d in (0.0, weights.disliked, 2 * weights.disliked):
        w = replace(rocchio, disliked=d)
        out[f"  Rocchio thumbs-down weight {d:g}"] = auc(both, w, rest)
    return out


def rank_now():
    import datetime as dt

    return dt.datetime(2025, 4, 30, tzinfo=dt.UTC)


# -- the run ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", choices=("held", "tune"), default="held")
    parser.add_argument("--max-users", type=int, default=0, help="evaluate at most this many")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the slow SVM rows")
    parser.add_argument("--grid", action="store_true", help="also try weight variants")
    args = parser.parse_args(argv)
    started = time.time()
    root = DATA / "citeulike-t"
    counts, libraries = load_citeulike(root)
    vocab = (root / "vocabulary.dat").read_text().split("\n")
    n_papers = counts.shape[0]
    eligible = [u for u, lib in enumerate(libraries) if len(lib) >= 10]
    held = [u for u in eligible if u % 5 == 0]
    users = held if args.users == "held" else [u for u in eligible if u % 5]
    if args.max_users and len(users) > args.max_users:
        rng = np.random.default_rng(SEED)
        users = sorted(rng.choice(users, args.max_users, replace=False).tolist())
    splits = split(libraries, users, SEED)
    train = {u: splits[u][0] for u in users}
    test = {u: splits[u][1] for u in users}
    liked = [train[u] for u in users]
    pop_counts = popularity_counts(libraries, splits, n_papers)
    # CiteULike's "how many users saved it" stands in for Hugging Face upvotes.
    popularity = rank.popularity_prior(pop_counts)

    model = rank.TextModel(n_features=counts.shape[1]).fit_counts(counts)
    vectors = model.weigh(counts)
    print(f"# CiteULike-t, {args.users} users: {len(users)}; papers {n_papers}", flush=True)
    table: dict[str, dict[str, float]] = {}

    def report(name: str, scores: np.ndarray, subset=None, rows=None) -> dict[str, float]:
        us = users if subset is None else subset
        res = evaluate(scores if rows is None else scores[rows], us, train, test)
        table[name] = res
        cells = "  ".join(f"{k} {v:.4f}" for k, v in res.items())
        print(f"{name:<46} {cells}  ({time.time() - started:.0f}s)", flush=True)
        return res

    rng = np.random.default_rng(SEED)
    report("random", rng.random((len(users), n_papers), dtype=np.float32))
    report("popularity", np.tile(pop_counts.astype(np.float32), (len(users), 1)))
    asl_x = asl_features(counts)
    if not args.skip_baseline:
        asl_scores = arxiv_sanity(asl_x, liked)
        asl = report("arxiv-sanity-lite (LinearSVC C=0.01)", asl_scores)
    rocchio = replace(MODEL, classifier_min_likes=10**9)
    plain, boosted = paperwire(vectors, liked, popularity, rocchio)
    report("paperwire Rocchio only, no popularity", plain)
    report("paperwire Rocchio only + popularity", boosted)
    content_scores, full_scores = paperwire(vectors, liked, popularity, MODEL)
    report("paperwire content only (no popularity)", content_scores)
    full = report("paperwire (chosen model)", full_scores)
    if not args.skip_baseline:
        report("arxiv-sanity-lite + popularity (for fairness)", _zscores(asl_scores) + popularity)
    if not args.skip_baseline:
        gain = full["recall@50"] / asl["recall@50"] - 1
        print(f"paperwire recall@50 vs arxiv-sanity-lite: {gain:+.1%}", flush=True)

    if args.grid:
        for name, w in (
            ("  classifier C 0.25", replace(MODEL, classifier_c=0.25)),
            ("  classifier C 1.0", replace(MODEL, classifier_c=1.0)),
            ("  Rocchio share 0.3", replace(MODEL, rocchio_share=0.3)),
            ("  popularity 0.25", replace(MODEL, popularity=0.25)),
            ("  popularity 1.0", replace(MODEL, popularity=1.0)),
        ):
            report(name, paperwire(vectors, liked, popularity, w)[1])

    # Cold start: only an interests text, or the first 1, 3, 10 liked papers; same hidden 20 %.
    print("# cold start", flush=True)
    cold = {}
    for k in ("interests", 1, 3, 10):
        if k == "interests":
            subset = users
            texts = [keywords(vectors, train[u], vocab) for u in subset]
            interests = [model.weigh(_bag(t, vocab)) for t in texts]
            few = [np.zeros(0, dtype=np.int64)] * len(subset)
            asl_pos = None
        else:
            subset = [u for u in users if len(train[u]) >= k]
            few = [train[u][:k] for u in subset]
            interests = None
            asl_pos = few
        ctrain = dict(train)
        variants = paperwire(vectors, few, popularity, MODEL, interests)
        for name, scores in zip(("paperwire, no popularity", "paperwire"), variants, strict=True):
            res = evaluate(scores, subset, ctrain, test)
            cold[f"{k} / {name}"] = res
            print(f"cold {k!s:<9} {name:<30} {_cells(res)}", flush=True)
        if asl_pos is not None and not args.skip_baseline:
            res = evaluate(arxiv_sanity(asl_x, asl_pos), subset, ctrain, test)
            cold[f"{k} / arxiv-sanity-lite"] = res
            print(f"cold {k!s:<9} {'arxiv-sanity-lite':<30} {_cells(res)}", flush=True)

    print("# MMR (pool 30 → 10)", flush=True)
    for lam in sorted({0.9, 0.7, MODEL.mmr_lambda, 0.5, 0.3}, reverse=True):
        eff = mmr_effect(full_scores, vectors, users, train, test, lam)
        print(f"lambda {lam}: " + "  ".join(f"{k} {v:.4f}" for k, v in eff.items()), flush=True)

    print("# arxiv-frontpage (AUC, liked vs disliked topics)", flush=True)
    for key, value in frontpage_auc(MODEL).items():
        print(f"{key:<34} {value if isinstance(value, int) else f'{value:.3f}'}", flush=True)
    print(f"# total {time.time() - started:.0f}s", flush=True)
    return 0


def _bag(text: str, vocab: list[str]) -> sp.csr_matrix:
    index = {w: j for j, w in enumerate(vocab)}
    cols = [index[w] for w in text.split() if w in index]
    return sp.csr_matrix((np.ones(len(cols)), ([0] * len(cols), cols)), shape=(1, len(vocab)))


def _zscores(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean(axis=1, keepdims=True)) / scores.std(axis=1, keepdims=True)


def _cells(res: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in res.items())


if __name__ == "__main__":
    sys.exit(main())
