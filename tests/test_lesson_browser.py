"""The demo as a teacher uses it, in a real browser (Debian's headless Chromium, Playwright), at the three
sizes it must serve: 1400×900 (a laptop), 1280×720 (a projector, presenter mode) and 390×844 (a phone).

Each test opens the page afresh at its size, drives it as a visitor would and checks what is on screen:
the result of a tap on a phone, the presenter screen (overlay, segment count and the walkthrough's figure
without scrolling, the figure's text at 16 px or more), typed values clamped and quick edits run once, the
overlay marking a click, pin and compare, the sweep strip, the walkthrough and its keys, the slides, the
overlay's file name and the video tab's example. ``DEEPCUT_SCREENSHOT_DIR=docs`` keeps the screenshots the
docs show (``phone_result.png``, ``presenter.png``, ``compare.png``, ``walkthrough.png``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from app_server import CHROMIUM, MAX_SIDE, REPO, RESOLUTION
from conftest import segment_requests

pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./dev installs it)")]
EXAMPLES = sorted(p.name for p in (REPO / "assets").iterdir() if p.suffix.lower() in (".jpg", ".png"))
#: The three screens: a laptop, a projector in presenter mode, a phone (``(width, height, query)``).
SIZES = {"laptop": (1400, 900, ""), "presenter": (1280, 720, "?presenter=1"), "phone": (390, 844, "")}
#: The same three for panels presenter mode hides (compare, slides): a 1280×720 projector in normal mode.
NORMAL_SIZES = {**SIZES, "presenter": (1280, 720, "")}
LOADED = "(() => {{ const i = document.querySelector('{0}'); return i && i.complete && i.naturalWidth > 0; }})()"



@pytest.fixture
def shots(tmp_path) -> Path:
    return Path(os.environ.get("DEEPCUT_SCREENSHOT_DIR", tmp_path))


def open_page(browser, width: int, height: int, query: str = ""):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(90_000)
    page.goto(browser.url + query, wait_until="load")
    page.get_by_role("button", name="Segment", exact=True).wait_for()
    return page


@contextlib.contextmanager
def page_at(browser, width: int, height: int, query: str = ""):
    """A fresh page of that size (see :func:`open_page`), checked for error toasts at the end, then closed."""
    page = open_page(browser, width, height, query)
    try:
        yield page
        no_error(page)
    finally:
        page.close()


def tap_example(page, name: str = "cat.jpg") -> None:
    """Click the example ``name`` and wait for its result (overlay drawn, status written)."""
    page.locator("button.gallery-item").nth(EXAMPLES.index(name)).click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('segment')")
    wait_loaded(page, "#overlay img")


def wait_loaded(page, selector: str) -> None:
    """Wait until the picture ``selector`` is drawn (scrolled to first: pictures off screen load lazily)."""
    page.wait_for_selector(selector, state="attached")
    page.locator(selector).scroll_into_view_if_needed()
    page.wait_for_function(LOADED.format(selector))


def box(page, selector: str) -> dict:
    """The element's box and the viewport: ``{top, bottom, left, right, vh, vw, scroll}``."""
    return page.evaluate(f"""() => {{ const b = document.querySelector('{selector}').getBoundingClientRect();
        return {{top: b.top, bottom: b.bottom, left: b.left, right: b.right, vh: window.innerHeight,
                 vw: window.innerWidth, scroll: window.scrollY}}; }}""")


def on_screen(page, selector: str) -> bool:
    b = box(page, selector)
    return b["top"] >= -1 and b["left"] >= -1 and b["bottom"] <= b["vh"] + 1 and b["right"] <= b["vw"] + 1


def displayed_scale(page, selector: str) -> float:
    """How much the picture is scaled on screen (``object-fit: contain``)."""
    return page.evaluate(f"""() => {{ const i = document.querySelector('{selector}'), b = i.getBoundingClientRect();
        return Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight); }}""")


def no_error(page) -> None:
    assert page.locator("[data-testid='toast-body']").count() == 0, page.locator("[data-testid='toast-body']") \
        .first.inner_text()


