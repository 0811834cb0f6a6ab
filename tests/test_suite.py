"""The README's test command on a machine without Chromium: browser tests skip, saying how to
install it, except where the run requires a browser (.ci/run), where they fail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import environ_without_paperwire

ROOT = Path(__file__).resolve().parents[1]


def run_browser_test(**env: str) -> subprocess.CompletedProcess:
    environ = environ_without_paperwire()
    environ.update(PAPERWIRE_CHROMIUM="/nonexistent/chromium", **env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",  # one browser test: no worker processes (pyproject's addopts start them)
            "tests/test_render_browser.py::test_digest_html_renders_in_chromium[375]",
        ],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=50,
    )


def test_without_chromium_browser_tests_skip_and_say_how_to_install_it():
    result = run_browser_test()
    assert result.returncode == 0, result.stdout
    skipped = re.search(r"^SKIPPED \[1\] tests/conftest.py:\d+: (.*)$", result.stdout, re.M)
    assert skipped is not None, result.stdout
    assert skipped.group(1) == (
        "needs Debian's chromium, which is not installed (apt-get install chromium); "
        "set PAPERWIRE_REQUIRE_BROWSER=1 to make this a failure"
    )
    assert "1 skipped" in result.stdout


def test_when_a_browser_is_required_a_missing_one_fails_the_run():
    result = run_browser_test(PAPERWIRE_REQUIRE_BROWSER="1")
    assert result.returncode == 1, result.stdout
    assert (
        "PAPERWIRE_REQUIRE_BROWSER=1 but Debian's chromium is not installed at "
        "/nonexistent/chromium"
    ) in result.stdout
    assert "skipped" not in result.stdout
