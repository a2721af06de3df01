"""Edge-aware refinement (deepcut.segmentation.refine): pixel labels that follow the image, in the library,
the pipeline, the cut-out and the CLI; and the boundary F metric used to measure it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, disc_image, disc_mask, iou
from PIL import Image

from deepcut import ConfigError, DeepCut, DeepCutError, SegmentConfig
from deepcut.evaluation.metrics import boundary_f
from deepcut.segmentation.refine import MissingLibraryError, refine, refine_segmentation
from deepcut.segmentation.upsample import resize_nearest
from deepcut.utils.masks import bbox_of

METHODS = ("guided", "crf")
GRID = (15, 20)  # 8-px patches of a 120 x 160 working image; the photo is 171 x 229 (another size)
SIZE = (171, 229)


def shapes(size: tuple[int, int] = SIZE) -> np.ndarray:
    """``(H, W)`` labels: 0 background, 1 a tilted ellipse, 2 a triangle, edges off the patch grid."""
    yy, xx = np.mgrid[:size[0], :size[1]] / np.array(size, float)[:, None, None]
    u, v = (xx - 0.35) * 0.9 + (yy - 0.5) * 0.45, -(xx - 0.35) * 0.45 + (yy - 0.5) * 0.9
    truth = np.zeros(size, np.int64)
    truth[(u / 0.27) ** 2 + (v / 0.17) ** 2 < 1] = 1
    truth[(xx > 0.62) & (yy > 0.2) & (yy < 0.85) & (xx - 0.62 < 0.9 * (yy - 0.2))] = 2
    return truth


def photo(truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(H, W, 3)`` uint8: one colour per label, with mild noise."""
    colours = np.array([(60, 90, 170), (215, 60, 40), (240, 210, 60)], np.float64)
    noise = np.random.default_rng(seed).normal(0, 6, truth.shape + (3,))
    return np.clip(colours[truth] + noise, 0, 255).astype(np.uint8)


