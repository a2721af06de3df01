"""Corrections by click on the Image tab: the visitor clicks two points in *join* or *separate* mode and the
GNN continues with that constraint (:mod:`deepcut.tasks.correct`); corrections accumulate, *undo* takes the last
back, *reset* returns to the plain cut.

A corrected result is a :class:`~deepcut.demo.results.DemoResult` whose ``corrections`` list what was asked
and whose ``plain`` is the uncorrected segmentation every correction starts from (so undo is exact and
cheap: the same corrections minus one, on the same plain cut); ``pending`` is a first point waiting for its
second. Its overlay marks every correction's points (:func:`deepcut.render.marks.draw_corrections`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import numpy as np

from ..clustering.links import Links
from ..errors import DeepCutError
from ..predictor import DeepCut
from ..segmentation.notes import count_words
from ..tasks.correct import MAX_CORRECTIONS as LIBRARY_MAX_CORRECTIONS
from ..tasks.correct import Correction, correct_features
from .errors import DemoError
from .results import DemoResult

#: The click modes that correct, and what a first click asks for next.
KINDS = {"join": "the point it belongs with", "separate": "the point it does not belong with"}
#: Most corrections on one result (clicks and ``/correct`` alike): the library's own cap
#: (:data:`deepcut.tasks.correct.MAX_CORRECTIONS`), refused here in the app's words before any work.
MAX_CORRECTIONS = LIBRARY_MAX_CORRECTIONS


def _status(result: DemoResult, lines: list[str]) -> DemoResult:
    """``result`` with its correction notices replaced by ``lines``; the plain cut's words on its number of
    segments (:func:`~deepcut.segmentation.notes.count_words`) only while no correction changes it on purpose."""
    plain = result.plain if result.plain is not None else result.seg
    counts = count_words(plain)
    kept = [n for n in result.notices if not n.startswith(("Correction", "First point")) and n not in counts]
    return dataclasses.replace(result, notices=kept + ([] if result.corrections else counts) + lines)


def click(model: DeepCut, result: DemoResult, kind: str, x: float, y: float, max_epochs: int | None = None
          ) -> DemoResult:
    """A click at pixel ``(x, y)`` of ``result``'s overlay in ``kind`` mode: the first point waits (marked),
    the second applies the correction with all earlier ones.

    Raises:
        DemoError: an unknown mode, or the correction cannot be computed.
    """
    if kind not in KINDS:
        raise DemoError(f"unknown correction {kind!r}")
    h, w = result.seg.labels.shape
    point = (float(np.clip(x, 0, w - 1)), float(np.clip(y, 0, h - 1)))
    if result.pending is None or result.pending[0] != kind:
        waiting = dataclasses.replace(result, pending=(kind, point))
        return _status(waiting, [f"First point marked (yellow): now click {KINDS[kind]}."])
    pair = (result.pending[1], point)
    return apply(model, result, [*result.corrections, Correction(kind, pair)], max_epochs)


def apply(model: DeepCut, result: DemoResult, corrections: Sequence[Correction], max_epochs: int | None = None
          ) -> DemoResult:
    """``result``'s plain cut with ``corrections`` (in order; none: the plain cut itself); ``max_epochs``: the
    server's cap on the correction's training (:class:`~deepcut.clustering.links.Links` ``epochs``)."""
    plain = result.plain if result.plain is not None else result.seg
    if len(corrections) > MAX_CORRECTIONS:
        raise DemoError(f"at most {MAX_CORRECTIONS} corrections on one result (got {len(corrections)}): undo some, "
                        f"or reset and start again")
    if not corrections:
        back = dataclasses.replace(result, seg=plain, corrections=(), pending=None, plain=None)
        return _status(back, ["Corrections reset: the plain cut."] if result.corrections else [])
    try:
        budget = Links() if max_epochs is None else Links(epochs=min(Links().epochs, int(max_epochs)))
        seg = correct_features(model.patch_features(plain.image, plain.config), plain, list(corrections), budget)
    except DeepCutError as e:
        raise DemoError(str(e)) from None
    said = [n for n in seg.notes if not n.startswith("stage")]
    lines = [f"Correction {len(corrections)}: " + "; ".join(said[:4])] if said else []
    out = dataclasses.replace(result, seg=seg, corrections=tuple(corrections), pending=None, plain=plain,
                              seconds=seg.timings.total)
    return _status(out, lines)


def parse(text: str | None, scale: float = 1.0) -> list[Correction]:
    """The ``/correct`` API's corrections: JSON ``[{"join": [[x, y], [x, y]]}, {"separate": [[x, y], [x, y]]}, …]``
    in the upload's pixels, divided by ``scale`` (the demo's downscaling) into the segmented image's.

    Raises:
        DemoError: not that shape, or more than :data:`MAX_CORRECTIONS` of them.
    """
    try:
        items = json.loads(text or "[]")
        if isinstance(items, list) and len(items) > MAX_CORRECTIONS:
            raise DemoError(f"at most {MAX_CORRECTIONS} corrections in one request (got {len(items)})")
        out = []
        for item in items:
            (kind, points), = item.items()
            (x0, y0), (x1, y1) = points
            if kind not in KINDS:
                raise ValueError(kind)
            pair = ((float(x0) / scale, float(y0) / scale), (float(x1) / scale, float(y1) / scale))
            out.append(Correction(kind, pair))
    # OverflowError: an integer too large for a float; RecursionError: JSON nested too deep for the parser
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        raise DemoError('corrections must be JSON like [{"join": [[x, y], [x, y]]}, {"separate": [[x, y], [x, y]]}]'
                        ) from None
    if not out:
        raise DemoError("no corrections given: nothing to correct")
    return out


def undo(model: DeepCut, result: DemoResult, max_epochs: int | None = None) -> DemoResult:
    """``result`` without its last correction (or without a waiting first point)."""
    if result.pending is not None:
        return _status(dataclasses.replace(result, pending=None), [])
    if not result.corrections:
        return _status(result, ["Correction: nothing to undo."])
    return apply(model, result, result.corrections[:-1], max_epochs)


def reset(model: DeepCut, result: DemoResult) -> DemoResult:
    """``result``'s plain cut, every correction dropped."""
    return apply(model, dataclasses.replace(result, pending=None), [])
