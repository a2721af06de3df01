"""Video: reading and writing (:mod:`.reader`, :mod:`.writer`, :mod:`.frames`), label tracking
(:mod:`.tracking`), the one tracking path that carries the GNN from frame to frame (:mod:`.stream`), and
its two feeds: video files (:mod:`.segmenter`) and live streams (:mod:`.live`).

The segmenters and tracker load on first use, so reading and writing videos does not import the
pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .frames import (
    DEFAULT_FPS,
    FRAME_SUFFIXES,
    MAX_SIDE,
    VIDEO_SUFFIXES,
    WRITE_SUFFIXES,
    VideoInfo,
    VideoLike,
    fit_within,
    frame_files,
)
from .reader import FrameReader, probe, read_frames
from .writer import write_video

if TYPE_CHECKING:
    from .live import LiveSession  # noqa: F401
    from .segmenter import VideoSegmentation, segment_video  # noqa: F401
    from .stream import FrameTracker, VideoStats, default_warm_epochs  # noqa: F401
    from .tracking import LabelTracker, TemporalBackground  # noqa: F401

_LAZY = {"VideoSegmentation": "segmenter", "segment_video": "segmenter", "default_warm_epochs": "stream",
         "VideoStats": "stream", "FrameTracker": "stream", "LiveSession": "live", "LabelTracker": "tracking",
         "TemporalBackground": "tracking"}

__all__ = ["DEFAULT_FPS", "FRAME_SUFFIXES", "MAX_SIDE", "VIDEO_SUFFIXES", "WRITE_SUFFIXES", "FrameReader",
           "VideoInfo", "VideoLike", "fit_within", "frame_files", "probe", "read_frames", "write_video", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
