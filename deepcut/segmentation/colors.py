"""Label colours and overlays (matplotlib's qualitative colormaps)."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: The hue step between labels beyond the first 20 (the golden ratio's fractional part).
GOLDEN = 0.6180339887498949


def label_colors(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 colours; label ``i`` always gets the same colour whatever ``n`` is.

    The first 20 come from matplotlib's ``tab20`` reordered (strong colours first, then their light
    variants); label ``20 + j`` gets the ``hsv`` hue ``j · 0.618…`` (the golden ratio, modulo 1), so that
    neighbouring labels differ and a label's colour does not depend on ``n``: every figure of a page,
    whatever labels it shows, colours a segment alike.
    """
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    listed = colormaps["tab20"]
    assert isinstance(listed, ListedColormap)  # a list of 20 colours
    tab20 = np.asarray(listed.colors)
    base = np.concatenate([tab20[0::2], tab20[1::2]])  # tab10 order, then the light shades
    if n > len(base):
        hues = (np.arange(n - len(base)) * GOLDEN) % 1.0
        base = np.concatenate([base, colormaps["hsv"](hues)[:, :3]])
    return (base[:n] * 255).round().astype(np.uint8)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Label map ``(H, W)`` → colour image ``(H, W, 3)`` uint8."""
    labels = np.asarray(labels)
    n = int(labels.max()) + 1 if labels.size else 1
    return label_colors(n)[labels]


def boundaries(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose right or lower neighbour has another label."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5, draw_boundaries: bool = True) -> Image.Image:
    """Blend label colours over an ``(H, W, 3)`` uint8 image; ``alpha`` is the colour opacity."""
    alpha = float(np.clip(alpha, 0.0, 1.0))
    colors = colorize(labels).astype(np.float32)
    out = image.astype(np.float32) * (1.0 - alpha) + colors * alpha
    if draw_boundaries and alpha > 0:
        out[boundaries(labels)] = 255.0
    return Image.fromarray(out.round().astype(np.uint8))


def draw_bbox(image: np.ndarray, bbox: tuple[int, int, int, int] | None, color=(255, 40, 40)) -> Image.Image:
    """The image with a rectangle ``(x0, y0, x1, y1)`` (x1, y1 exclusive) drawn on it."""
    from PIL import ImageDraw

    pil = Image.fromarray(image)
    if bbox is not None:
        width = max(2, round(max(image.shape[:2]) / 200))
        x0, y0, x1, y1 = bbox
        ImageDraw.Draw(pil).rectangle([x0, y0, x1 - 1, y1 - 1], outline=color, width=width)
    return pil
