"""The result of segmenting one image."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import SegmentConfig
from ..errors import ConfigError, DeepCutError
from ..stages.timings import Timings
from ..utils.coerce import as_float
from ..utils.files import atomic_path
from ..utils.masks import present_labels
from . import colors


def check_opacity(alpha) -> float:
    """``alpha`` as an opacity in ``[0, 1]`` (``"0.5"`` is taken as 0.5).

    Raises:
        ConfigError: not a number in ``[0, 1]``.
    """
    alpha = as_float("alpha", alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be an opacity between 0 and 1, got {alpha:g}")
    return alpha


@dataclass
class Segmentation:
    """A DeepCut segmentation of one image.

    Attributes:
        labels: ``(H, W)`` int32 segment label of every input pixel (edges refined to the image's
            when ``config.refine`` is not ``"none"``). Label 0 is the (main) background: the
            segment that covers most of the image border.
        patch_labels: ``(h, w)`` int32 labels of the patch grid.
        foreground: ``(H, W)`` bool foreground mask: the foreground of the bipartition, or, without one
            (``stages=1`` with ``k>2``, or CC), every segment but label 0. None only for a
            :class:`Segmentation` built by hand without one.
        bbox: ``(x0, y0, x1, y1)`` box of the foreground in input pixels (x1, y1 exclusive), or None
            when the foreground is empty.
        soft: ``(h, w, L)`` float32 soft assignment of every patch to each of the ``L`` final labels,
            as given by the stage that labelled the patch; each patch's values sum to 1 (the share of
            the GNN's clusters that ended empty is spread over the others in proportion).
        losses: the training loss after each epoch, one list per stage run in stage order (``losses[i]``:
            stage ``i + 1``; empty for a stage that was skipped or trained nothing).
        timings: seconds spent (:class:`Timings`: ``features``, ``stage1`` … ``stage3``, ``total``).
        features_cached: whether the ViT features came from the cache.
        image: ``(H, W, 3)`` uint8 input image (for overlays); read-only where it is the feature cache's copy.
        config: the settings used.
        notes: anything worth telling the user (clamped k, skipped stage, …).
        foreground_labels: the labels that form the foreground (None: not recorded).
        models: the trained GNN of stages 1-3 (None where a stage did not run), which
            :meth:`deepcut.DeepCut.correct` continues from; empty when not kept.
        restarts: one per entry of ``losses``: where NCut restarted from the graph's spectral cut (its first
            epochs left a segment empty), the epochs of the first try, so ``losses[i][restarts[i]:]`` are the
            restart's; 0 where the stage did not restart (empty: not recorded). The notes say so in words.
    """

    labels: np.ndarray
    patch_labels: np.ndarray
    foreground: np.ndarray | None
    bbox: tuple[int, int, int, int] | None
    soft: np.ndarray
    losses: list[list[float]]
    timings: Timings
    features_cached: bool
    image: np.ndarray
    config: SegmentConfig
    notes: list[str] = field(default_factory=list)
    foreground_labels: list[int] | None = None
    models: list = field(default_factory=list, repr=False, compare=False)
    restarts: list[int] = field(default_factory=list)

    @property
    def num_segments(self) -> int:
        """Number of distinct labels in :attr:`labels`."""
        return int(present_labels(self.labels).size)

    def overlay(self, alpha: float = 0.5, boundaries: bool = True) -> Image.Image:
        """The input image with each segment tinted in its colour (``alpha``: colour opacity in ``[0, 1]``).

        Raises:
            ConfigError: ``alpha`` is not a number in ``[0, 1]`` (``"0.5"`` is taken as 0.5).
        """
        alpha = check_opacity(alpha)
        return colors.overlay(self.image, self.labels, alpha, draw_boundaries=bool(boundaries))

    @property
    def foreground_mask(self) -> np.ndarray:
        """``(H, W)`` bool: :attr:`foreground`, or every segment but label 0 where it is None."""
        return self.foreground if self.foreground is not None else self.labels != 0

    def mask_image(self) -> Image.Image:
        """The foreground (:attr:`foreground_mask`) as a black/white ``L`` image of the input's size."""
        return Image.fromarray(self.foreground_mask.astype(np.uint8) * 255)

    def cutout(self) -> Image.Image:
        """The foreground on a transparent background: an RGBA image of the input's size whose alpha is
        255 on :attr:`foreground_mask` (refined if the config asked for it) and 0 elsewhere."""
        return Image.fromarray(np.dstack([self.image, np.asarray(self.mask_image())]))

    def bbox_image(self) -> Image.Image:
        """The input image with the foreground box drawn."""
        return colors.draw_bbox(self.image, self.bbox)

    def labels_image(self) -> Image.Image:
        """The label map, PNG-ready: pixel value = label. Up to 256 labels it is an 8-bit *palette*
        image whose colours are the overlay's (so a viewer shows the segments, not a black picture of
        values 0..k); beyond, 16-bit grayscale."""
        if self.labels.max(initial=0) < 256:
            img = Image.fromarray(self.labels.astype(np.uint8), mode="P")
            img.putpalette(colors.label_colors(256).reshape(-1).tolist())
            return img
        return Image.fromarray(self.labels.astype(np.uint16))

    def summary(self) -> dict:
        """JSON-friendly facts about the result (no arrays): ``bbox`` ``[x0, y0, x1, y1]``, ``size`` ``[W, H]`` (as
        image sizes are written), ``grid`` ``[h, w]`` (rows first, as array shapes), ``num_segments``, ``seconds``,
        ``features_cached``, ``gnn_precision`` (what the GCN's products ran in, :attr:`Timings.gnn_precision`),
        ``notes``."""
        return {
            "bbox": list(self.bbox) if self.bbox is not None else None,
            "num_segments": self.num_segments,
            "size": [int(self.labels.shape[1]), int(self.labels.shape[0])],
            "grid": [int(self.patch_labels.shape[0]), int(self.patch_labels.shape[1])],
            "seconds": round(self.timings.get("total", 0.0), 4),
            "features_cached": self.features_cached,
            "gnn_precision": self.timings.gnn_precision,
            "notes": list(self.notes),
        }

    def save(self, out_dir: str | Path, stem: str, alpha: float = 0.5, cutout: bool = False) -> dict[str, str]:
        """Write ``<stem>_labels.png``, ``<stem>_overlay.png``, ``<stem>_mask.png`` and, with ``cutout``,
        ``<stem>_cutout.png`` (:meth:`cutout`) into the folder ``out_dir`` (created if missing); returns
        ``{kind: path}``. Each file is written under a temporary name and renamed when complete
        (:func:`~deepcut.utils.files.atomic_path`), so a failure leaves no half-written picture.

        Raises:
            ConfigError: ``out_dir`` is an existing file (or lies under one), or ``stem`` is not a plain
                file-name stem; nothing is written then.
            DeepCutError: the folder cannot be created or written, or a target is a folder.
        """
        out = Path(out_dir)
        seps = [c for c in (os.sep, os.altsep, "\0") if c]
        if not isinstance(stem, str) or stem in ("", ".", "..") or any(c in stem for c in seps):
            raise ConfigError(f"stem must be a file-name stem without a folder, got {stem!r}")
        check_opacity(alpha)
        if os.path.lexists(out) and not out.is_dir():
            raise ConfigError(f"save(): {out} is an existing file, not a folder; name the folder to write into")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(f"save(): {out} cannot be created: part of the path is a file, not a folder") from None
        except OSError as e:
            raise DeepCutError(f"save(): {out} cannot be created ({e.strerror or e})") from None
        pictures = {"labels": self.labels_image, "overlay": lambda: self.overlay(alpha), "mask": self.mask_image}
        if cutout:
            pictures["cutout"] = self.cutout
        for kind in pictures:  # a target that is a folder fails before any file is written
            if (out / f"{stem}_{kind}.png").is_dir():
                raise DeepCutError(f"save(): {out / f'{stem}_{kind}.png'} is a folder; nothing was written")
        written: dict[str, str] = {}
        for kind, picture in pictures.items():
            path = out / f"{stem}_{kind}.png"
            try:
                with atomic_path(path, suffix=".png") as tmp:
                    picture().save(tmp, format="PNG")
            except OSError as e:
                raise DeepCutError(f"save(): cannot write {path} ({e.strerror or e})") from None
            written[kind] = str(path)
        return written
