"""The sentence encoder beside TF-IDF, measured on real arXiv text (issue 25).

Two checks, each with the command in benchmarks/README.md ("Sentence encoder"):

* ``--speed``: embed 2,000 real abstracts (arxiv-frontpage papers and the 2025-04-11 RSS day),
  wall and CPU time, peak memory, the machine's load (``taskset -c 0,1`` for two cores).
* arxiv-frontpage: AUC of liked vs disliked papers for the interests text alone (cold start)
  and with half the papers voted, TF-IDF (``paperwire.rank``, as eval_ranking.py) plus what
  ``paperwire.rank.semantic`` adds, for several variants; ``--halves N``: the mean over N
  other random halves, which the weights are chosen on.

CiteULike-t is measured through the product instead (eval_product.py).

    python -m benchmarks.eval_semantic --speed
    python -m benchmarks.eval_semantic --frontpage
    python -m benchmarks.eval_semantic --frontpage --halves 40
    python -m benchmarks.eval_semantic --frontpage --not-interested reader   # + topics not wanted
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
from typing import NamedTuple

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks import eval_ranking as er
from paperwire.paper import paper_text
from paperwire.rank import core as rank
from paperwire.rank import embed, semantic
from paperwire.rank.nearest import NearestPapers

DATA = er.DATA
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
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


class Frontpage(NamedTuple):
    items: list[dict]
    texts: list[str]
    liked: np.ndarray
    tfidf: rank.TextModel
    corpus_tfidf: object
    corpus_emb: np.ndarray
    interests_emb: np.ndarray
    phrases: np.ndarray | None
    avoid: np.ndarray | None


def _frontpage_setup(
    spec: str, interests: str = er.FRONTPAGE_INTERESTS, not_interested: str = ""
) -> Frontpage:
    """The labelled items, their texts, which are liked, the TF-IDF model and vectors and the
    encoder's vectors of the corpus (the items, then the other downloads), the interests text's
    vector and its phrases' vectors, and those of the topics not wanted (as compose builds
    them)."""
    items, downloads = frontpage_data()
    texts = [paper_text(p["title"], p["abstract"]) for p in items]
    corpus_texts = texts + [paper_text(r["title"], r["abstract"]) for r in downloads]
    liked = np.array([p["weight"] > 0 for p in items])
    tfidf = rank.TextModel().fit(corpus_texts)
    corpus_tfidf = tfidf.transform(corpus_texts)
    model = embed.load_model(spec)
    corpus_emb = model.embed(corpus_texts)
    interests_emb = model.embed([interests])[0]
    (phrases,) = semantic.phrase_vectors(model.embed, [interests])
    (avoid,) = semantic.phrase_vectors(model.embed, [not_interested], unwanted=True)
    return Frontpage(
        items, texts, liked, tfidf, corpus_tfidf, corpus_emb, interests_emb, phrases, avoid
    )


def frontpage(
    spec: str,
    sw: semantic.SemanticWeights,
    vectors_file: str | None = None,
    interests_row: int = 0,
    interests: str = er.FRONTPAGE_INTERESTS,
    not_interested: str = "",
) -> None:
    fp = _frontpage_setup(spec, interests, not_interested)
    items, texts, liked, tfidf, corpus_tfidf, corpus_emb, interests_emb, phrases, avoid = fp
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
        sig = rank.Signals(interests=interests, not_interested=not_interested, votes=votes)
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
            phrases,
            avoid,
        )
        return semantic.build_profiles([sig], corpus_emb, w)

    def sem_scores(votes_up, votes_down, w) -> np.ndarray:
        """What the encoder adds, alone (no TF-IDF under it)."""
        return sem_profiles(votes_up, votes_down, w).added(corpus_emb[:n], w)[0]

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
        f"vectors of {vectors_file} (interests row {interests_row})"
        if vectors_file
        else embed.load_model(spec).name
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
        ("no phrase match (the whole interests text)", replace(sw, phrases=0.0)),
        ("phrase match × 0.5", replace(sw, phrases=sw.phrases * 0.5)),
        ("phrase match × 2", replace(sw, phrases=sw.phrases * 2)),
        (
            "no neighbours (whitened centroid alone)",
            replace(sw, neighbour_weight=0.0, neighbour_weight_with_dislikes=0.0),
        ),
        ("no whitened centroid (neighbours alone)", replace(sw, weight=0.0)),
        ("plain centroid (shrinkage 1)", replace(sw, shrinkage=1.0)),
        ("shrinkage 0.02", replace(sw, shrinkage=0.02)),
        ("shrinkage 0.3", replace(sw, shrinkage=0.3)),
        ("no density", replace(sw, density_weight=0.0)),
        (f"density weight 1.5 (shipped {sw.density_weight:g})", replace(sw, density_weight=1.5)),
        ("neighbours not centred", replace(sw, centred=False)),
        ("neighbours k 1", replace(sw, neighbours=1)),
        ("neighbours k 5", replace(sw, neighbours=5)),
        *weight_sweep(sw),
    ):
        cells = [
            roc_auc_score(liked[rest], chosen(u, d, w)[rest]) for u, d in ((up, none), (up, down))
        ]
        print(f"  {label:<46} {cells[0]:.3f} / {cells[1]:.3f}", flush=True)


def weight_sweep(sw: semantic.SemanticWeights) -> list[tuple[str, semantic.SemanticWeights]]:
    """The centroid's and the neighbours' weights set to other values, each labelled with the
    value it sets (both frontpage tables try them)."""
    centroid = [
        (f"centroid weight {v:g} (shipped {sw.weight:g})", replace(sw, weight=v))
        for v in (0.5, 1.0, 1.5, 2.0)
    ]
    neighbours = [
        (
            f"neighbour weight {v:g} (shipped {sw.neighbour_weight:g})",
            replace(sw, neighbour_weight=v, neighbour_weight_with_dislikes=v),
        )
        for v in (0.5, 2.0)
    ]
    return centroid + neighbours


def frontpage_halves(
    spec: str,
    sw: semantic.SemanticWeights,
    halves: int,
    interests: str = er.FRONTPAGE_INTERESTS,
    not_interested: str = "",
) -> None:
    """Mean AUC of the unvoted half over random halves (seeds 100, 101, ...; not the reported
    split, er.SEED), the product's sum for several weights: what the weights were chosen on."""
    fp = _frontpage_setup(spec, interests, not_interested)
    items, texts, liked, tfidf, corpus_tfidf, corpus_emb, interests_emb, phrases, avoid = fp
    n = len(items)
    weights = rank.Weights()
    variants = {
        "TF-IDF alone": None,
        "chosen": sw,
        "no neighbours": replace(sw, neighbour_weight=0.0, neighbour_weight_with_dislikes=0.0),
        "no phrase match": replace(sw, phrases=0.0),
        "phrase match × 0.5": replace(sw, phrases=sw.phrases * 0.5),
        "phrase match × 2": replace(sw, phrases=sw.phrases * 2),
        "plain centroid (shrinkage 1)": replace(sw, shrinkage=1.0),
        "shrinkage 0.3": replace(sw, shrinkage=0.3),
        "no density": replace(sw, density_weight=0.0),
        **dict(weight_sweep(sw)),
        "no nearest-papers vote": replace(sw, nearest=0.0),
        "nearest-papers vote × 0.5": replace(sw, nearest=sw.nearest * 0.5),
        "nearest-papers vote × 2": replace(sw, nearest=sw.nearest * 2),
    }
    if not_interested:
        variants |= {
            f"topics not wanted × {k:g}": replace(sw, not_interested=sw.not_interested * k)
            for k in (0.0, 0.5, 2.0)
        }
    # each item's nearest papers among the corpus (items and downloads), as compose finds them
    cal = semantic.calibrate(corpus_emb, sw)
    graph = NearestPapers.of_corpus(corpus_emb, corpus_tfidf, cal, sw.nearest_papers)
    aucs: dict[tuple[str, str], list[float]] = {}
    for seed in range(100, 100 + halves):
        voted = np.random.default_rng(seed).random(n) < 0.5
        rest = ~voted
        up = np.flatnonzero(voted & liked)
        down = np.flatnonzero(voted & ~liked)
        for case, u, d in (("up", up, up[:0]), ("up+down", up, down)):
            votes = [(texts[i], 1, NOW) for i in u] + [(texts[i], -1, NOW) for i in d]
            sig = rank.Signals(interests=interests, not_interested=not_interested, votes=votes)
            profiles = rank.build_profiles_from_signals(tfidf, [sig], corpus_tfidf, NOW, weights)
            t = rank.score(profiles, corpus_tfidf[:n], None, weights)[0]
            rows = np.r_[u, d].astype(np.int64)
            kinds = np.array(["liked"] * len(u) + ["disliked"] * len(d), dtype=object)
            emb = semantic.EmbeddedSignals(
                interests_emb, corpus_emb[rows], kinds, np.zeros(len(rows)), rows, phrases, avoid
            )
            for name, w in variants.items():
                total = t
                if w is not None:
                    total = (
                        t
                        + semantic.build_profiles([emb], corpus_emb, w).added(corpus_emb[:n], w)[0]
                    )
                    if w.nearest and len(u) >= w.nearest_min_papers:
                        ones = np.ones(len(u), dtype=np.float32)
                        total = total + w.nearest * graph.votes(np.arange(n), [u], [ones])[0]
                aucs.setdefault((name, case), []).append(roc_auc_score(liked[rest], total[rest]))
    print(f"# arxiv-frontpage, {halves} random halves voted (seeds 100-{99 + halves}): mean AUC")
    print(f"{'':<38} {'thumbs-up only':>16} {'up and down':>16}")
    for name in variants:
        cells = []
        for case in ("up", "up+down"):
            a = np.array(aucs[(name, case)])
            cells.append(f"{a.mean():.3f} ± {a.std() / np.sqrt(len(a)):.3f}")
        print(f"{name:<38} {cells[0]:>16} {cells[1]:>16}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=embed.ENCODER, help="minilm, wordllama or a folder")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--frontpage", action="store_true")
    parser.add_argument(
        "--halves", type=int, default=0, help="with --frontpage: mean AUC over N random halves"
    )
    parser.add_argument("--vectors", help="precomputed frontpage vectors (.npy) of another model")
    parser.add_argument("--interests-row", type=int, default=0, help="0: query, 1: passage")
    parser.add_argument("--weight", type=float, default=semantic.SemanticWeights().weight)
    parser.add_argument(
        "--interests",
        choices=("strong", "every"),
        default="strong",
        help="the reader's strongest topics (the default) or every topic they weight above zero",
    )
    parser.add_argument(
        "--not-interested",
        choices=("none", "reader"),
        default="none",
        help="reader: the topics they weight -1 or less, as not_interested (eval_ranking.py)",
    )
    args = parser.parse_args(argv)
    not_interested = {"none": "", "reader": er.FRONTPAGE_NOT_INTERESTED}[args.not_interested]
    sw = replace(semantic.SemanticWeights(), weight=args.weight)
    interests = {"strong": er.FRONTPAGE_INTERESTS, "every": er.FRONTPAGE_INTERESTS_EVERY}[
        args.interests
    ]
    if args.speed:
        speed(args.model)
    if args.frontpage and args.halves:
        frontpage_halves(args.model, sw, args.halves, interests, not_interested)
    elif args.frontpage:
        frontpage(args.model, sw, args.vectors, args.interests_row, interests, not_interested)
    return 0


if __name__ == "__main__":
    sys.exit(main())
