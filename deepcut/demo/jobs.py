"""The three kinds of demo request (one image, a video, several images together) as steps of the
request template of :class:`~deepcut.demo.session.DemoSession`: prepare the input, run it on the
model with the config, wrap what came out into the result the page shows."""

from __future__ import annotations

import functools
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

from ..clustering.fit import fit
from ..config import SegmentConfig
from ..predictor import DeepCut
from .errors import DemoError
from .limits import Deadline
from .outputs import OutputStore
from .results import CosegDemoResult, DemoResult, VideoDemoResult
from .uploads import Upload, UploadReader, check_bytes, file_name

ProgressFn = Callable[[int, int], None]

#: At most this many images are co-segmented together.
MAX_COSEG_IMAGES = 8


@dataclass
class Request:
    """What a request runs with, once its model and config are chosen.

    Attributes:
        model: the shared model.
        backbone: the backbone used (the fallback if the requested one failed).
        requested: the backbone the visitor asked for.
        config: the settings.
        notices: what the visitor should know so far (fallback, downscaling, clamped layer).
        started: :func:`time.perf_counter` when the request's work began.
        deadline: when the request must stop (checked between GNN stages and video frames), or None.
        max_epochs: the most epochs any GNN training may take, every rule included (None: no cap).
        waited: seconds between the request reaching the server and its work beginning (the queue's wait for
            a free worker; 0 where unknown).
    """

    model: DeepCut
    backbone: str
    requested: str
    config: SegmentConfig
    notices: list[str]
    started: float
    deadline: Deadline | None = None
    max_epochs: int | None = None
    waited: float = 0.0

    @property
    def depth(self) -> int:
        return int(self.model.backbone.depth)

    def seconds(self) -> float:
        """Wall time since the request's work began (:attr:`waited` not included)."""
        return time.perf_counter() - self.started

    def clusterer(self) -> Callable:
        """The GNN (:func:`~deepcut.clustering.fit.fit`) capped at :attr:`max_epochs` in all (NCut's exactly-k
        rule included), checking the deadline (if any) before each stage."""
        inner = fit if self.max_epochs is None else functools.partial(fit, max_epochs=self.max_epochs)
        return inner if self.deadline is None else self.deadline.clusterer(inner)


class Job(ABC):
    """One request's own steps; the session runs them in order, with the model and config between.

    Attributes:
        source: a server path to keep out of error messages (the upload's), or None.
    """

    source: object = None

    @abstractmethod
    def prepare(self) -> list[str]:
        """Decode and validate the input; returns notices. Raises :class:`DemoError`."""

    @abstractmethod
    def run(self, req: Request) -> Any:
        """The model's work (may raise :class:`~deepcut.errors.DeepCutError`)."""

    @abstractmethod
    def wrap(self, req: Request, out: Any) -> Any:
        """The result the page shows, from :meth:`run`'s output."""


class ImageJob(Job):
    """Segment one upload."""

    def __init__(self, uploads: UploadReader, image: Any) -> None:
        self.uploads, self.image = uploads, image
        self.source = image if isinstance(image, (str, os.PathLike)) else None
        self.upload: Upload | None = None

    def prepare(self) -> list[str]:
        self.upload = self.uploads.read(self.image)
        return list(self.upload.notices)

    def run(self, req: Request) -> Any:
        assert self.upload is not None  # prepare() read it
        return req.model.segment_with(self.upload.image, req.config, req.clusterer())

    def wrap(self, req: Request, seg: Any) -> DemoResult:
        assert self.upload is not None  # prepare() read it
        return DemoResult(seg=seg, backbone=req.backbone, requested=req.requested, notices=req.notices + seg.notes,
                          original_size=self.upload.original, seconds=req.seconds(), depth=req.depth,
                          waited=req.waited)


