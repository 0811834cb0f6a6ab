"""Followed authors and must/never filters: name matching, then digests and alerts over a real
SQLite store."""

from __future__ import annotations

import datetime as dt

import pytest

from paperwire import digests as worded
from paperwire.paper import Paper
from paperwire.rank import alerts
from paperwire.rank.authors import Following, name_key, same_person
from paperwire.rank.filters import PhraseFilter, fold_text

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "written",
    ["Yann LeCun", "Y. LeCun", "LeCun, Yann", "LeCun, Y.", "yann lecun", "Yann Le Cun", "Y LeCun"],
)
def test_one_person_written_many_ways(written: str):
    assert Following(["Yann LeCun"]).match(["A. Author", written]) == "Yann LeCun"


@pytest.mark.parametrize(
    ("followed", "author"),
    [
        ("Sébastien Bubeck", "Sebastien Bubeck"),  # accents
        ("Lukasz Kaiser", "Łukasz Kaiser"),
        ("Laurens van der Maaten", "L. van der Maaten"),  # particles
        ("van der Maaten, Laurens", "Laurens van der Maaten"),
        ("Jean-Pierre Serre", "J.-P. Serre"),
        ("Geoffrey E. Hinton", "Geoffrey Hinton"),  # a middle initial more or less
        ("Hinton", "G. E. Hinton"),  # a family name alone follows every Hinton
        ("van der Maaten", "Laurens van der Maaten"),  # ... particles and all
        ("Van den Broeck", "Guy Van den Broeck"),
        ("Jürgen Schmidhuber", "Juergen Schmidhuber"),  # umlauts spelt out, either way round
        ("Juergen Schmidhuber", "Jürgen Schmidhuber"),
        ("Jürgen Schmidhuber", "Jurgen Schmidhuber"),
        ("Klaus-Robert Müller", "K.-R. Mueller"),
        ("Ju\u0308rgen Schmidhuber", "Juergen Schmidhuber"),  # a combining diaeresis
        ("Bjørn Ommer", "Bjoern Ommer"),
    ],
)
def test_accents_particles_initials(followed: str, author: str):
    assert Following([followed]).match([author]) == followed


@pytest.mark.parametrize(
    ("followed", "author"),
    [
        ("Yann LeCun", "Yves LeCun"),  # two given names written out differ
        ("Yann LeCun", "X. LeCun"),
        ("Yann LeCun", "Yann Lecunn"),
        ("Kaiming He", "Kaiming Hu"),
        ("Le Song", "Yang Song"),  # one particle before a name is a given name
        ("Michał Nowak", "Michael Nowak"),  # only a letter written with an umlaut is spelt out
        ("Jürgen Schmidhuber", "Jörgen Schmidhuber"),
    ],
)
def test_different_people_do_not_match(followed: str, author: str):
    assert Following([followed]).match([author]) is None


@pytest.mark.parametrize(
    ("followed", "author"),
    [
        ("Wang Wei", "Wei Wang"),  # family name first, as the reader writes their own
        ("Wei Wang", "Wang Wei"),  # ... or as a feed writes it
        ("Zhang Yuxin", "Yuxin Zhang"),
        ("Wang Wei", "W. Wang"),  # an initial agrees, as "Wei Wang" and "W. Wang" do
        ("Müller Klaus", "Klaus Mueller"),  # umlauts spelt out either way, in either order
    ],
)
def test_a_followed_two_word_name_matches_in_either_order(followed: str, author: str):
    assert Following([followed]).match(["A. Author", author]) == followed


@pytest.mark.parametrize(
    ("followed", "author"),
    [
        ("Wang Wei", "Wei Zhang"),
        ("Wang Wei", "Wang Li"),  # either order, the two given names still differ
        ("Le Song", "Song Le"),  # a particle says which is the family name
        ("Wang, Wei", "Wang Wei"),  # so does a comma: Wang Wei is Mr Wei
        ("W. Wang", "Wang Wei"),
        ("Wang Xiao Wei", "Wei Wang"),  # three words: only as written
    ],
)
def test_name_order_is_not_a_licence_to_match_anyone(followed: str, author: str):
    assert Following([followed]).match([author]) is None


