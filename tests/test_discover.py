"""Object discovery (``DeepCut.discover`` / :mod:`deepcut.tasks.discover`) on synthetic scenes with known objects."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import iou, shared_data_dir
from PIL import Image

from deepcut import ConfigError, SegmentConfig, fit
from deepcut.evaluation.baselines import baseline
from deepcut.features.store import PatchFeatures
from deepcut.graph.patch_graph import cut_score
from deepcut.tasks.discover import Discovery, discover_features, min_object_patches, object_mask
from deepcut.utils.masks import bbox_of

RES = 160  # a 20 x 20 patch grid with the colour backbone's 8-pixel patches


def scene(size: int = 160) -> tuple[np.ndarray, list[np.ndarray]]:
    """Three coloured rectangles (red, yellow, green) on blue, on the 8-pixel patch grid:
    ``(image (size, size, 3) uint8, [three (size, size) bool masks])``."""
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (40, 60, 200)
    boxes = [((24, 72), (24, 64), (220, 30, 30)), ((96, 136), (88, 136), (240, 220, 40)),
             ((32, 56), (104, 136), (30, 200, 60))]
    masks = []
    for (y0, y1), (x0, x1), colour in boxes:
        m = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
        img[m] = colour
        masks.append(m)
    return img, masks


@pytest.fixture(scope="module")
def three():
    return scene()


def best_ious(found: Discovery, truth: list[np.ndarray]) -> list[float]:
    """For each true mask, the best IoU of any discovered object."""
    return [max((iou(o.mask, t) for o in found.objects), default=0.0) for t in truth]


def check_objects(found: Discovery, image: np.ndarray) -> None:
    """Invariants every discovery satisfies: sizes, boxes, areas, scores, no empties, no duplicates."""
    for o in found.objects:
        assert o.mask.shape == image.shape[:2] and o.mask.dtype == bool
        assert o.patch_mask.shape == found.grid
        assert o.area == int(o.mask.sum()) > 0
        assert o.bbox == bbox_of(o.mask)
        assert 0.0 <= o.score <= 1.0
    for i, a in enumerate(found.objects):
        for b in found.objects[i + 1:]:
            assert iou(a.mask, b.mask) < 0.5


def test_iterative_cuts_find_the_three_objects(color_model, three):
    img, truth = three
    found = color_model.discover(img, objects=3, resolution=RES)
    assert len(found.objects) == 3
    check_objects(found, img)
    assert min(best_ious(found, truth)) > 0.9
    # each object is a different true object
    matched = {int(np.argmax([iou(o.mask, t) for t in truth])) for o in found.objects}
    assert matched == {0, 1, 2}


def test_scores_rank_real_objects_above_leftover_background(color_model, three):
    img, truth = three
    found = color_model.discover(img, objects=5, resolution=RES)
    check_objects(found, img)
    real = [o.score for o in found.objects if max(iou(o.mask, t) for t in truth) > 0.5]
    extra = [o.score for o in found.objects if max(iou(o.mask, t) for t in truth) <= 0.5]
    assert len(real) == 3 and extra
    assert min(real) > max(extra)
    # iterative cuts remove each object's patches: objects are disjoint on the grid
    total = np.sum([o.patch_mask for o in found.objects], axis=0)
    assert total.max() == 1


def test_one_object_is_the_single_cut_with_its_largest_component(color_model, three):
    img, _ = three
    found = color_model.discover(img, objects=1, resolution=RES)
    seg = color_model.segment(img, k=2, largest_component=True, resolution=RES)
    assert len(found.objects) == 1
    obj = found.objects[0]
    assert np.array_equal(obj.patch_mask, seg.patch_labels == 1)
    assert np.array_equal(obj.mask, seg.foreground)
    assert obj.bbox == seg.bbox


@pytest.mark.parametrize("method", ["deepcut", "spectral"])
def test_one_object_matches_the_pipeline_on_a_real_photo(color_model, method):
    """On a COCO photo whose foreground has diagonal-only contacts between its pieces, one object is
    still the pipeline's largest foreground component (same connectivity), for the GNN and the baseline."""
    path = shared_data_dir() / "coco128_seg" / "images" / "000000000009.jpg"
    if not path.exists():
        pytest.skip("shared data not available")
    cfg = SegmentConfig(k=2, largest_component=True)
    clusterer = fit if method == "deepcut" else baseline("spectral")
    found = discover_features(color_model.patch_features(path, cfg), cfg, 1, clusterer)
    seg = color_model.segment_with(path, cfg, clusterer)
    assert len(found.objects) == 1
    assert np.array_equal(found.objects[0].patch_mask, seg.patch_labels == 1)
    assert found.objects[0].bbox == seg.bbox


def test_correlation_clustering_needs_no_count(color_model, three):
    img, truth = three
    found = color_model.discover(img, objects=None, resolution=RES)
    check_objects(found, img)
    assert len(found.objects) >= 3
    assert min(best_ious(found, truth)) > 0.9
    assert found.config.loss == "cc"
    scores = [o.score for o in found.objects]
    assert scores == sorted(scores, reverse=True)


