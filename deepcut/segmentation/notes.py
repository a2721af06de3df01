"""The words a segmentation carries about itself (:attr:`Segmentation.notes`): where the number of segments
is not the one asked for, or was set by CC's bound rather than by the image, in plain sentences.

Every front end shows these notes as they are (the app's status line, the CLI's JSON, the slides), so the
words live in one place.
"""

from __future__ import annotations

import numpy as np

from ..clustering.fit import RESTART_NOTE
from ..clustering.settle import SETTLED_NOTE
from ..config import options
from .result import Segmentation

__all__ = ["INFORMATION", "count_words", "is_information", "plural", "stage_counts"]

#: How the notes that tell what the method did (not that something is wrong) begin, after any ``"stage N: "``:
#: a front end shows them as information, the others as warnings.
INFORMATION: tuple[str, ...] = (RESTART_NOTE, SETTLED_NOTE)


def is_information(note: str) -> bool:
    """Whether ``note`` only tells what the method did (NCut's restart from the spectral cut that found every
    segment, a training stopped once settled, …: :data:`INFORMATION`), rather than warning of something the
    visitor may want to change."""
    body = note.split(": ", 1)[1] if note.startswith("stage ") and ": " in note else note
    return body.startswith(INFORMATION) and "NCut found" not in body


def plural(n: int, noun: str) -> str:
    """``"1 segment"``, ``"2 segments"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def stage_counts(seg: Segmentation) -> list[tuple[int, str, int, int]]:
    """``[(stage, what, asked, found), …]``: for each stage that cut the result's segments, how many it was
    asked for (NCut's ``k``, CC's bound) and how many its patches ended in. One stage: stage 1, ``k`` segments;
    two or three: stage 2, ``k`` foreground parts, and stage 3, ``bg_k`` background parts (each where its side
    has the 2 patches it needs to run)."""
    cfg, labels = seg.config, np.asarray(seg.patch_labels).ravel()
    assert cfg.k is not None  # resolved when the config was made
    if cfg.stages == 1 or seg.foreground_labels is None:
        return [(1, "segments", int(cfg.k), int(np.unique(labels).size))]
    fg = np.isin(labels, seg.foreground_labels)
    out = []
    if fg.sum() >= 2:
        out.append((2, "foreground parts", int(cfg.k), int(np.unique(labels[fg]).size)))
    if cfg.stages >= 3 and (~fg).sum() >= 2:
        out.append((3, "background parts", int(cfg.bg_k), int(np.unique(labels[~fg]).size)))
    return out


def count_words(seg: Segmentation) -> list[str]:
    """Plain sentences on how many segments each stage delivered against what it was asked for
    (:func:`stage_counts`): where CC used every segment its bound allows (the bound, not the image, may
    have set the number), and where NCut delivered fewer than ``k`` without a note of the stage saying why."""
    cfg, out = seg.config, []
    for stage, what, asked, found in stage_counts(seg):
        where = "" if stage == 1 else f" in stage {stage}"
        field = "k" if stage < 3 else "bg_k"
        bound = "k" if stage < 3 else "Background parts"
        said = any(n.startswith(f"stage {stage}:") for n in seg.notes)
        if cfg.loss == "cc" and found >= asked:
            more = (f"raise {bound} to let CC find more, or " if asked < int(options()[field].maximum or asked)
                    else "")  # at the top of the control's range there is nothing to raise
            out.append(f"CC used all {plural(asked, what.rstrip('s'))} its bound allows{where} ({bound} = {asked}), "
                       f"so the bound, not the image, may have set the number: {more}"
                       f"raise α (more pairs attract: fewer, larger segments) to see CC pick fewer by itself.")
        elif cfg.loss == "ncut" and found < asked and not said:
            out.append(f"NCut found {found} of the k = {asked} {what} asked for{where}: training left "
                       f"{asked - found} of its clusters without a patch.")
    if seg.num_segments < len(np.unique(seg.patch_labels)):
        step = "The upsampling to the image's size" if cfg.refine == "none" else "The edge refinement"
        out.append(f"{step} left {plural(seg.num_segments, 'segment')} of the patch grid's "
                   f"{len(np.unique(seg.patch_labels))} (the others got no pixel).")
    return out
