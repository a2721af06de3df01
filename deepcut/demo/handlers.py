"""What the page's events call: the page's values by name in, what its components show out.

Each request handler takes the values of the controls the app wires to it as keyword arguments
(Gradio's ``inputs_kwargs``), so the names are the public API's parameter names; the settings among
them go through :func:`deepcut.demo.settings.from_page` to the session. Every exception becomes a
message for the visitor, never a traceback. Imports Gradio, so only the app imports this module.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from ..config import DEFAULT_RESOLUTION, options
from ..errors import DeepCutError
from ..predictor import DeepCut
from . import corrections as corr
from .controls import facet_props, layer_props
from .errors import DemoError, visitor_error
from .layout import figure_text
from .objects import objects_setting
from .session import DemoSession
from .settings import COMPACT_START, COMPACT_TOP, backbone_resolution, from_page

log = logging.getLogger("deepcut.app")

#: The Image tab's outputs: overlay, mask, box, downloads, status, loss plot, soft maps, affinity, caption,
#: cut-out, state.
IMAGE_OUTPUTS = 11

try:  # HuggingFace ZeroGPU Spaces: GPU work runs in a GPU slot
    import spaces

    gpu: Callable[[Callable], Callable] = spaces.GPU
except ImportError:  # anywhere else: nothing changes
    def gpu(fn: Callable) -> Callable:
        return fn


def as_message(e: Exception) -> gr.Error:
    """The visitor's message for ``e``: its text for expected problems (the demo's and the library's: a bad
    setting says which and why), a generic line otherwise."""
    if isinstance(e, (DeepCutError, gr.Error)):
        return visitor_error(getattr(e, "message", None) or str(e))
    log.exception("unexpected error in the demo")
    return visitor_error(f"Something went wrong ({type(e).__name__}). Please try other settings or another file.")


def shows_errors(fn: Callable) -> Callable:
    """``fn`` with every exception turned into :func:`as_message` (its signature kept for Gradio)."""
    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise as_message(e) from None
    return handler


def click_point(index: Any) -> tuple[float, float] | None:
    """The ``(x, y)`` of a click on a picture (Gradio's ``SelectData.index``), or None if it is not two finite
    numbers (a client that is not the page may send anything)."""
    if not isinstance(index, (list, tuple)) or len(index) < 2:
        return None
    try:
        x, y = float(index[0]), float(index[1])
    except (TypeError, ValueError):
        return None
    return (x, y) if math.isfinite(x) and math.isfinite(y) else None


def upload_name(image: Any) -> str | None:
    """The file name of an upload (Gradio's temporary path keeps it), None for anything else."""
    return Path(image).name if isinstance(image, str) else None


def chosen(backbone: str, custom: str | None, allow_custom: bool = True) -> str:
    """The backbone to use: the own-weights text box if filled in (and allowed: never on a public
    server, where it is ignored whatever it says), else the dropdown's."""
    return ((custom or "").strip() if allow_custom else "") or backbone


class PageHandlers:
    """The page's event handlers over one shared :class:`DemoSession`.

    Args:
        session: the shared service.
        start: the backbone selected when the page opens (listed even if it is a local folder).
    """

    def __init__(self, session: DemoSession, start: str, resolution: int = DEFAULT_RESOLUTION) -> None:
        self.session, self.start, self.resolution = session, start, int(resolution)

    def resolutions(self, model: DeepCut | None = None) -> tuple[int, int]:
        """The resolution sliders' values for ``model``'s backbone (None: the page's first, :attr:`start`):
        ``(Image tab, Video and Co-segmentation tabs)``, the page's ``resolution`` (and the compact tabs' lower
        start) scaled to the backbone's own default (:func:`~deepcut.demo.settings.backbone_resolution`),
        within each slider and the server's cap."""
        model = self.session.model(self.start).model if model is None else model
        default, cap = int(model.backbone.default_resolution), self.session.limits.max_resolution
        return (backbone_resolution(self.resolution, default, int(options()["resolution"].maximum or 640), cap),
                backbone_resolution(min(self.resolution, COMPACT_START), default, COMPACT_TOP, cap))

    def backbone_list(self) -> list[tuple[str, str]]:
        """The dropdown's ``(label, name)`` choices, availability marked."""
        choices = [(c.label, c.name) for c in self.session.backbone_choices()]
        if self.start not in [name for _, name in choices]:  # a local folder or hub id from the command line
            choices.insert(0, (f"{self.start} (from the command line)", self.start))
        return choices

    def chosen(self, backbone: str, custom: str | None) -> str:
        """:func:`chosen` with this server's rule on own weights."""
        return chosen(backbone, custom, self.session.limits.allows_custom())

    def depth(self, backbone: str) -> int:
        return int(self.session.model(backbone).model.backbone.depth)

    # -- image tab --------------------------------------------------------------------------------
    @shows_errors
    def segment(self, image: str | None, backbone: str, custom: str | None, opacity: float = 0.5,
                display: bool = False, text: float = 1.0, **settings: Any) -> tuple:
        """Segment an image: overlay, mask, box image, downloads (label map PNG, JSON), status, loss
        plot, soft maps, affinity picture and its caption, cut-out (RGBA) (and for the page, the result
        to keep). For the page: ``display`` enlarges a small overlay to fill its panel, ``text`` is the
        figures' text scale (a phone, a projector)."""
        result = self.session.segment(image, backbone=self.chosen(backbone, custom), **from_page(settings))
        drawing = time.perf_counter()
        name = upload_name(image)
        files = self.session.save_outputs(result, name)
        aff, caption = self.session.affinity(result, *result.default_point())
        overlay = self.session.overlay_file(result, result.overlay(opacity), name, display=display)
        pictures = (result.mask(), result.bbox_image(), result.loss_plot(text), result.soft_picture(text),
                    result.cutout())
        result.seconds += time.perf_counter() - drawing  # the visitor waits for the pictures too
        mask, box, loss, soft, cutout = pictures
        return (overlay, mask, box, files, result.status_markdown(), loss, soft, aff, caption, cutout,
                self.session.results.add(result))

    @shows_errors
    def correct(self, image: str | None, backbone: str, custom: str | None, corrections: str | None = None,
                opacity: float = 0.5, **settings: Any) -> tuple:
        """The ``/correct`` API: segment the image (features cached), then apply ``corrections`` (JSON, see
        :func:`deepcut.demo.corrections.parse`, points in the upload's pixels): overlay, status, downloads."""
        result = self.session.segment(image, backbone=self.chosen(backbone, custom), **from_page(settings))
        fixes = corr.parse(corrections, result.scale)
        done = corr.apply(self.session.model(result.backbone).model, result, fixes, self.session.limits.max_epochs)
        files = self.session.save_outputs(done, upload_name(image))
        return self.session.overlay_file(done, done.overlay(opacity), upload_name(image)), done.status_markdown(), files

    def segment_if_image(self, image: str | None, text: float = 1.0, **inputs: Any) -> tuple:
        """:meth:`segment` for the page, once there is an image (a control moved before any upload does
        nothing): the overlay enlarged for its panel, the figures at the page's text scale ``text``."""
        if image is None:
            return tuple(gr.skip() for _ in range(IMAGE_OUTPUTS))
        return self.segment(image, display=True, text=figure_text(text), **inputs)

    @staticmethod
    def clear() -> tuple:
        return (None, None, None, None, "", None, None, None, "", None, None)

    def rerender(self, key, opacity: float, image: str | None = None):
        """The overlay of the page's result (its ``gr.State`` holds only a key) at ``opacity``, as a file
        named after the upload ``image``."""
        result = self.session.results.get(key)
        return gr.skip() if result is None else self.session.overlay_file(result, result.overlay(opacity),
                                                                          upload_name(image), display=True)

    @shows_errors
    def click(self, key, evt: gr.SelectData, on_affinity: bool = False) -> tuple:
        """The affinity view of the clicked patch, on the overlay or on the affinity picture itself."""
        result = self.session.results.get(key)  # the page's gr.State holds only a key
        point = click_point(evt.index)
        if result is None or point is None:
            return gr.skip(), gr.skip()
        x, y = point
        frame = self.session.affinity_frame(result) if on_affinity else None
        if frame is not None and y >= frame[0]:  # the colour bar under the map
            return gr.skip(), gr.skip()
        return self.session.affinity(result, x, y, frame, clicked=True)

    def click_overlay(self, result, evt: gr.SelectData) -> tuple:
        return self.click(result, evt)

    def click_affinity(self, result, evt: gr.SelectData) -> tuple:
        return self.click(result, evt, on_affinity=True)

    @shows_errors
    def choose_backbone(self, backbone: str, custom: str | None) -> tuple:
        """Load the chosen backbone: the layer slider's range, the facet radio (inactive for colour),
        the refreshed dropdown, the notice, the Image tab's resolution (the backbone's grid: :meth:`resolutions`)."""
        model, _, notice = self.session.model(self.chosen(backbone, custom))
        depth = model.backbone.depth
        return (
            gr.update(**layer_props(depth)),
            gr.update(**facet_props(depth)),
            gr.update(choices=self.backbone_list()),
            gr.update(value=f"⚠️ {notice}." if notice else "", visible=bool(notice)),
            gr.update(value=self.resolutions(model)[0]),
        )

    def follow_resolution(self, backbone: str, custom: str | None) -> Any:
        """A Video or Co-segmentation tab's resolution slider for the page's backbone (as :meth:`choose_backbone`
        loads it, the colour fallback included); unchanged where it cannot be loaded (that error is
        :meth:`choose_backbone`'s to show)."""
        try:
            return gr.update(value=self.resolutions(self.session.model(self.chosen(backbone, custom)).model)[1])
        except DemoError:
            return gr.skip()

    @shows_errors
    def discover(self, image: str | None, backbone: str, custom: str | None, objects: float = 3,
                 opacity: float = 0.5, **settings: Any) -> tuple:
        """Discover several objects: the overlay (colour, box, score each; its file, so that its download is
        named after the upload), the table, downloads (overlay PNG, COCO-style JSON)."""
        result = self.session.discover(image, backbone=self.chosen(backbone, custom), objects=objects_setting(objects),
                                       **from_page(settings))
        files = self.session.save_objects_outputs(result, upload_name(image), opacity)
        return files[0], result.status(), files

    # -- video and co-segmentation tabs -------------------------------------------------------------
    @shows_errors
    def segment_video(self, video: str | None, backbone: str, custom: str | None, max_frames: int = 60,
                      stride: int = 1, opacity: float = 0.5, progress=gr.Progress(),  # noqa: B008 - Gradio's idiom
                      **settings: Any) -> tuple:
        """Segment a video: the overlay video, status, downloads (overlay MP4, boxes JSON)."""
        def report(done: int, total: int) -> None:
            progress((done, max(total, done)), desc="segmenting frames", unit="frames")

        result = self.session.segment_video(video, backbone=self.chosen(backbone, custom), max_frames=int(max_frames),
                                            frame_stride=int(stride), opacity=float(opacity), progress=report,
                                            **from_page(settings))
        return result.video, result.status_markdown(), result.files

    @shows_errors
    def cosegment(self, gallery: list | None, backbone: str, custom: str | None, opacity: float = 0.5,
                  **settings: Any) -> tuple:
        """Co-segment 2-8 images: overlays with shared labels, status, downloads (label maps, JSON)."""
        items = [item[0] if isinstance(item, (list, tuple)) else item for item in (gallery or [])]
        result = self.session.cosegment(items, backbone=self.chosen(backbone, custom), **from_page(settings))
        return result.gallery(float(opacity)), result.status_markdown(), self.session.save_coseg_outputs(result)
