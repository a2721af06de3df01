"""What the demo shows for a request: one image, a video, or several images segmented together.

Each result turns a :class:`~deepcut.Segmentation` (or several) into the page's pictures, its status
line and the record written to the JSON download; none of them touches a model or the disk, except
:meth:`DemoResult.write_files` when asked to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..lessons.result import default_point, loss_plot, result_record, write_result_files
from ..render.figures import figure_image, soft_maps, soft_maps_figure
from ..render.marks import draw_corrections
from ..segmentation.notes import is_information, plural
from ..segmentation.result import Segmentation

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


#: A wait in the queue shorter than this (seconds) is not worth a word in the status line.
NO_WAIT = 0.05


def ready_words(seconds: float, waited: float = 0.0) -> str:
    """How long the visitor waited for a result, from when the request reached the server: ``waited`` seconds
    in the queue for a free worker, then ``seconds`` computing. ``"ready in **2.3 s** (1.1 s waiting for a free
    worker, 1.2 s computing)"``, or ``"ready in **1.20 s**"`` when the queue took less than :data:`NO_WAIT`."""
    seconds, waited = max(0.0, float(seconds)), max(0.0, float(waited))
    if waited < NO_WAIT:
        return f"ready in **{seconds:.2f} s**"
    return (f"ready in **{seconds + waited:.1f} s** ({waited:.1f} s waiting for a free worker, "
            f"{seconds:.1f} s computing)")


#: How the page's notices that only inform begin (what a correction, undo, reset or pick did; a waiting first
#: point): shown with ℹ️, not as warnings.
PAGE_INFORMATION = ("Correction", "First point", "Undid correction", "Picked segment")


def with_notices(lines: list[str], notices: list[str]) -> str:
    """Status lines followed by one line per notice, each its own markdown paragraph (so that a layout can
    hide one: presenter mode shows the count and the warnings, not the backbone's line): ⚠️ before a
    warning, ℹ️ before a notice that only says what the method or the visitor's click did
    (:func:`~deepcut.segmentation.notes.is_information`, :data:`PAGE_INFORMATION`)."""
    info = lambda n: is_information(n) or n.startswith(PAGE_INFORMATION)  # noqa: E731
    return "\n\n".join(lines + [f"{'ℹ️' if info(n) else '⚠️'} {n}" for n in notices])


@dataclass
class DemoResult:
    """One segmentation as the demo shows it.

    Attributes:
        seg: the :class:`Segmentation` (of the possibly downscaled image).
        backbone: the backbone that was used (the fallback if the requested one failed).
        requested: the backbone the visitor asked for.
        notices: things the visitor should know (fallback, downscaling, skipped stages).
        original_size: ``(H, W)`` of the upload before downscaling.
        seconds: wall time of the request's work, image decoding included (the page adds its drawing).
        depth: number of layers of the backbone used.
        corrections: the visitor's corrections by click, in order (:mod:`deepcut.demo.corrections`).
        pending: a first point ``(kind, (x, y))`` waiting for its second click.
        plain: the uncorrected segmentation the corrections start from (None: ``seg`` is plain).
        clicked: the pixel ``(x, y)`` of the segmented image whose patch the visitor last chose for the affinity
            view (None: none yet; the lessons then show the foreground's centre patch and say so).
        waited: seconds the request waited in the server's queue for a free worker before its work began.
    """

    seg: Segmentation
    backbone: str
    requested: str
    notices: list[str]
    original_size: tuple[int, int]
    seconds: float
    depth: int
    corrections: tuple = ()
    pending: tuple | None = None
    plain: Segmentation | None = None
    clicked: tuple[float, float] | None = None
    waited: float = 0.0

    @property
    def scale(self) -> float:
        """Factor from the segmented image's pixels to the upload's pixels (1 if not downscaled)."""
        return self.original_size[0] / self.seg.image.shape[0]

    def overlay(self, opacity: float = 0.5) -> Image.Image:
        """The part overlay; ``opacity`` of the label colours in ``[0, 1]``; the points of the corrections
        (and a waiting first point) are marked."""
        picture = self.seg.overlay(float(opacity))
        if not self.corrections and self.pending is None:
            return picture
        return draw_corrections(picture, self.corrections, self.pending)

    def mask(self) -> Image.Image:
        """The binary foreground mask (white = foreground): :meth:`Segmentation.mask_image`."""
        return self.seg.mask_image()

    def cutout(self) -> Image.Image:
        """The image with everything but the foreground transparent: :meth:`Segmentation.cutout`."""
        return self.seg.cutout()

    def bbox_image(self) -> Image.Image:
        """The image with the foreground's bounding box drawn."""
        return self.seg.bbox_image()

    def record(self) -> dict:
        """What the JSON download contains: box, sizes, settings, timings, notices
        (:func:`~deepcut.lessons.result.result_record`)."""
        return result_record(self.seg, self.backbone, self.original_size, self.notices)

    def write_files(self, out_dir: str | Path, stem: str = "deepcut") -> list[str]:
        """Write ``<stem>_labels.png`` (label map: pixel value = label, shown in the overlay colours)
        and ``<stem>.json`` (:func:`~deepcut.lessons.result.write_result_files`)."""
        return write_result_files(self.seg, self.record(), out_dir, stem)

    def status_markdown(self) -> str:
        """A one-paragraph summary: segments, the wait as the visitor saw it (:func:`ready_words`), whether the
        features were reused; then the notices: the
        page's (fallback, downscaling) and the library's notes on the result (:attr:`Segmentation.notes`:
        where the number of segments is not the one asked for or was set by CC's bound, and why)."""
        seg, t = self.seg, self.seg.timings
        h, w = seg.patch_labels.shape
        gnn = " + ".join(f"stage {k[-1]} {t[k]:.2f} s" for k in ("stage1", "stage2", "stage3") if k in t)
        feat = ("**features reused** from the cache" if seg.features_cached
                else f"features computed in {t.get('features', 0.0):.2f} s")
        lines = [
            f"**{plural(seg.num_segments, 'segment')}** {ready_words(self.seconds, self.waited)} · {feat} · "
            f"GNN: {gnn or 'not trained'}",
            (
                f"backbone `{self.backbone}` · layer {seg.config.layer} · facet `{seg.config.facet}` · {h}×{w} patches"
                if self.depth > 1
                else f"backbone `{self.backbone}`: colour, texture and position per patch (no layers "
                f"or facets) · {h}×{w} patches"
            ),
        ]
        return with_notices(lines, self.notices)

    def soft_maps(self) -> list[tuple[Image.Image, str]]:
        """Per-label soft assignment pictures (see :func:`deepcut.render.figures.soft_maps`)."""
        return soft_maps(self.seg)

    def loss_plot(self, text: float = 1.0) -> "Figure":
        """The GNN's loss per epoch, a panel per stage titled with its ``k`` (see
        :func:`deepcut.render.figures.loss_figure`; ``text``: font factor)."""
        return loss_plot(self.seg, text)

    def soft_picture(self, text: float = 1.0) -> Image.Image:
        """Every segment's soft assignment map in one picture, with a colour bar (see
        :func:`deepcut.render.figures.soft_maps_figure`; ``text``: font factor, same pixels)."""
        return figure_image(soft_maps_figure(self.seg, text=text))

    def default_point(self) -> tuple[float, float]:
        """A pixel ``(x, y)`` inside the foreground (its box centre if that is foreground), for the
        affinity view before the visitor clicks (:func:`~deepcut.lessons.result.default_point`)."""
        return default_point(self.seg)


