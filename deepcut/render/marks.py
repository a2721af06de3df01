"""Marks drawn over a picture: the points of corrections by click, the clicked point and its segment."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

#: Marker colours: join green, separate red, a waiting first point yellow.
COLOURS = {"join": (40, 200, 90), "separate": (230, 50, 50), "pending": (250, 210, 40)}


def draw_corrections(picture: Image.Image, corrections: Sequence[Any],
                     pending: tuple[str, tuple[float, float]] | None = None) -> Image.Image:
    """``picture`` with each correction's two points marked and linked (join: green, separate: red, with a
    cross on the link) and a waiting first point in yellow; the marks scale with the picture. Each correction
    has ``kind`` (``"join"`` / ``"separate"``) and ``points`` ``((x, y), (x, y))`` in the picture's pixels;
    ``pending`` is ``(kind, (x, y))``."""
    out = picture.convert("RGB")
    draw = ImageDraw.Draw(out)
    r = max(4, round(max(out.size) / 80))
    for c in corrections:
        (x0, y0), (x1, y1) = c.points
        colour = COLOURS["join" if c.kind == "join" else "separate"]
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=max(2, r // 2))
        if c.kind != "join":
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            draw.line([(mx - r, my - r), (mx + r, my + r)], fill=colour, width=max(2, r // 2))
            draw.line([(mx - r, my + r), (mx + r, my - r)], fill=colour, width=max(2, r // 2))
        for x, y in c.points:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(255, 255, 255), width=2)
    if pending is not None:
        x, y = pending[1]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=COLOURS["pending"], outline=(0, 0, 0), width=2)
    return out


def draw_focus(picture: Image.Image, segment: np.ndarray, point: tuple[float, float]) -> Image.Image:
    """``picture`` with one segment highlighted and the clicked point marked: pixels outside ``segment``
    ``(H, W)`` bool (the picture's size) are dimmed to 45 %, the segment's outline is drawn thick in white
    over black, and ``point`` ``(x, y)`` gets a ring with a cross-hair, sized with the picture."""
    out = np.asarray(picture.convert("RGB"), dtype=np.float32)
    inside = np.asarray(segment, bool)
    if inside.shape != out.shape[:2]:
        raise ValueError(f"segment mask {inside.shape} does not match the picture {out.shape[:2]}")
    out[~inside] *= 0.45
    edge = _outline(inside, max(2, round(max(inside.shape) / 160)))
    out[edge] = 255.0
    shown = Image.fromarray(out.round().astype(np.uint8))
    draw = ImageDraw.Draw(shown)
    r = max(6, round(max(shown.size) / 40))
    x, y = point
    for colour, width in (((0, 0, 0), max(4, r // 2)), ((255, 255, 255), max(2, r // 4))):
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=width)
        draw.line([(x - 2 * r, y), (x - r // 2, y)], fill=colour, width=width)
        draw.line([(x + r // 2, y), (x + 2 * r, y)], fill=colour, width=width)
        draw.line([(x, y - 2 * r), (x, y - r // 2)], fill=colour, width=width)
        draw.line([(x, y + r // 2), (x, y + 2 * r)], fill=colour, width=width)
    return shown


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """``(H, W)`` bool: pixels within ``width`` of the boundary of ``mask`` on its inside."""
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask, iterations=width, border_value=1)
