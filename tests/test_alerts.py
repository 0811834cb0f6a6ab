"""Instant alerts: calibrated per subscriber, capped per day, never repeated in a digest."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import numpy as np
import pytest

from paperwire import pipeline
from paperwire.paper import Paper
from paperwire.rank import compose as digest
from paperwire.rank.alerts import find_alerts
from paperwire.sources import parse_document

from .conftest import FIXTURES, Route

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
RAG = "retrieval augmented generation dense retrieval reranking grounded answers"

CONFIG = f"""\
feeds: []
subscribers:
  - id: ada
    email: ada@example.org
    interests: "{RAG}"
    digest_days: daily
  - id: bob
    email: bob@example.org
    interests: "power systems electrical energy carbon neutral grids"
    digest_days: daily
alerts:
  percentile: 99
  max_per_day: 2
"""


@pytest.fixture
def history(store):
    """~160 real papers first seen over the last days: what 'usual' means."""
    for name in ("arxiv_rss_cs.xml", "arxiv_rss_cs_LG.xml"):
        papers, _ = parse_document((FIXTURES / name).read_bytes(), source=name)
        store.add_papers(papers, now=NOW - dt.timedelta(days=3))
    api = FIXTURES / "arxiv_api_atom_2026_q-testing_m100.xml"
    papers, _ = parse_document(api.read_bytes(), source="api")
    store.add_papers(papers, now=NOW - dt.timedelta(days=5))
    assert store.count_papers() >= 150
    return store


def rag_paper(n: int) -> Paper:
    return Paper(
        f"2611.0000{n}",
        f"Retrieval-augmented generation with dense retrieval and reranking, part {n}",
        abstract=f"We ground answers in retrieved documents. {RAG}. Dense retrieval and a reranking "
        "stage improve retrieval augmented generation on open-domain question answering.",
        url=f"https://arxiv.org/abs/2611.0000{n}",
        source="t",
    )


def test_a_paper_far_above_the_bar_goes_out_at_once_and_only_to_its_reader(
    history, make_config, smtp_server
):
    config = make_config(
        CONFIG,
        env={"PAPERWIRE_SMTP_URL": smtp_server.url, "PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    history.add_papers(
        [rag_paper(1), Paper("2611.09999", "A survey of tax law", abstract="Taxes.", source="t")],
        now=NOW,
    )
    report = pipeline.send_alerts(history, config, now=NOW)
    assert [(line.subscriber_id, line.kind, line.status) for line in report.lines] == [
        ("ada", "alert", "sent")
    ]
    [msg] = smtp_server.messages
    assert msg["To"] == "ada@example.org"
    assert (
        msg["Subject"]
        == "Paperwire alert: Retrieval-augmented generation with dense retrieval and reranking, part 1"
    )
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "above your usual bar" in text
    # its one paper is not numbered as a digest's are ("1. Retrieval-augmented ...")
    title = "Retrieval-augmented generation with dense retrieval and reranking, part 1"
    assert f"\n{title}\n" in text and f"1. {title}" not in text
    # where the paper stands among the reader's recent papers, not a raw score ("scored 18.17,
    # above your usual bar of 13.50") no reader can place
    assert "in the top 1% of recent papers for you" in text
    [why] = [line for line in text.splitlines() if line.lstrip().startswith("Why")]
    assert not re.search(r"scored|\d+\.\d\d", why), text
    html = msg.get_body(("html",)).get_content()
    assert f">{title}</a>" in html and f"1. {title}" not in html
    # the alert is not repeated: not by the next check, not in the next digest
    assert pipeline.send_alerts(history, config, now=NOW + dt.timedelta(minutes=5)).lines == []
    pipeline.send_due(history, config, now=NOW + dt.timedelta(hours=1))
    digest_ids = [
        p["paper_id"] for p in history.delivery_papers(history.last_delivery("ada")["id"])
    ]
    assert "2611.00001" not in digest_ids


def test_readers_scored_a_chunk_at_a_time_get_the_alerts_of_one_matrix(
    history, make_config, monkeypatch
):
    # the bars and each reader's best fresh papers are kept chunk by chunk (20,000 readers'
    # whole matrix held 1.5 GiB): a reader's alerts, bar and scores are the same either way,
    # but for the last bit a float32 product gives a reader by their row in the block (the
    # AVX2 kernel's order: SemanticProfiles.score)
    readers = "".join(
        f'  - id: r{n}\n    email: r{n}@example.org\n    interests: "{interests}"\n'
        for n, interests in enumerate(
            [
                "retrieval augmented generation, grounded answers",
                "power systems electrical grids",
                "dense retrieval and reranking of passages",
            ]
        )
    )
    config = make_config(CONFIG.replace("subscribers:\n", "subscribers:\n" + readers))
    history.add_papers([rag_paper(1), rag_paper(2)], now=NOW)

    def alerts() -> list[tuple[str, str, float, float]]:
        found = find_alerts(history, config, list(config.subscribers), now=NOW)
        return [(a.subscriber.id, a.pick.paper_id, a.pick.score, a.bar) for a in found]

    whole = alerts()
    assert {who for who, *_ in whole} == {"r0", "r2", "ada"}
    assert len({bar for *_, bar in whole}) == 3  # three readers' own bars
    ids = history.papers_since(NOW - dt.timedelta(days=30))
    matrix = digest.score_matrix(history, config, None, ids, now=NOW)
    monkeypatch.setattr(digest, "SUBSCRIBER_CHUNK", 2)
    blocks = [
        (start, block)
        for start, _, block in digest.iter_scored_blocks(history, config, None, ids, now=NOW)
    ]
    assert [(start, len(block)) for start, block in blocks] == [(0, 2), (2, 2), (4, 1)]
    np.testing.assert_allclose(
        np.vstack([block for _, block in blocks]), matrix, rtol=1e-6, atol=1e-5
    )
    chunked = alerts()
    assert [a[:2] for a in chunked] == [a[:2] for a in whole]
    assert [a[2:] for a in chunked] == [pytest.approx(a[2:], rel=1e-6) for a in whole]


def test_alerted_readers_profiles_are_built_once_for_scores_and_reasons(
    history, make_config, monkeypatch
):
    # the reasons come from the profiles that scored the chunk: building them again for the
    # alerted readers (all of them, at 20,000 readers and 2,000 fresh papers) was half the run
    readers = "".join(
        f'  - id: r{n}\n    email: r{n}@example.org\n    interests: "{interests}"\n'
        for n, interests in enumerate(
            ["retrieval augmented generation", "dense retrieval and reranking", "grounded answers"]
        )
    )
    config = make_config(CONFIG.replace("subscribers:\n", "subscribers:\n" + readers))
    history.add_papers([rag_paper(1), rag_paper(2)], now=NOW)
    monkeypatch.setattr(digest, "SUBSCRIBER_CHUNK", 2)
    built = []
    build = digest.rank.build_profiles_from_signals

    def counted(model, signals, *args, **kwargs):
        built.append(len(signals))
        return build(model, signals, *args, **kwargs)

    monkeypatch.setattr(digest.rank, "build_profiles_from_signals", counted)
    found = find_alerts(history, config, list(config.subscribers), now=NOW)
    alerted = {a.subscriber.id for a in found}
    assert {"r0", "ada"} <= alerted  # readers of two chunks were explained
    assert all(a.pick.reasons[0].kind != "above_bar" for a in found)  # each has a reason
    assert sum(built) == len(config.subscribers)  # every reader's profile once
    assert built == [2] * (len(config.subscribers) // 2) + [1] * (len(config.subscribers) % 2)


def test_each_chunk_s_bars_and_best_papers_are_those_of_its_own_readers():
    # rows of their own scale, fresh papers on both sides of each bar, ties and NaNs, chunks of
    # 2, 2 and 1 readers: the same as a reader's row alone would give
    from paperwire.config import AlertConfig
    from paperwire.rank.alerts import _bars_and_best

    rng = np.random.default_rng(7)
    readers, history, fresh = 5, list(range(150)), list(range(150, 162))
    scores = rng.normal(size=(readers, 162)).astype(np.float32) * np.arange(1, 6)[:, None]
    scores[:, 150:] = np.linspace(-1, 3, 12, dtype=np.float32) * np.arange(1, 6)[:, None]
    scores[1, 155] = scores[1, 157]  # a tie: the earlier column first
    scores[2, 158] = np.nan
    scores[3, :40] = np.nan  # fewer papers scored: its bar is over the rest
    settings = AlertConfig(percentile=90, max_per_day=2, min_history=100)
    chunks = [
        _bars_and_best(scores[a:b], history, fresh, settings) for a, b in ((0, 2), (2, 4), (4, 5))
    ]
    bars = np.concatenate([c[0] for c in chunks])
    calibrated = np.concatenate([c[1] for c in chunks])
    best = [row for c in chunks for row in c[2]]
    for row in range(readers):
        bar = np.nanpercentile(scores[row, history], 90)
        assert bars[row] == bar
        values = scores[row, fresh]
        order = sorted(
            (col for col in range(len(fresh)) if values[col] > bar), key=lambda c: -values[c]
        )
        assert best[row] == [(col, float(values[col])) for col in order][:8]
        assert best[row], row  # every reader has some above their bar, some below
        assert len(best[row]) < len(fresh) - (row == 2)
    assert calibrated.tolist() == [True, True, True, True, True]
    assert [col for col, _ in best[1][4:6]] == [5, 7]  # equal scores: the earlier paper first
    # a reader's own papers (rated, seeded) are left out of their bar, not out of anyone else's
    own = [[0, 1, 2], [], [149], [], [10, 11]]
    bars, _, _ = _bars_and_best(scores, history, fresh, settings, own)
    for row, theirs in enumerate(own):
        rest = [col for col in history if col not in theirs]
        assert bars[row] == np.nanpercentile(scores[row, rest], 90)


def test_an_alert_keeps_the_digest_s_rules_seed_papers_and_must_match(history, make_config):
    """Alerts used to skip a reader's own seed papers from the config and ``must_match``
    (only ``never_match`` held), so a reader could be alerted to their own paper, or to one
    their digest would never show."""
    readers = (
        "  - id: seeder\n    email: s@example.org\n"
        f'    interests: "{RAG}"\n    seed_papers: ["2611.00001"]\n'
        "  - id: strict\n    email: t@example.org\n"
        f'    interests: "{RAG}"\n    must_match: ["knowledge graphs"]\n'
        "  - id: plain\n    email: p@example.org\n"
        '    interests: "retrieval augmented generation, dense retrieval, protein folding"\n'
        # ... and, as in a digest, a followed author's paper passes must_match
        "  - id: fan\n    email: f@example.org\n"
        f'    interests: "{RAG}"\n    must_match: ["knowledge graphs"]\n'
        '    follow_authors: ["Grace Hopper"]\n'
    )
    config = make_config(CONFIG.split("subscribers:")[0] + "subscribers:\n" + readers
                         + "alerts:\n  percentile: 99\n  max_per_day: 2\n")  # fmt: skip
    history.add_papers([replace(rag_paper(1), authors=["Grace Hopper", "A. Author"])], now=NOW)
    found = find_alerts(history, config, config.subscribers, now=NOW)
    assert [(a.subscriber.id, a.pick.paper_id) for a in found] == [
        ("plain", "2611.00001"),
        ("fan", "2611.00001"),
    ]
    # the alert names the reader's own words it contains, as a digest does, before its rarity
    assert [(r.kind, r.text) for r in found[0].pick.reasons] == [
        ("matches_interest", "retrieval augmented generation"),
        ("matches_interest", "dense retrieval"),
        ("above_bar", ""),
    ]
    # ... and the author the reader follows, first, as a digest does
    assert [(r.kind, r.text) for r in found[1].pick.reasons][0] == (
        "followed_author",
        "Grace Hopper",
    )


@pytest.mark.parametrize("embeddings", ["minilm", "off"])
def test_an_alert_names_the_readers_own_paper_it_resembles(history, make_config, embeddings):
    """A reader with only a seed paper read "scored 33.57, above your usual bar of 23.82" and
    nothing of theirs (found in review): an alert says which of their papers the new one is
    like, as a digest does, before how rare its score is."""
    config = make_config(
        "feeds: []\nsubscribers:\n  - id: seeder\n    email: s@example.org\n"
        '    seed_papers: ["2611.00002"]\nalerts:\n  percentile: 99\n  max_per_day: 2\n'
        f"ranking:\n  embeddings: {embeddings}\n"
    )
    history.add_papers([rag_paper(2)], now=NOW - dt.timedelta(days=400))
    history.add_papers([rag_paper(1)], now=NOW)
    [alert] = find_alerts(history, config, config.subscribers, now=NOW)
    assert alert.pick.paper_id == "2611.00001"
    reasons = [(r.kind, r.text) for r in alert.pick.reasons]
    assert reasons[0] == ("like_seed", rag_paper(2).title)
    assert reasons[-1] == ("above_bar", "")


@pytest.mark.parametrize("embeddings", ["minilm", "off"])
def test_an_alert_says_what_the_readers_digest_would_say_of_its_paper(
    history, make_config, embeddings, monkeypatch
):
    """An alert gave fewer reasons than a digest of the same papers gives the same paper
    (found in review): never the key phrases the reader's profile weighs in it ("about
    “speculative decoding”"), nor "close to your interest" (a paper with most words of one);
    on the sample feed a reader with a seed paper and one 👍 was not alerted at all to
    "MiniMax Sparse Attention", which her digest explains by "about “sparse attention”". An
    alert now says what that digest says, then how rare its score is."""
    config = make_config(
        "feeds: []\nsubscribers:\n"
        '  - id: seeder\n    email: s@example.org\n    seed_papers: ["2611.00002"]\n'
        "  - id: asker\n    email: a@example.org\n"
        '    interests: "retrieval augmented generation, dense passage reranking"\n'
        f"alerts:\n  percentile: 99\n  max_per_day: 2\nranking:\n  embeddings: {embeddings}\n"
    )
    history.add_papers([rag_paper(2)], now=NOW - dt.timedelta(days=400))
    history.add_papers([rag_paper(1)], now=NOW)
    found = find_alerts(history, config, config.subscribers, now=NOW)
    assert [(a.subscriber.id, a.pick.paper_id) for a in found] == [
        ("seeder", "2611.00001"),
        ("asker", "2611.00001"),
    ]
    # the digests of the same fresh papers, for the same readers
    digests = {
        d.subscriber.id: {p.paper_id: p.reasons for p in d.picks}
        for d in digest.iter_compose(history, config, now=NOW, since=NOW - dt.timedelta(hours=24))
    }
    for alert in found:
        said = digests[alert.subscriber.id][alert.pick.paper_id]
        # "dense retrieval" is in the seeder's seed paper; the asker wrote "dense" and
        # "retrieval" apart ("retrieval augmented generation, dense passage reranking"), which
        # make no phrase of hers: the digest names the key phrases that are the reader's ...
        assert any(r.kind == "about" for r in said) == (alert.subscriber.id == "seeder")
        assert alert.pick.reasons == [*said, alert.pick.reasons[-1]]  # ... and so does the alert
        assert alert.pick.reasons[-1].kind == "above_bar"
    # a reader a chunk: the second chunk's reasons come from the same explainer, its phrases
    # found after the first's, and still say what that reader's digest says (the score and
    # bar alike but for a float32 product's last bits: a reader's row in another block)
    monkeypatch.setattr(digest, "SUBSCRIBER_CHUNK", 1)
    chunked = find_alerts(history, config, config.subscribers, now=NOW)
    assert [(a.subscriber.id, a.pick.reasons[:-1]) for a in chunked] == [
        (a.subscriber.id, a.pick.reasons[:-1]) for a in found
    ]
    assert [a.pick.reasons[-1].numbers for a in chunked] == [
        pytest.approx(a.pick.reasons[-1].numbers, rel=1e-5) for a in found
    ]


def test_an_alerts_reasons_read_the_corpus_its_scores_read(history, make_config, monkeypatch):
    """A daemon's web app records votes and its fetches store papers while alerts are being
    worked out, and the session then builds another corpus, whose rows are other papers'.
    The reasons named the reader's own paper by the row the scores had read it at, in the new
    corpus (found in review): here a paper first seen long before every other takes row 0,
    the seed paper's, and "like <your paper>" compared the pick with it instead."""
    config = make_config(
        "feeds: []\nsubscribers:\n"
        '  - id: seeder\n    email: s@example.org\n    seed_papers: ["2611.00002"]\n'
        "  - id: asker\n    email: a@example.org\n"
        '    interests: "retrieval augmented generation, dense passage reranking"\n'
        "alerts:\n  percentile: 99\n  max_per_day: 2\n"
    )
    history.add_papers([rag_paper(2)], now=NOW - dt.timedelta(days=400))
    history.add_papers([rag_paper(1)], now=NOW)

    def alerts() -> list[tuple[str, str, list]]:
        found = find_alerts(history, config, config.subscribers, now=NOW)
        return [(a.subscriber.id, a.pick.paper_id, a.pick.reasons) for a in found]

    undisturbed = alerts()
    assert any(r.kind == "like_seed" for _, _, reasons in undisturbed for r in reasons)
    scored_blocks = digest.iter_scored_blocks

    def meanwhile(*args, **kwargs):
        blocks = scored_blocks(*args, **kwargs)
        first = next(blocks)  # the run's corpus is taken, its first chunk scored
        old = Paper("1801.00001", "A survey of protein folding kinetics", abstract=FOLDING)
        history.add_papers([old], now=NOW - dt.timedelta(days=3000))
        yield first
        yield from blocks

    monkeypatch.setattr(digest, "iter_scored_blocks", meanwhile)
    assert alerts() == undisturbed


