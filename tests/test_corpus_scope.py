"""``ranking.corpus_papers``: a store past it is ranked against its newest papers and every
paper a reader voted on or seeded, not all of it (a year of arXiv took 1.6 GiB a run)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from paperwire import pipeline
from paperwire.paper import Paper
from paperwire.rank import compose as digest
from paperwire.rank.corpus import Corpus
from paperwire.rank.embed import paper_vectors
from paperwire.rank.scope import EVERY_PAPER, Scope
from paperwire.rank.scope import scope as corpus_scope
from paperwire.rank.session import RankingSession
from paperwire.web import profile
from paperwire.web.profile_cache import ProfileCache

FIXTURES = Path(__file__).parent / "fixtures"
DAY1 = dt.datetime(2026, 11, 1, 6, 0, tzinfo=dt.UTC)
NOW = DAY1 + dt.timedelta(days=4)
PER_DAY = 50


def stored_days(store, days: int = 4) -> list[list[str]]:
    """``days`` fetches of 50 real arXiv papers, a day apart; each day's ids."""
    lines = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    out = []
    for day in range(days):
        papers = []
        for i in range(day * PER_DAY, (day + 1) * PER_DAY):
            item = json.loads(lines[i])
            pid = f"2504.{i:05d}"
            papers.append(Paper(pid, item["title"], item["abstract"], url=f"https://x/{pid}"))
        store.add_papers(papers, now=DAY1 + dt.timedelta(days=day))
        out.append([p.paper_id for p in papers])
    return out


def config_with(make_config, corpus_papers: int, seed: str, embeddings: str = "off"):
    return make_config(
        f"ranking:\n  embeddings: {embeddings}\n  corpus_papers: {corpus_papers}\n"
        "subscribers:\n"
        "  - id: ada\n    email: ada@example.org\n    interests: graph neural networks\n"
        f"    seed_papers: ['{seed}']\n"
        "  - id: bob\n    email: bob@example.org\n    interests: reinforcement learning\n",
        env={"PAPERWIRE_SECRET": "k-test-signing-key"},
    )


def test_past_corpus_papers_a_run_reads_the_newest_and_every_readers_own(store, make_config):
    days = stored_days(store)
    config = config_with(make_config, 100, days[0][7])
    store.record_vote("ada", days[0][3], 1, via="web", now=NOW)
    store.record_vote("bob", days[0][4], -1, via="web", now=NOW)
    store.add_seeds("ada", [days[1][5]], origin="library")

    scope = corpus_scope(store, config)
    corpus = Corpus.build(store, scope)

    # the newest 100 (days 3 and 4), the two papers voted on, the imported seed and the
    # config's seed (stored as first seen in the past, as seeds are): nothing else
    own = {days[0][3], days[0][4], days[1][5], days[0][7]}
    assert set(corpus.ids) == set(days[2] + days[3]) | own
    assert len(corpus.ids) == 104
    assert corpus.matrix.shape[0] == 104
    # the reader's 👍 on a paper the bound would have left out still teaches the model
    [ada, bob] = digest.subscriber_signals(store, list(config.subscribers), {}, corpus.index,
                                           corpus.rows)  # fmt: skip
    assert [p for p, _ in ada.liked_titles] == [days[0][3], days[0][7], days[1][5]]
    assert [corpus.ids[r] for r in bob.vote_rows or []] == [days[0][4]]


def test_a_store_within_corpus_papers_is_read_whole_as_before(store, make_config):
    days = stored_days(store)
    config = config_with(make_config, 200, days[0][7])
    assert corpus_scope(store, config) is EVERY_PAPER
    corpus = Corpus.build(store, corpus_scope(store, config))
    assert corpus.ids == [r["paper_id"] for r in store.corpus()]
    assert len(corpus.ids) == 4 * PER_DAY


