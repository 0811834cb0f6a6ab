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
    term: str
    weight: float


@dataclass(frozen=True)
class Learned:
    """The strongest terms pulling papers up (positive) and pushing them down (negative)."""

    positive: list[Term]
    negative: list[Term]


def corpus_model(store: Store) -> rank.TextModel:
    """The text model the next ranking will use: IDF fitted on every stored paper."""
    return rank.TextModel().fit([paper_text(r["title"], r["abstract"]) for r in store.corpus()])


def learned_terms(
    store: Store,
    subscriber: SubscriberConfig,
    *,
    now: dt.datetime,
    model: rank.TextModel,
    n: int = 12,
) -> Learned:
    """The ``n`` largest positive and negative terms of the subscriber's current profile."""
    signals = digest.subscriber_signals(store, [subscriber], store.interests_overrides())[0]
    profile = rank.build_profiles(model, [signals], now)
    if profile.shape[0] == 0 or profile.nnz == 0:
        return Learned([], [])
    row = profile[0].toarray().ravel() if sp.issparse(profile) else np.asarray(profile[0]).ravel()
    texts = [signals.interests, *signals.seed_texts, *(text for text, _, _ in signals.votes)]
    weights: dict[str, float] = {}
    for text in texts:
        lowered = text.lower()
        for token in model.tokens(text):
            if token not in weights and _written(token, lowered):
                weights[token] = float(row[model.column(token)])
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
