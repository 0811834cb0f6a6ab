"""One paper under two ids (rank/twins.py): a journal's or an aggregator's copy of an arXiv
paper is never sent beside it or after it, over real local HTTP feeds, a real SQLite file and
aiosmtpd."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from xml.sax.saxutils import escape

import pytest

from paperwire import digests, pipeline
from paperwire.paper import Paper, paper_text, text_hash
from paperwire.rank import terms
from paperwire.rank import twins as twins_module
from paperwire.rank.alerts import find_alerts
from paperwire.rank.corpus import Corpus
from paperwire.rank.scope import Scope
from paperwire.rank.twins import Twins, first_author, keys, surname
from paperwire.sources import parse_document
from paperwire.store import Store

from .conftest import FIXTURES, Route

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)

# two papers of the real arXiv feed (tests/fixtures/arxiv_rss_cs.xml)
PREFETCH, MOSAIC = "2504.06319", "2504.06323"
# test_the_keys_version_names_what_keys_are_made_of
PINNED_KEYS = "76a9aaa6c62a036e"

CONFIG = """\
feeds:
  - url: {arxiv}
    name: arxiv-cs
  - url: {journal}
    name: journal
ranking:
  embeddings: off
subscribers:
  - id: ada
    email: ada@example.org
    interests: "KV cache prefetching, LLM inference throughput, pruning LLMs"
    digest_size: 10
    digest_days: daily
  - id: bob
    email: bob@example.org
    interests: "KV cache prefetching, LLM inference throughput, pruning LLMs"
    digest_size: 10
    digest_days: daily
sender:
  from_address: "Paperwire <digest@paperwire.test>"
