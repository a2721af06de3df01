"""``DeepCut``: the image → segmentation pipeline, with a feature cache.

Like Segment Anything's ``SamPredictor``, the expensive part (the ViT forward pass) is computed once
per image and cached; every further question about the same image (another k, loss, α, stage count,
even another layer or facet) only reruns the small per-image GNN.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .clustering import ClusterResult, affinity_from_gram, fit
from .config import SegmentConfig
from .modeling.backbones import DEFAULT_BACKBONE, load_backbone
from .modeling.base import Backbone, TokenState
from .modeling.descriptors import log_bin as log_bin_features
from .segmentation import Segmentation
from .utils.image import ImageLike, grid_size, image_fingerprint, load_image, resize_for_grid
from .utils.masks import background_label, bbox_of, largest_component, upsample_labels, upsample_segmentation


@dataclass
class ImageEmbedding:
    """The cached forward pass of one image at one resolution and stride.

    Attributes:
        image: ``(H, W, 3)`` uint8 input image.
        work: ``(H', W', 3)`` uint8 resized image the backbone saw.
        grid: patch grid ``(h, w)``.
        state: the backbone's resumable forward state.
        facets: memo of ``(layer, facet, log_bin) → (h*w, D)`` features (``(h*w, 17 D)`` log-binned).
    """

    image: np.ndarray
    work: np.ndarray
    grid: tuple[int, int]
    state: TokenState
    facets: dict[tuple[int, str, bool], torch.Tensor] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gram: tuple[tuple, torch.Tensor] | None = None  # (facet key, W = F Fᵀ) of the last facet used

#: Graphs up to this many patches keep their Gram matrix ``F Fᵀ`` cached (at most 64 MB each).
GRAM_CACHE_MAX_PATCHES = 4096


@dataclass
class StageOutput:
    """Patch-level result of the clustering stages (``N = h * w`` patches)."""

    labels: np.ndarray  # (N,) int
    soft: np.ndarray  # (N, L)
    foreground_labels: list[int] | None  # labels that form the foreground, None without a bipartition
    losses: list[list[float]]
    timings: dict[str, float]
    notes: list[str]
    models: list = field(default_factory=list)  # the trained GNN of stages 1-3 (None: not run)


def _as_grids(grid) -> list[tuple[int, int]]:
    """``grid`` as a list of per-image grids: ``(h, w)`` is one image, ``[(h1, w1), …]`` several."""
    if len(grid) == 2 and all(isinstance(v, (int, np.integer)) for v in grid):
        return [(int(grid[0]), int(grid[1]))]
    return [(int(h), int(w)) for h, w in grid]


def _split_maps(values: np.ndarray, grids: list[tuple[int, int]]) -> list[np.ndarray]:
    """Cut ``(N,)`` per-patch values of stacked images into one ``(h_i, w_i)`` map per image."""
    offsets = np.cumsum([0] + [h * w for h, w in grids])
    return [values[a:b].reshape(g) for a, b, g in zip(offsets[:-1], offsets[1:], grids)]


def _background(labels: np.ndarray, grids: list[tuple[int, int]], ignore: int | None = None) -> int:
    """:func:`background_label` of ``(N,)`` labels of one image or of several stacked images."""
    if len(grids) == 1:
        return background_label(labels.reshape(grids[0]), ignore=ignore)
    return background_label(_split_maps(labels, grids), ignore=ignore)


def _order_by_size(labels: np.ndarray) -> np.ndarray:
    """Map raw cluster ids to ``0 … m-1`` by decreasing size: returns ``(N,)`` new labels."""
    ids, counts = np.unique(labels, return_counts=True)
    rank = {int(i): r for r, i in enumerate(ids[np.argsort(-counts, kind="stable")])}
    return np.array([rank[int(v)] for v in labels], dtype=np.int64)


def _scatter_soft(soft: np.ndarray, rows: np.ndarray, result: ClusterResult, raw_labels: np.ndarray,
                  new_labels: np.ndarray) -> None:
    """Write a stage's soft assignments into the final label columns of ``soft`` for ``rows``."""
    soft[rows] = 0.0
    for raw in np.unique(raw_labels):
        target = int(new_labels[np.flatnonzero(raw_labels == raw)[0]])
        soft[rows, target] = result.soft[:, raw]


