"""DINOv3 feature extraction on top of ``transformers.DINOv3ViTModel`` (Siméoni et al., "DINOv3", 2025).

The same block-by-block, resumable forward pass and facets as :class:`~deepcut.backbones.vit.ViTBackbone`;
what differs:

* blocks are ``model.model.layer[i]`` (pre-attention norm ``norm1``, layer scale inside the block);
* the sequence is ``[CLS, reg_1 … reg_4, patches]``; the register tokens, like CLS, are dropped from
  every facet;
* there is no learned position table: 2-D rotary position embeddings (RoPE) rotate the queries and keys
  of the patch tokens inside every attention layer, by angles computed from each patch's centre in
  ``[-1, 1]`` coordinates of the grid. Any grid works without interpolation; the ``(cos, sin)`` tables
  of a grid are computed once by the model's own ``rope_embeddings`` and kept in the
  :class:`~deepcut.backbones.base.TokenState`.

The ``key`` and ``query`` facets are ``{k,q}_proj(norm1(h))``, taken **before** the rotation: the
rotation makes them depend on where a patch is, which the affinity between two patches should not
(the ``value`` and ``token`` facets carry no rotation). Overlapping patches (a stride smaller than 16)
are refused: the rotary angles are those of a grid of whole patches.

Meta's original checkpoints (``.pth``, read by :func:`load_dinov3_checkpoint`), e.g.
``dinov3_vits16_pretrain_lvd1689m-08c60483.pth``, are state dicts of Meta's ``DinoVisionTransformer``::

    cls_token (1, 1, D)          storage_tokens (1, R, D)        mask_token (1, D)
    patch_embed.proj.{weight,bias}                               rope_embed.periods (head_dim / 4,)
    blocks.N.norm1.*   blocks.N.attn.qkv.{weight,bias,bias_mask} (3D, D)   blocks.N.attn.proj.*
    blocks.N.ls1.gamma   blocks.N.norm2.*   blocks.N.mlp.{fc1,fc2}.* (or SwiGLU: mlp.{w1,w2,w3}.*)
    blocks.N.ls2.gamma   norm.{weight,bias}

They are renamed as ``transformers``' ``convert_dinov3_vit_to_hf.py`` does: ``storage_tokens`` →
``embeddings.register_tokens``, ``blocks.N`` → ``model.layer.N``, ``attn.proj`` → ``attention.o_proj``,
``ls1/ls2.gamma`` → ``layer_scale1/2.lambda1``, ``mlp.fc1/fc2`` → ``mlp.up_proj/down_proj``, ``w1/w2/w3`` →
``gate_proj/up_proj/down_proj``; ``qkv`` is split into ``q_proj``, ``k_proj``, ``v_proj`` and the key's
part of the bias is dropped (``bias_mask`` zeroes it in Meta's model); ``mask_token`` gains a middle
axis; ``rope_embed.periods`` and ``bias_mask`` are not stored (the model computes its rotary frequencies
from ``rope_theta``, read here from the periods). The architecture (width, depth, heads, registers,
MLP) is read from the shapes; ``heads = D / (4 · len(periods))``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import BackboneLoadError, ConfigError
from .arch import ViTArch, check_size, empty_model, init_buffers_
from .base import TokenState
from .vit import HFModule, ViTBackbone

#: Working resolution when a config sets none: 448 px = 28 × 28 patches of 16 px (DINO ViT-S/8 at its
#: default 280 px has 35 × 35).
DINOV3_RESOLUTION = 448
_ROPE = "rope"  # TokenState.extra key of the grid's (cos, sin) tables


class Dinov3Backbone(ViTBackbone):
    """A ``transformers`` ``DINOv3ViTModel`` as a dense feature extractor.

    Args:
        model: the ``transformers`` model (frozen, eval mode).
        name: registry name or path, for messages.
        source: where the weights came from (hub id, path, ``"random"``).
    """

    family = "dinov3"
    default_resolution = DINOV3_RESOLUTION

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.model.layer

    def _pre_norm(self, block: HFModule) -> nn.Module:
        return block.norm1

    def _patch_projection(self) -> nn.Conv2d:
        return self.model.embeddings.patch_embeddings

    @property
    def num_registers(self) -> int:
        return int(getattr(self.model.config, "num_register_tokens", 0) or 0)

    def _prefix_tokens(self, batch: int) -> torch.Tensor:
        """``(B, 1 + R, D)``: CLS, then the ``R`` register tokens."""
        emb = self.model.embeddings
        return torch.cat([emb.cls_token.expand(batch, -1, -1), emb.register_tokens.expand(batch, -1, -1)], dim=1)

    def check_stride(self, stride: int | None) -> int:
        """The patch size: DINOv3 takes no overlapping patches (``stride`` must be None or the patch size)."""
        if stride is None or int(stride) == self.patch_size:
            return self.patch_size
        raise ConfigError(
            f"stride {stride} (overlapping patches) is not available for the DINOv3 backbone {self.name!r}: its "
            f"rotary position embeddings are those of a grid of whole {self.patch_size}-px patches. Leave stride "
            f"unset (or {self.patch_size}) and raise the resolution for a finer grid"
        )

    def describe(self) -> dict:
        return {**super().describe(), "position": "rotary (2-D RoPE)"}

    def _embed(self, pixels: np.ndarray, stride: int) -> TokenState:
        x, tokens, grid, prefix = self._patch_tokens(pixels, stride)
        hidden = torch.cat([prefix, tokens], dim=1).float()
        cos, sin = self.model.rope_embeddings(x)  # the grid of x // patch: exactly ``grid``
        return TokenState(grid=grid, hidden=[hidden], prefix=int(prefix.shape[1]),
                          extra={_ROPE: (cos.float(), sin.float())})

    def _run_block(self, block: nn.Module, hidden: torch.Tensor, state: TokenState | None = None) -> torch.Tensor:
        if state is None or _ROPE not in state.extra:
            raise ValueError("a DINOv3 block needs the rotary tables of its grid (state.extra['rope'])")
        out = block(hidden, position_embeddings=state.extra[_ROPE])
        return out[0] if isinstance(out, tuple) else out


# -- Meta's original checkpoints ------------------------------------------------------------------------------
HEAD_DIM = 64
_TOP = {"cls_token", "storage_tokens", "mask_token", "patch_embed.proj.weight", "patch_embed.proj.bias",
        "rope_embed.periods", "norm.weight", "norm.bias"}
_REQUIRED_TOP = {"cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias"}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_PLAIN_MLP = {"mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"}
_SWIGLU = {f"mlp.w{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
_COMMON = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias", "ls1.gamma",
           "norm2.weight", "norm2.bias", "ls2.gamma"}
_OPTIONAL = {"attn.qkv.bias", "attn.qkv.bias_mask"}
#: Norms of the 7B teacher's local crops, not part of the ViT that describes an image.
_IGNORED = ("local_cls_norm.", "cls_norm.")
LAYOUT = ("an original DINOv3 checkpoint (.pth): cls_token, storage_tokens, patch_embed.proj.*, rope_embed.periods, "
          "blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1/fc2 or mlp.w1/w2/w3, ls2.gamma}.*, norm.* "
          "(e.g. dinov3_vits16_pretrain_lvd1689m-08c60483.pth)")


def is_dinov3(sd: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict is in the layout of Meta's DINOv3 (storage tokens, rotary periods, masked k bias)."""
    return "storage_tokens" in sd or "rope_embed.periods" in sd or "blocks.0.attn.qkv.bias_mask" in sd


