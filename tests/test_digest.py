"""digest.compose over a real SQLite store: exclusions, cold start, reasons, score_matrix."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from paperwire import digests as worded
from paperwire.paper import Paper
from paperwire.rank import compose as digest
from paperwire.rank import evidence
from paperwire.rank.paper_phrases import best_key_phrases, key_phrases
from paperwire.rank.session import RankingSession

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)

PAPERS = [
    ("2611.00001", "KV cache quantization for long context LLM inference",
     "We quantize the key value cache to 2 bits and keep long context accuracy on GPUs."),
    ("2611.00002", "Compressing the KV cache of transformer inference",
     "Low-bit quantization and eviction shrink the KV cache of large language models."),
    ("2611.00003", "Speculative decoding for faster LLM inference",
     "A small draft model proposes tokens that the large model verifies in parallel."),
    ("2611.00004", "Retrieval augmented generation with dense passage retrieval",
     "Dense retrieval of passages improves open-domain question answering."),
    ("2611.00005", "Reranking retrieved passages for retrieval augmented generation",
     "A cross-encoder reranker picks better passages for the generator."),
    ("2611.00006", "Protein structure prediction with deep learning",
     "Multiple sequence alignments and attention predict protein folds."),
    ("2611.00007", "Weak lensing maps of dark matter around galaxy clusters",
     "We map dark matter with weak gravitational lensing of background galaxies."),
    ("2611.00008", "Smart contract vulnerabilities on the Ethereum blockchain",
     "Static analysis finds reentrancy bugs in smart contracts."),
]  # fmt: skip

CONFIG = """\
subscribers:
  - id: ada
    email: ada@example.org
    interests: "KV cache quantization, efficient LLM inference"
    digest_size: 3
  - id: bob
    email: bob@example.org
    digest_size: 3
  - id: cy
    email: cy@example.org
    interests: "retrieval augmented generation"
    digest_size: 3
"""


@pytest.fixture
def config(make_config):
    return make_config(CONFIG)


@pytest.fixture
def stocked(store):
    papers = [
        Paper(pid, title, abstract, url=f"https://arxiv.org/abs/{pid}", source="arxiv")
        for pid, title, abstract in PAPERS
    ]
    store.add_papers(papers, now=NOW - dt.timedelta(days=1))
    return store


def ids(d: worded.Digest) -> list[str]:
    return [p.paper_id for p in d.picks]


def test_interests_pick_the_matching_papers_with_reasons(stocked, config):
    digests = worded.compose(stocked, config, now=NOW)
    ada = digests["ada"]
    # the three papers on LLM inference, the one on KV cache quantization first (MMR may put
    # the speculative-decoding paper before the second KV cache paper: it says something new)
    assert ids(ada)[0] == "2611.00001"
    assert set(ids(ada)) == {"2611.00001", "2611.00002", "2611.00003"}
    assert ada.candidates == len(PAPERS)
    top = ada.picks[0]
    # the reader's own phrase first, then key phrases written in the paper
    assert top.reasons[0] == "matches your interest “KV cache quantization”"
    text = f"{top.title} {top.paper['abstract']}"
    for reason in top.reasons[1:]:
        assert reason.startswith("about “") and reason[7:-1] in text
    assert set(ids(digests["cy"])[:2]) == {"2611.00004", "2611.00005"}


@pytest.mark.parametrize("ranking", ["", "ranking: {embeddings: off}\n"])
def test_topics_not_wanted_push_their_papers_down_for_that_reader_only(
    stocked, make_config, ranking
):
    config = make_config(
        ranking
        + """\
subscribers:
  - id: plain
    email: plain@example.org
    interests: "efficient LLM inference"
  - id: picky
    email: picky@example.org
    interests: "efficient LLM inference"
    not_interested: "speculative decoding"
