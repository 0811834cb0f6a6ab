"""Outside the product, tuning readers only: what a reader's TF-IDF direction adds beside the
encoder's terms (benchmarks/README.md, "Sentence encoder", "Tried after the title fix").

Two samples of 300 CiteULike-t tuning readers (never held-out ones): eval_product's seeded 300,
and 300 others. Each reader's scores over every paper are z-standardised terms:

* ``tf``: Rocchio, the mean of the reader's TF-IDF rows (what the product ships);
* ``td``: the same mean minus the corpus mean, each term divided by its variance over the
  corpus plus the mean variance (a linear discriminant with a diagonal, shrunk covariance);
* ``reweight``: ``td`` without the corpus mean; ``meansub``: ``tf`` minus the corpus mean;
* beside them, the encoder's shipped terms (2.5 × whitened centroid + 1.9 × neighbours).

recall@10 of the hidden 20 % over every unrated paper, as a ratio to the recipe's LinearSVC.
``--features product`` uses the product's TextModel (hashed words and word pairs) on the texts
the product stores; ``asl`` arxiv-sanity-lite's features (words only, min_df 5, 20,000 terms);
``product-words`` the product's model without word pairs.

    python -m benchmarks.encode_citeulike    # the vectors, once
    python -m benchmarks.explore_directions --features asl
    python -m benchmarks.explore_directions --features product
    python -m benchmarks.explore_directions --features asl --sample more   # 1,200 other tuning readers
    python -m benchmarks.explore_directions --sample more --metric pooled --mix 0.65

``--metric pooled`` whitens the encoder's centroid with a covariance that mixes the corpus's
(share ``--mix``, scaled to the same trace) with the scatter of papers around their own
reader's mean, pooled over the deployment's readers (the sample's training papers and 3,000
other non-held-out libraries): LDA with readers as classes, one covariance for everyone.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from benchmarks import eval_product as ep
from benchmarks import eval_ranking as er
from paperwire.paper import paper_text
from paperwire.rank import core as rank
from paperwire.rank import semantic

SHIPPED = semantic.SemanticWeights()  # the encoder's shipped shrinkage, weights, neighbours
z = ep._z


def features(kind: str, counts, vocab, asl):
    if kind == "asl":
        return asl.astype(np.float64)
    texts = [paper_text(ep.TITLE, ep.text_of(counts, i, vocab)) for i in range(counts.shape[0])]
    model = rank.TextModel()
    if kind == "product-words":
        model.hasher.ngram_range = (1, 1)
    return model.fit(texts).transform(texts).tocsr().astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="asl", choices=["asl", "product", "product-words"])
    parser.add_argument(
        "--sample",
        default="tuning",
        choices=["tuning", "more"],
        help="tuning: the two samples of 300; more: 1,200 other tuning readers",
    )
    parser.add_argument("--metric", default="corpus", choices=["corpus", "pooled"])
    parser.add_argument("--mix", type=float, default=0.65, help="the corpus's share (pooled)")
    parser.add_argument("--shrinkage", type=float, default=SHIPPED.shrinkage)
    args = parser.parse_args(argv)
    counts, libraries, vocab = ep.citeulike()
    vectors = np.load(ep.CACHE / "citeulike-minilm.npy").astype(np.float32)
    first = ep.readers(libraries, 300, True)
    taken = set(first)
    others = [u for u, lib in enumerate(libraries) if len(lib) >= 10 and u % 5 and u not in taken]
    second = sorted(np.random.default_rng(7).choice(others, 300, replace=False).tolist())
    rest = sorted(set(others) - set(second))
    samples = {
        "tuning": (("first 300", first), ("other 300", second)),
        "more": (("1,200 others", sorted(np.random.default_rng(11).choice(rest, 1200, False))),),
    }[args.sample]
    asl = er.asl_features(counts).tocsr()
    x = features(args.features, counts, vocab, asl)
    x_mean = np.asarray(x.mean(axis=0)).ravel()
    x_var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - x_mean**2
    spread = x_var + x_var.mean()
    sample = vectors[np.sort(np.random.default_rng(0).choice(len(vectors), 5000, replace=False))]
    mu, precision = semantic.whitening(sample, args.shrinkage)
    centred = vectors - mu
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    for name, users in samples:
        split = er.split(libraries, users, er.SEED)
        train = {u: split[u][0] for u in users}
        test = {u: split[u][1] for u in users}

        def recall(scores, users=users, train=train, test=test) -> float:
            return er.evaluate(np.asarray(scores), users, train, test)["recall@10"]

        recipe = er.arxiv_sanity(asl, [train[u] for u in users])
        if args.metric == "pooled":
            precision = pooled_precision(vectors, sample, libraries, users, train, args)
        terms: dict[str, list[np.ndarray]] = {k: [] for k in ("tf", "td", "reweight", "meansub")}
        encoder = []
        for liked in (train[u] for u in users):
            whitened = vectors @ (precision @ (vectors[liked].mean(axis=0) - mu))
            neighbours = semantic.top_k_mean(centred @ centred[liked].T, SHIPPED.neighbours)
            encoder.append(SHIPPED.weight * z(whitened) + SHIPPED.neighbour_weight * z(neighbours))
            m = np.asarray(x[liked].mean(axis=0)).ravel()
            terms["tf"].append(z(x @ m))
            terms["td"].append(z(x @ ((m - x_mean) / spread)))
            terms["reweight"].append(z(x @ (m / spread)))
            terms["meansub"].append(z(x @ (m - x_mean)))

        base = recall(recipe)
        cells = [
            f"{k} alone {recall(v) / base:.3f}, with the encoder "
            f"{recall([e + t for e, t in zip(encoder, v, strict=True)]) / base:.3f}"
            for k, v in terms.items()
        ]
        print(f"{name} ({args.features}): " + "; ".join(cells), flush=True)
    return 0


def pooled_precision(vectors, sample, libraries, users, train, args) -> np.ndarray:
    """The inverse of ``mix`` × the corpus covariance + (1 − ``mix``) × the within-reader
    scatter (scaled to the corpus's trace), shrunk as the product shrinks its own."""
    chosen = set(users)
    pool = [u for u, lib in enumerate(libraries) if u % 5 and u not in chosen and len(lib) >= 2]
    pool = np.random.default_rng(3).choice(pool, min(3000, len(pool)), replace=False)
    groups = [train[u] for u in users] + [libraries[u] for u in pool]
    spread = np.concatenate([vectors[g] - vectors[g].mean(axis=0) for g in groups if len(g) > 1])
    within = spread.T.astype(np.float64) @ spread / len(spread)
    corpus = np.cov(sample.T.astype(np.float64))
    mixed = args.mix * corpus + (1 - args.mix) * within * (np.trace(corpus) / np.trace(within))
    target = np.trace(mixed) / len(mixed)
    shrunk = (1 - args.shrinkage) * mixed + args.shrinkage * target * np.eye(len(mixed))
    return np.linalg.pinv(shrunk, hermitian=True)


if __name__ == "__main__":
    sys.exit(main())
