"""Original DINO / DINOv2 checkpoints (``.pth``) → ``transformers`` models.

The checkpoints Facebook released with DINO (Caron et al. 2021), e.g. ``dino_deitsmall8_pretrain.pth``,
are plain state dicts of a ViT in the layout of DINO's ``vision_transformer.py`` (the same as timm's)::

    cls_token (1, 1, D)            pos_embed (1, 1 + n*n, D)      patch_embed.proj.{weight,bias}
    blocks.N.norm1.{weight,bias}   blocks.N.attn.qkv.{weight,bias} (3D, D)   blocks.N.attn.proj.*
    blocks.N.norm2.*               blocks.N.mlp.fc1.*             blocks.N.mlp.fc2.*
    norm.{weight,bias}

DINO's own training checkpoints (``checkpoint.pth``) hold ``teacher`` and ``student`` state dicts whose
keys carry ``module.`` / ``backbone.`` prefixes and a projection ``head``; the teacher's backbone is
used by default (as DINO's evaluation scripts and released ``*_pretrain.pth`` weights do); name the
file ``checkpoint.pth#student`` to use the student instead (``#teacher`` says the default). DINOv2 checkpoints
add the layer-scale factors
``blocks.N.ls1.gamma`` / ``ls2.gamma``, a ``mask_token`` and, with registers, ``register_tokens``.

The architecture is read from the tensor shapes: width ``D`` and patch size from the patch
projection, depth from the block indices, the MLP width from ``fc1``, the training resolution from
the number of position embeddings. The number of attention heads is not stored in a state dict; every
DINO/DINOv2 ViT uses 64-dimensional heads, so ``heads = D / 64`` unless given. ``qkv`` is split
into the query, key and value projections of the ``transformers`` model; LayerNorm eps is 1e-6.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import BackboneLoadError
from .arch import ViTArch, check_size, empty_model
from .dinov3 import is_dinov3, load_dinov3_checkpoint

HEAD_DIM = 64

EXPECTED_LAYOUT = (
    "an original DINO/DINOv2 ViT checkpoint (.pth): a backbone state dict with cls_token, pos_embed, "
    "patch_embed.proj.*, blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.*, norm.* "
    "(e.g. dino_deitsmall8_pretrain.pth), or a DINO training checkpoint with 'teacher'/'student' entries"
)

_BLOCK_PARTS = {
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
    "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
    "ls1.gamma", "ls2.gamma",
}
_REQUIRED_BLOCK_PARTS = {
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias",
    "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
}
_TOP = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias",
        "mask_token", "register_tokens"}
_REQUIRED_TOP = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight",
                 "norm.bias"}
# Entries that belong to a training wrapper or a classifier, not to the backbone.
_IGNORED_PREFIXES = ("head.", "fc_norm.", "dino_head.", "ibot_head.")

# -- reading checkpoints ---------------------------------------------------------------------------------
def _load_file(path: Path) -> object:
    """The object stored in ``path`` (tensors only; argparse namespaces of DINO's checkpoints allowed)."""
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return load_file(str(path))
        except Exception as e:
            raise BackboneLoadError(f"{path} is not a readable safetensors file ({_short(e)}); expected "
                                    f"{EXPECTED_LAYOUT}") from None
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise BackboneLoadError(f"cannot read {path}: {e.strerror or e}") from None
    if head != b"PK" and not head.startswith(b"\x80"):  # torch.save writes a zip archive (or a legacy pickle)
        raise BackboneLoadError(f"{path} is not a PyTorch checkpoint (neither the zip archive torch.save writes "
                                f"nor a pickle); expected {EXPECTED_LAYOUT}, or a HuggingFace-format model folder")
    try:
        # DINO's training checkpoints store their argparse arguments next to the tensors.
        # mmap: tensors stay in the file until used, so a file is inspected before anything is copied
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=head == b"PK")
    except Exception as e:
        msg = _short(e)
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if found:
            raise BackboneLoadError(
                f"{path} holds Python objects besides tensors (e.g. {found.group(1)}), which are not loaded "
                f"for safety. "
                f"Re-save only the backbone weights, e.g. torch.save(torch.load(p, weights_only=False)"
                f"['teacher'], 'backbone.pth'); expected {EXPECTED_LAYOUT}") from None
        raise BackboneLoadError(f"{path} is not a PyTorch checkpoint ({msg}); expected {EXPECTED_LAYOUT}, "
                                f"or a HuggingFace-format model folder") from None


