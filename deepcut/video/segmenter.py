"""Video segmentation with labels that agree across frames, the paper's way plus a guard:

1. the ViT runs on batches of frames (:meth:`deepcut.features.FeatureStore.get_many`);
2. the first frame is clustered like a single image; every later frame continues training the GNN
   of the previous frame (``Tracking(warm=…)``) for a few epochs (``warm_epochs``) and its segments
   are numbered by the GNN's cluster index, so a part keeps its number;
3. the guard against drift (:mod:`deepcut.video.tracking`): foreground and background are oriented
   by the previous frame and segments are matched to the tracks of the previous frames.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..clustering import Clusterer, fit
from ..config import SegmentConfig, make_config
from ..errors import ConfigError
from ..features import FeatureStore, PatchFeatures
from ..pipeline import StageOutput, Tracking, run_stages, to_segmentation
from ..segmentation import Segmentation
from ..utils.coerce import as_bool, as_int
from ..utils.memory import memory_errors
from .frames import VideoLike
from .reader import FrameReader
from .tracking import LabelTracker, TemporalBackground

ProgressFn = Callable[[int, int], None]

#: Default number of frames per ViT forward pass.
DEFAULT_BATCH_SIZE = 8
#: Warm-started frames train for this fraction of the first frame's epochs (at least one).
WARM_FRACTION = 0.2


def default_warm_epochs(epochs: Sequence[int]) -> tuple[int, int, int]:
    """Epochs of stages 1-3 for warm-started frames: ``WARM_FRACTION`` of ``epochs``, at least 1."""
    return tuple(max(1, int(round(e * WARM_FRACTION))) for e in epochs)  # type: ignore[return-value]


@dataclass
class VideoStats(Mapping):
    """Counters of a video run.

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

    def keys(self):  # type: ignore[override]
        return ("frames", "rematched", "cold_restarts", "seconds")

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return 4


def check_progress(progress: object) -> ProgressFn | None:
    """``progress`` if it is a callable ``progress(done, total)``; None for None or False.

    Raises:
        ConfigError: anything else (a number, a string, True).
    """
    if progress is None or progress is False:
        return None
    if not callable(progress):
        raise ConfigError(f"progress must be a function progress(done, total) or None, got {progress!r}")
    return progress  # type: ignore[return-value]


def _degenerate(out: StageOutput) -> bool:
    return np.unique(out.labels).size < 2


class VideoSegmentation:
    """A lazy stream of per-frame :class:`Segmentation` with consistent labels; made by :func:`segment_video`.

    Iterate it (once) to process the frames. Attributes: ``reader`` (the
    :class:`~deepcut.video.FrameReader`), ``fps`` (input fps / ``frame_stride``), ``info``, ``notes``
    (reader and pipeline notes) and ``stats`` (:class:`VideoStats`).
    """

    def __init__(self, store: FeatureStore, reader: FrameReader, cfg: SegmentConfig,
                 batch_size: int = DEFAULT_BATCH_SIZE, progress: ProgressFn | None = None,
                 warm_epochs: int | Sequence[int] | None = None, warm: bool = True, match: bool = True,
                 clusterer: Clusterer = fit) -> None:
        batch_size = as_int("batch_size", batch_size, 1)
        self.store, self.clusterer = store, clusterer
        self.reader = reader
        self.cfg = cfg
        # one number: stage 1 only, like SegmentConfig.epochs
        self.warm_cfg = cfg.replace(epochs=default_warm_epochs(cfg.epochs) if warm_epochs is None else warm_epochs)
        self.warm = as_bool("warm", warm)
        self.match = as_bool("match", match)
        self.progress = check_progress(progress)
        self.grid = store.grid((reader.info.size[1], reader.info.size[0]), cfg.resolution, cfg.stride)
        self.batch_size = int(batch_size)
        self.fps = reader.fps
        self.info = reader.info
        self.stats = VideoStats()
        self._extra_notes: list[str] = []
        self._vote: TemporalBackground | None = None
        self._gen: Iterator[Segmentation] | None = None

    @property
    def notes(self) -> list[str]:
        return list(self.reader.notes) + self._extra_notes

    @property
    def total(self) -> int:
        """Expected number of frames (exact once the stream is exhausted)."""
        return max(self.reader.expected or self.reader.max_frames, self.stats.frames)

    def __iter__(self) -> "VideoSegmentation":
        return self

    def __next__(self) -> Segmentation:
        if self._gen is None:
            self._gen = self._run()
        with memory_errors("segmenting the video"):
            return next(self._gen)

    def close(self) -> None:
        """Stop reading (ends the decoder); the stream yields nothing more."""
        if self._gen is not None:
            self._gen.close()

    def _cluster(self, feats: PatchFeatures, models: list | None) -> tuple[StageOutput, list | None]:
        """Stages for one frame: warm-started from ``models`` (the previous frame's GNNs) if given."""
        cold = models is None or not self.warm
        if self.match and (self._vote is None or self._vote.grid != tuple(self.grid)):
            self._vote = TemporalBackground(self.grid)
        vote = self._vote if self.match else None
        previous = vote.previous if vote is not None else None
        graph = feats.graph()
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
        if not self.warm:
            return out, None
        # A stage that did not run this frame keeps the GNN it had.
        kept = [m if m is not None else (models[i] if models else None) for i, m in enumerate(out.models)]
        return out, kept

    def _frame(self, feats: PatchFeatures, models: list | None, tracker: LabelTracker | None, done: int
               ) -> tuple[Segmentation, list | None]:
        """Segment one frame: stages, label tracking, :class:`Segmentation`."""
        t1 = time.perf_counter()
        out, models = self._cluster(feats, models)
        note = None
        if tracker is not None:
            out, rematched = tracker.update(out, feats.features)
            if rematched and done > 0:
                self.stats.rematched += 1
                note = "labels re-matched to the previous frame (the warm-started clustering drifted)"
        seg = to_segmentation(out, feats, self.cfg, t1 - feats.seconds)
        if done == 0:
            seg.notes[:0] = self.reader.notes
        if note:
            seg.notes.append(note)
        return seg, models

    def _run(self) -> Iterator[Segmentation]:
        t_start = time.perf_counter()
        tracker = LabelTracker(prior=0.3 if self.warm else 0.0) if self.match else None
        frames = iter(self.reader)
        models: list | None = None
        done = 0
        while True:
            batch = list(islice(frames, self.batch_size))
            if not batch:
                break
            for feats in self.store.get_many(batch, self.cfg, self.batch_size, cache=False):
                self.grid = feats.grid
                seg, models = self._frame(feats, models, tracker, done)
                done += 1
                self.stats.frames = done
                self.stats.seconds = time.perf_counter() - t_start
                if self.progress is not None:
                    self.progress(done, self.total)
                yield seg
        if self.stats.rematched:
            self._extra_notes.append(f"labels re-matched to the previous frame in {self.stats.rematched} of "
                                     f"{done} frames (the warm-started clustering drifted)")
        if self.stats.cold_restarts:
            self._extra_notes.append(f"{self.stats.cold_restarts} frames re-clustered from scratch "
                                     f"(the warm start collapsed to one segment)")
        if self.progress is not None and done and self.reader.expected != done:
            self.progress(done, done)