def test_phone_tap_shows_the_result_and_readable_figures(browser, shots):
    from deepcut.demo.layout import PHONE_TEXT
    from deepcut.render.figures import soft_maps_figure
    from deepcut.render.style import min_text_px, pixel_size

    with page_at(browser, 390, 844) as page:
        tap_example(page)
        page.wait_for_timeout(600)
        assert box(page, "#status")["scroll"] > 0  # the page took the visitor to the result
        for elem in ("#status", "#overlay img"):
            assert on_screen(page, elem), (elem, box(page, elem))
        page.screenshot(path=str(shots / "phone_result.png"))
        # the figures below are redrawn for the phone: compact, their text >= 12 px on its screen
        fig = soft_maps_figure(page_result()[1].seg, text=PHONE_TEXT)
        page.locator("#soft-maps").scroll_into_view_if_needed()
        page.wait_for_function(f"(() => {{ const i = document.querySelector('#soft-maps img'); return i && i.complete "
                               f"&& i.naturalWidth === {pixel_size(fig)[0]}; }})()")
        assert min_text_px(fig) * displayed_scale(page, "#soft-maps img") >= 12


def test_normal_mode_shows_the_examples_above_the_fold(browser):
    with page_at(browser, 1280, 720) as page:
        assert on_screen(page, "#image-examples") and box(page, "#image-examples")["scroll"] == 0


def page_result():
    """The session and result the test server's page makes of the cat example (colour backbone, uploads
    downscaled to MAX_SIDE, RESOLUTION, the page's defaults), made here again to measure its figures' text."""
    from deepcut.demo import DemoSession
    from deepcut.demo.controls import PAGE_DEFAULTS

    session = DemoSession(default_backbone="color", max_side=MAX_SIDE)
    return session, session.segment(str(REPO / "assets" / "cat.jpg"), resolution=RESOLUTION, **PAGE_DEFAULTS)


def presenter_walkthrough():
    """The walkthrough the presenter page builds for the cat example (:func:`page_result`)."""
    from deepcut.demo.teaching import Walkthrough, explain

    session, result = page_result()
    model = session.model("color").model
    return Walkthrough(model, result, explain(model, result))


def test_presenter_screen_fits_overlay_count_and_readable_figure(browser, shots):
    from deepcut.demo.lesson_view import WALK_TEXT

    walk = presenter_walkthrough()
    with page_at(browser, 1280, 720, "?presenter=1") as page:
        tap_example(page)
        wait_loaded(page, "#walk-picture img")
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('1 of')")
        page.wait_for_timeout(500)
        assert "segment" in page.locator("#status p").first.inner_text()
        for elem in ("#status", "#overlay img", "#walk-title", "#walk-picture img", "#click-mode"):
            assert on_screen(page, elem), (elem, box(page, elem))
        page.screenshot(path=str(shots / "presenter.png"))
        # every step's figure, drawn at the presenter's text scale, reads at >= 16 px at the size the page
        # shows it (its smallest text in the picture's pixels, times the picture's scale on screen)
        for i in range(len(walk)):
            if i:
                page.locator("#walk-next").click()
            page.wait_for_function(f"document.querySelector('#walk-title').innerText.includes('{i + 1} of')")
            page.wait_for_timeout(400)
            wait_loaded(page, "#walk-picture img")
            step = walk.step(i)
            size = page.evaluate("() => { const i = document.querySelector('#walk-picture img'); "
                                 "return [i.naturalWidth, i.naturalHeight]; }")
            assert list(step.picture(0, WALK_TEXT).size) == size, (step.title, size)  # the same picture
            shown = step.min_text_px(0, WALK_TEXT) * displayed_scale(page, "#walk-picture img")
            assert shown >= 16, (step.title, shown)
            for elem in ("#overlay img", "#walk-picture img", "#status"):
                assert on_screen(page, elem), (step.title, elem, box(page, elem))
            if step.frames > 1:
                page.screenshot(path=str(shots / "presenter_replay.png"))
        assert box(page, "#overlay img")["scroll"] == 0


