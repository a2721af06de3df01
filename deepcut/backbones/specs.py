"""The named backbones: architecture and where their pretrained weights live.

Names (see :func:`list_backbones`): DINO v1 ``dino_vits8`` (default), ``dino_vits16``, ``dino_vitb8``,
``dino_vitb16`` (``transformers.ViTModel``); DINOv2 ``dinov2_vits14``, ``dinov2_vitb14``
(``Dinov2Model``) and ``dinov2_vits14_reg``, ``dinov2_vitb14_reg`` (``Dinov2WithRegistersModel``);
``color`` (no weights).
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import ViTArch

#: Environment variable: a folder or ``.pth`` with the weights of the default backbone.
WEIGHTS_ENV = "DEEPCUT_WEIGHTS"


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: architecture and where its pretrained weights live."""

    name: str
    family: str  # "vit" (DINO v1), "dinov2", "dinov2_reg" (DINOv2 with registers), "color"
    hub_id: str | None
    patch_size: int
    dim: int
    depth: int
    heads: int = 0
    registers: int = 0
    image_size: int = 224  # training resolution: sets the number of learned position embeddings

    def arch(self) -> ViTArch:
        """The ViT shape of this backbone (not for ``color``)."""
        return ViTArch(family="vit" if self.family == "vit" else "dinov2", dim=self.dim, depth=self.depth,
                       heads=self.heads, patch_size=self.patch_size, image_size=self.image_size,
                       mlp_dim=4 * self.dim, registers=self.registers)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "patch_size": self.patch_size,
            "dim": self.dim,
            "depth": self.depth,
            "heads": self.heads,
            "registers": self.registers,
            "hub_id": self.hub_id,
            "weights": f"huggingface.co/{self.hub_id}" if self.hub_id else "none needed",
        }


REGISTRY: dict[str, BackboneSpec] = {
    s.name: s
    for s in [
        BackboneSpec("dino_vits8", "vit", "facebook/dino-vits8", 8, 384, 12, 6),
        BackboneSpec("dino_vits16", "vit", "facebook/dino-vits16", 16, 384, 12, 6),
        BackboneSpec("dino_vitb8", "vit", "facebook/dino-vitb8", 8, 768, 12, 12),
        BackboneSpec("dino_vitb16", "vit", "facebook/dino-vitb16", 16, 768, 12, 12),
        BackboneSpec("dinov2_vits14", "dinov2", "facebook/dinov2-small", 14, 384, 12, 6, image_size=518),
        BackboneSpec("dinov2_vitb14", "dinov2", "facebook/dinov2-base", 14, 768, 12, 12, image_size=518),
        BackboneSpec("dinov2_vits14_reg", "dinov2_reg", "facebook/dinov2-with-registers-small", 14, 384, 12, 6,
                     registers=4, image_size=518),
        BackboneSpec("dinov2_vitb14_reg", "dinov2_reg", "facebook/dinov2-with-registers-base", 14, 768, 12, 12,
                     registers=4, image_size=518),
        BackboneSpec("color", "color", None, 8, 384, 1),
    ]
}

#: The registered backbones by hub id.
BY_HUB_ID: dict[str, BackboneSpec] = {s.hub_id: s for s in REGISTRY.values() if s.hub_id}

DEFAULT_BACKBONE = "dino_vits8"


def list_backbones() -> list[dict]:
    """Every named backbone with its patch size, width, depth and where its weights come from."""
    return [spec.as_dict() for spec in REGISTRY.values()]
