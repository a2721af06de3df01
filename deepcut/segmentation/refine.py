"""Edge-aware refinement: patch-grid segment probabilities → a pixel label map whose edges follow the image.

DeepCut labels patches (8 × 8 pixels of the working image, about 14 × 14 pixels of a 481-pixel
photo), so an upsampled label map is a staircase. :func:`refine` upsamples the per-segment
probabilities ``(h, w, L)`` to the image and filters them with the image as the guide, then takes
the arg-max, so segment boundaries snap to the image's edges. Any number of segments works.

Methods (:data:`METHODS`), all on maintained libraries:

* ``"none"``: bilinear upsampling of the probabilities, then arg-max (DeepCut's own upsampling);
* ``"guided"``: the edge-preserving guided filter (He et al.) of each probability map, guided by the
  RGB image (``cv2.ximgproc`` of ``opencv-contrib-python-headless``). Parameters: ``radius`` (in
  patch cells; 1.0 = the window reaches one patch from its centre) and ``eps`` (the edge threshold,
  a variance of intensities in ``[0, 1]``: smaller keeps weaker edges). The
  default of :func:`refine` and the fastest;
* ``"crf"``: a fully connected CRF (Krähenbühl & Koltun) with the upsampled probabilities as unary
  and a Gaussian + bilateral pairwise term (``pydensecrf.densecrf`` of ``pydensecrf2``). Parameters:
  ``iterations``, ``sxy`` (bilateral spatial scale, in patch cells), ``srgb`` (bilateral colour
  scale, 0-255), ``compat`` (bilateral weight), ``smooth_sxy`` (pixels) and ``smooth_compat`` of the
  Gaussian term, ``confidence`` (the unary trusts the probabilities this much, the rest is uniform),
  ``side`` (inference at this longer side at most, marginals upsampled bilinearly: the cost of the
  permutohedral lattice grows with the pixels; 0 = full size).

Defaults (:data:`DEFAULTS`) are the best measured by ``benchmarks/refine.py`` (docs/results/refine.md).
Images with a longer side above ``max_side`` are refined at that size and the labels resized back.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..config import REFINEMENTS
from ..errors import ConfigError, DeepCutError
from ..utils.masks import largest_component
from .upsample import resize_nearest, upsample_labels, upsample_segmentation

#: The refinement methods; ``"none"`` is DeepCut's plain (bilinear) upsampling.
METHODS: tuple[str, ...] = REFINEMENTS
#: Each method's parameters and their defaults (lengths in patch cells, see the module doc).
DEFAULTS: dict[str, dict[str, float]] = {
    "none": {},
    "guided": {"radius": 0.75, "eps": 3e-4},
    "crf": {"iterations": 5, "sxy": 0.5, "srgb": 20.0, "compat": 5.0, "smooth_sxy": 3.0, "smooth_compat": 3.0,
            "confidence": 0.9, "side": 320},
}
#: What each parameter may be: ``(lowest, highest, whole number)``, the lowest excluded where it is ``0.0`` (a
#: float) and included where it is ``0`` (an int); ``None``: no bound.
RANGES: dict[str, tuple[float | int, float | None, bool]] = {
    "radius": (0.0, None, False), "eps": (0.0, None, False), "iterations": (1, None, True),
    "sxy": (0.0, None, False), "srgb": (0.0, None, False), "compat": (0, None, False),
    "smooth_sxy": (0.0, None, False), "smooth_compat": (0, None, False), "confidence": (0.0, 1.0, False),
    "side": (0, None, True),
}
#: Longer image side (pixels) above which the refinement runs on a downscaled copy.
MAX_SIDE = 1024


class MissingLibraryError(DeepCutError, ImportError):
    """The optional library of a refinement method is not installed."""


def check_method(method: str, params: dict[str, Any] | None = None) -> dict[str, float]:
    """The parameters of ``method``: its :data:`DEFAULTS` updated by ``params``.

    Raises:
        ConfigError: an unknown method or parameter.
    """
    if method not in METHODS:
        raise ConfigError(f"refinement method must be one of {METHODS}, got {method!r}")
    unknown = sorted(set(params or {}) - set(DEFAULTS[method]))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} of refinement {method!r}; "
                          f"valid: {sorted(DEFAULTS[method])}")
    return {**DEFAULTS[method], **{name: _checked(name, value) for name, value in (params or {}).items()}}


def _checked(name: str, value: Any) -> float:
    """Parameter ``name``'s ``value`` as a number within its :data:`RANGES`.

    Raises:
        ConfigError: not a number, not whole where it must be, or out of its range.
    """
    low, high, whole = RANGES[name]
    wants = ("a whole number" if whole else "a number") + (f" > {low:g}" if isinstance(low, float) else
                                                           f" >= {low}") + (f" and <= {high:g}" if high else "")
    if isinstance(value, (bool, str)) or value is None:
        raise ConfigError(f"refinement parameter {name} must be {wants}, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"refinement parameter {name} must be {wants}, got {value!r}") from None
    bad_low = out <= low if isinstance(low, float) else out < low
    if not math.isfinite(out) or bad_low or (high is not None and out > high) or (whole and not out.is_integer()):
        raise ConfigError(f"refinement parameter {name} must be {wants}, got {value!r}")
    return out


def as_probabilities(probs: np.ndarray) -> np.ndarray:
    """Per-cell segment probabilities ``(h, w, L)`` float32 from soft assignments ``(h, w, L)``
    (negative values clipped, each cell normalised to sum 1) or from integer labels ``(h, w)``
    (one-hot, ``L = max + 1``).

    Raises:
        ConfigError: another shape, negative labels, or non-finite values.
    """
    p = np.asarray(probs)
    if p.ndim == 2 and (np.issubdtype(p.dtype, np.integer) or p.dtype == np.bool_):
        if p.size and p.min() < 0:
            raise ConfigError("labels must be non-negative integers")
        n = int(p.max(initial=0)) + 1
        return np.eye(n, dtype=np.float32)[p.astype(np.int64)]
    if p.ndim != 3 or p.shape[-1] < 1 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ConfigError(f"probs must be (h, w, L) soft assignments or (h, w) integer labels, got shape {p.shape}")
    p = np.clip(np.asarray(p, np.float32), 0.0, None)
    if not np.isfinite(p).all():
        raise ConfigError("probs must be finite")
    total = p.sum(-1, keepdims=True)
    return np.where(total > 0, p / np.maximum(total, 1e-12), 1.0 / p.shape[-1]).astype(np.float32)


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous ``(H, W, 3)`` uint8 array; raises :class:`ConfigError` otherwise."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
        raise ConfigError(f"image must be (H, W, 3) uint8, got shape {img.shape} and dtype {img.dtype}")
    return np.ascontiguousarray(img)


def _cv2():
    try:
        import cv2
        cv2.ximgproc  # noqa: B018  (the contrib modules)
    except (ImportError, AttributeError):
        raise MissingLibraryError("refine='guided' needs OpenCV's contrib modules: "
                                  "pip install opencv-contrib-python-headless") from None
    return cv2


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise MissingLibraryError("refine='crf' needs the dense CRF library: pip install pydensecrf2") from None
    return dcrf


def _linear(values: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` to ``n_out`` samples, cell centres at
    ``(i + 1/2) / n`` (PyTorch's ``align_corners=False``; beyond the outer centres the edge value)."""
    n_in = values.shape[axis]
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    frac = (src - lo).astype(np.float32)
    shape = [1] * values.ndim
    shape[axis] = n_out
    frac = frac.reshape(shape)
    low = np.take(values, lo, axis=axis)
    return low + frac * (np.take(values, np.minimum(lo + 1, n_in - 1), axis=axis) - low)


