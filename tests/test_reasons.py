"""Reasons a reader recognises (issue 27), on real feed data: a seeded reader is told which of
their own papers a pick resembles, interests are split only where the reader separated topics,
no boilerplate is ever a reason or a profile term, and no pick is there for no reason at all.

Two stores, each built once for the module: the 259 real arXiv abstracts of
``arxiv_cs_2025-04-11_neural_networks.jsonl`` with a real Hugging Face Daily Papers response,
and the bundled demo (the sample feeds and example-subscribers.yaml, as ``paperwire run --once``
fetches them). Both rank with the bundled sentence encoder, the default.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from importlib import resources
from pathlib import Path

import pytest

from paperwire import digests as worded
from paperwire import pipeline
from paperwire.config import parse_config
from paperwire.paper import Paper
from paperwire.rank import compose as digest
from paperwire.rank import core as rank
from paperwire.rank import evidence, topics
from paperwire.rank.paper_phrases import key_phrases_of, phrase_pairs
from paperwire.rank.phrases import interest_parts, interest_phrases
from paperwire.rank.session import RankingSession
from paperwire.render import reasons as reasons_words
from paperwire.sources import hf_daily
from paperwire.store import Store
from paperwire.web import profile

FIXTURES = Path(__file__).parent / "fixtures"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def quoted(reason: str) -> str | None:
    return reason.split("“", 1)[1].rsplit("”", 1)[0] if "“" in reason else None


def real_papers() -> list[Paper]:
    rows = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    papers = [
        Paper(r["url"].rsplit("/", 1)[1], r["title"], r["abstract"], url=r["url"], source="arxiv")
        for r in map(json.loads, rows)
    ]
    daily = json.loads((FIXTURES / "hf_daily_papers_2026-06-12_sotawhat.json").read_text())
    return papers + hf_daily.parse(daily, source="hf-daily")


def titled(papers: list[Paper], word: str, n: int) -> list[Paper]:
    """The first ``n`` papers with ``word`` in their title: how a reader's export would hold
    a few papers of their field (chosen by title, before looking at any digest)."""
    return [p for p in papers if word in p.title.lower()][:n]


# -- 1. a seeded reader is told which of their papers a pick resembles -----------------------

SEEDED = """\
subscribers:
  - id: lib
    email: lib@example.org
    digest_size: 10
  - id: thumbs
    email: thumbs@example.org
    digest_size: 10
  - id: seed
    email: seed@example.org
    seed_papers: ["{seed}"]
    digest_size: 10
  - id: nobody
    email: nobody@example.org
    digest_size: 10
  - id: one
    email: one@example.org
    interests: "graph neural networks"
    digest_size: 10
"""


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A reader who imported three graph papers from their library, one who thumbed up three
    robot papers, one with a pruning paper as a config seed, and one who told us nothing."""
    papers = real_papers()
    library, liked = titled(papers, "graph", 3), titled(papers, "robot", 3)
    seed = titled(papers, "pruning", 1)[0]
    one = titled(papers, "graph", 2)[1]
    with Store(tmp_path_factory.mktemp("seeded") / "paperwire.db") as store:
        store.add_papers(papers, now=NOW - DAY)
        store.add_seeds("lib", [p.paper_id for p in library], origin="library.bib")
        for paper in liked:
            store.record_vote("thumbs", paper.paper_id, 1, via="test", now=NOW - DAY)
        store.record_vote("one", one.paper_id, 1, via="test", now=NOW - DAY)
        config = parse_config(SEEDED.format(seed=seed.paper_id), env={})
        digests = worded.compose(store, config, now=NOW, since=NOW - 3 * DAY)
    return digests, {"lib": library, "thumbs": liked, "seed": [seed], "one": [one]}


