"""Seeds from a reader's library: real BibTeX / CSL JSON / RIS / plain-list files, a real local
HTTP server answering like the arXiv API, a real SQLite store, and the CLI."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from paperwire import digests as worded
from paperwire.cli import cli
from paperwire.errors import SourceError
from paperwire.paper import Paper
from paperwire.rank import compose as digest
from paperwire.sources import library
from paperwire.store import Store

from .arxiv_api import arxiv_api_server

LIBRARY = Path(__file__).parent / "fixtures" / "library"
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


class FakeClock:
    """Time that only moves when the throttle sleeps: the test sees every pause it asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.request_times: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def ids(entries: list[library.LibraryEntry]) -> list[str | None]:
    return [e.arxiv_id for e in entries]


def test_bibtex_ids_come_from_eprint_url_and_arxiv_doi():
    entries = library.read_library(LIBRARY / "library.bib")
    assert ids(entries) == ["1706.03762", "1810.04805", "1512.03385", None, None]
    assert [e.where for e in entries] == [
        "library.bib:2",
        "library.bib:12",
        "library.bib:20",
        "library.bib:28",
        "library.bib:35",
    ]
    # braces and TeX decoded, so the title search asks for the words a human reads
    assert entries[3].title == "Adam: A Method for Stochastic Optimization"
    assert entries[4].doi == "10.1162/neco.1997.9.8.1735"


def test_zotero_csl_json_and_ris_and_plain_list():
    csl = library.read_library(LIBRARY / "zotero.json")
    assert ids(csl) == ["2106.09685", None, None]
    assert csl[2].doi == "10.1038/nature14236"
    ris = library.read_library(LIBRARY / "zotero.ris")
    assert ids(ris) == ["1512.03385", None, "1810.04805"]
    assert [e.where for e in ris] == ["zotero.ris:1", "zotero.ris:17", "zotero.ris:31"]
    plain = library.read_library(LIBRARY / "reading-list.txt")
    assert ids(plain) == ["1706.03762", "2106.09685", "1810.04805", "1512.03385", None, None]
    assert plain[4].doi == "10.1038/nature14236"
    assert plain[5].where == "reading-list.txt:7"


def test_a_broken_bibtex_entry_is_named_by_line(tmp_path: Path):
    bib = tmp_path / "broken.bib"
    bib.write_text("@article{ok, title={Fine}}\n\n@misc{bad,\n  title = {Never closed}\n")
    with pytest.raises(SourceError) as caught:
        library.read_library(bib)
    assert str(caught.value) == (  # the parser's reason, not its exception's class name
        "broken.bib:3: not a valid BibTeX entry (Unexpectedly reached end of file.); "
        "fix or remove it and import again"
    )


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("dup.bib", "@article{a, title={One}, title={Two}, eprint={1706.03762}}\n",
         "dup.bib:1: not a valid BibTeX entry (Duplicate field keys on entry: 'title'); "
         "fix or remove it and import again"),
        # a wrong file, or an empty one, was "0 of 0 entries matched", exit 0
        ("empty.bib", "% nothing here\n", "empty.bib: no entries found: is it BibTeX"),
        # Python's limit on an integer's digits: a ValueError traceback
        ("big.json", '[{"title": "a", "number": ' + "9" * 5000 + "}]",
         "big.json: not valid CSL JSON: Exceeds the limit"),
    ],
)  # fmt: skip
def test_a_library_file_s_mistake_is_said_in_one_line(tmp_path: Path, name, text, said):
    (tmp_path / name).write_text(text)
    with pytest.raises(SourceError) as caught:
        library.read_library(tmp_path / name)
    assert str(caught.value).startswith(said)
    assert "\n" not in str(caught.value)


def test_a_library_is_read_as_what_it_holds_whatever_its_name(tmp_path: Path):
    """A Zotero CSL JSON or RIS export named .bib was read as BibTeX: an empty library."""
    for fixture in ("zotero.json", "zotero.ris"):
        named = tmp_path / f"{fixture.replace('.', '-')}.bib"
        shutil.copy(LIBRARY / fixture, named)
        got = library.read_library(named)
        assert len(got) == len(library.read_library(LIBRARY / fixture)) > 0