"""


def test_a_title_key_holds_across_case_punctuation_accents_and_name_orders():
    arxiv = keys("Accelerating LLM Inference via KV-Cache Prefetching", "", ["Dániel Gerbner"])
    for title, author in [
        ("accelerating llm inference via kv cache prefetching.", "D. Gerbner"),
        ("Accelerating LLM inference via KV cache prefetching", "Gerbner, Daniel"),
        ("ACCELERATING LLM INFERENCE VIA KV–CACHE PREFETCHING", "Gerbner D"),
    ]:
        assert keys(title, "", [author]) == arxiv, (title, author)
    assert arxiv == ["t:acceleratingllminferenceviakvcacheprefetching|gerbner"]
    # another first author: another paper of the same name ("A Survey of ...")
    assert keys("Accelerating LLM Inference via KV-Cache Prefetching", "", ["Jane Smith"]) != arxiv
    # no author, or too few words, to tell one paper from another: no key
    assert keys("Accelerating LLM Inference via KV-Cache Prefetching", "", []) == []
    assert keys("Editorial", "", ["Jane Smith"]) == []
    assert keys("A short title", "", ["Jane Smith"]) == []

    # accents dropped, not splitting a name: "Ramírez" was "rami" + "rez", one with "Pérez"
    assert keys("Schrödinger bridges for generative modelling", "", ["Aurora Ramírez"]) == keys(
        "Schrodinger Bridges for Generative Modelling", "", ["Ramirez, A."]
    )
    assert surname("Aurora Ramírez") != surname("Ana Pérez")


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("Grace Hopper Jr. (Navy)", "hopper"),  # an affiliation and a suffix aside
        ("Abdelghani Maddi (GEMASS)", "maddi"),  # as arXiv's feed writes one author
        ("J. Smith III", "smith"),
        ("Hopper GM", "hopper"),  # PubMed's order: initials after the surname
        ("J.-P. Dupont", "dupont"),
        ("Pérez García, J. M.", "garcia"),
        ("J. M. Pérez García", "garcia"),
        ("Karagöz, Betül", "karagoz"),
        ("ATLAS Collaboration", "atlas collaboration"),  # a body: its whole name
        ("Plato", "plato"),
    ],
)
def test_the_surname_of_an_author_as_feeds_write_them(written, name):
    assert surname(written) == name


def test_an_abstract_key_needs_twenty_words_and_its_title_and_ignores_layout():
    words = " ".join(f"word{i}" for i in range(20))
    assert keys("The", words) == keys("the.", f"  {words.upper()}. ") != []
    assert keys("The", " ".join(f"word{i}" for i in range(19))) == []
    # a series' parts may share an abstract: the title tells them apart
    assert keys("Tensor networks, Part I", words) != keys("Tensor networks, Part II", words)
    assert keys("", "This paper has been withdrawn by the author.") == []  # many papers' abstract


@pytest.mark.parametrize(
    ("arxiv", "journal"),
    [  # arXiv's titles as their authors typed them for LaTeX (three are real: the 2025-04-11 feed)
        ("$\\Pi$-NeSy: A Possibilistic Neuro-Symbolic Approach",
         "Π-NeSy: a possibilistic neuro-symbolic approach"),
        ("Several new infinite families of NMDS codes with arbitrary dimensions supporting "
         "$t$-designs",
         "Several New Infinite Families of NMDS Codes With Arbitrary Dimensions Supporting "
         "t-Designs"),
        ("M$^2$FGB: A Min-Max Gradient Boosting Framework for Subgroup Fairness",
         "M²FGB: A Min–Max Gradient Boosting Framework for Subgroup Fairness"),
        ("Sparse recovery under the $\\ell_1$ norm with \\emph{few} measurements",
         "Sparse recovery under the ℓ1 norm with few measurements"),
        ("Schrödinger bridges for $\\mathcal{O}(n \\log n)$ generative modelling",
         "Schrodinger Bridges for O(n log n) Generative Modelling"),
    ],
)  # fmt: skip
def test_a_title_in_tex_and_the_same_title_in_unicode_are_one_paper(arxiv, journal):
    abstract = (
        "Recent advances in $\\alpha$-divergences give a \\textit{principled} way to combine "
        "possibilistic logic with neural networks, and we show how on six benchmarks."
    )
    unicode_abstract = (
        "Recent advances in α-divergences give a principled way to combine possibilistic "
        "logic with neural networks, and we show how on six benchmarks."
    )
    title_key, abstract_key = keys(arxiv, abstract, ["Ana Pérez"])
    assert keys(journal, unicode_abstract, ["Pérez, A."]) == [title_key, abstract_key]
    assert keys(journal, unicode_abstract, []) == [abstract_key]  # no author: the abstract
    # TeX the written-out form leaves as it was is still no other paper's key
    assert keys("A $\\tilde{O}(1)$-approximation for metric facility location", "", ["Li"]) != (
        keys("A O(1)-approximation for metric facility location", "", ["Li"])
    )
    # and a fraction written out is the same paper's ("1/2", as a journal prints it)
    assert keys("A $\\frac{1}{2}$-approximation for metric facility location", "", ["Li"]) == (
        keys("A 1/2-approximation for metric facility location", "", ["Li"])
    )


def test_papers_joined_by_a_paper_outside_the_corpus_are_one_paper():
    """A paper sent long ago shares a key with two corpus papers that share none: its journal
    version (a revised abstract) and an aggregator's copy (its first abstract, no authors)."""
    twins = Twins.of([["t:x"], ["t:x"], ["t:y"], ["a:z"]])  # rows 0 and 1 are one paper
    twins.add_outside(2, "old")
    assert twins.join([3, 1]) == 0
    assert twins.original == {1: 0, 3: 0}
    assert twins.join([2, 3]) == 0  # the group with a paper outside joins it, and its papers
    assert twins.original == {1: 0, 2: 0, 3: 0} and twins.outside == {0: ["old"]}
    among = twins.among(["p0", "p1", "p2", "p3"], [3, 2])
    assert among.distinct([1, 0]) == [1] and among.others["old"] == [0, 1]
    # a group joined with its own copies: each comes to the first row, none through another
    copies = Twins.of([["t:x"], ["t:y"], ["t:y"]])
    assert copies.join([0, 2]) == 0 and copies.original == {1: 0, 2: 0}
    assert copies.join([1]) == 0  # already one paper: nothing to join


def test_the_first_author_of_a_stored_list_is_read_alone():
    assert first_author('["Grace \\"Amazing\\" Hopper", "B. Author"]') == ['Grace "Amazing" Hopper']
    assert first_author(json.dumps(["Ramírez, A."])) == ["Ramírez, A."]
    assert first_author("[]") == first_author(None) == []