FOLDING = (
    "Proteins fold through intermediate states whose kinetics we survey, from two-state "
    "folders to misfolding and aggregation, with the experiments that measure each."
)


def test_at_most_max_per_day(history, make_config, smtp_server):
    config = make_config(CONFIG, env={"PAPERWIRE_SMTP_URL": smtp_server.url})
    history.add_papers([rag_paper(n) for n in range(1, 5)], now=NOW)
    first = pipeline.send_alerts(history, config, now=NOW)
    assert [line.subscriber_id for line in first.lines] == ["ada", "ada"]
    alerted = {d["period"] for d in history.deliveries() if d["kind"] == "alert"}
    scores = digest.score_matrix(
        history, config, None, [f"2611.0000{n}" for n in range(1, 5)], now=NOW
    )
    best = {f"2611.0000{n + 1}" for n in np.argsort(-scores[0])[:2]}
    assert alerted == best  # the two best
    later = NOW + dt.timedelta(hours=2)
    history.add_papers([rag_paper(7)], now=later)
    assert pipeline.send_alerts(history, config, now=later).lines == []
    # it was the cap that held them back: a larger one lets the rest through, once each
    roomier = make_config(
        CONFIG.replace("max_per_day: 2", "max_per_day: 9"),
        env={"PAPERWIRE_SMTP_URL": smtp_server.url},
    )
    more = find_alerts(history, roomier, list(roomier.subscribers), now=later)
    rest = {f"2611.0000{n}" for n in (1, 2, 3, 4, 7)} - alerted
    assert {a.pick.paper_id for a in more} == rest