def _blocks(sd: dict[str, torch.Tensor], path: Path) -> tuple[int, bool]:
    """``(depth, swiglu)`` of a DINOv3 state dict whose keys are all known and whose blocks are complete."""
    parts: dict[int, set[str]] = {}
    unknown = []
    for key in sd:
        m = _BLOCK.match(key)
        if m:
            parts.setdefault(int(m.group(1)), set()).add(m.group(2))
        elif key not in _TOP:
            unknown.append(key)
    missing = sorted(_REQUIRED_TOP - set(sd)) + ([] if parts else ["blocks.0.*"])
    if unknown or missing:
        what = ([f"missing {', '.join(missing)}"] if missing else []) + \
               ([f"unexpected {', '.join(sorted(unknown)[:5])}"] if unknown else [])
        raise BackboneLoadError(f"{path} is not a DINOv3 ViT checkpoint ({'; '.join(what)}); expected {LAYOUT}")
    depth = max(parts) + 1
    swiglu = "mlp.w1.weight" in parts[0]
    mlp = _SWIGLU if swiglu else _PLAIN_MLP
    for i in range(depth):
        got = parts.get(i, set())
        lacking, extra = (_COMMON | mlp) - got, got - _COMMON - mlp - _OPTIONAL
        if lacking or extra:
            problem = f"lacks {', '.join(sorted(lacking))}" if lacking else f"has unexpected {', '.join(sorted(extra))}"
            raise BackboneLoadError(f"{path}: block {i} {problem}; expected {LAYOUT}")
    return depth, swiglu


