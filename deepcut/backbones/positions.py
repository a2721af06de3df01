"""Learned position embeddings of a ViT resized to the grid of patches an image gives (DINO, DINOv2).

A ViT trained at 224 px has one embedding per patch of its ``n0 x n0`` training grid; an image of another size,
or a stride below the patch size, gives another grid, so the embeddings are resized (bicubic, as the original
models do: :func:`interpolate_pos_embed`). The weights are frozen, so :class:`ResizedPositions` resizes them once
per grid and keeps the result: every later image (a video's frames, a batch of one size, the live view) adds the
kept table instead of resizing again.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

__all__ = ["ResizedPositions", "interpolate_pos_embed", "training_side"]


def training_side(pos: torch.Tensor, prefix: int = 1) -> int:
    """``n0``, the side of the square grid the embeddings ``pos`` ``(1, prefix + n0*n0, D)`` were learned for.

    Raises:
        ValueError: their patch count is not a square.
    """
    count = int(pos.shape[1]) - int(prefix)
    n0 = math.isqrt(max(count, 0))
    if n0 * n0 != count:
        raise ValueError(f"position embeddings of {count} patches are not a square grid")
    return n0


def interpolate_pos_embed(pos: torch.Tensor, grid: tuple[int, int], prefix: int = 1,
                          antialias: bool = False, offset: float = 0.1) -> torch.Tensor:
    """Resize learned position embeddings ``(1, prefix + n0*n0, D)`` to a ``grid`` of patches.

    Bicubic, the way the original models do it. DINO (and DINOv2 without registers) pass a *scale
    factor* ``(h + offset) / n0, (w + offset) / n0`` with ``offset=0.1`` (a kludge against rounding,
    see facebookresearch/dino#8); since ``F.interpolate`` then samples at ``1 / scale`` rather than
    ``n0 / h``, this differs from resizing to ``size=grid`` (by 3-4 % in the layer-11 keys at 280 px),
    so the exact formula matters for features equal to DINO's own. ``offset=0`` resizes to
    ``size=grid`` (DINOv2 with registers, which also uses ``antialias``). The embeddings are
    returned unchanged when the grid is already ``n0 x n0``. Returns ``(1, prefix + h*w, D)``.
    """
    cls_pos, patch_pos = pos[:, :prefix], pos[:, prefix:]
    n0 = training_side(pos, prefix)
    if (n0, n0) == tuple(grid):
        return pos
    dim = pos.shape[-1]
    patch_pos = patch_pos.reshape(1, n0, n0, dim).permute(0, 3, 1, 2).float()
    if offset:
        scale = ((grid[0] + offset) / n0, (grid[1] + offset) / n0)
        patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", align_corners=False,
                                  antialias=antialias, recompute_scale_factor=False)
    else:
        patch_pos = F.interpolate(patch_pos, size=tuple(grid), mode="bicubic", align_corners=False,
                                  antialias=antialias)
    if tuple(patch_pos.shape[-2:]) != tuple(grid):
        raise ValueError(f"position embeddings resized to {tuple(patch_pos.shape[-2:])}, expected {tuple(grid)}")
    patch_pos = patch_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim)
    return torch.cat([cls_pos, patch_pos], dim=1)


class ResizedPositions:
    """:func:`interpolate_pos_embed` of a model's embeddings, kept for the last :attr:`keep` grids (and ways).

    A kept table is used while the embeddings are equal to those it was made from (the entry keeps a copy: loading
    other weights, in place or as a new parameter, resizes again); the comparison reads ``(1, prefix + n0*n0, D)``
    numbers, far fewer than a resize computes.

    Args:
        keep: tables kept (least recently used dropped first).
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = int(keep)
        self._kept: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()  # key: (embeddings, table)

    def __call__(self, pos: torch.Tensor, grid: tuple[int, int], prefix: int = 1, antialias: bool = False,
                 offset: float = 0.1) -> torch.Tensor:
        """``(1, prefix + h*w, D)``: :func:`interpolate_pos_embed` of ``pos`` ``(1, prefix + n0*n0, D)`` to ``grid``
        ``(h, w)``, with ``prefix``, ``antialias`` and ``offset`` as there."""
        size = (int(grid[0]), int(grid[1]))
        if size == (training_side(pos, prefix),) * 2:
            return pos  # the training grid: nothing to resize, nothing to keep
        key = (size, int(prefix), bool(antialias), float(offset), tuple(pos.shape), pos.dtype, pos.device)
        entry = self._kept.get(key)
        if entry is not None and torch.equal(entry[0], pos):
            self._kept.move_to_end(key)
            return entry[1]
        table = interpolate_pos_embed(pos, size, int(prefix), bool(antialias), float(offset))
        self._kept[key] = (pos.detach().clone(), table)
        while len(self._kept) > self.keep:
            self._kept.popitem(last=False)
        return table

    def clear(self) -> None:
        """Forget every kept table."""
        self._kept.clear()
