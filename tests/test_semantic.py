"""paperwire.rank.semantic: embedding profiles, and the hook through digest.compose on a real store."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pytest

from paperwire import digests as worded
from paperwire.errors import ConfigError
from paperwire.paper import Paper, paper_text
from paperwire.rank import compose as digest
from paperwire.rank import core as rank
from paperwire.rank import encoder, semantic
from paperwire.rank.phrases import interest_phrases
from paperwire.rank.session import RankingSession

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
W = semantic.SemanticWeights()


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def signals(interests=None, rows=(), kinds=(), ages=None, phrases=None) -> semantic.EmbeddedSignals:
    vectors = np.array(rows, dtype=np.float32).reshape(len(rows), -1) if rows else np.zeros((0, 2))
    return semantic.EmbeddedSignals(
        interests,
        vectors,
        np.array(kinds, dtype=object),
        np.zeros(len(rows)) if ages is None else np.array(ages, dtype=np.float64),
        phrases=None if phrases is None else np.array(phrases, dtype=np.float32),
    )


def test_centroid_of_interests_alone_is_the_interests_vector():
    np.testing.assert_allclose(semantic.centroid(signals(unit(3, 4)), W), unit(3, 4), atol=1e-6)


def test_a_thumbs_down_pushes_the_centroid_away_and_old_votes_count_less():
    liked = signals(unit(1, 0), [unit(0, 1)], ["liked"])
    disliked = signals(unit(1, 0), [unit(0, 1)], ["disliked"])
    assert semantic.centroid(liked, W)[1] > 0 > semantic.centroid(disliked, W)[1]
    old = signals(unit(1, 0), [unit(0, 1)], ["liked"], ages=[360.0])  # two half-lives
    np.testing.assert_allclose(semantic.centroid(old, W), unit(1, 0.25), atol=1e-6)


def corpus_of(rows: np.ndarray) -> np.ndarray:
    """Unit rows, as the model gives."""
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_an_interests_text_of_two_topics_matches_each_not_their_average():
    # two unrelated topics; "both" sits between them and is close to neither
    rng = np.random.default_rng(4)
    corpus = corpus_of(np.vstack([rng.normal(size=(200, 8)), np.eye(8)[:2], [[1, 1] + [0] * 6]]))
    topic_a, topic_b, both = 200, 201, 202
    whole = unit(1, 1, 0, 0, 0, 0, 0, 0)  # the whole text's vector: the two topics averaged
    cold = signals(whole, phrases=[corpus[topic_a], corpus[topic_b]])
    by_phrase = semantic.build_profiles([cold], corpus, W).added(corpus, W)[0]
    assert by_phrase[topic_a] > by_phrase[both] and by_phrase[topic_b] > by_phrase[both]
    no_phrases = replace(W, phrases=0.0)
    by_text = semantic.build_profiles([cold], corpus, no_phrases).added(corpus, no_phrases)[0]
    assert by_text[both] > by_text[topic_a]


def test_a_topic_not_wanted_only_pushes_down_what_is_close_to_it():
    rng = np.random.default_rng(5)
    corpus = corpus_of(rng.normal(size=(300, 8)))
    unwanted = corpus[0]
    reader = signals(unit(*corpus[1]), phrases=[corpus[1]])
    picky = replace(reader, avoid=unwanted[None, :])
    plain_scores = semantic.build_profiles([reader], corpus, W).added(corpus, W)[0]
    profiles = semantic.build_profiles([picky], corpus, W)
    picky_scores = profiles.added(corpus, W)[0]
    lowered = plain_scores - picky_scores
    closeness = corpus @ unwanted
    # in standard deviations of closeness above the corpus sample's average, at the weight
    np.testing.assert_allclose(
        lowered, W.not_interested * profiles.avoid_penalty(corpus)[0], rtol=1e-5, atol=1e-5
    )
    above = closeness > profiles.avoid_offset[0]
    assert lowered[0] == lowered.max() > 0  # the topic's own paper loses most
    assert (lowered[above] > 0).all()
    assert (lowered[~above] == 0).all() and (~above).sum() > 100  # far from it: no bonus either
    off = replace(W, not_interested=0.0)
    np.testing.assert_array_equal(
        semantic.build_profiles([picky], corpus, off).added(corpus, off)[0], plain_scores
    )


def test_each_distinct_phrase_is_encoded_once_for_the_whole_run():
    asked: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        asked.append(texts)
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    out = semantic.phrase_vectors(encode, ["graph neural networks, RAG", "RAG; robotics", ""])
    assert asked == [["graph neural networks", "RAG", "robotics"]]
    assert [None if v is None else len(v) for v in out] == [2, 2, None]
    np.testing.assert_allclose(out[0][1], out[1][0])  # "RAG", the same vector for both
    np.testing.assert_allclose(np.linalg.norm(out[0], axis=1), 1.0, atol=1e-6)


def test_profiles_read_as_standard_deviations_over_the_corpus():
    corpus = corpus_of(np.random.default_rng(1).normal(size=(400, 8)))
    sig = signals(corpus[0])
    scores = semantic.build_profiles([sig], corpus, W).score(corpus)[0]
    assert scores.mean() == pytest.approx(0, abs=1e-4)
    assert scores.std() == pytest.approx(1, abs=1e-4)
    assert int(np.argmax(scores)) == 0


def test_the_whitened_centroid_finds_the_cluster_of_three_likes():
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(600, 16))
    rows[:30, 5] += 6  # a topic: 30 papers along axis 5
    corpus = corpus_of(rows)
    three = signals(None, [corpus[i] for i in range(3)], ["liked"] * 3)
    profiles = semantic.build_profiles([three], corpus, W)
    top = np.argsort(-profiles.score(corpus)[0])[:30]
    assert np.isin(top, np.arange(30)).mean() > 0.8


def test_every_reader_gets_the_same_model_however_many_are_ranked_at_once():
    rng = np.random.default_rng(3)
    corpus = corpus_of(rng.normal(size=(300, 8)))
    reader = signals(
        corpus[7], [corpus[i] for i in range(4)], ["liked"] * 3 + ["disliked"], None, corpus[8:10]
    )
    crowd = [
        signals(None, [corpus[j] for j in rng.choice(300, 5)], ["liked"] * 5),
        signals(corpus[11], phrases=corpus[11:14]),  # phrases compared in blocks of readers
    ] * 250
    alone = semantic.build_profiles([reader], corpus, W).added(corpus, W)[0]
    among = semantic.build_profiles([reader, *crowd], corpus, W).added(corpus, W)[0]
    np.testing.assert_allclose(alone, among, atol=1e-5)


def test_a_chunks_labelled_papers_give_each_reader_the_sums_and_fades_of_its_own_papers():
    """build_profiles sums a chunk's labelled papers in a few numpy calls (semantic._Labelled):
    each reader's per-kind sums, counts, decays, sides and fades are bit for bit what the
    reader's own papers give, taken one kind at a time, wherever the reader is and whoever
    else is in the chunk (readers with no papers, with one kind, with kinds out of order); the
    whitened direction, one row of the chunk's product, the same to float32's rounding."""
    rng = np.random.default_rng(12)
    corpus = corpus_of(rng.normal(size=(400, 16)))
    kinds = ["liked", "seed", "disliked", "liked", "seed", "liked", "disliked"]
    reader = signals(corpus[3], [corpus[i] for i in range(7)], kinds, rng.uniform(0, 900, 7))
    crowd = [
        signals(None, [corpus[j] for j in rng.choice(400, n)], rng.choice(kinds, n).tolist(),
                rng.uniform(0, 400, n))
        for n in rng.integers(1, 40, size=60)
    ] + [signals(corpus[5], phrases=corpus[5:7]), signals(corpus[9])]  # fmt: skip
    run = [*crowd[:31], reader, *crowd[31:]]
    chunk = semantic._Labelled(run, W, 16)
    cal = semantic.calibrate(corpus, W)
    liked, disliked = chunk.sides(cal)
    for row, sig in enumerate(run):
        decay = rank.decay_factor(sig.ages, W.half_life_days)
        for code, kind in enumerate(("seed", "liked", "disliked")):
            idx = sig.kinds == kind
            assert chunk.counts[row, code] == idx.sum()
            if idx.any():
                expected = (decay[idx, None] * sig.vectors[idx]).sum(axis=0)
                np.testing.assert_array_equal(chunk.sums[row, code], expected)
                assert chunk.decays[row, code] == decay[idx].mean()
        up = np.isin(sig.kinds, ("seed", "liked"))
        if up.any():
            np.testing.assert_array_equal(liked[row], cal.centred(sig.vectors)[up])
        assert len(disliked[row]) == (sig.kinds == "disliked").sum()
    alone = semantic.build_profiles([reader], corpus, W)
    among = semantic.build_profiles(run, corpus, W)
    np.testing.assert_allclose(alone.directions[0], among.directions[31], rtol=1e-6, atol=1e-9)
    assert alone.directions[0].any()
    np.testing.assert_array_equal(alone.up_fade[0], among.up_fade[31])
    np.testing.assert_array_equal(alone.down_fade[0], among.down_fade[31])
    np.testing.assert_array_equal(alone.linear_fade[0], among.linear_fade[31])


def test_a_readers_linear_scores_are_the_same_wherever_they_are_in_the_run():
    # float32 products: a row's last bits can follow the product's shape or the row's place in
    # it, so every product has the same shape; a reader alone, 300th of 501, or last of 257
    # gets the same scores to float32's rounding, and the same 30 best papers. (The same
    # bits where the BLAS kernel sums every row alike, as on the Xeons CI ran on; OpenBLAS's
    # AVX2 kernel sums rows 6-11 of every 12 in another order.)
    rng = np.random.default_rng(4)
    corpus = corpus_of(rng.normal(size=(700, 384)))
    reader = signals(None, [corpus[i] for i in range(6)], ["liked"] * 5 + ["disliked"])
    crowd = [signals(None, [corpus[j] for j in rng.choice(700, 4)], ["liked"] * 4)] * 500
    alone = semantic.build_profiles([reader], corpus, W).score(corpus)[0]
    for run, row in (([*crowd[:300], reader, *crowd[300:]], 300), ([*crowd[:256], reader], 256)):
        among = semantic.build_profiles(run, corpus, W).score(corpus)[row]
        np.testing.assert_allclose(alone, among, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(np.argsort(-alone)[:30], np.argsort(-among)[:30])


def test_whitening_lifts_what_is_rare_in_the_corpus_above_what_is_everywhere():
    rng = np.random.default_rng(9)
    rows = rng.normal(size=(800, 8)) * 0.1
    rows[:, 0] += rng.normal(size=800) * 3  # axis 0 varies a lot across the whole corpus
    rows[:, 0] += 1
    corpus = corpus_of(rows)
    # the reader's papers sit slightly along the rare axis 4, like a handful of other papers
    liked = corpus_of(np.array([[1.0, 0, 0, 0, 0.5, 0, 0, 0]] * 3) + rng.normal(size=(3, 8)) * 0.01)
    sig = signals(None, list(liked), ["liked"] * 3)
    rare = corpus_of(np.array([[0.2, 0, 0, 0, 1.0, 0, 0, 0]]))
    common = corpus_of(np.array([[1.0, 0, 0, 0, 0.1, 0, 0, 0]]))
    profiles = semantic.build_profiles([sig], corpus, W)
    assert profiles.score(rare)[0, 0] > profiles.score(common)[0, 0]
    plain = semantic.build_profiles([sig], corpus, semantic.SemanticWeights(shrinkage=1.0))
    assert plain.score(rare)[0, 0] < plain.score(common)[0, 0]  # a plain centroid: the opposite


def test_neighbours_lift_papers_near_a_liked_one_and_sink_those_near_a_thumbs_down():
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(500, 16))
    rows[:20, 3] += 6  # topic A: the reader likes three of its papers
    rows[20:40, 7] += 6  # topic B: the reader thumbs down three of its papers
    corpus = corpus_of(rows)
    sig = signals(
        None, [corpus[i] for i in (0, 1, 2, 20, 21, 22)], ["liked"] * 3 + ["disliked"] * 3
    )
    profiles = semantic.build_profiles([sig], corpus, W)
    near = profiles.contrast(0, profiles.calibration.centred(corpus), W)
    assert near[3:20].mean() > 1.5 > -1.5 > near[23:40].mean()  # standard deviations
    assert abs(near[40:].mean()) < 1.0
    # the product's sum with every paper on the shortlist: the whitened centroid, and the
    # contrast less the papers' density, each with its measured weight
    everything = semantic.SemanticWeights(shortlist=len(corpus))
    contrast = near - everything.density_weight * profiles.density(corpus, everything)
    expected = everything.weight * profiles.score(corpus) + (
        everything.neighbour_weight_with_dislikes * contrast
    )
    np.testing.assert_allclose(profiles.added(corpus, everything), expected, atol=1e-4)


def test_papers_off_the_shortlist_get_its_lowest_contrast_and_keep_their_order():
    rng = np.random.default_rng(10)
    corpus = corpus_of(rng.normal(size=(400, 8)))
    sig = signals(None, [corpus[i] for i in range(5)], ["liked"] * 5)
    short = semantic.SemanticWeights(shortlist=50)
    profiles = semantic.build_profiles([sig], corpus, short)
    base = rng.normal(size=(1, 400)).astype(np.float32)
    added = profiles.added(corpus, short, base)[0]
    linear = short.weight * profiles.score(corpus)[0]
    ranked = base[0] + linear
    listed = np.argsort(-ranked)[:50]
    off = np.setdiff1d(np.arange(400), listed)
    # one constant for everything off the list: their order is base + linear
    shift = added[off] - linear[off]
    np.testing.assert_allclose(shift, shift[0], atol=1e-5)
    assert shift[0] <= (added[listed] - linear[listed]).min() + 1e-5


def test_only_readers_with_labelled_papers_get_the_neighbour_contrast():
    corpus = corpus_of(np.random.default_rng(6).normal(size=(200, 8)))
    up_only = signals(None, [corpus[i] for i in range(3)], ["liked"] * 3)
    up_down = signals(None, [corpus[i] for i in range(4)], ["liked"] * 3 + ["disliked"])
    cold = signals(corpus[0])
    profiles = semantic.build_profiles([up_only, up_down, cold], corpus, W)
    assert profiles.neighbour_weights(W).tolist() == pytest.approx(
        [W.neighbour_weight, W.neighbour_weight_with_dislikes, 0.0]
    )
    # an interests text alone is a plain cosine, standardised
    np.testing.assert_allclose(profiles.directions[2], corpus[0], atol=1e-6)


def test_a_paper_in_a_crowded_region_is_denser_than_a_lonely_one():
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(400, 16))
    rows[:60, 2] += 5  # a crowded topic: 60 papers along axis 2
    corpus = corpus_of(rows)
    dense = semantic.density(corpus, corpus, 20)
    assert dense[:60].mean() > dense[60:].max()
    # a paper is not its own neighbour: alone in the sample, its density is the floor
    assert semantic.density(corpus[:1], corpus[:1], 20).tolist() == [-1.0]
    sig = signals(None, [corpus[0], corpus[100], corpus[200]], ["liked"] * 3)
    profiles = semantic.build_profiles([sig], corpus, W)
    standardised = profiles.density(corpus, W)
    assert standardised[:60].mean() > 1 > -0.1 > standardised[60:].mean()


def test_neighbours_compare_papers_after_removing_the_corpus_mean():
    rng = np.random.default_rng(8)
    corpus = corpus_of(rng.normal(size=(300, 8)))
    shifted = corpus + 3 * unit(*range(1, 9))  # a direction every paper shares
    scores = []
    for vectors in (corpus, shifted):
        sig = signals(None, [vectors[i] for i in range(4)], ["liked"] * 3 + ["disliked"])
        profiles = semantic.build_profiles([sig], vectors, W)
        cal = profiles.calibration
        np.testing.assert_allclose(cal.centre, vectors.mean(axis=0), atol=1e-5)
        scores.append((profiles.contrast(0, cal.centred(vectors), W), profiles.density(vectors, W)))
    np.testing.assert_allclose(scores[0][0], scores[1][0], atol=1e-3)
    np.testing.assert_allclose(scores[0][1], scores[1][1], atol=1e-3)
    raw = semantic.SemanticWeights(centred=False)
    sig = signals(None, [shifted[i] for i in range(4)], ["liked"] * 3 + ["disliked"])
    uncentred = semantic.build_profiles([sig], shifted, raw)
    assert not np.allclose(uncentred.contrast(0, shifted, raw), scores[0][0], atol=1e-2)


# -- through the product --------------------------------------------------------------------

PAPERS = [
    ("2611.00001", "Linear transformers scale to many thousand tokens",
     "Kernelised softmax replacements make sequence mixing cost grow linearly."),
    ("2611.00002", "Weak lensing maps of dark matter around galaxy clusters",
     "We map dark matter with weak gravitational lensing of background galaxies."),
    ("2611.00003", "Smart contract vulnerabilities on the Ethereum blockchain",
     "Static analysis finds reentrancy bugs in smart contracts."),
    ("2611.00004", "Protein folding with multiple sequence alignments",
     "Coevolution signals in aligned sequences predict residue contacts."),
]  # fmt: skip

CONFIG = """\
ranking:
  embeddings: {model}
