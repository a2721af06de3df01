"""The named backbones: architecture, where their pretrained weights live and under what terms.

Names (see :func:`list_backbones`): DINO v1 ``dino_vits8`` (default), ``dino_vits16``, ``dino_vitb8``,
``dino_vitb16`` (``transformers.ViTModel``); DINOv2 ``dinov2_vits14``, ``dinov2_vitb14``
(``Dinov2Model``) and ``dinov2_vits14_reg``, ``dinov2_vitb14_reg`` (``Dinov2WithRegistersModel``);
DINOv3 ``dinov3_vits16``, ``dinov3_vits16plus``, ``dinov3_vitb16``, ``dinov3_vitl16``
(``DINOv3ViTModel``; gated weights under the DINOv3 licence); ``color`` (no weights).
Only Meta's own repositories (``facebook/…``) are named: no mirror is ever loaded by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DEFAULT_RESOLUTION
from .arch import ViTArch

#: Environment variable: a folder or ``.pth`` with the weights of the default backbone.
WEIGHTS_ENV = "DEEPCUT_WEIGHTS"
#: How each family encodes positions.
POSITIONS = {"vit": "learned, interpolated", "dinov2": "learned, interpolated",
             "dinov2_reg": "learned, interpolated", "dinov3": "rotary (2-D RoPE)", "color": "pixel coordinates"}
#: The working resolution of each family when a config sets none (about as many patches as DINO
#: ViT-S/8 at 280 px for DINOv3's 16-px patches: 28 x 28 at 448 px); the others: :data:`DEFAULT_RESOLUTION`.
FAMILY_RESOLUTION = {"dinov3": 448}
_ARCH_FAMILY = {"vit": "vit", "dinov2": "dinov2", "dinov2_reg": "dinov2", "dinov3": "dinov3"}


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: architecture, where its pretrained weights live and under what terms.

    Attributes:
        family: ``"vit"`` (DINO v1), ``"dinov2"``, ``"dinov2_reg"`` (DINOv2 with registers), ``"dinov3"``
            or ``"color"``.
        mlp_dim: hidden width of the MLPs (0: ``4 * dim``).
        swiglu: a gated SiLU MLP (DINOv3 ViT-S+/16).
        gated: the hub asks every user to accept the licence before it serves the weights.
        licence: the weights' licence.
    """

    name: str
    family: str
    hub_id: str | None
    patch_size: int
    dim: int
    depth: int
    heads: int = 0
    registers: int = 0
    image_size: int = 224  # training resolution: sets the number of learned position embeddings
    mlp_dim: int = 0
    swiglu: bool = False
    gated: bool = False
    licence: str = "Apache-2.0"

    @property
    def resolution(self) -> int:
        """The working resolution when a config sets none (the backbone's ``default_resolution``)."""
        return FAMILY_RESOLUTION.get(self.family, DEFAULT_RESOLUTION)

    def arch(self) -> ViTArch:
        """The ViT shape of this backbone (not for ``color``)."""
        return ViTArch(family=_ARCH_FAMILY[self.family], dim=self.dim, depth=self.depth, heads=self.heads,
                       patch_size=self.patch_size, image_size=self.image_size,
                       mlp_dim=self.mlp_dim or 4 * self.dim, registers=self.registers, swiglu=self.swiglu)

    def as_dict(self) -> dict:
        side = (self.resolution - self.patch_size) // self.patch_size + 1
        weights = f"huggingface.co/{self.hub_id}" if self.hub_id else "none needed"
        return {
            "name": self.name,
            "family": self.family,
            "patch_size": self.patch_size,
            "dim": self.dim,
            "depth": self.depth,
            "heads": self.heads,
            "registers": self.registers,
            "position": POSITIONS[self.family],
            "resolution": self.resolution,
            "patches": side * side,
            "hub_id": self.hub_id,
            "weights": weights + (" (gated: accept the licence there)" if self.gated else ""),
            "licence": self.licence,
            "gated": self.gated,
        }


def _dinov3(model: str, dim: int, depth: int, heads: int, **kw: int | bool) -> BackboneSpec:
    """DINOv3 ``vit<model>`` (e.g. ``s16plus``) trained on LVD-1689M: patch 16, 4 registers, gated weights
    under the DINOv3 licence; the hub id is Meta's own."""
    return BackboneSpec(f"dinov3_vit{model}", "dinov3", f"facebook/dinov3-vit{model}-pretrain-lvd1689m", 16, dim,
                        depth, heads, registers=4, gated=True, licence="DINOv3 License", **kw)  # type: ignore[arg-type]


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
        _dinov3("s16", 384, 12, 6),
        _dinov3("s16plus", 384, 12, 6, mlp_dim=1536, swiglu=True),
        _dinov3("b16", 768, 12, 12),
        _dinov3("l16", 1024, 24, 16),
        BackboneSpec("color", "color", None, 8, 384, 1, licence="no weights"),
    ]
}

#: The registered backbones by hub id.
BY_HUB_ID: dict[str, BackboneSpec] = {s.hub_id: s for s in REGISTRY.values() if s.hub_id}

DEFAULT_BACKBONE = "dino_vits8"


def list_backbones() -> list[dict]:
    """Every named backbone with its patch size, width, depth, registers, position encoding, default
    resolution (and its patches), where its weights come from and their licence."""
    return [spec.as_dict() for spec in REGISTRY.values()]
