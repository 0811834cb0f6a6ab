"""The profile page's model work, done once per corpus change and reader, never per request.

Fitting the corpus text model and a reader's calibrated profile cost from a few hundred
milliseconds to seconds of CPU for a reader with a few 👍; redone on every page view, a few
readers clicking around saturate the machine. Here:

* the corpus model is the ranking session's, fitted once per corpus version (under
  ``paperwire run``, the daemon's: the very corpus its digests read, one in memory);
* a reader's learned terms are kept in a bounded LRU, with the signals they were computed from
  (corpus version, config, edited interests, votes, the day: vote weights decay with age);
* all of that work runs on **one** background thread, so at most one core does model work
  whatever the request rate. A page whose reader's signals changed waits up to ``wait``
  seconds for the new terms, then shows the previous ones (marked as being updated).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SubscriberConfig
from ..rank.scope import EVERY_PAPER, Scope
from ..rank.session import RankingSession
from ..store import Store
from . import profile as profile_mod

log = logging.getLogger(__name__)

MAX_READERS = 256  # readers whose learned terms are kept; one entry is a few kilobytes
WAIT_SECONDS = 0.3  # how long a page waits for terms being computed before showing old ones


@dataclass(frozen=True)
class Terms:
    """A reader's learned terms, and whether they reflect the reader's current signals."""

    learned: profile_mod.Learned | None  # None: never computed yet
    current: bool


class ProfileCache:
    """Learned terms per reader, computed by one background thread against one corpus model."""

    def __init__(
        self,
        db_path: Path,
        *,
        max_readers: int = MAX_READERS,
        wait: float = WAIT_SECONDS,
        session: RankingSession | None = None,
    ):
        self.db_path = db_path
        # the corpus comes from the ranking's session: the daemon passes its own, so the
        # pages and the digests share one corpus (a year-old store's took ~1.4 GiB each)
        self.session = session or RankingSession()
        self.max_readers = max_readers
        self.wait = wait
        self._cond = threading.Condition()
        self._terms: OrderedDict[str, tuple[Hashable, profile_mod.Learned]] = OrderedDict()
        self._wanted: OrderedDict[
            str, tuple[SubscriberConfig, Hashable, dt.datetime, Scope, bool]
        ] = OrderedDict()
        self._closed = False
        self._thread: threading.Thread | None = None

    def terms(
        self,
        store: Store,
        subscriber: SubscriberConfig,
        *,
        override: tuple[str | None, str | None],
        votes: list[dict[str, Any]],
        now: dt.datetime,
        scope: Scope = EVERY_PAPER,
        encoder_on: bool = True,
    ) -> Terms:
        """The reader's terms for these signals, if ready within ``wait``; else the last ones.
        ``scope``: the papers the ranking's corpus holds (:func:`rank.scope.scope`);
        ``encoder_on``: ``ranking.embeddings`` is on (:func:`profile.learned_terms`)."""
        key = (
            store.corpus_version(),
            scope,
            encoder_on,
            subscriber.interests,
            subscriber.not_interested,
            subscriber.seed_papers,
            tuple(store.seeds([subscriber.id]).get(subscriber.id, [])),  # an import changes them
            override,
            tuple((v["paper_id"], v["vote"], v["voted_at"]) for v in votes),
            now.date(),
        )
        deadline = time.monotonic() + self.wait
        with self._cond:
            entry = self._terms.get(subscriber.id)
            if entry is not None and entry[0] == key:
                self._terms.move_to_end(subscriber.id)
                return Terms(entry[1], True)
            if self._closed:
                return Terms(entry[1] if entry else None, False)
            self._wanted[subscriber.id] = (subscriber, key, now, scope, encoder_on)
            self._wanted.move_to_end(subscriber.id)
            while len(self._wanted) > self.max_readers:  # bounded: the oldest wish is dropped
                self._wanted.popitem(last=False)
            self._start()
            self._cond.notify_all()
            while True:
                entry = self._terms.get(subscriber.id)
                if entry is not None and entry[0] == key:
                    return Terms(entry[1], True)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return Terms(entry[1] if entry else None, False)
                self._cond.wait(left)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="profiles", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._wanted and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                reader, (subscriber, key, now, scope, encoder_on) = self._wanted.popitem(last=False)
            try:
                with Store(self.db_path) as store:
                    corpus = self._corpus_for(store, scope)
                    learned = profile_mod.learned_terms(
                        store, subscriber, now=now, corpus=corpus, encoder_on=encoder_on
                    )
            except Exception:  # one reader's failure must not stop the others' pages
                log.exception("could not compute the profile of %s", reader)
                continue
            with self._cond:
                self._terms[reader] = (key, learned)
                self._terms.move_to_end(reader)
                while len(self._terms) > self.max_readers:
                    self._terms.popitem(last=False)
                self._cond.notify_all()

    def _corpus_for(self, store: Store, scope: Scope) -> profile_mod.Corpus:
        # built once, whoever asks first
        return profile_mod.page_corpus(self.session.corpus(store, scope))

    def close(self, timeout: float) -> bool:
        """Stop the background thread (after the current reader); True if it has ended."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __len__(self) -> int:
        return len(self._terms)
