"""Paper and interest vectors from a small static embedding model (the ``semantic`` extra).

A static model is a table of token vectors: a text's vector is the mean of its tokens' vectors,
L2-normalised. No network, no GPU, no transformer pass: 2,000 abstracts take seconds on two
cores (benchmarks/README.md, "Semantic ranking", compares it with the contextual candidates).

Where the model comes from (``ranking: {embeddings: ...}`` in subscribers.yaml):

* ``wordllama``: the 256-dimension model shipped inside the ``wordllama`` package
  (``pip install 'paperwire[semantic]'``). Its files are read directly: ``WordLlama.load``
  looks for the tokenizer in a folder the wheel does not have and then fetches it from a model
  hub, which paperwire never does.
* a local folder in model2vec's layout (``model.safetensors`` with an ``embeddings`` tensor,
  optional ``weights`` / ``mapping``, and ``tokenizer.json``), e.g. a ``potion-base-8M`` the
  user downloaded themselves. Nothing is ever downloaded here.
* a local folder holding a sentence-transformers model exported to ONNX (``onnx/model.onnx``),
  which is no static model: rank/encoder.py runs it as it runs the bundled encoder.

Vectors are stored as float16 blobs in the ``embeddings`` table beside the model's name and a
hash of the text, so a paper is embedded once, and again only when its text or the model
changes (:func:`paper_vectors`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import scipy.sparse as sp

from ..config.embeddings import BUNDLED, ENCODER, INSTALL_HINT, missing_modules, onnx_graph
from ..errors import ConfigError, StoreError
from ..paper import paper_text, text_hash
from .batches import CacheWrites, batch_bounds
from .scope import EVERY_PAPER, Scope
from .texts import hashes_of, texts_at

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("paperwire")
# Tokens read per text: an abstract is ~250; this bounds the cost of a pasted book.
MAX_TOKENS = 1024
# Texts tokenised per call: bounds the memory of the token lists, not the speed.
BATCH = 512
_SETTING = "ranking.embeddings"


@dataclass
class StaticModel:
    """Token vectors and the tokenizer that indexes them."""

    name: str
    vectors: np.ndarray  # (tokens, dim) float32
    tokenizer: Any  # tokenizers.Tokenizer
    unk_id: int | None = None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        out = []
        for enc in encodings:
            ids = enc.ids[:MAX_TOKENS]
            out.append([i for i in ids if i != self.unk_id] if self.unk_id is not None else ids)
        return out

    def embed(self, texts: list[str], batch: int = 1) -> np.ndarray:
        """One L2-normalised float32 row per text; a text with no known token is a zero row.
        (``batch`` is the encoder's: a static model's vectors never depend on batch mates.)"""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            ids = self.token_ids([t or "" for t in texts[start : start + BATCH]])
            lengths = np.array([len(i) for i in ids], dtype=np.int64)
            flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=lengths.sum())
            # token counts per text (duplicates summed) times the token table: a sparse-dense
            # product, ~4x cheaper than gathering every token's vector
            counts = sp.csr_matrix(
                (np.ones(len(flat), dtype=np.float32), flat, np.r_[0, np.cumsum(lengths)]),
                shape=(len(ids), len(self.vectors)),
            )
            out[start : start + len(ids)] = counts @ self.vectors
        return unit_rows(out)

    def word_sums(self, words: list[str]) -> np.ndarray:
        """Per word, the sum of its tokens' vectors (not normalised). A bag of words' vector is
        then ``counts @ word_sums(vocabulary)``, normalised: the same as embedding the words
        written out, which is how the evaluation embeds CiteULike's bags of words exactly."""
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        for row, ids in enumerate(self.token_ids(words)):
            if ids:
                out[row] = self.vectors[ids].sum(axis=0)
        return out


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), in their own dtype."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


# -- loading ----------------------------------------------------------------------------------


class EmbeddingModel(Protocol):
    """What ranking needs of a model: a name (stored beside each vector), a width, and texts
    to unit rows. The bundled encoder and the static models both are one."""

    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str], batch: int = 1) -> np.ndarray: ...