"""
    )
    paper_ids = [p for p, _, _ in PAPERS]
    plain, picky = digest.score_matrix(stocked, config, None, paper_ids, now=NOW)
    speculative = paper_ids.index("2611.00003")
    # the speculative-decoding paper loses the most, and falls below the KV-cache paper that
    # the plain reader ranks under it; the readers' other papers keep their order
    lowered = plain - picky
    assert np.argmax(lowered) == speculative
    assert plain[speculative] > plain[0] and picky[speculative] < picky[0]
    others = [i for i in range(len(paper_ids)) if i != speculative]
    assert list(np.argsort(-plain[others])) == list(np.argsort(-picky[others]))
    digests = worded.compose(stocked, config, now=NOW, limit=1)
    assert ids(digests["plain"]) == ["2611.00003"] and ids(digests["picky"]) == ["2611.00001"]


def test_rated_and_sent_papers_are_never_picked_again(stocked, config):
    stocked.record_vote("ada", "2611.00001", 1, via="test", now=NOW - dt.timedelta(hours=2))
    stocked.record_vote("ada", "2611.00003", -1, via="test", now=NOW - dt.timedelta(hours=2))
    stocked.open_delivery(
        "ada", "digest", "2026-11-22", "email", message_id="<m@x>", content_hash="h",
        papers=[("2611.00002", 1.0, [])], now=NOW - dt.timedelta(hours=1),
    )  # fmt: skip
    # The delivery moved ada's window past these papers; widen it to see the exclusions work.
    since = NOW - dt.timedelta(days=3)
    ada = worded.compose(stocked, config, [config.subscriber("ada")], now=NOW, since=since)["ada"]
    assert ada.candidates == len(PAPERS) - 3  # the three are not candidates at all ...
    assert not {"2611.00001", "2611.00002", "2611.00003"} & set(ids(ada))
    # ... and nothing left is about her KV cache or LLM inference: no pick has a reason
    assert ids(ada) == []
    # Only ada's history is excluded: bob can still get them.
    bob = worded.compose(stocked, config, [config.subscriber("bob")], now=NOW, limit=8)["bob"]
    assert {"2611.00001", "2611.00002", "2611.00003"} <= set(ids(bob))


def test_a_paper_rated_while_the_run_goes_on_is_not_picked_for_its_reader(
    stocked, make_config, monkeypatch
):
    # a run reads who owns what (sent, rated, seeds) when it begins and each chunk's votes when
    # the chunk is scored; a vote imported in between (`feedback import`, `seeds import` beside
    # a daemon's digests) put the paper in the reader's profile but not among their own, and it
    # came back as their first pick, "like" itself (found in review)
    config = make_config(
        CONFIG + "  - id: dee\n    email: dee@example.org\n"
        '    interests: "KV cache quantization, efficient LLM inference"\n    digest_size: 3\n'
    )
    monkeypatch.setattr(digest, "SUBSCRIBER_CHUNK", 1)
    monkeypatch.setattr(digest, "SCORING_THREADS", 2)
    undisturbed = worded.compose(stocked, config, now=NOW)["dee"]
    top = undisturbed.picks[0].paper_id
    composed = worded.iter_compose(stocked, config, now=NOW)
    assert next(composed).subscriber.id == "ada"  # three chunks are gathered by now, not dee's
    stocked.record_vote("dee", top, 1, via="import", now=NOW)
    dee = [d for d in composed if d.subscriber.id == "dee"][0]
    assert top not in ids(dee)
    # the vote still counts: the paper most like the one she liked is named by it
    assert dee.picks and dee.picks[0].reasons[0].startswith("like “")


def test_a_liked_paper_pulls_its_neighbour_up_and_is_named(stocked, config):
    bob = config.subscriber("bob")
    before = ids(worded.compose(stocked, config, [bob], now=NOW, limit=8)["bob"])
    stocked.record_vote("bob", "2611.00004", 1, via="test", now=NOW - dt.timedelta(hours=1))
    after = worded.compose(stocked, config, [bob], now=NOW, limit=8)["bob"]
    assert "2611.00004" not in ids(after)
    assert ids(after)[0] == "2611.00005"
    assert before.index("2611.00005") > 0
    reasons = after.picks[0].reasons
    assert reasons[0] == (
        "like “Retrieval augmented generation with dense passage retrieval”, which you liked"
    )
    assert all(r.startswith("about “") for r in reasons[1:])


def test_similar_to_for_a_whole_chunk_names_what_each_digest_alone_names(
    stocked, config, monkeypatch
):
    """The chunk's "like <liked paper>" cosines come from one gather over the candidate Gram; they must
    name the liked paper the per-digest product names, for readers with several likes (bob's
    best match is his earlier like, the second in his list) and with likes no pick resembles."""
    votes = [("bob", "2611.00004", 1), ("bob", "2611.00006", 1), ("bob", "2611.00008", -1),
             ("ada", "2611.00001", 1), ("ada", "2611.00003", 1), ("cy", "2611.00007", 1)]  # fmt: skip
    for sub, paper, vote in votes:
        stocked.record_vote(sub, paper, vote, via="test", now=NOW - dt.timedelta(hours=1))
    batched = worded.compose(stocked, config, now=NOW, limit=6)
    monkeypatch.setattr(evidence, "similar_liked_many", lambda *args: None)  # per digest
    alone = worded.compose(stocked, config, now=NOW, limit=6)
    for sub in ("ada", "bob", "cy"):
        assert [(p.paper_id, p.reasons) for p in batched[sub].picks] == [
            (p.paper_id, p.reasons) for p in alone[sub].picks
        ]
    named = [r for d in batched.values() for p in d.picks for r in p.reasons if "like" in r]
    assert (
        "like “Retrieval augmented generation with dense passage retrieval”, which you liked"
    ) in named


def test_a_subscriber_with_no_data_still_gets_a_digest(stocked, config):
    bob = worded.compose(stocked, config, [config.subscriber("bob")], now=NOW)["bob"]
    assert len(bob.picks) == 3
    assert all(p.reasons == ["new in your feeds"] for p in bob.picks)


@pytest.mark.parametrize("ranking", ["", "ranking: {embeddings: off}\n"])
def test_a_reader_with_only_a_thumbs_down_still_gets_a_digest(stocked, make_config, ranking):
    """A 👎 says what to avoid, not what to read: on a feed without upvotes the reader is
    still new to it, and their picks say so (they used to be dropped for want of a reason,
    and the digest came out empty)."""
    config = make_config(ranking + CONFIG)
    stocked.record_vote("bob", "2611.00008", -1, via="test", now=NOW - dt.timedelta(hours=1))
    bob = worded.compose(stocked, config, [config.subscriber("bob")], now=NOW)["bob"]
    assert len(bob.picks) == 3 and "2611.00008" not in ids(bob)
    assert all(p.reasons == ["new in your feeds"] for p in bob.picks)


def test_interests_whose_words_the_corpus_weighs_nothing_yet_still_leave_out_the_unexplained(
    store, make_config
):
    """Past 50 papers a term in fewer than two of them weighs 0; a reader who wrote such
    words still said what they like: their digest must not fill up with papers under "new in
    your feeds", as a blank reader's does (a review caught this on the way)."""
    from paperwire.sources import parse_document

    from .conftest import FIXTURES

    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    store.add_papers(papers, now=NOW - dt.timedelta(hours=3))
    config = make_config(
        "ranking: {embeddings: off}\nsubscribers:\n"
        '  - {id: ada, email: a@example.org, interests: "speculative decoding, KV cache",'
        " digest_size: 5}\n"
    )
    ada = worded.compose(store, config, now=NOW)["ada"]
    assert ada.picks and all("new in your feeds" not in p.reasons for p in ada.picks)


