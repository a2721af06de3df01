"""Video input primitives: what a video is (:class:`VideoInfo`), folders of frames, resizing, and
the ffmpeg / GIF frame sources that :mod:`deepcut.tasks.video.reader` builds on."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Generator, Iterable, Iterator, Literal, Sequence, Union

import numpy as np
from PIL import Image

from ...errors import VideoLoadError
from ...features.image import ImageLike
from ...utils.declared import too_large

#: Suffixes treated as videos when a folder is listed (any file ffmpeg can read works as a path).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ogv", ".wmv", ".flv", ".ts")
#: Image suffixes that make up a folder of frames.
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
#: Output formats of :func:`write_video`.
WRITE_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".gif")
#: Frame rate assumed for folders and sequences of frames.
DEFAULT_FPS = 24.0
#: Frames whose longer side is larger are downscaled to it (the ViT sees ~280 px anyway).
MAX_SIDE = 1280

VideoLike = Union[str, os.PathLike, np.ndarray, Sequence[ImageLike], Iterable[ImageLike]]


class _SizeNoticeFilter(logging.Filter):
    """Drop imageio-ffmpeg's warning that the frames are read at another size: we ask for that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "different from the source frame size" not in record.getMessage()


_ffmpeg_logger = logging.getLogger("imageio_ffmpeg")
if not any(isinstance(f, _SizeNoticeFilter) for f in _ffmpeg_logger.filters):
    _ffmpeg_logger.addFilter(_SizeNoticeFilter())


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before its frames are read.

    Attributes:
        source: the path, or ``"<frames>"`` for frames given in memory.
        kind: ``"video"`` (a file read by ffmpeg), ``"gif"``, ``"folder"`` (of frame images) or
            ``"frames"`` (a sequence in memory).
        fps: input frames per second (:data:`DEFAULT_FPS` for folders and sequences).
        size: ``(width, height)`` of the frames as they are delivered (after downscaling).
        source_size: ``(width, height)`` of the frames in the source.
        n_frames: number of input frames, exact or estimated from the duration; None if unknown.
        duration: seconds, if known.
        codec: the video codec, for files read by ffmpeg.
    """

    source: str
    kind: Literal["video", "gif", "folder", "frames"]
    fps: float
    size: tuple[int, int]
    source_size: tuple[int, int]
    n_frames: int | None = None
    duration: float | None = None
    codec: str | None = None


def natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder of frames, in natural order (``2.png`` before ``10.png``)."""
    folder = Path(folder)
    files = [f for f in folder.iterdir()
             if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=natural_key)


def fit_within(width: int, height: int, max_side: int | None, even: bool = False) -> tuple[int, int]:
    """``(width, height)`` scaled down (never up) so that the longer side is at most ``max_side``,
    keeping the aspect ratio; ``even`` rounds both to even numbers (for H.264)."""
    scale = 1.0 if not max_side or max(width, height) <= max_side else max_side / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if even:
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 resized to ``size = (width, height)`` (area-like for reductions)."""
    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    pil = Image.fromarray(frame)
    factor = min(frame.shape[1] // size[0], frame.shape[0] // size[1])
    if factor >= 2:
        pil = pil.reduce(factor)
    return np.asarray(pil.resize(size, Image.Resampling.BICUBIC))


def ffmpeg_error(path: Path, err: BaseException, max_pixels: int | None = None) -> VideoLoadError:
    """A readable :class:`VideoLoadError` from imageio-ffmpeg's error text (the ffmpeg log); ``max_pixels``:
    the cap to name when ffmpeg refused a frame over its ``-max_pixels``."""
    text = str(err)
    low = text.lower()
    over = re.search(r"Picture size (\d+)x(\d+) exceeds specified max pixel count (\d+)", text)
    if over:  # ffmpeg's -max_pixels (FrameReader's max_pixels) refused a frame
        w, h, most = (int(v) for v in over.groups())
        return VideoLoadError(f"{path.name}: {too_large(w, h, max_pixels or most, 'the video has frames of')}")
    if "does not contain any stream" in low or "matches no streams" in low or "no video stream" in low:
        return VideoLoadError(f"{path}: the file has no video stream (an audio file?)")
    if "no such file" in low:
        return VideoLoadError(f"{path}: no such file")
    if "permission denied" in low:
        return VideoLoadError(f"{path}: permission denied")
    lines = [ln.strip() for ln in text.splitlines()
             if ("error" in ln.lower() or "invalid" in ln.lower()) and "configuration:" not in ln]
    detail = f" ({lines[-1]})" if lines else ""
    return VideoLoadError(f"{path}: not a video file, or the file is corrupt or truncated{detail}")


def open_ffmpeg(path: Path, size: tuple[int, int] | None = None,
                max_pixels: int | None = None) -> tuple[Generator[bytes, None, None], dict]:
    """Start ffmpeg on ``path``: ``(frame byte generator, metadata)``; ``size`` scales the frames;
    ``max_pixels``: ffmpeg's decoders refuse larger frames (``-max_pixels``), whatever the container says."""
    import imageio_ffmpeg

    params = ["-vf", f"scale={size[0]}:{size[1]}:flags=area"] if size else None
    inputs = ["-max_pixels", str(decoder_pixels(max_pixels))] if max_pixels else None
    gen = imageio_ffmpeg.read_frames(str(path), input_params=inputs, output_params=params)
    try:
        meta = next(gen)
    except StopIteration:
        raise VideoLoadError(f"{path}: ffmpeg returned no information about the file") from None
    except (OSError, RuntimeError, ValueError) as e:
        gen.close()
        raise ffmpeg_error(path, e, max_pixels) from None
    return gen, meta


def decoder_pixels(max_pixels: int) -> int:
    """ffmpeg's ``-max_pixels`` for frames of at most ``max_pixels`` declared pixels: decoders check their
    coded size (aligned to 16 or 64 pixels, so above the declared one), hence a margin."""
    return int(max_pixels * 1.25) + 256 * 256


def ffmpeg_frames(path: Path, size: tuple[int, int] | None, max_pixels: int | None = None) -> Iterator[np.ndarray]:
    gen, meta = open_ffmpeg(path, size, max_pixels)
    w, h = meta["size"]
    try:
        for raw in gen:
            if len(raw) != w * h * 3:
                break
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy()
    finally:
        gen.close()


def gif_frames(path: Path) -> Iterator[np.ndarray]:
    import imageio.v3 as iio

    with iio.imopen(path, "r", plugin="pillow") as f:
        for frame in f.iter(mode="RGB"):  # type: ignore[call-arg]  # the pillow plugin's iter takes a mode
            yield np.ascontiguousarray(frame)
