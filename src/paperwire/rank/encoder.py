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
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

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
    """Texts in, L2-normalised 384-dimension float32 rows out (mean-pooled MiniLM)."""

    name: str
    session: Any  # onnxruntime.InferenceSession, one thread a run
    tokenizer: Any  # tokenizers.Tokenizer
    dim: int = 384
    # texts run at once, each on its own thread (ONNX Runtime lets threads share a session)
    threads: int = 1

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
            return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

        rows = np.asarray(todo)
        if self.threads > 1 and len(groups) > 1:
            with ThreadPoolExecutor(min(self.threads, len(groups))) as pool:
                for group, vectors in zip(groups, pool.map(run, groups), strict=True):
                    out[rows[group]] = vectors
        else:
            for group in groups:
                out[rows[group]] = run(group)
        return out


def load(folder: Path | None = None, threads: int | None = None) -> SentenceEncoder:
    """The bundled encoder (or the same files in ``folder``), ready to run."""
    folder = folder or model_folder()
    model, tokenizer_file = folder / "model.onnx", folder / "tokenizer.json"
    for path in (model, tokenizer_file):
        if not path.is_file():
            raise ConfigError(f"ranking.embeddings: {NAME}: {path} is missing; {_REINSTALL}")
    fingerprint = _check_files(folder)
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer
    except ImportError as exc:  # both are dependencies; a broken environment says which
        raise ConfigError(
            f"ranking.embeddings: {NAME} needs {exc.name}, which is not importable: "
            "pip install paperwire (or set ranking.embeddings: off)"
        ) from None
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
        raise _damaged(model, exc) from None
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:
        raise _damaged(tokenizer_file, exc) from None
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return SentenceEncoder(
        f"{NAME}-{fingerprint}", session, tokenizer, threads=threads or _threads()
    )


def _threads() -> int:
    """The cores this process may use (a container's CPU set, not the host's)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


_REINSTALL = (
    "reinstall paperwire (pip install --force-reinstall paperwire) or set ranking.embeddings: off"
)


def _damaged(path: Path, why: object) -> ConfigError:
    return ConfigError(f"ranking.embeddings: {NAME}: {path} is damaged ({why}); {_REINSTALL}")


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
