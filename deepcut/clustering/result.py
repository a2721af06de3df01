"""What a clustering gives back (:class:`ClusterResult`) and what the stages call (:class:`Clusterer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from .gnn import DeepCutGNN
from .settle import Settle

__all__ = ["ClusterResult", "Clusterer"]


@dataclass
class ClusterResult:
    """Output of :func:`fit`.

    Attributes:
        labels: ``(N,)`` int64 cluster index of each node, in ``0 … k-1`` (CC may leave some unused).
        soft: ``(N, k)`` float32 soft assignments (softmax of the GNN's output).
        losses: the training loss after each epoch.
        model: the trained GNN (to warm-start the next frame or image), None if none was trained.
        k: the number of clusters actually used (``k`` clamped to ``N``).
        note: why the result is degenerate, if it is (e.g. "constant features").
        snapshots: ``{epoch: (N, k) soft assignments}`` after the epochs ``fit`` was asked to record
            (``0``: before training), taken without dropout, as ``soft`` is.
        restarted: NCut's first ``epochs`` left a cluster empty and the result comes from the restart
            from the graph's spectral cut (see :func:`fit`); its ``losses`` follow the first ones, and ``note``
            says so in words.
        restart_epoch: with ``restarted``, the epochs of the first try: ``losses[restart_epoch:]`` and the
            snapshots after epoch ``restart_epoch`` are the restart's (0: no restart).
        restart_start: ``(N, k)`` float32 the restarted GNN's soft assignments once it learned the spectral
            cut, before NCut trained again (None: no restart, or no snapshots were asked for).
        first_labels: ``(N,)`` int64 with ``restarted``, the first try's labels (fewer than ``k`` clusters used).
        epochs: the epochs each try was given (``fit``'s ``epochs`` within ``max_epochs``; 0: not trained).
        settle: the rule that stopped the last try before its ``epochs`` because it had settled
            (:class:`~deepcut.clustering.settle.Settle`; :attr:`settled`); None: it trained every epoch.
        precision: what the kept GNN's GCN products ran in, ``"fp32"`` or ``"bf16"``
            (:mod:`~deepcut.clustering.arithmetic`; a kept restart is always fp32); None where no GNN was trained
            (one cluster, a baseline).
    """

    labels: np.ndarray
    soft: np.ndarray
    losses: list[float] = field(default_factory=list)
    model: DeepCutGNN | None = None
    k: int = 2
    note: str | None = None
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    restarted: bool = False
    restart_epoch: int = 0
    restart_start: np.ndarray | None = None
    first_labels: np.ndarray | None = None
    epochs: int = 0
    settle: Settle | None = None
    precision: str | None = None

    @property
    def settled(self) -> bool:
        """Whether the last try stopped early, once settled (:attr:`trained` of its :attr:`epochs` were trained)."""
        return self.settle is not None

    @property
    def trained(self) -> int:
        """The epochs the kept GNN trained in its last try (the restart's, where NCut restarted)."""
        return len(self.losses) - int(self.restart_epoch)


class Clusterer(Protocol):
    """What the pipeline calls to cluster one stage's graph: :func:`fit` (the GNN) or a baseline.

    Called as ``clusterer(features (N, D), k=…, loss=…, alpha=…, epochs=…, seed=…, graph=PatchGraph)``
    and, for a warm start (video), with ``model=`` the previous GNN. ``graph`` is the stage's graph
    (its affinity sliced from the cached ``F Fᵀ`` when there is one); a baseline may ignore it.
    """

    # ``*args: Any, **kwargs: Any``: any keyword set fits (the clusterers take different ones).
    def __call__(self, features: torch.Tensor, *args: Any, **kwargs: Any) -> ClusterResult: ...
