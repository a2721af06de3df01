"""Evaluation harness: metrics against hand-computed values, baselines, dataset layouts, the eval CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepcut.cli import main
from deepcut.config import SegmentConfig
from deepcut.evaluation import metrics as M
from deepcut.evaluation.baselines import kmeans_fit, spectral_fit
from deepcut.evaluation.datasets import DatasetError, boxes_from_mask, load_dataset, read_binary_mask
from deepcut.evaluation.report import (
    comparison_table,
    load_results,
    paired_comparison,
    plot_distributions,
    tables_by_task,
)
from deepcut.graph.patch_graph import PatchGraph
from deepcut.stages.run import run_stages
from deepcut.utils.masks import bbox_of


# -- metrics ---------------------------------------------------------------------------------------
def test_binary_target_ignores_the_128_band():
    mask = np.array([[0, 128, 255], [255, 255, 128]], np.uint8)
    fg, valid = M.binary_target(mask)
    assert fg.tolist() == [[False, False, True], [True, True, False]]
    assert valid.tolist() == [[True, False, True], [True, True, False]]
    fg01, valid01 = M.binary_target(np.array([[0, 1]], np.uint8))  # 0/1 masks have no band
    assert fg01.tolist() == [[False, True]] and valid01.all()


def test_iou_and_accuracy_hand_computed_with_band():
    gt_raw = np.array([[0, 0, 255, 255],
                       [0, 128, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 0],
                     [0, 1, 1, 1]], bool)
    gt, valid = M.binary_target(gt_raw)
    # valid: 7 pixels (the 128 one is out). pred∩gt = {(0,2), (1,2), (1,3)} = 3;
    # pred∪gt over valid = {(0,1), (0,2), (0,3), (1,2), (1,3)} = 5.
    assert M.iou(pred, gt, valid) == pytest.approx(3 / 5)
    # agree on (0,0), (1,0), (0,2), (1,2), (1,3) = 5 of 7 valid
    assert M.pixel_accuracy(pred, gt, valid) == pytest.approx(5 / 7)
    # without ignoring, the band pixel is a false positive
    assert M.iou(pred, gt) == pytest.approx(3 / 6)


def test_empty_masks():
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    assert M.iou(empty, empty) == 1.0
    assert M.iou(empty, full) == 0.0
    assert M.iou(full, empty) == 0.0
    assert M.pixel_accuracy(empty, empty) == 1.0
    assert M.precision_recall(empty, full) == (1.0, 0.0)
    assert M.precision_recall(full, empty) == (0.0, 1.0)
    # nothing valid at all
    assert M.pixel_accuracy(full, full, np.zeros((3, 3), bool)) == 1.0


def test_fbeta_values():
    # P = 0.5, R = 1: F = 1.3 * 0.5 / (0.3 * 0.5 + 1) = 0.65 / 1.15
    assert M.fbeta(0.5, 1.0) == pytest.approx(0.65 / 1.15)
    assert M.fbeta(0.0, 0.0) == 0.0
    gt = np.array([True, True, False, False])
    curve = M.fbeta_curve(np.array([1.0, 1.0, 1.0, 1.0]), gt)
    assert np.allclose(curve, 0.65 / 1.15)  # a binary map gives the same F at every threshold
    # A soft map: at 0.2 <= t < 0.6 exactly the ground truth is above the threshold.
    curve = M.fbeta_curve(np.array([0.9, 0.6, 0.2, 0.1]), gt)
    assert curve.shape == (255,) and M.max_fbeta(curve) == pytest.approx(1.0)
    assert curve[0] == pytest.approx(0.65 / 1.15)  # t = 0: everything is foreground
    assert curve[200] == pytest.approx(1.3 * 0.5 / (0.3 + 0.5))  # t = 200/255: only the 0.9 pixel, P 1, R 0.5
    assert curve[-1] == 0.0  # t = 254/255: nothing predicted, P 1, R 0


def test_fbeta_curve_respects_valid_and_empty_gt():
    gt = np.array([True, False, False])
    score = np.array([0.9, 0.8, 0.1])
    valid = np.array([True, False, True])  # the false positive at 0.8 is ignored
    assert M.max_fbeta(M.fbeta_curve(score, gt, valid)) == pytest.approx(1.0)
    empty_gt = np.zeros(3, bool)
    curve = M.fbeta_curve(np.array([0.1, 0.2, 0.3]), empty_gt)
    assert curve[0] == 0.0 and curve[-1] == 1.0  # nothing predicted above 0.3 is perfect


def test_dataset_max_fbeta_is_max_of_mean_curve():
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.0, 0.0, 1.0])
    assert M.max_fbeta(np.stack([a, b])) == pytest.approx(0.5)  # not the mean of maxima (1.0)
    assert M.max_fbeta(a) == 1.0


def test_boxes_and_corloc():
    assert M.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert M.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert M.box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    # IoU exactly 0.5 counts as correct
    assert M.corloc_hit((0, 0, 10, 10), [(0, 0, 10, 20)])
    assert not M.corloc_hit((0, 0, 10, 10), [(0, 0, 10, 21)])
    # any ground-truth box will do
    assert M.corloc_hit((0, 0, 10, 10), [(50, 50, 60, 60), (1, 1, 10, 10)])
    assert not M.corloc_hit(None, [(0, 0, 10, 10)])
    assert not M.corloc_hit((0, 0, 10, 10), np.zeros((0, 4)))
    assert M.best_box_iou((0, 0, 10, 10), [(5, 0, 15, 10), (0, 0, 10, 20)]) == pytest.approx(0.5)


def test_bbox_convention_matches_exclusive_pixel_boxes():
    mask = np.zeros((10, 12), bool)
    mask[3:7, 2:5] = True  # rows 3..6, columns 2..4
    box = bbox_of(mask)
    assert box == (2, 3, 5, 7)
    # a COCO box [x, y, x + w, y + h] of the same pixels is the same box
    assert M.box_iou(box, (2.0, 3.0, 2.0 + 3, 3.0 + 4)) == pytest.approx(1.0)
    inst = np.zeros((10, 12), np.uint8)
    inst[3:7, 2:5] = 1
    inst[0:2, 8:12] = 2
    assert boxes_from_mask(inst).tolist() == [[2, 3, 5, 7], [8, 0, 12, 2]]


def test_nmi_ari_hand_computed():
    a = [0, 0, 0, 1, 1, 1]
    b = [0, 0, 1, 1, 2, 2]
    # contingency [[2,1,0],[0,1,2]]: ARI = (2 - 18/15) / (4.5 - 18/15)
    assert M.ari(a, b) == pytest.approx((2 - 1.2) / (4.5 - 1.2))
    # MI = 2/3 ln 2, H(a) = ln 2, H(b) = ln 3
    assert M.nmi(a, b) == pytest.approx((2 / 3 * np.log(2)) / ((np.log(2) + np.log(3)) / 2))
    assert M.ari([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert M.nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    # invariant to renaming labels
    assert M.nmi([0, 0, 1, 2], [7, 7, 3, 5]) == pytest.approx(1.0)
    assert M.ari([0, 0, 1, 2], [7, 7, 3, 5]) == pytest.approx(1.0)
    assert M.nmi([1, 1, 1], [2, 2, 2]) == 1.0 and M.ari([1, 1, 1], [2, 2, 2]) == 1.0
    assert M.nmi([1, 1, 1], [0, 1, 2]) == 0.0


def test_hungarian_miou():
    gt = np.array([0, 0, 1, 1])
    miou, match = M.hungarian_miou(np.array([5, 5, 5, 7]), gt)
    # gt0↔5: 2/3, gt1↔7: 1/2 (gt1↔5 would be 1/4)
    assert miou == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert match == {0: 5, 1: 7}
    assert M.hungarian_miou(np.array([3, 3, 1, 1]), gt)[0] == pytest.approx(1.0)
    # three ground-truth labels, one prediction: two labels stay unmatched (IoU 0)
    miou, _ = M.hungarian_miou(np.zeros(3, int), np.array([0, 1, 2]))
    assert miou == pytest.approx((1 / 3) / 3)
    # valid restricts the pixels
    miou, _ = M.hungarian_miou(np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([True, False, True]))
    assert miou == pytest.approx(1.0)


# -- baselines -------------------------------------------------------------------------------------
def _blobs(sizes, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim)) * 3
    x = np.concatenate([c + 0.1 * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes, strict=False)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return x.astype(np.float32), truth


@pytest.mark.parametrize("fit", [spectral_fit, kmeans_fit])
def test_baselines_separate_blobs(fit):
    x, truth = _blobs([40, 25])
    r = fit(x, k=2, seed=0)
    assert M.ari(r.labels, truth) == pytest.approx(1.0)
    assert r.soft.shape == (65, 2) and np.array_equal(r.soft.argmax(1), r.labels)
    assert np.allclose(r.soft.sum(1), 1.0, atol=1e-5)
    x3, truth3 = _blobs([30, 20, 25], seed=1)
    r3 = fit(torch.from_numpy(x3), k=3, seed=0)
    assert M.ari(r3.labels, truth3) == pytest.approx(1.0)
    assert np.array_equal(fit(x3, k=3, seed=0).labels, r3.labels)  # deterministic


@pytest.mark.parametrize("fit", [spectral_fit, kmeans_fit])
def test_baselines_degenerate_inputs(fit):
    r = fit(np.ones((10, 4), np.float32), k=2)
    assert (r.labels == 0).all() and "one cluster" in r.note
    r = fit(np.random.default_rng(0).normal(size=(3, 4)), k=5)
    assert r.k == 3 and "using k=3" in r.note


@pytest.mark.parametrize("graph_kind", ["deepcut", "tokencut"])
def test_spectral_disconnected_graph(graph_kind):
    # orthogonal blobs: no edge between them (DeepCut's relu graph) or only eps edges (TokenCut's),
    # so the first two Laplacian eigenvalues (almost) coincide; the Fiedler vector must still split them
    rng = np.random.default_rng(0)
    x = np.zeros((100, 8), np.float32)
    x[:60, 0] = 1.0
    x[60:, 1] = 1.0
    x += 0.05 * np.abs(rng.normal(size=x.shape)).astype(np.float32)
    r = spectral_fit(x, k=2, graph_kind=graph_kind)
    assert M.ari(r.labels, np.repeat([0, 1], [60, 40])) == pytest.approx(1.0)


@pytest.mark.parametrize("fit", [spectral_fit, kmeans_fit])
def test_baselines_share_deepcut_orientation_rule(fit):
    # a 12x12 grid whose central 4x4 square has other features: the centre must come out as foreground
    grid = (12, 12)
    rng = np.random.default_rng(0)
    feats = np.tile(rng.normal(size=8), (144, 1))
    centre = np.zeros(grid, bool)
    centre[4:8, 4:8] = True
    feats[centre.ravel()] = rng.normal(size=8)
    feats += 0.01 * rng.normal(size=feats.shape)
    out = run_stages(PatchGraph(torch.from_numpy(feats.astype(np.float32))), grid, SegmentConfig(k=2), clusterer=fit)
    assert np.array_equal(out.labels.reshape(grid) == 1, centre)
    assert out.foreground_labels == [1]


# -- datasets --------------------------------------------------------------------------------------
def _disc_image(size: int, cx: float, cy: float, r: float, fg=(220, 40, 40), bg=(30, 90, 200)):
    yy, xx = np.mgrid[:size, :size]
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    img[inside] = fg
    return img, inside


def make_single(root: Path, n: int = 3, size: int = 96, band: bool = True) -> list[str]:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    stems = []
    for i in range(n):
        img, inside = _disc_image(size, size / 2 + 3 * i, size / 2 - 2 * i, size / 3 + i)
        mask = inside.astype(np.uint8) * 255
        if band:  # the GrabCut convention: 128 on the boundary
            inner = _disc_image(size, size / 2 + 3 * i, size / 2 - 2 * i, size / 3 + i - 2)[1]
            mask[inside & ~inner] = 128
        stem = f"img{i}"
        Image.fromarray(img).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
        stems.append(stem)
    return stems


def test_load_dataset_layouts(tmp_path):
    single = tmp_path / "single"
    make_single(single, n=3)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(single / "images" / "orphan.jpg")
    ds = load_dataset(single, "single")
    assert [s.key for s in ds.samples] == ["img0", "img1", "img2"]
    assert ds.skipped == {"orphan": "no ground-truth mask"}
    assert [s.key for s in load_dataset(single, "single", limit=2).samples] == ["img0", "img1"]
    fg, valid = read_binary_mask(ds.samples[0].mask)
    assert fg.any() and not valid.all()

    (single / "annotations.json").write_text(json.dumps({"img1": {"width": 96, "height": 96, "objects": [
        {"bbox_xyxy": [1.0, 2.0, 30.5, 40.0]}]}}))
    boxes = load_dataset(single, "corloc")
    assert [s.key for s in boxes.samples] == ["img1"]
    assert boxes.samples[0].boxes.tolist() == [[1.0, 2.0, 30.5, 40.0]]
    assert set(boxes.skipped) == {"img0", "img2", "orphan"}
    # COCO's own format: bbox = [x, y, w, h], crowd boxes left out
    (single / "annotations.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "img2.jpg", "width": 96, "height": 96}],
        "annotations": [{"image_id": 7, "bbox": [10, 20, 30, 5], "iscrowd": 0},
                        {"image_id": 7, "bbox": [0, 0, 96, 96], "iscrowd": 1}]}))
    coco = load_dataset(single, "corloc")
    assert [s.key for s in coco.samples] == ["img2"] and coco.samples[0].boxes.tolist() == [[10, 20, 40, 25]]
    assert coco.samples[0].size == (96, 96)

    video = tmp_path / "video"
    for seq in ("b", "a"):
        (video / "images" / seq).mkdir(parents=True)
        (video / "masks" / seq).mkdir(parents=True)
        for f in range(5):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(video / "images" / seq / f"{f:05d}.jpg")
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(video / "masks" / seq / f"{f:05d}.png")
    vds = load_dataset(video, "video", frame_step=2)
    assert [s.key for s in vds.samples] == ["a/00000", "a/00002", "a/00004", "b/00000", "b/00002", "b/00004"]
    assert vds.sequences == ["a", "b"]
    assert len(load_dataset(video, "video", limit=1)) == 5

    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(tmp_path / "missing", "single")
    with pytest.raises(DatasetError, match="one folder per sequence"):
        load_dataset(single, "video")


# -- the CLI ---------------------------------------------------------------------------------------
FAST = ["--backbone", "color", "--resolution", "96", "--epochs", "10", "20", "5", "--quiet"]


def _run(args, capsys):
    rc = main(["eval", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_cli_single_save_and_rescore(tmp_path, capsys):
    data = tmp_path / "data"
    stems = make_single(data, n=3)
    out, masks = tmp_path / "r.json", tmp_path / "masks"
    rc, stdout, _ = _run([data, "--task", "single", *FAST, "--out", out, "--save-masks", masks], capsys)
    assert rc == 0
    assert "| data | DeepCut NCut | 3 |" in stdout  # the summary table
    res = json.loads(out.read_text())
    for key in ("iou", "accuracy", "max_fbeta", "fbeta", "per_image", "config", "backbone", "version"):
        assert key in res
    assert res["backbone"]["name"] == "color" and res["config"]["resolution"] == 96
    assert sorted(res["per_image"]) == stems
    # a clean colour disc covering a third of the image: the foreground must be found (an inverted
    # orientation or misaligned masks would score below 0.3)
    assert res["iou"] > 0.6 and res["accuracy"] > 0.7 and res["max_fbeta"] > 0.6
    assert res["iou"] == pytest.approx(np.mean([v["iou"] for v in res["per_image"].values()]), abs=1e-4)
    saved = np.asarray(Image.open(masks / "img0.png"))
    assert saved.shape == (96, 96) and set(np.unique(saved)) <= {0, 255}

    # the saved masks alone reproduce IoU and accuracy
    out2 = tmp_path / "r2.json"
    rc, _, _ = _run([data, "--task", "single", "--predictions", masks, "--out", out2, "--quiet"], capsys)
    assert rc == 0
    res2 = json.loads(out2.read_text())
    assert res2["iou"] == pytest.approx(res["iou"], abs=1e-4)
    assert res2["accuracy"] == pytest.approx(res["accuracy"], abs=1e-4)


@pytest.mark.parametrize("method", ["spectral", "kmeans"])
def test_cli_baselines(tmp_path, capsys, method):
    data = tmp_path / "data"
    make_single(data, n=2)
    out = tmp_path / "r.json"
    rc, stdout, _ = _run([data, "--task", "single", "--method", method, *FAST, "--out", out], capsys)
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["method"] == method and res["iou"] > 0.75


def test_cli_corloc_video_parts(tmp_path, capsys):
    data = tmp_path / "data"
    make_single(data, n=2, band=False)
    # corloc from instance masks (no annotations.json): the disc's box
    out = tmp_path / "c.json"
    rc, _, _ = _run([data, "--task", "corloc", *FAST, "--out", out], capsys)
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["corloc"] == 1.0 and all(v["correct"] for v in res["per_image"].values())
    # with annotations.json, a box far from the disc makes img1 wrong
    (data / "annotations.json").write_text(json.dumps({
        "img0": {"width": 96, "height": 96, "objects": [{"bbox_xyxy": [0, 0, 10, 10]}, {"bbox_xyxy": list(bbox_of(
            np.asarray(Image.open(data / "masks" / "img0.png")) > 0))}]},
        "img1": {"width": 96, "height": 96, "objects": [{"bbox_xyxy": [0, 0, 10, 10]}]},
    }))
    rc, _, _ = _run([data, "--task", "corloc", *FAST, "--out", out], capsys)
    res = json.loads(out.read_text())
    assert res["per_image"]["img0"]["correct"] and not res["per_image"]["img1"]["correct"]
    assert res["corloc"] == 0.5

    # video: images/<seq>/<frame>
    video = tmp_path / "video"
    for seq in ("s1", "s2"):
        (video / "images" / seq).mkdir(parents=True)
        (video / "masks" / seq).mkdir(parents=True)
        for f in range(2):
            img, inside = _disc_image(64, 30 + 3 * f, 32, 21)
            Image.fromarray(img).save(video / "images" / seq / f"{f:05d}.jpg")
            Image.fromarray(inside.astype(np.uint8) * 255).save(video / "masks" / seq / f"{f:05d}.png")
    out = tmp_path / "v.json"
    rc, stdout, _ = _run([video, "--task", "video", *FAST, "--out", out, "--save-masks", tmp_path / "vm"], capsys)
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["per_sequence"]) == {"s1", "s2"} and res["j"] > 0.6
    assert "s1" in stdout and (tmp_path / "vm" / "s2" / "00001.png").exists()
    # the same frames through DeepCut.segment_video (GNN carried from frame to frame)
    rc, _, _ = _run([video, "--task", "video", "--video-mode", "temporal", *FAST, "--out", out], capsys)
    assert rc == 0
    res_t = json.loads(out.read_text())
    assert res_t["options"]["video_mode"] == "temporal" and len(res_t["per_image"]) == 4 and res_t["j"] > 0.6
    rc, _, err = _run([video, "--task", "video", "--video-mode", "temporal", "--method", "kmeans", *FAST,
                       "--out", out], capsys)
    assert rc == 2 and "deepcut only" in err

    # parts: a patch-aligned square with a yellow top and a red bottom half; stages 2 is the default
    parts = tmp_path / "parts"
    (parts / "images").mkdir(parents=True)
    (parts / "masks").mkdir()
    img = np.empty((128, 128, 3), np.uint8)
    img[:] = (30, 90, 200)
    label = np.zeros((128, 128), np.uint8)
    img[32:64, 32:96], label[32:64, 32:96] = (240, 220, 30), 1
    img[64:96, 32:96], label[64:96, 32:96] = (220, 40, 40), 2
    Image.fromarray(img).save(parts / "images" / "bird.png")
    Image.fromarray(label).save(parts / "masks" / "bird.png")
    out = tmp_path / "p.json"
    fast = [*FAST[:FAST.index("--resolution")], "--resolution", "128", *FAST[FAST.index("--resolution") + 2:]]
    rc, _, _ = _run([parts, "--task", "parts", *fast, "--out", out], capsys)
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["config"]["stages"] == 2 and res["config"]["k"] == 5  # the parts task's defaults
    assert all(0.0 <= res[key] <= 1.0 for key in ("nmi", "miou", "fg_iou")) and -1.0 <= res["ari"] <= 1.0
    # with k = 2 the two halves are the two parts
    rc, _, _ = _run([parts, "--task", "parts", *fast, "-k", "2", "--out", out], capsys)
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["config"]["k"] == 2 and res["fg_iou"] > 0.9
    assert res["nmi"] > 0.9 and res["ari"] > 0.9 and res["miou"] > 0.9


def test_cli_errors(tmp_path, capsys):
    rc, _, err = _run([tmp_path / "nope", "--task", "single", "--backbone", "color", "--out", tmp_path / "r.json"],
                      capsys)
    assert rc == 1 and "no such dataset folder" in err and "Traceback" not in err
    data = tmp_path / "data"
    make_single(data, n=1)
    rc, _, err = _run([data, "--task", "single", "--backbone", "color", "-k", "3", "--out", tmp_path / "r.json"],
                      capsys)
    assert rc == 2 and "foreground" in err
    rc, _, err = _run([data, "--task", "single", "--predictions", tmp_path / "none", "--out", tmp_path / "r.json"],
                      capsys)
    assert rc == 1 and "no such predictions folder" in err


@pytest.mark.parametrize("flags, says", [
    (["--task", "single", "--video-mode", "temporal"], "--video-mode applies only to --task video"),
    (["--task", "single", "--frame-step", "2"], "--frame-step applies only to --task video"),
    (["--task", "corloc", "--objects", "2"], "--objects applies only to --task objects"),
    (["--task", "single", "--spectral-graph", "tokencut"], "--spectral-graph applies only to --method spectral"),
    (["--task", "single", "--predictions", "p", "--method", "kmeans"], "--method applies only to a run that segments"),
])
def test_a_flag_for_another_task_or_method_is_a_usage_error(tmp_path, capsys, flags, says):
    """``--task single --video-mode temporal`` (and the others) were accepted and did nothing: the run scored
    what it would have scored without them. They are now refused before any work."""
    data = tmp_path / "data"
    make_single(data, n=1)
    rc, _, err = _run([data, *flags, *FAST, "--out", tmp_path / "r.json"], capsys)
    assert rc == 2 and says in err and "Traceback" not in err, err
    assert not (tmp_path / "r.json").exists()


def test_report_tables_and_figure(tmp_path):
    def result(method, loss, ious):
        return {"task": "single", "method": method, "dataset": "/x/horses", "config": {"loss": loss},
                "num_images": len(ious), "iou": float(np.mean(ious)), "accuracy": 0.9, "max_fbeta": 0.8,
                "seconds_per_image": 0.5, "per_image": {f"i{j}": {"iou": v} for j, v in enumerate(ious)}}

    rs = [result("deepcut", "ncut", [0.5, 0.7]), result("kmeans", "ncut", [0.2, 0.4])]
    table = tables_by_task(rs)
    assert "| horses | DeepCut NCut | 2 | 60.0 | 90.0 | 80.0 | 0.50 |" in table
    assert "| horses | k-means | 2 | 30.0 |" in table
    png = plot_distributions(rs, tmp_path / "fig.png")
    assert Image.open(png).size[0] > 100
    c = paired_comparison(rs[0], rs[1])
    assert c["images"] == 2 and c["wins"] == 2 and c["losses"] == 0 and c["mean_diff"] == pytest.approx(0.3)
    assert "| horses | IoU | DeepCut NCut − k-means | +30.0 | 2 / 0 |" in comparison_table(rs)
    # a folder shared with other JSON reports: only eval results are read, in method order
    for i, r in enumerate(reversed(rs)):
        (tmp_path / f"r{i}.json").write_text(json.dumps(r))
    (tmp_path / "other.json").write_text(json.dumps({"throughput": 1}))
    loaded = load_results(sorted(tmp_path.glob("*.json")))
    assert [r["method"] for r in loaded] == ["deepcut", "kmeans"]


@pytest.mark.parametrize("annotations, where", [
    ({"img0": {"width": 96, "height": 96, "objects": [{"bbox_xyxy": [1, 2]}]}}, "'img0', object 0"),
    ({"img0": {"objects": [{"bbox_xyxy": [1, 2, 3, 4]}, {"bbox_xyxy": [1, 2, 3, 4]}, {"bbox_xyxy": [5, 6, 7, "x"]}]}},
     "'img0', object 2"),
    ({"img0": {"objects": [{"bbox_xyxy": [[1, 2], [3, 4]]}]}}, "'img0', object 0"),
    ({"img0": {"objects": [{"bbox_xyxy": [10, 2, 3, 4]}]}}, "negative"),
    ({"img0": {"objects": [{"bbox_xyxy": [1, 2, float("nan"), 4]}]}}, "'img0'"),
    ({"img0": {"objects": [{"bbox_xyxy": [True, 2, 3, 4]}]}}, "'img0'"),
    ({"img0": [1, 2, 3, 4]}, "'img0'"),
    ({"img0": {"objects": {"bbox_xyxy": [1, 2, 3, 4]}}}, "objects must be a list"),
    ({"img0": {"objects": [[1, 2, 3, 4]]}}, "object 0"),
    ({"img0": {"width": "wide", "height": 96, "objects": [{"bbox_xyxy": [1, 2, 3, 4]}]}}, "width and height"),
    ({"images": [{"id": 1, "file_name": "img0.png", "width": 96, "height": 96}],
      "annotations": [{"id": 5, "image_id": 1, "bbox": [1, 2]}]}, "annotation 5"),
    ({"images": [{"id": 1, "file_name": "img0.png", "width": 96, "height": 96}],
      "annotations": [{"id": 6, "image_id": 1, "bbox": [1, 2, -3, 4]}]}, "annotation 6"),
])
def test_a_malformed_annotation_box_is_a_clear_error_naming_the_entry(tmp_path, capsys, annotations, where):
    data = tmp_path / "data"
    make_single(data, n=1, band=False)
    (data / "annotations.json").write_text(json.dumps(annotations))
    with pytest.raises(DatasetError, match="annotations.json"):
        load_dataset(data, "corloc")
    rc, _, err = _run([data, "--task", "corloc", *FAST, "--out", tmp_path / "r.json"], capsys)
    assert rc == 1 and "Traceback" not in err and where in err and "annotations.json" in err, err


def test_eval_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    data = tmp_path / "data"
    make_single(data, n=2)
    (tmp_path / "mine.json").write_text("the user's")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    (tmp_path / "preds").mkdir()
    (tmp_path / "preds" / "img1.png").write_bytes(b"the user's")
    for extra in (["--out", tmp_path / "mine.json"], ["--out", data / "masks" / "img0.png"],
                  ["--out", tmp_path / "r.json", "--save-masks", data / "masks"],
                  ["--out", tmp_path / "r.json", "--save-masks", data / "images" / "sub"],
                  ["--out", tmp_path / "r.json", "--save-masks", tmp_path / "preds"]):
        rc, _, err = _run([data, "--task", "single", *FAST, *extra], capsys)
        assert rc == 2 and "Traceback" not in err and ("did not write" in err or "dataset" in err), err
    assert {p: p.read_bytes() for p in before} == before and not (tmp_path / "r.json").exists()
    for _ in range(2):  # its own results and masks it replaces
        rc, _, _ = _run([data, "--task", "single", *FAST, "--out", tmp_path / "r.json", "--save-masks",
                         tmp_path / "mine_masks"], capsys)
        assert rc == 0
    assert sorted(p.name for p in (tmp_path / "mine_masks").iterdir()) == [".deepcut-outputs.json", "img0.png",
                                                                          "img1.png"]


@pytest.mark.parametrize("text", ["[" * 100_000, '{"img0": ' * 50_000])
def test_annotations_or_an_out_nested_too_deep_to_read_are_clear_errors(tmp_path, capsys, text):
    data = tmp_path / "data"
    make_single(data, n=1, band=False)
    (data / "annotations.json").write_text(text)
    with pytest.raises(DatasetError, match="annotations.json: cannot read"):
        load_dataset(data, "corloc")
    rc, _, err = _run([data, "--task", "corloc", *FAST, "--out", tmp_path / "r.json"], capsys)
    assert rc == 1 and "Traceback" not in err and "annotations.json" in err, err
    (data / "annotations.json").unlink()
    (tmp_path / "deep.json").write_text(text)  # not an eval result: never replaced
    rc, _, err = _run([data, "--task", "single", *FAST, "--out", tmp_path / "deep.json"], capsys)
    assert rc == 2 and "did not write" in err and "Traceback" not in err, err
    assert (tmp_path / "deep.json").read_text() == text


def test_save_masks_that_is_a_file_a_dangling_link_or_a_loop_is_a_usage_error_before_any_work(tmp_path, capsys,
                                                                                            monkeypatch):
    import deepcut.cli.eval as eval_cmd

    data = tmp_path / "data"
    make_single(data, n=1)
    (tmp_path / "afile").write_text("the user's")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    monkeypatch.setattr(eval_cmd, "make_model", lambda *a, **k: pytest.fail("the model was loaded"))
    for name in ("afile", "dangling", "loop"):  # were a FileExistsError / RuntimeError traceback after segmenting
        rc, _, err = _run([data, "--task", "single", *FAST, "--out", tmp_path / "r.json", "--save-masks",
                           tmp_path / name], capsys)
        assert rc == 2 and "--save-masks" in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "dangling", "data", "loop"]
    assert (tmp_path / "afile").read_text() == "the user's"


def test_a_mask_of_another_aspect_ratio_is_not_stretched_onto_the_prediction(tmp_path, capsys):
    """An image whose EXIF orientation turns it (DeepCut applies it) beside a mask drawn on the unturned pixels
    was scored after stretching the prediction onto the mask: IoU 0.10 instead of 0.92, no word. Such a sample
    is a failure that says why; a mask at another size of the same aspect ratio is still scored."""
    data = tmp_path / "data"
    make_single(data, n=2, size=96)
    wide = np.zeros((48, 96, 3), np.uint8)
    wide[:, :40] = (220, 40, 40)  # the object on the left of the stored pixels
    pil = Image.fromarray(wide)
    exif = pil.getexif()
    exif[0x0112] = 6  # shown turned by 90 degrees
    pil.save(data / "images" / "turned.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(((wide[..., 0] > 100) * 255).astype(np.uint8)).save(data / "masks" / "turned.png")
    Image.open(data / "masks" / "img1.png").resize((48, 48), Image.NEAREST).save(data / "masks" / "img1.png")
    out = tmp_path / "r.json"
    rc, _, err = _run([data, "--task", "single", *FAST, "--out", out], capsys)
    res = json.loads(out.read_text())
    assert sorted(res["per_image"]) == ["img0", "img1"] and res["per_image"]["img1"]["iou"] > 0.6
    assert "48 x 96 px but the ground truth 96 x 48 px" in res["failures"]["turned"]
    assert "EXIF orientation" in res["failures"]["turned"] and "turned:" in err


def test_save_masks_holds_only_this_runs_masks(tmp_path, capsys):
    """A second ``--save-masks`` run into the folder of a larger one left the first run's other masks beside its
    own, and ``--predictions`` scored the mix as one method. They are removed (and said so); other files
    DeepCut wrote there, e.g. by ``segment``, stay."""
    from deepcut.cli import main as cli_main

    data = tmp_path / "data"
    stems = make_single(data, n=4, size=64)
    masks = tmp_path / "masks"
    assert _run([data, "--task", "single", *FAST, "--out", tmp_path / "a.json", "--save-masks", masks], capsys)[0] == 0
    assert cli_main(["segment", str(data / "images" / "img0.png"), "--out", str(masks), "--backbone", "color",
                     "--resolution", "64"]) == 0
    capsys.readouterr()
    rc, _, err = _run([data, "--task", "single", *FAST, "--method", "kmeans", "--limit", "2", "--out",
                       tmp_path / "b.json", "--save-masks", masks], capsys)
    assert rc == 0 and "--save-masks: removed 2 masks an earlier run wrote there and this run does not" in err
    assert sorted(p.name for p in masks.glob("img?.png")) == [f"{s}.png" for s in stems[:2]]
    assert (masks / "img0_overlay.png").is_file() and (masks / "results.json").is_file()


def test_ctrl_c_keeps_the_scores_of_the_images_done(tmp_path, capsys, monkeypatch):
    """Ctrl-C during ``eval`` wrote no results file: every score was lost. The images scored before it are
    written, marked ``interrupted``, and the exit code is 130."""
    import deepcut.evaluation.runner as runner

    data = tmp_path / "data"
    make_single(data, n=4, size=64)
    real = runner.segmenter

    def stopping(*args, **kwargs):
        method, calls = real(*args, **kwargs), []

        def run(sample):
            calls.append(sample.key)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return method(sample)
        return run

    monkeypatch.setattr(runner, "segmenter", stopping)
    out = tmp_path / "r.json"
    rc, _, err = _run([data, "--task", "single", *FAST, "--out", out], capsys)
    assert rc == 130 and f"interrupted after 2 of 4 images; their scores in {out}" in err
    res = json.loads(out.read_text())
    assert sorted(res["per_image"]) == ["img0", "img1"] and res["interrupted"] == {"scored": 2, "of": 4}
    ious = [v["iou"] for v in res["per_image"].values()]
    assert res["num_images"] == 2 and res["iou"] == pytest.approx(np.mean(ious), abs=1e-4)
