"""rank: profiles move with votes, decay ages them, explanations name the paper's own terms."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from paperwire.rank import core as rank
from paperwire.rank import hashing
from paperwire.rank.paper_phrases import key_phrases

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)

# Two papers on each of six subjects, so "similar" has a meaning.
CORPUS = [
    "KV cache quantization for long context LLM inference on GPUs",
    "Compressing the KV cache of transformer inference with low-bit quantization",
    "Retrieval augmented generation with dense passage retrieval for question answering",
    "Improving retrieval augmented generation by reranking retrieved passages",
    "Protein structure prediction with deep learning and multiple sequence alignments",
    "Protein folding dynamics simulated with coarse grained molecular models",
    "Galaxy cluster masses from weak gravitational lensing surveys",
    "Weak lensing maps of dark matter around galaxy clusters",
    "Smart contract vulnerabilities on the Ethereum blockchain",
    "Detecting fraud in blockchain transactions with graph analysis",
    "Multi-armed bandit algorithms with regret bounds for recommendation",
    "Thompson sampling for contextual multi-armed bandit problems",
]
KV, RAG, PROTEIN, GALAXY, CHAIN, BANDIT = 0, 2, 4, 6, 8, 10


@pytest.fixture(scope="module")
def model() -> rank.TextModel:
    return rank.TextModel().fit(CORPUS)


@pytest.fixture(scope="module")
def corpus(model) -> sp.csr_matrix:
    return model.transform(CORPUS)


def scores_for(model, corpus, signals, weights=None, popularity=None) -> np.ndarray:
    weights = weights or rank.Weights()
    profiles = rank.build_profiles_from_signals(model, signals, corpus, NOW, weights)
    return rank.score(profiles, corpus, popularity, weights)


def vote(i: int, sign: int, days_ago: float = 0) -> tuple[str, int, dt.datetime]:
    return (CORPUS[i], sign, NOW - dt.timedelta(days=days_ago))


def test_transform_rows_are_unit_length_and_columns_match_the_hasher(model):
    matrix = model.transform(CORPUS)
    assert np.allclose(sp.linalg.norm(matrix, axis=1), 1.0)
    tokens = model.tokens(CORPUS[KV])
    direct = model.hasher.transform([CORPUS[KV]])
    assert set(model.columns(tokens)) == set(direct.indices)


def test_interests_text_ranks_its_subject_first(model, corpus):
    scores = scores_for(model, corpus, [rank.Signals(interests="galaxy clusters, weak lensing")])
    assert set(rank.top_k(scores, 2)[0]) == {GALAXY, GALAXY + 1}


def test_a_thumbs_up_raises_similar_papers(model, corpus):
    base = rank.Signals(interests="protein structure prediction")
    before = scores_for(model, corpus, [base])[0]
    after = scores_for(model, corpus, [replace(base, votes=[vote(RAG, +1)])])[0]
    # The other retrieval paper gains on the protein papers it was behind.
    assert before[RAG + 1] < before[PROTEIN + 1]
    assert after[RAG + 1] - after[PROTEIN + 1] > before[RAG + 1] - before[PROTEIN + 1]
    assert after[RAG + 1] > after[GALAXY]


def test_a_thumbs_down_lowers_similar_papers(model, corpus):
    # TF-IDF as it ranks alone (the encoder off): the vote at its whole weight; beside the
    # encoder a first vote's Rocchio share is 1/41 and its neighbours fall by the encoder's
    # contrast (test_semantic's first-vote test)
    alone = rank.Weights(evidence_prior=0)
    base = rank.Signals(interests="blockchain fraud detection, smart contracts, graph analysis")
    before = scores_for(model, corpus, [base], alone)[0]
    after = scores_for(model, corpus, [replace(base, votes=[vote(CHAIN, -1)])], alone)[0]
    # Relative to an unrelated paper, the disliked paper's twin drops.
    assert after[CHAIN + 1] - after[GALAXY] < before[CHAIN + 1] - before[GALAXY]
    assert after[CHAIN] - after[GALAXY] < before[CHAIN] - before[GALAXY]


def test_decay_halves_a_vote_every_half_life():
    assert rank.decay_factor(0, 120) == pytest.approx(1.0)
    assert rank.decay_factor(120, 120) == pytest.approx(0.5)
    assert rank.decay_factor(360, 120) == pytest.approx(0.125)
    assert rank.decay_factor(-5, 120) == pytest.approx(1.0)  # a clock skew is not a bonus


def test_an_old_like_counts_less_than_a_fresh_one(model, corpus):
    weights = rank.Weights(half_life_days=30)
    fresh_bandit = [vote(BANDIT, +1, days_ago=0), vote(GALAXY, +1, days_ago=365)]
    fresh_galaxy = [vote(BANDIT, +1, days_ago=365), vote(GALAXY, +1, days_ago=0)]
    a = scores_for(model, corpus, [rank.Signals(votes=fresh_bandit)], weights)[0]
    b = scores_for(model, corpus, [rank.Signals(votes=fresh_galaxy)], weights)[0]
    assert a[BANDIT + 1] > a[GALAXY + 1]
    assert b[GALAXY + 1] > b[BANDIT + 1]


def test_every_subscriber_is_scored_in_one_matrix(model, corpus):
    signals = [
        rank.Signals(interests="KV cache quantization"),
        rank.Signals(interests="multi-armed bandits"),
        rank.Signals(),
    ]
    scores = scores_for(model, corpus, signals)
    assert scores.shape == (3, len(CORPUS))
    assert rank.top_k(scores[:1], 1)[0] in ([KV], [KV + 1])
    assert rank.top_k(scores[1:2], 1)[0] in ([BANDIT], [BANDIT + 1])


def test_a_subscriber_with_no_data_gets_the_popular_papers(model, corpus):
    upvotes = [None] * len(CORPUS)
    upvotes[PROTEIN] = 80
    upvotes[CHAIN] = 3
    upvotes[RAG] = 20
    prior = rank.popularity_prior(upvotes)
    scores = scores_for(model, corpus, [rank.Signals()], popularity=prior)
    assert rank.top_k(scores, 2)[0] == [PROTEIN, RAG]
    # Papers no source counted are neutral, between the popular and the unpopular.
    assert scores[0, CHAIN] < scores[0, GALAXY] < scores[0, RAG]


def test_popularity_prior_is_neutral_without_counts():
    assert rank.popularity_prior([None, None, None]).tolist() == [0.0, 0.0, 0.0]
    assert rank.popularity_prior([]).shape == (0,)


def test_the_classifier_takes_over_from_enough_likes_where_a_run_allows_it(model, corpus):
    weights = rank.Weights(classifier_min_likes=3, classifier_max_subscribers=200)
    few = rank.Signals(votes=[vote(KV, +1), vote(RAG, +1)], corpus_rows=[KV, RAG])
    many = rank.Signals(
        votes=[vote(KV, +1), vote(KV + 1, +1), vote(RAG, +1)], corpus_rows=[KV, KV + 1, RAG]
    )
    profiles = rank.build_profiles_from_signals(model, [few, many], corpus, NOW, weights)
    assert profiles.used_classifier.tolist() == [False, True]
    scores = rank.score(profiles, corpus, None, weights)
    assert scores[1, RAG + 1] > max(scores[1, [PROTEIN, GALAXY, CHAIN, BANDIT]])
    # shipped: no run fits one (the sentence encoder's profile does that work for everyone)
    shipped = rank.build_profiles_from_signals(model, [few, many], corpus, NOW, rank.Weights())
    assert shipped.used_classifier.tolist() == [False, False]


def test_the_classifier_without_scikit_learn_says_what_to_install(model, corpus, monkeypatch):
    # scikit-learn is the benchmarks' extra, not everyone's install: a run that asks for the
    # classifier without it is told which extra brings it, not a bare ImportError
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)  # import fails
    weights = rank.Weights(classifier_min_likes=3, classifier_max_subscribers=200)
    many = rank.Signals(
        votes=[vote(KV, +1), vote(KV + 1, +1), vote(RAG, +1)], corpus_rows=[KV, KV + 1, RAG]
    )
    with pytest.raises(RuntimeError, match=r"pip install 'paperwire\[bench\]'"):
        rank.build_profiles_from_signals(model, [many], corpus, NOW, weights)
    # the shipped weights fit no classifier, so nothing imports it
    rank.build_profiles_from_signals(model, [many], corpus, NOW, rank.Weights())


def test_scores_are_calibrated_to_the_subscribers_corpus_average(model, corpus):
    profiles = rank.build_profiles_from_signals(
        model, [rank.Signals(interests="protein folding")], corpus, NOW
    )
    scores = rank.score(profiles, corpus)[0]
    assert scores.mean() == pytest.approx(0.0, abs=1e-5)
    assert scores.std() == pytest.approx(1.0, rel=1e-4)


def test_explanations_name_terms_of_the_paper(model, corpus):
    signals = rank.Signals(interests="KV cache compression and quantization for LLM inference")
    profiles = rank.build_profiles_from_signals(model, [signals], corpus, NOW)
    for paper in (KV, KV + 1):
        terms = rank.explain(model, profiles.matrix[0], CORPUS[paper])
        assert terms, "a matching paper should have reasons"
        assert len(terms) <= 3
        lowered = CORPUS[paper].lower()
        assert all(term in lowered for term in terms), terms
    assert "cache" in " ".join(rank.explain(model, profiles.matrix[0], CORPUS[KV]))
    # A paper sharing nothing with the profile gets no term reasons.
    assert rank.explain(model, profiles.matrix[0], CORPUS[GALAXY]) == []


def test_similar_liked_names_the_closest_liked_paper(model, corpus):
    liked = corpus[[GALAXY, BANDIT]]
    assert rank.similar_liked(corpus[BANDIT + 1], liked) == 1
    assert rank.similar_liked(corpus[PROTEIN], liked) is None


def test_top_k_respects_allowed_columns():
    scores = np.array([[0.9, 0.8, 0.7, 0.1]])
    allowed = np.array([[False, True, True, False]])
    assert rank.top_k(scores, 3, allowed) == [[1, 2]]


def test_top_k_breaks_ties_by_the_later_column_whatever_the_partition_does():
    """Equal scores go newest (the later candidate) first, in the pool and at its edge, the
    same as a full sort by (score, column): rows of many ties, ties at the k-th place, NaN
    (no score) and rows with fewer allowed columns than k, checked against that sort."""
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 6, size=(300, 500)).astype(np.float32)  # ties everywhere
    scores[0] = 1.0  # a blank reader: every score equal
    scores[1, ::3] = np.nan
    allowed = rng.random(scores.shape) > 0.1
    allowed[0] = True
    allowed[2] = False
    allowed[3, :] = False
    allowed[3, [5, 9, 400]] = True
    scores[3, [5, 9, 400]] = [2, 2, 3]
    got = rank.top_k(scores, 30, allowed, block=64)

    def by_full_sort(row: int) -> list[int]:
        cols = [c for c in range(scores.shape[1]) if allowed[row, c]]
        cols = [c for c in cols if not np.isnan(scores[row, c])]
        return sorted(cols, key=lambda c: (-scores[row, c], -c))[:30]

    assert got == [by_full_sort(row) for row in range(len(scores))]
    assert got[0] == list(range(499, 469, -1))
    assert got[2] == [] and got[3] == [400, 9, 5]


@pytest.mark.parametrize("k", [1, 3, 30, 299, 300])
def test_best_columns_is_a_full_sort_by_score_then_the_later_column(k):
    """Each row's k best columns, checked against a full sort: the rows a partition of the
    values settles (exactly k at or above the k-th score) and those it leaves to a partition
    of the indices (ties at the k-th score, NaN, -inf, +inf) alike; a NaN is no score, so it
    ties with -inf. Past the last finite score, which -inf columns fill the k is the
    partition's (top_k drops them: not allowed)."""
    rng = np.random.default_rng(k)
    scores = rng.standard_normal((200, 300)).astype(np.float32)
    scores[100:] = np.round(scores[100:])  # ties everywhere
    scores[rng.random(scores.shape) < 0.03] = np.nan
    scores[rng.random(scores.shape) < 0.03] = -np.inf
    scores[rng.random(scores.shape) < 0.01] = np.inf
    scores[5] = np.nan
    scores[6] = -np.inf
    scores[7, :] = 2.0
    got = rank.best_columns(scores, k)

    for row, best in zip(scores.tolist(), got.tolist(), strict=True):
        value = [-np.inf if np.isnan(v) else v for v in row]
        by_full_sort = sorted(range(len(row)), key=lambda c: (-value[c], -c))[:k]
        assert len(best) == len(set(best)) == k
        assert [c for c in best if value[c] > -np.inf] == [
            c for c in by_full_sort if value[c] > -np.inf
        ]


def test_best_columns_gives_what_a_partition_of_the_indices_gives():
    """The partition of the values settles most rows; every row comes out as the partition of
    the indices (which it replaced) made it, a NaN tied with -inf at the k-th place too."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        scores = rng.integers(-3, 4, size=rng.integers(1, 20, size=2)).astype(np.float32)
        scores[rng.random(scores.shape) < 0.1] = np.nan
        scores[rng.random(scores.shape) < 0.1] = -np.inf
        k = int(rng.integers(1, scores.shape[1] + 1))
        assert np.array_equal(
            rank.best_columns(scores, k), rank._best_columns_partitioned(scores, k)
        )


def test_mmr_skips_a_near_duplicate(model):
    texts = [
        "KV cache quantization for long context LLM inference",
        "KV cache quantization for long context LLM inference on GPUs",
        "Thompson sampling for contextual multi-armed bandit problems",
        "Weak lensing maps of dark matter around galaxy clusters",
    ]
    vectors = model.transform(texts)
    scores = np.array([1.0, 0.99, 0.9, 0.2])
    assert rank.top_k(scores[None, :], 2)[0] == [0, 1]
    assert rank.mmr([0, 1, 2, 3], scores, vectors, 2, lam=0.5) == [0, 2]
    assert rank.mmr([0, 1, 2, 3], scores, vectors, 2, lam=1.0) == [0, 1]


@pytest.mark.parametrize("not_interested", ["", "protein structure, graph networks"])
def test_rocchio_from_corpus_rows_equals_rocchio_from_texts(not_interested):
    """digest's fast path (stored papers as corpus rows) and the evaluation's path (texts)
    build the same profiles: one weighting rule, two inputs (and a batch of texts whose rows
    are each reader's interests, then topics not wanted, reader after reader)."""
    texts = [
        "kv cache compression for long context inference",
        "quantization of large language model weights to four bits",
        "speculative decoding with a small draft model",
        "retrieval augmented generation with dense retrievers",
        "protein structure prediction with graph networks",
    ]
    model = rank.TextModel().fit(texts)
    corpus = model.transform(texts)
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    votes = [
        (texts[1], 1, now - dt.timedelta(days=30)),
        (texts[4], -1, now - dt.timedelta(days=400)),
    ]
    by_text = rank.Signals(
        interests="kv cache memory",
        not_interested=not_interested,
        seed_texts=[texts[2]],
        votes=votes,
    )
    by_rows = rank.Signals(
        interests="kv cache memory",
        not_interested=not_interested,
        votes=[("", v, w) for _, v, w in votes],
        seed_rows=[2],
        vote_rows=[1, 4],
    )
    only_text = rank.Signals(not_interested="speculative decoding")
    only_rows = rank.Signals(not_interested="speculative decoding", seed_rows=[], vote_rows=[])
    weights = rank.Weights(classifier_min_likes=10**6)  # Rocchio rows only
    a = rank.build_profiles_from_signals(
        model, [by_text, rank.Signals(), only_text], corpus, now, weights
    )
    b = rank.build_profiles_from_signals(
        model, [by_rows, rank.Signals(seed_rows=[], vote_rows=[]), only_rows], corpus, now, weights
    )
    assert b.mix is not None  # the batch path, not the per-reader one
    assert a.matrix.nnz > 0 and a.matrix[2].nnz > 0
    assert np.allclose(a.matrix.toarray(), b.matrix.toarray(), atol=1e-6)
    assert np.allclose(a.offset, b.offset, atol=1e-6)
    # the text pulls the other way: speculative decoding is the one paper scored lowest
    assert np.argmin(rank.score(b, corpus)[2]) == 2
    assert list(a.nothing_liked) == list(b.nothing_liked) == [False, True, True]
    if not_interested:  # and it lowers the protein paper for the reader who wrote it
        plain = replace(by_rows, not_interested="")
        c = rank.build_profiles_from_signals(model, [plain], corpus, now, weights)
        assert rank.score(b, corpus)[0, 4] < rank.score(c, corpus)[0, 4]


def _row_signals() -> list[rank.Signals]:
    """Readers as digest builds them (stored papers as corpus rows): interests only, votes
    only, seeds and votes of both signs, and nothing at all."""
    ago = [NOW - dt.timedelta(days=d) for d in (1, 20, 200)]
    return [
        rank.Signals(interests="KV cache quantization, LLM inference", seed_rows=[], vote_rows=[]),
        rank.Signals(votes=[("", 1, ago[0]), ("", 1, ago[1])], seed_rows=[], vote_rows=[2, 3]),
        rank.Signals(
            interests="weak lensing",
            votes=[("", 1, ago[0]), ("", -1, ago[2])],
            seed_rows=[10],
            vote_rows=[6, 9],
        ),
        rank.Signals(seed_rows=[], vote_rows=[]),
        rank.Signals(not_interested="weak lensing, dark matter", seed_rows=[], vote_rows=[]),
        rank.Signals(
            interests="speculative decoding",
            not_interested="protein folding",
            votes=[("", 1, ago[1])],
            seed_rows=[],
            vote_rows=[4],
        ),
    ]


def test_the_candidate_gram_scores_what_the_sparse_product_scores(model, corpus):
    weights = rank.Weights(classifier_min_likes=10**6)  # Rocchio rows: what the Gram serves
    profiles = rank.build_profiles_from_signals(model, _row_signals(), corpus, NOW, weights)
    candidates = np.array([0, 1, 4, 5, 7, 8, 11])  # voted papers 2, 3, 6, 9, 10 are not
    gram = rank.CandidateGram(corpus, candidates, block=3)  # blocks of 3: rows added in parts
    assert profiles.mix is not None
    papers = corpus[candidates]
    prior = rank.popularity_prior([5, None, 80, 0, 12, None, 3])
    expected = rank.score(profiles, papers, prior, weights)
    got = rank.score(profiles, papers, prior, weights, gram)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.abs(expected).max() > 1  # scores in standard deviations, not all zero
    # the candidates' own block is their cosines, and dots() reads any stored paper's
    np.testing.assert_allclose(gram.candidates, (papers @ papers.T).toarray(), atol=1e-6)
    dots = gram.dots([6, 0], [2, 5])
    np.testing.assert_allclose(dots, (papers[[2, 5]] @ corpus[[6, 0]].T).toarray(), atol=1e-6)


def test_calibration_through_the_sample_gram_equals_the_sample_product(model, corpus):
    weights = rank.Weights(classifier_min_likes=10**6)
    signals = _row_signals()
    plain = rank.build_profiles_from_signals(model, signals, corpus, NOW, weights)
    sample = rank.CandidateGram(corpus, rank.calibration_rows(corpus))
    fast = rank.build_profiles_from_signals(model, signals, corpus, NOW, weights, sample)
    np.testing.assert_allclose(fast.matrix.toarray(), plain.matrix.toarray(), rtol=1e-5)
    np.testing.assert_allclose(fast.offset, plain.offset, rtol=1e-5, atol=1e-7)
    for got, expected in zip(fast.mix, plain.mix, strict=True):
        np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-5)
    # standardised: every reader with a signal has unit spread over the sample
    spread = (corpus @ fast.matrix.T).toarray().std(axis=0)
    np.testing.assert_allclose(spread[:3], 1.0, rtol=1e-5)
    assert fast.matrix[3].nnz == 0


