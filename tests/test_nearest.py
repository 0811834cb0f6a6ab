"""Each candidate's nearest papers and the reader's vote of them (rank/nearest.py), on the
real encoder's vectors of real arXiv abstracts and through compose on a real SQLite store."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from paperwire.paper import paper_text
from paperwire.rank import compose, encoder
from paperwire.rank.embedded import EmbeddedCorpus
from paperwire.rank.nearest import NearestPapers, nearest, top_positive
from paperwire.rank.semantic import SemanticWeights
from paperwire.sources import parse_document

from .conftest import FIXTURES

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def _dot(matrix: np.ndarray):
    return lambda block: matrix[block] @ matrix.T


def test_the_nearest_papers_are_the_most_similar_others_best_first_ties_by_row():
    # small integers: every product exact, so equal ones are equal whatever the BLAS kernel
    x = np.random.default_rng(3).integers(-3, 4, size=(400, 8)).astype(np.float32)
    x[7] = x[5]  # copies: as near to 5 as 5 itself, and ties go to the lower row
    x[9] = x[5]
    rows = np.arange(len(x))
    for k in (4, 30):
        idx, weights = nearest(_dot(x), rows, len(x), k=k, threads=2)
        for row in rows:
            sims = x @ x[row]
            sims[row] = -np.inf
            expected = np.lexsort((np.arange(len(x)), -sims))[:k]
            positive = sims[expected] > 0
            assert idx[row][positive].tolist() == expected[positive].tolist()
            assert row not in idx[row][positive]
            # weights: the positive similarities as shares of their sum; none for the rest
            share = np.where(positive, sims[expected], 0)
            np.testing.assert_allclose(weights[row], share / share.sum(), rtol=1e-5, atol=1e-7)
        assert idx[5][:2].tolist() == [7, 9]
    # one thread or two, one block or many: the same lists
    one = nearest(_dot(x), rows, len(x), k=30, threads=1)
    assert np.array_equal(one[0], idx) and np.array_equal(one[1], weights)


def test_a_paper_with_fewer_similar_papers_than_asked_gets_those_only():
    # paper 1 is similar to 0 and 2 only (3 is its opposite): two neighbours, then nothing
    x = np.array([[1, 0.2], [1, 0], [1, -0.2], [-1, 0]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx, weights = nearest(_dot(x), np.array([1]), len(x), k=10)
    assert idx.shape == (1, 3)  # at most the other papers
    assert sorted(idx[0][:2].tolist()) == [0, 2] and weights[0][2] == 0
    np.testing.assert_allclose(weights[0][:2], [0.5, 0.5], rtol=1e-6)
    # TF-IDF's way: most similarities exactly 0, which rank nothing
    sims = np.zeros((2, 50), dtype=np.float32)
    sims[0, [3, 9, 4]] = [0.5, 0.5, 0.1]
    cols, values = top_positive(sims, 5)
    assert cols[0].tolist() == [3, 9, 4, 0, 0]
    np.testing.assert_array_equal(values[0], np.float32([0.5, 0.5, 0.1, 0, 0]))
    assert not values[1].any()


def test_a_paper_whose_similarities_are_nan_is_nobodys_neighbour_and_has_none():
    # a broken vector (NaN) makes its whole column and row NaN: it must rank nowhere, and the
    # bar read off every eighth column must not let it push a true neighbour out
    x = np.random.default_rng(5).normal(size=(300, 8)).astype(np.float32)
    x[16] = np.nan  # column 16 is one of the every-eighth columns the bar is read from
    clean = x.copy()
    clean[16] = 0  # what the others' lists must be: as if paper 16 were similar to nothing
    rows = np.arange(len(x))
    idx, weights = nearest(_dot(x), rows, len(x), k=10)
    expected = nearest(_dot(clean), rows, len(x), k=10)
    others = rows != 16
    assert not np.isnan(weights).any()
    assert np.array_equal(idx[others], expected[0][others])
    np.testing.assert_array_equal(weights[others], expected[1][others])
    assert not weights[16].any()  # no neighbours: every similarity of its row is NaN
    # the bar is read off columns 0 and 8: a NaN there, read as the largest, would raise it to
    # the best value and leave the second best out
    sims = np.zeros((1, 16), dtype=np.float32)
    sims[0, [0, 8, 3]] = [np.nan, 0.95, 0.7]
    cols, values = top_positive(sims, 2)
    assert cols[0].tolist() == [8, 3]
    np.testing.assert_array_equal(values[0], np.float32([0.95, 0.7]))


def test_an_infinite_similarity_gives_shares_not_nan():
    # a vector with an infinite component: its similarities are +inf or NaN, and no list may
    # carry a NaN weight into the votes (which would make a reader's whole row NaN)
    x = np.random.default_rng(8).normal(size=(60, 4)).astype(np.float32)
    x[7, 0] = np.inf
    idx, weights = nearest(_dot(x), np.arange(len(x)), len(x), k=5)
    assert np.isfinite(weights).all()
    assert np.all((weights >= 0) & (weights <= 1))


@pytest.fixture(scope="module")
def abstracts():
    """The real arXiv day's papers and the bundled encoder's vectors of them."""
    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    vectors = encoder.load().embed([paper_text(p.title, p.abstract) for p in papers])
    return papers, np.asarray(vectors, dtype=np.float32)


def test_a_readers_vote_is_theirs_alone_and_zero_without_papers(abstracts):
    _, vectors = abstracts
    rows = np.arange(len(vectors))
    graph = NearestPapers(lambda: [_dot(vectors)], 1, len(vectors), reference=rows, k=5)
    # ada's papers: the five nearest of paper 0, so paper 0's vote is the largest it can be
    idx, _ = nearest(_dot(vectors), np.array([0]), len(vectors), k=5)
    ada = idx[0]
    ones = np.ones(5, dtype=np.float32)
    alone = graph.votes(rows, [ada], [ones])
    assert alone[0, 0] == alone[0].max() > 0
    np.testing.assert_allclose(alone[0].mean(), 0, atol=1e-5)  # standardised per reader
    np.testing.assert_allclose(alone[0].std(), 1, atol=1e-4)
    # beside other readers, one with nothing: ada's numbers are the same to the bit
    bob = np.array([3, 17, 40])
    together = graph.votes(
        rows, [np.zeros(0, dtype=np.int64), ada, bob], [ones[:0], ones, ones[:3]]
    )
    assert np.array_equal(together[1], alone[0])
    assert not together[0].any()
    # standardised over the reference, not over the candidates asked about: the first 20
    # papers' votes are the same asked alone as among all 60 (a run's candidates depend on
    # who else is due; a reader's digest must not)
    np.testing.assert_array_equal(graph.votes(rows[:20], [ada], [ones])[0], alone[0, :20])
    # an older vote counts less: the vote of its neighbours falls
    fading = graph.votes(rows, [ada], [np.array([1, 1, 1, 1, 0.1], dtype=np.float32)])
    lists, _ = nearest(_dot(vectors), rows, len(vectors), k=5)
    near_last = np.flatnonzero((lists == ada[-1]).any(axis=1))
    assert len(near_last) and (fading[0, near_last] < alone[0, near_last]).all()


def test_the_vote_adds_to_compose_for_a_reader_with_seeds_and_not_for_one_without(
    store, make_config, monkeypatch
):
    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    store.add_papers(papers, now=NOW - dt.timedelta(hours=3))
    config = make_config(
        "subscribers:\n"
        # ada writes no interests: her six papers' vote has its whole weight; dee's, beside
        # her text, 6/16 of it (SemanticWeights.neighbour_evidence_prior)
        "  - id: ada\n    email: ada@example.org\n"
        f"    seed_papers: {[p.paper_id for p in papers[:6]]}\n"
        "  - id: bob\n    email: bob@example.org\n    interests: language models\n"
        "  - id: cy\n    email: cy@example.org\n    interests: language models\n"
        f"    seed_papers: {[p.paper_id for p in papers[:4]]}\n"
        "  - id: dee\n    email: dee@example.org\n    interests: language models\n"
        f"    seed_papers: {[p.paper_id for p in papers[:6]]}\n",
    )
    ids = [p.paper_id for p in papers]
    shipped = compose.score_matrix(store, config, None, ids, now=NOW)
    # the same run without the vote: the weights every run reads, switched for this test
    off = dataclasses.replace(SemanticWeights(), nearest=0.0)
    monkeypatch.setattr(EmbeddedCorpus.added, "__defaults__", (off, None))
    monkeypatch.setattr(EmbeddedCorpus.nearest_papers, "__defaults__", (off,))
    monkeypatch.setattr(EmbeddedCorpus.votes_nearest, "__defaults__", (off,))
    without = compose.score_matrix(store, config, None, ids, now=NOW)
    # ada's six seeds vote for the papers that have them among their nearest: those rise
    # above the rest (every other paper only moves by her mean vote, the same for all)
    lift = shipped[0] - without[0]
    seeds = set(range(6))
    vectors = encoder.load().embed([paper_text(p.title, p.abstract) for p in papers])
    lists, _ = nearest(_dot(np.asarray(vectors, dtype=np.float32)), np.arange(len(ids)), len(ids))
    near_seeds = [i for i in range(6, len(ids)) if seeds & set(lists[i].tolist())]
    others = [i for i in range(6, len(ids)) if i not in near_seeds]
    assert near_seeds and others
    assert np.median(lift[near_seeds]) > np.median(lift[others]) + 0.5
    # dee, with the same papers beside an interests text: the same vote at 6/16 of its weight
    beside = shipped[3] - without[3]
    np.testing.assert_allclose(beside, lift * 6 / 16, rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(shipped[1], without[1])  # bob has no paper: no vote
    # four papers are too few to vote with (SemanticWeights.nearest_min_papers)
    assert SemanticWeights().nearest_min_papers == 5
    np.testing.assert_array_equal(shipped[2], without[2])


def test_a_run_without_a_reader_who_can_vote_finds_no_nearest_papers(store, make_config):
    """Most readers of a new deployment have an interests text and a vote or two: their runs
    pay nothing for lists they cannot use."""
    from paperwire.rank.session import RankingSession

    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    store.add_papers(papers, now=NOW - dt.timedelta(hours=3))
    ids = [p.paper_id for p in papers]
    few = "  - id: cy\n    email: cy@example.org\n    interests: language models\n"
    session = RankingSession()
    config = make_config(f"subscribers:\n{few}    seed_papers: {ids[:4]}\n")
    compose.score_matrix(store, config, None, ids, now=NOW, session=session)
    embedded = session._embedded[2]
    assert embedded._nearest is None
    # a fifth paper: the run finds the lists
    config = make_config(f"subscribers:\n{few}    seed_papers: {ids[:5]}\n")
    compose.score_matrix(store, config, None, ids, now=NOW, session=session)
    assert session._embedded[2]._nearest is not None


def test_with_the_encoder_off_tfidf_s_nearest_papers_vote(store, make_config):
    """``ranking.embeddings: off`` has no encoder terms to carry the vote: TF-IDF's lists alone
    vote (rank.Weights.nearest), for readers with five seed and 👍 papers, and only theirs."""
    from paperwire.rank import core
    from paperwire.rank.session import RankingSession

    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    store.add_papers(papers, now=NOW - dt.timedelta(hours=3))
    ids = [p.paper_id for p in papers]
    config = make_config(
        "ranking:\n  embeddings: off\n"
        "subscribers:\n"
        "  - id: ada\n    email: ada@example.org\n    interests: language models\n"
        f"    seed_papers: {ids[:6]}\n"
        "  - id: bob\n    email: bob@example.org\n    interests: language models\n"
        "  - id: cy\n    email: cy@example.org\n    interests: language models\n"
        f"    seed_papers: {ids[:4]}\n",
    )
    # five nearest papers of these 60 (the shipped 40 would be most of them)
    w = dataclasses.replace(core.Weights(), nearest_papers=5)
    session = RankingSession()
    shipped = compose.score_matrix(store, config, None, ids, now=NOW, weights=w, session=session)
    off = dataclasses.replace(w, nearest=0.0)
    without = compose.score_matrix(store, config, None, ids, now=NOW, weights=off)
    # ada's six seeds vote for the papers that have them among their TF-IDF nearest
    corpus = session._corpus[1]
    lists = corpus.nearest_papers(w.nearest_papers)
    assert lists.k == 5
    rows = np.array([corpus.index[i] for i in ids])
    neighbours, _ = nearest(lambda block: (corpus.matrix[block] @ corpus.matrix.T).toarray(),
                            rows, len(corpus.ids), k=lists.k)  # fmt: skip
    seeds = {corpus.index[i] for i in ids[:6]}
    lift = shipped[0] - without[0]
    near_seeds = [c for c in range(6, len(ids)) if seeds & set(neighbours[c].tolist())]
    others = [c for c in range(6, len(ids)) if c not in near_seeds]
    assert near_seeds and others
    assert np.median(lift[near_seeds]) > np.median(lift[others]) + 0.3
    np.testing.assert_array_equal(shipped[1], without[1])  # bob has no paper: no vote
    np.testing.assert_array_equal(shipped[2], without[2])  # four papers are too few
    # a run where nobody can vote finds no lists
    quiet = RankingSession()
    few = make_config(
        "ranking:\n  embeddings: off\nsubscribers:\n"
        f"  - id: cy\n    email: cy@example.org\n    seed_papers: {ids[:4]}\n"
    )
    compose.score_matrix(store, few, None, ids, now=NOW, weights=w, session=quiet)
    assert not quiet._corpus[1]._nearest


def test_with_the_encoder_off_old_votes_vote_less_beside_an_interests_text():
    """Standardised per reader, the vote would undo its papers' decay: months-old 👍 count as
    the encoder's vote counts them (semantic.contrast_fades), not as on their day."""
    from paperwire.rank import core

    w = core.Weights()
    votes = [("", 1, NOW - dt.timedelta(days=1))] * 6
    fresh = core.Signals(interests="language models", votes=votes, seed_rows=[], vote_rows=[0] * 6)
    old = dataclasses.replace(fresh, votes=[("", 1, NOW - dt.timedelta(days=720))] * 6)
    alone = dataclasses.replace(old, interests="")
    assert compose._vote_fade(fresh, NOW, w) > 0.99
    assert compose._vote_fade(old, NOW, w) < 0.2
    assert compose._vote_fade(alone, NOW, w) == 1.0  # nothing newer to weigh them against
    rows, shares = core.labelled_rows(old, NOW, w)
    assert len(rows) == 6 and np.allclose(shares, 0.5**4)
    # a 👎 is not one of the reader's papers: it never votes
    downs = dataclasses.replace(fresh, votes=[("", -1, NOW)] * 3 + votes[:3])
    rows, _ = core.labelled_rows(downs, NOW, w)
    assert len(rows) == 3