subscribers:
  - id: ada
    email: ada@example.org
    interests: "KV cache quantization and efficient attention for language model inference"
    digest_size: 1
"""


@pytest.fixture
def stocked(store):
    store.add_papers(
        [Paper(p, t, a, url=f"https://arxiv.org/abs/{p}", source="arxiv") for p, t, a in PAPERS],
        now=NOW - dt.timedelta(days=1),
    )
    return store


def test_semantic_ranking_finds_the_paper_that_shares_no_word_with_the_interests(
    stocked, make_config
):
    off_config = make_config(CONFIG.format(model="null"))
    off = worded.compose(stocked, off_config, now=NOW)["ada"]
    on_config = make_config(CONFIG.format(model="wordllama"))
    on = worded.compose(stocked, on_config, now=NOW)["ada"]
    # TF-IDF alone has nothing to go on (no shared term): every score is the same, and no
    # paper has a reason to be in ada's digest
    ids = [p for p, _, _ in PAPERS]
    off_scores = digest.score_matrix(stocked, off_config, None, ids, now=NOW)[0]
    assert len({round(float(x), 6) for x in off_scores}) == 1
    assert off.picks == []
    assert [p.paper_id for p in on.picks] == ["2611.00001"]
    assert on.picks[0].score > 0.5
    # alerts score with the very same profiles
    matrix = digest.score_matrix(stocked, on_config, None, ["2611.00001"], now=NOW)
    assert matrix[0, 0] == pytest.approx(on.picks[0].score, abs=1e-4)
    assert set(stocked.embeddings(p for p, _, _ in PAPERS)) == {p for p, _, _ in PAPERS}


def test_close_in_meaning_reads_the_phrase_vectors_the_scores_used(stocked, monkeypatch):
    # a run's scores store each phrase's vector; the reason's bar reads it back, so a phrase
    # is encoded once ever (a fresh run of 20,000 readers encoded every phrase again) and the
    # reason is judged on the very vector that ranked the pick
    from paperwire.rank.embed import text_vectors

    ids = [p for p, _, _ in PAPERS]
    texts = [f"{t}. {a}" for _, t, a in PAPERS]
    phrases = ["linear attention", "dark matter maps"]
    first = RankingSession().embedded(stocked, "wordllama", ids, texts)
    assert first is not None
    stored = text_vectors(stocked, first.model, phrases)  # what scoring them stores
    session = RankingSession()  # a later run, a fresh process
    embedded = session.embedded(stocked, "wordllama", ids, texts)
    assert embedded is not None

    def encode(texts):
        raise AssertionError(f"encoded again: {texts}")

    monkeypatch.setattr(embedded.model, "embed", encode)
    named = embedded.closest_interest(stocked, phrases, [0, 1])
    assert named == ["linear attention", "dark matter maps"]
    assert stored.any(axis=1).all()


def test_no_embedded_corpus_when_embeddings_are_off(stocked):
    """None tells compose to add no semantic scores and to compare TF-IDF vectors for "like"
    (an empty list would not)."""
    assert RankingSession().embedded(stocked, None, [], []) is None


def test_a_digest_reads_the_stored_vectors_once_not_once_per_subscriber(stocked):
    ids = [p for p, _, _ in PAPERS]
    texts = [f"{t}. {a}" for _, t, a in PAPERS]
    signals = rank.Signals(seed_rows=[1], vote_rows=[], liked_titles=[(ids[1], PAPERS[1][1])])
    session = RankingSession()

    def similar_liked(ids: list[str]) -> list[int | None]:
        embedded = session.embedded(stocked, "wordllama", ids, texts)
        assert embedded is not None
        return embedded.similar_liked(signals, np.array([0, 2]))

    first = similar_liked(ids)
    statements: list[str] = []
    stocked.db.conn.set_trace_callback(statements.append)
    again = similar_liked(ids)
    stocked.db.conn.set_trace_callback(None)
    assert again == first
    assert statements == []  # the same run's ids: no query at all
    stocked.db.conn.set_trace_callback(statements.append)
    similar_liked(list(ids))
    stocked.db.conn.set_trace_callback(None)
    # another list of ids: one look at the corpus version, the vectors are not read again
    assert [s for s in statements if s.startswith("select")] == [
        "select count(*) as n, max(updated) as u from papers"
    ]


def test_a_reader_with_papers_gets_the_density_term_computed_once_per_corpus(stocked, monkeypatch):
    ids = [p for p, _, _ in PAPERS]
    texts = [f"{t}. {a}" for _, t, a in PAPERS]
    # three seed papers: a classifier with its neighbours (and no thumbs-down)
    signals = rank.Signals(seed_rows=[0, 2, 3], vote_rows=[], corpus_rows=[0, 2, 3])
    calls = []
    real_density = semantic.density
    monkeypatch.setattr(semantic, "density", lambda *a: calls.append(len(a[0])) or real_density(*a))
    rows = np.array([1, 2])
    dense = semantic.SemanticWeights(density_weight=0.5)  # shipped: 0 (measured, no gain)
    session = RankingSession()

    def added() -> np.ndarray:
        embedded = session.embedded(stocked, "wordllama", ids, texts)
        assert embedded is not None
        return embedded.added(embedded.vectors_of(stocked, [signals], NOW, dense), rows, dense)

    first = added()
    # the corpus sample's density and the whole corpus's: both once
    assert calls == [len(ids), len(ids)]
    again = added()
    assert calls == [len(ids), len(ids)]
    np.testing.assert_array_equal(again, first)
    # the same sum as SemanticProfiles.added computes with a fresh density
    from paperwire.rank.embed import load_model, paper_vectors

    corpus = paper_vectors(stocked, load_model("wordllama"), ids, texts)
    embedded = semantic.embedded_signals(load_model("wordllama"), [signals], corpus, NOW)
    profiles = semantic.build_profiles(embedded, corpus, dense)
    assert profiles.neighbour_weights(dense).tolist() == pytest.approx([dense.neighbour_weight])
    # (float32 products of other shapes: the density of 4 papers is standardised by a small spread)
    np.testing.assert_allclose(first, profiles.added(corpus[rows], dense), atol=1e-3)


def test_an_unknown_model_is_a_config_error_with_its_line(make_config):
    with pytest.raises(ConfigError) as err:
        make_config(CONFIG.format(model="no-such-model"))
    assert str(err.value) == (
        "subscribers.yaml:2: ranking.embeddings: 'no-such-model' is neither 'minilm', "
        "'wordllama', 'off' nor a model folder (model2vec's model.safetensors + tokenizer.json, "
        "or an ONNX text encoder's onnx/model.onnx + tokenizer.json)"
    )


def test_the_bundled_sentence_encoder_is_on_by_default_and_off_turns_it_off(make_config):
    assert make_config("subscribers: []\n").ranking.embeddings == "minilm"
    for off in ("off", "false", "none", "null", "'off'"):
        config = make_config(f"ranking:\n  embeddings: {off}\nsubscribers: []\n")
        assert config.ranking.embeddings is None, off


# A seed paper about efficient attention that shares almost no word with "Linear transformers":
# TF-IDF cosine 0.05 (its bar is 0.25), wordllama cosine 0.46, the closest pair of the store.
SEED = (
    "2611.00005",
    "Efficient attention for long context transformers",
    "Softmax attention is approximated with kernels so language models read long inputs cheaply.",
)
SEEDED = CONFIG.replace("digest_size: 1", 'seed_papers: ["2611.00005"]\n    digest_size: 2')


def test_similar_to_names_the_seed_paper_the_pick_resembles_in_the_embedding(store, make_config):
    store.add_papers(
        [Paper(p, t, a, url="u", source="arxiv") for p, t, a in [*PAPERS, SEED]],
        now=NOW - dt.timedelta(days=1),
    )
    off = worded.compose(store, make_config(SEEDED.format(model="null")), now=NOW)["ada"]
    on = worded.compose(store, make_config(SEEDED.format(model="wordllama")), now=NOW)["ada"]
    # TF-IDF sees no shared word: nothing explains any paper, so ada gets none
    assert off.picks == []
    # the embedding sees the seed in "Linear transformers"; the runner-up (lensing, smart
    # contracts or protein folding: none close to the seed or the interests) is left out
    assert [(p.paper_id, p.reasons) for p in on.picks] == [
        (
            "2611.00001",
            ["like “Efficient attention for long context transformers”, one of your seed papers"],
        )
    ]


def test_a_pick_is_never_similar_to_itself_and_only_a_close_liked_paper_is_named():
    vectors = np.array([unit(1, 0), unit(1, 0.1), unit(0, 1), unit(1, 1)], dtype=np.float32)
    # pick 0 is liked paper 0 itself: its closest other liked paper (row 1) is named instead
    assert semantic.closest_liked(vectors, np.array([0, 2, 3]), [0, 1], bar=0.9) == [1, None, None]
    assert semantic.closest_liked(vectors, np.array([3]), [0, 1], bar=0.7) == [1]
    assert semantic.closest_liked(vectors, np.array([0]), [0], bar=0.0) == [None]
    assert semantic.closest_liked(vectors, np.array([0, 1]), [], bar=0.0) == [None, None]


def test_the_similar_bars_are_rarities_among_the_pairs_of_the_store():
    rng = np.random.default_rng(1)
    corpus = rng.normal(size=(200, 16)).astype(np.float32)
    corpus[1] = corpus[0] + 0.01
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    cosines = corpus @ corpus.T
    np.fill_diagonal(cosines, -1)
    # 19,900 pairs: 1 in 50 pass the default bar, 1 in 10 the floor
    bar, floor = semantic.similar_bars(corpus, (semantic.SIMILAR_RARITY, semantic.SIMILAR_FLOOR))
    assert bar == semantic.similar_bar(corpus)
    assert (cosines >= bar).sum() // 2 == pytest.approx(19_900 / 50, abs=1)
    assert (cosines >= floor).sum() // 2 == pytest.approx(19_900 / 10, abs=1)
    # at 1 in 38,500, only the near-duplicate (0, 1)
    rare = semantic.similar_bar(corpus, 1 / 38_500)
    assert cosines[0, 1] >= rare and (cosines >= rare).sum() == 2
    # a paper's own bar: the cosine its nearest 1 % of the store reach, itself left out
    own = semantic.own_bars(corpus, np.array([0, 5]))
    for row, value in zip((0, 5), own, strict=True):
        others = np.delete(corpus @ corpus[row], row)  # 199: the nearest 1 % is 2 papers
        assert (others > value).sum() <= 2 <= (others >= value).sum() + 1


def test_a_liked_paper_is_named_only_where_each_is_among_the_others_nearest():
    """Past the store's 1-in-50 bar, in a region of many close papers (a field test's store
    of LLM papers), a liked paper was named under its 16th-58th nearest of 1,229, papers that
    mostly had it past their own 40th nearest; the pick and the paper it names must each be among the
    other's nearest (``own`` at the share SIMILAR_NEAREST papers are of the store)."""
    vectors = np.array([unit(1, 0), unit(1, 0.1), unit(0, 1)], dtype=np.float32)
    bars = {0: 0.5, 1: 0.999}  # the pick (row 1) has closer papers than the liked one (row 0)

    def own(rows, share):
        return np.array([0.5 if share == semantic.SIMILAR_SHARE else bars[r] for r in rows])

    assert semantic.closest_liked(vectors, np.array([1]), [0], 0.95, 0.8, own) == [None]
    bars[1] = 0.5
    assert semantic.closest_liked(vectors, np.array([1]), [0], 0.95, 0.8, own) == [0]
    bars[0] = 0.999  # now the liked paper has closer ones
    assert semantic.closest_liked(vectors, np.array([1]), [0], 0.95, 0.8, own) == [None]
    assert semantic.closest_liked(vectors, np.array([1]), [0], 0.95) == [0]  # no own bars


