"""The shape of a DINO-family ViT and the ``transformers`` model built from it.

:class:`ViTArch` describes a DINO v1 (``transformers.ViTModel``) or DINOv2 (``Dinov2Model``,
``Dinov2WithRegistersModel``) ViT; :func:`empty_model` builds it without memory (to be filled by a
checkpoint) and :func:`build_model` with seeded random weights (tests, benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import BackboneLoadError


@dataclass(frozen=True)
class ViTArch:
    """The shape of a DINO-family ViT.

    Attributes:
        family: ``"vit"`` (DINO v1, ``transformers.ViTModel``) or ``"dinov2"`` (``Dinov2Model``, or
            ``Dinov2WithRegistersModel`` when ``registers > 0``).
        dim, depth, heads: width ``D``, number of blocks, attention heads.
        patch_size: patch side in pixels.
        image_size: training resolution (``sqrt(#position embeddings) * patch_size``).
        mlp_dim: hidden width of the MLPs.
        qkv_bias: whether the q/k/v projections have a bias.
        registers: number of register tokens (DINOv2 with registers).
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

    def describe(self) -> str:
        kind = {"vit": "DINO ViT", "dinov2": "DINOv2 ViT"}.get(self.family, self.family)
        regs = f", {self.registers} registers" if self.registers else ""
        return f"{kind}: patch {self.patch_size}, width {self.dim}, {self.depth} blocks, {self.heads} heads{regs}"


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
        common = dict(
            hidden_size=arch.dim, num_hidden_layers=arch.depth, num_attention_heads=arch.heads,
            mlp_ratio=arch.mlp_dim // arch.dim, patch_size=arch.patch_size, image_size=arch.image_size,
            qkv_bias=arch.qkv_bias, layer_norm_eps=1e-6, hidden_act="gelu", layerscale_value=1.0,
        )
        if arch.registers:
            cfg = transformers.Dinov2WithRegistersConfig(num_register_tokens=arch.registers, **common)
            return lambda: transformers.Dinov2WithRegistersModel(cfg)
        cfg = transformers.Dinov2Config(**common)
        return lambda: transformers.Dinov2Model(cfg)
    raise BackboneLoadError(f"unknown ViT family {arch.family!r}; expected 'vit' or 'dinov2'")


def empty_model(arch: ViTArch) -> nn.Module:
    """The ``transformers`` model of shape ``arch`` with parameters on the ``meta`` device (no memory,
    no initialisation): to be filled with ``load_state_dict(..., assign=True)``."""
    with torch.device("meta"):
        return _constructor(arch)().eval()


def init_random_(model: nn.Module, seed: int = 0, std: float = 0.02) -> nn.Module:
    """Fill every parameter of a ViT / DINOv2 model in place, from a generator seeded with ``seed``.

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
    for ``family="dinov2"``. Equal seeds give equal weights; the global RNG is not touched.
    """
    return init_random_(empty_model(arch).to_empty(device="cpu"), seed=seed).eval()
