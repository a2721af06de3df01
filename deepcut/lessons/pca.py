"""The patch features' first three principal components as colours (:func:`feature_pca`)."""

from __future__ import annotations

import numpy as np
import torch


def feature_pca(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """The first three principal components of patch features ``(h, w, D)`` as colours: ``(h, w, 3)``
    float32 in ``[0, 1]`` (each component min-max scaled over its 1st-99th percentile; fewer than
    three components leave the missing channels at 0.5)."""
    f = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    f = f.detach().cpu().double()
    if f.ndim != 3:
        raise ValueError(f"features must be (h, w, D), got shape {tuple(f.shape)}")
    h, w, d = f.shape
    x = f.reshape(h * w, d)
    x = x - x.mean(0, keepdim=True)
    out = np.full((h * w, 3), 0.5, np.float64)
    if h * w > 1 and float(x.abs().max()) > 0:
        _, _, v = torch.linalg.svd(x, full_matrices=False)
        comps = (x @ v[:3].T).numpy()
        lo, hi = np.percentile(comps, 1, axis=0), np.percentile(comps, 99, axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        out[:, :comps.shape[1]] = np.clip((comps - lo) / span, 0.0, 1.0)
    return out.reshape(h, w, 3).astype(np.float32)


# -- picking the object ------------------------------------------------------------------------------
