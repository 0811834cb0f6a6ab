"""The crowd prior (upvotes) orders papers of similar relevance and never lifts an off-topic
paper over an on-topic one, on a real Hugging Face Daily Papers response (issue 14)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from paperwire import digests as worded
from paperwire.rank import compose as digest
from paperwire.rank import core as rank
from paperwire.sources import parse_document

FIXTURE = Path(__file__).parent / "fixtures" / "hf_daily_papers_2026-06-12_sotawhat.json"
NOW = dt.datetime(2026, 6, 13, 8, 0, tzinfo=dt.UTC)
EVOARENA = "2606.13681"  # agent-memory benchmark, 118 upvotes
ROBUST_U1 = "2606.08063"  # visual robustness of MLLMs, 74 upvotes
BROWSECOMP = "2606.13120"  # EvoBrowseComp: benchmarking search agents
VIA_SD = "2606.12243"  # speculative decoding, 14 upvotes
DENSE_LATENT = "2606.13594"  # latent KV-cache communication between agents, 3 upvotes
# 79c3e51's prior: the same weight, given to every paper whatever its relevance.
UNGATED = replace(rank.Weights(), popularity=1.0, popularity_bar=-np.inf)


@pytest.fixture
def daily(store):
    papers, _ = parse_document(FIXTURE.read_bytes(), source="hf-daily")
    store.add_papers(papers, now=NOW - dt.timedelta(hours=3))
    return store


CONFIG_TEXT = (
    "subscribers:\n"
    "  - id: ada\n"
    "    email: ada@example.org\n"
    '    interests: "speculative decoding, KV cache, LLM inference throughput, '
    'sparse attention"\n'
)


@pytest.fixture
def config(make_config):
    return make_config(CONFIG_TEXT)


def order(store, config, weights: rank.Weights) -> list[str]:
    picks = worded.compose(store, config, now=NOW, limit=30, weights=weights)["ada"].picks
    return [p.paper_id for p in picks]


def test_popular_off_topic_papers_rank_below_on_topic_ones(daily, config, make_config):
    ranked = order(daily, config, rank.Weights())
    upvotes = {p["paper_id"]: p["upvotes"] for p in daily.papers(ranked).values()}
    assert (upvotes[EVOARENA], upvotes[ROBUST_U1], upvotes[DENSE_LATENT]) == (118, 74, 3)
    for off_topic in (EVOARENA, ROBUST_U1):
        assert ranked.index(off_topic) > ranked.index(VIA_SD)
        assert ranked.index(off_topic) > ranked.index(DENSE_LATENT)
    # The same store under 79c3e51's ungated prior (and its TF-IDF-only ranking) is the issue:
    # EvoArena over a KV-cache paper.
    tfidf_only = make_config(
        "ranking: {embeddings: off}\n"
        + "\n".join(f"{line}" for line in CONFIG_TEXT.splitlines())
        + "\n"
    )
    before = order(daily, tfidf_only, UNGATED)
    assert before.index(EVOARENA) < before.index(DENSE_LATENT)


def test_crowd_lift_never_lifts_a_paper_below_the_bar_over_one_above():
    rng = np.random.default_rng(0)
    relevance = rng.normal(size=(50, 400)).astype(np.float32) * 2
    prior = rank.popularity_prior(rng.integers(0, 500, 400))
    weights = replace(rank.Weights(), popularity=3.0)
    scores = relevance + rank.crowd_lift(relevance, prior, weights)
    for row in range(relevance.shape[0]):
        above = relevance[row] >= weights.popularity_bar
        assert above.any() and (~above).any()
        assert scores[row, ~above].max() < scores[row, above].min()
        assert np.array_equal(scores[row, ~above], relevance[row, ~above])


def test_upvotes_order_papers_of_similar_relevance():
    relevance = np.array([[3.00, 3.05, -1.0]], dtype=np.float32)
    prior = rank.popularity_prior([90, 2, 500])
    scores = relevance + rank.crowd_lift(relevance, prior, rank.Weights())
    assert scores[0, 0] > scores[0, 1]  # the popular one of two equally relevant papers first
    assert scores[0, 2] == pytest.approx(-1.0)  # the most upvoted, off topic, gets nothing


def test_a_blank_profile_takes_the_prior_for_every_paper():
    relevance = np.zeros((1, 3), dtype=np.float32)
    prior = rank.popularity_prior([1, 50, 5])
    scores = relevance + rank.crowd_lift(relevance, prior, rank.Weights())
    assert np.argsort(-scores[0]).tolist() == [1, 2, 0]


@pytest.mark.parametrize("ranking", ["", "ranking: {embeddings: off}\n"])
def test_a_reader_who_only_says_what_they_do_not_want_gets_the_crowds_picks_less_those(
    daily, make_config, ranking
):
    config = make_config(
        ranking
        + "subscribers:\n"
        + "  - {id: blank, email: blank@example.org}\n"
        + '  - {id: dan, email: dan@example.org, not_interested: "agent memory, LLM agents"}\n'
        # interests with no word any paper has ("R" and "C" are not even tokens) say no more
        + '  - {id: cy, email: cy@example.org, interests: "R, C",'
        + ' not_interested: "agent memory, LLM agents"}\n'
    )
    digests = worded.compose(daily, config, now=NOW, limit=8)
    upvotes = {p["paper_id"]: p["upvotes"] for p in daily.papers([EVOARENA, ROBUST_U1]).values()}
    blank, dan, cy = ([p.paper_id for p in digests[s].picks] for s in ("blank", "dan", "cy"))
    assert blank[0] == EVOARENA and upvotes[EVOARENA] > upvotes[ROBUST_U1]  # the crowd's first
    # dan's scores say only what to avoid: the crowd still orders the rest (every paper is
    # lifted, not only those above a relevance bar no paper of his reaches), less agent memory
    assert len(dan) == 8 and ROBUST_U1 in dan[:2]
    assert EVOARENA not in dan or dan.index(EVOARENA) > dan.index(ROBUST_U1)
    # cy's words weigh nothing in TF-IDF: the same picks as dan's (the encoder reads something
    # into "R, C", so there only a full digest)
    assert cy == dan if "off" in ranking else len(cy) == 8


def test_a_kind_of_paper_named_in_one_word_among_the_topics_not_wanted_sinks(daily, make_config):
    """ "benchmarks" alone is no interest (it would match everything), but among the topics
    not wanted it names the papers a reader skips: the encoder's penalty applies to it (it
    used to be dropped as too generic, leaving TF-IDF's small pull: 1.25 -> 0.98, no place
    lost)."""
    config = make_config(
        "subscribers:\n"
        '  - {id: plain, email: p@example.org, interests: "LLM agents"}\n'
        '  - {id: nobench, email: n@example.org, interests: "LLM agents",'
        ' not_interested: "benchmarks"}\n'
    )
    ids = daily.papers_since(NOW - dt.timedelta(days=2))
    scores = digest.score_matrix(daily, config, None, ids, now=NOW)
    col = ids.index(BROWSECOMP)
    above = (scores > scores[:, [col]]).sum(axis=1)  # papers ranked above it, per reader
    assert scores[0, col] - scores[1, col] > 1  # standard deviations
    assert above[1] >= above[0] + 4


def test_each_reader_hears_the_crowd_as_much_as_their_likes_follow_it():
    scale = rank.upvote_scale([0, 1, 2, 3, 5, 8, 13, 40, 100, 300])
    weights = rank.Weights()
    fan, niche, none, extreme = rank.crowd_affinity(
        [[300, 100, 40], [0, 1, 0, 2], [None, None], [10**6] * 20], scale, weights
    )
    assert fan > 1 and niche == 0  # the crowd's favourites vs papers nobody upvotes
    assert none == 1  # no count to go on: the shared weight
    assert extreme == weights.popularity_affinity_cap
    # each like moves the share from 1 towards the reader's own, one step at a time
    steps = rank.crowd_affinity([[300] * k for k in range(6)], scale, weights)
    assert steps[0] == 1 and np.all(np.diff(steps) > 0) and np.all(np.diff(steps) < 0.5)
    assert rank.crowd_affinity([[300, 100, 40]], None, weights).tolist() == [1.0]
    # one absurd count in the store is read as a million: the fan keeps their share
    stored = np.random.default_rng(2).integers(0, 60, 2000).tolist()
    sane, hostile = rank.upvote_scale(stored), rank.upvote_scale([*stored, 2**63 - 1])
    assert rank.crowd_affinity([[300, 100, 40]], hostile, weights)[0] == pytest.approx(
        rank.crowd_affinity([[300, 100, 40]], sane, weights)[0], abs=0.05
    )
    assert rank.popularity_prior([2**63 - 1, 5, 0])[0] == rank.popularity_prior([10**6, 5, 0])[0]
    off = replace(weights, popularity_affinity_cap=0.0)
    assert rank.crowd_affinity([[300, 100, 40]], scale, off).tolist() == [1.0]


def test_a_reader_of_unupvoted_papers_gets_no_lift_and_a_fan_gets_more(daily, make_config):
    """Through the product's path (digest.score_matrix, what compose and alerts score with):
    the same interests, thumbs-up on the most or on the least upvoted papers of a real Hugging
    Face response."""
    papers = sorted(daily.papers(daily.papers_since(NOW - dt.timedelta(days=2))).values(),
                    key=lambda p: p["upvotes"])  # fmt: skip
    least, most = [p["paper_id"] for p in papers[:3]], [p["paper_id"] for p in papers[-3:]]
    assert max(p["upvotes"] for p in papers[:3]) < min(p["upvotes"] for p in papers[-3:])
    interests = '"speculative decoding, KV cache, LLM inference, agents"'
    config = make_config(
        "subscribers:\n"
        f"  - id: fan\n    email: fan@example.org\n    interests: {interests}\n"
        f"  - id: niche\n    email: niche@example.org\n    interests: {interests}\n"
        f"  - id: seeder\n    email: s@example.org\n    interests: {interests}\n"
        f"    seed_papers: {json.dumps(most)}\n"
    )
    # niche thumbs down the popular papers: a thumbs-down is not taste the crowd shares
    daily.record_votes(
        [("fan", p, 1) for p in most]
        + [("niche", p, 1) for p in least]
        + [("niche", p, -1) for p in most],
        via="import",
    )
    ids = [p["paper_id"] for p in papers if p["paper_id"] not in least + most]

    def scores(weights: rank.Weights) -> np.ndarray:
        return digest.score_matrix(daily, config, None, ids, now=NOW, weights=weights)

    # every paper past the relevance bar (24 candidates give few above it): the shares alone
    weights = replace(rank.Weights(), popularity_bar=-np.inf)
    shipped = scores(weights)
    bare = scores(replace(weights, popularity=0.0))
    shared = scores(replace(weights, popularity_affinity_cap=0.0))
    lifted = shipped[0] > bare[0]
    assert lifted.any()
    assert np.all(shipped[0, lifted] - bare[0, lifted] > shared[0, lifted] - bare[0, lifted])
    assert np.array_equal(shipped[1], bare[1])  # niche: no lift at all
    assert not np.array_equal(shared[1], bare[1])  # which one shared weight would have given
    seeded = shipped[2] > bare[2]  # seed papers are liked papers: the same share as the fan's
    assert seeded.any()
    assert np.all(shipped[2, seeded] - bare[2, seeded] > shared[2, seeded] - bare[2, seeded])
