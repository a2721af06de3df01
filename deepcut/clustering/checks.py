"""The checks :func:`~deepcut.clustering.fit.fit` makes before it trains: its features and its settings, by
the rules :class:`~deepcut.config.SegmentConfig` applies where it has the setting."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..config import LOSSES, MAX_SEED
from ..errors import ConfigError
from ..graph.patch_graph import as_features as graph_features
from ..utils.coerce import as_float, as_int
from .arithmetic import check_precision
from .links import Links
from .settle import Settle

__all__ = ["as_features", "check_fit", "check_settings"]


def as_features(features: object) -> torch.Tensor:
    """``features`` (a tensor, a numpy array or nested lists) as an ``(N, D)`` float32 tensor, detached and
    usable outside inference mode.

    Raises:
        ConfigError: not an ``(N, D)`` array of finite real numbers.
    """
    f = graph_features(features).detach()
    if f.is_inference():  # features computed under torch.inference_mode()
        f = f.clone()
    if not bool(torch.isfinite(f.sum())) and not bool(torch.isfinite(f).all()):  # a finite sum: all finite
        raise ConfigError("features contain NaN or infinite values")
    return f


def check_fit(loss: str, k: int, epochs: int, max_epochs: int | None, links: Links | None,
              settings: tuple[float, int, float, int | None, Settle | None], precision: str = "auto"
              ) -> tuple[int, Links | None]:
    """:func:`~deepcut.clustering.fit.fit`'s checks: of what it trains (returns ``(epochs, links)`` within
    ``max_epochs``), of ``settings = (alpha, seed, lr, threads, settle)`` (:func:`check_settings`) and of the
    GCN's ``precision`` (:func:`~deepcut.clustering.arithmetic.check_precision`)."""
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")
    as_int("k", k, 2)
    epochs = as_int("epochs", epochs, 0)
    if max_epochs is not None:
        epochs = min(epochs, as_int("max_epochs", max_epochs, 0))
        if links:
            links = replace(links, epochs=min(int(links.epochs), int(max_epochs)))
    check_settings(*settings)
    check_precision(precision)
    return epochs, links


def check_settings(alpha: float, seed: int, lr: float, threads: int | None, settle: Settle | None) -> None:
    """:func:`~deepcut.clustering.fit.fit`'s checks of how it trains, with
    :class:`~deepcut.config.SegmentConfig`'s rules where it has the setting (a number of another kind, out of
    range, NaN: a :class:`ConfigError`, not a torch error deep inside or a setting quietly cut to a whole
    number)."""
    as_float("alpha", alpha, positive=True)
    as_int("seed", seed, 0, MAX_SEED)
    as_float("lr", lr, positive=True)
    if threads is not None:
        as_int("threads", threads, 0)  # 0: the default, as everywhere threads are given
    if settle is not None and not isinstance(settle, Settle):
        raise ConfigError(f"settle must be a Settle rule or None, got {settle!r}")
