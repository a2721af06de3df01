"""Live streams (a webcam): :class:`LiveSession` segments one frame at a time with labels that follow the
parts as the camera moves — the same tracking path as a video file (:class:`~deepcut.tasks.video.stream.FrameTracker`),
without batching or look-ahead, so each answer belongs to the newest frame.

    live = dc.live(resolution=224)
    for frame in camera:                 # (H, W, 3) uint8 arrays, PIL images or paths
        seg = live.step(frame)           # Segmentation, labels consistent with the frames before
        show(seg.overlay(), live.fps, live.latency)
    live.reset()                         # a new scene: start the tracks anew
"""

from __future__ import annotations

import time
from typing import Sequence

from ...clustering.fit import Clusterer, fit
from ...config import SegmentConfig
from ...features.image import ImageLike
from ...features.store import FeatureStore
from ...segmentation.result import Segmentation
from ...utils.memory import memory_errors
from .stream import FrameTracker, VideoStats

#: The settings a live stream starts from unless told otherwise: a coarse grid answers fast.
LIVE_RESOLUTION = 224
#: Weight of the newest frame in the running averages of :attr:`LiveSession.fps` and ``latency``.
SMOOTHING = 0.3


class LiveSession:
    """Segment a stream frame by frame (see the module doc); made by :meth:`deepcut.DeepCut.live`.

    Args:
        store: the :class:`~deepcut.features.store.FeatureStore` that computes the frames' features (not cached).
        cfg: the settings of every frame.
        warm_epochs: GNN epochs of stages 1-3 for the frames after the first (default: a fifth of ``cfg``'s).
        warm: continue each frame's GNN from the previous frame's.
        match: guard the labels against drift (see :mod:`deepcut.tasks.video.tracking`).
        clusterer: clusters each stage (default the GNN).

    Attributes:
        tracker: the :class:`~deepcut.tasks.video.stream.FrameTracker` shared with video files.
        latency: seconds of the last frames' work (running average), ViT and GNN together.
        fps: frames per second the stream reaches (running average of the time between two answers).
    """

    def __init__(self, store: FeatureStore, cfg: SegmentConfig, warm_epochs: int | Sequence[int] | None = None,
                 warm: bool = True, match: bool = True, clusterer: Clusterer = fit) -> None:
        self.store, self.cfg = store, store.config(cfg)
        self.tracker = FrameTracker(cfg, warm_epochs, warm, match, clusterer)
        self.latency = 0.0
        self.fps = 0.0
        self._last: float | None = None

    @property
    def stats(self) -> VideoStats:
        """Counters since the session began: frames, re-matched frames, cold restarts, seconds."""
        return self.tracker.stats

    def step(self, frame: ImageLike) -> Segmentation:
        """The :class:`Segmentation` of one frame, its labels consistent with the frames before.

        Raises:
            ImageLoadError: the frame cannot be read. ResourceLimitError: it would need too much memory.
        """
        t0 = time.perf_counter()
        with memory_errors("segmenting a live frame"):
            feats = self.store.get_many([frame], self.cfg, batch_size=1, cache=False)[0]
            seg = self.tracker.step(feats, t0)
        done = time.perf_counter()
        seconds = done - t0
        self.latency = seconds if self.stats.frames == 1 else (1 - SMOOTHING) * self.latency + SMOOTHING * seconds
        if self._last is not None:
            rate = 1.0 / max(done - self._last, 1e-9)
            self.fps = rate if self.fps == 0.0 else (1 - SMOOTHING) * self.fps + SMOOTHING * rate
        self._last = done
        self.stats.seconds += seconds
        return seg

    def reset(self) -> None:
        """Start the tracks anew (a new scene); the counters go on."""
        self.tracker.reset()
        self._last = None
