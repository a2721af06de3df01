"""Patch labels → a :class:`Segmentation` at the input's size: upsampling, edge refinement, mask and box."""

from __future__ import annotations

import time

import numpy as np

from ..config import SegmentConfig
from ..features.store import PatchFeatures
from ..stages.run import StageOutput
from ..stages.timings import Timings
from ..utils.masks import bbox_of
from .notes import count_words
from .refine import segment_maps
from .result import Segmentation

__all__ = ["to_segmentation"]


def to_segmentation(out: StageOutput, feats: PatchFeatures, cfg: SegmentConfig, t0: float,
                    count_notes: bool = True) -> Segmentation:
    """Turn the patch labels of one image into its :class:`Segmentation` at the input's size.

    The labels, foreground and box are at the input's size, refined to its edges if ``cfg.refine``
    asks for it (:func:`~deepcut.segmentation.refine.segment_maps`); ``soft`` stays on the patch grid. Without a
    foreground/background split (one stage with ``k > 2``, or CC) the foreground is every segment but the
    background, label 0 (the segment that covers most of the border), so every result has a mask and a box.

    Args:
        out: the stages' output for the image's ``N = h * w`` patches.
        feats: the image's features (image, working size, grid, cache flag, seconds, resolution: the
            result's config records it when ``cfg`` left the resolution to the backbone).
        t0: ``time.perf_counter()`` when the work on this image started.
        count_notes: add :func:`~deepcut.segmentation.notes.count_words` to the notes: where a stage found
            fewer segments than asked for, or CC used all its bound allows (off for a correction by click,
            which changes the number on purpose).
    """
    t = time.perf_counter()
    h, w = feats.grid
    patch_labels = out.labels.reshape(h, w).astype(np.int32)
    fg_labels, largest = out.foreground_labels, cfg.largest_component
    if fg_labels is None:  # one stage, k > 2 (or CC): every segment but the background (label 0) is foreground
        fg_labels, largest = [int(v) for v in np.unique(out.labels) if v != 0], False
    labels, foreground = segment_maps(feats.image, patch_labels, tuple(feats.work_size), fg_labels, cfg.refine,
                                      largest)
    bbox = None if foreground is None else bbox_of(foreground)
    timings = Timings(features=feats.seconds, stage1=out.timings.stage1, stage2=out.timings.stage2,
                      stage3=out.timings.stage3, postprocess=time.perf_counter() - t, engine=feats.engine,
                      gnn_precision=out.timings.gnn_precision)
    timings.total = time.perf_counter() - t0
    seg = Segmentation(
        labels=labels, patch_labels=patch_labels, foreground=foreground, bbox=bbox,
        soft=out.soft.reshape(h, w, -1), losses=out.losses, timings=timings, features_cached=feats.cached,
        image=feats.image, config=cfg.with_default_resolution(feats.resolution), notes=list(out.notes),
        foreground_labels=[int(v) for v in fg_labels], models=list(out.models), restarts=list(out.restarts),
    )
    if count_notes:
        seg.notes += count_words(seg)
    return seg