def test_name_keys():
    assert name_key("LeCun, Yann") == name_key("Yann LeCun")
    assert name_key("Yann LeCun").family == "lecun"
    assert name_key("Smith Jr.").family == "smith"
    assert name_key("   ") is None
    assert same_person(name_key("Y. LeCun"), name_key("Yann LeCun"))


def test_phrase_filters_are_whole_words_and_fold_case_and_accents():
    text = fold_text("Diffusion models for protein design", "We use a Transformer; naïve baseline.")
    assert PhraseFilter(must=["protein design"]).allows(text)
    assert PhraseFilter(must=["naive"]).allows(text)
    assert not PhraseFilter(must=["protein designs"]).allows(text)
    assert not PhraseFilter(must=["transform"]).allows(text)  # whole words only
    assert not PhraseFilter(never=["DIFFUSION"]).allows(text)
    # never wins over must
    assert not PhraseFilter(must=["protein"], never=["diffusion models"]).allows(text)
    assert not PhraseFilter()


PAPERS = [
    ("2611.00001", "KV cache quantization for long context LLM inference",
     "We quantize the key value cache to 2 bits.", ["Ada Author"]),
    ("2611.00002", "Compressing the KV cache of transformer inference",
     "Low-bit quantization and eviction shrink the KV cache.", ["Bo Author"]),
    ("2611.00003", "Speculative decoding for faster LLM inference",
     "A small draft model proposes tokens that the large model verifies.", ["Cy Author"]),
    ("2611.00004", "Self-supervised learning of image features from video",
     "Joint-embedding predictive architectures learn from unlabeled video.",
     ["Adrien Bardes", "Y. LeCun"]),
    ("2611.00005", "Diffusion models for KV cache eviction",
     "A diffusion model decides which cache entries to evict.", ["Di Author"]),
    ("2611.00006", "Weak lensing maps of dark matter",
     "We map dark matter with weak gravitational lensing.", ["Ed Author"]),
]  # fmt: skip

CONFIG = """\
subscribers:
  - id: ada
    email: ada@example.org
    interests: "KV cache quantization, efficient LLM inference"
    digest_size: 2
    follow_authors: ["LeCun, Yann"]
  - id: bob
    email: bob@example.org
    interests: "KV cache quantization, efficient LLM inference"
    digest_size: 5
    must_match: ["KV cache"]
    never_match: ["diffusion"]
"""


@pytest.fixture
def stocked(store):
    store.add_papers(
        [
            Paper(pid, title, abstract, authors=authors, url=f"https://arxiv.org/abs/{pid}")
            for pid, title, abstract, authors in PAPERS
        ],
        now=NOW - dt.timedelta(hours=3),
    )
    return store


def test_a_followed_authors_paper_is_always_in_the_digest_and_marked(stocked, make_config):
    config = make_config(CONFIG)
    ada = worded.compose(stocked, config, now=NOW)["ada"]
    assert len(ada.picks) == 2  # the digest size holds
    assert ada.picks[0].paper_id == "2611.00004"  # off-topic for her profile, but followed
    assert ada.picks[0].reasons[0] == "by an author you follow (LeCun, Yann)"
    assert not any("follow" in r for p in ada.picks[1:] for r in p.reasons)
    # without the follow it would not have made a two-paper digest
    plain = make_config(CONFIG.replace('    follow_authors: ["LeCun, Yann"]\n', ""))
    assert "2611.00004" not in [
        p.paper_id for p in worded.compose(stocked, plain, now=NOW)["ada"].picks
    ]


def test_must_and_never_match_are_hard_filters(stocked, make_config):
    config = make_config(CONFIG)
    bob = worded.compose(stocked, config, now=NOW)["bob"]
    assert sorted(p.paper_id for p in bob.picks) == ["2611.00001", "2611.00002"]
    assert bob.candidates == 2


def test_a_pick_kept_by_must_match_alone_names_the_phrase(stocked, make_config):
    """A reader with must_match and nothing else was told "new in your feeds" under every
    pick: the words they asked for are what the pick answers."""
    config = make_config(
        "subscribers:\n"
        '  - {id: cy, email: cy@example.org, must_match: ["speculative decoding", "KV cache"]}\n'
    )
    cy = worded.compose(stocked, config, now=NOW)["cy"]
    kv, spec = (
        ["mentions “KV cache”, as you asked"],
        ["mentions “speculative decoding”, as you asked"],
    )
    assert {p.paper_id: p.reasons for p in cy.picks} == {
        "2611.00001": kv,
        "2611.00002": kv,
        "2611.00003": spec,
        "2611.00005": kv,
    }