def test_popular_papers_lead_a_cold_start_digest(store, config):
    papers = [
        Paper(pid, title, abstract, url=f"https://arxiv.org/abs/{pid}", source="hf",
              upvotes=votes)
        for (pid, title, abstract), votes in zip(PAPERS, [1, 2, 90, 3, 1, 40, 2, 1], strict=True)
    ]  # fmt: skip
    store.add_papers(papers, now=NOW - dt.timedelta(days=1))
    bob = worded.compose(store, config, [config.subscriber("bob")], now=NOW)["bob"]
    assert ids(bob)[:2] == ["2611.00003", "2611.00006"]
    assert [p.reasons for p in bob.picks[:2]] == [
        ["popular on Hugging Face: 90 upvotes"],
        ["popular on Hugging Face: 40 upvotes"],
    ]
    # the third has fewer upvotes than the candidates' average: for a reader who told us
    # nothing, it is simply new in their feeds
    assert bob.picks[2].reasons == ["new in your feeds"]


def test_only_papers_after_the_window_start_are_candidates(stocked, config):
    late = Paper("2611.00009", "KV cache eviction policies", "Which KV cache entries to keep.")
    stocked.add_papers([late], now=NOW - dt.timedelta(hours=1))
    since = NOW - dt.timedelta(hours=2)
    ada = worded.compose(stocked, config, [config.subscriber("ada")], now=NOW, since=since)["ada"]
    assert ids(ada) == ["2611.00009"]
    assert ada.candidates == 1


