"""The page's sweep: :mod:`deepcut.lessons.sweep` run with the model that computed the result, under the
server's epoch cap and time limit, its refusals shown to the visitor as messages.

The rest of *Compare* is the library's: the settings in words (:mod:`deepcut.lessons.words`) and two results
side by side (:mod:`deepcut.lessons.compare`).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from ..lessons import sweep as lesson_sweep
from ..lessons.sweep import Sweep
from ..predictor import DeepCut
from .errors import as_demo_errors
from .limits import Deadline
from .results import DemoResult

__all__ = ["default_values", "sweep"]


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