def _bilinear(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w, L)`` → ``(H, W, L)`` float32, bilinear (in numpy: no thread pool for a small job)."""
    return np.ascontiguousarray(_linear(_linear(probs, size[0], 0), size[1], 1), np.float32)


def _none(image: np.ndarray, up: np.ndarray, cell: float) -> np.ndarray:
    return up


def _guided(image: np.ndarray, up: np.ndarray, cell: float, radius: float, eps: float) -> np.ndarray:
    """Guided filter of every channel of ``up`` ``(H, W, L)``, guided by ``image`` ``(H, W, 3)``."""
    cv2 = _cv2()
    gf = cv2.ximgproc.createGuidedFilter(image, max(1, int(round(radius * cell))), float(eps) * 255.0 ** 2)
    out = gf.filter(np.ascontiguousarray(up))
    return out.reshape(up.shape)


def _crf(image: np.ndarray, up: np.ndarray, cell: float, iterations: float, sxy: float, srgb: float,
         compat: float, smooth_sxy: float, smooth_compat: float, confidence: float, side: float) -> np.ndarray:
    """Marginals ``(H, W, L)`` of a dense CRF (unary ``-log p``, Gaussian + bilateral pairwise terms),
    inferred at a longer side of at most ``side`` pixels (0: no limit) and upsampled bilinearly."""
    dcrf = _densecrf()
    size = up.shape[:2]
    scale = min(1.0, float(side) / max(size)) if side > 0 else 1.0
    small = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    if small != size:
        image = np.asarray(Image.fromarray(image).resize(small[::-1], Image.Resampling.BOX))
        up = _bilinear(up, small)
    height, width, n = up.shape
    p = float(confidence) * up + (1.0 - float(confidence)) / n
    crf = dcrf.DenseCRF2D(width, height, n)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(np.maximum(p, 1e-8)).transpose(2, 0, 1).reshape(n, -1)))
    crf.addPairwiseGaussian(sxy=float(smooth_sxy) * height / size[0], compat=float(smooth_compat))
    crf.addPairwiseBilateral(sxy=float(sxy) * cell * height / size[0], srgb=float(srgb),
                             rgbim=np.array(image, np.uint8, order="C"), compat=float(compat))
    q = np.asarray(crf.inference(int(iterations)), np.float32).reshape(n, height, width).transpose(1, 2, 0)
    return q if small == size else _bilinear(q, size)


FILTERS: dict[str, Callable[..., np.ndarray]] = {"none": _none, "guided": _guided, "crf": _crf}


def _working_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` downscaled (area average) so that its longer side is at most ``max_side``."""
    height, width = image.shape[:2]
    scale = min(1.0, float(max_side) / max(height, width))
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def refine_probabilities(image: np.ndarray, probs: np.ndarray, method: str = "guided", max_side: int = MAX_SIDE,
                         **params: float) -> np.ndarray:
    """Refined per-pixel segment scores ``(H', W', L)`` float32 (arg-max = the label).

    ``(H', W')`` is the image's size, or its size scaled down to a longer side of ``max_side``.
    See :func:`refine` for the arguments.
    """
    kwargs = check_method(method, params)
    img = check_image(image)
    p = as_probabilities(probs)
    if int(max_side) < 1:
        raise ConfigError(f"max_side must be positive, got {max_side}")
    work = _working_image(img, int(max_side))
    cell = 0.5 * (work.shape[0] / p.shape[0] + work.shape[1] / p.shape[1])  # working pixels per patch cell
    return FILTERS[method](work, _bilinear(p, work.shape[:2]), cell, **kwargs)