def test_a_liked_paper_in_a_sparse_region_is_named_beside_its_own_nearest_papers():
    vectors = np.array([unit(1, 0), unit(1, 0.5), unit(0, 1), unit(1, 2)], dtype=np.float32)
    # pick 1 (cosine 0.89 to liked paper 0) is below the store's bar of 0.95 ...
    assert semantic.closest_liked(vectors, np.array([1]), [0], bar=0.95) == [None]
    # ... but above the floor and among paper 0's own nearest: named
    own = lambda rows, share: np.array([0.85] * len(rows))  # noqa: E731
    assert semantic.closest_liked(vectors, np.array([1]), [0], 0.95, 0.8, own) == [0]
    # below the floor, however near it is to the liked paper's own neighbours: not named
    assert semantic.closest_liked(vectors, np.array([1]), [0], 0.95, 0.9, own) == [None]
    # above the floor, but farther than the liked paper's own nearest: not named
    far = lambda rows, share: np.array([0.99] * len(rows))  # noqa: E731
    assert semantic.closest_liked(vectors, np.array([1]), [0], 0.95, 0.8, far) == [None]


@pytest.mark.parametrize("stacked_rows", [semantic._STACKED_ROWS, 8])
def test_a_chunk_of_readers_gets_what_each_would_get_alone(monkeypatch, stacked_rows):
    # closest_liked_many multiplies readers of about as many liked papers in one stacked product,
    # padded: each reader's names and cosines must be what plain arithmetic gives them alone,
    # whoever shares their product (readers of 0 to 70 liked papers, picks among them), also
    # where a product holds only a few readers' rows (8: one reader of 40 alone)
    monkeypatch.setattr(semantic, "_STACKED_ROWS", stacked_rows)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 24))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    stored = vectors.astype(np.float16)
    own_bar = {row: 0.2 + 0.3 * (row % 3) / 2 for row in range(300)}
    asked: list[list[int]] = []

    def own(rows: list[int], share: float) -> np.ndarray:
        asked.append(list(rows))
        return np.array([own_bar[r] for r in rows])

    picks, liked = [], []
    for n_liked in [0, 1, 2, 3, 5, 8, 9, 17, 40, 70, 4, 4, 1]:
        mine = (1 + rng.choice(299, n_liked, replace=False)).tolist()  # row 0: see below
        chosen = 1 + rng.choice(299, 6, replace=False)
        if mine:
            chosen[0] = mine[0]  # a pick that is one of the reader's own papers
        picks.append(chosen)
        liked.append(mine)
    # the reader of 3 liked papers shares a product with one of 4, so theirs is padded: row 0,
    # the same as their second pick, would be its closest paper if the padding ever counted
    stored[0] = stored[picks[3][1]]
    picks.append(np.zeros(0, dtype=np.int64))  # a reader with no picks
    liked.append([1, 2])
    exact = stored.astype(np.float64)
    bar, floor = 0.45, 0.2
    found, how_close = semantic.closest_liked_many(stored, picks, liked, bar, floor, own)
    # the floor's own bars, then both papers' of every named pair, each asked once a chunk
    assert len(asked) == 2
    for mine, theirs, names, cosines in zip(picks, liked, found, how_close, strict=True):
        assert len(names) == len(cosines) == len(mine)
        for pick, name, cosine in zip(mine, names, cosines, strict=True):
            sims = [-np.inf if row == pick else exact[pick] @ exact[row] for row in theirs]
            if not theirs or not np.isfinite(max(sims)):
                assert (name, cosine) == (None, -np.inf)
                continue
            best = int(np.argmax(sims))
            assert cosine == pytest.approx(sims[best], abs=1e-5)
            close = sims[best] >= bar or (
                sims[best] >= floor and sims[best] >= own_bar[theirs[best]]
            )
            # ... and each among the other's nearest (both papers' own bars)
            close &= sims[best] >= max(own_bar[theirs[best]], own_bar[int(pick)])
            assert name == (best if close else None)
    assert any(name is not None for names in found for name in names)
    assert any(name is None for names, t in zip(found, liked, strict=True) if t for name in names)


