"""The GNN's training replayed: its soft assignments after chosen epochs of every stage, recorded exactly
(:func:`record_training`, :class:`SnapshotRecorder`). Nothing here draws; :mod:`deepcut.render.teaching` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..clustering.fit import ClusterResult, fit
from ..clustering.losses import ncut_loss
from ..config import SegmentConfig
from ..graph.patch_graph import PatchGraph, SparseAffinity
from ..stages.run import StageOutput, run_stages
from .records import StageRecord, TrainingRecord

#: At most this many snapshots (plus the untrained start) per stage; a stage of fewer epochs gets one per epoch.
SNAPSHOTS_PER_STAGE = 10


def snapshot_epochs(epochs: int, most: int = SNAPSHOTS_PER_STAGE) -> list[int]:
    """The epochs after which a stage of ``epochs`` is shown: every one (``0 … epochs``) up to
    ``most`` epochs, else ``most + 1`` evenly spaced ones from 0 to ``epochs``."""
    epochs = int(epochs)
    if epochs <= most:
        return list(range(epochs + 1))
    return sorted({round(i * epochs / most) for i in range(most + 1)})


class SnapshotRecorder:
    """A :class:`~deepcut.clustering.fit.Clusterer` that is :func:`~deepcut.clustering.fit.fit` and also keeps
    the soft assignments after each of :func:`snapshot_epochs` (``fit``'s ``snapshots``: recording does
    not change the training, so the last one is the very result the pipeline gets). Where NCut restarted
    from the spectral cut, the restart's snapshots follow in order: its start (the fresh GNN once it learned
    the spectral cut, at the first try's last epoch) and the same marks again, after the first try's epochs.
    A try the settle rule stopped early (:class:`~deepcut.clustering.settle.Settle`) has the marks it reached and
    its last epoch; when NCut trained past its snapshots, the final state is added as one more snapshot.
    """

    def __init__(self, most: int = SNAPSHOTS_PER_STAGE, max_epochs: int | None = None) -> None:
        self.most, self.max_epochs = int(most), max_epochs
        #: per call: ``(features (n, D), epochs, soft per snapshot, final result, index of the restart's start
        #: snapshot or None)``
        self.calls: list[tuple[torch.Tensor, list[int], list[np.ndarray], ClusterResult, int | None]] = []

    def __call__(self, features: torch.Tensor, epochs: int = 10, **kwargs: Any) -> ClusterResult:
        marks = snapshot_epochs(epochs, self.most)
        final = fit(features, epochs=epochs, snapshots=marks, max_epochs=self.max_epochs, **kwargs)
        first = final.restart_epoch if final.restarted else None  # the snapshots after it are the restart's
        kept = sorted(e for e in final.snapshots if first is None or e <= first)
        softs = [final.snapshots[e] for e in kept]
        restart = None
        if first is not None and final.restart_start is not None:
            restart = len(kept)
            kept.append(first)
            softs.append(final.restart_start)
            more = sorted(e for e in final.snapshots if e > first)
            kept += more
            softs += [final.snapshots[e] for e in more]
        if len(final.losses) > (kept[-1] if kept else 0):  # trained on until every cluster was used
            kept.append(len(final.losses))
            softs.append(final.soft)
        self.calls.append((features, kept, softs, final, restart))
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
    for features, marks, softs, final, restart in recorder.calls:
        for stage, rows in candidates:  # noqa: B007 - the match is used after the loop
            if rows.size == features.shape[0] and torch.equal(graph.features[torch.as_tensor(rows)].cpu(),
                                                             features.cpu()):
                break
        else:  # pragma: no cover - the pipeline clusters only these sets
            continue
        label_of = _final_label_of(final, out.labels[rows], int(out.labels.max()) + 1)
        terms = ncut_terms(graph.subgraph(rows), softs) if cfg.loss == "ncut" else []
        stages.append(StageRecord(stage, rows, marks, softs, list(final.losses), label_of, terms, restart,
                                  final.epochs, final.settle))
        candidates = [c for c in candidates if c[0] > stage]
    return TrainingRecord((int(grid[0]), int(grid[1])), stages, out.labels)


# -- the features ----------------------------------------------------------------------------------
