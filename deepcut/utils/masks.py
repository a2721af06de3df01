"""Post-processing of patch label maps: foreground orientation, connected components, boxes, upsampling."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage


def border_mask(shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` bool, True on the outermost ring of cells."""
    m = np.zeros(shape, bool)
    m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = True
    return m


def background_label(labels: np.ndarray, ignore: int | None = None) -> int:
    """The label that covers most border cells of an ``(h, w)`` map (ties: the larger label).

    DeepCut's orientation rule: the background is what touches the image border most.
    Cells equal to ``ignore`` are not candidates.
    """
    border = labels[border_mask(labels.shape)]
    ids = np.unique(labels)
    if ignore is not None:
        ids = ids[ids != ignore]
    on_border = np.array([(border == i).sum() for i in ids])
    size = np.array([(labels == i).sum() for i in ids])
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


def upsample_labels(labels: np.ndarray, work_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """Patch labels ``(h, w)`` → ``(H, W)`` int32 with smooth boundaries.

    One-hot maps are upsampled bilinearly to ``work_size`` (the size the ViT saw, small) and
    arg-maxed, then the result is resized to ``out_size`` with nearest neighbour, so even a
    6000x4000 image costs little memory.
    """
    n = int(labels.max()) + 1
    onehot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), n).permute(2, 0, 1)[None].float()
    smooth = F.interpolate(onehot, size=work_size, mode="bilinear", align_corners=False)
    work = smooth[0].argmax(0).numpy().astype(np.int32)
    if tuple(work_size) == tuple(out_size):
        return work
    if n < 256:
        img = Image.fromarray(work.astype(np.uint8)).resize((out_size[1], out_size[0]), Image.NEAREST)
        return np.asarray(img).astype(np.int32)
    ys = (np.arange(out_size[0]) * work_size[0] // out_size[0]).clip(0, work_size[0] - 1)
    xs = (np.arange(out_size[1]) * work_size[1] // out_size[1]).clip(0, work_size[1] - 1)
    return work[ys[:, None], xs[None, :]]
