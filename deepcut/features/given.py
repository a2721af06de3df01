"""Features a caller gives (instead of an image), checked for the pipeline."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..utils.coerce import as_int
from .image import load_image


def as_feature_matrix(features: object, grid: object) -> tuple[torch.Tensor, tuple[int, int]]:
    """Checked features ``(h * w, D)`` float and ``grid = (h, w)`` for :meth:`deepcut.DeepCut.segment_features`,
    from features ``(h * w, D)``, ``(h, w, D)`` or ``(1, h * w, D)`` (a batch of one).

    Raises:
        ConfigError: ``features`` is not a real-valued array or tensor of ``h * w`` finite rows of that shape, or
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
    if x.ndim == 3 and x.shape[0] == 1 and x.shape[1] == h * w:  # a batch of one image, as a ViT gives it
        x = x[0]
    rows = x.shape[0] if x.ndim == 2 else x.shape[0] * x.shape[1] if x.ndim == 3 and x.shape[0] == h else -1
    if x.is_complex() or x.dtype == torch.bool or x.numel() == 0 or rows != h * w:
        raise ConfigError(f"features must be an (h*w, D) or (h, w, D) array of real numbers with h*w = {h * w} "
                          f"rows for the grid {(h, w)}, got shape {tuple(x.shape)} of {x.dtype}")
    x = x.reshape(h * w, -1).float()
    if not bool(torch.isfinite(x).all()):
        raise ConfigError("features must be finite (they hold NaN or infinity)")
    return x, (h, w)


def given_image(image: object, work_size: object) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """:meth:`deepcut.DeepCut.segment_features`'s ``image`` as an ``(H, W, 3)`` uint8 array (anything
    :func:`~deepcut.features.image.load_image` reads: a path, a PIL image, a grey or float array …; None stays
    None) and ``work_size`` as ``(H', W')`` (None stays None).

    Raises:
        ImageLoadError: ``image`` cannot be read as an image.
        ConfigError: ``work_size`` is not two whole numbers >= 1.
    """
    size = None
    if work_size is not None:
        try:
            h, w = (as_int("work_size", v, 1) for v in work_size)  # type: ignore[attr-defined]
        except (TypeError, ValueError, ConfigError):
            raise ConfigError(f"work_size must be two whole numbers (H, W) >= 1, got {work_size!r}") from None
        size = (h, w)
    return (None if image is None else load_image(image)), size  # type: ignore[arg-type]
