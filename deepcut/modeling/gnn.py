"""The per-image graph neural network of DeepCut: one GCN layer and a small MLP head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import DenseGCNConv


def gcn_normalize(adj: torch.Tensor) -> torch.Tensor:
    """Symmetric GCN normalisation ``D^-1/2 A D^-1/2`` exactly as :class:`DenseGCNConv` does it
    (degrees clamped to at least 1). ``adj`` ``(N, N)`` must already hold its self-loops."""
    d = adj.sum(dim=-1).clamp(min=1).pow(-0.5)
    return d.unsqueeze(-1) * adj * d.unsqueeze(-2)


def gcn_input_graph(adj: torch.Tensor) -> torch.Tensor:
    """The graph the GCN sees: the positive part of ``adj`` ``(N, N)``.

    Self-loops keep their own (positive) weight and get weight 1 where it is not positive, which is
    what the authors' edge list + PyG ``GCNConv`` (``add_remaining_self_loops``) does.
    """
    a = adj.clamp(min=0)
    diag = a.diagonal()
    a = a.clone()
    a.diagonal().copy_(torch.where(diag > 0, diag, torch.ones_like(diag)))
    return a


class DeepCutGNN(nn.Module):
    """``DenseGCNConv(D → 64)`` → ELU → ``Linear(64 → 32)`` → ELU → dropout → ``Linear(32 → k)``.

    The architecture of the DeepCut paper and code. Because the graph and the node features are
    fixed while one image is clustered, the GCN's propagation ``Â X`` is computed once
    (:meth:`propagate`) and every epoch only applies the layer's weights (:meth:`forward_propagated`);
    :meth:`forward` is the plain, equivalent ``DenseGCNConv`` path.
    """

    def __init__(self, in_dim: int, k: int, conv_hidden: int = 64, mlp_hidden: int = 32,
                 dropout: float = 0.25) -> None:
        super().__init__()
        self.k = k
        self.conv = DenseGCNConv(in_dim, conv_hidden)
        self.mlp1 = nn.Linear(conv_hidden, mlp_hidden)
        self.mlp2 = nn.Linear(mlp_hidden, k)
        self.dropout = dropout

    @classmethod
    def create(cls, in_dim: int, k: int, generator: torch.Generator, **kwargs) -> "DeepCutGNN":
        """A freshly initialised GNN whose weights are drawn from ``generator`` only.

        The modules are built on the ``meta`` device (so PyTorch's default initialisers do not
        consume the global RNG) and then initialised by :meth:`reset_parameters`.
        """
        with torch.device("meta"):
            net = cls(in_dim, k, **kwargs)
        return net.to_empty(device="cpu").reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> "DeepCutGNN":
        """Re-initialise with the layers' default distributions, drawn from ``generator``
        (glorot for the GCN weight, zero GCN bias, PyTorch's default for the linear layers)."""
        w = self.conv.lin.weight
        bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        w.copy_(torch.rand(w.shape, generator=generator) * 2 * bound - bound)
        if self.conv.bias is not None:
            self.conv.bias.zero_()
        for lin in (self.mlp1, self.mlp2):
            bound = 1.0 / math.sqrt(lin.in_features)
            lin.weight.copy_(torch.rand(lin.weight.shape, generator=generator) * 2 * bound - bound)
            lin.bias.copy_(torch.rand(lin.bias.shape, generator=generator) * 2 * bound - bound)
        return self

    @staticmethod
    def propagate(x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """``Â X`` ``(N, D)`` for node features ``x`` ``(N, D)`` and the GCN's graph ``adj`` ``(N, N)``."""
        return gcn_normalize(adj) @ x

    def head(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits ``(N, k)`` from GCN outputs ``(N, 64)``. Dropout (training only) draws from ``generator``."""
        h = F.elu(self.mlp1(F.elu(h)))
        if self.training and self.dropout > 0:
            keep = torch.rand(h.shape, generator=generator) >= self.dropout
            h = h * keep / (1.0 - self.dropout)
        return self.mlp2(h)

    def forward_propagated(self, ax: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits ``(N, k)`` from the precomputed propagation ``ax = Â X`` ``(N, D)``."""
        h = self.conv.lin(ax)
        if self.conv.bias is not None:
            h = h + self.conv.bias
        return self.head(h, generator)

    def forward(self, x: torch.Tensor, adj: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits ``(N, k)`` for node features ``(N, D)`` and the GCN graph ``(N, N)`` (self-loops included)."""
        h = self.conv(x, adj, add_loop=False).squeeze(0)
        return self.head(h, generator)
