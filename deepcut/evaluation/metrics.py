"""Segmentation metrics: pure functions of numpy arrays.

Conventions (the ones of TokenCut / Deep Spectral Methods, which DeepCut's paper follows):

* single object: IoU and pixel accuracy of the binary foreground, and max F-beta (β² = 0.3) over
  255 thresholds of a soft foreground map (``score > t`` for ``t = 0, 1/255, … 254/255``). Pixels
  outside ``valid`` (e.g. GrabCut's 128 "unknown" band) are ignored by every metric.
* an empty prediction of an empty ground truth is perfect (IoU 1, precision 1, recall 1);
* boxes are ``(x0, y0, x1, y1)`` in continuous pixel coordinates: pixel ``(x, y)`` covers
  ``[x, x+1) × [y, y+1)``, so a box of integer pixel indices has exclusive ``x1``/``y1``
  (like :attr:`deepcut.Segmentation.bbox` and COCO's ``x + w``, ``y + h``);
* parts: NMI (arithmetic normalisation) and ARI of two labelings, and mIoU after a one-to-one
  Hungarian matching of predicted to ground-truth labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

from ..utils.matching import best_matching, iou_matrix

#: β² of the F-measure used by saliency / single-object benchmarks.
BETA2 = 0.3
#: Thresholds of the soft foreground map for max F-beta: 0, 1/255, … 254/255 (``score > t``).
THRESHOLDS = np.arange(255, dtype=np.float64) / 255.0


def _check_same_shape(*arrays: np.ndarray | None) -> None:
    shapes = {np.shape(a) for a in arrays if a is not None}
    if len(shapes) > 1:
        raise ValueError(f"arrays must have the same shape, got {sorted(shapes)}")


def _valid(valid: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, bool) if valid is None else np.asarray(valid, bool)


# -- ground truth ----------------------------------------------------------------------------------
def binary_target(mask: np.ndarray, ignore_value: int | None = 128) -> tuple[np.ndarray, np.ndarray]:
    """A ground-truth mask ``(H, W)`` → ``(foreground, valid)``, both ``(H, W)`` bool.

    0/1 masks: foreground is ``> 0``. 8-bit masks (maximum above 1): foreground is ``> 128`` and the
    pixels equal to ``ignore_value`` (GrabCut's unlabelled boundary band) are not valid.
    """
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    if m.dtype == np.bool_ or m.max(initial=0) <= 1:
        return m > 0, np.ones(m.shape, bool)
    valid = np.ones(m.shape, bool) if ignore_value is None else m != ignore_value
    return m > 128, valid


# -- single object ---------------------------------------------------------------------------------
def iou(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Intersection over union of two boolean masks ``(H, W)`` over the ``valid`` pixels.

    Both empty: 1.0.
    """
    _check_same_shape(pred, gt, valid)
    v = _valid(valid, np.shape(gt))
    p = np.asarray(pred, bool) & v
    g = np.asarray(gt, bool) & v
    union = np.count_nonzero(p | g)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(p & g) / union)


