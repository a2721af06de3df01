"""DeepCut's clustering stages and post-processing: patch graph → labels → :class:`Segmentation`.

Every front end (one image, video, co-segmentation, evaluation baselines) runs :func:`run_stages`
on a :class:`~deepcut.graph.patch_graph.PatchGraph` and turns the per-stage labels into a
:class:`~deepcut.segmentation.result.Segmentation` with :func:`deepcut.segmentation.finish.to_segmentation`:

1. ``k``-way clustering (a bipartition when ``stages >= 2``); with two segments the one covering
   most of the border is the background (label 0);
2. the foreground is split into ``k`` parts (labels ``1 … k``);
3. the background is split into ``bg_k`` parts (label 0 and ``k+1 …``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..clustering.fit import Clusterer, ClusterResult, fit
from ..clustering.links import Links
from ..clustering.settle import SETTLE
from ..config import SegmentConfig
from ..graph.patch_graph import PatchGraph
from ..utils.masks import background_label, largest_component
from .timings import Timings

#: The note of a foreground/background result whose foreground is empty.
NO_FOREGROUND = "no foreground found (the whole image is one segment)"

Grid = tuple[int, int]


@dataclass
class StageOutput:
    """Patch-level result of the clustering stages (``N = h * w`` patches, or the patches of several
    stacked images).

    Attributes:
        labels: ``(N,)`` int final labels.
        soft: ``(N, L)`` soft assignment of each patch to each final label; rows sum to 1 (the
            softmax of the stage that labelled the patch, over the clusters that hold a patch).
        foreground_labels: labels that form the foreground, None without a bipartition.
        losses: the loss after each epoch, one list per stage in stage order (``losses[i]``: stage ``i + 1``;
            empty for a stage that was skipped or trained nothing).
        timings: seconds per stage (only the ``stage*`` fields are set).
        notes: anything worth telling the user.
        models: the trained GNN of stages 1-3 (None: not run).
        restarts: one per entry of ``losses``: where NCut restarted from the spectral cut, the epochs of its
            first try (``losses[i][restarts[i]:]`` are the restart's), else 0.
    """

    labels: np.ndarray
    soft: np.ndarray
    foreground_labels: list[int] | None
    losses: list[list[float]]
    timings: Timings
    notes: list[str]
    models: list = field(default_factory=list)
    restarts: list[int] = field(default_factory=list)


@dataclass
class Tracking:
    """Options of :func:`run_stages` for labels that must agree across frames (video).

    Attributes:
        warm: the trained GNN of each stage of the previous frame (``StageOutput.models``), trained
            further instead of a fresh one (the paper's warm start).
        keep_cluster_ids: number segments by the GNN's cluster index instead of by size, so that a
            warm-started GNN keeps each part's label (background parts then start at ``k + 1``).
        background_fn: ``background_fn(stage-1 cluster ids (N,)) -> id`` picks the background
            cluster of stage 1 instead of the border rule.
        links: a correction's constraints (:class:`~deepcut.clustering.links.Links`): with ``warm`` models, a stage
            with links trains until they hold (``links.epochs`` at most), a stage without keeps its GNN
            untrained (0 epochs: the warm GNN only labels its patches).
    """

    warm: list | None = None
    keep_cluster_ids: bool = False
    background_fn: Callable[[np.ndarray], int] | None = None
    links: Links | None = None


def as_grids(grid: Grid | Sequence[Grid]) -> list[Grid]:
    """``grid`` as a list of per-image grids: ``(h, w)`` is one image, ``[(h1, w1), …]`` several."""
    if len(grid) == 2 and all(isinstance(v, (int, np.integer)) for v in grid):
        return [(int(grid[0]), int(grid[1]))]  # type: ignore[arg-type]  # checked: two numbers
    return [(int(h), int(w)) for h, w in grid]  # type: ignore[misc]  # so a sequence of (h, w) pairs


def split_maps(values: np.ndarray, grids: list[Grid]) -> list[np.ndarray]:
    """Cut ``(N,)`` per-patch values of stacked images into one ``(h_i, w_i)`` map per image."""
    offsets = np.cumsum([0] + [h * w for h, w in grids])
    return [values[a:b].reshape(g) for a, b, g in zip(offsets[:-1], offsets[1:], grids, strict=False)]


def _background(labels: np.ndarray, grids: list[Grid], ignore: int | None = None) -> int:
    """:func:`background_label` of ``(N,)`` labels of one image or of several stacked images."""
    if len(grids) == 1:
        return background_label(labels.reshape(grids[0]), ignore=ignore)
    return background_label(split_maps(labels, grids), ignore=ignore)


def _order_by_size(labels: np.ndarray) -> np.ndarray:
    """Map raw cluster ids to ``0 … m-1`` by decreasing size: returns ``(N,)`` new labels."""
    ids, counts = np.unique(labels, return_counts=True)
    rank = {int(i): r for r, i in enumerate(ids[np.argsort(-counts, kind="stable")])}
    return np.array([rank[int(v)] for v in labels], dtype=np.int64)


def _scatter_soft(soft: np.ndarray, rows: np.ndarray, result: ClusterResult, new_labels: np.ndarray) -> np.ndarray:
    """Write a stage's soft assignments into the final label columns of ``soft`` for ``rows``
    (widening ``soft`` when a new label needs a column); returns the (possibly new) array.

    The GNN's clusters that no patch was assigned to (CC's unused ones, say) have no final label:
    their share is spread over the others in proportion (each row is renormalised), so every row of
    ``soft`` still sums to 1."""
    extra = int(new_labels.max()) + 1 - soft.shape[1]
    if extra > 0:
        soft = np.concatenate([soft, np.zeros((soft.shape[0], extra), np.float32)], axis=1)
    part = np.zeros((rows.size, soft.shape[1]), np.float32)
    for raw in np.unique(result.labels):
        target = int(new_labels[np.flatnonzero(result.labels == raw)[0]])
        part[:, target] += result.soft[:, raw]
    soft[rows] = _rows_sum_to_one(part)
    return soft


def _rows_sum_to_one(soft: np.ndarray) -> np.ndarray:
    """``soft`` ``(n, L)`` with each row divided by its sum (a row's missing share spread in proportion)."""
    return soft / np.maximum(soft.sum(axis=1, keepdims=True), np.finfo(np.float32).tiny)


class _Stages:
    """The state threaded through the stages of one :func:`run_stages` call."""

    def __init__(self, graph: PatchGraph, grids: list[Grid], cfg: SegmentConfig, clusterer: Clusterer,
                 tracking: Tracking) -> None:
        self.graph, self.grids, self.cfg, self.clusterer, self.tracking = graph, grids, cfg, clusterer, tracking
        self.rank = (lambda v: np.asarray(v, np.int64)) if tracking.keep_cluster_ids else _order_by_size
        self.models: list = [None, None, None]
        self.losses: list[list[float]] = []
        self.restarts: list[int] = []
        self.notes: list[str] = []
        self.timings = Timings()

    def background(self, raw: np.ndarray) -> int:
        fn = self.tracking.background_fn
        return fn(raw) if fn is not None else _background(raw, self.grids)

    def fit(self, stage: int, rows: np.ndarray | None, k: int) -> ClusterResult:
        """Cluster the subgraph of ``rows`` (all patches when None) in ``stage`` (0-based)."""
        t = time.perf_counter()
        sub = self.graph.subgraph(rows)
        warm, links = self.tracking.warm, self.tracking.links
        prev = warm[stage] if warm is not None and stage < len(warm) else None
        kw: dict[str, Any] = dict(k=k, loss=self.cfg.loss, alpha=self.cfg.alpha, epochs=self.cfg.epochs[stage],
                  seed=self.cfg.seed, graph=sub, settle=SETTLE if self.cfg.settle else None)
        if links is not None:
            stage_links = links.restrict(stage, rows)
            if stage_links:
                kw["links"] = stage_links
            elif prev is not None:
                kw["epochs"] = 0
        result = (
            self.clusterer(sub.features, model=prev, **kw) if prev is not None else self.clusterer(sub.features, **kw)
        )
        self.models[stage] = result.model
        setattr(self.timings, f"stage{stage + 1}", time.perf_counter() - t)
        self.losses.append(result.losses)
        self.restarts.append(int(getattr(result, "restart_epoch", 0)))  # a baseline clusterer never restarts
        ran = getattr(result, "precision", None)  # a baseline has none
        if ran is not None and self.timings.gnn_precision != "bf16":  # bf16 where any stage ran it
            self.timings.gnn_precision = ran
        if result.note:
            self.notes.append(f"stage {stage + 1}: {result.note}")
        return result


def _first_stage(st: _Stages) -> tuple[np.ndarray, np.ndarray, list[int] | None]:
    """Stage 1: ``(labels (N,), soft (N, L), foreground labels or None)``."""
    cfg, n = st.cfg, st.graph.num_nodes
    r1 = st.fit(0, None, cfg.first_stage_k)
    raw = r1.labels
    bg = st.background(raw)
    if cfg.stages >= 2 or cfg.k == 2:  # a foreground/background bipartition
        fg = raw != bg
        if cfg.largest_component:
            fg = np.concatenate([largest_component(m).ravel() for m in split_maps(fg, st.grids)])
        soft = np.zeros((n, 2), np.float32)
        soft[:, 0] = r1.soft[:, bg]
        soft[:, 1] = 1.0 - r1.soft[:, bg]
        if not fg.any():
            st.notes.append(NO_FOREGROUND)
        return fg.astype(np.int64), soft, [1]
    if cfg.largest_component:
        st.notes.append("largest_component applies to a foreground/background split (k=2 or stages>=2); ignored")
    by_size = st.rank(raw)
    # background first, then the other segments by decreasing size
    bg_rank = int(by_size[np.flatnonzero(raw == bg)[0]])
    labels = np.where(by_size == bg_rank, 0, by_size + (by_size < bg_rank))
    soft = np.zeros((n, max(np.unique(raw).size, int(labels.max()) + 1)), np.float32)
    return labels, _scatter_soft(soft, np.arange(n), r1, labels), None


def _split_part(
    st: _Stages,
    stage: int,
    labels: np.ndarray,
    soft: np.ndarray,
    part: int,
    k: int,
    name: str,
    new_labels: Callable[[ClusterResult, np.ndarray], np.ndarray],
    keep_columns: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Stages 2 and 3: cluster the patches labelled ``part`` into ``k`` and relabel them with
    ``new_labels(result, rows)``; ``keep_columns``: only the first columns of ``soft`` survive (the
    split part's own column goes; the rows are renormalised). Returns
    ``(labels, soft, the part's new labels or None if skipped)``."""
    rows = np.flatnonzero(labels == part)
    if rows.size < 2:
        st.notes.append(f"stage {stage + 1} skipped: the {name} has fewer than 2 patches")
        st.losses.append([])  # losses stay in stage order: losses[i] is stage i + 1's
        st.restarts.append(0)
        return labels, soft, None
    result = st.fit(stage, rows, k)
    parts = new_labels(result, rows)
    labels = labels.copy()
    labels[rows] = parts
    if keep_columns is not None:  # the other patches' share of the dropped column is spread over the rest
        soft = _rows_sum_to_one(soft[:, :keep_columns])
    return labels, _scatter_soft(soft, rows, result, parts), parts


def run_stages(graph: PatchGraph, grid: Grid | Sequence[Grid], cfg: SegmentConfig,
               clusterer: Clusterer = fit, tracking: Tracking | None = None) -> StageOutput:
    """DeepCut's 1–3 clustering stages on a patch graph laid out on ``grid`` (see the module doc).

    Args:
        graph: the patches' :class:`PatchGraph` (:func:`deepcut.graph.patch_graph.graph_of` builds one from an
            image's features).
        grid: ``(h, w)``, or a list of grids when ``graph`` stacks the patches of several images
            (one graph, one GNN); the background is then what covers most of their borders together.
        cfg: the settings.
        clusterer: clusters each stage (default: the GNN, :func:`~deepcut.clustering.fit.fit`); a
            baseline of :mod:`deepcut.clustering.spectral` or :mod:`deepcut.evaluation.baselines` gets the
            same stages and post-processing.
        tracking: video options (warm start, label numbering, background choice).
    """
    if not isinstance(graph, PatchGraph):
        raise TypeError(f"run_stages takes a PatchGraph, not {type(graph).__name__}: build it with graph_of(features) "
                        "or PatchGraph(features)")
    st = _Stages(graph, as_grids(grid), cfg, clusterer, tracking or Tracking())
    labels, soft, fg_labels = _first_stage(st)
    assert cfg.k is not None  # resolved when the config was made
    if cfg.stages >= 2:
        labels, soft, parts = _split_part(st, 1, labels, soft, 1, cfg.k, "foreground",
                                          lambda r, rows: 1 + st.rank(r.labels), keep_columns=1)
        if parts is not None:
            fg_labels = sorted(int(v) for v in np.unique(parts))
    if cfg.stages >= 3:
        base = int(cfg.k) if st.tracking.keep_cluster_ids else int(labels.max())
        labels, soft, _ = _split_part(st, 2, labels, soft, 0, cfg.bg_k, "background",
                                      lambda r, rows: _background_parts(st, r, rows, base))
    return StageOutput(labels, soft, fg_labels, st.losses, st.timings, st.notes, st.models, st.restarts)


def _background_parts(st: _Stages, result: ClusterResult, rows: np.ndarray, base: int) -> np.ndarray:
    """Stage 3's labels: the background part touching the border most keeps label 0, the others
    follow ``base``."""
    sub = np.full(st.graph.num_nodes, -1, np.int64)
    sub[rows] = result.labels
    main = _background(sub, st.grids, ignore=-1)
    ranked = st.rank(result.labels)
    main_rank = int(ranked[np.flatnonzero(result.labels == main)[0]])
    return np.where(ranked == main_rank, 0, base + 1 + ranked - (ranked > main_rank))


def relabel(out: StageOutput, mapping: dict[int, int]) -> StageOutput:
    """``out`` with its labels renamed by ``mapping`` (old → new); soft columns move along."""
    lut = np.zeros(int(out.labels.max()) + 1, np.int64)
    for old, new in mapping.items():
        lut[old] = new
    labels = lut[out.labels]
    width = max(mapping.values()) + 1
    soft = np.zeros((out.soft.shape[0], width), np.float32)
    for old, new in mapping.items():
        if old < out.soft.shape[1]:
            soft[:, new] = out.soft[:, old]
    fg = None
    if out.foreground_labels is not None:
        fg = sorted(mapping[v] for v in out.foreground_labels if v in mapping)
    return StageOutput(labels, soft, fg, out.losses, out.timings, list(out.notes), out.models,
                       list(out.restarts))
