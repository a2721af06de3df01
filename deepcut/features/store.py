"""The feature store: every front end gets its patch features here.

Images, batches of images, video frames, co-segmentation, evaluation and the teaching view all ask
one :class:`FeatureStore` for :class:`PatchFeatures`. It owns

* the resize to the patch grid and the (batched) ViT forward pass, at the config's resolution or, when
  it sets none, the backbone's default (:meth:`FeatureStore.config`: 280 px, 448 for DINOv3);
* the cache of image embeddings (one resumable :class:`~deepcut.backbones.base.TokenState` per image,
  resolution and stride), so another layer, facet, k or loss never reruns the ViT;
* the per-embedding memo of facets and of the Gram matrix ``F Fᵀ`` of the last facet used (only for
  graphs that are built dense, see :data:`deepcut.graph.patch_graph.DENSE_MAX_NODES`);
* the log-binned descriptor.

Features and Gram matrices live on the backbone's device.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..backbones.base import Backbone, TokenState
from ..backbones.tune import EngineChoices
from ..config import MAX_RESOLUTION, MIN_RESOLUTION, SegmentConfig
from ..utils.coerce import as_int
from ..utils.memory import check_request, estimate_bytes, memory_errors, resolve_limit
from ..utils.threads import ThreadPolicy, torch_threads
from .descriptors import log_bin as log_bin_features
from .image import ImageLike, grid_size, image_fingerprint, load_image, resize_for_grid

#: Images of up to this many patches keep their Gram matrix ``F Fᵀ`` cached (4096² float32 = 64 MB each):
#: the graphs built dense (:data:`deepcut.graph.patch_graph.DENSE_MAX_NODES` is this number); larger
#: graphs are compact or sparse and slice no Gram matrix.
GRAM_CACHE_MAX_PATCHES = 4096
#: A batch holds at most this many tokens on the CPU (8 images of 1226 tokens: ViT-S/8 at 280 px; larger
#: batches are no faster there). Attention maps are never materialised (SDPA), so a batch's memory grows
#: with its tokens, not their square.
TOKEN_BUDGET = 8 * 1226
#: The same on a GPU, where larger batches keep it busy (the memory check still halves a batch that
#: would not fit, see :meth:`FeatureStore.embed_many`): 64 images of ViT-S/8 at 280 px.
GPU_TOKEN_BUDGET = 64 * 1226
#: The cache of embeddings drops its least recently used ones while they take more than this
#: (a 1024-px image keeps ~25 MB per ViT-S/8 block it went through), keeping at least one.
CACHE_BYTES = 1 << 30

FacetKey = tuple[int, str, bool]


@dataclass
class ImageEmbedding:
    """The cached forward pass of one image at one resolution and stride.

    Attributes:
        image: ``(H, W, 3)`` uint8 input image.
        work: ``(H', W', 3)`` uint8 resized image the backbone saw.
        grid: patch grid ``(h, w)``.
        state: the backbone's resumable forward state.
        facets: memo of ``(layer, facet, log_bin) → (h*w, D)`` features (``(h*w, 17 D)`` log-binned).
        gram: ``(facet key, W = F Fᵀ (N, N))`` of the last facet whose graph was asked for.
        graph_memo: what the clustering derived from that facet's whole graph and may reuse (e.g. the GCN's
            propagation ``Â X`` ``(N, D)`` per objective, :meth:`~deepcut.graph.patch_graph.PatchGraph.remembered`);
            emptied when the Gram matrix's facet changes.
    """

    image: np.ndarray
    work: np.ndarray
    grid: tuple[int, int]
    state: TokenState
    facets: dict[FacetKey, torch.Tensor] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gram: tuple[FacetKey, torch.Tensor] | None = None
    graph_memo: dict = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes of the tensors this embedding holds (forward state, facets, Gram matrix, graph memo)."""
        tensors = list(self.facets.values()) + ([self.gram[1]] if self.gram is not None else [])
        tensors += [v for v in list(self.graph_memo.values()) if isinstance(v, torch.Tensor)]
        return self.state.nbytes() + sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class PatchFeatures:
    """The features of one image, ready for the pipeline.

    Attributes:
        features: ``(N, D)`` float32 on the backbone's device, ``N = h * w``, row-major over ``grid``.
        grid: patch grid ``(h, w)``.
        image: ``(H, W, 3)`` uint8 input image.
        work_size: ``(H', W')`` of the resized image the backbone saw.
        cached: whether nothing had to be computed (embedding and facet came from the cache).
        seconds: time spent getting them.
        gram: ``F Fᵀ`` ``(N, N)`` when known (cached for graphs of up to
            :data:`GRAM_CACHE_MAX_PATCHES` patches), else None.
        resolution: the working resolution they were computed at (None: not known, e.g. features
            given by the caller); a result's config records it when its own left it to the backbone.
        engine: the engine the backbone computed them in (its ``engine``; None: not known).
        graph_memo: the cached embedding's :attr:`ImageEmbedding.graph_memo` for these features' whole graph, shared
            by every query on them (None: nothing is reused).
    """

    features: torch.Tensor
    grid: tuple[int, int]
    image: np.ndarray
    work_size: tuple[int, int]
    cached: bool = False
    seconds: float = 0.0
    gram: torch.Tensor | None = None
    resolution: int | None = None
    engine: str | None = None
    graph_memo: dict | None = None