def test_mmr_many_chooses_what_mmr_chooses_row_by_row():
    rng = np.random.default_rng(7)
    n = 40
    vectors = rng.random((n, 6))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = (vectors @ vectors.T).astype(np.float32)
    scores = rng.normal(size=(6, n)).astype(np.float32)
    scores[3, :] = 1.5  # a flat row: no spread, every paper equally relevant
    scores[4, [0, 1]] = [2.0, 2.0]  # a tie at the top
    pools = [
        list(rng.permutation(n)[:30]),
        [5, 9, 1],  # fewer than the digest size
        [7],  # one: taken as it is
        list(range(0, 30, 2)),
        [1, 0, 2, 3, 4, 5],
        [],
    ]
    sizes = [10, 10, 10, 5, 3, 10]
    similarity = _Float16(cosines)
    expected = [
        rank.mmr(pool, scores[row], None, sizes[row], 0.7, similarity=similarity)
        for row, pool in enumerate(pools)
    ]
    assert rank.mmr_many(pools, scores, sizes, 0.7, similarity) == expected
    assert [len(c) for c in expected] == [10, 3, 1, 5, 3, 0]
    unchanged = [pool[:k] for pool, k in zip(pools, sizes, strict=True)]
    assert rank.mmr_many(pools, scores, sizes, 1.0, similarity) == unchanged  # no diversity


