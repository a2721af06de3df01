"""The teaching view: the graph weights from one clicked patch to every other patch, as a picture.

It reads the features the segmentation was computed from (same image, layer, facet, resolution,
stride and log-binning), which are in the model's cache, so a click does not rerun the backbone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from ..config import SegmentConfig
from ..errors import DeepCutError
from ..predictor import DeepCut
from ..viz import affinity_image, patch_affinity, pixel_to_patch
from .errors import DemoError
from .results import DemoResult

#: Edge of the affinity picture's longer side (its click coordinates are in this frame).
AFFINITY_SIDE = 512


class PatchRow(NamedTuple):
    """One row of the graph: the chosen ``patch`` ``(row, col)`` and its ``(h, w)`` edge weights."""

    patch: tuple[int, int]
    weights: np.ndarray


def affinity_frame(result: DemoResult) -> tuple[int, int]:
    """``(H, W)`` of the pictures :func:`affinity_view` draws for ``result`` (for mapping clicks)."""
    h, w = result.seg.image.shape[:2]
    scale = AFFINITY_SIDE / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def patch_row(model: DeepCut, result: DemoResult, x: float, y: float,
              frame: tuple[int, int] | None = None) -> PatchRow:
    """The graph row of the patch under pixel ``(x, y)`` of a picture of size ``frame`` (default:
    the segmented image), from the very features that were segmented.

    Raises:
        DemoError: the features cannot be computed (e.g. the model was swapped out and fails).
    """
    seg, cfg = result.seg, result.seg.config
    try:
        feats = model.features(seg.image, cfg.layer, cfg.facet, cfg.resolution, cfg.stride, log_bin=cfg.log_bin)
    except DeepCutError as e:
        raise DemoError(str(e)) from None
    feats = feats.cpu()  # deepcut.viz draws from host tensors (a model on a GPU keeps its features there)
    grid = (int(feats.shape[0]), int(feats.shape[1]))
    patch = pixel_to_patch(x, y, frame or seg.image.shape[:2], grid)
    return PatchRow(patch, patch_affinity(feats, patch, cfg.loss, cfg.alpha))


def caption(row: PatchRow, cfg: SegmentConfig) -> str:
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


def affinity_view(model: DeepCut, result: DemoResult, x: float, y: float,
                  frame: tuple[int, int] | None = None) -> tuple[Image.Image, str]:
    """``(picture, caption)`` of the graph row of the patch under ``(x, y)`` (see :func:`patch_row`);
    the picture's longer side is :data:`AFFINITY_SIDE`."""
    row = patch_row(model, result, x, y, frame)
    cfg = result.seg.config
    pic = affinity_image(result.seg.image, row.weights, row.patch, signed=cfg.loss == "cc", longest=AFFINITY_SIDE)
    return pic, caption(row, cfg)
