"""The web demo in a real browser: Debian's headless Chromium driven by Playwright.

Opens the page served by ``python app.py`` (offline, colour fallback), picks an example, runs it,
waits for the overlay and checks it shows that example; clicks the overlay and checks the affinity
view follows; and checks that the page asked nothing of any outside host (fonts, CDNs, analytics).
Set ``DEEPCUT_SCREENSHOT=path.png`` to keep a screenshot of the finished page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

from app_server import MAX_SIDE, REPO, app_server

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    server = app_server()
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        pg = context.pages[0] if context.pages else context.new_page()

        def record(request):
            host = urlparse(request.url).hostname
            if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host not in ("127.0.0.1", "localhost"):
                outside.append(request.url)

        pg.on("request", record)
        pg.set_default_timeout(90_000)
        pg.goto(server["url"], wait_until="load")
        pg.outside_requests = outside
        yield pg
        context.close()


def test_example_runs_and_overlay_appears(page):
    page.get_by_role("button", name="Segment", exact=True).wait_for()
    # The fallback notice is on the page, in words a visitor understands.
    notice = page.locator("#notice")
    assert notice.is_visible()
    assert "colour backbone" in notice.inner_text()

    examples = sorted(p.name for p in (REPO / "assets").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    index = examples.index("cat.jpg")
    page.locator("button.gallery-item").nth(index).click()
    # The example is in the input once it is drawn there (a click before that would send no image).
    page.wait_for_function("""() => { const i = document.querySelector('#input-image img');
                                      return i && i.complete && i.naturalWidth > 0; }""")
    page.get_by_role("button", name="Segment", exact=True).click()

    width, height = Image.open(REPO / "assets" / "cat.jpg").size
    scale = min(1.0, MAX_SIDE / max(width, height))  # the test server downscales big uploads
    width, height = round(width * scale), round(height * scale)
    # The overlay is an image of the example's (downscaled) size, which no other page image has.
    page.wait_for_function(
        """([w, h]) => { const i = document.querySelector('#overlay img');
                         return i && i.complete && i.naturalWidth === w && i.naturalHeight === h; }""",
        arg=[width, height])
    page.wait_for_function("document.querySelector('#status').innerText.includes('segments')")
    status = page.locator("#status").inner_text()
    assert "backbone color" in status.replace("`", "")
    for elem in ("#mask img", "#bbox img", "#affinity img"):
        page.locator(elem).scroll_into_view_if_needed()  # pictures below the fold load when scrolled to
        page.wait_for_function(f"(() => {{ const i = document.querySelector('{elem}'); "
                               f"return i && i.complete && i.naturalWidth > 0; }})()")
    assert page.locator("#downloads").inner_text().count("cat") >= 2  # cat_labels.png, cat.json

    # Clicking the overlay moves the affinity view to the clicked patch (near the top-left corner).
    page.wait_for_function("document.querySelector('#affinity-caption').innerText.includes('Patch (row')")
    before = page.locator("#affinity-caption").inner_text()
    # The picture is drawn inside the element without upscaling ("scale-down"): find where it is.
    page.locator("#overlay img").scroll_into_view_if_needed()
    x, y = page.evaluate("""() => { const i = document.querySelector('#overlay img'), b = i.getBoundingClientRect();
        const r = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight, 1);
        const w = i.naturalWidth * r, h = i.naturalHeight * r;
        return [b.left + (b.width - w) / 2 + 0.1 * w, b.top + (b.height - h) / 2 + 0.1 * h]; }""")
    page.mouse.click(x, y)
    page.wait_for_function(f"!document.querySelector('#affinity-caption').innerText.includes({before[:40]!r})")
    assert "Patch (row" in page.locator("#affinity-caption").inner_text()

    # Nothing went wrong on the way: no error toast.
    assert page.locator("[data-testid='toast-body']").count() == 0

    shot = os.environ.get("DEEPCUT_SCREENSHOT")
    if shot:
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=shot, full_page=True)


def test_corrupt_upload_shows_an_error_not_a_traceback(page, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    page.reload(wait_until="load")  # an empty input, as a new visitor sees it
    page.get_by_role("button", name="Segment", exact=True).wait_for()
    page.locator("#input-image input[type=file]").set_input_files(str(bad))
    toast = page.locator("[data-testid='toast-body']").first
    toast.wait_for()
    text = toast.inner_text()
    assert "Could not read this file as an image" in text
    assert "Traceback" not in text and "File \"" not in text


def test_page_needs_no_outside_host(page):
    page.wait_for_timeout(500)  # after everything the page did in the tests above
    assert page.outside_requests == []