def test_score_matrix_matches_compose(stocked, config):
    subs = [config.subscriber("ada"), config.subscriber("cy")]
    paper_ids = [pid for pid, _, _ in PAPERS] + ["2611.99999"]
    matrix = digest.score_matrix(stocked, config, subs, paper_ids, now=NOW)
    assert matrix.shape == (2, len(PAPERS) + 1)
    assert np.isnan(matrix[:, -1]).all()  # not in the store
    digests = worded.compose(stocked, config, subs, now=NOW)
    for row, sub in enumerate(subs):
        for pick in digests[sub.id].picks:
            col = paper_ids.index(pick.paper_id)
            assert matrix[row, col] == pytest.approx(pick.score, rel=1e-5)
    assert paper_ids[int(np.nanargmax(matrix[0]))] in {"2611.00001", "2611.00002"}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("ranking", ["", "ranking: {embeddings: off}\n"])
def test_iter_compose_yields_the_digests_of_compose_a_chunk_at_a_time(
    stocked, make_config, monkeypatch, ranking, threads
):
    # embeddings off, the run's candidate Gram serves both the scores of the chunk being
    # worked out and the "like your paper" reasons of the chunk before it, on two threads
    config = make_config(ranking + CONFIG)
    stocked.record_vote("bob", "2611.00004", 1, via="test", now=NOW - dt.timedelta(hours=1))
    whole = worded.compose(stocked, config, now=NOW)  # one chunk of three subscribers
    monkeypatch.setattr(digest, "SUBSCRIBER_CHUNK", 1)
    monkeypatch.setattr(digest, "SCORING_THREADS", threads)
    chunks = []  # the subscribers whose signals were read, per chunk, as they were read
    real = digest.subscriber_signals

    def spy(store, subscribers, *args):
        chunks.append([s.id for s in subscribers])
        return real(store, subscribers, *args)

    monkeypatch.setattr(digest, "subscriber_signals", spy)
    composed = worded.iter_compose(stocked, config, now=NOW)
    first = next(composed)
    # the next chunks, one a scoring thread, are scored while this one is explained, and no
    # further one is started before this one is taken
    assert chunks == [["ada"], ["bob"], ["cy"]][: 1 + threads]
    rest = list(composed)
    assert chunks == [["ada"], ["bob"], ["cy"]]
    assert [d.subscriber.id for d in [first, *rest]] == ["ada", "bob", "cy"]
    for d in [first, *rest]:
        same = whole[d.subscriber.id]
        assert (d.since, d.candidates) == (same.since, same.candidates)
        assert [p.as_json() for p in d.picks] == [p.as_json() for p in same.picks]
    assert rest[0].picks[0].reasons[0].startswith("like “")


def test_a_chunk_that_fails_on_a_scoring_thread_fails_the_run_with_its_error(
    stocked, config, monkeypatch
):
    # the digests before it are given; the error is the scoring thread's own, not a hang
    monkeypatch.setattr(digest, "SUBSCRIBER_CHUNK", 1)
    real = digest.rank.build_profiles_from_signals

    def profiles(model, signals, *args, **kwargs):
        if not signals[0].interests:  # bob's chunk, the second (scored beside ada's)
            raise MemoryError("the second chunk")
        return real(model, signals, *args, **kwargs)

    monkeypatch.setattr(digest.rank, "build_profiles_from_signals", profiles)
    composed = worded.iter_compose(stocked, config, now=NOW)
    assert next(composed).subscriber.id == "ada"
    with pytest.raises(MemoryError, match="the second chunk"):
        next(composed)