def load_model(spec: str) -> EmbeddingModel:
    """The model named in the config: ``minilm`` (the bundled sentence encoder, the default),
    ``wordllama`` or a local folder (an ONNX export or a model2vec model). Loading takes a
    second: a caller that ranks more than once keeps it (:meth:`RankingSession.model
    <paperwire.rank.session.RankingSession.model>`)."""
    if spec == ENCODER:
        from . import encoder

        return encoder.load()
    if spec == BUNDLED:
        return _load_bundled()
    return _load_folder(Path(spec))


def _require(*modules: str) -> None:
    missing = missing_modules(*modules)
    if missing:
        raise ConfigError(
            f"{_SETTING}: the semantic extra is not installed (missing {', '.join(missing)}): "
            f"{INSTALL_HINT}"
        )


def _load_bundled() -> StaticModel:
    _require("tokenizers", "safetensors", "wordllama")
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:  # _require found it
        raise ConfigError(f"{_SETTING}: the wordllama package is not installed: {INSTALL_HINT}")
    root = Path(next(iter(spec.submodule_search_locations)))
    weights = root / "weights" / "l2_supercat_256.safetensors"
    tokenizer = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ConfigError(
                f"{_SETTING}: the installed wordllama package has no {path.name}; "
                f"reinstall it: {INSTALL_HINT}"
            )
    return _static_model("wordllama-l2-supercat-256", weights, tokenizer, "embedding.weight")


def _load_folder(folder: Path) -> EmbeddingModel:
    """A model folder: a transformer exported to ONNX (rank/encoder.py), else model2vec's."""
    if folder.is_dir() and onnx_graph(folder) is not None:
        from . import encoder

        return encoder.load_folder(folder)
    _require("tokenizers", "safetensors")
    if not folder.is_dir():
        raise ConfigError(
            f"{_SETTING}: {str(folder)!r} is neither {BUNDLED!r} nor a model folder "
            "(model.safetensors + tokenizer.json)"
        )
    weights, tokenizer = folder / "model.safetensors", folder / "tokenizer.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ConfigError(f"{_SETTING}: {folder}: no {path.name} (a model2vec folder has both)")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    return _static_model(f"{folder.resolve().name}-{digest}", weights, tokenizer, "embeddings")


def _static_model(name: str, weights: Path, tokenizer_path: Path, key: str) -> StaticModel:
    from safetensors import safe_open
    from tokenizers import Tokenizer

    try:
        with safe_open(str(weights), framework="np") as f:
            keys = set(f.keys())
            if key not in keys:
                raise ConfigError(f"{_SETTING}: {weights}: no {key!r} tensor (has {sorted(keys)})")
            vectors = f.get_tensor(key).astype(np.float32)
            if "mapping" in keys:  # model2vec's vocabulary quantisation: token -> row
                vectors = vectors[f.get_tensor("mapping")]
            if "weights" in keys:  # model2vec's per-token weights
                vectors = vectors * f.get_tensor("weights").astype(np.float32)[:, None]
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except ConfigError:
        raise
    except Exception as exc:  # safetensors and tokenizers raise their own, varied errors
        raise ConfigError(f"{_SETTING}: cannot read the model in {weights.parent}: {exc}") from None
    if vectors.ndim != 2:
        raise ConfigError(f"{_SETTING}: {weights}: {key!r} is not a matrix")
    # a token id past the table's end would be read from outside it (scipy does not check)
    if tokenizer.get_vocab_size() > len(vectors):
        raise ConfigError(
            f"{_SETTING}: {tokenizer_path}: a vocabulary of {tokenizer.get_vocab_size()} tokens, "
            f"but {weights.name}'s {key!r} has {len(vectors)} rows: the two files come from "
            "different models"
        )
    tokenizer.no_truncation()
    tokenizer.no_padding()
    unk = _unk_id(tokenizer)
    return StaticModel(name, np.ascontiguousarray(vectors), tokenizer, unk)


