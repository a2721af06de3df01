"""The demo says only true things (#20): the status line's words on the number of segments, CC's α and
bound, the epoch cap; the soft maps' roles; and the figures' text size (colour backbone, the example
images of assets/, no server)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from conftest import REPO

from deepcut.demo import DemoSession
from deepcut.demo.limits import Limits
from deepcut.demo.teaching import explain
from deepcut.render.figures import figure_image, loss_figure, soft_maps_figure, soft_roles
from deepcut.render.style import COMPACT_TEXT, SMALLEST_PT, min_text_px, new_figure, pixel_size
from deepcut.render.teaching import comparison_figure, training_frame_figure
from deepcut.segmentation.notes import count_words, stage_counts

CAT, COFFEE = str(REPO / "assets" / "cat.jpg"), str(REPO / "assets" / "coffee.jpg")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return DemoSession(default_backbone="color", output_dir=tmp_path_factory.mktemp("out"))


def patch_count(result) -> int:
    return int(np.unique(result.seg.patch_labels).size)


# -- 1. NCut delivering fewer than k -----------------------------------------------------------------
def test_ncut_says_how_many_of_k_it_found_and_why(tmp_path):
    """Under a cap of 100 epochs, 100 epochs leave no room for NCut's second try from the spectral cut
    (2 x 100 + 20): the cat at k = 8 ends with fewer segments, and the status says how many, of what, and
    with how many epochs the second try would run."""
    capped = DemoSession(default_backbone="color", output_dir=tmp_path, limits=Limits(max_epochs=100))
    r = capped.segment(CAT, k=8, epochs=(100, 100, 10), resolution=160, settle=False)  # all 100 epochs
    found = patch_count(r)
    assert found < 8
    status = r.status_markdown()
    assert f"NCut found {found} of the k = 8 segments asked for in its 100 epochs" in status
    assert "with at most 40 epochs in this stage it would be tried" in status  # 40 + 20 + 40 = 100
    again = capped.segment(CAT, k=8, epochs=(40, 100, 10), resolution=160)  # the second try fits: k segments
    assert patch_count(again) == 8 and "NCut found" not in again.status_markdown()
    public = DemoSession(default_backbone="color", output_dir=tmp_path, limits=Limits.public_defaults())
    assert public.limits.max_epochs == 2 * 100 + 20  # a public server's cap leaves room for it at 100 epochs
    parts = public.segment(CAT, k=8, stages=2, epochs=(10, 100, 10), resolution=160)  # stage 2's default epochs
    assert stage_counts(parts.seg)[0][2:] == (8, 8) and "NCut found" not in parts.status_markdown()
    # where no stage note says why, the status still says it, in its own words
    quiet = dataclasses.replace(r, seg=dataclasses.replace(r.seg, notes=[]), notices=[])
    assert count_words(quiet.seg) == [f"NCut found {found} of the k = 8 segments asked for: training left "
                                      f"{8 - found} of its clusters without a patch."]


def test_stage_counts_follow_the_stages(session):
    one = session.segment(CAT, k=4, resolution=96)
    assert stage_counts(one.seg) == [(1, "segments", 4, patch_count(one))]
    three = session.segment(CAT, k=3, stages=3, bg_k=2, resolution=96)
    fg = np.isin(three.seg.patch_labels, three.seg.foreground_labels)
    assert stage_counts(three.seg) == [(2, "foreground parts", 3, np.unique(three.seg.patch_labels[fg]).size),
                                       (3, "background parts", 2, np.unique(three.seg.patch_labels[~fg]).size)]


# -- 2. CC at α = 1 ----------------------------------------------------------------------------------
def test_cc_at_alpha_one_says_every_pair_repels_and_the_help_is_true(session):
    """α = 1 makes A = W − max(W)/α ≤ 0 everywhere: one segment, untrained, for that reason (not 'constant
    features'); just above 1 CC fills all k; a larger α gives fewer segments, as the help says."""
    r = session.segment(CAT, loss="cc", alpha=1.0, resolution=160)
    status = r.status_markdown()
    assert r.seg.num_segments == 1 and r.seg.losses == [[]]
    assert "CC at α = 1 makes every pair of patches repel" in status and "raise α above 1" in status
    assert "constant" not in status
    counts = {a: patch_count(session.segment(CAT, loss="cc", alpha=a, k=10, resolution=160)) for a in (1.05, 3, 10)}
    assert counts[1.05] == 10 and counts[1.05] > counts[3] > counts[10]
    from deepcut.demo.controls import INFO  # the words under the α slider

    assert "at α = 1 no pair attracts and the result is one segment" in INFO["alpha"]
    assert "CC fills all k segments" in INFO["alpha"] and "fewer, larger segments" in INFO["alpha"]


# -- 3. CC at its bound ---------------------------------------------------------------------------------
def test_cc_at_its_bound_says_the_bound_may_have_set_the_number(session):
    at_bound = session.segment(COFFEE, loss="cc", alpha=3.0, k=6, resolution=224)
    assert patch_count(at_bound) == 6
    assert "CC used all 6 segments its bound allows (k = 6)" in at_bound.status_markdown()
    below = session.segment(COFFEE, loss="cc", alpha=5.0, k=6, resolution=224)  # raise α: fewer, as advised
    assert patch_count(below) < 6 and "CC used all" not in below.status_markdown()
    parts = session.segment(CAT, loss="cc", k=2, stages=2, resolution=96)  # stage 2's bound, named as such
    assert stage_counts(parts.seg) == [(2, "foreground parts", 2, 2)]
    assert "CC used all 2 foreground parts its bound allows in stage 2 (k = 2)" in parts.status_markdown()
    fewer = session.segment(CAT, loss="cc", k=3, stages=2, resolution=96)  # 2 of at most 3: CC chose
    assert stage_counts(fewer.seg)[0][3] < 3 and "CC used all" not in fewer.status_markdown()


def test_a_bound_at_the_top_of_its_range_is_not_to_be_raised(session):
    """The note told the visitor to raise k at k = 10, the top of the page's slider, and to raise Background
    parts, which the page did not have: at the top only α is advised, and the Image tab has the control."""
    top = session.segment(str(REPO / "assets" / "astronaut.jpg"), loss="cc", alpha=2.0, k=10, resolution=160)
    [said] = [n for n in top.seg.notes if n.startswith("CC used all 10 segments")]
    assert "raise k" not in said and "raise α" in said
    back = session.segment(CAT, loss="cc", alpha=1.05, stages=3, bg_k=2, resolution=96)
    assert (3, "background parts", 2, 2) in stage_counts(back.seg)
    assert "raise Background parts to let CC find more" in back.status_markdown()
    pytest.importorskip("gradio")
    import app

    demo = app.build_demo(DemoSession("color"), 96)
    fn = next(f for f in demo.fns.values() if f.api_name == "segment")
    [slider] = [b for b in fn.inputs if getattr(b, "label", None) == "Background parts"]
    assert not slider.visible and (slider.minimum, slider.maximum) == (2, 10)  # shown with 3 stages
    three = app.IMAGE_API.index("bg_k")
    assert session.segment(CAT, stages=3, bg_k=3, resolution=96).seg.config.bg_k == 3 and three == len(
        app.IMAGE_API) - 1  # the API's last input: callers by position are unchanged


# -- 4. the epoch cap ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stages, k", [(1, 10), (2, 8)])
def test_the_status_never_states_more_epochs_than_the_cap_it_trained_under(tmp_path, stages, k):
    cap = 40
    capped = DemoSession(default_backbone="color", output_dir=tmp_path, limits=Limits(max_epochs=cap))
    r = capped.segment(CAT, k=k, stages=stages, epochs=(100, 100, 100), resolution=160)
    assert r.seg.losses and max(len(stage) for stage in r.seg.losses) <= cap  # what was trained
    status = r.status_markdown()
    stated = [int(n) for n in re.findall(r"(\d+) (?:training )?epochs", status)]
    assert stated and max(stated) <= cap, status  # what is said
    assert f"{cap} training epochs per stage (every training rule included" in capped.limits.summary()


# -- 7. the soft maps' roles --------------------------------------------------------------------------
def test_soft_map_roles_are_what_the_stages_made(session):
    kway = session.segment(CAT, k=4, resolution=96)
    roles = {label: role for label, role, _ in soft_roles(kway.seg)}
    assert roles[0] == "border segment" and set(roles.values()) == {"border segment", "segment"}
    split = session.segment(CAT, k=2, resolution=96)  # one stage, k = 2: a foreground/background split
    assert {role for _, role, _ in soft_roles(split.seg)} == {"background", "foreground"}
    three = session.segment(CAT, k=3, stages=3, bg_k=2, resolution=96)
    assert {role for _, role, _ in soft_roles(three.seg)} == {"background part", "foreground part"}
    titles = [ax.get_title() for ax in soft_maps_figure(kway.seg).axes if ax.get_title()]
    assert titles and not any("ground" in t for t in titles)


# -- 9. the figures' text size ------------------------------------------------------------------------
def test_new_figure_keeps_pixels_and_scales_text():
    for text in (1.0, 1.5, 2.0):
        fig = new_figure(6.4, 3.0, text)
        fig.subplots().set_title("title", fontsize=10)
        assert pixel_size(fig) == (640, 300)
        assert min_text_px(fig) == pytest.approx(10 * 100 / 72 * text)
    with pytest.raises(ValueError):
        new_figure(6.4, 3.0, 0)


def test_every_figure_of_the_page_scales_its_text_and_keeps_its_size(session):
    r = session.segment(CAT, k=3, stages=3, resolution=128)
    ex = explain(session.model("color").model, r)
    figures = {
        "loss": lambda t: loss_figure(r.seg.losses, "ncut", [2, 3, 2], text=t),
        "soft maps": lambda t: soft_maps_figure(r.seg, text=t),
        "comparison": lambda t: comparison_figure(ex.image, ex.record.grid, ex.comparison, text=t),
        "replay": lambda t: training_frame_figure(ex.image, ex.record, 3, text=t),
    }
    below = COMPACT_TEXT - 0.05  # up to the compact forms: the same picture, larger text
    for name, make in figures.items():
        small, large = make(1.0), make(below)
        assert min_text_px(small) >= SMALLEST_PT * 100 / 72 - 1e-6, name  # no tiny font to begin with
        assert min_text_px(large) == pytest.approx(below * min_text_px(small), rel=0.02), name
        w1, h1 = figure_image(small).size
        w2, h2 = figure_image(large).size
        assert abs(w1 - w2) <= 2 and abs(h1 - h2) <= 2, name
        # from COMPACT_TEXT on (a phone, a projector): the compact form, never wider, text twice as large at 2
        compact = make(2.0)
        assert min_text_px(compact) == pytest.approx(2 * min_text_px(small), rel=0.02), name
        assert figure_image(compact).size[0] <= w1, name
    assert min_text_px(figures["loss"](1.5)) >= 16  # a projector's 16 px at text = 1.5
    assert figure_image(figures["replay"](2.0)).size[0] < figure_image(figures["replay"](1.0)).size[0]  # 2 panels


# -- the words live in the library ---------------------------------------------------------------------
def test_the_library_result_carries_the_status_words_and_the_page_shows_them_once(session):
    """``Segmentation.notes`` say what the status line says (#29): a script gets the same words as the
    page, and the page renders the library's notes instead of deriving them again."""
    from deepcut import DeepCut

    seg = DeepCut("color").segment(str(REPO / "assets" / "astronaut.jpg"), loss="cc", alpha=3)
    assert seg.num_segments == 10
    assert [n for n in seg.notes if n.startswith("CC used all 10 segments its bound allows (k = 10)")], seg.notes
    assert count_words(seg)[0] in seg.notes
    page = session.segment(COFFEE, loss="cc", alpha=3.0, k=6, resolution=224)
    words = count_words(page.seg)
    assert words and all(w in page.seg.notes for w in words)
    assert all(page.status_markdown().count(w) == 1 for w in words)


def test_a_correction_hides_the_plain_cuts_count_words_and_a_reset_brings_them_back(session):
    """A correction changes the number of segments on purpose: the plain cut's words on it leave the status
    while a correction holds, and come back with the plain cut."""
    from deepcut.demo import corrections as dcorr

    plain = session.segment(COFFEE, loss="cc", alpha=3.0, k=6, resolution=224)
    words = count_words(plain.seg)
    assert words and all(w in plain.status_markdown() for w in words)
    model = session.model("color").model
    h, w = plain.seg.labels.shape
    labels = plain.seg.labels
    ys, xs = np.nonzero(labels == labels[h // 2, w // 2])
    other = np.argwhere(labels != labels[h // 2, w // 2])[0]
    first = dcorr.click(model, plain, "join", float(xs[0]), float(ys[0]))
    joined = dcorr.click(model, first, "join", float(other[1]), float(other[0]))
    assert joined.corrections and not any(wd in joined.status_markdown() for wd in words)
    back = dcorr.reset(model, joined)
    assert all(back.status_markdown().count(wd) == 1 for wd in words)


def test_notes_name_the_step_that_acted_and_read_as_sentences():
    """A 1 x 1 image with refine="none" was told "The edge refinement left 1 segment …", and a settled restart
    read "the training settled of the restart after …"."""
    from deepcut import DeepCut
    from deepcut.clustering.settle import SETTLE, settled_words

    seg = DeepCut("color").segment(np.array([[[200, 10, 10]]], np.uint8), refine="none")
    said = [n for n in seg.notes if "of the patch grid's" in n]
    assert said and said[0].startswith("The upsampling to the image's size left 1 segment of the patch grid's")
    assert settled_words(45, 100, SETTLE, restart=True).startswith(
        "the training settled after 45 of the restart's 100 epochs: its labels")
    assert settled_words(45, 100, SETTLE).startswith("the training settled after 45 of its 100 epochs")
