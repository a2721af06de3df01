"""Reading and writing videos: files (through ``imageio-ffmpeg``), GIFs and folders of frames.

:func:`read_frames` turns any video-like input into a lazy, bounded stream of ``(H, W, 3)`` uint8
frames of one size; :func:`write_video` writes frames to an MP4 (H.264), WebM or GIF file.

Bad input never hangs and never surfaces as a traceback: a missing, empty or corrupt file, a file
without a video stream or without frames raises :class:`~deepcut.errors.VideoLoadError` when the
reader is created; a stream that breaks half-way stops with a note. Long videos are capped at
``max_frames`` (with a note), frames larger than ``max_side`` are downscaled (by ffmpeg, before they
reach Python), and frames of changing size are resized to the size of the first one.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence, Union

import numpy as np
from PIL import Image

from .errors import ConfigError, DeepCutError, ImageLoadError, VideoLoadError
from .utils.image import ImageLike, load_image

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


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder of frames, in natural order (``2.png`` before ``10.png``)."""
    folder = Path(folder)
    files = [f for f in folder.iterdir()
             if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=_natural_key)


def fit_within(width: int, height: int, max_side: int | None, even: bool = False) -> tuple[int, int]:
    """``(width, height)`` scaled down (never up) so that the longer side is at most ``max_side``,
    keeping the aspect ratio; ``even`` rounds both to even numbers (for H.264)."""
    scale = 1.0 if not max_side or max(width, height) <= max_side else max_side / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if even:
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 resized to ``size = (width, height)`` (area-like for reductions)."""
    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    pil = Image.fromarray(frame)
    factor = min(frame.shape[1] // size[0], frame.shape[0] // size[1])
    if factor >= 2:
        pil = pil.reduce(factor)
    return np.asarray(pil.resize(size, Image.BICUBIC))


def _ffmpeg_error(path: Path, err: BaseException) -> VideoLoadError:
    """A readable :class:`VideoLoadError` from imageio-ffmpeg's error text (the ffmpeg log)."""
    text = str(err)
    low = text.lower()
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


def _open_ffmpeg(path: Path, size: tuple[int, int] | None = None) -> tuple[Iterator[bytes], dict]:
    """Start ffmpeg on ``path``: ``(frame byte generator, metadata)``; ``size`` scales the frames."""
    import imageio_ffmpeg

    params = ["-vf", f"scale={size[0]}:{size[1]}:flags=area"] if size else None
    gen = imageio_ffmpeg.read_frames(str(path), output_params=params)
    try:
        meta = next(gen)
    except StopIteration:
        raise VideoLoadError(f"{path}: ffmpeg returned no information about the file") from None
    except (OSError, RuntimeError, ValueError) as e:
        gen.close()
        raise _ffmpeg_error(path, e) from None
    return gen, meta


