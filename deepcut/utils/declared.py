"""What a file declares about its frames' size, read from its header before anything is decoded.

A 1.4 KB GIF may declare a 13000×13000 screen, a PNG 16000² pixels, a Matroska file frames of any size:
decoding them takes gigabytes. :func:`check_declared` reads only the headers (the GIF's screen and every
frame's rectangle, every page of a TIFF, the canvas of any other image Pillow knows, whatever the
file is called) and refuses a file whose frames would exceed ``max_pixels``; files Pillow does not
know are videos, whose declared size :class:`~deepcut.tasks.video.FrameReader` checks from ffmpeg's stream
information (and ffmpeg itself refuses larger frames: ``-max_pixels``).
"""

from __future__ import annotations

import io
import os
import re
import struct
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image

from ..errors import ImageLoadError, VideoLoadError

#: At most this many GIF image descriptors or TIFF pages are read for their size.
MAX_DESCRIPTORS = 100_000
#: Formats whose frames (pages) may each have their own size, read one header at a time.
PAGED = ("TIFF", "MPO")


Source = Union[str, os.PathLike, bytes, bytearray]


def _open(source: Source) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")


def is_gif(source: Source) -> bool:
    """Whether a file (path or bytes) starts like a GIF (``GIF87a`` / ``GIF89a``), whatever its name."""
    try:
        with _open(source) as f:
            return f.read(6) in (b"GIF87a", b"GIF89a")
    except OSError:
        return False


def _skip_sub_blocks(f: BinaryIO) -> bool:
    """Skip GIF data sub-blocks up to their terminator; False at the end of the file."""
    while True:
        size = f.read(1)
        if not size:
            return False
        if size[0] == 0:
            return True
        f.seek(size[0], os.SEEK_CUR)


def gif_extent(path: Source) -> tuple[int, int, int]:
    """``(width, height, frames)`` of a GIF: the logical screen grown to every frame's rectangle (the
    canvas a decoder composes on), from the block structure alone (no image data is decompressed).

    Raises:
        VideoLoadError: not a GIF.
    """
    with _open(path) as f:
        head = f.read(13)
        if len(head) < 13 or head[:6] not in (b"GIF87a", b"GIF89a"):
            raise VideoLoadError("not a GIF")
        width, height, packed = struct.unpack("<HHB", head[6:11])
        if packed & 0x80:
            f.seek(3 << ((packed & 7) + 1), os.SEEK_CUR)
        frames = 0
        while frames < MAX_DESCRIPTORS:
            kind = f.read(1)
            if kind == b"\x2c":  # an image descriptor
                desc = f.read(9)
                if len(desc) < 9:
                    break
                left, top, w, h, packed = struct.unpack("<HHHHB", desc)
                width, height, frames = max(width, left + w), max(height, top + h), frames + 1
                if packed & 0x80:
                    f.seek(3 << ((packed & 7) + 1), os.SEEK_CUR)
                f.read(1)  # the LZW code size
                if not _skip_sub_blocks(f):
                    break
            elif kind == b"\x21":  # an extension: its label, then sub-blocks
                f.read(1)
                if not _skip_sub_blocks(f):
                    break
            else:  # the trailer, the end of the file, or garbage: decoders stop there too
                break
    return width, height, frames


def declared_sizes(path: Source, most: int = MAX_DESCRIPTORS) -> list[tuple[int, int]] | None:
    """The ``(width, height)`` a file's (path or bytes) header declares for its frames (one entry per size
    that matters: the GIF canvas, each TIFF/MPO page up to ``most``, the canvas of any other image), or
    None if Pillow does not know the file (a video container, or not an image at all)."""
    try:
        if is_gif(path):
            w, h, _ = gif_extent(path)
            return [(w, h)]
        with _open(path) as f, Image.open(f) as im:  # reads the header only
            sizes = [tuple(im.size)]
            if im.format in PAGED:
                for page in range(1, min(int(getattr(im, "n_frames", 1)), most)):
                    im.seek(page)  # reads that page's header (IFD), not its pixels
                    sizes.append(tuple(im.size))
            return sizes  # type: ignore[return-value]  # tuple(im.size): (width, height) pairs
    except Image.DecompressionBombError as e:  # over twice Pillow's limit: the size only as a count
        found = re.search(r"\((\d+) pixels\)", str(e))
        return [(int(found.group(1)) if found else 2 * int(Image.MAX_IMAGE_PIXELS or 1) + 1, 1)]
    except (VideoLoadError, OSError, SyntaxError, ValueError, EOFError, struct.error):
        return None


def too_large(width: int, height: int, max_pixels: int, what: str) -> str:
    """The message for ``what`` of ``width`` × ``height`` pixels over ``max_pixels`` (a height of 1: a count
    of pixels, as Pillow's limit reports it)."""
    mega = f"{width * height / 1e6:.3g} megapixels"
    size = f"{width}×{height} pixels ({mega})" if height > 1 else mega
    return (f"{what} {size}; at most "
            f"{max_pixels / 1e6:g} megapixels are accepted here (max_pixels). Please downscale it first.")


def check_declared(path: Source, max_pixels: int | None, error: type = VideoLoadError, name: str | None = None
                   ) -> None:
    """Refuse ``path`` (a path or bytes; raising ``error`` with ``name``, default the file's name) if any
    frame its header declares exceeds ``max_pixels`` (``None``: no limit); files Pillow does not know
    pass (see the module doc)."""
    if max_pixels is None:
        return
    for w, h in declared_sizes(path) or []:
        if w * h > max_pixels:
            name = name or (Path(path).name if isinstance(path, (str, os.PathLike)) else "the file")
            raise error(f"{name}: {too_large(w, h, max_pixels, 'the file declares frames of')}")


def check_frame(item: object, max_pixels: int | None) -> None:
    """Refuse a frame given in memory or as a file (:class:`ImageLoadError`) above ``max_pixels``;
    a path or bytes are checked from the header, before they are decoded."""
    if max_pixels is None:
        return
    if isinstance(item, np.ndarray) and item.ndim >= 2:
        h, w = item.shape[:2]
    elif isinstance(item, Image.Image):
        w, h = item.size
    elif isinstance(item, (str, os.PathLike, bytes, bytearray)):
        check_declared(item, max_pixels, ImageLoadError)
        return
    else:
        return
    if w * h > max_pixels:
        raise ImageLoadError(too_large(w, h, max_pixels, "a frame of"))