def test_a_copy_of_a_copy_copies_the_first_paper_in_any_order():
    # row 1 copies row 0 by its title, row 2 copies row 1 by its abstract only
    twins = Twins.of([["t:x", "a:1"], ["t:x", "a:2"], ["a:2"], ["t:y"]])
    assert twins.original == {1: 0, 2: 0}
    # the aggregator's copy (its title and abstract only) came before the journal's, which
    # shares the arXiv paper's title and author and the aggregator's abstract: one paper
    assert Twins.of([["t:x", "a:1"], ["a:2"], ["t:x", "a:2"]]).original == {1: 0, 2: 0}
    assert Twins.of([["a:2"], ["t:x", "a:1"], ["t:x", "a:2"]]).original == {1: 0, 2: 0}
    # candidates at rows 3, 2 and 0: the paper at rows 0-2 is candidates 1 and 2
    among = twins.among(["p0", "p1", "p2", "p3"], [3, 2, 0])
    assert among.group.tolist() == [-1, 0, 0]
    assert {p: sorted(c) for p, c in among.others.items()} == {"p0": [1], "p1": [1, 2], "p2": [2]}
    assert among.distinct([2, 0, 1]) == [2, 0]  # the paper once, where it comes first


def _journal_feed(items: list[dict]) -> bytes:
    """An RSS 2.0 feed of a journal: its own links as ids, authors as 'Surname, Given'."""
    body = "".join(
        f"<item><title>{escape(i['title'])}</title><link>{i['link']}</link>"
        f"<guid>{i['link']}</guid><description>{escape(i['abstract'])}</description>"
        + "".join(f"<dc:creator>{escape(a)}</dc:creator>" for a in i["authors"])
        + "</item>"
        for i in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>Journal</title><link>https://journal.example</link>{body}"
        "</channel></rss>"
    ).encode()


@pytest.fixture
def arxiv_papers() -> dict[str, Paper]:
    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    return {p.paper_id: p for p in papers}


def _copies(arxiv_papers: dict[str, Paper]) -> list[dict]:
    prefetch, mosaic = arxiv_papers[PREFETCH], arxiv_papers[MOSAIC]
    surname_first = f"{prefetch.authors[0].split()[-1]}, {prefetch.authors[0].split()[0]}"
    return [
        {  # the journal version: its title's case and hyphens, its abstract's first sentence
            "link": "https://journal.example/a/101",
            "title": prefetch.title.lower().replace("kv cache", "KV-cache"),
            "abstract": prefetch.abstract.split(". ", 1)[1],
            "authors": [surname_first],
        },
        {  # no authors (the title alone names no one paper), the title and abstract as
            # another aggregator lays them out
            "link": "https://journal.example/a/102",
            "title": mosaic.title.upper(),
            "abstract": "  " + mosaic.abstract.replace(" ", "  "),
            "authors": [],
        },
        {  # another paper under the same name
            "link": "https://journal.example/a/103",
            "title": prefetch.title,
            "abstract": "We prefetch the KV cache of LLM inference from host memory to raise "
            "throughput on long prompts, a different method by different authors.",
            "authors": ["Smith, Jane"],
        },
    ]


