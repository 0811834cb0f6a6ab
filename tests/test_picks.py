"""What a reader gets, on real feed data: never their own papers back, whole interest phrases
before their words, reasons they recognise, picks shown in the order they are sent."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from paperwire import digests as worded
from paperwire.cli import cli
from paperwire.paper import Paper
from paperwire.rank import compose as digest
from paperwire.rank import core as rank
from paperwire.rank.paper_phrases import best_key_phrases, key_phrases
from paperwire.rank.phrases import interest_phrases, phrase_pattern
from paperwire.rank.session import RankingSession
from paperwire.sources import feed, hf_daily
from paperwire.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
KV_PAPER = "2504.06319"  # "Accelerating LLM Inference Throughput via Asynchronous KV Cache ..."


def rss(name: str) -> list[Paper]:
    return feed.parse((FIXTURES / name).read_bytes(), source=name)[0]


def hf() -> list[Paper]:
    # the first 10 papers of a real Daily Papers response
    data = json.loads((FIXTURES / "hf_daily_papers_2026-06-12_sotawhat.json").read_text())[:10]
    return hf_daily.parse(data, source="hf-daily")


def neural_network_papers() -> list[Paper]:
    rows = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    return [
        Paper(r["url"].rsplit("/", 1)[1], r["title"], r["abstract"], url=r["url"], source="arxiv")
        for r in map(json.loads, rows)
    ]


def one_reader(make_config, interests: str, seeds: list[str] = ()) -> object:
    return make_config(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        f"    interests: {json.dumps(interests)}\n    seed_papers: {json.dumps(list(seeds))}\n"
    )


# -- own papers never come back --------------------------------------------------------------


@pytest.fixture
def feeds_store(store: Store) -> Store:
    """cs (v1), its cs.LG cross-lists, the replaced (v3) re-announcements a day later, and a
    Hugging Face Daily Papers response: every paper once, under its bare arXiv id."""
    store.add_papers(rss("arxiv_rss_cs.xml") + rss("arxiv_rss_cs_LG.xml"), now=NOW - 2 * DAY)
    store.add_papers(rss("arxiv_rss_cs_replaced.xml") + hf(), now=NOW - DAY)
    return store


def test_one_paper_per_arxiv_id_across_feeds_and_versions(feeds_store: Store):
    replaced = {p.paper_id for p in rss("arxiv_rss_cs_replaced.xml")}
    cs = {p.paper_id for p in rss("arxiv_rss_cs.xml")}
    assert replaced <= cs  # the re-announcements are papers cs already carried (v1)
    ids = {p.paper_id for p in rss("arxiv_rss_cs_LG.xml")} | cs | {p.paper_id for p in hf()}
    assert feeds_store.count_papers() == len(ids)
    assert feeds_store.paper(sorted(replaced)[0])["version"] == 3


@pytest.mark.parametrize(
    "given",
    [KV_PAPER, f"{KV_PAPER}v2", f"https://arxiv.org/abs/{KV_PAPER}v3", f"arXiv:{KV_PAPER}"],
)
def test_a_seed_paper_is_never_picked_however_it_is_written(feeds_store, make_config, given):
    title = feeds_store.paper(KV_PAPER)["title"]
    since = NOW - 3 * DAY
    # Without the seed, a reader whose interests are that paper's own title gets it first ...
    plain = one_reader(make_config, title)
    first = worded.compose(feeds_store, plain, now=NOW, since=since, limit=5)["ada"]
    assert first.picks[0].paper_id == KV_PAPER
    # ... with it as a seed, in any spelling, never, and nothing is "like" itself.
    config = one_reader(make_config, title, [given])
    assert digest.seed_ids(config.subscriber("ada")) == [KV_PAPER]
    ada = worded.compose(feeds_store, config, now=NOW, since=since, limit=500)["ada"]
    assert KV_PAPER not in [p.paper_id for p in ada.picks]
    assert ada.candidates == feeds_store.count_papers() - 1
    like_seed = [p for p in ada.picks if p.reasons[0].startswith(f"like “{title}”")]
    assert 3 <= len(like_seed) < len(ada.picks) <= ada.candidates
    for pick in ada.picks:
        assert not any(r.startswith(f"like “{pick.title}”") for r in pick.reasons)


def test_voted_sent_and_alerted_papers_never_come_back_from_any_source(feeds_store, make_config):
    hf_paper = hf()[0].paper_id
    cross = sorted({p.paper_id for p in rss("arxiv_rss_cs_LG.xml")} & {p.paper_id for p in rss("arxiv_rss_cs.xml")})[0]  # fmt: skip
    replaced = sorted(p.paper_id for p in rss("arxiv_rss_cs_replaced.xml"))
    config = one_reader(
        make_config, "large language models", [f"https://arxiv.org/abs/{hf_paper}v1"]
    )
    feeds_store.record_vote("ada", cross, 1, via="test", now=NOW - DAY)
    feeds_store.record_vote("ada", replaced[0], -1, via="test", now=NOW - DAY)
    feeds_store.open_delivery(
        "ada", "alert", replaced[1], "email", message_id="<a@x>", content_hash="h",
        papers=[(replaced[1], 9.0, [])], now=NOW - DAY,
    )  # fmt: skip
    feeds_store.open_delivery(
        "ada", "digest", "2026-11-22", "email", message_id="<d@x>", content_hash="h2",
        papers=[(replaced[2], 5.0, [])], now=NOW - DAY,
    )  # fmt: skip
    own = {hf_paper, cross, replaced[0], replaced[1], replaced[2]}
    ada = worded.compose(feeds_store, config, now=NOW, since=NOW - 3 * DAY, limit=500)["ada"]
    picked = {p.paper_id for p in ada.picks}
    assert not own & picked
    assert ada.candidates == feeds_store.count_papers() - len(own) and picked


# -- one phrase, not its words ---------------------------------------------------------------


def test_interest_phrases_split_on_commas_semicolons_and_new_lines():
    text = "KV cache, long-context inference;\nspeculative decoding\n\n kv CACHE ,"
    assert interest_phrases(text) == ["KV cache", "long-context inference", "speculative decoding"]  # fmt: skip


def test_a_phrase_matches_as_written_with_only_stop_words_between_its_words():
    stop = rank.TextModel().stop_words
    kv = phrase_pattern("eviction and quantization of the KV cache", stop)
    assert kv.search("joint eviction and quantization of KV caches")
    assert not kv.search("eviction, then quantization of the KV cache")
    bits = phrase_pattern("4-bit and 2-bit", stop)
    assert bits.search("weights in 4-bit and 2-bit") and not bits.search("8-bit 4-bit bit")
    gnn = phrase_pattern("graph neural networks", stop)
    assert gnn.search("a Graph Neural Network (GNN)") and not gnn.search("spiking neural networks")


def test_interests_vector_has_no_bigram_across_phrases():
    model = rank.TextModel()
    cols = set(model.transform_interests(["KV cache, long-context"]).indices.tolist())
    assert model.columns(["kv cache"])[0] in cols
    assert model.columns(["cache long"])[0] not in cols
    assert model.columns(["cache long"])[0] in set(model.transform(["KV cache, long-context"]).indices.tolist())  # fmt: skip


def test_a_whole_phrase_beats_papers_that_share_only_its_common_words(store, make_config):
    papers = neural_network_papers()
    store.add_papers(papers, now=NOW - DAY)
    config = one_reader(make_config, "graph neural networks")
    ids = [p.paper_id for p in papers]
    text = {p.paper_id: f"{p.title} {p.abstract}".lower() for p in papers}
    whole = [i for i in ids if re.search(r"graph neural networks?\b", text[i])]
    words_only = [i for i in ids if "neural network" in text[i] and i not in whole]
    spiking = [i for i in words_only if "spiking neural network" in text[i]]
    assert len(whole) >= 5 and len(spiking) >= 3  # real GNN and spiking papers

    def scores(weights):
        row = digest.score_matrix(store, config, None, ids, now=NOW, weights=weights)[0]
        return dict(zip(ids, row, strict=True))

    with_phrase = scores(digest.DEFAULT_WEIGHTS)
    without = scores(replace(digest.DEFAULT_WEIGHTS, phrase_match=0.0))
    # the whole phrase lifts exactly the papers that contain it ...
    for i in ids:
        lift = 1.0 if i in whole else 0.0
        assert with_phrase[i] - without[i] == pytest.approx(lift, abs=1e-5), i
    # ... so every paper with it is above every paper with only its words (spiking, quantum,
    # tropical "neural networks")
    assert min(with_phrase[i] for i in whole) > max(with_phrase[i] for i in words_only)
    top = worded.compose(store, config, now=NOW, since=NOW - 3 * DAY, limit=len(whole))["ada"]
    picked = {p.paper_id for p in top.picks}
    # none of the spiking / quantum / tropical "neural networks"; a paper about graph learning
    # that never writes the phrase may take the place of one that mentions it in passing (the
    # sentence encoder reads meaning: a poisoning attack on graph link prediction is closer to
    # "graph neural networks" than a LoRA paper citing GNNs)
    assert not picked & set(words_only)
    assert len(picked & set(whole)) >= len(whole) - 1
    for p in top.picks:
        if p.paper_id in whole:
            assert p.reasons[0] == "matches your interest “graph neural networks”"


# -- reasons a reader recognises -------------------------------------------------------------

NOISE = {"sd", "self", "powered", "lightweight", "experimental", "valuable", "kv", "cache long"}


def quoted(reason: str) -> str:
    return reason.split("“", 1)[1].rsplit("”", 1)[0]


def test_key_phrases_never_span_punctuation_stop_words_or_stand_alone():
    text = (
        "We study the KV cache, long-context inference and self-supervised SD models; "
        "a lightweight, LLM-powered agent with experimental results that are valuable."
    )
    # real papers as the corpus, and the text twice so that its terms are not too rare to count
    model = rank.TextModel().fit([p.text() for p in rss("arxiv_rss_cs.xml")] + [text, text])
    found = key_phrases(model, text).texts
    assert "KV cache" in found and "long-context" in found
    # "self-supervised" qualifies "SD models" and names no topic of its own (rank.topics)
    assert "self-supervised" not in found and "LLM-powered" not in found
    lowered = {f.lower() for f in found}
    assert not lowered & NOISE
    assert all(" " in f or "-" in f for f in found)  # no single words without the source's say
    assert "context inference" not in lowered and "cache long" not in lowered
    assert "inference self" not in lowered  # "and" between them is a stop word


def test_reasons_are_interest_phrases_liked_titles_or_key_phrases(feeds_store, make_config):
    config = one_reader(make_config, "KV cache, long-context; speculative decoding")
    feeds_store.record_vote("ada", KV_PAPER, 1, via="test", now=NOW - DAY)
    ada = worded.compose(feeds_store, config, now=NOW, since=NOW - 3 * DAY, limit=20)["ada"]
    liked_title = feeds_store.paper(KV_PAPER)["title"]
    assert ada.picks
    for pick in ada.picks:
        text = f"{pick.title}. {pick.paper['abstract']}"
        for reason in pick.reasons:
            said = quoted(reason) if "“" in reason else reason
            assert said.lower() not in NOISE, reason
            if reason.startswith(("matches your interest", "close to your interest",
                                  "close in meaning to your interest")):  # fmt: skip
                assert said in ("KV cache", "long-context", "speculative decoding")
            elif reason.startswith("like"):
                assert reason == f"like “{liked_title}”, which you liked"
                assert pick.paper_id != KV_PAPER
            elif reason.startswith("about"):
                # two words at least, as written in the paper or its source's keywords
                assert said in text or said in pick.paper["keywords"]
                assert " " in said or "-" in said
            else:
                assert re.fullmatch(r"popular on Hugging Face: \d+ upvotes?", reason), reason
    # the interest phrase is named when the paper contains it
    kv = [p for p in ada.picks if "kv cache" in f"{p.title} {p.paper['abstract']}".lower()]
    assert kv and all("matches your interest “KV cache”" in p.reasons for p in kv)


def test_hugging_face_ai_keywords_are_stored_and_named(store, make_config):
    papers = hf()
    assert all(p.keywords for p in papers)  # the feed's ai_keywords
    store.add_papers(papers, now=NOW - DAY)
    target = papers[2]  # "See What I See ...": ai_keywords include "KV-cache communication"
    assert "KV-cache communication" in target.keywords
    assert store.paper(target.paper_id)["keywords"] == target.keywords
    store.record_vote("ada", papers[2].paper_id, 1, via="test", now=NOW - DAY)
    store.add_papers(rss("arxiv_rss_cs.xml"), now=NOW - DAY)
    corpus = RankingSession().corpus(store)
    found = key_phrases(corpus.model, corpus.texts(store)[corpus.index[target.paper_id]], target.keywords)  # fmt: skip
    assert "KV-cache communication" in found.texts


# -- scores out of order ---------------------------------------------------------------------


def test_digest_prints_the_order_the_reader_gets_without_contradicting_scores(
    tmp_path, feeds_store, make_config
):
    config_path = tmp_path / "subscribers.yaml"
    config_path.write_text(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "KV cache, LLM inference, speculative decoding, quantization"\n'
    )
    config = one_reader(make_config, "KV cache, LLM inference, speculative decoding, quantization")
    feeds_store.close()
    with Store(feeds_store.path) as store:
        picks = worded.compose(store, config, now=dt.datetime.now(dt.UTC), since=NOW - 400 * DAY, limit=10)["ada"].picks  # fmt: skip
    scores = [p.score for p in picks]
    assert scores != sorted(scores, reverse=True)  # MMR reordered: the case the issue saw
    result = CliRunner().invoke(
        cli,
        ["--config", str(config_path), "--db", str(feeds_store.path), "digest", "--limit", "10",
         "--since", (NOW - 400 * DAY).strftime("%Y-%m-%d")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert [line.split(". ", 1)[1] for line in lines] == [f"{p.title}  ({p.paper_id})" for p in picks]  # fmt: skip
    assert not re.search(r"\[\d+\.\d+\]", result.output)


# -- fast with real votes: one product per digest --------------------------------------------


def test_most_similar_liked_is_one_product_and_never_the_paper_itself():
    model = rank.TextModel().fit([p.text() for p in rss("arxiv_rss_cs.xml")])
    papers = rss("arxiv_rss_cs.xml")
    vectors = model.transform([p.text() for p in papers])
    same = np.array([[True, False], [False, True], [False, False]])
    assert rank.most_similar_liked(vectors, [0, 5, 7], vectors, [0, 5]) == [0, 1, None]
    best = rank.most_similar_liked(vectors, [0, 5, 7], vectors, [0, 5], same)
    assert best[0] != 0 and best[1] != 1
    # the same products as scipy's, without its slicing and transposing
    rows_a, rows_b = [3, 0, 9, 3], [7, 1, 2]
    expected = (vectors[rows_a] @ vectors[rows_b].T).toarray()
    assert np.allclose(rank.dot_rows(vectors, rows_a, vectors, rows_b), expected, atol=1e-6)


def test_a_hash_collision_alone_is_never_a_reason():
    # "bit bit" (from interests "4-bit and 2-bit") and "vision tokens" share a hashed column
    model = rank.TextModel().fit([p.text() for p in rss("arxiv_rss_cs.xml")] + ["vision tokens"] * 2)  # fmt: skip
    assert model.columns(["bit bit"])[0] == model.columns(["vision tokens"])[0]
    profile = model.transform_interests(["4-bit and 2-bit"])
    profile.sort_indices()
    paper = "Fewer vision tokens for video LLMs"
    found = key_phrases(model, paper)
    assert "vision tokens" in found.texts
    vector = model.transform([paper]).toarray().ravel()
    dense = profile.toarray().ravel()
    contributions = dense[found.columns] * vector[found.columns]
    assert contributions.max() > 0  # the shared column raises the score ...
    assert best_key_phrases(found, contributions) == []  # ... but names nothing


def test_a_phrase_is_the_readers_only_where_their_own_text_holds_it_whole():
    # A two-month field test: a voter's picks said "about “user collects”", "about “ongoing
    # updates”": each word was somewhere in her liked papers, the phrase in none of them.
    paper = "Fewer vision tokens for video LLMs under a KV cache budget"
    texts = [p.text() for p in rss("arxiv_rss_cs.xml")] + [paper, "Pruning vision tokens"]
    model = rank.TextModel().fit(texts)
    vector = model.transform([paper]).toarray().ravel()

    def about(interests: str, keywords: tuple[str, ...] = ()) -> list[str]:
        found = key_phrases(model, paper, keywords)
        profile = model.transform_interests([interests]).toarray().ravel()
        return best_key_phrases(found, profile[found.columns] * vector[found.columns], 3)

    # both words, never side by side: no "vision tokens" of theirs (both words raise the score)
    assert about("computer vision; tokens of text") == []
    # ... the pair itself, in their words: named
    assert about("fewer vision tokens") == ["vision tokens"]
    # a source's two-word keyword (the hasher writes its words, then its pair) is judged by
    # its pair the same way, not by whichever of its columns comes first
    assert about("computer vision; tokens of text", ("Vision Tokens",)) == []
    assert about("fewer vision tokens", ("Vision Tokens",)) == ["Vision Tokens"]


# -- the once-per-run candidate Gram scores exactly what the sparse product scores -----------


def test_the_candidate_gram_path_picks_what_the_sparse_product_picks(
    feeds_store, make_config, monkeypatch
):
    # readers with interests only, interests + seeds, and 👍/👎 (Rocchio: under 3 positives)
    config = make_config(
        "subscribers:\n"
        "  - id: ada\n    email: ada@example.org\n"
        "    interests: 'speculative decoding, KV cache; LLM inference throughput'\n"
        f"  - id: bob\n    email: bob@example.org\n    interests: 'graph neural networks'\n"
        f"    seed_papers: ['{KV_PAPER}']\n"
        "  - id: cy\n    email: cy@example.org\n    interests: 'retrieval augmented generation'\n"
    )
    ids = sorted(feeds_store.papers_since(NOW - 10 * DAY))
    feeds_store.record_votes([("cy", ids[0], 1), ("cy", ids[1], -1)], via="import")
    since = NOW - 3 * DAY

    def digests():
        return worded.compose(feeds_store, config, now=NOW, since=since, limit=10)

    with_gram = digests()
    monkeypatch.setattr(digest, "MAX_DENSE_SIMILARITY", 0)  # no Gram: one product per chunk
    without = digests()
    for sub in ("ada", "bob", "cy"):
        got, expected = with_gram[sub].picks, without[sub].picks
        assert [p.paper_id for p in got] == [p.paper_id for p in expected], sub
        assert [p.reasons for p in got] == [p.reasons for p in expected], sub
        np.testing.assert_allclose(
            [p.score for p in got], [p.score for p in expected], rtol=0, atol=1e-4
        )
        # ten at most: a pick nothing of the reader's explains is left out (issue 27), and a
        # paper is "close in meaning" only as close as papers are to their own phrases (ada's
        # "LLM inference throughput" on these 60 papers: four picks)
        assert 3 <= len(got) <= 10 and all(p.reasons for p in got)
