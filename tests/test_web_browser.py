"""The feedback app in headless Chromium (Debian's, driven by Playwright): what a person sees.

Set ``UPDATE_SCREENSHOTS=1`` to refresh docs/vote-page.png and docs/profile-page.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import playwright.sync_api as playwright_api
import pytest

from .conftest import CHROMIUM, CHROMIUM_ARGS
from .test_web import GPTQ, KV, PROTEIN, WebApp, web_fixture  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    # no skip: a missing browser is a broken test machine (.ci/run installs it)
    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed: apt-get install chromium"
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 760, "height": 520})
    context.set_default_timeout(5000)
    opened = context.new_page()
    opened.errors = []
    opened.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda exc: opened.errors.append(str(exc)))
    try:
        yield opened
    finally:
        context.close()


def screenshot(page, tmp_path: Path, name: str) -> None:
    """Always render the shot (it must not fail); copy it to docs/ only when asked."""
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(target, DOCS / name)


def test_a_click_in_the_browser_records_exactly_one_vote(web: WebApp, page, tmp_path: Path):
    url = web.link("ada", KV, "up")
    page.goto(url)
    page.wait_for_selector("#recorded")
    assert page.locator("#recorded").inner_text() == "✓ Recorded: 👍 More like this"
    assert page.url == url  # redirected back to the link itself
    assert web.votes() == [("ada", KV, 1)]
    page.reload()
    page.wait_for_selector("#recorded")
    assert web.votes() == [("ada", KV, 1)]
    assert page.errors == []  # no CSP violation, no script error
    screenshot(page, tmp_path, "vote-page.png")


def test_change_and_undo_from_the_vote_page(web: WebApp, page):
    url = web.link("ada", KV, "up")
    page.goto(url)
    page.wait_for_selector("#recorded")
    page.get_by_role("button", name="Change to 👎 Less like this").click()
    page.wait_for_selector("text=✓ Recorded: 👎 Less like this")
    assert web.votes() == [("ada", KV, -1)]
    page.get_by_role("button", name="Undo").click()
    page.wait_for_selector("#no-vote")
    assert web.votes() == []
    # Back to the 👍 page: this tab already submitted it once, so it does not vote again.
    while page.url != url:
        page.go_back()
    page.wait_for_selector("text=Press the button to record your 👍 More like this.")
    assert web.votes() == []
    assert page.errors == []


def test_back_to_a_vote_page_after_a_change_says_which_vote_is_stored(web: WebApp, page):
    """After "Change to 👎", Back to the 👍 page said "Press the button to record your 👍" and
    nothing of the 👎 now stored (found in review)."""
    url = web.link("ada", KV, "up")
    page.goto(url)
    page.wait_for_selector("#recorded")
    page.get_by_role("button", name="Change to 👎 Less like this").click()
    page.wait_for_selector("text=✓ Recorded: 👎 Less like this")
    for _ in range(5):  # the change's POST and its redirect lie between
        if page.url == url:
            break
        page.go_back()
    page.wait_for_selector("#stored")
    assert page.locator("#stored").inner_text() == "Your vote now: 👎 Less like this."
    assert page.get_by_text(
        "Press the button to record your 👍 More like this instead."
    ).is_visible()
    assert web.votes() == [("ada", KV, -1)]  # Back changed nothing
    assert page.errors == []


def test_with_scripts_off_the_vote_waits_for_the_button(web: WebApp, browser):
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(5000)
    try:
        page = context.new_page()
        page.goto(web.link("grace", GPTQ, "down"))
        assert page.get_by_text("Press the button to record your 👎 Less like this.").is_visible()
        assert web.votes() == []
        page.get_by_role("button", name="Record 👎 Less like this").click()
        page.wait_for_selector("#recorded")
        assert web.votes() == [("grace", GPTQ, -1)]
    finally:
        context.close()


def test_a_tampered_link_shows_a_clear_page_in_the_browser(web: WebApp, page):
    url = web.link("ada", KV, "up")
    response = page.goto(url[:-6] + ("AAAAAA" if not url.endswith("AAAAAA") else "BBBBBB"))
    assert response.status == 400
    assert page.locator("h1").inner_text() == "This link does not work"
    assert web.votes() == []


def test_profile_page_edit_interests_and_undo_a_vote(web: WebApp, page, tmp_path: Path):
    page.goto(web.link("ada", KV, "up"))
    page.wait_for_selector("#recorded")
    page.goto(web.link("ada", PROTEIN, "down"))
    page.wait_for_selector("#recorded")
    page.get_by_role("link", name="See what paperwire has learned about you").click()
    page.wait_for_selector("#positive-terms")
    assert "protein" in page.locator("#negative-terms").inner_text()
    assert page.locator("#votes tr").count() == 2
    screenshot(page, tmp_path, "profile-page.png")

    page.fill("#interests", "KV cache eviction, speculative decoding")
    page.fill("#not_interested", "weight quantization")
    page.get_by_role("button", name="Save interests").click()
    page.wait_for_selector("#saved")
    assert "speculative decoding" in page.locator("#positive-terms").inner_text()
    assert "weight quantization" in page.locator("#negative-terms").inner_text()
    assert page.locator("#not_interested").input_value() == "weight quantization"
    with web.store() as store:
        assert store.interests_overrides() == {"ada": "KV cache eviction, speculative decoding"}
        assert store.not_interested_overrides() == {"ada": "weight quantization"}
    screenshot(page, tmp_path, "profile-page-edited.png")

    page.locator("#votes tr", has_text="Protein folding").get_by_role("button", name="Undo").click()
    page.wait_for_selector("#votes")
    assert page.locator("#votes tr").count() == 1
    assert web.votes() == [("ada", KV, 1)]
    assert page.errors == []


def test_unsubscribe_and_subscribe_again_in_the_browser(web: WebApp, page):
    page.goto(web.page("unsubscribe", "ada"))
    with web.store() as store:
        assert store.unsubscribed() == set()
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_selector("#unsubscribed")
    with web.store() as store:
        assert store.unsubscribed() == {"ada"}
    page.get_by_role("button", name="Subscribe again").click()
    page.wait_for_selector("#subscribed")
    with web.store() as store:
        assert store.unsubscribed() == set()