def test_a_run_of_many_chunks_collects_only_each_chunk_s_garbage_and_frees_the_rest_after(
    stocked, config, monkeypatch
):
    # what is older than the chunk in hand is frozen (a full collection walked a 20,000-reader
    # run's ~350,000 live objects every 1.7 s); a cycle made during a chunk is still collected;
    # one dropped from before it only once the run ends, ends early or fails
    import gc
    import weakref

    class Node:
        pass

    def cycle() -> weakref.ref:
        node = Node()
        node.me = node  # garbage only the cyclic collector finds
        return weakref.ref(node)

    monkeypatch.setattr(digest, "SUBSCRIBER_CHUNK", 1)
    whole = worded.compose(stocked, config, now=NOW)
    for ends in ("exhausted", "closed"):
        older = Node()
        older.me, older_ref = older, weakref.ref(older)
        composed = worded.iter_compose(stocked, config, now=NOW)
        try:
            first = next(composed)
            assert gc.get_freeze_count() > 0
            assert [p.as_json() for p in first.picks] == [p.as_json() for p in whole["ada"].picks]
            del older
            made_now = cycle()
            gc.collect()
            assert made_now() is None  # this chunk's garbage: collected as ever
            assert older_ref() is not None  # made before the chunk: frozen until the run ends
            if ends == "exhausted":
                assert [d.subscriber.id for d in composed] == ["bob", "cy"]
        finally:  # a failed assertion's traceback must not keep the run (and the freeze)
            composed.close()
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert older_ref() is None

    # a run that fails unfreezes too: a scoring thread's error ends it
    real = digest.rank.build_profiles_from_signals

    def profiles(model, signals, *args, **kwargs):
        if not signals[0].interests:  # bob's chunk, the second
            raise MemoryError("the second chunk")
        return real(model, signals, *args, **kwargs)

    monkeypatch.setattr(digest.rank, "build_profiles_from_signals", profiles)
    composed = worded.iter_compose(stocked, config, now=NOW)
    next(composed)
    assert gc.get_freeze_count() > 0
    with pytest.raises(MemoryError, match="the second chunk"):
        next(composed)
    assert gc.get_freeze_count() == 0


def test_digest_json_streams_what_compose_gives_one_subscriber_a_line(
    tmp_path, stocked, monkeypatch
):
    import json

    from click.testing import CliRunner

    from paperwire import cli
    from paperwire.config import load_config

    (tmp_path / "subscribers.yaml").write_text(CONFIG)
    stocked.record_vote("cy", "2611.00001", -1, via="test", now=NOW - dt.timedelta(hours=1))
    monkeypatch.setattr(cli, "utcnow", lambda: NOW)
    where = ["--config", str(tmp_path / "subscribers.yaml"), "--db", str(stocked.path)]
    result = CliRunner().invoke(cli.cli, [*where, "digest", "--json"])
    assert result.exit_code == 0, result.output
    expected = worded.compose(stocked, load_config(tmp_path / "subscribers.yaml"), now=NOW)
    printed = json.loads(result.output)
    assert list(printed) == ["ada", "bob", "cy"]
    assert printed == {sid: [p.as_json() for p in d.picks] for sid, d in expected.items()}
    lines = result.output.splitlines()
    assert (lines[0], lines[-1]) == ("{", "}")
    assert [json.loads("{" + line.rstrip(",") + "}") for line in lines[1:-1]] == [
        {sid: picks} for sid, picks in printed.items()
    ]
    one = CliRunner().invoke(cli.cli, [*where, "digest", "--subscriber", "cy", "--json"])
    assert json.loads(one.output) == printed["cy"]


def test_the_explainer_names_per_chunk_what_best_key_phrases_names_per_pick(stocked):
    from paperwire.rank import core as rank

    corpus = RankingSession().corpus(stocked)
    cols = np.arange(len(corpus.ids))
    signals = [
        rank.Signals(interests="KV cache quantization, LLM inference", seed_rows=[], vote_rows=[]),
        rank.Signals(interests="retrieval augmented generation", seed_rows=[4], vote_rows=[]),
        # words apart: a profile that weighs "KV" and "cache" but holds no "KV cache"
        rank.Signals(interests="KV stores; cache misses; quantization", seed_rows=[], vote_rows=[]),
    ]
    profiles = rank.build_profiles_from_signals(
        corpus.model, signals, corpus.matrix, NOW, rank.Weights(classifier_min_likes=10**6)
    )
    profiles.matrix.sort_indices()
    wants = [(row, col, n, skip) for row in (0, 1, 2) for col in cols.tolist()
             for n, skip in ((3, []), (1, ["KV cache"]), (0, []))]  # fmt: skip
    got = evidence.ProfilePhrases(corpus, cols).best(profiles.matrix, wants)
    expected = []
    for row, col, n, skip in wants:
        found = key_phrases(corpus.model, corpus.texts(stocked)[col])
        mine = profiles.matrix[row].toarray()[0, found.columns].astype(np.float64)
        paper = corpus.matrix[col].toarray()[0, found.columns].astype(np.float64)
        expected.append(best_key_phrases(found, mine * paper, n, tuple(skip)))
    assert got == expected
    assert sum(len(names) for names in got) >= 6  # profiles that weigh something
    assert all(names == [] for (_, _, n, _), names in zip(wants, got, strict=True) if n == 0)
