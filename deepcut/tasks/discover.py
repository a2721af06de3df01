"""Object discovery: up to N object masks per image, each with a box and a score.

Two procedures, both on the patch graph of :class:`~deepcut.features.store.PatchFeatures` and both run by
any clusterer of the :class:`~deepcut.clustering.fit.Clusterer` protocol (DeepCut's GNN,
:func:`~deepcut.clustering.fit.fit`, or the spectral relaxation of :mod:`deepcut.clustering.spectral`,
which then makes this the MaskCut procedure on identical features):

**Iterative cuts** (``objects=N``, the MaskCut way). The graph of all patches is cut in two with the
configured loss (``config.loss``, ``config.alpha``, ``config.epochs[0]`` epochs, ``config.seed``).
The side touching the image border less is the foreground (:func:`~deepcut.utils.masks.background_label`,
the pipeline's rule; border cells already taken by earlier objects do not count, and on a tie the
larger side is the background); its largest connected component on the patch grid is the object
(8-connected, as the pipeline's ``largest_component``, so ``objects=1`` gives exactly the
foreground of ``segment(k=2, largest_component=True)`` unless it is below the minimum size). Its patches are
removed from the graph
(:meth:`~deepcut.graph.patch_graph.PatchGraph.subgraph`) and the rest is cut again. It stops after ``N``
objects or when no foreground remains: fewer than ``2 * min_patches`` patches left, the cut is
degenerate (one cluster), or the object would be smaller than ``min_patches`` or cover every
remaining patch. ``config.stages``, ``config.k`` and ``config.largest_component`` are not used.

**Correlation clustering** (``objects=None``, needs no N). The whole graph is cut once with
``loss="cc"`` and an upper bound of :data:`CC_MAX_SEGMENTS` segments (``config.alpha`` sets how
many it finds). The segment touching the border most is the background; every (8-)connected
component of every other segment with at least ``min_patches`` patches is an object. Objects are
ordered by decreasing score.

**Score.** Each object's score is ``1 - NCut(O, R) / 2`` where ``O`` are the object's patches,
``R`` the other patches of the graph it was cut from, and ``NCut(O, R) = cut(O, R) / vol(O) +
cut(O, R) / vol(R)`` on the non-negative NCut affinity ``relu(F Fᵀ) / max`` of that graph
(:func:`~deepcut.graph.patch_graph.affinity`; ``vol`` sums a node's affinities). It is in ``[0, 1]``: 1 when
the object is disconnected from the rest (a perfectly clean cut), 0 when every edge of either side
crosses the cut (or a side has no volume). It is the same for both procedures and for every
clusterer, so scores compare methods.

**Minimum size.** ``min_patches = max(2, ceil(MIN_OBJECT_FRACTION * h * w))`` (1 % of the grid).

**Duplicates and empties.** An object whose full-size mask is empty is dropped; so is one whose
patch mask has IoU > :data:`DUPLICATE_IOU` with an earlier object or lies for more than
:data:`CONTAINED_FRACTION` inside one. (Iterative cuts remove an object's patches, so on the grid
objects are disjoint; the rule guards the CC variant and any clusterer.)

Masks are brought to the input's size by :func:`object_mask` only — the pipeline's upsampling, or
the edge refinement that ``config.refine`` names (:mod:`deepcut.segmentation.refine`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..clustering.fit import Clusterer, ClusterResult, fit
from ..config import SegmentConfig
from ..errors import ConfigError
from ..features.store import PatchFeatures
from ..graph.patch_graph import PatchGraph, cut_score, graph_of, score_graph
from ..segmentation.colors import label_colors
from ..segmentation.refine import segment_maps
from ..segmentation.result import check_opacity
from ..utils.masks import background_label, bbox_of

#: Upper bound on the number of segments of the CC variant (``objects=None``).
CC_MAX_SEGMENTS = 10
#: An object needs at least this fraction of the patch grid (and at least 2 patches).
MIN_OBJECT_FRACTION = 0.01
#: A later object whose patch mask has IoU above this with an earlier one is a duplicate.
DUPLICATE_IOU = 0.5
#: A later object with more than this fraction of its patches inside an earlier one is a duplicate.
CONTAINED_FRACTION = 0.9

_EIGHT = np.ones((3, 3), int)  # 8-connectivity, as utils.masks.largest_component


@dataclass
class DiscoveredObject:
    """One discovered object.

    Attributes:
        mask: ``(H, W)`` bool at the input image's size.
        bbox: ``(x0, y0, x1, y1)`` in input pixels, x1/y1 exclusive.
        score: confidence in ``[0, 1]``, ``1 - NCut(object, rest) / 2`` (see the module doc).
        area: ``mask.sum()``.
        patch_mask: ``(h, w)`` bool on the patch grid.
    """

    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    score: float
    area: int
    patch_mask: np.ndarray


@dataclass
class Discovery:
    """The objects found in one image.

    Attributes:
        objects: in discovery order (first cut first; CC variant: by decreasing score); no empty
            masks, no duplicates.
        image: ``(H, W, 3)`` uint8 input image.
        grid: patch grid ``(h, w)``.
        config: the settings used.
        notes: why discovery stopped, anything dropped.
        seconds: time spent, features included.
    """

    objects: list[DiscoveredObject]
    image: np.ndarray
    grid: tuple[int, int]
    config: SegmentConfig
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        """JSON-friendly facts (no arrays): one entry per object with its box, score and area."""
        return {
            "num_objects": len(self.objects),
            "objects": [{"bbox": [int(v) for v in o.bbox], "score": round(float(o.score), 4), "area": int(o.area)}
                        for o in self.objects],
            "size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "grid": [int(self.grid[0]), int(self.grid[1])],
            "seconds": round(float(self.seconds), 4),
            "notes": list(self.notes),
            "config": self.config.to_dict(),
        }

    def overlay(self, alpha: float = 0.5) -> Image.Image:
        """The image with each object tinted in its own colour (``alpha``: its opacity in ``[0, 1]``), its box and
        ``#i score`` drawn.

        Raises:
            ConfigError: ``alpha`` is not a number in ``[0, 1]``.
        """
        alpha = check_opacity(alpha)
        colors = label_colors(max(len(self.objects), 1))
        out = self.image.astype(np.float32)
        for o, c in zip(self.objects, colors, strict=False):
            out[o.mask] = out[o.mask] * (1.0 - alpha) + c.astype(np.float32) * alpha
        pil = Image.fromarray(out.round().astype(np.uint8))
        draw = ImageDraw.Draw(pil)
        width = max(2, round(max(self.image.shape[:2]) / 200))
        for i, (o, c) in enumerate(zip(self.objects, colors, strict=False), start=1):
            x0, y0, x1, y1 = o.bbox
            color = tuple(int(v) for v in c)
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=color, width=width)
            text = f"#{i} {o.score:.2f}"
            tx, ty = x0 + width, max(y0 + width, 0)
            box = draw.textbbox((tx, ty), text)
            draw.rectangle(box, fill=color)
            draw.text((tx, ty), text, fill=(255, 255, 255))
        return pil


def min_object_patches(grid: tuple[int, int]) -> int:
    """The smallest object, in patches, on a grid ``(h, w)``: ``max(2, ceil(1 % of h * w))``."""
    return max(2, math.ceil(MIN_OBJECT_FRACTION * grid[0] * grid[1]))


def object_mask(patch_mask: np.ndarray, features: PatchFeatures, config: SegmentConfig) -> np.ndarray:
    """A patch mask ``(h, w)`` bool → the object's mask ``(H, W)`` bool at the input image's size.

    The one upsampling of discovery, the pipeline's own (:func:`~deepcut.segmentation.refine.segment_maps`):
    with ``config.refine="none"`` the one-hot map is upsampled bilinearly to the working size and
    thresholded at 1/2, then resized to the input; otherwise the mask is refined to the image's
    edges (e.g. ``"guided"``) and its largest connected piece kept.
    """
    _, mask = segment_maps(features.image, np.asarray(patch_mask, np.int32), tuple(features.work_size), [1],
                           config.refine, largest=True)
    assert mask is not None  # a foreground was asked for
    return mask.astype(bool)


def components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of an ``(h, w)`` bool mask, largest first (ties: scan order, so the
    first is :func:`~deepcut.utils.masks.largest_component`)."""
    lab, n = ndimage.label(mask, structure=_EIGHT)
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    return [lab == (i + 1) for i in np.argsort(-sizes, kind="stable")]


