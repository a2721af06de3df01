"""Computations that explain a segmentation (the demo's teaching view, usable without it).

* :func:`compare_result` — the paper's claim made visible for one result: the graph of the stage that
  made its segments, cut by the GNN (the result itself) and by the classical spectral relaxation
  (:func:`~deepcut.clustering.spectral.spectral_fit`), both scored by the result's own loss on that very graph
  (:func:`~deepcut.graph.patch_graph.normalized_cut`, or CC's objective :func:`cc_objective`);
  :func:`compare_with_spectral` does it for a fresh GNN's NCut cut;
* :func:`record_training` — the GNN's soft assignments after chosen epochs of every stage, replayed
  exactly (see :class:`SnapshotRecorder`);
* :func:`feature_pca` — the patch features' first three principal components as colours;
* :func:`label_at` and :func:`pick_object` — make the segment under a pixel the foreground;
* :func:`patch_affinity` — a patch's row of the graph (:func:`deepcut.features.image.pixel_to_patch`
  finds the patch under a pixel).

Nothing here draws; :mod:`deepcut.render` turns these into pictures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..clustering.fit import ClusterResult, fit
from ..clustering.losses import cc_loss, cc_loss_lowrank, ncut_loss
from ..clustering.spectral import spectral_fit
from ..config import SegmentConfig
from ..graph.patch_graph import CompactAffinity, PatchGraph, SparseAffinity, normalized_cut, score_graph
from ..segmentation.result import Segmentation
from ..stages.run import StageOutput, run_stages
from ..utils.masks import bbox_of

#: At most this many snapshots (plus the untrained start) per stage; a stage of fewer epochs gets one per epoch.
SNAPSHOTS_PER_STAGE = 10


@dataclass
class CutComparison:
    """One graph, two cuts of it: the GNN's and the spectral relaxation's, scored by one measure.

    Attributes:
        k: the number of segments the spectral cut was asked for: the stage's ``k`` for NCut (what the GNN
            was asked for); for CC, as many as the CC result found (CC picks the number itself).
        gnn_labels: ``(n,)`` int64 the GNN's segment of each of the stage's patches: the result's final
            labels (:func:`compare_result`: the overlay's colours), or a fresh GNN's clusters
            (:func:`compare_with_spectral`).
        spectral_labels: ``(n,)`` int64 the spectral cut's cluster of each patch.
        gnn_score, spectral_score: the measure of :attr:`loss` on the stage's graph, lower is better: NCut's
            :func:`normalized_cut` on ``relu(W) / max``, or CC's objective :func:`cc_objective` on
            ``W - max(W) / alpha``.
        spectral_method: how the spectral cut was made, in words.
        num_nodes: ``n``; sparse: whether the stage's graph is compact or a sparse k-NN graph.
        loss: ``"ncut"`` or ``"cc"``: the result's loss, which both are scored by.
        stage: the stage whose cut this is (1: whole image, 2: foreground parts, 3: background parts).
        rows: ``(n,)`` the stage's patches, row-major indices into the image's grid (None: all of them).
        asked: the ``k`` that stage was asked for (for CC its bound).
        alpha: CC's α (the CC graph's threshold ``max(W) / α``).
        num_labels: every final label of the result is below this (0: :attr:`gnn_labels` are not final
            labels); a spectral cluster matched to none of the GNN's segments is coloured from here on.
    """

    k: int
    gnn_labels: np.ndarray
    spectral_labels: np.ndarray
    gnn_score: float
    spectral_score: float
    spectral_method: str
    num_nodes: int
    sparse: bool
    loss: str = "ncut"
    stage: int = 1
    rows: np.ndarray | None = None
    asked: int = 2
    alpha: float = 3.0
    num_labels: int = 0


def compare_with_spectral(graph: PatchGraph, k: int = 2, epochs: int = 10, seed: int = 0,
                          max_epochs: int | None = None) -> CutComparison:
    """Cut ``graph``'s NCut affinity ``A = relu(F Fᵀ) / max`` into ``k`` segments with a fresh GNN
    (:func:`~deepcut.clustering.fit.fit`, NCut loss, ``epochs``, ``seed``: the pipeline's stage 1 of one stage)
    and with the spectral method (:func:`spectral_cut`), and score both with :func:`normalized_cut` on ``A``.
    To explain a result, :func:`compare_result` uses the result's own cut instead."""
    gnn = fit(graph.features, k=k, loss="ncut", epochs=epochs, seed=seed, graph=graph, max_epochs=max_epochs)
    spectral, method = spectral_cut(graph, int(k), seed)
    adj = score_graph(graph)
    return CutComparison(int(k), gnn.labels, spectral, normalized_cut(adj, gnn.labels), normalized_cut(adj, spectral),
                         method, graph.num_nodes, graph.is_sparse, asked=int(k))


def spectral_cut(graph: PatchGraph, k: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """``(labels (n,), method in words)``: the spectral normalized cut of ``graph``'s NCut affinity into
    ``k`` (``k = 2``: the Fiedler vector split at its mean; more: ``k`` eigenvectors and k-means); fewer
    than 2 segments asked for (or nodes): one segment, nothing cut."""
    k = min(int(k), graph.num_nodes)
    if k < 2:
        return np.zeros(graph.num_nodes, np.int64), "one segment: nothing to cut"
    result = spectral_fit(graph.features, k=k, seed=seed, graph=graph)
    method = "Fiedler vector, split at its mean" if k == 2 else f"{k} eigenvectors + k-means"
    return result.labels, method + (f" ({result.note})" if result.note else "")


def cc_objective(graph: PatchGraph, labels: np.ndarray, alpha: float = 3.0) -> float:
    """Correlation clustering's objective ``-Σ_ij A_ij [l_i = l_j]`` of ``labels`` ``(n,)`` over all pairs of
    ``graph``'s CC affinity ``A = W - max(W) / alpha``: the GNN's CC loss at hard assignments (lower is
    better: attractions kept inside segments, repulsions put between them)."""
    _, inverse = np.unique(np.asarray(labels), return_inverse=True)
    x = graph.features.float()
    onehot = torch.zeros(inverse.size, int(inverse.max(initial=0)) + 1, dtype=torch.float32, device=x.device)
    onehot[torch.arange(inverse.size), torch.as_tensor(inverse, device=x.device)] = 1.0
    a = graph.cluster_affinity("cc", alpha)
    with torch.no_grad():
        if isinstance(a, (CompactAffinity, SparseAffinity)):
            return float(cc_loss_lowrank(x, a.offset, onehot))
        return float(cc_loss(a, onehot))


def cut_measure(graph: PatchGraph, labels: np.ndarray, loss: str, alpha: float = 3.0) -> float:
    """The measure of ``loss`` for ``labels`` ``(n,)`` on ``graph``: :func:`normalized_cut` (NCut) or
    :func:`cc_objective` (CC); lower is better."""
    return cc_objective(graph, labels, alpha) if loss == "cc" else normalized_cut(score_graph(graph), labels)


def comparison_stage(labels: np.ndarray, cfg: SegmentConfig, foreground_labels: Sequence[int] | None
                     ) -> tuple[int, np.ndarray, int]:
    """``(stage, rows (n,), k asked)`` of the cut that makes a result's segments, for final patch labels
    ``(N,)``: one stage: stage 1 on every patch, ``cfg.k``; two or three: stage 2 on the foreground's
    patches (``foreground_labels``), ``cfg.k``; where the foreground has fewer than 2 patches (stage 2 was
    skipped), stage 3 on the background's, ``cfg.bg_k``; else stage 1's foreground/background split, 2."""
    n = np.asarray(labels).size
    assert cfg.k is not None  # SegmentConfig resolves k when it is made
    if cfg.stages == 1 or foreground_labels is None:
        return 1, np.arange(n), int(cfg.k)
    fg = np.isin(np.asarray(labels).ravel(), list(foreground_labels))
    if fg.sum() >= 2:
        return 2, np.flatnonzero(fg), int(cfg.k)
    if cfg.stages >= 3 and (~fg).sum() >= 2:
        return 3, np.flatnonzero(~fg), int(cfg.bg_k)
    return 1, np.arange(n), 2


def compare_result(graph: PatchGraph, labels: np.ndarray, cfg: SegmentConfig,
                   foreground_labels: Sequence[int] | None = None) -> CutComparison:
    """The result's own cut against the spectral one, on the graph of the stage that made its segments.

    The GNN side is the result itself: its final labels ``labels`` ``(N,)`` (row-major over the grid) on the
    patches of :func:`comparison_stage` (one stage: the image; two or three: the foreground's parts). The
    spectral side cuts that stage's graph (:func:`spectral_cut`) into the stage's ``k`` for NCut, or into as
    many segments as the CC result found (CC picks the number itself; the spectral method cuts NCut's graph
    ``relu(W) / max``, having no CC form). Both are scored by the result's own loss on that graph
    (:func:`cut_measure`)."""
    labels = np.asarray(labels).ravel().astype(np.int64)
    stage, rows, asked = comparison_stage(labels, cfg, foreground_labels)
    sub = graph.subgraph(None if rows.size == graph.num_nodes else rows)
    own = labels[rows]
    target = min(asked if cfg.loss == "ncut" else int(np.unique(own).size), rows.size)
    spectral, method = spectral_cut(sub, target, cfg.seed)
    return CutComparison(int(target), own, spectral, cut_measure(sub, own, cfg.loss, cfg.alpha),
                         cut_measure(sub, spectral, cfg.loss, cfg.alpha), method, rows.size, sub.is_sparse,
                         cfg.loss, stage, rows, int(asked), float(cfg.alpha), int(labels.max(initial=0)) + 1)


# -- training, replayed --------------------------------------------------------------------------
def snapshot_epochs(epochs: int, most: int = SNAPSHOTS_PER_STAGE) -> list[int]:
    """The epochs after which a stage of ``epochs`` is shown: every one (``0 … epochs``) up to
    ``most`` epochs, else ``most + 1`` evenly spaced ones from 0 to ``epochs``."""
    epochs = int(epochs)
    if epochs <= most:
        return list(range(epochs + 1))
    return sorted({round(i * epochs / most) for i in range(most + 1)})


@dataclass
class StageRecord:
    """The snapshots of one stage's GNN.

    Attributes:
        stage: 1, 2 or 3.
        rows: ``(n,)`` indices (row-major over the grid) of the patches this stage clustered.
        epochs: the epoch of each snapshot (0: untrained).
        soft: one ``(n, k)`` float32 softmax output per snapshot (evaluation mode, as the result's).
        losses: the stage's training loss after every epoch (the pipeline's own values).
        label_of: ``(k,)`` the final label each of the GNN's clusters became (for colours).
        terms: NCut only: ``(cut, orthogonality)`` of each snapshot's soft assignments on the stage's
            graph (:func:`~deepcut.clustering.losses.ncut_loss`; their sum is the loss without dropout).
    """

    stage: int
    rows: np.ndarray
    epochs: list[int]
    soft: list[np.ndarray]
    losses: list[float]
    label_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    terms: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class TrainingRecord:
    """Every stage's snapshots, and the final patch labels ``(N,)`` of the run they replay."""

    grid: tuple[int, int]
    stages: list[StageRecord]
    labels: np.ndarray

    def frames(self) -> list[tuple[int, int]]:
        """``(stage index, snapshot index)`` of every snapshot, stage by stage: a scrubber's positions."""
        return [(s, i) for s, st in enumerate(self.stages) for i in range(len(st.epochs))]


class SnapshotRecorder:
    """A :class:`~deepcut.clustering.fit.Clusterer` that is :func:`~deepcut.clustering.fit.fit` and also keeps
    the soft assignments after each of :func:`snapshot_epochs` (``fit``'s ``snapshots``: recording does
    not change the training, so the last one is the very result the pipeline gets). When NCut trained
    past its epochs to use all ``k`` clusters, the final state is added as one more snapshot.
    """

    def __init__(self, most: int = SNAPSHOTS_PER_STAGE, max_epochs: int | None = None) -> None:
        self.most, self.max_epochs = int(most), max_epochs
        #: per call: ``(features (n, D), epochs, soft per snapshot, final result)``
        self.calls: list[tuple[torch.Tensor, list[int], list[np.ndarray], ClusterResult]] = []

    def __call__(self, features: torch.Tensor, epochs: int = 10, **kwargs: Any) -> ClusterResult:
        marks = snapshot_epochs(epochs, self.most)
        final = fit(features, epochs=epochs, snapshots=marks, max_epochs=self.max_epochs, **kwargs)
        kept = [e for e in marks if e in final.snapshots]
        softs = [final.snapshots[e] for e in kept]
        if len(final.losses) > (kept[-1] if kept else 0):  # trained on until every cluster was used
            kept.append(len(final.losses))
            softs.append(final.soft)
        self.calls.append((features, kept, softs, final))
        return final


def _stage_rows(out: StageOutput, cfg: SegmentConfig, n: int) -> list[tuple[int, np.ndarray]]:
    """The ``(stage, rows)`` the pipeline may have clustered, in order: all patches; the foreground; the background."""
    rows = [(1, np.arange(n))]
    if cfg.stages >= 2 and out.foreground_labels is not None:
        fg = np.isin(out.labels, out.foreground_labels)
        rows.append((2, np.flatnonzero(fg)))
        if cfg.stages >= 3:
            rows.append((3, np.flatnonzero(~fg)))
    return rows


def ncut_terms(graph: PatchGraph, softs: list[np.ndarray]) -> list[tuple[float, float]]:
    """``(cut, orthogonality)`` of :func:`~deepcut.clustering.losses.ncut_loss` for each soft assignment
    ``(n, k)`` on the NCut graph the GNN trains on (``graph.cluster_affinity("ncut")``)."""
    adj = graph.cluster_affinity("ncut")
    a = adj.matrix() if isinstance(adj, SparseAffinity) else adj
    out = []
    with torch.no_grad():
        for soft in softs:
            cut, ortho = ncut_loss(a, torch.as_tensor(soft, dtype=a.dtype, device=a.device))
            out.append((float(cut), float(ortho)))
    return out


def _final_label_of(final: ClusterResult, labels: np.ndarray, spare: int) -> np.ndarray:
    """``(k,)`` the final label each of a stage's GNN clusters became: the most common final label of
    ``labels`` ``(n,)`` among its patches; a cluster no patch ended in gets ``spare``, ``spare + 1`` …
    (above every final label: its colour is no segment's)."""
    label_of = np.zeros(final.soft.shape[1], np.int64)
    for c in range(label_of.size):
        members = labels[final.labels == c]
        if members.size:
            label_of[c] = np.bincount(members).argmax()
        else:
            label_of[c], spare = spare, spare + 1
    return label_of


def record_training(graph: PatchGraph, grid: tuple[int, int], cfg: SegmentConfig,
                    most: int = SNAPSHOTS_PER_STAGE, max_epochs: int | None = None) -> TrainingRecord:
    """Run the stages of ``cfg`` on ``graph`` (``N = h * w`` patches on ``grid``) with a
    :class:`SnapshotRecorder`: the same labels as :func:`~deepcut.stages.run.run_stages`, plus every
    stage's snapshots. A skipped stage has no record. ``max_epochs``: as :func:`~deepcut.clustering.fit.fit`'s
    (the replay of a result trained under that cap)."""
    recorder = SnapshotRecorder(most, max_epochs)
    out = run_stages(graph, grid, cfg, recorder)
    candidates = _stage_rows(out, cfg, graph.num_nodes)
    stages = []
    for features, marks, softs, final in recorder.calls:
        for stage, rows in candidates:  # noqa: B007 - the match is used after the loop
            if rows.size == features.shape[0] and torch.equal(graph.features[torch.as_tensor(rows)].cpu(),
                                                             features.cpu()):
                break
        else:  # pragma: no cover - the pipeline clusters only these sets
            continue
        label_of = _final_label_of(final, out.labels[rows], int(out.labels.max()) + 1)
        terms = ncut_terms(graph.subgraph(rows), softs) if cfg.loss == "ncut" else []
        stages.append(StageRecord(stage, rows, marks, softs, list(final.losses), label_of, terms))
        candidates = [c for c in candidates if c[0] > stage]
    return TrainingRecord((int(grid[0]), int(grid[1])), stages, out.labels)


# -- the features ----------------------------------------------------------------------------------
def feature_pca(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """The first three principal components of patch features ``(h, w, D)`` as colours: ``(h, w, 3)``
    float32 in ``[0, 1]`` (each component min-max scaled over its 1st-99th percentile; fewer than
    three components leave the missing channels at 0.5)."""
    f = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    f = f.detach().cpu().double()
    if f.ndim != 3:
        raise ValueError(f"features must be (h, w, D), got shape {tuple(f.shape)}")
    h, w, d = f.shape
    x = f.reshape(h * w, d)
    x = x - x.mean(0, keepdim=True)
    out = np.full((h * w, 3), 0.5, np.float64)
    if h * w > 1 and float(x.abs().max()) > 0:
        _, _, v = torch.linalg.svd(x, full_matrices=False)
        comps = (x @ v[:3].T).numpy()
        lo, hi = np.percentile(comps, 1, axis=0), np.percentile(comps, 99, axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        out[:, :comps.shape[1]] = np.clip((comps - lo) / span, 0.0, 1.0)
    return out.reshape(h, w, 3).astype(np.float32)


# -- picking the object ------------------------------------------------------------------------------
def label_at(seg: Segmentation, x: float, y: float, frame: tuple[int, int] | None = None) -> int:
    """The label under pixel ``(x, y)`` of a picture of size ``frame`` ``(H, W)`` (default: the label map's)."""
    h, w = seg.labels.shape
    fh, fw = frame or (h, w)
    row = int(np.clip(np.floor(y / max(fh, 1) * h), 0, h - 1))
    col = int(np.clip(np.floor(x / max(fw, 1) * w), 0, w - 1))
    return int(seg.labels[row, col])


def pick_object(seg: Segmentation, label: int) -> Segmentation:
    """``seg`` with segment ``label`` as its foreground: the mask is ``labels == label``, the box is
    that mask's, and so is the cut-out (:meth:`~deepcut.segmentation.result.Segmentation.cutout`); labels,
    soft maps and everything else are unchanged.

    Raises:
        ValueError: no pixel has ``label``.
    """
    mask = seg.labels == int(label)
    if not mask.any():
        raise ValueError(f"no segment has label {label}")
    note = f"picked segment {int(label)} as the object"
    return dataclasses.replace(seg, foreground=mask, bbox=bbox_of(mask),
                               notes=[n for n in seg.notes if not n.startswith("picked segment")] + [note])


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
