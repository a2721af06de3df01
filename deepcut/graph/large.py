"""The two forms of a patch graph too large for an ``N x N`` float32 matrix (see :mod:`deepcut.graph.patch_graph`, which
chooses between them by size and re-exports them):

* :class:`CompactAffinity` (:func:`compact_affinity`): every pair of the dense graph, NCut's matrix stored in
  :data:`COMPACT_DTYPE`, every product computed in float32 blocks of rows;
* :class:`SparseAffinity` (:func:`knn_affinity`): the ``k`` nearest neighbours of every node under
  ``W = F Fᵀ``, computed in blocks of rows and symmetrised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import LOSSES
from ..errors import ConfigError
from .gcn import gcn_degree_scale

#: The type of the compact NCut matrix: its values are in ``[0, 1]``, where float16 keeps 11 significant
#: bits (bfloat16: 8); every product with it is computed in float32, a block of rows at a time.
COMPACT_DTYPE = torch.float16
#: Neighbours of each node in the sparse graph (before symmetrisation, the node itself included).
DEFAULT_NEIGHBOURS = 64
#: Entries of ``W = F Fᵀ`` computed at once while building a sparse graph (16 MB of float32).
CHUNK_ELEMENTS = 1 << 22


def check_loss(loss: str) -> None:
    """Raise :class:`ConfigError` unless ``loss`` is one of :data:`deepcut.config.LOSSES`."""
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")


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


@dataclass
class CompactAffinity:
    """DeepCut's NCut or CC graph of ``N`` nodes, every pair of it, without a float32 ``N x N`` tensor.

    NCut: ``A = relu(F Fᵀ) / max(F Fᵀ)`` is :attr:`values`, one ``(N, N)`` matrix in
    :data:`COMPACT_DTYPE`; its degrees are summed in float32 before the rounding. CC: no matrix (its loss is
    :func:`~deepcut.clustering.losses.cc_loss_lowrank`). :meth:`propagate` gives the GCN's ``Â X`` of the
    dense graph, in float32 blocks of rows.

    For :func:`~deepcut.clustering.losses.ncut_loss` and :func:`segment_cuts` it stands for the float32
    ``(N, N)`` NCut matrix: :attr:`dtype`, :attr:`device`, :meth:`matmul`, :meth:`degree`.

    Attributes:
        loss: ``"ncut"`` or ``"cc"``.
        values: NCut's ``(N, N)`` affinity in :data:`COMPACT_DTYPE`; None for CC.
        degrees: ``(N,)`` float32 row sums of the float32 affinity (NCut ``A 1``, CC ``(W - offset) 1``).
        diagonal: ``(N,)`` float32 diagonal of the float32 affinity.
        gcn_degrees: ``(N,)`` float32 degrees of the GCN's graph (the positive part of the affinity, a
            self-loop of weight 1 where the diagonal is not positive), before the clamp at 1.
        num_nodes: ``N``.
        features: ``(N, D)`` float32 features the graph was built from.
        offset: CC's threshold ``max(W) / alpha`` (0 for NCut).
        top: ``max(W)`` over all pairs (``max_i ‖f_i‖²``).
        positive: whether any pair has a positive affinity.
        chunk_elements: entries of the float32 graph that exist at once in :meth:`propagate`.
    """

    loss: str
    values: torch.Tensor | None
    degrees: torch.Tensor
    diagonal: torch.Tensor
    gcn_degrees: torch.Tensor
    num_nodes: int
    features: torch.Tensor
    offset: float = 0.0
    top: float = 0.0
    positive: bool = False
    chunk_elements: int = CHUNK_ELEMENTS

    dtype = torch.float32
    requires_grad = False

    @property
    def device(self) -> torch.device:
        return self.features.device

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_nodes, self.num_nodes)

    def _rows(self) -> int:
        return max(1, int(self.chunk_elements) // max(self.num_nodes, 1))

    def _ncut_values(self) -> torch.Tensor:
        if self.values is None:
            raise ConfigError("a compact CC graph keeps no matrix: build it with loss='ncut'")
        return self.values

    def matmul(self, s: torch.Tensor) -> torch.Tensor:
        """``A S`` ``(N, k)`` for the NCut affinity ``A`` and ``s`` ``(N, k)``, in ``s``'s dtype: ``A``'s rows are
        turned into it a block at a time (only ``A``'s storage is rounded). Computed as ``(Sᵀ A)ᵀ`` (``A`` is
        symmetric), which streams each block once for a thin ``S``."""
        a = self._ncut_values()
        step = self._rows()
        out = torch.empty((s.shape[1], self.num_nodes), dtype=s.dtype, device=s.device)
        st = s.T
        for i in range(0, self.num_nodes, step):
            out[:, i:i + step] = torch.nn.functional.linear(st, a[i:i + step].to(s.dtype))
        return out.T

    def degree(self) -> torch.Tensor:
        """Row sums ``(N,)`` of the float32 affinity (exact, not of the rounded matrix)."""
        return self.degrees

    def has_positive(self) -> bool:
        """Whether any pair has a positive affinity."""
        return bool(self.positive)

    def knn(self, neighbours: int = DEFAULT_NEIGHBOURS) -> SparseAffinity:
        """The sparse k-NN part of this graph (:func:`knn_affinity` of the same features and loss), e.g. a
        cheap graph to find a starting point on."""
        alpha = self.top / self.offset if self.offset > 0 else 3.0
        return knn_affinity(self.features, self.loss, alpha, neighbours, self.chunk_elements)

    def propagate(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """The GCN's propagation ``Â X`` ``(N, D)`` over the dense graph (what
        ``DeepCutGNN.propagate(x, gcn_input_graph(affinity))`` gives), in float32 blocks of rows: NCut's from
        :attr:`values`, CC's recomputed from the features. ``x``: the node features (default :attr:`features`)."""
        x = self.features if x is None else x
        d = gcn_degree_scale(self.gcn_degrees)
        dx = d.unsqueeze(1) * x
        loops = torch.where(self.diagonal > 0, self.diagonal, torch.ones_like(self.diagonal))
        out = torch.empty_like(x)
        step = self._rows()
        for i in range(0, self.num_nodes, step):
            if self.values is not None:
                g = self.values[i:i + step].float()
            else:
                g = (self.features[i:i + step] @ self.features.T).sub_(self.offset).clamp_(min=0)
            rows = torch.arange(g.shape[0], device=g.device)
            g[rows, rows + i] = loops[i:i + step]
            out[i:i + step] = d[i:i + step].unsqueeze(1) * (g @ dx)
        return out


