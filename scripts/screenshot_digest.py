"""Screenshot the demo's first digest (README's first command) in headless Chromium for docs/.

Runs ``paperwire run --once`` in a fresh folder, then photographs the first reader's HTML part
as a desktop mail client (1024 px) and a phone (375 px) show it, offline.

    python scripts/screenshot_digest.py docs        # writes digest-email.png, digest-email-phone.png
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def main(target: str) -> None:
    docs = Path(target)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "paperwire", "run", "--once"],
            cwd=folder,
            check=True,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")},
                "PAPERWIRE_SECRET": "demo",
            },
        )
        html = sorted(Path(folder, "outbox").glob("*-ada-digest.html"))[0]
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            for width, name in ((1024, "digest-email.png"), (375, "digest-email-phone.png")):
                page = browser.new_page(viewport={"width": width, "height": 900})
                # offline: a message must not need the network to render
                page.route(
                    "**/*",
                    lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort(),
                )
                page.goto(html.as_uri())
                page.screenshot(path=str(docs / name), full_page=True)
                page.close()
            browser.close()
    print(f"screenshots of {html.name} written to {docs}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
