"""What the screen shows at the sizes a teacher uses (issue #32), in real Chromium: presenter mode fits a
1280×720 projector without scrolling and still says what runs (the colour fallback, the backbone) and
reaches Undo and Reset; no figure's title sits under Gradio's label; a phone explains the settings.

The test server has no DINO weights, so it runs the colour backbone with its fallback notice
(tests/app_server.py): exactly the case where hiding the notice made the room read colour-only segments
as "a photo cut into its parts"."""

from __future__ import annotations

import pytest
from app_server import CHROMIUM
from test_lesson_browser import box, on_screen, open_page, tap_example, wait_loaded

pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./dev installs it)")]




def _shown(page, selector: str) -> bool:
    return page.evaluate(f"""() => {{ const e = document.querySelector('{selector}');
        if (!e) return false; const b = e.getBoundingClientRect(), s = getComputedStyle(e);
        return b.width > 0 && b.height > 0 && s.display !== 'none' && s.visibility !== 'hidden'; }}""")


def test_presenter_mode_fits_the_projector_says_what_runs_and_reaches_undo(browser):
    page = open_page(browser, 1280, 720, "?presenter=1")
    try:
        tap_example(page)
        page.wait_for_timeout(1500)  # the columns are fitted to the screen every 0.7 s
        assert page.evaluate("document.documentElement.scrollHeight") <= 720 + 1  # no page scroll
        notice = page.locator("#notice").inner_text()
        assert "colour backbone" in notice and on_screen(page, "#notice")  # the fallback, said to the room
        assert not _shown(page, "#notice details")  # the short form: the why and how stay off the projector
        status = page.locator("#status").inner_text()
        assert "backbone" in status and "color" in status, status  # what runs, under the segment count
        for elem in ("#undo-btn", "#reset-btn", "#overlay img", "#status"):
            assert on_screen(page, elem), (elem, box(page, elem))
        for name in ("k", "loss", "stages"):  # the settings a lecture needs: in the settings column
            assert _shown(page, f"#image-settings .setting-{name}"), name
        for name in ("layer", "facet", "refine"):  # the others wait for normal mode
            assert not _shown(page, f"#image-settings .setting-{name}"), name
        stages = page.locator("#image-settings .setting-stages")
        stages.scroll_into_view_if_needed()
        assert on_screen(page, "#image-settings .setting-stages")  # reached inside its column
        assert page.evaluate("window.scrollY") == 0
    finally:
        page.close()


@pytest.mark.parametrize("size", [(1400, 900, ""), (1280, 720, "?presenter=1"), (390, 844, "")])
def test_no_figure_title_sits_under_a_label(browser, size):
    """Gradio draws a picture's label (and its icons) over the picture's top; the figures' titles are there,
    so every figure picture starts below its label."""
    page = open_page(browser, *size)
    try:
        tap_example(page)
        pictures = ["#walk-picture"] if "presenter" in size[2] else ["#soft-maps", "#affinity"]
        if "presenter" not in size[2]:
            page.locator("#walk-start").click()
            pictures.append("#walk-picture")
        for sel in pictures:
            wait_loaded(page, f"{sel} img")
            gap = page.evaluate(f"""() => {{ const block = document.querySelector('{sel}');
                const label = block.querySelector('label, [data-testid=block-label]');
                const img = block.querySelector('img');
                if (!label) return 1e9;
                return img.getBoundingClientRect().top - label.getBoundingClientRect().bottom; }}""")
            assert gap >= -1, (sel, size, gap)
    finally:
        page.close()


@pytest.mark.parametrize("size", [(1400, 900), (390, 844)])
def test_a_clicked_patchs_affinities_come_on_screen(browser, size):
    """The affinity picture is thousands of pixels below the overlay: after a click in *show its affinities*
    mode it is brought on screen, showing the clicked patch (its caption names the patch)."""
    from test_lesson_browser import click_overlay

    page = open_page(browser, *size)
    try:
        tap_example(page)
        page.locator("#overlay img").scroll_into_view_if_needed()
        before = page.locator("#affinity-caption").inner_text()
        click_overlay(page, 0.2, 0.3)
        page.wait_for_function(f"document.querySelector('#affinity-caption').innerText !== {before!r}")
        page.wait_for_timeout(800)  # no scrolling here: the page must have brought it on screen itself
        b = box(page, "#affinity img")
        assert b["top"] < b["vh"] and b["bottom"] > 0, b  # on screen
    finally:
        page.close()


