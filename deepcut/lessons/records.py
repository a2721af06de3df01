"""The records the lessons compute and :mod:`deepcut.render.teaching` draws: a result's cut against the
spectral one (:class:`CutComparison`, made by :mod:`.cuts`) and the training replayed
(:class:`TrainingRecord` of :class:`StageRecord`, made by :mod:`.replay`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..clustering.settle import Settle

__all__ = ["CutComparison", "StageRecord", "TrainingRecord"]


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
        restart_epoch: where this stage's NCut restarted from the spectral cut (its first try left a cluster
            empty), the first try's epochs: the GNN's cut then started from the spectral one; 0: no restart.
        first_try_segments, first_try_score: with a restart, how many segments the first try's last epoch
            had and its score by the same measure (None: no restart).
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
    restart_epoch: int = 0
    first_try_segments: int = 0
    first_try_score: float | None = None


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
        restart: where NCut restarted from the spectral cut (its first epochs left a cluster empty): the index
            of the restart's first snapshot, the fresh GNN once it learned the spectral cut (its epoch is the
            first try's last, :attr:`restart_epoch`); the snapshots after it are the restart's epochs
            ``restart_epoch + 1 …``. None: no restart.
        planned: the epochs each try of the stage was given (0: unknown).
        settled: the rule that stopped the stage's last try before ``planned`` epochs, because its labels and
            loss had settled (:class:`~deepcut.clustering.settle.Settle`); None: it trained every epoch.
    """

    stage: int
    rows: np.ndarray
    epochs: list[int]
    soft: list[np.ndarray]
    losses: list[float]
    label_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    terms: list[tuple[float, float]] = field(default_factory=list)
    restart: int | None = None
    planned: int = 0
    settled: Settle | None = None

    @property
    def restart_epoch(self) -> int:
        """The epochs of the first try where the stage restarted (``losses[restart_epoch:]`` are the
        restart's), else 0."""
        return 0 if self.restart is None else int(self.epochs[self.restart])

    def phase(self, i: int) -> str:
        """What snapshot ``i`` is of: ``"training"`` (no restart), ``"first try"`` (before a restart),
        ``"restart start"`` (the fresh GNN once it learned the spectral cut) or ``"restart"``."""
        if self.restart is None:
            return "training"
        return "first try" if i < self.restart else "restart start" if i == self.restart else "restart"


@dataclass
class TrainingRecord:
    """Every stage's snapshots, and the final patch labels ``(N,)`` of the run they replay."""

    grid: tuple[int, int]
    stages: list[StageRecord]
    labels: np.ndarray

    def frames(self) -> list[tuple[int, int]]:
        """``(stage index, snapshot index)`` of every snapshot, stage by stage: a scrubber's positions."""
        return [(s, i) for s, st in enumerate(self.stages) for i in range(len(st.epochs))]