def test_entries_sharing_a_line_are_each_their_own_place(tmp_path: Path, store):
    """Three entries on one line shared "name:1", the key of what an import could not match:
    'UNIQUE constraint failed' after the seeds were stored, and nothing unmatched kept."""
    bib = tmp_path / "oneline.bib"
    bib.write_text(
        "@article{x, eprint={1706.03762}} @article{a, title={Paper one}} "
        "@article{b, title={Paper two}}\n"
    )
    entries = library.read_library(bib)
    wheres = [e.where for e in entries]
    assert len(set(wheres)) == 3 and wheres[0] == "oneline.bib:1"
    store.set_seed_misses("ada", "oneline.bib", [(e.where, e.title, "no match") for e in entries])
    assert len(store.seed_misses("ada")) == 3


def test_a_title_nested_hundreds_of_commands_deep_is_read_as_written():
    title = "\\emph{" * 400 + "Deep" + "}" * 400  # pylatexenc: RecursionError
    assert "Deep" in library._tex_title(title)


def test_a_missing_file_is_one_line(tmp_path: Path):
    with pytest.raises(SourceError, match=r"^nowhere\.bib: no such file$"):
        library.read_library(Path("nowhere.bib"))


def test_import_matches_by_title_politely_and_reports_what_it_could_not(store: Store):
    clock = FakeClock()
    throttle = library.Throttle(clock=clock.clock, sleep=clock.sleep)
    entries = library.read_library(LIBRARY / "library.bib")
    with arxiv_api_server() as api:
        report = library.import_seeds(
            store, "ada", entries, api_url=api.url, origin="library.bib",
            throttle=throttle, now=NOW,
        )  # fmt: skip
        searches = api.searches()
        id_lists = [q["id_list"][0] for q in api.requests if "id_list" in q]
    assert [pid for _, pid in report.matched] == [
        "1706.03762",
        "1810.04805",
        "1512.03385",
        "1412.6980",
    ]
    assert [(e.where, why) for e, why in report.unmatched] == [
        ("library.bib:35", "no arXiv paper has this title")
    ]
    assert searches == [
        'ti:"Adam A Method for Stochastic Optimization"',
        'ti:"Long Short-Term Memory"',
    ]
    # Adam came with its metadata from the search; the three others in one id_list request
    assert id_lists == ["1706.03762,1810.04805,1512.03385"]
    # three requests, one at a time, each at least 3 s after the one before
    assert report.api_requests == 3
    assert clock.sleeps == [3.0, 3.0]
    assert report.new_seeds == 4
    assert store.seeds(["ada"]) == {"ada": ["1706.03762", "1810.04805", "1512.03385", "1412.6980"]}
    adam = store.paper("1412.6980")
    assert adam["title"] == "Adam: A Method for Stochastic Optimization"
    # stored as first seen when published: an old seed is not "new" for anyone's digest
    assert adam["first_seen"].startswith("2014-12-22")


def test_title_answers_are_cached_in_the_store(store: Store):
    entries = [e for e in library.read_library(LIBRARY / "library.bib") if not e.arxiv_id]
    clock = FakeClock()
    with arxiv_api_server() as api:
        for _ in range(2):
            library.import_seeds(
                store, "ada", entries, api_url=api.url, origin="library.bib",
                throttle=library.Throttle(clock=clock.clock, sleep=clock.sleep), now=NOW,
            )  # fmt: skip
        assert len(api.searches()) == 2  # the second import asked nothing (miss included)
        # a cached miss is asked again once it is older than LOOKUP_TTL
        later = NOW + library.LOOKUP_TTL + dt.timedelta(days=1)
        report = library.import_seeds(
            store, "ada", entries, api_url=api.url, origin="library.bib",
            throttle=library.Throttle(clock=clock.clock, sleep=clock.sleep), now=later,
        )  # fmt: skip
        assert api.searches()[2:] == ['ti:"Long Short-Term Memory"']
    assert report.new_seeds == 0