def _ffmpeg_frames(path: Path, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    gen, meta = _open_ffmpeg(path, size)
    w, h = meta["size"]
    try:
        for raw in gen:
            if len(raw) != w * h * 3:
                break
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy()
    finally:
        gen.close()


def _gif_frames(path: Path) -> Iterator[np.ndarray]:
    import imageio.v3 as iio

    with iio.imopen(path, "r", plugin="pillow") as f:
        for frame in f.iter(mode="RGB"):
            yield np.ascontiguousarray(frame)


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
                 max_side: int | None = MAX_SIDE, fps: float | None = None) -> None:
        if int(max_frames) < 1:
            raise ConfigError(f"max_frames must be at least 1, got {max_frames}")
        if int(frame_stride) < 1:
            raise ConfigError(f"frame_stride must be at least 1, got {frame_stride}")
        if fps is not None and not fps > 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        self.max_frames = int(max_frames)
        self.frame_stride = int(frame_stride)
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
        every = f", every {self.frame_stride}th frame" if self.frame_stride > 1 else ""
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
            if path.suffix.lower() == ".gif":
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
                first = load_image(next(it))
            except StopIteration:
                raise VideoLoadError("the iterable of frames is empty") from None
            self._first = first
            self._source = it
            return self._frames_info(first, None, fps, "frames", "<frames>")
        raise VideoLoadError(f"cannot read a video from a {type(video).__name__}")

    def _frames_info(self, first: np.ndarray, n: int | None, fps: float | None, kind: str, source: str) -> VideoInfo:
        h, w = first.shape[:2]
        return VideoInfo(source=source, kind=kind, fps=float(fps or DEFAULT_FPS),
                         size=fit_within(w, h, self.max_side), source_size=(w, h), n_frames=n,
                         duration=None if n is None else n / float(fps or DEFAULT_FPS))

    def _probe_frames(self, frames, n: int, fps: float | None) -> VideoInfo:
        try:
            first = load_image(frames[0])
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
                first = load_image(f)
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
                props = f.properties(index=...)
                meta = f.metadata(index=0)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
            raise VideoLoadError(f"{path}: not a readable GIF ({e})") from None
        n = int(props.n_images)
        if n < 1:
            raise VideoLoadError(f"{path}: the GIF has no frames")
        h, w = int(props.shape[-3]), int(props.shape[-2])
        delay = float(meta.get("duration") or 0)  # milliseconds; 0 means "as fast as possible" = 10 fps in browsers
        rate = float(fps or (1000.0 / delay if delay > 0 else 10.0))
        return VideoInfo(source=str(path), kind="gif", fps=rate, size=fit_within(w, h, self.max_side),
                         source_size=(w, h), n_frames=n, duration=n / rate, codec="gif")

    def _probe_ffmpeg(self, path: Path, fps: float | None) -> VideoInfo:
        gen, meta = _open_ffmpeg(path)
        try:
            w, h = (int(v) for v in meta.get("size") or (0, 0))
            if w < 1 or h < 1:
                raise VideoLoadError(f"{path}: the video stream has no frame size")
            try:
                raw = next(gen)
            except StopIteration:
                raise VideoLoadError(f"{path}: the video has no frames") from None
            except (OSError, RuntimeError) as e:
                raise VideoLoadError(f"{path}: the first frame cannot be decoded ({_ffmpeg_error(path, e)})") from None
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
            return _ffmpeg_frames(Path(self.info.source), self._scale_to)
        if kind == "gif":
            return _gif_frames(Path(self.info.source))
        if kind == "folder":
            return self._load_each(self._paths or [])
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
                yield load_image(item)
            except ImageLoadError as e:
                bad += 1
                if bad == 1:
                    self.notes.append(f"skipped an unreadable frame: {e}")
        if bad > 1:
            self.notes.append(f"skipped {bad} unreadable frames in total")

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
                    frame = _resize(frame, size)
                self.frames_read += 1
                yield frame
        finally:
            close = getattr(raw, "close", None)
            if close is not None:
                close()
        if self.frames_read == 0:
            raise VideoLoadError(f"{self.info.source}: no frame could be read")


