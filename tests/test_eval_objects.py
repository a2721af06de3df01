"""The ``objects`` evaluation task: box matching, scores, a tiny COCO-style folder through the eval CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepcut.cli import main
from deepcut.evaluation.datasets import Sample, load_dataset
from deepcut.evaluation.object_methods import prediction_from_objects
from deepcut.evaluation.objects import (
    best_mask_ious,
    match_boxes,
    object_labels,
    objects_from_labels,
    score_objects,
    summarize_objects,
)
from deepcut.evaluation.report import load_results, tables_by_task
from deepcut.utils.masks import bbox_of

FAST = ["--backbone", "color", "--resolution", "96", "--quiet"]
#: (y0, y1, x0, x1, colour) of the objects of each generated image, on the 8-pixel patch grid.
SCENES = {
    "a": [(16, 48, 8, 40, (220, 30, 30)), (56, 88, 56, 88, (240, 220, 40))],
    "b": [(8, 32, 56, 88, (30, 200, 60)), (48, 80, 16, 48, (220, 30, 30)), (64, 88, 64, 88, (240, 220, 40))],
}


@dataclass
class Obj:
    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    score: float


def obj(y0: int, y1: int, x0: int, x1: int, score: float, size: int = 96) -> Obj:
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return Obj(m, bbox_of(m), score)


def make_coco(root: Path, coco_json: bool = True) -> None:
    """``root/images/<stem>.png``, ``root/masks/<stem>.png`` (instance ids) and, if ``coco_json``,
    ``root/annotations.json`` in COCO's instances format."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    images, anns = [], []
    for i, (stem, objects) in enumerate(SCENES.items(), start=1):
        img = np.empty((96, 96, 3), np.uint8)
        img[:] = (40, 60, 200)
        ids = np.zeros((96, 96), np.uint8)
        for j, (y0, y1, x0, x1, colour) in enumerate(objects, start=1):
            img[y0:y1, x0:x1] = colour
            ids[y0:y1, x0:x1] = j
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
        Image.fromarray(img).save(root / "images" / f"{stem}.png")
        Image.fromarray(ids).save(root / "masks" / f"{stem}.png")
        images.append({"id": i, "file_name": f"{stem}.png", "width": 96, "height": 96})
    if coco_json:
        (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns}))


