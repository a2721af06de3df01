"""Descriptor post-processing of patch features (pure functions).

:func:`log_bin` is the log-binned descriptor of Amir et al., "Deep ViT Features as Dense Visual
Descriptors" (2021): each patch's feature is concatenated with averages of its neighbourhood at
growing scales, which adds spatial context at the price of a longer descriptor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log_bin(features: torch.Tensor, grid: tuple[int, int], hierarchy: int = 2) -> torch.Tensor:
    """Log-binned descriptors of patch features on a grid.

    For level ``k = 0 … hierarchy-1`` the features are averaged over ``3^k x 3^k`` windows (stride 1,
    padding not counted); a patch at ``(y, x)`` then takes the averages centred at
    ``(y + dy·3^k, x + dx·3^k)`` for ``dy, dx ∈ {-1, 0, 1}`` — all 9 at level 0, the 8 off-centre ones
    at deeper levels — with positions outside the grid clamped to its border. The bins are
    concatenated in that order (level, then row offset, then column offset).

    Args:
        features: ``(N, D)`` with ``N = h * w``, row-major over ``grid``.
        grid: ``(h, w)``.
        hierarchy: number of levels (``>= 1``); 2 as in the original.

    Returns:
        ``(N, (1 + 8 * hierarchy) * D)`` float32.
    """
    h, w = int(grid[0]), int(grid[1])
    if hierarchy < 1:
        raise ValueError(f"hierarchy must be at least 1, got {hierarchy}")
    if features.ndim != 2 or features.shape[0] != h * w:
        raise ValueError(f"features must be (h*w, D) = ({h * w}, D) for grid {grid}, got {tuple(features.shape)}")
    dim = features.shape[1]
    x = features.float().reshape(h, w, dim).permute(2, 0, 1).unsqueeze(0)  # (1, D, h, w)
    bins = []
    for k in range(hierarchy):
        s = 3 ** k
        pooled = x if s == 1 else F.avg_pool2d(x, s, stride=1, padding=s // 2, count_include_pad=False)
        padded = F.pad(pooled, (s, s, s, s), mode="replicate")  # clamping to the border
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if k > 0 and dy == 0 and dx == 0:
                    continue
                y0, x0 = s + dy * s, s + dx * s
                bins.append(padded[:, :, y0:y0 + h, x0:x0 + w])
    out = torch.cat(bins, dim=1)  # (1, bins * D, h, w)
    return out[0].permute(1, 2, 0).reshape(h * w, -1).contiguous()
