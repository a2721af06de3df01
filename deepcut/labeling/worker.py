"""What labelling one image means, wherever it runs (this process, a worker process, a Ray actor).

A :class:`LabelSpec` says what to compute and is sent to every worker (it pickles); the worker
builds its model once (:meth:`LabelSpec.load_model`) and turns images into records (:mod:`.coco`)
with :func:`label_data` (one image) or :func:`label_batch` (several, the ViT batched on the device).
Images travel as the file's bytes, so a worker needs no access to the driver's file system.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config import SegmentConfig
from ..errors import ConfigError, DeepCutError, ImageLoadError
from .coco import failure_record, image_record, object_record

#: Image files larger than this are not read into memory to be sent to a worker (Ray).
MAX_FILE_BYTES = 1 << 30
#: What records store for ``objects=None`` (the CC variant, which needs no number of objects).
AUTO_OBJECTS = "auto"


@dataclass(frozen=True)
class LabelSpec:
    """What a labelling run computes, and how each worker builds its model.

    Attributes:
        backbone: backbone name, hub id or local folder (as ``--backbone``).
        pretrained: load pretrained weights (``False``: random weights, for tests and benchmarks).
        device: ``None`` (auto), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.
        config: the segmentation settings.
        objects: the most objects per image (iterative cuts), or None for the CC variant.
        threads: torch threads of a worker, for its ViT and everything else (None: DeepCut's
            automatic choice, see :mod:`deepcut.utils.threads`).
        batch_size: images per ViT batch in :func:`label_batch` (GPU runs).
        precision: the ViT's precision (None: ``$DEEPCUT_PRECISION``, else ``"auto"``).
    """

    backbone: str
    pretrained: bool
    device: str | None
    config: SegmentConfig
    objects: int | None = 3
    threads: int | None = None
    batch_size: int = 1
    precision: str | None = None

    def load_model(self, warm_up: bool = True):
        """The worker's :class:`~deepcut.DeepCut` (after setting its torch threads), warmed up
        (:meth:`~deepcut.DeepCut.warm_up`) so that one-off start-up costs are paid here, not by the
        first image."""
        import torch

        from ..predictor import DeepCut

        if self.threads:  # this worker's share of the cores, for everything beside the ViT too
            torch.set_num_threads(int(self.threads))
        model = DeepCut(self.backbone, pretrained=self.pretrained, device=self.device, cache_size=1,
                        threads=self.threads, precision=self.precision)
        if warm_up:
            model.warm_up(self.config)
        return model

    def requested_precision(self) -> str:
        """The precision asked for: ``precision``, else ``$DEEPCUT_PRECISION``, else ``"auto"`` (as written
        when it is not one DeepCut knows: building the model then says so)."""
        from ..backbones.precision import PRECISION_ENV, check_precision

        raw = self.precision if self.precision is not None else os.environ.get(PRECISION_ENV, "").strip() or "auto"
        try:
            return check_precision(raw)
        except ConfigError:
            return str(raw)

    def meta(self, image_root: Path) -> dict[str, Any]:
        """What a resumed run must share with the run it continues (stored with the shards): everything
        that changes the labels that is known before the model is built, the precision asked for included.
        What the model resolves (``"auto"`` precision, the backbone's default resolution) is in the
        backbone's description, which a resumed run must match too (:meth:`.shards.ShardStore.check_backbone`)."""
        from .. import __version__

        return {"version": __version__, "backbone": self.backbone, "pretrained": self.pretrained,
                "objects": AUTO_OBJECTS if self.objects is None else int(self.objects),
                "configuration": self.config.to_dict(), "precision": self.requested_precision(),
                "image_root": str(image_root)}


def failure_message(file_name: str, exc: BaseException, path: Path | None = None) -> str:
    """``file_name: what went wrong`` (the reader's own ``<bytes>:`` or ``<path>:`` prefix replaced)."""
    text = "out of memory" if isinstance(exc, MemoryError) else str(exc)
    for prefix in ("<bytes>: ", f"{path}: " if path is not None else None):
        if prefix and text.startswith(prefix):
            text = text[len(prefix):]
    return f"{file_name}: {text}"


def check_image_file(path: Path) -> int:
    """Check an image file before anything reads it whole: a regular file whose header (read lazily by
    Pillow: a few bytes) names an image format and a size that is neither empty nor over
    :data:`~deepcut.features.image.MAX_PIXELS`. Returns the file's size in bytes.

    Raises:
        ImageLoadError: missing, a folder or not a regular file, unreadable, not an image, or too large.
    """
    from PIL import Image, UnidentifiedImageError

    from ..features.image import MAX_PIXELS

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageLoadError("no such file") from None
    except (OSError, ValueError) as e:
        raise ImageLoadError(f"cannot read the file ({getattr(e, 'strerror', None) or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError("is a directory, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError("not a regular file (a pipe, socket or device), not an image")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except UnidentifiedImageError:
        raise ImageLoadError("not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as e:
        raise ImageLoadError(str(e)) from None
    except PermissionError as e:
        raise ImageLoadError(f"cannot read the file ({e.strerror or e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageLoadError(f"the file is truncated or corrupt ({e})") from None
    if width * height == 0:
        raise ImageLoadError(f"the image is empty ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageLoadError(f"{width}x{height} is too large (over {MAX_PIXELS} pixels)")
    return int(st.st_size)


def read_image_bytes(path: Path) -> bytes:
    """The bytes of an image file, read only after its header is checked (:func:`check_image_file`)
    and only up to :data:`MAX_FILE_BYTES`.

    Raises:
        ImageLoadError: see :func:`check_image_file`; or the file is over :data:`MAX_FILE_BYTES`.
    """
    size = check_image_file(Path(path))
    if size > MAX_FILE_BYTES:
        raise ImageLoadError(f"the file is {size / (1 << 30):.1f} GB, over the limit of "
                             f"{MAX_FILE_BYTES / (1 << 30):.0f} GB for an image sent to a worker")
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageLoadError(f"cannot read the file ({e.strerror or e})") from None


def _image_of(data: bytes | bytearray | Path):
    """What :func:`~deepcut.features.image.load_image` is given: the bytes, or the path once its header is
    checked (Pillow then reads only what the first frame needs)."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    check_image_file(Path(data))
    return Path(data)


def _records_of(file_name: str, discovery) -> dict[str, Any]:
    """The record of a :class:`~deepcut.tasks.discover.Discovery`: masks at the input size, as RLE."""
    objects = [object_record(o.mask, o.bbox, o.score) for o in discovery.objects]
    return image_record(file_name, discovery.image.shape[:2], objects)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def _guarded(file_name: str, work: Callable[[], dict[str, Any]], path: Path | None = None) -> dict[str, Any]:
    """``work()``, or the failure record of what it raised (one bad image must not end a dataset-scale run)."""
    try:
        return work()
    except DeepCutError as e:
        return failure_record(file_name, failure_message(file_name, e, path))
    except Exception as e:  # noqa: BLE001
        reason = "out of memory" if _is_oom(e) else f"unexpected error ({type(e).__name__}: {e})"
        return failure_record(file_name, f"{file_name}: {reason}")


def label_data(model, spec: LabelSpec, file_name: str, data: bytes | Path) -> dict[str, Any]:
    """Label one image: its record (a failure record when the image cannot be read or labelled).

    Args:
        model: the worker's :class:`~deepcut.DeepCut`.
        spec: the run's settings.
        file_name: the image's name in the output.
        data: the file's bytes, or its path (read here).
    """
    def work() -> dict[str, Any]:
        return _records_of(file_name, model.discover(_image_of(data), spec.config, objects=spec.objects))

    return _guarded(file_name, work, None if isinstance(data, (bytes, bytearray)) else Path(data))


def label_batch(model, spec: LabelSpec, items: Sequence[tuple[str, bytes | Path]]) -> list[dict[str, Any]]:
    """Label several images, the ViT run on batches of images of one size: one record per item, in order.

    Falls back to :func:`label_data` image by image when the batch fails as a whole (e.g. out of
    device memory), so one image never costs the others their labels.
    """
    from ..features.image import load_image
    from ..tasks.discover import discover_features

    records: list[dict[str, Any] | None] = [None] * len(items)
    images: list[tuple[int, np.ndarray]] = []
    for i, (name, data) in enumerate(items):
        try:
            images.append((i, load_image(_image_of(data))))
        except DeepCutError as e:
            records[i] = failure_record(name, failure_message(name, e, None if isinstance(data, bytes) else data))
    try:
        t0 = time.perf_counter()
        feats = model.store.get_many([img for _, img in images], spec.config, batch_size=spec.batch_size, cache=False)
    except Exception:  # noqa: BLE001 - retried one by one, where each failure is reported
        feats = None
    for n, (i, _img) in enumerate(images):
        name = items[i][0]
        if feats is None:
            records[i] = label_data(model, spec, name, items[i][1])
            continue
        records[i] = _guarded(name, lambda f=feats[n], name=name: _records_of(  # type: ignore[misc]  # lambda defaults
            name, discover_features(f, spec.config, spec.objects, t0=t0)))
    return records  # type: ignore[return-value]  # every slot is filled: above or in this loop


def label_items(model, spec: LabelSpec, items: Sequence[tuple[str, bytes | Path]]) -> list[dict[str, Any]]:
    """Records of ``(file_name, bytes or path)`` items, in order: image by image, or batched through
    the ViT when ``spec.batch_size > 1`` (GPU runs)."""
    if spec.batch_size <= 1:
        return [label_data(model, spec, name, data) for name, data in items]
    return label_batch(model, spec, items)