def compact_affinity(features: torch.Tensor, loss: str = "ncut", alpha: float = 3.0,
                     chunk_elements: int = CHUNK_ELEMENTS, dtype: torch.dtype = COMPACT_DTYPE) -> CompactAffinity:
    """The :class:`CompactAffinity` of features ``(N, D)``: :func:`affinity`'s graph, every pair, built in blocks
    of ``chunk_elements`` entries of ``W = F Fᵀ`` (float32); NCut keeps ``A`` in ``dtype``, CC no matrix.

    ``max(W)`` is ``max_i ‖f_i‖²`` (Cauchy-Schwarz: no pair is more similar than the more similar of its two
    self-pairs), so ``A`` is normalised as its blocks are made.
    """
    check_loss(loss)
    f = features.detach().float()
    n = int(f.shape[0])
    top = float((f * f).sum(1).max()) if n else 0.0
    offset = top / float(alpha) if loss == "cc" else 0.0
    values = torch.empty((n, n), dtype=dtype, device=f.device) if loss == "ncut" else None
    degrees = torch.empty(n, dtype=torch.float32, device=f.device)
    diagonal, gcn_degrees = torch.empty_like(degrees), torch.empty_like(degrees)
    step = max(1, int(chunk_elements) // max(n, 1))
    for i in range(0, n, step):
        w = f[i:i + step] @ f.T  # (rows, N) of W
        rows = torch.arange(w.shape[0], device=w.device)
        if loss == "ncut":
            w = w.clamp_(min=0).div_(top) if top > 0 else w.zero_()
            assert values is not None  # made for NCut
            values[i:i + step] = w
        else:
            w = w.sub_(offset)
        degrees[i:i + step] = w.sum(1)
        diagonal[i:i + step] = w[rows, rows + i]
        if loss == "cc":  # the GCN's graph is the positive part of the signed one (NCut's is all positive) ...
            gcn_degrees[i:i + step] = w.clamp_(min=0).sum(1)
        del w
    if loss == "ncut":
        gcn_degrees.copy_(degrees)
    gcn_degrees += (diagonal <= 0).float()  # ... with a self-loop of weight 1 where the diagonal is not positive
    # max(W) is on the diagonal: some pair is positive exactly when the strongest self-pair is
    positive = top - offset > 0
    return CompactAffinity(loss, values, degrees, diagonal, gcn_degrees, n, f, offset, top, bool(positive),
                           chunk_elements)