def test_a_journal_copy_is_never_sent_beside_or_after_the_arxiv_paper(
    tmp_path, make_config, http_server, smtp_server, store, arxiv_papers
):
    http_server.routes["/rss/cs"] = Route((FIXTURES / "arxiv_rss_cs.xml").read_bytes())
    copies = _copies(arxiv_papers)
    http_server.routes["/journal"] = Route(_journal_feed(copies))
    config = make_config(
        CONFIG.format(arxiv=http_server.url("/rss/cs"), journal=http_server.url("/journal")),
        env={"PAPERWIRE_SMTP_URL": smtp_server.url, "PAPERWIRE_SECRET": "test-secret-key-1"},
    )
    report = pipeline.fetch_all(store, config, now=NOW - dt.timedelta(hours=2))
    assert [f.new for f in report.feeds] == [60, 3]  # the copies are stored: they are papers
    assert len(_stored_keys(store)) == 63  # each keyed once, by the fetch that stored it
    # bob 👍 the journal's copy of Mosaic in his feed reader: the arXiv paper is his too
    store.record_votes([("bob", "https://journal.example/a/102", 1)], via="import")

    sent = pipeline.send_due(store, config, now=NOW, first_reach=pipeline.FIRST_DIGEST_REACH)
    assert sorted((line.subscriber_id, line.status) for line in sent.lines) == [
        ("ada", "sent"),
        ("bob", "sent"),
    ]
    text = {msg["To"]: msg.get_body(("plain",)).get_content() for msg in smtp_server.messages}
    ada, bob = text["ada@example.org"], text["bob@example.org"]
    # ada gets each paper once, under the id her ranking puts first; the paper of the same
    # name by someone else too
    assert (f"arxiv.org/abs/{PREFETCH}" in ada) != ("journal.example/a/101" in ada)
    assert (f"arxiv.org/abs/{MOSAIC}" in ada) != ("journal.example/a/102" in ada)
    assert "journal.example/a/103" in ada
    # bob's own paper under the journal's id is his own under arXiv's
    assert (f"arxiv.org/abs/{PREFETCH}" in bob) != ("journal.example/a/101" in bob)
    assert f"arxiv.org/abs/{MOSAIC}" not in bob and "journal.example/a/102" not in bob

    # the next day an aggregator posts the prefetching paper again, beside a new paper
    new = {
        "link": "https://aggregator.example/p/7",
        "title": "Prefetching the KV cache across GPUs for LLM inference throughput",
        "abstract": "A new scheduler prefetches KV cache blocks for LLM inference throughput.",
        "authors": ["Ng, Ann"],
    }
    again = {**copies[0], "link": "https://aggregator.example/p/8", "authors": ["Y. Dong"]}
    http_server.routes["/journal"] = Route(_journal_feed([again, new]))
    later = NOW + dt.timedelta(days=1)
    pipeline.fetch_all(store, config, now=later - dt.timedelta(hours=2))
    smtp_server.messages.clear()
    sent = pipeline.send_due(store, config, now=later)
    assert sorted((line.subscriber_id, line.status) for line in sent.lines) == [
        ("ada", "sent"),
        ("bob", "sent"),
    ]
    for msg in smtp_server.messages:
        body = msg.get_body(("plain",)).get_content()
        assert "aggregator.example/p/7" in body and "aggregator.example/p/8" not in body


def test_compose_offers_one_paper_once_and_a_readers_own_copy_makes_the_others_theirs(
    store, make_config, arxiv_papers
):
    store.add_papers(list(arxiv_papers.values()), now=NOW - dt.timedelta(hours=3))
    journal, _ = parse_document(_journal_feed(_copies(arxiv_papers)), source="journal")
    store.add_papers(journal, now=NOW - dt.timedelta(hours=2))
    # a seed imported later than both: the journal's copy of the prefetching paper
    store.record_votes([("bob", "https://journal.example/a/101", 1)], via="import")
    config = make_config(CONFIG.format(arxiv="https://a.example", journal="https://j.example"))
    composed = digests.compose(store, config, now=NOW, since=NOW - dt.timedelta(days=1))
    picked = {sub: {p.paper_id for p in d.picks} for sub, d in composed.items()}
    prefetch = {PREFETCH, "https://journal.example/a/101"}
    mosaic = {MOSAIC, "https://journal.example/a/102"}
    assert len(picked["ada"] & prefetch) == 1 and len(picked["ada"] & mosaic) == 1
    assert "https://journal.example/a/103" in picked["ada"]  # another paper of that name
    assert not picked["bob"] & prefetch and len(picked["bob"] & mosaic) == 1


