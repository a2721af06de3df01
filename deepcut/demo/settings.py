"""The visitor's settings: page control values → :class:`~deepcut.config.SegmentConfig` fields → a config."""

from __future__ import annotations

from typing import Any

from ..config import DEFAULT_RESOLUTION, SegmentConfig, options
from ..errors import ConfigError
from .errors import DemoError

#: Page inputs named otherwise than their :class:`SegmentConfig` field (kept for the public API).
PAGE_NAMES = {"largest": "largest_component"}
#: The page's three epoch sliders, stages 1 to 3 (together the ``epochs`` field).
EPOCH_INPUTS = ("ep1", "ep2", "ep3")
#: The resolution slider of the Video, Co-segmentation and Live tabs: its maximum, and the most it starts at
#: (every frame or image goes through the ViT) for a backbone with the usual 280-px default.
COMPACT_TOP, COMPACT_START = 448, 224


def field_name(page_name: str) -> str:
    """The :class:`SegmentConfig` field a page input sets."""
    return PAGE_NAMES.get(page_name, page_name)


def from_page(values: dict[str, Any]) -> dict[str, Any]:
    """:class:`SegmentConfig` fields from page control values, each cast to its field's kind.

    ``ep1``, ``ep2``, ``ep3`` become ``epochs``; ``largest`` becomes ``largest_component``;
    ``None`` (an empty control) stays ``None`` and means the default; unknown names pass through
    (the config rejects them).
    """
    opts = options()
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in EPOCH_INPUTS:
            continue
        field = field_name(name)
        option = opts.get(field)
        out[field] = value if value is None or option is None else option.kind(value)
    epochs = [values[name] for name in EPOCH_INPUTS if name in values]
    if epochs:
        out["epochs"] = tuple(int(e) for e in epochs)
    return out


def build_config(settings: dict[str, Any], depth: int, backbone: str, notices: list[str]) -> SegmentConfig:
    """A :class:`SegmentConfig` from field values (``None``: the default) for a backbone of ``depth``
    layers; a layer it does not have is clamped to its last, with a notice appended to ``notices``.

    Raises:
        DemoError: an invalid or unknown setting.
    """
    settings = {k: v for k, v in settings.items() if v is not None}
    if "layer" in settings and depth > 1:
        layer = int(settings["layer"])
        if not -depth <= layer < depth:
            notices.append(f"layer {layer} does not exist in `{backbone}` ({depth} layers); using {depth - 1}")
            settings["layer"] = depth - 1
    try:
        return SegmentConfig().replace(**settings)
    except (ConfigError, TypeError, ValueError) as e:
        raise DemoError(f"Invalid setting: {e}") from None


def backbone_resolution(base: int, default: int, top: int, cap: int | None = None) -> int:
    """The page's resolution for a backbone whose own default is ``default`` px, where the page's setting
    ``base`` is meant for a backbone with the usual default (:data:`~deepcut.config.DEFAULT_RESOLUTION`, 280 px:
    DINO, DINOv2): ``base`` scaled by ``default / 280``, so that each backbone gets the grid it was set up for
    (DINOv3's 16-px patches at 448 px where DINO's 8-px ones run at 280), on the resolution slider's steps,
    at least its minimum and at most ``top`` (the slider's maximum) and ``cap`` (a server's, if any)."""
    option = options()["resolution"]
    step = int(option.step or 8)
    value = max(int(option.minimum or step), round(base * default / DEFAULT_RESOLUTION / step) * step)
    return min(value, top, cap) if cap else min(value, top)