def _is_duplicate(patch_mask: np.ndarray, kept: list[DiscoveredObject]) -> bool:
    size = int(patch_mask.sum())
    for o in kept:
        inter = int((patch_mask & o.patch_mask).sum())
        union = size + int(o.patch_mask.sum()) - inter
        if (union and inter / union > DUPLICATE_IOU) or (size and inter / size > CONTAINED_FRACTION):
            return True
    return False


class _Finder:
    """Discovery state for one image: the full graph, its grid, the objects kept so far."""

    def __init__(self, features: PatchFeatures, config: SegmentConfig, clusterer: Clusterer) -> None:
        self.features, self.config, self.clusterer = features, config, clusterer
        self.grid = (int(features.grid[0]), int(features.grid[1]))
        self.graph: PatchGraph = graph_of(features)
        self.min_patches = min_object_patches(self.grid)
        self.objects: list[DiscoveredObject] = []
        self.notes: list[str] = []

    def cut(self, rows: np.ndarray, k: int, loss: str) -> tuple[PatchGraph, ClusterResult]:
        sub = self.graph.subgraph(rows)
        cfg = self.config
        result = self.clusterer(sub.features, k=k, loss=loss, alpha=cfg.alpha, epochs=cfg.epochs[0],
                                seed=cfg.seed, graph=sub)
        return sub, result

    def grid_map(self, rows: np.ndarray, values: np.ndarray, fill: int = -1) -> np.ndarray:
        """``(h, w)`` int map: ``values`` at ``rows``, ``fill`` elsewhere."""
        out = np.full(self.grid[0] * self.grid[1], fill, np.int64)
        out[rows] = values
        return out.reshape(self.grid)

    def add(self, patch_mask: np.ndarray, score: float) -> bool:
        """Keep an object unless it is empty at full size or a duplicate; returns whether kept."""
        if _is_duplicate(patch_mask, self.objects):
            self.notes.append(f"dropped a duplicate object ({int(patch_mask.sum())} patches)")
            return False
        mask = object_mask(patch_mask, self.features, self.config)
        box = bbox_of(mask)
        if box is None:
            self.notes.append(f"dropped an object that is empty at full size ({int(patch_mask.sum())} patches)")
            return False
        self.objects.append(DiscoveredObject(mask, box, float(score), int(mask.sum()), patch_mask.copy()))
        return True