def test_no_alerts_without_enough_history_to_calibrate(store, make_config, smtp_server):
    config = make_config(CONFIG, env={"PAPERWIRE_SMTP_URL": smtp_server.url})
    store.add_papers([rag_paper(1)], now=NOW)
    assert pipeline.send_alerts(store, config, now=NOW).lines == []
    assert smtp_server.messages == []


def test_alerts_can_be_switched_off(history, make_config, smtp_server):
    config = make_config(
        CONFIG.replace("  max_per_day: 2", "  enabled: false"),
        env={"PAPERWIRE_SMTP_URL": smtp_server.url},
    )
    history.add_papers([rag_paper(1)], now=NOW)
    assert pipeline.send_alerts(history, config, now=NOW).lines == []


def test_a_new_install_calibrates_on_what_is_there_and_alerts_stay_rare(store, tmp_path):
    """After the demo's first fetch (200 papers, all new) alerts said "only 0 recent papers
    to calibrate on" until 100 papers were older than a day. Now the bar is set over what is
    there: a reader's one best paper of the 200 may go out at once, never more."""
    from paperwire.config import bundled_path, load_config

    config = load_config(bundled_path("example-subscribers.yaml"))
    pipeline.fetch_all(store, config, now=NOW)
    assert store.count_papers() == 200
    subs = list(config.subscribers)
    later = NOW + dt.timedelta(minutes=1)
    alerts = find_alerts(store, config, subs, now=later)
    per_reader = {s.id: [a.pick.paper_id for a in alerts if a.subscriber.id == s.id] for s in subs}
    assert alerts and all(len(found) <= 1 for found in per_reader.values()), per_reader
    assert all(alert.pick.score > alert.bar for alert in alerts)
    # sent once: the next fetch's check finds nothing more above the bar
    report = pipeline.send_alerts(store, config, now=later, outbox=tmp_path / "outbox")
    assert [line.status for line in report.lines] == ["sent"] * len(alerts)
    assert find_alerts(store, config, subs, now=NOW + dt.timedelta(hours=1)) == []


