"""paperwire.rank.embed: the real bundled model, a model2vec folder built here, the stored vectors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from paperwire.config import embeddings
from paperwire.errors import ConfigError
from paperwire.paper import Paper, paper_text
from paperwire.rank import embed

from .conftest import environ_without_paperwire

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def model() -> embed.StaticModel:
    return embed.load_model("wordllama")


def test_the_bundled_model_loads_from_the_installed_package(model):
    assert model.name == "wordllama-l2-supercat-256"
    assert model.vectors.shape == (32000, 256)
    assert model.unk_id == 0  # "<unk>" carries no meaning and is dropped


def test_vectors_are_unit_rows_and_an_empty_text_is_a_zero_row(model):
    vectors = model.embed(["sparse attention for long documents", "", "🙂"])
    assert vectors.dtype == np.float32
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert not vectors[1].any()
    assert vectors.shape == (3, 256)


def test_related_topics_are_closer_than_unrelated_ones(model):
    # no word in common within a triple: TF-IDF scores every pair 0
    for query, near, far in (
        (
            "KV cache quantization",
            "compressing memory of language model inference",
            "galaxy cluster lensing",
        ),
        ("multi-armed bandits", "exploration exploitation regret", "protein folding"),
    ):
        q, n, f = model.embed([query, near, far])
        assert q @ n > q @ f + 0.09, query


def test_word_sums_give_exactly_the_vector_of_the_words_written_out(model):
    words = ["quantization", "cache", "cache", "transformer"]
    sums = model.word_sums(["quantization", "cache", "transformer"])
    bag = embed.unit_rows((np.array([1.0, 2.0, 1.0]) @ sums)[None, :])
    np.testing.assert_allclose(bag, model.embed([" ".join(words)]), atol=1e-5)


def test_batches_give_the_same_vectors_as_one_text_at_a_time(model, monkeypatch):
    texts = [f"paper {i} on reinforcement learning and bandits" for i in range(7)]
    whole = model.embed(texts)
    monkeypatch.setattr(embed, "BATCH", 3)
    np.testing.assert_allclose(model.embed(texts), whole, atol=1e-6)


def _model2vec_folder(root: Path, embeddings: np.ndarray, **extra: np.ndarray) -> Path:
    vocab = {"[UNK]": 0, "bandit": 1, "regret": 2, "galaxy": 3}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    root.mkdir()
    tokenizer.save(str(root / "tokenizer.json"))
    save_file({"embeddings": embeddings, **extra}, str(root / "model.safetensors"))
    (root / "config.json").write_text(json.dumps({"normalize": True}))
    return root


def test_a_local_model2vec_folder_loads_with_its_name_and_a_weights_hash(tmp_path):
    table = np.array([[9, 9], [1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    folder = _model2vec_folder(tmp_path / "tiny-m2v", table)
    model = embed.load_model(str(folder))
    assert model.name.startswith("tiny-m2v-") and len(model.name) == len("tiny-m2v-") + 12
    vectors = model.embed(["bandit regret unknownword", "galaxy", "unknownword"])
    np.testing.assert_allclose(vectors[0], [2**-0.5, 2**-0.5], atol=1e-6)  # [UNK] dropped
    np.testing.assert_allclose(vectors[1], [-1, 0])
    assert not vectors[2].any()


def test_model2vec_token_weights_and_vocabulary_mapping_are_applied(tmp_path):
    table = np.array([[1, 0], [0, 1]], dtype=np.float32)
    folder = _model2vec_folder(
        tmp_path / "quantised",
        table,
        mapping=np.array([0, 0, 1, 1], dtype=np.int64),
        weights=np.array([1, 3, 1, 1], dtype=np.float32),
    )
    model = embed.load_model(str(folder))
    # bandit -> row 0 weighted 3, regret -> row 1 weighted 1
    expected = np.array([3, 1]) / np.sqrt(10)
    np.testing.assert_allclose(model.embed(["bandit regret"])[0], expected, atol=1e-6)


def test_a_folder_without_the_model_file_is_a_one_line_error(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "tokenizer.json").write_text("{}")
    with pytest.raises(ConfigError) as err:
        embed.load_model(str(tmp_path / "half"))
    assert str(err.value) == (
        f"ranking.embeddings: {tmp_path / 'half'}: no model.safetensors (a model2vec folder has both)"
    )


def test_a_folder_with_a_broken_model_file_is_a_one_line_error(tmp_path):
    folder = _model2vec_folder(tmp_path / "broken", np.eye(4, dtype=np.float32))
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError) as err:
        embed.load_model(str(folder))
    assert str(err.value).startswith(f"ranking.embeddings: cannot read the model in {folder}: ")
    assert "\n" not in str(err.value)


def test_a_tokenizer_from_another_model_is_a_one_line_error_not_a_crash(tmp_path):
    """Token ids past the end of the table were read from outside it: a segfault."""
    folder = _model2vec_folder(tmp_path / "mixed", np.eye(2, dtype=np.float32))  # 4 tokens
    with pytest.raises(ConfigError) as err:
        embed.load_model(str(folder))
    assert str(err.value) == (
        f"ranking.embeddings: {folder / 'tokenizer.json'}: a vocabulary of 4 tokens, but "
        "model.safetensors's 'embeddings' has 2 rows: the two files come from different models"
    )


def test_a_missing_extra_names_the_install_command(monkeypatch):
    real = embed.importlib.util.find_spec
    monkeypatch.setattr(
        embed.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "wordllama" else real(name, *a),
    )
    with pytest.raises(ValueError) as err:
        embeddings.check_spec("wordllama")
    assert str(err.value) == (
        "the semantic extra is not installed (missing wordllama): pip install 'paperwire[semantic]'"
    )
    with pytest.raises(ConfigError) as err:
        embed._load_bundled()
    assert str(err.value) == (
        "ranking.embeddings: the semantic extra is not installed (missing wordllama): "
        "pip install 'paperwire[semantic]'"
    )


def test_float16_blobs_round_trip_within_half_precision():
    vector = np.random.default_rng(0).normal(size=256).astype(np.float32)
    blob = embed.to_blob(vector)
    assert len(blob) == 512
    np.testing.assert_allclose(embed.from_blob(blob), vector, rtol=1e-3, atol=1e-3)


class CountingModel(embed.StaticModel):
    """The real model, counting the texts it embeds (to see what the store spared)."""

    embedded: int = 0

    def embed(self, texts):
        self.embedded += len(texts)
        return super().embed(texts)


def test_papers_are_embedded_once_and_again_when_text_or_model_changes(store, model):
    store.add_papers(
        [
            Paper("2611.00001", "Bandits", "Regret bounds.", url="u1", source="arxiv"),
            Paper("2611.00002", "Galaxies", "Lensing maps.", url="u2", source="arxiv"),
        ],
        now=NOW,
    )
    counting = CountingModel(model.name, model.vectors, model.tokenizer, model.unk_id)
    ids, texts = ["2611.00001", "2611.00002"], ["bandit regret", "galaxy lensing"]
    first = embed.paper_vectors(store, counting, ids, texts)
    assert counting.embedded == 2
    again = embed.paper_vectors(store, counting, ids, texts)
    assert counting.embedded == 2  # read back from the embeddings table
    np.testing.assert_allclose(again, first, atol=1e-3)
    stored = store.embeddings(ids)
    assert {pid: (m, len(blob)) for pid, (m, _, blob) in stored.items()} == {
        "2611.00001": ("wordllama-l2-supercat-256", 512),
        "2611.00002": ("wordllama-l2-supercat-256", 512),
    }
    embed.paper_vectors(store, counting, ids, ["bandit regret", "galaxy clusters"])
    assert counting.embedded == 3  # only the changed text
    counting.name = "another-model"
    embed.paper_vectors(store, counting, ids, ["bandit regret", "galaxy clusters"])
    assert counting.embedded == 5  # a model change re-embeds everything
    assert {m for m, _, _ in store.embeddings(ids).values()} == {"another-model"}


def _papers(store, n: int) -> tuple[list[str], list[str]]:
    """``n`` stored papers: their ids and texts as fetch encodes them."""
    ids = [f"2611.{i:05d}" for i in range(n)]
    titles = [f"bandit regret {i}" for i in range(n)]
    store.add_papers(
        [Paper(p, t, "", url=p, source="arxiv") for p, t in zip(ids, titles, strict=True)], now=NOW
    )
    return ids, [paper_text(t, "") for t in titles]


def test_a_damaged_vector_is_encoded_again_not_read(store, model, caplog):
    """A torn or hand-edited blob used to raise numpy's "buffer size must be a multiple of
    element size" in every digest, and no fetch repaired it."""
    ids, texts = _papers(store, 3)
    first = embed.paper_vectors(store, model, ids, texts)
    store.db.execute(
        "update embeddings set vector = substr(vector, 1, 101) where paper_id = ?", [ids[1]]
    )
    store.db.execute(
        "update embeddings set vector = substr(vector, 1, 100) where paper_id = ?", [ids[2]]
    )
    store.db.conn.commit()
    assert embed.refresh(store, model) == 2  # fetch's pass finds both
    for pid, (_, _, blob) in store.embeddings(ids).items():
        assert len(blob) == 2 * model.dim, pid
    store.db.execute("update embeddings set vector = x'00' where paper_id = ?", [ids[0]])
    store.db.conn.commit()
    store.db.execute("update embeddings set vector = null where paper_id = ?", [ids[1]])
    store.db.conn.commit()
    again = embed.paper_vectors(store, model, ids, texts)  # ... and so does a digest
    np.testing.assert_allclose(again, first, atol=1e-3)
    assert "2 stored paper vectors were damaged (wrong length): encoding again" in caplog.text
    # another model's vectors are another width, not damage
    caplog.clear()
    other = CountingModel("another-model", model.vectors[:, :8], model.tokenizer, model.unk_id)
    with caplog.at_level("INFO", logger="paperwire"):
        embed.paper_vectors(store, other, ids, texts)
    assert "damaged" not in caplog.text and "encoding 3 stored papers" in caplog.text
    # an interests text's vector too
    embed.text_vectors(store, model, ["bandit regret"])
    store.db.execute("update text_vectors set vector = x'0000'")
    store.db.conn.commit()
    np.testing.assert_allclose(
        embed.text_vectors(store, model, ["bandit regret"])[0],
        model.embed(["bandit regret"])[0],
        atol=1e-3,
    )


