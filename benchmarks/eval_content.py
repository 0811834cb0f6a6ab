"""Content-only variants of compose's relevance, screened on every tuning reader at once.

Issue 17's last gap is the digest without upvotes (1.05× the arxiv-sanity-lite recipe on the
592 held-out readers, target 1.10×), i.e. content ranking alone. A 300-reader sample moves by
±10 % from draw to draw, so a content change that looks like +6 % there may be nothing: this
harness scores a change on all 2,249 tuning readers (``line % 5 != 0``, ≥ 10 papers), paired
per reader against what ships, in parallel (one process per core: the shipped ranking, the
+lsa variant and the recipe took 313 s on 16 cores; a variant that refits the classifier
adds about as much again).

What it measures is what compose does without upvotes, and nothing else:

* the vectors are the product's own: every CiteULike-t paper written as an Atom feed
  (``eval_product.feed_document``), parsed and stored with ``Store``, hashed and weighed by
  ``RankingSession().corpus`` (cached in ``PAPERWIRE_BENCH_CACHE`` after the first run);
* "shipped" is ``rank.classifier_row`` with the shipped ``rank.Weights`` (every reader here has
  ≥ 8 liked papers, so every profile is a classifier where a run allows one:
  ``classifier_max_subscribers``, 0 since the sentence encoder shipped), scored over every
  paper: the TF-IDF content path these variants were screened against;
* the digest is :func:`digests`: compose's ``top_k`` of 3 × 10 and MMR down to 10
  (``eval_product.pick``), with the cosines compose gives MMR at this many candidates
  (``tests/test_eval_path.py`` fails if the shipped row's picks ever differ from compose's
  top-10s);
* recall@10 of the hidden 20 %, split as ``eval_ranking.split`` (the data README's protocol).

    python -m benchmarks.eval_content --variants "C=1,pu=100,idf^2,+svm,+lsa"   # all tuning readers
    python -m benchmarks.eval_content --readers 300 --variants "+lsa"           # a sample
    python -m benchmarks.eval_content --recipe                                  # + the recipe's row

Variants (each a per-reader score over every paper; "+" adds a standardised term to the
standardised shipped score):

============  ==================================================================================
C=X           the classifier with C = X (shipped 0.5)
pu=K          positive-unlabelled refit: the K background papers the shipped classifier scores
              highest are dropped from the negatives (they may be the reader's unsaved likes)
idf^P         the corpus vectors with IDF raised to the power P (P = 2: squared IDF),
              re-normalised (MMR then compares papers on those vectors too)
binary        binary term frequency × IDF, re-normalised (likewise)
mmr-off       the shipped scores, the top 10 without MMR
+svm          + a LinearSVC (balanced, C 0.05: the best of 0.01 / 0.05 / 0.2 on these vectors;
              the recipe's learner, at the recipe's C 0.01) on the product's vectors
+rocchio=A    + A × the cosine to the liked papers' centroid, on squared-IDF vectors (A: 0.25)
+lsa=W        + the semantic layer (``paperwire.semantic``, classifier weight W, default 0.5) on
              a corpus-fitted LSA (TruncatedSVD, ``--lsa-dims``) instead of a static model
============  ==================================================================================
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from benchmarks import eval_product as ep
from benchmarks import eval_ranking
from paperwire.rank import core as rank
from paperwire.rank import semantic
from paperwire.rank.embed import unit_rows
from paperwire.rank.session import RankingSession
from paperwire.store import Store

WEIGHTS = rank.Weights()
# Set in the parent before the pool forks, so every worker shares them without copying.
STATE: dict = {}


# What the stored vectors are made by: a change to any of these makes a new cache file.
MADE_BY = ("eval_product.py", "../src/paperwire/rank/core.py", "../src/paperwire/rank/terms.py",
           "../src/paperwire/rank/compose.py", "../src/paperwire/store/__init__.py")  # fmt: skip


def product_vectors(counts, vocab) -> tuple[sp.csr_matrix, np.ndarray]:
    """The stored corpus matrix compose ranks with, and each row's CiteULike index (cached
    under a fingerprint of the code that makes them)."""
    here = Path(__file__).resolve().parent
    code = hashlib.sha256(b"".join((here / name).read_bytes() for name in MADE_BY))
    cached = ep.CACHE / f"product-vectors-{code.hexdigest()[:12]}.npz"
    if cached.exists():
        with np.load(cached) as f:
            cite = f["cite"]
        return sp.load_npz(cached.with_suffix(".matrix.npz")).tocsr(), cite
    pool = np.arange(counts.shape[0])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "atom.db"
        ep.build_store(db, ep.feed_document(counts, vocab, pool, None), {})
        with Store(db) as store:
            corpus = RankingSession().corpus(store)
            matrix = corpus.matrix.tocsr()
            cite = np.array([int(r["paper_id"].split(".")[1]) for r in corpus.rows])
    ep.CACHE.mkdir(parents=True, exist_ok=True)
    # the index file last, each written whole and renamed: a killed run leaves no half cache
    for target, save in (
        (cached.with_suffix(".matrix.npz"), lambda f: sp.save_npz(f, matrix)),
        (cached, lambda f: np.savez(f, cite=cite)),
    ):
        with tempfile.NamedTemporaryFile(dir=ep.CACHE, suffix=".npz", delete=False) as f:
            save(f)
        os.replace(f.name, target)
    return matrix, cite


def _z(s: np.ndarray) -> np.ndarray:
    return (s - s.mean()) / (s.std() or 1.0)


def _classifier(vectors: sp.csr_matrix, liked: np.ndarray, weights=WEIGHTS, drop=()) -> np.ndarray:
    """``rank.classifier_row`` for a reader whose liked papers are these rows; ``drop``: more
    rows kept out of the background. Scores over every paper."""
    labels = rank.Labels(
        vectors[liked],
        np.array(["liked"] * len(liked), dtype=object),
        np.zeros(len(liked)),
        np.r_[liked, np.asarray(drop, dtype=np.int64)].astype(np.int64),
    )
    coef = rank.classifier_row(labels, vectors, weights)
    return np.asarray((vectors @ coef.T).todense()).ravel()


def _reweighed(vectors: sp.csr_matrix, power: float | None) -> sp.csr_matrix:
    """The vectors with IDF to ``power`` (None: binary tf × IDF), rows re-normalised. The
    stored vectors have a column only where a term passed the IDF filters, so fitting on them
    gives back the IDF they were weighed with."""
    idf = rank.TextModel(n_features=vectors.shape[1]).fit_counts(vectors).idf
    if power is None:
        binary = vectors.copy()
        binary.data[:] = 1
        return normalize(binary @ sp.diags(idf)).tocsr().astype(np.float32)
    factor = np.where(idf > 0, idf ** (power - 1), 0).astype(np.float32)
    return normalize(vectors @ sp.diags(factor)).tocsr().astype(np.float32)


VARIANT = re.compile(
    r"C=[\d.]+|pu=\d+|idf\^[\d.]+|binary|mmr-off|\+svm|\+rocchio(=[\d.]+)?|\+lsa(=[\d.]+)?"
)


def check_variants(names: list[str]) -> None:
    """Unknown names fail here, before the pool: a worker that raised would hang the run."""
    bad = [n for n in names if not VARIANT.fullmatch(n)]
    if bad:
        raise SystemExit(f"unknown variant(s) {', '.join(map(repr, bad))} (see --help)")


def _parameter(name: str, default: float) -> float:
    return float(name.split("=", 1)[1]) if "=" in name else default


def variant_scores(name: str, liked: np.ndarray, shipped: np.ndarray) -> np.ndarray:
    v = STATE["vectors"]
    if name.startswith("C="):
        return _classifier(v, liked, replace(WEIGHTS, classifier_c=float(name[2:])))
    if name.startswith("pu="):
        s = shipped.copy()
        s[liked] = -np.inf
        k = int(name[3:])
        return _classifier(v, liked, drop=np.argpartition(-s, k)[:k])
    if name.startswith("idf^") or name == "binary":
        return _classifier(STATE[name], liked)
    if name == "mmr-off":
        return shipped
    if name == "+svm":
        y = np.zeros(v.shape[0])
        y[liked] = 1
        svm = LinearSVC(C=0.05, class_weight="balanced", max_iter=2000).fit(v, y)
        return _z(shipped) + _z(np.asarray(v @ svm.coef_.ravel()).ravel())
    if name.startswith("+rocchio"):
        m = STATE["idf^2"]
        centroid = np.asarray(m[liked].mean(axis=0)).ravel()
        return _z(shipped) + _parameter(name, 0.25) * _z(m @ centroid)
    if name.startswith("+lsa"):
        e = STATE["lsa"]
        w = replace(semantic.SemanticWeights(), classifier_weight=_parameter(name, 0.5))
        sig = semantic.EmbeddedSignals(
            None,
            e[liked],
            np.array(["liked"] * len(liked), dtype=object),
            np.zeros(len(liked)),
            liked,
        )
        profiles = semantic.build_profiles([sig], e, w)
        return _z(shipped) + profiles.added(e, w, STATE["lsa-density"])[0]
    raise ValueError(f"unknown variant {name!r}")


def _one_thread() -> None:
    """Each worker fits one reader at a time on one core: no BLAS thread pool per worker."""
    threadpool_limits(1)


def reader_task(args) -> tuple[int, dict[str, np.ndarray]]:
    index, liked = args
    shipped = _classifier(STATE["vectors"], liked)
    out = {"shipped": shipped}
    for name in STATE["variants"]:
        out[name] = variant_scores(name, liked, shipped)
    return index, {k: v.astype(np.float32) for k, v in out.items()}


def prepare(vectors: sp.csr_matrix, variants: list[str], lsa_dims: int) -> None:
    check_variants(variants)
    STATE.clear()
    STATE.update(vectors=vectors, variants=variants)
    for name in variants:
        if name.startswith("idf^"):
            STATE[name] = _reweighed(vectors, float(name[4:]))
        if name == "binary":
            STATE[name] = _reweighed(vectors, None)
        if name.startswith("+rocchio") and "idf^2" not in STATE:
            STATE["idf^2"] = _reweighed(vectors, 2.0)
        if name.startswith("+lsa") and "lsa" not in STATE:
            svd = TruncatedSVD(lsa_dims, algorithm="randomized", n_iter=5, random_state=0)
            STATE["lsa"] = unit_rows(svd.fit_transform(vectors).astype(np.float32))
            w = semantic.SemanticWeights()
            STATE["lsa-density"] = semantic.build_profiles([], STATE["lsa"], w).density(
                STATE["lsa"], w
            )


def digests(name: str, scores: np.ndarray, liked: list[np.ndarray]) -> list[list[int]]:
    """Each reader's 10 picks (corpus rows) from one variant's scores, as compose picks them:
    MMR on the vectors the variant ranks with, over compose's float16 cosines where it keeps
    them (up to ``digest.MAX_DENSE_SIMILARITY`` candidates), else the exact cosines it
    computes per pool (``eval_product.cosines``); ``mmr-off`` is the plain top 10."""
    vectors = STATE.get(name, STATE["vectors"])
    weights = replace(WEIGHTS, mmr_lambda=1.0) if name == "mmr-off" else WEIGHTS
    if "cosines" not in STATE or STATE["cosines"][0] is not vectors:
        STATE["cosines"] = (vectors, ep.cosines(vectors))
    return ep.pick(scores, liked, vectors, weights, STATE["cosines"][1])


def recipe_recall(counts, splits, users, jobs: int) -> list[float]:
    """The arxiv-sanity-lite recipe's recall@10 per reader (every unrated paper ranked)."""
    eval_ranking.JOBS = jobs
    train = {u: splits[u][0] for u in users}
    picks = ep.recipe_digests(counts, np.arange(counts.shape[0]), users, train)
    return list(ep.per_reader(picks, {u: splits[u][1] for u in users}).values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=0, help="seeded sample (0: every one)")
    parser.add_argument("--held-out", action="store_true", help="held-out readers (report only)")
    parser.add_argument("--variants", default="", help="comma-separated (see the docstring)")
    parser.add_argument("--lsa-dims", type=int, default=128)
    parser.add_argument("--recipe", action="store_true", help="also the recipe's row and ratios")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--per-reader", type=Path, help="write each reader's recall@10 (JSON)")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    check_variants(variants)
    started = time.time()

    counts, libraries, vocab = ep.citeulike()
    users = ep.readers(libraries, args.readers, tune=not args.held_out)
    splits = eval_ranking.split(libraries, users, ep.SEED)
    vectors, cite = product_vectors(counts, vocab)
    row_of = np.empty(len(cite), dtype=np.int64)
    row_of[cite] = np.arange(len(cite))
    liked = [row_of[splits[u][0]] for u in users]
    prepare(vectors, variants, args.lsa_dims)
    print(f"{len(users)} readers, {vectors.shape[0]} papers, {time.time() - started:.0f} s")

    scores: dict[int, dict[str, np.ndarray]] = {}
    # fork: the workers inherit STATE (the vectors, the LSA) instead of pickling it per task
    with multiprocessing.get_context("fork").Pool(args.jobs, _one_thread) as pool:
        for index, out in pool.imap_unordered(reader_task, list(enumerate(liked))):
            scores[index] = out
    print(f"fits done, {time.time() - started:.0f} s", flush=True)

    results: dict[str, list[float]] = {}
    for name in ["shipped", *variants]:
        batch = 256
        for start in range(0, len(users), batch):
            rows = range(start, min(start + batch, len(users)))
            matrix = np.vstack([scores[i][name] for i in rows]).astype(np.float32)
            picks = digests(name, matrix, [liked[i] for i in rows])
            chosen = {users[i]: cite[p] for i, p in zip(rows, picks, strict=True)}
            hidden = {users[i]: splits[users[i]][1] for i in rows}
            results.setdefault(name, []).extend(ep.per_reader(chosen, hidden).values())
    if args.recipe:
        results["recipe"] = recipe_recall(counts, splits, users, args.jobs)

    shipped = np.array(results["shipped"])
    recipe = np.array(results["recipe"]) if "recipe" in results else None
    print(f"\nrecall@10 of a 10-paper digest, {len(users)} readers, no upvotes")
    print(f"{'variant':<12} {'recall@10':>9}  {'vs shipped (paired ± s.e.)':<26} vs recipe")
    for name, values in results.items():
        v = np.array(values)
        d = v - shipped
        ratio = f"{v.mean() / recipe.mean():.3f}×" if recipe is not None else ""
        print(
            f"{name:<12} {v.mean():>9.4f}  {d.mean():+.4f} ± {d.std() / np.sqrt(len(d)):.4f}"
            f"{'':<10} {ratio}"
        )
    if args.per_reader:
        args.per_reader.write_text(json.dumps({"users": users, **results}))
    print(f"{time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