def test_below_min_history_papers_in_all_there_are_no_alerts(store, make_config):
    config = make_config(CONFIG)
    store.add_papers([rag_paper(n) for n in range(1, 9)], now=NOW)
    assert find_alerts(store, config, list(config.subscribers), now=NOW) == []


def test_a_paper_above_the_bar_that_nothing_of_the_reader_explains_is_no_alert(
    history, make_config, caplog
):
    """Dana (interests "AI ethics and policy, ...") was alerted at once to a reinforcement
    learning paper, "Why: scored 18.17, above your usual bar of 13.50" and nothing else (found
    in review): the profile had read "policy" as her word. A digest leaves out a pick nothing
    of the reader's explains; an alert, which interrupts, does too."""
    config = make_config(
        "feeds: []\nranking: {embeddings: off}\nsubscribers:\n  - id: dana\n"
        "    email: d@example.org\n"
        '    interests: "AI ethics and policy, fairness and bias in language models"\n'
        "alerts:\n  percentile: 99\n  max_per_day: 2\n"
    )
    lexical = Paper(
        "2611.00077",
        "Policy optimization for fair policies: bias-corrected policy gradients",
        abstract="We study policy gradient methods whose policy is fair. A bias-corrected policy "
        "optimization removes the bias of policy gradients; fairness of the policy is ethics "
        "for agents. Policy, policy and policy again.",
        url="https://arxiv.org/abs/2611.00077",
        source="t",
    )
    history.add_papers([lexical], now=NOW)
    [[score]] = digest.score_matrix(history, config, None, [lexical.paper_id], now=NOW)
    recent = [p for p in history.papers_since(NOW - dt.timedelta(days=30)) if p != "2611.00077"]
    usual = digest.score_matrix(history, config, None, recent, now=NOW)
    assert score > np.nanpercentile(usual, 99)  # far above her bar ...
    with caplog.at_level("INFO", logger="paperwire"):
        assert find_alerts(history, config, config.subscribers, now=NOW) == []  # ... no alert
    assert "2611.00077 for dana has no reason to give; not sent" in caplog.text
    # a paper with her own words in it still goes out, saying so
    history.add_papers([rag_paper(3)], now=NOW)
    fair = replace(
        rag_paper(4),
        abstract="Fairness and bias in language models: " + (rag_paper(4).abstract or ""),
    )
    history.add_papers([fair], now=NOW)
    found = find_alerts(history, config, config.subscribers, now=NOW)
    assert [(r.kind, r.text) for a in found for r in a.pick.reasons][:1] == [
        ("matches_interest", "fairness and bias in language models")
    ]