def batch_size_for(grid: tuple[int, int], batch_size: int, device: torch.device | None = None) -> int:
    """``batch_size`` lowered so that the batch holds at most :data:`TOKEN_BUDGET` tokens
    (:data:`GPU_TOKEN_BUDGET` on a CUDA ``device``), at least one image."""
    tokens = grid[0] * grid[1] + 1
    budget = GPU_TOKEN_BUDGET if device is not None and torch.device(device).type == "cuda" else TOKEN_BUDGET
    return max(1, min(int(batch_size), budget // tokens))


def _select(state: TokenState, j: int, batch: int) -> TokenState:
    """The state of image ``j`` of a batch of ``batch`` (the state itself for a batch of one)."""
    if batch == 1:
        return state
    def pick(t):
        return t[j:j + 1] if isinstance(t, torch.Tensor) else t

    return TokenState(grid=state.grid, hidden=[pick(h) for h in state.hidden], prefix=state.prefix,
                      extra={k: pick(v) for k, v in state.extra.items()})


class FeatureStore:
    """Patch features of images for one backbone, with a cache of forward passes.

    Thread safe: the cache and every embedding are locked.

    Args:
        backbone: the feature extractor (on the device features should live on).
        cache_size: how many image embeddings to keep (least recently used ones are dropped).
        max_bytes: the cache also drops its least recently used embeddings while they hold more
            than this many bytes (the last one stays).
        threads: torch threads of the ViT forward and the Gram product (None: ``$DEEPCUT_THREADS``,
            else the cores idle at the time; see :mod:`deepcut.utils.threads`).
        max_memory: memory one request may need (bytes or ``"8G"``; None: ``$DEEPCUT_MAX_MEMORY``, else
            half the device's memory; 0 or ``"off"``: unchecked). A batch is made smaller, and an image
            refused with :class:`~deepcut.errors.ResourceLimitError`, before the ViT allocates
            (see :mod:`deepcut.utils.memory`).
        engines: ``"auto"``'s engine per grid-size class (None: the backbone's engine throughout); the
            backbone is switched to a grid's before its forward pass, one forward pass at a time, until
            its engine is set by someone else (that one then stays).
    """

    def __init__(self, backbone: Backbone, cache_size: int = 4, max_bytes: int = CACHE_BYTES,
                 threads: int | None = None, max_memory: int | str | None = None,
                 engines: EngineChoices | None = None) -> None:
        self.backbone, self.engines = backbone, engines
        self._engine_lock, self._engine_set = threading.Lock(), backbone.engine
        self.memory_limit = resolve_limit(max_memory, backbone.device)
        self.threads = ThreadPolicy(threads)
        self.cache_size = as_int("cache_size", cache_size, 0)
        self.max_bytes = as_int("max_bytes", max_bytes, 0)
        self._cache: OrderedDict[tuple, ImageEmbedding] = OrderedDict()
        self._lock = threading.Lock()

    # -- geometry -----------------------------------------------------------------------------------
    def config(self, cfg: SegmentConfig) -> SegmentConfig:
        """``cfg`` with the backbone's default resolution when it sets none (a set one is kept)."""
        return cfg.with_default_resolution(self.backbone.default_resolution)

    def resolution(self, resolution: int | None) -> int:
        """``resolution``, or the backbone's default for None.

        Raises:
            ConfigError: not a whole number in :class:`~deepcut.config.SegmentConfig`'s range for it.
        """
        if resolution is None:
            return int(self.backbone.default_resolution)
        return as_int("resolution", resolution, MIN_RESOLUTION, MAX_RESOLUTION)

    def grid(self, size: tuple[int, int], resolution: int | None, stride: int | None) -> tuple[int, int]:
        """Patch grid ``(h, w)`` of an image of ``size = (H, W)`` at ``resolution`` (None: the backbone's
        default) and ``stride``."""
        stride = self.backbone.check_stride(stride)
        return grid_size(size[0], size[1], self.resolution(resolution), self.backbone.patch_size, stride)

    def _work(self, img: np.ndarray, resolution: int | None, stride: int | None) -> np.ndarray:
        """``img`` resized to the size its patch grid covers (the image the backbone sees)."""
        grid = self.grid(img.shape[:2], resolution, stride)
        return resize_for_grid(img, grid, self.backbone.patch_size, self.backbone.check_stride(stride))

    # -- embeddings ---------------------------------------------------------------------------------
    def embed(self, image: ImageLike, resolution: int | None = None, stride: int | None = None,
              log_bin: bool = False) -> tuple[ImageEmbedding, bool]:
        """The (cached) forward state of an image: ``(embedding, was_cached)`` (``resolution`` None: the
        backbone's default; ``log_bin``: the memory check counts the log-binned descriptor)."""
        (emb, cached), = self.embed_many([image], resolution, stride, log_bin=log_bin)
        return emb, cached

    def embed_many(self, images: Sequence[ImageLike], resolution: int | None = None, stride: int | None = None,
                   batch_size: int = 8, cache: bool = True, facet: tuple[int, str] | None = None,
                   log_bin: bool = False) -> list[tuple[ImageEmbedding, bool]]:
        """Embeddings of several images at ``resolution`` (None: the backbone's default): those not cached
        go through the backbone in batches of images of the same grid (at most ``batch_size``, fewer for
        fine grids). ``facet = (layer,
        name)`` runs the batch through the ViT up to that layer at once (and memoises that facet);
        without it the blocks run lazily, image by image. Returns ``(embedding, was_cached)`` per
        image, in order. ``cache=False`` leaves the cache as it is (video frames).

        Raises:
            ResourceLimitError: one image would need more memory than :attr:`memory_limit` (or more
                patches than :data:`deepcut.utils.memory.MAX_PATCHES`); nothing was allocated.
        """
        stride = self.backbone.check_stride(stride)
        resolution = self.resolution(resolution)
        imgs = [_frozen(load_image(im)) for im in images]  # the cache's own copies: a result cannot change them
        keys = [(image_fingerprint(im), int(resolution), stride) if cache else None for im in imgs]
        out: list[tuple[ImageEmbedding, bool] | None] = [None] * len(imgs)
        todo: dict[tuple[int, int], list[int]] = {}
        for i, (img, key) in enumerate(zip(imgs, keys, strict=False)):
            hit = self._lookup(key) if key is not None else None
            if hit is not None:
                out[i] = (hit, True)
            else:
                todo.setdefault(img.shape[:2], []).append(i)
        for idx in todo.values():
            step = self._checked_step(imgs[idx[0]].shape[:2], resolution, stride, batch_size, log_bin)
            for a in range(0, len(idx), step):
                chunk = idx[a:a + step]
                embs = self._embed_batch([imgs[i] for i in chunk], resolution, stride, facet)
                for i, emb in zip(chunk, embs, strict=False):
                    out[i] = (emb, False)
                    key = keys[i]
                    if key is not None:
                        self._remember(key, emb)
        return out  # type: ignore[return-value]  # every slot is filled: from the cache or the backbone

    def _checked_step(self, size: tuple[int, int], resolution: int, stride: int, batch_size: int,
                      log_bin: bool) -> int:
        """Images per backbone call for images of ``size``: :func:`batch_size_for`, halved while the
        memory estimate is over :attr:`memory_limit`; raises :class:`ResourceLimitError` if one image is."""
        grid = self.grid(size, resolution, stride)
        step = batch_size_for(grid, batch_size, self.backbone.device)
        while step > 1 and self.memory_limit is not None and \
                estimate_bytes(self.backbone, grid, step, log_bin) > self.memory_limit:
            step //= 2
        what = f"an image of {size[1]}x{size[0]} px at resolution {resolution}, stride {stride}"
        check_request(self.backbone, grid, self.memory_limit, step, log_bin, what)
        return step

    def _embed_batch(self, imgs: list[np.ndarray], resolution: int, stride: int,
                     facet: tuple[int, str] | None) -> list[ImageEmbedding]:
        """One backbone call for images of one size; each gets its own slice of the state."""
        works = [self._work(img, resolution, stride) for img in imgs]
        feats = None
        grid = self.grid(imgs[0].shape[:2], resolution, stride)
        with torch_threads(self.threads.vit()), self._engine_for(grid), memory_errors("the ViT forward pass"):
            state = self.backbone.embed(np.stack(works), stride)
            if facet is not None:
                layer = self.backbone.check_layer_facet(int(facet[0]), facet[1])
                feats = self.backbone.facet(state, layer, facet[1])  # (B, N, D): runs the blocks once
        embs = []
        for j, (img, work) in enumerate(zip(imgs, works, strict=False)):
            emb = ImageEmbedding(image=img, work=work, grid=state.grid, state=_select(state, j, len(imgs)))
            if feats is not None and facet is not None:  # feats: facet was given
                emb.facets[(layer, facet[1], False)] = feats[j]
            embs.append(emb)
        return embs

    @contextmanager
    def _engine_for(self, grid: tuple[int, int]) -> Iterator[None]:
        """The block runs with the backbone in ``grid``'s engine (:attr:`engines`), alone; as it is without them."""
        if self.engines is None:
            yield
            return
        with self._engine_lock:
            if self.backbone.engine != self._engine_set:  # set by hand: it stays
                self.engines = None
            else:
                engine = self.engines.engine_for(grid)
                if self.backbone.engine != engine.name:
                    self.backbone.set_engine(engine)
                self._engine_set = self.backbone.engine
            yield

    def _lookup(self, key: tuple) -> ImageEmbedding | None:
        with self._lock:
            emb = self._cache.get(key)
            if emb is not None:
                self._cache.move_to_end(key)
            return emb

    def _remember(self, key: tuple, emb: ImageEmbedding) -> None:
        with self._lock:
            self._cache[key] = emb
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._trim()

    def _trim(self) -> None:
        """Drop the least recently used embeddings while the cache holds more than :attr:`max_bytes`."""
        with self._lock:
            while len(self._cache) > 1 and sum(e.nbytes() for e in self._cache.values()) > self.max_bytes:
                self._cache.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached embedding."""
        with self._lock:
            self._cache.clear()

    # -- facets ---------------------------------------------------------------------------------------
    def facet(self, emb: ImageEmbedding, layer: int, facet: str, log_bin: bool = False) -> tuple[torch.Tensor, bool]:
        """Features ``(h*w, D)`` of one layer / facet of an embedding: ``(features, was_memoised)``."""
        layer = self.backbone.check_layer_facet(as_int("layer", layer), facet)
        key = (layer, facet, bool(log_bin))
        with emb.lock:
            if key in emb.facets:
                return emb.facets[key], True
            plain = emb.facets.get((layer, facet, False))
            if plain is None:
                with torch_threads(self.threads.vit()), self._engine_for(emb.grid), \
                        memory_errors("the ViT forward pass"):
                    plain = self.backbone.facet(emb.state, layer, facet)[0]
                emb.facets[(layer, facet, False)] = plain
            feats = log_bin_features(plain, emb.grid) if log_bin else plain
            emb.facets[key] = feats
            return feats, False

    def gram(self, emb: ImageEmbedding, layer: int, facet: str, log_bin: bool = False) -> torch.Tensor | None:
        """``F Fᵀ`` ``(N, N)`` of a facet, kept in the embedding for graphs of up to
        :data:`GRAM_CACHE_MAX_PATCHES` patches (only the last facet's); None for larger graphs."""
        return self._gram_and_memo(emb, layer, facet, log_bin)[0]

    def _gram_and_memo(self, emb: ImageEmbedding, layer: int, facet: str, log_bin: bool = False
                       ) -> tuple[torch.Tensor | None, dict | None]:
        """:meth:`gram` and, read with it, the memo of its graph (:attr:`ImageEmbedding.graph_memo`)."""
        feats, _ = self.facet(emb, layer, facet, log_bin)
        if feats.shape[0] > GRAM_CACHE_MAX_PATCHES:
            return None, None
        key = (self.backbone.check_layer_facet(int(layer), facet), facet, bool(log_bin))
        with emb.lock:
            if emb.gram is None or emb.gram[0] != key:
                f = feats.float()
                with torch_threads(self.threads.vit()):
                    emb.gram = (key, f @ f.T)
                emb.graph_memo = {}
            return emb.gram[1], emb.graph_memo

    # -- what the pipeline needs ----------------------------------------------------------------------
    def patch_features(self, emb: ImageEmbedding, cfg: SegmentConfig, cached: bool = False,
                       seconds: float = 0.0, gram: bool = True) -> PatchFeatures:
        """:class:`PatchFeatures` of an embedding under ``cfg`` (layer, facet, log_bin)."""
        t = time.perf_counter()
        feats, memo = self.facet(emb, cfg.layer, cfg.facet, cfg.log_bin)
        g, graph_memo = self._gram_and_memo(emb, cfg.layer, cfg.facet, cfg.log_bin) if gram else (None, None)
        self._trim()  # the forward state may have grown
        return PatchFeatures(feats, emb.grid, emb.image, tuple(emb.work.shape[:2]), cached and memo,
                             seconds + time.perf_counter() - t, g, self.config(cfg).resolution,
                             self.backbone.engine, graph_memo)

    def get(self, image: ImageLike, cfg: SegmentConfig, gram: bool = True) -> PatchFeatures:
        """The features of one image under ``cfg`` (cached; at the backbone's default resolution when
        ``cfg`` sets none)."""
        t = time.perf_counter()
        cfg = self.config(cfg)
        emb, cached = self.embed(image, cfg.resolution, cfg.stride, cfg.log_bin)
        return self.patch_features(emb, cfg, cached, time.perf_counter() - t, gram)

    def get_many(self, images: Sequence[ImageLike], cfg: SegmentConfig, batch_size: int = 8,
                 cache: bool = True, gram: bool = True) -> list[PatchFeatures]:
        """The features of several images under ``cfg``, the ViT batched over images of one grid;
        each gets an equal share of the time spent."""
        t = time.perf_counter()
        cfg = self.config(cfg)
        embs = self.embed_many(images, cfg.resolution, cfg.stride, batch_size, cache, (cfg.layer, cfg.facet),
                               cfg.log_bin)
        share = (time.perf_counter() - t) / max(len(embs), 1)
        return [self.patch_features(emb, cfg, cached, share, gram) for emb, cached in embs]


def _frozen(image: np.ndarray) -> np.ndarray:
    """``image`` made read-only (an embedding's image is shared by the cache and every result of it)."""
    image.setflags(write=False)
    return image