def tensor_problem(t: torch.Tensor) -> str | None:
    """Why a loaded tensor is refused, or None: a view claiming more bytes than its storage holds, or
    an expanded (stride 0) or overlapping view, which would become far larger once copied."""
    if t.numel() == 0:
        return None
    if any(st == 0 and n > 1 for n, st in zip(t.shape, t.stride(), strict=False)):
        return f"an expanded view (stride 0) of shape {tuple(t.shape)}"
    size = t.element_size()
    stored = t.untyped_storage().nbytes()
    extent = (
        t.storage_offset() + sum((n - 1) * abs(st) for n, st in zip(t.shape, t.stride(), strict=False)) + 1
    ) * size
    if stored < extent:
        return f"shape {tuple(t.shape)} needs {extent} bytes but its storage holds {stored}"
    if stored < t.numel() * size:
        return f"an overlapping view of shape {tuple(t.shape)} over {stored} bytes"
    return None


def check_tensors(obj: object, path: Path, depth: int = 0) -> None:
    """Refuse (with :class:`BackboneLoadError`) any tensor in ``obj`` (nested mappings, 3 levels) that
    :func:`tensor_problem` rejects, before any tensor is copied or a model is built."""
    if isinstance(obj, torch.Tensor):
        problem = tensor_problem(obj)
        if problem:
            raise BackboneLoadError(f"{path} is refused: it holds a tensor that is {problem}; a checkpoint saved "
                                    f"with torch.save(model.state_dict()) never does. Re-save the weights with "
                                    f"contiguous tensors (t.contiguous().clone())")
    elif isinstance(obj, Mapping) and depth < 3:
        for value in obj.values():
            check_tensors(value, path, depth + 1)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


#: The networks of a DINO training checkpoint, the default first.
BRANCHES: tuple[str, ...] = ("teacher", "student")


def split_branch(name: str) -> tuple[str, str | None]:
    """``"ckpt.pth#student"`` → ``("ckpt.pth", "student")``; no suffix → ``(name, None)``."""
    base, sep, branch = name.rpartition("#")
    if sep and branch in BRANCHES:
        return base, branch
    return name, None