def test_an_alert_names_the_interest_it_is_close_to_in_meaning(history, make_config):
    """With the encoder, a paper that holds none of the reader's phrases whole, nor most of the
    words of one ("close to your interest"), but is near one in meaning says which, as a
    digest does, and goes out."""
    config = make_config(
        "feeds: []\nsubscribers:\n  - id: dana\n    email: d@example.org\n"
        '    interests: "AI ethics and policy, fairness and bias in language models"\n'
        "alerts:\n  percentile: 99\n  max_per_day: 2\n"
    )
    history.add_papers(
        [
            Paper(
                "2611.00078",
                "Measuring gender and racial bias in chatbots",
                abstract="We audit chatbots for gender and racial bias, and propose a fairness "
                "benchmark and debiasing method for chatbots.",
                url="https://arxiv.org/abs/2611.00078",
                source="t",
            )
        ],
        now=NOW,
    )
    [alert] = find_alerts(history, config, config.subscribers, now=NOW)
    assert [(r.kind, r.text) for r in alert.pick.reasons] == [
        ("close_in_meaning", "fairness and bias in language models"),
        ("above_bar", ""),
    ]


def test_past_corpus_papers_a_bar_of_no_paper_lets_nothing_through(history, make_config, caplog):
    """ranking.corpus_papers 100 and 121 papers fetched in the last hours: the corpus is the
    newest 81 of them and no older paper is scored, so each bar was NaN, no score was 'at or
    below' it and any fresh paper with a reason went out: 'scored 8.95, above your usual bar
    of nan'. A reader whose bar rests on fewer than alerts.min_history scored papers gets none,
    as a new install does."""
    import json

    lines = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    for batch in range(3):
        fetched = []
        for i in range(batch * 40, batch * 40 + 40):
            item = json.loads(lines[i])
            pid = f"2611.{i + 100:05d}"
            fetched.append(Paper(pid, item["title"], item["abstract"], url=f"https://x/{pid}"))
        history.add_papers(
            fetched + [rag_paper(1)] * (batch == 2), now=NOW - dt.timedelta(hours=3 - batch)
        )
    whole = make_config(CONFIG + "ranking: {embeddings: off}\n")
    found = find_alerts(history, whole, list(whole.subscribers), now=NOW)
    [alert] = [a for a in found if a.subscriber.id == "ada"]
    assert alert.pick.paper_id == rag_paper(1).paper_id and np.isfinite(alert.bar)
    bounded = make_config(CONFIG + "ranking: {embeddings: off, corpus_papers: 100}\n")
    with caplog.at_level("INFO", logger="paperwire"):
        assert find_alerts(history, bounded, list(bounded.subscribers), now=NOW) == []
    assert "alerts: ada: fewer than 100 recent papers scored to set a bar on" in caplog.text