def test_a_journal_copy_in_unicode_of_a_tex_titled_preprint_is_one_paper(store, make_config):
    """arXiv writes the title as its authors typed it for LaTeX; the journal's feed prints it,
    opens the abstract differently and names the author surname first."""
    lines = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    line = next(line for line in lines if "NeSy" in line)
    item = json.loads(line)  # the real paper: "$\\Pi$-NeSy: A Possibilistic Neuro-Symbolic ..."
    assert item["title"].startswith("$\\Pi$-NeSy")
    preprint = Paper("2504.07055", item["title"], item["abstract"], authors=["Ismaïl Baaj"],
                     source="arxiv", url=item["url"])  # fmt: skip
    copy = {
        "link": "https://journal.example/a/201",
        "title": item["title"].replace("$\\Pi$", "Π"),
        "abstract": item["abstract"].split(". ", 1)[1],
        "authors": ["Baaj, Ismaïl"],
    }
    store.add_papers([preprint], now=NOW - dt.timedelta(hours=3))
    journal, _ = parse_document(_journal_feed([copy]), source="journal")
    store.add_papers(journal, now=NOW - dt.timedelta(hours=2))
    config = make_config(
        CONFIG.format(arxiv="https://a.example", journal="https://j.example").replace(
            "KV cache prefetching, LLM inference throughput, pruning LLMs",
            "neuro-symbolic learning, possibilistic reasoning",
        )
    )
    store.record_votes([("bob", "https://journal.example/a/201", 1)], via="import")
    composed = digests.compose(store, config, now=NOW, since=NOW - dt.timedelta(days=1))
    picked = {sub: [p.paper_id for p in d.picks] for sub, d in composed.items()}
    assert len(set(picked["ada"]) & {"2504.07055", "https://journal.example/a/201"}) == 1
    assert picked["bob"] == []  # the preprint is his paper, under the journal's id


def _one_paper_three_ways() -> list[Paper]:
    abstract = (
        "We prefetch the key value cache of large language model inference from host memory "
        "while the previous layer computes, and raise the throughput of long prompts twofold."
    )
    title = "Asynchronous KV cache prefetching for LLM inference"
    return [
        Paper("2611.00001", title, abstract, authors=["Grace Hopper"], source="arxiv",
              url="https://arxiv.org/abs/2611.00001"),
        Paper("https://j.example/1", title.upper() + ".", abstract, authors=["Hopper, G."],
              source="journal", url="https://j.example/1"),
        Paper("https://agg.example/1", title, " ".join(abstract.split()).lower(),
              source="aggregator", url="https://agg.example/1"),
        Paper("2611.00002", "Speculative decoding for long prompts in LLM inference",
              "A draft model proposes tokens for long prompts that the large model verifies.",
              authors=["Ada Lovelace"], source="arxiv", url="https://arxiv.org/abs/2611.00002"),
    ]  # fmt: skip


@pytest.mark.parametrize("follow", [False, True])
def test_a_digest_with_room_to_spare_holds_one_paper_once(store, make_config, follow):
    """Three copies of one paper and another paper, a digest of ten: MMR had room for all of
    them (only its diversity had kept copies apart), and a followed author's papers are all
    in, whatever their ranking."""
    store.add_papers(_one_paper_three_ways(), now=NOW - dt.timedelta(hours=2))
    follows = "    follow_authors: [Grace Hopper]\n" if follow else ""
    config = make_config(
        "ranking: {embeddings: off}\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
        '    interests: "KV cache prefetching, LLM inference"\n    digest_size: 10\n' + follows
    )
    composed = digests.compose(store, config, now=NOW, since=NOW - dt.timedelta(days=1))
    picks = [p.paper_id for p in composed["ada"].picks]
    copies = {"2611.00001", "https://j.example/1", "https://agg.example/1"}
    assert len(copies & set(picks)) == 1, picks
    assert "2611.00002" in picks


def _aggregator_copy(paper: Paper, link: str) -> dict:
    """An aggregator's copy: no authors, the title in capitals, the abstract spaced out."""
    return {"link": link, "title": paper.title.upper(), "abstract": paper.abstract.replace(" ", "  "),
            "authors": []}  # fmt: skip


