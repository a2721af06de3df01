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
