"""Two results side by side: a pinned result beside the current one, each titled with its settings, the
suptitle naming what changed (:func:`pair_figure`). Drawn with matplotlib's object API (no ``pyplot``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from ..render.figures import figure_image
from ..render.style import new_figure
from ..segmentation.notes import plural
from .result import Shown
from .words import settings_diff, settings_line

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["pair_figure", "pair_picture", "panel"]


def panel(ax: Any, picture: Image.Image, title: str, size: float) -> None:
    """``picture`` in the axes ``ax`` titled ``title`` (font size ``size``), without ticks."""
    ax.imshow(picture)
    ax.set_title(title, fontsize=size)  # wrapped to its column when drawn (render.style.fit_titles)
    ax.set_xticks([])
    ax.set_yticks([])


def pair_figure(pinned: Shown, current: Shown, opacity: float = 0.5, text: float = 1.0) -> "Figure":
    """The pinned result's overlay beside the current one's, each titled with its role ("pinned",
    "now"), segment count and :func:`~.words.settings_line`; the suptitle is :func:`~.words.settings_diff`.

    Args:
        pinned: the result kept for comparison (left).
        current: the latest result (right).
        opacity: colour opacity of the overlays in ``[0, 1]``.
        text: scales every font, the picture keeps its pixel size (2.0: twice as large, for a
            projector; see :mod:`deepcut.render.style`).
    """
    h, w = current.seg.image.shape[:2]
    fig = new_figure(10.0, 1.2 + 4.8 * h / max(w, 1), text)
    axes = fig.subplots(1, 2)
    for ax, role, result in ((axes[0], "pinned", pinned), (axes[1], "now", current)):
        title = f"{role}: {plural(result.seg.num_segments, 'segment')}\n{settings_line(result)}"
        panel(ax, result.overlay(opacity), title, 9)
    fig.suptitle(f"Changed: {settings_diff(pinned, current)}", fontsize=11)
    return fig


def pair_picture(pinned: Shown, current: Shown, opacity: float = 0.5, text: float = 1.0) -> Image.Image:
    """:func:`pair_figure` as an RGB picture."""
    return figure_image(pair_figure(pinned, current, opacity, text))