def patch_labels(truth: np.ndarray, grid: tuple[int, int] = GRID) -> np.ndarray:
    """``(h, w)``: the majority label of each patch cell (a staircase at the photo's size)."""
    ys = (np.arange(truth.shape[0]) * grid[0] // truth.shape[0])
    xs = (np.arange(truth.shape[1]) * grid[1] // truth.shape[1])
    n = int(truth.max()) + 1
    counts = np.zeros(grid + (n,))
    np.add.at(counts, (ys[:, None], xs[None, :], truth), 1)
    return counts.argmax(-1)


def nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return resize_nearest(labels.astype(np.int32), size)


@pytest.mark.parametrize("method", METHODS)
def test_refined_edges_beat_nearest_and_plain_upsampling(method):
    truth = (shapes() == 1).astype(np.int64)
    image, cells = photo(truth), patch_labels(truth)
    base = iou(nearest(cells, SIZE) == 1, truth == 1)
    plain = iou(refine(image, cells, "none") == 1, truth == 1)
    out = refine(image, cells, method)
    assert out.shape == SIZE and out.dtype == np.int32
    assert base < 0.93  # the staircase is visible
    assert iou(out == 1, truth == 1) > max(base, plain) + 0.03
    assert iou(out == 1, truth == 1) > 0.95
    assert boundary_f(out == 1, truth == 1) > boundary_f(nearest(cells, SIZE) == 1, truth == 1) + 0.2


@pytest.mark.parametrize("method", METHODS)
def test_three_segments(method):
    truth = shapes()
    image, cells = photo(truth), patch_labels(truth)
    out = refine(image, cells, method)
    assert set(np.unique(out)) == {0, 1, 2}
    for label in (1, 2):
        assert iou(out == label, truth == label) > iou(nearest(cells, SIZE) == label, truth == label) + 0.02
    # soft assignments (h, w, 3) that are one-hot give the same labels as the integer map
    onehot = np.eye(3, dtype=np.float32)[cells]
    np.testing.assert_array_equal(refine(image, onehot, method), out)


def test_soft_assignments_weigh_in():
    truth = (shapes() == 1).astype(np.int64)
    image, cells = photo(truth), patch_labels(truth)
    soft = np.eye(2, dtype=np.float32)[cells] * 0.2 + 0.4  # foreground cells: (0.4, 0.6)
    soft[..., 1] *= 0.5  # now (0.4, 0.3): a weak foreground everywhere, the background wins
    assert (refine(image, soft, "guided") == 0).all()
    # unnormalised scores are normalised per cell
    np.testing.assert_array_equal(refine(image, 5.0 * np.eye(2, dtype=np.float32)[cells]), refine(image, cells))


def test_large_images_are_refined_at_max_side():
    truth = (shapes((300, 400)) == 1).astype(np.int64)
    image, cells = photo(truth), patch_labels(truth)
    small = refine(image, cells, "guided", max_side=200)
    assert small.shape == (300, 400)
    assert iou(small == 1, truth == 1) > iou(nearest(cells, (300, 400)) == 1, truth == 1)


def test_bad_arguments_are_config_errors():
    image, cells = photo(shapes()), patch_labels(shapes())
    with pytest.raises(ConfigError, match="one of"):
        refine(image, cells, "bilateral-solver")
    with pytest.raises(ConfigError, match="unknown parameter"):
        refine(image, cells, "guided", sigma=3)
    with pytest.raises(ConfigError, match=r"\(H, W, 3\) uint8"):
        refine(image[..., 0], cells)
    with pytest.raises(ConfigError, match=r"\(H, W, 3\) uint8"):
        refine(image.astype(np.float32), cells)
    with pytest.raises(ConfigError, match=r"\(h, w, L\)"):
        refine(image, cells.ravel())
    with pytest.raises(ConfigError, match="non-negative"):
        refine(image, cells - 1)
    with pytest.raises(ConfigError, match="refine must be one of"):
        SegmentConfig(refine="sharp")


@pytest.mark.parametrize("method, params, says", [
    ("guided", {"radius": "2"}, "radius must be a number > 0"),  # was "can't multiply sequence"
    ("guided", {"radius": -2}, "radius must be a number > 0"),  # these ran, with no word
    ("guided", {"eps": 0}, "eps must be a number > 0"),
    ("crf", {"confidence": 2}, "confidence must be a number > 0 and <= 1"),
    ("crf", {"iterations": -1}, "iterations must be a whole number >= 1"),
    ("crf", {"iterations": 2.5}, "iterations must be a whole number >= 1"),
    ("crf", {"side": -5}, "side must be a whole number >= 0"),
    ("crf", {"srgb": float("nan")}, "srgb must be a number > 0"),
])
def test_a_parameter_out_of_its_range_is_a_config_error(method, params, says):
    image, cells = photo(shapes()), patch_labels(shapes())
    with pytest.raises(ConfigError, match=f"refinement parameter {says}"):
        refine(image, cells, method, **params)


@pytest.mark.parametrize(("method", "module"), [("crf", "pydensecrf.densecrf"), ("guided", "cv2")])
def test_missing_library_is_a_clear_error(monkeypatch, method, module):
    monkeypatch.setitem(sys.modules, module, None)  # import now fails
    with pytest.raises(MissingLibraryError, match="pip install") as err:
        refine(photo(shapes()), patch_labels(shapes()), method)
    assert isinstance(err.value, DeepCutError)


def test_refined_segmentation_keeps_each_side_and_largest_component():
    truth = shapes()
    image, cells = photo(truth), patch_labels(truth)
    labels, fg = refine_segmentation(image, cells, [1, 2], "guided")
    np.testing.assert_array_equal(fg, labels != 0)
    assert iou(fg, truth > 0) > iou(nearest(cells, SIZE) > 0, truth > 0) + 0.02
    labels, fg = refine_segmentation(image, cells, [1, 2], "guided", largest=True)
    from scipy import ndimage

    assert ndimage.label(fg, structure=np.ones((3, 3)))[1] == 1
    np.testing.assert_array_equal(fg, labels != 0)


@pytest.fixture(scope="module")
def model():
    return DeepCut("color")


def disc(size: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """A disc photo whose size is not a multiple of the patch grid, and its true mask."""
    return disc_image(size), disc_mask(size)


def test_pipeline_refines_labels_foreground_and_box(model):
    image, truth = disc()
    plain = model.segment(image, resolution=64)
    seg = model.segment(image, resolution=64, refine="guided")
    assert seg.labels.shape == image.shape[:2] and seg.foreground.shape == image.shape[:2]
    np.testing.assert_array_equal(seg.patch_labels, plain.patch_labels)  # the same clustering
    assert seg.soft.shape[:2] == seg.patch_labels.shape == plain.soft.shape[:2]
    np.testing.assert_array_equal(seg.foreground, seg.labels != 0)
    assert seg.bbox == bbox_of(seg.foreground)
    assert iou(plain.foreground, truth) < 0.8  # 8 x 8 patches of about 19 pixels
    assert iou(seg.foreground, truth) > 0.92
    # the mask does not depend on how the foreground is split into parts
    parts = model.segment(image, resolution=64, refine="guided", stages=2, k=2)
    np.testing.assert_array_equal(parts.foreground, seg.foreground)
    assert parts.num_segments == 3


def test_largest_component_of_the_refined_mask(model):
    image = disc_image(150, blob=True)
    seg = model.segment(image, resolution=64, refine="crf", largest_component=True)
    from scipy import ndimage

    assert ndimage.label(seg.foreground, structure=np.ones((3, 3)))[1] == 1
    assert seg.bbox == bbox_of(seg.foreground)


def test_video_and_cosegmentation_refine_too(model):
    frames = [disc_image(96), disc_image(96, two_tone=True)]
    for seg in model.cosegment(frames, resolution=64, refine="guided"):
        assert iou(seg.foreground, disc_mask(96)) > 0.92  # unrefined: about 0.76
    (first,) = list(model.segment_video(frames[:1], resolution=64, refine="guided"))
    assert first.labels.shape == (96, 96) and iou(first.foreground, disc_mask(96)) > 0.92


def test_cutout_is_the_foreground_on_transparency(model, tmp_path):
    image, _ = disc()
    seg = model.segment(image, resolution=64, refine="guided")
    cut = seg.cutout()
    assert cut.mode == "RGBA" and cut.size == (150, 150)
    rgba = np.asarray(cut)
    np.testing.assert_array_equal(rgba[..., 3], seg.foreground.astype(np.uint8) * 255)
    np.testing.assert_array_equal(rgba[..., :3], image)
    written = seg.save(tmp_path, "disc", cutout=True)
    np.testing.assert_array_equal(np.asarray(Image.open(written["cutout"])), rgba)
    k3 = model.segment(image, resolution=64, k=3)  # no bipartition: every segment but the background
    np.testing.assert_array_equal(np.asarray(k3.cutout())[..., 3] > 0, k3.labels != 0)


def test_demo_refines_by_default_and_shows_the_cutout(tmp_path):
    pytest.importorskip("gradio")
    from deepcut.demo import DemoSession
    from deepcut.demo.controls import setting

    assert setting("refine").value == "guided" and SegmentConfig().refine == "none"
    session = DemoSession(default_backbone="color", output_dir=tmp_path)
    r = session.segment(disc_image(150), resolution=64, refine="guided")
    assert r.seg.config.refine == "guided" and iou(np.asarray(r.mask()) > 127, disc_mask(150)) > 0.92
    rgba = np.asarray(r.cutout())
    assert rgba.shape == (150, 150, 4)
    np.testing.assert_array_equal(rgba[..., 3], np.asarray(r.mask()))


def test_cli_refine_and_cutout(tmp_path):
    Image.fromarray(disc_image(120)).save(tmp_path / "d.png")
    r = subprocess.run([sys.executable, "-m", "deepcut", "segment", str(tmp_path / "d.png"), "--out",
                        str(tmp_path / "o"), "--backbone", "color", "--resolution", "96", "--refine", "guided",
                        "--cutout"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["config"]["refine"] == "guided"
    outputs = results["files"][str(tmp_path / "d.png")]["outputs"]
    cut = np.asarray(Image.open(outputs["cutout"]))
    mask = np.asarray(Image.open(outputs["mask"]))
    assert outputs["cutout"].endswith("d_cutout.png") and cut.shape == (120, 120, 4)
    np.testing.assert_array_equal(cut[..., 3], mask)
    assert iou(mask > 127, disc_mask(120)) > 0.95  # unrefined: about 0.81


def test_boundary_f():
    a = np.zeros((100, 100), bool)
    a[20:60, 20:60] = True
    assert boundary_f(a, a) == 1.0
    assert boundary_f(a, np.roll(a, 1, axis=0)) == 1.0  # within the tolerance of 1 pixel
    assert boundary_f(a, np.roll(a, 4, axis=0)) < 0.6
    assert boundary_f(a, np.zeros_like(a)) == 0.0 and boundary_f(a * False, a * False) == 1.0
    # pixels outside `valid` take the prediction's value: a boundary inside them is not penalised
    gt = np.roll(a, 4, axis=0)
    band = np.zeros_like(a)
    band[14:30] = True
    band[56:70] = True
    assert boundary_f(a, gt, valid=~band) == 1.0
