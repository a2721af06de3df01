"""Comparing results: their settings in words, two results side by side, and one setting swept.

* :func:`settings_line` and :func:`settings_diff` — what a result was computed with, and what
  differs between two results, in one short line each;
* :func:`pair_figure` — a pinned result beside the current one, each titled with its settings;
* :func:`sweep` — the same image re-clustered with one setting at several values (``k`` = 2 … 6,
  say), from the features already in the model's cache, drawn as one strip (:meth:`Sweep.figure`).

Everything is drawn with matplotlib's object API (no ``pyplot`` state).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image

from ..config import SegmentConfig
from ..errors import DeepCutError
from ..predictor import DeepCut
from ..render.figures import figure_image
from ..render.style import new_figure
from ..segmentation.result import Segmentation
from .errors import DemoError
from .limits import Deadline
from .results import DemoResult, plural

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: A sweep draws at most this many values (one strip on one slide).
MAX_SWEEP = 8
#: The settings :func:`sweep` can vary, with the name its titles use.
SWEEP_NAMES: dict[str, str] = {"k": "k", "alpha": "α", "layer": "layer", "facet": "facet", "epochs": "epochs",
                               "seed": "seed", "stages": "stages", "bg_k": "background parts", "refine": "refine"}
#: The values :func:`default_values` offers: ``k`` for NCut; CC's α from many small segments to a few large.
DEFAULT_K_VALUES: tuple[int, ...] = (2, 3, 4, 5, 6)
DEFAULT_ALPHA_VALUES: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0, 8.0)


def _num(value: Any) -> str:
    """``3`` → ``"3"``, ``3.0`` → ``"3"``, ``1.5`` → ``"1.5"``, ``(10, 100)`` → ``"10/100"``, ``True`` →
    ``"on"``, ``None`` (a stride) → ``"patch size"``."""
    if isinstance(value, (tuple, list)):
        return "/".join(_num(v) for v in value)
    if isinstance(value, bool) or value is None:
        return {True: "on", False: "off", None: "patch size"}[value]
    return f"{value:g}" if isinstance(value, float) else str(value)


def method(cfg: SegmentConfig, omit: Sequence[str] = ()) -> str:
    """The loss and its parameter: ``"NCut k=3"``, ``"CC α=3 k≤10"`` (``omit``: field names left out)."""
    if cfg.loss == "cc":
        parts = ["CC"] + ([f"α={_num(cfg.alpha)}"] if "alpha" not in omit else [])
        return " ".join(parts + ([f"k≤{cfg.k}"] if "k" not in omit else []))
    return "NCut" + (f" k={cfg.k}" if "k" not in omit else "")


def _epochs(cfg: SegmentConfig) -> tuple[int, ...]:
    """The epochs of the stages ``cfg`` runs."""
    return tuple(cfg.epochs[: cfg.stages])


def _features(cfg: SegmentConfig, backbone: str, depth: int, omit: Sequence[str]) -> str:
    """``"dino_vits8 layer 11 key"`` (a backbone without layers: its name only)."""
    words = [backbone]
    if depth > 1:
        words += [f"layer {cfg.layer}"] if "layer" not in omit else []
        words += [cfg.facet] if "facet" not in omit else []
    return " ".join(words + (["log-binned"] if cfg.log_bin else []))


def describe(cfg: SegmentConfig, backbone: str, depth: int, omit: Sequence[str] = ()) -> list[str]:
    """The parts of :func:`settings_line` for a config; ``omit``: field names left out (a sweep's)."""
    parts = [method(cfg, omit)]
    if "stages" not in omit:
        parts.append(plural(cfg.stages, "stage") + (f" ({cfg.bg_k} background parts)"
                                                    if cfg.stages == 3 and "bg_k" not in omit else ""))
    parts += [_features(cfg, backbone, depth, omit), f"{cfg.resolution} px"
              + (f" stride {cfg.stride}" if cfg.stride is not None else "")]
    if "epochs" not in omit and _epochs(cfg) != _epochs(SegmentConfig(stages=cfg.stages)):
        parts.append(f"epochs {_num(_epochs(cfg))}")
    parts += [f"seed {cfg.seed}"] if "seed" not in omit else []
    parts += [cfg.refine] if cfg.refine != "none" and "refine" not in omit else []
    return parts + (["largest component"] if cfg.largest_component else [])


def settings_line(result: DemoResult) -> str:
    """The result's settings in one short line, e.g.
    ``"NCut k=3 · 2 stages · dino_vits8 layer 11 key · 280 px · seed 0 · guided"`` (a backbone without
    layers, like the colour one, shows no layer or facet; epochs only where not the defaults)."""
    return " · ".join(describe(result.seg.config, result.backbone, result.depth))


def _changed(name: str, before: Any, after: Any, unit: str = "") -> list[str]:
    return [] if before == after else [f"{name}{' ' if name else ''}{_num(before)} → {_num(after)}{unit}"]


def settings_diff(a: DemoResult, b: DemoResult) -> str:
    """What differs from ``a`` to ``b``, e.g. ``"layer 4 → 11 · NCut k=3 → CC α=3 k≤10"``;
    ``"same settings"`` when nothing does."""
    ca, cb = a.seg.config, b.seg.config
    out = _changed("backbone", a.backbone, b.backbone)
    if ca.loss != cb.loss:
        out.append(f"{method(ca)} → {method(cb)}")
    else:
        out += _changed("α", ca.alpha, cb.alpha) if ca.loss == "cc" else []
        out += _changed("k", ca.k, cb.k)
    out += _changed("", ca.stages, cb.stages, " stages")
    if ca.stages == cb.stages == 3:
        out += _changed("background parts", ca.bg_k, cb.bg_k)
    if a.depth > 1 and b.depth > 1:
        out += _changed("layer", ca.layer, cb.layer) + _changed("facet", ca.facet, cb.facet)
    out += _changed("log-binned", ca.log_bin, cb.log_bin) + _changed("", ca.resolution, cb.resolution, " px")
    out += _changed("stride", ca.stride, cb.stride) + _changed("epochs", _epochs(ca), _epochs(cb))
    out += _changed("seed", ca.seed, cb.seed) + _changed("refine", ca.refine, cb.refine)
    out += _changed("largest component", ca.largest_component, cb.largest_component)
    return " · ".join(out) if out else "same settings"


def _panel(ax: Any, picture: Image.Image, title: str, size: float) -> None:
    ax.imshow(picture)
    ax.set_title(title, fontsize=size, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def pair_figure(pinned: DemoResult, current: DemoResult, opacity: float = 0.5, text: float = 1.0) -> "Figure":
    """The pinned result's overlay beside the current one's, each titled with its role ("pinned",
    "now"), segment count and :func:`settings_line`; the suptitle is :func:`settings_diff`.

    Args:
        pinned: the result kept for comparison (left).
        current: the latest result (right).
        opacity: colour opacity of the overlays in ``[0, 1]``.
        text: scales every font, the picture keeps its pixel size (2.0: twice as large, for a
            projector; see :mod:`deepcut.render.style`).
    """
    h, w = current.seg.image.shape[:2]
    fig = new_figure(10.0, 1.2 + 4.8 * h / max(w, 1), text)
    axes = fig.subplots(1, 2)
    for ax, role, result in ((axes[0], "pinned", pinned), (axes[1], "now", current)):
        title = f"{role}: {plural(result.seg.num_segments, 'segment')}\n{settings_line(result)}"
        _panel(ax, result.overlay(opacity), title, 9)
    fig.suptitle(f"Changed: {settings_diff(pinned, current)}", fontsize=11)
    return fig


def pair_picture(pinned: DemoResult, current: DemoResult, opacity: float = 0.5, text: float = 1.0) -> Image.Image:
    """:func:`pair_figure` as an RGB picture."""
    return figure_image(pair_figure(pinned, current, opacity, text))


@dataclass
class Sweep:
    """One setting of a result swept over several values, the rest fixed.

    Attributes:
        param: the :class:`~deepcut.config.SegmentConfig` field that varies.
        values: its values, in order.
        segmentations: the segmentation for each value (same image, same features).
        base: the result that was swept (its settings are the fixed ones).
    """

    param: str
    values: list
    segmentations: list[Segmentation]
    base: DemoResult

    @property
    def counts(self) -> list[int]:
        """Number of segments for each value."""
        return [s.num_segments for s in self.segmentations]

    @property
    def features_reused(self) -> bool:
        """Whether every segmentation took its features from the model's cache (no backbone rerun)."""
        return all(s.features_cached for s in self.segmentations)

    def title(self, i: int) -> str:
        """Panel ``i``'s title: ``"k = 3: 4 segments"``."""
        return f"{SWEEP_NAMES[self.param]} = {_num(self.values[i])}: {plural(self.counts[i], 'segment')}"

    def fixed(self) -> str:
        """The settings every panel shares, in words."""
        cfg = self.base.seg.config
        return " · ".join(describe(cfg, self.base.backbone, self.base.depth, omit=(self.param,)))

    def figure(self, text: float = 1.0, opacity: float = 0.5) -> "Figure":
        """One strip, a panel per value with its overlay and :meth:`title`; the suptitle names the
        swept setting and the fixed ones (one figure for one slide). ``text`` scales the fonts, the
        picture keeps its pixel size (:func:`~deepcut.render.style.new_figure`)."""
        n = len(self.values)
        h, w = self.base.seg.image.shape[:2]
        width = min(18.0, 2.6 * n)
        fig = new_figure(width, 0.9 + (width / n - 0.1) * h / max(w, 1), text)
        axes = fig.subplots(1, n, squeeze=False)[0]
        for i, ax in enumerate(axes):
            _panel(ax, self.segmentations[i].overlay(opacity), self.title(i), 10)
        fig.suptitle(f"{SWEEP_NAMES[self.param]} from {_num(self.values[0])} to {_num(self.values[-1])} · "
                     f"fixed: {self.fixed()}", fontsize=11)
        return fig

    def picture(self, text: float = 1.0, opacity: float = 0.5) -> Image.Image:
        """:meth:`figure` as an RGB picture."""
        return figure_image(self.figure(text, opacity))


def _swept(cfg: SegmentConfig, param: str, value: Any) -> SegmentConfig:
    """``cfg`` with ``param`` set to ``value`` (``epochs``: one number sets stage 1's, the others kept)."""
    if param == "epochs" and not isinstance(value, (tuple, list)):
        value = (value, *cfg.epochs[1:])
    return cfg.replace(**{param: value})


def check_sweep(result: DemoResult, param: str, values: Sequence[Any]) -> list[SegmentConfig]:
    """The config of every value of a sweep.

    Raises:
        DemoError: an unknown setting, no value or more than :data:`MAX_SWEEP`, α of an NCut result,
            layer or facet of a backbone without layers, or an invalid value.
    """
    if param not in SWEEP_NAMES:
        raise DemoError(f"Cannot sweep {param!r}; choose one of {', '.join(SWEEP_NAMES)}.")
    values = list(values)
    if not 1 <= len(values) <= MAX_SWEEP:
        raise DemoError(f"A sweep shows 1 to {MAX_SWEEP} values (one strip on one slide); {len(values)} were given.")
    cfg = result.seg.config
    if param == "alpha" and cfg.loss != "cc":
        raise DemoError("α only changes correlation clustering (CC); this result used NCut: sweep k instead.")
    if param in ("layer", "facet") and result.depth <= 1:
        raise DemoError(f"The backbone `{result.backbone}` has no layers or facets to sweep.")
    try:
        configs = [_swept(cfg, param, v) for v in values]
    except (DeepCutError, TypeError, ValueError) as e:
        raise DemoError(f"Invalid value for {param}: {e}") from None
    if param == "layer" and not all(-result.depth <= c.layer < result.depth for c in configs):
        raise DemoError(f"`{result.backbone}` has layers 0 … {result.depth - 1}; got {values}.")
    return configs


def sweep(model: DeepCut, result: DemoResult, param: str, values: Sequence[Any],
          max_epochs: int | None = None, deadline: Deadline | None = None) -> Sweep:
    """Re-cluster ``result``'s image with ``param`` set to each of ``values``, the other settings kept.

    The features come from ``model``'s cache (the model ``result`` was computed with: for ``k``,
    ``alpha``, ``epochs``, ``seed``, ``stages``, ``bg_k`` and ``refine`` only the GNN reruns; another
    layer or facet reuses the cached forward pass), so a sweep costs a few GNN trainings.

    Args:
        model: the :class:`~deepcut.DeepCut` of ``result.backbone``.
        result: the result to sweep (its image is the segmented, possibly downscaled one).
        param: a field of :data:`SWEEP_NAMES` (``"k"``, ``"alpha"``, ``"layer"`` …).
        values: at most :data:`MAX_SWEEP` values (``epochs``: a number sets stage 1's epochs).
        max_epochs: the server's cap on every GNN training, as ``result`` had.
        deadline: the server's time limit on the request, checked before every GNN stage (None: none).

    Raises:
        DemoError: see :func:`check_sweep`; a segmentation that fails; the deadline passed (its message).
    """
    configs = check_sweep(result, param, values)
    clusterer = model.gnn if max_epochs is None else functools.partial(model.gnn, max_epochs=max_epochs)
    if deadline is not None:
        clusterer = deadline.clusterer(clusterer)
    try:
        segs = [model.segment_with(result.seg.image, cfg, clusterer) for cfg in configs]
    except DeepCutError as e:
        raise DemoError(str(e)) from None
    return Sweep(param, list(values), segs, result)


def default_values(result: DemoResult, param: str) -> list:
    """The values a sweep of ``param`` starts with when none are given: ``k`` 2 … 6
    (:data:`DEFAULT_K_VALUES`); α as :data:`DEFAULT_ALPHA_VALUES` (the graph is ``W − max(W)/α``: a small α
    makes most pairs repel, many small segments; a large one makes most attract, a few large segments); four
    layers spread over the backbone. Other settings have no default values.

    Raises:
        DemoError: layers of a backbone without them, or a setting without default values.
    """
    if param == "alpha":
        return list(DEFAULT_ALPHA_VALUES)
    if param == "k":
        return list(DEFAULT_K_VALUES)
    if param == "layer":
        if result.depth <= 1:
            raise DemoError(f"The backbone `{result.backbone}` has no layers to sweep: choose a DINO backbone, "
                            f"or sweep k or α.")
        top = result.depth - 1
        return sorted({0, top // 3, 2 * top // 3, top})
    raise DemoError(f"Give the values to sweep {SWEEP_NAMES.get(param, param)} over.")