def test_a_reader_with_interests_is_not_given_must_match_as_a_reason(stocked, make_config):
    """must_match only filters for a reader who said what they like: a pick their interests
    do not explain is still left out, however wide the phrases ("model")."""
    config = make_config(
        "ranking: {embeddings: off}\nsubscribers:\n"
        '  - {id: di, email: di@example.org, interests: "KV cache quantization",'
        ' must_match: ["model", "cache"]}\n'
    )
    di = worded.compose(stocked, config, now=NOW)["di"]
    assert "2611.00003" not in [p.paper_id for p in di.picks]  # a draft model: no reason
    assert not any("as you asked" in r for p in di.picks for r in p.reasons)


def test_a_followed_author_wins_over_must_match_but_not_over_never_match(stocked, make_config):
    """A reader who follows an author expects that author's papers: must_match used to drop
    a followed author's paper without the phrase. never_match still keeps one out."""
    follows = '    follow_authors: ["LeCun, Yann", "Di Author"]\n'
    config = make_config(
        CONFIG.replace('    must_match: ["KV cache"]\n', f'    must_match: ["KV cache"]\n{follows}')
    )
    bob = worded.compose(stocked, config, now=NOW)["bob"]
    picked = [p.paper_id for p in bob.picks]
    # 2611.00004: no "KV cache", but by LeCun; 2611.00005: by Di Author, but "diffusion"
    assert picked[0] == "2611.00004"
    assert bob.picks[0].reasons[0] == "by an author you follow (LeCun, Yann)"
    assert sorted(picked[1:]) == ["2611.00001", "2611.00002"]
    assert "2611.00005" not in picked


def test_never_match_applies_to_alerts(stocked, make_config):
    """An alert-worthy paper (far above the bar) is not sent to a reader who never wants it."""
    history = [
        Paper(f"2610.{i:05d}", f"Galaxy survey number {i}", "Photometric redshifts of galaxies.")
        for i in range(120)
    ]
    stocked.add_papers(history, now=NOW - dt.timedelta(days=3))
    text = """\
alerts: {min_history: 100, percentile: 90}
subscribers:
  - id: cy
    email: cy@example.org
    interests: "KV cache quantization eviction diffusion"
    never_match: NEVER
"""

    def alerted(never: str) -> set[str]:
        config = make_config(text.replace("NEVER", never))
        found = alerts.find_alerts(stocked, config, list(config.subscribers), now=NOW)
        return {a.pick.paper_id for a in found}

    assert "2611.00005" in alerted("[]")
    assert "2611.00005" not in alerted('["diffusion"]')


def test_the_profile_page_shows_follows_and_filters(stocked, make_config):
    import httpx

    from paperwire.links import Signer
    from paperwire.web.app import create_app

    from .conftest import free_port
    from .test_web import serve

    port = free_port()
    config = make_config(CONFIG + '    follow_authors: ["Yann LeCun", "<b>X</b>"]\n',
                         env={"PAPERWIRE_SECRET": "s-test-signing-key"})  # fmt: skip
    stop = serve(create_app(lambda: config, stocked.path), port)
    try:
        bob = Signer("s-test-signing-key").subscriber_token("profile", "bob")
        html = httpx.get(f"http://127.0.0.1:{port}/profile/{bob}", timeout=10).text
        ada = Signer("s-test-signing-key").subscriber_token("profile", "ada")
        ada_html = httpx.get(f"http://127.0.0.1:{port}/profile/{ada}", timeout=10).text
    finally:
        stop()
    assert '<span id="must-match">“KV cache”</span>' in html
    assert '<span id="never-match">“diffusion”</span>' in html
    assert '<span id="follow-authors">Yann LeCun, &lt;b&gt;X&lt;/b&gt;</span>' in html
    assert '<span id="follow-authors">LeCun, Yann</span>' in ada_html