def _iterative(finder: _Finder, objects: int) -> None:
    """Cut, keep the foreground's largest component, remove it, cut the rest (see the module doc)."""
    rows = np.arange(finder.grid[0] * finder.grid[1])
    cfg = finder.config
    while len(finder.objects) < objects:
        if rows.size < 2 * finder.min_patches:
            finder.notes.append(f"stopped: {rows.size} patches left, fewer than {2 * finder.min_patches}")
            return
        sub, result = finder.cut(rows, 2, cfg.loss)
        if np.unique(result.labels).size < 2:
            finder.notes.append(f"stopped: degenerate cut ({result.note or 'one cluster'})")
            return
        labels = finder.grid_map(rows, result.labels)
        bg = background_label(labels, ignore=-1)
        comps = components((labels != bg) & (labels >= 0))
        obj = comps[0] if comps else np.zeros(finder.grid, bool)
        inside = obj.ravel()[rows]
        if inside.sum() < finder.min_patches or inside.all():
            finder.notes.append(f"stopped: no foreground left ({int(inside.sum())} of {rows.size} patches)")
            return
        score = cut_score(score_graph(sub), inside)
        finder.add(obj, score)
        rows = rows[~inside]


def _correlation(finder: _Finder) -> None:
    """One CC cut; every component of every non-background segment is an object (module doc)."""
    rows = np.arange(finder.grid[0] * finder.grid[1])
    sub, result = finder.cut(rows, CC_MAX_SEGMENTS, "cc")
    if np.unique(result.labels).size < 2:
        finder.notes.append(f"no objects: degenerate cut ({result.note or 'one segment'})")
        return
    labels = finder.grid_map(rows, result.labels)
    bg = background_label(labels)
    adj = score_graph(sub)
    found = []
    for seg in np.unique(labels):
        if seg == bg:
            continue
        for comp in components(labels == seg):
            if comp.sum() >= finder.min_patches:
                found.append((cut_score(adj, comp.ravel()), comp))
    for score, comp in sorted(found, key=lambda t: -t[0]):
        finder.add(comp, score)
    if not finder.objects:
        finder.notes.append("no objects: no segment besides the background has a component of "
                            f"{finder.min_patches} patches or more")


def discover_features(features: PatchFeatures, config: SegmentConfig, objects: int | None = 3,
                      clusterer: Clusterer = fit, t0: float | None = None) -> Discovery:
    """Discover up to ``objects`` objects in an image's patch features (see the module doc).

    Args:
        features: the image's :class:`~deepcut.features.store.PatchFeatures` (``(h * w, D)`` on ``grid``).
        config: settings (loss, alpha, epochs[0], seed). With ``objects=None`` the discovery's
            config records ``loss="cc"``, ``k=CC_MAX_SEGMENTS``.
        objects: the most objects to return (iterative cuts), or None for the CC variant.
        clusterer: :func:`~deepcut.clustering.fit.fit` (the GNN) or a baseline with its signature.
        t0: ``time.perf_counter()`` when the work on this image started (default: now minus the
            features' own seconds).

    Raises:
        ConfigError: ``objects`` is not None and below 1.
    """
    t0 = time.perf_counter() - float(features.seconds) if t0 is None else t0
    if objects is not None and int(objects) < 1:
        raise ConfigError(f"objects must be at least 1 (or None for the CC variant), got {objects}")
    config = config.with_default_resolution(features.resolution)  # the resolution the features were computed at
    if objects is None:
        config = config.replace(loss="cc", k=CC_MAX_SEGMENTS)
    finder = _Finder(features, config, clusterer)
    if objects is None:
        _correlation(finder)
    else:
        _iterative(finder, int(objects))
    return Discovery(finder.objects, features.image, finder.grid, config, finder.notes, time.perf_counter() - t0)
