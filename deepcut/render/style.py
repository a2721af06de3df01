"""One size rule for every figure the page shows: the PNG keeps its pixel size, the text scales.

A figure of ``width_in x height_in`` inches at 100 dpi is ``100 w x 100 h`` pixels. :func:`new_figure`
with ``text = t`` makes it ``w / t x h / t`` inches at ``100 t`` dpi: the same pixels, but every font
(given in points) and the layout around it ``t`` times larger, for a projector or a far-away screen.
:func:`min_text_px` measures the result: the smallest font of the figure in pixels of its PNG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: Dots per inch of a figure at ``text = 1``.
BASE_DPI = 100
#: From this text factor on (a phone, a projector), figures draw their compact form: fewer panels side by
#: side, shorter words, sometimes a narrower picture, so that the larger text still fits.
COMPACT_TEXT = 1.5
#: The smallest font (points) any figure uses: 8 pt is 11 px at ``text = 1``, 16.7 px at ``text = 1.5``.
SMALLEST_PT = 8.0


def check_text(text: float) -> float:
    """``text`` as a float in ``[0.25, 8]`` (the factor on every font), else :class:`ValueError`."""
    value = float(text)
    if not 0.25 <= value <= 8.0:
        raise ValueError(f"text must be a factor in [0.25, 8], got {text!r}")
    return value


def new_figure(width_in: float, height_in: float, text: float = 1.0) -> "Figure":
    """A constrained-layout :class:`~matplotlib.figure.Figure` of ``100 width_in x 100 height_in`` pixels
    whose text is ``text`` times the size it has at 100 dpi (not registered with ``pyplot``)."""
    from matplotlib.figure import Figure

    t = check_text(text)
    return Figure(figsize=(width_in / t, height_in / t), dpi=BASE_DPI * t, layout="constrained")


def pixel_size(fig: "Figure") -> tuple[int, int]:
    """``(width, height)`` in pixels of the PNG of ``fig`` (as :func:`~deepcut.render.figures.figure_image`
    renders it)."""
    w, h = fig.get_size_inches() * fig.dpi
    return int(round(w)), int(round(h))


def _shown(text) -> bool:
    """Whether the text ``text`` is drawn: it and the axes holding it (if any) are visible."""
    return bool(text.get_visible()) and (text.axes is None or bool(text.axes.get_visible()))


def min_text_px(fig: "Figure") -> float:
    """The smallest font size, in pixels of the figure's PNG, over every visible, non-empty text of
    ``fig``: titles, axis labels, tick labels, legends, colour bars, texts, suptitle and supxlabel
    (``font size in points x dpi / 72``). The figure is drawn first, so that tick labels exist.
    ``inf`` for a figure without text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    FigureCanvasAgg(fig).draw()
    sizes = [float(t.get_fontsize()) for t in fig.findobj(Text) if t.get_text().strip() and _shown(t)]
    return min(sizes) * fig.dpi / 72.0 if sizes else float("inf")
