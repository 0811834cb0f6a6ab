"""Digests of a fixed store, held to a recorded reference: picks, order, scores and every reason's
words, and the e-mail (HTML and plain text) and Slack blocks they render to.

The store is the bundled sample feeds (as ``paperwire run --once`` fetches them) with readers
who have interests, config seeds, library seeds, votes, followed authors and phrase filters,
ranked three ways: with the default sentence encoder, with TF-IDF alone (the candidate Gram),
and with TF-IDF alone past the Gram's size (each pool's own cosines). A refactoring of the
ranking or the reasons' wording must leave all of it as it was; a deliberate change to ranking
rewrites the reference with ``WRITE_DIGEST_REFERENCE=1 pytest -n0 tests/test_digest_reference.py``
(or a path: the digests written there, whole, to compare byte for byte).

The encoder's vectors are recorded with the reference (``digest_reference_vectors.npz``): its
last bits follow the processor (ONNX Runtime sums in other orders with AVX2, AVX-512 and AMX,
and each layer's int8 rounding carries the difference on: cosine 0.9997 between two machines,
enough to swap two picks of equal merit), and this test holds ranking and wording to the
reference, not the CPU. test_encoder holds the live encoder to the recorded vectors.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from paperwire import digests, pipeline, render
from paperwire.config import parse_config
from paperwire.deliver.slack import digest_blocks
from paperwire.links import Links, Signer
from paperwire.rank import compose as digest
from paperwire.rank import encoder
from paperwire.store import Store

REFERENCE = Path(__file__).parent / "fixtures" / "digest_reference.json"
VECTORS = Path(__file__).parent / "fixtures" / "digest_reference_vectors.npz"
# the recorded vectors below, not conftest's per-worker cache of the live encoder's
pytestmark = pytest.mark.uncached_encoder
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

CONFIG = """\
feeds:
  - url: bundled:sample-arxiv-cs.xml
    name: arxiv-cs-sample
  - url: bundled:sample-hf-daily-papers.json
    name: hf-daily-sample
ranking:
  embeddings: {embeddings}
subscribers:
  - id: ada
    email: ada@example.org
    interests: "faster LLM inference: KV cache prefetching and compression, speculative decoding, pruning tokens in long contexts"
    seed_papers: ["{seed}"]
    follow_authors: ["{author}"]
    digest_size: 8
  - id: grace
    email: grace@example.org
    interests: "smaller, cheaper large language models: weight quantization, pruning and sparsity in LLMs, parameter-efficient fine-tuning"
    never_match: ["survey"]
    digest_size: 8
  - id: rag-team
    email: rag-team@example.org
    interests: "retrieval-augmented generation, dense retrieval and reranking of documents, answering questions from retrieved passages"
    must_match: ["retrieval", "RAG"]
    digest_size: 6
  - id: thumbs
    email: thumbs@example.org
    digest_size: 6
  - id: fay
    email: fay@example.org
    digest_size: 30
  - id: shelf
    email: shelf@example.org
    digest_size: 8
