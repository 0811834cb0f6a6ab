"""Screenshot the demo's digests (README's first command) in headless Chromium for docs/.

Runs ``paperwire run --once`` in a fresh folder, then photographs the first reader's HTML part
as a desktop mail client (1024 px) and a phone (375 px) show it, and the demo's two other
readers' digests (grace, rag-team: what each pick is and why, issue 27) at 760 px, offline.

    python scripts/screenshot_digest.py docs
    # writes digest-email.png, digest-email-phone.png (ada), digest-grace.png, digest-rag-team.png
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
# the checkout this script is in: the demo runs its code, not whatever paperwire is installed
SRC = Path(__file__).resolve().parents[1] / "src"
READERS = ("grace", "rag-team")  # and ada: digest-email.png


def main(target: str) -> None:
    docs = Path(target)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "paperwire", "run", "--once"],
            cwd=folder,
            check=True,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")},
                "PAPERWIRE_SECRET": "demo-screenshot-signing-key",
                "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            },
        )
        outbox = Path(folder, "outbox")
        html = sorted(outbox.glob("*-ada-digest.html"))[0]
        shots = [(html, 1024, "digest-email.png"), (html, 375, "digest-email-phone.png")]
        for reader in READERS:
            shots.append(
                (sorted(outbox.glob(f"*-{reader}-digest.html"))[0], 760, f"digest-{reader}.png")
            )
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            for shown, width, name in shots:
                page = browser.new_page(viewport={"width": width, "height": 900})
                # offline: a message must not need the network to render
                page.route(
                    "**/*",
                    lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort(),
                )
                page.goto(shown.as_uri())
                page.screenshot(path=str(docs / name), full_page=True)
                page.close()
            browser.close()
    print(f"screenshots of {', '.join(h.name for h, _, _ in shots[1:])} written to {docs}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