def test_a_pick_with_no_other_reason_says_which_interest_it_is_close_to_in_meaning(tmp_path):
    # the bundled demo: ada's interests, the 200 real sample papers, through fetch and compose
    from importlib import resources

    from paperwire import pipeline
    from paperwire.config import parse_config
    from paperwire.store import Store

    text = resources.files("paperwire").joinpath("data/example-subscribers.yaml").read_text()
    on = parse_config(text.replace("subscribers:\n", SEMANTIC_ON, 1), env={})
    off = parse_config(text.replace("subscribers:\n", SEMANTIC_OFF, 1), env={})
    now = dt.datetime.now(dt.UTC)
    with Store(tmp_path / "paperwire.db") as store:
        assert pipeline.fetch_all(store, on, now=now).new == 200
        ada = [s for s in on.subscribers if s.id == "ada"]
        with_meaning = worded.compose(store, on, ada, now=now)["ada"].picks
        plain = worded.compose(store, off, [s for s in off.subscribers if s.id == "ada"], now=now)
        hogwild = {p.paper_id: p.reasons for p in with_meaning}["2504.06261"]
        # (the heading before ada's colon is a phrase of its own: issue 27)
        assert hogwild == ["close in meaning to your interest “faster LLM inference”"]
        assert not any(r == ["new in your feeds"] for r in (p.reasons for p in with_meaning))
        # TF-IDF alone cannot say it: no interest phrase, nor most of one, is in the paper
        bare = {p.paper_id: p.reasons for p in plain["ada"].picks}.get("2504.06261", [])
        assert not any("interest" in reason for reason in bare), bare
        # a phrase names only its own nearest 5 % of stored papers: 10 of 200 each, 40 at most
        ids = store.papers_since(now - dt.timedelta(days=1))
        session = RankingSession()
        corpus = session.corpus(store)
        phrases = interest_phrases(ada[0].interests)
        embedded = session.embedded(store, "wordllama", corpus.ids, corpus.texts(store))
        assert embedded is not None
        named = embedded.closest_interest(store, phrases, [corpus.index[p] for p in ids])
        assert len(phrases) == 4
        assert 3 <= sum(n is not None for n in named) <= 4 * 10
        assert session.embedded(store, None, corpus.ids, corpus.texts(store)) is None


