"""``DeepCut``: the facade every front end uses — image in, :class:`Segmentation` out.

Like Segment Anything's ``SamPredictor``, the expensive part (the ViT forward pass) is computed once
per image and cached (:class:`~deepcut.features.store.FeatureStore`); every further question about the
same image (another k, loss, α, stage count, even another layer or facet) only reruns the small
per-image GNN (:func:`~deepcut.stages.run.run_stages`). :meth:`DeepCut.segment_features` is the
lower-level entry, as ``predict_torch`` is beside ``predict``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch

from .backbones import DEFAULT_BACKBONE, load_backbone
from .backbones.base import Backbone
from .backbones.precision import parse_engine, requested_precision
from .backbones.tune import Choice, EngineChoices, choose_engine
from .clustering.arithmetic import pinned as gnn_pinned
from .clustering.fit import Clusterer, fit
from .config import MAX_RESOLUTION, MIN_RESOLUTION, SegmentConfig, make_config
from .errors import ConfigError
from .features.given import as_feature_matrix, given_image
from .features.image import ImageLike
from .features.store import FeatureStore, ImageEmbedding, PatchFeatures
from .graph.patch_graph import PatchGraph
from .segmentation.finish import to_segmentation
from .segmentation.result import Segmentation
from .segmentation.segment import segment_image
from .stages.run import run_stages
from .utils.coerce import as_bool, as_int
from .utils.device import resolve_device
from .utils.memory import guard_memory
from .utils.threads import check_threads

if TYPE_CHECKING:
    from .tasks.discover import Discovery


class DeepCut:
    """Unsupervised segmentation with a pretrained ViT and a per-image GNN.

    Example::

        dc = DeepCut()                                  # DINO ViT-S/8, on the GPU if there is one
        seg = dc.segment("horse.jpg")                   # foreground / background
        parts = dc.segment("horse.jpg", stages=2, k=4)  # reuses the cached ViT features
        parts.overlay().save("parts.png")

    Args:
        backbone: registry name (see :func:`deepcut.list_backbones`), ``"color"``, hub id, local
            folder, or a :class:`~deepcut.backbones.base.Backbone`.
        pretrained: load pretrained weights (``False``: random weights, for tests/benchmarks).
        cache_size: how many image embeddings to keep.
        device: ``None`` (``$DEEPCUT_DEVICE``, else CUDA when available, else CPU), ``"cpu"``,
            ``"cuda[:N]"`` or ``"mps"``. Features, graphs and the GNN live there; results are numpy.
        threads: CPU threads of the ViT forward (``None``: ``$DEEPCUT_THREADS``, else the cores idle
            at the time). The GNN uses one for a short training and, when ``threads`` is None, the idle
            cores for a long one (:meth:`~deepcut.utils.threads.ThreadPolicy.gnn`; else ``threads``); the caller's
            torch setting is restored after each call (see :mod:`deepcut.utils.threads`).
        max_memory: the memory one image may need, in bytes or as ``"8G"`` (None: ``$DEEPCUT_MAX_MEMORY``,
            else half the device's memory; 0 or ``"off"``: no check). An image over it is refused with
            :class:`~deepcut.errors.ResourceLimitError` before the ViT allocates, and an allocation
            failure becomes one too (see :mod:`deepcut.utils.memory`).
        precision: the ViT forward pass's precision: ``"auto"`` (the default, also for None unless
            ``$DEEPCUT_PRECISION`` says otherwise: the fastest engine whose features stay within cosine
            0.999 of float32's, measured on first use of the backbone on this machine, and of every other
            grid-size class it runs at, and stored, see :mod:`deepcut.backbones.tune`), ``"fp32"``,
            ``"bf16"``, ``"fp16"`` or ``"int8"`` (CPU only), or an engine's name such as
            ``"bf16-weights+sdpa"`` or ``"openvino-bf16"`` (CPU only, the ``openvino`` extra). The GNN, the
            losses and the graph are float32 whatever it is (see :mod:`deepcut.backbones.precision`). A
            :class:`~deepcut.backbones.base.Backbone` passed in is switched to it.

    Attributes:
        precision: the precision resolved for this machine (never ``"auto"``): ``"fp32"``, ``"bf16"``,
            ``"fp16"`` or ``"int8"``.
        engine: the name of the engine the ViT runs in (e.g. ``"bf16-weights+sdpa"``; ``"fp32"`` for a
            backbone without weights).
        engine_choice: how it was chosen (:class:`~deepcut.backbones.tune.Choice`: measured now, stored,
            pinned, the rule; with the candidates' measurements where there were some).

    Raises:
        BackboneLoadError: the weights cannot be loaded; the message says what to do.
        ConfigError: the device does not exist here, or the precision is unknown or not for it.
    """

    def __init__(self, backbone: str | Backbone = DEFAULT_BACKBONE, pretrained: bool = True,
                 cache_size: int = 4, device: str | torch.device | None = None,
                 threads: int | None = None, max_memory: int | str | None = None,
                 precision: str | None = None) -> None:
        if device is not None and not isinstance(device, (str, torch.device)):
            raise ConfigError(
                f"device must be None, a name such as 'cpu' or 'cuda:0', or a torch.device, got {device!r}"
            )
        self.device = resolve_device(device)
        check_threads(threads)
        asked = requested_precision(precision, self.device)
        gnn_pinned()  # a wrong $DEEPCUT_GNN_PRECISION fails here, not at the first segmentation
        pretrained = as_bool("pretrained", pretrained)  # "False" (a text) is not False
        self.backbone: Backbone = load_backbone(backbone, pretrained=pretrained).to(self.device)
        self.engine_choice: Choice = choose_engine(self.backbone, asked, threads)
        if self.engine_choice.how == "pinned" and parse_engine(asked) is None:
            self.backbone.set_precision(asked)  # a precision by name: its engine, an attention set by hand kept
        else:
            self.backbone.set_engine(self.engine_choice.engine)
        self.precision = self.backbone.precision  # a backbone without weights computes in fp32
        self.engine = self.backbone.engine
        # "auto": an image at another grid-size class than the default resolution's gets that class's engine
        tuned = self.engine_choice.how in ("measured", "stored")
        self.store = FeatureStore(self.backbone, cache_size, threads=threads, max_memory=max_memory,
                                  engines=EngineChoices(self.backbone, self.engine_choice, threads) if tuned else None)

    # -- features ------------------------------------------------------------------------------------
    @guard_memory
    def embed(self, image: ImageLike, resolution: int | None = None,
              stride: int | None = None) -> tuple[ImageEmbedding, bool]:
        """The (cached) forward state of an image: ``(embedding, was_cached)`` (``resolution`` None: the
        backbone's default, 280 px; 448 for DINOv3)."""
        return self.store.embed(image, resolution, stride)

    @guard_memory
    def features(self, image: ImageLike, layer: int = 11, facet: str = "key", resolution: int | None = None,
                 stride: int | None = None, log_bin: bool = False) -> torch.Tensor:
        """Patch features ``(h, w, D)`` of ``layer`` / ``facet`` (cached per image and settings), at
        ``resolution`` (None: the backbone's default, 280 px; 448 for DINOv3).

        ``log_bin=True`` gives the log-binned descriptor of Amir et al. (``(h, w, 17 D)``, see
        :func:`deepcut.features.descriptors.log_bin`).
        """
        emb, _ = self.store.embed(image, resolution, stride)
        feats, _ = self.store.facet(emb, layer, facet, log_bin)
        return feats.reshape(emb.grid[0], emb.grid[1], -1)

    @guard_memory
    def patch_features(self, image: ImageLike, config: SegmentConfig | None = None, **overrides: Any) -> PatchFeatures:
        """The :class:`~deepcut.features.store.PatchFeatures` that :meth:`segment` clusters for ``image``."""
        return self.store.get(image, make_config(config, overrides))

    def clear_cache(self) -> None:
        self.store.clear()

    def warm_up(self, config: SegmentConfig | None = None, side: int = 64) -> None:
        """Segment a small synthetic ``(side, side)`` image once with ``config`` (its resolution
        replaced by ``side``), then forget its features: kernels, allocators and lazy imports are
        loaded before the first real image (web app start-up, each labelling worker), in the engine of the
        default resolution (its small grid chooses none of its own)."""
        side = as_int("side", side, MIN_RESOLUTION, MAX_RESOLUTION)
        blank = np.zeros((side, side, 3), np.uint8)
        blank[side // 4:3 * side // 4, side // 4:3 * side // 4] = 255
        engines, self.store.engines = self.store.engines, None
        try:
            self.segment(blank, make_config(config, {}).replace(resolution=side))
        finally:
            self.store.engines = engines
        self.clear_cache()

    @property
    def cache_size(self) -> int:
        return self.store.cache_size

    # -- segmentation -----------------------------------------------------------------------------
    @guard_memory
    def segment(self, image: ImageLike, config: SegmentConfig | None = None, **overrides: Any) -> Segmentation:
        """Segment one image.

        Args:
            image: path, PIL image, or ``(H, W)`` / ``(H, W, 3|4)`` numpy array.
            config: settings (default :class:`SegmentConfig`); ``overrides`` replace single fields,
                e.g. ``segment(img, k=4, stages=2)``.

        Returns:
            A :class:`Segmentation` at the input's size.
        """
        return self.segment_with(image, make_config(config, overrides), self.gnn)

    def gnn(self, features: torch.Tensor, **kwargs: Any):
        """:func:`~deepcut.clustering.fit.fit` (a :class:`~deepcut.clustering.fit.Clusterer`) with this model's
        threads: a long training on a large graph uses the cores idle at the time
        (:meth:`deepcut.utils.threads.ThreadPolicy.gnn`), anything else one thread."""
        epochs = kwargs.get("epochs", 10)
        return fit(features, threads=self.store.threads.gnn(len(features), epochs), **kwargs)

    @guard_memory
    def segment_with(self, image: ImageLike, config: SegmentConfig, clusterer: Clusterer) -> Segmentation:
        """:meth:`segment` with another clusterer (e.g. :func:`deepcut.clustering.spectral.spectral_fit`)
        on the same features, stages and post-processing."""
        return segment_image(self.store, image, config, clusterer)

    @guard_memory
    def segment_features(self, features: torch.Tensor | np.ndarray, grid: tuple[int, int],
                         config: SegmentConfig | None = None, clusterer: Clusterer = fit, *,
                         image: np.ndarray | None = None, work_size: tuple[int, int] | None = None,
                         **overrides: Any) -> Segmentation:
        """The pipeline below :meth:`segment`, on features you already have.

        Args:
            features: ``(h * w, D)`` (row-major over ``grid``), ``(h, w, D)`` or ``(1, h * w, D)`` patch features,
                any device.
            grid: patch grid ``(h, w)``.
            config: settings, as for :meth:`segment`; its feature settings (``layer``, ``facet``, ``resolution``,
                ``stride``, ``log_bin``) are not applied, only recorded in the result: say there how ``features``
                were computed (a later :meth:`correct` of the result computes them so).
            **overrides: single fields that replace the config's, e.g. ``k=4``.
            clusterer: :func:`~deepcut.clustering.fit.fit` (the GNN) or a baseline with its signature.
            image: the image the labels are upsampled to, anything :func:`~deepcut.features.image.load_image`
                reads (default: a black image of ``work_size``, or of the grid times the patch size).
            work_size: ``(H', W')`` of the resized image the features were computed on (default:
                the image's size).
        """
        cfg = make_config(config, overrides)
        t0 = time.perf_counter()
        x, grid = as_feature_matrix(features, grid)
        image, work_size = given_image(image, work_size)
        x = x.to(self.device)
        if image is None:
            size = work_size or (grid[0] * self.backbone.patch_size, grid[1] * self.backbone.patch_size)
            image = np.zeros((*size, 3), np.uint8)
        pf = PatchFeatures(x.reshape(grid[0] * grid[1], -1), grid, image, tuple(work_size or image.shape[:2]))
        out = run_stages(PatchGraph(pf.features), grid, cfg, clusterer)
        return to_segmentation(out, pf, cfg, t0)

    @guard_memory
    def discover(self, image: ImageLike, config: SegmentConfig | None = None, objects: int | None = 3,
                 clusterer: Clusterer = fit, **overrides: Any) -> "Discovery":
        """Find up to ``objects`` objects in one image, each with a mask, a box and a score: the graph
        is cut, the foreground's largest component kept and removed, the rest cut again (MaskCut's
        procedure with DeepCut's GNN); ``objects=None`` cuts once with CC instead and needs no N.
        See :mod:`deepcut.tasks.discover`; ``clusterer`` cuts (default the GNN). Returns a
        :class:`deepcut.tasks.discover.Discovery`."""
        from .tasks.discover import discover_features

        t0 = time.perf_counter()
        cfg = make_config(config, overrides)
        objects = None if objects is None else as_int("objects", objects, 1)
        return discover_features(self.store.get(image, cfg), cfg, objects, clusterer, t0=t0)

    @guard_memory
    def correct(self, image: ImageLike, segmentation: Segmentation,
                join: Sequence[tuple[tuple[float, float], tuple[float, float]]] | None = None,
                separate: Sequence[tuple[tuple[float, float], tuple[float, float]]] | None = None) -> Segmentation:
        """Correct a result by clicks: every ``join`` pair of points ends in one segment, every ``separate``
        pair in two (see :mod:`deepcut.tasks.correct`). The result's GNNs continue on the same graph with
        must-link / cannot-link constraints (a few epochs on the cached features: much less than a ViT
        pass); untouched segments keep their labels. ``segmentation`` itself is not changed, so undo is
        correcting it again with the list minus its last pair.

        Args:
            image: the image ``segmentation`` was computed on.
            segmentation: a result of :meth:`segment` (or of an earlier :meth:`correct`).
            join: ``[((x, y), (x, y)), …]`` pairs of points (input pixels) that belong together.
            separate: pairs that do not (applied after the joins: a later pair wins a conflict).

        Returns:
            A new :class:`Segmentation`; its ``notes`` start with one sentence per pair saying what changed.

        Raises:
            ConfigError: no pair, more than :data:`deepcut.tasks.correct.MAX_CORRECTIONS` pairs, a malformed
                pair, a point outside the image, or a segmentation of another image.
        """
        from .tasks.correct import Correction, as_pairs, correct_features

        if not isinstance(segmentation, Segmentation):
            raise ConfigError(f"segmentation must be a Segmentation, got {type(segmentation).__name__}")
        corrections = [Correction("join", p) for p in as_pairs("join", join)]
        corrections += [Correction("separate", p) for p in as_pairs("separate", separate)]
        if not corrections:
            raise ConfigError("nothing to correct: give join=[((x, y), (x, y))] or separate=[…]")
        return correct_features(self.store.get(image, segmentation.config), segmentation, corrections,
                                clusterer=self.gnn)

    # -- video and several images -------------------------------------------------------------------
    def segment_video(self, video, config: SegmentConfig | None = None, max_frames: int = 300,
                      frame_stride: int = 1, batch_size: int = 8, progress: Callable[[int, int], None] | None = None,
                      *, warm_epochs: int | Sequence[int] | None = None, warm: bool = True, match: bool = True,
                      max_pixels: int | None = None, clusterer: Clusterer = fit, **overrides: Any):
        """Segment a video lazily, one :class:`Segmentation` per processed frame, labels consistent over time.

        See :func:`deepcut.tasks.video.segment_video` for the arguments; returns a
        :class:`deepcut.tasks.video.VideoSegmentation` (iterate it for the segmentations).

        Raises:
            VideoLoadError: the file is missing, corrupt, has no video stream or no frames.
        """
        from .tasks.video.segmenter import segment_video

        return segment_video(self.store, video, make_config(config, overrides), max_frames=max_frames,
                             frame_stride=frame_stride, batch_size=batch_size, progress=progress,
                             warm_epochs=warm_epochs, warm=warm, match=match, max_pixels=max_pixels,
                             clusterer=clusterer)

    def live(self, config: SegmentConfig | None = None, *, warm_epochs: int | Sequence[int] | None = None,
             warm: bool = True, match: bool = True, clusterer: Clusterer = fit, **overrides: Any):
        """A live stream (a webcam): returns a :class:`deepcut.tasks.video.LiveSession` whose ``step(frame)`` gives
        the frame's :class:`Segmentation`, labels consistent with the frames before (the same tracking as
        :meth:`segment_video`, one frame at a time), and ``reset()``. Settings as for :meth:`segment`;
        without a ``config``, ``resolution`` defaults to :data:`deepcut.tasks.video.live.LIVE_RESOLUTION` (224: a
        fast grid; a ``config`` keeps its own);
        ``clusterer`` clusters each stage (default the GNN).

        Example::

            live = dc.live(k=3)
            for frame in frames:
                seg = live.step(frame)
        """
        from .tasks.video.live import LIVE_RESOLUTION, LiveSession

        if config is None and "resolution" not in overrides:
            overrides["resolution"] = LIVE_RESOLUTION
        return LiveSession(self.store, make_config(config, overrides), warm_epochs=warm_epochs, warm=warm,
                           match=match, clusterer=clusterer)

    @guard_memory
    def cosegment(self, images: Iterable[ImageLike], config: SegmentConfig | None = None,
                  clusterer: Clusterer = fit, **overrides: Any) -> list[Segmentation]:
        """Segment several images with one GNN so that the same part gets the same label in each
        (see :func:`deepcut.tasks.cosegment.cosegment`; ``clusterer`` clusters each stage, default the GNN).
        Returns one :class:`Segmentation` per image."""
        from .tasks.cosegment import cosegment

        if not isinstance(images, Iterable) or isinstance(images, (str, bytes)):
            raise ConfigError(f"images must be a list (or other iterable) of images, got a {type(images).__name__}")
        return cosegment(self.store, images, make_config(config, overrides), clusterer=clusterer)
