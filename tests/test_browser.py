"""The web demo in a real browser: Debian's headless Chromium driven by Playwright.

Opens the page served by ``python app.py`` (offline, colour fallback), picks an example, runs it,
waits for the overlay and checks it shows that example; clicks the overlay and checks the affinity
view follows; and checks that the page asked nothing of any outside host (fonts, CDNs, analytics).
Set ``DEEPCUT_SCREENSHOT=path.png`` to keep a screenshot of the finished page.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from app_server import CHROMIUM, CHROMIUM_ARGS, MAX_SIDE, REPO, app_server
from conftest import segment_requests
from PIL import Image

from deepcut.demo.outputs import display_factor

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./dev installs it)")]



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
    f = display_factor((height, width))  # and the page enlarges a small picture to fill its panel
    width, height = round(width * f), round(height * f)
    # The overlay is an image of the example's (downscaled, enlarged) size, which no other page image has.
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


def run_example(page, name: str = "cat.jpg") -> None:
    """Open the page afresh, click the example ``name`` and wait for its result."""
    page.goto(page.url.split("?")[0], wait_until="load")
    page.get_by_role("button", name="Segment", exact=True).wait_for()
    examples = sorted(p.name for p in (REPO / "assets").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    page.locator("button.gallery-item").nth(examples.index(name)).click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('segment')")


def test_typed_slider_value_reruns_and_a_drag_runs_once(page):
    run_example(page)
    box = page.get_by_label("number input for Number of clusters k").first
    before = page.locator("#status").inner_text()

    def type_four():
        box.fill("4")
        box.press("Enter")  # no click elsewhere: Enter alone commits the typed value

    sent = segment_requests(page, type_four)
    assert len(sent) == 1 and 4 in sent[0][:6], sent  # one run, with the typed k
    page.wait_for_function(f"document.querySelector('#status').innerText !== {before!r}")
    # Dragging the slider runs once, when it is released, not at every step of the drag.
    slider = page.get_by_label("range slider for Number of clusters k").first
    slider.scroll_into_view_if_needed()
    track = slider.bounding_box()
    y = track["y"] + track["height"] / 2

    def drag():
        page.mouse.move(track["x"] + 0.25 * track["width"], y)  # the thumb, at k=4 of 2-10
        page.mouse.down()
        for f in (0.35, 0.45, 0.55, 0.65, 0.75):
            page.mouse.move(track["x"] + f * track["width"], y, steps=3)
        page.mouse.up()

    sent = segment_requests(page, drag, settle_ms=2500)
    assert len(sent) == 1 and int(slider.input_value()) > 4, sent


def test_click_picks_the_object_when_asked(page):
    run_example(page)
    for elem in ("#mask img", "#overlay img"):
        page.wait_for_function(f"(() => {{ const i = document.querySelector('{elem}'); "
                               f"return i && i.complete && i.naturalWidth > 0; }})()")
    mask_before = page.locator("#mask img").get_attribute("src")
    # A background pixel of the mask (black), as a fraction of the picture: the segment to pick there.
    fx, fy = page.evaluate("""() => {
        const i = document.querySelector('#mask img'), c = document.createElement('canvas');
        c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext('2d'); g.drawImage(i, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        for (let y = 2; y < c.height - 2; y += 2) for (let x = 2; x < c.width - 2; x += 2)
            if (d[4 * (y * c.width + x)] < 10) return [(x + 0.5) / c.width, (y + 0.5) / c.height];
        return null; }""")
    page.get_by_label("pick it as the object").check()
    page.locator("#overlay img").scroll_into_view_if_needed()
    x, y = page.evaluate("""([fx, fy]) => {
        const i = document.querySelector('#overlay img'), b = i.getBoundingClientRect();
        const r = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight, 1);
        const w = i.naturalWidth * r, h = i.naturalHeight * r;
        return [b.left + (b.width - w) / 2 + fx * w, b.top + (b.height - h) / 2 + fy * h]; }""", [fx, fy])
    page.mouse.click(x, y)
    page.wait_for_function("document.querySelector('#status').innerText.includes('Picked segment')")
    # the picked (background) segment is now the object: the mask changed
    page.wait_for_function(f"document.querySelector('#mask img').getAttribute('src') !== {mask_before!r}")
    assert page.locator("[data-testid='toast-body']").count() == 0


def mask_points(page) -> tuple[list[float], list[float]]:
    """The foreground (white) pixel of the mask nearest its centre and the background (black) pixel farthest
    from it, as fractions of the picture."""
    return page.evaluate("""() => {
        const i = document.querySelector('#mask img'), c = document.createElement('canvas');
        c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext('2d'); g.drawImage(i, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data, cx = c.width / 2, cy = c.height / 2;
        let fg = null, bg = null, near = 1e9, far = -1;
        for (let y = 8; y < c.height - 8; y += 4) for (let x = 8; x < c.width - 8; x += 4) {
            const v = d[4 * (y * c.width + x)], r = (x - cx) ** 2 + (y - cy) ** 2;
            if (v > 245 && r < near) { near = r; fg = [(x + 0.5) / c.width, (y + 0.5) / c.height]; }
            if (v < 10 && r > far) { far = r; bg = [(x + 0.5) / c.width, (y + 0.5) / c.height]; } }
        return [fg, bg]; }""")


def click_overlay_at(page, fx: float, fy: float) -> None:
    x, y = page.evaluate("""([fx, fy]) => {
        const i = document.querySelector('#overlay img'), b = i.getBoundingClientRect();
        const r = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight, 1);
        const w = i.naturalWidth * r, h = i.naturalHeight * r;
        return [b.left + (b.width - w) / 2 + fx * w, b.top + (b.height - h) / 2 + fy * h]; }""", [fx, fy])
    page.mouse.click(x, y)


def test_corrections_by_click_join_undo_and_mark_the_points(page, tmp_path):
    shots = Path(os.environ.get("DEEPCUT_SCREENSHOT_DIR", tmp_path))
    run_example(page)
    for elem in ("#mask img", "#overlay img"):
        page.wait_for_function(f"(() => {{ const i = document.querySelector('{elem}'); "
                               f"return i && i.complete && i.naturalWidth > 0; }})()")
    fg, bg = mask_points(page)
    assert fg and bg
    page.get_by_label("join two points (click both)").check()
    page.locator("#overlay img").scroll_into_view_if_needed()
    page.locator("#overlay").screenshot(path=str(shots / "correct_before.png"))
    overlay_before = page.locator("#overlay img").get_attribute("src")
    click_overlay_at(page, *fg)
    page.wait_for_function("document.querySelector('#status').innerText.includes('First point marked')")
    page.wait_for_function(f"document.querySelector('#overlay img').getAttribute('src') !== {overlay_before!r}")
    click_overlay_at(page, *bg)
    page.wait_for_function("document.querySelector('#status').innerText.includes('Correction 1')")
    status = page.locator("#status").inner_text()
    assert "joined segments" in status or "already in segment" in status, status
    page.wait_for_timeout(500)
    page.locator("#overlay").screenshot(path=str(shots / "correct_after.png"))
    # the marks are drawn where the points were clicked: the join colour (green) at the second point
    green = page.evaluate("""([fx, fy]) => {
        const i = document.querySelector('#overlay img'), c = document.createElement('canvas');
        c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext('2d'); g.drawImage(i, 0, 0);
        const d = g.getImageData(Math.floor(fx * c.width), Math.floor(fy * c.height), 1, 1).data;
        return [d[0], d[1], d[2]]; }""", bg)
    assert green[1] > 150 and green[0] < 120 and green[2] < 150, green
    page.locator("#undo-btn").click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('Undid correction 1')")
    assert page.locator("[data-testid='toast-body']").count() == 0
    page.get_by_label("show its affinities").check()


def test_teaching_view_compares_and_replays(page):
    run_example(page)
    page.locator("#explain-btn").click()
    page.wait_for_function("document.querySelector('#compare-caption').innerText.includes('spectral')")
    caption = page.locator("#compare-caption").inner_text()
    assert "GNN" in caption and "normalized cut" in caption
    for elem in ("#compare img", "#pca img", "#train-frame img"):
        page.wait_for_function(f"(() => {{ const i = document.querySelector('{elem}'); "
                               f"return i && i.complete && i.naturalWidth > 0; }})()")
    first = page.locator("#train-frame img").get_attribute("src")
    box = page.get_by_label("number input for Training replay: snapshot (stage by stage)").first
    box.fill("8")
    box.press("Enter")
    page.wait_for_function(f"document.querySelector('#train-frame img').getAttribute('src') !== {first!r}")


def visible_in_viewport(page, selector: str) -> bool:
    """Whether the element is entirely inside the viewport without scrolling."""
    return page.evaluate(f"""() => {{ const b = document.querySelector('{selector}').getBoundingClientRect();
        return b.width > 0 && b.top >= 0 && b.left >= 0 && b.bottom <= window.innerHeight + 1
               && b.right <= window.innerWidth + 1 && window.scrollY === 0; }}""")


def test_presenter_mode_fits_a_projector(page):
    pg = page.context.new_page()
    try:
        pg.set_viewport_size({"width": 1280, "height": 720})
        pg.goto(page.url.split("?")[0] + "?presenter=1", wait_until="load")
        pg.get_by_role("button", name="Segment", exact=True).wait_for()
        pg.wait_for_function("document.body.classList.contains('presenter')")
        assert pg.locator("#presenter-toggle input").is_checked()
        for text in ("Number of clusters k", "Segment"):
            size = pg.get_by_text(text, exact=True).first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
            assert size >= 18, (text, size)  # large fonts (the page's default is 14-16 px)
        # the empty upload box's prompt was cut ("…ge Here or Click to…") and ran under its label
        prompt = pg.evaluate("""() => { const q = s => document.querySelector(s).getBoundingClientRect();
            const p = document.querySelector('#input-image [data-testid=upload-text] .prompt');
            const t = p.getBoundingClientRect(), label = q('#input-image label');
            const bar = q('#input-image .source-selection');
            return {fits: p.scrollWidth <= p.clientWidth + 1 && t.height > 0, below: t.top >= label.bottom - 1,
                    above: t.bottom <= bar.top + 1}; }""")
        assert prompt == {"fits": True, "below": True, "above": True}, prompt
        examples = sorted(p.name for p in (REPO / "assets").iterdir() if p.suffix.lower() in (".jpg", ".png"))
        pg.locator("button.gallery-item").nth(examples.index("cat.jpg")).click()
        pg.wait_for_function("document.querySelector('#status').innerText.includes('segment')")
        pg.wait_for_function("(() => { const i = document.querySelector('#overlay img'); "
                             "return i && i.complete && i.naturalWidth > 0; })()")
        for elem in ("#overlay img", "#segment-btn", "#input-image"):
            assert visible_in_viewport(pg, elem), elem
        for label in ("Number of clusters k", "Loss", "Stages"):
            box = pg.get_by_text(label, exact=True).first.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 720, label
        assert pg.locator("#notice").is_visible()  # the room is told the colour fallback (issue #32) …
        assert not pg.locator("#notice details").is_visible()  # … in its short form
        pg.locator("#presenter-toggle input").uncheck()  # and the checkbox leaves presenter mode
        pg.wait_for_function("!document.body.classList.contains('presenter')")
    finally:
        pg.close()


def test_phone_first_screen_shows_the_upload_and_the_button(page):
    pg = page.context.new_page()
    try:
        pg.set_viewport_size({"width": 390, "height": 844})
        pg.goto(page.url.split("?")[0], wait_until="load")
        pg.get_by_role("button", name="Segment", exact=True).wait_for()
        for elem in ("#input-image", "#segment-btn"):
            assert visible_in_viewport(pg, elem), elem
        assert "colour backbone" in pg.locator("#notice").inner_text()  # the notice is short, not gone
    finally:
        pg.close()


def test_cosegmentation_examples_run_and_show_every_image(page):
    page.goto(page.url.split("?")[0], wait_until="load")
    page.get_by_role("tab", name="Co-segmentation").click()
    sets = page.get_by_role("button", name="galaxies (3 images)")
    sets.wait_for()
    assert page.get_by_role("button", name="cat (3 images)").count() == 1
    sets.click()
    page.wait_for_function("document.querySelectorAll('#coseg-input img').length === 3")
    page.locator("#coseg-btn").click()
    page.wait_for_function("document.querySelector('#coseg-status').innerText.includes('3 images')")
    page.wait_for_function("document.querySelectorAll('#coseg-overlays img').length === 3")
    for gallery in ("#coseg-input", "#coseg-overlays"):  # no image is cut off by its gallery
        inside = page.evaluate(f"""() => {{ const g = document.querySelector('{gallery}').getBoundingClientRect();
            return [...document.querySelectorAll('{gallery} img')].map(i => {{ const b = i.getBoundingClientRect();
                return b.left >= g.left - 1 && b.right <= g.right + 1 && b.width > 20; }}); }}""")
        assert inside == [True, True, True], (gallery, inside)


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


def test_a_failed_request_keeps_the_last_result_and_its_message_stays(page):
    """Gradio marks every output of a failed event "Error": a red mark covered the last pictures, another one
    overlapped the old status text, and the toast went after 10 s. Now the outputs stay as they were and the
    toast stays until closed."""
    from test_lesson_browser import tap_example

    page.reload(wait_until="load")
    page.get_by_role("button", name="Segment", exact=True).wait_for()
    tap_example(page)
    status, src = page.locator("#status").inner_text(), page.locator("#overlay img").get_attribute("src")
    page.locator("#sweep-values textarea").fill("2, nan")
    page.locator("#sweep-btn").click()
    toast = page.locator("[data-testid='toast-body']").first
    toast.wait_for()
    page.wait_for_timeout(11_000)  # Gradio's toasts went after 10 s
    assert toast.is_visible() and "finite numbers" in toast.inner_text()
    marks = page.locator("[data-testid='status-tracker'] .error")
    assert marks.count() >= 1  # Gradio still marks the sweep's outputs ...
    assert all(not marks.nth(i).is_visible() for i in range(marks.count()))  # ... and the page does not show it
    assert page.locator("#overlay img").get_attribute("src") == src and page.locator("#status").inner_text() == status
    toast.locator("button").last.click()  # its close button
    page.wait_for_timeout(500)
    assert page.locator("[data-testid='toast-body']").count() == 0


def test_page_needs_no_outside_host(page):
    page.wait_for_timeout(500)  # after everything the page did in the tests above
    assert page.outside_requests == []