class VideoJob(Job):
    """Segment a video with consistent labels; write the overlay video (MP4) and boxes (JSON)."""

    def __init__(self, outputs: OutputStore, video: str | os.PathLike | None, max_frames: int, frame_stride: int,
                 opacity: float, progress: ProgressFn | None, notices: list[str] | None = None,
                 max_pixels: int | None = None, max_bytes: int | None = None) -> None:
        self.outputs, self.video, self.source = outputs, video, video
        self.max_frames, self.frame_stride = int(max_frames), int(frame_stride)
        self.opacity, self.progress, self.notices = float(opacity), progress, list(notices or [])
        self.max_pixels, self.max_bytes = max_pixels, max_bytes

    def prepare(self) -> list[str]:
        if self.video is None:
            raise DemoError("Please upload a video or pick the example first.")
        check_bytes(self.video, self.max_bytes)
        return list(self.notices)

    def run(self, req: Request) -> Any:
        progress = req.deadline.progress(self.progress) if req.deadline is not None else self.progress
        stream = req.model.segment_video(self.video, req.config, max_frames=self.max_frames,
                                         frame_stride=self.frame_stride, progress=progress,
                                         max_pixels=self.max_pixels, clusterer=req.clusterer())
        return stream, self.outputs.save_video(stream, str(self.video), stream.fps, self.opacity)

    def wrap(self, req: Request, out: Any) -> VideoDemoResult:
        from ..evaluation.metrics import consistency

        stream, rendered = out
        notices = req.notices + list(stream.notes)
        record = {"fps": stream.fps, "frames": rendered.boxes, "backbone": req.backbone,
                  "config": req.config.to_dict(),
                  "bbox_format": "[x0, y0, x1, y1] in pixels of the processed frames, x1 and y1 exclusive",
                  "notes": notices}
        return VideoDemoResult(video=str(rendered.video), files=self.outputs.save_video_record(rendered, record),
                               frames=len(rendered.boxes), fps=float(stream.fps), seconds=req.seconds(),
                               backbone=req.backbone, notices=notices,
                               consistency=consistency(rendered.label_maps), stats=dict(stream.stats),
                               preview=rendered.first, waited=req.waited)


def trim_heap() -> None:
    """Hand freed memory back to the system (glibc's ``malloc_trim``; nothing elsewhere): a video's large
    frames leave the heap fragmented, so the server would otherwise stay hundreds of MB above its idle size."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class CosegJob(Job):
    """Segment 2 … :data:`MAX_COSEG_IMAGES` uploads together, so a part gets one label in all of them."""

    def __init__(self, uploads: UploadReader, images: list | None, names: list[str] | None) -> None:
        self.uploads = uploads
        self.images = [im for im in (images or []) if im is not None]
        self.names = list(names) if names else [file_name(im, i) for i, im in enumerate(self.images)]
        self.read: list[Upload] = []

    def prepare(self) -> list[str]:
        if len(self.images) < 2:
            raise DemoError("Please upload at least two images to co-segment.")
        if len(self.images) > MAX_COSEG_IMAGES:
            raise DemoError(f"Please upload at most {MAX_COSEG_IMAGES} images ({len(self.images)} were given).")
        notices = []
        for name, im in zip(self.names, self.images, strict=False):
            try:
                upload = self.uploads.read(im)
            except DemoError as e:
                raise DemoError(f"{name}: {e}") from None
            self.read.append(upload)
            notices += [f"{name}: {n}" for n in upload.notices]
        return notices

    def run(self, req: Request) -> Any:
        return req.model.cosegment([u.image for u in self.read], req.config, clusterer=req.clusterer())

    def wrap(self, req: Request, segs: Any) -> CosegDemoResult:
        seconds = req.seconds()
        notices = req.notices + (list(segs[0].notes) if segs else [])
        results = [DemoResult(seg=seg, backbone=req.backbone, requested=req.requested, notices=[],
                              original_size=u.original, seconds=seconds, depth=req.depth, waited=req.waited)
                   for seg, u in zip(segs, self.read, strict=False)]
        return CosegDemoResult(results=results, names=self.names, seconds=seconds, backbone=req.backbone,
                               notices=notices, waited=req.waited)
