"""What the lessons are about: one segmentation, with the backbone that made it.

The lessons (:mod:`.sweep`, :mod:`.walkthrough`, :mod:`.slides` …) take any object shaped like :class:`Shown`.
:class:`LessonResult` is the library's, made from a :class:`~deepcut.features.store.FeatureStore` and a
:class:`~deepcut.segmentation.result.Segmentation` (a script, the ``deepcut slides`` command); the app's
``DemoResult`` is another (it marks the visitor's corrections by click on the overlay and adds the page's
notices to the JSON).

Example::

    dc = DeepCut("color")
    seg = dc.segment("cat.jpg", stages=2, k=3)
    result = LessonResult.of(dc.store, seg)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np
from PIL import Image

from ..features.store import FeatureStore
from ..render.figures import loss_figure
from ..segmentation.result import Segmentation

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["LessonResult", "Shown", "default_point", "loss_plot", "result_record", "write_result_files"]


class Shown(Protocol):
    """A segmentation as the lessons show it: its :class:`Segmentation`, the backbone's name and number of
    layers, its corrections by click (if any), and its pictures and files."""

    @property
    def seg(self) -> Segmentation: ...

    @property
    def backbone(self) -> str: ...

    @property
    def depth(self) -> int: ...

    @property
    def corrections(self) -> Sequence[Any]: ...

    def overlay(self, opacity: float = 0.5) -> Image.Image: ...

    def mask(self) -> Image.Image: ...

    def cutout(self) -> Image.Image: ...

    def loss_plot(self, text: float = 1.0) -> "Figure": ...

    def write_files(self, out_dir: str | Path, stem: str = "deepcut") -> list[str]: ...

    def default_point(self) -> tuple[float, float]: ...


def default_point(seg: Segmentation) -> tuple[float, float]:
    """A pixel ``(x, y)`` inside the foreground (its box centre if that is foreground): the patch whose row
    of the graph the lessons show before anyone clicks."""
    h, w = seg.labels.shape
    fg = seg.foreground_mask
    if not fg.any():
        return w / 2, h / 2
    if seg.bbox is not None:
        x0, y0, x1, y1 = seg.bbox
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        if fg[min(cy, h - 1), min(cx, w - 1)]:
            return float(cx), float(cy)
    ys, xs = np.nonzero(fg)
    i = len(ys) // 2
    return float(xs[i]), float(ys[i])


def loss_plot(seg: Segmentation, text: float = 1.0) -> "Figure":
    """The GNN's loss per epoch, a panel per stage titled with its ``k`` (see
    :func:`deepcut.render.figures.loss_figure`; ``text``: font factor); where NCut restarted from the spectral
    cut (:attr:`~deepcut.segmentation.result.Segmentation.restarts`), the restart's epochs are drawn and named."""
    cfg = seg.config
    assert cfg.k is not None  # resolved when the config was made
    return loss_figure(seg.losses, cfg.loss, [cfg.first_stage_k, cfg.k, cfg.bg_k], text=text, restarts=seg.restarts)


def write_result_files(seg: Segmentation, record: dict, out_dir: str | Path, stem: str = "deepcut") -> list[str]:
    """Write ``<stem>_labels.png`` (label map: pixel value = label) and ``<stem>.json`` (``record``) into
    ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, meta = out / f"{stem}_labels.png", out / f"{stem}.json"
    seg.labels_image().save(png)
    meta.write_text(json.dumps(record, indent=2))
    return [str(png), str(meta)]


def _role(seg: Segmentation, label: int) -> str:
    if seg.foreground is None:
        return "segment"
    return "foreground" if bool(seg.foreground[seg.labels == label].any()) else "background"


def result_record(seg: Segmentation, backbone: str, original_size: tuple[int, int] | None = None,
                  notes: Sequence[str] | None = None) -> dict:
    """The JSON record of a result: box, sizes, each label's role, settings, timings, notes.

    Args:
        seg: the segmentation.
        backbone: the backbone's name.
        original_size: ``(H, W)`` of the image before it was downscaled (default: the segmented size).
        notes: the notes to list (default: the segmentation's own).
    """
    box = list(seg.bbox) if seg.bbox is not None else None
    h, w = seg.labels.shape
    original = original_size or (h, w)
    scale = original[0] / seg.image.shape[0]
    return {
        "bbox": box,
        "bbox_format": "[x0, y0, x1, y1] in pixels of the label map, x1 and y1 exclusive",
        "label_map_size": [int(w), int(h)],
        "original_size": [int(original[1]), int(original[0])],
        "bbox_original": [round(v * scale) for v in box] if box is not None else None,
        "labels": {str(int(v)): _role(seg, int(v)) for v in np.unique(seg.labels)},
        "num_segments": seg.num_segments,
        "backbone": backbone,
        "config": seg.config.to_dict(),
        "features_cached": seg.features_cached,
        "timings_s": {k: round(v, 4) for k, v in seg.timings.items()},
        "notes": list(seg.notes if notes is None else notes),
    }


@dataclass
class LessonResult:
    """One segmentation for the lessons (:class:`Shown`), without a web page.

    Attributes:
        seg: the segmentation.
        backbone: the backbone's name (for the words and file names).
        depth: its number of layers (a backbone of one, like the colour one, has no layers or facets to name).
        corrections: none: a corrected result is the app's.
    """

    seg: Segmentation
    backbone: str
    depth: int
    corrections: tuple = ()

    @classmethod
    def of(cls, store: FeatureStore, seg: Segmentation, backbone: str | None = None) -> "LessonResult":
        """``seg`` as computed with ``store``'s backbone (``backbone``: the name to show, default its own)."""
        return cls(seg, backbone or str(store.backbone.name), int(store.backbone.depth))

    def overlay(self, opacity: float = 0.5) -> Image.Image:
        return self.seg.overlay(float(opacity))

    def mask(self) -> Image.Image:
        return self.seg.mask_image()

    def cutout(self) -> Image.Image:
        return self.seg.cutout()

    def loss_plot(self, text: float = 1.0) -> "Figure":
        """:func:`loss_plot` of the segmentation."""
        return loss_plot(self.seg, text)

    def record(self) -> dict:
        """:func:`result_record` of the segmentation."""
        return result_record(self.seg, self.backbone)

    def write_files(self, out_dir: str | Path, stem: str = "deepcut") -> list[str]:
        """:func:`write_result_files` with :meth:`record`."""
        return write_result_files(self.seg, self.record(), out_dir, stem)

    def default_point(self) -> tuple[float, float]:
        return default_point(self.seg)
