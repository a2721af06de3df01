"""The demo's downloads: one fresh folder per result, only the newest few kept on disk."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ..lessons.names import safe_stem
from ..segmentation.result import Segmentation
from .results import CosegDemoResult, DemoResult


def unique_stems(names: Iterable[str]) -> list[str]:
    """:func:`safe_stem` of each name, made distinct by appending ``_``."""
    stems: list[str] = []
    for name in names:
        stem = safe_stem(name)
        while stem in stems:
            stem += "_"
        stems.append(stem)
    return stems


#: The overlay the page shows is at least this many pixels on its longer side: Gradio draws a picture at most
#: at its own size (and maps clicks on it that way), so a small upload is enlarged here to fill its panel.
DISPLAY_SIDE = 960


def display_factor(shape: tuple[int, ...]) -> float:
    """How much a picture of ``shape`` ``(H, W, …)`` is enlarged for the page (1 if it is large enough)."""
    return max(1.0, DISPLAY_SIDE / max(int(shape[0]), int(shape[1]), 1))


def for_display(picture: Image.Image) -> Image.Image:
    """``picture`` enlarged by :func:`display_factor` (high-quality resampling), else as it is."""
    f = display_factor((picture.height, picture.width))
    if f == 1.0:
        return picture
    return picture.resize((round(picture.width * f), round(picture.height * f)), Image.Resampling.LANCZOS)


def write_json(path: Path, record: dict) -> str:
    path.write_text(json.dumps(record, indent=2))
    return str(path)


@dataclass
class RenderedVideo:
    """An overlay video written while its frames were segmented.

    Attributes:
        video: the MP4 file.
        boxes: per frame ``{"frame", "bbox", "num_segments"}``.
        label_maps: per frame patch labels (to measure label consistency).
        first: the first frame's segmentation, or None if there was no frame.
    """

    video: Path
    boxes: list[dict] = field(default_factory=list)
    label_maps: list[np.ndarray] = field(default_factory=list)
    first: Segmentation | None = None

    def overlays(self, segmentations: Iterable[Segmentation], opacity: float) -> Iterable[np.ndarray]:
        """The overlay of each segmentation, noting its box and labels on the way."""
        for i, seg in enumerate(segmentations):
            if self.first is None:
                self.first = seg
            self.label_maps.append(seg.patch_labels)
            self.boxes.append({"frame": i, "bbox": list(seg.bbox) if seg.bbox is not None else None,
                               "num_segments": seg.num_segments})
            yield np.asarray(seg.overlay(float(opacity)))


class OutputStore:
    """Fresh folders for download files under ``root``; folders beyond the newest ``keep`` are deleted.

    Args:
        root: where the folders go (default: a fresh temporary folder).
        keep: how many results' folders stay on disk.
    """

    def __init__(self, root: str | Path | None = None, keep: int = 64) -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="deepcut-demo-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = max(1, int(keep))
        self._folders: list[Path] = []
        self._lock = threading.Lock()

    def new_folder(self) -> Path:
        """A fresh folder for one result's files; the oldest beyond ``keep`` are removed."""
        folder = self.root / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        with self._lock:
            self._folders.append(folder)
            stale = self._folders[:-self.keep]
            self._folders = self._folders[-self.keep:]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def save_picture(self, picture, stem: str) -> str:
        """``picture`` (PIL) as ``<stem>.png`` in a fresh folder, so that the page's download button gives
        it that name (Gradio names a picture it encodes itself ``image.png``)."""
        path = self.new_folder() / f"{safe_stem(stem + '.png')}.png"
        picture.save(path)
        return str(path)

    def save_result(self, result: DemoResult, name: str | None = None) -> list[str]:
        """The result's label map (PNG) and record (JSON), named after the upload ``name``."""
        return result.write_files(self.new_folder(), safe_stem(name))

    def save_coseg(self, result: CosegDemoResult) -> list[str]:
        """Every image's label map and one ``cosegmentation.json`` with all records."""
        folder = self.new_folder()
        files, records = [], {}
        for r, name, stem in zip(result.results, result.names, unique_stems(result.names), strict=False):
            png = folder / f"{stem}_labels.png"
            r.seg.labels_image().save(png)
            files.append(str(png))
            records[name] = r.record()
        return files + [write_json(folder / "cosegmentation.json", records)]

    def save_video(self, segmentations: Iterable[Segmentation], name: str, fps: float,
                   opacity: float) -> RenderedVideo:
        """Write the overlay video of ``segmentations`` (segmented as it is encoded) to a fresh folder."""
        from ..tasks.video import write_video

        out = RenderedVideo(self.new_folder() / f"{safe_stem(name)}_overlay.mp4")
        write_video(out.overlays(segmentations, opacity), out.video, fps=fps)
        return out

    @staticmethod
    def save_video_record(video: RenderedVideo, record: dict) -> list[str]:
        """The overlay video and, beside it, ``<stem>_boxes.json`` with ``record``."""
        stem = video.video.name[:-len("_overlay.mp4")]
        return [str(video.video), write_json(video.video.with_name(f"{stem}_boxes.json"), record)]
