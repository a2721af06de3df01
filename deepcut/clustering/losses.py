"""DeepCut's two clustering objectives, as pure functions of an affinity and soft assignments."""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import torch

from ..graph.patch_graph import CompactAffinity


class _QuadraticForm(torch.autograd.Function):
    """``tr(SᵀAS) = Σ S ⊙ (A S)`` for a symmetric, constant ``A``; the backward pass reuses ``A S``
    (its gradient is ``2 A S``), so each training step reads the ``N x N`` matrix once, not twice."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        a_s = _symmetric_matmul(adj, s)
        ctx.save_for_backward(a_s)
        return (s * a_s).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (a_s,) = ctx.saved_tensors
        return None, 2.0 * grad * a_s


def _matmul(adj: torch.Tensor | CompactAffinity, s: torch.Tensor) -> torch.Tensor:
    """``A S`` for ``adj`` dense, sparse COO, sparse CSR or compact ``(N, N)`` and dense ``s`` ``(N, k)``."""
    if isinstance(adj, CompactAffinity):
        return adj.matmul(s)
    return torch.sparse.mm(adj, s) if adj.layout == torch.sparse_coo else adj @ s


def _symmetric_matmul(adj: torch.Tensor | CompactAffinity, s: torch.Tensor) -> torch.Tensor:
    """``A S`` ``(N, k)`` for a *symmetric* ``adj`` ``(N, N)``. Dense, the order of the product follows the CPU
    kernels' speed for the thin ``S`` of clustering (k ≪ N): ``(Sᵀ A)ᵀ``, which equals it for symmetric
    ``A``, on one thread, and ``A S`` when ``S`` is column-major (as :func:`~deepcut.clustering.gnn.soft_assign`
    returns it) and several threads share the product (``benchmarks/gnn_kernels.py``; docs/speed.md,
    *Kernel choices*)."""
    if isinstance(adj, CompactAffinity) or adj.layout != torch.strided or s.dim() != 2:
        return _matmul(adj, s)
    if s.T.is_contiguous() and torch.get_num_threads() > 1 and adj.device.type == "cpu":
        return adj @ s
    return torch.nn.functional.linear(s.T, adj).T  # Sᵀ Aᵀ = Sᵀ A


def graph_product(adj: torch.Tensor | CompactAffinity, s: torch.Tensor,
                  low: torch.Tensor | None = None) -> torch.Tensor:
    """``A S`` ``(N, k)`` as :func:`ncut_grad` and :func:`cc_grad` compute it: from ``low`` (the dense ``adj`` in
    bf16, :func:`_low_matmul`) where given, else from ``adj`` (symmetric)."""
    return _symmetric_matmul(adj, s) if low is None else _low_matmul(low, s)


def _low_matmul(low: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``A S`` ``(N, k)`` float32 from ``low``, a dense ``A`` ``(N, N)`` stored in bfloat16, and float32 ``s``
    ``(N, k)``: ``S`` is read in bf16 too, each product's result rounded to bf16 (the CPU's bf16 kernels give bf16
    results), relative error ~0.2 % (:mod:`~deepcut.clustering.arithmetic`). ``S`` is made row-major for the
    product: the faster order on the CPU for the column-major ``S`` of :func:`~deepcut.clustering.gnn.soft_assign`."""
    return (low @ s.to(low.dtype, memory_format=torch.contiguous_format)).float()