def run_stages(feats: torch.Tensor, grid: tuple[int, int] | list[tuple[int, int]], cfg: SegmentConfig,
               fit_fn: Callable[..., ClusterResult] = fit, warm: list | None = None,
               keep_cluster_ids: bool = False,
               background_fn: Callable[[np.ndarray], int] | None = None,
               gram: torch.Tensor | None = None) -> StageOutput:
    """DeepCut's 1–3 clustering stages on patch features ``(N, D)`` laid out on ``grid``.

    1. ``k``-way clustering (a bipartition when ``stages >= 2``); with two segments the one covering
       most of the border is the background (label 0);
    2. the foreground is split into ``k`` parts (labels ``1 … k``);
    3. the background is split into ``bg_k`` parts (label 0 and ``k+1 …``).

    ``fit_fn`` clusters each stage (default: the GNN, :func:`deepcut.clustering.fit`); any function
    with its signature, e.g. a baseline of :mod:`deepcut.evaluation.baselines`, gets the same stages
    and post-processing.

    Video and co-segmentation (:mod:`deepcut.temporal`) use four more options:

    * ``grid`` may be a list of grids: ``feats`` then stacks the patches of several images (one
      graph, one GNN); the background is what covers most of the images' borders together;
    * ``warm``: the trained GNN of each stage of the previous frame (``StageOutput.models``),
      trained further instead of a fresh one (the paper's warm start for video);
    * ``keep_cluster_ids``: number segments by the GNN's cluster index instead of by size, so that
      a warm-started GNN keeps each part's label (background parts then start at ``k + 1``);
    * ``background_fn(stage-1 cluster ids (N,)) -> id``: picks the background cluster of stage 1
      instead of the border rule (e.g. the border rule summed over the frames so far).

    ``gram``: ``feats @ feats.T`` ``(N, N)`` if already known; every stage's graph is then sliced
    from it instead of recomputed (GNN clustering only).
    """
    n = feats.shape[0]
    grids = _as_grids(grid)
    rank = (lambda v: np.asarray(v, np.int64)) if keep_cluster_ids else _order_by_size
    models: list = [None, None, None]

    def fit_stage(stage: int, rows: np.ndarray | None, **kw) -> ClusterResult:
        x = feats if rows is None else feats[rows]
        if gram is not None and fit_fn is fit:
            sub = gram if rows is None else gram[rows][:, rows]
            kw["adj"] = affinity_from_gram(sub, cfg.loss, cfg.alpha)
        prev = warm[stage] if warm is not None and stage < len(warm) else None
        result = fit_fn(x, model=prev, **kw) if prev is not None else fit_fn(x, **kw)
        models[stage] = result.model
        return result

    notes: list[str] = []
    losses: list[list[float]] = []
    timings: dict[str, float] = {}
    common = dict(loss=cfg.loss, alpha=cfg.alpha, seed=cfg.seed)

    t = time.perf_counter()
    k1 = 2 if cfg.stages >= 2 else cfg.k
    r1 = fit_stage(0, None, k=k1, epochs=cfg.epochs[0], **common)
    timings["stage1"] = time.perf_counter() - t
    losses.append(r1.losses)
    if r1.note:
        notes.append(f"stage 1: {r1.note}")
    raw = r1.labels
    n_found = np.unique(raw).size
    bipartition = cfg.stages >= 2 or cfg.k == 2
    if bipartition:
        bg = background_fn(raw) if background_fn is not None else _background(raw, grids)
        fg = raw != bg
        if cfg.largest_component:
            fg = np.concatenate([largest_component(m).ravel() for m in _split_maps(fg, grids)])
        labels = fg.astype(np.int64)
        soft = np.zeros((n, 2), np.float32)
        soft[:, 0] = r1.soft[:, bg]
        soft[:, 1] = 1.0 - r1.soft[:, bg]
        fg_labels = [1]
        if not fg.any():
            notes.append("no foreground found (the whole image is one segment)")
    else:
        if cfg.largest_component:
            notes.append("largest_component applies to a foreground/background split (k=2 or stages>=2); ignored")
        bg = background_fn(raw) if background_fn is not None else _background(raw, grids)
        by_size = rank(raw)
        # background first, then the other segments by decreasing size
        bg_rank = int(by_size[np.flatnonzero(raw == bg)[0]])
        labels = np.where(by_size == bg_rank, 0, by_size + (by_size < bg_rank))
        soft = np.zeros((n, max(n_found, int(labels.max()) + 1)), np.float32)
        _scatter_soft(soft, np.arange(n), r1, raw, labels)
        fg_labels = None

    if cfg.stages >= 2:
        rows = np.flatnonzero(labels == 1)
        if rows.size >= 2:
            t = time.perf_counter()
            r2 = fit_stage(1, rows, k=cfg.k, epochs=cfg.epochs[1], **common)
            timings["stage2"] = time.perf_counter() - t
            losses.append(r2.losses)
            if r2.note:
                notes.append(f"stage 2: {r2.note}")
            parts = 1 + rank(r2.labels)
            labels = labels.copy()
            labels[rows] = parts
            soft = np.concatenate([soft[:, :1], np.zeros((n, int(parts.max())), np.float32)], axis=1)
            soft[rows, 0] = 0.0
            _scatter_soft(soft, rows, r2, r2.labels, parts)
            fg_labels = sorted(int(v) for v in np.unique(parts))
        else:
            notes.append("stage 2 skipped: the foreground has fewer than 2 patches")
    if cfg.stages >= 3:
        rows = np.flatnonzero(labels == 0)
        if rows.size >= 2:
            t = time.perf_counter()
            r3 = fit_stage(2, rows, k=cfg.bg_k, epochs=cfg.epochs[2], **common)
            timings["stage3"] = time.perf_counter() - t
            losses.append(r3.losses)
            if r3.note:
                notes.append(f"stage 3: {r3.note}")
            # The background part touching the border most keeps label 0, the others follow.
            sub = np.full(n, -1, np.int64)
            sub[rows] = r3.labels
            main = _background(sub, grids, ignore=-1)
            ranked = rank(r3.labels)
            main_rank = int(ranked[np.flatnonzero(r3.labels == main)[0]])
            base = int(cfg.k) if keep_cluster_ids else int(labels.max())
            bg_parts = np.where(ranked == main_rank, 0, base + 1 + ranked - (ranked > main_rank))
            labels = labels.copy()
            labels[rows] = bg_parts
            extra = int(bg_parts.max()) + 1 - soft.shape[1]
            if extra > 0:
                soft = np.concatenate([soft, np.zeros((n, extra), np.float32)], axis=1)
            _scatter_soft(soft, rows, r3, r3.labels, bg_parts)
        else:
            notes.append("stage 3 skipped: the background has fewer than 2 patches")
    return StageOutput(labels, soft, fg_labels, losses, timings, notes, models)


