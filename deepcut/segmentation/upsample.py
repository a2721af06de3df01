"""Patch labels → pixel labels: the patch grid's labels brought to the working and the input's size
(smoothed one-hot upsampling, then nearest-neighbour resizing), the foreground decided first."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["resize_nearest", "upsample_labels", "upsample_segmentation"]


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
    """Bilinearly upsampled one-hot maps of ``(h, w)`` labels, one plane per label: ``(n, H', W')``."""
    n = int(labels.max()) + 1
    onehot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), n).permute(2, 0, 1)[None].float()
    return F.interpolate(onehot, size=tuple(work_size), mode="bilinear", align_corners=False)[0]


def _first_max(planes: torch.Tensor, channels: list[int]) -> torch.Tensor:
    """``(H', W')`` int64: at each pixel the one of ``channels`` (ascending) whose plane of ``planes`` ``(n, H', W')``
    is largest, the first one on a tie, as ``argmax`` over those channels gives it. One pass per plane over
    contiguous memory: an arg-max over a short last dimension runs pixel by pixel on the CPU."""
    best_value = planes[channels[0]].clone()
    best = torch.full(planes.shape[1:], channels[0], dtype=torch.int64)
    for c in channels[1:]:
        best.masked_fill_(planes[c] > best_value, c)
        torch.maximum(best_value, planes[c], out=best_value)
    return best


def upsample_labels(labels: np.ndarray, work_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """Patch labels ``(h, w)`` → ``(H, W)`` int32 with smooth boundaries.

    One-hot maps are upsampled bilinearly to ``work_size`` (the size the ViT saw, small) and
    arg-maxed, then resized to ``out_size`` with nearest neighbour, so even a 6000x4000 image costs
    little memory.
    """
    planes = _smooth_onehot(labels, work_size)
    return resize_nearest(_first_max(planes, list(range(planes.shape[0]))).numpy().astype(np.int32), out_size)


def upsample_segmentation(labels: np.ndarray, work_size: tuple[int, int], out_size: tuple[int, int],
                          foreground_labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`upsample_labels`, for a foreground/background split: ``(labels, foreground)``.

    The foreground mask ``(H, W)`` bool is decided first (smoothed foreground share > 1/2) and each
    pixel then takes the best label of its own side, so the mask does not depend on how either side
    is split into parts (stages 2 and 3 give the same mask).
    """
    planes = _smooth_onehot(labels, work_size)
    n = planes.shape[0]
    fg_set = {int(i) for i in foreground_labels if 0 <= int(i) < n}
    fg_channels, bg_channels = sorted(fg_set), [i for i in range(n) if i not in fg_set]
    none = torch.zeros(planes.shape[1:], dtype=torch.int64)
    best_fg = _first_max(planes, fg_channels) if fg_channels else none
    best_bg = _first_max(planes, bg_channels) if bg_channels else none
    share = torch.zeros(planes.shape[1:])
    for c in fg_channels:
        share += planes[c]
    fg = share > 0.5
    work = torch.where(fg, best_fg, best_bg).numpy().astype(np.int32)
    return resize_nearest(work, out_size), resize_nearest(fg.numpy(), out_size)
