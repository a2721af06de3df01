"""The page's own pieces without a browser: the overlay enlarged for its panel (and clicks on it mapped back),
the click mark, the named overlay file, the figures' text scale from the browser. Colour backbone, small
synthetic images."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from conftest import disc_image
from PIL import Image

from deepcut.demo import DemoSession
from deepcut.demo.layout import figure_text
from deepcut.demo.outputs import DISPLAY_SIDE, display_factor, for_display
from deepcut.demo.teach_view import TeachingHandlers
from deepcut.render.marks import draw_focus


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return DemoSession(default_backbone="color", output_dir=tmp_path_factory.mktemp("out"))


def test_small_pictures_are_enlarged_for_their_panel_large_ones_kept():
    small, large = Image.new("RGB", (451, 300)), Image.new("RGB", (1200, 800))
    assert display_factor((300, 451)) == pytest.approx(DISPLAY_SIDE / 451)
    assert for_display(small).size == (DISPLAY_SIDE, round(300 * DISPLAY_SIDE / 451))
    assert for_display(large) is large and display_factor((800, 1200)) == 1.0


def test_a_click_on_the_enlarged_overlay_acts_on_the_segmented_pixel(session, tmp_path):
    path = tmp_path / "disc.png"
    Image.fromarray(disc_image(96)).save(path)
    result = session.segment(str(path), resolution=96)
    key = session.results.add(result)
    shown = Image.open(session.overlay_file(result, result.overlay(), "disc.png", display=True))
    assert Image.open(session.overlay_file(result, result.overlay(), "disc.png")).size == (96, 96)  # the API's
    f = display_factor(result.seg.image.shape)
    assert f > 1 and shown.size == (round(96 * f), round(96 * f))
    assert Path(session.overlay_file(result, result.overlay(), "disc.png")).name.startswith("disc_overlay_ncut-k2")
    labels = result.seg.labels
    ys, xs = np.nonzero(labels != labels[48, 48])  # a pixel of the segment the centre is not in
    x, y = int(xs[0]), int(ys[0])
    handlers = TeachingHandlers(session)
    evt = gr.SelectData(None, {"index": [x * f + f / 2, y * f + f / 2], "value": None})
    out = handlers.click_overlay(key, "pick", str(path), 0.5, evt)
    picked = session.results.get(out[-1])
    assert "Picked segment" in picked.status_markdown()
    assert picked.seg.foreground_mask[y, x] and not picked.seg.foreground_mask[48, 48]


def test_the_click_mark_dims_the_rest_and_outlines_the_segment():
    picture = Image.new("RGB", (80, 60), (200, 200, 200))
    segment = np.zeros((60, 80), bool)
    segment[10:50, 10:40] = True
    marked = np.asarray(draw_focus(picture, segment, (25, 30)))
    assert tuple(marked[5, 70]) == (90, 90, 90)  # outside: 45 %
    assert tuple(marked[10, 20]) == (255, 255, 255)  # the segment's edge, white
    assert tuple(marked[30, 25]) == (200, 200, 200)  # the point itself stays visible inside its ring
    for y, x in ((30, 31), (24, 25), (30, 34), (30, 14)):  # the ring (radius 6) and the cross-hair's strokes
        assert tuple(marked[y, x]) == (255, 255, 255), (y, x)
    with pytest.raises(ValueError):
        draw_focus(picture, segment[:10], (1, 1))


@pytest.mark.parametrize(("sent", "used"), [(None, 1.0), ("x", 1.0), (0.2, 1.0), (1.8, 1.8), (2.4, 2.4), (50, 4.0)])
def test_the_figures_text_scale_from_the_browser_is_kept_sane(sent, used):
    assert figure_text(sent) == used
