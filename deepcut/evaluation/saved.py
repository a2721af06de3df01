"""Predicted masks on disk: ``--save-masks`` writes one PNG per sample (:func:`save_prediction`, inside
:func:`recorded_masks`, so that the folder holds one run's masks), and ``--predictions`` scores such a folder
(:func:`saved_predictions`) instead of segmenting."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from ..utils.files import atomic_path
from ..utils.manifest import MANIFEST_NAME, Manifests
from ..utils.masks import bbox_of
from .datasets import DatasetError, Sample, read_mask
from .prediction import Method, Prediction

__all__ = ["MASK_KIND", "mask_path", "recorded_masks", "save_prediction", "saved_mask_reader", "saved_predictions"]


def mask_path(folder: str | Path, key: str) -> Path:
    """Where ``--save-masks`` writes the mask of sample ``key`` (video keys ``seq/frame`` make sub-folders)."""
    return Path(folder) / f"{key}.png"


def saved_mask_reader(folder: str | Path) -> Callable[[Sample], np.ndarray]:
    """``read(sample) -> (H, W) int64``: the map ``--save-masks`` wrote into ``folder`` for a sample.

    Raises:
        DatasetError: the folder, or a sample's map, does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such predictions folder")

    def read(sample: Sample) -> np.ndarray:
        path = mask_path(folder, sample.key)
        if not path.exists():
            raise DatasetError(f"{path}: no predicted mask for {sample.key}")
        return read_mask(path).astype(np.int64)

    return read


def save_prediction(pred: Prediction, path: Path, task: str) -> None:
    """Write a prediction as a PNG: foreground 0/255, or for parts the label map (0 = background), or
    for objects the map of objects ranked by score (:func:`deepcut.evaluation.objects.object_labels`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if task in ("parts", "objects") or pred.foreground is None:
        labels = pred.labels
        img = Image.fromarray(labels.astype(np.uint8) if labels.max(initial=0) < 256 else labels.astype(np.uint16))
    else:
        img = Image.fromarray(pred.foreground.astype(np.uint8) * 255)
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")


#: The manifest's mark of the masks ``--save-masks`` wrote (other files DeepCut wrote beside them are kept).
MASK_KIND = "eval-mask"


@contextmanager
def recorded_masks(folder: str | Path | None, samples: list[Sample]) -> Iterator[list[Path]]:
    """Around ``--save-masks``: the masks reserved in their folder's manifest, then recorded. The folder holds
    this run's masks only: masks an earlier run wrote there (in it or a sub-folder, by their manifests) that
    this run does not write are removed first, so that ``--predictions`` never scores two runs as one. Yields
    the masks removed."""
    if folder is None:
        yield []
        return
    manifests = Manifests()
    names: dict[Path, list[str]] = {}
    for sample in samples:
        path = mask_path(folder, sample.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        names.setdefault(path.parent, []).append(path.name)
    removed: list[Path] = []
    for listed in sorted(Path(folder).rglob(MANIFEST_NAME)):
        keep, manifest = set(names.get(listed.parent, ())), manifests.of(listed.parent)
        stale = [n for n in manifest.of_kind(MASK_KIND) if n not in keep]
        removed += [listed.parent / n for n in manifest.remove(stale)]
    for parent, group in names.items():
        manifests.of(parent).reserve(group, MASK_KIND)
    try:
        yield removed
    finally:
        for parent, group in names.items():
            manifests.of(parent).record(group)


def saved_predictions(folder: str | Path, task: str) -> Method:
    """A method that reads the masks written by ``--save-masks`` instead of segmenting.

    Binary masks (0/255) give the foreground, its box, and a binary "soft" map (so max F-beta is the
    F-beta of the mask); part label maps are used as they are.
    """
    read = saved_mask_reader(folder)

    def run(sample: Sample) -> Prediction:
        arr = read(sample)
        if task == "parts":
            fg = arr > 0
            return Prediction(arr, fg, fg.astype(np.float32), bbox_of(fg))
        fg = arr > (127 if arr.max(initial=0) > 1 else 0)
        return Prediction(fg.astype(np.int64), fg, fg.astype(np.float32), bbox_of(fg))

    return run
