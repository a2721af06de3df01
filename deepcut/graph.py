"""The patch graph DeepCut cuts: ``W = F Fᵀ`` turned into the NCut or CC affinity.

Small graphs are dense ``N x N`` matrices. A graph of more than :data:`DENSE_MAX_NODES` nodes (a
1024-px image with 8-px patches has 16384) is never materialised: it becomes a
:class:`SparseAffinity`, the ``k`` nearest neighbours of every node under ``W`` (computed in blocks
of rows, so memory stays ``O(chunk x N)``), symmetrised. NCut is cut on that k-NN graph; CC's loss
over *all* pairs is exact without the matrix (``Σ W_ij (S Sᵀ)_ij = ‖Fᵀ S‖²``, see
:func:`deepcut.modeling.losses.cc_loss_lowrank`), only the GCN sees the k-NN part of the graph.

A cut of the graph is scored by Shi & Malik's normalized cut (:func:`normalized_cut`, :func:`cut_score`
on :func:`score_graph`): the discovery of objects ranks its objects by it and the teaching view
compares the GNN's cut with the spectral one by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import LOSSES
from .errors import ConfigError

#: Graphs of more nodes than this are built as sparse k-NN graphs, never as an ``N x N`` matrix
#: (4096² float32 = 64 MB; the feature store caches Gram matrices up to this size).
DENSE_MAX_NODES = 4096
#: Neighbours of each node in the sparse graph (before symmetrisation, the node itself included).
DEFAULT_NEIGHBOURS = 64
#: Entries of ``W = F Fᵀ`` computed at once while building a sparse graph (16 MB of float32).
CHUNK_ELEMENTS = 1 << 22
#: ``"auto"`` (dense up to :data:`DENSE_MAX_NODES` nodes, sparse above), ``"dense"`` or ``"sparse"``.
GRAPH_MODES = ("auto", "dense", "sparse")


def affinity(features: torch.Tensor, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor:
    """The graph DeepCut clusters, from features ``(N, D)``: ``(N, N)`` float32 (dense, any size).

    * NCut: ``W = F Fᵀ``, ``A = relu(W) / max(W)`` (all zeros if no pair is positive);
    * CC:   ``A = W - max(W) / alpha`` (signed).
    """
    f = features.float()
    return affinity_from_gram(f @ f.T, loss, alpha)


def affinity_from_gram(gram: torch.Tensor, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor:
    """:func:`affinity` from a precomputed Gram matrix ``W = F Fᵀ`` ``(N, N)`` (left unchanged)."""
    check_loss(loss)
    if loss == "ncut":
        w = gram.clamp(min=0)
        top = w.max()
        return w.div_(top) if top > 0 else torch.zeros_like(w)
    return gram - gram.max() / alpha


def check_loss(loss: str) -> None:
    """Raise :class:`ConfigError` unless ``loss`` is one of :data:`deepcut.config.LOSSES`."""
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")


def use_sparse(num_nodes: int, mode: str = "auto") -> bool:
    """Whether a graph of ``num_nodes`` nodes is built sparse under ``mode`` (see :data:`GRAPH_MODES`)."""
    if mode not in GRAPH_MODES:
        raise ConfigError(f"graph mode must be one of {GRAPH_MODES}, got {mode!r}")
    return mode == "sparse" or (mode == "auto" and int(num_nodes) > DENSE_MAX_NODES)


@dataclass
class SparseAffinity:
    """DeepCut's NCut or CC graph of ``N`` nodes without its ``N x N`` matrix.

    Attributes:
        loss: ``"ncut"`` or ``"cc"``.
        index: ``(2, E)`` int64 edges ``(row, col)``: every k-NN pair in both directions, sorted
            row-major, no duplicates (self-loops where a node is among its own neighbours).
        weight: ``(E,)`` float32 affinity of each edge: NCut ``relu(W_ij) / max(W)`` (zero edges
            dropped), CC ``W_ij - max(W) / alpha`` (signed).
        num_nodes: ``N``.
        features: ``(N, D)`` float32 features the graph was built from (CC's exact loss uses them).
        offset: CC's threshold ``max(W) / alpha`` (0 for NCut).
        top: ``max(W)`` over all pairs.
    """

    loss: str
    index: torch.Tensor
    weight: torch.Tensor
    num_nodes: int
    features: torch.Tensor
    offset: float = 0.0
    top: float = 0.0

    @property
    def num_edges(self) -> int:
        return int(self.weight.shape[0])

    def matrix(self) -> torch.Tensor:
        """The k-NN affinity as a coalesced sparse COO tensor ``(N, N)``."""
        n = self.num_nodes
        return torch.sparse_coo_tensor(self.index, self.weight, (n, n), is_coalesced=True, check_invariants=False)

    def degree(self) -> torch.Tensor:
        """Row sums ``(N,)`` of :meth:`matrix`."""
        return torch.zeros(self.num_nodes, dtype=self.weight.dtype, device=self.weight.device).index_add_(
            0, self.index[0], self.weight)

    def has_positive(self) -> bool:
        """Whether any pair has a positive affinity (each node's strongest pair is among its edges)."""
        return bool((self.weight > 0).any())


def knn_gram(features: torch.Tensor, neighbours: int,
             chunk_elements: int = CHUNK_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The ``neighbours`` largest entries of every row of ``W = F Fᵀ`` and ``max(W)``, in blocks of rows.

    Args:
        features: ``(N, D)`` float32.
        neighbours: ``k`` (clamped to ``N``).
        chunk_elements: at most this many entries of ``W`` exist at once (at least one row).

    Returns:
        ``(columns (N, k) int64, values (N, k) float32, max(W))``.
    """
    n = int(features.shape[0])
    k = max(1, min(int(neighbours), n))
    step = max(1, int(chunk_elements) // max(n, 1))
    cols = torch.empty((n, k), dtype=torch.long, device=features.device)
    vals = torch.empty((n, k), dtype=features.dtype, device=features.device)
    for a in range(0, n, step):
        w = features[a:a + step] @ features.T  # (step, N)
        vals[a:a + step], cols[a:a + step] = torch.topk(w, k, dim=1, sorted=False)
        del w
    return cols, vals, float(vals.max())  # every row's largest entry is among its k


def symmetrize(cols: torch.Tensor, vals: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The union of the directed k-NN edges ``i → cols[i]`` and their reverses: ``(index (2, E), weight (E,))``.

    An edge found from both ends keeps the larger of its two (equal up to rounding) values, so the
    result is exactly symmetric; edges are sorted row-major.
    """
    rows = torch.arange(n, device=cols.device).repeat_interleave(cols.shape[1])
    cols = cols.reshape(-1)
    key = torch.cat([rows * n + cols, cols * n + rows])
    both = torch.cat([vals.reshape(-1), vals.reshape(-1)])
    del rows, cols
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    del key
    weight = torch.full((uniq.shape[0],), -float("inf"), dtype=vals.dtype, device=vals.device)
    weight.scatter_reduce_(0, inverse, both, reduce="amax")
    return torch.stack([uniq // n, uniq % n]), weight


def knn_affinity(features: torch.Tensor, loss: str = "ncut", alpha: float = 3.0,
                 neighbours: int = DEFAULT_NEIGHBOURS, chunk_elements: int = CHUNK_ELEMENTS) -> SparseAffinity:
    """The sparse k-NN version of :func:`affinity` for features ``(N, D)`` (no ``N x N`` tensor).

    Each node keeps its ``neighbours`` largest entries of ``W = F Fᵀ``; the edges are symmetrised
    (union) and weighted like the dense graph: NCut ``relu(W) / max(W)``, CC ``W - max(W) / alpha``,
    with ``max(W)`` over all pairs. With ``neighbours >= N`` it holds every pair of the dense graph.
    """
    check_loss(loss)
    f = features.detach().float()
    n = int(f.shape[0])
    cols, vals, top = knn_gram(f, neighbours, chunk_elements)
    index, w = symmetrize(cols, vals, n)
    del cols, vals
    if loss == "cc":
        offset = top / float(alpha)
        return SparseAffinity("cc", index, w - offset, n, f, offset, top)
    keep = w > 0
    index, w = index[:, keep], w[keep]
    return SparseAffinity("ncut", index, w / top if top > 0 else w, n, f, 0.0, top)


class PatchGraph:
    """The nodes (patch features) of a graph and, when known, its Gram matrix.

    The pipeline hands a :class:`PatchGraph` to every clusterer explicitly; the GNN reads its
    :meth:`cluster_affinity`: the dense ``(N, N)`` affinity (sliced from the cached Gram matrix when
    there is one, so a stage on a subset of patches costs no new ``N²D`` product) for up to
    :data:`DENSE_MAX_NODES` nodes, a :class:`SparseAffinity` above (``mode`` forces either).
    Baselines may build their own graph from :attr:`features`.

    Args:
        features: ``(N, D)`` node features.
        gram: ``features @ features.T`` ``(N, N)`` if already computed.
        mode: ``"auto"``, ``"dense"`` or ``"sparse"`` (see :data:`GRAPH_MODES`); subgraphs inherit it.
        neighbours: ``k`` of the sparse k-NN graph.
    """

    def __init__(self, features: torch.Tensor, gram: torch.Tensor | None = None, mode: str = "auto",
                 neighbours: int = DEFAULT_NEIGHBOURS) -> None:
        use_sparse(0, mode)  # validates the mode
        if int(neighbours) < 1:
            raise ConfigError(f"neighbours must be at least 1, got {neighbours}")
        self.features = features
        self.gram = gram
        self.mode = mode
        self.neighbours = int(neighbours)

    @property
    def num_nodes(self) -> int:
        return int(self.features.shape[0])

    @property
    def is_sparse(self) -> bool:
        """Whether :meth:`cluster_affinity` gives a sparse k-NN graph."""
        return use_sparse(self.num_nodes, self.mode)

    def subgraph(self, rows: np.ndarray | None) -> "PatchGraph":
        """The graph induced by the nodes ``rows`` (all nodes when None); same mode and ``k``.

        A sparse subgraph is rebuilt from its nodes' features: each keeps its ``k`` nearest
        neighbours *within* the subset, and ``max(W)`` is the subset's, as the dense slice has it.
        """
        if rows is None:
            return self
        index = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=self.features.device)
        gram = None if self.gram is None else self.gram[index][:, index]
        return PatchGraph(self.features[index], gram, self.mode, self.neighbours)

    def affinity(self, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor:
        """The dense ``(N, N)`` NCut or CC affinity of this graph (see :func:`affinity`), at any size."""
        if self.gram is None:
            return affinity(self.features, loss, alpha)
        return affinity_from_gram(self.gram, loss, alpha)

    def cluster_affinity(self, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor | SparseAffinity:
        """What the GNN trains on: :meth:`affinity` (dense) or :func:`knn_affinity` (sparse, see
        :attr:`is_sparse`)."""
        if self.is_sparse:
            return knn_affinity(self.features, loss, alpha, self.neighbours)
        return self.affinity(loss, alpha)


# -- scoring a cut ----------------------------------------------------------------------------------
def score_graph(graph: PatchGraph) -> torch.Tensor:
    """The non-negative NCut affinity :func:`cut_score` reads: dense ``(N, N)``, or the sparse k-NN
    graph (COO) when the graph is too big to materialise (:attr:`~deepcut.graph.PatchGraph.is_sparse`)."""
    if graph.is_sparse:
        return graph.cluster_affinity("ncut").matrix()
    return graph.affinity("ncut")


def segment_cuts(adj: torch.Tensor, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cut, volume)`` ``(m,)`` float64 of each of the ``m`` segments of ``labels`` ``(N,)`` (in
    ``np.unique`` order) on a non-negative affinity ``(N, N)`` (dense, or sparse COO): the weight
    leaving the segment and the segment's total degree."""
    ids, inverse = np.unique(np.asarray(labels), return_inverse=True)
    onehot = torch.zeros(inverse.size, ids.size, dtype=torch.float64, device=adj.device)
    onehot[torch.arange(inverse.size), torch.as_tensor(inverse, device=adj.device)] = 1.0
    a = adj.coalesce().double() if adj.is_sparse else adj.double()
    a_s = torch.sparse.mm(a, onehot) if a.is_sparse else a @ onehot  # (N, m)
    volume = onehot.T @ a_s.sum(1)
    return volume - (onehot * a_s).sum(0), volume


def normalized_cut(adj: torch.Tensor, labels: np.ndarray) -> float:
    """Shi & Malik's k-way normalized cut ``Σ_c cut(c, rest) / vol(c)`` of ``labels`` ``(N,)`` on a
    non-negative affinity ``adj`` ``(N, N)`` (dense, or sparse COO as :func:`score_graph` gives).
    0 for a perfect cut; a bipartition's value is ``2 (1 - cut_score)``. Segments without volume add
    nothing."""
    cut, volume = segment_cuts(adj, labels)
    keep = volume > 0
    return float((cut[keep] / volume[keep]).sum())


def cut_score(adj: torch.Tensor, inside: np.ndarray) -> float:
    """``1 - NCut(O, R) / 2`` of the nodes ``inside`` (``(N,)`` bool, ``O``) against the rest ``R``,
    on a non-negative affinity ``(N, N)`` (dense, or sparse COO); 0 when either side has no volume."""
    inside = np.asarray(inside, dtype=bool)
    if not inside.any() or inside.all():
        return 0.0
    cut, volume = segment_cuts(adj, inside)
    if bool((volume <= 0).any()):
        return 0.0
    return float(np.clip(1.0 - 0.5 * float((cut / volume).sum()), 0.0, 1.0))
