"""The ``paperwire`` command as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from paperwire.cli import cli
from paperwire.feedback import Signer
from paperwire.store import Store

REPO = Path(__file__).resolve().parents[1]


def paperwire(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
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
    result = paperwire("run", "--once", cwd=tmp_path, env={"PAPERWIRE_SECRET": "demo-secret"})
    assert result.returncode == 0, result.stderr
    assert "arxiv-cs-sample: 170 new, 0 already known" in result.stdout
    assert "hf-daily-sample: 30 new, 0 already known" in result.stdout
    assert "3 sent, 0 failed" in result.stdout
    emls = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(emls) == 3
    msg = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    token = re.search(r'href="http://127\.0\.0\.1:8000/v/([^"]+)"', html).group(1)
    claim = Signer("demo-secret").read_vote(token)
    assert claim.subscriber_id == emls[0].name.split("-digest")[0].split("-", 3)[3]
    with Store(tmp_path / "paperwire.db") as store:
        assert store.paper(claim.paper_id) is not None
    # the three readers got different papers
    tops = {message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"] for p in emls}
    assert len(tops) == 3
    again = paperwire("run", "--once", cwd=tmp_path, env={"PAPERWIRE_SECRET": "demo-secret"})
    assert "Nothing new today in any feed." in again.stdout
    assert "0 sent" in again.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3


def test_digest_json_is_a_ranked_preview_that_marks_nothing(tmp_path: Path):
    assert paperwire("fetch", cwd=tmp_path).returncode == 0
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


def test_feedback_command_and_csv_import(tmp_path: Path):
    paperwire("fetch", cwd=tmp_path)
    with Store(tmp_path / "paperwire.db") as store:
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
    """`--help`, `status`, `feedback` start fast: scikit-learn loads only when ranking."""
    probe = "import sys, paperwire.cli; print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout
