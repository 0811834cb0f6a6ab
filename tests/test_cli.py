"""The ``paperwire`` command as a user runs it: a real process, real files."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from paperwire import cli as cli_module
from paperwire.cli import cli
from paperwire.links import Signer
from paperwire.store import Store

from .conftest import environ_without_paperwire, fetch_here

REPO = Path(__file__).resolve().parents[1]


def paperwire(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    base = environ_without_paperwire()
    return subprocess.run(
        [sys.executable, "-m", "paperwire", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(150)  # two real runs of the whole pipeline, ~10 s each on an idle machine
def test_demo_runs_offline_from_the_bundled_defaults(tmp_path: Path):
    """The README's first command: no config, no network, mail lands in ./outbox."""
    result = paperwire(
        "run", "--once", cwd=tmp_path, env={"PAPERWIRE_SECRET": "demo-secret-signing-key"}
    )
    assert result.returncode == 0, result.stderr
    assert "arxiv-cs-sample: 170 new, 0 already known" in result.stdout
    assert "hf-daily-sample: 30 new, 0 already known" in result.stdout
    # a reader's best of the 200 as an instant alert (a new install calibrates on what is
    # there): ada's and rag-team's; grace's best is a year-old paper's second version, which
    # arXiv announced again that day, and is no alert ("just appeared"). Then three digests
    assert "5 sent, 0 failed" in result.stdout
    # the links in them need the web app: the demo says what answers them
    lines = result.stdout.splitlines()
    assert "links in them go to http://127.0.0.1:8000: `paperwire serve` answers" in lines[-2]
    assert lines[-1].startswith("5 sent, 0 failed")  # the counts stay the last line
    alerted = {p.name.split("-alert-")[0][11:] for p in (tmp_path / "outbox").glob("*-alert-*.eml")}
    assert alerted == {"ada", "rag-team"}
    emls = sorted((tmp_path / "outbox").glob("*-digest.eml"))
    assert len(emls) == 3
    msg = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    token = re.search(r'href="http://127\.0\.0\.1:8000/v/([^"]+)"', html).group(1)
    claim = Signer("demo-secret-signing-key").read_vote(token)
    assert claim.subscriber_id == emls[0].name.split("-digest")[0].split("-", 3)[3]
    with Store(tmp_path / "paperwire.db") as store:
        assert store.paper(claim.paper_id) is not None
    # the three readers got different papers
    tops = {message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"] for p in emls}
    assert len(tops) == 3
    again = paperwire(
        "run", "--once", cwd=tmp_path, env={"PAPERWIRE_SECRET": "demo-secret-signing-key"}
    )
    assert "Nothing new in any feed since the last fetch." in again.stdout
    assert "0 sent" in again.stdout
    assert "paperwire serve" not in again.stdout  # nothing sent: nothing to say of links
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 5


def test_the_digest_preview_shows_titles_as_the_e_mail_does(tmp_path: Path):
    """`paperwire digest` printed "…supporting $t$-designs" where the e-mail says "t-designs"
    (found in review)."""
    feed = (FIXTURES / "arxiv_rss_cs.xml").read_text()
    feed = re.sub(r"<item>(\s*)<title>", r"<item>\1<title>$\\Pi$-NeSy and $t$-designs: ", feed)
    (tmp_path / "tex.xml").write_text(feed)
    config = LOCAL.replace(str(FIXTURES / "arxiv_rss_cs.xml"), str(tmp_path / "tex.xml"))
    assert invoke("fetch", config=config).exit_code == 0
    result = invoke("digest", "--subscriber", "ada", config=config)
    titles = [line for line in result.stdout.splitlines() if re.match(r" +\d+\. ", line)]
    assert titles, result.output
    assert all("Π-NeSy and t-designs: " in line and "$" not in line for line in titles), titles


def test_digest_json_is_a_ranked_preview_that_marks_nothing(tmp_path: Path):
    fetch_here(tmp_path)  # the bundled defaults' feeds, as `paperwire fetch` stores them
    one = paperwire("digest", "--subscriber", "ada", "--limit", "4", "--json", cwd=tmp_path)
    picks = json.loads(one.stdout)
    assert len(picks) == 4
    assert {"paper_id", "title", "url", "score", "reasons"} <= set(picks[0])
    assert all(isinstance(p["reasons"], list) and p["reasons"] for p in picks)
    everyone = json.loads(paperwire("digest", "--json", cwd=tmp_path).stdout)
    assert set(everyone) == {"ada", "grace", "rag-team"}
    assert everyone["ada"][0]["paper_id"] == picks[0]["paper_id"]
    with Store(tmp_path / "paperwire.db") as store:
        assert store.deliveries() == []  # a preview sends and marks nothing


@pytest.mark.parametrize("readers", [0, 1, 2, 3, 5])
def test_digest_json_written_in_batches_is_one_object_with_every_reader(
    monkeypatch, capsys, readers
):
    # digest --json writes its digests a batch at a time: every boundary (none, one short of a
    # batch, a whole batch, one over) must still make one JSON object, each reader once, in order
    from types import SimpleNamespace

    from paperwire import cli as cli_module

    class Pick:
        def __init__(self, n: int):
            self.n = n

        def as_json(self) -> dict:
            return {"paper_id": f"2501.{self.n:05d}", "title": 'A "quoted" title ✓'}

    monkeypatch.setattr(cli_module, "_JSON_BATCH", 2)
    digests = [
        SimpleNamespace(subscriber=SimpleNamespace(id=f"reader-{i}"), picks=[Pick(i), Pick(i + 1)])
        for i in range(readers)
    ]
    cli_module._echo_json_digests(iter(digests))
    got = json.loads(capsys.readouterr().out)
    assert list(got) == [f"reader-{i}" for i in range(readers)]
    assert all(got[f"reader-{i}"][1]["paper_id"] == f"2501.{i + 1:05d}" for i in range(readers))


def test_feedback_command_and_csv_import(tmp_path: Path):
    from importlib import resources

    from paperwire.sources import parse_document

    # the bundled sample's papers, stored as fetch stores them (a vote needs no ranking)
    sample = (resources.files("paperwire") / "data" / "sample-arxiv-cs.xml").read_bytes()
    with Store(tmp_path / "paperwire.db") as store:
        store.add_papers(parse_document(sample, source="arxiv-cs-sample")[0])
        paper_id = store.corpus()[0]["paper_id"]
    ok = paperwire("feedback", "ada", paper_id, "up", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == f"Recorded 👍 for {paper_id}."
    csv_file = tmp_path / "votes.csv"
    csv_file.write_text(f"subscriber,paper_id,vote\ngrace,{paper_id},down\nada,{paper_id},down\n")
    imported = paperwire("feedback", "import", str(csv_file), cwd=tmp_path)
    assert imported.stdout.strip() == "Imported 2 votes from " + str(csv_file) + "."
    with Store(tmp_path / "paperwire.db") as store:
        assert store.vote("ada", paper_id) == -1  # the later vote replaced the earlier one
        assert store.vote("grace", paper_id) == -1
    # a row repeated (an export appended twice) is one vote, the last: not counted twice
    csv_file.write_text(
        f"subscriber,paper_id,vote\nada,{paper_id},down\nada,{paper_id},up\nada,{paper_id},up\n"
    )
    again = paperwire("feedback", "import", str(csv_file), cwd=tmp_path)
    assert again.stdout.strip() == (
        f"Imported 1 votes from {csv_file} (2 later rows for a reader and paper already in the "
        "file: the last row is the vote)."
    )
    with Store(tmp_path / "paperwire.db") as store:
        assert store.vote("ada", paper_id) == 1
    csv_file.write_text("subscriber,paper_id,vote\nada,x,maybe\n")
    bad = paperwire("feedback", "import", str(csv_file), cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"Error: {csv_file}:2: vote: 'maybe' is not 'up' or 'down'"


def test_errors_are_one_line_with_exit_1(tmp_path: Path):
    (tmp_path / "subscribers.yaml").write_text("subscribers:\n  - id: ada\n    email: nope\n")
    result = paperwire("send", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr
        == "Error: subscribers.yaml:3: subscribers[0].email: 'nope' is not a valid address\n"
    )
    unknown = paperwire(
        "--config", str(REPO / "subscribers.yaml"), "digest", "--subscriber", "zed", cwd=tmp_path
    )
    assert unknown.returncode == 1
    assert "no subscriber 'zed' (known: ada, grace, rag-team)" in unknown.stderr


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_text(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert cli.commands[command].help, f"{command} has no help"


def test_commands_that_do_not_rank_do_not_import_scikit_learn(tmp_path: Path):
    """`--help`, `status`, `feedback` start fast: SciPy loads only when ranking, and
    scikit-learn not even then (tests/test_hashing.py)."""
    probe = "import sys, paperwire.cli; print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout


# -- messages a newcomer meets in the first hour ---------------------------------------------

FIXTURES = REPO / "tests" / "fixtures"
LOCAL = f"""\
feeds:
  - url: {FIXTURES / "arxiv_rss_cs.xml"}
    name: arxiv-cs
subscribers:
  - id: ada
    email: ada@example.org
    interests: "retrieval augmented generation, question answering"
    digest_days: daily
  - id: bob
    email: bob@example.org
"""


def invoke(*args: str, config: str | None = LOCAL):
    if config is not None:
        Path("subscribers.yaml").write_text(config)
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("command", ["run --once", "send", "fetch", "digest", "status"])
def test_a_broken_config_makes_no_database(command):
    """`run --once` opened (made, migrated) the database before it read the config: a typo
    left a new paperwire.db behind (found in review)."""
    result = invoke(*command.split(), config="subscribers:\n  - id: ada\n    emial: a@b.org\n")
    assert result.exit_code == 1
    assert "subscribers[0].emial: is not a known setting (did you mean 'email'?)" in result.stderr
    assert not Path("paperwire.db").exists()


def test_the_bundled_example_never_goes_through_a_configured_relay(monkeypatch):
    """Run from a folder without subscribers.yaml, with PAPERWIRE_SMTP_URL set, `run --once`
    mailed the demo's three example readers through the lab's relay (found in review)."""
    monkeypatch.setenv("PAPERWIRE_SMTP_URL", "smtp://127.0.0.1:9")
    result = invoke("run", "--once", config=None)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: subscribers.yaml: not in this folder, and the bundled example it stands in for "
        "is the offline demo's, but PAPERWIRE_SMTP_URL is set: run where your subscribers.yaml "
        "is, pass --config FILE, or write one with `paperwire init`\n"
    )
    assert not Path("paperwire.db").exists()


def test_every_config_mistake_is_printed_once_each_then_exit_1():
    text = LOCAL.replace("digest_days: daily", "digest_days: [mon, funday]").replace(
        "email: bob@example.org", "email: bob@"
    )
    result = invoke("send", config=text + "sender: digest@example.org\n")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: subscribers.yaml:8: subscribers[0].digest_days: 'funday' is not a weekday "
        "(use mon..sun, 'weekdays' or 'daily')",
        "Error: subscribers.yaml:10: subscribers[1].email: 'bob@' is not a valid address",
        "Error: subscribers.yaml:11: sender: must be a mapping of settings "
        "(from_address, smtp_url, …), not text",
    ]


def test_run_once_without_a_secret_warns_about_it_once(caplog):
    """The README's first command, with no PAPERWIRE_SECRET: the alerts' send and the digests'
    send each made the signer, and each logged the same warning, so a first run said it twice."""
    with caplog.at_level(logging.WARNING, logger="paperwire.links"):
        result = invoke("run", "--once", config=None)  # the bundled example, in an empty folder
    assert result.exit_code == 0, result.output
    assert "-alert-" in result.stdout and "-digest.eml" in result.stdout  # both sends ran
    warned = [r for r in caplog.records if "PAPERWIRE_SECRET is not set" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in warned]


def test_run_once_says_which_lines_are_alerts(monkeypatch):
    """`run --once` printed an alert's line and a digest's alike ("ada: sent: 1 paper to
    Slack" twice: found in review); the daemon's log said which was which."""
    monkeypatch.setenv("PAPERWIRE_SECRET", "k-test-signing-key")
    result = invoke("run", "--once", config=None)
    assert result.exit_code == 0, result.output
    alerts = [line for line in result.stdout.splitlines() if ": alert sent: 1 paper" in line]
    digests = [line for line in result.stdout.splitlines() if re.match(r"[\w-]+: sent: ", line)]
    alerted = len(list(Path("outbox").glob("*-alert-*.eml")))
    assert alerted and len(alerts) == alerted, result.stdout
    assert len(digests) == len(list(Path("outbox").glob("*-digest.eml"))) == 3, result.stdout


def test_an_empty_config_says_there_is_nothing_to_do_and_how_to_start():
    result = invoke("run", "--once", config="# nothing yet\n")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: subscribers.yaml: nothing to do: the file has no feeds and no subscribers. "
        "`paperwire init` writes a commented subscribers.yaml to start from\n"
    )


def test_init_writes_the_commented_example_and_never_overwrites_by_surprise():
    made = invoke("init", config=None)
    assert made.exit_code == 0, made.output
    assert made.stdout == (
        "Wrote subscribers.yaml: the bundled sample feeds and three example readers. Edit the "
        "feeds and subscribers, then run `paperwire run --once`.\n"
    )
    written = Path("subscribers.yaml").read_text()
    assert written == (REPO / "subscribers.yaml").read_text()
    assert written.count("\n#") + written.count("  # ") >= 5  # commented for a newcomer
    again = invoke("init", config=None)
    assert again.exit_code == 1
    assert again.stderr == (
        "Error: subscribers.yaml already exists; edit it, or add --force to replace it\n"
    )
    assert invoke("init", "--force", config=None).exit_code == 0


def _commented_block(text: str, heading: str) -> dict:
    """The settings commented out under ``heading`` ("# name: default  # why"), read as YAML."""
    import yaml

    lines = text.split(heading + "\n", 1)[1].splitlines()
    indent = heading[: len(heading) - len(heading.lstrip())] + "# "
    block = []
    for line in lines:
        if not line.startswith(indent):
            break
        block.append(line[len(indent) :])
    return yaml.safe_load("\n".join(block))


def test_init_writes_every_setting_commented_with_its_default():
    """The file `init` writes named none of follow_authors, must_match, never_match, notify,
    feed, summariser, ranking, fetch_interval_minutes or alerts, though its --help says every
    setting is explained there."""
    from paperwire.config import (
        AlertConfig,
        Config,
        FeedConfig,
        RankingConfig,
        SenderConfig,
        SubscriberConfig,
        SummariserConfig,
        load_config,
    )

    assert invoke("init", config=None).exit_code == 0
    text = Path("subscribers.yaml").read_text()
    assert load_config("subscribers.yaml").subscribers  # it loads as it is

    def default(model, name):
        value = model.model_fields[name].default
        return list(value) if isinstance(value, tuple) else value

    reader = _commented_block(text, "    # Every other setting of a reader, with its default:")
    sender = _commented_block(text, "  # Every other sender setting, with its default:")
    other = _commented_block(text, "# Every other setting, with its default:")
    sections = {"alerts": AlertConfig, "ranking": RankingConfig, "summariser": SummariserConfig}
    for name, value in reader.items():
        assert value == default(SubscriberConfig, name), name
    for name, value in sender.items():
        assert value == default(SenderConfig, name), name
    for name, value in other.items():
        if name in sections:
            for key, inner in value.items():
                assert inner == default(sections[name], key), f"{name}.{key}"
        else:
            assert value == default(Config, name), name
    assert "    # kind: auto " in text
    # and every setting is there, in use or commented with its default
    written = set(re.findall(r"^[ #-]*(\w+):", text, re.MULTILINE))
    for model in (Config, SenderConfig, AlertConfig, RankingConfig, SummariserConfig,
                  SubscriberConfig, FeedConfig):  # fmt: skip
        missing = set(model.model_fields) - {"source"} - written
        assert not missing, (model.__name__, missing)


def test_fetch_prints_each_feed_error_once_and_counts_the_failures(tmp_path: Path):
    config = LOCAL.replace(
        "subscribers:",
        f"  - url: {tmp_path / 'gone.xml'}\n    name: gone\nsubscribers:",
    )
    (tmp_path / "subscribers.yaml").write_text(config)
    result = paperwire("fetch", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "arxiv-cs: 60 new, 0 already known",
        f"gone: error: cannot read {tmp_path / 'gone.xml'}: No such file or directory",
        "60 new papers stored; 1 of 2 feeds failed (see above).",
    ]
    assert "gone" not in result.stderr  # printed once, not logged a second time


def test_fetch_fails_when_every_feed_failed(tmp_path: Path):
    config = f"feeds:\n  - url: {tmp_path / 'a.xml'}\n    name: a\nsubscribers: []\n"
    result = invoke("fetch", config=config)
    assert result.exit_code == 1
    assert (
        result.stdout == f"a: error: cannot read {tmp_path / 'a.xml'}: No such file or directory\n"
    )
    assert result.stderr == "Error: every feed failed (1 of 1); nothing was fetched\n"


def test_a_web_address_written_without_its_scheme_says_so(tmp_path: Path):
    """'rss.arxiv.org/rss/cs.CL', copied without https://, is a relative file path: the error
    was only 'cannot read /…/rss.arxiv.org/rss/cs.CL: No such file or directory'."""
    config = "feeds:\n  - url: rss.arxiv.org/rss/cs.CL\n    name: a\nsubscribers: []\n"
    result = invoke("fetch", config=config)
    assert result.exit_code == 1
    assert result.stdout == (
        f"a: error: cannot read {Path.cwd() / 'rss.arxiv.org/rss/cs.CL'}: No such file or "
        "directory (a web address is written with its scheme: https://rss.arxiv.org/rss/cs.CL)\n"
    )


def test_the_scheme_hint_masks_a_key_in_the_address(tmp_path: Path):
    """The hint for an address written without https:// printed its ?api_key= in full (the
    path before it masked it): on the terminal, in the log and in the feed's stored error that
    status shows."""
    config = (
        "feeds:\n  - url: rss.example.org/feed?api_key=SECRET123\n    name: a\nsubscribers: []\n"
    )
    result = invoke("fetch", config=config)
    assert result.exit_code == 1
    assert "SECRET123" not in result.output
    assert result.stdout.endswith(
        "(a web address is written with its scheme: https://rss.example.org/feed?api_key=***)\n"
    )


def test_a_seed_look_up_is_no_feed_when_every_feed_failed(tmp_path: Path):
    """The arXiv API's answer for a seed paper counted as a feed that worked: `fetch` said
    '1 new papers stored; 1 of 2 feeds failed' with exit 0. `run --once` still sends what is
    due, then fails the same way."""
    from .arxiv_api import arxiv_api_server

    gone = tmp_path / "a.xml"
    with arxiv_api_server() as api:
        config = (
            f"feeds:\n  - url: {gone}\n    name: a\narxiv_api_url: {api.url}\nsubscribers:\n"
            "  - {id: ada, email: ada@example.org, seed_papers: ['1706.03762']}\n"
        )
        fetched = invoke("fetch", config=config)
        once = invoke("run", "--once", config=config)
    assert fetched.exit_code == 1
    assert fetched.stdout.splitlines() == [
        f"a: error: cannot read {gone}: No such file or directory",
        "seed papers (arXiv API): 1 new, 0 already known",
    ]
    assert fetched.stderr == "Error: every feed failed (1 of 1); nothing was fetched\n"
    assert once.exit_code == 1
    assert once.stdout.splitlines()[-1] == "0 sent, 0 failed, 0 to retry, 1 with nothing new."
    assert once.stderr == "Error: every feed failed (1 of 1); nothing was fetched\n"


@pytest.mark.parametrize(
    ("paper", "vote", "said"),
    [
        ("https://arxiv.org/abs/2504.06276v2", "UP", "Recorded 👍 for 2504.06276."),
        ("arXiv:2504.06276", "Down", "Recorded 👎 for 2504.06276."),
        ("2504.06276v1", "up", "Recorded 👍 for 2504.06276."),
        ("http://arxiv.org/pdf/2504.06276", "down", "Recorded 👎 for 2504.06276."),
        # arXiv's DOI, as `seeds import` takes it (found in a README audit)
        ("10.48550/arXiv.2504.06276", "up", "Recorded 👍 for 2504.06276."),
        ("https://doi.org/10.48550/arXiv.2504.06276", "down", "Recorded 👎 for 2504.06276."),
    ],
)
def test_feedback_takes_any_way_of_writing_an_arxiv_id(paper, vote, said):
    assert invoke("fetch").exit_code == 0
    result = invoke("feedback", "ada", paper, vote)
    assert result.exit_code == 0, result.output
    assert result.stdout == said + "\n"
    with Store("paperwire.db") as store:
        assert store.vote("ada", "2504.06276") == (1 if vote.lower() == "up" else -1)


def test_an_unknown_paper_is_refused_alike_by_the_command_and_by_an_import():
    assert invoke("fetch").exit_code == 0
    alone = invoke("feedback", "ada", "arXiv:2401.99999", "up")
    assert alone.exit_code == 1
    assert alone.stderr == (
        "Error: unknown paper 'arXiv:2401.99999': no stored paper has this id; run `paperwire "
        "fetch` first, or check the id\n"
    )
    Path("votes.csv").write_text(
        "subscriber,paper_id,vote\nada,2504.06276,up\nbob,2401.99999,down\n"
    )
    imported = invoke("feedback", "import", "votes.csv")
    assert imported.exit_code == 1
    assert imported.stderr == (
        "Error: votes.csv:3: paper_id: unknown paper '2401.99999': no stored paper has this id; "
        "run `paperwire fetch` first, or check the id\n"
    )
    with Store("paperwire.db") as store:
        assert store.votes() == []  # nothing stored, not even the good first row


def test_a_votes_csv_with_a_byte_order_mark_imports_and_latin_1_is_one_line():
    """Excel's "CSV UTF-8" starts with a BOM: 'bom.csv:1: missing column(s): subscriber'.
    A Latin-1 file was a UnicodeDecodeError traceback."""
    assert invoke("fetch").exit_code == 0
    Path("bom.csv").write_bytes(b"\xef\xbb\xbfsubscriber,paper_id,vote\r\nada,2504.06276,up\r\n")
    imported = invoke("feedback", "import", "bom.csv")
    assert imported.exit_code == 0, imported.output
    assert imported.stdout == "Imported 1 votes from bom.csv.\n"
    Path("latin1.csv").write_bytes(
        "subscriber,paper_id,vote\nada,2504.06276,up\nbob,2504.06276,down # très\n".encode(
            "latin-1"
        )
    )
    latin = invoke("feedback", "import", "latin1.csv")
    assert latin.exit_code == 1
    assert latin.stderr == (
        "Error: latin1.csv:3: not UTF-8 text (byte 0xe8); save it as CSV UTF-8\n"
    )
    with Store("paperwire.db") as store:
        assert [(v["subscriber_id"], v["vote"]) for v in store.votes()] == [("ada", 1)]


def test_a_votes_csv_with_a_quote_never_closed_is_refused_at_its_line_and_nothing_imported():
    """A title with an opening quote and no closing one swallowed every row after it into one
    field: "Imported 1 votes" of 101, exit 0; with 10,000 rows, csv.Error's traceback (found
    in review). The import is all or none: refused, at the row, nothing stored."""
    assert invoke("fetch").exit_code == 0
    rows = "".join("ada,2504.06276,up,fine\n" for _ in range(100))
    Path("stray.csv").write_text(
        "subscriber,paper_id,vote,title\n"
        'ada,2504.06276,down,"Attention is all you need, part 2\n' + rows
    )
    result = invoke("feedback", "import", "stray.csv")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: stray.csv:2: not CSV as a spreadsheet writes it (")
    assert result.stderr.endswith("a quote opened in a field must be closed\n")
    with Store("paperwire.db") as store:
        assert store.votes() == []


def test_a_library_imported_again_is_the_library_as_it_is_now_and_seeds_can_be_listed_and_removed():
    """An import only ever added: an entry removed from the library and imported again stayed
    a seed, an import for the wrong reader could not be undone, and `seeds` had no command but
    import (found in review)."""
    from .arxiv_api import arxiv_api_server

    with arxiv_api_server() as api:  # a paper the feed lacks is looked up here, not on arxiv.org
        _library_imported_again(
            LOCAL.replace("subscribers:", f"arxiv_api_url: {api.url}\nsubscribers:")
        )


def _library_imported_again(config: str) -> None:
    assert invoke("fetch", config=config).exit_code == 0
    Path("lib.txt").write_text("2504.06268\n2504.06276\n")
    assert (
        "2 new seeds for ada" in invoke("seeds", "import", "ada", "lib.txt", config=config).stdout
    )
    Path("lib.txt").write_text("2504.06268\n")
    again = invoke("seeds", "import", "ada", "lib.txt", config=config)
    assert again.stdout.splitlines()[-1] == (
        "1 of 1 entries matched to arXiv papers; 0 new seeds for ada; "
        "1 no longer in lib.txt, removed; 0 not matched."
    )
    listed = invoke("seeds", "list", "ada", config=config).stdout.splitlines()
    assert listed[0].startswith("2504.06268  lib.txt  ")
    assert listed[-1] == "1 imported seed papers for ada."
    Path("other.txt").write_text("2504.06276\n")
    invoke("seeds", "import", "ada", "other.txt", config=config)
    assert invoke("seeds", "remove", "ada", "arXiv:2504.06276", config=config).stdout == (
        "1 imported seed papers removed for ada.\n"
    )
    assert (
        invoke("seeds", "remove", "ada", config=config).exit_code == 2
    )  # what to remove must be said
    assert invoke("seeds", "remove", "ada", "--origin", "lib.txt", config=config).stdout.startswith(
        "1 "
    )
    with Store("paperwire.db") as store:
        assert store.seeds(["ada"]) == {}


def test_status_shows_unsubscribed_readers_missing_seed_papers_and_feed_errors(tmp_path: Path):
    config = LOCAL.replace(
        "subscribers:", f"  - url: {tmp_path / 'gone.xml'}\n    name: gone\nsubscribers:"
    )
    invoke("fetch", config=config)
    with Store("paperwire.db") as store:
        store.set_unsubscribed("ada", True)
    # one seed paper is stored (it came with the feed), the other could not be looked up
    config += '    seed_papers: ["2504.06276", "1234.56789"]\n'
    result = invoke("status", config=config)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == "ada · no digest yet · unsubscribed: no more digests"
    # bob with enabled: false is never due (send skips him): no due or next slot either
    disabled = invoke("status", config=config + "    enabled: false\n")
    assert disabled.stdout.splitlines()[2] == (
        "bob · no digest yet · disabled (enabled: false in the config): no digests · "
        "seed papers not found: 1234.56789 (1 of 2 in use)"
    )
    assert re.fullmatch(
        r"bob · no digest yet · (due now \(\d{4}-\d\d-\d\d\) · )?next \S+ · seed papers not "
        r"found: 1234\.56789 \(1 of 2 in use\)",
        lines[2],
    ), lines[2]
    assert re.fullmatch(
        r"feed gone: last fetch failed \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\): cannot read "
        + re.escape(str(tmp_path / "gone.xml"))
        + ": No such file or directory",
        lines[3],
    ), lines[3]


def test_digest_after_a_send_says_what_was_sent_and_how_to_preview_earlier_papers():
    assert invoke("run", "--once").exit_code == 0
    result = invoke("digest", "--subscriber", "ada")
    assert result.exit_code == 0, result.output
    head, why = result.stdout.splitlines()
    with Store("paperwire.db") as store:
        period = store.last_delivery("ada")["period"]
    since = re.fullmatch(r"== ada: 0 of 0 candidates since (\S+)", head).group(1)
    earlier = (dt.date.fromisoformat(since) - dt.timedelta(days=7)).isoformat()
    assert why == (
        f"   nothing new since the last digest ({period}, sent): a digest offers only papers "
        "first seen after the one before it. To preview earlier papers: "
        f"paperwire digest --subscriber ada --since {earlier}"
    )
    preview = invoke("digest", "--subscriber", "ada", "--since", earlier)
    assert re.match(r"== ada: \d+ of [1-9]\d* candidates", preview.stdout)


def test_serve_refuses_a_port_in_use_in_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", "--port", str(port))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: port {port} on 127.0.0.1 is already in use (another paperwire serve or run?); "
        "stop it or choose another with --port\n"
    )


def test_run_refuses_a_port_in_use_in_one_line_before_starting(tmp_path: Path):
    """It logged 'web app on http://127.0.0.1:P', then uvicorn's 'address already in use', and
    ran on without its web app: every vote and unsubscribe link dead."""
    import socket

    (tmp_path / "subscribers.yaml").write_text(LOCAL)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            result = subprocess.run(
                [sys.executable, "-m", "paperwire", "run", "--port", str(port)],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("paperwire run kept running without its web app")
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: port {port} on 127.0.0.1 is already in use (another paperwire serve or run?); "
        "stop it or choose another with --port\n"
    )
    assert not (tmp_path / "paperwire.db").exists()  # nothing started: not even a fetch


def test_serve_prints_its_url_and_logs_each_request_at_v(tmp_path: Path):
    import socket

    import httpx

    (tmp_path / "subscribers.yaml").write_text(LOCAL)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = environ_without_paperwire()
    server = subprocess.Popen(
        [sys.executable, "-m", "paperwire", "-v", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stdout.readline()
        assert first == f"Serving the feedback app on http://127.0.0.1:{port} (Ctrl-C stops it)\n"
        for _ in range(100):  # the socket listens before the line is printed; the app follows
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        server.terminate()
        out, err = server.communicate(timeout=20)
    assert '"GET /healthz HTTP/1.1" 200' in out + err


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_option_is_described_and_no_summary_is_cut(command):
    for param in cli.commands[command].params:
        if isinstance(param, click.Option):
            assert param.help, f"{command} {param.opts[0]} has no help"
    listing = CliRunner().invoke(cli, ["--help"]).stdout.split("Commands:")[1]
    assert "..." not in listing
    assert "Example" in cli.commands[command].help


def test_an_empty_preview_before_any_fetch_says_what_to_do():
    result = invoke("digest", "--subscriber", "ada")
    head, why = result.stdout.splitlines()
    since = re.fullmatch(r"== ada: 0 of 0 candidates since (\S+)", head).group(1)
    earlier = (dt.date.fromisoformat(since) - dt.timedelta(days=7)).isoformat()
    assert why == (
        "   no papers stored yet in the window; run `paperwire fetch`, or preview older ones: "
        f"paperwire digest --subscriber ada --since {earlier}"
    )
    explicit = invoke("digest", "--subscriber", "ada", "--since", "2026-01-01")
    assert explicit.stdout.splitlines()[1] == (
        "   no papers first seen since 2026-01-01; try an earlier --since"
    )


def test_one_shot_runs_send_a_readers_first_digest_from_any_slot_of_the_past_week(store, tmp_path):
    """`send` and `run --once` at any hour: a new reader need not wait for tomorrow's slot."""
    from paperwire import pipeline
    from paperwire.config import parse_config

    config = parse_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n"
        "  - id: ada\n    email: ada@example.org\n    timezone: UTC\n"
        "    digest_time: '01:30'\n    digest_days: daily\n",
        env={},
    )
    slot = dt.datetime(2026, 11, 23, 1, 30, tzinfo=dt.UTC)
    pipeline.fetch_all(store, config, now=slot - dt.timedelta(hours=1))
    late = slot + dt.timedelta(hours=20)  # past the 12-hour grace
    daemonlike = pipeline.send_due(store, config, now=late, outbox=tmp_path)
    assert [line.status for line in daemonlike.lines] == ["not-due"]
    one_shot = pipeline.send_due(
        store, config, now=late, outbox=tmp_path, first_reach=pipeline.FIRST_DIGEST_REACH
    )
    assert [(line.status, line.subscriber_id) for line in one_shot.lines] == [("sent", "ada")]
    # after the first digest, the grace period applies again: the next missed slot waits
    later = slot + dt.timedelta(days=1, hours=20)
    again = pipeline.send_due(
        store, config, now=later, outbox=tmp_path, first_reach=pipeline.FIRST_DIGEST_REACH
    )
    assert [line.status for line in again.lines] == ["not-due"]


def test_send_and_status_take_grace_hours_as_the_readme_says():
    """README: a missed digest goes out 'within --grace-hours (default 12, for send and status
    too)'; both said 'No such option'. A reader who had a digest, whose slot was 14 h ago."""
    now = dt.datetime.now(dt.UTC)
    slot = (now - dt.timedelta(hours=14)).strftime("%H:%M")
    config = (
        "feeds: []\nsubscribers:\n  - id: ada\n    email: ada@example.org\n"
        f"    timezone: UTC\n    digest_time: '{slot}'\n    digest_days: daily\n"
    )
    Path("subscribers.yaml").write_text(config)
    with Store("paperwire.db") as store:  # an earlier digest: the grace applies, not first_reach
        earlier = (now - dt.timedelta(days=3)).date().isoformat()
        row = store.open_delivery(
            "ada", "digest", earlier, "email", message_id="<a@x>", content_hash="h", papers=[],
            now=now - dt.timedelta(days=3),
        )  # fmt: skip
        store.mark_delivery(row, "sent", now=now - dt.timedelta(days=3))
    assert "due now" not in invoke("status", config=None).stdout
    assert "due now (" in invoke("status", "--grace-hours", "24", config=None).stdout
    assert invoke("send", config=None).stdout.startswith("ada: not-due")
    late = invoke("send", "--grace-hours", "24", config=None)
    assert late.exit_code == 0, late.output
    assert late.stdout.startswith("ada: nothing-new")  # handled: nothing came since


@pytest.mark.parametrize("command", [["send"], ["run", "--once"], ["status"]])
@pytest.mark.parametrize("hours", ["0", "0.01", "nan"])
def test_a_grace_period_no_run_can_meet_is_refused_naming_the_option(command, hours):
    """`--grace-hours 0` was taken, and then no digest after a reader's first was ever due: a
    digest goes out seconds after its time (the daemon's check, a cron job's start), and a slot
    passed by more than 0 hours is skipped; the daemon logged 'missed ... with no paperwire
    running' on the tick just after the slot, every day. The option says so instead."""
    result = invoke(*command, "--grace-hours", hours)
    assert result.exit_code == 2
    assert "Invalid value for '--grace-hours'" in result.stderr
    assert "at least 0.1" in result.stderr and "Traceback" not in result.output
    assert not Path("paperwire.db").exists()  # refused before anything ran
    assert invoke(*command, "--grace-hours", "0.1").exit_code in (0, 1)  # the least it takes


def test_a_daemon_check_interval_that_could_skip_a_digest_is_refused_naming_both_options():
    """`run --tick 3600 --grace-hours 0.1` was taken: a digest whose time fell just after one
    check was 59 minutes late at the next, past its 6 minutes of grace, and never sent."""
    result = invoke("run", "--no-web", "--tick", "3600", "--grace-hours", "0.1")
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--tick'" in result.stderr
    assert "more than half of --grace-hours 0.1 (360 s)" in result.stderr
    assert "use --tick 180 or less" in result.stderr and "Traceback" not in result.output
    assert not Path("paperwire.db").exists()  # refused before anything ran
    cli_module._tick_within_grace(180, 0.1)  # half the grace period is the most it takes
    cli_module._tick_within_grace(30, 12)  # the defaults
    with pytest.raises(click.BadParameter):
        cli_module._tick_within_grace(181, 0.1)
    # one cycle has no checks to space out: --tick means nothing there
    assert invoke("run", "--once", "--tick", "3600", "--grace-hours", "0.1").exit_code in (0, 1)


def test_status_words_a_quiet_day_as_send_and_the_readme_do():
    # the ledger's own word for it, '(empty: ...)', was what status printed
    config = "feeds: []\nsubscribers:\n  - {id: ada, email: ada@example.org, digest_days: daily}\n"
    from paperwire.paper import Paper

    with Store(Path("paperwire.db")) as store:  # fetched a month ago, nothing since
        month_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        store.add_papers([Paper("2401.00001", "An older paper", "Its abstract.")], now=month_ago)
    assert "ada: nothing-new: no new papers since" in invoke("send", config=config).stdout
    line = invoke("status", config=None).stdout.splitlines()[1]
    assert re.fullmatch(
        r"ada · last digest \S+ \(nothing-new: no new papers since \S+\) · next \S+", line
    ), line


# -- issue 26: status shows every failure ---------------------------------------------------


def test_a_channel_added_after_the_digest_went_out_gets_the_next_one_as_status_says(http_server):
    """status looked at a reader's first channel only; then it said a digest was due to a
    Slack webhook added after the day's e-mail went out, and send marked that slot
    'nothing-new: no new papers' for it (papers fetched meanwhile went to Slack alone). The
    slot was handled: the new channel gets the next digest, and status and send say so."""
    from .conftest import Route

    slot = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%H:%M")
    config = LOCAL.replace(
        "    email: ada@example.org\n",
        f'    email: ada@example.org\n    timezone: UTC\n    digest_time: "{slot}"\n',
    )  # her slot has just passed: her digest is due now
    assert invoke("run", "--once", config=config).exit_code == 0
    assert "due now" not in invoke("status", config=config).stdout.splitlines()[1]
    http_server.routes["/hook"] = Route(b"ok")
    with_slack = config.replace(
        "    email: ada@example.org\n",
        f"    email: ada@example.org\n    slack_webhook: {http_server.url('/hook')}\n",
    )
    lines = invoke("status", config=with_slack).stdout.splitlines()
    assert "due now" not in lines[1]
    assert re.fullmatch(r"  email: digest \S+ sent .* UTC", lines[2]), lines
    assert lines[3] == "  slack: no digest yet"
    sent = invoke("send", config=with_slack)
    assert sent.exit_code == 0
    assert re.search(
        r"ada: not-due: digest for \S+ already handled; slack added since, from the next digest on",
        sent.stdout,
    ), sent.stdout
    assert http_server.requests == []  # nothing is sent twice, to any channel
    assert "due now" not in invoke("status", config=with_slack).stdout.splitlines()[1]


def test_status_lists_each_channel_and_every_failing_feed_masked(http_server):
    """A failed Apprise channel after a reader's e-mail went out showed as "last digest
    (sent)"; a feed with credentials that failed was not listed at all."""
    from .conftest import Route

    http_server.routes["/notify"] = Route(b"down", status=500)
    http_server.routes["/hook"] = Route(b"ok")
    http_server.routes["/private?api_key=tok-9f8e7d6c"] = Route(b"no", status=401)
    private = f"http://reader:s3cret-pa55@127.0.0.1:{http_server.port}/private?api_key=tok-9f8e7d6c"
    config = LOCAL.replace("subscribers:", f"  - url: {private}\nsubscribers:").replace(
        "    email: ada@example.org\n",
        "    email: ada@example.org\n"
        f"    slack_webhook: {http_server.url('/hook')}\n"
        f"    notify: ['json://127.0.0.1:{http_server.port}/notify']\n",
    )
    assert invoke("run", "--once", config=config).exit_code == 1  # the Apprise channel failed
    result = invoke("status", config=config)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    period = re.search(r"ada · last digest (\S+) \(pending: ", lines[1]).group(1)
    assert lines[1].startswith(
        f"ada · last digest {period} (pending: notify json://…: message 1 of 1 failed: "
    )
    assert re.fullmatch(rf"  email: digest {period} sent \S+ \S+ UTC", lines[2]), lines[2]
    assert re.fullmatch(rf"  slack: digest {period} sent \S+ \S+ UTC", lines[3]), lines[3]
    assert re.fullmatch(
        rf"  notify:json:\w+: digest {period} pending: notify json://…: message 1 of 1 "
        r"failed: Failed to send JSON POST notification: Internal server error\., error=500\.; "
        r"tried again after \S+ \S+ UTC",
        lines[4],
    ), lines[4]
    assert re.fullmatch(rf"  email: digest {period} sent \S+ \S+ UTC", lines[6]) and lines[
        5
    ].startswith("bob · last digest ")
    failing = [line for line in lines if line.startswith("feed ")]
    assert failing == [
        f"feed http://***@127.0.0.1:{http_server.port}/private?api_key=***: last fetch failed "
        f"({failing[0].split('(')[1].split(')')[0]}): HTTP 401 Unauthorized"
    ]
    assert "s3cret-pa55" not in result.stdout and "tok-9f8e7d6c" not in result.stdout


def test_a_short_signing_key_is_refused_in_one_line_that_says_how_to_make_one(tmp_path: Path):
    """A 2-character key was found from one vote link by brute force, and another reader's
    unsubscribe link forged with it."""
    result = paperwire("status", cwd=tmp_path, env={"PAPERWIRE_SECRET": "hunter2-xyz"})
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "PAPERWIRE_SECRET" in line and "shorter than 16 characters" in line
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in line
    assert "hunter2" not in result.stdout + result.stderr
    sixteen = paperwire("status", cwd=tmp_path, env={"PAPERWIRE_SECRET": "x" * 16})
    assert sixteen.returncode == 0, sixteen.stderr