SEMANTIC_ON = "ranking:\n  embeddings: wordllama\n\nsubscribers:\n"
SEMANTIC_OFF = "ranking:\n  embeddings: off\n\nsubscribers:\n"


def neural_network_papers() -> list[Paper]:
    """The 259 real arXiv cs papers of 2025-04-11 that mention neural networks (a fixture)."""
    import json
    from pathlib import Path

    rows = Path(__file__).parent / "fixtures" / "arxiv_cs_2025-04-11_neural_networks.jsonl"
    return [
        Paper(r["url"].rsplit("/", 1)[1], r["title"], r["abstract"], url=r["url"], source="arxiv")
        for r in map(json.loads, rows.read_text().splitlines())
    ]


# -- old votes fade, beside an interests text that does not ---------------------------------

FADING = """\
subscribers:
  - id: voter
    email: voter@example.org
    interests: "spiking neural networks"
  - id: fresh
    email: fresh@example.org
    interests: "spiking neural networks"
"""


def test_old_votes_fade_until_the_profile_is_the_interests_alone(store, make_config):
    # A reader who thumbed up graph papers and down others, then wrote new interests: while the
    # votes are new they still count, and as they age the reader's scores come back to those
    # of a reader with the same interests and no votes. Before, three terms ignored the votes'
    # age (each is standardised per reader, which undid their decay): the thumbs-down side of
    # the whitened centroid, the neighbour contrast and, as votes aged, the centroid itself,
    # which kept the interests whitened: twenty years later the two readers' scores still
    # correlated 0.44 (real papers, bundled encoder).
    papers = neural_network_papers()
    old, new = papers[:150], papers[150:]
    store.add_papers(old, now=NOW - dt.timedelta(days=30))
    store.add_papers(new, now=NOW - dt.timedelta(days=1))
    graph = [p for p in old if "graph" in p.title.lower()][:8]
    others = [p for p in old if "graph" not in (p.title + p.abstract).lower()][:40]
    for p in graph:
        store.record_vote("voter", p.paper_id, 1, via="test", now=NOW - dt.timedelta(days=2))
    for p in others:
        store.record_vote("voter", p.paper_id, -1, via="test", now=NOW - dt.timedelta(days=2))
    config = make_config(FADING)
    ids = [p.paper_id for p in new]
    session = RankingSession()

    def agreement(now: dt.datetime) -> float:
        voter, fresh = digest.score_matrix(store, config, None, ids, now=now, session=session)
        return float(np.corrcoef(voter, fresh)[0, 1])

    assert agreement(NOW) < 0.9  # two days old, the votes count
    assert agreement(NOW + dt.timedelta(days=365)) > agreement(NOW)
    assert agreement(NOW + dt.timedelta(days=20 * 365)) > 0.99