def refine(image: np.ndarray, probs: np.ndarray, method: str = "guided", max_side: int = MAX_SIDE,
           **params: float) -> np.ndarray:
    """Pixel labels ``(H, W)`` int32 from patch-grid probabilities, with edges that follow ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, the picture the patch grid covers (any size: the grid is
            stretched over it, as DeepCut's working image is).
        probs: ``(h, w, L)`` soft assignments of each patch cell to ``L`` segments, or ``(h, w)``
            integer labels (one-hot).
        method: one of :data:`METHODS` (``"guided"``, ``"crf"``, ``"none"``).
        max_side: a larger image is refined at this longer side and its labels resized back.
        params: the method's parameters (see the module doc and :data:`DEFAULTS`).

    Raises:
        ConfigError: an unknown method or parameter, or arrays of the wrong shape or type.
        MissingLibraryError: the method's library is not installed.
    """
    scores = refine_probabilities(image, probs, method, max_side, **params)
    labels = scores.argmax(-1).astype(np.int32)
    return resize_nearest(labels, tuple(np.shape(image)[:2]))


def refine_segmentation(image: np.ndarray, labels: np.ndarray, foreground_labels: Sequence[int],
                        method: str = "guided", largest: bool = False, max_side: int = MAX_SIDE,
                        **params: float) -> tuple[np.ndarray, np.ndarray]:
    """A refined foreground/background segmentation: ``(labels (H, W) int32, foreground (H, W) bool)``.

    Like :func:`~deepcut.segmentation.upsample.upsample_segmentation`: the foreground is decided first (refined
    foreground score above the background's), then each pixel takes the best label of its side, so
    the mask does not depend on how either side is split into parts.

    Args:
        image: ``(H, W, 3)`` uint8.
        labels: ``(h, w)`` int patch labels.
        foreground_labels: the labels that form the foreground.
        method: as for :func:`refine`.
        max_side: as for :func:`refine`.
        params: as for :func:`refine`.
        largest: keep only the largest connected component of the refined foreground (its other
            pixels take their best background label).
    """
    scores = refine_probabilities(image, np.asarray(labels, np.int64), method, max_side, **params)
    is_fg = np.zeros(scores.shape[-1], bool)
    is_fg[[int(i) for i in foreground_labels if 0 <= int(i) < scores.shape[-1]]] = True
    fg = scores[..., is_fg].sum(-1) > scores[..., ~is_fg].sum(-1)
    if largest:
        fg = largest_component(fg)
    out = np.where(fg, _best(scores, is_fg), _best(scores, ~is_fg)).astype(np.int32)
    size = tuple(np.shape(image)[:2])
    return resize_nearest(out, size), resize_nearest(fg, size)