def test_an_unreachable_api_leaves_title_entries_unmatched_and_keeps_id_seeds(store: Store):
    entries = library.read_library(LIBRARY / "zotero.json")
    with arxiv_api_server() as api:
        api.fail = True
        report = library.import_seeds(
            store, "ada", entries, api_url=api.url, origin="zotero.json",
            throttle=library.Throttle(pause=0), now=NOW,  # no pause: retries at once
        )  # fmt: skip
    assert [pid for _, pid in report.matched] == ["2106.09685"]
    assert [why for _, why in report.unmatched] == [
        "arXiv API: feed arXiv API: HTTP 503 (after 4 attempts)",
        "arXiv API: feed arXiv API: HTTP 503 (after 4 attempts)",
    ]
    assert report.fetch_error == "feed arXiv API: HTTP 503 (after 4 attempts)"
    assert store.seeds(["ada"]) == {"ada": ["2106.09685"]}
    assert (
        store.title_lookup(library.title_key("Adam: A Method for Stochastic Optimization")) is None
    )


def test_a_retry_waits_the_pause_between_two_requests(store: Store):
    """The pause held between look-ups, not between the retries inside one: an API answering
    503 with "Retry-After: 0" got four requests within 20 ms (found in review)."""
    entries = [library.LibraryEntry("list.txt:1", title="Attention Is All You Need")]
    with arxiv_api_server() as api:
        api.fail = True
        library.import_seeds(
            store, "ada", entries, api_url=api.url, origin="list.txt",
            throttle=library.Throttle(pause=0.3), now=NOW,
        )  # fmt: skip
    began = api.times
    assert len(began) == 4  # the first try and three retries
    assert min(b - a for a, b in zip(began, began[1:], strict=False)) >= 0.29


def test_seeds_shape_the_profile_and_never_appear_in_a_digest(store: Store, make_config):
    config = make_config(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n    digest_size: 5\n"
    )
    fresh = [
        Paper("2611.00001", "Low-rank adapters for efficient fine-tuning of language models",
              "Adapters of low rank fine-tune large language models cheaply."),
        Paper("2611.00002", "Weak lensing maps of dark matter",
              "We map dark matter with weak gravitational lensing."),
        Paper("2611.00003", "Protein folding with attention",
              "Attention predicts protein structure."),
        Paper("2106.09685", "LoRA: Low-Rank Adaptation of Large Language Models",
              "Low-rank adaptation of large language models freezes the pretrained weights."),
    ]  # fmt: skip
    store.add_papers(fresh, now=NOW - dt.timedelta(hours=2))
    store.add_seeds("ada", ["2106.09685"], origin="zotero.json")
    [signals] = digest.subscriber_signals(store, list(config.subscribers), {})
    assert signals.liked_titles == [
        ("2106.09685", "LoRA: Low-Rank Adaptation of Large Language Models")
    ]
    composed = worded.compose(store, config, now=NOW)["ada"]
    picked = [p.paper_id for p in composed.picks]
    assert "2106.09685" not in picked  # a seed, though first seen inside the window
    assert picked[0] == "2611.00001"  # the seed's neighbour ranks first
    assert any("LoRA" in reason for reason in composed.picks[0].reasons)


def test_cli_imports_a_reading_list(tmp_path: Path):
    shutil.copy(LIBRARY / "reading-list.txt", tmp_path)
    with arxiv_api_server() as api:
        (tmp_path / "subscribers.yaml").write_text(
            f"arxiv_api_url: {api.url}\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
        )
        result = CliRunner().invoke(
            cli, ["--db", str(tmp_path / "pw.db"), "seeds", "import", "ada", "reading-list.txt"]
        )
        assert len(api.requests) == 1  # ids only: one id_list request, no title search
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "reading-list.txt:6: not matched: 10.1038/nature14236: DOI 10.1038/nature14236 is not an arXiv DOI",
        "reading-list.txt:7: not matched: not a paper at all: no arXiv id or title",
        "4 of 6 entries matched to arXiv papers; 4 new seeds for ada; 2 not matched.",
    ]
    with Store(tmp_path / "pw.db") as store:
        assert sorted(store.seeds()["ada"]) == [
            "1512.03385",
            "1706.03762",
            "1810.04805",
            "2106.09685",
        ]
        assert store.count_papers() == 4


