"""Evaluate a segmentation method over a dataset: predictions → per-image metrics → means.

A method is a function ``Sample → Prediction``: :func:`segmenter` builds one for DeepCut or a
baseline (same features, same post-processing), :func:`saved_predictions` reads masks written
earlier by ``--save-masks`` (so anyone can recompute the numbers from the masks alone).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import SegmentConfig
from ..errors import ConfigError, DeepCutError
from ..features.image import load_image
from ..segmentation.result import Segmentation
from . import metrics as M
from .baselines import SPECTRAL_GRAPHS, baseline
from .datasets import Dataset, DatasetError, Sample, read_binary_mask, read_mask, sample_boxes
from .objects import score_objects, summarize_objects
from .prediction import Method, Prediction
from .saved import mask_path, recorded_masks, save_prediction

METHODS = ("deepcut", "spectral", "kmeans")

#: The headline numbers of each task, in the order they are reported (``RESULTS.json`` top-level keys).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "single": ("iou", "accuracy", "max_fbeta"),
    "corloc": ("corloc",),
    "video": ("j",),
    "parts": ("nmi", "ari", "miou"),
    "objects": ("corloc", "recall", "mask_iou"),
}




# -- predictions -----------------------------------------------------------------------------------
def foreground_score(seg: Segmentation) -> np.ndarray | None:
    """Soft foreground map ``(H, W)`` float32 of a segmentation with a foreground, else None.

    The patch-level foreground probability ``s = 1 - soft[..., 0]`` is made consistent with the final
    mask (patches outside it get ``min(s, 1 - s)``, inside ``max(s, 1 - s)``, which changes nothing
    unless post-processing such as ``largest_component`` moved them), then upsampled bilinearly.
    """
    if seg.foreground is None:
        return None
    s = 1.0 - seg.soft[..., 0].astype(np.float32)
    fg_patch = seg.patch_labels != 0
    s = np.where(fg_patch, np.maximum(s, 1.0 - s), np.minimum(s, 1.0 - s))
    height, width = seg.labels.shape
    up = F.interpolate(torch.from_numpy(np.ascontiguousarray(s))[None, None], size=(height, width),
                       mode="bilinear", align_corners=False)
    return up[0, 0].clamp_(0.0, 1.0).numpy()


def prediction_from_segmentation(seg: Segmentation, seconds: float | None = None) -> Prediction:
    """A :class:`Prediction` from a :class:`~deepcut.Segmentation`."""
    return Prediction(
        labels=seg.labels, foreground=seg.foreground, score=foreground_score(seg), bbox=seg.bbox,
        seconds=float(seg.timings.get("total", 0.0) if seconds is None else seconds), notes=list(seg.notes),
    )


def segment_with(model, image, cfg: SegmentConfig, method: str = "deepcut",
                 spectral_graph: str = "deepcut") -> Segmentation:
    """Segment ``image`` with DeepCut's GNN or a baseline clustering of the same features.

    Baselines replace only the clustering of :func:`deepcut.stages.run.run_stages`: the features (same
    backbone, layer, facet, resolution, stride), the stages, the foreground orientation rule,
    ``largest_component``, upsampling and boxes are DeepCut's own code.
    """
    if method == "deepcut":
        return model.segment(image, cfg)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    return model.segment_with(image, cfg, baseline(method, spectral_graph))


def segmenter(model, cfg: SegmentConfig, method: str = "deepcut", spectral_graph: str = "deepcut") -> Method:
    """A method that segments each sample's image with ``model`` (a :class:`~deepcut.DeepCut`)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if spectral_graph not in SPECTRAL_GRAPHS:
        raise ConfigError(f"spectral graph must be one of {SPECTRAL_GRAPHS}, got {spectral_graph!r}")

    def run(sample: Sample) -> Prediction:
        t = time.perf_counter()
        seg = segment_with(model, load_image(sample.image), cfg, method, spectral_graph)
        return prediction_from_segmentation(seg, time.perf_counter() - t)

    return run


def video_segmenter(model, cfg: SegmentConfig, samples: list[Sample]) -> Method:
    """A method that segments each video sequence with :meth:`DeepCut.segment_video` (the GNN of each
    frame warm-starts the next) and answers frame by frame. Only the foreground is kept.

    Raises:
        ConfigError: this version of DeepCut has no ``segment_video``.
    """
    if not hasattr(model, "segment_video"):
        raise ConfigError("this DeepCut has no segment_video(); use --video-mode frames")
    by_seq: dict[str | None, list[Sample]] = {}
    for s in samples:
        by_seq.setdefault(s.sequence, []).append(s)
    state: dict = {"sequence": object(), "predictions": {}}

    def run(sample: Sample) -> Prediction:
        if sample.sequence != state["sequence"]:
            frames = by_seq[sample.sequence]
            state["sequence"], state["predictions"] = sample.sequence, {}
            t = time.perf_counter()
            preds = []
            for seg in model.segment_video([f.image for f in frames], cfg, max_frames=len(frames)):
                preds.append(Prediction(seg.labels, seg.foreground, None, seg.bbox, notes=list(seg.notes)))
            if len(preds) != len(frames):
                raise DatasetError(f"{sample.sequence}: segment_video returned {len(preds)} of {len(frames)} frames")
            seconds = (time.perf_counter() - t) / len(frames)
            for f, p in zip(frames, preds, strict=False):
                p.seconds = seconds
                state["predictions"][f.key] = p
        return state["predictions"].pop(sample.key)

    return run


