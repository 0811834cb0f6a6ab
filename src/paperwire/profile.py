"""What the model has learned about one subscriber, in words: the profile page's terms.

Profiles live in a hashed feature space (see :mod:`paperwire.rank`), so a column cannot be
turned back into a term directly. Instead the terms a profile can contain are collected from
its own signals (the interests text, seed papers and voted papers), and each is read off the
profile at its hashed column. Hash collisions are possible but rare at 2**20 columns.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import digest, rank
from .config import SubscriberConfig
from .paper import paper_text
from .store import Store


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


def corpus_model(store: Store) -> Corpus:
    """Fit IDF on every stored paper, as the ranking does, and vectorise them."""
    papers = store.corpus()
    texts = [paper_text(r["title"], r["abstract"]) for r in papers]
    model = rank.TextModel().fit(texts)
    matrix = model.transform(texts) if texts else sp.csr_matrix((0, model.n_features))
    return Corpus(model, matrix, {r["paper_id"]: i for i, r in enumerate(papers)})


def learned_terms(
    store: Store,
    subscriber: SubscriberConfig,
    *,
    now: dt.datetime,
    corpus: Corpus,
    n: int = 12,
) -> Learned:
    """The ``n`` largest positive and negative terms of the subscriber's current profile."""
    signals = digest.subscriber_signals(store, [subscriber], store.interests_overrides())[0]
    if hasattr(signals, "corpus_rows") and not signals.corpus_rows:
        # The classifier must not count the subscriber's own papers as background.
        mine = [v["paper_id"] for v in store.votes([subscriber.id])] + list(subscriber.seed_papers)
        signals.corpus_rows = sorted({corpus.rows[p] for p in mine if p in corpus.rows})
    row = _profile_row(corpus, signals, now)
    if not row.any():
        return Learned([], [])
    texts = [signals.interests, *signals.seed_texts, *(text for text, _, _ in signals.votes)]
    tokens: dict[str, None] = {}
    for text in texts:
        lowered = text.lower()
        for token in corpus.model.tokens(text):
            if token not in tokens and _written(token, lowered):
                tokens[token] = None
    names = list(tokens)
    weights = dict(zip(names, (float(w) for w in row[_columns(corpus.model, names)]), strict=True))
    # Strongest first; among equal weights a bigram first, since it says more than its words.
    positive = sorted(
        ((t, w) for t, w in weights.items() if w > 0),
        key=lambda tw: (-round(tw[1], 6), -len(tw[0].split()), tw[0]),
    )
    negative = sorted(
        ((t, w) for t, w in weights.items() if w < 0),
        key=lambda tw: (round(tw[1], 6), -len(tw[0].split()), tw[0]),
    )
    return Learned(_distinct(positive, n), _distinct(negative, n))


def _profile_row(corpus: Corpus, signals: rank.Signals, now: dt.datetime) -> np.ndarray:
    """The subscriber's profile as the next ranking builds it, as a dense row."""
    # rank.py is moving from a Rocchio-only build_profiles(model, signals, now) to calibrated
    # Profiles built against the corpus; use whichever this version has.
    if hasattr(rank, "build_profiles_from_signals"):
        built = rank.build_profiles_from_signals(corpus.model, [signals], corpus.matrix, now)
        matrix = built.matrix
    else:
        matrix = rank.build_profiles(corpus.model, [signals], now)
    if matrix.shape[0] == 0:
        return np.zeros(corpus.model.n_features, dtype=np.float32)
    return np.asarray(matrix[0].toarray()).ravel()


def _columns(model: rank.TextModel, tokens: list[str]) -> np.ndarray:
    if not tokens:
        return np.zeros(0, dtype=np.int64)
    if hasattr(model, "columns"):
        return model.columns(tokens)
    return np.array([model.column(t) for t in tokens], dtype=np.int64)


def _written(token: str, text: str) -> bool:
    """Whether a bigram's words stand side by side in the text (the analyser drops stop words
    and punctuation, so "eviction for long" and "models. Protein" also make bigrams)."""
    words = token.split()
    if len(words) == 1:
        return True
    pattern = r"[\s\-]+".join(re.escape(w) for w in words)
    return re.search(rf"\b{pattern}\b", text) is not None


def _distinct(ranked: list[tuple[str, float]], n: int) -> list[Term]:
    """The first ``n`` terms, each word said once: a bigram replaces its words already chosen."""
    chosen: list[Term] = []
    for term, weight in ranked:
        words = term.split()
        if any(term in c.term.split() for c in chosen):
            continue  # "cache" after "kv cache"
        if len(words) > 1 and all(any(c.term == w for c in chosen) for w in words):
            continue  # "kv cache" after both "kv" and "cache"
        chosen = [c for c in chosen if c.term not in words]  # "cache", then "kv cache"
        chosen.append(Term(term, weight))
        if len(chosen) == n:
            break
    return chosen