def sparse_csr(adj: torch.Tensor) -> torch.Tensor:
    """A sparse COO ``(N, N)`` as CSR, the faster layout for the ``A S`` of every training epoch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        return adj.to_sparse_csr()


def row_sums(adj: torch.Tensor | CompactAffinity) -> torch.Tensor:
    """Degrees ``A 1`` ``(N,)`` of a dense, sparse COO, sparse CSR or compact ``(N, N)`` affinity."""
    if isinstance(adj, CompactAffinity):
        return adj.degree()
    if adj.layout == torch.sparse_csr:
        return _matmul(adj, torch.ones(adj.shape[1], 1, dtype=adj.dtype, device=adj.device)).squeeze(1)
    if adj.layout == torch.sparse_coo:
        adj = adj.coalesce()
        return torch.zeros(adj.shape[0], dtype=adj.dtype, device=adj.device).index_add_(
            0, adj.indices()[0], adj.values())
    return adj.sum(dim=-1)


def quadratic_form(adj: torch.Tensor | CompactAffinity, s: torch.Tensor) -> torch.Tensor:
    """``tr(SᵀAS)`` for a symmetric ``adj`` ``(N, N)``, dense or sparse (COO or CSR; no gradient w.r.t. it),
    and ``s`` ``(N, k)``."""
    if adj.requires_grad:
        return (s * _matmul(adj, s)).sum()
    return _QuadraticForm.apply(adj, s)


def ncut_loss(
    adj: torch.Tensor | CompactAffinity, s: torch.Tensor, degree: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relaxed normalized cut and orthogonality terms of MinCutPool (Bianchi et al. 2020).

    ``cut = -tr(SᵀAS) / tr(SᵀDS)`` and ``ortho = ‖SᵀS/‖SᵀS‖_F - I/√k‖_F``; DeepCut minimises
    ``cut + ortho``. The values and gradients equal those of
    :func:`torch_geometric.nn.dense_mincut_pool` (checked in the tests), but ``tr(SᵀDS)`` is computed
    as ``Σ_i d_i ‖S_i‖²`` instead of through an ``N x N`` diagonal matrix, ``SᵀX`` is not pooled,
    and the backward pass reuses ``AS`` (``A`` must be symmetric): one pass over ``A`` per epoch
    instead of about seven.

    Args:
        adj: non-negative affinity ``A`` ``(N, N)``, dense, sparse (COO or CSR, e.g. a k-NN graph) or a
            :class:`~deepcut.graph.patch_graph.CompactAffinity`.
        s: soft assignments ``S`` ``(N, k)`` (softmax output).
        degree: ``A.sum(-1)`` ``(N,)``, if already known.

    Returns:
        ``(cut, ortho)``, two scalars.
    """
    d = row_sums(adj) if degree is None else degree
    num = quadratic_form(adj, s)
    den = (d.unsqueeze(-1) * s * s).sum()
    cut = -(num / den)
    ss = s.T @ s
    ortho = torch.linalg.matrix_norm(ss / torch.linalg.matrix_norm(ss) - ortho_target(s))
    return cut, ortho