def test_each_pools_own_cosines_are_the_runs_gram_to_the_bit():
    # past MAX_DENSE_SIMILARITY candidates a run keeps no Gram: each pool's cosines are made
    # apart, and a reader must get the digest a smaller run would have given them
    rng = np.random.default_rng(8)
    dense = rng.random((120, 4000)) * (rng.random((120, 4000)) < 0.02)
    vectors = sp.csr_matrix(dense.astype(np.float32))
    vectors = sp.csr_matrix(vectors.multiply(1 / np.sqrt(vectors.multiply(vectors).sum(axis=1))))
    vectors.sort_indices()
    gram = rank.CandidateGram(vectors, np.arange(120))
    pools = [list(rng.permutation(120)[:30]), [5, 9, 1], [], list(range(0, 60, 2)), [3]]
    own = rank.pool_cosines(vectors, pools)
    assert own.shape == (5, 30, 30) and own.dtype == np.float16
    for k, pool in enumerate(pools):
        want = gram.candidates[np.ix_(pool, pool)].astype(np.float16)
        np.testing.assert_array_equal(own[k, : len(pool), : len(pool)], want)
        assert not own[k, len(pool) :].any() and not own[k, :, len(pool) :].any()
    assert own[0].any() and own[1].any()  # not a matrix of zeros that matches zeros
    sizes = [10, 10, 10, 10, 10]
    scores = rng.normal(size=(5, 120)).astype(np.float32)
    with_gram = rank.mmr_many(pools, scores, sizes, 0.7, _Float16(gram.candidates))
    assert rank.mmr_many(pools, scores, sizes, 0.7, None, vectors) == with_gram


