"""What "explain this result" computes and shows: the result's own cut against the spectral cut of the same
stage's graph, scored by the result's loss, the training replayed snapshot by snapshot, and the features'
principal components (:class:`Explanation`, made by :func:`explain`).

It reads the features the segmentation was computed from (in the store's cache: the backbone does not rerun);
the computations are :mod:`.cuts`', :mod:`.replay`'s and :mod:`.pca`'s, the pictures :mod:`deepcut.render.teaching`'s.

Example::

    dc = DeepCut("color")
    seg = dc.segment("cat.jpg", stages=2, k=3)
    ex = explain(dc.store, seg)
    ex.comparison_picture().save("comparison.png")
    print(ex.comparison_caption())
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..clustering.fit import NCUT_START_EPOCHS
from ..features.store import FeatureStore
from ..graph.patch_graph import PatchGraph, graph_of
from ..render.figures import figure_image
from ..render.teaching import MEASURES, comparison_figure, pca_image, training_frame_figure
from ..segmentation.result import Segmentation
from ..utils.memory import memory_errors
from .affinity import AFFINITY_SIDE
from .cuts import CutComparison, compare_result, cut_measure
from .pca import feature_pca
from .replay import TrainingRecord, record_training

__all__ = ["STAGE_WORDS", "Explanation", "comparison_words", "explain", "restart_sentence", "with_first_try"]


@dataclass
class Explanation:
    """What :func:`explain` computed for one result.

    Attributes:
        comparison: the result's own cut and the spectral cut of the same stage's graph, scored by the
            result's loss (:func:`~deepcut.lessons.cuts.compare_result`).
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

    def frame_picture(self, frame: int, text: float = 1.0, width: int | None = None) -> Image.Image:
        """Snapshot ``frame`` (clamped to the replay) as a picture (``text``: font factor; ``width``: drawn that
        many pixels wide, fonts and lines scaled with it; default: the figure's own size, 900 px at text 1)."""
        frame = max(0, min(int(frame), self.frames - 1))
        fig = training_frame_figure(self.image, self.record, frame, text=text, note=self.replay_note)
        return figure_image(fig, width)

    def pca_picture(self) -> Image.Image:
        """The features' principal components as RGB, the longer side :data:`~.affinity.AFFINITY_SIDE`."""
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
           "the GNN's cut" + (", which started from the spectral cut" if c.restart_epoch else ""))
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
            f"GNN **{c.gnn_score:.4g}**, spectral **{c.spectral_score:.4g}** — {better}.{restart_sentence(c)}")


def restart_sentence(c: CutComparison) -> str:
    """Where the compared stage's NCut restarted from the spectral cut: that the GNN's cut started from the
    spectral one (so the two pictures are alike by construction), and how its own first try scored; else ``""``."""
    if not c.restart_epoch or c.first_try_score is None:
        return ""
    return (f" **The GNN started from the spectral cut here**: its own first try ({c.restart_epoch} epochs from a "
            f"random start) left a segment empty: {c.first_try_segments} of the k = {c.asked} segments, "
            f"{MEASURES.get(c.loss, MEASURES['ncut'])[0]} **{c.first_try_score:.4g}** (a cut into fewer segments, "
            f"so not comparable with the two above). NCut then restarted: a fresh "
            f"GNN learned the spectral cut ({NCUT_START_EPOCHS} epochs) and NCut trained {c.restart_epoch} epochs "
            f"from there. The two pictures are alike because of that start; the first try is the GNN's own cut.")


def with_first_try(c: CutComparison, record: TrainingRecord, graph: PatchGraph) -> CutComparison:
    """``c`` with what the replay ``record`` knows of its stage's restart (:attr:`CutComparison.restart_epoch`,
    the first try's segments and score on ``graph``'s subgraph of the stage's rows), where that stage's NCut
    restarted from the spectral cut; else ``c`` unchanged."""
    st = next((s for s in record.stages if s.stage == c.stage and s.restart is not None), None)
    rows = np.arange(c.num_nodes) if c.rows is None else np.asarray(c.rows)
    if st is None or st.restart is None or not np.array_equal(st.rows, rows):
        return c
    first = st.soft[st.restart - 1].argmax(1)  # the first try's last snapshot, on the stage's rows
    sub = graph.subgraph(None if rows.size == graph.num_nodes else rows)
    return dataclasses.replace(c, restart_epoch=st.restart_epoch, first_try_segments=int(np.unique(first).size),
                               first_try_score=cut_measure(sub, first, c.loss, c.alpha))


def explain(store: FeatureStore, seg: Segmentation, corrections: int = 0,
            max_epochs: int | None = None) -> Explanation:
    """Compare the result's own cut with the spectral cut of the same stage's graph, replay the training and
    take the features' PCA for ``seg``, from the features it was segmented from (``store``'s cache: the
    backbone does not rerun).

    Args:
        store: the feature store of the backbone ``seg`` was computed with.
        seg: the segmentation to explain.
        corrections: how many corrections by click it has had (the words say so).
        max_epochs: a cap on every training (:func:`~deepcut.clustering.fit.fit`), as ``seg`` had.

    Raises:
        DeepCutError: the features cannot be computed (e.g. out of memory: ResourceLimitError).
    """
    cfg = seg.config
    with memory_errors("explain()"):
        feats = store.get(seg.image, cfg)
        graph = graph_of(feats)
        comparison = compare_result(graph, seg.patch_labels, cfg, seg.foreground_labels)
        record = record_training(graph, feats.grid, cfg, max_epochs=max_epochs)
        comparison = with_first_try(comparison, record, graph)
    pca = feature_pca(feats.features.cpu().reshape(feats.grid[0], feats.grid[1], -1))
    return Explanation(comparison, record, pca, seg.image, int(corrections))
