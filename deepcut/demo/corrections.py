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
from ..tasks.correct import Correction, correct_features, is_warning
from .errors import DemoError
from .results import DemoResult

#: The click modes that correct, and what a first click asks for next.
KINDS = {"join": "the point it belongs with", "separate": "the point it does not belong with"}
#: Most corrections on one result (clicks and ``/correct`` alike): the library's own cap
#: (:data:`deepcut.tasks.correct.MAX_CORRECTIONS`), refused here in the app's words before any work.
MAX_CORRECTIONS = LIBRARY_MAX_CORRECTIONS


#: How the page's own correction notices begin (all replaced by the next step's): what a click or undo did, a
#: waiting first point, and the warnings of a correction the GNN did not learn by itself.
NOTICES = ("Correction", "First point", "Undid correction", "After correction")
#: How the notice of a picked object begins (:func:`deepcut.demo.teaching.pick`): gone once the cut changes.
PICKED = "Picked segment"


def _status(result: DemoResult, lines: list[str], cut_changed: bool = True) -> DemoResult:
    """``result`` with its correction notices replaced by ``lines``; the plain cut's words on its number of
    segments (:func:`~deepcut.segmentation.notes.count_words`) only while no correction changes it on purpose;
    ``cut_changed``: the segmentation was made again (a correction, undo or reset), so a picked object's
    notice goes with the pick."""
    plain = result.plain if result.plain is not None else result.seg
    counts = count_words(plain)
    kept = [n for n in result.notices if not n.startswith(NOTICES) and n not in counts
            and not (cut_changed and n.startswith(PICKED))]
    return dataclasses.replace(result, notices=kept + ([] if result.corrections else counts) + lines)


def _lines(seg_notes: list[str], n: int, alone: bool) -> list[str]:
    """The status lines of a correction: what changed (information) and, apart, any warning of the library's
    notes on it (:func:`~deepcut.tasks.correct.is_warning`); ``alone``: the notes describe correction ``n``
    alone (a click), else corrections 1 … ``n`` together."""
    said = [t for t in seg_notes if not t.startswith("stage")]
    info, warn = [t for t in said if not is_warning(t)], [t for t in said if is_warning(t)]
    name = f"Correction {n}" if alone or n == 1 else f"Corrections 1–{n}"
    return ([f"{name}: " + "; ".join(info[:4])] if info else []) + [f"After {name.lower()}, {w}" for w in warn]


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
        return _status(waiting, [f"First point marked (yellow): now click {KINDS[kind]}."], cut_changed=False)
    pair = (result.pending[1], point)
    return apply(model, result, [*result.corrections, Correction(kind, pair)], max_epochs)


def apply(model: DeepCut, result: DemoResult, corrections: Sequence[Correction], max_epochs: int | None = None,
          undo: bool = False) -> DemoResult:
    """``result``'s plain cut with ``corrections`` (in order; none: the plain cut itself); ``max_epochs``: the
    server's cap on the correction's training (:class:`~deepcut.clustering.links.Links` ``epochs``). Where
    ``corrections`` are ``result``'s plus one (a click), the status describes that last one alone, against
    ``result``; ``undo``: they are ``result``'s but the last, and the status says which was undone."""
    plain = result.plain if result.plain is not None else result.seg
    if len(corrections) > MAX_CORRECTIONS:
        raise DemoError(f"at most {MAX_CORRECTIONS} corrections on one result (got {len(corrections)}): undo some, "
                        f"or reset and start again")
    undone = [f"Undid correction {len(result.corrections)}: " + (
        f"the result of the {'first correction' if len(corrections) == 1 else f'first {len(corrections)}'} again"
        if corrections else "the plain cut again.")] if undo and result.corrections else []
    if not corrections:
        back = dataclasses.replace(result, seg=plain, corrections=(), pending=None, plain=None)
        return _status(back, undone or (["Corrections reset: the plain cut."] if result.corrections else []))
    alone = tuple(corrections[:-1]) == tuple(result.corrections)  # one click more than the result shown
    try:
        budget = Links() if max_epochs is None else Links(epochs=min(Links().epochs, int(max_epochs)))
        seg = correct_features(model.patch_features(plain.image, plain.config), plain, list(corrections), budget,
                               previous=result.seg if alone else None)
    except DeepCutError as e:
        raise DemoError(str(e)) from None
    out = dataclasses.replace(result, seg=seg, corrections=tuple(corrections), pending=None, plain=plain,
                              seconds=seg.timings.total)
    return _status(out, undone or _lines(seg.notes, len(corrections), alone))


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
        return _status(dataclasses.replace(result, pending=None), [], cut_changed=False)
    if not result.corrections:
        return _status(result, ["Correction: nothing to undo."], cut_changed=False)
    return apply(model, result, result.corrections[:-1], max_epochs, undo=True)


def reset(model: DeepCut, result: DemoResult) -> DemoResult:
    """``result``'s plain cut, every correction dropped."""
    return apply(model, dataclasses.replace(result, pending=None), [])