class _Float16:
    """Cosines as digest hands them to MMR (float16 on reading)."""

    def __init__(self, cosines):
        self.cosines = cosines

    def __getitem__(self, key):
        return self.cosines[key].astype(np.float16)


def test_key_phrases_are_the_same_once_the_column_cache_is_full(model, monkeypatch):
    text = (
        "We compress the KV cache, long-context inference stays accurate; state-of-the-art "
        "speculative decoding and low-bit quantization (GPTQ) cut memory footprint greatly."
    )
    first = key_phrases(model, text, ["KV cache", "speculative decoding"])
    again = key_phrases(model, text, ["KV cache", "speculative decoding"])  # cached
    monkeypatch.setattr(hashing, "COLUMN_CACHE", 0)
    fresh = rank.TextModel()
    fresh.idf = model.idf
    uncached = key_phrases(fresh, text, ["KV cache", "speculative decoding"])
    assert fresh.hasher._columns == {}  # nothing was remembered
    for got in (again, uncached):
        assert got.texts == first.texts
        assert got.columns.tolist() == first.columns.tolist()
        assert got.starts.tolist() == first.starts.tolist()
    assert "KV cache" in first.texts and "cache long" not in [t.lower() for t in first.texts]


def test_the_candidates_own_block_is_the_plain_product_bit_for_bit(corpus):
    # computed once per pair and mirrored: the same sums as the full product, not just close
    candidates = np.array([11, 0, 4, 1, 8, 5, 7])  # any order, blocks of 3 with a ragged end
    gram = rank.CandidateGram(corpus, candidates, block=3)
    papers = corpus[candidates]
    full = (papers @ papers.T.tocsr()).toarray().astype(np.float32)
    assert np.array_equal(gram.candidates, full)
    assert np.array_equal(gram.candidates, gram.candidates.T)
    assert (gram.candidates[~np.eye(len(candidates), dtype=bool)] > 0).any()
    # a paper's dots with the candidates read from the block, as any other stored paper's
    np.testing.assert_array_equal(gram.dots([8], [0, 6]), full[[0, 6]][:, [4]])


