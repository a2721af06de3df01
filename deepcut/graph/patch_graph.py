"""The patch graph DeepCut cuts: ``W = F Fᵀ`` turned into the NCut or CC affinity.

Graphs come in three kinds (:func:`graph_kind`), by their number of nodes ``N``:

* ``"dense"`` (up to :data:`DENSE_MAX_NODES`): the ``N x N`` float32 matrix.
* ``"compact"`` (up to :data:`COMPACT_MAX_NODES`; a 1024-px image with 8-px patches has 16384):
  the same graph without any float32 ``N x N`` tensor, a :class:`CompactAffinity`. NCut's affinity
  is kept as one ``N x N`` matrix in :data:`COMPACT_DTYPE` (2 bytes an entry: 512 MB at 16384 nodes),
  built in blocks of rows from ``F``, with its degrees summed exactly in float32; CC keeps no matrix
  at all (its loss is exact from ``F``, see :func:`deepcut.clustering.losses.cc_loss_lowrank`). The GCN's
  propagation ``Â X`` is computed in float32 blocks. Every pair of the dense graph is there, so the
  GNN trains on the dense graph's objective (the k-NN graph it replaces cut a different one: its
  degrees and cuts only see 64 neighbours of each node, and the GCN smoothed over them only).
* ``"sparse"`` (above): a :class:`SparseAffinity`, the ``k`` nearest neighbours of every node under
  ``W`` (computed in blocks of rows, so memory stays ``O(chunk x N)``), symmetrised. NCut is cut on
  that k-NN graph; CC's loss over *all* pairs stays exact, only the GCN sees the k-NN part of the graph.

A cut of the graph is scored by Shi & Malik's normalized cut (:func:`normalized_cut`, :func:`cut_score`
on :func:`score_graph`): the discovery of objects ranks its objects by it and the teaching view
compares the GNN's cut with the spectral one by it.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np
import torch

from ..errors import ConfigError
from ..features.store import GRAM_CACHE_MAX_PATCHES, PatchFeatures
from ..utils.coerce import as_float
from .large import (
    DEFAULT_NEIGHBOURS,
    CompactAffinity,
    SparseAffinity,
    check_loss,
    compact_affinity,
    knn_affinity,
)

T = TypeVar("T")

#: Graphs of more nodes than this are never an ``N x N`` float32 matrix (4096² float32 = 64 MB; the
#: feature store caches Gram matrices up to this size): they are compact, or sparse k-NN graphs.
DENSE_MAX_NODES = GRAM_CACHE_MAX_PATCHES
#: Graphs of more nodes than :data:`DENSE_MAX_NODES` and at most this many are compact
#: (:class:`CompactAffinity`: 20480² entries of 2 bytes = 800 MB); above, sparse k-NN graphs.
COMPACT_MAX_NODES = 20480
#: ``"auto"`` (by size, see :func:`graph_kind`), or one kind at any size: ``"dense"``, ``"compact"``, ``"sparse"``.
GRAPH_MODES = ("auto", "dense", "compact", "sparse")


def affinity(features: torch.Tensor | np.ndarray, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor:
    """The graph DeepCut clusters, from features ``(N, D)`` (a tensor or an array): ``(N, N)`` float32 (dense, any
    size).

    * NCut: ``W = F Fᵀ``, ``A = relu(W) / max(W)`` (all zeros if no pair is positive);
    * CC:   ``A = W - max(W) / alpha`` (signed).
    """
    f = as_features(features)
    return affinity_from_gram(f @ f.T, loss, alpha, in_place=True)


def as_features(features: object) -> torch.Tensor:
    """``features`` (a tensor, a numpy array or nested lists of numbers) as an ``(N, D)`` float tensor.

    Raises:
        ConfigError: not an ``(N, D)`` array of real numbers.
    """
    try:
        f = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"features must be an (N, D) array or tensor of numbers ({e})") from None
    if f.ndim != 2 or f.is_complex() or f.dtype == torch.bool:
        raise ConfigError(f"features must be an (N, D) array of real numbers, got shape {tuple(f.shape)} of {f.dtype}")
    return f.float()


def affinity_from_gram(gram: torch.Tensor, loss: str = "ncut", alpha: float = 3.0, in_place: bool = False
                       ) -> torch.Tensor:
    """:func:`affinity` from a precomputed Gram matrix ``W = F Fᵀ`` ``(N, N)``: left unchanged, or, ``in_place``
    (a Gram matrix nobody else holds), turned into the affinity itself (no second ``N x N`` tensor to allocate)."""
    check_loss(loss)
    if loss == "ncut":
        w = gram.clamp_(min=0) if in_place else gram.clamp(min=0)
        top = w.max()
        return w.div_(top) if top > 0 else w.zero_()
    offset = gram.max() / as_float("alpha", alpha, positive=True)
    return gram.sub_(offset) if in_place else gram - offset


def graph_kind(num_nodes: int, mode: str = "auto") -> str:
    """The kind of graph of ``num_nodes`` nodes under ``mode`` (see :data:`GRAPH_MODES`): ``"dense"`` up to
    :data:`DENSE_MAX_NODES`, ``"compact"`` up to :data:`COMPACT_MAX_NODES`, ``"sparse"`` above (``"auto"``);
    any other mode is its own kind."""
    if mode not in GRAPH_MODES:
        raise ConfigError(f"graph mode must be one of {GRAPH_MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    n = int(num_nodes)
    return "dense" if n <= DENSE_MAX_NODES else "compact" if n <= COMPACT_MAX_NODES else "sparse"


def use_sparse(num_nodes: int, mode: str = "auto") -> bool:
    """Whether a graph of ``num_nodes`` nodes under ``mode`` is too big for an ``N x N`` float32 matrix
    (its :func:`graph_kind` is compact or sparse): what is not the GNN (scoring aside, e.g. the spectral
    baseline) then uses the sparse k-NN graph."""
    return graph_kind(num_nodes, mode) != "dense"


class PatchGraph:
    """The nodes (patch features) of a graph and, when known, its Gram matrix.

    The pipeline hands a :class:`PatchGraph` to every clusterer explicitly; the GNN reads its
    :meth:`cluster_affinity`: the dense ``(N, N)`` affinity (sliced from the cached Gram matrix when
    there is one, so a stage on a subset of patches costs no new ``N²D`` product) for up to
    :data:`DENSE_MAX_NODES` nodes, a :class:`CompactAffinity` up to :data:`COMPACT_MAX_NODES`, a
    :class:`SparseAffinity` above (``mode`` forces one kind, see :func:`graph_kind`).
    Baselines may build their own graph from :attr:`features`.

    Args:
        features: ``(N, D)`` node features.
        gram: ``features @ features.T`` ``(N, N)`` if already computed.
        mode: ``"auto"``, ``"dense"``, ``"compact"`` or ``"sparse"`` (see :data:`GRAPH_MODES`); subgraphs
            inherit it.
        neighbours: ``k`` of the sparse k-NN graph.
        memo: a dict shared by every graph of these very features (a cached image's, see
            :attr:`~deepcut.features.store.ImageEmbedding.graph_memo`), where :meth:`remembered` keeps what is
            derived from the whole graph; None: nothing is kept. Subgraphs get none.
    """

    def __init__(self, features: torch.Tensor, gram: torch.Tensor | None = None, mode: str = "auto",
                 neighbours: int = DEFAULT_NEIGHBOURS, memo: dict | None = None) -> None:
        use_sparse(0, mode)  # validates the mode
        if int(neighbours) < 1:
            raise ConfigError(f"neighbours must be at least 1, got {neighbours}")
        self.features = features
        self.gram = gram
        self.mode = mode
        self.neighbours = int(neighbours)
        self.memo = memo

    @property
    def num_nodes(self) -> int:
        return int(self.features.shape[0])

    @property
    def kind(self) -> str:
        """What :meth:`cluster_affinity` gives: ``"dense"``, ``"compact"`` or ``"sparse"`` (:func:`graph_kind`)."""
        return graph_kind(self.num_nodes, self.mode)

    @property
    def is_sparse(self) -> bool:
        """Whether the graph is too big for an ``(N, N)`` float32 matrix (:attr:`kind` compact or sparse):
        the spectral baseline then cuts the sparse k-NN graph."""
        return self.kind != "dense"

    def subgraph(self, rows: np.ndarray | None) -> "PatchGraph":
        """The graph induced by the nodes ``rows`` (all nodes when None); same mode and ``k``.

        A compact or sparse subgraph is rebuilt from its nodes' features (its kind by its own size under
        ``"auto"``): a sparse one's nodes keep their ``k`` nearest neighbours *within* the subset, and
        ``max(W)`` is the subset's, as the dense slice has it.
        """
        if rows is None:
            return self
        index = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=self.features.device)
        gram = None if self.gram is None else self.gram[index][:, index]
        return PatchGraph(self.features[index], gram, self.mode, self.neighbours)

    def remembered(self, key: tuple, make: Callable[[], T]) -> T:
        """``make()``, kept under ``key`` plus this graph's mode and ``k`` in :attr:`memo` (where there is one) and
        read back from there by later graphs of the same features: e.g. the GCN's propagation ``Â X`` of each
        objective, the same for every re-segmentation or correction of a cached image."""
        if self.memo is None:
            return make()
        full = (*key, self.mode, self.neighbours)
        if full not in self.memo:
            self.memo[full] = make()
        return self.memo[full]

    def affinity(self, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor:
        """The dense ``(N, N)`` NCut or CC affinity of this graph (see :func:`affinity`), at any size."""
        if self.gram is None:
            return affinity(self.features, loss, alpha)
        return affinity_from_gram(self.gram, loss, alpha)

    def cluster_affinity(self, loss: str = "ncut", alpha: float = 3.0
                         ) -> torch.Tensor | CompactAffinity | SparseAffinity:
        """What the GNN trains on, by :attr:`kind`: :meth:`affinity` (dense), :func:`compact_affinity`
        (compact) or :func:`knn_affinity` (sparse)."""
        kind = self.kind
        if kind == "sparse":
            return knn_affinity(self.features, loss, alpha, self.neighbours)
        if kind == "compact":
            return compact_affinity(self.features, loss, alpha)
        return self.affinity(loss, alpha)


# -- scoring a cut ----------------------------------------------------------------------------------
def graph_of(features: PatchFeatures) -> PatchGraph:
    """The patch graph of one image's features (its affinities sliced from their cached ``F Fᵀ`` if known, what
    is derived from it kept with them, :meth:`PatchGraph.remembered`): the one place features become a graph."""
    return PatchGraph(features.features, features.gram, memo=features.graph_memo)


def score_graph(graph: PatchGraph) -> torch.Tensor | CompactAffinity:
    """The non-negative NCut affinity :func:`cut_score` reads, the one the GNN trains on
    (:attr:`~deepcut.graph.patch_graph.PatchGraph.kind`): dense ``(N, N)``, a :class:`CompactAffinity`, or the sparse
    k-NN graph (COO)."""
    kind = graph.kind
    if kind == "dense":
        return graph.affinity("ncut")
    a = graph.cluster_affinity("ncut")
    return a.matrix() if isinstance(a, SparseAffinity) else a


def segment_cuts(adj: torch.Tensor | CompactAffinity, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cut, volume)`` ``(m,)`` float64 of each of the ``m`` segments of ``labels`` ``(N,)`` (in
    ``np.unique`` order) on a non-negative affinity ``(N, N)`` (dense, sparse COO or a
    :class:`CompactAffinity`): the weight leaving the segment and the segment's total degree."""
    ids, inverse = np.unique(np.asarray(labels), return_inverse=True)
    onehot = torch.zeros(inverse.size, ids.size, dtype=torch.float64, device=adj.device)
    onehot[torch.arange(inverse.size), torch.as_tensor(inverse, device=adj.device)] = 1.0
    if isinstance(adj, CompactAffinity):
        a_s = adj.matmul(onehot)  # (N, m)
    else:
        a = adj.coalesce().double() if adj.is_sparse else adj.double()
        a_s = torch.sparse.mm(a, onehot) if a.is_sparse else a @ onehot  # (N, m)
    volume = onehot.T @ a_s.sum(1)
    return volume - (onehot * a_s).sum(0), volume


