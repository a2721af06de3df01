"""Every word of the teaching figures can be read: no title runs off the picture or over another, at the text
scales the page uses (1 on a laptop, 1.8 on a phone, 2.4 on a projector), with the longest settings a
visitor can make (CC with k ≤ 10, three stages, a backbone given as a long folder path) — issue #32: the
compare pair's "now: 10 segments" ran over "k≤10", a long backbone path cut the sweep's title.
``render.style.text_clashes`` measures the drawn text boxes; ``figure_image`` fits the titles first."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deepcut import DeepCut
from deepcut.lessons.compare import pair_figure
from deepcut.lessons.explain import explain
from deepcut.lessons.result import LessonResult
from deepcut.lessons.sweep import sweep
from deepcut.lessons.walkthrough import Walkthrough
from deepcut.lessons.words import backbone_label, settings_diff
from deepcut.render.figures import figure_image
from deepcut.render.style import text_clashes

LONG = "/home/teacher/models/my-own-weights/dino-vits8-finetuned-on-my-lecture-photos"
SCALES = (1.0, 1.8, 2.4)


@pytest.fixture(scope="module")
def results():
    dc = DeepCut("color", cache_size=2)
    image = np.asarray(Image.open("assets/cat.jpg").convert("RGB"))
    plain = LessonResult.of(dc.store, dc.segment(image, k=2, resolution=112))
    busy = LessonResult.of(dc.store, dc.segment(image, loss="cc", k=10, stages=3, resolution=112), backbone=LONG)
    return dc, plain, busy


def test_a_folder_path_is_shown_by_its_end():
    assert backbone_label(LONG).startswith("…/dino-vits8") and len(backbone_label(LONG)) <= 28
    assert backbone_label("dino_vits8") == "dino_vits8" and backbone_label("facebook/dinov2-small") == \
        "facebook/dinov2-small"
    assert len(backbone_label("x" * 100)) == 28


@pytest.mark.parametrize("text", SCALES)
def test_the_compare_pair_reads_with_the_longest_settings(results, text):
    _, plain, busy = results
    fig = pair_figure(plain, busy, text=text)
    assert text_clashes(fig) == []
    words = " ".join(t.get_text() for t in fig.findobj(lambda o: type(o).__name__ == "Text"))
    assert "k≤10" in words.replace("\n", " ") and LONG not in words  # the path by its end, not whole
    assert "backbone" in settings_diff(plain, busy)


@pytest.mark.parametrize("text", SCALES)
def test_the_sweep_strip_reads_with_a_long_backbone_path(results, text):
    dc, _, busy = results
    fig = sweep(dc.store, busy, "k", [2, 4, 6, 8, 10]).figure(text=text)
    assert text_clashes(fig) == []


@pytest.mark.parametrize("text", SCALES)
def test_the_explanation_and_every_walkthrough_frame_read(results, text):
    dc, _, busy = results
    ex = explain(dc.store, busy.seg)
    walk = Walkthrough(dc.store, busy, ex)
    figures = [ex_figure for ex_figure in (_comparison(ex, text),) if ex_figure is not None]
    for i in range(len(walk)):
        step = walk.step(i)
        if step.figure is not None:
            figures += [step.figure(f, text) for f in sorted({0, step.frames // 2, step.frames - 1})]
    assert figures
    for fig in figures:
        assert text_clashes(fig) == [], fig.get_suptitle()
    figure_image(figures[-1])  # drawn as the page draws it


def _comparison(ex, text):
    from deepcut.render.teaching import comparison_figure

    return comparison_figure(ex.image, ex.record.grid, ex.comparison, text) if hasattr(ex.record, "grid") else None


@pytest.mark.parametrize("text", SCALES)
def test_a_loss_in_the_millions_keeps_its_axis_words_apart(text):
    """CC's loss on a larger graph runs into the millions: matplotlib wrote "1e7" above the axis, over the
    "loss" title of the walkthrough's training frame. The ticks now carry the values (``32M``)."""
    from deepcut.render.figures import loss_figure
    from deepcut.render.teaching import training_frame_figure

    dc = DeepCut("color")
    seg = dc.segment(np.asarray(Image.open("assets/astronaut.jpg").convert("RGB")), loss="cc", stages=3,
                     resolution=224)
    ex = explain(dc.store, seg)
    assert max(abs(v) for v in seg.losses[0]) >= 1e6
    for fig in (training_frame_figure(ex.image, ex.record, 3, text=text), loss_figure(seg.losses, text=text)):
        assert text_clashes(fig) == []
        assert all(not ax.yaxis.get_offset_text().get_text() for ax in fig.axes)
