"""One setting swept: the same image re-clustered with one setting at several values (``k`` = 2 … 6, say),
from the features already in the store's cache, drawn as one strip for one slide (:meth:`Sweep.figure`).

Example::

    dc = DeepCut("color")
    result = LessonResult.of(dc.store, dc.segment("cat.jpg", stages=2, k=3))
    strip = sweep(dc.store, result, "k", default_values(result, "k"))
    strip.picture().save("sweep-k.png")
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image

from ..clustering.fit import Clusterer, fit
from ..config import SegmentConfig
from ..errors import ConfigError, DeepCutError
from ..features.store import FeatureStore
from ..render.figures import figure_image
from ..render.style import new_figure
from ..segmentation.notes import plural
from ..segmentation.result import Segmentation
from ..segmentation.segment import segment_image
from ..utils.memory import memory_errors
from .compare import panel
from .result import Shown
from .words import describe, number

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_ALPHA_VALUES", "DEFAULT_K_VALUES", "MAX_SWEEP", "SWEEP_NAMES", "Sweep", "check_sweep",
           "default_values", "not_sweepable", "sweep", "sweepable", "swept"]

#: A sweep draws at most this many values (one strip on one slide).
MAX_SWEEP = 8
#: The settings :func:`sweep` can vary, with the name its titles use.
SWEEP_NAMES: dict[str, str] = {"k": "k", "alpha": "α", "layer": "layer", "facet": "facet", "epochs": "epochs",
                               "seed": "seed", "stages": "stages", "bg_k": "background parts", "refine": "refine"}
#: The values :func:`default_values` offers: ``k`` for NCut; CC's α from many small segments to a few large.
DEFAULT_K_VALUES: tuple[int, ...] = (2, 3, 4, 5, 6)
DEFAULT_ALPHA_VALUES: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0, 8.0)


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
    base: Shown

    @property
    def counts(self) -> list[int]:
        """Number of segments for each value."""
        return [s.num_segments for s in self.segmentations]

    @property
    def features_reused(self) -> bool:
        """Whether every segmentation took its features from the store's cache (no backbone rerun)."""
        return all(s.features_cached for s in self.segmentations)

    def title(self, i: int) -> str:
        """Panel ``i``'s title: ``"k = 3: 4 segments"``."""
        return f"{SWEEP_NAMES[self.param]} = {number(self.values[i])}: {plural(self.counts[i], 'segment')}"

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
            panel(ax, self.segmentations[i].overlay(opacity), self.title(i), 10)
        fig.suptitle(f"{SWEEP_NAMES[self.param]} from {number(self.values[0])} to {number(self.values[-1])} · "
                     f"fixed: {self.fixed()}", fontsize=11)
        return fig

    def picture(self, text: float = 1.0, opacity: float = 0.5) -> Image.Image:
        """:meth:`figure` as an RGB picture."""
        return figure_image(self.figure(text, opacity))


def swept(cfg: SegmentConfig, param: str, value: Any) -> SegmentConfig:
    """``cfg`` with ``param`` set to ``value`` (``epochs``: one number sets stage 1's, the others kept)."""
    if param == "epochs" and not isinstance(value, (tuple, list)):
        value = (value, *cfg.epochs[1:])
    return cfg.replace(**{param: value})


def not_sweepable(result: Shown, param: str) -> str | None:
    """Why ``param`` does not apply to ``result`` (one line: α of an NCut result, a layer or facet of a backbone
    without layers), or None when it does (an unknown setting is :func:`check_sweep`'s to refuse)."""
    if param == "alpha" and result.seg.config.loss != "cc":
        return "α only changes correlation clustering (CC); this result used NCut: sweep k instead."
    if param in ("layer", "facet") and result.depth <= 1:
        return (f"The backbone `{result.backbone}` has no layers or facets to sweep (it describes each patch by "
                f"colour, texture and position): sweep k instead.")
    return None