@pytest.mark.parametrize(
    ("reader", "said"),
    [("lib", "in your library"), ("thumbs", ", which you liked"),
     ("seed", ", one of your seed papers")],
)  # fmt: skip
def test_a_seeded_reader_is_told_which_of_their_papers_a_pick_resembles(seeded, reader, said):
    digests, own = seeded
    picks = digests[reader].picks
    titles = {p.title for p in own[reader]}
    assert len(picks) >= 5
    citing = [p for p in picks if p.reasons[0].startswith("like “")]
    # none of these readers wrote interests: every pick is there because of their papers, and
    # most say which (the rest resemble none of them closely enough to name one)
    assert len(citing) > len(picks) / 2, [p.reasons for p in picks]
    for pick in citing:
        title = quoted(pick.reasons[0])
        assert title in titles and title != pick.title
        assert pick.reasons[0] == f"like “{title}”{'' if said.startswith(',') else ' '}{said}"
    # the reader's own papers never come back
    assert not {p.paper_id for p in picks} & {p.paper_id for p in own[reader]}


def test_one_liked_paper_is_named_under_a_few_picks_not_most_of_them(seeded):
    # a reader of "graph neural networks" with one 👍 read "like “<that paper>”" under 6 of
    # their 10 picks (found in review: a genomics paper under another reader's one 👍); it is
    # said under the closest few, where it is the only reason, and the rest say their next one
    digests, own = seeded
    picks = digests["one"].picks
    liked = f"like “{own['one'][0].title}”, which you liked"
    citing = [p for p in picks if liked in p.reasons]
    alone = [p for p in citing if p.reasons == [liked]]
    assert len(picks) == 10
    assert 1 <= len(citing) <= max(math.ceil(len(picks) / 3), len(alone) + 1)
    assert all(p.reasons for p in picks)
    # the picks that no longer name it still say why they are there, in the reader's words
    assert any(r.startswith(("matches your", "close to your")) for p in picks for r in p.reasons)


def test_a_reader_who_told_us_nothing_gets_what_is_new_or_popular(seeded):
    digests, _ = seeded
    picks = digests["nobody"].picks
    assert len(picks) == 10
    for pick in picks:
        upvotes = pick.paper.get("upvotes")
        assert pick.reasons in (
            ["new in your feeds"],
            [f"popular on Hugging Face: {upvotes} upvotes"],
        )
    assert any(p.reasons[0].startswith("popular on Hugging Face") for p in picks)


def test_the_popular_reason_says_where_and_never_today():
    # a weekly digest's counts are not today's; only Hugging Face's feed carries upvotes
    from paperwire.rank.reasons import Reason
    from paperwire.render.reasons import words

    assert words(Reason("popular", upvotes=1)) == "popular on Hugging Face: 1 upvote"
    assert words(Reason("popular", upvotes=42)) == "popular on Hugging Face: 42 upvotes"


# -- 2. interests split only at real list separators ----------------------------------------

GRACE = (
    "smaller, cheaper large language models: weight quantization, pruning and sparsity in "
    "LLMs, parameter-efficient fine-tuning"
)
ADA = (
    "faster LLM inference: KV cache prefetching and compression, speculative decoding, "
    "pruning tokens in long contexts"
)