@pytest.mark.parametrize("corpus_papers", [60_000, 100])
@pytest.mark.parametrize(
    ("copies", "sent"),
    [((0,), PREFETCH), ((1,), MOSAIC), ((0, "aggregator"), PREFETCH)],
    ids=["journal", "aggregator-no-authors", "journal-and-aggregator"],
)
def test_the_copy_of_a_paper_sent_months_ago_is_the_readers_own(
    store, make_config, arxiv_papers, corpus_papers, copies, sent
):
    """The paper went out in a digest in spring; past ranking.corpus_papers newer papers a
    bounded corpus leaves it out, and a copy came in autumn as news: its journal version, or an
    aggregator's that names no author (only its title and abstract's opening tell it is the
    paper: until the keys were stored, papers outside the corpus were known by title and first
    author alone, and ada got the aggregator's copy again), or both, which share no key with
    each other (the journal's abstract was revised): the spring paper is each of them, so they
    are one paper, which bob gets once."""
    spring = NOW - dt.timedelta(days=200)
    store.add_papers([arxiv_papers[sent]], now=spring)
    row = store.open_delivery("ada", "digest", "2026-05-07", "email", message_id="<a@x>",
                              content_hash="h", papers=[(sent, 1.0, [])], now=spring)  # fmt: skip
    store.mark_delivery(row, "sent", now=spring)
    newer = [p for pid, p in arxiv_papers.items() if pid != sent]
    store.add_papers(newer, now=NOW - dt.timedelta(days=100))
    # 150 more papers since: more than a corpus of 100 holds
    api = FIXTURES / "arxiv_api_atom_2026_q-testing_m100.xml"
    store.add_papers(
        parse_document(api.read_bytes(), source="api")[0], now=NOW - dt.timedelta(days=50)
    )
    aggregator = _aggregator_copy(arxiv_papers[sent], "https://journal.example/a/104")
    items = [aggregator if c == "aggregator" else _copies(arxiv_papers)[c] for c in copies]
    journal, _ = parse_document(_journal_feed(items), source="journal")
    store.add_papers(journal, now=NOW - dt.timedelta(hours=2))
    # a vote row without a paper (the column allows it): "not (... in (votes))" was NULL for
    # every paper then, and no paper was outside the corpus
    store.db.execute("insert into votes (subscriber_id, paper_id, vote) values ('zed', null, 1)")
    text = CONFIG.format(arxiv="https://a.example", journal="https://j.example")
    config = make_config(
        text.replace(
            "  embeddings: off\n", f"  embeddings: off\n  corpus_papers: {corpus_papers}\n"
        )
    )
    assert config.ranking.corpus_papers == corpus_papers
    for _ in range(2):  # the keys made (the spring paper's as by an older paperwire), then read
        composed = digests.compose(store, config, now=NOW, since=NOW - dt.timedelta(days=1))
        picks = {sub: [p.paper_id for p in d.picks] for sub, d in composed.items()}
        # news to bob, once: the copies share no key, but the spring paper is each of them
        assert len({i["link"] for i in items} & set(picks["bob"])) == 1
        assert not {i["link"] for i in items} & set(picks["ada"])  # ada's since spring
        assert [k[:2] for k in _stored_keys(store)[sent][1].split()] == ["t:", "a:"]


def test_a_copy_of_a_paper_far_above_the_bar_is_no_second_alert(store, make_config, smtp_server):
    """A paper far above ada's bar came from two feeds under two ids in one fetch, then from a
    third the next day."""
    for name in (
        "arxiv_rss_cs.xml",
        "arxiv_rss_cs_LG.xml",
        "arxiv_api_atom_2026_q-testing_m100.xml",
    ):
        papers, _ = parse_document((FIXTURES / name).read_bytes(), source=name)
        store.add_papers(papers, now=NOW - dt.timedelta(days=3))
    rag = "retrieval augmented generation dense retrieval reranking grounded answers"
    config = make_config(
        "ranking: {embeddings: off}\nalerts: {percentile: 99, max_per_day: 5}\nsubscribers:\n"
        f'  - {{id: ada, email: ada@example.org, interests: "{rag}"}}\n',
        env={"PAPERWIRE_SMTP_URL": smtp_server.url, "PAPERWIRE_SECRET": "test-secret-key-2"},
    )
    paper = Paper(
        "2611.00001",
        "Retrieval-augmented generation with dense retrieval and reranking",
        abstract=f"We ground answers in retrieved documents. {rag}. Dense retrieval and a "
        "reranking stage improve retrieval augmented generation on open-domain questions.",
        authors=["Grace Hopper"],
        url="https://arxiv.org/abs/2611.00001",
        source="arxiv",
    )

    def copy(n: int, author: str) -> Paper:
        link = f"https://journal.example/a/{n}"
        return Paper(link, paper.title.upper(), abstract="Another layout. " + paper.abstract,
                     authors=[author], url=link, source="journal")  # fmt: skip

    store.add_papers([paper, copy(9, "Hopper, G.")], now=NOW - dt.timedelta(hours=2))
    found = find_alerts(store, config, list(config.subscribers), now=NOW)
    assert len(found) == 1 and found[0].pick.paper_id in {paper.paper_id, copy(9, "").paper_id}
    assert [line.status for line in pipeline.send_alerts(store, config, now=NOW).lines] == ["sent"]
    store.add_papers([copy(10, "G. Hopper")], now=NOW + dt.timedelta(hours=1))
    later = NOW + dt.timedelta(hours=2)
    assert find_alerts(store, config, list(config.subscribers), now=later) == []
    assert len(smtp_server.messages) == 1


