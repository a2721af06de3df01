"""Evaluation: the paper's metrics, classical baselines on identical features, and a runner.

* :mod:`.metrics` — pure metric functions (IoU, accuracy, max F-beta, CorLoc, J, NMI, ARI, mIoU);
* :mod:`.baselines` — spectral normalized cut and k-means with :func:`deepcut.clustering.fit.fit`'s signature;
* :mod:`.datasets` — the dataset layouts (single, corloc, video, parts, objects);
* :mod:`.runner` — segment or read predictions, score them, aggregate (``python -m deepcut eval``);
* :mod:`.objects`, :mod:`.object_methods` — the objects task (several objects per image): its
  scores, and object discovery or saved object maps as methods;
* :mod:`.report` — Markdown tables and distribution plots from ``RESULTS.json`` files.
"""

from .baselines import kmeans_fit, spectral_fit
from .datasets import TASKS, Dataset, DatasetError, Sample, load_dataset
from .prediction import Prediction
from .runner import METHODS, TASK_METRICS, evaluate, segment_with, segmenter
from .saved import saved_predictions

__all__ = [
    "TASKS",
    "METHODS",
    "TASK_METRICS",
    "Dataset",
    "DatasetError",
    "Sample",
    "Prediction",
    "load_dataset",
    "evaluate",
    "segmenter",
    "segment_with",
    "saved_predictions",
    "spectral_fit",
    "kmeans_fit",
]
