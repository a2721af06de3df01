"""The paper's claim made visible for one result: the graph of the stage that made its segments, cut by the
GNN (the result itself) and by the classical spectral relaxation (:func:`~deepcut.clustering.spectral.spectral_fit`),
both scored by the result's own loss on that very graph (:func:`~deepcut.graph.patch_graph.normalized_cut`, or
CC's objective :func:`cc_objective`): :func:`compare_result`; :func:`compare_with_spectral` does it for a fresh
GNN's NCut cut. Nothing here draws; :mod:`deepcut.render.teaching` does.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..clustering.fit import fit
from ..clustering.losses import cc_loss, cc_loss_lowrank
from ..clustering.spectral import spectral_fit
from ..config import SegmentConfig
from ..graph.patch_graph import CompactAffinity, PatchGraph, SparseAffinity, normalized_cut, score_graph
from .records import CutComparison


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
