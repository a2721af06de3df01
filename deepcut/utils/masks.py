"""Post-processing of patch label maps: foreground orientation, connected components, boxes, upsampling."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def border_mask(shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` bool, True on the outermost ring of cells."""
    m = np.zeros(shape, bool)
    m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = True
    return m


def background_label(labels: np.ndarray | Sequence[np.ndarray], ignore: int | None = None) -> int:
    """The label that covers most border cells of an ``(h, w)`` map (ties: the larger label).

    DeepCut's orientation rule: the background is what touches the image border most.
    Cells equal to ``ignore`` are not candidates. ``labels`` may also be a list of maps (several
    images labelled together, e.g. co-segmentation): their borders and sizes are summed.
    """
    maps = [np.asarray(labels)] if isinstance(labels, np.ndarray) else [np.asarray(m) for m in labels]
    border = np.concatenate([m[border_mask(m.shape)] for m in maps])
    values = np.concatenate([m.ravel() for m in maps])
    ids = np.unique(values)
    if ignore is not None:
        ids = ids[ids != ignore]
    on_border = np.array([(border == i).sum() for i in ids])
    size = np.array([(values == i).sum() for i in ids])
    order = np.lexsort((-size, -on_border))
    return int(ids[order[0]])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 8-connected component of a boolean ``(h, w)`` mask."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), int))
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` of a boolean ``(H, W)`` mask, x1/y1 exclusive; None if empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def present_labels(labels: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a label map (any shape), as ``np.unique`` gives them: for non-negative
    integers by a count of each value (no sort of every pixel), else ``np.unique``."""
    labels = np.asarray(labels)
    if labels.size and labels.dtype.kind in "iu" and int(labels.min()) >= 0:
        return np.flatnonzero(np.bincount(labels.ravel())).astype(labels.dtype)
    return np.unique(labels)