def test_a_digest_window_reaching_past_the_bound_keeps_every_candidate(store, make_config):
    """A reader back after weeks, or ``digest --since``: the window's papers are all ranked."""
    days = stored_days(store)
    bounded = config_with(make_config, 100, days[0][7])
    whole = config_with(make_config, 10_000, days[0][7])
    since = DAY1 - dt.timedelta(hours=1)
    got = {}
    for name, config in (("bounded", bounded), ("whole", whole)):
        [ada, _] = digest.iter_compose(store, config, now=NOW, since=since, limit=10)
        got[name] = ada
    # every paper but the config's seed is a candidate under both, and the same are picked
    assert got["bounded"].candidates == got["whole"].candidates == 4 * PER_DAY - 1
    assert [p.paper_id for p in got["bounded"].picks] == [p.paper_id for p in got["whole"].picks]
    assert got["bounded"].picks


def test_the_profile_page_reads_the_corpus_the_ranking_reads(store, make_config):
    days = stored_days(store)
    config = config_with(make_config, 100, days[0][7])
    store.record_vote("ada", days[0][3], 1, via="web", now=NOW)
    scope = corpus_scope(store, config)
    ranking = RankingSession().corpus(store, scope)
    page = profile.corpus_model(store, scope)
    assert page.rows == ranking.index
    assert np.array_equal(page.model.idf, ranking.model.idf)
    assert len(page.rows) == 102  # the newest 100, the 👍 and the config seed


@pytest.mark.parametrize("swap", [False, True])
def test_two_scopes_of_one_size_never_share_vectors(store, make_config, swap):
    """A config edit that swaps one old seed paper for another keeps the corpus's size: the
    session must not hand the first corpus's vectors to the second."""
    days = stored_days(store, 3)
    day1 = store.paper(days[0][0])["first_seen"]  # after the first day: days 2 and 3
    first, second = Scope(day1, frozenset({days[0][10]})), Scope(day1, frozenset({days[0][20]}))
    scopes = [second, first] if swap else [first, second]
    session = RankingSession()
    spec = "minilm"
    for scope in scopes:
        corpus = session.corpus(store, scope)
        embedded = session.embedded(store, spec, corpus.ids, corpus.texts(store))
        assert embedded is not None
        truth = paper_vectors(store, session.model(spec), corpus.ids, corpus.texts(store))
        assert np.array_equal(embedded.vectors, truth)
        assert len(corpus.ids) == 2 * PER_DAY + 1


def test_a_vote_on_a_paper_outside_the_bound_is_in_a_kept_sessions_next_corpus(store, make_config):
    """A daemon keeps its corpus while no paper is added, nor voted on past the bound; a vote
    there is in the next corpus, as in a command run afresh, and stays after a fetch."""
    days = stored_days(store, 3)
    config = config_with(make_config, 100, days[2][0])
    session = RankingSession()
    before = session.corpus(store, corpus_scope(store, config))
    assert days[0][9] not in before.index
    store.record_vote("bob", days[0][9], 1, via="web", now=NOW)
    assert days[0][9] in RankingSession().corpus(store, corpus_scope(store, config)).index
    assert days[0][9] in session.corpus(store, corpus_scope(store, config)).index
    fetched = [Paper("2504.99999", "A new paper", "On graph neural networks.", url="https://x")]
    store.add_papers(fetched, now=NOW)
    after = session.corpus(store, corpus_scope(store, config))
    assert days[0][9] in after.index and "2504.99999" in after.index


