"""Object discovery in the demo: several objects of one upload, each with a colour, a box and a score.

:class:`ObjectsJob` is a request of :class:`~deepcut.demo.session.DemoSession`'s template (prepare
the upload, run :meth:`deepcut.DeepCut.discover`, wrap); :class:`ObjectsDemoResult` turns the
:class:`~deepcut.tasks.discover.Discovery` into the page's picture, a table of the objects and a
COCO-style download whose masks and boxes are in the pixels of the upload as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..tasks.discover import Discovery
from .jobs import ImageJob, Request
from .outputs import write_json
from .results import ready_words, with_notices
from .uploads import UploadReader

#: The most objects the page asks for (0 on the slider: the CC variant, no fixed number).
MAX_OBJECTS = 8

SCORE_HELP = ("score = 1 − NCut(object, rest)/2 on the graph it was cut from: 1 is a clean cut, "
              "lower means the object is strongly linked to the rest")


def objects_setting(value: int | float | None) -> int | None:
    """The slider's value as :meth:`~deepcut.DeepCut.discover`'s ``objects``: 0 means None (CC)."""
    n = int(value or 0)
    return min(n, MAX_OBJECTS) if n > 0 else None


class ObjectsJob(ImageJob):
    """Discover up to ``objects`` objects in one upload (``None``: correlation clustering decides);
    the upload is read as :class:`~deepcut.demo.jobs.ImageJob` reads it."""

    def __init__(self, uploads: UploadReader, image: Any, objects: int | None) -> None:
        super().__init__(uploads, image)
        self.objects = objects

    def run(self, req: Request) -> Discovery:
        assert self.upload is not None  # prepare() read it
        return req.model.discover(self.upload.image, req.config, objects=self.objects, clusterer=req.clusterer())

    def wrap(self, req: Request, found: Discovery) -> "ObjectsDemoResult":  # type: ignore[override]  # its own result
        assert self.upload is not None  # prepare() read it
        return ObjectsDemoResult(found, req.backbone, req.notices + list(found.notes), self.upload.original,
                                 req.seconds(), self.objects, waited=req.waited)


@dataclass
class ObjectsDemoResult:
    """Discovered objects as the demo shows them.

    Attributes:
        found: the :class:`~deepcut.tasks.discover.Discovery` (of the possibly downscaled image).
        backbone: the backbone used.
        notices: what the visitor should know (fallback, downscaling, why discovery stopped).
        original_size: ``(H, W)`` of the upload before downscaling.
        seconds: wall time of the request.
        objects: how many objects were asked for (None: the CC variant).
        waited: seconds the request waited in the server's queue for a free worker.
    """

    found: Discovery
    backbone: str
    notices: list[str]
    original_size: tuple[int, int]
    seconds: float
    objects: int | None
    waited: float = 0.0

    @property
    def scale(self) -> float:
        """Factor from the discovered image's pixels to the upload's."""
        return self.original_size[0] / self.found.image.shape[0]

    def overlay(self, opacity: float = 0.5) -> Image.Image:
        """One colour per object, its box and ``#i score``."""
        return self.found.overlay(float(opacity))

    def boxes(self) -> list[list[int]]:
        """Each object's ``[x0, y0, x1, y1]`` in the upload's pixels."""
        return [[round(v * self.scale) for v in o.bbox] for o in self.found.objects]

    def status(self) -> str:
        """A line on what was found, a Markdown table of the objects (one paragraph: its rows joined by single
        line breaks, so that it renders as a table), then the notices."""
        asked = f"up to {self.objects}" if self.objects else "as many as correlation clustering finds"
        objs = self.found.objects
        lines = [f"**{len(objs)} object{'s' if len(objs) != 1 else ''}** found ({asked}) with "
                 f"`{self.backbone}`, {ready_words(self.seconds, self.waited)}. *{SCORE_HELP}.*"]
        if objs:
            total = float(self.found.image.shape[0] * self.found.image.shape[1])
            rows = ["| # | score | box [x0, y0, x1, y1] | area |", "|---|---|---|---|"]
            rows += [f"| {i} | {o.score:.3f} | {box} | {100 * o.area / total:.1f} % |"
                     for i, (o, box) in enumerate(zip(objs, self.boxes(), strict=False), start=1)]
            lines.append("\n".join(rows))  # one block: with_notices puts blank lines between its lines
        return with_notices(lines, self.notices)

    def record(self, file_name: str = "upload") -> dict:
        """The JSON download: COCO-style annotations of this image at the upload's size (``file_name``: the
        upload's name)."""
        from ..labeling.coco import CATEGORY, object_record

        height, width = self.original_size
        annotations = []
        for i, (o, box) in enumerate(zip(self.found.objects, self.boxes(), strict=False), start=1):
            mask = o.mask
            if mask.shape != (height, width):
                mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))
            annotations.append({"id": i, "image_id": 1, "category_id": CATEGORY["id"], "iscrowd": 0,
                                **object_record(mask, box, o.score)})
        return {"images": [{"id": 1, "width": int(width), "height": int(height), "file_name": file_name}],
                "annotations": annotations, "categories": [dict(CATEGORY)],
                "info": {"backbone": self.backbone, "objects": self.objects, "score": SCORE_HELP,
                         "configuration": self.found.config.to_dict(), "notes": list(self.notices)}}

    def write_files(self, out_dir: str | Path, name: str | None = None, opacity: float = 0.5) -> list[str]:
        """Write ``<stem>_objects.png`` (the overlay at ``opacity``) and ``<stem>_objects.json`` (COCO-style),
        ``<stem>`` from the upload's ``name`` (``deepcut`` without one); returns their paths."""
        from ..lessons.names import safe_stem

        out, stem = Path(out_dir), safe_stem(name)
        out.mkdir(parents=True, exist_ok=True)
        png = out / f"{stem}_objects.png"
        self.overlay(opacity).save(png)
        return [str(png), write_json(out / f"{stem}_objects.json", self.record(Path(name).name if name else "upload"))]
