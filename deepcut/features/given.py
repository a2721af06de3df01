"""Features a caller gives (instead of an image), checked for the pipeline."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..utils.coerce import as_int


def as_feature_matrix(features: object, grid: object) -> tuple[torch.Tensor, tuple[int, int]]:
    """Checked features ``(h * w, D)`` float and ``grid = (h, w)`` for :meth:`deepcut.DeepCut.segment_features`.

    Raises:
        ConfigError: ``features`` is not a real-valued array or tensor of ``h * w`` finite rows, or
            ``grid`` is not two whole numbers >= 1.
    """
    try:
        h, w = (as_int("grid", g, 1) for g in grid)  # type: ignore[attr-defined]  # any object: TypeError below
    except (TypeError, ValueError):
        raise ConfigError(f"grid must be two whole numbers (h, w) >= 1, got {grid!r}") from None
    if isinstance(features, torch.Tensor):
        if features.is_meta:
            raise ConfigError("features are a meta tensor (a shape without data): give real values")
        if features.layout != torch.strided:  # sparse features: the graph needs every dot product anyway
            features = features.to_dense()
        features = features.detach()  # segmenting never back-propagates into the caller's graph
    try:
        x = torch.as_tensor(features)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"features must be an (h*w, D) array or tensor of numbers ({e})") from None
    if x.is_complex() or x.dtype == torch.bool or x.numel() == 0 or x.numel() % (h * w):
        raise ConfigError(f"features must be an (h*w, D) array of real numbers with h*w = {h * w} rows for the "
                          f"grid {(h, w)}, got shape {tuple(x.shape)} of {x.dtype}")
    x = x.reshape(h * w, -1).float()
    if not bool(torch.isfinite(x).all()):
        raise ConfigError("features must be finite (they hold NaN or infinity)")
    return x, (h, w)