# -- the first votes beside an interests text ------------------------------------------------

FIRST_VOTES = """\
subscribers:
  - id: voter
    email: voter@example.org
    interests: "spiking neural networks, graph neural networks, neural network pruning"
  - id: fresh
    email: fresh@example.org
    interests: "spiking neural networks, graph neural networks, neural network pruning"
"""


def test_a_first_vote_beside_an_interests_text_nudges_the_digest_and_many_votes_lead_it(
    store, make_config
):
    # Each of the papers' terms is standardised per reader, so it was as strong from one paper
    # as from a hundred: one thumbs-down on a paper the reader never asked about took their
    # scores' agreement with the text alone to 0.2-0.7 and replaced most of their digest. The
    # papers earn their weight as they accumulate (SemanticWeights.evidence_prior and, in
    # TF-IDF's Rocchio row, rank.Weights.evidence_prior).
    papers = neural_network_papers()
    old, new = papers[:150], papers[150:]
    store.add_papers(old, now=NOW - dt.timedelta(days=30))
    store.add_papers(new, now=NOW - dt.timedelta(days=1))
    config = make_config(FIRST_VOTES)
    ids = [p.paper_id for p in new]
    session = RankingSession()

    vectors = encoder.load().embed([paper_text(p.title, p.abstract) for p in new])

    def compared(paper: Paper) -> tuple[float, int, float]:
        """The two readers' agreement, how many of their ten best they share, and how many
        places the voted paper's five nearest new papers moved (down: positive)."""
        voter, fresh = digest.score_matrix(store, config, None, ids, now=NOW, session=session)
        top = set(np.argsort(-voter)[:10].tolist()) & set(np.argsort(-fresh)[:10].tolist())
        place = np.argsort(np.argsort(-voter)) - np.argsort(np.argsort(-fresh))
        (mine,) = encoder.load().embed([paper_text(paper.title, paper.abstract)])
        near = np.argsort(-(vectors @ mine))[:5]
        return float(np.corrcoef(voter, fresh)[0, 1]), len(top), float(place[near].mean())

    off_topic = [p for p in old if "neural" not in (p.title + p.abstract).lower()]
    firsts = [(p, -1) for p in off_topic[:3]] + [(p, 1) for p in old[:3]]
    for paper, vote in firsts:  # before: agreement 0.21-0.71, 0-4 of the ten kept ...
        store.record_vote("voter", paper.paper_id, vote, via="test", now=NOW)
        agreement, kept, moved = compared(paper)
        assert agreement > 0.95 and kept >= 7, (paper.title, vote, agreement, kept)
        # ... while the papers nearest the voted one move its way (5-21 places of 109 here)
        assert -vote * moved > 2, (paper.title, vote, moved)
        store.remove_vote("voter", paper.paper_id)
    # forty votes are the reader's own taste: they move the digest as before
    for p in old[:40]:
        vote = 1 if "graph" in (p.title + p.abstract).lower() else -1
        store.record_vote("voter", p.paper_id, vote, via="test", now=NOW)
    agreement, _, _ = compared(old[0])
    assert agreement < 0.9, agreement


