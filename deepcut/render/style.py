"""One size rule for every figure the page shows: the PNG keeps its pixel size, the text scales.

A figure of ``width_in x height_in`` inches at 100 dpi is ``100 w x 100 h`` pixels. :func:`new_figure`
with ``text = t`` makes it ``w / t x h / t`` inches at ``100 t`` dpi: the same pixels, but every font
(given in points) and the layout around it ``t`` times larger, for a projector or a far-away screen.
:func:`min_text_px` measures the result: the smallest font of the figure in pixels of its PNG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def plain_ticks(ax: Any) -> None:
    """Give ``ax``'s y ticks their whole values, large ones with an SI suffix (``32M`` rather than ``3.2`` under a
    ``1e7`` multiplier, which matplotlib draws above the axes, over the title); small ones as they are."""
    from matplotlib.ticker import EngFormatter, ScalarFormatter

    low, high = ax.get_ylim()
    if max(abs(low), abs(high)) >= 1e4:
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    else:
        plain = ScalarFormatter(useOffset=False)
        plain.set_scientific(False)
        ax.yaxis.set_major_formatter(plain)


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


def fit_titles(fig: "Figure", renderer: Any) -> bool:
    """Wrap every axes title and the suptitle of ``fig`` that is wider than the room it has (an axes title: its
    column of the grid; the suptitle: the figure), at spaces where it can and inside long words (a path)
    where it must, so that no title runs off the picture or over its neighbour. ``renderer``: of a drawn
    canvas of ``fig``. Returns whether any title changed (then draw again: the layout makes room)."""
    import textwrap

    width = float(fig.bbox.width)
    texts: list[tuple[Any, float]] = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        texts.append((suptitle, 0.96 * width))
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        cols = spec.get_gridspec().ncols if spec is not None else 1
        span = (spec.colspan.stop - spec.colspan.start) if spec is not None else 1
        room = max(ax.get_window_extent(renderer).width, 0.96 * width * span / max(cols, 1))
        texts += [(t, room) for t in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None))
                  if t is not None]
    changed = False
    for text, room in texts:
        content = text.get_text()
        if not content.strip() or not text.get_visible():
            continue
        drawn = text.get_window_extent(renderer).width
        if drawn <= room:
            continue
        longest = max(len(line) for line in content.split("\n"))
        chars = max(8, int(longest * room / drawn) - 1)
        lines = [piece for line in content.split("\n") for piece in
                 (textwrap.wrap(line, chars, break_long_words=True, break_on_hyphens=False) or [""])]
        text.set_text("\n".join(lines))
        changed = True
    return changed


def draw_fitted(fig: "Figure") -> Any:
    """Draw ``fig`` on an Agg canvas with its titles fitted (:func:`fit_titles`: a title wider than its room is
    wrapped and the figure laid out again, twice at most, since the room may change once); the canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    for _ in range(2):
        if not fit_titles(fig, canvas.get_renderer()):
            break
        canvas.draw()
    return canvas


def text_clashes(fig: "Figure") -> list[str]:
    """What is wrong with the words of ``fig`` as :func:`~deepcut.render.figures.figure_image` draws it
    (titles fitted first): each visible text (titles, axis labels, legends, texts; not tick labels, which
    matplotlib lays out itself) that runs off the picture, and each pair that overlap (their boxes, in
    pixels, intersect by more than 2 px). Empty when every word can be read."""
    renderer = draw_fitted(fig).get_renderer()
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)  # laid out by matplotlib itself
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    from matplotlib.text import Text

    texts = [t for t in fig.findobj(Text) if isinstance(t, Text) and t.get_text().strip() and _shown(t)
             and id(t) not in ticks and t.get_window_extent(renderer).width > 0]
    boxes = [(t.get_text().split("\n")[0][:40], t.get_window_extent(renderer)) for t in texts]
    w, h = float(fig.bbox.width), float(fig.bbox.height)
    found = []
    for i, (name, b) in enumerate(boxes):
        if b.x0 < -2 or b.y0 < -2 or b.x1 > w + 2 or b.y1 > h + 2:
            found.append(f"off the picture: {name!r}")
        for other, c in boxes[i + 1:]:
            if min(b.x1, c.x1) - max(b.x0, c.x0) > 2 and min(b.y1, c.y1) - max(b.y0, c.y0) > 2:
                found.append(f"overlap: {name!r} and {other!r}")
    return found
