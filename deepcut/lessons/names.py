"""File names that say what they show and how: ``<image>_<figure>_<settings>``, e.g.
``cat_overlay_ncut-k3-2stages`` (:func:`file_stem`), for the slides, the sweep strip and the app's downloads."""

from __future__ import annotations

import re
from pathlib import Path

from ..config import SegmentConfig
from .result import Shown

__all__ = ["config_slug", "file_stem", "safe_stem", "settings_slug", "stem_of"]


def safe_stem(name: str | None) -> str:
    """A file-name stem from an image's (or upload's) name: safe characters only, at most 60 of them;
    ``deepcut`` for none."""
    stem = Path(name).stem if name else "deepcut"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "deepcut"
    return stem[:60]


def config_slug(cfg: SegmentConfig, depth: int) -> str:
    """The main settings of ``cfg`` as a file-name part: ``ncut-k3-2stages``, ``cc-a2.5-1stage``, with
    ``-l11key`` for a backbone with layers (``depth > 1``) and ``-guided`` for a refinement."""
    parts = [f"ncut-k{cfg.k}" if cfg.loss == "ncut" else f"cc-a{cfg.alpha:g}",
             f"{cfg.stages}stage{'s' if cfg.stages > 1 else ''}"]
    if depth > 1:
        parts.append(f"l{cfg.layer}{cfg.facet}")
    if cfg.refine != "none":
        parts.append(cfg.refine)
    return "-".join(parts)


def settings_slug(result: Shown) -> str:
    """:func:`config_slug` of the result's settings and backbone."""
    return config_slug(result.seg.config, result.depth)


def stem_of(image_name: str | None, figure: str, slug: str) -> str:
    """``<image>_<figure>_<slug>``, each part made file-system safe (the figure: at most 40 characters)."""
    what = re.sub(r"[^A-Za-z0-9.-]+", "-", figure).strip(".-") or "figure"
    return f"{safe_stem(image_name)}_{what[:40]}_{slug}"


def file_stem(image_name: str | None, figure: str, result: Shown) -> str:
    """A meaningful, file-system-safe stem: ``cat_overlay_ncut-k3-2stages`` for ``cat.jpg``'s overlay.

    Args:
        image_name: the image's file name (its stem is kept, made safe by :func:`safe_stem`); None:
            ``deepcut``.
        figure: what the file shows (``"overlay"``, ``"replay"`` …; made safe too).
        result: the result whose settings name the file.
    """
    return stem_of(image_name, figure, settings_slug(result))
