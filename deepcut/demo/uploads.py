"""Uploads: decode and validate what a visitor sent, downscale big images, remember decoded files."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from ..errors import ImageLoadError
from ..features.image import ImageLike, load_image
from ..utils.declared import declared_sizes
from .errors import DemoError, hide_path

#: Uploads whose longer side exceeds this many pixels are downscaled before anything else.
DEFAULT_MAX_SIDE = 1600


class Upload(NamedTuple):
    """A decoded upload (unpacks as ``image, original, notices``).

    Attributes:
        image: ``(H, W, 3)`` uint8, downscaled if it was too big.
        original: ``(H, W)`` of the upload as sent.
        notices: what the visitor should know (the downscaling).
    """

    image: np.ndarray
    original: tuple[int, int]
    notices: list[str]


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 shrunk (aspect kept) so that its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pil = Image.fromarray(image)
    factor = min(w // size[0], h // size[1])
    if factor >= 2:
        pil = pil.reduce(factor)
    return np.asarray(pil.resize(size, Image.Resampling.LANCZOS))


def file_name(upload: object, index: int) -> str:
    """What to call an upload in messages: its file name, or ``image <index + 1>``."""
    return Path(str(upload)).name if isinstance(upload, (str, os.PathLike)) else f"image {index + 1}"


def check_bytes(path: object, max_bytes: int | None) -> None:
    """Refuse a file (path) of more than ``max_bytes`` bytes, unread.

    Raises:
        DemoError: the file is too big.
    """
    if max_bytes is None or not isinstance(path, (str, os.PathLike)):
        return
    try:
        size = os.path.getsize(path)
    except OSError:
        return
    if size > max_bytes:
        raise DemoError(f"This file is {size / 1024 ** 2:.1f} MB; this server accepts files up to "
                        f"{max_bytes / 1024 ** 2:g} MB.")


def check_size(image: ImageLike, max_pixels: int | None, max_bytes: int | None) -> None:
    """Refuse a file (path or bytes) of more than ``max_bytes`` bytes, or whose header declares more
    than ``max_pixels`` pixels, before anything is decoded (a small PNG may declare 12000² pixels, a
    GIF a 13000² screen or frames beyond it, a TIFF a huge later page), whatever the file is called.

    Raises:
        DemoError: the file is too big (a file PIL cannot identify passes: decoding reports it).
    """
    if isinstance(image, (bytes, bytearray)):
        size = len(image)
    elif isinstance(image, (str, os.PathLike)):
        try:
            size = os.path.getsize(image)
        except OSError:
            return
    else:
        return
    if max_bytes is not None and size > max_bytes:
        raise DemoError(f"This file is {size / 1024 ** 2:.1f} MB; this server accepts images up to "
                        f"{max_bytes / 1024 ** 2:g} MB.")
    if max_pixels is None:
        return
    for w, h in declared_sizes(image) or []:  # reads the headers only
        if w * h > max_pixels:
            mega = f"{w * h / 1e6:.3g} megapixels"
            shown = f"{w}×{h} pixels ({mega})" if h > 1 else mega
            raise DemoError(f"This image is {shown}; this server accepts "
                            f"up to {max_pixels / 1e6:g} megapixels. Please downscale it first.")


class UploadReader:
    """Decodes uploads, thread safe; decoded files are memoised by path, modification time and size
    (so moving a slider does not decode the upload again).

    Args:
        max_side: uploads are downscaled to this longer side.
        memo: how many decoded files are kept.
        max_pixels: larger uploads (width × height from the file's header) are refused undecoded.
        max_bytes: larger files are refused unread.
    """

    def __init__(self, max_side: int = DEFAULT_MAX_SIDE, memo: int = 8, max_pixels: int | None = None,
                 max_bytes: int | None = None) -> None:
        self.max_side = int(max_side)
        self.max_pixels, self.max_bytes = max_pixels, max_bytes
        self.memo = max(1, int(memo))
        self._decoded: OrderedDict[tuple, Upload] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, image: ImageLike | None) -> Upload:
        """Decode and validate an upload (a path, PIL image, array or bytes).

        Raises:
            DemoError: nothing uploaded, or the file is not a readable image.
        """
        if image is None:
            raise DemoError("Please upload an image or pick one of the examples first.")
        key = self._key(image)
        if key is not None:
            with self._lock:
                hit = self._decoded.get(key)
                if hit is not None:
                    self._decoded.move_to_end(key)
                    return hit
        out = self._decode(image)
        if key is not None:
            with self._lock:
                self._decoded[key] = out
                while len(self._decoded) > self.memo:
                    self._decoded.popitem(last=False)
        return out

    def _key(self, image: ImageLike) -> tuple | None:
        if not isinstance(image, (str, os.PathLike)):
            return None
        try:
            st = os.stat(image)
        except OSError:
            return None
        return (str(image), st.st_mtime_ns, st.st_size, self.max_side)

    def _decode(self, image: ImageLike) -> Upload:
        check_size(image, self.max_pixels, self.max_bytes)
        try:
            img = load_image(image)
        except ImageLoadError as e:
            shown = hide_path(str(e), image) if isinstance(image, (str, os.PathLike)) else str(e)
            raise DemoError(f"Could not read this file as an image: {shown}") from None
        original = (int(img.shape[0]), int(img.shape[1]))
        notices = []
        if max(original) > self.max_side:
            img = downscale(img, self.max_side)
            notices.append(f"the {original[1]}×{original[0]} image was downscaled to "
                           f"{img.shape[1]}×{img.shape[0]} (max side {self.max_side} px)")
        return Upload(img, original, notices)
