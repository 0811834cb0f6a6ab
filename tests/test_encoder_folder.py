"""``ranking.embeddings: FOLDER`` holding a sentence-transformers model exported to ONNX (the
layout of its Hub repository, what ``model pull`` fetches for e.g. BAAI/bge-small-en-v1.5):
pooled and normalised as sentence-transformers does, named by its bytes, and ranked with.

The model is tests/fixtures/tiny-st-onnx (scripts/make_tiny_onnx_encoder.py): a real ONNX graph
of a BERT export's shape, small enough to commit, whose weights the tests read back to work out
each vector by hand."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from paperwire.cli import cli
from paperwire.config import load_config
from paperwire.errors import ConfigError
from paperwire.rank import embed, encoder

from .conftest import FIXTURES

TINY = FIXTURES / "tiny-st-onnx"


def _copy(tmp_path: Path, name: str = "tiny-st-onnx") -> Path:
    folder = tmp_path / name
    shutil.copytree(TINY, folder)
    return folder


def _by_hand(folder: Path, text: str, pooling: str) -> np.ndarray:
    """What sentence-transformers gives for ``text``: the graph's token vectors (worked out
    from its weights), pooled over the word pieces, L2-normalised."""
    weights = np.load(folder / "weights.npz")
    model = embed.load_model(str(folder))
    ids = np.array(model.tokenizer.encode(text).ids)
    tokens = np.tanh((weights["word"][ids] + weights["type"][0]) @ weights["dense"])
    pooled = {"mean": tokens.mean(axis=0), "cls": tokens[0], "max": tokens.max(axis=0)}[pooling]
    return pooled / np.linalg.norm(pooled)


def _set_pooling(folder: Path, mode: str) -> None:
    path = folder / "1_Pooling" / "config.json"
    config = json.loads(path.read_text())
    for key in [k for k in config if k.startswith("pooling_mode")]:
        config[key] = False
    config[mode] = True
    path.write_text(json.dumps(config))


def test_an_onnx_export_is_mean_pooled_and_normalised_as_its_pooling_config_says():
    model = embed.load_model(str(TINY))
    texts = ["Bandit regret bounds", "graph neural networks for molecules", "", "zzz"]
    vectors = model.embed(texts)
    assert vectors.shape == (4, 6) and vectors.dtype == np.float32
    for text, vector in zip(texts[:2], vectors, strict=False):
        np.testing.assert_allclose(vector, _by_hand(TINY, text, "mean"), atol=1e-5)
    assert not vectors[2].any()  # no text: nothing to be close to
    assert np.isclose(np.linalg.norm(vectors[3]), 1)  # unknown words are still a text


@pytest.mark.parametrize(("mode", "pooling"), [("pooling_mode_cls_token", "cls"),
                                               ("pooling_mode_max_tokens", "max")])  # fmt: skip
def test_cls_and_max_pooling_are_what_the_models_pooling_config_asks_for(tmp_path, mode, pooling):
    folder = _copy(tmp_path)
    _set_pooling(folder, mode)
    model = embed.load_model(str(folder))
    # another pooling makes other vectors: those stored under the mean's name are not these
    assert model.name != embed.load_model(str(TINY)).name
    vector = model.embed(["protein fold language model"])[0]
    np.testing.assert_allclose(vector, _by_hand(folder, "protein fold language model", pooling),
                               atol=1e-5)  # fmt: skip
    mean = embed.load_model(str(TINY)).embed(["protein fold language model"])[0]
    assert not np.allclose(vector, mean, atol=1e-3)  # the setting was read, not ignored


def test_a_text_longer_than_the_models_max_seq_length_is_cut_there():
    model = embed.load_model(str(TINY))  # max_seq_length 8: [CLS], six word pieces, [SEP]
    words = "bandit regret graph neural network molecule"
    longer = model.embed([words + " galaxy star cluster protein fold quantum circuit"])[0]
    np.testing.assert_allclose(longer, model.embed([words])[0], atol=1e-6)


def test_the_name_follows_the_graphs_bytes_so_papers_are_encoded_again_when_they_change(tmp_path):
    first = embed.load_model(str(TINY)).name
    assert first.startswith("tiny-st-onnx-") and len(first) == len("tiny-st-onnx-") + 12
    folder = _copy(tmp_path)
    graph = folder / "onnx" / "model.onnx"
    data = graph.read_bytes()
    dense = np.load(folder / "weights.npz")["dense"].tobytes()
    at = data.index(dense)
    graph.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])  # a weight's last bit
    model = embed.load_model(str(folder))
    assert model.embed(["bandit"]).any()  # still a model that runs: another one
    assert model.name != first


def test_an_unsupported_pooling_and_a_damaged_graph_are_one_line_errors(tmp_path):
    folder = _copy(tmp_path)
    _set_pooling(folder, "pooling_mode_lasttoken")
    with pytest.raises(ConfigError) as caught:
        embed.load_model(str(folder))
    assert str(caught.value) == (
        f"ranking.embeddings: {folder}: 1_Pooling/config.json asks for pooling_mode_lasttoken; "
        "paperwire pools by one of mean, CLS token or max"
    )
    folder = _copy(tmp_path, "truncated")
    graph = folder / "onnx" / "model.onnx"
    os.truncate(graph, graph.stat().st_size // 2)  # an interrupted copy
    with pytest.raises(ConfigError) as caught:
        embed.load_model(str(folder))
    said = str(caught.value)
    assert said.startswith(f"ranking.embeddings: {folder}: {graph} is damaged (")
    assert said.endswith("pull it again (paperwire model pull NAME --force) or set another "
                         "ranking.embeddings")  # fmt: skip
    assert "\n" not in said


def test_a_settings_file_nested_past_what_json_reads_is_a_one_line_error(tmp_path):
    """modules.json of "[" a hundred thousand times: RecursionError's traceback out of every
    command that ranks (found in review), where a damaged folder is one line."""
    folder = _copy(tmp_path)
    (folder / "modules.json").write_text("[" * 100_000)
    with pytest.raises(ConfigError) as caught:
        embed.load_model(str(folder))
    assert str(caught.value) == (
        f"ranking.embeddings: {folder}: modules.json is not JSON (nested too deep)"
    )


def test_a_tokenizer_of_more_word_pieces_than_the_graph_reads_is_refused_at_load(tmp_path):
    """A tokenizer.json with a word past the graph's word table (another model's) was
    accepted; ONNX Runtime failed with a traceback at the first text holding it (found in
    review). Refused when the folder is loaded, in one line."""
    folder = _copy(tmp_path)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["zzzqqq"] = 40_000
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ConfigError) as caught:
        embed.load_model(str(folder))
    said = str(caught.value)
    assert said.startswith(
        f"ranking.embeddings: {folder}: its tokenizer.json has word pieces up to number 40000, "
        "past what model.onnx reads ("
    )
    assert "the tokenizer is not this model's" in said and "\n" not in said


def test_the_config_names_the_file_line_and_what_an_onnx_folder_lacks(tmp_path):
    folder = _copy(tmp_path)
    (folder / "tokenizer.json").unlink()
    config = tmp_path / "subscribers.yaml"
    config.write_text(
        f"subscribers:\n  - id: ada\n    email: ada@example.org\nranking:\n  embeddings: {folder}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert f"{config}:5" in str(caught.value)
    assert f"{folder}: no tokenizer.json beside its ONNX graph" in str(caught.value)


def test_a_digest_ranks_with_the_onnx_model_and_stores_its_vectors_under_its_name(
    tmp_path, monkeypatch
):
    folder = _copy(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subscribers.yaml").write_text(
        "ranking: {embeddings: tiny-st-onnx}\n"  # relative: read beside subscribers.yaml
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\n    name: arxiv-cs\n"
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        # a phrase the feed's papers write: their reasons need no judgement of this toy
        # model's cosines, which "close in meaning" asks to be as close as papers are to
        # their own phrases
        '    interests: "large language models, attention cache compression"\n'
    )
    fetched = CliRunner().invoke(cli, ["fetch"])
    assert fetched.exit_code == 0, fetched.output
    ranked = CliRunner().invoke(cli, ["digest", "--json"])
    assert ranked.exit_code == 0, ranked.output
    assert json.loads(ranked.stdout)["ada"]  # picks, ranked with the model's vectors
    name = embed.load_model(str(folder)).name
    with contextlib.closing(sqlite3.connect(tmp_path / "paperwire.db")) as db:
        models = {m for (m,) in db.execute("SELECT DISTINCT model FROM embeddings")}
        papers = db.execute("SELECT count(*) FROM papers").fetchone()[0]
        encoded = db.execute("SELECT count(*) FROM embeddings WHERE model = ?", (name,)).fetchone()[
            0
        ]
    assert models == {name} and encoded >= papers > 0


def test_a_graph_that_pools_itself_is_normalised_and_not_pooled_again(tmp_path):
    model = encoder.load_folder(TINY, threads=1)
    model.pooling = "given"  # what load_folder sets for a graph whose output is 2-D
    out = np.array([[[3.0, 4.0, 0, 0, 0, 0]]], dtype=np.float32)[:, 0, :]
    np.testing.assert_allclose(model._pooled(out, np.ones((1, 1))), [[0.6, 0.8, 0, 0, 0, 0]])


def test_a_graph_whose_width_is_symbolic_learns_it_from_one_text(monkeypatch):
    # some exports name the output's last dimension ("hidden") instead of giving its size
    real_open = encoder._open

    class Output:
        name, shape = "last_hidden_state", ["batch", "tokens", "hidden"]

    class Symbolic:
        def __init__(self, session):
            self.session = session

        def get_outputs(self):
            return [Output()]

        def __getattr__(self, name):
            return getattr(self.session, name)

    def opened(*args):
        session, tokenizer = real_open(*args)
        return Symbolic(session), tokenizer

    monkeypatch.setattr(encoder, "_open", opened)
    model = encoder.load_folder(TINY, threads=1)
    assert model.dim == 6
    np.testing.assert_allclose(model.embed(["bandit regret"])[0], _by_hand(TINY, "bandit regret",
                               "mean"), atol=1e-5)  # fmt: skip
