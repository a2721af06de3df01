"""The logic behind the web demo (``app.py``): one shared, thread-safe segmentation service.

:class:`DemoSession` holds one :class:`~deepcut.DeepCut` per backbone (a :class:`~deepcut.model_cache.ModelCache`,
so every visitor shares the model and its feature cache), falls back to the weight-free colour
backbone with a notice when the requested weights cannot be loaded, validates and downscales
uploads, and turns a :class:`~deepcut.Segmentation` into what the page shows: overlay, mask, box,
downloads, timings and the teaching pictures of :mod:`deepcut.render.figures`.

Nothing imported here imports Gradio; the page's pieces that do (:mod:`deepcut.demo.controls`,
:mod:`deepcut.demo.handlers`) are imported by the app only. See :class:`DemoSession` for an example.
"""

from ..lessons.affinity import AFFINITY_SIDE
from ..model_cache import FALLBACK_BACKBONE, RETRY_AFTER, BackboneChoice
from .errors import DemoError
from .jobs import MAX_COSEG_IMAGES, ProgressFn
from .outputs import OutputStore, safe_stem
from .results import CosegDemoResult, DemoResult, VideoDemoResult
from .session import DemoSession
from .uploads import DEFAULT_MAX_SIDE, UploadReader, downscale

__all__ = [
    "AFFINITY_SIDE",
    "BackboneChoice",
    "CosegDemoResult",
    "DEFAULT_MAX_SIDE",
    "DemoError",
    "DemoResult",
    "DemoSession",
    "FALLBACK_BACKBONE",
    "MAX_COSEG_IMAGES",
    "OutputStore",
    "ProgressFn",
    "RETRY_AFTER",
    "UploadReader",
    "VideoDemoResult",
    "downscale",
    "safe_stem",
]
