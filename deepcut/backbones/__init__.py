"""Step 1 of the flow: the backbones that describe every patch of an image.

The nn modules (:mod:`.base` interface, :mod:`.vit` DINO ViT, :mod:`.dinov2`, :mod:`.color`), the precision
their forward pass runs in (:mod:`.precision`), and how they are found and loaded: the registry of named
backbones (:mod:`.specs`, :mod:`.registry`), HuggingFace cache/hub access (:mod:`.hub`), original DINO
checkpoints (:mod:`.checkpoint`) and seeded random ViTs (:mod:`.arch`)."""

from .arch import ViTArch, build_model
from .checkpoint import load_dino_checkpoint
from .hub import weights_available, weights_help
from .registry import load_backbone, wrap_model
from .specs import DEFAULT_BACKBONE, REGISTRY, WEIGHTS_ENV, BackboneSpec, list_backbones

__all__ = [
    "BackboneSpec",
    "DEFAULT_BACKBONE",
    "REGISTRY",
    "ViTArch",
    "WEIGHTS_ENV",
    "build_model",
    "list_backbones",
    "load_backbone",
    "load_dino_checkpoint",
    "weights_available",
    "weights_help",
    "wrap_model",
]
