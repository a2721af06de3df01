"""Scoring of the ``objects`` task: several predicted objects per image against COCO-style ground
truth (boxes from ``annotations.json`` or the instance-id mask, and the instance-id mask itself).

Per image, for predicted objects with a mask ``(H, W)``, a box and a score:

* ``correct`` (CorLoc): the best-scoring object's box has IoU >= 0.5 with any ground-truth box;
* ``matched`` / ``recall``: ground-truth boxes found at IoU >= 0.5, matched one-to-one the COCO way —
  predictions in decreasing score, each takes the unmatched ground-truth box it overlaps most;
* ``mask_ious``: for each ground-truth instance (each non-zero value of the instance-id mask), the
  best IoU of any predicted mask (None without a mask).

Over the dataset (:func:`summarize_objects`): ``corloc`` (mean of ``correct``), ``recall`` (matched
boxes over all ground-truth boxes, i.e. COCO's recall at IoU 0.5 with up to N detections per image),
``recall_image`` (mean per-image recall), ``mask_iou`` (mean best mask IoU over all ground-truth
instances) and ``num_objects`` (mean predictions per image).

This module only scores; :mod:`deepcut.evaluation.object_methods` makes the predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from ..utils.masks import bbox_of
from . import metrics as M
from .datasets import Sample, read_mask, sample_boxes

#: A predicted box localises / finds a ground-truth box at this IoU or more.
IOU_THRESHOLD = 0.5


class ScoredObject(Protocol):
    """What scoring reads of a predicted object (e.g. a :class:`deepcut.tasks.discover.DiscoveredObject`)."""

    mask: np.ndarray    # (H, W) bool
    bbox: tuple[int, int, int, int]
    score: float


@dataclass
class SavedObject:
    """An object read back from a saved label map (``--predictions``)."""

    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    score: float


def by_score(objects: Sequence[ScoredObject]) -> list[ScoredObject]:
    """The objects in decreasing score (stable: ties keep their order)."""
    return sorted(objects, key=lambda o: -float(o.score))


def object_labels(objects: Sequence[ScoredObject], shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` int32 map: 0 where no object, ``i`` on the ``i``-th object in decreasing score
    (where objects overlap the better-scoring one wins). Saved by ``--save-masks``."""
    labels = np.zeros(shape, np.int32)
    ranked = by_score(objects)
    for i in range(len(ranked), 0, -1):
        labels[ranked[i - 1].mask] = i
    return labels


def objects_from_labels(labels: np.ndarray) -> list[SavedObject]:
    """The objects of an :func:`object_labels` map, in rank order; object ``i`` of ``m`` gets the
    score ``1 - (i - 1) / m`` (only the order of saved objects is known)."""
    ids = [int(v) for v in np.unique(labels) if v > 0]
    out = []
    for rank, v in enumerate(ids):
        mask = labels == v
        box = bbox_of(mask)
        assert box is not None  # v is in labels
        out.append(SavedObject(mask, box, 1.0 - rank / len(ids)))
    return out


def match_boxes(pred_boxes: Sequence[Sequence[float]], gt_boxes: np.ndarray,
                threshold: float = IOU_THRESHOLD) -> int:
    """How many ground-truth boxes ``(M, 4)`` are matched one-to-one by ``pred_boxes`` (given in
    decreasing score): each prediction takes the unmatched ground-truth box of highest IoU >= ``threshold``."""
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    free = np.ones(len(gt), bool)
    for box in pred_boxes:
        ious = np.array([M.box_iou(box, g) if f else -1.0 for g, f in zip(gt, free, strict=False)])
        if ious.size and ious.max() >= threshold:
            free[int(np.argmax(ious))] = False
    return int((~free).sum())


def _fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool mask resized (nearest) to ``shape``."""
    if mask.shape == tuple(shape):
        return mask
    img = Image.fromarray(mask.astype(np.uint8)).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(img) > 0


def best_mask_ious(objects: Sequence[ScoredObject], instances: np.ndarray) -> list[float]:
    """For each non-zero id of an instance map ``(H, W)``, the best IoU of any object's mask."""
    masks = [_fit_mask(o.mask, instances.shape) for o in objects]
    out = []
    for v in np.unique(instances):
        if v == 0:
            continue
        gt = instances == v
        out.append(max((M.iou(m, gt) for m in masks), default=0.0))
    return out


def score_objects(objects: Sequence[ScoredObject], sample: Sample, image_size: tuple[int, int]) -> dict:
    """The per-image values of the task (see the module doc) for objects on an image of
    ``image_size = (width, height)``."""
    ranked = by_score(objects)
    boxes = sample_boxes(sample, image_size)
    best = ranked[0].bbox if ranked else None
    box_iou = M.best_box_iou(best, boxes)
    matched = match_boxes([o.bbox for o in ranked], boxes)
    values: dict = {"correct": bool(box_iou >= IOU_THRESHOLD), "box_iou": box_iou,
                    "box": None if best is None else [int(v) for v in best],
                    "num_objects": len(ranked), "gt_boxes": int(len(boxes)), "matched": matched,
                    "recall": matched / len(boxes) if len(boxes) else float("nan"),
                    "scores": [float(o.score) for o in ranked], "mask_ious": None}
    if sample.mask is not None:
        instances = read_mask(sample.mask)
        values["mask_ious"] = best_mask_ious(ranked, instances[..., 0] if instances.ndim == 3 else instances)
    return values


def summarize_objects(per_image: Sequence[dict]) -> dict:
    """Dataset means of the task from the per-image values of :func:`score_objects`."""
    gt = sum(v["gt_boxes"] for v in per_image)
    ious = [x for v in per_image if v.get("mask_ious") is not None for x in v["mask_ious"]]
    with_masks = any(v.get("mask_ious") is not None for v in per_image)
    return {
        "corloc": M.mean([float(v["correct"]) for v in per_image]),
        "recall": sum(v["matched"] for v in per_image) / gt if gt else float("nan"),
        "recall_image": M.mean([v["recall"] for v in per_image]),
        "mask_iou": M.mean(ious) if with_masks else None,
        "box_iou": M.mean([v["box_iou"] for v in per_image]),
        "num_objects": M.mean([float(v["num_objects"]) for v in per_image]),
        "gt_objects": int(gt),
    }
