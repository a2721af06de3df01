"""Segmentation end to end on images whose right answer is known (colour backbone, offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import disc_image, disc_mask, iou, voronoi_scene
from PIL import Image

from deepcut import ConfigError, SegmentConfig
from deepcut.clustering.settle import SETTLED_NOTE
from deepcut.graph.patch_graph import PatchGraph
from deepcut.utils.masks import background_label, bbox_of, largest_component, present_labels


def test_foreground_of_a_disc(color_model):
    seg = color_model.segment(disc_image(160), resolution=160)
    assert seg.labels.shape == (160, 160) and seg.labels.dtype == np.int32
    assert iou(seg.foreground, disc_mask(160)) > 0.9
    x0, y0, x1, y1 = seg.bbox
    assert abs(x0 - 32) <= 6 and abs(y0 - 32) <= 6 and abs(x1 - 128) <= 6 and abs(y1 - 128) <= 6
    assert seg.soft.shape == (20, 20, 2) and np.allclose(seg.soft.sum(-1), 1, atol=1e-5)
    assert len(seg.losses) == 1 and len(seg.losses[0]) == 10
    assert set(seg.timings) >= {"features", "stage1", "total"}
    assert seg.num_segments == 2 and seg.patch_labels.shape == (20, 20)


def test_stage_two_splits_the_foreground_and_stage_three_the_background(color_model):
    img = disc_image(160, two_tone=True, striped_bg=True)
    yy, xx = np.mgrid[:160, :160]
    disc = disc_mask(160)
    seg2 = color_model.segment(disc_image(160, two_tone=True), resolution=160, stages=2, k=2)
    assert iou(seg2.foreground, disc) > 0.9
    left, right = disc & (xx < 76), disc & (xx > 84)
    lab_left = np.bincount(seg2.labels[left]).argmax()
    lab_right = np.bincount(seg2.labels[right]).argmax()
    assert {lab_left, lab_right} == {1, 2}
    assert len(seg2.losses) == 2 and len(seg2.losses[1]) <= 100
    trained = len(seg2.losses[1])  # stage 2's 100 epochs, fewer where the training settled, which a note says
    assert (trained == 100) == (not any(n.startswith(f"stage 2: {SETTLED_NOTE} after {trained} of its 100 epochs")
                                        for n in seg2.notes))
    every = color_model.segment(disc_image(160, two_tone=True), resolution=160, stages=2, k=2, settle=False)
    assert len(every.losses[1]) == 100 and not any(SETTLED_NOTE in n for n in every.notes)

    seg3 = color_model.segment(img, resolution=160, stages=3, k=2, bg_k=2)
    top, bottom = ~disc & (yy < 70), ~disc & (yy > 90)
    lab_top = np.bincount(seg3.labels[top]).argmax()
    lab_bottom = np.bincount(seg3.labels[bottom]).argmax()
    assert lab_top != lab_bottom and 0 in (lab_top, lab_bottom) and max(lab_top, lab_bottom) == 3
    assert seg3.num_segments == 4 and iou(seg3.foreground, disc) > 0.9
    again = color_model.segment(img, resolution=160, stages=2, k=2)
    assert again.features_cached  # same image: the features are reused
    assert np.array_equal(again.foreground, seg3.foreground)  # stage 3 leaves the foreground alone


def test_k_way_single_stage_and_cc(color_model):
    img = disc_image(160, two_tone=True, striped_bg=True)
    seg = color_model.segment(img, resolution=160, k=4, epochs=60)
    assert seg.num_segments == 4
    # no bipartition: the foreground is every segment but the background (label 0), with its box (as in the app)
    assert np.array_equal(seg.foreground, seg.labels != 0) and seg.foreground.any()
    assert seg.bbox == bbox_of(seg.foreground) and seg.mask_image() is not None and seg.cutout() is not None
    cc = color_model.segment(img, resolution=160, loss="cc", k=10, epochs=30)
    assert 2 <= cc.num_segments < 10


def test_largest_component_drops_a_separate_blob(color_model):
    img = disc_image(160, blob=True)
    plain = color_model.segment(img, resolution=160)
    kept = color_model.segment(img, resolution=160, largest_component=True)
    assert plain.foreground[16:32, 16:32].mean() > 0.5  # the blob is foreground...
    assert kept.foreground[16:32, 16:32].mean() == 0  # ...until only the largest component is kept
    assert iou(kept.foreground, disc_mask(160)) > 0.9


def test_border_rule_not_corner_rule():
    """An object touching all four corners is still foreground if most of the border is background."""
    lab = np.zeros((10, 10), int)
    lab[3:7, 3:7] = 1
    lab[0, 0] = lab[0, -1] = lab[-1, 0] = lab[-1, -1] = 1  # corners vote "1 is background"
    assert background_label(lab) == 0
    assert background_label(1 - lab) == 1


def test_mask_helpers():
    m = np.zeros((6, 8), bool)
    m[1:3, 2:5] = True
    m[5, 7] = True
    assert bbox_of(m) == (2, 1, 8, 6)
    assert bbox_of(np.zeros((3, 3), bool)) is None
    assert largest_component(m).sum() == 6


def test_inputs_path_pil_and_arrays_agree(tmp_path, color_model):
    img = disc_image(96)
    Image.fromarray(img).save(tmp_path / "disc.png")
    a = color_model.segment(tmp_path / "disc.png", resolution=96)
    b = color_model.segment(Image.fromarray(img), resolution=96)
    c = color_model.segment(img, resolution=96)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(b.labels, c.labels)


def test_config_overrides_and_validation(color_model):
    cfg = SegmentConfig(k=3)
    seg = color_model.segment(disc_image(64), cfg, resolution=64, epochs=5)
    assert seg.config.k == 3 and seg.config.epochs == (5, 100, 10)
    with pytest.raises(ConfigError):
        color_model.segment(disc_image(64), k=1)
    with pytest.raises(ConfigError, match="unknown"):
        color_model.segment(disc_image(64), colour="red")
    with pytest.raises(ConfigError):
        SegmentConfig(stages=4)


def test_overlay_and_saved_files(tmp_path, color_model):
    seg = color_model.segment(disc_image(96), resolution=96)
    ov = seg.overlay(0.6)
    assert ov.size == (96, 96)
    # the disc centre is tinted with label 1's colour, the corner with label 0's
    px = np.asarray(ov)
    assert not np.array_equal(px[48, 48], px[2, 2])
    assert np.array_equal(np.asarray(seg.overlay(0.0)), seg.image)
    written = seg.save(tmp_path, "disc")
    assert set(written) == {"labels", "overlay", "mask"}
    assert np.array_equal(np.asarray(Image.open(written["labels"])), seg.labels)
    assert np.array_equal(np.asarray(Image.open(written["mask"])) > 0, seg.foreground)


def test_deterministic_segmentation(color_model):
    img = disc_image(96, two_tone=True)
    a = color_model.segment(img, resolution=96, stages=2, k=3, seed=3)
    b = color_model.segment(img, resolution=96, stages=2, k=3, seed=3)
    assert np.array_equal(a.labels, b.labels) and a.losses == b.losses


def test_larger_alpha_gives_fewer_cc_segments_and_the_words_say_so(color_model):
    """A = W - max(W)/alpha: a larger alpha subtracts less, so more pairs attract and CC merges more."""
    from deepcut.clustering.fit import affinity
    from deepcut.config import options

    feats = color_model.features("assets/cat.jpg", resolution=160).reshape(-1, 384)
    positive = [float((affinity(feats, "cc", a) > 0).float().mean()) for a in (1.5, 3.0, 10.0)]
    assert positive[0] < positive[1] < positive[2]
    counts = [color_model.segment("assets/cat.jpg", loss="cc", k=10, alpha=a).num_segments for a in (1.5, 10.0)]
    assert counts[0] > counts[1]
    assert "larger alpha gives fewer" in options()["alpha"].help


def test_cc_bound_defaults_to_ten_so_cc_finds_the_number_of_segments(color_model):
    """Left out, k is 2 for NCut and 10 for CC (the authors' bound): out of the box CC is not capped
    at 2 segments, and switching the loss of a config re-resolves k unless it was given."""
    cfg = SegmentConfig()
    assert (cfg.k, SegmentConfig(loss="cc").k, cfg.replace(loss="cc").k) == (2, 10, 10)
    assert SegmentConfig(loss="cc").replace(loss="ncut").k == 2
    assert SegmentConfig(k=3).replace(loss="cc").k == 3 and SegmentConfig(loss="cc", k=4).k == 4
    assert SegmentConfig(loss="cc").to_dict()["k"] == 10
    seg = color_model.segment("assets/cat.jpg", loss="cc", alpha=1.5)
    assert seg.config.k == 10 and seg.num_segments > 2
    assert color_model.segment("assets/cat.jpg").num_segments == 2


def test_cli_cc_without_k_uses_the_bound_of_ten(tmp_path):
    from deepcut.cli import main

    out = tmp_path / "o"
    assert main(["segment", "assets/cat.jpg", "--out", str(out), "--backbone", "color", "--loss", "cc",
                 "--alpha", "1.5"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["k"] == 10
    assert next(iter(results["files"].values()))["num_segments"] > 2


def test_label_png_keeps_the_labels_and_shows_the_segments_in_colour(color_model, tmp_path):
    """The label map PNG's pixel values are the labels, and it is a palette image in the overlay's
    colours (a grey image of values 0..k looks black in any viewer)."""
    from deepcut.segmentation.colors import label_colors

    seg = color_model.segment(disc_image(96), k=2)
    seg.labels_image().save(tmp_path / "l.png")
    img = Image.open(tmp_path / "l.png")
    assert img.mode == "P"
    assert np.array_equal(np.asarray(img), seg.labels)
    rgb = np.asarray(img.convert("RGB"))
    assert np.array_equal(rgb[seg.labels == 1][0], label_colors(2)[1])


def test_warm_up_runs_once_and_keeps_no_features(color_model):
    """``warm_up`` segments a small synthetic image with the given settings, then forgets it: the
    same image segmented afterwards computes its features afresh."""
    color_model.warm_up(SegmentConfig(refine="guided"))
    blank = np.zeros((64, 64, 3), np.uint8)
    blank[16:48, 16:48] = 255
    assert not color_model.segment(blank, resolution=64).features_cached
    with pytest.raises(ConfigError):
        color_model.warm_up(SegmentConfig(), side=8)  # below the smallest resolution


@pytest.mark.parametrize("settings", [dict(loss="cc", k=10), dict(k=4), dict(k=3, stages=2), dict(loss="cc", stages=3)])
def test_soft_rows_sum_to_one_even_when_clusters_end_empty(color_model, settings):
    """CC leaves most of its 10 clusters empty: their share used to be dropped (rows summing to ~0.6)."""
    img = disc_image(160, two_tone=True, striped_bg=True)
    seg = color_model.segment(img, resolution=160, epochs=(10, 20, 10), **settings)
    assert np.allclose(seg.soft.sum(-1), 1.0, atol=1e-5)
    assert (seg.soft.argmax(-1) == seg.patch_labels).mean() > 0.95  # the argmax is still the label


def test_a_skipped_stage_keeps_its_place_in_the_losses():
    """Stage 2 is skipped when the foreground is a single patch; stage 3 still runs. The losses stay in stage
    order (stage 2's list is empty), so the loss plot titles stage 3's curve as stage 3."""
    import torch

    from deepcut.render.figures import loss_figure
    from deepcut.stages.run import run_stages

    grid = (12, 12)
    rng = np.random.default_rng(0)
    feats = np.tile(rng.normal(size=8), (144, 1))
    feats[6 * 12 + 6] = rng.normal(size=8)  # one patch unlike every other: the whole foreground
    feats[:, 0] += np.where(np.arange(144) % 12 < 6, 1.0, -1.0)  # a left and a right background half
    feats += 0.01 * rng.normal(size=feats.shape)
    out = run_stages(PatchGraph(torch.from_numpy(feats.astype(np.float32))), grid, SegmentConfig(k=2, stages=3, bg_k=2))
    assert "stage 2 skipped: the foreground has fewer than 2 patches" in out.notes
    assert len(out.losses) == 3 and out.losses[1] == [] and len(out.losses[0]) == 10 and len(out.losses[2]) == 10
    titles = [ax.get_title() for ax in loss_figure(out.losses, "ncut", [2, 2, 2]).axes]
    assert [t.splitlines()[0] for t in titles] == ["stage 1 (k=2)", "stage 3 (k=2)"]


def test_a_cached_image_keeps_its_gcn_propagation_for_later_queries():
    """``Â X`` is computed once per cached image and objective; a re-segmentation reads it back and gives
    what a fresh model gives, and so does a correction."""
    from deepcut import DeepCut

    img = voronoi_scene(4, 3, side=160)[0]
    dc, fresh = DeepCut("color"), DeepCut("color")
    first = dc.segment(img, resolution=160, k=3)
    memo = dc.patch_features(img, resolution=160).graph_memo
    assert [key[:2] for key in memo] == [("gcn propagation", "ncut")]
    (ax,) = memo.values()
    assert ax.shape[0] == 20 * 20  # one row per patch
    again = dc.segment(img, resolution=160, k=4)
    assert again.features_cached and len(memo) == 1 and next(iter(memo.values())) is ax  # read back, not recomputed
    assert np.array_equal(again.labels, fresh.segment(img, resolution=160, k=4).labels)
    cc = dc.segment(img, resolution=160, k=4, loss="cc")
    assert sorted(key[1] for key in memo) == ["cc", "ncut"]
    assert np.array_equal(cc.labels, DeepCut("color").segment(img, resolution=160, k=4, loss="cc").labels)
    pts = [(20.0, 20.0), (140.0, 140.0)]
    assert np.array_equal(dc.correct(img, first, join=[pts]).labels, fresh.correct(img, first, join=[pts]).labels)
    assert len(memo) == 2
    staged = dc.segment(img, resolution=160, stages=2, k=2)  # stage 2's subgraph keeps nothing
    assert len(memo) == 2 and staged.num_segments >= 2


def test_a_layer_or_facet_the_colour_backbone_ignores_is_said():
    """``segment(layer=99, facet="value")`` on the colour backbone ran as if they were the defaults, recorded them
    in the config and said nothing (the CLI refuses them; the library takes them, so that a ViT's settings run
    unchanged, and now says they change nothing)."""
    from conftest import voronoi_scene

    from deepcut import DeepCut

    dc, img = DeepCut("color"), voronoi_scene(2, 0, side=64)[0]
    said = dc.segment(img, layer=99, facet="value", resolution=64)
    plain = dc.segment(img, resolution=64)
    assert any("colour backbone has one layer and no facets: layer=99, facet='value'" in n for n in said.notes)
    assert not any("no facets" in n for n in plain.notes)
    assert (said.labels == plain.labels).all()


def test_num_segments_counts_the_distinct_labels_of_any_label_map(color_model):
    import dataclasses

    seg = color_model.segment(disc_image(64), resolution=64)
    rng = np.random.default_rng(0)
    for labels in (np.array([[0, 5], [7, 5]], np.int32), rng.integers(0, 9, (40, 30)), np.zeros((3, 3), np.uint16),
                   np.array([[-1, 2], [2, 3]]), np.array([[0.5, 1.0]]), np.zeros((0, 4), np.int32)):
        assert dataclasses.replace(seg, labels=labels).num_segments == np.unique(labels).size, labels
        present = present_labels(labels)  # the labels themselves, as np.unique gives them (what describe() reads)
        assert np.array_equal(present, np.unique(labels)) and present.dtype == np.unique(labels).dtype, labels