def _pick_state_dict(obj: object, path: Path, branch: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The backbone's tensors in ``obj`` and which entry they came from (``branch``: the teacher or
    student of a training checkpoint; default the teacher)."""
    if not isinstance(obj, Mapping):
        raise BackboneLoadError(f"{path} holds a {type(obj).__name__}, not a state dict; expected {EXPECTED_LAYOUT}")
    if branch is not None and not isinstance(obj.get(branch), Mapping):
        raise BackboneLoadError(f"{path}#{branch}: the file has no '{branch}' entry; '#{branch}' selects a network "
                                f"of a DINO training checkpoint (entries {list(BRANCHES)})")
    where = "state dict"
    order = (branch,) if branch else ("teacher", "student", "model", "state_dict", "model_state_dict")
    for key in order:
        value = obj.get(key)
        if isinstance(value, Mapping) and any(isinstance(v, torch.Tensor) for v in value.values()):
            obj, where = value, f"'{key}' entry"
            break
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise BackboneLoadError(f"{path} contains no tensors at the top level or in 'teacher'/'student'; "
                                f"expected {EXPECTED_LAYOUT}")
    # Strip wrapper prefixes: DistributedDataParallel's "module.", DINO's MultiCropWrapper "backbone.".
    for prefix in ("module.", "backbone."):
        if any(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    tensors = {k: v for k, v in tensors.items() if not k.startswith(_IGNORED_PREFIXES)}
    # DINOv2 training splits the blocks into FSDP chunks: blocks.<chunk>.<index>.… → blocks.<index>.…
    chunked = re.compile(r"^blocks\.\d+\.(\d+)\.(.+)$")
    if any(chunked.match(k) for k in tensors):
        tensors = {(f"blocks.{m.group(1)}.{m.group(2)}" if (m := chunked.match(k)) else k): v
                   for k, v in tensors.items()}
    return tensors, where


def _check_layout(sd: dict[str, torch.Tensor], path: Path) -> int:
    """Validate the key set of a DINO-layout state dict; returns the number of blocks."""
    block_key = re.compile(r"^blocks\.(\d+)\.(.+)$")
    indices: set[int] = set()
    unknown: list[str] = []
    parts: dict[int, set[str]] = {}
    for k in sd:
        m = block_key.match(k)
        if m:
            i, part = int(m.group(1)), m.group(2)
            if part not in _BLOCK_PARTS:
                unknown.append(k)
            indices.add(i)
            parts.setdefault(i, set()).add(part)
        elif k not in _TOP:
            unknown.append(k)
    missing = sorted(_REQUIRED_TOP - set(sd))
    if not indices:
        missing.append("blocks.0.*")
    if missing or unknown:
        found = ", ".join(sorted(sd)[:6]) + (", …" if len(sd) > 6 else "")
        what = []
        if missing:
            what.append(f"missing {', '.join(missing)}")
        if unknown:
            what.append(f"unexpected {', '.join(sorted(unknown)[:5])}" + (" …" if len(unknown) > 5 else ""))
        raise BackboneLoadError(f"{path} is not a DINO ViT checkpoint ({'; '.join(what)}; it has {found}). "
                                f"Expected {EXPECTED_LAYOUT}")
    depth = max(indices) + 1
    if indices != set(range(depth)):
        raise BackboneLoadError(f"{path}: blocks {sorted(set(range(depth)) - indices)} are missing")
    for i in range(depth):
        lacking = _REQUIRED_BLOCK_PARTS - parts[i]
        if lacking:
            raise BackboneLoadError(f"{path}: block {i} lacks {', '.join(sorted(lacking))}; expected {EXPECTED_LAYOUT}")
    return depth


def infer_arch(sd: dict[str, torch.Tensor], path: Path | str = "checkpoint", heads: int | None = None) -> ViTArch:
    """The architecture of a DINO-layout state dict, read from its tensor shapes.

    Raises:
        BackboneLoadError: keys or shapes that do not form a DINO/DINOv2 ViT (the message says what
            was expected).
    """
    path = Path(path)
    if any(k.startswith("blocks.0.mlp.w12") or k.startswith("blocks.0.mlp.w3") for k in sd):
        raise BackboneLoadError(f"{path} is a DINOv2 ViT-g with SwiGLU MLPs, which DeepCut does not support; "
                                f"use a ViT-S/B/L checkpoint")
    depth = _check_layout(sd, path)
    proj = sd["patch_embed.proj.weight"]
    if proj.ndim != 4 or proj.shape[1] != 3 or proj.shape[2] != proj.shape[3]:
        raise BackboneLoadError(f"{path}: patch_embed.proj.weight has shape {tuple(proj.shape)}; expected "
                                f"(D, 3, p, p) for an RGB ViT with square patches")
    dim, patch = int(proj.shape[0]), int(proj.shape[2])
    n_pos = int(sd["pos_embed"].shape[1]) - 1
    side = int(round(n_pos ** 0.5))
    if sd["pos_embed"].ndim != 3 or side * side != n_pos or sd["pos_embed"].shape[-1] != dim:
        raise BackboneLoadError(f"{path}: pos_embed has shape {tuple(sd['pos_embed'].shape)}; expected "
                                f"(1, 1 + n*n, {dim}) (a CLS position and a square grid)")
    if heads is None:
        if dim % HEAD_DIM:
            raise BackboneLoadError(f"{path}: width {dim} is not a multiple of {HEAD_DIM}, so the number of "
                                    f"attention heads cannot be inferred; pass heads=")
        heads = dim // HEAD_DIM
    dinov2 = "blocks.0.ls1.gamma" in sd
    regs = sd.get("register_tokens")
    arch = ViTArch(
        family="dinov2" if dinov2 else "vit", dim=dim, depth=depth, heads=int(heads), patch_size=patch,
        image_size=side * patch, mlp_dim=int(sd["blocks.0.mlp.fc1.weight"].shape[0]),
        qkv_bias="blocks.0.attn.qkv.bias" in sd, registers=0 if regs is None else int(regs.shape[1]),
    )
    if regs is not None and not dinov2:
        raise BackboneLoadError(f"{path} has register_tokens but no layer scale (ls1.gamma): "
                                f"expected a DINOv2-with-registers checkpoint")
    expect = {"cls_token": (1, 1, dim), "blocks.0.attn.qkv.weight": (3 * dim, dim),
              "blocks.0.attn.proj.weight": (dim, dim), "norm.weight": (dim,)}
    for key, shape in expect.items():
        if tuple(sd[key].shape) != shape:
            raise BackboneLoadError(f"{path}: {key} has shape {tuple(sd[key].shape)}, expected {shape} for "
                                    f"a ViT of width {dim}")
    return arch


def convert_state_dict(sd: dict[str, torch.Tensor], arch: ViTArch) -> dict[str, torch.Tensor]:
    """Rename a DINO-layout state dict to the ``transformers`` model of ``arch``; ``qkv`` is split in three."""
    dim = arch.dim
    out: dict[str, torch.Tensor] = {
        "embeddings.cls_token": sd["cls_token"],
        "embeddings.position_embeddings": sd["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "layernorm.weight": sd["norm.weight"],
        "layernorm.bias": sd["norm.bias"],
    }
    if arch.family == "vit":
        block, names = "layers.{i}.", {"norm1": "layernorm_before", "norm2": "layernorm_after"}
    else:
        block, names = "encoder.layer.{i}.", {"norm1": "norm1", "norm2": "norm2"}
        out["embeddings.mask_token"] = sd.get("mask_token", torch.zeros(1, dim)).reshape(1, dim)
        if arch.registers:
            out["embeddings.register_tokens"] = sd["register_tokens"]
    for i in range(arch.depth):
        src, dst = f"blocks.{i}.", block.format(i=i)
        for norm in ("norm1", "norm2"):
            for p in ("weight", "bias"):
                out[f"{dst}{names[norm]}.{p}"] = sd[f"{src}{norm}.{p}"]
        q, k, v = sd[f"{src}attn.qkv.weight"].split(dim, dim=0)
        out.update({f"{dst}attention.q_proj.weight": q, f"{dst}attention.k_proj.weight": k,
                    f"{dst}attention.v_proj.weight": v})
        if arch.qkv_bias:
            qb, kb, vb = sd[f"{src}attn.qkv.bias"].split(dim, dim=0)
            out.update({f"{dst}attention.q_proj.bias": qb, f"{dst}attention.k_proj.bias": kb,
                        f"{dst}attention.v_proj.bias": vb})
        out[f"{dst}attention.o_proj.weight"] = sd[f"{src}attn.proj.weight"]
        out[f"{dst}attention.o_proj.bias"] = sd[f"{src}attn.proj.bias"]
        for fc in ("fc1", "fc2"):
            for p in ("weight", "bias"):
                out[f"{dst}mlp.{fc}.{p}"] = sd[f"{src}mlp.{fc}.{p}"]
        if arch.family == "dinov2":
            out[f"{dst}layer_scale1.lambda1"] = sd[f"{src}ls1.gamma"]
            out[f"{dst}layer_scale2.lambda1"] = sd[f"{src}ls2.gamma"]
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def read_dino_checkpoint(path: str | Path, branch: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The backbone state dict (DINO layout) stored in ``path`` and which entry it came from
    (``branch``: ``"teacher"`` (default) or ``"student"`` of a training checkpoint)."""
    path = Path(path)
    obj = _load_file(path)
    check_tensors(obj, path)
    return _pick_state_dict(obj, path, branch)


