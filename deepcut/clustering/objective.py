"""What one training of the GNN reads: the GCN's propagation ``Â X`` of the graph's features and the objective
with its gradient."""

from __future__ import annotations

from typing import Union

import torch

from ..graph.patch_graph import CompactAffinity, PatchGraph, SparseAffinity
from .gnn import DeepCutGNN, LossGrad, gcn_input_graph
from .losses import autograd_grad, cc_grad, cc_loss_lowrank, ncut_grad, ortho_target, row_sums, sparse_csr

__all__ = ["Affinity", "graph_of_these", "low_affinity", "objective_of", "propagation"]

#: A graph :func:`~deepcut.clustering.fit.fit` trains on: a dense ``(N, N)`` affinity, a compact one or a sparse
#: k-NN one.
Affinity = Union[torch.Tensor, CompactAffinity, SparseAffinity]


def propagation(x: torch.Tensor, a: Affinity, loss: str, graph: PatchGraph | None = None, alpha: float = 3.0,
                dtype: torch.dtype = torch.float32, low: torch.Tensor | None = None) -> torch.Tensor:
    """The GCN propagation ``Â X`` ``(N, D)`` float32 of the features ``x`` ``(N, D)`` over the positive part of the
    graph ``a``. ``dtype``: what the dense graph's product reads (bfloat16 where the GNN's products run in bf16,
    :mod:`~deepcut.clustering.arithmetic`; compact and sparse graphs always float32). ``graph``: the graph ``a``
    is of (its ``loss`` / ``alpha`` affinity), whose memo keeps the propagation for the next training on it
    (:meth:`~deepcut.graph.patch_graph.PatchGraph.remembered`), one per dtype. ``low``: :func:`low_affinity` of
    ``a``, read instead of a new bf16 copy where the GCN's graph is ``a`` itself (NCut's)."""
    def propagate() -> torch.Tensor:
        if isinstance(a, CompactAffinity):
            return a.propagate(x)
        if isinstance(a, SparseAffinity):
            return DeepCutGNN.propagate(x, gcn_input_graph(a.matrix()))
        positive = gcn_input_graph(a)
        return DeepCutGNN.propagate(x, positive, dtype, low if positive is a else None)
    key: tuple = ("gcn propagation", loss, float(alpha) if loss == "cc" else None)  # NCut's graph has no α
    key += () if dtype == torch.float32 else (str(dtype),)
    return propagate() if graph is None else graph.remembered(key, propagate)


def low_affinity(a: Affinity, loss: str, graph: PatchGraph | None = None, alpha: float = 3.0,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """The dense affinity ``a`` ``(N, N)`` in ``dtype`` for the products that read it in bf16 (the loss's ``A S``,
    NCut's propagation; :mod:`~deepcut.clustering.arithmetic`), kept in ``graph``'s memo as :func:`propagation`
    keeps its result; None where ``dtype`` is float32 or ``a`` is not a dense tensor (compact, sparse)."""
    if dtype == torch.float32 or not isinstance(a, torch.Tensor) or a.layout != torch.strided:
        return None
    key = ("affinity", loss, float(alpha) if loss == "cc" else None, str(dtype))
    return a.to(dtype) if graph is None else graph.remembered(key, lambda: a.to(dtype))


def objective_of(x: torch.Tensor, a: Affinity, loss: str, low: torch.Tensor | None = None) -> LossGrad:
    """The training objective on the graph ``a`` of the features ``x`` with its gradient, ``S (N, k) -> (loss,
    ∂loss/∂S)`` (NCut: cut + orthogonality; CC: correlation loss; a compact or sparse graph's CC over every pair).
    ``low``: :func:`low_affinity` of a dense ``a``, for the loss's ``A S`` in bf16 (the degrees stay ``a``'s)."""
    if isinstance(a, CompactAffinity):  # every pair, no float32 N x N tensor: the dense graph's objective
        if loss == "cc":
            offset = a.offset
            return autograd_grad(lambda s: cc_loss_lowrank(x, offset, s))
    elif isinstance(a, SparseAffinity):  # x are the features the graph was built from
        if loss == "cc":
            offset = a.offset
            return autograd_grad(lambda s: cc_loss_lowrank(x, offset, s))
        a = sparse_csr(a.matrix())
    if loss == "cc":
        return lambda s: cc_grad(a, s, low)
    degree, ideal = row_sums(a), dict[int, torch.Tensor]()  # I/√k by k, made once

    def ncut(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = ideal.get(s.shape[1])
        if target is None:
            target = ideal[s.shape[1]] = ortho_target(s)
        return ncut_grad(a, s, degree, target, low)
    return ncut


def graph_of_these(graph: PatchGraph | None, x: torch.Tensor, given: object = None) -> bool:
    """Whether ``graph`` is a graph of exactly the features ``x`` (so that what its memo keeps holds for them);
    ``given``: what ``x`` was made from (e.g. the inference-mode tensor :func:`~deepcut.clustering.checks.as_features`
    copied), where the caller has it: the graph's own features answer without comparing every number."""
    if graph is None or graph.memo is None:
        return False
    f = graph.features
    if f.shape != x.shape or f.device != x.device:
        return False
    if _same_memory(f, x) or (isinstance(given, torch.Tensor) and _same_memory(f, given)):
        return True  # the very same numbers in memory (no N x D comparison)
    return bool(torch.equal(f.float(), x))


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` are the same numbers by their memory: same shape, dtype, device, strides and start."""
    return (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and a.stride() == b.stride()
            and a.data_ptr() == b.data_ptr())
