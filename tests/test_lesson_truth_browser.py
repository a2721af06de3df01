"""A lesson that stays true, in a real browser (Debian's headless Chromium): what the method did is on screen.

The test server segments the cat (colour backbone, ``MAX_SIDE``, ``RESOLUTION``); at k = 3 NCut's first
epochs leave a segment empty and it restarts from the spectral cut. The status line, *Explain this result*
and the walkthrough's training step must say so in words the visitor can see.
"""

from __future__ import annotations

import pytest
from test_lesson_browser import CHROMIUM, box, page_at, tap_example

pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./dev installs it)")]

RESTART = "NCut restarted from the graph's spectral cut"



def visible_text_box(page, selector: str, words: str) -> dict:
    """The box of the first element under ``selector`` whose own text holds ``words`` (scrolled into view),
    with the viewport's size: ``{top, bottom, height, width, vh, vw}`` (height 0: not drawn)."""
    return page.evaluate("""([sel, words]) => {
        const el = [...document.querySelectorAll(sel + ' p, ' + sel + ' li')].find(e => e.innerText.includes(words));
        if (!el) return null;
        el.scrollIntoView({block: 'center'});
        const b = el.getBoundingClientRect(), s = getComputedStyle(el);
        return {top: b.top, bottom: b.bottom, height: b.height, width: b.width, vh: window.innerHeight,
                vw: window.innerWidth, hidden: s.visibility === 'hidden' || s.display === 'none'}; }""",
                         [selector, words])


def assert_drawn(page, selector: str, words: str) -> None:
    b = visible_text_box(page, selector, words)
    assert b is not None, (selector, page.locator(selector).inner_text())
    assert not b["hidden"] and b["height"] > 0 and b["width"] > 0, b
    assert 0 <= b["top"] and b["bottom"] <= b["vh"], b  # on screen once scrolled to


def test_the_restart_is_said_in_the_status_the_explanation_and_the_walkthrough(browser):
    with page_at(browser, 1400, 900) as page:
        tap_example(page)
        assert RESTART not in page.locator("#status").inner_text()  # k = 2: no restart, no words about one
        k = page.get_by_label("number input for Number of clusters k").first
        k.fill("3")
        k.press("Enter")
        page.wait_for_function(f"document.querySelector('#status').innerText.includes({RESTART!r})")
        status = page.locator("#status").inner_text()
        assert "ℹ️" in status and "epochs 11–20 of the loss plot" in status
        assert_drawn(page, "#status", RESTART)

        page.locator("#explain-btn").click()
        page.wait_for_function("document.querySelector('#compare-caption').innerText.includes('started from the')")
        assert_drawn(page, "#compare-caption", "The GNN started from the spectral cut here")

        page.locator("#walk-start").click()
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('1 of 5')")
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("n")
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('2 of 5')")
        page.keyboard.press("n")
        page.wait_for_function("document.querySelector('#walk-title').innerText.includes('3 of 5')")
        page.wait_for_function("document.querySelector('#walk-caption').innerText.includes('restart from the')")
        assert_drawn(page, "#walk-caption", "left a segment empty")
        assert box(page, "#walk-caption")["bottom"] > 0


def test_the_objects_scores_are_drawn_as_a_table(browser):
    with page_at(browser, 1400, 900) as page:
        tap_example(page)
        page.locator("#objects-panel").get_by_text("Several objects").first.click()
        page.locator("#objects-btn").click()
        page.wait_for_selector("#objects-status table", timeout=120_000)
        cells = page.evaluate("""() => { const t = document.querySelector('#objects-status table');
            t.scrollIntoView({block: 'center'}); const b = t.getBoundingClientRect();
            return {w: b.width, h: b.height, head: [...t.querySelectorAll('th')].map(c => c.innerText.trim()),
                    rows: t.querySelectorAll('tbody tr').length}; }""")
        assert cells["head"][:2] == ["#", "score"] and cells["rows"] >= 1, cells
        assert cells["w"] > 100 and cells["h"] > 20 * (cells["rows"] + 1), cells  # drawn, a line per row
        assert "| # | score |" not in page.locator("#objects-status").inner_text()  # no raw markdown left


def test_a_separate_after_a_join_says_only_what_it_did(browser):
    from test_browser import click_overlay_at, mask_points

    with page_at(browser, 1400, 900) as page:
        tap_example(page)
        page.wait_for_function("(() => { const i = document.querySelector('#mask img'); "
                               "return i && i.complete && i.naturalWidth > 0; })()")
        fg, bg = mask_points(page)
        for mode, n in (("join two points (click both)", 1), ("separate two points (click both)", 2)):
            page.get_by_label(mode).check()
            page.locator("#overlay img").scroll_into_view_if_needed()
            click_overlay_at(page, *fg)
            page.wait_for_function("document.querySelector('#status').innerText.includes('First point marked')")
            click_overlay_at(page, *bg)
            page.wait_for_function(f"document.querySelector('#status').innerText.includes('Correction {n}')")
        status = page.locator("#status").inner_text()
        line = next(t for t in status.split("\n") if "Correction 2" in t)
        assert line.startswith("ℹ️ Correction 2: separated"), status
        assert "joined" not in line and "already apart" not in line and "Correction 1" not in status, status
        assert_drawn(page, "#status", "Correction 2: separated")
        page.locator("#reset-btn").click()
        page.wait_for_function("document.querySelector('#status').innerText.includes('Corrections reset')")
        assert "Correction 2" not in page.locator("#status").inner_text()