def test_an_id_arxiv_does_not_return_is_kept_but_not_reported_as_matched(tmp_path: Path):
    """A mistyped id was counted "matched to arXiv papers" at import, and only `status` said
    later that no such paper was found (found in review)."""
    (tmp_path / "list.txt").write_text("1706.03762\n2501.99999\n")
    with arxiv_api_server() as api:
        (tmp_path / "subscribers.yaml").write_text(
            f"arxiv_api_url: {api.url}\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
        )
        result = CliRunner().invoke(
            cli, ["--db", str(tmp_path / "pw.db"), "seeds", "import", "ada", "list.txt"]
        )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "list.txt:2: not found: arXiv has no paper 2501.99999 (kept as a seed; "
        "`paperwire fetch` looks again)",
        "1 of 2 entries matched to arXiv papers; 2 new seeds for ada; 0 not matched; "
        "1 not found on arXiv.",
    ]
    with Store(tmp_path / "pw.db") as store:  # kept: the API can lag a new paper by hours
        assert sorted(store.seeds()["ada"]) == ["1706.03762", "2501.99999"]


def test_cli_names_an_unknown_subscriber(tmp_path: Path):
    (tmp_path / "subscribers.yaml").write_text(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
    )
    (tmp_path / "x.txt").write_text("1706.03762\n")
    result = CliRunner().invoke(cli, ["seeds", "import", "bob", "x.txt"])
    assert result.exit_code == 1
    assert result.output == "Error: subscribers.yaml: no subscriber 'bob' (known: ada)\n"


# -- issue 26 and 27: a library at its real size, offline, and hostile ----------------------


@pytest.mark.timeout(40)
def test_a_hanging_api_is_given_up_after_three_look_ups_and_the_rest_are_not_looked_up(
    tmp_path: Path,
):
    """Each title look-up waited the full 60 s on an arXiv API that never answers (a 500-entry
    library: hours). Each now ends at fetch_timeout_seconds, and after three in a row the API
    is left alone."""
    from . import hostile
    from .conftest import free_port

    titles = [f"A study of hanging servers, part {n}" for n in range(1, 6)]
    (tmp_path / "lib.bib").write_text(
        "".join(f"@article{{k{n},\n  title = {{{t}}},\n}}\n" for n, t in enumerate(titles))
    )
    state = hostile.Hostile(port=free_port())
    with hostile.serving(state):
        (tmp_path / "subscribers.yaml").write_text(
            f"arxiv_api_url: {state.url('/stall')}\nfetch_timeout_seconds: 1\n"
            "subscribers:\n  - id: ada\n    email: ada@example.org\n"
        )
        result = CliRunner().invoke(
            cli, ["--db", str(tmp_path / "pw.db"), "seeds", "import", "ada", "lib.bib"]
        )
        asked = len(state.requests)
    assert result.exit_code == 0, result.output
    assert asked == 3
    lines = result.output.splitlines()
    assert lines[:3] == [
        f"lib.bib:{1 + 3 * n}: not matched: '{titles[n]}': arXiv API: feed arXiv API: no "
        "complete answer within 1 s (fetch_timeout_seconds)"
        for n in range(3)
    ]
    assert lines[3:] == [
        f"lib.bib:{1 + 3 * n}: not matched: '{titles[n]}': not looked up: the arXiv API failed "
        "3 times in a row (import again later)"
        for n in (3, 4)
    ] + ["0 of 5 entries matched to arXiv papers; 0 new seeds for ada; 5 not matched."]


