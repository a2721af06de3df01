"""The patch graph DeepCut cuts: ``W = F Fᵀ`` turned into the NCut or CC affinity."""

from __future__ import annotations

import numpy as np
import torch

from .config import LOSSES
from .errors import ConfigError


def affinity(features: torch.Tensor, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor:
    """The graph DeepCut clusters, from features ``(N, D)``: ``(N, N)`` float32.

    * NCut: ``W = F Fᵀ``, ``A = relu(W) / max(W)`` (all zeros if no pair is positive);
    * CC:   ``A = W - max(W) / alpha`` (signed).
    """
    f = features.float()
    return affinity_from_gram(f @ f.T, loss, alpha)


def affinity_from_gram(gram: torch.Tensor, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor:
    """:func:`affinity` from a precomputed Gram matrix ``W = F Fᵀ`` ``(N, N)`` (left unchanged)."""
    if loss == "ncut":
        w = gram.clamp(min=0)
        top = w.max()
        return w.div_(top) if top > 0 else torch.zeros_like(w)
    if loss == "cc":
        return gram - gram.max() / alpha
    raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")


class PatchGraph:
    """The nodes (patch features) of a graph and, when known, its Gram matrix.

    The pipeline hands a :class:`PatchGraph` to every clusterer explicitly; the GNN reads its
    :meth:`affinity` (sliced from the cached Gram matrix when there is one, so a stage on a subset of
    patches costs no new ``N²D`` product), baselines may build their own graph from :attr:`features`.

    Args:
        features: ``(N, D)`` node features.
        gram: ``features @ features.T`` ``(N, N)`` if already computed.
    """

    def __init__(self, features: torch.Tensor, gram: torch.Tensor | None = None) -> None:
        self.features = features
        self.gram = gram

    @property
    def num_nodes(self) -> int:
        return int(self.features.shape[0])

    def subgraph(self, rows: np.ndarray | None) -> "PatchGraph":
        """The graph induced by the nodes ``rows`` (all nodes when None)."""
        if rows is None:
            return self
        index = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=self.features.device)
        gram = None if self.gram is None else self.gram[index][:, index]
        return PatchGraph(self.features[index], gram)

    def affinity(self, loss: str = "ncut", alpha: float = 3.0) -> torch.Tensor:
        """The ``(N, N)`` NCut or CC affinity of this graph (see :func:`affinity`)."""
        if self.gram is None:
            return affinity(self.features, loss, alpha)
        return affinity_from_gram(self.gram, loss, alpha)
