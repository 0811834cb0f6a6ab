"""The profile page's model work, done once per corpus change and reader, not per request.

Fitting the corpus text model and building a reader's profile cost up to a second of CPU for a
reader with a few votes; redone on every page view, a few readers clicking around saturate the
machine. Both results are kept here: one corpus model (the latest corpus version; refitted by
one thread while the others wait for it) and a bounded LRU of learned terms keyed by everything
they depend on: the corpus version, the reader's config, edited interests and votes, and the
day (vote weights decay with age).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from . import profile as profile_mod
from .config import SubscriberConfig
from .store import Store

MAX_READERS = 256  # learned-terms entries kept; one is a few kilobytes


class ProfileCache:
    """Thread-safe memo of :func:`profile.corpus_model` and :func:`profile.learned_terms`."""

    def __init__(self, max_readers: int = MAX_READERS):
        self.max_readers = max_readers
        self._lock = threading.Lock()  # guards the two caches
        self._fitting = threading.Lock()  # one corpus fit at a time: others wait, then reuse it
        self._corpus: tuple[Hashable, profile_mod.Corpus] | None = None
        self._learned: OrderedDict[Hashable, profile_mod.Learned] = OrderedDict()

    def corpus(self, store: Store) -> tuple[Hashable, profile_mod.Corpus]:
        """The corpus model for the store's current papers, and the version it was fitted on."""
        version = store.corpus_version()
        with self._lock:
            cached = self._corpus
        if cached is not None and cached[0] == version:
            return cached
        with self._fitting:
            with self._lock:
                cached = self._corpus
            if cached is not None and cached[0] == version:
                return cached  # another thread fitted it while this one waited
            fitted = (version, profile_mod.corpus_model(store))
            with self._lock:
                self._corpus = fitted  # the old model is dropped: one corpus in memory
                self._learned.clear()  # terms read off the old model are stale
            return fitted

    def learned(
        self,
        store: Store,
        subscriber: SubscriberConfig,
        *,
        override: str | None,
        votes: list[dict[str, Any]],
        now: dt.datetime,
    ) -> profile_mod.Learned:
        """The reader's learned terms, computed at most once per corpus version and signals."""
        version, corpus = self.corpus(store)
        key = (
            version,
            subscriber.id,
            subscriber.interests,
            subscriber.seed_papers,
            override,
            tuple((v["paper_id"], v["vote"], v["voted_at"]) for v in votes),
            now.date(),
        )
        with self._lock:
            hit = self._learned.get(key)
            if hit is not None:
                self._learned.move_to_end(key)
                return hit
        learned = profile_mod.learned_terms(store, subscriber, now=now, corpus=corpus)
        with self._lock:
            self._learned[key] = learned
            self._learned.move_to_end(key)
            while len(self._learned) > self.max_readers:
                self._learned.popitem(last=False)
        return learned

    def __len__(self) -> int:
        return len(self._learned)