def ncut_grad(adj: torch.Tensor | CompactAffinity, s: torch.Tensor, degree: torch.Tensor | None = None,
              ideal: torch.Tensor | None = None, low: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepCut's NCut training objective ``cut + ortho`` of :func:`ncut_loss` and its gradient w.r.t. ``s``,
    written out: ``(loss (0-d), ∂loss/∂S (N, k))`` for a constant, symmetric ``adj`` ``(N, N)`` (dense, sparse or
    compact), ``s`` ``(N, k)``, the degrees ``degree`` ``(N,)`` and ``ideal = I/√k`` ``(k, k)`` if already known
    (a training passes them, computed once). A training epoch then runs
    a handful of kernels for the loss instead of some thirty (with their autograd bookkeeping), and reads ``A``
    once; the tests compare value and gradient with autograd's.

    With ``AS = A S``, ``num = tr(SᵀAS)``, ``den = Σ_i d_i ‖S_i‖²``, ``M = SᵀS``, ``n = ‖M‖_F`` and
    ``P = M / n - I/√k`` (``ortho = ‖P‖_F``): ``∂cut/∂S = -2 AS / den + 2 num (d ⊙ S) / den²`` and
    ``∂ortho/∂S = 2 S G`` with ``G = (P - M ⟨P, M⟩ / n²) / (ortho · n)`` (0 when ``ortho = 0``, as autograd's).
    ``low``: ``adj`` (dense) in bfloat16, for ``A S`` in bf16 (:func:`_low_matmul`; the degrees stay ``adj``'s).
    """
    d = row_sums(adj) if degree is None else degree
    s = s.detach()
    a_s = graph_product(adj, s, low)
    ds = d.unsqueeze(-1) * s
    num, den = (s * a_s).sum(), (ds * s).sum()
    m = s.T @ s
    norm = torch.linalg.matrix_norm(m)
    dev = m / norm - (ortho_target(s) if ideal is None else ideal)
    ortho = torch.linalg.matrix_norm(dev)
    scale = torch.where(ortho > 0, 2.0 / (ortho * norm), 0.0)  # no GPU sync
    g = (dev - m * ((dev * m).sum() / norm.square())) * scale
    grad = torch.addmm(a_s * (-2.0 / den) + ds * (2.0 * num / den.square()), s, g)
    return ortho - num / den, grad


def ortho_target(s: torch.Tensor) -> torch.Tensor:
    """``I/√k`` ``(k, k)``, what the orthogonality term pulls ``SᵀS/‖SᵀS‖_F`` towards, for ``s`` ``(N, k)``."""
    k = s.shape[-1]
    return torch.eye(k, dtype=s.dtype, device=s.device) / math.sqrt(k)


def cc_grad(adj: torch.Tensor | CompactAffinity, s: torch.Tensor,
            low: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cc_loss` and its gradient ``-2 A S`` w.r.t. ``s`` ``(N, k)`` (``adj`` ``(N, N)`` symmetric,
    constant): ``(loss (0-d), ∂loss/∂S (N, k))``. ``low``: as :func:`ncut_grad`'s."""
    s = s.detach()
    a_s = graph_product(adj, s, low)
    return -(s * a_s).sum(), a_s * -2.0


def autograd_grad(objective: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], tuple]:
    """``S -> (objective(S), ∂objective/∂S)`` by autograd, for an objective without a written-out gradient
    (e.g. with :func:`link_loss`)."""
    def value_and_grad(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            leaf = s.detach().requires_grad_()
            value = objective(leaf)
            (grad,) = torch.autograd.grad(value, leaf)
        return value.detach(), grad
    return value_and_grad


def cc_loss(adj: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Correlation-clustering loss ``-Σ_ij A_ij (S Sᵀ)_ij`` for a signed affinity ``A`` ``(N, N)``.

    Computed as ``-Σ S ⊙ (A S)`` (``O(N²k)`` time, no ``N x N`` intermediate besides ``A``);
    equal to the elementwise form for symmetric ``A``.

    Args:
        adj: signed affinity ``(N, N)``, symmetric, dense or sparse (COO or CSR).
        s: soft assignments ``(N, k)`` (rows sum to 1).
    """
    return -quadratic_form(adj, s)


def cc_loss_lowrank(features: torch.Tensor, offset: float, s: torch.Tensor) -> torch.Tensor:
    """:func:`cc_loss` of the graph ``A = F Fᵀ - offset`` over *all* pairs, without any ``N x N`` tensor.

    ``Σ_ij (F Fᵀ)_ij (S Sᵀ)_ij = ‖Fᵀ S‖²_F`` and ``Σ_ij offset (S Sᵀ)_ij = offset ‖Sᵀ 1‖²``, so the
    loss is ``offset ‖Sᵀ 1‖² - ‖Fᵀ S‖²_F``: ``O(N D k)`` time and memory. Equal to
    ``cc_loss(affinity(features, "cc", alpha), s)`` with ``offset = max(F Fᵀ) / alpha``.

    Args:
        features: ``F`` ``(N, D)`` (no gradient w.r.t. them).
        offset: the constant subtracted from every pair, e.g. ``max(W) / alpha``.
        s: soft assignments ``(N, k)``.
    """
    return float(offset) * s.sum(dim=0).square().sum() - (features.T @ s).square().sum()


def link_loss(s: torch.Tensor, must: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
              cannot: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
    """Penalty of must-link / cannot-link constraints between groups of nodes (corrections by click).

    For two groups ``A`` and ``B`` (index tensors), ``P = S_A S_Bᵀ`` ``(|A|, |B|)`` is the probability that
    a node of ``A`` and a node of ``B`` fall in one cluster; a must-link adds ``mean(-log P)``, a
    cannot-link ``mean(-log(1 - P))``. Zero without constraints.

    Args:
        s: soft assignments ``(N, k)`` (rows sum to 1).
        must: ``[(A, B), …]`` groups that belong together.
        cannot: ``[(A, B), …]`` groups that do not.
    """
    eps = 1e-6
    total = s.new_zeros(())
    for a, b in must:
        total = total - torch.log((s[a] @ s[b].T).clamp_min(eps)).mean()
    for a, b in cannot:
        total = total - torch.log((1.0 - s[a] @ s[b].T).clamp_min(eps)).mean()
    return total


def link_grad(must: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
              cannot: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
              weight: float = 1.0) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``S -> (weight · link_loss(S, must, cannot), its gradient w.r.t. S (N, k))``, written out: for a pair of
    groups with ``P = S_A S_Bᵀ``, ``∂/∂P`` of a must-link's ``mean(-log P)`` is ``-1 / (|A||B| P)`` and of a
    cannot-link's ``mean(-log(1 - P))`` ``1 / (|A||B| (1 - P))`` (0 where the clamp at ``1e-6`` holds, as
    autograd's), then ``∂/∂S_A = ∂P S_B`` and ``∂/∂S_B = ∂Pᵀ S_A``, added up where groups share nodes. A
    correction's epoch then records no autograd graph for its links (the tests compare with autograd's)."""
    eps = 1e-6
    pairs = [(a, b, True) for a, b in must] + [(a, b, False) for a, b in cannot]

    def value_and_grad(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = s.detach()
        total, grad = s.new_zeros(()), torch.zeros_like(s)
        for a, b, together in pairs:
            sa, sb = s[a], s[b]
            p = sa @ sb.T
            q = p if together else 1.0 - p
            total = total - torch.log(q.clamp_min(eps)).mean()
            dq = torch.where(q >= eps, -1.0 / (q.numel() * q), 0.0)  # ∂(-mean log q)/∂q
            dp = dq if together else -dq
            grad.index_add_(0, a, dp @ sb).index_add_(0, b, dp.T @ sa)
        return weight * total, grad.mul_(weight)
    return value_and_grad
