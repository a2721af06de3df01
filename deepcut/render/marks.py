"""Marks drawn over a picture: the points of corrections by click."""

from __future__ import annotations

from typing import Any, Sequence

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