def test_with_the_encoder_off_the_vote_fades_counts_no_thumbs_down_and_is_each_readers_own(
    store, make_config, monkeypatch
):
    """Through compose with the encoder off: 👍 two years old vote a quarter as much beside an
    interests text as yesterday's, 👎 never vote, and a reader's scores are the same scored
    alone, in chunks of one on the scoring threads, or beside the others."""
    from paperwire.rank import core

    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    store.add_papers(papers, now=NOW - dt.timedelta(days=800))
    ids = [p.paper_id for p in papers]
    for sid, days, value in (("new", 1, 1), ("old", 720, 1), ("downs", 1, -1)):
        for paper_id in ids[:6]:
            store.record_vote(sid, paper_id, value, via="test", now=NOW - dt.timedelta(days=days))
    readers = "".join(
        f"  - id: {sid}\n    email: {sid}@example.org\n    interests: language models\n"
        for sid in ("new", "old", "downs")
    )
    config = make_config(f"ranking:\n  embeddings: off\nsubscribers:\n{readers}")
    w = dataclasses.replace(core.Weights(), nearest_papers=5)
    shipped = compose.score_matrix(store, config, None, ids, now=NOW, weights=w)
    without = compose.score_matrix(
        store, config, None, ids, now=NOW, weights=dataclasses.replace(w, nearest=0.0)
    )
    lift = shipped - without
    signals = compose.subscriber_signals(store, config.subscribers, {})
    new, old = (compose._vote_fade(s, NOW, w) for s in signals[:2])
    assert new > 0.99 and old < 0.3
    # the same six papers, standardised: the same vote, in the measure its fade leaves
    assert np.ptp(lift[0]) > 1
    np.testing.assert_allclose(lift[1], lift[0] * old / new, atol=1e-4)
    np.testing.assert_array_equal(lift[2], 0)  # six 👎: nothing to vote with
    # chunks of one reader, two of them scored at once on the scoring threads
    monkeypatch.setattr(compose, "SUBSCRIBER_CHUNK", 1)
    np.testing.assert_array_equal(
        compose.score_matrix(store, config, None, ids, now=NOW, weights=w), shipped
    )
    alone = compose.score_matrix(store, config, config.subscribers[1:2], ids, now=NOW, weights=w)
    np.testing.assert_array_equal(alone[0], shipped[1])