def test_a_phone_explains_the_settings_shows_a_readable_sweep_and_live_result_under_the_camera(browser):
    page = open_page(browser, 390, 844)
    try:
        tap_example(page)
        helps = page.evaluate("""() => [...document.querySelectorAll('#image-settings .info-text')]
            .filter(e => e.getBoundingClientRect().height > 0).map(e => e.innerText)""")
        assert any("NCut" in h or "segments" in h for h in helps), helps  # the settings keep their help
        page.locator("#sweep-btn").click()
        page.wait_for_function("document.querySelector('#sweep-caption').innerText.includes('→')")
        page.locator("#sweep").scroll_into_view_if_needed()
        page.wait_for_function("(() => { const i = document.querySelector('#sweep img'); "
                               "return i && i.complete && i.naturalWidth > 0; })()")
        drawn = page.evaluate("""() => { const i = document.querySelector('#sweep img');
            return [i.getBoundingClientRect().width, i.getBoundingClientRect().left,
                    i.closest('.image-frame').getBoundingClientRect().left]; }""")
        assert drawn[0] >= 1000 and drawn[1] >= drawn[2] - 1, drawn  # wide, from its left edge (scrolls sideways)
        page.get_by_role("tab", name="Live").click()
        page.locator("#live-camera").wait_for()
        camera, result = box(page, "#live-camera"), box(page, "#live-overlay")
        assert 0 <= result["top"] - camera["bottom"] < 100, (camera, result)  # the result right under the camera
    finally:
        page.close()


@pytest.mark.parametrize("size", [(1400, 900), (390, 844)])
def test_step_through_brings_the_walkthrough_on_screen(browser, size):
    page = open_page(browser, *size)
    try:
        tap_example(page)
        page.locator("#walk-start").scroll_into_view_if_needed()
        page.locator("#walk-start").click()
        page.wait_for_function("document.querySelector('#walk-title') && "
                               "document.querySelector('#walk-title').innerText.includes('of')")
        page.wait_for_timeout(500)
        title = box(page, "#walk-title")
        assert 0 <= title["top"] < title["vh"], title  # the column's heading is on screen
    finally:
        page.close()


def test_presenter_mode_follows_a_click_and_pins_without_leaving(browser):
    """A click on the overlay opens the walkthrough's affinity step of the clicked patch (where the room is
    looking); *Pin to compare* under the overlay pins, and the next result is shown beside the pinned one in
    place of the overlay, on the one screen; *Unpin* brings the overlay back."""
    from test_lesson_browser import click_overlay

    page = open_page(browser, 1280, 720, "?presenter=1")
    try:
        tap_example(page)
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('1 of')")
        click_overlay(page, 0.3, 0.4)
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('2 of')")
        assert "the patch you clicked" in page.locator("#walk-caption").inner_text()
        assert on_screen(page, "#pin-here")
        page.locator("#pin-here").click()
        page.wait_for_function("document.querySelector('#pair-caption').innerText.includes('Pinned')")
        page.keyboard.press("3")  # k = 3
        page.wait_for_function("document.querySelector('#pair-caption').innerText.includes('→')")
        page.wait_for_function("(() => { const i = document.querySelector('#compare-pair img'); "
                               "return i && i.complete && i.naturalWidth > 0; })()")
        page.wait_for_timeout(800)
        assert on_screen(page, "#compare-pair img") and box(page, "#compare-pair img")["bottom"] - \
            box(page, "#compare-pair img")["top"] > 150
        assert not _shown(page, "#overlay") and on_screen(page, "#unpin-btn")
        assert page.evaluate("document.documentElement.scrollHeight") <= 720 + 1
        page.locator("#unpin-btn").click()
        page.wait_for_timeout(400)
        assert _shown(page, "#overlay") and not _shown(page, "#compare-panel")
    finally:
        page.close()