# -- scoring ---------------------------------------------------------------------------------------
def _resize(arr: np.ndarray, shape: tuple[int, int], nearest: bool) -> np.ndarray:
    """Resize an ``(H, W)`` map to the ground truth's ``shape`` (nearest for labels/masks, bilinear for scores).

    Raises:
        DeepCutError: the two differ in aspect ratio (by more than a pixel's rounding and 2 %): stretching would
            score a prediction against another picture (e.g. an image whose EXIF orientation turns it, which
            DeepCut applies, beside a mask drawn on the unturned pixels).
    """
    if arr.shape == tuple(shape):
        return arr
    (h, w), (gh, gw) = arr.shape, shape
    if abs(h * gw / max(w, 1) - gh) > max(1.0, 0.02 * gh):
        turned = " (is the image turned by its EXIF orientation, which DeepCut applies?)" if (h, w) == (gw, gh) else ""
        raise DeepCutError(f"the prediction is {w} x {h} px but the ground truth {gw} x {gh} px, another aspect "
                           f"ratio{turned}: not scored")
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    if nearest:
        out = F.interpolate(t, size=tuple(shape), mode="nearest")[0, 0].numpy()
        return out.astype(arr.dtype)
    return F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)[0, 0].numpy()


def score_single(pred: Prediction, sample: Sample) -> tuple[dict, np.ndarray]:
    """IoU, accuracy, F-beta of the mask and max F-beta of the soft map: ``(values, fbeta_curve (T,))``."""
    gt, valid = read_binary_mask(sample.mask_file)
    if pred.foreground is None:
        raise ConfigError("this task needs a foreground/background split: use -k 2 or --stages 2")
    fg = _resize(pred.foreground, gt.shape, nearest=True).astype(bool)
    score = fg.astype(np.float32) if pred.score is None else _resize(pred.score, gt.shape, nearest=False)
    curve = M.fbeta_curve(score, gt, valid)
    p, r = M.precision_recall(fg, gt, valid)
    values = {
        "iou": M.iou(fg, gt, valid),
        "accuracy": M.pixel_accuracy(fg, gt, valid),
        "max_fbeta": M.max_fbeta(curve),
        "fbeta": M.fbeta(p, r),
    }
    return values, curve


def score_corloc(pred: Prediction, sample: Sample, image_size: tuple[int, int]) -> dict:
    """Whether the predicted box localises an object, and its best IoU with a ground-truth box."""
    if pred.foreground is None:
        raise ConfigError("this task needs a foreground/background split: use -k 2 or --stages 2")
    boxes = sample_boxes(sample, image_size)
    best = M.best_box_iou(pred.bbox, boxes)
    return {"correct": bool(best >= 0.5), "box_iou": best,
            "box": None if pred.bbox is None else [int(v) for v in pred.bbox]}


def score_parts(pred: Prediction, sample: Sample) -> dict:
    """NMI and ARI of the part labels inside the ground-truth foreground; Hungarian mIoU on the image."""
    gt = read_mask(sample.mask_file).astype(np.int64)
    labels = _resize(pred.labels, gt.shape, nearest=True).astype(np.int64)
    inside = gt > 0
    miou, matching = M.hungarian_miou(labels, gt)
    values = {
        "nmi": M.nmi(labels[inside], gt[inside]) if inside.any() else float("nan"),
        "ari": M.ari(labels[inside], gt[inside]) if inside.any() else float("nan"),
        "miou": miou,
        "fg_iou": M.iou(labels > 0, inside),
        "matching": {str(g): p for g, p in matching.items()},
    }
    return values


# -- the loop --------------------------------------------------------------------------------------
def _round(v):
    if isinstance(v, float):
        return None if np.isnan(v) else round(v, 5)
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def score_prediction(pred: Prediction, sample: Sample, task: str) -> tuple[dict, np.ndarray | None]:
    """The metrics of one prediction: ``(values, F-beta curve or None)``."""
    if task == "single":
        return score_single(pred, sample)
    if task == "video":
        gt, valid = read_binary_mask(sample.mask_file)
        if pred.foreground is None:
            raise ConfigError("this task needs a foreground/background split: use -k 2 or --stages 2")
        fg = _resize(pred.foreground, gt.shape, nearest=True).astype(bool)
        return {"j": M.iou(fg, gt, valid)}, None
    if task == "corloc":
        h, w = pred.labels.shape
        return score_corloc(pred, sample, (w, h)), None
    if task == "objects":
        h, w = pred.labels.shape
        return score_objects(pred.objects or [], sample, (w, h)), None
    return score_parts(pred, sample), None