def test_papers_a_digest_must_encode_are_said_and_kept_batch_by_batch(
    store, model, monkeypatch, caplog
):
    """A digest over papers no fetch encoded (stored before the encoder was on) used to encode
    them all in one call, silently, and keep nothing if it was stopped."""
    ids, texts = _papers(store, 5)
    monkeypatch.setattr(embed, "REFRESH_BATCH", 2)
    calls = []

    class Interrupted(CountingModel):
        def embed(self, texts):
            calls.append(len(texts))
            if len(calls) == 3:
                raise KeyboardInterrupt  # Ctrl-C during the third batch
            return super().embed(texts)

    stopping = Interrupted(model.name, model.vectors, model.tokenizer, model.unk_id)
    with caplog.at_level("INFO", logger="paperwire"), pytest.raises(KeyboardInterrupt):
        embed.paper_vectors(store, stopping, ids, texts)
    assert f"encoding 5 stored papers no fetch has encoded with {model.name} yet" in caplog.text
    assert calls == [2, 2, 1]
    assert sorted(store.embeddings(ids)) == ids[:4]  # the two batches done are kept


def test_a_relative_model_folder_is_read_beside_the_config_file(tmp_path, monkeypatch):
    from paperwire.config import load_config

    home = tmp_path / "paperwire"
    (home / "models").mkdir(parents=True)
    folder = _model2vec_folder(home / "models" / "tiny", np.eye(4, dtype=np.float32))
    (home / "subscribers.yaml").write_text(
        "secret: s-test-signing-key\nranking:\n  embeddings: models/tiny\nsubscribers:\n  - id: ada\n"
        "    email: ada@example.org\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the daemon may be started from any folder
    config = load_config(home / "subscribers.yaml")
    assert config.ranking.embeddings == str(folder.resolve())
    assert embed.load_model(config.ranking.embeddings).name.startswith("tiny-")
    (home / "subscribers.yaml").write_text(
        "secret: s-test-signing-key\nranking:\n  embeddings: models/none\nsubscribers:\n  - id: ada\n"
        "    email: ada@example.org\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(home / "subscribers.yaml")
    assert str(home.resolve() / "models" / "none") in str(caught.value)
    assert ":3: ranking.embeddings:" in str(caught.value)


def test_fetch_says_when_the_model_cannot_be_read_without_v(tmp_path):
    """The stored papers not encoded is said by ``paperwire fetch`` itself, not only with -v:
    the command drops the log lines of feed errors it prints itself ("fetch: %s"), and this
    one was dropped with them."""
    import subprocess
    import sys

    folder = tmp_path / "models" / "potion"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)  # an interrupted copy
    (folder / "tokenizer.json").write_text("{}")
    feed = Path(__file__).parent / "fixtures" / "arxiv_rss_cs.xml"
    (tmp_path / "subscribers.yaml").write_text(
        f"feeds:\n  - url: {feed}\nranking:\n  embeddings: models/potion\n"
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
    )
    env = environ_without_paperwire()
    result = subprocess.run(
        [sys.executable, "-m", "paperwire", "fetch"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0  # the papers are stored; a digest encodes them or says why
    assert "60 new" in result.stdout
    assert (
        "ERROR paperwire: fetch: the stored papers were not encoded: ranking.embeddings: cannot "
        f"read the model in {folder.resolve()}:"
    ) in result.stderr


def test_two_threads_asking_for_a_corpus_s_vectors_at_once_encode_its_papers_once(
    store, model, monkeypatch
):
    # a daemon's threads share one session, as they share its corpus: the second waits for the
    # first's vectors rather than encoding the same new papers beside it
    import threading
    import time

    from paperwire.rank.session import RankingSession
    from paperwire.store import Store

    store.add_papers(
        [Paper("2611.00001", "Bandits", "Regret bounds.", url="u1", source="arxiv")], now=NOW
    )
    session = RankingSession()
    monkeypatch.setattr(session, "model", lambda spec: model)
    real, built = embed.paper_vectors, []

    def slow(*args, **kwargs):  # a corpus of new papers takes a while to encode
        built.append(threading.get_ident())
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(embed, "paper_vectors", slow)
    ids, texts, got = ["2611.00001"], ["bandit regret"], []

    def ask() -> None:
        with Store(store.path) as own:  # each thread its own connection, as the daemon's
            got.append(session.embedded(own, "wordllama", ids, texts))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(built) == 1
    assert len(got) == 2 and got[0] is got[1]


def test_a_session_reads_a_model_folder_pulled_again_while_it_runs(tmp_path, store):
    """``paperwire model pull --force`` renames a new folder into place; a daemon's session
    (kept across reloads) kept the old weights, and its fetches re-encoded the stored papers
    with them over the vectors a command had made with the new ones."""
    import os

    from paperwire.rank.session import RankingSession

    folder = _model2vec_folder(tmp_path / "potion", np.eye(4, dtype=np.float32))
    session = RankingSession()
    old = session.model(str(folder))
    assert session.model(str(folder)) is old  # loaded once
    store.add_papers([Paper("2611.00001", "bandit regret", "galaxy", url="u", source="a")])
    assert session.embed_stored(store, str(folder)) == 1
    new_folder = _model2vec_folder(
        tmp_path / ".potion.pull", np.eye(4, dtype=np.float32)[[3, 2, 1, 0]]
    )
    os.replace(folder, tmp_path / "old-potion")
    os.replace(new_folder, folder)
    new = session.model(str(folder))
    assert new.name != old.name and new.name.startswith("potion-")
    assert session.embed_stored(store, str(folder)) == 1  # now encoded with the new weights
    assert {m for m, _, _ in store.embeddings(["2611.00001"]).values()} == {new.name}
    assert session.embed_stored(store, str(folder)) == 0
