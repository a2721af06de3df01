"""Reading images of any common kind into ``(H, W, 3)`` uint8 RGB arrays, and resizing them for a ViT."""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageLoadError

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]

#: Images larger than this (in pixels) are refused before decoding (PIL's own bomb limit is lower
#: than some real panoramas, so we use our own, explicit one).
MAX_PIXELS = 250_000_000


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale an integer or float array to uint8 (16-bit and float images included).

    The scale follows the data type, as an image viewer's does: 16-bit integers (``uint16``, ``int16``, a 16-bit
    PNG or TIFF) span 0-65535 whatever their content; floats span 0-1 when none is above 1, else 0-255 (and are
    scaled down to fit above 255); other integers span 0-255 (0-65535 when some are above 255, their maximum
    above that).

    Raises:
        ImageLoadError: NaN, infinite or negative values (e.g. an image already normalised for a network).
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ImageLoadError(f"unsupported array dtype {arr.dtype}")
    values = arr.astype(np.float64)
    if values.size and not np.isfinite(values).all():
        raise ImageLoadError("the image has NaN or infinite values")
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if lo < 0:
        raise ImageLoadError(f"pixel values must be 0 or more, got {lo:g}: pass the image as read (uint8, uint16, "
                             f"or floats in 0-1 or 0-255), not normalised for a network")
    if np.issubdtype(arr.dtype, np.floating):
        full = 1.0 if hi <= 1.0 else max(hi, 255.0)
    elif arr.dtype in (np.uint16, np.int16):
        full = 65535.0
    else:
        full = 255.0 if hi <= 255 else max(hi, 65535.0)
    return np.clip(values * (255.0 / full), 0, 255).round().astype(np.uint8)


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = _to_uint8(arr)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageLoadError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"the image is empty (shape {arr.shape})")
    if arr.shape[2] == 4:
        alpha = _to_uint8(arr[:, :, 3]).astype(np.float32)[:, :, None] / 255.0
        rgb = _to_uint8(arr[:, :, :3]).astype(np.float32)
        # Composite transparent pixels on white, as an image viewer shows them.
        return (rgb * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(_to_uint8(arr))


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _array_to_rgb(np.asarray(img))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return _array_to_rgb(np.asarray(img.convert("RGBA")))
    return np.array(img.convert("RGB"))  # a writeable copy (PIL's buffer is read-only)


def load_image(image: ImageLike) -> np.ndarray:
    """Read an image into a new ``(H, W, 3)`` uint8 RGB array (never a view of the caller's array).

    Accepts a path, raw bytes, a PIL image or a numpy array of shape ``(H, W)``, ``(H, W, 3)`` or
    ``(H, W, 4)`` (uint8, uint16, bool, or float in 0-1 or 0-255). EXIF orientation is applied, alpha is
    composited on white, 16-bit images are scaled to 8 bits (by their data type, see ``_to_uint8``).

    Raises:
        ImageLoadError: the file is missing, truncated, not an image, or the array has a bad shape or values
            that are negative, NaN or infinite.
    """
    if isinstance(image, np.ndarray):
        if image.size == 0:
            raise ImageLoadError(f"the image is empty (shape {image.shape})")
        out = _array_to_rgb(image)
        return out.copy() if np.shares_memory(out, image) else out  # never the caller's buffer
    if isinstance(image, Image.Image):
        try:
            if image.width * image.height == 0:
                raise ImageLoadError(f"the image is empty ({image.width}x{image.height})")
            return _pil_to_rgb(image)
        except (OSError, ValueError, AttributeError) as e:  # e.g. a closed image
            raise ImageLoadError(f"could not read the PIL image: {e}") from None
    source: io.BytesIO | Path
    if isinstance(image, (bytes, bytearray)):
        source, name = io.BytesIO(image), "<bytes>"
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        name = str(path) if len(str(path)) <= 300 else str(path)[:140] + " … " + str(path)[-140:]
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise ImageLoadError(f"{name}: no such file") from None
        except OSError as e:  # a name too long, a permission, a loop of links
            raise ImageLoadError(f"{name}: cannot be read ({e.strerror or e})") from None
        except ValueError as e:  # a NUL byte in the name
            raise ImageLoadError(f"{name!r}: not a valid file name ({e})") from None
        if stat.S_ISDIR(mode):
            raise ImageLoadError(f"{name}: is a directory, not an image")
        if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
            raise ImageLoadError(f"{name}: not a regular file (a pipe, socket or device), not an image")
        source = path
    else:
        raise ImageLoadError(f"cannot read an image from a {type(image).__name__}")
    try:
        with Image.open(source) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageLoadError(f"{name}: {img.width}x{img.height} is too large (over {MAX_PIXELS} pixels)")
            if img.width * img.height == 0:
                raise ImageLoadError(f"{name}: the image is empty ({img.width}x{img.height})")
            img.load()
            return _pil_to_rgb(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{name}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{name}: the file is truncated or corrupt ({e})") from None


def grid_size(height: int, width: int, resolution: int, patch: int, stride: int) -> tuple[int, int]:
    """Patch grid ``(h, w)`` for an image, keeping its aspect ratio.

    The image is scaled to about ``resolution**2`` pixels; each side is then snapped so that
    patches of size ``patch`` at step ``stride`` tile it exactly: ``side = patch + stride * (cells - 1)``.
    A square image at 280 px with patch 8 gives a 35 x 35 grid (stride 8) or 69 x 69 (stride 4).
    """
    scale = resolution / math.sqrt(float(height) * float(width))
    cells = []
    for side in (height * scale, width * scale):
        cells.append(max(1, int(round((side - patch) / stride)) + 1))
    return cells[0], cells[1]


def resize_for_grid(image: np.ndarray, grid: tuple[int, int], patch: int, stride: int) -> np.ndarray:
    """Resize ``(H, W, 3)`` uint8 to exactly cover ``grid`` patches: ``(h', w', 3)`` uint8."""
    out_h = patch + stride * (grid[0] - 1)
    out_w = patch + stride * (grid[1] - 1)
    if image.shape[0] == out_h and image.shape[1] == out_w:
        return image
    pil = Image.fromarray(image)
    # A box filter first for big reductions (fast and alias-free), then an exact bicubic resize.
    factor = min(image.shape[0] // max(out_h, 1), image.shape[1] // max(out_w, 1))
    if factor >= 2:
        pil = pil.reduce(factor)
    return np.asarray(pil.resize((out_w, out_h), Image.Resampling.BICUBIC))


def image_fingerprint(image: np.ndarray) -> str:
    """A short content hash of an ``(H, W, 3)`` array, used as a cache key."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def pixel_to_patch(x: float, y: float, image_shape: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """The patch ``(row, col)`` of grid ``(h, w)`` under pixel ``(x, y)`` of an image of ``(H, W)``."""
    height, width = image_shape
    row = int(np.clip(np.floor(y / max(height, 1) * grid[0]), 0, grid[0] - 1))
    col = int(np.clip(np.floor(x / max(width, 1) * grid[1]), 0, grid[1] - 1))
    return row, col