def test_profile_scores_are_the_sparse_product_and_the_same_whoever_shares_the_block(monkeypatch):
    # _sparse_scores makes a block of profiles dense over the terms it uses: the scores must be
    # the sparse product's (up to float32 rounding), a reader's row the same bits alone or among
    # others (a term only another reader uses adds an exact zero), and a block too wide for it
    # multiplied sparse, exactly
    rng = np.random.default_rng(3)
    papers = sp.random(400, 5000, density=0.01, format="csr", dtype=np.float32, random_state=rng)
    profiles = sp.random(140, 5000, density=0.02, format="csr", dtype=np.float32, random_state=rng)
    right = papers.T.tocsr()
    exact = (profiles.astype(np.float64) @ right.astype(np.float64)).toarray()
    scores = rank._sparse_scores(profiles, right)
    assert scores.dtype == np.float32 and scores.shape == (140, 400)
    assert np.allclose(scores, exact, atol=1e-5, rtol=0)
    for row in (0, 5, 127, 128, 139):  # the first block of 128 and the next
        assert np.array_equal(rank._sparse_scores(profiles[row : row + 1], right)[0], scores[row])
    monkeypatch.setattr(rank, "_DENSE_TERMS", 10)
    wide = rank._sparse_scores(profiles, right)
    assert np.array_equal(wide, (profiles @ right).toarray())


