"""Evaluation datasets on disk: images with ground-truth masks, boxes or part labels.

Layout (the one of ``../shared/data``)::

    DATASET/images/<stem>.jpg          single / corloc / parts / objects
    DATASET/masks/<stem>.png           same stems
    DATASET/images/<seq>/<frame>.jpg   video (one folder per sequence)
    DATASET/masks/<seq>/<frame>.png
    DATASET/annotations.json           corloc / objects boxes (optional), either
        {stem: {"width": W, "height": H, "objects": [{"bbox_xyxy": [x0, y0, x1, y1], ...}, ...]}}
        or COCO's instances format ({"images": [...], "annotations": [{"bbox": [x, y, w, h]}, ...]},
        crowd boxes left out), e.g. the COCO20k file of LOST / TokenCut

Ground-truth conventions:

* single / video masks: 0 background, 255 foreground, 128 "unknown" (ignored), or 0/1;
* corloc: boxes ``(x0, y0, x1, y1)`` in continuous pixel coordinates, x1/y1 exclusive as pixel
  indices (COCO's ``[x, y, x + w, y + h]``). Without ``annotations.json`` every distinct non-zero
  value of the mask (an instance-id map, or a binary mask) gives one box;
* parts: a label map, 0 background, 1 … P parts (palette PNGs are read as their indices);
* objects: boxes as for corloc, and the mask (if any) an instance-id map (0 background, one value
  per object) for the mask IoU of each object.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DeepCutError
from ..utils.masks import bbox_of
from .metrics import binary_target

TASKS = ("single", "corloc", "video", "parts", "objects")
#: Tasks scored against boxes (``annotations.json``, else the boxes of the instance-id masks).
BOX_TASKS = ("corloc", "objects")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
MASK_SUFFIXES = (".png", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".jpg", ".jpeg")


class DatasetError(DeepCutError):
    """A dataset folder that does not have the expected layout."""


@dataclass(frozen=True)
class Sample:
    """One evaluation image.

    Attributes:
        key: unique name, the file stem (``"horse001"``) or ``"<seq>/<frame>"`` for video.
        image: path of the image.
        mask: path of the ground-truth mask / label map (None for corloc with annotations only).
        boxes: ``(M, 4)`` ground-truth boxes (corloc, objects), else None.
        size: ``(width, height)`` the boxes refer to, if known.
        sequence: the video sequence, else None.
    """

    key: str
    image: Path
    mask: Path | None = None
    boxes: np.ndarray | None = None
    size: tuple[int, int] | None = None
    sequence: str | None = None

    @property
    def mask_file(self) -> Path:
        """:attr:`mask`, for the tasks whose every sample has one (all but corloc and objects)."""
        if self.mask is None:
            raise DatasetError(f"{self.key}: no ground-truth mask")
        return self.mask


@dataclass
class Dataset:
    """The samples of one task in a dataset folder, in sorted order.

    ``skipped`` maps keys that cannot be scored (e.g. an image without its mask) to the reason.
    """

    root: Path
    task: str
    samples: list[Sample]
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def sequences(self) -> list[str]:
        """Video sequences in order (empty for image tasks)."""
        return sorted({s.sequence for s in self.samples if s.sequence is not None})


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Non-hidden files of ``folder`` with one of ``suffixes``, by stem (first suffix in the list wins)."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    rank = {s: i for i, s in enumerate(suffixes)}
    for f in sorted(folder.iterdir()):
        suffix = f.suffix.lower()
        if f.is_file() and not f.name.startswith(".") and suffix in rank:
            old = found.get(f.stem)
            if old is None or rank[suffix] < rank[old.suffix.lower()]:
                found[f.stem] = f
    return found


def _check_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    if not (root / "images").is_dir():
        raise DatasetError(f"{root}: expected an images/ folder (and masks/ with the same stems)")
    return root


def _load_boxes(root: Path) -> dict[str, dict] | None:
    path = root / "annotations.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object {{stem: {{width, height, objects: [...]}}}}")
    if isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list):
        return _from_coco(data, path)
    return data


def _box(value, where: str, coco: bool = False) -> list[float]:
    """``value`` checked as a box of four finite numbers (``[x, y, w, h]`` with ``coco``, else
    ``[x0, y0, x1, y1]``), as ``[x0, y0, x1, y1]`` floats.

    Raises:
        DatasetError: anything else (``where`` names the file and the entry).
    """
    form = "[x, y, w, h]" if coco else "[x0, y0, x1, y1]"
    try:
        ok = isinstance(value, (list, tuple)) and len(value) == 4 and not any(isinstance(v, bool) for v in value)
        box = [float(v) for v in value] if ok else []
    except (TypeError, ValueError):
        box = []
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise DatasetError(f"{where}: a box must be four numbers {form}, got {json.dumps(value, default=repr)[:80]}")
    if coco:
        box = [box[0], box[1], box[0] + box[2], box[1] + box[3]]
    if box[2] < box[0] or box[3] < box[1]:
        raise DatasetError(f"{where}: the box {json.dumps(value)[:80]} has a negative width or height ({form})")
    return box


def _size(entry: dict, where: str) -> tuple[int, int] | None:
    """``(width, height)`` of an entry that gives both (positive whole numbers), else None."""
    if "width" not in entry or "height" not in entry:
        return None
    w, h = entry["width"], entry["height"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 1 and v == int(v)
               for v in (w, h)):
        raise DatasetError(f"{where}: width and height must be positive whole numbers, got {w!r} and {h!r}")
    return int(w), int(h)


def entry_boxes(entry, where: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The ``(M, 4)`` boxes and the ``(width, height)`` of one ``{width, height, objects: [{bbox_xyxy}]}``
    entry of ``annotations.json`` (objects without ``bbox_xyxy`` are left out).

    Raises:
        DatasetError: the entry, its objects or a box has another shape (``where`` names it).
    """
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected an object {{width, height, objects: [...]}}, got "
                           f"{type(entry).__name__}")
    objects = entry.get("objects", [])
    if not isinstance(objects, list):
        raise DatasetError(f"{where}: objects must be a list, got {type(objects).__name__}")
    boxes = []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise DatasetError(f"{where}, object {i}: expected an object with bbox_xyxy, got {type(obj).__name__}")
        if obj.get("bbox_xyxy") is not None:
            boxes.append(_box(obj["bbox_xyxy"], f"{where}, object {i}"))
    return np.asarray(boxes, np.float64).reshape(-1, 4), _size(entry, where)


