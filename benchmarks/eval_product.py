"""Ranking evaluation through the product's own path: feed document → Store → votes → compose.

What a reader gets comes from ``digest.compose`` (hashed 1-2-grams over the stored text,
candidate windows, calibration, the crowd prior, MMR), so this harness drives exactly that:

1. A pool of CiteULike-t papers (every evaluated reader's library, filled with seeded random
   papers up to ``--pool``) is written as a feed document: an Atom feed (no upvotes) or a
   Hugging Face ``/api/daily_papers`` JSON list whose ``upvotes`` are how many *other* readers
   saved the paper (an evaluated reader's hidden 20 % is never counted).
   A paper's text repeats each vocabulary word by its count (../shared/data/README.md).
2. The document is parsed by ``paperwire.sources.parse_document`` and stored with
   ``Store.add_papers``; each reader's 80 % is recorded with ``Store.record_votes`` (what
   ``paperwire feedback import`` does).
3. ``digest.compose`` with the shipped ``rank.Weights``, MMR on, ``limit=10`` gives each
   reader's digest (what ``paperwire digest --limit 10 --json`` prints), at most
   ``--batch`` readers per call (a run with more than ``classifier_max_subscribers`` would
   give everyone Rocchio profiles; a daemon's run holds the subscribers due at that hour).
4. recall@10 of the hidden 20 % over the digest, beside the arxiv-sanity-lite recipe
   (per-reader LinearSVC C=0.01 balanced on TF-IDF min_df 5, max_df 0.1, sublinear tf) on the
   same pool, ranking the same candidates.

Readers are the held-out ones (0-based line % 5 == 0 in users.dat) unless ``--tune``.

    python benchmarks/eval_product.py --users 100            # the table in benchmarks/README.md
    python benchmarks/eval_product.py --users 100 --tune     # tuning readers
    python benchmarks/eval_product.py --users 100 --weights popularity=0 mmr_lambda=1
    python benchmarks/eval_product.py --users 100 --count-path   # + the count-matrix table

Parsed CiteULike-t is cached in ``~/.cache/paperwire-bench`` (``PAPERWIRE_BENCH_CACHE``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_ranking  # noqa: E402  (the protocol's split, metrics and the recipe)

from paperwire import digest, rank  # noqa: E402
from paperwire.config import parse_config  # noqa: E402
from paperwire.sources import parse_document  # noqa: E402
from paperwire.store import Store  # noqa: E402

DATA = eval_ranking.DATA / "citeulike-t"
SEED = eval_ranking.SEED
CACHE = Path(os.environ.get("PAPERWIRE_BENCH_CACHE", Path.home() / ".cache" / "paperwire-bench"))
NOW = dt.datetime(2026, 6, 12, 8, 0, tzinfo=dt.UTC)
DIGEST = 10


# -- data -------------------------------------------------------------------------------------


def citeulike() -> tuple[sp.csr_matrix, list[np.ndarray], list[str]]:
    """CiteULike-t's counts, libraries and vocabulary, parsed once and cached."""
    cached = CACHE / "citeulike-t.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as f:
            counts = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
            starts = f["lib_starts"]
            flat = f["lib_items"]
            vocab = f["vocab"].tolist()
        libraries = [flat[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
        return counts, libraries, vocab
    counts, libraries = eval_ranking.load_citeulike(DATA)
    vocab = (DATA / "vocabulary.dat").read_text().split("\n")[: counts.shape[1]]
    CACHE.mkdir(parents=True, exist_ok=True)
    starts = np.cumsum([0] + [len(lib) for lib in libraries])
    np.savez(
        cached,
        data=counts.data,
        indices=counts.indices,
        indptr=counts.indptr,
        shape=np.array(counts.shape),
        lib_starts=starts,
        lib_items=np.concatenate(libraries),
        vocab=np.array(vocab),
    )
    return counts, libraries, vocab


def readers(libraries: list[np.ndarray], n: int, tune: bool) -> list[int]:
    """``n`` seeded readers with at least 10 papers: held-out lines (% 5 == 0) or tuning ones."""
    eligible = [u for u, lib in enumerate(libraries) if len(lib) >= 10 and (u % 5 != 0) == tune]
    if n and n < len(eligible):
        eligible = sorted(np.random.default_rng(SEED).choice(eligible, n, replace=False).tolist())
    return eligible


def pool_of(libraries: list[np.ndarray], users: list[int], size: int, n_papers: int) -> np.ndarray:
    """Every evaluated reader's library, filled with seeded random papers up to ``size``."""
    pool = np.unique(np.concatenate([libraries[u] for u in users]))
    if len(pool) < size:
        rest = np.setdiff1d(np.arange(n_papers), pool)
        extra = np.random.default_rng(SEED).choice(rest, size - len(pool), replace=False)
        pool = np.sort(np.r_[pool, extra])
    return pool


def paper_id(index: int) -> str:
    """A stable arXiv-style id for CiteULike paper ``index`` (both feed kinds need one)."""
    return f"2301.{index:05d}"


def text_of(counts: sp.csr_matrix, index: int, vocab: list[str]) -> str:
    row = counts[index]
    return " ".join(
        " ".join([vocab[j]] * int(c)) for j, c in zip(row.indices, row.data, strict=True)
    )


def feed_document(
    counts: sp.csr_matrix,
    vocab: list[str],
    pool: np.ndarray,
    upvotes: np.ndarray | None,
) -> bytes:
    """The pool as an Atom feed (no upvotes) or a Hugging Face daily_papers JSON list.

    The title "CiteULike-t N" carries no signal: its words are in every paper or in one
    (the IDF filter weighs them 0), and the recipe never sees it.
    """
    published = (NOW - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if upvotes is None:
        entries = "".join(
            f"<entry><id>http://arxiv.org/abs/{paper_id(i)}v1</id>"
            f"<title>CiteULike-t {i}</title><summary>{escape(text_of(counts, i, vocab))}</summary>"
            f"<published>{published}</published>"
            f'<link href="http://arxiv.org/abs/{paper_id(i)}v1" rel="alternate"/></entry>'
            for i in pool
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<feed xmlns="http://www.w3.org/2005/Atom"><title>CiteULike-t</title>'
            f"<updated>{published}</updated>{entries}</feed>"
        ).encode()
    items = [
        {
            "paper": {
                "id": paper_id(i),
                "title": f"CiteULike-t {i}",
                "summary": text_of(counts, i, vocab),
                "authors": [],
                "publishedAt": published,
                "upvotes": int(upvotes[i]),
            },
            "title": f"CiteULike-t {i}",
            "publishedAt": published,
        }
        for i in pool
    ]
    return json.dumps(items).encode()


def build_store(path: Path, document: bytes, votes: dict[int, np.ndarray]) -> int:
    """Parse the document and store it as ``paperwire fetch`` does; record the readers' votes."""
    papers, warnings = parse_document(document, source="citeulike-t")
    if warnings:
        raise SystemExit(f"feed warnings: {warnings[:3]}")
    with Store(path) as store:
        store.add_papers(papers, now=NOW - dt.timedelta(hours=12))
        store.record_votes(
            ((f"u{u}", paper_id(i), 1) for u, items in votes.items() for i in items),
            via="import",
        )
    return len(papers)


def config_for(users: list[int]):
    """One subscriber per reader, no interests text (CiteULike has none)."""
    lines = ["subscribers:"]
    for u in users:
        lines += [f"  - id: u{u}", f"    email: u{u}@example.org"]
    return parse_config("\n".join(lines) + "\n", label="eval.yaml", env={})


def product_digests(
    db: Path, users: list[int], weights: rank.Weights, batch: int
) -> dict[int, list[int]]:
    """Each reader's digest from ``digest.compose``: CiteULike indices, in the order shown."""
    config = config_for(users)
    out: dict[int, list[int]] = {}
    with Store(db) as store:
        for start in range(0, len(users), batch):
            subs = list(config.subscribers[start : start + batch])
            composed = digest.compose(
                store,
                config,
                subs,
                now=NOW,
                since=NOW - dt.timedelta(days=7),
                limit=DIGEST,
                weights=weights,
            )
            for sub in subs:
                out[int(sub.id[1:])] = [
                    int(p.paper_id.split(".")[1]) for p in composed[sub.id].picks
                ]
    return out


def recall(picks: dict[int, list[int]], test: dict[int, np.ndarray]) -> float:
    return float(np.mean([np.isin(picks[u], test[u]).sum() / len(test[u]) for u in picks]))


def recipe_digests(
    counts: sp.csr_matrix, pool: np.ndarray, users: list[int], train: dict
) -> dict[int, list[int]]:
    """The arxiv-sanity-lite recipe on the same pool: top 10 of the unrated papers."""
    x = eval_ranking.asl_features(counts[pool])
    position = {p: k for k, p in enumerate(pool)}
    positives = [np.array([position[i] for i in train[u]]) for u in users]
    scores = eval_ranking.arxiv_sanity(x, positives)
    out = {}
    for row, u in enumerate(users):
        s = scores[row].astype(np.float64)
        s[positives[row]] = -np.inf
        out[u] = pool[np.argsort(-s, kind="stable")[:DIGEST]].tolist()
    return out


def count_path(
    counts: sp.csr_matrix,
    pool: np.ndarray,
    users: list[int],
    train: dict,
    upvotes: np.ndarray,
    weights: rank.Weights,
) -> dict[str, dict[int, list[int]]]:
    """The old evaluation's path on the same pool: ``rank`` on the count matrix, no store,
    no MMR, the prior standardised over the pool (a diagnostic, not what ships)."""
    model = rank.TextModel(n_features=counts.shape[1]).fit_counts(counts[pool])
    vectors = model.weigh(counts[pool])
    position = {p: k for k, p in enumerate(pool)}
    liked = [np.array([position[i] for i in train[u]]) for u in users]
    prior = rank.popularity_prior(upvotes[pool])
    plain, boosted = eval_ranking.paperwire(vectors, liked, prior, weights)
    out = {}
    for name, scores in (("no upvotes", plain), ("upvotes", boosted)):
        picks = {}
        for row, u in enumerate(users):
            s = scores[row].astype(np.float64)
            s[liked[row]] = -np.inf
            picks[u] = pool[np.argsort(-s, kind="stable")[:DIGEST]].tolist()
        out[name] = picks
    return out


def pick(
    scores: np.ndarray, excluded: list[np.ndarray], vectors: sp.csr_matrix, weights: rank.Weights
) -> list[list[int]]:
    """What compose does with a score matrix: the best 3 × 10 allowed papers, MMR down to 10."""
    allowed = np.ones(scores.shape, dtype=bool)
    for row, cols in enumerate(excluded):
        allowed[row, cols] = False
    pools = rank.top_k(scores, DIGEST * digest.MMR_POOL, allowed)
    return [
        rank.mmr(pools[row], scores[row], vectors, DIGEST, weights.mmr_lambda)
        for row in range(scores.shape[0])
    ]


VARIANTS = {
    "no prior": {"popularity": 0.0},
    "no prior, MMR off": {"popularity": 0.0, "mmr_lambda": 1.0},
    "prior 1.0 ungated (79c3e51)": {"popularity": 1.0, "popularity_bar": -np.inf},
    "prior 1.0 ungated, MMR off": {"popularity": 1.0, "popularity_bar": -np.inf, "mmr_lambda": 1.0},
    "prior 0.75 ungated": {"popularity": 0.75, "popularity_bar": -np.inf},
    "prior 0.5 ungated": {"popularity": 0.5, "popularity_bar": -np.inf},
    "prior 0.35 ungated": {"popularity": 0.35, "popularity_bar": -np.inf},
    "prior 0.75, bar 0": {"popularity": 0.75, "popularity_bar": 0.0},
    "prior 0.5, bar 0": {"popularity": 0.5, "popularity_bar": 0.0},
    "prior 0.5, bar 0, MMR off": {"popularity": 0.5, "popularity_bar": 0.0, "mmr_lambda": 1.0},
    "prior 0.5, bar 0, MMR 0.7": {"popularity": 0.5, "popularity_bar": 0.0, "mmr_lambda": 0.7},
    "prior 0.5, bar 2": {"popularity": 0.5, "popularity_bar": 2.0},
    "prior 0.75, bar 2": {"popularity": 0.75, "popularity_bar": 2.0},
    "prior 0.4, bar 1": {"popularity": 0.4, "popularity_bar": 1.0},
    "prior 0.5, bar 1": {"popularity": 0.5, "popularity_bar": 1.0},
    "prior 0.6, bar 1": {"popularity": 0.6, "popularity_bar": 1.0},
    "prior 0.5, bar 1, MMR 0.7": {"popularity": 0.5, "popularity_bar": 1.0, "mmr_lambda": 0.7},
    "prior 0.5, bar 1, MMR 0.9": {"popularity": 0.5, "popularity_bar": 1.0, "mmr_lambda": 0.9},
    "prior 0.5, bar 1, MMR off": {"popularity": 0.5, "popularity_bar": 1.0, "mmr_lambda": 1.0},
    "prior 0.6, bar 1, MMR 0.7": {"popularity": 0.6, "popularity_bar": 1.0, "mmr_lambda": 0.7},
    "prior x top-30 spread 0.5": {"popularity": 0.5, "popularity_bar": 0.0, "relative": True},
    "prior x top-30 spread 1.0": {"popularity": 1.0, "popularity_bar": 0.0, "relative": True},
}


def variants(
    relevance: np.ndarray,
    prior: np.ndarray,
    excluded: list[np.ndarray],
    vectors: sp.csr_matrix,
    users: list[int],
    ids: np.ndarray,
    test: dict,
    base: rank.Weights,
    tag: str,
    report,
) -> None:
    """Each weight variant applied to one relevance matrix, picked the way compose picks."""
    for name, values in VARIANTS.items():
        values = dict(values)
        relative = values.pop("relative", False)
        w = replace(base, **values)
        lift = crowd(relevance, prior, w) if w.popularity else 0
        if relative:  # the prior in units of the subscriber's own spread among their best
            top = -np.partition(-relevance, 29, axis=1)[:, :30]
            lift = lift * top.std(axis=1, keepdims=True)
        scores = relevance + lift
        picks = pick(scores, excluded, vectors, w)
        report(
            f"{tag}: {name}",
            recall({u: ids[p].tolist() for u, p in zip(users, picks, strict=True)}, test),
        )


def crowd(relevance, prior, w):
    return rank.crowd_lift(relevance, prior, w)


def product_relevance(db: Path, users: list[int], weights: rank.Weights, batch: int):
    """Relevance (no prior) of every stored paper with the profiles compose builds, the
    prior compose would add, the excluded (voted) columns, vectors and CiteULike indices."""
    config = config_for(users)
    with Store(db) as store:
        corpus = digest._Corpus.load(store)
        ids = [r["paper_id"] for r in corpus.rows]
        bare = replace(weights, popularity=0.0)
        parts = []
        for start in range(0, len(users), batch):
            subs = list(config.subscribers[start : start + batch])
            parts.append(digest.score_matrix(store, config, subs, ids, now=NOW, weights=bare))
        prior = rank.popularity_prior([r["upvotes"] for r in corpus.rows])
        index = {p: i for i, p in enumerate(ids)}
        votes = store.votes([f"u{u}" for u in users])
    excluded: dict[int, list[int]] = {u: [] for u in users}
    for v in votes:
        excluded[int(v["subscriber_id"][1:])].append(index[v["paper_id"]])
    cite = np.array([int(p.split(".")[1]) for p in ids])
    return (
        np.vstack(parts),
        prior,
        [np.array(excluded[u], dtype=np.int64) for u in users],
        corpus.matrix,
        cite,
    )


def count_relevance(counts, pool, users, train, weights):
    """Relevance on the count path (rank's functions over the pool's count matrix)."""
    model = rank.TextModel(n_features=counts.shape[1]).fit_counts(counts[pool])
    vectors = model.weigh(counts[pool])
    position = {p: k for k, p in enumerate(pool)}
    liked = [np.array([position[i] for i in train[u]]) for u in users]
    plain, _ = eval_ranking.paperwire(vectors, liked, np.zeros(len(pool)), weights)
    return plain.astype(np.float64), liked, vectors


def parse_weights(pairs: list[str]) -> rank.Weights:
    kinds = {f.name: f.type for f in fields(rank.Weights)}
    values = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in kinds:
            raise SystemExit(f"--weights: unknown weight {key!r}")
        values[key] = int(value) if kinds[key] in ("int", int) else float(value)
    return replace(rank.Weights(), **values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100, help="readers to evaluate (0: all)")
    parser.add_argument("--tune", action="store_true", help="tuning readers, not held-out ones")
    parser.add_argument("--pool", type=int, default=6000, help="papers in the pool, at least")
    parser.add_argument("--batch", type=int, default=100, help="subscribers per compose call")
    parser.add_argument("--weights", nargs="*", default=[], help="rank.Weights overrides k=v")
    parser.add_argument("--feeds", default="atom,hf", help="atom, hf or both")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--count-path", action="store_true", help="also the count-matrix table")
    parser.add_argument(
        "--variants", default="", help="prior/MMR variants on 'product', 'count' or both (tuning)"
    )
    args = parser.parse_args(argv)
    started = time.time()
    weights = parse_weights(args.weights)
    counts, libraries, vocab = citeulike()
    users = readers(libraries, args.users, args.tune)
    splits = eval_ranking.split(libraries, users, SEED)
    train = {u: splits[u][0] for u in users}
    test = {u: splits[u][1] for u in users}
    upvotes = eval_ranking.popularity_counts(libraries, splits, counts.shape[0])
    pool = pool_of(libraries, users, args.pool, counts.shape[0])
    which = "tuning" if args.tune else "held-out"
    print(
        f"# CiteULike-t through digest.compose: {len(users)} {which} readers, pool {len(pool)} "
        f"papers, digest {DIGEST}; weights {weights}",
        flush=True,
    )
    results: dict[str, float] = {}

    def report(name: str, value: float) -> None:
        results[name] = value
        print(f"{name:<52} recall@10 {value:.4f}  ({time.time() - started:.0f}s)", flush=True)

    if not args.skip_recipe:
        report("arxiv-sanity-lite recipe", recall(recipe_digests(counts, pool, users, train), test))
    with tempfile.TemporaryDirectory() as tmp:
        for kind in [k for k in args.feeds.split(",") if k != "none"]:
            document = feed_document(counts, vocab, pool, upvotes if kind == "hf" else None)
            db = Path(tmp) / f"{kind}.db"
            build_store(db, document, train)
            picks = product_digests(db, users, weights, args.batch)
            label = "Atom, no upvotes" if kind == "atom" else "Hugging Face JSON, upvotes"
            report(f"paperwire via compose, {label}", recall(picks, test))
        if args.variants and "product" in args.variants:
            db = Path(tmp) / "hf.db"
            if not db.exists():
                build_store(db, feed_document(counts, vocab, pool, upvotes), train)
            rel, prior, excluded, vectors, ids = product_relevance(db, users, weights, args.batch)
            variants(rel, prior, excluded, vectors, users, ids, test, weights, "compose", report)
    if args.variants and "count" in args.variants:
        cp = count_relevance(counts, pool, users, train, weights)
        prior = rank.popularity_prior(upvotes[pool])
        variants(*cp[:1], prior, cp[1], cp[2], users, pool, test, weights, "count", report)
    if args.count_path:
        for name, picks in count_path(counts, pool, users, train, upvotes, weights).items():
            report(f"count-matrix path (rank only, no MMR), {name}", recall(picks, test))
    if "arxiv-sanity-lite recipe" in results:
        base = results["arxiv-sanity-lite recipe"]
        for name, value in results.items():
            if name.startswith("paperwire"):
                print(f"ratio {name}: {value / base:.2f}x", flush=True)
    print(f"# total {time.time() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
