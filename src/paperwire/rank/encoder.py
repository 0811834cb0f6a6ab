"""The bundled sentence encoder: all-MiniLM-L6-v2 as an int8 ONNX graph, run by ONNX Runtime.

A contextual encoder reads a title and abstract as a sentence, not as a bag of words: "graph
neural networks for molecules" and "molecular property prediction with message passing" land
close together although they share no word. It is what makes a new reader's interests text
match by meaning (benchmarks/README.md, "Sentence encoder", has the figures).

The model files ship inside the package (``paperwire/data/encoder/``, 23 MB): built by
``scripts/build_encoder.py`` from hash-checked upstream weights, with their Apache-2.0 LICENSE,
NOTICE and a PROVENANCE.json. No PyTorch, no network: ONNX Runtime and Hugging Face's
``tokenizers`` only. Every paper is encoded once, when it is stored (``embed.paper_vectors``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..config.embeddings import onnx_graph
from ..errors import ConfigError

NAME = "minilm"
# Word pieces read per text: the model's own limit (256); a title and abstract average ~225.
MAX_TOKENS = 256
# Texts run through the network at once. One: the int8 graph quantises each matrix product's
# input with one scale for the whole batch, so a text batched with others (or with padding)
# would get a slightly different vector than alone; one at a time, a paper's vector depends on
# its text only, and costs no more on two cores (padding is work too).
BATCH = 1


def model_folder() -> Path:
    """Where the bundled model files are (inside the installed package)."""
    return Path(str(resources.files("paperwire") / "data" / "encoder"))


@dataclass
class SentenceEncoder:
    """Texts in, L2-normalised float32 rows out: the bundled MiniLM (its graph pools and
    normalises), or a sentence-transformers model exported to ONNX (pooled here)."""

    name: str
    session: Any  # onnxruntime.InferenceSession, one thread a run
    tokenizer: Any  # tokenizers.Tokenizer
    dim: int = 384
    # texts run at once, each on its own thread (ONNX Runtime lets threads share a session)
    threads: int = 1
    # how the graph's token vectors become one vector: "none" (the bundled graph's output is
    # the unit sentence vector), "given" (a sentence vector, normalised here), "mean" over the
    # attention mask, "cls" (the first token), "max"
    pooling: str = "none"
    # the graph takes token_type_ids too (BERT exports do): all zeros, one sentence
    token_types: bool = False

    def embed(self, texts: list[str], batch: int = BATCH) -> np.ndarray:
        """One unit row per text; an empty text is a zero row (it says nothing). ``batch``
        > 1 runs texts of similar length together (several times faster for short texts,
        each vector then moving by ~1e-2 with its batch mates: for texts whose vector is
        stored once, such as interests)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if t and t.strip()]
        if not todo:
            return out
        encodings = self.tokenizer.encode_batch([texts[i] for i in todo])
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        groups = [order[start : start + batch] for start in range(0, len(order), batch)]

        def run(group: np.ndarray) -> np.ndarray:
            width = int(lengths[group].max())
            ids = np.zeros((len(group), width), dtype=np.int64)
            mask = np.zeros((len(group), width), dtype=np.int64)
            for row, k in enumerate(group):
                n = lengths[k]
                ids[row, :n] = encodings[k].ids
                mask[row, :n] = 1
            return self._vectors(ids, mask)

        rows = np.asarray(todo)
        if self.threads > 1 and len(groups) > 1:
            with ThreadPoolExecutor(min(self.threads, len(groups))) as pool:
                for group, vectors in zip(groups, pool.map(run, groups), strict=True):
                    out[rows[group]] = vectors
        else:
            for group in groups:
                out[rows[group]] = run(group)
        return out

    def _vectors(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The graph run on these word pieces, pooled: one unit row each."""
        feed = {"input_ids": ids, "attention_mask": mask}
        if self.token_types:
            feed["token_type_ids"] = np.zeros_like(ids)
        return self._pooled(self.session.run(None, feed)[0], mask)

    def _pooled(self, out: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One unit row per text from the graph's output (sentence-transformers' Pooling and
        Normalize modules, for a graph that stops at the token vectors)."""
        if self.pooling == "none":
            return out
        if self.pooling == "given":  # pooled by the graph, perhaps not normalised
            vectors = out
        elif self.pooling == "cls":
            vectors = out[:, 0, :]
        elif self.pooling == "max":
            vectors = np.where(mask[:, :, None] > 0, out, -np.inf).max(axis=1)
        else:
            weights = mask[:, :, None].astype(np.float32)
            vectors = (out * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def load(folder: Path | None = None, threads: int | None = None) -> SentenceEncoder:
    """The bundled encoder (or the same files in ``folder``), ready to run."""
    folder = folder or model_folder()
    model, tokenizer_file = folder / "model.onnx", folder / "tokenizer.json"
    for path in (model, tokenizer_file):
        if not path.is_file():
            raise ConfigError(f"ranking.embeddings: {NAME}: {path} is missing; {_REINSTALL}")
    fingerprint = _check_files(folder)
    session, tokenizer = _open(model, tokenizer_file, MAX_TOKENS, NAME, _REINSTALL)
    return SentenceEncoder(
        f"{NAME}-{fingerprint}", session, tokenizer, threads=threads or _threads()
    )


# What a sentence-transformers export may take; paperwire fills these and nothing else.
_INPUTS = {"input_ids", "attention_mask", "token_type_ids"}
# Word pieces read per text of another encoder, at most: a title and abstract average ~225,
# and the cost of a text grows with its length squared.
MAX_TOKENS_OTHER = 512
_POOLING = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


def load_folder(folder: Path, threads: int | None = None) -> SentenceEncoder:
    """A sentence-transformers model exported to ONNX, in its Hub repository's layout:
    ``onnx/model.onnx`` (or ``model.onnx``), ``tokenizer.json``, and, when it has them,
    ``1_Pooling/config.json`` (how token vectors become one: mean, CLS or max; mean without
    it) and ``sentence_bert_config.json`` (its ``max_seq_length``). What ``paperwire model
    pull`` fetches for such a model (e.g. BAAI/bge-small-en-v1.5). Vectors are L2-normalised,
    as the product compares them by cosine. Named after the folder and what its vectors are
    made of (the graph's and tokenizer's bytes, the pooling, the length read), so papers are
    encoded again when any of it changes."""
    label = str(folder)
    model = onnx_graph(folder)
    tokenizer_file = folder / "tokenizer.json"
    if model is None:
        raise ConfigError(f"ranking.embeddings: {label}: no model.onnx or onnx/model.onnx")
    if not tokenizer_file.is_file():
        raise ConfigError(
            f"ranking.embeddings: {label}: no tokenizer.json (an ONNX model folder needs its "
            "tokenizer beside the graph)"
        )
    pooling = _pooling(folder)
    session, tokenizer = _open(model, tokenizer_file, _max_tokens(folder), label, _RE_PULL)
    inputs = {i.name for i in session.get_inputs()}
    if not {"input_ids", "attention_mask"} <= inputs or inputs - _INPUTS:
        raise ConfigError(
            f"ranking.embeddings: {label}: {model.name} takes {', '.join(sorted(inputs))}; "
            "paperwire gives a text encoder input_ids, attention_mask and token_type_ids"
        )
    shape = session.get_outputs()[0].shape
    if len(shape) == 2:  # the graph pools itself: only normalised here
        pooling = "given"
    elif len(shape) != 3:
        raise ConfigError(
            f"ranking.embeddings: {label}: {model.name}'s first output has {len(shape)} "
            "dimensions; a text encoder gives token vectors (3) or sentence vectors (2)"
        )
    # everything a vector depends on: stored vectors of another pooling, length or tokenizer
    # are not this model's
    made_of = f"{_sha256(model)} {_sha256(tokenizer_file)} {pooling} {tokenizer.truncation}"
    encoder = SentenceEncoder(
        f"{folder.resolve().name}-{hashlib.sha256(made_of.encode()).hexdigest()[:12]}",
        session,
        tokenizer,
        threads=threads or _threads(),
        pooling=pooling,
        token_types="token_type_ids" in inputs,
    )
    # the tokenizer's last word piece, once: a tokenizer.json of a larger vocabulary than the
    # graph's word table was accepted, then failed in ONNX Runtime (a traceback) at the first
    # text holding such a word, days later
    highest = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=0)
    last = np.array([[highest]], dtype=np.int64)
    try:
        probe = encoder._vectors(last, np.ones_like(last))
    except Exception as exc:  # noqa: BLE001 (ONNX Runtime's errors have no common class)
        raise ConfigError(
            f"ranking.embeddings: {label}: its tokenizer.json has word pieces up to number "
            f"{highest}, past what {model.name} reads ({type(exc).__name__}): the tokenizer "
            f"is not this model's; {_RE_PULL}"
        ) from None
    width = shape[-1]
    encoder.dim = width if isinstance(width, int) and width > 0 else int(probe.shape[1])
    return encoder


def _pooling(folder: Path) -> str:
    """sentence-transformers' pooling for this model (modules.json names its folder)."""
    where = "1_Pooling"
    modules = _json(folder / "modules.json", folder)
    if isinstance(modules, list):
        for module in modules:
            if isinstance(module, dict) and str(module.get("type", "")).endswith("Pooling"):
                where = str(module.get("path") or where)
    config = _json(folder / where / "config.json", folder)
    if not isinstance(config, dict):
        return "mean"  # sentence-transformers' own default for a bare transformer
    chosen = [key for key, on in config.items() if key.startswith("pooling_mode") and on]
    if not chosen:
        return "mean"
    if len(chosen) > 1 or chosen[0] not in _POOLING:
        raise ConfigError(
            f"ranking.embeddings: {folder}: {where}/config.json asks for {', '.join(chosen)}; "
            "paperwire pools by one of mean, CLS token or max"
        )
    return _POOLING[chosen[0]]


def _max_tokens(folder: Path) -> int:
    config = _json(folder / "sentence_bert_config.json", folder)
    length = config.get("max_seq_length") if isinstance(config, dict) else None
    if isinstance(length, int) and not isinstance(length, bool) and length > 0:
        return min(length, MAX_TOKENS_OTHER)
    return MAX_TOKENS_OTHER


def _json(path: Path, folder: Path) -> Any:
    """A settings file's content; None when the model has none."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError) as exc:  # "[[[[…" past what json.loads reads
        raise ConfigError(
            f"ranking.embeddings: {folder}: {path.relative_to(folder)} is not JSON "
            f"({'nested too deep' if isinstance(exc, RecursionError) else exc})"
        ) from None


def _open(model: Path, tokenizer_file: Path, max_tokens: int, label: str, hint: str):
    """ONNX Runtime's session for ``model`` and its tokenizer, truncating at ``max_tokens``."""
    ort = _dependency("onnxruntime", label)
    Tokenizer = _dependency("tokenizers", label).Tokenizer
    options = ort.SessionOptions()
    # One thread a run, and as many runs at once as there are cores: a text of ~225 word
    # pieces is too small a product to split well (two threads on one text: 1.7x the speed
    # of one for 1.2x the CPU), and ONNX Runtime's own pool spins while it waits, burning
    # cores that another process (the web app, a second worker) needs.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # ONNX Runtime's own warnings are not the reader's business
    try:
        session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ONNX Runtime's own errors (a file without provenance)
        raise _damaged(model, exc, label, hint) from None
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:
        raise _damaged(tokenizer_file, exc, label, hint) from None
    tokenizer.enable_truncation(max_tokens)
    tokenizer.no_padding()
    return session, tokenizer


def _dependency(module: str, label: str = NAME) -> Any:
    """``module`` imported, or a one-line error naming it: both are dependencies, so a broken
    environment says which. A module that is there but fails to import (onnxruntime 1.17,
    built for NumPy 1, under NumPy 2) raises an ImportError that names no module."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f" ({exc})" if str(exc) else ""
        raise ConfigError(
            f"ranking.embeddings: {label} needs {module}, which is not importable{why}: "
            "pip install paperwire (or set ranking.embeddings: off)"
        ) from None


def _threads() -> int:
    """The cores this process may use (a container's CPU set, not the host's)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


_REINSTALL = (
    "reinstall paperwire (pip install --force-reinstall paperwire) or set ranking.embeddings: off"
)


_RE_PULL = "pull it again (paperwire model pull NAME --force) or set another ranking.embeddings"


def _damaged(path: Path, why: object, label: str = NAME, hint: str = _REINSTALL) -> ConfigError:
    said = " ".join(str(why).split())  # ONNX Runtime's messages span lines
    return ConfigError(f"ranking.embeddings: {label}: {path} is damaged ({said}); {hint}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_files(folder: Path) -> str:
    """The model's fingerprint (a short id of its bytes, stored beside each vector so vectors
    are re-made when the model changes), once its files are the ones PROVENANCE.json names.

    A truncated or altered model.onnx or tokenizer.json is a one-line error naming the file,
    not ONNX Runtime's traceback on every digest, nor, where the damage still parses, vectors
    from other weights stored under the shipped model's name beside the right ones."""
    provenance = folder / "PROVENANCE.json"
    model = folder / "model.onnx"
    if not provenance.is_file():
        return _sha256(model)[:12]
    try:
        facts = json.loads(provenance.read_text(encoding="utf-8"))
        expected = {
            model: str(facts.get("model.onnx_sha256") or ""),
            folder / "tokenizer.json": str(
                (facts.get("upstream_sha256") or {}).get("tokenizer.json") or ""
            ),
        }
    except (ValueError, AttributeError, OSError) as exc:
        raise _damaged(provenance, exc) from None
    actual = {}
    for path, digest in expected.items():
        actual[path] = _sha256(path)
        if digest and actual[path] != digest:
            size = path.stat().st_size
            raise _damaged(path, f"{size:,} bytes whose sha256 is not {provenance.name}'s")
    return (expected[model] or actual[model])[:12]