def normalized_cut(adj: torch.Tensor | CompactAffinity, labels: np.ndarray) -> float:
    """Shi & Malik's k-way normalized cut ``Σ_c cut(c, rest) / vol(c)`` of ``labels`` ``(N,)`` on a
    non-negative affinity ``adj`` ``(N, N)`` (dense, sparse COO or compact, as :func:`score_graph` gives).
    0 for a perfect cut; a bipartition's value is ``2 (1 - cut_score)``. Segments without volume add
    nothing."""
    cut, volume = segment_cuts(adj, labels)
    keep = volume > 0
    return float((cut[keep] / volume[keep]).sum())


def cut_score(adj: torch.Tensor | CompactAffinity, inside: np.ndarray) -> float:
    """``1 - NCut(O, R) / 2`` of the nodes ``inside`` (``(N,)`` bool, ``O``) against the rest ``R``,
    on a non-negative affinity ``(N, N)`` (dense, sparse COO or compact); 0 when either side has no volume."""
    inside = np.asarray(inside, dtype=bool)
    if not inside.any() or inside.all():
        return 0.0
    cut, volume = segment_cuts(adj, inside)
    if bool((volume <= 0).any()):
        return 0.0
    return float(np.clip(1.0 - 0.5 * float((cut / volume).sum()), 0.0, 1.0))
