"""The shape of a DINO-family ViT and the ``transformers`` model built from it.

:class:`ViTArch` describes a DINO v1 (``transformers.ViTModel``), DINOv2 (``Dinov2Model``,
``Dinov2WithRegistersModel``) or DINOv3 (``DINOv3ViTModel``) ViT; :func:`empty_model` builds it without
memory (to be filled by a checkpoint, then :func:`init_buffers_`) and :func:`build_model` with seeded
random weights (tests, benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import BackboneLoadError

#: Largest model DeepCut builds (parameters): above a ViT-g (1.1 B), far above DINO's ViT-S/B/L.
MAX_PARAMETERS = 1_500_000_000


@dataclass(frozen=True)
class ViTArch:
    """The shape of a DINO-family ViT.

    Attributes:
        family: ``"vit"`` (DINO v1, ``transformers.ViTModel``), ``"dinov2"`` (``Dinov2Model``, or
            ``Dinov2WithRegistersModel`` when ``registers > 0``) or ``"dinov3"`` (``DINOv3ViTModel``).
        dim, depth, heads: width ``D``, number of blocks, attention heads.
        patch_size: patch side in pixels.
        image_size: training resolution (``sqrt(#position embeddings) * patch_size``; DINOv3 has no
            position table, its rotary positions fit any grid).
        mlp_dim: hidden width of the MLPs.
        qkv_bias: whether the q/k/v projections have a bias (DINOv3: the query and value ones; its key
            bias is masked to zero, so the model has none).
        registers: number of register tokens (DINOv2 with registers, DINOv3).
        swiglu: a gated MLP, ``down(silu(gate(x)) * up(x))`` (DINOv3 ViT-S+/16, ViT-H+/16).
        rope_theta: base period of DINOv3's rotary position embeddings.
    """

    family: str
    dim: int
    depth: int
    heads: int
    patch_size: int
    image_size: int
    mlp_dim: int
    qkv_bias: bool = True
    registers: int = 0
    swiglu: bool = False
    rope_theta: float = 100.0

    def describe(self) -> str:
        kind = {"vit": "DINO ViT", "dinov2": "DINOv2 ViT", "dinov3": "DINOv3 ViT"}.get(self.family, self.family)
        regs = f", {self.registers} registers" if self.registers else ""
        mlp = ", SwiGLU MLP" if self.swiglu else ""
        return (f"{kind}: patch {self.patch_size}, width {self.dim}, {self.depth} blocks, {self.heads} heads"
                f"{regs}{mlp}")


def parameter_count(arch: ViTArch) -> int:
    """Parameters of the model of shape ``arch`` (computed from the shape, nothing is built)."""
    d, mlp, p = arch.dim, arch.mlp_dim, arch.patch_size
    positions = 0 if arch.family == "dinov3" else (arch.image_size // max(p, 1)) ** 2 + 1
    embed = 3 * p * p * d + d + positions * d + (1 + arch.registers) * d
    mlp_params = (3 if arch.swiglu else 2) * d * mlp + (2 if arch.swiglu else 1) * mlp + d
    block = 4 * d * d + (4 if arch.qkv_bias else 1) * d + mlp_params + 4 * d + 2 * d
    return embed + arch.depth * block + 2 * d


def check_size(arch: ViTArch, where: str, max_parameters: int = MAX_PARAMETERS) -> int:
    """``parameter_count(arch)``; raises :class:`BackboneLoadError` (naming ``where``) above
    ``max_parameters`` or for a shape with a non-positive size, before anything is allocated."""
    sizes = {"width": arch.dim, "depth": arch.depth, "heads": arch.heads, "patch size": arch.patch_size,
             "MLP width": arch.mlp_dim}
    bad = [f"{k} {v}" for k, v in sizes.items() if int(v) < 1]
    if bad or arch.registers < 0 or arch.image_size < arch.patch_size:
        raise BackboneLoadError(f"{where}: not a valid ViT shape ({', '.join(bad) or arch.describe()})")
    n = parameter_count(arch)
    if n > max_parameters:
        raise BackboneLoadError(
            f"{where}: the model would have {n / 1e9:.2f} B parameters ({arch.describe()}), over DeepCut's "
            f"limit of {max_parameters / 1e9:.1f} B; it is not built (DINO's ViT-S/B/L have 21-300 M)")
    return n


def check_config_size(config: dict, where: str) -> int:
    """:func:`check_size` of a HuggingFace ``config.json`` of a ViT / DINOv2 / DINOv3 model (read before
    ``from_pretrained`` builds it); a config without sizes is left to ``transformers``."""
    try:
        dim, depth = int(config.get("hidden_size", 768)), int(config.get("num_hidden_layers", 12))
        patch = config.get("patch_size", 16)
        patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
        mlp = int(config.get("intermediate_size") or dim * float(config.get("mlp_ratio", 4)))
        image = config.get("image_size", 224)
        image = int(image[0] if isinstance(image, (list, tuple)) else image)
        heads = int(config.get("num_attention_heads", 12))
        regs = int(config.get("num_register_tokens", 0) or 0)
        family = "dinov3" if config.get("model_type") == "dinov3_vit" else "vit"
    except (TypeError, ValueError, AttributeError):
        raise BackboneLoadError(f"{where}: config.json has sizes that are not numbers") from None
    arch = ViTArch(family=family, dim=dim, depth=depth, heads=heads, patch_size=patch, image_size=image,
                   mlp_dim=mlp, registers=regs, swiglu=bool(config.get("use_gated_mlp", False)))
    return check_size(arch, where)


def _constructor(arch: ViTArch):
    """A function building the ``transformers`` model of shape ``arch``."""
    import transformers

    if arch.family == "vit":
        cfg = transformers.ViTConfig(
            hidden_size=arch.dim, num_hidden_layers=arch.depth, num_attention_heads=arch.heads,
            intermediate_size=arch.mlp_dim, patch_size=arch.patch_size, image_size=arch.image_size,
            qkv_bias=arch.qkv_bias, layer_norm_eps=1e-6, hidden_act="gelu",
        )
        return lambda: transformers.ViTModel(cfg, add_pooling_layer=False)
    if arch.family == "dinov2":
        if arch.mlp_dim % arch.dim:
            raise BackboneLoadError(f"unsupported DINOv2 MLP width {arch.mlp_dim} (not a multiple of {arch.dim})")
        common: dict[str, Any] = dict(
            hidden_size=arch.dim, num_hidden_layers=arch.depth, num_attention_heads=arch.heads,
            mlp_ratio=arch.mlp_dim // arch.dim, patch_size=arch.patch_size, image_size=arch.image_size,
            qkv_bias=arch.qkv_bias, layer_norm_eps=1e-6, hidden_act="gelu", layerscale_value=1.0,
        )
        if arch.registers:
            reg_cfg = transformers.Dinov2WithRegistersConfig(num_register_tokens=arch.registers, **common)
            return lambda: transformers.Dinov2WithRegistersModel(reg_cfg)
        dino_cfg = transformers.Dinov2Config(**common)
        return lambda: transformers.Dinov2Model(dino_cfg)
    if arch.family == "dinov3":
        # as transformers' convert_dinov3_vit_to_hf.py configures Meta's models
        v3_cfg = transformers.DINOv3ViTConfig(
            hidden_size=arch.dim, num_hidden_layers=arch.depth, num_attention_heads=arch.heads,
            intermediate_size=arch.mlp_dim, patch_size=arch.patch_size, image_size=arch.image_size,
            num_register_tokens=arch.registers, query_bias=arch.qkv_bias, key_bias=False, value_bias=arch.qkv_bias,
            proj_bias=True, use_gated_mlp=arch.swiglu, hidden_act="silu" if arch.swiglu else "gelu",
            layer_norm_eps=1e-5, rope_theta=float(arch.rope_theta), layerscale_value=1.0,
        )
        return lambda: transformers.DINOv3ViTModel(v3_cfg)
    raise BackboneLoadError(f"unknown ViT family {arch.family!r}; expected 'vit', 'dinov2' or 'dinov3'")


def empty_model(arch: ViTArch) -> nn.Module:
    """The ``transformers`` model of shape ``arch`` with parameters on the ``meta`` device (no memory,
    no initialisation): to be filled with ``load_state_dict(..., assign=True)``, then :func:`init_buffers_`."""
    with torch.device("meta"):
        return _constructor(arch)().eval()


def init_buffers_(model: nn.Module) -> nn.Module:
    """Compute the buffers no state dict holds: DINOv3's rotary frequencies ``inv_freq`` (a
    non-persistent buffer, left on the ``meta`` device or uninitialised by :func:`empty_model`), as
    ``transformers`` computes them: ``1 / theta ** (4 i / head_dim)``, ``i = 0 … head_dim / 4 - 1``."""
    rope: Any
    for rope in model.modules():
        if type(rope).__name__ == "DINOv3ViTRopePositionEmbedding":
            freqs = 1 / float(rope.base) ** torch.arange(0, 1, 4 / int(rope.head_dim), dtype=torch.float32)
            rope.inv_freq = freqs.to(next(model.parameters()).device)
    return model


def init_random_(model: nn.Module, seed: int = 0, std: float = 0.02) -> nn.Module:
    """Fill every parameter of a ViT / DINOv2 / DINOv3 model in place, from a generator seeded with ``seed``.

    Like ``transformers``' own initialisation, but with a plain normal instead of a truncated one
    (several times faster): linear and patch-projection weights, CLS, position and register tokens
    ``~ N(0, std²)``; biases and the mask token 0; LayerNorms 1 / 0; layer scales 1.
    """
    g = torch.Generator().manual_seed(int(seed))
    done: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, (nn.Linear, nn.Conv2d)):
                module.weight.normal_(0.0, std, generator=g)
                if module.bias is not None:
                    module.bias.zero_()
            else:
                continue
            done.update(id(p) for p in module.parameters(recurse=False))
        for name, p in model.named_parameters():
            if id(p) in done:
                continue
            if name.endswith("lambda1"):
                p.fill_(float(getattr(model.config, "layerscale_value", 1.0)))
            elif name.endswith("mask_token"):
                p.zero_()
            else:
                p.normal_(0.0, std, generator=g)
    return model


def build_model(arch: ViTArch, seed: int = 0) -> nn.Module:
    """An untrained ``transformers`` model of shape ``arch`` with seeded random weights, in eval mode.

    ``ViTModel`` (without pooler) for ``family="vit"``; ``Dinov2Model`` or ``Dinov2WithRegistersModel``
    for ``family="dinov2"``; ``DINOv3ViTModel`` for ``family="dinov3"``. Equal seeds give equal weights;
    the global RNG is not touched.
    """
    return init_buffers_(init_random_(empty_model(arch).to_empty(device="cpu"), seed=seed)).eval()
