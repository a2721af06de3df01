"""Post-processing of patch label maps: foreground orientation, connected components, boxes, upsampling."""

from __future__ import annotations

from typing import Sequence

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


def resize_nearest(work: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an ``(h, w)`` label map or mask to ``out_size = (H, W)`` (same dtype)."""
    if work.shape == tuple(out_size):
        return work
    if work.max(initial=0) < 256:
        img = Image.fromarray(work.astype(np.uint8)).resize((out_size[1], out_size[0]), Image.Resampling.NEAREST)
        return np.asarray(img).astype(work.dtype)
    ys = (np.arange(out_size[0]) * work.shape[0] // out_size[0]).clip(0, work.shape[0] - 1)
    xs = (np.arange(out_size[1]) * work.shape[1] // out_size[1]).clip(0, work.shape[1] - 1)
    return work[ys[:, None], xs[None, :]]


def _smooth_onehot(labels: np.ndarray, work_size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly upsampled one-hot maps of ``(h, w)`` labels, channels last: ``(H', W', n)``.

    Channels last because an arg-max over the last, contiguous dimension is ~30x faster on the CPU
    than over the first one.
    """
    n = int(labels.max()) + 1
    onehot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), n).permute(2, 0, 1)[None].float()
    smooth = F.interpolate(onehot, size=tuple(work_size), mode="bilinear", align_corners=False)[0]
    return smooth.permute(1, 2, 0).contiguous()


def upsample_labels(labels: np.ndarray, work_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """Patch labels ``(h, w)`` → ``(H, W)`` int32 with smooth boundaries.

    One-hot maps are upsampled bilinearly to ``work_size`` (the size the ViT saw, small) and
    arg-maxed, then resized to ``out_size`` with nearest neighbour, so even a 6000x4000 image costs
    little memory.
    """
    return resize_nearest(_smooth_onehot(labels, work_size).argmax(-1).numpy().astype(np.int32), out_size)


def upsample_segmentation(labels: np.ndarray, work_size: tuple[int, int], out_size: tuple[int, int],
                          foreground_labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`upsample_labels`, for a foreground/background split: ``(labels, foreground)``.

    The foreground mask ``(H, W)`` bool is decided first (smoothed foreground share > 1/2) and each
    pixel then takes the best label of its own side, so the mask does not depend on how either side
    is split into parts (stages 2 and 3 give the same mask).
    """
    smooth = _smooth_onehot(labels, work_size)
    is_fg = torch.zeros(smooth.shape[-1], dtype=torch.bool)
    is_fg[[i for i in foreground_labels if i < smooth.shape[-1]]] = True
    fg = smooth[..., is_fg].sum(-1) > 0.5
    best_fg = smooth.masked_fill(~is_fg, -1).argmax(-1)
    best_bg = smooth.masked_fill(is_fg, -1).argmax(-1)
    work = torch.where(fg, best_fg, best_bg).numpy().astype(np.int32)
    return resize_nearest(work, out_size), resize_nearest(fg.numpy(), out_size)