@dataclass
class VideoDemoResult:
    """A segmented video as the demo shows it.

    Attributes:
        video: path of the overlay video (MP4, H.264).
        files: downloads: the overlay video and a JSON with every frame's box.
        frames: number of frames segmented.
        fps: frame rate of the overlay video.
        seconds: wall time, decoding and encoding included.
        backbone: the backbone used.
        notices: fallback, capped or downscaled video, re-clusterings.
        waited: seconds the request waited in the server's queue for a free worker.
        consistency: share of consecutive frame pairs whose labels were not permuted.
        stats: the pipeline's counters (``rematched``, ``cold_restarts`` …).
        preview: the first frame's segmentation.
    """

    video: str
    files: list[str]
    frames: int
    fps: float
    seconds: float
    backbone: str
    notices: list[str]
    consistency: float
    stats: dict
    preview: Segmentation
    waited: float = 0.0

    def status_markdown(self) -> str:
        per = self.seconds / max(self.frames, 1)
        lines = [
            f"**{self.frames} frames** {ready_words(self.seconds, self.waited)} · {per:.2f} s per frame · "
            f"{self.fps:g} fps · backbone `{self.backbone}`",
            f"labels kept from frame to frame in **{self.consistency:.0%}** of frame pairs "
            f"(re-matched {self.stats.get('rematched', 0)}×, re-clustered {self.stats.get('cold_restarts', 0)}×)",
        ]
        return with_notices(lines, self.notices)


@dataclass
class CosegDemoResult:
    """Several images segmented together (one GNN, shared labels).

    Attributes:
        results: one :class:`DemoResult` per image, in upload order.
        names: the images' file names.
        seconds: wall time of the whole request.
        backbone: the backbone used.
        notices: fallback, downscaling, lowered resolution.
        waited: seconds the request waited in the server's queue for a free worker.
    """

    results: list[DemoResult]
    names: list[str]
    seconds: float
    backbone: str
    notices: list[str]
    waited: float = 0.0

    def gallery(self, opacity: float = 0.5) -> list[tuple[Image.Image, str]]:
        """``[(overlay, caption), …]``: the same label has the same colour in every image."""
        return [(r.overlay(opacity), f"{name}: {plural(r.seg.num_segments, 'segment')}")
                for r, name in zip(self.results, self.names, strict=False)]

    def status_markdown(self) -> str:
        labels = sorted({int(v) for r in self.results for v in np.unique(r.seg.labels)})
        lines = [f"**{len(self.results)} images** {ready_words(self.seconds, self.waited)} · one graph, one GNN · "
                 f"{len(labels)} shared labels · backbone `{self.backbone}`"]
        return with_notices(lines, self.notices)
