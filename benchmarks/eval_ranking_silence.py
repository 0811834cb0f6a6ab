"""Does "sent but never voted on" help as a weak thumbs-down? A simulation on CiteULike-t.

Each tuning user (the same users, split and seed as eval_ranking.py --users tune) gets one
digest of 10 from paperwire's model trained on their 80 %. Hidden papers in it count as liked
(the user would have clicked); the other shown papers are "silence". Then the profile is rebuilt
with the silent papers as thumbs-down at several weights, and the remaining hidden papers are
ranked; the shown papers are never shown again in any arm.

    python benchmarks/eval_ranking_silence.py
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
from eval_ranking import (
    DATA,
    MODEL,
    SEED,
    evaluate,
    load_citeulike,
    paperwire,
    popularity_counts,
    split,
)
from joblib import Parallel, delayed

from paperwire.rank import core as rank


def _scores(vectors, labels, popularity, weights):
    profiles = rank.build_profiles(labels, vectors, weights)
    return rank.score(profiles, vectors, popularity, weights)


def main(n_users: int = 300) -> int:
    counts, libraries = load_citeulike(DATA / "citeulike-t")
    eligible = [u for u, lib in enumerate(libraries) if len(lib) >= 10 and u % 5]
    rng = np.random.default_rng(SEED)
    users = sorted(rng.choice(eligible, n_users, replace=False).tolist())
    splits = split(libraries, users, SEED)
    popularity = rank.popularity_prior(popularity_counts(libraries, splits, counts.shape[0]))
    model = rank.TextModel(n_features=counts.shape[1]).fit_counts(counts)
    vectors = model.weigh(counts)
    _, first = paperwire(vectors, [splits[u][0] for u in users], popularity, MODEL)
    kept, labels, seen, hidden = [], [], {}, {}
    for i, u in enumerate(users):
        train, test = splits[u]
        row = first[i].copy()
        row[train] = -np.inf
        shown = np.argsort(-row)[:10]
        clicked, silent = shown[np.isin(shown, test)], shown[~np.isin(shown, test)]
        if len(np.setdiff1d(test, clicked)) == 0:
            continue
        pos = np.r_[train, clicked]
        kept.append(u)
        seen[u] = np.r_[pos, silent]
        hidden[u] = np.setdiff1d(test, clicked)
        labels.append((pos, silent))
    print(f"# {len(kept)} tuning users, one digest of 10 each, then rank the rest", flush=True)
    for rocchio_w, clf_w in ((0.0, 0.0), (0.1, 1.0), (0.3, 3.0), (1.0, 10.0)):
        weights = replace(MODEL, disliked=rocchio_w, classifier_dislike_weight=clf_w)
        labs = [
            rank.Labels(
                sp.vstack([vectors[pos], vectors[neg]]).tocsr(),
                np.array(["liked"] * len(pos) + ["disliked"] * len(neg), dtype=object),
                np.zeros(len(pos) + len(neg)),
                np.r_[pos, neg].astype(np.int64),
            )
            for pos, neg in labels
        ]
        chunks = np.array_split(np.arange(len(labs)), 8)
        parts = Parallel(n_jobs=2, max_nbytes=None)(
            delayed(_scores)(vectors, [labs[j] for j in c], popularity, weights) for c in chunks
        )
        res = evaluate(np.vstack(parts), kept, seen, hidden)
        cells = "  ".join(f"{k} {v:.4f}" for k, v in res.items())
        print(f"silence as thumbs-down, Rocchio {rocchio_w:g} / classifier {clf_w:g}: {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
