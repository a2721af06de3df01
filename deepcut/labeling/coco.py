"""Per-image records and the COCO instances file they are assembled into.

A *record* is what labelling one image produces, as a JSON-friendly dict:

* success: ``{"file_name", "width", "height", "objects": [{"segmentation", "bbox", "area", "score"}]}``
  with ``segmentation`` an uncompressed-string COCO RLE of the ``(height, width)`` mask and ``bbox``
  ``[x, y, w, h]``;
* failure: ``{"file_name", "error"}``.

:func:`build_coco` turns the records of a run, in input order, into the dict that
``pycocotools.coco.COCO`` loads and detectron2's ``load_coco_json`` (CutLER's training) reads. Ids are
given here, by input order, so the same records always give the same file.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

#: The single category every discovered object gets (class-agnostic pseudo-labels, as in CutLER).
CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}
#: Scores are rounded to this many decimals so that a file does not depend on float noise.
SCORE_DECIMALS = 6


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a ``(H, W)`` bool mask: ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """The ``(H, W)`` bool mask of a record's (or a COCO file's) RLE ``segmentation``."""
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    return mask_utils.decode({"size": list(rle["size"]),
                              "counts": counts.encode("ascii") if isinstance(counts, str) else counts}).astype(bool)


def object_record(mask: np.ndarray, bbox_xyxy: Sequence[int], score: float) -> dict[str, Any]:
    """The record of one object: RLE of its ``(H, W)`` mask, ``[x, y, w, h]`` box, area and score."""
    x0, y0, x1, y1 = (int(v) for v in bbox_xyxy)
    return {"segmentation": encode_mask(mask), "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(np.count_nonzero(mask)),
            "score": round(float(score), SCORE_DECIMALS)}


def image_record(file_name: str, size: tuple[int, int], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The record of a labelled image of ``size = (H, W)`` with its object records."""
    return {"file_name": file_name, "width": int(size[1]), "height": int(size[0]), "objects": objects}


def failure_record(file_name: str, error: str) -> dict[str, Any]:
    """The record of an image that could not be labelled."""
    return {"file_name": file_name, "error": str(error)}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _object_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return f"an object is a {type(obj).__name__}"
    seg, bbox = obj.get("segmentation"), obj.get("bbox")
    if not isinstance(seg, dict) or not isinstance(seg.get("counts"), str) or not isinstance(seg.get("size"), list) \
            or len(seg["size"]) != 2 or not all(isinstance(v, int) and v >= 0 for v in seg["size"]):
        return "an object's segmentation is not an RLE {size: [H, W], counts}"
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        return "an object's bbox is not four numbers"
    if not isinstance(obj.get("area"), int) or isinstance(obj.get("area"), bool) or not _number(obj.get("score")):
        return "an object's area or score is missing"
    return None


def record_problem(record: Any) -> str | None:
    """What makes ``record`` not a whole record of this module's shape (None: it is one)."""
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not an object"
    if not isinstance(record.get("file_name"), str) or not record["file_name"]:
        return "no file_name"
    if "error" in record:
        return None if isinstance(record["error"], str) else "its error is not a text"
    for key in ("width", "height"):
        value = record.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"no {key}"
    if not isinstance(record.get("objects"), list):
        return "no list of objects"
    for obj in record["objects"]:
        problem = _object_problem(obj)
        if problem is not None:
            return problem
    return None


def is_failure(record: dict[str, Any]) -> bool:
    return "error" in record


def build_coco(records: Iterable[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    """The COCO instances dict of a run's records, given in input order.

    Images get ids ``1, 2, …`` in that order (with the record's file ``stamp``, which tells a later
    ``--resume`` whether the file changed), annotations ``1, 2, …`` image by image in discovery order; failures
    are listed in ``info["failures"]`` as ``{"file", "error"}`` and have no image.

    Args:
        records: one per input image (success or failure), in input order.
        info: the run's description (configuration, backbone, version, objects); copied.
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for record in records:
        if is_failure(record):
            failures.append({"file": record["file_name"], "error": record["error"]})
            continue
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": record["file_name"], "width": record["width"],
                       "height": record["height"], **({"stamp": record["stamp"]} if "stamp" in record else {})})
        for obj in record["objects"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": CATEGORY["id"],
                                "segmentation": obj["segmentation"], "area": obj["area"], "bbox": obj["bbox"],
                                "score": obj["score"], "iscrowd": 0})
    return {"info": {**info, "images": len(images), "annotations": len(annotations), "failures": failures},
            "licenses": [], "images": images, "annotations": annotations, "categories": [dict(CATEGORY)]}


def records_from_coco(coco: dict[str, Any]) -> list[dict[str, Any]]:
    """The image records of a COCO file :func:`build_coco` wrote, in its order (failures left out: a resumed run
    tries them again).

    Raises:
        ValueError: ``coco`` is not of that shape.
    """
    objects: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        objects.setdefault(int(a["image_id"]), []).append(
            {"segmentation": a["segmentation"], "bbox": a["bbox"], "area": a["area"], "score": a["score"]})
    records = []
    for image in coco["images"]:
        record = {**image_record(image["file_name"], (image["height"], image["width"]), objects.get(image["id"], [])),
                  **({"stamp": image["stamp"]} if "stamp" in image else {})}
        problem = record_problem(record)
        if problem is not None:
            raise ValueError(f"{image.get('file_name')!r}: {problem}")
        records.append(record)
    return records
