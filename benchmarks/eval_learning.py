"""How a reader's first votes change their ranking: arxiv-frontpage's researcher (an interests
text written from their strongest topics, ``eval_ranking.FRONTPAGE_INTERESTS``) votes, and the
labelled papers they have not voted on are ranked through ``digest.score_matrix``, as a digest
ranks them. AUC (liked against not) over those papers, beside the text alone's AUC over the
same papers: a vote should never make the ranking of the rest worse than no vote.

* ``votes``: n labelled papers drawn at random, each voted honestly (👍 on a liked paper, 👎 on
  another), for each n over ``--draws`` seeded draws;
* ``library``: n liked papers drawn at random imported as library seeds instead;
* ``digest``: day after day, the reader votes on the ``--show`` best papers they have not voted
  on (what their digest shows them), the AUC of the rest after each day.

    python -m benchmarks.eval_learning                       # ~2 minutes on two cores
    python -m benchmarks.eval_learning --evidence-prior 0    # papers at their whole weight (before)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.eval_ranking import FRONTPAGE_INTERESTS
from benchmarks.eval_reader import NOW, _ranking, frontpage_papers
from paperwire.config import parse_config
from paperwire.paper import Paper
from paperwire.rank import compose as digest
from paperwire.rank import embedded
from paperwire.store import Store

COUNTS = (1, 2, 5, 10, 20, 40, 80, 160)


def labelled() -> tuple[list[str], list[Paper], np.ndarray]:
    """The labelled papers' ids, every paper to store and which labelled papers the
    researcher likes."""
    items, keys, papers = frontpage_papers()
    return keys, papers, np.array([p["weight"] > 0 for p in items])


class Reader:
    """The researcher in a store of their own, scored as ``compose`` scores them."""

    def __init__(self, folder: Path, embeddings: str | None, weights=digest.DEFAULT_WEIGHTS):
        self.weights = weights
        self.keys, papers, self.liked = labelled()
        text = (_ranking(embeddings) if embeddings else "") + (
            "subscribers:\n  - id: fp\n    email: fp@example.org\n"
            f"    interests: {json.dumps(FRONTPAGE_INTERESTS)}\n"
        )
        self.config = parse_config(text, label="fp.yaml", env={})
        self.store = Store(folder / "frontpage.db")
        self.store.add_papers(papers, now=NOW - dt.timedelta(days=30))
        self.alone = self.scores(NOW)

    def scores(self, now: dt.datetime) -> np.ndarray:
        return digest.score_matrix(
            self.store, self.config, None, self.keys, now=now, weights=self.weights
        )[0]

    def auc(self, scores: np.ndarray, rest: np.ndarray) -> float:
        return float(roc_auc_score(self.liked[rest], scores[rest]))

    def vote(self, rows, now: dt.datetime) -> None:
        for i in rows:
            vote = 1 if self.liked[i] else -1
            self.store.record_vote("fp", self.keys[i], vote, via="bench", now=now)

    def forget(self) -> None:
        with self.store.atomic():
            self.store.db.execute("DELETE FROM votes")
            self.store.db.execute("DELETE FROM seeds")


def drawn(reader: Reader, counts, draws: int, library: bool) -> list[dict]:
    out = []
    liked_rows = np.flatnonzero(reader.liked)
    for n in counts:
        if library and n > len(liked_rows):
            continue
        learned, alone = [], []
        for draw in range(draws):
            rng = np.random.default_rng(draw)
            pool = liked_rows if library else np.arange(len(reader.keys))
            rows = rng.choice(pool, n, replace=False)
            if library:
                reader.store.add_seeds("fp", [reader.keys[i] for i in rows], origin="bench")
            else:
                reader.vote(rows, NOW)
            rest = np.ones(len(reader.keys), dtype=bool)
            rest[rows] = False
            learned.append(reader.auc(reader.scores(NOW + dt.timedelta(hours=1)), rest))
            alone.append(reader.auc(reader.alone, rest))
            reader.forget()
        row = {
            "n": n,
            "AUC": round(float(np.mean(learned)), 3),
            "text alone": round(float(np.mean(alone)), 3),
            "draws better": f"{sum(a > b for a, b in zip(learned, alone, strict=True))}/{draws}",
        }
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def day_by_day(reader: Reader, days: int, show: int) -> list[dict]:
    voted = np.zeros(len(reader.keys), dtype=bool)
    out = []
    for day in range(days + 1):
        scores = reader.scores(NOW + dt.timedelta(days=day))
        rest = ~voted
        shown = [i for i in np.argsort(-scores, kind="stable").tolist() if not voted[i]][:show]
        row = {
            "day": day,
            "votes": int(voted.sum()),
            "AUC": round(reader.auc(scores, rest), 3),
            "text alone": round(reader.auc(reader.alone, rest), 3),
            "shown liked": int(reader.liked[shown].sum()),
        }
        print(json.dumps(row), flush=True)
        out.append(row)
        reader.vote(shown, NOW + dt.timedelta(days=day, hours=1))
        voted[shown] = True
    reader.forget()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--show", type=int, default=5)
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--embeddings", help="ranking.embeddings (off: TF-IDF alone)")
    parser.add_argument(
        "--evidence-prior",
        type=float,
        help="every prior a reader's papers earn their weight against (shipped: 40, 10, 40)",
    )
    parser.add_argument("--only", choices=("votes", "library", "digest"))
    args = parser.parse_args(argv)
    weights = digest.DEFAULT_WEIGHTS
    if args.evidence_prior is not None:
        # the encoder's shipped weights are one frozen instance every ranking call defaults to
        for name in ("evidence_prior", "neighbour_evidence_prior"):
            object.__setattr__(embedded.SHIPPED, name, args.evidence_prior)
        weights = replace(weights, evidence_prior=args.evidence_prior)
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        reader = Reader(Path(tmp), args.embeddings, weights)
        if args.only in (None, "votes"):
            print("random honest votes")
            drawn(reader, counts, args.draws, library=False)
        if args.only in (None, "library"):
            print("random liked papers as a library")
            drawn(reader, counts, args.draws, library=True)
        if args.only in (None, "digest"):
            print(f"votes on the {args.show} best unvoted papers, day after day")
            day_by_day(reader, args.days, args.show)
        reader.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