def _rope_theta(periods: torch.Tensor | None, head_dim: int, path: Path) -> float:
    """The base ``theta`` of rotary periods ``theta ** (4 i / head_dim)`` (100 when none are stored)."""
    if periods is None or len(periods) < 2:
        return 100.0
    p = periods.detach().double()
    theta = float(p[1] / p[0]) ** (head_dim / 4)
    expect = theta ** (4 * torch.arange(len(p), dtype=torch.float64) / head_dim)
    if not torch.allclose(p / p[0], expect, rtol=1e-4):
        raise BackboneLoadError(f"{path}: rope_embed.periods are not of the form theta^(4i/{head_dim}) that "
                                f"DINOv3ViTModel computes; this variant of DINOv3 is not supported")
    return float(f"{theta:.5g}")  # the periods are float32: theta to 5 significant digits


def infer_dinov3_arch(sd: dict[str, torch.Tensor], path: Path | str = "checkpoint",
                      heads: int | None = None) -> ViTArch:
    """The architecture of a DINOv3 state dict, read from its tensor shapes.

    Raises:
        BackboneLoadError: keys or shapes that do not form a DINOv3 ViT (the message says what was expected).
    """
    path = Path(path)
    depth, swiglu = _blocks(sd, path)
    proj = sd["patch_embed.proj.weight"]
    if proj.ndim != 4 or proj.shape[1] != 3 or proj.shape[2] != proj.shape[3]:
        raise BackboneLoadError(f"{path}: patch_embed.proj.weight has shape {tuple(proj.shape)}; expected "
                                f"(D, 3, p, p) for an RGB ViT with square patches")
    dim, patch = int(proj.shape[0]), int(proj.shape[2])
    periods = sd.get("rope_embed.periods")
    if heads is None:
        head_dim = 4 * len(periods) if periods is not None and periods.ndim == 1 else HEAD_DIM
        if head_dim < 4 or dim % head_dim:
            raise BackboneLoadError(f"{path}: width {dim} is not a multiple of the head width {head_dim}, so the "
                                    f"number of attention heads cannot be inferred; pass heads=")
        heads = dim // head_dim
    regs = sd.get("storage_tokens")
    fc1 = sd["blocks.0.mlp.w1.weight" if swiglu else "blocks.0.mlp.fc1.weight"]
    arch = ViTArch(family="dinov3", dim=dim, depth=depth, heads=int(heads), patch_size=patch, image_size=224,
                   mlp_dim=int(fc1.shape[0]), qkv_bias="blocks.0.attn.qkv.bias" in sd,
                   registers=0 if regs is None else int(regs.shape[1]), swiglu=swiglu,
                   rope_theta=_rope_theta(periods, dim // int(heads), path))
    expect = {"cls_token": (1, 1, dim), "blocks.0.attn.qkv.weight": (3 * dim, dim),
              "blocks.0.attn.proj.weight": (dim, dim), "blocks.0.ls1.gamma": (dim,)}
    if regs is not None:
        expect["storage_tokens"] = (1, arch.registers, dim)
    for key, shape in expect.items():
        if tuple(sd[key].shape) != shape:
            raise BackboneLoadError(f"{path}: {key} has shape {tuple(sd[key].shape)}, expected {shape} for "
                                    f"a DINOv3 ViT of width {dim}")
    return arch


#: Meta's name of a block's part → DINOv3ViTModel's (the weight / bias suffix is kept).
_BLOCK_NAMES = {"norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.o_proj",
                "ls1.gamma": "layer_scale1.lambda1", "ls2.gamma": "layer_scale2.lambda1",
                "mlp.fc1": "mlp.up_proj", "mlp.fc2": "mlp.down_proj",
                "mlp.w1": "mlp.gate_proj", "mlp.w2": "mlp.up_proj", "mlp.w3": "mlp.down_proj"}


def convert_dinov3_state_dict(sd: dict[str, torch.Tensor], arch: ViTArch) -> dict[str, torch.Tensor]:
    """Rename a Meta-layout DINOv3 state dict to ``DINOv3ViTModel``'s (the mapping of the module docstring)."""
    dim = arch.dim
    out: dict[str, torch.Tensor] = {
        "embeddings.cls_token": sd["cls_token"],
        "embeddings.mask_token": sd.get("mask_token", torch.zeros(1, dim)).reshape(1, 1, dim),
        "embeddings.register_tokens": sd.get("storage_tokens", torch.zeros(1, 0, dim)),
        "embeddings.patch_embeddings.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.bias": sd["patch_embed.proj.bias"],
        "norm.weight": sd.get("norm.weight", torch.ones(dim)),
        "norm.bias": sd.get("norm.bias", torch.zeros(dim)),
    }
    for key, value in sd.items():
        m = _BLOCK.match(key)
        if not m:
            continue
        dst, part = f"model.layer.{m.group(1)}.", m.group(2)
        if part == "attn.qkv.weight":
            q, k, v = value.split(dim, dim=0)
            out.update({dst + "attention.q_proj.weight": q, dst + "attention.k_proj.weight": k,
                        dst + "attention.v_proj.weight": v})
        elif part == "attn.qkv.bias":  # the key's bias is masked to zero in Meta's model (bias_mask)
            qb, _, vb = value.split(dim, dim=0)
            out.update({dst + "attention.q_proj.bias": qb, dst + "attention.v_proj.bias": vb})
        elif part.endswith(".gamma"):
            out[dst + _BLOCK_NAMES[part]] = value
        elif part != "attn.qkv.bias_mask":
            name, param = part.rsplit(".", 1)
            out[f"{dst}{_BLOCK_NAMES[name]}.{param}"] = value
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def load_dinov3_checkpoint(sd: dict[str, torch.Tensor], path: str | Path,
                           heads: int | None = None) -> tuple[nn.Module, ViTArch]:
    """A ``DINOv3ViTModel`` holding the weights of a Meta-layout DINOv3 state dict ``sd`` (read from ``path``).

    Raises:
        BackboneLoadError: the tensors do not form a DINOv3 ViT; the message says what was expected.
    """
    path = Path(path)
    sd = {k: v for k, v in sd.items() if not k.startswith(_IGNORED)}
    arch = infer_dinov3_arch(sd, path, heads=heads)
    check_size(arch, str(path))  # before a byte is copied
    model = empty_model(arch)
    try:
        model.load_state_dict(convert_dinov3_state_dict(sd, arch), strict=True, assign=True)
    except RuntimeError as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise BackboneLoadError(f"{path}: the weights do not fit a {arch.describe()} ({type(e).__name__}: "
                                f"{first}); expected {LAYOUT}") from None
    return init_buffers_(model).eval(), arch