def _run(args, capsys):
    rc = main(["eval", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# -- scoring ---------------------------------------------------------------------------------------
def test_match_boxes_is_one_to_one_in_score_order():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    assert match_boxes([[0, 0, 10, 10], [0, 0, 10, 10]], gt) == 1  # two predictions, one object
    assert match_boxes([[0, 0, 10, 10], [20, 20, 30, 31]], gt) == 2
    assert match_boxes([[0, 0, 10, 30]], gt) == 0  # IoU 1/3 < 0.5
    assert match_boxes([], gt) == 0
    # the first (best-scoring) prediction takes the box it overlaps most, the second the other one
    both = np.array([[0, 0, 10, 10], [0, 0, 10, 12]], float)
    assert match_boxes([[0, 0, 10, 12], [0, 0, 10, 10]], both) == 2


def test_object_label_maps_keep_the_score_order():
    objs = [obj(0, 8, 0, 8, 0.2), obj(16, 32, 16, 32, 0.9), obj(40, 48, 40, 48, 0.5)]
    labels = object_labels(objs, (96, 96))
    assert labels[20, 20] == 1 and labels[44, 44] == 2 and labels[4, 4] == 3 and labels[90, 90] == 0
    back = objects_from_labels(labels)
    assert [o.bbox for o in back] == [(16, 16, 32, 32), (40, 40, 48, 48), (0, 0, 8, 8)]
    assert [o.score for o in back] == sorted((o.score for o in back), reverse=True)
    pred = prediction_from_objects(objs, (96, 96))
    assert pred.bbox == (16, 16, 32, 32) and [o.score for o in pred.objects] == [0.9, 0.5, 0.2]
    assert pred.foreground.sum() == sum(o.mask.sum() for o in objs)


def test_score_objects_hand_computed(tmp_path):
    ids = np.zeros((96, 96), np.uint8)
    ids[0:32, 0:32] = 1
    ids[48:96, 48:96] = 2
    Image.fromarray(ids).save(tmp_path / "m.png")
    sample = Sample("m", tmp_path / "m.png", tmp_path / "m.png")  # boxes from the instance ids
    # the best-scoring object misses both objects, the second finds object 2 exactly
    objs = [obj(0, 32, 48, 96, 0.9), obj(48, 96, 48, 96, 0.6)]
    v = score_objects(objs, sample, (96, 96))
    assert not v["correct"] and v["box"] == [48, 0, 96, 32]
    assert v["gt_boxes"] == 2 and v["matched"] == 1 and v["recall"] == 0.5 and v["num_objects"] == 2
    assert v["mask_ious"] == pytest.approx([0.0, 1.0])
    assert best_mask_ious([obj(0, 16, 0, 32, 1.0)], ids) == pytest.approx([0.5, 0.0])
    none = score_objects([], sample, (96, 96))
    assert not none["correct"] and none["matched"] == 0 and none["mask_ious"] == [0.0, 0.0]
    # pooled over the dataset: 1 of 4 boxes, mask IoU over the 4 objects
    s = summarize_objects([v, none])
    assert s["corloc"] == 0.0 and s["recall"] == 0.25 and s["gt_objects"] == 4
    assert s["mask_iou"] == pytest.approx(0.25) and s["num_objects"] == 1.0


def test_objects_dataset_reads_coco_boxes_and_instance_masks(tmp_path):
    make_coco(tmp_path / "d")
    ds = load_dataset(tmp_path / "d", "objects")
    assert [s.key for s in ds.samples] == ["a", "b"]
    assert ds.samples[0].boxes.tolist() == [[8, 16, 40, 48], [56, 56, 88, 88]]
    assert ds.samples[1].mask.name == "b.png" and ds.samples[1].size == (96, 96)


# -- the CLI ---------------------------------------------------------------------------------------
def test_cli_objects_deepcut_spectral_and_rescoring(tmp_path, capsys):
    data = tmp_path / "data"
    make_coco(data)
    out, masks = tmp_path / "dc.json", tmp_path / "masks"
    rc, stdout, _ = _run([data, "--task", "objects", *FAST, "--out", out, "--save-masks", masks], capsys)
    assert rc == 0 and "Recall@0.5" in stdout
    res = json.loads(out.read_text())
    assert res["options"]["objects"] == 3 and res["num_images"] == 2 and res["gt_objects"] == 5
    assert res["corloc"] == 1.0 and res["recall"] == 1.0 and res["mask_iou"] > 0.9
    assert all(v["num_objects"] <= 3 for v in res["per_image"].values())
    assert np.asarray(Image.open(masks / "b.png")).max() == res["per_image"]["b"]["num_objects"]
    # the saved object maps give the same numbers
    rc, _, _ = _run([data, "--task", "objects", "--predictions", masks, "--out", tmp_path / "re.json"], capsys)
    again = json.loads((tmp_path / "re.json").read_text())
    assert rc == 0 and (again["corloc"], again["recall"], again["mask_iou"]) == (
        res["corloc"], res["recall"], res["mask_iou"])

    # the spectral baseline runs the same procedure on the same features
    rc, _, _ = _run([data, "--task", "objects", *FAST, "--method", "spectral", "--out", tmp_path / "sp.json"],
                    capsys)
    sp = json.loads((tmp_path / "sp.json").read_text())
    assert rc == 0 and sp["method"] == "spectral" and sp["recall"] == 1.0
    # one object per image: recall is at most 1 box per image, CorLoc unchanged
    rc, _, _ = _run([data, "--task", "objects", *FAST, "--objects", "1", "--out", tmp_path / "one.json"], capsys)
    one = json.loads((tmp_path / "one.json").read_text())
    assert rc == 0 and one["recall"] == pytest.approx(2 / 5) and one["corloc"] == 1.0
    table = tables_by_task(load_results([out, tmp_path / "sp.json"]))
    assert "### objects" in table and "| data | spectral NCut | 2 | 100.0 | 100.0 |" in table


def test_cli_objects_auto_and_boxes_from_masks(tmp_path, capsys):
    data = tmp_path / "data"
    make_coco(data, coco_json=False)  # boxes from the instance-id masks
    out = tmp_path / "auto.json"
    rc, stdout, _ = _run([data, "--task", "objects", *FAST, "--objects", "auto", "--out", out], capsys)
    assert rc == 0 and "DeepCut CC auto" in stdout
    res = json.loads(out.read_text())
    assert res["options"]["objects"] == "auto" and res["config"]["loss"] == "cc"
    assert res["recall"] >= 0.8 and res["gt_objects"] == 5
    with pytest.raises(SystemExit) as exit_info:
        _run([data, "--task", "objects", *FAST, "--objects", "-1", "--out", out], capsys)
    assert exit_info.value.code == 2 and "--objects" in capsys.readouterr().err
