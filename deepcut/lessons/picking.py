"""Make the segment under a pixel the foreground: :func:`label_at` and :func:`pick_object`."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..segmentation.result import Segmentation
from ..utils.masks import bbox_of


def label_at(seg: Segmentation, x: float, y: float, frame: tuple[int, int] | None = None) -> int:
    """The label under pixel ``(x, y)`` of a picture of size ``frame`` ``(H, W)`` (default: the label map's)."""
    h, w = seg.labels.shape
    fh, fw = frame or (h, w)
    row = int(np.clip(np.floor(y / max(fh, 1) * h), 0, h - 1))
    col = int(np.clip(np.floor(x / max(fw, 1) * w), 0, w - 1))
    return int(seg.labels[row, col])


def pick_object(seg: Segmentation, label: int) -> Segmentation:
    """``seg`` with segment ``label`` as its foreground: the mask is ``labels == label``, the box is
    that mask's, and so is the cut-out (:meth:`~deepcut.segmentation.result.Segmentation.cutout`); labels,
    soft maps and everything else are unchanged.

    Raises:
        ValueError: no pixel has ``label``.
    """
    mask = seg.labels == int(label)
    if not mask.any():
        raise ValueError(f"no segment has label {label}")
    note = f"picked segment {int(label)} as the object"
    return dataclasses.replace(seg, foreground=mask, bbox=bbox_of(mask),
                               notes=[n for n in seg.notes if not n.startswith("picked segment")] + [note])
