"""Seconds spent on one segmentation, step by step (:class:`Timings`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Iterator

__all__ = ["STAGES", "Timings"]

STAGES = ("stage1", "stage2", "stage3")


@dataclass
class Timings(Mapping):
    """Seconds spent on one segmentation; a stage that did not run is None.

    Reads like a mapping too (``timings["total"]``, ``timings.get("stage2")``, ``"stage3" in
    timings``, ``dict(timings.items())``) over the entries that are set. :attr:`engine` (not one of the
    entries) names the engine the ViT ran in (``deepcut.backbones.precision.Engine``, e.g.
    ``"bf16-weights+sdpa"``; None where the features were given by the caller), :attr:`gnn_precision` what
    the GNN's GCN products ran in (``"bf16"`` where any stage's did, else ``"fp32"``,
    :mod:`deepcut.clustering.arithmetic`; None where no GNN was trained).
    """

    _NAMES: ClassVar[tuple[str, ...]] = ("features", *STAGES, "postprocess", "total")

    features: float = 0.0
    stage1: float | None = None
    stage2: float | None = None
    stage3: float | None = None
    postprocess: float = 0.0
    total: float = 0.0
    engine: str | None = None
    gnn_precision: str | None = None

    def to_dict(self) -> dict[str, float]:
        """The entries that are set, in order: ``features``, ``stage1`` …, ``postprocess``, ``total``."""
        return {name: getattr(self, name) for name in self._NAMES if getattr(self, name) is not None}

    @property
    def gnn(self) -> float:
        """Seconds of GNN training, all stages together."""
        return sum(getattr(self, s) or 0.0 for s in STAGES)

    def __getitem__(self, key: str) -> float:
        value = getattr(self, key, None) if key in self._NAMES else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())
