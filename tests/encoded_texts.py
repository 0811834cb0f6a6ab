"""Each text encoded once per test run, by the real model: the suite's cache of the bundled
sentence encoder's vectors (conftest.py installs it in every worker; ``tests/site`` in the
CLI and daemon processes the tests start).

The encoder is most of the suite's CPU: every test that stores papers encodes them, mostly the
same few fixture feeds, over and over. One text's vector depends on that text only
(``encoder.BATCH`` = 1: no batch mates), so what a test gets from the cache is exactly what
the uncached encoder gives. Every process of a run shares the vectors through one SQLite file
(the first to encode a text stores it), named by ``ENV`` in the environment."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# the shared file's path; not PAPERWIRE_*, which the tests strip from what their
# subprocesses get (conftest.environ_without_paperwire)
ENV = "PWTEST_ENCODED_TEXTS"


def _text_key(text: str) -> bytes:
    """A text as the shared file keys it: its hash (a feed's lone surrogate included)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class SharedVectors:
    """The run's file of vectors, text hash -> vector, per model. Any thread may encode (a
    served web app, a send's workers): one connection, locked. Every write takes the file's
    write lock first (BEGIN IMMEDIATE), so two processes never each hold a read lock while
    waiting for the other's (SQLite refuses that at once, whatever the timeout); and any error
    of the file only costs a text's encoding."""

    def __init__(self, path: Path | str):
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        # a scratch file: a crash loses nothing worth keeping
        self._db.execute("PRAGMA synchronous=OFF")
        self._lock = threading.Lock()
        self._write(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, text BLOB, vector BLOB, "
            "PRIMARY KEY (model, text))"
        )

    def _write(self, sql: str, rows: list[tuple] | None = None) -> None:
        if rows == []:  # nothing new: the others need not wait for the lock
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(sql) if rows is None else self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def read(self, model: str, text: str) -> bytes | None:
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT vector FROM vectors WHERE model = ? AND text = ?",
                    (model, _text_key(text)),
                ).fetchone()
            except sqlite3.Error:  # no table yet (its write failed): a miss
                return None
        return row[0] if row else None

    def add(self, model: str, texts: list[str], vectors: np.ndarray) -> None:
        self._write(
            "INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)",
            [(model, _text_key(t), v.tobytes()) for t, v in zip(texts, vectors, strict=True)],
        )

    def close(self) -> None:
        self._db.close()


def cached(
    encoder: Any, shared: SharedVectors, uncached: Callable[[], bool] = lambda: False
) -> tuple[Callable[..., Any], Callable[..., np.ndarray]]:
    """Stand-ins for ``encoder.load`` and ``encoder.SentenceEncoder.embed`` that read and add to
    ``shared``: the bundled model loaded once a process, each text encoded once a run. A model
    loaded from a folder or with its own threads, a batch of more than one, and whatever runs
    while ``uncached()`` go to the real functions."""
    real_load, real_embed = encoder.load, encoder.SentenceEncoder.embed
    loaded: list[Any] = []
    encoded: dict[tuple[str, str], np.ndarray] = {}

    def load(folder: Path | None = None, threads: int | None = None) -> Any:
        if uncached() or folder is not None or threads is not None:  # as asked
            return real_load(folder, threads)
        if not loaded:
            loaded.append(real_load())
        return loaded[0]

    def embed(self: Any, texts: list[str], batch: int = encoder.BATCH) -> np.ndarray:
        if uncached() or batch != 1:  # batched texts' vectors move with their batch mates
            return real_embed(self, texts, batch)
        new = [t for t in dict.fromkeys(texts) if (self.name, t) not in encoded]
        for text in new:
            stored = shared.read(self.name, text)
            if stored is not None:
                encoded[self.name, text] = np.frombuffer(stored, dtype=np.float32)
        new = [t for t in new if (self.name, t) not in encoded]
        vectors = real_embed(self, new, batch)
        for text, vector in zip(new, vectors, strict=True):
            encoded[self.name, text] = vector
        shared.add(self.name, new, vectors)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = encoded[self.name, text]
        return out

    return load, embed