def _unk_id(tokenizer: Any) -> int | None:
    """The unknown token's id for word-level vocabularies (model2vec drops it, so do we)."""
    model = json.loads(tokenizer.to_str()).get("model", {})
    unk = model.get("unk_token")
    return tokenizer.token_to_id(unk) if isinstance(unk, str) else None


# -- storage ----------------------------------------------------------------------------------


# what a stored vector is made of: little-endian float16 (half the size; cosines move by < 1e-3)
_BLOB = np.dtype("<f2")


def to_blob(vector: np.ndarray) -> bytes:
    """A vector as the bytes it is stored as."""
    return np.asarray(vector, dtype=_BLOB).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=_BLOB).astype(np.float32)


def _whole(size: int, model: EmbeddingModel) -> bool:
    """Whether a stored blob of ``size`` bytes holds one vector of this model (a torn or edited
    blob, or a NULL one, is encoded again, not read)."""
    return size == model.dim * _BLOB.itemsize


def paper_vectors(
    store: Store, model: EmbeddingModel, paper_ids: list[str], texts: Sequence[str]
) -> np.ndarray:
    """The stored vectors of these papers (rows in the given order), embedding and storing the
    ones that are missing, were made by another model, or whose text changed."""
    out = np.zeros((len(paper_ids), model.dim), dtype=np.float32)
    if not paper_ids:
        return out
    hashes = hashes_of(texts)
    stored = store.embeddings(paper_ids)
    todo = []
    for i, (pid, digest) in enumerate(zip(paper_ids, hashes, strict=True)):
        hit = stored.get(pid)
        if hit is not None and _current(_made(hit), model, digest):
            out[i] = from_blob(hit[2])
        else:
            todo.append(i)
    if todo:
        # fetch encodes each paper when it stores it; papers it did not (stored before the
        # encoder was on, a model changed, a fetch stopped half-way) are encoded here, said so,
        # and kept batch by batch: a run stopped half-way keeps what it encoded
        _say_missing(model, len(todo), [stored.get(paper_ids[i]) for i in todo])
        ids, hashes_todo = [paper_ids[i] for i in todo], [hashes[i] for i in todo]
        out[todo] = _encode_and_keep(store, model, ids, texts_at(texts, todo), hashes_todo)
    return out


def _say_missing(model: EmbeddingModel, n: int, hits: list[tuple[str, str, bytes] | None]) -> None:
    """One log line for papers a digest must encode first; a damaged vector is named as one."""
    # this model's own vector of the wrong length (another model's is simply another width)
    damaged = sum(
        1
        for hit in hits
        if hit is not None and hit[0] == model.name and not _whole(_made(hit)[2], model)
    )
    if damaged:
        log.warning("%d stored paper vectors were damaged (wrong length): encoding again", damaged)
    level = logging.WARNING if n > REFRESH_BATCH else logging.INFO
    log.log(level, "encoding %d stored papers no fetch has encoded with %s yet", n, model.name)


def _made(hit: tuple[str, str, bytes | None]) -> tuple[str, str, int]:
    """A stored (model, text hash, blob) as :meth:`Store.embeddings_made` gives it."""
    return hit[0], hit[1], len(hit[2] or b"")


def _current(made: tuple[str, str, int], model: EmbeddingModel, digest: str) -> bool:
    """Whether a stored (model, text hash, vector length in bytes) was made by this model from
    this text and is whole."""
    return made[0] == model.name and made[1] == digest and _whole(made[2], model)


def _embedded(model: EmbeddingModel, texts: list[str]) -> np.ndarray:
    """The texts' vectors as stored (float16): a run that embeds a paper ranks it as every
    later run will."""
    return from_blob(to_blob(model.embed(texts))).reshape(len(texts), -1)


def _stored_rows(
    model: EmbeddingModel, ids: list[str], hashes: list[str], vectors: np.ndarray
) -> list[tuple[str, str, str, bytes]]:
    """Rows for ``Store.set_embeddings``."""
    return [
        (pid, model.name, digest, to_blob(vec))
        for pid, digest, vec in zip(ids, hashes, vectors, strict=True)
    ]


# Papers encoded and stored at a time by refresh: a crash or a stop loses at most one batch.
REFRESH_BATCH = 256


