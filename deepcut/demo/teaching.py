"""The teaching view of a page's result: the library's lessons (:mod:`deepcut.lessons`) called with the
model that computed it, their failures turned into messages for the visitor.

* the graph weights from one clicked patch to every other patch (:func:`affinity_view`,
  :mod:`deepcut.lessons.affinity`);
* the result with the clicked segment as its object (:func:`pick`);
* :func:`explain`: the result's own cut against the spectral cut, the training replay and the features'
  PCA (:func:`deepcut.lessons.explain.explain`).

They read the features the segmentation was computed from, in the model's cache, so none of them reruns
the backbone.
"""

from __future__ import annotations

import dataclasses

from PIL import Image

from ..lessons import affinity as lesson_affinity
from ..lessons import explain as lesson_explain
from ..lessons.affinity import AFFINITY_SIDE, PatchRow
from ..lessons.explain import Explanation
from ..lessons.picking import label_at, pick_object
from ..predictor import DeepCut
from .errors import as_demo_errors
from .results import DemoResult

__all__ = ["AFFINITY_SIDE", "Explanation", "affinity_frame", "affinity_view", "explain", "patch_row", "pick"]


def affinity_frame(result: DemoResult) -> tuple[int, int]:
    """``(H, W)`` of the pictures :func:`affinity_view` draws for ``result`` (for mapping clicks)."""
    return lesson_affinity.affinity_frame(result.seg)


def patch_row(model: DeepCut, result: DemoResult, x: float, y: float,
              frame: tuple[int, int] | None = None) -> PatchRow:
    """:func:`deepcut.lessons.affinity.patch_row` of ``result`` with ``model``'s features.

    Raises:
        DemoError: the features cannot be computed (e.g. the model was swapped out and fails).
    """
    with as_demo_errors():
        return lesson_affinity.patch_row(model.store, result.seg, x, y, frame)


def affinity_view(model: DeepCut, result: DemoResult, x: float, y: float,
                  frame: tuple[int, int] | None = None) -> tuple[Image.Image, str]:
    """``(picture, caption)`` of the graph row of the patch under ``(x, y)``
    (:func:`deepcut.lessons.affinity.affinity_view`); the picture's longer side is :data:`AFFINITY_SIDE`.

    Raises:
        DemoError: the features cannot be computed.
    """
    with as_demo_errors():
        return lesson_affinity.affinity_view(model.store, result.seg, x, y, frame)


def pick(result: DemoResult, x: float, y: float, frame: tuple[int, int] | None = None) -> DemoResult:
    """``result`` with the segment under pixel ``(x, y)`` of a picture of size ``frame`` (default: the
    segmented image) as its object: mask, box, cut-out and downloads follow
    (:func:`~deepcut.lessons.picking.pick_object`)."""
    seg = result.seg
    label = label_at(seg, x, y, frame)
    notices = [n for n in result.notices if not n.startswith("Picked segment")]
    return dataclasses.replace(result, seg=pick_object(seg, label), notices=notices + [
        f"Picked segment {label} as the object: the mask, box, cut-out and downloads show it."])


def explain(model: DeepCut, result: DemoResult, max_epochs: int | None = None) -> Explanation:
    """:func:`deepcut.lessons.explain.explain` of ``result`` with ``model``'s cached features; ``max_epochs``:
    the server's cap on every training, as ``result`` had.

    Raises:
        DemoError: the features cannot be computed.
    """
    with as_demo_errors():
        return lesson_explain.explain(model.store, result.seg, len(result.corrections), max_epochs)