def _best(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``(H, W)`` the label of highest score among the ``allowed`` ones (``(L,)`` bool); 0 if none is."""
    ids = np.flatnonzero(allowed)
    if ids.size == 0:
        return np.zeros(scores.shape[:2], np.int64)
    if ids.size == 1:
        return np.full(scores.shape[:2], ids[0], np.int64)
    return ids[scores[..., ids].argmax(-1)]


def segment_maps(image: np.ndarray, labels: np.ndarray, work_size: Sequence[int],
                 foreground_labels: Sequence[int] | None, method: str = "none",
                 largest: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Patch labels ``(h, w)`` → ``(labels (H, W) int32, foreground (H, W) bool or None)`` at the
    size of ``image`` ``(H, W, 3)``: DeepCut's upsampling (``method="none"``, via the working size
    ``work_size``) or a refinement; ``foreground_labels`` None means no foreground/background split.
    ``largest`` applies to a refined foreground only (DeepCut's own is taken on the patch grid).
    """
    height, width = np.shape(image)[:2]
    size, work = (height, width), (work_size[0], work_size[1])
    if method == "none":
        if foreground_labels is None:
            return upsample_labels(labels, work, size), None
        return upsample_segmentation(labels, work, size, list(foreground_labels))
    if foreground_labels is None:
        return refine(image, np.asarray(labels, np.int64), method), None
    return refine_segmentation(image, labels, foreground_labels, method, largest)