"""


def _papers_titled(store: Store, word: str, n: int) -> list[str]:
    rows = sorted(store.corpus(), key=lambda r: r["paper_id"])
    return [r["paper_id"] for r in rows if word in r["title"].lower()][:n]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def recorded() -> dict[str, tuple[str, np.ndarray]]:
    """The recorded vectors: text key -> (text, vector)."""
    kept = np.load(VECTORS)
    return {
        text_key(text): (text, vector)
        for text, vector in zip(kept["texts"].tolist(), kept["vectors"], strict=True)
    }


@pytest.fixture(scope="module")
def recorded_vectors():
    """The bundled encoder gives this module's texts their recorded vectors; with
    WRITE_DIGEST_REFERENCE=1 (the reference rewritten), the live encoder's for texts new to
    it, recorded for the next run (a path there writes digests only, ranked with the recorded
    vectors)."""
    writing = os.environ.get("WRITE_DIGEST_REFERENCE") == "1"
    if os.environ.get("WRITE_DIGEST_REFERENCE") and os.environ.get("PYTEST_XDIST_WORKER"):
        # worksteal can run this module's tests on two workers: each would write the files
        # with its own half of the texts and digests
        pytest.fail("WRITE_DIGEST_REFERENCE: run this file in one process (pytest -n0 …)")
    vectors = {} if writing else recorded()
    # rewritten, a text the reference had keeps its vector: the new one shows what the change
    # did, not what another CPU's last bits do
    kept = recorded() if writing and VECTORS.exists() else {}
    real_embed = encoder.SentenceEncoder.embed

    def embed(self, texts: list[str], batch: int = encoder.BATCH) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if not text.strip():
                continue  # a zero row, as the encoder gives
            if text_key(text) not in vectors:
                assert writing, f"no recorded vector for {text[:60]!r}: WRITE_DIGEST_REFERENCE=1"
                if text_key(text) in kept:
                    vectors[text_key(text)] = kept[text_key(text)]
                else:
                    vectors[text_key(text)] = (text, real_embed(self, [text], 1)[0])
            out[row] = vectors[text_key(text)][1]
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoder.SentenceEncoder, "embed", embed)
        yield
    if writing:
        texts = sorted(text for text, _ in vectors.values())
        np.savez_compressed(
            VECTORS,
            model=np.array(encoder.load().name),
            texts=np.array(texts),
            vectors=np.array([vectors[text_key(t)][1] for t in texts], dtype=np.float32),
        )


@pytest.fixture(scope="module")
def stocked(tmp_path_factory, recorded_vectors):
    """The sample feeds fetched a day before NOW, with every kind of reader signal."""
    path = tmp_path_factory.mktemp("reference") / "paperwire.db"
    feeds_only = CONFIG.split("ranking:")[0] + "subscribers: [{id: x, email: x@example.org}]\n"
    config = parse_config(feeds_only, env={})
    with Store(path) as store:
        pipeline.fetch_all(store, config, now=NOW - DAY)
        seed = _papers_titled(store, "cache", 1)[0]
        author = store.papers([_papers_titled(store, "attention", 1)[0]])
        first_author = next(iter(author.values()))["authors"][0]
        store.add_seeds("grace", _papers_titled(store, "quantiz", 3), origin="library.bib")
        for paper_id in _papers_titled(store, "retriev", 2):
            store.record_vote("rag-team", paper_id, 1, via="test", now=NOW - DAY)
        for paper_id in _papers_titled(store, "agent", 3):
            store.record_vote("thumbs", paper_id, 1, via="test", now=NOW - 2 * DAY)
        for paper_id in _papers_titled(store, "image", 2):
            store.record_vote("thumbs", paper_id, -1, via="test", now=NOW - DAY)
        store.record_vote("ada", _papers_titled(store, "decoding", 1)[0], 1, via="test", now=NOW)
        # a library of six: enough papers for the nearest-papers vote (rank/nearest.py)
        store.add_seeds("shelf", _papers_titled(store, "attention", 6), origin="library.bib")
    return path, seed, first_author


WAYS = {
    "encoder": ("minilm", None),
    "tfidf": ("off", None),
    "tfidf-without-gram": ("off", 0),
}


def _masked(text: str) -> str:
    """Signed tokens carry a timestamp: masked (in links and Slack button values), the rest of
    every link stays."""
    text = re.sub(r"/(?:v|u|p|feed|unsubscribe|profile)/[^\s\"'<>&)]+", "/TOKEN", text)
    return re.sub(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27}", "TOKEN", text)


def _composed(stocked, embeddings: str, monkeypatch) -> dict:
    path, seed, author = stocked
    config = parse_config(CONFIG.format(embeddings=embeddings, seed=seed, author=author), env={})
    signer = Signer("reference-secret")
    out = {}
    with Store(path) as store:
        for composed in digests.iter_compose(store, config, now=NOW, since=NOW - 3 * DAY):
            picks = composed.picks
            links = Links("https://papers.example.org", signer, composed.subscriber.id)
            ctx = render.context(
                subscriber_name=composed.subscriber.id,
                picks=picks,
                links=links,
                kind="digest",
                period="2026-11-23",
                since=composed.since,
            )
            mail = render.render_email(ctx, render.subject_for("digest", "2026-11-23", picks))
            out[composed.subscriber.id] = {
                "candidates": composed.candidates,
                "picks": [p.as_json() for p in picks],
                "html": _masked(mail.html),
                "text": _masked(mail.text),
                "slack": _masked(json.dumps(digest_blocks(ctx), ensure_ascii=False)),
            }
    return out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("way", list(WAYS))
def test_digests_read_as_the_reference(stocked, way, monkeypatch):
    embeddings, gram_limit = WAYS[way]
    if gram_limit is not None:
        monkeypatch.setattr(digest, "MAX_DENSE_SIMILARITY", gram_limit)
    got = _composed(stocked, embeddings, monkeypatch)
    written = os.environ.get("WRITE_DIGEST_REFERENCE")  # a path, or 1 for the reference
    if written:
        target = REFERENCE if written == "1" else Path(written)
        recorded = json.loads(target.read_text()) if target.exists() else {}
        recorded[way] = got
        target.write_text(json.dumps(recorded, indent=1, ensure_ascii=False, sort_keys=True))
    expected = json.loads(REFERENCE.read_text())[way]
    assert sorted(got) == sorted(expected)
    for sub, digest_got in got.items():
        want = expected[sub]
        assert [p["paper_id"] for p in digest_got["picks"]] == [
            p["paper_id"] for p in want["picks"]
        ], sub
        assert [p["reasons"] for p in digest_got["picks"]] == [
            p["reasons"] for p in want["picks"]
        ], sub
        # scores to 1e-4: another BLAS kernel sums a float32 product in another order (a Xeon's
        # AVX-512 and an EPYC's AVX2 gave grace a score that rounded apart at the 4th decimal)
        assert [p["score"] for p in digest_got["picks"]] == pytest.approx(
            [p["score"] for p in want["picks"]], abs=1e-4
        ), sub
        for part in ("candidates", "html", "text", "slack"):
            assert digest_got[part] == want[part], (sub, part)