@pytest.mark.parametrize("size", SIZES)
def test_typed_values_are_clamped_and_quick_edits_run_once(browser, size):
    with page_at(browser, *SIZES[size]) as page:
        tap_example(page)
        k = page.get_by_label("number input for Number of clusters k").first

        def out_of_range():
            k.fill("11")
            k.press("Enter")

        sent = segment_requests(page, out_of_range)
        assert len(sent) == 1 and sent[0][3] == 10, sent  # k is the image, backbone, custom, then k
        assert k.input_value() == "10"
        page.wait_for_function("document.querySelector('#status').innerText.includes('segment')")
        no_error(page)

        def six_quick_edits():
            for v in "345678":
                k.fill(v)
                k.press("Enter")
                page.wait_for_timeout(120)

        sent = segment_requests(page, six_quick_edits, settle_ms=3000)
        assert [d[3] for d in sent] == [8], sent  # only the last edit ran


def overlay_pixel(page, fx: float, fy: float) -> list[int]:
    return page.evaluate("""([fx, fy]) => { const i = document.querySelector('#overlay img');
        const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(i, 0, 0);
        const d = g.getImageData(Math.floor(fx * c.width), Math.floor(fy * c.height), 1, 1).data;
        return [d[0], d[1], d[2]]; }""", [fx, fy])


def click_overlay(page, fx: float, fy: float) -> None:
    x, y = page.evaluate("""([fx, fy]) => { const i = document.querySelector('#overlay img'),
        b = i.getBoundingClientRect(), r = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight, 1);
        const w = i.naturalWidth * r, h = i.naturalHeight * r;
        return [b.left + (b.width - w) / 2 + fx * w, b.top + (b.height - h) / 2 + fy * h]; }""", [fx, fy])
    page.mouse.click(x, y)


@pytest.mark.parametrize("size", SIZES)
def test_overlay_click_marks_the_point_and_its_segment(browser, size):
    import numpy as np

    with page_at(browser, *SIZES[size]) as page:
        tap_example(page)
        page.locator("#overlay img").scroll_into_view_if_needed()
        name = page.locator("#overlay img").get_attribute("src")
        assert "cat_overlay_ncut-k2" in name, name  # downloads as cat_overlay_…png, not image.png
        # the foreground and background pixels nearest the centre, from the same segmentation made here (the
        # picture's corners are under its label and buttons)
        fgmask = page_result()[1].seg.foreground_mask
        h, w = fgmask.shape
        ys, xs = np.mgrid[:h, :w]
        far = (ys - h / 2) ** 2 + (xs - w / 2) ** 2
        fg, bg = [(float(xs.flat[i] + 0.5) / w, float(ys.flat[i] + 0.5) / h)
                  for i in (np.argmin(np.where(fgmask, far, np.inf)), np.argmin(np.where(fgmask, np.inf, far)))]
        before = overlay_pixel(page, *bg)
        click_overlay(page, *fg)
        page.wait_for_function(f"document.querySelector('#overlay img').getAttribute('src') !== {name!r}")
        wait_loaded(page, "#overlay img")
        page.wait_for_timeout(300)
        after = overlay_pixel(page, *bg)
        assert sum(after) < 0.6 * sum(before), (before, after)  # the other segment is dimmed
        ring = page.evaluate("""([fx, fy]) => { const i = document.querySelector('#overlay img');
            const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(i, 0, 0); const r = Math.max(6, Math.round(Math.max(c.width,
            c.height) / 40)); const x = Math.floor(fx * c.width), y = Math.floor(fy * c.height);
            const d = g.getImageData(x - 2 * r, y - 1, 4 * r, 3).data; let n = 0;
            for (let j = 0; j < d.length; j += 4) if (d[j] > 240 && d[j + 1] > 240 && d[j + 2] > 240) n++;
            return n; }""", fg)
        assert ring > 0  # the cross-hair's white strokes at the clicked point


