""":class:`DemoSession`: the demo's shared, thread-safe service, composed of small parts.

* :class:`~deepcut.model_cache.ModelCache`: one shared model per backbone, colour fallback with a notice;
* :class:`~deepcut.demo.uploads.UploadReader`: decoding, validation, downscaling of uploads;
* :class:`~deepcut.demo.outputs.OutputStore`: download files, only the newest kept;
* :mod:`~deepcut.demo.jobs`: what an image, a video and a co-segmentation request each do;
* :mod:`~deepcut.demo.teaching`: the affinity view.

Every request goes through one template, :meth:`DemoSession.serve`: prepare the input → choose the
model → build the config → run → wrap the result, with every library error turned into a
:class:`DemoError` the visitor can read.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from ..backbones import DEFAULT_BACKBONE
from ..errors import BackboneLoadError, DeepCutError
from ..features.image import ImageLike
from ..lessons.names import file_stem
from ..model_cache import BackboneChoice, CachedModel, ModelCache
from .errors import DemoError, hide_path
from .jobs import CosegJob, ImageJob, Job, ProgressFn, Request, VideoJob, trim_heap
from .limits import NOT_OFFERED, Limits
from .objects import ObjectsDemoResult, ObjectsJob
from .outputs import OutputStore, for_display
from .recent import RecentResults
from .results import CosegDemoResult, DemoResult, VideoDemoResult
from .settings import build_config
from .teaching import affinity_frame, affinity_view
from .uploads import DEFAULT_MAX_SIDE, UploadReader


class DemoSession:
    """The demo's shared state: models (one per backbone), their availability, and output files.

    Thread safe: several visitors may call :meth:`segment` at the same time; models are built once
    (under a lock) and shared, and :class:`~deepcut.DeepCut`'s feature cache is itself locked.

    Example::

        session = DemoSession(default_backbone="color")
        result = session.segment("assets/cat.jpg", k=3, stages=2)
        result.overlay(0.6).save("overlay.png")
        print(result.status_markdown())

    Args:
        default_backbone: what the page starts with (falls back to the colour backbone with a
            notice if its weights cannot be loaded).
        max_side: uploads are downscaled to this longer side.
        max_models: how many backbones stay loaded (least recently used ones are dropped).
        cache_size: images whose features each model keeps.
        output_dir: where download files go (default: a fresh temporary folder).
        keep_outputs: how many results' download files are kept on disk.
        device: where the models compute (``None``: ``$DEEPCUT_DEVICE``, else CUDA if available).
        threads: the ViT's CPU threads (``None``: the cores idle at the time; see :mod:`deepcut.utils.threads`).
        precision: the ViT's precision (``None``: ``$DEEPCUT_PRECISION``, else ``"auto"``).
        limits: what one request may cost (default: the generous :class:`~deepcut.demo.limits.Limits`).
        keep_results: how many results the pages' events can still refer to (:attr:`results`).
        arrival: called at the start of each request: the :func:`time.monotonic` time the request reached the
            server, or None where unknown (the app passes :func:`deepcut.demo.arrival.queue_arrival`); the
            results then count the wait in the queue beside the work (``waited``). None: no wait counted.
    """

    def __init__(self, default_backbone: str = DEFAULT_BACKBONE, max_side: int = DEFAULT_MAX_SIDE,
                 max_models: int = 3, cache_size: int = 8, output_dir: str | Path | None = None,
                 keep_outputs: int = 64, device: str | torch.device | None = None,
                 threads: int | None = None, limits: Limits | None = None, keep_results: int = 16,
                 precision: str | None = None, arrival: Callable[[], float | None] | None = None) -> None:
        self.pool = ModelCache(default_backbone, max_models=max_models, cache_size=cache_size, device=device,
                              threads=threads, precision=precision)
        self.limits = limits or Limits()
        self.uploads = UploadReader(max_side, max_pixels=self.limits.max_pixels, max_bytes=self.limits.max_bytes)
        self.outputs = OutputStore(output_dir, keep_outputs)
        self.results = RecentResults(keep_results)
        self.arrival = arrival

    @property
    def default_backbone(self) -> str:
        return self.pool.default_backbone

    @property
    def max_side(self) -> int:
        return self.uploads.max_side

    @property
    def output_dir(self) -> Path:
        return self.outputs.root

    # -- backbones --------------------------------------------------------------------------------
    def backbone_choices(self) -> list[BackboneChoice]:
        """Every registered backbone offered here, marked by whether it can be used."""
        return [c for c in self.pool.choices() if self.limits.offers(c.name)]

    def failure(self, backbone: str) -> str | None:
        """Why ``backbone`` could not be loaded, or None if it did not fail."""
        return self.pool.failure(backbone)

    def model(self, backbone: str | None = None) -> CachedModel:
        """The shared model for ``backbone``: ``(model, name used, notice or None)``.

        Registry names whose weights cannot be loaded fall back to the colour backbone with a notice
        (see :class:`~deepcut.model_cache.ModelCache`). A local folder or hub id that fails raises
        :class:`DemoError`: the visitor asked for it explicitly (its folders not shown). A backbone
        this server does not offer (:class:`~deepcut.demo.limits.Limits`) raises the same
        :data:`~deepcut.demo.limits.NOT_OFFERED` whatever it is.
        """
        name = (backbone or "").strip() or None
        if name is not None and name != self.default_backbone and not self.limits.offers(name):
            raise DemoError(NOT_OFFERED)
        try:
            return self.pool.get(name)
        except BackboneLoadError as e:
            raise DemoError(hide_path(str(e), name)) from None

    def startup(self) -> tuple[str, str | None]:
        """Load the default backbone now and warm it up (one small segmentation, so that the first
        visitor does not pay PyTorch's one-off start-up costs): ``(backbone in use, notice or None)``.

        The notice (markdown) explains a fallback to the colour backbone: why, what it means, what to do; the
        server's log gets it as plain text.
        """
        model, used, notice = self.model(self.default_backbone)
        model.warm_up()
        if notice is None:
            return used, None
        reason = (self.failure(self.default_backbone) or "unknown").splitlines()[0].rstrip(". ") + "."
        what = ("**Simple mode: the DINO vision model could not be loaded**, so this demo uses the **colour backbone** "
                "instead. It groups the squares of a photo by colour, texture and position only, so segments follow "
                "colours, not objects.")
        todo = (f"To use DINO (`{self.default_backbone}`), download its weights once into the HuggingFace cache "
                "(with network)" + (", or enter a local model folder under *Use your own weights*."
                                    if self.limits.allows_custom() else "."))
        logging.getLogger("deepcut.app").warning("%s Reason: %s %s", what.replace("**", ""), reason,
                                                 todo.replace("*", ""))
        return used, (f"{what} <details><summary>Why, and how to get the full demo</summary>Reason: {reason} {todo}"
                      "</details>")

    # -- requests ---------------------------------------------------------------------------------
    def serve(self, job: Job, backbone: str | None, settings: dict[str, Any]) -> Any:
        """The request template: prepare → model → config → run → wrap; errors become :class:`DemoError`."""
        started, deadline, waited = time.perf_counter(), self.limits.deadline(), self.waited()
        notices = job.prepare()
        model, used, notice = self.model(backbone)
        notices = ([notice] if notice else []) + notices
        settings = self.limits.clamp(settings, notices)
        config = build_config(settings, int(model.backbone.depth), used, notices)
        req = Request(model, used, backbone or self.default_backbone, config, notices, started, deadline,
                      self.limits.max_epochs, waited)
        try:
            out = job.run(req)
        except DeepCutError as e:
            raise DemoError(hide_path(str(e), job.source)) from None
        return job.wrap(req, out)

    def waited(self) -> float:
        """Seconds since the request being served reached the server (:attr:`arrival`): its wait in the queue
        for a free worker; 0 where unknown."""
        arrived = self.arrival() if self.arrival is not None else None
        return max(0.0, time.monotonic() - arrived) if arrived is not None else 0.0

    def segment(self, image: ImageLike | None, backbone: str | None = None, **settings) -> DemoResult:
        """Segment an upload with the shared model of ``backbone``.

        Args:
            image: a path (e.g. Gradio's upload), PIL image, array or bytes.
            backbone: registry name, local model folder or hub id (default: the session's).
            settings: :class:`~deepcut.config.SegmentConfig` fields (``k``, ``loss``, ``alpha``,
                ``layer``, ``facet``, ``stages``, ``epochs``, ``resolution``, ``largest_component``,
                ``seed`` …). A layer beyond the backbone's depth is clamped, with a notice.

        Raises:
            DemoError: unreadable image, invalid setting, or a requested local model that fails.
        """
        return self.serve(ImageJob(self.uploads, image), backbone, settings)

    def segment_video(self, video: str | os.PathLike | None, backbone: str | None = None, max_frames: int = 60,
                      frame_stride: int = 1, opacity: float = 0.5, progress: ProgressFn | None = None,
                      **settings) -> VideoDemoResult:
        """Segment a video with consistent labels and write the overlay video (MP4) and boxes (JSON).

        Args:
            video: path of a video file (anything ffmpeg reads) or GIF.
            backbone: as for :meth:`segment`.
            max_frames: at most this many frames.
            frame_stride: every ``frame_stride``-th frame.
            opacity: colour opacity of the overlay video.
            progress: ``progress(done, total)`` after each frame.
            settings: :class:`~deepcut.config.SegmentConfig` fields.

        Raises:
            DemoError: nothing uploaded, unreadable video, invalid setting.
        """
        capped: list[str] = []
        frames = self.limits.frames(max_frames, capped)
        job = VideoJob(self.outputs, video, frames, frame_stride, opacity, progress, capped,
                       max_pixels=self.limits.max_pixels, max_bytes=self.limits.max_bytes)
        try:
            return self.serve(job, backbone, settings)
        finally:
            trim_heap()

    def cosegment(self, images: list, backbone: str | None = None, names: list[str] | None = None,
                  **settings) -> CosegDemoResult:
        """Segment 2 … :data:`~deepcut.demo.jobs.MAX_COSEG_IMAGES` images together, so a part gets one
        label in all of them.

        Raises:
            DemoError: fewer than two or too many images, an unreadable one, an invalid setting.
        """
        most = self.limits.max_images
        if most is not None and len([im for im in images or [] if im is not None]) > most:
            raise DemoError(f"Please upload at most {most} images (the limit on this server).")
        return self.serve(CosegJob(self.uploads, images, names), backbone, settings)

    def discover(self, image: ImageLike | None, backbone: str | None = None, objects: int | None = 3,
                 **settings) -> ObjectsDemoResult:
        """Discover up to ``objects`` objects in an upload (``None``: correlation clustering decides
        how many), each with its mask, box and score (see :mod:`deepcut.tasks.discover`).

        Raises:
            DemoError: unreadable image, invalid setting, or a requested local model that fails.
        """
        return self.serve(ObjectsJob(self.uploads, image, objects), backbone, settings)

    # -- downloads --------------------------------------------------------------------------------
    def save_outputs(self, result: DemoResult, name: str | None = None) -> list[str]:
        """Write the result's downloads (label map PNG, JSON) into a fresh folder; returns their paths."""
        return self.outputs.save_result(result, name)

    def overlay_file(self, result: DemoResult, picture: Image.Image, name: str | None,
                     figure: str = "overlay", display: bool = False) -> str:
        """``picture`` of ``result`` saved as ``<image>_<figure>_<settings>.png`` (e.g.
        ``cat_overlay_ncut-k3-2stages.png``, :func:`~deepcut.lessons.names.file_stem`); returns its path.
        ``display`` (the page): enlarged to fill its panel if small (:func:`~deepcut.demo.outputs.for_display`;
        clicks on it map back with :func:`~deepcut.demo.outputs.display_factor`); else at its size (the API)."""
        return self.outputs.save_picture(for_display(picture) if display else picture, file_stem(name, figure, result))

    def save_objects_outputs(self, result: ObjectsDemoResult, name: str | None = None,
                             opacity: float = 0.5) -> list[str]:
        """Write the objects' overlay at ``opacity`` (PNG) and COCO-style annotations (JSON), named after the
        upload ``name`` (``cat_objects.png``, ``cat_objects.json``); returns their paths."""
        return result.write_files(self.outputs.new_folder(), name, opacity)

    def save_coseg_outputs(self, result: CosegDemoResult) -> list[str]:
        """Write every image's label map and one JSON with all boxes; returns their paths."""
        return self.outputs.save_coseg(result)

    # -- teaching view ----------------------------------------------------------------------------
    def affinity(self, result: DemoResult, x: float, y: float,
                 frame: tuple[int, int] | None = None, clicked: bool = False) -> tuple[Image.Image, str]:
        """The graph weights from the patch under pixel ``(x, y)`` to every patch, as a picture.

        Args:
            result: the segmentation whose image, backbone and settings are used (its features
                are in the model's cache, so this does not rerun the backbone).
            x: the clicked pixel's column.
            y: the clicked pixel's row.
            frame: ``(H, W)`` of the picture that was clicked (default: the segmented image).
            clicked: the visitor chose this patch: it is kept as ``result.clicked`` (in the segmented image's
                pixels), so that the slides and the walkthrough show it too.

        Returns:
            ``(picture, caption)``; the picture's longer side is :data:`~deepcut.demo.teaching.AFFINITY_SIDE`.
        """
        view = affinity_view(self.model(result.backbone).model, result, x, y, frame)
        if clicked:
            h, w = result.seg.image.shape[:2]
            fh, fw = frame or (h, w)
            result.clicked = (float(x) * w / max(fw, 1), float(y) * h / max(fh, 1))
        return view

    @staticmethod
    def affinity_frame(result: DemoResult) -> tuple[int, int]:
        """``(H, W)`` of the pictures :meth:`affinity` draws for ``result`` (for mapping clicks)."""
        return affinity_frame(result)
