"""paperwire.rank.encoder: the bundled sentence encoder, as installed, on real text."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from paperwire import digests as worded
from paperwire.errors import ConfigError
from paperwire.paper import Paper
from paperwire.rank import embed, encoder

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
# the encoder itself, as shipped: not conftest's per-worker cache of its vectors
pytestmark = pytest.mark.uncached_encoder


@pytest.fixture(scope="module")
def model() -> encoder.SentenceEncoder:
    return encoder.load(threads=1)


def test_the_shipped_model_is_the_one_its_provenance_names():
    folder = encoder.model_folder()
    provenance = json.loads((folder / "PROVENANCE.json").read_text())
    built = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    assert provenance["model.onnx_sha256"] == built
    assert provenance["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert provenance["upstream_sha256"]["model.safetensors"] == (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    )
    # the tokenizer is upstream's file, byte for byte
    tokenizer = hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()
    assert tokenizer == provenance["upstream_sha256"]["tokenizer.json"]
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "all-MiniLM-L6-v2" in (folder / "NOTICE").read_text()


def test_the_digest_references_recorded_vectors_are_this_models_on_this_cpu(model):
    """test_digest_reference ranks with vectors recorded when its reference was written (the
    live encoder's last bits follow the processor): they must be this model's, and this
    machine's encoder must give each of those texts about the same vector."""
    kept = np.load(Path(__file__).parent / "fixtures" / "digest_reference_vectors.npz")
    assert str(kept["model"]) == model.name  # a new model rewrites the reference
    texts, recorded = kept["texts"].tolist(), kept["vectors"]
    assert len(texts) > 150
    # every fourth of them: 14 s on two cores for all 214, and the model is one for all
    texts, recorded = texts[::4], recorded[::4]
    cosines = (model.embed(texts) * recorded).sum(axis=1)
    # two machines (AVX2; AVX-512 with AMX) gave 0.9975 at the least over 200 real abstracts
    assert cosines.min() > 0.99, texts[int(cosines.argmin())][:80]


def test_texts_become_unit_rows_and_an_empty_text_a_zero_row(model):
    vectors = model.embed(["Speculative decoding with a draft model", "", "   "])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-4)
    assert not vectors[1:].any()
    assert model.name.startswith("minilm-")


def test_meaning_not_words_decides_what_is_close(model):
    query, paraphrase, other = model.embed(
        [
            "graph neural networks for molecules",
            "molecular property prediction with message passing on atoms and bonds",
            "compressing the key-value cache of large language models",
        ]
    )
    assert query @ paraphrase > 0.4 > query @ other


def test_a_text_gets_the_same_vector_alone_or_in_a_batch_of_other_lengths(model):
    texts = [
        "A short title",
        "A much longer abstract about diffusion models for protein structure generation, "
        "conditioned on sequence, with an equivariant network and a new noise schedule. " * 3,
        "Reinforcement learning from human feedback",
    ]
    batch = model.embed(texts)
    alone = np.vstack([model.embed([t]) for t in texts])
    np.testing.assert_allclose(batch, alone, atol=1e-5)


def test_texts_run_on_several_threads_get_the_very_bits_they_get_on_one(model):
    """Each text is one run on one thread, so how many run at once changes nothing: every
    row is the same bits, in its own place (the lengths differ, so the runs finish out of
    order)."""
    texts = [f"{'Sparse attention for long documents, ' * (1 + i % 7)}part {i}" for i in range(40)]
    texts[5] = ""  # a zero row stays in its place too
    one = model.embed(texts)
    several = encoder.load(threads=4)
    assert several.threads == 4
    assert np.array_equal(several.embed(texts), one)
    assert not one[5].any() and np.linalg.norm(one[6]) == pytest.approx(1.0, abs=1e-4)


def test_a_text_longer_than_the_model_reads_is_cut_not_refused(model):
    long = "attention " * 5000
    assert np.linalg.norm(model.embed([long])[0]) == pytest.approx(1.0, abs=1e-4)


PAPERS = [
    ("2611.00011", "Message passing networks predict molecular properties",
     "Atoms are nodes and bonds are edges; a learned update aggregates neighbours."),
    ("2611.00012", "Dark energy constraints from supernova distances",
     "Type Ia supernovae measure the expansion history of the universe."),
    ("2611.00013", "A survey of smart contract auditing tools",
     "Static analysers and fuzzers for Ethereum programs are compared."),
]  # fmt: skip