def pixel_accuracy(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Fraction of ``valid`` pixels where the boolean masks ``(H, W)`` agree (1.0 if none is valid)."""
    _check_same_shape(pred, gt, valid)
    v = _valid(valid, np.shape(gt))
    n = np.count_nonzero(v)
    if n == 0:
        return 1.0
    return float(np.count_nonzero((np.asarray(pred, bool) == np.asarray(gt, bool)) & v) / n)


def precision_recall(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """Precision and recall of a boolean prediction ``(H, W)``; 1.0 where the denominator is empty."""
    _check_same_shape(pred, gt, valid)
    v = _valid(valid, np.shape(gt))
    p = np.asarray(pred, bool) & v
    g = np.asarray(gt, bool) & v
    tp = np.count_nonzero(p & g)
    n_p, n_g = np.count_nonzero(p), np.count_nonzero(g)
    return (tp / n_p if n_p else 1.0), (tp / n_g if n_g else 1.0)


def fbeta(precision: np.ndarray | float, recall: np.ndarray | float, beta2: float = BETA2) -> np.ndarray | float:
    """F-beta from precision and recall (scalars or arrays); 0 where both are 0."""
    p = np.asarray(precision, np.float64)
    r = np.asarray(recall, np.float64)
    den = beta2 * p + r
    f = np.where(den > 0, (1.0 + beta2) * p * r / np.where(den > 0, den, 1.0), 0.0)
    return float(f) if f.ndim == 0 else f


def fbeta_curve(score: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
                thresholds: np.ndarray = THRESHOLDS, beta2: float = BETA2) -> np.ndarray:
    """F-beta of ``score > t`` for every threshold: ``(T,)`` float64.

    Args:
        score: ``(H, W)`` soft foreground map in [0, 1] (a boolean mask works too).
        gt: ``(H, W)`` bool ground truth.
        valid: ``(H, W)`` bool pixels to score (default: all).
        thresholds: increasing ``(T,)`` thresholds.
    """
    _check_same_shape(score, gt, valid)
    v = _valid(valid, np.shape(gt))
    s = np.asarray(score, np.float64)[v]
    g = np.asarray(gt, bool)[v]
    t = np.asarray(thresholds, np.float64)
    # For each threshold, the number of (foreground) pixels with score > t, via sorted scores.
    s_fg = np.sort(s[g])
    s_all = np.sort(s)
    tp = s_fg.size - np.searchsorted(s_fg, t, side="right")
    n_pred = s_all.size - np.searchsorted(s_all, t, side="right")
    n_gt = s_fg.size
    precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 1.0)
    recall = np.full(t.shape, 1.0) if n_gt == 0 else tp / n_gt
    return np.asarray(fbeta(precision, recall, beta2), np.float64).reshape(t.shape)


def max_fbeta(curves: Sequence[np.ndarray] | np.ndarray) -> float:
    """Dataset max F-beta: the maximum over thresholds of the mean per-image F-beta curve.

    ``curves`` is ``(n_images, T)`` (or one ``(T,)`` curve, which gives that image's max F-beta).
    """
    c = np.asarray(curves, np.float64)
    if c.size == 0:
        return float("nan")
    if c.ndim == 1:
        return float(c.max())
    return float(c.mean(axis=0).max())


#: Boundary F tolerance as a fraction of the image diagonal (DAVIS's ``bound_th``).
BOUNDARY_TOLERANCE = 0.008


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the pixels of a boolean mask with a 4-neighbour outside it (the image's
    frame is not a boundary)."""
    m = np.asarray(mask, bool)
    return m & ~ndimage.binary_erosion(m, border_value=1)


def boundary_f(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
               tolerance: float | None = None) -> float:
    """Boundary F-measure of boolean masks ``(H, W)`` (DAVIS's F): the harmonic mean of the share of
    predicted boundary pixels within ``tolerance`` pixels of the true boundary and the reverse.

    ``tolerance`` defaults to :data:`BOUNDARY_TOLERANCE` of the diagonal (at least 1 pixel). Pixels
    outside ``valid`` (GrabCut's unknown band) take the prediction's value in the ground truth, so
    no boundary placed inside them is penalised. Both boundaries empty: 1.0; one empty: 0.0.
    """
    _check_same_shape(pred, gt, valid)
    p = np.asarray(pred, bool)
    g = np.where(_valid(valid, np.shape(gt)), np.asarray(gt, bool), p)
    tol = max(1.0, BOUNDARY_TOLERANCE * float(np.hypot(*p.shape))) if tolerance is None else float(tolerance)
    bp, bg = mask_boundary(p), mask_boundary(g)
    n_p, n_g = np.count_nonzero(bp), np.count_nonzero(bg)
    if n_p == 0 or n_g == 0:
        return 1.0 if n_p == n_g else 0.0
    precision = np.count_nonzero(bp & (ndimage.distance_transform_edt(~bg) <= tol)) / n_p
    recall = np.count_nonzero(bg & (ndimage.distance_transform_edt(~bp) <= tol)) / n_g
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


# -- boxes -----------------------------------------------------------------------------------------
def box_iou(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """IoU of two boxes ``(x0, y0, x1, y1)`` in continuous pixel coordinates (0 if both are empty)."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0) + max(0.0, bx1 - bx0) * max(0.0, by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def best_box_iou(pred: Sequence[float] | None, gt_boxes: Sequence[Sequence[float]] | np.ndarray) -> float:
    """The highest IoU of ``pred`` with any of the ``(M, 4)`` ground-truth boxes (0 if none or no prediction)."""
    if pred is None:
        return 0.0
    return max((box_iou(pred, g) for g in np.asarray(gt_boxes, np.float64).reshape(-1, 4)), default=0.0)


def corloc_hit(pred: Sequence[float] | None, gt_boxes: Sequence[Sequence[float]] | np.ndarray,
               threshold: float = 0.5) -> bool:
    """CorLoc of one image: the predicted box has IoU ≥ ``threshold`` with any ground-truth box."""
    return best_box_iou(pred, gt_boxes) >= threshold


# -- labelings (parts) -----------------------------------------------------------------------------
def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Contingency table of two labelings of the same items: ``(n_labels_a, n_labels_b)`` int64."""
    a = np.asarray(a).ravel()
    b = np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"labelings must have the same size, got {a.size} and {b.size}")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    na = int(ai.max(initial=-1)) + 1
    nb = int(bi.max(initial=-1)) + 1
    table = np.zeros((na, nb), np.int64)
    np.add.at(table, (ai.ravel(), bi.ravel()), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    n = counts.sum()
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalized mutual information ``I(a; b) / ((H(a) + H(b)) / 2)`` of two labelings.

    1.0 when both labelings are constant (or there is nothing to label), 0.0 when only one is.
    """
    table = contingency(a, b)
    n = table.sum()
    if n == 0 or (table.shape[0] == 1 and table.shape[1] == 1):
        return 1.0
    ha, hb = _entropy(table.sum(1)), _entropy(table.sum(0))
    nz = table > 0
    pij = table[nz] / n
    pi = table.sum(1, keepdims=True) / n
    pj = table.sum(0, keepdims=True) / n
    mi = float((pij * (np.log(pij) - np.log((pi @ pj)[nz]))).sum())
    den = (ha + hb) / 2.0
    if den <= 0:
        return 0.0
    return float(min(max(mi / den, 0.0), 1.0))


def ari(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings (Hubert & Arabie); 1.0 for identical partitions."""
    table = contingency(a, b)
    n = int(table.sum())
    if n < 2:
        return 1.0

    def pairs(x: np.ndarray) -> float:
        x = x.astype(np.float64)
        return float((x * (x - 1) / 2).sum())

    index = pairs(table)
    sum_a, sum_b = pairs(table.sum(1)), pairs(table.sum(0))
    total = n * (n - 1) / 2
    expected = sum_a * sum_b / total
    maximum = (sum_a + sum_b) / 2
    if maximum == expected:  # both partitions trivial (one cluster, or all singletons) and equal
        return 1.0
    return float((index - expected) / (maximum - expected))


def hungarian_miou(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, dict[int, int]]:
    """Mean IoU of ground-truth labels after a one-to-one matching of predicted labels.

    The matching maximises the total IoU (Hungarian algorithm). Every ground-truth label present in
    ``gt[valid]`` counts; one left without a predicted label (more labels than predictions) scores 0.

    Args:
        pred: ``(H, W)`` int predicted labels.
        gt: ``(H, W)`` int ground-truth labels.
        valid: ``(H, W)`` bool pixels to score (default: all).

    Returns:
        ``(miou, matching)`` with ``matching[gt_label] = pred_label``.
    """
    _check_same_shape(pred, gt, valid)
    v = _valid(valid, np.shape(gt))
    p = np.asarray(pred)[v].astype(np.int64)
    g = np.asarray(gt)[v].astype(np.int64)
    if g.size == 0:
        return float("nan"), {}
    g_ids, p_ids, ious = iou_matrix(g, p)
    pairs = best_matching(ious)
    per_label = np.zeros(g_ids.size)
    for r, c in pairs:
        per_label[r] = ious[r, c]
    return float(per_label.mean()), {int(g_ids[r]): int(p_ids[c]) for r, c in pairs}


def mean(values: Sequence[float]) -> float:
    """Mean ignoring NaN; NaN for no values."""
    arr = np.asarray([v for v in values if v is not None], np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


# -- video ------------------------------------------------------------------------------------------
def labels_permuted(prev: np.ndarray, cur: np.ndarray) -> bool:
    """Whether the labels of two consecutive label maps (same shape) are permuted.

    Among the labels present in both maps, the one-to-one matching of maximal total IoU is
    computed (Hungarian); the labels are permuted when that matching is strictly better than
    matching every label with itself, i.e. some part changed its label.
    """
    prev, cur = np.asarray(prev), np.asarray(cur)
    if prev.size != cur.size:
        raise ValueError(f"label maps differ in size: {prev.size} and {cur.size}")
    shared = np.intersect1d(np.unique(prev), np.unique(cur))
    if shared.size < 2:
        return False
    _, _, iou = iou_matrix(prev, cur, shared, shared)
    best = sum(float(iou[r, c]) for r, c in best_matching(iou))
    return best > float(np.trace(iou)) + 1e-9


def consistency(label_maps: Sequence[np.ndarray] | Iterable[np.ndarray]) -> float:
    """Share of consecutive pairs of label maps whose labels are not permuted (1.0 for < 2 maps)."""
    prev = None
    pairs = ok = 0
    for cur in label_maps:
        if prev is not None:
            pairs += 1
            ok += not labels_permuted(prev, cur)
        prev = cur
    return ok / pairs if pairs else 1.0
