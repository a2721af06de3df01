"""The one tracking path of videos and live streams: :class:`FrameTracker` segments a stream of frames'
features with labels that agree across frames.

1. the first frame (and the first after :meth:`FrameTracker.reset` or a change of frame size) is clustered
   like a single image;
2. every later frame continues training the GNNs of the previous frame for a few epochs (``warm_epochs``,
   the paper's implicit tracking) and numbers its segments by the GNN's cluster index;
3. a guard against drift (:mod:`deepcut.tasks.video.tracking`): foreground and background are oriented by the
   previous frame, segments are matched to the tracks of the previous frames, and a warm start that
   collapses to one segment is re-clustered from scratch.

:class:`~deepcut.tasks.video.VideoSegmentation` (files, batched ViT) and :class:`~deepcut.tasks.video.LiveSession`
(one frame at a time, the newest wins) both feed it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...clustering.fit import Clusterer, fit
from ...config import SegmentConfig
from ...features.store import PatchFeatures
from ...graph.patch_graph import graph_of
from ...segmentation.finish import to_segmentation
from ...segmentation.result import Segmentation
from ...stages.run import StageOutput, Tracking, run_stages
from .tracking import LabelTracker, TemporalBackground

#: Warm-started frames train for this fraction of the first frame's epochs (at least one).
WARM_FRACTION = 0.2


def default_warm_epochs(epochs: Sequence[int]) -> tuple[int, int, int]:
    """Epochs of stages 1-3 for warm-started frames: ``WARM_FRACTION`` of ``epochs``, at least 1."""
    return tuple(max(1, int(round(e * WARM_FRACTION))) for e in epochs)  # type: ignore[return-value]  # one each


@dataclass
class VideoStats(Mapping):
    """Counters of a stream.

    Attributes:
        frames: frames segmented so far.
        rematched: frames where matching corrected the warm start's numbering.
        cold_restarts: frames re-clustered from scratch because the warm start collapsed.
        seconds: wall time so far.
    """

    frames: int = 0
    rematched: int = 0
    cold_restarts: int = 0
    seconds: float = 0.0

    def __getitem__(self, key: str):
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self):
        return ("frames", "rematched", "cold_restarts", "seconds")

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return 4


def _degenerate(out: StageOutput) -> bool:
    return np.unique(out.labels).size < 2


class FrameTracker:
    """Segments successive frames' features with consistent labels (see the module doc).

    Args:
        cfg: the settings of every frame (the first frame trains ``cfg.epochs``).
        warm_epochs: epochs of stages 1-3 for the frames after the first (default :func:`default_warm_epochs`).
        warm: continue each frame's GNN from the previous frame's (False: a fresh GNN per frame).
        match: orient foreground/background by the previous frame and match segments to the tracks.
        clusterer: clusters each stage (default the GNN, :func:`~deepcut.clustering.fit.fit`).
    """

    def __init__(self, cfg: SegmentConfig, warm_epochs: int | Sequence[int] | None = None, warm: bool = True,
                 match: bool = True, clusterer: Clusterer = fit) -> None:
        self.cfg, self.warm, self.match, self.clusterer = cfg, bool(warm), bool(match), clusterer
        # one number: stage 1 only, like SegmentConfig.epochs
        self.warm_cfg = cfg.replace(epochs=default_warm_epochs(cfg.epochs) if warm_epochs is None else warm_epochs)
        self.stats = VideoStats()
        self.reset()

    def reset(self) -> None:
        """Forget the previous frames: the next frame is clustered from scratch and starts new tracks."""
        self.models: list | None = None
        self.grid: tuple[int, int] | None = None
        self.tracker = LabelTracker(prior=0.3 if self.warm else 0.0) if self.match else None
        self.vote: TemporalBackground | None = None
        self.since_reset = 0

    def step(self, feats: PatchFeatures, t0: float | None = None) -> Segmentation:
        """One frame's :class:`Segmentation`, its labels matched to the frames before.

        Args:
            feats: the frame's features (a change of grid from the previous frame starts anew).
            t0: ``time.perf_counter()`` when the work on the frame began (default: the features' start).
        """
        t1 = time.perf_counter()
        if self.grid is not None and tuple(feats.grid) != self.grid:
            self.reset()
        self.grid = (feats.grid[0], feats.grid[1])
        out = self._cluster(feats)
        note = None
        if self.tracker is not None:
            out, rematched = self.tracker.update(out, feats.features)
            if rematched and self.since_reset > 0:
                self.stats.rematched += 1
                note = "labels re-matched to the previous frame (the warm-started clustering drifted)"
        seg = to_segmentation(out, feats, self.cfg, t1 - feats.seconds if t0 is None else t0)
        if note:
            seg.notes.append(note)
        self.since_reset += 1
        self.stats.frames += 1
        return seg

    def _cluster(self, feats: PatchFeatures) -> StageOutput:
        """Stages for one frame, warm-started from the previous frame's GNNs when there are some."""
        assert self.grid is not None  # step sets it first
        models = self.models
        cold = models is None or not self.warm
        if self.match and self.vote is None:
            self.vote = TemporalBackground(self.grid)
        vote = self.vote if self.match else None
        previous = vote.previous if vote is not None else None
        graph = graph_of(feats)
        tracking = Tracking(warm=None if cold else models, keep_cluster_ids=self.warm, background_fn=vote)
        out = run_stages(graph, self.grid, self.cfg if cold else self.warm_cfg, self.clusterer, tracking=tracking)
        if not cold and _degenerate(out):
            if vote is not None:
                vote.previous = previous
            again = run_stages(graph, self.grid, self.cfg, self.clusterer,
                               tracking=Tracking(keep_cluster_ids=True, background_fn=vote))
            if not _degenerate(again):
                self.stats.cold_restarts += 1
                out = again
                out.notes.append("the warm-started clustering collapsed to one segment; re-clustered from scratch")
        if self.warm:  # a stage that did not run this frame keeps the GNN it had
            self.models = [m if m is not None else (models[i] if models else None) for i, m in enumerate(out.models)]
        return out