class DeepCut:
    """Unsupervised segmentation with a pretrained ViT and a per-image GNN.

    Example::

        dc = DeepCut()                                  # DINO ViT-S/8
        seg = dc.segment("horse.jpg")                   # foreground / background
        parts = dc.segment("horse.jpg", stages=2, k=4)  # reuses the cached ViT features
        parts.overlay().save("parts.png")

    Args:
        backbone: registry name (see :func:`deepcut.list_backbones`), ``"color"``, hub id, local
            folder, or a :class:`~deepcut.modeling.base.Backbone`.
        pretrained: load pretrained weights (``False``: random weights, for tests/benchmarks).
        cache_size: how many image embeddings to keep.

    Raises:
        BackboneLoadError: the weights cannot be loaded; the message says what to do.
    """

    def __init__(self, backbone: str | Backbone = DEFAULT_BACKBONE, pretrained: bool = True,
                 cache_size: int = 4) -> None:
        self.backbone: Backbone = load_backbone(backbone, pretrained=pretrained)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple, ImageEmbedding] = OrderedDict()
        self._lock = threading.Lock()

    # -- features ------------------------------------------------------------------------------------
    def embed(self, image: ImageLike, resolution: int = 280, stride: int | None = None) -> tuple[ImageEmbedding, bool]:
        """The (cached) forward state of an image: ``(embedding, was_cached)``."""
        img = load_image(image)
        stride = self.backbone.check_stride(stride)
        key = (image_fingerprint(img), int(resolution), stride)
        with self._lock:
            emb = self._cache.get(key)
            if emb is not None:
                self._cache.move_to_end(key)
                return emb, True
        grid = grid_size(img.shape[0], img.shape[1], int(resolution), self.backbone.patch_size, stride)
        work = resize_for_grid(img, grid, self.backbone.patch_size, stride)
        state = self.backbone.embed(work[None], stride)
        emb = ImageEmbedding(image=img, work=work, grid=state.grid, state=state)
        with self._lock:
            self._cache[key] = emb
            while len(self._cache) > max(self.cache_size, 1):
                self._cache.popitem(last=False)
        return emb, False

    def _facet(self, emb: ImageEmbedding, layer: int, facet: str, log_bin: bool = False) -> tuple[torch.Tensor, bool]:
        layer = self.backbone.check_layer_facet(int(layer), facet)
        key = (layer, facet, bool(log_bin))
        with emb.lock:
            if key in emb.facets:
                return emb.facets[key], True
            plain = emb.facets.get((layer, facet, False))
            if plain is None:
                plain = self.backbone.facet(emb.state, layer, facet)[0]
                emb.facets[(layer, facet, False)] = plain
            feats = log_bin_features(plain, emb.grid) if log_bin else plain
            emb.facets[key] = feats
            return feats, False

    def features(self, image: ImageLike, layer: int = 11, facet: str = "key", resolution: int = 280,
                 stride: int | None = None, log_bin: bool = False) -> torch.Tensor:
        """Patch features ``(h, w, D)`` of ``layer`` / ``facet`` (cached per image and settings).

        ``log_bin=True`` gives the log-binned descriptor of Amir et al. (``(h, w, 17 D)``, see
        :func:`deepcut.modeling.descriptors.log_bin`).
        """
        emb, _ = self.embed(image, resolution, stride)
        feats, _ = self._facet(emb, layer, facet, log_bin)
        return feats.reshape(emb.grid[0], emb.grid[1], -1)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- segmentation -----------------------------------------------------------------------------
    def segment(self, image: ImageLike, config: SegmentConfig | None = None, **overrides) -> Segmentation:
        """Segment one image.

        Args:
            image: path, PIL image, or ``(H, W)`` / ``(H, W, 3|4)`` numpy array.
            config: settings (default :class:`SegmentConfig`); ``overrides`` replace single fields,
                e.g. ``segment(img, k=4, stages=2)``.

        Returns:
            A :class:`Segmentation` at the input's size.
        """
        cfg = (config or SegmentConfig()).replace(**overrides) if overrides else (config or SegmentConfig())
        t0 = time.perf_counter()
        emb, cached_image = self.embed(image, cfg.resolution, cfg.stride)
        feats, cached_facet = self._facet(emb, cfg.layer, cfg.facet, cfg.log_bin)
        t_feat = time.perf_counter() - t0
        return self._finish(emb, feats, cfg, cached_image and cached_facet, t0, t_feat)

    def _gram(self, emb: ImageEmbedding, cfg: SegmentConfig, feats: torch.Tensor) -> torch.Tensor | None:
        """``F Fᵀ`` of the facet in use, cached in the embedding for graphs of up to
        :data:`GRAM_CACHE_MAX_PATCHES` patches (only the last facet's is kept)."""
        if feats.shape[0] > GRAM_CACHE_MAX_PATCHES:
            return None
        key = (cfg.layer % self.backbone.depth, cfg.facet, cfg.log_bin)
        with emb.lock:
            if emb.gram is None or emb.gram[0] != key:
                f = feats.float()
                emb.gram = (key, f @ f.T)
            return emb.gram[1]

    def _finish(self, emb: ImageEmbedding, feats: torch.Tensor, cfg: SegmentConfig, cached: bool,
                t0: float, t_feat: float, fit_fn: Callable[..., ClusterResult] = fit) -> Segmentation:
        gram = self._gram(emb, cfg, feats) if fit_fn is fit else None
        out = run_stages(feats, emb.grid, cfg, fit_fn, gram=gram)
        return to_segmentation(out, emb.image, emb.work.shape[:2], emb.grid, cfg, cached, t0, t_feat)

    # -- video and several images (deepcut.temporal) --------------------------------------------------
    def segment_video(self, video, config: SegmentConfig | None = None, max_frames: int = 300,
                      frame_stride: int = 1, batch_size: int = 8, progress: Callable[[int, int], None] | None = None,
                      *, warm_epochs: int | tuple[int, int, int] | None = None, **overrides):
        """Segment a video lazily, one :class:`Segmentation` per processed frame, labels consistent over time.

        The ViT runs on batches of ``batch_size`` frames; the GNN of each frame warm-starts the
        next one (fewer epochs after the first frame, ``warm_epochs``), and the segments of each
        frame are matched to those of the previous one, so a part keeps its label and colour.

        Args:
            video: path of a video (mp4, webm, mov, mkv, avi, gif …) or of a folder of frames, or a
                sequence of frames (``(T, H, W, 3)`` array, list of arrays / PIL images / paths).
            config: settings, as for :meth:`segment`; ``overrides`` replace single fields.
            max_frames: at most this many frames are processed (a note says when the video is longer).
            frame_stride: process every ``frame_stride``-th frame.
            batch_size: frames per ViT forward pass.
            progress: called as ``progress(done, total)`` after each frame; ``total`` is the
                expected number of frames (an estimate for some formats; ``done == total`` at the end).
            warm_epochs: GNN epochs of stages 1-3 for frames after the first (default: a fifth of
                ``config.epochs``).

        Returns:
            A :class:`deepcut.temporal.VideoSegmentation`: iterate it for the segmentations; its
            ``fps``, ``info`` and ``notes`` describe the frames read.

        Raises:
            VideoLoadError: the file is missing, corrupt, has no video stream or no frames.
        """
        from .temporal import segment_video

        return segment_video(self, video, config, max_frames=max_frames, frame_stride=frame_stride,
                             batch_size=batch_size, progress=progress, warm_epochs=warm_epochs, **overrides)

    def cosegment(self, images, config: SegmentConfig | None = None, **overrides) -> list[Segmentation]:
        """Segment several images with one GNN so that the same part gets the same label in each.

        All patches of all images form one graph; one GNN is trained on it (every stage), so labels
        and colours are shared. Returns one :class:`Segmentation` per image, in order.
        """
        from .temporal import cosegment

        return cosegment(self, images, config, **overrides)