def _stored_keys(store) -> dict[str, tuple[str, str]]:
    return {
        r["paper_id"]: (r["made"], r["keys"]) for r in store.db.query("select * from paper_keys")
    }


def test_a_papers_keys_are_made_once_and_again_only_when_it_changes(
    store, arxiv_papers, monkeypatch
):
    """Keys are stored beside the paper (paper_keys): the next build reads them, and a new
    version's text, another first author or another version of the keys makes them again."""
    store.add_papers(list(arxiv_papers.values()), now=NOW)
    first = Corpus.build(store)
    made = []
    monkeypatch.setattr(twins_module, "keys", lambda *a: made.append(a[0]) or keys(*a))
    again = Corpus.build(store)
    assert made == [] and again.twins == first.twins
    assert len(_stored_keys(store)) == len(arxiv_papers)
    prefetch = arxiv_papers[PREFETCH]
    v2 = Paper(
        PREFETCH, prefetch.title, "A new abstract. " * 30, authors=["Someone Else"], version=9
    )
    store.add_papers([v2], now=NOW)
    assert PREFETCH not in _stored_keys(store)  # a paper outside a corpus is read by them
    Corpus.build(store)
    assert made == [prefetch.title]  # the changed paper alone
    assert _stored_keys(store)[PREFETCH][0].endswith("|Someone Else")
    store.db.execute(
        "update paper_keys set made = '0' || substr(made, 2) where paper_id = ?", [MOSAIC]
    )
    made.clear()
    Corpus.build(store)
    assert made == [arxiv_papers[MOSAIC].title]