def test_discovery_is_deterministic(color_model, three):
    img, _ = three
    color_model.clear_cache()
    a = color_model.discover(img, objects=3, resolution=RES, seed=3)
    color_model.clear_cache()
    b = color_model.discover(img, objects=3, resolution=RES, seed=3)
    assert len(a.objects) == len(b.objects)
    for x, y in zip(a.objects, b.objects, strict=False):
        assert np.array_equal(x.mask, y.mask) and x.score == y.score


def test_spectral_baseline_runs_the_same_procedure(color_model, three):
    img, truth = three
    cfg = SegmentConfig(resolution=RES)
    feats = color_model.patch_features(img, cfg)
    for objects in (3, None):
        found = discover_features(feats, cfg, objects, baseline("spectral"))
        check_objects(found, img)
        assert min(best_ious(found, truth)) > 0.9


def test_summary_is_json_and_overlay_draws(color_model, three):
    img, _ = three
    found = color_model.discover(img, objects=2, resolution=RES)
    data = json.loads(json.dumps(found.summary()))
    assert data["num_objects"] == len(found.objects) == 2
    assert data["objects"][0]["bbox"] == list(found.objects[0].bbox)
    assert data["size"] == [img.shape[1], img.shape[0]] and data["config"]["resolution"] == RES
    pic = found.overlay()
    assert isinstance(pic, Image.Image) and pic.size == (img.shape[1], img.shape[0])
    # the first object is tinted, a pixel far from every object is left as it was
    x0, y0, x1, y1 = found.objects[0].bbox
    inside = np.asarray(pic)[(y0 + y1) // 2, (x0 + x1) // 2]
    assert not np.array_equal(inside, img[(y0 + y1) // 2, (x0 + x1) // 2])
    assert np.array_equal(np.asarray(pic)[80, 4], img[80, 4])
    for bad in (5, -1, float("nan")):  # were drawn: colours wrapped around in uint8
        with pytest.raises(ConfigError, match="alpha must be"):
            found.overlay(bad)


def test_constant_features_have_no_objects():
    """A graph without structure gives a degenerate cut: discovery stops with a note, no objects."""
    feats = PatchFeatures(torch.ones(100, 8), (10, 10), np.zeros((80, 80, 3), np.uint8), (80, 80))
    for clusterer in (fit, baseline("spectral")):
        for objects in (3, None):
            found = discover_features(feats, SegmentConfig(), objects, clusterer)
            assert found.objects == [] and any("degenerate" in n for n in found.notes)


def test_objects_must_be_positive(color_model, three):
    with pytest.raises(ConfigError, match="objects"):
        color_model.discover(three[0], objects=0, resolution=RES)


def test_cut_score_is_one_for_a_clean_cut_and_lower_for_a_bad_one():
    a = torch.zeros(6, 6)
    a[:3, :3] = 1.0
    a[3:, 3:] = 1.0
    clean = np.array([True, True, True, False, False, False])
    assert cut_score(a, clean) == pytest.approx(1.0)
    mixed = np.array([True, False, True, False, True, False])
    assert cut_score(a, mixed) < 0.6
    assert cut_score(a, np.ones(6, bool)) == 0.0


def test_object_mask_upsamples_to_the_input_size(color_model, three):
    img, truth = three
    cfg = SegmentConfig(resolution=RES)
    feats = color_model.patch_features(img, cfg)
    patch = np.zeros(feats.grid, bool)
    patch[3:9, 3:8] = True  # the red rectangle's patches: rows 24-72, columns 24-64
    mask = object_mask(patch, feats, cfg)
    assert mask.shape == img.shape[:2] and iou(mask, truth[0]) > 0.9
    assert min_object_patches((20, 20)) == 4 and min_object_patches((5, 5)) == 2


def test_cut_score_is_the_same_on_a_sparse_graph():
    """Above the dense threshold the score is read from the sparse k-NN graph (no N x N matrix):
    with every pair kept, it equals the dense score."""
    from deepcut.graph.patch_graph import PatchGraph, cut_score

    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    inside = np.zeros(40, bool)
    inside[:15] = True
    dense = cut_score(PatchGraph(x).affinity("ncut"), inside)
    sparse = cut_score(PatchGraph(x, mode="sparse", neighbours=40).cluster_affinity("ncut").matrix(), inside)
    assert 0 < dense < 1
    assert sparse == pytest.approx(dense, abs=1e-6)


def test_refined_object_masks_follow_the_edges(color_model):
    """With ``refine="guided"`` an object's mask follows the object's outline more closely than the
    patch staircase does, and its box comes from the refined mask."""
    img = np.full((100, 140, 3), (40, 90, 40), np.uint8)
    yy, xx = np.mgrid[:100, :140]
    truth = (yy - 50) ** 2 + (xx - 70) ** 2 < 31 ** 2
    img[truth] = (220, 40, 40)
    plain = color_model.discover(img, objects=1, resolution=100).objects[0]
    refined = color_model.discover(img, objects=1, resolution=100, refine="guided").objects[0]
    assert iou(refined.mask, truth) > iou(plain.mask, truth)
    assert iou(refined.mask, truth) > 0.95
    ys, xs = np.nonzero(refined.mask)
    assert refined.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