def test_fetch_analyses_and_encodes_the_papers_a_run_reads_not_a_whole_old_store(
    store, make_config, tmp_path
):
    """After an upgrade or a model switch, the next fetch prepares what digests read (a year
    of papers would take 38 minutes to encode on two cores), and a digest reaching further
    back prepares what it needs itself."""
    days = stored_days(store, 3)
    config = config_with(make_config, 100, days[0][7], embeddings="minilm")
    store.record_vote("ada", days[0][3], 1, via="web", now=NOW)
    pipeline.fetch_all(store, config, base_dir=tmp_path, now=NOW)
    wanted = set(days[1] + days[2]) | {days[0][3], days[0][7]}
    assert set(store.paper_terms_made()) == wanted
    assert set(store.embeddings_made()) == wanted
    [ada, _] = digest.iter_compose(store, config, now=NOW, since=DAY1 - dt.timedelta(hours=1))
    assert ada.candidates == 3 * PER_DAY - 2  # every paper but ada's 👍 and seed
    assert set(store.embeddings_made()) == {p for day in days for p in day}


def test_the_daemons_profile_pages_read_the_corpus_its_digests_built(
    store, make_config, monkeypatch
):
    """One corpus in the daemon's memory, not one for the digests and one for the pages."""
    days = stored_days(store, 3)
    config = config_with(make_config, 100, days[0][7])
    store.record_vote("ada", days[2][3], 1, via="web", now=NOW)
    session = RankingSession()
    yesterday = DAY1 + dt.timedelta(days=1, hours=12)  # the last day's papers
    list(digest.iter_compose(store, config, now=NOW, since=yesterday, session=session))
    built = []
    monkeypatch.setattr(Corpus, "build", lambda *a: built.append(a) or pytest.fail("built"))
    pages = ProfileCache(store.path, wait=30, session=session)
    ada = config.subscriber("ada")
    terms = pages.terms(store, ada, override=(None, None), votes=store.votes(["ada"]), now=NOW,
                        scope=corpus_scope(store, config))  # fmt: skip
    pages.close(5)
    assert terms.current and terms.learned is not None and terms.learned.positive
    assert not built


