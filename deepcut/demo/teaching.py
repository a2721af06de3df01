"""The page's calls into the lessons (:mod:`deepcut.lessons`), made with the model that computed the result
and under the server's caps, their failures turned into messages for the visitor.

* the graph weights from one clicked patch to every other patch (:func:`affinity_view`,
  :mod:`deepcut.lessons.affinity`), and the result with the clicked segment as its object (:func:`pick`);
* :func:`explain`: the result's own cut against the spectral cut, the training replay and the features'
  PCA (:func:`deepcut.lessons.explain.explain`);
* :func:`sweep` and :func:`default_values`: one setting swept under the server's epoch cap and time limit
  (:mod:`deepcut.lessons.sweep`; the rest of *Compare* is :mod:`deepcut.lessons.words` and
  :mod:`deepcut.lessons.compare`);
* :class:`Walkthrough`: the five steps of a result (:class:`deepcut.lessons.walkthrough.Walkthrough`).

They read the features the segmentation was computed from, in the model's cache, so none of them reruns
the backbone.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

from PIL import Image

from ..lessons import affinity as lesson_affinity
from ..lessons import explain as lesson_explain
from ..lessons import sweep as lesson_sweep
from ..lessons import walkthrough as lesson_walkthrough
from ..lessons.affinity import AFFINITY_SIDE, PatchRow
from ..lessons.explain import Explanation
from ..lessons.picking import label_at, pick_object
from ..lessons.sweep import Sweep
from ..predictor import DeepCut
from .errors import as_demo_errors
from .limits import Deadline
from .results import DemoResult

__all__ = ["AFFINITY_SIDE", "Explanation", "Walkthrough", "affinity_frame", "affinity_view", "default_values",
           "explain", "patch_row", "pick", "sweep"]


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


def sweep(model: DeepCut, result: DemoResult, param: str, values: Sequence[Any],
          max_epochs: int | None = None, deadline: Deadline | None = None) -> Sweep:
    """:func:`deepcut.lessons.sweep.sweep` of ``result`` with ``model`` (the one ``result`` was computed with:
    its cached features, its GNN's threads).

    Args:
        model: the :class:`~deepcut.DeepCut` of ``result.backbone``.
        result: the result to sweep.
        param: a field of :data:`~deepcut.lessons.sweep.SWEEP_NAMES`.
        values: at most :data:`~deepcut.lessons.sweep.MAX_SWEEP` values.
        max_epochs: the server's cap on every GNN training, as ``result`` had.
        deadline: the server's time limit on the request, checked before every GNN stage (None: none).

    Raises:
        DemoError: a setting the sweep refuses (:func:`~deepcut.lessons.sweep.check_sweep`), a segmentation
            that fails, the deadline passed (its message).
    """
    clusterer = model.gnn if max_epochs is None else functools.partial(model.gnn, max_epochs=max_epochs)
    if deadline is not None:
        clusterer = deadline.clusterer(clusterer)
    with as_demo_errors():
        return lesson_sweep.sweep(model.store, result, param, values, clusterer)


def default_values(result: DemoResult, param: str) -> list:
    """:func:`deepcut.lessons.sweep.default_values`.

    Raises:
        DemoError: layers of a backbone without them, or a setting without default values.
    """
    with as_demo_errors():
        return lesson_sweep.default_values(result, param)


class Walkthrough(lesson_walkthrough.Walkthrough):
    """The five steps of ``result`` (:class:`deepcut.lessons.walkthrough.Walkthrough`).

    Example::

        ex = explain(model, result)
        walk = Walkthrough(model, result, ex)

    Args:
        model: the :class:`~deepcut.DeepCut` ``result`` was computed with (its features are cached).
        result: the result to walk through.
        explanation: :func:`~deepcut.demo.teaching.explain` of ``result`` (its PCA and training replay).
        point: the pixel ``(x, y)`` whose graph row step 2 shows (default: :meth:`DemoResult.default_point`).
        opacity: colour opacity of the overlays.

    Raises:
        DemoError: the features cannot be computed.
    """

    def __init__(self, model: DeepCut, result: DemoResult, explanation: Explanation,
                 point: tuple[float, float] | None = None, opacity: float = 0.5) -> None:
        with as_demo_errors():
            super().__init__(model.store, result, explanation, point, opacity)