def test_papers_earn_their_weight_beside_a_text_and_have_it_all_without_one():
    phrased = signals(unit(1, 0), [unit(0, 1)], ["liked"], phrases=[unit(1, 0)])
    many = signals(unit(1, 0), [unit(0, 1)] * 40, ["liked"] * 40)
    alone = signals(None, [unit(0, 1)], ["disliked"])
    only_text = signals(unit(1, 0))
    shares = semantic.evidence_shares([phrased, many, alone, only_text], 40)
    np.testing.assert_allclose(shares, [1 / 41, 40 / 80, 1, 1], rtol=1e-6)
    corpus = corpus_of(np.random.default_rng(0).normal(size=(50, 2)))
    readers = [phrased, alone]
    profiles = semantic.build_profiles(readers, corpus, W)
    bare = semantic.build_profiles(
        readers, corpus, replace(W, evidence_prior=0, neighbour_evidence_prior=0)
    )
    # the centroid moves every paper: 40; the contrast and the nearest-papers vote move the
    # reader's papers' neighbours most: 10
    np.testing.assert_allclose(profiles.linear_fade, bare.linear_fade * [1 / 41, 1], rtol=1e-6)
    np.testing.assert_allclose(profiles.up_fade, bare.up_fade * [1 / 11, 1], rtol=1e-6)
    np.testing.assert_allclose(profiles.down_fade, bare.down_fade * [1 / 11, 1], rtol=1e-6)
    np.testing.assert_array_equal(profiles.directions, bare.directions)


