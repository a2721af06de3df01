"""Segmentation settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError

Loss = Literal["ncut", "cc"]
Facet = Literal["key", "query", "value", "token"]
FACETS: tuple[str, ...] = ("key", "query", "value", "token")
LOSSES: tuple[str, ...] = ("ncut", "cc")


@dataclass(frozen=True)
class SegmentConfig:
    """Every knob of a DeepCut segmentation.

    Attributes:
        k: number of clusters. With ``stages=1`` the image is split into ``k`` segments; with
            ``stages>=2`` the first stage is a foreground/background bipartition and ``k`` is the
            number of foreground parts. With ``loss="cc"`` it is only an upper bound.
        loss: ``"ncut"`` (relaxed normalized cut + orthogonality, as in MinCutPool) or ``"cc"``
            (correlation clustering, finds the number of segments itself).
        alpha: CC's sensitivity: the graph is ``W - max(W) / alpha``; larger gives more segments.
        layer: ViT block whose features are used (0-based; negative counts from the end).
        facet: ``"key"``, ``"query"``, ``"value"`` or ``"token"``.
        resolution: the image is resized, keeping its aspect ratio, to about
            ``resolution x resolution`` pixels, i.e. about ``(resolution / patch)**2`` patches.
        stride: patch stride of the ViT (``None``: the patch size, no overlap).
        stages: 1 (k-way), 2 (+ foreground parts) or 3 (+ background parts).
        epochs: GNN training epochs of stages 1, 2 and 3.
        bg_k: number of background parts in stage 3.
        largest_component: keep only the largest connected foreground component.
        seed: seed of the GNN initialisation and dropout; equal seeds give equal results.
        log_bin: use the log-binned descriptor of Amir et al. (each patch's feature plus averages of
            its neighbourhood at two scales, 17x longer) instead of the plain facet.
    """

    k: int = 2
    loss: Loss = "ncut"
    alpha: float = 3.0
    layer: int = 11
    facet: Facet = "key"
    resolution: int = 280
    stride: int | None = None
    stages: int = 1
    epochs: tuple[int, int, int] = (10, 100, 10)
    bg_k: int = 2
    largest_component: bool = False
    seed: int = 0
    log_bin: bool = False

    def __post_init__(self) -> None:
        epochs = self.epochs
        if isinstance(epochs, int):
            epochs = (epochs, 100, 10)
        epochs = tuple(int(e) for e in epochs)
        if len(epochs) == 1:
            epochs = (epochs[0], 100, 10)
        if len(epochs) != 3:
            raise ConfigError(f"epochs must be one number or three (stage 1, 2, 3), got {self.epochs!r}")
        object.__setattr__(self, "epochs", epochs)
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.facet not in FACETS:
            raise ConfigError(f"facet must be one of {FACETS}, got {self.facet!r}")
        if int(self.k) < 2:
            raise ConfigError(f"k must be at least 2, got {self.k}")
        if int(self.bg_k) < 2:
            raise ConfigError(f"bg_k must be at least 2, got {self.bg_k}")
        if self.stages not in (1, 2, 3):
            raise ConfigError(f"stages must be 1, 2 or 3, got {self.stages}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be positive, got {self.alpha}")
        if int(self.resolution) < 16:
            raise ConfigError(f"resolution must be at least 16 pixels, got {self.resolution}")
        if self.stride is not None and int(self.stride) < 1:
            raise ConfigError(f"stride must be a positive number of pixels, got {self.stride}")
        if any(e < 1 for e in epochs):
            raise ConfigError(f"epochs must be at least 1, got {epochs}")

    def replace(self, **overrides: Any) -> "SegmentConfig":
        """A copy with some fields changed; unknown names raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; valid: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["epochs"] = list(self.epochs)
        return d
