"""The README's promises that tools rely on."""

from __future__ import annotations

import re
from pathlib import Path

from paperwire.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_setup_commands():
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, re.S)
    assert blocks[0].strip() == "pip install . && paperwire run --once"
    assert blocks[1].strip() == "pip install -e '.[test]' && pytest"
    assert README.index("```") < README.index("## ")  # before anything else


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "\npip install -e '.[test]' && pytest\n" in ci


def test_every_command_is_in_the_readme():
    for name in cli.commands:
        assert f"`paperwire {name}" in README, name


def test_ci_requires_the_browser_and_clock_tests_to_run():
    ci = (REPO / ".ci" / "run").read_text()
    required = "export PAPERWIRE_REQUIRE_BROWSER=1 PAPERWIRE_REQUIRE_FAKETIME=1\n"
    assert ci.index(required) < ci.index("&& pytest\n")
    assert "libfaketime" in ci.split(required)[0]  # installed before


def test_the_suite_reads_only_its_own_fixtures_and_says_where_each_came_from():
    # a user's clone has no ../shared/ beside it
    for test_file in (REPO / "tests").glob("*.py"):
        if test_file.name == Path(__file__).name:
            continue
        assert '"shared"' not in test_file.read_text(), test_file.name
    fixtures = REPO / "tests" / "fixtures"
    listed = (fixtures / "README.md").read_text()
    for fixture in fixtures.iterdir():
        if fixture.name != "README.md":
            assert f"| `{fixture.name}` |" in listed, fixture.name