def test_beside_an_interests_text_a_readers_papers_earn_their_weight_in_the_rocchio_row():
    # one 👎 weighed as much as the whole interests text (rank.Weights.evidence_prior)
    kinds = np.array(["interests", "disliked", "liked", "seed", "liked"], dtype=object)
    owners = np.array([0, 0, 1, 1, 1])
    coef = rank._kind_coefficients(kinds, np.zeros(5), rank.Weights(), owners)
    np.testing.assert_allclose(coef, [1, -1 / 41, 1 / 2, 1, 1 / 2])  # reader 1 wrote no text
    bare = rank._kind_coefficients(kinds, np.zeros(5), rank.Weights(evidence_prior=0), owners)
    np.testing.assert_allclose(bare, [1, -1, 1 / 2, 1, 1 / 2])
    many = np.array(["interests"] + ["liked"] * 40, dtype=object)
    coef = rank._kind_coefficients(many, np.zeros(41), rank.Weights())
    np.testing.assert_allclose(coef[1:].sum(), 40 / 80)  # forty papers: half their kind's weight


def test_an_interests_text_with_no_term_the_corpus_weighs_is_no_text_to_shrink_towards():
    # "neural networks" is in most of these real papers (max_df drops it): the text pulls
    # nothing, so the 👍 paper keeps its whole weight beside the topics not wanted, instead of
    # 1/41 of it against them (found in review: the profile was then mostly what the reader
    # avoids)
    import json
    from pathlib import Path

    rows = Path(__file__).parent / "fixtures" / "arxiv_cs_2025-04-11_neural_networks.jsonl"
    texts = [
        f"{r['title']}. {r['abstract']}" for r in map(json.loads, rows.read_text().splitlines())
    ]
    model = rank.TextModel().fit(texts)
    corpus = model.transform(texts)
    assert model.transform_interests(["neural networks"]).nnz == 0
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    weights = rank.Weights(classifier_min_likes=10**6)
    for written, shrunk in (("neural networks", False), ("speech recognition", True)):
        by_text = rank.Signals(
            interests=written, not_interested="image segmentation", votes=[(texts[0], 1, now)]
        )
        by_rows = replace(by_text, votes=[("", 1, now)], seed_rows=[], vote_rows=[0])
        for sig in (by_text, by_rows):
            got = rank.build_profiles_from_signals(model, [sig], corpus, now, weights)
            whole = rank.build_profiles_from_signals(
                model, [sig], corpus, now, replace(weights, evidence_prior=0)
            )
            same = np.allclose(got.matrix.toarray(), whole.matrix.toarray(), atol=1e-6)
            assert same != shrunk, (written, sig.vote_rows)


def test_a_hyphenated_interest_is_close_only_where_the_paper_writes_its_words_together():
    # A two-month field test: "close to your interest “quality-diversity algorithms”" under
    # papers that say "maintaining quality" and "diversity" (a lane-detection dataset review)
    from paperwire.rank.corpus import InterestPhrases

    texts = [
        "A review of lane detection datasets: the quality and diversity of driving data for "
        "detection algorithms",
        "Quality-Diversity search algorithms illuminate the space of robot gaits",
        "MAP-Elites, a quality diversity method, and other algorithms for open-endedness",
        # the demo's PiSSA writes the interest's compounds in other forms of their words
        "PiSSA: we parameter-efficiently fine-tune models, an efficient tuning of fine parameters",
        "An efficient parameter search and fine control of tuning knobs",
        # one word of the compound, without the other: not the compound either
        "Scenario diversity in lane detection: a review of detection algorithms",
    ]
    model = rank.TextModel().fit(texts * 3)
    phrases = InterestPhrases(model, model.hasher.transform(texts).tocsr(), texts)
    (quality,), (tuning,) = phrases.of(
        [
            rank.Signals(interests="quality-diversity algorithms", seed_rows=[], vote_rows=[]),
            rank.Signals(interests="parameter-efficient fine-tuning", seed_rows=[], vote_rows=[]),
        ]
    )
    close = [phrases.closest([quality, tuning], col) for col in range(len(texts))]
    assert close == [
        None,  # "quality" and "diversity" apart: another thing
        "quality-diversity algorithms",
        "quality-diversity algorithms",
        "parameter-efficient fine-tuning",
        None,  # all four words, none of them side by side
        None,  # "diversity" and "algorithms", most of the phrase's weight, but no compound
    ]