def test_lessons_follow_the_result_or_say_they_are_out_of_date(browser):
    """Outside presenter mode: an open walkthrough follows the next result (it kept saying k = 2 after k = 4);
    an explanation of an earlier result is marked out of date."""
    page = open_page(browser, 1400, 900)
    try:
        tap_example(page)
        page.locator("#walk-start").click()
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('1 of')")
        page.locator("#explain-btn").click()
        page.wait_for_function("document.querySelector('#compare-caption').innerText.length > 20")
        assert "Out of date" not in page.locator("#compare-caption").inner_text()
        page.locator("body").click(position={"x": 5, "y": 5})  # focus off any field: keys go to the page
        page.keyboard.press("4")  # k = 4
        page.wait_for_function("document.querySelector('#status').innerText.includes('4 segments') || "
                               "document.querySelector('#status').innerText.includes('k = 4')")
        page.wait_for_function("document.querySelector('#compare-caption').innerText.includes('Out of date')")
        assert "k=2" in page.locator("#compare-caption").inner_text()  # which result it explains
        page.locator("#walk-next").click()
        page.locator("#walk-next").click()  # step 3: the training, of the result now shown
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('3 of')")
        page.wait_for_timeout(500)
        walk = page.locator("#walk-title").inner_text() + page.locator("#walk-caption").inner_text()
        assert "k=2" not in walk.replace(" ", "") and "k=4" in walk.replace(" ", ""), walk
    finally:
        page.close()


def test_presenter_mode_keeps_the_overlay_large_beside_long_notes(browser):
    """CC with three stages adds two long notes: the status grew, and the overlay in the same column shrank to
    a thumbnail (about 158 x 127 px at 1280 x 720) with the last note cut off. The status now scrolls within
    about four lines and the overlay keeps its room."""
    page = open_page(browser, 1280, 720, "?presenter=1")
    try:
        tap_example(page, "astronaut.jpg")
        page.wait_for_timeout(1000)
        before = box(page, "#overlay img")
        for setting, choice in (("loss", "CC"), ("stages", "3:")):
            said = page.locator("#status").inner_text()
            page.locator(f"#image-settings .setting-{setting} label").filter(has_text=choice).click()
            page.wait_for_function("(said) => document.querySelector('#status').innerText !== said", arg=said)
        wait_loaded(page, "#overlay img")
        page.wait_for_timeout(1500)  # the columns are fitted to the screen every 0.7 s
        status, overlay = box(page, "#status"), box(page, "#overlay img")
        assert status["bottom"] - status["top"] <= 100, status
        assert page.evaluate("(() => { const s = document.querySelector('#status'); "
                             "return s.scrollHeight > s.clientHeight + 4; })()")  # the rest scrolls
        assert overlay["bottom"] - overlay["top"] >= 0.8 * (before["bottom"] - before["top"]), (before, overlay)
        assert page.evaluate("document.documentElement.scrollHeight") <= 720 + 1
    finally:
        page.close()


def test_a_figures_buttons_sit_beside_its_label_not_over_its_title(browser):
    """Gradio draws an image's download / full-screen buttons over the picture's top right corner: in presenter
    mode they hid the end of the walkthrough figure's title ("… epoch 0 of 1"). They now sit above the
    picture, beside the label."""
    page = open_page(browser, 1280, 720, "?presenter=1")
    try:
        tap_example(page)
        for _ in range(2):
            page.locator("#walk-next").click()
            page.wait_for_timeout(800)
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('Training')")
        wait_loaded(page, "#walk-picture img")
        buttons, picture = box(page, "#walk-picture .icon-button-wrapper"), box(page, "#walk-picture img")
        assert buttons["bottom"] <= picture["top"] + 1, (buttons, picture)
        assert buttons["top"] >= box(page, "#walk-picture")["top"] - 1  # still inside its block
    finally:
        page.close()


@pytest.mark.parametrize("size", [(1400, 900), (390, 844)])
def test_the_walkthroughs_keyboard_help_is_not_shown_on_a_phone(browser, size):
    """A phone showed the walkthrough's keys (PageDown, F, 1-9): it has no keyboard."""
    page = open_page(browser, *size)
    try:
        tap_example(page)
        page.locator("#walk-start").click()
        wait_loaded(page, "#walk-picture img")
        assert _shown(page, "#walk-keys") == (size[0] > 640)
    finally:
        page.close()


def test_the_walkthrough_gets_the_widest_column_while_walking(browser):
    """At 1400 × 900 the walkthrough's column was the narrowest but one (395 px of 1190): its training figure's
    soft map was about 170 px wide. While walking it is now the widest column, its figures drawn larger."""
    page = open_page(browser, 1400, 900)
    try:
        tap_example(page)
        page.locator("#walk-start").click()
        wait_loaded(page, "#walk-picture img")
        widths = page.evaluate("""() => Object.fromEntries(['#settings-col', '#results-col', '#walk-col'].map(
            (s) => [s, document.querySelector(s).getBoundingClientRect().width]))""")
        assert widths["#walk-col"] > max(widths["#results-col"], widths["#settings-col"]) + 100, widths
    finally:
        page.close()
