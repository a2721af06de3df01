"""One row of the graph, shown: the edge weights from the patch under a pixel to every other patch.

:func:`patch_row` reads the very features the segmentation was computed from (same image, layer, facet,
resolution, stride and log-binning: in the store's cache, so the backbone does not rerun);
:func:`affinity_view` draws the row over the image with a caption in true numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from ..config import SegmentConfig
from ..features.image import pixel_to_patch
from ..features.store import FeatureStore
from ..render.figures import affinity_picture
from ..segmentation.result import Segmentation

__all__ = ["AFFINITY_SIDE", "PatchRow", "affinity_caption", "affinity_frame", "affinity_view", "patch_row",
           "which_patch"]

#: Edge of the longer side of the affinity and PCA pictures (click coordinates on them are in this frame).
AFFINITY_SIDE = 512


class PatchRow(NamedTuple):
    """One row of the graph: the chosen ``patch`` ``(row, col)`` and its ``(h, w)`` edge weights."""

    patch: tuple[int, int]
    weights: np.ndarray


def affinity_frame(seg: Segmentation) -> tuple[int, int]:
    """``(H, W)`` of the pictures :func:`affinity_view` draws for ``seg`` (for mapping clicks)."""
    h, w = seg.image.shape[:2]
    scale = AFFINITY_SIDE / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def patch_row(store: FeatureStore, seg: Segmentation, x: float, y: float,
              frame: tuple[int, int] | None = None) -> PatchRow:
    """The graph row of the patch under pixel ``(x, y)`` of a picture of size ``frame`` (default: the
    segmented image), from the very features that were segmented (``store``: the backbone's, whose cache
    holds them)."""
    cfg = seg.config
    feats = store.get(seg.image, cfg, gram=False)
    grid = (int(feats.grid[0]), int(feats.grid[1]))
    # deepcut.render.figures draws from host tensors (a model on a GPU keeps its features there)
    grid_feats = feats.features.cpu().reshape(grid[0], grid[1], -1)
    patch = pixel_to_patch(x, y, frame or seg.image.shape[:2], grid)
    return PatchRow(patch, patch_affinity(grid_feats, patch, cfg.loss, cfg.alpha))


def affinity_caption(row: PatchRow, cfg: SegmentConfig) -> str:
    """What the picture of ``row`` shows, in words, for the loss of ``cfg``."""
    (r, c), aff = row
    if cfg.loss == "cc":
        pos = float((aff > 0).mean())
        return (f"Patch (row {r}, col {c}): CC edge weights F·Fᵀ − max/α (α={cfg.alpha:g}). "
                f"Red pulls patches into the same segment, blue pushes them apart; "
                f"{pos:.0%} of patches attract it.")
    strong = float((aff > 0.5 * aff.max()).mean()) if aff.max() > 0 else 0.0
    return (f"Patch (row {r}, col {c}): NCut edge weights relu(F·Fᵀ)/max. "
            f"Bright patches are strongly connected to it ({strong:.0%} above half its strongest "
            f"link); the GNN learns to cut the graph where links are weak.")


def which_patch(clicked: bool) -> str:
    """Whose row of the graph a lesson shows, in words: the patch the visitor clicked, or (``clicked`` False)
    the one at the foreground's centre that :func:`~.result.default_point` chose because nothing was clicked."""
    return ("the patch you clicked" if clicked else
            "the patch at the centre of the foreground (no patch was clicked)")


def affinity_view(store: FeatureStore, seg: Segmentation, x: float, y: float,
                  frame: tuple[int, int] | None = None) -> tuple[Image.Image, str]:
    """``(picture, caption)`` of the graph row of the patch under ``(x, y)`` (see :func:`patch_row`);
    the picture's longer side is :data:`AFFINITY_SIDE`."""
    row = patch_row(store, seg, x, y, frame)
    cfg = seg.config
    pic = affinity_picture(seg.image, row.weights, row.patch, signed=cfg.loss == "cc", longest=AFFINITY_SIDE)
    return pic, affinity_caption(row, cfg)


def patch_affinity(features: np.ndarray | torch.Tensor, patch: tuple[int, int], loss: str = "ncut", alpha: float = 3.0,
                   chunk: int = 2048) -> np.ndarray:
    """Row ``patch`` of the graph DeepCut clusters (see :func:`deepcut.clustering.fit.affinity`), as a map.

    Args:
        features: ``(h, w, D)`` patch features.
        patch: ``(row, col)`` of the chosen patch.
        loss: ``"ncut"``: ``relu(F_p · F_j) / max(W)`` in ``[0, 1]``; ``"cc"``: ``F_p · F_j - max(W) / alpha``
            (signed: negative weights push patches into different segments).
        alpha: CC sensitivity.
        chunk: rows per block when computing ``max(W)`` (bounds memory to ``chunk x N``).

    Returns:
        ``(h, w)`` float32 edge weights from the chosen patch to every patch.
    """
    f = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features).float()
    if f.ndim != 3:
        raise ValueError(f"features must be (h, w, D), got shape {tuple(f.shape)}")
    h, w, d = f.shape
    flat = f.reshape(h * w, d)
    r, c = patch
    row = flat @ flat[r * w + c]
    top = max(float((flat[i:i + chunk] @ flat.T).max()) for i in range(0, flat.shape[0], chunk))
    if loss == "cc":
        out = row - top / float(alpha)
    else:
        out = row.clamp(min=0) / top if top > 0 else torch.zeros_like(row)
    return out.reshape(h, w).cpu().numpy().astype(np.float32)
