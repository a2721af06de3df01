"""Every picture DeepCut draws, in one place: label colours and overlays (:mod:`.colors`), the figures
that explain a segmentation — loss curves, soft assignment maps, patch affinities (:mod:`.figures`) —
and the teaching view's figures (:mod:`.teaching`).

Pure functions of arrays or of a :class:`~deepcut.segmentation.result.Segmentation`; matplotlib is used
through its object API (no ``pyplot`` state), so they are safe to call from several threads.
Nothing here computes a segmentation: :mod:`deepcut.lessons` computes what :mod:`.teaching` draws.
"""

from ..segmentation.colors import boundaries, colorize, draw_bbox, label_colors, overlay

__all__ = ["boundaries", "colorize", "draw_bbox", "label_colors", "overlay"]