def refresh(
    store: Store,
    model: EmbeddingModel | None,
    stop: threading.Event | None = None,
    scope: Scope | None = None,
) -> int:
    """Embed and store every paper of ``scope`` (the papers a run ranks against; without it,
    every stored paper) whose vector is missing, from another model, of an older text or
    damaged (what ``fetch`` runs after storing papers, so a paper is encoded once, when it
    arrives, and no digest waits for it); returns how many were embedded (none without a
    model: ``ranking.embeddings`` off). Setting ``stop`` ends it after the batch in hand. What
    is stored is read without the vectors themselves. A paper left out (older than
    ``ranking.corpus_papers``) is encoded by the first run that needs it, if one does."""
    if model is None:
        return 0
    made = store.embeddings_made()
    todo = []
    scope = scope or EVERY_PAPER
    # row by row: a year of abstracts is ~300 MB
    for row in store.iter_corpus(scope.since, scope.keep):
        text = paper_text(row["title"], row["abstract"])
        digest = text_hash(text)
        hit = made.get(row["paper_id"])
        if hit is None or not _current(hit, model, digest):
            todo.append((row["paper_id"], text, digest))
    if not todo:
        return 0
    ids, texts, hashes = (list(column) for column in zip(*todo, strict=True))
    return len(_encode_and_keep(store, model, ids, texts, hashes, stop, keep_going=False))


def _encode_and_keep(
    store: Store,
    model: EmbeddingModel,
    ids: list[str],
    texts: list[str],
    hashes: list[str],
    stop: threading.Event | None = None,
    keep_going: bool = True,
) -> np.ndarray:
    """Encode these papers ``REFRESH_BATCH`` at a time and store each batch as it is made:
    their vectors as stored (those done before ``stop`` was set). A failed write is raised,
    or with ``keep_going`` logged once (a cache: a full disk or a held lock costs it, not the
    run, which goes on with the vectors in hand)."""
    out = np.zeros((len(ids), model.dim), dtype=np.float32)
    writes, done = CacheWrites("vectors", len(ids), strict=not keep_going), 0
    for start, end in batch_bounds(len(ids), REFRESH_BATCH, stop):
        out[start:end] = _embedded(model, texts[start:end])
        done = end
        rows = _stored_rows(model, ids[start:end], hashes[start:end], out[start:end])
        writes.write(partial(store.set_embeddings, rows), start)
    return out[:done]


def text_vectors(store: Store, model: EmbeddingModel, texts: list[str]) -> np.ndarray:
    """Vectors of short texts (subscribers' interests), each encoded once per model and kept
    in the store: a run of 20,000 readers reads them instead of encoding 20,000 texts, and a
    reader's vector changes only when their text does."""
    out = np.zeros((len(texts), model.dim), dtype=np.float32)
    hashes = [text_hash(t) for t in texts]
    wanted = {h: t for h, t in zip(hashes, texts, strict=True) if t and t.strip()}
    if not wanted:
        return out
    stored = store.text_vectors(model.name, list(wanted))
    # a damaged blob (the wrong length) is encoded again, not read
    known = {h: from_blob(b) for h, b in stored.items() if _whole(len(b or b""), model)}
    missing = [h for h in wanted if h not in known]
    if missing:
        # one at a time, like papers: batched with others (~5x faster) a text's vector would
        # move with its batch mates, and so would a reader's scores with who else was new
        fresh = model.embed([wanted[h] for h in missing])
        blobs = [to_blob(v) for v in fresh]
        known.update({h: from_blob(b) for h, b in zip(missing, blobs, strict=True)})
        try:
            with store.briefly():  # a cache: never a wait of the busy timeout for it
                store.set_text_vectors(
                    (model.name, h, b) for h, b in zip(missing, blobs, strict=True)
                )
        except StoreError as exc:  # a cache: the run goes on with the vectors in hand
            log.warning("could not keep the vectors of %d interests: %s", len(missing), exc)
    for row, h in enumerate(hashes):
        if h in known:
            out[row] = known[h]
    return out
