"""Methods of the ``objects`` task: object discovery on each sample (DeepCut's GNN or a baseline
clustering of identical features), or objects read back from label maps saved by ``--save-masks``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from ..clustering.fit import fit
from ..config import SegmentConfig
from ..errors import ConfigError
from ..features.image import load_image
from ..tasks.discover import discover_features
from .baselines import SPECTRAL_GRAPHS, baseline
from .datasets import Sample
from .objects import ScoredObject, by_score, object_labels, objects_from_labels
from .prediction import Method, Prediction
from .runner import METHODS
from .saved import saved_mask_reader


def prediction_from_objects(objects: Sequence[ScoredObject], shape: tuple[int, int], seconds: float = 0.0,
                            notes: Sequence[str] = ()) -> Prediction:
    """A :class:`~deepcut.evaluation.prediction.Prediction` of objects on an image of ``shape = (H, W)``:
    ``labels`` ranks them by score (:func:`~deepcut.evaluation.objects.object_labels`), ``foreground``
    is their union, ``bbox`` the best-scoring object's box, ``objects`` them in decreasing score."""
    ranked = by_score(objects)
    labels = object_labels(ranked, shape)
    return Prediction(labels, labels > 0, None, ranked[0].bbox if ranked else None, float(seconds),
                      list(notes), objects=ranked)


def discoverer(model, cfg: SegmentConfig, objects: int | None = 3, method: str = "deepcut",
               spectral_graph: str = "deepcut") -> Method:
    """A method that discovers up to ``objects`` objects (None: the CC variant) in each sample's image
    with ``model`` (a :class:`~deepcut.DeepCut`), clustering with the GNN (``method="deepcut"``) or
    a baseline on the same features (see :func:`deepcut.tasks.discover.discover_features`)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if spectral_graph not in SPECTRAL_GRAPHS:
        raise ConfigError(f"spectral graph must be one of {SPECTRAL_GRAPHS}, got {spectral_graph!r}")
    clusterer = fit if method == "deepcut" else baseline(method, spectral_graph)

    def run(sample: Sample) -> Prediction:
        t = time.perf_counter()
        feats = model.patch_features(load_image(sample.image), cfg)
        found = discover_features(feats, cfg, objects, clusterer, t0=t)
        return prediction_from_objects(found.objects, found.image.shape[:2], time.perf_counter() - t, found.notes)

    return run


def saved_objects(folder: str | Path) -> Method:
    """A method that reads the object maps written by ``--save-masks`` (object ``i`` = the ``i``-th
    best score; scores are rebuilt from the ranks, see :func:`~deepcut.evaluation.objects.objects_from_labels`)."""
    read = saved_mask_reader(folder)

    def run(sample: Sample) -> Prediction:
        labels = read(sample)
        return prediction_from_objects(objects_from_labels(labels), labels.shape)

    return run
