"""Render a digest with TL;DRs, code links and a followed author, and screenshot it (issue 16).

Reads a real Hugging Face Daily Papers response (the default is the one recorded in
``../shared/data/feeds/``; the test fixture when that is absent), runs the real fetch and send
into an outbox, and photographs the e-mail's HTML part with headless Chromium:

    PYTHONPATH=src python scripts/features_screenshot.py docs/digest-features.png
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
from email import message_from_bytes, policy
from pathlib import Path

from paperwire import pipeline
from paperwire.config import parse_config
from paperwire.store import Store

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "feeds" / "hf_daily_papers_2026-06-12_sotawhat.json"
FIXTURE = ROOT / "tests" / "fixtures" / "hf_daily_papers_extras.json"
CONFIG = """
feeds:
  - url: {feed}
    name: hf-daily
secret: screenshot-secret
subscribers:
  - id: ada
    name: Ada
    email: ada@example.org
    interests: "LLM agents, web agents, tool use, memory for agents"
    digest_size: 5
    follow_authors: ["N. Biondi"]
    never_match: ["piano"]
"""


def main(target: str) -> None:
    feed = SHARED if SHARED.exists() else FIXTURE
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = parse_config(CONFIG.format(feed=feed), env={})
        now = dt.datetime(2026, 6, 12, 9, 0, tzinfo=dt.UTC)
        with Store(work / "pw.db") as store:
            pipeline.fetch_all(store, config, now=now - dt.timedelta(hours=2))
            pipeline.send_due(store, config, now=now, outbox=work / "outbox")
        [eml] = (work / "outbox").glob("*.eml")
        msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
        page = work / "digest.html"
        page.write_text(msg.get_body(("html",)).get_content(), encoding="utf-8")
        subprocess.run(
            [
                "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--window-size=760,2000", f"--screenshot={Path(target).resolve()}",
                page.as_uri(),
            ],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/digest-features.png")
