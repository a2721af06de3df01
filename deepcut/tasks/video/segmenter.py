"""Video files: :func:`segment_video` reads the frames, runs the ViT on batches of them
(:meth:`deepcut.features.store.FeatureStore.get_many`) and hands each frame's features to the one tracking path,
:class:`~deepcut.tasks.video.stream.FrameTracker` (warm-started GNN + the guard against drift), which live
streams (:mod:`deepcut.tasks.video.live`) share.
"""

from __future__ import annotations

import time
from itertools import islice
from typing import Any, Callable, Generator, Sequence

from ...clustering.fit import Clusterer, fit
from ...config import SegmentConfig, make_config
from ...errors import ConfigError
from ...features.store import FeatureStore
from ...segmentation.notes import plural
from ...segmentation.result import Segmentation
from ...utils.coerce import as_bool, as_int
from ...utils.memory import memory_errors
from .frames import VideoLike
from .reader import FrameReader
from .stream import FrameTracker, VideoStats, default_warm_epochs  # noqa: F401  (re-exported)

ProgressFn = Callable[[int, int], None]

#: Default number of frames per ViT forward pass.
DEFAULT_BATCH_SIZE = 8


def check_progress(progress: object) -> ProgressFn | None:
    """``progress`` if it is a callable ``progress(done, total)``; None for None or False.

    Raises:
        ConfigError: anything else (a number, a string, True).
    """
    if progress is None or progress is False:
        return None
    if not callable(progress):
        raise ConfigError(f"progress must be a function progress(done, total) or None, got {progress!r}")
    return progress


class VideoSegmentation:
    """A lazy stream of per-frame :class:`Segmentation` with consistent labels; made by :func:`segment_video`.

    Iterate it (once) to process the frames. Attributes: ``reader`` (the
    :class:`~deepcut.tasks.video.FrameReader`), ``fps`` (input fps / ``frame_stride``), ``info``, ``notes``
    (reader and pipeline notes) and ``stats`` (:class:`VideoStats`).
    """

    def __init__(self, store: FeatureStore, reader: FrameReader, cfg: SegmentConfig,
                 batch_size: int = DEFAULT_BATCH_SIZE, progress: ProgressFn | None = None,
                 warm_epochs: int | Sequence[int] | None = None, warm: bool = True, match: bool = True,
                 clusterer: Clusterer = fit) -> None:
        batch_size = as_int("batch_size", batch_size, 1)
        self.store = store
        self.reader = reader
        self.cfg = cfg = store.config(cfg)  # the backbone's resolution when the config sets none
        self.warm = as_bool("warm", warm)
        self.match = as_bool("match", match)
        self.tracker = FrameTracker(cfg, warm_epochs, self.warm, self.match, clusterer)
        self.progress = check_progress(progress)
        self.grid = store.grid((reader.info.size[1], reader.info.size[0]), cfg.resolution, cfg.stride)
        self.batch_size = int(batch_size)
        self.fps = reader.fps
        self.info = reader.info
        self._extra_notes: list[str] = []
        self._gen: Generator[Segmentation, None, None] | None = None
        self._finished: int | None = None  # the frames given, once the stream is exhausted

    @property
    def stats(self) -> VideoStats:
        """The tracker's counters (:class:`~deepcut.tasks.video.stream.VideoStats`)."""
        return self.tracker.stats

    @property
    def warm_cfg(self) -> SegmentConfig:
        """The settings of the frames after the first."""
        return self.tracker.warm_cfg

    @property
    def notes(self) -> list[str]:
        return list(self.reader.notes) + self._extra_notes

    @property
    def total(self) -> int:
        """Expected number of frames (exact once the stream is exhausted: the frames it gave)."""
        if self._finished is not None:
            return self._finished
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

    def _run(self) -> Generator[Segmentation, None, None]:
        t_start = time.perf_counter()
        frames = iter(self.reader)
        done = 0
        while True:
            batch = list(islice(frames, self.batch_size))
            if not batch:
                break
            for feats in self.store.get_many(batch, self.cfg, self.batch_size, cache=False):
                self.grid = feats.grid
                seg = self.tracker.step(feats)
                if done == 0:
                    seg.notes[:0] = self.reader.notes
                done += 1
                self.stats.seconds = time.perf_counter() - t_start
                if self.progress is not None:
                    self.progress(done, self.total)
                yield seg
        if self.stats.rematched:
            self._extra_notes.append(f"labels re-matched to the previous frame in {self.stats.rematched} of "
                                     f"{done} frames (the warm-started clustering drifted)")
        if self.stats.cold_restarts:
            self._extra_notes.append(f"{plural(self.stats.cold_restarts, 'frame')} re-clustered from scratch "
                                     f"(the warm start collapsed to one segment)")
        self._finished = done
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
        store: the :class:`~deepcut.features.store.FeatureStore` that computes and caches the features
            (a :class:`~deepcut.DeepCut`'s is ``dc.store``; ``dc.segment_video(...)`` passes it).
        video: path of a video file, GIF or folder of frames, or frames in memory
            (see :func:`deepcut.tasks.video.read_frames`).
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
            (:class:`~deepcut.tasks.video.tracking.TemporalBackground`) and match segments to the previous
            frames (:class:`~deepcut.tasks.video.tracking.LabelTracker`). ``warm=False, match=False`` is
            ``DeepCut.segment`` frame by frame.
        max_pixels: refuse frames larger than this, checked before they are decoded (see
            :func:`deepcut.tasks.video.read_frames`).
        clusterer: clusters each stage of each frame (default the GNN, :func:`~deepcut.clustering.fit.fit`).

    Raises:
        VideoLoadError: the input cannot be read, or its frames are over ``max_pixels``. ConfigError: a bad setting.
    """
    cfg = make_config(config, overrides)
    progress = check_progress(progress)
    reader = FrameReader(video, max_frames=max_frames, frame_stride=frame_stride, max_pixels=max_pixels)
    return VideoSegmentation(store, reader, cfg, batch_size=batch_size, progress=progress,
                             warm_epochs=warm_epochs, warm=warm, match=match, clusterer=clusterer)
