"""What a method predicts for one evaluation image (:class:`Prediction`), and a method's type (:data:`Method`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .datasets import Sample

__all__ = ["Method", "Prediction"]


@dataclass
class Prediction:
    """What a method predicted for one image.

    Attributes:
        labels: ``(H, W)`` int segment labels (0 = background when there is a foreground).
        foreground: ``(H, W)`` bool foreground, or None without a bipartition.
        score: ``(H, W)`` float32 soft foreground in [0, 1] (for max F-beta), or None.
        bbox: ``(x0, y0, x1, y1)`` box of the foreground (x1/y1 exclusive), or None.
        seconds: time spent predicting.
        notes: messages of the method (degenerate clusterings, skipped stages).
        objects: the ``objects`` task's predicted objects (``.mask``, ``.bbox``, ``.score``), else None.
    """

    labels: np.ndarray
    foreground: np.ndarray | None
    score: np.ndarray | None
    bbox: tuple[int, int, int, int] | None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    objects: list | None = None


Method = Callable[[Sample], Prediction]