def load_dino_checkpoint(path: str | Path, heads: int | None = None,
                         branch: str | None = None) -> tuple[nn.Module, ViTArch]:
    """A ``transformers`` model holding the weights of an original DINO/DINOv2/DINOv3 checkpoint.

    Args:
        path: a ``.pth`` (or ``.safetensors``) file, see the module docstring for the layouts (DINOv3's:
            :mod:`deepcut.backbones.dinov3`).
        heads: number of attention heads (default ``D / 64``, true of every DINO model).
        branch: of a DINO training checkpoint, ``"teacher"`` (default) or ``"student"``.

    Returns:
        ``(model, arch)``: the model in eval mode and the architecture read from the shapes.

    Raises:
        BackboneLoadError: the file is not a checkpoint, or not one of a DINO-family ViT; the message
            says what was expected.
    """
    path = Path(path)
    sd, _ = read_dino_checkpoint(path, branch)
    if is_dinov3(sd):
        return load_dinov3_checkpoint(sd, path, heads=heads)
    arch = infer_arch(sd, path, heads=heads)
    check_size(arch, str(path))  # before a byte is copied
    converted = convert_state_dict(sd, arch)
    model = empty_model(arch)
    try:
        model.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as e:
        raise BackboneLoadError(f"{path}: the weights do not fit a {arch.describe()} "
                                f"({_short(e)}); expected {EXPECTED_LAYOUT}") from None
    return model.eval(), arch
