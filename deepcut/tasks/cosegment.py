"""Co-segmentation: several images segmented with one graph and one GNN, so that the same part gets
the same label (and colour) in every image.

The patches of all images form one graph (the full affinity ``F Fᵀ`` over the stacked features, so
similar parts of different images are connected) and one GNN is trained on it in every stage, which
is what the paper does for several images. With ``loss="cc"`` the number of segments is found once
for all images.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ..clustering.fit import Clusterer, fit
from ..config import MIN_RESOLUTION, SegmentConfig, make_config
from ..errors import ConfigError, ImageLoadError
from ..features.image import ImageLike, load_image
from ..features.store import FeatureStore, PatchFeatures
from ..graph.patch_graph import PatchGraph, graph_of
from ..segmentation.finish import to_segmentation
from ..segmentation.result import Segmentation
from ..stages.run import StageOutput, run_stages

#: Co-segmentation clusters one dense graph of all patches; beyond this many patches the
#: resolution is lowered (the graph's N x N matrices take ~0.25 GB each at 8000 patches).
MAX_COSEG_PATCHES = 8000


def _load_images(images: ImageLike | Iterable[ImageLike]) -> list[np.ndarray]:
    """The images of ``images``: a folder of frames, a list (or other iterable) of images, a ``(n, H, W, 3)``
    array, or one image (a path, bytes, an ``(H, W[, 3])`` array, a PIL image) taken as a list of one."""
    items: list[Any]
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        from .video.frames import frame_files

        items = list(frame_files(images))
    elif isinstance(images, np.ndarray):
        items = list(images) if images.ndim >= 4 else [images]
    elif isinstance(images, Iterable) and not isinstance(images, (str, bytes)):
        items = list(images)
    else:  # one path, bytes or PIL image
        items = [images]
    out = []
    for i, img in enumerate(items):
        try:
            out.append(load_image(img))
        except ImageLoadError as e:
            raise ImageLoadError(f"image {i + 1}: {e}") from None
    if not out:
        raise ConfigError("co-segmentation needs at least one image")
    return out


def fit_resolution(store: FeatureStore, sizes: list[tuple[int, int]], cfg: SegmentConfig,
                   max_patches: int) -> tuple[SegmentConfig, str | None]:
    """``cfg`` with the resolution lowered until images of ``sizes`` (``(H, W)`` each) have at most
    ``max_patches`` patches together, and a note saying so (None when nothing changed)."""
    def total(res: int) -> int:
        return sum(h * w for h, w in (store.grid(s, res, cfg.stride) for s in sizes))

    res = int(cfg.resolution)
    if total(res) <= max_patches:
        return cfg, None
    res = max(MIN_RESOLUTION, int(res * math.sqrt(max_patches / total(res))))
    while total(res) > max_patches and res > MIN_RESOLUTION:
        res = max(MIN_RESOLUTION, res - 8)
    if total(res) > max_patches:
        raise ConfigError(f"{len(sizes)} images are too many to co-segment at once (more than {max_patches} "
                          f"patches even at the lowest resolution); split them into smaller groups")
    note = (f"resolution lowered from {cfg.resolution} to {res} so that the {len(sizes)} images fit in "
            f"one graph of at most {max_patches} patches")
    return cfg.replace(resolution=res), note


def cosegment(store: FeatureStore, images: Iterable[ImageLike], config: SegmentConfig | None = None,
              max_patches: int = MAX_COSEG_PATCHES, clusterer: Clusterer = fit, **overrides: Any) -> list[Segmentation]:
    """Segment several images together: one graph over all their patches, one GNN per stage.

    Every stage of :func:`~deepcut.stages.run.run_stages` runs on the union: the background is the
    segment that covers most of the images' borders together, foreground parts (stage 2) and
    background parts (stage 3) are clustered over all images at once, so one label means one part
    in every image.

    Args:
        store: the :class:`~deepcut.features.store.FeatureStore` that computes and caches the features
            (a :class:`~deepcut.DeepCut`'s is ``dc.store``; ``dc.cosegment(...)`` passes it).
        images: paths, arrays, PIL images (or a folder path).
        config: settings, as for :meth:`DeepCut.segment`.
        **overrides: single fields that replace the config's, e.g. ``k=4``.
        max_patches: if the images together have more patches, the resolution is lowered (a note
            says so) to keep the dense graph affordable.
        clusterer: clusters each stage (default the GNN, :func:`~deepcut.clustering.fit.fit`).

    Returns:
        One :class:`Segmentation` per image, in order.
    """
    cfg = store.config(make_config(config, overrides))  # the backbone's resolution when none is set
    t0 = time.perf_counter()
    imgs = _load_images(images)
    cfg, note = fit_resolution(store, [im.shape[:2] for im in imgs], cfg, max_patches)
    feats = store.get_many(imgs, cfg, gram=len(imgs) == 1)
    graph = graph_of(feats[0]) if len(feats) == 1 else PatchGraph(torch.cat([f.features for f in feats], dim=0))
    out = run_stages(graph, [f.grid for f in feats], cfg, clusterer)
    if note:
        out.notes.insert(0, note)
    return [
        _one(out, f, a, cfg, t0) for f, a in zip(feats, np.cumsum([0] + [len(f.features) for f in feats]), strict=False)
    ]


def _one(out: StageOutput, feats: PatchFeatures, start: int, cfg: SegmentConfig, t0: float) -> Segmentation:
    """One image's :class:`Segmentation` from the stages of all images (its patches start at ``start``)."""
    end = start + feats.grid[0] * feats.grid[1]
    part = StageOutput(out.labels[start:end], out.soft[start:end], out.foreground_labels, out.losses,
                       out.timings, list(out.notes), out.models, list(out.restarts))
    seg = to_segmentation(part, feats, cfg, t0)
    if seg.foreground is not None and not seg.foreground.any():
        seg.notes.append("no foreground in this image (its patches all joined the shared background)")
    return seg
