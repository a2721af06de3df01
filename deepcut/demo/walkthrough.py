"""Step through a page's result: the library's :class:`deepcut.lessons.walkthrough.Walkthrough` built with the
model that computed it, a failure shown to the visitor as a message."""

from __future__ import annotations

from ..lessons import walkthrough as lesson_walkthrough
from ..lessons.explain import Explanation
from ..predictor import DeepCut
from .errors import as_demo_errors
from .results import DemoResult

__all__ = ["Walkthrough"]


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
