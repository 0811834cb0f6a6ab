"""Write tests/fixtures/tiny-st-onnx/: a sentence-transformers model exported to ONNX, in the
layout its Hub repository has (``onnx/model.onnx``, ``tokenizer.json``, ``1_Pooling/``, ...),
small enough to commit (a few kB): what ``ranking.embeddings: FOLDER`` and ``model pull`` read
for a transformer encoder such as BAAI/bge-small-en-v1.5, built from nothing downloaded.

The graph is the shape of a BERT export, not a trained model: word-piece and token-type
embeddings, one dense layer with tanh, the attention mask applied, and ``last_hidden_state``
(batch × tokens × 6) out, so pooling is the reader's job, as for the real exports. Its weights
are also written to ``weights.npz`` so the tests can work out the expected vectors by hand.

    python scripts/make_tiny_onnx_encoder.py tests/fixtures/tiny-st-onnx

Needs the ``onnx`` package (a build-time tool, not a dependency of paperwire).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

WORDS = [
    "bandit",
    "regret",
    "graph",
    "neural",
    "network",
    "molecule",
    "galaxy",
    "star",
    "cluster",
    "protein",
    "fold",
    "language",
    "model",
    "attention",
    "cache",
    "compression",
    "quantum",
    "circuit",
    "robot",
    "grasp",
    "policy",
]
DIM = 6


def tokenizer() -> Tokenizer:
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS, "##s"])}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tok


def graph(vocab_size: int) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    rng = np.random.default_rng(20261206)
    weights = {
        "word": rng.standard_normal((vocab_size, DIM)).astype(np.float32),
        "type": rng.standard_normal((2, DIM)).astype(np.float32),
        "dense": rng.standard_normal((DIM, DIM)).astype(np.float32),
    }
    ints = TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info(name, ints, ["batch", "tokens"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", DIM]
    )
    nodes = [
        helper.make_node("Gather", ["word", "input_ids"], ["w"]),
        helper.make_node("Gather", ["type", "token_type_ids"], ["t"]),
        helper.make_node("Add", ["w", "t"], ["h"]),
        helper.make_node("MatMul", ["h", "dense"], ["d"]),
        helper.make_node("Tanh", ["d"], ["a"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
        helper.make_node("Mul", ["a", "m3"], ["last_hidden_state"]),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis"))
    g = helper.make_graph(nodes, "tiny-bert", inputs, [output], initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime 1.17 (paperwire's lowest) reads
    onnx.checker.check_model(model)
    return model, weights


def main(out: Path) -> None:
    tok = tokenizer()
    model, weights = graph(tok.get_vocab_size())
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    (out / "1_Pooling").mkdir(exist_ok=True)
    onnx.save(model, str(out / "onnx" / "model.onnx"))
    tok.save(str(out / "tokenizer.json"))
    np.savez(out / "weights.npz", **weights)
    files = {
        "config.json": {"model_type": "bert", "hidden_size": DIM},
        "sentence_bert_config.json": {"max_seq_length": 8, "do_lower_case": False},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "1_Pooling/config.json": {
            "word_embedding_dimension": DIM,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
        },
    }  # fmt: skip
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tiny-st-onnx"))