def test_status_says_how_much_of_an_old_store_digests_rank_against(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from paperwire.cli import cli
    from paperwire.store import Store

    monkeypatch.chdir(tmp_path)
    with Store(tmp_path / "paperwire.db") as store:
        days = stored_days(store, 3)
        store.record_vote("ada", days[0][3], 1, via="web", now=NOW)
    yaml = (
        "ranking: {embeddings: off, corpus_papers: CAP}\nsubscribers:\n"
        "  - id: ada\n    email: ada@example.org\n    interests: graph neural networks\n"
    )
    lines = {}
    for cap in (100, 150):
        (tmp_path / "subscribers.yaml").write_text(yaml.replace("CAP", str(cap)))
        result = CliRunner().invoke(cli, ["status"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        lines[cap] = result.stdout.splitlines()
    assert lines[100][0].startswith("150 papers stored in ")
    assert lines[100][1] == (
        "digests rank against 101 of them: those first seen after 2026-11-01 06:00 UTC "
        "(ranking.corpus_papers: 100) and every paper a reader voted on or seeded, and each "
        "digest's own window (up to 31 days) besides"
    )
    assert lines[150][1].startswith("ada · ")  # the whole store: nothing to say


def test_a_fetch_of_more_papers_than_the_bound_is_not_left_out(store, make_config, tmp_path):
    """ranking.corpus_papers 100 and two fetches of 120 papers: the 100th and the 101st newest
    came in together, 'first seen after' the 101st's time held none of the 240 and the corpus
    was empty (the profile pages learned nothing, alerts had no paper to score, the fetch
    analysed and encoded nothing it had just stored). A fetch at the bound's edge is kept whole."""
    lines = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    fetches = []
    for day in range(2):
        papers = []
        for i in range(day * 120, day * 120 + 120):
            item = json.loads(lines[i])
            papers.append(Paper(f"2504.{i:05d}", item["title"], item["abstract"], url="https://x"))
        store.add_papers(papers, now=DAY1 + dt.timedelta(days=day))
        fetches.append([p.paper_id for p in papers])
    config = config_with(make_config, 100, fetches[0][0])
    scope = corpus_scope(store, config)
    assert set(Corpus.build(store, scope).ids) == set(fetches[1]) | {fetches[0][0]}
    assert store.corpus_count(scope.since or "", scope.keep) == 121
    # a store of one fetch (nothing older to stop at) is read whole
    from paperwire.store import Store

    with Store(tmp_path / "one.db") as one:
        one.add_papers([Paper(f"2504.{i:05d}", "T", "A.", url="https://x") for i in range(150)])
        assert corpus_scope(one, config) == EVERY_PAPER


def test_a_window_reaches_back_a_month_at_most(store, make_config, tmp_path):
    """A reader whose last digest was months ago (back from leave, or an address that fails
    every day, whose window then never moves on) gets the last month's best, and their window
    does not widen every run's corpus back to their last digest for everyone due with them."""
    lines = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()

    def fetch(first: int, when: dt.datetime) -> list[str]:
        items = [json.loads(line) for line in lines[first : first + PER_DAY]]
        papers = [Paper(f"2504.{first + i:05d}", it["title"], it["abstract"], url="https://x")
                  for i, it in enumerate(items)]  # fmt: skip
        store.add_papers(papers, now=when)
        return [p.paper_id for p in papers]

    fetch(0, DAY1)
    config = config_with(make_config, 100, "2504.00007")
    sent = NOW + dt.timedelta(hours=3)  # past the readers' digest time
    pipeline.send_due(store, config, now=sent, outbox=tmp_path / "outbox")
    assert store.last_delivery("ada")["state"] == "sent"
    later = NOW + dt.timedelta(days=90)
    fetch(PER_DAY, NOW + dt.timedelta(days=30))  # two months before: out of her window
    recent = fetch(2 * PER_DAY, later - dt.timedelta(days=1))
    assert digest.window_starts(store, config, ["ada"], later) == {
        "ada": later - dt.timedelta(days=digest.MAX_WINDOW_DAYS)
    }
    [ada, _] = digest.iter_compose(store, config, now=later, limit=10)
    assert ada.since == later - dt.timedelta(days=digest.MAX_WINDOW_DAYS)
    assert ada.candidates == len(recent)
    assert {p.paper_id for p in ada.picks} <= set(recent)


def test_a_vote_on_a_paper_past_the_bound_counts_in_a_kept_sessions_next_digest(
    store, make_config, monkeypatch
):
    """The daemon keeps one session: its corpus was kept while no paper was added or changed,
    so a 👍 given in the web app on a paper older than the bound (not in the corpus) counted
    only once a fetch brought new papers; `paperwire digest`, a fresh session, counted it."""
    days = stored_days(store, 3)
    lines = (FIXTURES / "arxiv_cs_2025-04-11_neural_networks.jsonl").read_text().splitlines()
    old = [json.loads(line) for line in lines[150:200]]  # fetched 45 days ago: past any window
    papers = [Paper(f"2503.{i:05d}", p["title"], p["abstract"], url="https://x/") for i, p in enumerate(old)]  # fmt: skip
    store.add_papers(papers, now=DAY1 - dt.timedelta(days=45))
    config = config_with(make_config, 100, days[0][7])
    session = RankingSession()

    def ada_picks(session: RankingSession) -> list[tuple[str, float]]:
        [ada, _] = digest.iter_compose(store, config, now=NOW, session=session, limit=5)
        return [(p.paper_id, p.score) for p in ada.picks]

    before = ada_picks(session)
    store.record_vote("ada", papers[3].paper_id, 1, via="web", now=NOW)  # as the web app's 👍
    after = ada_picks(session)
    assert after == ada_picks(RankingSession()) != before  # as a fresh process ranks it
    # a vote on a paper the corpus holds anyway leaves it as it is: not built again
    built = []
    monkeypatch.setattr(Corpus, "build", lambda *a: built.append(a))
    store.record_vote("bob", days[2][1], -1, via="web", now=NOW)
    assert ada_picks(session) == after and built == []