def test_interests_are_split_where_the_reader_separated_topics():
    assert interest_phrases(GRACE) == [
        "smaller, cheaper large language models",
        "weight quantization",
        "pruning and sparsity in LLMs",
        "parameter-efficient fine-tuning",
    ]
    # a heading before a colon is a topic of its own, and so is each item after it
    assert interest_phrases(ADA) == [
        "faster LLM inference",
        "KV cache prefetching and compression",
        "speculative decoding",
        "pruning tokens in long contexts",
    ]
    # a lone adjective qualifies what follows a comma, or is no phrase; a generic word is none;
    # a reader's two-word phrase stands even when its words are common ones
    assert interest_phrases("efficient, scalable inference; robust\nGPTQ, etc.") == [
        "efficient, scalable inference",
        "GPTQ",
    ]
    assert interest_phrases("LLM agents, tool use, applications, sim-to-real") == [
        "LLM agents",
        "tool use",
        "sim-to-real",
    ]
    # among the topics a reader does not want, a generic word is a kind of paper they skip;
    # an adjective or a stop word alone still says nothing
    unwanted = "benchmarks, surveys; efficient\nrobotics, etc."
    assert interest_phrases(unwanted) == ["surveys", "robotics"]
    assert interest_phrases(unwanted, unwanted=True) == ["benchmarks", "surveys", "robotics"]
    # the interests vector still reads every word, split where the reader separated them
    assert interest_parts(GRACE) == [
        "smaller",
        "cheaper large language models: weight quantization",
        "pruning and sparsity in LLMs",
        "parameter-efficient fine-tuning",
    ]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo as shipped: fetched and ranked for ada, grace and rag-team, plus ``fay``, who
    told us nothing (no interests, seeds or votes)."""
    config = parse_config(_with_fay(), env={})
    path = tmp_path_factory.mktemp("demo") / "paperwire.db"
    with Store(path) as store:
        assert pipeline.fetch_all(store, config, now=NOW).new == 200
        digests = worded.compose(store, config, now=NOW)
    return path, config, digests


def _with_fay() -> str:
    text = resources.files("paperwire").joinpath("data/example-subscribers.yaml").read_text()
    fay = "  - id: fay\n    email: fay@example.org\n    digest_size: 8\n\n"
    return text.replace("\nsender:", f"\n{fay}sender:", 1)


def by_title(digest_: worded.Digest, start: str) -> list:
    return [p for p in digest_.picks if p.title.startswith(start)]


def test_a_lone_adjective_never_lifts_a_paper_into_grace_s_digest(demo):
    path, config, digests = demo
    grace = digests["grace"]
    said = [quoted(r) for p in grace.picks for r in p.reasons]
    assert "smaller" not in said
    # "Bio2Token" (its abstract says "modeling smaller systems") is not hers ...
    assert not by_title(grace, "Bio2Token")
    with Store(path) as store:
        bio = [r for r in store.corpus() if r["title"].startswith("Bio2Token")][0]["paper_id"]
        scores = digest.score_matrix(store, config, None, [bio], now=NOW)
        plain = digest.score_matrix(
            store, config, None, [bio], now=NOW,
            weights=rank.Weights(phrase_match=0.0),
        )  # fmt: skip
    row = [s.id for s in config.subscribers].index("grace")
    assert scores[row, 0] == pytest.approx(plain[row, 0])  # no phrase of hers is in it
    # ... and PiSSA, a parameter-efficient fine-tuning method, is, said in her own words
    (pissa,) = by_title(grace, "PiSSA")
    assert pissa.reasons[0] == "close to your interest “parameter-efficient fine-tuning”"


# -- 3. boilerplate is never a reason or a profile term ---------------------------------------

# ... and a sentence's opening ("Despite progress in ..."), a profile term of a reader who
# thumbed up a paper that opens so (found in review)
BOILERPLATE = [
    "work presents", "important benefits", "models spanning", "underscoring substantial",
    "despite progress",
]  # fmt: skip


def test_boilerplate_is_never_a_reason_or_a_profile_term(demo):
    path, config, digests = demo
    with Store(path) as store:
        corpus = RankingSession().corpus(store)
        pairs = {p.lower() for i in range(len(corpus.ids)) for p in corpus.analysed.pairs(i)}
        # all five are written side by side in the demo's abstracts, and no stored pair is one
        # (each paper's pairs are judged once, when it is analysed) ...
        texts = " ".join(corpus.texts(store)).lower()
        assert all(phrase in texts for phrase in BOILERPLATE)
        assert not pairs & set(BOILERPLATE)
        assert len(pairs) > 1000
        named = set()
        for i, row in enumerate(corpus.rows):
            found = key_phrases_of(
                corpus.model, corpus.analysed.pairs(i), corpus.analysed.columns(i),
                evidence._keywords(row),
            )  # fmt: skip
            named |= {t.lower() for t in found.texts}
        # ... and none is ever a key phrase; every key phrase names a topic, in two words or more
        assert not named & set(BOILERPLATE)
        assert len(named) > 300
        assert all(topics.is_topic(t, corpus.model.stop_words) for t in named)
        assert all(len(re.split(r"[ -]", t)) > 1 for t in named)
        # a reader who thumbed up the papers that say them: none is a profile term
        papers = [r["paper_id"] for r in store.corpus() if _says_boilerplate(r)]
        assert len(papers) >= 4
        for paper_id in papers:
            store.record_vote("grace", paper_id, 1, via="test", now=NOW)
        learned = profile.learned_terms(
            store, config.subscriber("grace"), now=NOW, corpus=profile.corpus_model(store)
        )
        terms = [t.term.lower() for t in learned.positive]
        assert len(terms) >= 8 and not set(terms) & set(BOILERPLATE)
        assert "smaller" not in terms
    # in the digests: every quoted phrase is the reader's own or a topic of two words at least
    for sid in ("ada", "grace", "rag-team"):
        mine = [p.lower() for p in interest_phrases(config.subscriber(sid).interests)]
        for pick in digests[sid].picks:
            for reason in pick.reasons:
                said = (quoted(reason) or "").lower()
                assert said not in BOILERPLATE
                if reason.startswith("about"):
                    assert len(re.split(r"[ -]", said)) > 1 and said not in mine


@pytest.mark.parametrize(
    "phrase",
    ["produce accurate", "optimizes Transformer", "encodes images", "compresses video",
     "space grows", "affecting learner", "integrating diversity",
     # words that join or open clauses, standing alone
     "Despite progress", "despite simplicity", "loss instead", "vs Human", "Unlike text",
     # a subject and its verb: "While extensive literature on safe robot decision-making
     # exists, ..." made "about “decision-making exists”" a robot reader's reason
     "decision-making exists", "question arises", "Quantization emerges", "disruption occurs",
     "effectiveness depends", "agent learns", "LLMs lack", "challenges persist",
     # an abstract's closing "Project website: https://..." made "about “project website”"
     # the one reason a vision-transformer paper gave a robot reader who liked that paper
     "project website", "Project page", "project homepage"],
)  # fmt: skip
def test_pieces_of_sentences_a_field_run_named_are_no_topic(phrase):
    # "about “produce accurate”" was the only reason a plant-identification paper (Floralens)
    # gave an LLM-inference reader in a month-long field run; the others were reasons there too
    assert not topics.is_topic(phrase)


def test_a_paper_that_produces_accurate_models_is_not_about_produce_accurate():
    rows = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    items = [json.loads(r) for r in rows]
    (floralens,) = [i for i in items if i["title"].startswith("Floralens")]
    assert "produce accurate models" in floralens["abstract"]
    # the word pairs a paper may be said to be about, judged once when it is analysed
    pairs = phrase_pairs(
        f"{floralens['title']} {floralens['abstract']}", rank.TextModel().stop_words
    )
    assert "Native Flora" in pairs
    assert "produce accurate" not in pairs and "accurate models" not in pairs
    for kept in ("accurate prediction", "speculative decoding", "KV cache", "max-plus algebra",
                 "fail-safe control", "crop yield", "particulate matter"):  # fmt: skip
        assert topics.is_topic(kept)


def _says_boilerplate(row: dict) -> bool:
    text = " ".join(f"{row['title']} {row['abstract']}".lower().split())
    return any(phrase in text for phrase in BOILERPLATE)


# -- 4. no pick for no reason -----------------------------------------------------------------


def test_new_in_your_feeds_is_never_the_only_reason_in_a_normal_digest(demo):
    _, config, digests = demo
    for sid in ("ada", "grace", "rag-team"):
        size = config.subscriber(sid).digest_size
        picks = digests[sid].picks
        # a pick nothing of the reader's explains is left out: the digest may be shorter
        assert size - 1 <= len(picks) <= size, sid
        for pick in picks:
            assert pick.reasons and "new in your feeds" not in pick.reasons, (sid, pick.title)
    # a reader who told us nothing follows the feeds for everything: that is their reason
    fay = digests["fay"].picks
    assert len(fay) == 8
    assert {r for p in fay for r in p.reasons} <= {"new in your feeds"} | {
        f"popular on Hugging Face: {p.paper['upvotes']} upvotes" for p in fay
    }


def test_a_pick_nothing_explains_gives_its_place_to_the_next_explained_one(tmp_path, monkeypatch):
    # 60 real arXiv items and a reader of two topics, TF-IDF alone (no "close in meaning" to
    # fall back on): some of their five best papers have no reason to give; the digest takes
    # the next explained ones from past the top five in MMR order, after the explained picks
    config = parse_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nranking:\n  embeddings: off\n"
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "retrieval augmented generation, question answering"\n'
        "    digest_size: 5\n    digest_days: daily\n",
        env={},
    )
    with Store(tmp_path / "paperwire.db") as store:
        pipeline.fetch_all(store, config, now=NOW)
        filled = digest.iter_compose(store, config, now=NOW, session=RankingSession())
        [full] = [d.picks for d in filled]
        monkeypatch.setattr(digest, "SPARE", 0)  # no stand-ins: the reason-less picks leave gaps
        bare = digest.iter_compose(store, config, now=NOW, session=RankingSession())
        [short] = [[p.paper_id for p in d.picks] for d in bare]
    assert 0 < len(short) < len(full) <= 5
    # the explained picks keep their places; the stand-ins come after them, explained too
    assert [p.paper_id for p in full[: len(short)]] == short
    assert all(p.reasons for p in full)


def test_two_key_phrases_that_are_one_run_of_the_papers_words_read_as_one():
    """'about “KV cache”; about “cache compression”' under a paper on KV cache compression
    (found in review) reads 'about “KV cache compression”'; two that the paper never writes
    as one run stay two, and a liked title's TeX reads as the paper's own title does."""
    from paperwire.rank.reasons import Ranked, Reason
    from paperwire.render.reasons import worded as in_words

    abstract = "We compress the KV Cache. KV cache  compression halves memory; cache reuse too."
    paper = {"title": "Faster decoding", "abstract": abstract}

    def reasons_of(*found: Reason) -> list[str]:
        return in_words(Ranked("2611.1", "Faster decoding", None, 1.0, list(found), paper)).reasons

    assert reasons_of(
        Reason("like_seed", r"$\Pi$-NeSy: a seed"),
        Reason("about", "KV cache"),
        Reason("about", "cache compression"),
    ) == ["like “Π-NeSy: a seed”, one of your seed papers", "about “KV cache compression”"]
    assert reasons_of(Reason("about", "KV cache"), Reason("about", "cache reuse")) == [
        "about “KV cache”",
        "about “cache reuse”",
    ]
    assert reasons_of(Reason("about", "memory halves"), Reason("about", "KV cache")) == [
        "about “memory halves”",
        "about “KV cache”",
    ]
    # in the other order too: 'about “Radiance Fields”; about “Neural Radiance”' (found
    # reading a reader's digest) is one name
    assert reasons_of(Reason("about", "cache compression"), Reason("about", "KV cache")) == [
        "about “KV cache compression”"
    ]


def test_a_key_phrase_is_not_said_twice_in_another_case_or_with_a_hyphen():
    """'about “fine-tuning”' and 'about “Fine-Tuning”', 'about “DeepSeek-R1”' and 'about
    “Deepseek R1”', and 'about “Decision-Making”' beside the reader's own 'decision making'
    (found reading a reader's digest): one phrase each."""
    from paperwire.rank.paper_phrases import choose_key_phrases

    texts = ["fine-tuning", "Fine-Tuning", "DeepSeek-R1", "Deepseek R1", "Decision-Making"]
    assert choose_key_phrases(texts, [0, 1, 2, 3, 4], 5) == [
        "fine-tuning", "DeepSeek-R1", "Decision-Making"
    ]  # fmt: skip
    skip = ["cognitive support for decision making"]
    assert choose_key_phrases(texts, [4, 2], 2, skip) == ["DeepSeek-R1"]
    # one phrase inside another is still one, and two that only share a word are two
    assert choose_key_phrases(["large language models", "language model", "model size"], [0, 1, 2], 3) == [
        "large language models", "model size"
    ]  # fmt: skip


def test_a_key_phrase_is_not_said_twice_in_the_plural_and_a_word_is_not_inside_another():
    """'about “Nash Equilibria”; about “Nash Equilibrium”' under one pick (found in review): a
    plural is its singular. And "GAN" was left out beside "organ transplant", inside which
    its letters are: phrases are compared word by word."""
    from paperwire.rank.paper_phrases import choose_key_phrases

    texts = ["Nash Equilibria", "Nash Equilibrium", "Gaussian processes", "Gaussian Process"]
    assert choose_key_phrases(texts, [0, 1, 2, 3], 4) == ["Nash Equilibria", "Gaussian processes"]
    assert choose_key_phrases(["policies", "policy gradient"], [1, 0], 2) == ["policy gradient"]
    assert choose_key_phrases(["organ transplant", "GAN"], [0, 1], 2) == ["organ transplant", "GAN"]
    # "caches" is "cache" (a review found the first rule kept both), and acronyms' plurals too
    assert choose_key_phrases(["KV caches", "KV cache", "LMs", "LM"], [0, 1, 2, 3], 4) == [
        "KV caches", "LMs"
    ]  # fmt: skip
    # words that end in "s" without being plurals are themselves
    assert choose_key_phrases(["analysis", "corpus", "process"], [0, 1, 2], 3) == [
        "analysis", "corpus", "process"
    ]  # fmt: skip


def test_a_run_of_two_key_phrases_is_found_as_the_pattern_finds_it_in_any_text():
    """_one_run looks for the joined phrase in the text lowercased, its spaces made single,
    instead of compiling a pattern for each: it finds what the pattern (whole words, any
    spaces between them, any case) finds first, as written, in texts with words inside longer
    words, hyphens, underscores, line breaks, capitals and letters that lowercase into two
    ("İ", where it falls back on the pattern)."""
    import random

    rng = random.Random(5)
    words = ["KV", "kv", "cache", "Cache", "caches", "compression", "x_cache", "pre-cache", "İ"]
    words += ["sKV", "x_kv", "é-kv", "compressions"]
    gaps = [" ", "  ", "\n", "-", ", ", "_", ""]
    pairs = [
        ("KV cache", "cache compression"),
        ("kv Cache", "Cache caches"),
        ("İ cache", "cache KV"),
    ]
    for _ in range(3000):
        text = "".join(rng.choice(words) + rng.choice(gaps) for _ in range(rng.randint(1, 9)))
        for first, second in pairs:
            a, b = first.split(), second.split()
            expected = None
            if a[-1].lower() == b[0].lower():
                found = reasons_words._run_of(tuple(a + b[1:])).search(text)
                expected = None if found is None else " ".join(found.group(0).split())
            assert reasons_words._one_run(first, second, text) == expected, (text, first)


def test_a_key_phrase_the_paper_only_writes_before_another_word_is_said_whole():
    """'about “Vision-Language”' under a paper on Vision-Language Models, 'about “Multi-Robot”'
    under one on multi-robot motion planning (found in review, on real arXiv items): a phrase
    the paper writes twice or more, each time followed by another word of a name, is said with
    the words it starts, as the paper first writes them."""
    from paperwire.rank.reasons import Ranked, Reason
    from paperwire.render.reasons import worded as in_words

    rows = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    items = {json.loads(r)["url"].rsplit("/", 1)[1]: json.loads(r) for r in rows}

    def said(paper_id: str, *phrases: str) -> list[str]:
        paper = items[paper_id]
        about = [Reason("about", phrase) for phrase in phrases]
        return in_words(Ranked(paper_id, paper["title"], None, 1.0, about, paper)).reasons

    assert said("2504.06389", "Vision-Language") == ["about “Vision-Language Guidance”"]
    assert said("2504.06429", "Multi-Robot") == ["about “Multi-Robot Motion Planning”"]
    assert said("2504.06684", "Multi-Robot") == ["about “Multi-Robot Coordination”"]
    assert said("2504.04514", "large language") == ["about “Large Language Models”"]
    # a hyphenated compound written once, before a word, qualifies it
    assert said("2504.06442", "multi-robot") == ["about “Multi-robot Control”"]
    assert said("2504.06439", "closed-loop") == ["about “closed-loop stability”"]
    # two phrases that become one name are said once
    assert said("2504.04514", "large language", "Large Language Models") == [
        "about “Large Language Models”"
    ]
    # a compound that ends a phrase once: the phrase as it is
    assert said("2504.06511", "multi-modal") == ["about “multi-modal”"]
    # "multi-modal large ..." and "... events": no pair names a topic with the word after it
    assert said("2504.06269", "multi-modal") == ["about “multi-modal”"]
    # words before a verb, or before other words each time, or once: the phrase as it is
    for abstract in (
        "The KV cache grows. The KV cache grows fast.",
        "The KV cache size and the KV cache compression.",
        "The KV cache size matters.",
    ):
        paper = {"title": "Faster decoding", "abstract": abstract}
        about = [Reason("about", "KV cache")]
        kv = in_words(Ranked("2611.1", "Faster decoding", None, 1.0, about, paper))
        assert kv.reasons == ["about “KV cache”"], abstract


def test_the_quick_check_never_refuses_a_phrase_that_goes_on():
    # render.reasons asks _may_go_on before it runs _whole's pattern (compiling one per
    # phrase and paper was half of a 20,000-reader digest's CPU): on every 1-3 word phrase of
    # 30 real abstracts, it must say "maybe" wherever the pattern makes the phrase longer
    rows = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    longer = refused = 0
    for row in rows[:30]:
        item = json.loads(row)
        text = f"{item['title']}\n{item['abstract']}"
        flat = " ".join(text.lower().split())
        words = re.findall(r"\w[\w-]*", text)
        phrases = {" ".join(words[i : i + n]) for n in (1, 2, 3) for i in range(len(words))}
        for phrase in phrases:
            may = reasons_words._may_go_on(phrase, flat)
            if reasons_words._whole(phrase, text) != phrase:
                longer += 1
                refused += not may
    assert longer > 100 and refused == 0


def test_popular_alone_keeps_a_pick_for_a_reader_who_said_what_they_like_only_when_it_is():
    """Two months of a field test's digests held 26 picks whose one reason was "popular on
    Hugging Face: 2 upvotes" (more than the average candidate with a count), for readers with
    interests or seeds: a reason of nobody's. For such a reader a pick stands on upvotes alone
    only among the most upvoted; a reader who told us nothing keeps the average's bar."""
    from paperwire.rank.evidence import POPULAR_ALONE, fallback
    from paperwire.rank.reasons import Reason

    paper = {"upvotes": 2}
    assert fallback(paper, 0.4, profiled=True) == []
    assert fallback(paper, 0.4, profiled=False) == [Reason("popular", upvotes=2)]
    assert fallback(paper, POPULAR_ALONE + 0.1, profiled=True) == [Reason("popular", upvotes=2)]
    assert fallback({"upvotes": 0}, 3.0, profiled=True) == []
