"""The GCN's degree rule: how a graph's affinity is normalised before a graph convolution."""

from __future__ import annotations

import torch

__all__ = ["gcn_degree_scale", "gcn_normalize"]


def gcn_degree_scale(degree: torch.Tensor) -> torch.Tensor:
    """``D^-1/2`` ``(N,)`` of the GCN from its graph's degrees ``(N,)``, clamped to at least 1 first, as PyG's
    ``DenseGCNConv`` does (an isolated or weakly connected node is not blown up)."""
    return degree.clamp(min=1).pow(-0.5)


def gcn_normalize(adj: torch.Tensor) -> torch.Tensor:
    """Symmetric GCN normalisation ``D^-1/2 A D^-1/2`` exactly as PyG's ``DenseGCNConv`` does it
    (degrees clamped to at least 1). ``adj`` ``(N, N)``, dense or sparse (COO), must already hold
    its self-loops; a sparse ``adj`` gives a sparse result with the same edges."""
    if adj.is_sparse:
        adj = adj.coalesce()
        index, weight = adj.indices(), adj.values()
        d = gcn_degree_scale(torch.zeros(adj.shape[0], dtype=weight.dtype, device=weight.device)
                             .index_add_(0, index[0], weight))
        return torch.sparse_coo_tensor(index, d[index[0]] * weight * d[index[1]], adj.shape, is_coalesced=True,
                                       check_invariants=False)
    d = gcn_degree_scale(adj.sum(dim=-1))
    return d.unsqueeze(-1) * adj * d.unsqueeze(-2)