@pytest.mark.parametrize("size", NORMAL_SIZES)
def test_pin_compare_and_sweep(browser, shots, size):
    with page_at(browser, *NORMAL_SIZES[size]) as page:
        tap_example(page)
        page.locator("#pin-btn").click()
        page.wait_for_function("document.querySelector('#pair-caption').innerText.includes('Pinned')")
        k = page.get_by_label("number input for Number of clusters k").first
        k.fill("3")
        k.press("Enter")
        wait_loaded(page, "#compare-pair img")
        assert "2 → 3" in page.locator("#pair-caption").inner_text()
        page.locator("#sweep-btn").click()
        wait_loaded(page, "#sweep img")
        page.wait_for_function("document.querySelector('#sweep-caption').innerText.includes('→')")
        caption = page.locator("#sweep-caption").inner_text()
        assert all(f"{v} →" in caption for v in (2, 3, 4, 5, 6)), caption
        assert "sweep-k" in page.locator("#sweep-file").inner_text()
        if size == "laptop":
            page.locator("#compare-panel").screenshot(path=str(shots / "compare.png"))


#: The sweep's choices drawn on the page: the visible radio buttons' labels.
SWEEP_OFFERED = """Array.from(document.querySelectorAll('#sweep-param input[type=radio]'))
    .filter(i => { const b = i.closest('label').getBoundingClientRect(); return b.width > 0 && b.height > 0; })
    .map(i => i.closest('label').innerText.trim())"""


@pytest.mark.parametrize("size", ("laptop", "phone"))
def test_the_sweep_offers_only_what_can_run(browser, shots, size):
    with page_at(browser, *SIZES[size]) as page:  # no error toast at the end (page_at)
        tap_example(page)  # the colour backbone (no layers), NCut (no α)
        page.wait_for_function(f"{SWEEP_OFFERED}.length > 0")
        assert page.evaluate(SWEEP_OFFERED) == ["k"]
        page.locator(".setting-loss").get_by_text("CC", exact=True).click()  # a CC result: α applies
        page.wait_for_function(f"{SWEEP_OFFERED}.includes('α (CC)')")
        assert page.evaluate(SWEEP_OFFERED) == ["k", "α (CC)"]
        page.locator("#sweep-param").get_by_text("α (CC)").click()
        page.locator("#sweep-btn").click()
        page.wait_for_function("document.querySelector('#sweep-caption').innerText.includes('Segments per α')")
        page.locator("#sweep-param").scroll_into_view_if_needed()
        page.locator("#compare-panel").screenshot(path=str(shots / f"sweep_choices_{size}.png"))
        page.locator(".setting-loss").get_by_text("NCut", exact=True).click()  # back to NCut: α goes, k is chosen
        page.wait_for_function(f"!{SWEEP_OFFERED}.includes('α (CC)')")
        assert page.locator("#sweep-param input[value='k']").is_checked()


@pytest.mark.parametrize("size", SIZES)
def test_walkthrough_steps_and_keyboard(browser, shots, size):
    with page_at(browser, *SIZES[size]) as page:
        tap_example(page)
        if size != "presenter":  # presenter mode shows it from the start
            page.locator("#walk-start").click()
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('1 of 5')")
        assert page.locator("#walk-col").is_visible()
        page.locator("body").click(position={"x": 5, "y": 5})  # focus out of any field
        page.keyboard.press("n")
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('2 of 5')")
        page.keyboard.press("PageDown")
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('3 of 5')")
        wait_loaded(page, "#walk-picture img")
        first = page.locator("#walk-picture img").get_attribute("src")
        page.keyboard.press("ArrowRight")  # the replay's next snapshot
        page.wait_for_function(f"document.querySelector('#walk-picture img').getAttribute('src') !== {first!r}")
        assert "3 of 5" in page.locator("#walk-title").inner_text()
        page.keyboard.press("p")
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('2 of 5')")
        if size == "laptop":
            page.locator("#walk-col").screenshot(path=str(shots / "walkthrough.png"))
        sent = segment_requests(page, lambda: page.keyboard.press("4"))  # 4: k = 4, one run
        assert [d[3] for d in sent] == [4], sent
        page.keyboard.press("f")
        page.wait_for_function("document.fullscreenElement && document.fullscreenElement.id === 'overlay'")
        page.wait_for_timeout(300)
        drawn = page.evaluate("""() => { const i = document.querySelector('#overlay img');
            const b = i.getBoundingClientRect();
            let r = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight);  // object-fit: contain
            if (getComputedStyle(i).objectFit === 'scale-down') r = Math.min(r, 1);  // never enlarged
            return [r * i.naturalWidth, r * i.naturalHeight, window.innerWidth, window.innerHeight]; }""")
        assert drawn[0] >= drawn[2] - 2 or drawn[1] >= drawn[3] - 2, drawn  # F enlarges even a small overlay
        page.keyboard.press("f")
        page.wait_for_function("!document.fullscreenElement")


