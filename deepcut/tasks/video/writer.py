"""Writing videos: MP4 / MOV / MKV (H.264), WebM (VP9) and GIF through ``imageio-ffmpeg``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from ...errors import ConfigError, DeepCutError
from ...features.image import load_image
from ...utils.files import atomic_path
from .frames import WRITE_SUFFIXES, fit_within, resize_frame


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
    keeps the aspect ratio (a side of 1 pixel is stretched to 2). The file is written under a temporary
    name and renamed when complete, so a failure never leaves a truncated video behind.

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
    writer: Any = None  # imageio_ffmpeg's frame writer (a generator; the package has no types)
    size: tuple[int, int] | None = None
    count = 0
    with atomic_path(path, suffix=f".partial{suffix}") as tmp:
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
                    if 0 <= arr.shape[1] - size[0] <= 1 and 0 <= arr.shape[0] - size[1] <= 1:  # an odd side
                        arr = arr[: size[1], : size[0]]
                    else:
                        arr = resize_frame(arr, size)
                writer.send(np.ascontiguousarray(arr))
                count += 1
            if writer is None:
                raise DeepCutError(f"{path}: no frames to write")
            writer.close()
            writer = None
        finally:
            if writer is not None:
                try:
                    writer.close()
                except Exception:  # noqa: BLE001 - already failing; the original error matters
                    pass
    return count