def to_segmentation(out: StageOutput, image: np.ndarray, work_size: tuple[int, int], grid: tuple[int, int],
                    cfg: SegmentConfig, cached: bool, t0: float, t_feat: float) -> Segmentation:
    """Turn the patch labels of one image into its :class:`Segmentation`.

    Args:
        out: the stages' output for the image's ``N = h * w`` patches.
        image: ``(H, W, 3)`` uint8 input image.
        work_size: ``(H', W')`` of the resized image the backbone saw.
        grid: patch grid ``(h, w)``.
        cached: whether the features came from a cache.
        t0: ``time.perf_counter()`` when the work on this image started; ``t_feat``: seconds spent
            on features.
    """
    t = time.perf_counter()
    h, w = grid
    patch_labels = out.labels.reshape(h, w).astype(np.int32)
    height, width = image.shape[:2]
    foreground = bbox = None
    if out.foreground_labels is None:
        labels = upsample_labels(patch_labels, tuple(work_size), (height, width))
    else:
        labels, foreground = upsample_segmentation(patch_labels, tuple(work_size), (height, width),
                                                   out.foreground_labels)
        bbox = bbox_of(foreground)
    timings = {"features": t_feat, **out.timings, "postprocess": time.perf_counter() - t}
    timings["total"] = time.perf_counter() - t0
    return Segmentation(
        labels=labels, patch_labels=patch_labels, foreground=foreground, bbox=bbox,
        soft=out.soft.reshape(h, w, -1), losses=out.losses, timings=timings, features_cached=cached,
        image=image, config=cfg, notes=list(out.notes),
    )
