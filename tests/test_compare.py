"""Compare (settings in words, two results side by side, one setting swept) and Step through
(deepcut.lessons.words, .compare, .sweep, .walkthrough; the page's sweep deepcut.demo.teaching): colour backbone,
small synthetic images."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import disc_image
from PIL import Image

from deepcut.demo import DemoSession
from deepcut.demo.errors import DemoError
from deepcut.demo.limits import Deadline
from deepcut.demo.teaching import Walkthrough, default_values, explain, sweep
from deepcut.lessons.compare import pair_figure, pair_picture
from deepcut.lessons.replay import TrainingRecord
from deepcut.lessons.sweep import DEFAULT_ALPHA_VALUES, MAX_SWEEP
from deepcut.lessons.words import settings_diff, settings_line
from deepcut.render.style import min_text_px

IMAGE = disc_image(96, two_tone=True, striped_bg=True)
SMALL = dict(resolution=128, epochs=(5, 20, 5))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return DemoSession(default_backbone="color", output_dir=tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def parts(session):
    """NCut, k=3 foreground parts, guided refinement."""
    return session.segment(IMAGE, k=3, stages=2, refine="guided", **SMALL)


@pytest.fixture(scope="module")
def cc(session):
    return session.segment(IMAGE, loss="cc", alpha=5, seed=2, **SMALL)


def with_config(result, depth: int | None = None, backbone: str | None = None, **fields):
    """``result`` as if computed with other settings (for the wording only)."""
    seg = dataclasses.replace(result.seg, config=result.seg.config.replace(**fields))
    return dataclasses.replace(result, seg=seg, depth=depth or result.depth, backbone=backbone or result.backbone)


# -- settings in words ---------------------------------------------------------------------------------
def test_settings_line_names_the_settings(parts, cc):
    assert settings_line(parts) == "NCut k=3 · 2 stages · color · 128 px · epochs 5/20 · seed 0 · guided"
    assert settings_line(cc) == "CC α=5 k≤10 · 1 stage · color · 128 px · epochs 5 · seed 2"
    vit = with_config(parts, depth=12, backbone="dino_vits8", epochs=(10, 100, 10), stages=3, bg_k=2)
    assert settings_line(vit) == ("NCut k=3 · 3 stages (2 background parts) · dino_vits8 layer 11 key · 128 px · "
                                  "seed 0 · guided")


def test_settings_diff_names_only_what_differs(parts):
    vit = with_config(parts, depth=12, backbone="dino_vits8")
    assert settings_diff(parts, parts) == "same settings"
    assert settings_diff(vit, with_config(vit, layer=4)) == "layer 11 → 4"
    assert settings_diff(parts, with_config(parts, loss="cc", k=None)) == "NCut k=3 → CC α=3 k≤10"
    changed = with_config(parts, k=5, seed=1, refine="none")
    assert settings_diff(parts, changed) == "k 3 → 5 · seed 0 → 1 · refine guided → none"
    assert settings_diff(parts, with_config(parts, largest_component=True)) == "largest component off → on"
    assert "layer" not in settings_diff(parts, with_config(parts, layer=4))  # the colour backbone has no layers


def test_pair_figure_titles_each_side_and_the_difference(parts, cc):
    fig = pair_figure(parts, cc)
    left, right = fig.axes
    assert left.get_title() == f"pinned: {parts.seg.num_segments} segments\n{settings_line(parts)}"
    assert right.get_title() == f"now: {cc.seg.num_segments} segments\n{settings_line(cc)}"
    assert fig.get_suptitle() == f"Changed: {settings_diff(parts, cc)}"
    assert np.array_equal(left.images[0].get_array(), np.asarray(parts.overlay(0.5)))
    picture, big = pair_picture(parts, cc), pair_picture(parts, cc, text=2.0)
    assert isinstance(picture, Image.Image) and picture.mode == "RGB" and big.size == picture.size
    assert min_text_px(pair_figure(parts, cc, text=2.0)) == pytest.approx(2 * min_text_px(fig))


# -- sweeps ----------------------------------------------------------------------------------------------
def test_sweep_k_reuses_the_features_and_repeats_the_result(session, parts):
    model = session.model(parts.backbone).model
    sw = sweep(model, parts, "k", [2, 3, 4])
    assert sw.features_reused and all(s.features_cached for s in sw.segmentations)  # no backbone rerun
    assert [s.config.k for s in sw.segmentations] == [2, 3, 4]
    assert np.array_equal(sw.segmentations[1].labels, parts.seg.labels)  # k=3 is the result itself
    assert sw.counts == [int(np.unique(s.labels).size) for s in sw.segmentations]
    fig = sw.figure()
    titles = [f"k = {k}: {n} segments" for k, n in zip([2, 3, 4], sw.counts, strict=True)]
    assert [ax.get_title() for ax in fig.axes] == titles
    fixed = "NCut · 2 stages · color · 128 px · epochs 5/20 · seed 0 · guided"
    assert fig.get_suptitle() == f"k from 2 to 4 · fixed: {fixed}"
    small = min_text_px(fig)  # 10 pt at 100 dpi
    assert small >= 13 and min_text_px(sw.figure(text=2.0)) == pytest.approx(2 * small)
    assert sw.picture(text=2.0).size == sw.picture().size


def test_sweep_alpha_goes_from_many_segments_to_few(session, cc):
    sw = sweep(session.model(cc.backbone).model, cc, "alpha", [1.5, 8])
    assert [s.config.alpha for s in sw.segmentations] == [1.5, 8.0] and sw.features_reused
    assert sw.counts[0] > sw.counts[1]  # a small α makes most pairs repel
    assert sw.title(0) == f"α = 1.5: {sw.counts[0]} segments"


def test_sweep_epochs_and_the_servers_cap(session, parts):
    model = session.model(parts.backbone).model
    sw = sweep(model, parts, "epochs", [2, 4])
    assert [s.config.epochs for s in sw.segmentations] == [(2, 20, 5), (4, 20, 5)]
    capped = sweep(model, parts, "k", [2, 4], max_epochs=3)
    assert all(len(losses) <= 3 for s in capped.segmentations for losses in s.losses)


def test_sweep_refuses_what_it_cannot_show(session, parts, cc):
    model = session.model(parts.backbone).model
    with pytest.raises(DemoError, match=f"1 to {MAX_SWEEP} values"):
        sweep(model, parts, "k", list(range(2, 2 + MAX_SWEEP + 1)))
    with pytest.raises(DemoError, match="1 to"):
        sweep(model, parts, "k", [])
    with pytest.raises(DemoError, match="α only changes"):
        sweep(model, parts, "alpha", [2, 3])
    with pytest.raises(DemoError, match="no layers"):
        sweep(model, parts, "layer", [4, 11])
    with pytest.raises(DemoError, match="Cannot sweep"):
        sweep(model, parts, "opacity", [0.2])
    with pytest.raises(DemoError, match="Invalid value for k"):
        sweep(model, parts, "k", [1])


def test_the_sweep_offers_only_what_applies_to_the_result(session, parts, cc):
    gr = pytest.importorskip("gradio")
    from deepcut.demo.lesson_view import LessonHandlers, sweep_choices

    fields = lambda result: [field for _, field in sweep_choices(result)]  # noqa: E731
    assert fields(parts) == ["k"] and fields(None) == ["k"]  # the colour backbone, NCut: no layers, no α
    assert fields(cc) == ["k", "alpha"]
    assert fields(dataclasses.replace(cc, depth=12)) == ["k", "alpha", "layer"]  # a ViT's layers
    assert fields(dataclasses.replace(parts, depth=12)) == ["k", "layer"]
    handlers = LessonHandlers(session)
    key = session.results.add(parts)
    assert handlers.sweep_options(key, "alpha")["value"] == "k"  # a choice that no longer applies falls back
    assert handlers.sweep_options(session.results.add(cc), "alpha")["value"] == "alpha"
    for param, why in (("alpha", "α only changes correlation clustering"), ("layer", "no layers or facets")):
        picture, caption, file = handlers.sweep(key, param, "")  # a stale choice: one line, nothing drawn
        assert caption.startswith("⚠️ Not swept: ") and why in caption and "\n" not in caption, caption
        assert isinstance(picture, type(gr.skip())) and isinstance(file, type(gr.skip()))


@pytest.mark.parametrize("text, param, expected", [("2, 3 4", "k", [2, 3, 4]), ("3.0 4", "k", [3, 4]),
                                                   ("1.5 2.5", "alpha", [1.5, 2.5]), ("", "k", None)])
def test_sweep_values_are_read_as_typed(text, param, expected):
    pytest.importorskip("gradio")
    from deepcut.demo.lesson_view import parse_values

    assert parse_values(text, param) == expected


@pytest.mark.parametrize("text, param", [("2.5", "k"), ("2, 3.5", "k"), ("4.2", "layer")])
def test_a_fraction_is_refused_where_whole_numbers_are_needed(text, param):
    pytest.importorskip("gradio")
    from deepcut.demo.lesson_view import parse_values

    with pytest.raises(DemoError, match="takes whole numbers; [0-9.]+ is not one"):
        parse_values(text, param)


def test_a_sweep_stops_at_the_servers_time_limit(session, parts):
    model = session.model(parts.backbone).model
    with pytest.raises(DemoError, match="limit on this server"):
        sweep(model, parts, "k", [2, 3], deadline=Deadline(0.0))
    assert sweep(model, parts, "k", [2, 3], deadline=Deadline(None)).counts  # no limit: it runs


def test_default_values(parts, cc):
    assert default_values(parts, "k") == [2, 3, 4, 5, 6]
    values = default_values(cc, "alpha")
    assert values == list(DEFAULT_ALPHA_VALUES) and values == sorted(values)
    assert default_values(dataclasses.replace(parts, depth=12), "layer") == [0, 3, 7, 11]  # spread over 12 layers
    with pytest.raises(DemoError, match="no layers"):
        default_values(parts, "layer")  # the colour backbone
    with pytest.raises(DemoError, match="Give the values"):
        default_values(parts, "seed")


# -- step through ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def walk(session, parts):
    model = session.model(parts.backbone).model
    ex = explain(model, parts)
    return Walkthrough(model, parts, ex), ex


def test_walkthrough_steps_in_order_with_true_captions(session, parts, walk):
    w, ex = walk
    assert len(w) == 5
    assert w.titles() == ["1. Features", "2. Affinity graph", "3. Training", "4. Segments (argmax)", "5. Refinement"]
    h, w_ = parts.seg.patch_labels.shape
    dim = session.model(parts.backbone).model.patch_features(parts.seg.image, parts.seg.config).features.shape[1]
    assert w.step(0).caption.startswith(f"{h * w_} patches ({h} × {w_}), each a {dim}-d vector")
    assert np.array_equal(np.asarray(w.step(0).picture()), np.asarray(ex.pca_picture()))
    picture, caption = session.affinity(parts, *parts.default_point())
    assert np.array_equal(np.asarray(w.step(1).picture()), np.asarray(picture)) and caption in w.step(1).caption
    stages = [f"stage {st.stage} (k={st.soft[0].shape[1]}) {len(st.losses)} epochs" for st in ex.record.stages]
    assert all(s in w.step(2).caption for s in stages) and f"{ex.frames} snapshots" in w.step(2).caption


def test_walkthrough_clamps_steps_and_frames(walk):
    w, ex = walk
    train = w.step(2)
    assert train.frames == ex.frames > 1
    assert np.array_equal(np.asarray(train.picture(999)), np.asarray(ex.frame_picture(ex.frames - 1)))
    assert np.array_equal(np.asarray(train.picture(-3)), np.asarray(ex.frame_picture(0)))
    assert w.step(99) is w.step(4) and w.step(-1) is w.step(0)


def test_walkthrough_of_a_result_without_training(session, parts, walk):
    _, ex = walk
    untrained = dataclasses.replace(ex, record=TrainingRecord(ex.record.grid, [], ex.record.labels))
    step = Walkthrough(session.model(parts.backbone).model, parts, untrained).step(2)
    assert step.frames == 1 and step.caption.startswith("No GNN was trained")
    assert np.array_equal(np.asarray(step.picture(5)), np.asarray(parts.seg.overlay(0.5)))


def test_walkthrough_argmax_and_refinement(session, parts, walk):
    w, ex = walk
    changed = float((w.unrefined != parts.seg.labels).mean())
    assert 0 < changed < 0.5  # the guided filter moved some boundaries, not the segments
    assert f"{changed:.1%} of the pixels changed segment" in w.step(4).caption
    # large text (a projector) draws the compact figure: narrower, its smallest text twice as large
    assert w.step(4).picture(text=2.0).size[0] < w.step(4).picture().size[0]
    assert w.step(4).min_text_px(text=2.0) >= 2 * w.step(4).min_text_px() - 0.01
    assert np.array_equal(np.asarray(w.step(2).picture(1, text=2.0)), np.asarray(ex.frame_picture(1, text=2.0)))
    plain = session.segment(IMAGE, k=3, stages=2, **SMALL)  # refine none: the argmax is the result
    model = session.model(plain.backbone).model
    pw = Walkthrough(model, plain, explain(model, plain))
    assert np.array_equal(pw.unrefined, plain.seg.labels)
    assert pw.step(4).caption.startswith("No edge refinement")
    assert np.array_equal(np.asarray(pw.step(3).picture()), np.asarray(plain.seg.overlay(0.5)))
    assert f"{plain.seg.num_segments} segments" in pw.step(3).caption
