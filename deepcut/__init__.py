"""DeepCut: unsupervised image segmentation by graph-neural-network clustering of ViT features.

Aflalo, Bagon, Kashti, Eldar, "DeepCut: Unsupervised Segmentation using Graph Neural Networks
Clustering", ICCV-W 2023 (arXiv 2212.05853).
"""

from .backbones import list_backbones, load_backbone
from .clustering.fit import affinity, cluster, fit
from .config import SegmentConfig
from .errors import BackboneLoadError, ConfigError, DeepCutError, ImageLoadError, ResourceLimitError, VideoLoadError
from .features.image import load_image
from .predictor import DeepCut
from .segmentation.refine import refine
from .segmentation.result import Segmentation
from .tasks.discover import DiscoveredObject, Discovery, discover_features

__version__ = "0.3.0"

__all__ = [
    "DeepCut",
    "SegmentConfig",
    "Segmentation",
    "Discovery",
    "DiscoveredObject",
    "discover_features",
    "refine",
    "cluster",
    "fit",
    "affinity",
    "list_backbones",
    "load_backbone",
    "load_image",
    "DeepCutError",
    "BackboneLoadError",
    "ImageLoadError",
    "ConfigError",
    "VideoLoadError",
    "ResourceLimitError",
    "__version__",
]
