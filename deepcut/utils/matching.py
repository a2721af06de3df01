"""Matching the labels of two label maps: the IoU matrix and the Hungarian assignment (one place
for the tracker, the video consistency measure and the parts metrics)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def _index(values: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(position of each value in ids, whether it is in ids)``; ``ids`` sorted."""
    pos = np.searchsorted(ids, values)
    inside = (pos < ids.size) & (ids[np.minimum(pos, max(ids.size - 1, 0))] == values) if ids.size else \
        np.zeros(values.shape, bool)
    return pos, inside


def iou_matrix(a: np.ndarray, b: np.ndarray, ids_a: np.ndarray | None = None,
               ids_b: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every label of ``a`` with every label of ``b`` (label maps of one shape).

    Args:
        a: integer label map.
        b: integer label map of the same shape.
        ids_a: the labels of ``a`` to compare (default: those present); pixels with other labels
            count for neither side.
        ids_b: the same for ``b``.

    Returns:
        ``(ids_a, ids_b, iou)`` with ``iou`` ``(len(ids_a), len(ids_b))``.
    """
    a = np.asarray(a).ravel().astype(np.int64)
    b = np.asarray(b).ravel().astype(np.int64)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in size: {a.size} and {b.size}")
    ids_a = np.unique(a) if ids_a is None else np.unique(np.asarray(ids_a, np.int64))
    ids_b = np.unique(b) if ids_b is None else np.unique(np.asarray(ids_b, np.int64))
    pa, in_a = _index(a, ids_a)
    pb, in_b = _index(b, ids_b)
    inter = np.zeros((ids_a.size, ids_b.size), np.float64)
    both = in_a & in_b
    np.add.at(inter, (pa[both], pb[both]), 1)
    size_a = np.bincount(pa[in_a], minlength=ids_a.size).astype(np.float64)
    size_b = np.bincount(pb[in_b], minlength=ids_b.size).astype(np.float64)
    return ids_a, ids_b, inter / np.maximum(size_a[:, None] + size_b[None, :] - inter, 1)


def best_matching(scores: np.ndarray) -> list[tuple[int, int]]:
    """The one-to-one assignment of rows to columns with the largest total score (Hungarian):
    ``[(row, column), …]``."""
    rows, cols = linear_sum_assignment(np.asarray(scores, np.float64), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=False)]