def summarize(task: str, dataset: Dataset, per_image: dict[str, dict], curves: list[np.ndarray]) -> dict:
    """The task's means over the scored samples (see :func:`evaluate`)."""
    out: dict = {"task": task, "num_images": len(per_image)}
    vals = list(per_image.values())
    if task == "single":
        out["iou"] = M.mean([v["iou"] for v in vals])
        out["accuracy"] = M.mean([v["accuracy"] for v in vals])
        out["max_fbeta"] = M.max_fbeta(np.stack(curves)) if curves else float("nan")
        out["fbeta"] = M.mean([v["fbeta"] for v in vals])
    elif task == "corloc":
        out["corloc"] = M.mean([float(v["correct"]) for v in vals])
        out["box_iou"] = M.mean([v["box_iou"] for v in vals])
    elif task == "video":
        by_seq: dict[str | None, list[float]] = {}
        for s in dataset.samples:
            if s.key in per_image:
                by_seq.setdefault(s.sequence, []).append(per_image[s.key]["j"])
        per_seq = {seq: M.mean(js) for seq, js in by_seq.items()}
        out["j"] = M.mean(list(per_seq.values()))
        out["j_frames"] = M.mean([v["j"] for v in vals])
        out["per_sequence"] = {seq: {"j": j, "frames": len(by_seq[seq])} for seq, j in per_seq.items()}
    elif task == "objects":
        out.update(summarize_objects(vals))
    else:
        for key in ("nmi", "ari", "miou", "fg_iou"):
            out[key] = M.mean([v[key] for v in vals])
    return out


def evaluate(dataset: Dataset, method: Method, save_masks: str | Path | None = None,
             progress: bool = True, desc: str = "evaluating") -> dict:
    """Run ``method`` on every sample of ``dataset`` and score it.

    Returns a JSON-ready dict: the task's headline means under the keys of :data:`TASK_METRICS`
    (plus secondary means), ``num_images``, ``seconds_per_image``, ``per_image`` values,
    ``per_sequence`` J (video), ``failures`` (key → message) and ``skipped`` (from the dataset).
    A sample that fails (unreadable image or mask) is reported and left out of the means.

    Raises:
        KeyboardInterrupt: Ctrl-C during the run, raised again once the images done are summarised: its
            ``partial`` attribute holds the same dict for them, with ``interrupted`` ``{"scored", "of"}``.
    """
    from tqdm import tqdm

    task = dataset.task
    per_image: dict[str, dict] = {}
    curves: list[np.ndarray] = []
    failures: dict[str, str] = {}
    bar = tqdm(dataset.samples, desc=desc, unit="img", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    headline = TASK_METRICS[task][0]
    running: list[float] = []
    stopped: KeyboardInterrupt | None = None
    with recorded_masks(save_masks, dataset.samples) as removed:
        if removed:
            bar.write(f"--save-masks: removed {len(removed)} masks an earlier run wrote there and this run does not "
                      f"(e.g. {removed[0]})", file=sys.stderr)
        for sample in bar:
            try:
                pred = method(sample)
                values, curve = score_prediction(pred, sample, task)
                if save_masks is not None:
                    save_prediction(pred, mask_path(save_masks, sample.key), task)
            except KeyboardInterrupt as e:  # Ctrl-C (or SIGTERM from the CLI): the images scored so far are kept
                stopped = e
                break
            except ConfigError:
                raise
            except (DeepCutError, OSError, MemoryError) as e:
                failures[sample.key] = "out of memory" if isinstance(e, MemoryError) else str(e)
                bar.write(f"error: {sample.key}: {failures[sample.key]}", file=sys.stderr)
                continue
            if curve is not None:
                curves.append(curve)
            values["seconds"] = pred.seconds
            if pred.notes:
                values["notes"] = pred.notes
            per_image[sample.key] = values
            running.append(float(values["correct" if task in ("corloc", "objects") else headline]))
            bar.set_postfix({headline: f"{np.mean(running):.3f}"}, refresh=False)
    bar.close()
    out = summarize(task, dataset, per_image, curves)
    out["seconds_per_image"] = M.mean([v["seconds"] for v in per_image.values()])
    out["per_image"] = per_image
    out["failures"] = failures
    out["skipped"] = dict(dataset.skipped)
    if stopped is not None:
        out["interrupted"] = {"scored": len(per_image) + len(failures), "of": len(dataset.samples)}
        stopped.partial = _round(out)  # type: ignore[attr-defined]  # for the caller to keep
        raise stopped
    return _round(out)
