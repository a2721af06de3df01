"""Make the screenshots of the demo (README, docs) in headless Chromium, after segmenting an example.

Run from the repository root (needs Debian's ``chromium`` and the ``playwright`` package)::

    python docs/make_screenshot.py                      # docs/screenshot.png, colour backbone, offline
    python docs/make_screenshot.py --backbone dino_vits8  # with DINO weights in the HF cache
    python docs/make_screenshot.py --view all           # every view below, each to docs/<its name>.png
    python docs/make_screenshot.py --public --out docs/public.png   # public mode: the caps on the page

It starts ``python app.py`` on a free port and, per ``--view``:

* ``app``: 1400 px wide, clicks an example (``--example``, optionally with ``--stages 2|3``), waits
  for the result and saves the top of the page (``docs/screenshot.png``);
* ``phone``: the first screen a 390×844 phone shows (``docs/phone.png``);
* ``phone_result``: the same phone after a tap on the example: the page has taken it to the result
  (``docs/phone_result.png``);
* ``presenter``: ``?presenter=1`` on a 1280×720 projector after segmenting the example, the walkthrough
  moved to the training replay, 6 snapshots in (``docs/presenter.png``);
* ``compare``: the example pinned, then k = 3 beside it, and the sweep k = 2…6 (``docs/compare.png``);
* ``walkthrough``: *Step through the method*, step 3 (the training replay), 6 snapshots in
  (``docs/walkthrough.png``);
* ``teaching``: the teaching view after *Explain this result*, the replay scrubbed to the middle of
  its last stage (``docs/teaching.png``);
* ``correct``: a correction by click: the example at k = 3, then *separate* on two far-apart points of its
  largest segment; the overlay and status before and after (``docs/correct_before.png``, ``correct_after.png``).

The Live tab's screenshot (``docs/live.png``) comes from its browser test, which has the fake camera:
``DEEPCUT_SCREENSHOT_DIR=docs python -m pytest tests/test_live_browser.py`` (writes ``docs/live_tab.png``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
from app_server import free_port, launch  # noqa: E402

VIEWS = {"app": ((1400, 1500), "screenshot.png"), "phone": ((390, 844), "phone.png"),
         "phone_result": ((390, 844), "phone_result.png"), "presenter": ((1280, 720), "presenter.png"),
         "compare": ((1400, 1000), "compare.png"), "walkthrough": ((1400, 1000), "walkthrough.png"),
         "teaching": ((1400, 1000), "teaching.png"), "correct": ((1400, 1000), "correct_after.png")}


def far_points(args: argparse.Namespace) -> list[tuple[float, float]]:
    """Two far-apart pixels ``(x, y)`` of the largest segment of the example at k = 3 (the same library and
    settings as the page's, so the same labels)."""
    import numpy as np

    from deepcut import DeepCut

    seg = DeepCut(args.backbone).segment(str(REPO / "assets" / args.example), k=3)
    h, w = seg.labels.shape
    ys, xs = np.nonzero(seg.labels == np.bincount(seg.labels.ravel()).argmax())
    inner = (xs > 0.1 * w) & (xs < 0.9 * w) & (ys > 0.15 * h) & (ys < 0.9 * h)  # corners: the label and buttons
    ys, xs = ys[inner], xs[inner]
    c = np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
    far = np.argmax((xs - xs[c]) ** 2 + (ys - ys[c]) ** 2)
    return [((xs[i] + 0.5) / w, (ys[i] + 0.5) / h) for i in (c, far)]


def correct(page, out: str, args: argparse.Namespace) -> None:
    """The ``correct`` view (see the module doc)."""
    box = page.locator("input[type=number]").first  # the Image tab's k comes first
    box.fill("3")
    box.press("Enter")
    page.wait_for_function("document.querySelector('#status').innerText.includes('3 segments')")
    page.wait_for_timeout(1000)
    before = str(Path(out).with_name("correct_before.png"))
    page.locator("#overlay").screenshot(path=before)
    page.get_by_label("separate two points (click both)").check()
    for fx, fy in far_points(args):
        x, y = page.evaluate("""([fx, fy]) => {
            const i = document.querySelector('#overlay img'), b = i.getBoundingClientRect();
            const r = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight, 1);  // as Gradio maps clicks
            const w = i.naturalWidth * r, h = i.naturalHeight * r;
            return [b.left + (b.width - w) / 2 + fx * w, b.top + (b.height - h) / 2 + fy * h]; }""", [fx, fy])
        page.mouse.click(x, y)
        page.wait_for_timeout(1500)
        page.wait_for_function("document.querySelector('#status').innerText.includes('First point marked') || "
                               "document.querySelector('#status').innerText.includes('Correction 1')")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Correction 1')")
    page.wait_for_timeout(1000)
    page.locator("#overlay").screenshot(path=out)
    print(page.locator("#status").inner_text())


def walk_to_replay(page, out: str, view: str) -> None:
    """The ``presenter`` and ``walkthrough`` views (see the module doc)."""
    if view == "walkthrough":
        page.locator("#walk-start").click()
    page.wait_for_function("document.querySelector('#walk-title').innerText.includes('1 of')")
    page.locator("body").click(position={"x": 3, "y": 3})
    for key in ("PageDown", "PageDown", *["ArrowRight"] * 6):
        page.keyboard.press(key)
        page.wait_for_timeout(900)
    page.wait_for_timeout(1500)
    if view == "walkthrough":
        page.locator("#walk-col").screenshot(path=out)
    else:
        page.screenshot(path=out)


def compare(page, out: str) -> None:
    """The ``compare`` view (see the module doc)."""
    page.locator("#pin-btn").click()
    page.wait_for_function("document.querySelector('#pair-caption').innerText.includes('Pinned')")
    box = page.locator("input[type=number]").first  # the Image tab's k comes first
    box.fill("3")
    box.press("Enter")
    page.wait_for_function("document.querySelector('#pair-caption').innerText.includes('→')")
    page.locator("#sweep-btn").click()
    page.wait_for_function("document.querySelector('#sweep-caption').innerText.includes('→')")
    page.wait_for_timeout(2000)
    page.locator("#compare-panel").screenshot(path=out)


def segment_example(page, url: str, args: argparse.Namespace, query: str = "") -> None:
    """Open the page, click the example and wait for its result (with ``args.stages``)."""
    page.goto(url + query, wait_until="load")
    page.get_by_role("button", name="Segment", exact=True).wait_for()
    names = sorted(f.name for f in (REPO / "assets").iterdir() if f.suffix.lower() in (".jpg", ".png"))
    page.locator("button.gallery-item").nth(names.index(args.example)).click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('segment')")
    if args.stages > 1:
        label = {2: "2: foreground parts", 3: "3: foreground + background parts"}[args.stages]
        page.get_by_label(label).first.check()  # the Image tab's control comes first
        page.wait_for_function(f"document.querySelector('#status').innerText.includes('stage {args.stages}')")
    page.wait_for_timeout(1500)


def shoot(page, url: str, view: str, out: str, args: argparse.Namespace) -> None:
    """Take the screenshot of ``view`` into ``out``."""
    if view == "phone":
        page.goto(url, wait_until="load")
        page.get_by_role("button", name="Segment", exact=True).wait_for()
        page.wait_for_timeout(1500)
        page.screenshot(path=out)
        return
    segment_example(page, url, args, "?presenter=1" if view == "presenter" else "")
    if view == "correct":
        return correct(page, out, args)
    if view in ("presenter", "walkthrough"):
        return walk_to_replay(page, out, view)
    if view == "compare":
        return compare(page, out)
    if view == "phone_result":
        page.wait_for_timeout(1000)
        page.screenshot(path=out)
        return
    if view == "teaching":
        page.locator("#explain-btn").click()
        page.wait_for_function("document.querySelector('#compare-caption').innerText.includes('spectral')")
        top = int(page.locator("#train-scrub input[type=range]").get_attribute("max") or 0)
        box = page.locator("#train-scrub input[type=number]")
        box.fill(str(max(0, top - 6)))
        box.press("Enter")
        page.wait_for_timeout(3000)
        page.locator("#teach-panel").screenshot(path=out)
        return
    page.screenshot(path=out, full_page=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="color")
    p.add_argument("--view", choices=(*VIEWS, "all"), default="app")
    p.add_argument("--out", default=None, help="output file (one view; default docs/<view's name>.png)")
    p.add_argument("--example", default="cat.jpg")
    p.add_argument("--stages", type=int, choices=(1, 2, 3), default=1)
    p.add_argument("--public", action="store_true", help="start the app in public mode (its caps on the page)")
    args = p.parse_args()
    views = list(VIEWS) if args.view == "all" else [args.view]

    from playwright.sync_api import sync_playwright

    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_PORT": str(free_port())}
    proc, url = launch(env, ("--backbone", args.backbone) + ("--public",) * args.public, timeout=120)
    try:
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            for view in views:
                (width, height), name = VIEWS[view]
                out = args.out if args.out and len(views) == 1 else str(REPO / "docs" / name)
                page = browser.new_page(viewport={"width": width, "height": height})
                page.set_default_timeout(180_000)
                shoot(page, url, view, out, args)
                page.close()
                print(f"wrote {out}")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