def sweepable(result: Shown, params: Sequence[str]) -> list[str]:
    """Those of ``params`` that apply to ``result`` (:func:`not_sweepable`), in order: k always, α for CC, the
    layer and facet for a backbone with layers."""
    return [p for p in params if not_sweepable(result, p) is None]


def check_sweep(result: Shown, param: str, values: Sequence[Any]) -> list[SegmentConfig]:
    """The config of every value of a sweep.

    Raises:
        ConfigError: an unknown setting, no value or more than :data:`MAX_SWEEP`, α of an NCut result,
            layer or facet of a backbone without layers, or an invalid value.
    """
    if param not in SWEEP_NAMES:
        raise ConfigError(f"Cannot sweep {param!r}; choose one of {', '.join(SWEEP_NAMES)}.")
    values = list(values)
    if not 1 <= len(values) <= MAX_SWEEP:
        raise ConfigError(f"A sweep shows 1 to {MAX_SWEEP} values (one strip on one slide); {len(values)} were given.")
    cfg = result.seg.config
    why = not_sweepable(result, param)
    if why is not None:
        raise ConfigError(why)
    try:
        configs = [swept(cfg, param, v) for v in values]
    except (DeepCutError, TypeError, ValueError) as e:
        raise ConfigError(f"Invalid value for {param}: {e}") from None
    if param == "layer" and not all(-result.depth <= c.layer < result.depth for c in configs):
        raise ConfigError(f"`{result.backbone}` has layers 0 … {result.depth - 1}; got {values}.")
    return configs


def sweep(store: FeatureStore, result: Shown, param: str, values: Sequence[Any],
          clusterer: Clusterer = fit, max_epochs: int | None = None) -> Sweep:
    """Re-cluster ``result``'s image with ``param`` set to each of ``values``, the other settings kept.

    The features come from ``store``'s cache (the store ``result`` was computed with: for ``k``,
    ``alpha``, ``epochs``, ``seed``, ``stages``, ``bg_k`` and ``refine`` only the GNN reruns; another
    layer or facet reuses the cached forward pass), so a sweep costs a few GNN trainings.

    Args:
        store: the feature store of ``result``'s backbone.
        result: the result to sweep (its image is the segmented, possibly downscaled one).
        param: a field of :data:`SWEEP_NAMES` (``"k"``, ``"alpha"``, ``"layer"`` …).
        values: at most :data:`MAX_SWEEP` values (``epochs``: a number sets stage 1's epochs).
        clusterer: clusters every stage (default the GNN, :func:`~deepcut.clustering.fit.fit`).
        max_epochs: a cap on every GNN training, as ``result`` had (None: none).

    Raises:
        ConfigError: see :func:`check_sweep`; DeepCutError: a segmentation that fails.
    """
    configs = check_sweep(result, param, values)
    if max_epochs is not None:
        clusterer = functools.partial(clusterer, max_epochs=max_epochs)
    with memory_errors("the sweep"):
        segs = [segment_image(store, result.seg.image, cfg, clusterer) for cfg in configs]
    return Sweep(param, list(values), segs, result)


def default_values(result: Shown, param: str) -> list:
    """The values a sweep of ``param`` starts with when none are given: ``k`` 2 … 6
    (:data:`DEFAULT_K_VALUES`); α as :data:`DEFAULT_ALPHA_VALUES` (the graph is ``W − max(W)/α``: a small α
    makes most pairs repel, many small segments; a large one makes most attract, a few large segments); four
    layers spread over the backbone. Other settings have no default values.

    Raises:
        ConfigError: layers of a backbone without them, or a setting without default values.
    """
    if param == "alpha":
        return list(DEFAULT_ALPHA_VALUES)
    if param == "k":
        return list(DEFAULT_K_VALUES)
    if param == "layer":
        if result.depth <= 1:
            raise ConfigError(f"The backbone `{result.backbone}` has no layers to sweep: choose a DINO backbone, "
                              f"or sweep k or α.")
        top = result.depth - 1
        return sorted({0, top // 3, 2 * top // 3, top})
    raise ConfigError(f"Give the values to sweep {SWEEP_NAMES.get(param, param)} over.")
