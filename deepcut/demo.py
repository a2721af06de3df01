"""The logic behind the web demo (``app.py``): one shared, thread-safe segmentation service.

:class:`DemoSession` holds one :class:`~deepcut.DeepCut` per backbone (so every visitor shares the
model and its feature cache), falls back to the weight-free colour backbone with a notice when the
requested weights cannot be loaded, validates and downscales uploads, and turns a
:class:`~deepcut.Segmentation` into what the page shows: overlay, mask, box, downloads, timings and
the teaching pictures of :mod:`deepcut.viz`. Nothing here imports Gradio; the app only wires it up.

Example::

    session = DemoSession(default_backbone="color")
    result = session.segment("assets/cat.jpg", k=3, stages=2)
    result.overlay(0.6).save("overlay.png")
    print(result.status_markdown())
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .config import SegmentConfig
from .errors import BackboneLoadError, ConfigError, DeepCutError, ImageLoadError
from .modeling.backbones import DEFAULT_BACKBONE, REGISTRY, list_backbones, weights_available
from .predictor import DeepCut
from .segmentation import Segmentation
from .utils.image import ImageLike, load_image
from .viz import affinity_image, patch_affinity, pixel_to_patch, soft_maps

ProgressFn = Callable[[int, int], None]

log = logging.getLogger(__name__)

FALLBACK_BACKBONE = "color"
#: Uploads whose longer side exceeds this many pixels are downscaled before anything else.
DEFAULT_MAX_SIDE = 1600
#: Edge of the affinity picture's longer side (its click coordinates are in this frame).
AFFINITY_SIDE = 512
#: A backbone whose weights failed to load is tried again after this many seconds.
RETRY_AFTER = 600.0
#: At most this many images are co-segmented together.
MAX_COSEG_IMAGES = 8


class DemoError(DeepCutError):
    """A problem to show to the visitor as a message (never as a traceback)."""


@dataclass(frozen=True)
class BackboneChoice:
    """A backbone as the demo's dropdown lists it.

    Attributes:
        name: registry name (the dropdown's value).
        label: what the dropdown shows; unavailable ones are marked.
        available: True if it loads (or loaded) without network; False if loading failed;
            None if its weights are not cached yet and have not been tried (they may download).
        depth: number of layers (the layer slider's range is ``0 … depth-1``).
        patch_size: patch side in pixels.
    """

    name: str
    label: str
    available: bool | None
    depth: int
    patch_size: int


@dataclass
class DemoResult:
    """One segmentation as the demo shows it.

    Attributes:
        seg: the :class:`Segmentation` (of the possibly downscaled image).
        backbone: the backbone that was used (the fallback if the requested one failed).
        requested: the backbone the visitor asked for.
        notices: things the visitor should know (fallback, downscaling, skipped stages).
        original_size: ``(H, W)`` of the upload before downscaling.
        seconds: wall time of the request, image decoding included.
        depth: number of layers of the backbone used.
    """

    seg: Segmentation
    backbone: str
    requested: str
    notices: list[str]
    original_size: tuple[int, int]
    seconds: float
    depth: int

    @property
    def scale(self) -> float:
        """Factor from the segmented image's pixels to the upload's pixels (1 if not downscaled)."""
        return self.original_size[0] / self.seg.image.shape[0]

    def overlay(self, opacity: float = 0.5) -> Image.Image:
        """The part overlay; ``opacity`` of the label colours in ``[0, 1]``."""
        return self.seg.overlay(float(opacity))

    def mask(self) -> Image.Image:
        """The binary foreground mask (white = foreground).

        Without a foreground/background split (one stage, k > 2) every segment but the
        background (label 0, the one touching the border most) counts as foreground.
        """
        if self.seg.foreground is not None:
            fg = self.seg.foreground
        else:
            fg = self.seg.labels != 0
        return Image.fromarray(fg.astype(np.uint8) * 255)

    def bbox_image(self) -> Image.Image:
        """The image with the foreground's bounding box drawn."""
        return self.seg.bbox_image()

    def record(self) -> dict:
        """What the JSON download contains: box, sizes, settings, timings, notices."""
        seg = self.seg
        box = list(seg.bbox) if seg.bbox is not None else None
        h, w = seg.labels.shape
        out = {
            "bbox": box,
            "bbox_format": "[x0, y0, x1, y1] in pixels of the label map, x1 and y1 exclusive",
            "label_map_size": [int(w), int(h)],
            "original_size": [int(self.original_size[1]), int(self.original_size[0])],
            "bbox_original": [round(v * self.scale) for v in box] if box is not None else None,
            "labels": {str(int(v)): self._role(int(v)) for v in np.unique(seg.labels)},
            "num_segments": seg.num_segments,
            "backbone": self.backbone,
            "config": seg.config.to_dict(),
            "features_cached": seg.features_cached,
            "timings_s": {k: round(v, 4) for k, v in seg.timings.items()},
            "notes": list(self.notices),
        }
        return out

    def _role(self, label: int) -> str:
        fg = self.seg.foreground
        if fg is None:
            return "segment"
        return "foreground" if bool(fg[self.seg.labels == label].any()) else "background"

    def write_files(self, out_dir: str | Path, stem: str = "deepcut") -> list[str]:
        """Write ``<stem>_labels.png`` (label map, one grey level per label) and ``<stem>.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        png = out / f"{stem}_labels.png"
        self.seg.labels_image().save(png)
        meta = out / f"{stem}.json"
        meta.write_text(json.dumps(self.record(), indent=2))
        return [str(png), str(meta)]

    def status_markdown(self) -> str:
        """A one-paragraph summary: segments, time, whether the features were reused."""
        seg, t = self.seg, self.seg.timings
        h, w = seg.patch_labels.shape
        gnn = " + ".join(f"stage {k[-1]} {t[k]:.2f} s" for k in ("stage1", "stage2", "stage3") if k in t)
        feat = ("**features reused** from the cache" if seg.features_cached
                else f"features computed in {t.get('features', 0.0):.2f} s")
        lines = [
            f"**{seg.num_segments} segments** in **{self.seconds:.2f} s** · {feat} · GNN: {gnn or 'not trained'}",
            f"backbone `{self.backbone}` · layer {seg.config.layer if self.depth > 1 else 0} · "
            f"facet `{seg.config.facet}` · {h}×{w} patches",
        ]
        lines += [f"⚠️ {n}" for n in self.notices]
        return "  \n".join(lines)

    def soft_maps(self) -> list[tuple[Image.Image, str]]:
        """Per-label soft assignment pictures (see :func:`deepcut.viz.soft_maps`)."""
        return soft_maps(self.seg)

    def default_point(self) -> tuple[float, float]:
        """A pixel ``(x, y)`` inside the foreground (its box centre if that is foreground), for the
        affinity view before the visitor clicks."""
        seg = self.seg
        h, w = seg.labels.shape
        fg = seg.foreground if seg.foreground is not None else seg.labels != 0
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

    def status_markdown(self) -> str:
        per = self.seconds / max(self.frames, 1)
        lines = [
            f"**{self.frames} frames** in **{self.seconds:.1f} s** ({per:.2f} s per frame) · {self.fps:g} fps · "
            f"backbone `{self.backbone}`",
            f"labels kept from frame to frame in **{self.consistency:.0%}** of frame pairs "
            f"(re-matched {self.stats.get('rematched', 0)}×, re-clustered {self.stats.get('cold_restarts', 0)}×)",
        ]
        lines += [f"⚠️ {n}" for n in self.notices]
        return "  \n".join(lines)


@dataclass
class CosegDemoResult:
    """Several images segmented together (one GNN, shared labels).

    Attributes:
        results: one :class:`DemoResult` per image, in upload order.
        names: the images' file names.
        seconds: wall time of the whole request.
        backbone: the backbone used.
        notices: fallback, downscaling, lowered resolution.
    """

    results: list[DemoResult]
    names: list[str]
    seconds: float
    backbone: str
    notices: list[str]

    def gallery(self, opacity: float = 0.5) -> list[tuple[Image.Image, str]]:
        """``[(overlay, caption), …]``: the same label has the same colour in every image."""
        return [(r.overlay(opacity), f"{name}: {r.seg.num_segments} segments")
                for r, name in zip(self.results, self.names)]

    def status_markdown(self) -> str:
        labels = sorted({int(v) for r in self.results for v in np.unique(r.seg.labels)})
        lines = [f"**{len(self.results)} images** in **{self.seconds:.2f} s** · one graph, one GNN · "
                 f"{len(labels)} shared labels · backbone `{self.backbone}`"]
        lines += [f"⚠️ {n}" for n in self.notices]
        return "  \n".join(lines)


def _safe_stem(name: str | None) -> str:
    stem = Path(name).stem if name else "deepcut"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "deepcut"
    return stem[:60]


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 shrunk (aspect kept) so that its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pil = Image.fromarray(image)
    factor = min(w // size[0], h // size[1])
    if factor >= 2:
        pil = pil.reduce(factor)
    return np.asarray(pil.resize(size, Image.LANCZOS))


class DemoSession:
    """The demo's shared state: models (one per backbone), their availability, and output files.

    Thread safe: several visitors may call :meth:`segment` at the same time; models are built once
    (under a lock) and shared, and :class:`DeepCut`'s feature cache is itself locked.

    Args:
        default_backbone: what the page starts with (falls back to the colour backbone with a
            notice if its weights cannot be loaded).
        max_side: uploads are downscaled to this longer side.
        max_models: how many backbones stay loaded (least recently used ones are dropped).
        cache_size: images whose features each model keeps.
        output_dir: where download files go (default: a fresh temporary folder).
        keep_outputs: how many results' download files are kept on disk.
    """

    def __init__(self, default_backbone: str = DEFAULT_BACKBONE, max_side: int = DEFAULT_MAX_SIDE,
                 max_models: int = 3, cache_size: int = 8, output_dir: str | Path | None = None,
                 keep_outputs: int = 64) -> None:
        self.default_backbone = str(default_backbone)
        self.max_side = int(max_side)
        self.max_models = max(1, int(max_models))
        self.cache_size = int(cache_size)
        self.keep_outputs = max(1, int(keep_outputs))
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="deepcut-demo-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._models: OrderedDict[str, DeepCut] = OrderedDict()
        self._failures: dict[str, tuple[str, float]] = {}  # name -> (reason, time.monotonic())
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()
        self._outputs: list[Path] = []
        self._images: OrderedDict[tuple, tuple[np.ndarray, tuple[int, int], list[str]]] = OrderedDict()

    # -- backbones --------------------------------------------------------------------------------
    def backbone_choices(self) -> list[BackboneChoice]:
        """Every registered backbone, marked by whether it can be used here."""
        out = []
        for spec in list_backbones():
            name = spec["name"]
            with self._lock:
                loaded = name in self._models
                failed = name in self._failures
            if loaded or (not failed and weights_available(name)):
                available, note = True, ""
            elif failed:
                available, note = False, " — unavailable (uses colour)"
            else:
                available, note = None, " — not downloaded yet"
            family = {"vit": "DINO", "dinov2": "DINOv2", "dinov2_reg": "DINOv2 + registers"}.get(
                spec.get("family", ""), spec.get("family", "ViT"))
            desc = "no weights, colour + position" if name == FALLBACK_BACKBONE else (
                f"{family}, patch {spec['patch_size']}, {spec['dim']}-d")
            out.append(BackboneChoice(name, f"{name} ({desc}){note}", available, int(spec["depth"]),
                                      int(spec["patch_size"])))
        return out

    def failure(self, backbone: str) -> str | None:
        """Why ``backbone`` could not be loaded, or None if it did not fail."""
        with self._lock:
            hit = self._failures.get(backbone)
        return hit[0] if hit else None

    def model(self, backbone: str | None = None) -> tuple[DeepCut, str, str | None]:
        """The shared model for ``backbone``: ``(model, name used, notice or None)``.

        Registry names whose weights cannot be loaded fall back to the colour backbone with a notice
        (the failure is remembered for :data:`RETRY_AFTER` seconds, so it costs time once). A local
        folder or hub id that fails raises :class:`DemoError`: the visitor asked for it explicitly.
        """
        name = (backbone or self.default_backbone).strip()
        if not name:
            name = self.default_backbone
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name], name, None
            hit = self._failures.get(name)
            if hit is not None and time.monotonic() - hit[1] > RETRY_AFTER:
                del self._failures[name]  # the network may be back: try once more
                hit = None
            failure = hit[0] if hit else None
        if failure is None:
            try:
                return self._load(name), name, None
            except BackboneLoadError as e:
                if name not in REGISTRY:
                    raise DemoError(str(e)) from None
                with self._lock:
                    self._failures[name] = (str(e), time.monotonic())
                failure = str(e)
                log.warning("backbone %s unavailable, using %s: %s", name, FALLBACK_BACKBONE, e)
        notice = f"`{name}` weights are unavailable here, so the colour backbone was used"
        return self._load(FALLBACK_BACKBONE), FALLBACK_BACKBONE, notice

    def _load(self, name: str) -> DeepCut:
        with self._load_lock:
            with self._lock:
                if name in self._models:
                    return self._models[name]
            model = DeepCut(name, cache_size=self.cache_size)
            with self._lock:
                self._models[name] = model
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            return model

    def startup(self) -> tuple[str, str | None]:
        """Load the default backbone now: ``(backbone in use, notice or None)``.

        The notice explains a fallback to the colour backbone: why, what it means, what to do.
        """
        _, used, notice = self.model(self.default_backbone)
        if notice is None:
            return used, None
        reason = (self.failure(self.default_backbone) or "unknown").splitlines()[0].rstrip(". ") + "."
        return used, (
            f"**The DINO weights of `{self.default_backbone}` could not be loaded**, so the demo uses the "
            f"weight-free **colour backbone**: segments follow colour and position, not meaning. "
            f"Reason: {reason} To use DINO, put its weights in the HuggingFace cache (one download with "
            f"network), or enter a local model folder under *Use your own weights*."
        )

    # -- images ---------------------------------------------------------------------------------
    def prepare_image(self, image: ImageLike) -> tuple[np.ndarray, tuple[int, int], list[str]]:
        """Decode and validate an upload: ``(image (H, W, 3) uint8, original (H, W), notices)``.

        Images larger than ``max_side`` are downscaled. Decoded files are memoised by path,
        modification time and size, so moving a slider does not decode the upload again.

        Raises:
            DemoError: nothing uploaded, or the file is not a readable image.
        """
        if image is None:
            raise DemoError("Please upload an image or pick one of the examples first.")
        key = None
        if isinstance(image, (str, os.PathLike)):
            try:
                st = os.stat(image)
                key = (str(image), st.st_mtime_ns, st.st_size, self.max_side)
            except OSError:
                key = None
        if key is not None:
            with self._lock:
                hit = self._images.get(key)
                if hit is not None:
                    self._images.move_to_end(key)
                    return hit
        try:
            img = load_image(image)
        except ImageLoadError as e:
            shown = str(e)
            if isinstance(image, (str, os.PathLike)):  # do not show server paths
                shown = shown.replace(str(image), Path(image).name)
            raise DemoError(f"Could not read this file as an image: {shown}") from None
        original = (int(img.shape[0]), int(img.shape[1]))
        notices = []
        if max(original) > self.max_side:
            img = downscale(img, self.max_side)
            notices.append(f"the {original[1]}×{original[0]} image was downscaled to "
                           f"{img.shape[1]}×{img.shape[0]} (max side {self.max_side} px)")
        out = (img, original, notices)
        if key is not None:
            with self._lock:
                self._images[key] = out
                while len(self._images) > 8:
                    self._images.popitem(last=False)
        return out

    # -- segmentation ---------------------------------------------------------------------------
    def segment(self, image: ImageLike, backbone: str | None = None, **settings) -> DemoResult:
        """Segment an upload with the shared model of ``backbone``.

        Args:
            image: a path (e.g. Gradio's upload), PIL image, array or bytes.
            backbone: registry name, local model folder or hub id (default: the session's).
            settings: :class:`SegmentConfig` fields (``k``, ``loss``, ``alpha``, ``layer``, ``facet``,
                ``stages``, ``epochs``, ``resolution``, ``largest_component``, ``seed`` …). A layer
                beyond the backbone's depth is clamped, with a notice.

        Raises:
            DemoError: unreadable image, invalid setting, or a requested local model that fails.
        """
        t0 = time.perf_counter()
        img, original, notices = self.prepare_image(image)
        model, used, notice = self.model(backbone)
        notices = ([notice] if notice else []) + list(notices)
        cfg = self._config(settings, model, used, notices)
        try:
            seg = model.segment(img, cfg)
        except DeepCutError as e:
            raise DemoError(str(e)) from None
        notices += seg.notes
        return DemoResult(seg=seg, backbone=used, requested=backbone or self.default_backbone,
                          notices=notices, original_size=original, seconds=time.perf_counter() - t0,
                          depth=int(model.backbone.depth))

    @staticmethod
    def _config(settings: dict, model: DeepCut, used: str, notices: list[str]) -> SegmentConfig:
        """:class:`SegmentConfig` from the page's settings; a too deep layer is clamped (noted)."""
        depth = int(model.backbone.depth)
        settings = {k: v for k, v in settings.items() if v is not None}
        if "layer" in settings and depth > 1:
            layer = int(settings["layer"])
            if not -depth <= layer < depth:
                notices.append(f"layer {layer} does not exist in `{used}` ({depth} layers); using {depth - 1}")
                settings["layer"] = depth - 1
        try:
            return SegmentConfig().replace(**settings)
        except (ConfigError, TypeError, ValueError) as e:
            raise DemoError(f"Invalid setting: {e}") from None

    def segment_video(self, video: str | os.PathLike, backbone: str | None = None, max_frames: int = 48,
                      frame_stride: int = 1, opacity: float = 0.5, progress: ProgressFn | None = None,
                      **settings) -> VideoDemoResult:
        """Segment a video with consistent labels and write the overlay video (MP4) and boxes (JSON).

        Args:
            video: path of a video file (anything ffmpeg reads) or GIF.
            backbone: as for :meth:`segment`.
            max_frames, frame_stride: at most ``max_frames`` frames, every ``frame_stride``-th.
            opacity: colour opacity of the overlay video.
            progress: ``progress(done, total)`` after each frame.
            settings: :class:`SegmentConfig` fields.

        Raises:
            DemoError: nothing uploaded, unreadable video, invalid setting.
        """
        from .temporal import consistency
        from .video import write_video

        if video is None:
            raise DemoError("Please upload a video or pick the example first.")
        t0 = time.perf_counter()
        model, used, notice = self.model(backbone)
        notices = [notice] if notice else []
        cfg = self._config(settings, model, used, notices)
        folder = self._new_output_folder()
        stem = _safe_stem(str(video))
        boxes: list[dict] = []
        label_maps: list[np.ndarray] = []
        first: list[Segmentation] = []
        try:
            stream = model.segment_video(video, cfg, max_frames=int(max_frames), frame_stride=int(frame_stride),
                                         progress=progress)

            def overlays():
                for i, seg in enumerate(stream):
                    if not first:
                        first.append(seg)
                    label_maps.append(seg.patch_labels)
                    boxes.append({"frame": i, "bbox": list(seg.bbox) if seg.bbox is not None else None,
                                  "num_segments": seg.num_segments})
                    yield np.asarray(seg.overlay(float(opacity)))

            out_video = folder / f"{stem}_overlay.mp4"
            write_video(overlays(), out_video, fps=stream.fps)
        except DeepCutError as e:
            raise DemoError(str(e).replace(str(video), Path(str(video)).name)) from None
        notices += stream.notes
        meta = folder / f"{stem}_boxes.json"
        record = {"fps": stream.fps, "frames": boxes, "backbone": used, "config": cfg.to_dict(),
                  "bbox_format": "[x0, y0, x1, y1] in pixels of the processed frames, x1 and y1 exclusive",
                  "notes": notices}
        meta.write_text(json.dumps(record, indent=2))
        return VideoDemoResult(video=str(out_video), files=[str(out_video), str(meta)], frames=len(boxes),
                               fps=float(stream.fps), seconds=time.perf_counter() - t0, backbone=used,
                               notices=notices, consistency=consistency(label_maps), stats=dict(stream.stats),
                               preview=first[0])

    def cosegment(self, images: list, backbone: str | None = None, names: list[str] | None = None,
                  **settings) -> CosegDemoResult:
        """Segment 2 … :data:`MAX_COSEG_IMAGES` images together, so a part gets one label in all of them.

        Raises:
            DemoError: fewer than two or too many images, an unreadable one, an invalid setting.
        """
        images = [im for im in (images or []) if im is not None]
        if len(images) < 2:
            raise DemoError("Please upload at least two images to co-segment.")
        if len(images) > MAX_COSEG_IMAGES:
            raise DemoError(f"Please upload at most {MAX_COSEG_IMAGES} images ({len(images)} were given).")
        names = list(names) if names else [
            Path(str(im)).name if isinstance(im, (str, os.PathLike)) else f"image {i + 1}" for i, im in enumerate(images)]
        t0 = time.perf_counter()
        prepared, notices = [], []
        for name, im in zip(names, images):
            try:
                img, original, notes = self.prepare_image(im)
            except DemoError as e:
                raise DemoError(f"{name}: {e}") from None
            prepared.append((img, original))
            notices += [f"{name}: {n}" for n in notes]
        model, used, notice = self.model(backbone)
        if notice:
            notices.insert(0, notice)
        cfg = self._config(settings, model, used, notices)
        try:
            segs = model.cosegment([img for img, _ in prepared], cfg)
        except DeepCutError as e:
            raise DemoError(str(e)) from None
        seconds = time.perf_counter() - t0
        for n in segs[0].notes if segs else []:
            notices.append(n)
        results = [DemoResult(seg=seg, backbone=used, requested=backbone or self.default_backbone, notices=[],
                              original_size=orig, seconds=seconds, depth=int(model.backbone.depth))
                   for seg, (_, orig) in zip(segs, prepared)]
        return CosegDemoResult(results=results, names=names, seconds=seconds, backbone=used, notices=notices)

    def _new_output_folder(self) -> Path:
        """A fresh folder for one result's files; folders beyond the newest ``keep_outputs`` are deleted."""
        folder = self.output_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        with self._lock:
            self._outputs.append(folder)
            stale = self._outputs[:-self.keep_outputs]
            self._outputs = self._outputs[-self.keep_outputs:]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def save_outputs(self, result: DemoResult, name: str | None = None) -> list[str]:
        """Write the result's downloads (label map PNG, JSON) into a fresh folder; returns their paths."""
        return result.write_files(self._new_output_folder(), _safe_stem(name))

    def save_coseg_outputs(self, result: CosegDemoResult) -> list[str]:
        """Write every image's label map and one JSON with all boxes; returns their paths."""
        folder = self._new_output_folder()
        files, records = [], {}
        stems = []
        for name in result.names:
            stem = _safe_stem(name)
            while stem in stems:
                stem += "_"
            stems.append(stem)
        for r, name, stem in zip(result.results, result.names, stems):
            png = folder / f"{stem}_labels.png"
            r.seg.labels_image().save(png)
            files.append(str(png))
            records[name] = r.record()
        meta = folder / "cosegmentation.json"
        meta.write_text(json.dumps(records, indent=2))
        return files + [str(meta)]

    # -- teaching view ----------------------------------------------------------------------------
    def affinity(self, result: DemoResult, x: float, y: float,
                 frame: tuple[int, int] | None = None) -> tuple[Image.Image, str]:
        """The graph weights from the patch under pixel ``(x, y)`` to every patch, as a picture.

        Args:
            result: the segmentation whose image, backbone and settings are used (its features
                are in the model's cache, so this does not rerun the backbone).
            x, y: the clicked pixel.
            frame: ``(H, W)`` of the picture that was clicked (default: the segmented image).

        Returns:
            ``(picture, caption)``; the picture's longer side is :data:`AFFINITY_SIDE`.
        """
        seg, cfg = result.seg, result.seg.config
        model, _, _ = self.model(result.backbone)
        try:
            feats = model.features(seg.image, cfg.layer, cfg.facet, cfg.resolution, cfg.stride)
        except DeepCutError as e:
            raise DemoError(str(e)) from None
        frame = frame or seg.image.shape[:2]
        grid = (int(feats.shape[0]), int(feats.shape[1]))
        patch = pixel_to_patch(x, y, frame, grid)
        aff = patch_affinity(feats, patch, cfg.loss, cfg.alpha)
        pic = affinity_image(seg.image, aff, patch, signed=cfg.loss == "cc", longest=AFFINITY_SIDE)
        if cfg.loss == "cc":
            pos = float((aff > 0).mean())
            caption = (f"Patch (row {patch[0]}, col {patch[1]}): CC edge weights F·Fᵀ − max/α (α={cfg.alpha:g}). "
                       f"Red pulls patches into the same segment, blue pushes them apart; "
                       f"{pos:.0%} of patches attract it.")
        else:
            strong = float((aff > 0.5 * aff.max()).mean()) if aff.max() > 0 else 0.0
            caption = (f"Patch (row {patch[0]}, col {patch[1]}): NCut edge weights relu(F·Fᵀ)/max. "
                       f"Bright patches are strongly connected to it ({strong:.0%} above half its strongest "
                       f"link); the GNN learns to cut the graph where links are weak.")
        return pic, caption

    def affinity_frame(self, result: DemoResult) -> tuple[int, int]:
        """``(H, W)`` of the pictures :meth:`affinity` draws for ``result`` (for mapping clicks)."""
        h, w = result.seg.image.shape[:2]
        scale = AFFINITY_SIDE / max(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))