#: The slides of every result, of its explanation and of its walkthrough (the affinity, then each step).
SLIDES = ("overlay", "mask", "cutout", "soft", "loss", "comparison", "pca", "affinity", "step1-features",
          "step2-graph", "step3-training", "step4-argmax", "step5-refinement")


@pytest.mark.parametrize("size", NORMAL_SIZES)
def test_slides_download_every_figure(browser, shots, size):
    import io
    import re
    import zipfile

    from PIL import Image

    with page_at(browser, *NORMAL_SIZES[size]) as page:
        tap_example(page)
        clicked = size == "laptop"  # a patch chosen on the overlay first; elsewhere none
        page.wait_for_function("document.querySelector('#affinity-caption').innerText.includes('Patch (row')")
        if clicked:
            before = page.locator("#affinity-caption").inner_text()
            click_overlay(page, 0.2, 0.3)
            first = re.search(r"Patch \(row \d+, col \d+\)", before).group(0)
            page.wait_for_function(f"(m => m && m[0] !== {first!r})(document.querySelector('#affinity-caption')"
                                   ".innerText.match(/Patch \\(row \\d+, col \\d+\\)/))")  # the clicked patch
        patch = re.search(r"Patch \(row \d+, col \d+\)", page.locator("#affinity-caption").inner_text()).group(0)
        page.locator("#slides-panel").get_by_text("For slides").click()
        page.locator("#slides-btn").click()
        page.wait_for_function("document.querySelector('#slides-files').innerText.includes('.zip')")
        names = page.locator("#slides-files").inner_text()
        for part in (*(f"cat_{s}_ncut-k2" for s in SLIDES), "cat_replay", ".gif", ".mp4", "cat_slides"):
            assert part in names, (part, names)
        page.locator("#slides-files").scroll_into_view_if_needed()
        page.locator("#slides-panel").screenshot(path=str(shots / f"slides_{size}.png"))
        href = page.locator("#slides-files a[href*='.zip']").first.get_attribute("href")
        archive = zipfile.ZipFile(io.BytesIO(page.request.get(href).body()))
        readme = archive.read("README.txt").decode()
        affinity = readme.split("words in full:", 1)[1].split("cat_affinity_", 1)[1].split("\n\n", 1)[0]
        which = "the patch you clicked" if clicked else "the patch at the centre of the foreground (no patch was"
        assert which in affinity and patch in affinity, (which, patch, affinity)  # the one on screen
        gif = next(n for n in archive.namelist() if n.endswith(".gif"))
        with Image.open(archive.open(gif)) as replay:
            assert replay.width >= 1600, replay.size
        if clicked:
            slide = next(n for n in archive.namelist() if n.startswith("cat_affinity_"))
            (shots / "slide_affinity.png").write_bytes(archive.read(slide))


def test_video_example_runs_on_click(browser):
    with page_at(browser, 1400, 900) as page:
        page.get_by_role("tab", name="Video").click()
        page.locator("#video-input").wait_for()
        page.locator("button.gallery-item:visible").first.click()
        page.wait_for_function("document.querySelector('#video-status').innerText.includes('frames')")
        assert "th frame" not in page.locator("#video-status").inner_text()