def _from_coco(data: dict, path: Path) -> dict[str, dict]:
    """COCO's instances format (``images`` + ``annotations`` with ``bbox = [x, y, w, h]``, e.g. the
    COCO20k file of LOST / TokenCut) → ``{stem: {width, height, objects: [{bbox_xyxy}]}}``."""
    out: dict[str, dict] = {}
    by_id: dict = {}
    try:
        for img in data["images"]:
            name = Path(str(img["file_name"])).stem
            by_id[img["id"]] = name
            out[name] = {"width": int(img["width"]), "height": int(img["height"]), "objects": []}
        for ann in data["annotations"]:
            stem = by_id.get(ann["image_id"])
            if stem is None or ann.get("iscrowd", 0):
                continue
            where = f"{path}, annotation {ann.get('id', len(out[stem]['objects']))} (image {stem!r})"
            out[stem]["objects"].append({"bbox_xyxy": _box(ann["bbox"], where, coco=True),
                                         "class_id": ann.get("category_id")})
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DatasetError(f"{path}: not a valid COCO annotation file ({e!r})") from None
    return out


def boxes_from_mask(mask: np.ndarray) -> np.ndarray:
    """One box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) per distinct non-zero value of ``(H, W)``: ``(M, 4)``."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    boxes = [bbox_of(m == v) for v in np.unique(m) if v != 0]
    return np.asarray([b for b in boxes if b is not None], np.float64).reshape(-1, 4)


def load_dataset(root: str | Path, task: str, limit: int | None = None, frame_step: int = 1) -> Dataset:
    """The samples of ``task`` under ``root``.

    Args:
        root: dataset folder (``images/``, ``masks/``, optional ``annotations.json``).
        task: ``"single"``, ``"corloc"``, ``"video"``, ``"parts"`` or ``"objects"``.
        limit: keep the first ``limit`` images (video: the first ``limit`` sequences).
        frame_step: video only, keep every ``frame_step``-th frame of each sequence.

    Raises:
        DatasetError: the folder does not have the expected layout or holds nothing to evaluate.
    """
    if task not in TASKS:
        raise DatasetError(f"task must be one of {TASKS}, got {task!r}")
    if limit is not None and int(limit) < 1:
        raise DatasetError(f"limit must be at least 1, got {limit}")
    if int(frame_step) < 1:
        raise DatasetError(f"frame step must be at least 1, got {frame_step}")
    root = _check_root(Path(root))
    samples: list[Sample] = []
    skipped: dict[str, str] = {}
    if task == "video":
        seqs = sorted(d for d in (root / "images").iterdir() if d.is_dir() and not d.name.startswith("."))
        if not seqs:
            raise DatasetError(f"{root}: a video dataset needs one folder per sequence, images/<seq>/<frame>.jpg")
        for seq in seqs[: limit or None]:
            images = _files_by_stem(seq, IMAGE_SUFFIXES)
            masks = _files_by_stem(root / "masks" / seq.name, MASK_SUFFIXES)
            for i, (stem, path) in enumerate(sorted(images.items())):
                if i % int(frame_step):
                    continue
                key = f"{seq.name}/{stem}"
                if stem not in masks:
                    skipped[key] = "no ground-truth mask"
                    continue
                samples.append(Sample(key, path, masks[stem], sequence=seq.name))
    else:
        images = _files_by_stem(root / "images", IMAGE_SUFFIXES)
        if not images:
            raise DatasetError(f"{root}/images: no images found")
        masks = _files_by_stem(root / "masks", MASK_SUFFIXES)
        boxes = _load_boxes(root) if task in BOX_TASKS else None
        for stem, path in list(sorted(images.items()))[: limit or None]:
            if task in BOX_TASKS and boxes is not None:
                entry = boxes.get(stem)
                if entry is None:
                    skipped[stem] = "not in annotations.json"
                    continue
                arr, size = entry_boxes(entry, f"{root / 'annotations.json'}, entry {stem!r}")
                if arr.shape[0] == 0:
                    skipped[stem] = "no ground-truth boxes"
                    continue
                samples.append(Sample(stem, path, masks.get(stem), boxes=arr, size=size))
                continue
            if stem not in masks:
                skipped[stem] = "no ground-truth mask"
                continue
            samples.append(Sample(stem, path, masks[stem]))
    if not samples:
        why = f" ({len(skipped)} skipped: {next(iter(skipped.values()))})" if skipped else ""
        raise DatasetError(f"{root}: nothing to evaluate for task {task!r}{why}")
    return Dataset(root, task, samples, skipped)


def read_mask(path: str | Path) -> np.ndarray:
    """A mask or label map as stored: ``(H, W)`` integer array (palette PNGs give their indices)."""
    try:
        with Image.open(path) as img:
            if img.mode in ("P", "L", "I", "I;16", "1"):
                arr = np.asarray(img)
            else:
                arr = np.asarray(img.convert("L"))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read the mask ({e})") from None
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    return arr


def read_binary_mask(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A single-object mask → ``(foreground, valid)``, both ``(H, W)`` bool (128 = not valid)."""
    return binary_target(read_mask(path))


def sample_boxes(sample: Sample, image_size: tuple[int, int]) -> np.ndarray:
    """The ground-truth boxes ``(M, 4)`` of a corloc sample, in the coordinates of an image of
    ``image_size = (width, height)`` (rescaled if the annotation was made at another size)."""
    if sample.boxes is None:
        if sample.mask is None:
            raise DatasetError(f"{sample.key}: no boxes and no mask")
        mask = read_mask(sample.mask)
        boxes = boxes_from_mask(mask)
        ref = (mask.shape[1], mask.shape[0])
    else:
        boxes = np.asarray(sample.boxes, np.float64)
        ref = sample.size or image_size
    if tuple(ref) != tuple(image_size):
        sx, sy = image_size[0] / ref[0], image_size[1] / ref[1]
        boxes = boxes * np.array([sx, sy, sx, sy])
    return boxes
