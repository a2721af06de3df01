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

import numpy as np
import torch

from .clustering import ClusterResult, compact_labels, fit
from .config import SegmentConfig
from .modeling.backbones import DEFAULT_BACKBONE, load_backbone
from .modeling.base import Backbone, TokenState
from .segmentation import Segmentation
from .utils.image import ImageLike, grid_size, image_fingerprint, load_image, resize_for_grid
from .utils.masks import background_label, bbox_of, largest_component, upsample_labels


@dataclass
class ImageEmbedding:
    """The cached forward pass of one image at one resolution and stride.

    Attributes:
        image: ``(H, W, 3)`` uint8 input image.
        work: ``(H', W', 3)`` uint8 resized image the backbone saw.
        grid: patch grid ``(h, w)``.
        state: the backbone's resumable forward state.
        facets: memo of ``(layer, facet) → (h*w, D)`` features.
    """

    image: np.ndarray
    work: np.ndarray
    grid: tuple[int, int]
    state: TokenState
    facets: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class StageOutput:
    """Patch-level result of the clustering stages (``N = h * w`` patches)."""

    labels: np.ndarray  # (N,) int
    soft: np.ndarray  # (N, L)
    foreground_labels: list[int] | None  # labels that form the foreground, None without a bipartition
    losses: list[list[float]]
    timings: dict[str, float]
    notes: list[str]


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


def run_stages(feats: torch.Tensor, grid: tuple[int, int], cfg: SegmentConfig) -> StageOutput:
    """DeepCut's 1–3 clustering stages on patch features ``(N, D)`` laid out on ``grid``.

    1. ``k``-way clustering (a bipartition when ``stages >= 2``); with two segments the one covering
       most of the border is the background (label 0);
    2. the foreground is split into ``k`` parts (labels ``1 … k``);
    3. the background is split into ``bg_k`` parts (label 0 and ``k+1 …``).
    """
    n = feats.shape[0]
    notes: list[str] = []
    losses: list[list[float]] = []
    timings: dict[str, float] = {}
    common = dict(loss=cfg.loss, alpha=cfg.alpha, seed=cfg.seed)

    t = time.perf_counter()
    k1 = 2 if cfg.stages >= 2 else cfg.k
    r1 = fit(feats, k=k1, epochs=cfg.epochs[0], **common)
    timings["stage1"] = time.perf_counter() - t
    losses.append(r1.losses)
    if r1.note:
        notes.append(f"stage 1: {r1.note}")
    raw = r1.labels
    n_found = np.unique(raw).size
    bipartition = cfg.stages >= 2 or cfg.k == 2
    if bipartition:
        bg = background_label(raw.reshape(grid))
        fg = (raw != bg).reshape(grid)
        if cfg.largest_component:
            fg = largest_component(fg)
        labels = fg.ravel().astype(np.int64)
        soft = np.zeros((n, 2), np.float32)
        soft[:, 0] = r1.soft[:, bg]
        soft[:, 1] = 1.0 - r1.soft[:, bg]
        fg_labels = [1]
        if not fg.any():
            notes.append("no foreground found (the whole image is one segment)")
    else:
        if cfg.largest_component:
            notes.append("largest_component applies to a foreground/background split (k=2 or stages>=2); ignored")
        bg = background_label(raw.reshape(grid))
        by_size = _order_by_size(raw)
        # background first, then the other segments by decreasing size
        bg_rank = int(by_size[np.flatnonzero(raw == bg)[0]])
        labels = np.where(by_size == bg_rank, 0, by_size + (by_size < bg_rank))
        soft = np.zeros((n, n_found), np.float32)
        _scatter_soft(soft, np.arange(n), r1, raw, labels)
        fg_labels = None

    if cfg.stages >= 2:
        rows = np.flatnonzero(labels == 1)
        if rows.size >= 2:
            t = time.perf_counter()
            r2 = fit(feats[rows], k=cfg.k, epochs=cfg.epochs[1], **common)
            timings["stage2"] = time.perf_counter() - t
            losses.append(r2.losses)
            if r2.note:
                notes.append(f"stage 2: {r2.note}")
            parts = 1 + _order_by_size(r2.labels)
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
            r3 = fit(feats[rows], k=cfg.bg_k, epochs=cfg.epochs[2], **common)
            timings["stage3"] = time.perf_counter() - t
            losses.append(r3.losses)
            if r3.note:
                notes.append(f"stage 3: {r3.note}")
            # The background part touching the border most keeps label 0, the others follow.
            sub = np.full(n, -1, np.int64)
            sub[rows] = r3.labels
            main = background_label(sub.reshape(grid), ignore=-1)
            ranked = _order_by_size(r3.labels)
            main_rank = int(ranked[np.flatnonzero(r3.labels == main)[0]])
            base = int(labels.max())
            bg_parts = np.where(ranked == main_rank, 0, base + 1 + ranked - (ranked > main_rank))
            labels = labels.copy()
            labels[rows] = bg_parts
            extra = int(bg_parts.max()) + 1 - soft.shape[1]
            if extra > 0:
                soft = np.concatenate([soft, np.zeros((n, extra), np.float32)], axis=1)
            _scatter_soft(soft, rows, r3, r3.labels, bg_parts)
        else:
            notes.append("stage 3 skipped: the background has fewer than 2 patches")
    return StageOutput(labels, soft, fg_labels, losses, timings, notes)


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

    def _facet(self, emb: ImageEmbedding, layer: int, facet: str) -> tuple[torch.Tensor, bool]:
        layer = self.backbone.check_layer_facet(int(layer), facet)
        with emb.lock:
            if (layer, facet) in emb.facets:
                return emb.facets[(layer, facet)], True
            feats = self.backbone.facet(emb.state, layer, facet)[0]
            emb.facets[(layer, facet)] = feats
            return feats, False

    def features(self, image: ImageLike, layer: int = 11, facet: str = "key", resolution: int = 280,
                 stride: int | None = None) -> torch.Tensor:
        """Patch features ``(h, w, D)`` of ``layer`` / ``facet`` (cached per image and settings)."""
        emb, _ = self.embed(image, resolution, stride)
        feats, _ = self._facet(emb, layer, facet)
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
        feats, cached_facet = self._facet(emb, cfg.layer, cfg.facet)
        t_feat = time.perf_counter() - t0
        return self._finish(emb, feats, cfg, cached_image and cached_facet, t0, t_feat)

    def _finish(self, emb: ImageEmbedding, feats: torch.Tensor, cfg: SegmentConfig, cached: bool,
                t0: float, t_feat: float) -> Segmentation:
        out = run_stages(feats, emb.grid, cfg)
        t = time.perf_counter()
        h, w = emb.grid
        patch_labels = out.labels.reshape(h, w).astype(np.int32)
        height, width = emb.image.shape[:2]
        labels = upsample_labels(patch_labels, emb.work.shape[:2], (height, width))
        foreground = bbox = None
        if out.foreground_labels is not None:
            foreground = np.isin(labels, out.foreground_labels)
            bbox = bbox_of(foreground)
        timings = {"features": t_feat, **out.timings, "postprocess": time.perf_counter() - t}
        timings["total"] = time.perf_counter() - t0
        return Segmentation(
            labels=labels, patch_labels=patch_labels, foreground=foreground, bbox=bbox,
            soft=out.soft.reshape(h, w, -1), losses=out.losses, timings=timings, features_cached=cached,
            image=emb.image, config=cfg, notes=out.notes,
        )