def test_a_paper_whose_alert_failed_comes_back_in_the_next_digest(
    history, make_config, smtp_server
):
    """A pending alert's paper is left out of digests, and the next digest's window starts at
    the last digest: an alert still being retried when the digest went out, then failed, lost
    its paper for good, the reader's best of the day in no digest and no alert (found in
    review, with a Slack outage)."""
    config = make_config(
        CONFIG + "sender:\n  retry_attempts: 1\n  retry_backoff: 0\n",  # a try a run
        env={"PAPERWIRE_SMTP_URL": smtp_server.url, "PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    pipeline.send_due(history, config, now=NOW - dt.timedelta(hours=4))  # the day's digests
    history.add_papers([rag_paper(1)], now=NOW)
    smtp_server.refuse["ada@example.org"] = "451 4.3.0 try again later"  # an outage
    alerts = pipeline.send_alerts(history, config, now=NOW)
    assert [(line.kind, line.status) for line in alerts.lines] == [("alert", "retry")]
    history.add_papers([rag_paper(2)], now=NOW + dt.timedelta(hours=1))  # no alert run since
    tomorrow = NOW + dt.timedelta(days=1)
    # the next digest is composed while the alert is still being tried: without its paper, and
    # her next window starts after it; the outage goes on until the alert's tries run out
    pipeline.send_due(history, config, now=tomorrow)
    [composed] = [d for d in history.deliveries("ada") if d["kind"] == "digest"][:1]
    assert [p["paper_id"] for p in history.delivery_papers(composed["id"])] == ["2611.00002"]
    at = tomorrow
    while {d["state"] for d in history.deliveries("ada") if d["kind"] == "alert"} != {"failed"}:
        at += dt.timedelta(hours=2)
        assert at < tomorrow + dt.timedelta(days=1), "the alert was never given up"
        pipeline.send_due(history, config, now=at)
    smtp_server.refuse.clear()  # the outage ends: the digest goes out, the alert is over
    pipeline.send_due(history, config, now=at + dt.timedelta(hours=2))
    assert history.last_delivery("ada")["state"] == "sent"
    pipeline.send_due(history, config, now=tomorrow + dt.timedelta(days=1))
    delivered = history.delivery_papers(history.last_delivery("ada")["id"])
    assert "2611.00001" in [p["paper_id"] for p in delivered]
    # once delivered it is the reader's: not in the digest after
    history.add_papers([rag_paper(3)], now=tomorrow + dt.timedelta(days=1, hours=1))
    pipeline.send_due(history, config, now=tomorrow + dt.timedelta(days=2))
    later = history.delivery_papers(history.last_delivery("ada")["id"])
    assert [p["paper_id"] for p in later] == ["2611.00003"]
    # and bob, whose alert it never was, is not given it
    bob = history.delivery_papers(history.last_delivery("bob")["id"])
    assert "2611.00001" not in [p["paper_id"] for p in bob]


def test_an_old_papers_new_version_is_no_alert_and_its_digest_says_it_is_a_revision(
    history, make_config, smtp_server
):
    """arXiv's feeds announce every revision again ("replace"): the demo's reader got an alert
    that a paper of November 2024 "just appeared", and digests showed year-old papers dated
    today (found reading what a reader receives)."""
    config = make_config(
        CONFIG,
        env={"PAPERWIRE_SMTP_URL": smtp_server.url, "PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    pipeline.send_due(history, config, now=NOW - dt.timedelta(hours=4))
    revised = replace(rag_paper(1), paper_id="2411.00850", announce_type="replace", version=2)
    history.add_papers([revised], now=NOW)
    assert pipeline.send_alerts(history, config, now=NOW).lines == []
    # the same paper announced as new is alerted: the bar, not the paper, held it back
    history.add_papers([replace(rag_paper(2), announce_type="new")], now=NOW)
    [line] = pipeline.send_alerts(history, config, now=NOW + dt.timedelta(minutes=5)).lines
    assert (line.subscriber_id, line.status) == ("ada", "sent")
    smtp_server.messages.clear()
    pipeline.send_due(history, config, now=NOW + dt.timedelta(days=1))
    [mail] = [m for m in smtp_server.messages if m["To"] == "ada@example.org"]
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "revised v2, first posted 2024-11" in text
    html = mail.get_body(("html",)).get_content()
    assert "revised v2, first posted 2024-11" in html


# -- an alert and a digest composed at once (a `send` beside `run --once` or the daemon) -------


def _digest_job(store, config, picks):
    with store.holding() as claim:
        return pipeline._open_job(
            store, config.subscriber("ada"), "digest", "2026-11-23", "email", picks,
            claim=claim, domain="example.org", now=NOW,
        )  # fmt: skip


def test_a_digest_composed_before_an_alert_was_opened_leaves_the_alerted_paper_out(
    history, make_config, smtp_server
):
    """`send` composed its digests while `run --once` opened and sent an alert: the reader got
    the paper twice, in the alert and in the digest (found in review, 3 tries of 3)."""
    from paperwire import digests

    config = make_config(
        CONFIG,
        env={"PAPERWIRE_SMTP_URL": smtp_server.url, "PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    history.add_papers([rag_paper(1)], now=NOW)
    composed = digests.compose(history, config, [config.subscriber("ada")], now=NOW)["ada"]
    assert "2611.00001" in [p.paper_id for p in composed.picks]  # composed before the alert
    report = pipeline.send_alerts(history, config, now=NOW)
    assert [(line.subscriber_id, line.kind) for line in report.lines] == [("ada", "alert")]
    job = _digest_job(history, config, composed.picks)
    assert job is not None
    assert [p.paper_id for p in job.picks] == [
        p.paper_id for p in composed.picks if p.paper_id != "2611.00001"
    ]
    # the ledger holds the digest as it will go out, without the alerted paper
    stored = history.db.execute(
        "select paper_id from delivery_papers where delivery_id = ? order by rank",
        [job.delivery_id],
    )
    assert [r[0] for r in stored] == [p.paper_id for p in job.picks]


def test_an_alert_for_a_paper_a_digest_took_first_is_not_opened(history, make_config):
    from paperwire import digests

    config = make_config(CONFIG, env={"PAPERWIRE_SECRET": "k-test-signing-key"})
    history.add_papers([rag_paper(1)], now=NOW)
    composed = digests.compose(history, config, [config.subscriber("ada")], now=NOW)["ada"]
    [alert] = [a for a in find_alerts(history, config, config.subscribers, now=NOW)]
    assert alert.pick.paper_id == "2611.00001"  # found before the digest was opened
    assert _digest_job(history, config, composed.picks) is not None
    with history.holding() as claim:
        opened = pipeline._open_job(
            history, alert.subscriber, "alert", alert.pick.paper_id, "email", [alert.pick],
            claim=claim, domain="example.org", now=NOW,
        )  # fmt: skip
    assert opened is None
    assert [row["kind"] for row in history.deliveries("ada")] == ["digest"]


@pytest.mark.parametrize("vote", [1, -1])
def test_a_readers_votes_do_not_set_their_own_bar(history, make_config, vote):
    """The bar was a percentile of the reader's scores over every recent paper, their voted ones
    included: a paper they 👍 scores far above anything (it is in their profile), so a reader
    who voted on their best papers got no alerts where a twin who never voted did; and 👎 on
    their best papers pulled the bar down (found in review: an all-👎 reader got the most
    alerts). The bar is set over the recent papers the reader has not rated."""
    twin = f'  - id: voter\n    email: voter@example.org\n    interests: "{RAG}"\n'
    config = make_config(CONFIG.replace("  - id: bob\n", twin + "  - id: bob\n"))
    recent = history.papers_since(NOW - dt.timedelta(days=30))
    row = [s.id for s in config.subscribers].index("voter")
    before = digest.score_matrix(history, config, None, recent, now=NOW)[row]
    best = [recent[i] for i in np.argsort(-before, kind="stable")[:3]]  # what set the bar
    for paper_id in best:
        history.record_vote("voter", paper_id, vote, via="test", now=NOW - dt.timedelta(days=1))
    history.add_papers([rag_paper(1)], now=NOW)
    alerts = {a.subscriber.id: a for a in find_alerts(history, config, config.subscribers, now=NOW)}
    assert alerts["ada"].pick.paper_id == "2611.00001"  # the twin who never voted
    assert alerts["voter"].pick.paper_id == "2611.00001"
    after = digest.score_matrix(history, config, None, recent, now=NOW)[row]
    unrated = [i for i, paper_id in enumerate(recent) if paper_id not in best]
    assert alerts["voter"].bar == pytest.approx(np.percentile(after[unrated], 99), rel=1e-6)


@pytest.mark.parametrize(
    ("zone", "first", "next_day"),
    [
        # a daily fetch at 04:30 whose fetch took a few seconds less than the day before
        ("UTC", "2026-11-23T04:30:35", "2026-11-24T04:30:28"),
        # the reader's own day: 23:00 and 01:00 UTC are two days in Paris (UTC+1)
        ("Europe/Paris", "2026-11-23T22:00:00", "2026-11-23T23:30:00"),
    ],
)
def test_the_day_of_max_per_day_is_the_readers_calendar_day(
    history, make_config, smtp_server, zone, first, next_day
):
    """``max_per_day`` counted the alerts of the last 24 hours to the microsecond: a daily
    fetch a few seconds quicker than yesterday's found yesterday's alerts still inside the
    window, and the day's alerts waited for a later run, hours after the fetch (found in
    review). A day is the reader's calendar day, in their time zone."""
    config = make_config(
        CONFIG.replace(
            "    digest_days: daily\n", f"    digest_days: daily\n    timezone: {zone}\n", 1
        ),
        env={"PAPERWIRE_SMTP_URL": smtp_server.url, "PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    day_one = dt.datetime.fromisoformat(first).replace(tzinfo=dt.UTC)
    history.add_papers([rag_paper(1), rag_paper(2)], now=day_one)
    assert len(pipeline.send_alerts(history, config, now=day_one).lines) == 2  # the day's two
    day_two = dt.datetime.fromisoformat(next_day).replace(tzinfo=dt.UTC)
    history.add_papers([rag_paper(3)], now=day_two)
    [line] = pipeline.send_alerts(history, config, now=day_two).lines
    assert (line.subscriber_id, line.status) == ("ada", "sent")
    # and within one day the cap holds
    later = day_two + dt.timedelta(minutes=20)
    history.add_papers([rag_paper(4), rag_paper(5)], now=later)
    assert len(pipeline.send_alerts(history, config, now=later).lines) == 1


def test_run_once_waits_for_a_stalled_webhook_host_once_not_once_for_alerts_and_again(
    history, make_config, http_server
):
    """`run --once` sent its alerts and then its digests each with a run of its own: a Slack
    host that let an alert reach its deadline was waited for again by the digests, for an
    alert left for later among them (found in review: 55 s where 25 s would do). One run,
    one deadline for the host: everything else for it waits, untried, for the next run."""
    http_server.routes["/slow"] = Route(b"ok", delay=3)
    readers = "".join(
        f'  - id: s{i}\n    slack_webhook: {http_server.url("/slow")}\n    interests: "{RAG}"\n'
        "    digest_days: daily\n"
        for i in range(2)
    )
    config = make_config(
        f"feeds: []\nsubscribers:\n{readers}alerts: {{percentile: 99}}\n"
        "sender: {timeout: 1, retry_attempts: 1}\n",
        env={"PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    history.add_papers([rag_paper(1)], now=NOW)
    _, report = pipeline.run_once(history, config, now=lambda: NOW)
    posts = [r for r in http_server.requests if r[0] == "POST" and r[1] == "/slow"]
    assert len(posts) == 1, report.lines  # the first alert's, and nothing after it
    assert {line.status for line in report.lines} == {"retry"}
    assert sorted(line.subscriber_id for line in report.lines if line.kind == "digest") == [
        "s0", "s1"
    ]  # fmt: skip
