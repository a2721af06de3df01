"""The teaching view: what the page shows to explain a result.

* the graph weights from one clicked patch to every other patch (:func:`affinity_view`);
* the result with the clicked segment as its object (:func:`pick`);
* :func:`explain`: the result's own cut against the spectral cut of the same stage's graph, scored by
  the result's loss, the training replayed snapshot by snapshot, and the features' principal
  components (:class:`Explanation`).

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
from ..features.image import pixel_to_patch
from ..graph.patch_graph import graph_of
from ..lessons.explanation import (
    CutComparison,
    TrainingRecord,
    compare_result,
    feature_pca,
    label_at,
    patch_affinity,
    pick_object,
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
    (:func:`~deepcut.lessons.explanation.pick_object`)."""
    seg = result.seg
    label = label_at(seg, x, y, frame)
    notices = [n for n in result.notices if not n.startswith("Picked segment")]
    return dataclasses.replace(result, seg=pick_object(seg, label), notices=notices + [
        f"Picked segment {label} as the object: the mask, box, cut-out and downloads show it."])


@dataclass
class Explanation:
    """What :func:`explain` computed for one result.

    Attributes:
        comparison: the result's own cut and the spectral cut of the same stage's graph, scored by the
            result's loss (:func:`~deepcut.lessons.explanation.compare_result`).
        record: the training replay, stage by stage.
        pca: ``(h, w, 3)`` the features' first three principal components as colours in ``[0, 1]``.
        image: ``(H, W, 3)`` uint8 the segmented image.
        corrections: how many corrections by click the result has (its cut is then no longer the GNN's
            alone, and the replay shows the plain cut's training).
    """

    comparison: CutComparison
    record: TrainingRecord
    pca: np.ndarray
    image: np.ndarray
    corrections: int = 0

    @property
    def frames(self) -> int:
        """Number of snapshots of the replay (a scrubber's positions ``0 … frames-1``)."""
        return len(self.record.frames())

    def comparison_picture(self, text: float = 1.0) -> Image.Image:
        """:func:`~deepcut.render.teaching.comparison_figure` as a picture (``text``: font factor)."""
        return figure_image(comparison_figure(self.image, self.record.grid, self.comparison, text=text))

    def comparison_caption(self) -> str:
        """What the comparison shows, in words true of this result: which stage, loss and ``k``, what the
        spectral side is, and the two scores."""
        return comparison_words(self.comparison, self.corrections)

    @property
    def replay_note(self) -> str:
        """What the replay is of, where that is not the result itself: the plain cut's training, before the
        corrections by click (empty without corrections)."""
        n = self.corrections
        which = "the correction" if n == 1 else f"the {n} corrections"
        return f"the plain cut's training: {which} by click came after it" if n else ""

    def frame_picture(self, frame: int, text: float = 1.0) -> Image.Image:
        """Snapshot ``frame`` (clamped to the replay) as a picture (``text``: font factor)."""
        frame = max(0, min(int(frame), self.frames - 1))
        return figure_image(training_frame_figure(self.image, self.record, frame, text=text, note=self.replay_note))

    def pca_picture(self) -> Image.Image:
        return pca_image(self.pca, AFFINITY_SIDE)


#: What each stage cut, for the caption.
STAGE_WORDS = {1: "the whole image", 2: "the foreground into its parts (stage 2)",
               3: "the background into its parts (stage 3)"}


def comparison_words(c: CutComparison, corrections: int = 0) -> str:
    """The caption of the comparison ``c``: what was cut, by which loss and ``k``, what the spectral side
    is, and both scores (lower is better)."""
    better = ("the GNN's is lower" if c.gnn_score < c.spectral_score - 1e-6 else
              "the spectral cut's is lower" if c.spectral_score < c.gnn_score - 1e-6 else "they are equal")
    what = STAGE_WORDS.get(c.stage, f"stage {c.stage}")
    own = (f"with {corrections} correction{'s' if corrections != 1 else ''} by click" if corrections else
           "the GNN's cut")
    if c.k < 2:
        how = (f"This result has one segment over these {c.num_nodes} patches, so there is nothing to cut and "
               f"nothing to compare; the {'CC objective' if c.loss == 'cc' else 'normalized cut'} of one segment")
    elif c.loss == "cc":
        how = (f"The left picture is this result ({own}): CC loss, α = {c.alpha:g}, at most k = {c.asked}, "
               f"{c.k} segment{'s' if c.k != 1 else ''} found. The spectral method has no CC form: it cut NCut's "
               f"graph relu(F·Fᵀ)/max of the same {c.num_nodes} patches into as many, by the {c.spectral_method}. "
               f"Both are scored by CC's objective −Σ A·[same segment] on A = F·Fᵀ − max/α")
    else:
        how = (f"The left picture is this result ({own}): NCut loss, k = {c.asked}. The spectral method cut the "
               f"same graph of {c.num_nodes} patches into k = {c.k} by the {c.spectral_method}. Both are scored "
               f"by the normalized cut Σ cut/volume on that graph")
    return (f"**This result's cut of {what}, against the spectral one.** {how} (lower is better): "
            f"GNN **{c.gnn_score:.4g}**, spectral **{c.spectral_score:.4g}** — {better}.")


def explain(model: DeepCut, result: DemoResult, max_epochs: int | None = None) -> Explanation:
    """Compare the result's own cut with the spectral cut of the same stage's graph, replay the training and
    take the features' PCA for ``result``, from the features it was segmented from (cached: the backbone
    does not rerun); ``max_epochs``: the server's cap on every training (:func:`~deepcut.clustering.fit.fit`),
    as ``result`` had.

    Raises:
        DemoError: the features cannot be computed.
    """
    seg, cfg = result.seg, result.seg.config
    try:
        feats = model.patch_features(seg.image, cfg)
    except DeepCutError as e:
        raise DemoError(str(e)) from None
    graph = graph_of(feats)
    comparison = compare_result(graph, seg.patch_labels, cfg, seg.foreground_labels)
    record = record_training(graph, feats.grid, cfg, max_epochs=max_epochs)
    pca = feature_pca(feats.features.cpu().reshape(feats.grid[0], feats.grid[1], -1))
    return Explanation(comparison, record, pca, seg.image, len(result.corrections))
