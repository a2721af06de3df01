"""Loading backbones: the registry of named backbones, HuggingFace cache/hub access, original DINO
checkpoints and seeded random ViTs. The nn modules themselves live in :mod:`deepcut.modeling`."""

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
