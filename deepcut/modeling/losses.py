"""DeepCut's two clustering objectives, as pure functions of an affinity and soft assignments."""

from __future__ import annotations

import math

import torch


class _QuadraticForm(torch.autograd.Function):
    """``tr(SᵀAS) = Σ S ⊙ (A S)`` for a symmetric, constant ``A``; the backward pass reuses ``A S``
    (its gradient is ``2 A S``), so each training step reads the ``N x N`` matrix once, not twice."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        a_s = adj @ s
        ctx.save_for_backward(a_s)
        return (s * a_s).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (a_s,) = ctx.saved_tensors
        return None, 2.0 * grad * a_s


def quadratic_form(adj: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``tr(SᵀAS)`` for a symmetric ``adj`` ``(N, N)`` (no gradient w.r.t. it) and ``s`` ``(N, k)``."""
    if adj.requires_grad:
        return (s * (adj @ s)).sum()
    return _QuadraticForm.apply(adj, s)


def ncut_loss(adj: torch.Tensor, s: torch.Tensor, degree: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Relaxed normalized cut and orthogonality terms of MinCutPool (Bianchi et al. 2020).

    ``cut = -tr(SᵀAS) / tr(SᵀDS)`` and ``ortho = ‖SᵀS/‖SᵀS‖_F - I/√k‖_F``; DeepCut minimises
    ``cut + ortho``. The values and gradients equal those of
    :func:`torch_geometric.nn.dense_mincut_pool` (checked in the tests), but ``tr(SᵀDS)`` is computed
    as ``Σ_i d_i ‖S_i‖²`` instead of through an ``N x N`` diagonal matrix, ``SᵀX`` is not pooled,
    and the backward pass reuses ``AS`` (``A`` must be symmetric): one pass over ``A`` per epoch
    instead of about seven.

    Args:
        adj: non-negative affinity ``A`` ``(N, N)``.
        s: soft assignments ``S`` ``(N, k)`` (softmax output).
        degree: ``A.sum(-1)`` ``(N,)``, if already known.

    Returns:
        ``(cut, ortho)``, two scalars.
    """
    d = adj.sum(dim=-1) if degree is None else degree
    num = quadratic_form(adj, s)
    den = (d.unsqueeze(-1) * s * s).sum()
    cut = -(num / den)
    ss = s.T @ s
    k = s.shape[-1]
    ortho = torch.linalg.matrix_norm(ss / torch.linalg.matrix_norm(ss) - torch.eye(k, dtype=s.dtype, device=s.device) / math.sqrt(k))
    return cut, ortho


def cc_loss(adj: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Correlation-clustering loss ``-Σ_ij A_ij (S Sᵀ)_ij`` for a signed affinity ``A`` ``(N, N)``.

    Computed as ``-Σ S ⊙ (A S)`` (``O(N²k)`` time, no ``N x N`` intermediate besides ``A``);
    equal to the elementwise form for symmetric ``A``.

    Args:
        adj: signed affinity ``(N, N)``, symmetric.
        s: soft assignments ``(N, k)`` (rows sum to 1).
    """
    return -quadratic_form(adj, s)
