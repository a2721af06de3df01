"""Reading videos: files (through ``imageio-ffmpeg``), GIFs, folders of frames and frames in memory.

:func:`read_frames` turns any video-like input into a lazy, bounded stream of ``(H, W, 3)`` uint8
frames of one size.

Bad input never hangs and never surfaces as a traceback: a missing, empty or corrupt file, a file
without a video stream or without frames raises :class:`~deepcut.errors.VideoLoadError` when the
reader is created; a stream that breaks half-way stops with a note. Long videos are capped at
``max_frames`` (with a note), frames larger than ``max_side`` are downscaled (by ffmpeg, before they
reach Python), and frames of changing size are resized to the size of the first one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

import numpy as np
from PIL import Image

from ...errors import ImageLoadError, VideoLoadError
from ...features.image import ImageLike, load_image
from ...utils.coerce import as_float, as_int
from ...utils.declared import check_declared, check_frame, is_gif, too_large
from .frames import (
    DEFAULT_FPS,
    FRAME_SUFFIXES,
    MAX_SIDE,
    VideoInfo,
    VideoLike,
    ffmpeg_error,
    ffmpeg_frames,
    fit_within,
    frame_files,
    gif_frames,
    open_ffmpeg,
    resize_frame,
)


class FrameReader:
    """The frames of a video, read lazily: every ``frame_stride``-th frame, at most ``max_frames``.

    Iterating yields ``(H, W, 3)`` uint8 RGB frames, all of the same size ``info.size``. Each
    iteration reads the source again from the start (a generator or iterator input can be read once).

    Attributes:
        info: :class:`VideoInfo` of the input.
        fps: frame rate of the frames yielded (``info.fps / frame_stride``).
        expected: number of frames an iteration will yield, if known beforehand.
        notes: what the user should know (downscaled, capped, resized, stopped early …); grows
            while iterating.
        frames_read: frames yielded by the last iteration.

    Raises:
        VideoLoadError: missing, empty or corrupt file, no video stream, no frames.
        ConfigError: ``max_frames`` or ``frame_stride`` below 1.
    """

    def __init__(self, video: VideoLike, max_frames: int = 300, frame_stride: int = 1,
                 max_side: int | None = MAX_SIDE, fps: float | None = None, max_pixels: int | None = None) -> None:
        max_frames = as_int("max_frames", max_frames, 1)
        self.max_pixels = None if max_pixels is None else as_int("max_pixels", max_pixels, 1)
        frame_stride = as_int("frame_stride", frame_stride, 1)
        if fps is not None:
            fps = as_float("fps", fps, positive=True)
        if max_side is not None:
            max_side = as_int("max_side", max_side, 1)
        self.max_frames = max_frames
        self.frame_stride = frame_stride
        self.max_side = max_side
        self.notes: list[str] = []
        self.frames_read = 0
        self._scale_to: tuple[int, int] | None = None  # ffmpeg-side downscaling
        self._source = video
        self._paths: list[Path] | None = None
        self._first: np.ndarray | None = None  # the first frame of a one-shot iterator
        self.info = self._probe(video, fps)
        self.fps = self.info.fps / self.frame_stride
        n_in = self.info.n_frames
        self.expected = None if n_in is None else min(self.max_frames, max(1, math.ceil(n_in / self.frame_stride)))
        if n_in is not None and math.ceil(n_in / self.frame_stride) > self.max_frames:
            self._note_cap(n_in)
        if self.info.size != self.info.source_size:
            sw, sh = self.info.source_size
            w, h = self.info.size
            self.notes.append(f"frames downscaled from {sw}x{sh} to {w}x{h} (longer side at most {max_side} px)")

    # -- probing ------------------------------------------------------------------------------------
    def _note_cap(self, n_in: int | None) -> None:
        if any(n.startswith("only the first") for n in self.notes):
            return
        every = f" (one frame in {self.frame_stride})" if self.frame_stride > 1 else ""
        total = f" of about {n_in}" if n_in else ""
        self.notes.append(f"only the first {self.max_frames} frames{every} are processed{total} "
                          f"(max_frames={self.max_frames})")

    def _probe(self, video: VideoLike, fps: float | None) -> VideoInfo:
        if isinstance(video, (str, os.PathLike)):
            path = Path(video)
            if not path.exists():
                raise VideoLoadError(f"{path}: no such file or folder")
            if path.is_dir():
                return self._probe_folder(path, fps)
            if path.stat().st_size == 0:
                raise VideoLoadError(f"{path}: the file is empty (0 bytes)")
            check_declared(path, self.max_pixels)  # whatever the file is called, before decoding
            if path.suffix.lower() == ".gif" or is_gif(path):
                return self._probe_gif(path, fps)
            return self._probe_ffmpeg(path, fps)
        if isinstance(video, (bytes, bytearray)):
            raise VideoLoadError("pass a video as a path or as a sequence of frames, not as raw bytes")
        if isinstance(video, np.ndarray):
            if video.ndim not in (3, 4) or video.shape[0] == 0:
                raise VideoLoadError(f"expected a (T, H, W[, 3|4]) array of frames, got shape {video.shape}")
            return self._probe_frames(video, len(video), fps)
        if isinstance(video, (Image.Image,)):
            return self._probe_frames([video], 1, fps)
        if isinstance(video, Sequence):
            if len(video) == 0:
                raise VideoLoadError("the sequence of frames is empty")
            return self._probe_frames(video, len(video), fps)
        if isinstance(video, Iterable):
            it = iter(video)
            try:
                first = self._load(next(it))
            except StopIteration:
                raise VideoLoadError("the iterable of frames is empty") from None
            self._first = first
            self._source = it
            return self._frames_info(first, None, fps, "frames", "<frames>")
        raise VideoLoadError(f"cannot read a video from a {type(video).__name__}")

    def _frames_info(self, first: np.ndarray, n: int | None, fps: float | None, kind: Literal["folder", "frames"],
                     source: str) -> VideoInfo:
        h, w = first.shape[:2]
        return VideoInfo(source=source, kind=kind, fps=float(fps or DEFAULT_FPS),
                         size=fit_within(w, h, self.max_side), source_size=(w, h), n_frames=n,
                         duration=None if n is None else n / float(fps or DEFAULT_FPS))

    def _probe_frames(self, frames, n: int, fps: float | None) -> VideoInfo:
        try:
            first = self._load(frames[0])
        except ImageLoadError as e:
            raise VideoLoadError(f"the first frame cannot be read: {e}") from None
        return self._frames_info(first, n, fps, "frames", "<frames>")

    def _probe_folder(self, path: Path, fps: float | None) -> VideoInfo:
        files = frame_files(path)
        if not files:
            raise VideoLoadError(f"{path}: the folder has no frame images ({', '.join(FRAME_SUFFIXES)})")
        first = None
        for f in files:  # the first readable frame fixes the size
            try:
                first = self._load(f)
                break
            except ImageLoadError:
                continue
        if first is None:
            raise VideoLoadError(f"{path}: none of the {len(files)} frame images can be read")
        self._paths = files
        return self._frames_info(first, len(files), fps, "folder", str(path))

    def _probe_gif(self, path: Path, fps: float | None) -> VideoInfo:
        import imageio.v3 as iio

        try:
            with iio.imopen(path, "r", plugin="pillow") as f:
                props = f.properties(index=...)  # type: ignore[arg-type]  # imageio: ... is every frame
                first = f.properties(index=0)  # (H, W) for a grey/palette GIF, (H, W, C) otherwise
                meta = f.metadata(index=0)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
            raise VideoLoadError(f"{path}: not a readable GIF ({e})") from None
        assert props.n_images is not None  # index=... counts the frames
        n = int(props.n_images)
        if n < 1:
            raise VideoLoadError(f"{path}: the GIF has no frames")
        h, w = int(first.shape[0]), int(first.shape[1])
        delay = float(meta.get("duration") or 0)  # milliseconds; 0 means "as fast as possible" = 10 fps in browsers
        rate = float(fps or (1000.0 / delay if delay > 0 else 10.0))
        return VideoInfo(source=str(path), kind="gif", fps=rate, size=fit_within(w, h, self.max_side),
                         source_size=(w, h), n_frames=n, duration=n / rate, codec="gif")

    def _probe_ffmpeg(self, path: Path, fps: float | None) -> VideoInfo:
        still = _still_image(path)
        if still is not None:  # FFmpeg would play it as one frame at 25 fps
            raise VideoLoadError(f"{path.name}: this file is a still image ({still}), not a video; segment it as an "
                                 f"image, or give a video, a GIF or a folder of frames")
        gen, meta = open_ffmpeg(path, max_pixels=self.max_pixels)
        try:
            w, h = (int(v) for v in meta.get("size") or (0, 0))
            if w < 1 or h < 1:
                raise VideoLoadError(f"{path}: the video stream has no frame size")
            if self.max_pixels is not None and w * h > self.max_pixels:
                raise VideoLoadError(f"{path.name}: {too_large(w, h, self.max_pixels, 'the video declares frames of')}")
            try:
                raw = next(gen)
            except StopIteration:
                raise VideoLoadError(f"{path}: the video has no frames") from None
            except (OSError, RuntimeError) as e:
                why = ffmpeg_error(path, e, self.max_pixels)
                raise VideoLoadError(f"{path}: the first frame cannot be decoded ({why})") from None
            if len(raw) != w * h * 3:
                raise VideoLoadError(f"{path}: the first frame cannot be decoded")
        finally:
            gen.close()
        rate = float(fps or meta.get("fps") or DEFAULT_FPS)
        if not math.isfinite(rate) or rate <= 0:
            rate = DEFAULT_FPS
        duration = meta.get("duration")
        duration = float(duration) if duration and math.isfinite(float(duration)) and duration > 0 else None
        n = max(1, round(duration * rate)) if duration else None
        size = fit_within(w, h, self.max_side)
        if size != (w, h):
            self._scale_to = size
        return VideoInfo(source=str(path), kind="video", fps=rate, size=size, source_size=(w, h), n_frames=n,
                         duration=duration, codec=meta.get("codec"))

    # -- reading ------------------------------------------------------------------------------------
    def _raw_frames(self) -> Iterator[np.ndarray]:
        """All input frames (before the stride), as decoded."""
        kind, src = self.info.kind, self._source
        if kind == "video":
            return ffmpeg_frames(Path(self.info.source), self._scale_to, self.max_pixels)
        if kind == "gif":
            return gif_frames(Path(self.info.source))
        if kind == "folder":
            return self._load_each(self._paths or [])
        assert not isinstance(src, (str, os.PathLike))  # a path is a video, a GIF or a folder
        if self._first is not None:  # a one-shot iterator: the first frame was read by the probe
            first, self._first = self._first, None
            return _chain_first(first, self._load_each(src))
        if isinstance(src, Image.Image):
            return self._load_each([src])
        return self._load_each(src)

    def _load_each(self, items: Iterable[ImageLike]) -> Iterator[np.ndarray]:
        """Frames read with :func:`load_image`; unreadable ones are skipped with a note."""
        bad = 0
        for item in items:
            try:
                yield self._load(item)
            except ImageLoadError as e:
                bad += 1
                if bad == 1:
                    self.notes.append(f"skipped an unreadable frame: {e}")
        if bad > 1:
            self.notes.append(f"skipped {bad} unreadable frames in total")

    def _load(self, item: ImageLike) -> np.ndarray:
        """One frame, its size checked against ``max_pixels`` (from the header for files) first."""
        check_frame(item, self.max_pixels)
        return load_image(item)

    def _note_short(self, decoded: int) -> None:
        """Note a file that ended well before the frame count its container announces (a truncated or
        damaged file: ffmpeg stops without an error)."""
        expected = self.info.n_frames
        if self.info.kind not in ("video", "gif") or not expected or not self.frames_read:
            return
        if decoded < expected - max(2, 0.05 * expected):
            self.notes.append(f"stopped after {decoded} of the {expected} frames the file announces: the file "
                              f"seems truncated or damaged, the rest of the video is missing")

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._iterate()

    def _iterate(self) -> Iterator[np.ndarray]:
        self.frames_read = 0
        size = self.info.size
        resized = False
        raw = self._raw_frames()
        index = -1
        try:
            while True:
                try:
                    frame = next(raw)
                except StopIteration:
                    self._note_short(index + 1)
                    break
                except (OSError, RuntimeError, ValueError) as e:
                    first_line = (str(e).splitlines() or [type(e).__name__])[0][:120]
                    self.notes.append(f"stopped after {self.frames_read} frames: the rest of the video cannot "
                                      f"be decoded ({first_line})")
                    break
                index += 1
                if index % self.frame_stride:
                    continue
                if self.frames_read >= self.max_frames:
                    self._note_cap(self.info.n_frames)
                    break
                fh, fw = frame.shape[:2]
                if (fw, fh) != size:
                    if (fw, fh) != self.info.source_size and not resized:
                        resized = True
                        self.notes.append(f"frames of changing size were resized to {size[0]}x{size[1]}")
                    frame = resize_frame(frame, size)
                self.frames_read += 1
                yield frame
        finally:
            close = getattr(raw, "close", None)
            if close is not None:
                close()
        if self.frames_read == 0:
            raise VideoLoadError(f"{self.info.source}: no frame could be read")


def _still_image(path: Path) -> str | None:
    """The format of ``path`` if it is a still image (one frame, whatever its name), else None."""
    try:
        with Image.open(path) as img:
            return None if int(getattr(img, "n_frames", 1)) > 1 else str(img.format or "image")
    except Exception:  # not an image PIL knows: a video, or nothing readable (FFmpeg says which)
        return None


def _chain_first(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def read_frames(video: VideoLike, max_frames: int = 300, frame_stride: int = 1, max_side: int | None = MAX_SIDE,
                fps: float | None = None, max_pixels: int | None = None) -> FrameReader:
    """Open a video for reading: a lazy, bounded stream of ``(H, W, 3)`` uint8 frames of one size.

    Args:
        video: path of a video file (mp4, webm, mov, mkv, avi … anything ffmpeg reads), of a GIF,
            or of a folder of frame images (natural order); or frames in memory: a ``(T, H, W, 3)``
            array, or a sequence / iterable of images (arrays, PIL images, paths).
        max_frames: stop after this many frames (a note says so when the input is longer).
        frame_stride: keep every ``frame_stride``-th frame (the output fps is divided by it).
        max_side: frames whose longer side exceeds it are downscaled (None: never).
        fps: frame rate to assume (default: the file's, or 24 for folders and sequences).
        max_pixels: refuse frames larger than this (width × height), checked before they are decoded:
            from the file's header (a GIF's screen and frames, every TIFF page, an image whatever
            its name) or ffmpeg's stream information, and ffmpeg refuses larger frames itself.

    Returns:
        A :class:`FrameReader` (iterable; ``.info``, ``.fps``, ``.expected``, ``.notes``).

    Raises:
        VideoLoadError: missing, empty or corrupt file, no video stream, no frames, or frames over
            ``max_pixels``.
    """
    return FrameReader(video, max_frames=max_frames, frame_stride=frame_stride, max_side=max_side, fps=fps,
                       max_pixels=max_pixels)


def probe(video: VideoLike, max_side: int | None = MAX_SIDE) -> VideoInfo:
    """:class:`VideoInfo` of a video (frame rate, size, frame count, codec) without reading it all."""
    return FrameReader(video, max_frames=1, max_side=max_side).info