def test_each_paper_is_encoded_once_when_stored_and_never_again(store):
    store.add_papers(
        [Paper(p, t, a, url="u", source="arxiv") for p, t, a in PAPERS], now=NOW - dt.timedelta(1)
    )
    model = embed.load_model("minilm")
    assert embed.refresh(store, model) == 3
    stored = store.embeddings(p for p, _, _ in PAPERS)
    assert {m for m, _, _ in stored.values()} == {model.name}
    assert embed.refresh(store, model) == 0  # nothing new: nothing encoded
    assert embed.refresh(store, None) == 0  # switched off: nothing at all


def test_a_new_reader_gets_the_paper_that_means_what_their_interests_say(store, make_config):
    store.add_papers(
        [Paper(p, t, a, url="u", source="arxiv") for p, t, a in PAPERS], now=NOW - dt.timedelta(1)
    )
    text = (
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "graph neural networks for chemistry"\n    digest_size: 1\n'
    )
    on = worded.compose(store, make_config(text), now=NOW)["ada"]  # the default: the encoder
    off = worded.compose(store, make_config("ranking: {embeddings: off}\n" + text), now=NOW)
    assert [p.paper_id for p in on.picks] == ["2611.00011"]
    # TF-IDF alone shares one word with one paper ("networks"): nothing a reader would
    # recognise as theirs, so ada's digest holds no paper (issue 27: it is left out)
    assert off["ada"].picks == [] and off["ada"].candidates == len(PAPERS)


def test_interests_are_encoded_once_per_text_and_read_back_by_later_runs(store, monkeypatch):
    model = embed.load_model("minilm")
    texts = ["speculative decoding", "protein structure generation", "speculative decoding", ""]
    first = embed.text_vectors(store, model, texts)
    np.testing.assert_array_equal(first[0], first[2])  # one text, one vector
    assert not first[3].any()  # no interests: nothing to be close to
    encoded: list[int] = []
    real = model.embed
    monkeypatch.setattr(model, "embed", lambda t, batch=1: encoded.append(len(t)) or real(t))
    again = embed.text_vectors(store, model, texts)
    np.testing.assert_array_equal(again, first)
    assert encoded == []  # read from the store
    embed.text_vectors(store, model, ["speculative decoding", "graph neural networks"])
    assert encoded == [1]  # only the new text
    # a reader's stored vector is the one the text gets alone, whoever else was new that run
    # (batched with them it moved by ~1e-2, and so did the reader's first scores)
    alone = model.embed(["protein structure generation"])[0]
    np.testing.assert_allclose(first[1], alone, atol=2e-3)  # kept as float16


@pytest.mark.parametrize("damaged", ["model.onnx", "tokenizer.json"])
def test_a_truncated_model_file_is_one_line_naming_it(tmp_path, damaged):
    folder = tmp_path / "encoder"
    shutil.copytree(encoder.model_folder(), folder)
    path = folder / damaged
    size = path.stat().st_size // 2
    os.truncate(path, size)  # an interrupted copy or install
    with pytest.raises(ConfigError) as caught:  # was ONNX Runtime's InvalidProtobuf traceback
        encoder.load(folder, threads=1)
    assert str(caught.value) == (
        f"ranking.embeddings: minilm: {path} is damaged ({size:,} bytes whose sha256 is not "
        "PROVENANCE.json's); reinstall paperwire (pip install --force-reinstall paperwire) "
        "or set ranking.embeddings: off"
    )


def test_altered_weights_are_refused_not_stored_under_the_shipped_models_name(tmp_path):
    folder = tmp_path / "encoder"
    shutil.copytree(encoder.model_folder(), folder)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[-100] ^= 0xFF  # one flipped byte: the graph may still load, with other weights
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="model.onnx is damaged"):
        encoder.load(folder, threads=1)
    # without PROVENANCE.json the bytes name the model: its vectors are another model's
    (folder / "PROVENANCE.json").unlink()
    (folder / "model.onnx").write_bytes(b"not an ONNX graph")
    with pytest.raises(ConfigError, match=r"model.onnx is damaged \(.*\); reinstall paperwire"):
        encoder.load(folder, threads=1)


def test_a_dependency_there_but_failing_to_import_is_named(tmp_path, monkeypatch):
    """onnxruntime 1.17 installed beside NumPy 2 is there but fails to import, with an
    ImportError that names no module: the run ended 'minilm needs None, which is not
    importable'."""
    broken = tmp_path / "onnxruntime"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError\n")  # as its extension module does
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    with pytest.raises(ConfigError) as caught:
        encoder.load(threads=1)
    assert str(caught.value) == (
        "ranking.embeddings: minilm needs onnxruntime, which is not importable: "
        "pip install paperwire (or set ranking.embeddings: off)"
    )
