"""The README's test command on a machine without Chromium: browser tests skip, saying how to
install it, except where the run requires a browser (.ci/run), where they fail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_a_look_up_of_another_host_fails_at_once_and_is_written_down(tmp_path, monkeypatch):
    """In this process and in one it starts (tests/site/sitecustomize.py): the name is never
    resolved, and the look-up is logged with the test that made it, for the check that fails
    such a test (conftest.py, ``_stays_on_127_0_0_1``)."""
    import socket

    from tests.site import pwtest_offline

    log = tmp_path / "hosts.log"
    monkeypatch.setenv(pwtest_offline.ENV, str(log))  # not the run's: this test must not fail
    with pytest.raises(socket.gaierror, match="127.0.0.1 only, not export.arxiv.org"):
        socket.getaddrinfo("export.arxiv.org", 443)
    child = subprocess.run(
        [sys.executable, "-c", "import httpx; httpx.get('https://arxiv.org/', timeout=5)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "127.0.0.1 only, not arxiv.org" in child.stderr
    assert socket.getaddrinfo("127.0.0.1", 80) and socket.getaddrinfo("localhost", 80)
    me = "tests/test_suite.py::test_a_look_up_of_another_host_fails_at_once_and_is_written_down"
    assert log.read_text().splitlines() == [f"{me}\texport.arxiv.org", f"{me}\tarxiv.org"]
