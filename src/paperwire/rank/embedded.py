"""The stored corpus under one embedding model, and what ranking derives from it once: the
run's calibration, the rarity bars of "like <your paper>", each interest phrase's bar, each
paper's density. :class:`~paperwire.rank.session.RankingSession` keeps one while the corpus is
unchanged, so a daemon's ticks and a run's chunks of subscribers share them; the math is
rank/semantic.py's."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from . import evidence, nearest, semantic
from .embed import EmbeddingModel, text_vectors, unit_rows
from .nearest import NearestPapers
from .semantic import Calibration, SemanticWeights

if TYPE_CHECKING:
    import scipy.sparse as sp

    from ..store import Store
    from .core import Signals

SHIPPED = SemanticWeights()


class EmbeddedCorpus:
    """Every stored paper's vector under ``model`` (rows in the TF-IDF corpus's order)."""

    def __init__(self, model: EmbeddingModel, vectors: np.ndarray):
        self.model = model
        self.vectors = vectors
        self._calibrations: dict[SemanticWeights, Calibration] = {}
        # (density neighbours, centred) -> every paper's standardised density
        self._density: dict[tuple[int, bool], np.ndarray] = {}
        self._bars: tuple[float, float] | None = None  # at SIMILAR_RARITY, SIMILAR_FLOOR
        self._own_bars: dict[tuple[int, float], float] = {}  # (corpus row, share) -> its bar
        self._sample: np.ndarray | None = None  # the papers own bars are measured on
        # phrase -> (its bar, its vector): thousands of readers share a phrase
        self._phrases: dict[str, tuple[float, np.ndarray]] = {}
        self._floor: float | None = None  # semantic.meaning_floor, once per corpus
        # (the run's candidate rows, its calibration) -> their vectors, and centred
        self._kept: tuple[tuple[bytes, int], np.ndarray, np.ndarray] | None = None
        # each paper's nearest papers, found as runs ask for them (:meth:`nearest_papers`)
        self._nearest: NearestPapers | None = None
        self._making = threading.Lock()

    def vectors_of(
        self, store: Store, signals: list[Signals], now: dt.datetime, w: SemanticWeights = SHIPPED
    ) -> list[semantic.EmbeddedSignals]:
        """The subscribers' signals as vectors: everything :meth:`added` needs from the store.

        ``signals`` must name their papers by corpus row (``seed_rows`` / ``vote_rows``), as
        ``compose.subscriber_signals`` does given the run's corpus. The interests texts'
        vectors, their phrases' and those of the topics not wanted, are read from the store,
        or embedded and stored once. The run's calibration is made here too, so :meth:`added`
        reads no store and fills no cache that another thread reads: compose runs it beside
        the next chunk's reasons."""
        self.calibration(w)
        texts = [s.interests for s in signals]
        interests = text_vectors(store, self.model, texts)

        def stored(phrases: list[str]) -> np.ndarray:
            return text_vectors(store, self.model, phrases)

        phrases = semantic.phrase_vectors(stored, texts) if w.phrases else None
        avoid = (
            semantic.phrase_vectors(stored, [s.not_interested for s in signals], unwanted=True)
            if w.not_interested
            else None
        )
        return semantic.embedded_signals(
            self.model, signals, self.vectors, now, interests, phrases, avoid
        )

    def added(
        self,
        embedded: list[semantic.EmbeddedSignals],
        candidate_rows: np.ndarray,
        w: SemanticWeights = SHIPPED,
        base: np.ndarray | None = None,
    ) -> np.ndarray:
        """What the profiles of these signals (:meth:`vectors_of`) add to the scores ``base``
        of these candidates (corpus rows): numbers only, no store."""
        corpus = self.vectors
        cal = self.calibration(w)
        profiles = semantic.build_profiles(embedded, corpus, w, cal)
        rows = np.asarray(candidate_rows, dtype=np.int64)
        dense = None
        if profiles.neighbour_weights(w).any() and w.density_weight:
            key = (w.density_neighbours, w.centred)
            if key not in self._density:
                self._density[key] = profiles.density(corpus, w)
            dense = self._density[key][rows]
        papers, centred = self._candidates_of(rows, cal)
        total = profiles.added(papers, w, base, dense, centred)
        if w.nearest and self._nearest is not None:
            labelled = [semantic.labelled_rows(sig, w) for sig in embedded]
            enough = np.array([nearest.votes(rows, w.nearest_min_papers) for rows, _ in labelled])
            weight = np.where(enough, w.nearest, 0).astype(np.float32)
            if profiles.up_fade is not None:  # old votes count as much as in the contrast
                weight *= profiles.up_fade
            self._nearest.add_votes(
                total, rows, [r for r, _ in labelled], [s for _, s in labelled], weight
            )
        return total

    def votes_nearest(
        self, embedded: list[semantic.EmbeddedSignals], w: SemanticWeights = SHIPPED
    ) -> bool:
        """Whether one of these readers has the papers to vote with (:meth:`added`)."""
        return bool(w.nearest) and any(
            nearest.votes(semantic.labelled_rows(sig, w)[0], w.nearest_min_papers)
            for sig in embedded
        )

    def nearest_papers(
        self, tfidf: sp.csr_matrix, rows: np.ndarray, w: SemanticWeights = SHIPPED
    ) -> None:
        """Find the nearest papers of these candidates (corpus rows), by the encoder and by
        ``tfidf`` (the corpus's rows), before :meth:`added` reads them: once per paper while
        this corpus lasts, on the caller's thread (the scoring threads find none)."""
        if not w.nearest:
            return
        with self._making:  # a daemon's threads may both rank at once: one set of lists
            if self._nearest is None:
                self._nearest = NearestPapers.of_corpus(
                    self.vectors, tfidf, self.calibration(w), w.nearest_papers
                )
        self._nearest.prepare(rows)

    def _candidates_of(self, rows: np.ndarray, cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
        """The candidates' vectors and their centred form (:meth:`Calibration.centred`), kept
        for the run's candidates: every chunk of a run asks for the same ones (26,000 papers:
        40 MB each, and 0.16 ms a reader to make again per chunk of 250)."""
        key = (rows.tobytes(), id(cal))
        kept = self._kept  # once: scoring threads, or two runs of a daemon, share it
        if kept is None or kept[0] != key:
            self._kept = None  # one run's at a time: the old pair is freed first
            papers = self.vectors[rows]
            kept = self._kept = (key, papers, cal.centred(papers))
        return kept[1], kept[2]

    def calibration(self, w: SemanticWeights) -> Calibration:
        """The corpus's :func:`semantic.calibrate` under these weights, made once."""
        if w not in self._calibrations:
            self._calibrations[w] = semantic.calibrate(self.vectors, w)
        return self._calibrations[w]

    def similar_liked(self, signals: Signals, pick_rows: np.ndarray) -> list[int | None]:
        """For each pick (a corpus row), the liked or seed paper it is closest to, if close
        enough to mention (:func:`semantic.closest_liked`), as its position in
        ``signals.liked_titles``. ``signals`` name their papers by corpus row."""
        return self.similar_liked_many([signals], [pick_rows])[0][0]

    def similar_liked_many(
        self, signals: list[Signals], pick_rows: list[np.ndarray]
    ) -> tuple[list[list[int | None]], list[list[float]]]:
        """:meth:`similar_liked` for every reader of a chunk at once, with how close each pick
        is (:func:`semantic.closest_liked_many`)."""
        liked = [evidence.liked_rows(sig) for sig in signals]  # the order of liked_titles
        if self._bars is None and any(liked):  # drawn once, and only where there is a paper
            bars = semantic.similar_bars(
                self.vectors, (semantic.SIMILAR_RARITY, semantic.SIMILAR_FLOOR)
            )
            self._bars = (bars[0], bars[1])
        bar, floor = self._bars or (np.inf, None)  # nobody liked anything: no bar is read
        return semantic.closest_liked_many(self.vectors, pick_rows, liked, bar, floor, self._own)

    def _own(self, rows: list[int], share: float) -> np.ndarray:
        """:func:`semantic.own_bars` of these corpus rows at ``share`` of the stored papers,
        each computed once."""
        new = [r for r in dict.fromkeys(rows) if (r, share) not in self._own_bars]
        if new:
            if self._sample is None:
                self._sample = semantic.similar_sample(self.vectors)
            found = semantic.own_bars(self.vectors, np.array(new), share, self._sample).tolist()
            self._own_bars.update(((r, share), bar) for r, bar in zip(new, found, strict=True))
        return np.array([self._own_bars[(r, share)] for r in rows], dtype=np.float64)

    def meaning_floor(self, pairs: Callable[[int], list[str]]) -> float:
        """:func:`semantic.meaning_floor` of this corpus (``pairs``: a corpus row's key
        phrases), worked out once: a few hundred short phrases, under a second."""
        if self._floor is None:
            self._floor = semantic.meaning_floor(self.vectors, pairs, self.model.embed)
        return self._floor

    def closest_interest(
        self, store: Store, phrases: list[str], pick_rows: list[int], floor: float = -np.inf
    ) -> list[str | None]:
        """For each pick (a corpus row), the interest phrase it is closest to in meaning, if it
        is among that phrase's nearest ``semantic.MEANING_SHARE`` of stored papers and no
        further than ``floor`` (:meth:`meaning_floor`). A phrase's vector is the one its score
        used (stored, :func:`text_vectors`): encoded once ever, not once a run, and the reason
        judged on the very number that ranked the pick."""
        if not phrases or not pick_rows:
            return [None] * len(pick_rows)
        new = [p for p in dict.fromkeys(phrases) if p not in self._phrases]
        if new:
            stored = unit_rows(text_vectors(store, self.model, new))
            for phrase, direction in zip(new, stored, strict=True):
                self._phrases[phrase] = (semantic.phrase_bar(self.vectors, direction), direction)
        found = [self._phrases[p] for p in phrases]
        bars, directions = np.array([b for b, _ in found]), np.stack([d for _, d in found])
        sims = self.vectors[np.asarray(pick_rows, dtype=np.int64)] @ directions.T
        margins = sims - np.maximum(bars, floor)[None, :]
        best = np.argmax(margins, axis=1)
        return [phrases[b] if margins[i, b] >= 0 else None for i, b in enumerate(best)]
