"""What the model has learned about one subscriber, in words: the profile page's terms.

Profiles live in a hashed feature space (see :mod:`paperwire.rank.core`), so a column cannot be
turned back into a term directly. Instead the terms a profile can contain are collected from
its own signals (the interests text, seed papers and voted papers), and each is read off the
profile at its hashed column. Hash collisions are possible but rare at 2**20 columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..config import SubscriberConfig
from ..paper import paper_text
from ..rank import compose as digest
from ..rank import core as rank
from ..rank.corpus import Corpus as RankCorpus
from ..rank.paper_phrases import key_phrases
from ..rank.phrases import interest_phrases
from ..rank.scope import EVERY_PAPER, Scope
from ..store import Store


@dataclass(frozen=True)
class Term:
    """One word or bigram and its weight in the profile (negative: it pushes papers down)."""

    term: str
    weight: float


@dataclass(frozen=True)
class Learned:
    """The strongest terms pulling papers up (positive) and pushing them down (negative)."""

    positive: list[Term]
    negative: list[Term]


@dataclass(frozen=True)
class Corpus:
    """The text model the next ranking uses, and every stored paper's vector under it."""

    model: rank.TextModel
    matrix: sp.csr_matrix  # rows in ``store.corpus()`` order
    rows: dict[str, int]  # paper id -> row


def corpus_model(store: Store, scope: Scope = EVERY_PAPER) -> Corpus:
    """IDF over the stored papers the ranking reads (``scope``: :func:`rank.scope.scope`) and
    their vectors, as the ranking has them: read from each paper's stored analysis
    (rank/terms.py), not hashed again from every abstract (a year of papers, 200,000, took 55 s
    and 1.8 GiB, after every fetch, in the daemon's web app)."""
    return page_corpus(RankCorpus.build(store, scope))


def page_corpus(built: RankCorpus) -> Corpus:
    """What the page reads of a ranking corpus (shared, not copied: the daemon's own)."""
    return Corpus(built.model, built.matrix, built.index)


def learned_terms(
    store: Store,
    subscriber: SubscriberConfig,
    *,
    now: dt.datetime,
    corpus: Corpus,
    n: int = 12,
    encoder_on: bool = True,
) -> Learned:
    """The ``n`` phrases the subscriber's current profile weighs most, up and down.

    Only phrases a reader recognises are candidates: their own short interest phrases and the
    key phrases (:func:`paper_phrases.key_phrases`: word pairs as written, the source's keywords) of the
    interests text and of their seed and voted papers. A single generic word ("software",
    "benchmark") or a bare token ("kv") is never one. ``encoder_on``: ``ranking.embeddings``
    is on (the TF-IDF row's weights follow it: :func:`digest.terms_weights`)."""
    signals = digest.subscriber_signals(
        store,
        [subscriber],
        store.interests_overrides(),
        not_interested=store.not_interested_overrides(),
    )[0]
    # the reader's papers: votes, the config's seeds and a library imported with `seeds import`
    # (left out, a reader known only by an imported library was told nothing stands out)
    imported = store.seeds([subscriber.id]).get(subscriber.id, [])
    mine = [v["paper_id"] for v in store.votes([subscriber.id])]
    mine += list(dict.fromkeys(digest.seed_ids(subscriber) + imported))
    if not signals.corpus_rows:
        # The classifier must not count the subscriber's own papers as background.
        signals.corpus_rows = sorted({corpus.rows[p] for p in mine if p in corpus.rows})
    row = _profile_row(
        corpus, signals, now, digest.terms_weights(digest.DEFAULT_WEIGHTS, encoder_on=encoder_on)
    )
    if not row.any():
        return Learned([], [])
    weights = {
        text: float(row[cols].sum())
        for text, cols in _candidates(
            corpus.model, signals.interests, signals.not_interested, store.papers(mine)
        )
    }
    positive = sorted(
        ((t, w) for t, w in weights.items() if w > 0), key=lambda tw: (-round(tw[1], 6), tw[0])
    )
    negative = sorted(
        ((t, w) for t, w in weights.items() if w < 0), key=lambda tw: (round(tw[1], 6), tw[0])
    )
    return Learned(_distinct(positive, n), _distinct(negative, n))


def _candidates(
    model: rank.TextModel, interests: str, not_interested: str, papers: dict[str, dict]
) -> list[tuple[str, np.ndarray]]:
    """(phrase as written, its hashed columns) for every phrase the page may show, once each:
    from the texts the reader wrote (interests, topics not wanted: where "benchmarks" alone
    is a topic) and their papers."""
    out: dict[str, tuple[str, np.ndarray]] = {}
    written = [interests, not_interested]
    mine = interest_phrases(interests) + interest_phrases(not_interested, unwanted=True)
    for phrase in mine:
        tokens = model.tokens(phrase)
        if tokens and len(phrase.split()) <= 3:
            out.setdefault(phrase.lower(), (phrase, model.columns(tokens)))
    sources = [(text, []) for text in written] + [
        (paper_text(p["title"], p["abstract"]), p.get("keywords") or []) for p in papers.values()
    ]
    for text, keywords in sources:
        found = key_phrases(model, text, keywords)
        for i, phrase in enumerate(found.texts):
            cols = found.columns[found.starts[i] : found.starts[i + 1]]
            out.setdefault(phrase.lower(), (phrase, cols))
    return list(out.values())


def _profile_row(
    corpus: Corpus, signals: rank.Signals, now: dt.datetime, weights: rank.Weights
) -> np.ndarray:
    """The subscriber's profile as the next ranking builds it, as a dense row."""
    built = rank.build_profiles_from_signals(corpus.model, [signals], corpus.matrix, now, weights)
    if built.matrix.shape[0] == 0:
        return np.zeros(corpus.model.n_features, dtype=np.float32)
    return np.asarray(built.matrix[0].toarray()).ravel()


def _distinct(ranked: list[tuple[str, float]], n: int) -> list[Term]:
    """The first ``n`` phrases, none inside another already chosen ("KV cache" after "KV cache
    compression"), none said twice in other case or hyphenation."""
    chosen: list[Term] = []
    seen: list[str] = []
    for term, weight in ranked:
        key = " ".join(term.lower().replace("-", " ").split())
        if any(f" {key} " in f" {s} " or f" {s} " in f" {key} " for s in seen):
            continue
        seen.append(key)
        chosen.append(Term(term, weight))
        if len(chosen) == n:
            break
    return chosen