def test_a_text_without_phrases_keeps_its_term_when_its_reader_votes():
    # Such a text (a lone generic word, stop words) is matched by the centroid alone, so
    # scaling the centroid by the papers' share dropped the text with it at the first vote
    # (found in review: the term's spread went 2.5 -> 0.06). Its papers earn their share inside
    # the centroid instead: the term keeps its weight and turns towards them as they add up.
    corpus = corpus_of(np.random.default_rng(0).normal(size=(200, 2)))
    text_alone = signals(unit(1, 0))
    first = signals(unit(1, 0), [unit(0, 1)], ["liked"])
    forty = signals(unit(1, 0), [unit(0, 1)] * 40, ["liked"] * 40)
    got = semantic.build_profiles([text_alone, first, forty], corpus, W)
    bare = semantic.build_profiles([text_alone, first, forty], corpus, replace(W, evidence_prior=0))
    np.testing.assert_array_equal(got.linear_fade, bare.linear_fade)  # the term's whole weight

    def angle(row: np.ndarray) -> float:
        return float(np.arctan2(row[1], row[0]))

    # the first paper turns the text's direction a little; forty, part of the way to where the
    # papers at their whole weight take it
    towards = angle(bare.directions[1])
    assert 0 < angle(got.directions[1]) - angle(got.directions[0]) < 0.1 * towards
    assert angle(got.directions[1]) < angle(got.directions[2]) < angle(bare.directions[2])


def test_a_text_without_phrases_does_not_fade_out_as_its_readers_votes_age():
    # the centroid's papers are decayed inside it; fading the whole term too (linear_fade)
    # took a phrase-less text's term from 2.5 to 0.28 standard deviations once the reader's
    # one vote was two years old (found in review)
    corpus = corpus_of(np.random.default_rng(0).normal(size=(200, 2)))
    old = signals(unit(1, 0), [unit(0, 1)], ["liked"], ages=[720.0])
    phrased = signals(unit(1, 0), [unit(0, 1)], ["liked"], ages=[720.0], phrases=[unit(1, 0)])
    got = semantic.build_profiles([old, phrased], corpus, W)
    assert got.linear_fade[0] == 1.0
    assert 0 < got.linear_fade[1] < 0.2 / 41  # there the text has its own term: the votes fade


def test_a_text_the_model_read_nothing_in_is_no_text_to_shrink_towards():
    # a static model gives a text of words it does not know a zero vector
    zero = signals(np.zeros(2, dtype=np.float32), [unit(0, 1)], ["liked"])
    assert semantic.evidence_shares([zero], 40)[0] == 1.0


def test_one_blas_thread_limits_blas_inside_and_gives_back_what_it_found():
    # the limit is taken from one controller found once a process: it must still set every BLAS
    # library to one thread each time, and restore what was there, nested or not
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == {2}
        for _ in range(2):  # the second time through the cached controller
            with semantic.one_blas_thread():
                assert blas_threads() == {1}
                with semantic.one_blas_thread():
                    assert blas_threads() == {1}
                assert blas_threads() == {1}
            assert blas_threads() == {2}


def test_a_phrase_nothing_in_the_feed_is_about_names_no_pick_close_in_meaning(tmp_path):
    """The nearest 5 % of a feed are always 5 % of it: a theory reader's "category theory" was
    "close in meaning" to few-shot object detection, "Sierpinski cones" to attention in the
    thalamus (found in review). A pick must also be as close to the phrase as papers are to
    phrases of their own; here none is, and what nothing explains is left out."""
    from paperwire import pipeline
    from paperwire.config import parse_config
    from paperwire.store import Store

    config = parse_config(
        "feeds:\n  - url: bundled:sample-arxiv-cs.xml\n    name: cs\nsubscribers:\n"
        "  - id: theory\n    email: theory@example.org\n"
        '    interests: "category theory, Sierpinski cones"\n',
        env={},
    )
    now = dt.datetime.now(dt.UTC)
    with Store(tmp_path / "paperwire.db") as store:
        assert pipeline.fetch_all(store, config, now=now).new > 100
        picks = worded.compose(store, config, now=now)["theory"].picks
    said = [r for p in picks for r in p.reasons if r.startswith("close in meaning")]
    assert said == [], said


def test_with_the_encoder_off_a_readers_papers_count_whole_from_the_first(store, make_config):
    # TF-IDF alone learned faster from the first votes at their whole weight (compose passes
    # rank.Weights.evidence_prior 0 when ranking.embeddings is off)
    papers = neural_network_papers()
    store.add_papers(papers, now=NOW - dt.timedelta(days=1))
    store.record_vote("voter", papers[0].paper_id, -1, via="test", now=NOW)
    ids = [p.paper_id for p in papers[1:]]
    off = make_config(FIRST_VOTES.replace("subscribers:\n", SEMANTIC_OFF, 1))
    shipped = digest.score_matrix(store, off, None, ids, now=NOW)
    whole = digest.score_matrix(
        store, off, None, ids, now=NOW, weights=replace(digest.DEFAULT_WEIGHTS, evidence_prior=0)
    )
    shrunk = digest.score_matrix(
        store, off, None, ids, now=NOW, weights=replace(digest.DEFAULT_WEIGHTS, evidence_prior=40)
    )
    np.testing.assert_array_equal(shipped, whole)
    np.testing.assert_array_equal(shipped, shrunk)  # whatever the weights say
    assert not np.array_equal(shipped[0], shipped[1])  # and the vote counts


def test_the_profile_page_weighs_a_readers_papers_as_their_ranking_does(store, make_config):
    # with the encoder off the ranking gives a first 👍 its whole weight beside the text, and so
    # must the page that shows what the ranking learned (found in review: it shrank it to 1/41)
    from paperwire.rank.scope import scope as corpus_scope
    from paperwire.web.profile_cache import ProfileCache

    papers = neural_network_papers()
    store.add_papers(papers, now=NOW - dt.timedelta(days=1))
    store.record_vote("voter", papers[0].paper_id, 1, via="test", now=NOW)
    share = {}
    for text in (FIRST_VOTES, FIRST_VOTES.replace("subscribers:\n", SEMANTIC_OFF, 1)):
        config = make_config(text)
        pages = ProfileCache(store.path, wait=60)
        terms = pages.terms(
            store, config.subscriber("voter"), override=(None, None),
            votes=store.votes(["voter"]), now=NOW, scope=corpus_scope(store, config),
            encoder_on=config.ranking.embeddings is not None,
        )  # fmt: skip
        pages.close(5)
        assert terms.learned is not None
        written = set(interest_phrases(config.subscriber("voter").interests))
        weights = {t.term: t.weight for t in terms.learned.positive}
        from_paper = max(w for t, w in weights.items() if t not in written)
        share[config.ranking.embeddings is not None] = from_paper / max(weights.values())
    assert share[False] > 0.1 > 0.01 > share[True], share
