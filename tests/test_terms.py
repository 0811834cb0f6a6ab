"""paperwire.rank.terms: each paper's text analysed once and stored, on real arXiv abstracts."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from paperwire import digests as worded
from paperwire import pipeline
from paperwire.paper import Paper, paper_text
from paperwire.rank import core as rank
from paperwire.rank import terms, topics
from paperwire.rank.paper_phrases import key_phrases, key_phrases_many, key_phrases_of
from paperwire.rank.session import RankingSession
from paperwire.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def real_papers(n: int = 120) -> list[Paper]:
    """Real cs.* arXiv titles and abstracts (tests/fixtures/README.md)."""
    lines = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    out = []
    for i, line in enumerate(lines[:n]):
        item = json.loads(line)
        pid = f"2504.{i:05d}"
        out.append(Paper(pid, item["title"], item["abstract"], url=f"https://arxiv.org/abs/{pid}"))
    return out


@pytest.fixture
def config(make_config):
    return make_config(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "graph neural networks, recommendation"\n    digest_size: 5\n',
        env={"PAPERWIRE_SECRET": "k-test-signing-key"},
    )


def texts_of(store: Store) -> tuple[list[str], list[str]]:
    rows = store.corpus()
    return [r["paper_id"] for r in rows], [paper_text(r["title"], r["abstract"]) for r in rows]


def analysed_rows(store: Store) -> dict[str, tuple[str, str]]:
    return store.paper_terms_made()


def test_stored_analyses_are_what_the_hasher_and_key_phrases_give(store):
    store.add_papers(real_papers(), now=NOW)
    model = rank.TextModel()
    ids, texts = texts_of(store)
    assert terms.refresh(store, model) == len(ids)
    loaded = terms.load(store, model, ids, texts)
    direct = model.hasher.transform(texts)
    assert (loaded.counts != direct).nnz == 0
    assert np.array_equal(loaded.counts.indices, direct.indices)
    # the key phrases a reason may name are the ones found from the text itself
    model.fit_counts(direct)
    for i in range(0, len(ids), 7):
        keywords = ["neural networks", "Group recommendation"] if i % 2 else []
        stored = key_phrases_of(model, loaded.pairs(i), loaded.columns(i), keywords)
        fresh = key_phrases(model, texts[i], keywords)
        assert stored.texts == fresh.texts
        assert np.array_equal(stored.columns, fresh.columns)
        assert np.array_equal(stored.starts, fresh.starts)
    assert any(len(key_phrases(model, t).texts) >= 3 for t in texts)


def test_the_key_phrases_of_many_papers_at_once_are_each_papers_own(store):
    """ProfilePhrases judges the pairs of a run's new candidates in one pass
    (key_phrases_many): each paper gets what key_phrases_of gives it alone, with keywords or
    without, with hyphenated compounds, with no pairs at all."""
    store.add_papers(real_papers(), now=NOW)
    model = rank.TextModel()
    ids, texts = texts_of(store)
    texts = [*texts, "Long-context KV-cache compression for on-device LLMs", "", "a b"]
    analysed = terms.analyse(model, texts)
    model.fit_counts(model.hasher.transform(texts))
    keywords = [
        ["KV cache", "long-context inference"] if i % 5 == 0 else [] for i in range(len(texts))
    ]
    papers = [(analysed.pairs(i), analysed.columns(i), keywords[i]) for i in range(len(texts))]
    many = key_phrases_many(model, papers)
    assert len(many) == len(texts)
    assert any(len(phrases.texts) >= 3 for phrases in many)
    assert any("-" in t for phrases in many for t in phrases.texts)
    for (pairs, columns, words), found in zip(papers, many, strict=True):
        alone = key_phrases_of(model, pairs, columns, words)
        assert found.texts == alone.texts
        assert np.array_equal(found.columns, alone.columns) and found.columns.dtype == np.int64
        assert np.array_equal(found.starts, alone.starts) and found.starts.dtype == np.int64


def test_fetch_analyses_what_it_stored_and_a_run_reads_it_back(tmp_path, make_config):
    config = make_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\n    name: cs\n"
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "language models, retrieval"\n',
        env={"PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    with Store(tmp_path / "p.db") as store:
        report = pipeline.fetch_all(store, config, now=NOW)
        assert report.new > 0
        made = analysed_rows(store)
        name = terms.analyser(rank.TextModel())
        assert len(made) == store.count_papers() == report.new
        assert {a for a, _ in made.values()} == {name}
        # a run with everything analysed analyses nothing: it only reads the stored rows
        statements: list[str] = []
        store.db.conn.set_trace_callback(statements.append)
        corpus = RankingSession().corpus(store)
        store.db.conn.set_trace_callback(None)
        assert not [s for s in statements if "paper_terms" in s and "INSERT" in s.upper()]
        assert corpus.counts.shape[0] == report.new


def test_the_corpus_reads_texts_from_the_store_and_keeps_only_their_hashes(store):
    """The run's corpus holds no text (a year of abstracts is ~300 MB): each is read from the
    store when asked for, by position, slice or in order, and its hash is the one taken
    when the corpus was read; a paper updated since reads as it is now."""
    from paperwire.paper import text_hash

    papers = real_papers(1000)  # all 259
    # past one batch of 500 reads: the real papers again under other ids
    store.add_papers(
        papers
        + [Paper(f"9{k:03d}.{p.paper_id}", p.title, p.abstract) for k, p in enumerate(papers)],
        now=NOW,
    )
    ids, texts = texts_of(store)
    corpus = RankingSession().corpus(store)
    assert not any("abstract" in row for row in corpus.rows)
    stored = corpus.texts(store)
    assert len(stored) == len(texts) > 500
    assert list(stored) == texts
    assert stored[3] == texts[3] and stored[-2:] == texts[-2:]
    assert stored.many([7, 2, 7]) == [texts[7], texts[2], texts[7]]
    assert corpus.hashes == [text_hash(t) for t in texts]
    edited = papers[5]
    store.add_papers([Paper(edited.paper_id, edited.title, "A new abstract.", version=2)], now=NOW)
    row = ids.index(edited.paper_id)
    assert corpus.texts(store)[row] == paper_text(edited.title, "A new abstract.")
    assert corpus.hashes[row] == text_hash(texts[row])  # what the analyses were checked with


def test_the_profile_page_reads_the_stored_analyses_not_every_abstract(store, monkeypatch):
    """The profile page's corpus hashed every stored abstract again after each fetch (a year
    of papers: 55 s and 1.8 GiB in the daemon's web app); it reads the analyses, and gets the
    vectors hashing them gave."""
    from paperwire.web import profile

    store.add_papers(real_papers(60), now=NOW)
    terms.refresh(store)
    ids, texts = texts_of(store)
    model = rank.TextModel().fit(texts)
    hashed = model.transform(texts)

    def no_hashing(self, texts):
        raise AssertionError("the profile page hashed every stored text again")

    monkeypatch.setattr(rank.TextModel, "fit", no_hashing)
    monkeypatch.setattr(rank.TextModel, "transform", no_hashing)
    corpus = profile.corpus_model(store)
    assert corpus.rows == {p: i for i, p in enumerate(ids)}
    assert np.allclose(corpus.model.idf, model.idf)
    assert abs(corpus.matrix - hashed).max() < 1e-6


def test_an_edited_abstract_or_another_analyser_is_analysed_again(store):
    papers = real_papers(30)
    store.add_papers(papers, now=NOW)
    model = rank.TextModel()
    terms.refresh(store, model)
    before = analysed_rows(store)
    assert terms.refresh(store, model) == 0  # up to date: nothing to do

    # arXiv v2 with a new abstract: the merged paper's text changes, and so does its analysis
    edited = papers[3]
    v2 = Paper(edited.paper_id, edited.title, "A graph transformer for protein folding.",
               url=edited.url, version=2)  # fmt: skip
    store.add_papers([v2], now=NOW + dt.timedelta(days=1))
    assert terms.refresh(store, model) == 1
    after = analysed_rows(store)
    assert after[edited.paper_id] != before[edited.paper_id]
    ids, texts = texts_of(store)
    loaded = terms.load(store, model, ids, texts)
    row = ids.index(edited.paper_id)
    assert "protein folding" in loaded.pairs(row)
    assert (loaded.counts[row] != model.hasher.transform([texts[row]])).nnz == 0

    # rows another analyser made (an older paperwire, another scikit-learn) are not trusted,
    # even when their blobs fit together (here: every term in column 0)
    with store.atomic():
        store.db.execute(
            "update paper_terms set analyser = 'terms0-old', terms = zeroblob(length(terms))"
        )
    corpus = RankingSession().corpus(store)
    assert (corpus.counts != (model.hasher.transform(texts) > 0)).nnz == 0
    assert {a for a, _ in analysed_rows(store).values()} == {terms.analyser(model)}


def test_a_run_on_a_store_without_analyses_ranks_the_same_and_keeps_them(tmp_path, config):
    """A store written by a paperwire before this table: the first run analyses every paper
    and stores the analyses; the digest is the one the analyses read back give."""
    with Store(tmp_path / "p.db") as store:
        store.add_papers(real_papers(), now=NOW - dt.timedelta(hours=6))
        assert analysed_rows(store) == {}
        first = worded.compose(store, config, now=NOW)["ada"]
        assert len(analysed_rows(store)) == len(real_papers())
        again = worded.compose(store, config, now=NOW)["ada"]
    assert [p.paper_id for p in first.picks] == [p.paper_id for p in again.picks]
    assert [p.reasons for p in first.picks] == [p.reasons for p in again.picks]
    assert any("graph neural networks" in " ".join(p.reasons).lower() for p in first.picks)


def test_a_repeated_word_past_the_byte_count_is_stored_as_the_most_it_holds(store):
    flood = " ".join(["transformer"] * 300)
    store.add_papers([Paper("2611.00001", "A flood", flood, url="https://arxiv.org/abs/2611.00001")],
                     now=NOW)  # fmt: skip
    model = rank.TextModel()
    terms.refresh(store, model)
    ids, texts = texts_of(store)
    loaded = terms.load(store, model, ids, texts)
    col = model.columns(["transformer"])[0]
    assert loaded.counts[0, col] == terms.MAX_COUNT == 255
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        raw = db.execute("select counts from paper_terms").fetchone()[0]
    assert len(raw) == loaded.counts.nnz  # one byte a term


def test_a_full_disk_costs_the_cache_not_the_digest(tmp_path, config, caplog):
    """The analyses are a cache: a run that cannot store them (no page left in the database)
    ranks with what it analysed, says so in the log, and the next run with room stores them."""
    with Store(tmp_path / "p.db") as store:
        store.add_papers(real_papers(), now=NOW - dt.timedelta(hours=6))
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages}")  # not one page more
        with caplog.at_level("WARNING", logger="paperwire"):
            full = worded.compose(store, config, now=NOW)["ada"]
        assert analysed_rows(store) == {}
        assert (
            f"could not keep the analysed text of 120 papers: {store.path}: the disk is full"
            in (caplog.text)
        )
        store.db.execute("PRAGMA max_page_count = 1073741823")  # space freed
        roomy = worded.compose(store, config, now=NOW)["ada"]
        assert len(analysed_rows(store)) == 120
    assert [(p.paper_id, p.reasons) for p in full.picks] == [
        (p.paper_id, p.reasons) for p in roomy.picks
    ]
    assert len(full.picks) == 5


def test_a_damaged_analysis_is_made_again(store):
    store.add_papers(real_papers(10), now=NOW)
    model = rank.TextModel()
    terms.refresh(store, model)
    ids, texts = texts_of(store)
    with store.atomic():  # one byte of counts lost: the row no longer fits together
        store.db.execute("update paper_terms set counts = substr(counts, 2) where paper_id = ?",
                         [ids[4]])  # fmt: skip
    loaded = terms.load(store, model, ids, texts)
    assert (loaded.counts != model.hasher.transform(texts)).nnz == 0
    stored = store.paper_terms(terms.analyser(model))[ids[4]]
    assert len(stored[1]) == 4 * len(stored[2])  # and stored whole again


def test_a_stopping_daemon_ends_the_analysis_after_the_batch_in_hand(store, monkeypatch):
    """The first fetch after an upgrade may have a whole store to analyse: a shutdown must not
    wait for all of it. What is left is analysed by the next fetch or run."""
    store.add_papers(real_papers(30), now=NOW)
    monkeypatch.setattr(terms, "BATCH", 10)
    stop = threading.Event()
    batches = []
    real_analyse = terms.analyse

    def analyse_then_stop(model, texts):
        batches.append(len(texts))
        stop.set()  # the daemon is told to stop while the first batch is analysed
        return real_analyse(model, texts)

    monkeypatch.setattr(terms, "analyse", analyse_then_stop)
    assert terms.refresh(store, stop=stop) == 10
    assert batches == [10] and len(analysed_rows(store)) == 10
    monkeypatch.setattr(terms, "analyse", real_analyse)
    assert terms.refresh(store) == 20  # the next fetch finishes the job
    assert len(analysed_rows(store)) == 30


def test_a_locked_database_costs_one_busy_wait_not_one_per_batch(tmp_path, caplog, monkeypatch):
    """Another process holds the write lock (a long send, say): the run waits the busy timeout
    once, logs it, and ranks with what it analysed; it does not wait again for every batch."""
    db = tmp_path / "p.db"
    with Store(db) as store:
        store.add_papers(real_papers(40), now=NOW)
    monkeypatch.setattr(terms, "BATCH", 10)  # four batches
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held by another connection
    try:
        with Store(db, busy_timeout=0.3) as store, caplog.at_level("WARNING", logger="paperwire"):
            model = rank.TextModel()
            ids, texts = texts_of(store)
            loaded = terms.load(store, model, ids, texts)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    warnings = [r.getMessage() for r in caplog.records if "could not keep" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("could not keep the analysed text of 40 papers: ")
    assert "the database stayed locked" in warnings[0]
    assert (loaded.counts != model.hasher.transform(texts)).nnz == 0


def test_key_phrases_from_stored_pairs_are_those_the_text_gave_before_storing():
    """Golden: what 659d175's key_phrases (which split the text itself, every run) named
    for 60 real abstracts and three awkward texts (hyphenated compounds, accents, doubled
    whitespace, keywords with stray spaces). The stored pairs must name the same phrases, less
    those issue 27 leaves out: single words and phrases that name no topic (rank.topics)."""
    golden = json.loads((FIXTURES / "key_phrases_659d175.json").read_text())
    lines = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    items = [json.loads(line) for line in lines]
    texts = [paper_text(i["title"], i["abstract"]) for i in items]
    model = rank.TextModel().fit(texts)
    kept = 0
    for case in golden["cases"]:
        text = case["text"] if case["text"] is not None else texts[case["text_index"]]
        analysed = terms.analyse(model, [text])
        found = key_phrases_of(model, analysed.pairs(0), analysed.columns(0), case["keywords"])
        starts = case["starts"]
        topics_only = [
            i for i, t in enumerate(case["texts"])
            if len(re.split(r"[ -]", t)) > 1 and topics.is_topic(t, model.stop_words)
        ]  # fmt: skip
        assert found.texts == [case["texts"][i] for i in topics_only]
        columns = [case["columns"][starts[i] : starts[i + 1]] for i in topics_only]
        # since a two-word phrase must be the reader's as a pair, a source keyword of two words
        # keeps its pair's column first, as a written pair does (659d175 kept words, then pair)
        keywords = {" ".join(k.split()) for k in case["keywords"]}
        columns = [
            [c[2], c[0], c[1]] if case["texts"][i] in keywords and len(c) == 3 else c
            for i, c in zip(topics_only, columns, strict=True)
        ]
        assert found.columns.tolist() == [c for cols in columns for c in cols]
        assert found.starts.tolist() == np.r_[0, np.cumsum([len(c) for c in columns])].tolist()
        kept += len(found.texts)
    assert sum(len(case["texts"]) for case in golden["cases"]) == 424
    # the rest: "paper explores", "fine-grained", "self", "model size", "accurate outcomes",
    # "mechanism leads" (a subject and its verb: topics.RULES_VERSION 4) ...
    assert kept == 235