def _chain_first(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def read_frames(video: VideoLike, max_frames: int = 300, frame_stride: int = 1, max_side: int | None = MAX_SIDE,
                fps: float | None = None) -> FrameReader:
    """Open a video for reading: a lazy, bounded stream of ``(H, W, 3)`` uint8 frames of one size.

    Args:
        video: path of a video file (mp4, webm, mov, mkv, avi … anything ffmpeg reads), of a GIF,
            or of a folder of frame images (natural order); or frames in memory: a ``(T, H, W, 3)``
            array, or a sequence / iterable of images (arrays, PIL images, paths).
        max_frames: stop after this many frames (a note says so when the input is longer).
        frame_stride: keep every ``frame_stride``-th frame (the output fps is divided by it).
        max_side: frames whose longer side exceeds it are downscaled (None: never).
        fps: frame rate to assume (default: the file's, or 24 for folders and sequences).

    Returns:
        A :class:`FrameReader` (iterable; ``.info``, ``.fps``, ``.expected``, ``.notes``).

    Raises:
        VideoLoadError: missing, empty or corrupt file, no video stream, or no frames.
    """
    return FrameReader(video, max_frames=max_frames, frame_stride=frame_stride, max_side=max_side, fps=fps)


def probe(video: VideoLike, max_side: int | None = MAX_SIDE) -> VideoInfo:
    """:class:`VideoInfo` of a video (frame rate, size, frame count, codec) without reading it all."""
    return FrameReader(video, max_frames=1, max_side=max_side).info


def _writer_settings(suffix: str, quality: int) -> dict:
    if suffix in (".mp4", ".m4v", ".mov", ".mkv"):
        params = ["-preset", "medium"]
        if suffix != ".mkv":
            params += ["-movflags", "+faststart"]  # playable while downloading (browsers)
        return dict(codec="libx264", pix_fmt_out="yuv420p", quality=quality, output_params=params)
    if suffix == ".webm":
        return dict(codec="libvpx-vp9", pix_fmt_out="yuv420p", quality=None,
                    output_params=["-crf", str(int(round(63 - 5.5 * quality))), "-b:v", "0"])
    if suffix == ".gif":
        # One palette per frame (no buffering of the whole video) and every frame kept.
        palette = "split[a][b];[a]palettegen=stats_mode=single[p];[b][p]paletteuse=new=1"
        return dict(codec="gif", pix_fmt_out="pal8", quality=None,
                    output_params=["-filter_complex", palette, "-loop", "0"])
    raise ConfigError(f"cannot write a video as {suffix or 'a file without suffix'!r}; "
                      f"use one of {', '.join(WRITE_SUFFIXES)}")


def write_video(frames: Iterable[np.ndarray | Image.Image], path: str | os.PathLike, fps: float,
                quality: int = 6) -> int:
    """Write frames to a video file; the format follows the suffix: MP4/MOV/MKV (H.264), WebM (VP9), GIF.

    Every frame becomes exactly one frame of the file. The first frame fixes the size (others are
    resized to it); H.264 and VP9 need even sides, so an odd last row or column is cropped, which
    keeps the aspect ratio. The file is written under a temporary name and renamed when complete,
    so a failure never leaves a truncated video behind.

    Args:
        frames: ``(H, W, 3)`` uint8 arrays or PIL images, consumed lazily.
        path: output file (``.mp4``, ``.m4v``, ``.mov``, ``.mkv``, ``.webm`` or ``.gif``).
        fps: frames per second (GIF stores delays in 1/100 s, so it is rounded there).
        quality: 0 (smallest) … 10 (best) for H.264 / VP9.

    Returns:
        The number of frames written.
    """
    import imageio_ffmpeg

    path = Path(path)
    suffix = path.suffix.lower()
    settings = _writer_settings(suffix, int(quality))
    if not fps or not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{suffix}")
    writer = None
    size: tuple[int, int] | None = None
    count = 0
    try:
        for frame in frames:
            arr = load_image(frame)
            if size is None:
                h, w = arr.shape[:2]
                size = (w, h) if suffix == ".gif" else fit_within(w, h, None, even=True)
                writer = imageio_ffmpeg.write_frames(str(tmp), size, fps=float(fps), macro_block_size=1,
                                                     ffmpeg_log_level="error", **settings)
                writer.send(None)
            if (arr.shape[1], arr.shape[0]) != size:
                if abs(arr.shape[1] - size[0]) <= 1 and abs(arr.shape[0] - size[1]) <= 1:
                    arr = arr[: size[1], : size[0]]
                else:
                    arr = _resize(arr, size)
            writer.send(np.ascontiguousarray(arr))
            count += 1
        if writer is None:
            raise DeepCutError(f"{path}: no frames to write")
        writer.close()
        writer = None
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - already failing; the original error matters
                pass
        tmp.unlink(missing_ok=True)
        raise
    return count