def test_an_import_asks_the_store_once_for_its_papers_not_once_per_entry(store: Store, tmp_path):
    """library.py called store.papers(ids) once per id: 10,000 entries took 37 s, 100,000
    about an hour (benchmarks/README.md has the figures now)."""
    (tmp_path / "big.txt").write_text("".join(f"2401.{n:05d}\n" for n in range(3000)))
    entries = library.read_library(tmp_path / "big.txt")
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    report = library.import_seeds(
        store, "ada", entries, api_url="http://127.0.0.1:9/api/query", origin="big.txt",
        throttle=library.Throttle(pause=0), now=NOW, timeout=2,
    )  # fmt: skip
    store.db.conn.set_trace_callback(None)
    assert report.new_seeds == 3000
    reads = [s for s in statements if s.lower().startswith("select * from papers")]
    assert len(reads) <= 3000 // 500 + 1  # one query per 500 ids, once


def test_stored_titles_and_arxivs_own_bibtex_match_without_asking_the_api(
    store: Store, tmp_path: Path
):
    """Offline, two entries whose exact titles were already stored came back "not matched"
    after 34 s of retries; arXiv's own BibTeX (note = {arXiv:…}) was not read."""
    store.add_papers(
        [
            Paper("2309.06180", "Efficient Memory Management for Large Language Model Serving "
                  "with PagedAttention", "vLLM."),
            Paper("2211.17192", "Fast Inference from Transformers via Speculative Decoding", "S."),
        ],
        now=NOW,
    )  # fmt: skip
    (tmp_path / "mine.bib").write_text(
        "@article{kwon,\n  title = {Efficient memory management for large language model "
        "serving with {PagedAttention}},\n  year = {2023}\n}\n"
        "@inproceedings{leviathan,\n  title = {Fast Inference from {T}ransformers via "
        "Speculative Decoding},\n  booktitle = {ICML},\n}\n"
        "@article{vaswani,\n  title = {Attention Is All You Need},\n"
        "  journal = {arXiv preprint arXiv:1706.03762},\n}\n"
        "@misc{lora,\n  title = {LoRA},\n  note = {arXiv:2106.09685},\n}\n"
    )
    entries = library.read_library(tmp_path / "mine.bib")
    with arxiv_api_server() as api:
        api.fail = True  # offline: any request would fail
        report = library.import_seeds(
            store, "ada", entries, api_url=api.url, origin="mine.bib",
            throttle=library.Throttle(pause=0), now=NOW, timeout=2,
        )  # fmt: skip
        searched = api.searches()
    assert [pid for _, pid in report.matched] == [
        "2309.06180", "2211.17192", "1706.03762", "2106.09685",
    ]  # fmt: skip
    assert searched == []  # the stored titles needed no request