@pytest.mark.parametrize("run", ["fetch", "build"])
def test_a_locked_database_costs_one_busy_wait_for_analyses_and_keys(tmp_path, arxiv_papers,
                                                                    caplog, run):  # fmt: skip
    """Neither the analyses nor the keys are stored yet (an upgrade) and another process holds
    the write lock: the fetch's pass (terms.refresh) or a build waits the busy timeout once,
    says so once, and does not wait again for the keys."""
    path = tmp_path / "p.db"
    with Store(path) as store:
        store.add_papers(list(arxiv_papers.values()), now=NOW)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store(path, busy_timeout=0.3) as store, caplog.at_level("WARNING", logger="paperwire"):
            terms.refresh(store) if run == "fetch" else Corpus.build(store)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    warnings = [r.getMessage() for r in caplog.records if "could not keep" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("could not keep the analysed text")


def test_a_locked_database_costs_the_stored_keys_not_the_twins(tmp_path, arxiv_papers, caplog):
    """Another process holds the write lock: the build finds the same twins from keys it made
    itself, logs once that it could not keep them, and the next build stores them."""
    path = tmp_path / "p.db"
    copies, _ = parse_document(_journal_feed(_copies(arxiv_papers)), source="journal")
    with Store(path) as store:
        store.add_papers(list(arxiv_papers.values()) + copies, now=NOW)
        terms.refresh(store)  # as fetch does: the text analysed and keyed
        assert len(_stored_keys(store)) == len(arxiv_papers) + len(copies)
        store.db.execute("delete from paper_keys")  # as stored by an older paperwire
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store(path, busy_timeout=0.3) as store, caplog.at_level("WARNING", logger="paperwire"):
            locked = Corpus.build(store)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    warnings = [r.getMessage() for r in caplog.records if "twin keys" in r.getMessage()]
    assert len(warnings) == 1 and "the database stayed locked" in warnings[0]
    with Store(path) as store:
        assert _stored_keys(store) == {}
        free = Corpus.build(store)
        assert len(_stored_keys(store)) == len(arxiv_papers) + len(copies)
    assert locked.twins == free.twins
    assert len(set(locked.twins.original.values())) == 2  # prefetch's and mosaic's copies


def test_keys_made_from_a_text_a_fetch_has_since_replaced_are_not_kept(store, arxiv_papers):
    """A run reads a paper and makes its keys while a fetch stores its new version (and drops
    the stored keys): the old text's keys must not land after it, or a copy of the new version
    would never be matched once the paper is outside the corpus."""
    store.add_papers([arxiv_papers[PREFETCH]], now=NOW)
    row = next(store.iter_corpus(keyed=True))
    digest = text_hash(paper_text(row["title"], row["abstract"]))
    found, keep = twins_module.keys_of_row(row, digest)
    renamed = Paper(PREFETCH, "A New Title for Version Two of It", "Revised. " * 30, version=9)
    store.add_papers([renamed], now=NOW + dt.timedelta(hours=1))  # the fetch, meanwhile
    store.set_paper_keys([keep])
    assert _stored_keys(store) == {}
    Corpus.build(store)
    assert _stored_keys(store)[PREFETCH][0] == twins_module.made_from(
        text_hash(paper_text(renamed.title, renamed.abstract)), []
    )


@pytest.mark.parametrize("authors", ["[null, 1]", '[["Ann"]]', "null", "{}", '"Ann Smith"'])
def test_a_sent_paper_with_authors_stored_askew_is_keyed_not_a_failed_run(store, authors):
    """Hand-edited or old rows: the authors column is not a list of names. Read as the corpus
    reads it (its first string, if any), never a TypeError that fails the build."""
    old = Paper("2601.00001", "Four Words In Title", "word " * 30)
    store.add_papers([old], now=NOW - dt.timedelta(days=300))
    row = store.open_delivery("ada", "digest", "p", "email", message_id="<a@x>",
                              content_hash="h", papers=[(old.paper_id, 1.0, [])], now=NOW)  # fmt: skip
    store.mark_delivery(row, "sent", now=NOW)
    store.db.execute("update papers set authors = ? where paper_id = ?", [authors, old.paper_id])
    store.add_papers([Paper(f"2611.{i:05d}", f"Paper number {i} here", "x " * 30) for i in range(5)],
                     now=NOW)  # fmt: skip
    since = store.corpus_since(3)
    corpus = Corpus.build(store, Scope(since, store.corpus_kept_before(since)))
    assert old.paper_id not in corpus.index
    assert old.paper_id in _stored_keys(store)


def test_the_keys_version_names_what_keys_are_made_of():
    """Stored keys are used while their version is KEYS_VERSION: a change to how keys are
    made (folding, TeX, surnames) that keeps the version would leave every stored paper under
    keys no new copy can match. Change the keys, bump KEYS_VERSION, then this pin."""
    papers, _ = parse_document((FIXTURES / "arxiv_rss_cs.xml").read_bytes(), source="arxiv")
    awkward = [
        Paper(
            "a", "$\\Pi$-NeSy: Neuro-Symbolic $\\ell_1$ Learning", "w " * 25, authors=["Hopper, G."]
        ),
        Paper("b", "Results From The Big Detector", "v " * 25, authors=["ATLAS Collaboration"]),
        Paper("c", "Ramírez and the KV-Cache Again", "u " * 25, authors=["José Ramírez Jr. (MIT)"]),
        # stored before ingest wrote TeX's letters out (version 4)
        Paper(
            "d", "Gau{\\ss}ian Processes at Gr{\\o}nneb{\\ae}k", "t " * 25, authors=["Nis\\ae l"]
        ),
    ]
    made = [keys(p.title, p.abstract, p.authors[:1]) for p in papers + awkward]
    digest = hashlib.sha256(json.dumps(made).encode()).hexdigest()[:16]
    assert (twins_module.KEYS_VERSION, digest) == (4, PINNED_KEYS)
