"""Dataset-scale pseudo-labelling: several objects per image, a COCO instances file, all cores, Ray.

``python -m deepcut label`` (:mod:`deepcut.cli.label`) is the front end. The pieces, one job each:

* :mod:`.sources`: which images (files, recursive folders, list files) and their COCO ``file_name``;
* :mod:`.worker`: what labelling one image means (:class:`LabelSpec`, records);
* :mod:`.coco`: records → the COCO dict (RLE masks, boxes, scores);
* :mod:`.shards`: crash-safe JSON-lines shards, resume, the atomic final write;
* :mod:`.local`: in this process (batched on a GPU) or ``--workers N`` processes;
* :mod:`.ray_runner`: one model per Ray actor on a local or remote cluster;
* :mod:`.run`: one run, tying them together (:func:`label_dataset`).
"""

from __future__ import annotations

from .coco import build_coco, decode_mask, encode_mask
from .local import InProcessRunner, ProcessRunner
from .run import LabelInterrupted, LabelReport, check_output, label_dataset
from .sources import ImageSource, collect_sources
from .worker import LabelSpec

__all__ = ["ImageSource", "InProcessRunner", "LabelInterrupted", "LabelReport", "LabelSpec", "ProcessRunner",
           "build_coco", "check_output", "collect_sources", "decode_mask", "encode_mask",
           "label_dataset"]
