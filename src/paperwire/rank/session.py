"""What ranking keeps between runs, owned by whoever ranks: the daemon keeps one session for its
lifetime, a command makes its own, a test its own. Nothing in rank/ is kept per process.

A session holds the loaded embedding model (loading takes a second), the stored corpus's TF-IDF
vectors (seconds at 100,000 papers) and its embedding-derived numbers (calibration, bars). Both
corpora are kept while the store's papers are unchanged, so a daemon tick that ranks a few
subscribers neither reloads nor recomputes them. One corpus at a time: a session serves one
database (another one, or a changed one, replaces it).

Importing this module is cheap (no scikit-learn): the daemon makes its session at start-up.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store import Store
    from .corpus import Corpus
    from .embed import EmbeddingModel
    from .embedded import EmbeddedCorpus
    from .scope import Scope


class RankingSession:
    def __init__(self) -> None:
        # spec -> (the model folder's files as they were when loaded, the model)
        self._models: dict[str, tuple[tuple[Any, ...], EmbeddingModel]] = {}
        self._loading = threading.Lock()  # a daemon's fetch and tick threads share the model
        self._corpus: tuple[tuple[Any, ...], Corpus] | None = None
        # a daemon's digests, alerts and profile pages ask from their own threads: one builds
        self._building = threading.Lock()
        # (database, model name) -> (corpus version, its vectors, the list of ids they are for)
        self._embedded: tuple[tuple[str, str], tuple[Any, ...], EmbeddedCorpus, list[str]] | None
        self._embedded = None
        self._embedding = threading.Lock()  # ... and one encodes a corpus's missing papers

    def model(self, spec: str) -> EmbeddingModel:
        """The model ``ranking.embeddings`` names, loaded once: the one place a model is
        loaded from the config. A model folder replaced meanwhile (``paperwire model pull
        --force``) is loaded again: a daemon kept ranking with the old weights, and its every
        fetch re-encoded the stored papers with them over the new ones a command had made."""
        files = _files(spec)
        with self._loading:
            kept = self._models.get(spec)
            if kept is None or kept[0] != files:
                from .embed import load_model

                self._models[spec] = (files, load_model(spec))
            return self._models[spec][1]

    def corpus(self, store: Store, scope: Scope | None = None) -> Corpus:
        """The store's corpus (:meth:`Corpus.build`; every stored paper unless ``scope``, from
        :func:`~paperwire.rank.scope.scope`, says which), reused while no paper is added or
        changed, and, for a bounded scope, while no reader votes on or seeds a paper older
        than its bound (which the corpus then holds): a daemon's digests and profile pages
        left a 👍 on a paper months old out until a fetch brought new papers."""
        from .corpus import Corpus
        from .scope import EVERY_PAPER

        scope = scope or EVERY_PAPER
        old = store.corpus_kept_before(scope.since) if scope.since is not None else ()
        key = (str(store.path.resolve()), *store.corpus_version(), scope, old)
        with self._building:
            if self._corpus is None or self._corpus[0] != key:
                self._corpus = None  # one at a time: the old one is freed before the new
                self._corpus = (key, Corpus.build(store, scope))
            return self._corpus[1]

    def embedded(
        self, store: Store, spec: str | None, ids: list[str], texts: Sequence[str]
    ) -> EmbeddedCorpus | None:
        """The corpus (``ids``, ``texts``) under the model ``spec`` names; None when
        ``ranking.embeddings`` is off. Papers not yet embedded are embedded and stored first
        (once per paper and model). Asked again with the very list of ids (every chunk of a
        run, every tick of an unchanged store), it costs no query at all."""
        if not spec:
            return None
        from .embed import paper_vectors
        from .embedded import EmbeddedCorpus

        model = self.model(spec)
        key = (str(store.path.resolve()), model.name)
        with self._embedding:
            kept = (
                self._embedded if self._embedded is not None and self._embedded[0] == key else None
            )
            if kept is not None and kept[3] is ids:
                return kept[2]
            # the ids themselves, not their count: corpora of two scopes may hold as many papers
            version = (*store.corpus_version(), hash(tuple(ids)))
            if kept is not None and kept[1] == version:
                self._embedded = (key, version, kept[2], ids)
                return kept[2]
            self._embedded = None
            embedded = EmbeddedCorpus(model, paper_vectors(store, model, ids, texts))
            self._embedded = (key, version, embedded, ids)
            return embedded

    def embed_stored(
        self,
        store: Store,
        spec: str | None,
        stop: threading.Event | None = None,
        scope: Scope | None = None,
    ) -> int:
        """Embed every paper of ``scope`` (every stored one without) not yet embedded by the
        model ``spec`` names (what a fetch does after storing papers); how many were
        embedded."""
        from .embed import refresh

        return refresh(store, self.model(spec) if spec else None, stop, scope)


def _files(spec: str) -> tuple[Any, ...]:
    """What tells a model folder's weights from those a pull put there later: the file's
    inode, size and time (a pull renames a new folder into place). Nothing for the models
    inside the installed packages."""
    from ..config.embeddings import BUNDLED, ENCODER, onnx_graph

    if spec in (ENCODER, BUNDLED):
        return ()
    folder = Path(spec)
    try:
        stat = os.stat(onnx_graph(folder) or folder / "model.safetensors")
    except OSError:
        return ()
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
