"""Slides: a picture or a matplotlib figure fitted onto a 16:9 page above a caption band.

A figure is rendered at the dpi that fills the page (its fonts and lines scale with it, nothing is
upscaled pixel by pixel); a picture keeps its aspect and is letterboxed on white. The caption is in
a large font (about 40 px on a 1920-px slide), wrapped over at most :data:`MAX_CAPTION_LINES` lines (or as many
as the caller allows).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: The default slide size ``(width, height)`` in pixels (full HD, 16:9).
SLIDE_SIZE = (1920, 1080)
#: Each side of a slide is at least this many pixels (a caption still fits) and at most that many (8K).
MIN_SLIDE_SIDE, MAX_SLIDE_SIDE = 320, 7680
#: A caption longer than this many lines is cut with an ellipsis.
MAX_CAPTION_LINES = 3
WHITE = (255, 255, 255)
INK = (25, 25, 25)


def check_slide_size(size: object) -> tuple[int, int]:
    """``size`` as ``(width, height)`` in pixels, each side between :data:`MIN_SLIDE_SIDE` and
    :data:`MAX_SLIDE_SIDE`.

    Raises:
        ConfigError: not two whole numbers in that range.
    """
    limits = f"each side between {MIN_SLIDE_SIDE} and {MAX_SLIDE_SIDE} px"
    try:
        sides = list(size)  # type: ignore[call-overload]  # checked here
    except TypeError:
        sides = []
    whole = len(sides) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) or
                                    isinstance(v, (float, np.floating)) and float(v).is_integer() for v in sides)
    if not whole:
        raise ConfigError(f"slide size must be (width, height) in whole pixels, {limits}; got {size!r:.100}")
    width, height = int(sides[0]), int(sides[1])
    if not (MIN_SLIDE_SIDE <= width <= MAX_SLIDE_SIDE and MIN_SLIDE_SIDE <= height <= MAX_SLIDE_SIDE):
        raise ConfigError(f"slide size {width} x {height} is out of range: {limits}")
    return width, height


def caption_font_size(width: int) -> int:
    """The caption's font size in pixels for a slide ``width`` pixels wide: ``width / 48`` (40 px at
    1920), at least 12."""
    return max(12, round(width / 48))


def fit_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of ``size`` scaled (up or down, aspect kept) to the largest that fits ``box``."""
    scale = min(box[0] / max(size[0], 1), box[1] / max(size[1], 1))
    return max(1, min(box[0], round(size[0] * scale))), max(1, min(box[1], round(size[1] * scale)))


def render_figure(fig: "Figure", box: tuple[int, int]) -> Image.Image:
    """``fig`` rendered (Agg, no ``pyplot``) at the dpi that makes it fill ``box`` ``(width, height)``
    with its aspect kept: an RGB picture of :func:`fit_size` of the figure in ``box``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    width_in, height_in = fig.get_size_inches()
    dpi = min(box[0] / width_in, box[1] / height_in)
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    picture = Image.open(buffer).convert("RGB")
    target = fit_size(picture.size, box)
    return picture if picture.size == target else picture.resize(target, Image.Resampling.LANCZOS)


def on_white(picture: Image.Image) -> Image.Image:
    """``picture`` as RGB; transparent parts (a cut-out) become white."""
    if picture.mode in ("RGBA", "LA", "P", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        out = Image.new("RGB", rgba.size, WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return picture.convert("RGB")


def fit_picture(picture: "Image.Image | Figure", box: tuple[int, int]) -> Image.Image:
    """A picture scaled to fit ``box`` (aspect kept), or a figure rendered to fit it."""
    if not isinstance(picture, Image.Image):
        return render_figure(picture, box)
    rgb = on_white(picture)
    target = fit_size(rgb.size, box)
    return rgb if rgb.size == target else rgb.resize(target, Image.Resampling.LANCZOS)


def wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int,
         most: int = MAX_CAPTION_LINES) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels in ``font``; beyond ``most`` lines the
    last one ends with an ellipsis."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    if len(lines) > most:
        last = lines[most - 1]
        while last and font.getlength(last + " …") > width:
            last = last[:-1]
        lines = lines[: most - 1] + [last.rstrip() + " …"]
    return lines


def caption_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The captions' font at ``size`` pixels: DejaVu Sans (shipped with matplotlib, the figures' font: it has
    α, ×, –, ≤, Fᵀ … which Pillow's built-in font draws as boxes), else Pillow's built-in one."""
    import matplotlib

    try:
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except OSError:  # pragma: no cover - matplotlib always ships it
        return ImageFont.load_default(size=size)


def caption_band(caption: str, width: int, most: int = MAX_CAPTION_LINES) -> Image.Image:
    """The caption on white, wrapped to ``width`` pixels in a font of :func:`caption_font_size`, over at most
    ``most`` lines (:func:`wrap`)."""
    size = caption_font_size(width)
    font = caption_font(size)
    margin = size
    lines = wrap(caption, font, width - 2 * margin, most) if caption.strip() else []
    line_height = round(size * 1.3)
    band = Image.new("RGB", (width, len(lines) * line_height + (margin if lines else 0)), WHITE)
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((width // 2, margin // 2 + i * line_height), line, fill=INK, font=font, anchor="ma")
    return band


def slide(picture: "Image.Image | Figure", caption: str, size: tuple[int, int] = SLIDE_SIZE,
          lines: int = MAX_CAPTION_LINES) -> Image.Image:
    """One slide: ``picture`` fitted (aspect kept, letterboxed on white) above ``caption``.

    Args:
        picture: a PIL image (scaled; transparency becomes white) or a matplotlib figure (rendered at
            the dpi that fills the space, so text and lines stay sharp).
        caption: what the slide shows, e.g. the settings (wrapped, at most ``lines`` lines).
        size: ``(width, height)`` of the slide in pixels (:func:`check_slide_size`).
        lines: the most lines of the caption (a longer one ends with an ellipsis); the picture takes the rest.

    Returns:
        An RGB image of exactly ``size``.

    Raises:
        ConfigError: a size out of range (:func:`check_slide_size`).
    """
    width, height = check_slide_size(size)
    band = caption_band(caption, width, max(1, int(lines)))
    margin = caption_font_size(width) // 2
    box = (max(1, width - 2 * margin), max(1, height - band.height - 2 * margin))
    fitted = fit_picture(picture, box)
    out = Image.new("RGB", (width, height), WHITE)
    out.paste(fitted, ((width - fitted.width) // 2, margin + (box[1] - fitted.height) // 2))
    out.paste(band, (0, height - band.height))
    return out
