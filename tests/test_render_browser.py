"""The HTML e-mail part, rendered by headless Chromium (Debian's package) as a mail client would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from paperwire import pipeline

from .conftest import CHROMIUM, CHROMIUM_ARGS, FIXTURES

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def render_digest_html(store, make_config, outbox: Path) -> Path:
    config = make_config(
        f"feeds:\n  - url: {FIXTURES / 'arxiv_rss_cs.xml'}\nsubscribers:\n"
        "  - id: ada\n    name: Ada Lovelace\n    email: ada@example.org\n"
        '    interests: "retrieval augmented generation, question answering"\n'
        "    digest_size: 5\n    digest_days: daily\n",
        env={"PAPERWIRE_SECRET": "k-test-signing-key"},
    )
    pipeline.fetch_all(store, config, now=NOW)
    pipeline.send_due(store, config, now=NOW, outbox=outbox)
    return outbox / "2026-11-23-ada-digest.html"


def screenshot(html: Path, png: Path, width: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # offline: the message must not need anything from the network to render
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.route(
                "**/*",
                lambda route: (
                    route.abort()
                    if not route.request.url.startswith("file:")
                    else route.continue_()
                ),
            )
            page.goto(html.as_uri())
            page.screenshot(path=str(png), full_page=True)
            return page.evaluate(
                """() => ({
                    titles: [...document.querySelectorAll('a.title')].map(a => a.innerText),
                    votes: document.querySelectorAll('a.vote').length,
                    cardWidth: document.querySelector('.card').getBoundingClientRect().width,
                    overflow: document.documentElement.scrollWidth > window.innerWidth,
                    dates: [...document.querySelectorAll('.date')].map(
                        d => [d.innerText, d.getClientRects().length]),
                })"""
            )
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("width", [1024, 375])  # a desktop client and a phone
def test_digest_html_renders_in_chromium(store, make_config, tmp_path, width):
    html = render_digest_html(store, make_config, tmp_path / "outbox")
    png = tmp_path / f"digest-{width}.png"
    seen = screenshot(html, png, width)
    assert len(seen["titles"]) == 5 and seen["titles"][0].startswith("1. ")
    assert seen["votes"] == 10
    assert not seen["overflow"]  # nothing wider than the screen, on a phone too
    assert seen["cardWidth"] <= min(640, width)
    assert png.stat().st_size > 20_000  # a real picture, not a blank page
    # every date on one line: "2025-⏎04-11" beside the authors broke at 1024 px too
    assert len(seen["dates"]) == 6, seen["dates"]  # the lede's and each paper's
    assert all(lines == 1 for _, lines in seen["dates"]), seen["dates"]
    # docs/digest-email*.png show the demo's digest instead: scripts/screenshot_digest.py