def segment_video(store: FeatureStore, video: VideoLike, config: SegmentConfig | None = None,
                  max_frames: int = 300, frame_stride: int = 1, batch_size: int = DEFAULT_BATCH_SIZE,
                  progress: ProgressFn | None = None, warm_epochs: int | Sequence[int] | None = None,
                  warm: bool = True, match: bool = True, max_pixels: int | None = None, clusterer: Clusterer = fit,
                  **overrides: Any) -> VideoSegmentation:
    """Segment a video with labels that stay consistent from frame to frame (see the module doc).

    The input is opened (and checked) now; frames are read and segmented lazily while iterating.

    Args:
        store: the :class:`~deepcut.features.FeatureStore` that computes and caches the features
            (a :class:`~deepcut.DeepCut`'s is ``dc.store``; ``dc.segment_video(...)`` passes it).
        video: path of a video file, GIF or folder of frames, or frames in memory
            (see :func:`deepcut.video.read_frames`).
        config: settings, as for :meth:`DeepCut.segment`.
        **overrides: single fields that replace the config's, e.g. ``k=4``.
        max_frames: at most this many frames.
        frame_stride: every ``frame_stride``-th frame.
        batch_size: frames per ViT pass (lowered automatically for very fine patch grids).
        progress: ``progress(done, total)`` after each frame.
        warm_epochs: GNN epochs of stages 1-3 for frames after the first (one number: stage 1 only;
            default :func:`default_warm_epochs`).
        warm: continue each frame's GNN from the previous frame's (False: a fresh GNN per frame,
            numbered by size like :meth:`DeepCut.segment`).
        match: guard the labels: orient foreground/background by the previous frame
            (:class:`~deepcut.video.tracking.TemporalBackground`) and match segments to the previous
            frames (:class:`~deepcut.video.tracking.LabelTracker`). ``warm=False, match=False`` is
            ``DeepCut.segment`` frame by frame.
        max_pixels: refuse frames larger than this, checked before they are decoded (see
            :func:`deepcut.video.read_frames`).
        clusterer: clusters each stage of each frame (default the GNN, :func:`~deepcut.clustering.fit`).

    Raises:
        VideoLoadError: the input cannot be read, or its frames are over ``max_pixels``. ConfigError: a bad setting.
    """
    cfg = make_config(config, overrides)
    progress = check_progress(progress)
    reader = FrameReader(video, max_frames=max_frames, frame_stride=frame_stride, max_pixels=max_pixels)
    return VideoSegmentation(store, reader, cfg, batch_size=batch_size, progress=progress,
                             warm_epochs=warm_epochs, warm=warm, match=match, clusterer=clusterer)