def test_status_lists_imported_seeds_that_could_not_be_found(tmp_path: Path):
    shutil.copy(LIBRARY / "library.bib", tmp_path)
    with arxiv_api_server() as api:
        (tmp_path / "subscribers.yaml").write_text(
            f"arxiv_api_url: {api.url}\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
        )
        args = ["--db", str(tmp_path / "pw.db")]
        assert (
            CliRunner().invoke(cli, [*args, "seeds", "import", "ada", "library.bib"]).exit_code == 0
        )
        result = CliRunner().invoke(cli, [*args, "status"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].endswith(
        " · seed papers not found: library.bib:35 'Long Short-Term Memory' (no arXiv paper has "
        "this title) (4 of 5 in use)"
    )


def test_status_counts_a_seed_in_the_config_and_the_library_once(tmp_path: Path):
    """A paper named in ``seed_papers`` and in an imported library was counted (and, missing,
    named) twice: "(2 of 4 in use)" for two papers (found in review)."""
    (tmp_path / "list.txt").write_text("1706.03762\n2501.99999\n")
    with arxiv_api_server() as api:
        (tmp_path / "subscribers.yaml").write_text(
            f"arxiv_api_url: {api.url}\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
            '    seed_papers: ["arXiv:1706.03762", "2501.99999", "2501.99999v2"]\n'
        )
        args = ["--db", str(tmp_path / "pw.db")]
        assert CliRunner().invoke(cli, [*args, "seeds", "import", "ada", "list.txt"]).exit_code == 0
        result = CliRunner().invoke(cli, [*args, "status"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].endswith(
        " · seed papers not found: 2501.99999 (1 of 2 in use)"
    ), result.output


def test_a_deeply_nested_csl_json_is_one_line(tmp_path: Path):
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (tmp_path / "subscribers.yaml").write_text(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
    )
    result = CliRunner().invoke(cli, ["seeds", "import", "ada", str(tmp_path / "deep.json")])
    assert result.exit_code == 1
    assert result.output == (
        "Error: deep.json: not valid CSL JSON: nested too deeply (an export is a list of items)\n"
    )


def test_terminal_escape_codes_in_a_library_are_not_printed(tmp_path: Path):
    (tmp_path / "list.txt").write_text(
        "\x1b[2J\x1b]0;pwned\x07\x1b]8;;https://evil.example\x07click me\x1b]8;;\x07\r\n"
    )
    (tmp_path / "subscribers.yaml").write_text(
        "subscribers:\n  - id: ada\n    email: ada@example.org\n"
    )
    result = CliRunner().invoke(
        cli, ["--db", str(tmp_path / "pw.db"), "seeds", "import", "ada", str(tmp_path / "list.txt")]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "list.txt:1: not matched: click me: no arXiv id or title"
    )
    assert "\x1b" not in result.output and "\x07" not in result.output


# -- libraries as exports write them, and an import cut short (found in review) -------------


def test_a_bibtex_key_written_twice_is_read_not_refused(tmp_path: Path):
    """Two entries with one key (libraries merged) refused the whole file with 'not a valid
    BibTeX entry (Exception)': keys mean nothing to a seed, so both are read."""
    bib = tmp_path / "lib.bib"
    bib.write_text(
        "@article{vaswani, title={Attention Is All You Need}, eprint={1706.03762}}\n\n"
        "@article{vaswani, title={BERT}, eprint={1810.04805}}\n"
    )
    entries = library.read_library(bib)
    assert [(e.where, e.title, e.arxiv_id) for e in entries] == [
        ("lib.bib:1", "Attention Is All You Need", "1706.03762"),
        ("lib.bib:3", "BERT", "1810.04805"),
    ]


def test_odd_csl_json_and_ris_are_one_line_errors_or_read(tmp_path: Path):
    """A number where CSL JSON has a DOI, or a title that is an object, was a traceback; an
    untagged line in a later RIS record was rispy's KeyError, a traceback."""
    csl = tmp_path / "lib.json"
    csl.write_text('[{"title": "Adam", "DOI": 12345}, {"title": {"a": 1}, "URL": 7}]')
    entries = library.read_library(csl)
    assert [(e.title, e.doi, e.arxiv_id) for e in entries] == [
        ("Adam", None, None),
        ("", None, None),
    ]
    ris = tmp_path / "lib.ris"
    ris.write_text(
        "TY  - JOUR\nTI  - Paper one\nER  - \n\nTY  - JOUR\ncontinued text\nTI  - Paper two\n"
        "ER  - \n"
    )
    # rispy 0.10 raises KeyError there: one line; 0.9 (pyproject's lowest) reads both records
    try:
        entries = library.read_library(ris)
    except SourceError as exc:
        assert str(exc).startswith("lib.ris: not valid RIS: KeyError"), exc
    else:
        assert [e.title for e in entries] == ["Paper one", "Paper two"]


def test_an_import_cut_short_while_fetching_papers_keeps_its_seeds(
    store: Store, monkeypatch: pytest.MonkeyPatch
):
    """Seeds were written after the last batch of papers was fetched (100 ids every 3 s): a
    Ctrl-C half an hour into a large library kept none of it."""
    entries = [library.LibraryEntry(f"ids.txt:{n}", text=f"2302.{n:05d}") for n in range(1, 251)]
    for entry in entries:
        entry.arxiv_id = entry.text
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(library, "_api", interrupted)
    with pytest.raises(KeyboardInterrupt):
        library.import_seeds(
            store, "ada", entries, api_url="http://127.0.0.1:1/api", origin="ids.txt", now=NOW,
            throttle=library.Throttle(clock=FakeClock().clock, sleep=FakeClock().sleep),
        )  # fmt: skip
    assert len(store.seeds(["ada"])["ada"]) == 250
