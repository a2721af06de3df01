"""Make ``docs/screenshot.png``: the demo in headless Chromium after segmenting an example.

Run from the repository root (needs Debian's ``chromium`` and the ``playwright`` package)::

    python docs/make_screenshot.py                      # colour backbone, works offline
    python docs/make_screenshot.py --backbone dino_vits8  # with DINO weights in the HF cache

It starts ``python app.py`` on a free port, clicks an example (``--example``, optionally with
``--stages 2|3``), waits for the result and saves the top of the page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from app_server import free_port  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="color")
    p.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    p.add_argument("--example", default="cat.jpg")
    p.add_argument("--stages", type=int, choices=(1, 2, 3), default=1)
    args = p.parse_args()

    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "app.py", "--backbone", args.backbone], cwd=REPO, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.set_default_timeout(180_000)
            page.goto(url, wait_until="load")
            names = sorted(f.name for f in (REPO / "assets").iterdir() if f.suffix.lower() in (".jpg", ".png"))
            page.locator("button.gallery-item").nth(names.index(args.example)).click()
            page.wait_for_function("document.querySelector('#status').innerText.includes('segments')")
            if args.stages > 1:
                label = {2: "2: foreground parts", 3: "3: foreground + background parts"}[args.stages]
                page.get_by_label(label).first.check()  # the Image tab's control comes first
                page.wait_for_function(f"document.querySelector('#status').innerText.includes('stage {args.stages}')")
            page.wait_for_timeout(1500)
            page.screenshot(path=args.out, full_page=False)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
