"""A result's settings in words: what it was computed with (:func:`settings_line`) and what differs between two
results (:func:`settings_diff`), one short line each, for titles, captions and slides."""

from __future__ import annotations

from typing import Any, Sequence

from ..config import SegmentConfig
from ..segmentation.notes import plural
from .result import Shown

__all__ = ["count", "describe", "epochs_of", "method", "number", "plural", "settings_diff", "settings_line"]


def number(value: Any) -> str:
    """``3`` → ``"3"``, ``3.0`` → ``"3"``, ``1.5`` → ``"1.5"``, ``(10, 100)`` → ``"10/100"``, ``True`` →
    ``"on"``, ``None`` (a stride) → ``"patch size"``."""
    if isinstance(value, (tuple, list)):
        return "/".join(number(v) for v in value)
    if isinstance(value, bool) or value is None:
        return {True: "on", False: "off", None: "patch size"}[value]
    return f"{value:g}" if isinstance(value, float) else str(value)


def count(n: int) -> str:
    """``4800`` → ``"4 800"`` (a space between thousands)."""
    return f"{n:,}".replace(",", " ")


def method(cfg: SegmentConfig, omit: Sequence[str] = ()) -> str:
    """The loss and its parameter: ``"NCut k=3"``, ``"CC α=3 k≤10"`` (``omit``: field names left out)."""
    if cfg.loss == "cc":
        parts = ["CC"] + ([f"α={number(cfg.alpha)}"] if "alpha" not in omit else [])
        return " ".join(parts + ([f"k≤{cfg.k}"] if "k" not in omit else []))
    return "NCut" + (f" k={cfg.k}" if "k" not in omit else "")


def epochs_of(cfg: SegmentConfig) -> tuple[int, ...]:
    """The epochs of the stages ``cfg`` runs."""
    return tuple(cfg.epochs[: cfg.stages])


#: The most characters a backbone's name takes in a figure's words (a folder path is cut to its end).
BACKBONE_CHARS = 28


def backbone_label(backbone: str, most: int = BACKBONE_CHARS) -> str:
    """A backbone's name as figures show it: a registry name or hub id as it is; a folder path by its last
    part (``"…/dino-vits8-finetuned"``); anything longer than ``most`` characters cut in the middle."""
    name = str(backbone)
    if "/" in name or "\\" in name:
        parts = [p for p in name.replace("\\", "/").split("/") if p]
        local = name.startswith(("/", "~", ".")) or len(parts) > 2 or ":" in name.split("/")[0]
        if local and parts:
            name = "…/" + parts[-1]
    if len(name) > most:
        keep = most - 1
        name = name[: keep // 2] + "…" + name[len(name) - (keep - keep // 2):]
    return name


def _features(cfg: SegmentConfig, backbone: str, depth: int, omit: Sequence[str]) -> str:
    """``"dino_vits8 layer 11 key"`` (a backbone without layers: its name only; a path by its end, see
    :func:`backbone_label`)."""
    words = [backbone_label(backbone)]
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
    if "epochs" not in omit and epochs_of(cfg) != epochs_of(SegmentConfig(stages=cfg.stages)):
        parts.append(f"epochs {number(epochs_of(cfg))}")
    parts += [f"seed {cfg.seed}"] if "seed" not in omit else []
    parts += [cfg.refine] if cfg.refine != "none" and "refine" not in omit else []
    return parts + (["largest component"] if cfg.largest_component else [])


def settings_line(result: Shown) -> str:
    """The result's settings in one short line, e.g.
    ``"NCut k=3 · 2 stages · dino_vits8 layer 11 key · 280 px · seed 0 · guided"`` (a backbone without
    layers, like the colour one, shows no layer or facet; epochs only where not the defaults)."""
    return " · ".join(describe(result.seg.config, result.backbone, result.depth))


def _changed(name: str, before: Any, after: Any, unit: str = "") -> list[str]:
    return [] if before == after else [f"{name}{' ' if name else ''}{number(before)} → {number(after)}{unit}"]


def settings_diff(a: Shown, b: Shown) -> str:
    """What differs from ``a`` to ``b``, e.g. ``"layer 4 → 11 · NCut k=3 → CC α=3 k≤10"``;
    ``"same settings"`` when nothing does."""
    ca, cb = a.seg.config, b.seg.config
    out = _changed("backbone", backbone_label(a.backbone), backbone_label(b.backbone)) if a.backbone != \
        b.backbone else []
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
    out += _changed("stride", ca.stride, cb.stride) + _changed("epochs", epochs_of(ca), epochs_of(cb))
    out += _changed("seed", ca.seed, cb.seed) + _changed("refine", ca.refine, cb.refine)
    out += _changed("largest component", ca.largest_component, cb.largest_component)
    return " · ".join(out) if out else "same settings"
