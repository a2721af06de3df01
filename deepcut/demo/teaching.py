"""The teaching view: what the page shows to explain a result.

* the graph weights from one clicked patch to every other patch (:func:`affinity_view`);
* the result with the clicked segment as its object (:func:`pick`);
* :func:`explain`: the same graph cut by the GNN and by the spectral method, the training replayed
  snapshot by snapshot, and the features' principal components (:class:`Explanation`).

They read the features the segmentation was computed from (same image, layer, facet, resolution,
stride and log-binning), which are in the model's cache, so none of them reruns the backbone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image

from ..config import SegmentConfig
from ..errors import DeepCutError
from ..explain import (
    CutComparison,
    TrainingRecord,
    compare_with_spectral,
    comparison_k,
    feature_pca,
    label_at,
    patch_affinity,
    pick_object,
    pixel_to_patch,
    record_training,
)
from ..predictor import DeepCut
from ..render.figures import affinity_picture, figure_image
from ..render.teaching import comparison_figure, pca_image, training_frame_figure
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
    feats = feats.cpu()  # deepcut.render.figures draws from host tensors (a model on a GPU keeps its features there)
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
    pic = affinity_picture(result.seg.image, row.weights, row.patch, signed=cfg.loss == "cc", longest=AFFINITY_SIDE)
    return pic, caption(row, cfg)


def pick(result: DemoResult, x: float, y: float, frame: tuple[int, int] | None = None) -> DemoResult:
    """``result`` with the segment under pixel ``(x, y)`` of a picture of size ``frame`` (default: the
    segmented image) as its object: mask, box, cut-out and downloads follow
    (:func:`~deepcut.explain.pick_object`)."""
    seg = result.seg
    label = label_at(seg, x, y, frame)
    notices = [n for n in result.notices if not n.startswith("Picked segment")]
    return dataclasses.replace(result, seg=pick_object(seg, label), notices=notices + [
        f"Picked segment {label} as the object: the mask, box, cut-out and downloads show it."])


@dataclass
class Explanation:
    """What :func:`explain` computed for one result.

    Attributes:
        comparison: the GNN's and the spectral cut of the same graph, with their NCut values.
        record: the training replay, stage by stage.
        pca: ``(h, w, 3)`` the features' first three principal components as colours in ``[0, 1]``.
        image: ``(H, W, 3)`` uint8 the segmented image.
    """

    comparison: CutComparison
    record: TrainingRecord
    pca: np.ndarray
    image: np.ndarray

    @property
    def frames(self) -> int:
        """Number of snapshots of the replay (a scrubber's positions ``0 … frames-1``)."""
        return len(self.record.frames())

    def comparison_picture(self) -> Image.Image:
        return figure_image(comparison_figure(self.image, self.record.grid, self.comparison))

    def comparison_caption(self) -> str:
        """The two NCut values in words."""
        c = self.comparison
        better = ("the GNN's cut is lower" if c.gnn_ncut < c.spectral_ncut - 1e-6 else
                  "the spectral cut is lower" if c.spectral_ncut < c.gnn_ncut - 1e-6 else "they are equal")
        return (f"**Same graph, two solvers.** Both cut the graph of this image's {c.num_nodes} patches into "
                f"k={c.k}: the GNN by gradient descent on the relaxed NCut loss, the spectral method by the "
                f"{c.spectral_method}. Normalized cut on that graph (lower is better): GNN **{c.gnn_ncut:.3f}**, "
                f"spectral **{c.spectral_ncut:.3f}** — {better}.")

    def frame_picture(self, frame: int) -> Image.Image:
        """Snapshot ``frame`` (clamped to the replay) as a picture."""
        frame = int(np.clip(int(frame), 0, self.frames - 1))
        return figure_image(training_frame_figure(self.image, self.record, frame))

    def pca_picture(self) -> Image.Image:
        return pca_image(self.pca, AFFINITY_SIDE)


def explain(model: DeepCut, result: DemoResult, max_epochs: int | None = None) -> Explanation:
    """Compare the GNN with the spectral cut, replay the training and take the features' PCA for
    ``result``, from the features it was segmented from (cached: the backbone does not rerun);
    ``max_epochs``: the server's cap on every training (:func:`~deepcut.clustering.fit`), as ``result`` had.

    Raises:
        DemoError: the features cannot be computed.
    """
    seg, cfg = result.seg, result.seg.config
    try:
        feats = model.patch_features(seg.image, cfg)
    except DeepCutError as e:
        raise DemoError(str(e)) from None
    graph = feats.graph()
    comparison = compare_with_spectral(graph, comparison_k(cfg), cfg.epochs[0], cfg.seed, max_epochs)
    record = record_training(graph, feats.grid, cfg, max_epochs=max_epochs)
    pca = feature_pca(feats.features.cpu().reshape(feats.grid[0], feats.grid[1], -1))
    return Explanation(comparison, record, pca, seg.image)
