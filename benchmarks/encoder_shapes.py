"""What another encoder would cost to run here: ``ranking.embeddings: FOLDER`` with a
sentence-transformers model exported to ONNX (what ``paperwire model pull`` fetches), timed on
2,000 real abstracts beside the bundled encoder, in one process on the same cores.

This machine reaches no model hub, so the graphs are built here with random weights in the
shapes of the models a user would pull (the cost of a transformer is its shape, not its
weights): all-MiniLM-L6-v2's (the bundled model's own, as a check), BAAI/bge-small-en-v1.5's
and BAAI/bge-base-en-v1.5's, each as the Hub's float32 ``onnx/model.onnx`` and as an int8
export (``--onnx onnx/model_qint8_avx512.onnx`` where a repository has one). Quality is not
measured: random weights have none.

    python -m benchmarks.encoder_shapes            # needs the onnx package (a build tool)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.eval_semantic import speed
from paperwire.rank import encoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from build_encoder import build_graph  # noqa: E402

# (layers, hidden, intermediate, heads): the models' config.json
SHAPES = {
    "minilm-l6-shape": (6, 384, 1536, 12),
    "bge-small-shape": (12, 384, 1536, 12),
    "bge-base-shape": (12, 768, 3072, 12),
}
VOCAB, POSITIONS = 30522, 512  # bert-base-uncased's, which all three use


def random_bert(layers: int, hidden: int, intermediate: int, heads: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)

    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": r(VOCAB, hidden),
        "embeddings.position_embeddings.weight": r(POSITIONS, hidden),
        "embeddings.token_type_embeddings.weight": r(2, hidden),
        "embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(hidden, np.float32),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}"
        for k in ("query", "key", "value"):
            w[f"{p}.attention.self.{k}.weight"] = r(hidden, hidden)
            w[f"{p}.attention.self.{k}.bias"] = r(hidden)
        for name, (rows, cols) in {
            "attention.output": (hidden, hidden),
            "intermediate": (intermediate, hidden),
            "output": (hidden, intermediate),
        }.items():
            w[f"{p}.{name}.dense.weight"] = r(rows, cols)
            w[f"{p}.{name}.dense.bias"] = r(rows)
        for name in ("attention.output", "output"):
            w[f"{p}.{name}.LayerNorm.weight"] = np.ones(hidden, np.float32)
            w[f"{p}.{name}.LayerNorm.bias"] = np.zeros(hidden, np.float32)
    config = {
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "layer_norm_eps": 1e-12,
    }
    return w, config


def folder_for(name: str, shape: tuple[int, ...], root: Path, int8: bool) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = root / f"{name}-{'int8' if int8 else 'fp32'}"
    (folder / "onnx").mkdir(parents=True)
    graph = folder / "onnx" / "model.onnx"
    onnx.save(build_graph(*random_bert(*shape)), graph)
    if int8:
        fp32 = root / "fp32.onnx"
        shutil.move(graph, fp32)
        quantize_dynamic(fp32, graph, weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fmt: skip
        fp32.unlink()
    shutil.copyfile(encoder.model_folder() / "tokenizer.json", folder / "tokenizer.json")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512}))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args(argv)
    speed("minilm")  # the bundled encoder first, as the yardstick of this machine and moment
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            for int8 in (True, False):
                folder = folder_for(name, SHAPES[name], Path(tmp), int8)
                speed(str(folder))
                shutil.rmtree(folder)
    speed("minilm")  # and again: the machine's load moves
    return 0


if __name__ == "__main__":
    sys.exit(main())
