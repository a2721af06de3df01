"""Backbone zoo: registry, DINOv2 (+registers), original DINO checkpoints (proved against timm),
overlapping patches, the log-binned descriptor, offline behaviour."""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import math
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepcut import DeepCut, SegmentConfig, list_backbones
from deepcut.backbones import REGISTRY, build_model, load_backbone, weights_available, wrap_model
from deepcut.backbones.vit import IMAGENET_MEAN, IMAGENET_STD
from deepcut.errors import BackboneLoadError, ConfigError
from deepcut.features.descriptors import log_bin

REPO = Path(__file__).resolve().parents[1]
EXPECTED_NAMES = ["dino_vits8", "dino_vits16", "dino_vitb8", "dino_vitb16", "dinov2_vits14", "dinov2_vitb14",
                  "dinov2_vits14_reg", "dinov2_vitb14_reg", "dinov3_vits16", "dinov3_vits16plus", "dinov3_vitb16",
                  "dinov3_vitl16", "color"]
#: The ViT-L is left out of the per-backbone build (300 M random weights; DINOv3: tests/test_dinov3.py).
BUILT_NAMES = [n for n in EXPECTED_NAMES if n != "dinov3_vitl16"]


def smooth_image(size: int, seed: int = 0) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 image with structure at several scales (not just noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    img = np.stack([np.sin(6 * xx + 2 * c) * np.cos(4 * yy - c) for c in range(3)], -1) * 80 + 128
    img += rng.normal(0, 20, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def normalized(img: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def to_dino_layout(model) -> dict[str, torch.Tensor]:
    """A ``transformers`` ViT / DINOv2 model's weights in the original DINO/DINOv2 ``.pth`` layout
    (written independently of deepcut.backbones.checkpoint, as the inverse mapping)."""
    sd = model.state_dict()
    dinov2 = model.config.model_type != "vit"
    out = {"cls_token": sd["embeddings.cls_token"], "pos_embed": sd["embeddings.position_embeddings"],
           "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"]}
    if dinov2:
        out["mask_token"] = sd["embeddings.mask_token"]
        if "embeddings.register_tokens" in sd:
            out["register_tokens"] = sd["embeddings.register_tokens"]
    for i in range(model.config.num_hidden_layers):
        b = f"encoder.layer.{i}." if dinov2 else f"layers.{i}."
        n1, n2 = ("norm1", "norm2") if dinov2 else ("layernorm_before", "layernorm_after")
        o = f"blocks.{i}."
        for p in ("weight", "bias"):
            out[o + f"norm1.{p}"] = sd[b + f"{n1}.{p}"]
            out[o + f"norm2.{p}"] = sd[b + f"{n2}.{p}"]
            out[o + f"attn.qkv.{p}"] = torch.cat([sd[b + f"attention.{x}_proj.{p}"] for x in "qkv"])
            out[o + f"attn.proj.{p}"] = sd[b + f"attention.o_proj.{p}"]
            out[o + f"mlp.fc1.{p}"] = sd[b + f"mlp.fc1.{p}"]
            out[o + f"mlp.fc2.{p}"] = sd[b + f"mlp.fc2.{p}"]
        if dinov2:
            out[o + "ls1.gamma"] = sd[b + "layer_scale1.lambda1"]
            out[o + "ls2.gamma"] = sd[b + "layer_scale2.lambda1"]
    return {k: v.clone() for k, v in out.items()}


def shallow(name: str, depth: int = 2, seed: int = 0):
    """A random-weight backbone shaped like registry entry ``name`` but only ``depth`` blocks deep
    (checkpoint tests: the converter reads the depth from the shapes; fewer bytes to save and load)."""
    from dataclasses import replace

    return wrap_model(build_model(replace(REGISTRY[name].arch(), depth=depth), seed=seed), name=name, source="random")


def perturb_(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Add noise to every parameter, so that unit LayerNorms, zero biases or unit layer scales
    cannot hide a wrongly mapped tensor."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


# -- timm, a test-only dependency --------------------------------------------------------------------------
class _StandInType(type):
    """Placeholder classes: attribute access works (timm reads e.g. InterpolationMode.BILINEAR at
    import time), instantiating one raises."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}")


def _unavailable(self, *args, **kwargs):
    raise RuntimeError(f"{type(self).__qualname__} is part of a torchvision stand-in; torchvision is not installed")


def _placeholder(qualname: str) -> type:
    return _StandInType(qualname.rsplit(".", 1)[-1], (), {"__qualname__": qualname, "__init__": _unavailable})


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


@pytest.fixture(scope="module")
def timm():
    """timm, imported for real.

    timm imports torchvision at import time (data transforms, datasets, FrozenBatchNorm2d) but its
    VisionTransformer never calls it. PyPI's torchvision wheels are CUDA builds whose C++ ops cannot
    load next to the CPU build of torch this project pins, and installing a matching one would pull
    another torch. So when ``import torchvision`` fails, timm is imported with a stand-in for the
    torchvision modules it names: every name resolves to a placeholder class that raises if it is
    ever instantiated, so nothing of torchvision can be used silently. The stand-in is removed from
    ``sys.modules`` right after the import; the ViT that is compared below is timm's own code.
    CI installs timm with ``pip install --no-deps`` (see .ci/run).
    """
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        finder = _TorchvisionStandIn()
        sys.meta_path.insert(0, finder)
        try:
            import timm as timm_module
        finally:
            sys.meta_path.remove(finder)
            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                del sys.modules[name]
    else:
        import timm as timm_module
    return timm_module


def timm_facets(model, x: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's own forward pass: (token facet, key facet) of ``layer``, patch tokens only, ``(N, D)``."""
    seen = {}
    block = model.blocks[layer]
    h1 = block.register_forward_hook(lambda m, a, out: seen.__setitem__("token", out.detach()))
    h2 = block.attn.qkv.register_forward_hook(lambda m, a, out: seen.__setitem__("qkv", out.detach()))
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        h1.remove()
        h2.remove()
    dim = model.embed_dim
    return seen["token"][0, 1:], seen["qkv"][0, 1:, dim:2 * dim]


#: Relative error of the features to the fp32 reference allowed in each precision: fp32 is exact up to
#: float rounding; bf16 (autocast, 8-bit mantissa in the products) stays within 2 % (measured: 0.9 %).
TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2, "fp16": 1e-2}


@pytest.mark.parametrize("precision", ["fp32", "auto"])
@pytest.mark.parametrize("timm_name,file_name,patch", [
    ("vit_small_patch8_224", "dino_deitsmall8_pretrain.pth", 8),
    ("vit_base_patch16_224", "dino_vitbase16_pretrain.pth", 16),
])
@pytest.mark.slow
def test_original_dino_checkpoint_matches_timm(timm, tmp_path, timm_name, file_name, patch, precision):
    """A timm ViT's state dict is an original DINO checkpoint; DeepCut's token facet of layer 11 and
    the affinity F Fᵀ of its key facet equal what timm computes (in fp32; within :data:`TOLERANCE` in the
    default precision, bf16 on a CPU with native bf16)."""
    torch.manual_seed(0)
    model = timm.create_model(timm_name, pretrained=False, num_classes=0).eval()
    perturb_(model, seed=1)
    sd = model.state_dict()
    assert {k for k in sd if not k.startswith("blocks.")} == {
        "cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    path = tmp_path / file_name
    torch.save(sd, path)

    dc = DeepCut(backbone=str(path), precision=precision)
    tol = TOLERANCE[dc.precision]
    bb = dc.backbone
    assert (bb.family, bb.patch_size, bb.dim, bb.depth, bb.heads) == ("vit", patch, model.embed_dim, 12,
                                                                      model.blocks[0].attn.num_heads)
    img = smooth_image(224)
    token = dc.features(img, layer=11, facet="token", resolution=224)
    key = dc.features(img, layer=11, facet="key", resolution=224)
    side = 224 // patch
    assert token.shape == key.shape == (side, side, model.embed_dim)

    ref_token, ref_key = timm_facets(model, normalized(img), 11)
    assert rel_err(token.reshape(side * side, -1), ref_token) < tol
    w = key.reshape(side * side, -1) @ key.reshape(side * side, -1).T
    w_ref = ref_key @ ref_key.T
    assert rel_err(w, w_ref) < tol
    # and not trivially: another layer's keys give a clearly different affinity
    other = dc.features(img, layer=10, facet="key", resolution=224).reshape(side * side, -1)
    assert rel_err(other @ other.T, w_ref) > 1e-2


def dino_formula_facets(model, x: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference at any input size: timm's own blocks, with the position embeddings resized by
    DINO's own formula (``vision_transformer.py::interpolate_pos_encoding``, which names the height
    ``w``): bicubic with ``scale_factor = ((n + 0.1) / sqrt(N), ...)``, not ``size=n``."""
    _, _, height, width = x.shape
    patch = model.patch_embed.proj.kernel_size[0]
    with torch.no_grad():
        tokens = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        pos = model.pos_embed
        n_pos = pos.shape[1] - 1
        dim = pos.shape[-1]
        w0, h0 = height // patch + 0.1, width // patch + 0.1
        side = math.sqrt(n_pos)
        patch_pos = torch.nn.functional.interpolate(
            pos[:, 1:].reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / side, h0 / side), mode="bicubic")
        assert int(w0) == patch_pos.shape[-2] and int(h0) == patch_pos.shape[-1]
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
        hidden = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), tokens], 1)
        hidden = hidden + torch.cat([pos[:, :1], patch_pos], 1)
        seen = {}
        hook = model.blocks[layer].attn.qkv.register_forward_hook(lambda m, a, out: seen.__setitem__("qkv", out))
        try:
            for block in model.blocks[:layer + 1]:
                hidden = block(hidden)
        finally:
            hook.remove()
    return hidden[0, 1:], seen["qkv"][0, 1:, dim:2 * dim]


@pytest.mark.parametrize("precision", ["fp32", "auto"])
@pytest.mark.parametrize("size", [(280, 280), (224, 336)])
def test_features_equal_dino_at_non_native_sizes(timm, tmp_path, size, precision):
    """At 280 px (35 x 35 patches, not DINO's native 28 x 28) and on a non-square image, the position
    embeddings are resized by DINO's formula, so the token and key facets equal DINO's own (the
    ``size=n`` resize that transformers uses differs by several per cent)."""
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch8_224", pretrained=False, num_classes=0).eval()
    perturb_(model, seed=1)
    path = tmp_path / "dino_deitsmall8_pretrain.pth"
    torch.save(model.state_dict(), path)
    dc = DeepCut(backbone=str(path), precision=precision)
    tol = TOLERANCE[dc.precision]
    height, width = size
    img = smooth_image(max(size))[:height, :width]
    resolution = int(math.sqrt(height * width))
    grid = dc.store.grid(img.shape[:2], resolution, None)
    assert grid == (height // 8, width // 8)
    token = dc.features(img, layer=11, facet="token", resolution=resolution).reshape(grid[0] * grid[1], -1)
    key = dc.features(img, layer=11, facet="key", resolution=resolution).reshape(grid[0] * grid[1], -1)
    ref_token, ref_key = dino_formula_facets(model, normalized(img), 11)
    assert rel_err(token, ref_token) < tol
    assert rel_err(key @ key.T, ref_key @ ref_key.T) < tol


# -- registry ----------------------------------------------------------------------------------------------
def test_registry_lists_every_backbone():
    rows = {r["name"]: r for r in list_backbones()}
    assert list(rows) == EXPECTED_NAMES
    assert rows["dino_vits8"] == {**rows["dino_vits8"], "patch_size": 8, "dim": 384, "depth": 12,
                                  "weights": "huggingface.co/facebook/dino-vits8"}
    assert rows["dinov2_vitb14"]["hub_id"] == "facebook/dinov2-base"
    assert (rows["dinov2_vitb14"]["patch_size"], rows["dinov2_vitb14"]["dim"]) == (14, 768)
    assert rows["dinov2_vits14_reg"]["hub_id"] == "facebook/dinov2-with-registers-small"
    assert rows["dinov2_vits14_reg"]["registers"] == 4
    assert rows["color"]["weights"] == "none needed"


@pytest.mark.parametrize("name", BUILT_NAMES)
def test_every_backbone_builds_with_random_weights_and_gives_every_facet(name):
    dc = DeepCut(name, pretrained=False)
    spec = REGISTRY[name]
    bb = dc.backbone
    assert (bb.patch_size, bb.dim) == (spec.patch_size, spec.dim)
    img = smooth_image(112)
    for facet in ("key", "query", "value", "token"):
        f = dc.features(img, layer=1 if bb.depth > 1 else 0, facet=facet, resolution=112)
        cells = (112 - spec.patch_size) // spec.patch_size + 1
        assert f.shape == (cells, cells, spec.dim)
        assert torch.isfinite(f).all()
    if spec.family != "color":
        assert bb.source == "random" and bb.depth == spec.depth == 12
        assert bb.num_registers == spec.registers


def test_random_weights_are_seeded():
    a = load_backbone("dinov2_vits14_reg", pretrained=False)
    b = load_backbone("dinov2_vits14_reg", pretrained=False)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=False):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("precision", ["fp32", "auto"])
@pytest.mark.parametrize("name", ["dinov2_vits14", "dinov2_vits14_reg", "dino_vits16"])
def test_facets_equal_the_transformers_models_own_forward(name, precision):
    """token of layer l = the model's hidden_states[l+1] without CLS and registers; key = k_proj(norm1)
    (in fp32 to float rounding; within :data:`TOLERANCE` in the default precision)."""
    dc = DeepCut(name, pretrained=False, precision=precision)
    tol = 1e-5 if dc.precision == "fp32" else TOLERANCE[dc.precision]
    bb = dc.backbone
    bb.pos_offset = 0.0  # transformers resizes the position embeddings with size=; DINO's formula: see above
    perturb_(bb.model, seed=2)  # layer scales, norms and register tokens away from their init values
    img = smooth_image(112, seed=3)
    kw = {"interpolate_pos_encoding": True} if bb.family == "vit" else {}
    with torch.no_grad():
        hidden = bb.model(pixel_values=normalized(img), output_hidden_states=True, **kw).hidden_states
    prefix = 1 + REGISTRY[name].registers
    cells = (112 - bb.patch_size) // bb.patch_size + 1
    assert hidden[0].shape[1] == prefix + cells * cells
    for layer in (0, 11):
        token = dc.features(img, layer=layer, facet="token", resolution=112)
        assert token.shape == (cells, cells, bb.dim)
        assert rel_err(token.reshape(cells * cells, -1), hidden[layer + 1][0, prefix:]) < tol
        block = bb.blocks[layer]
        with torch.no_grad():
            ref_key = block.attention.k_proj(bb._pre_norm(block)(hidden[layer]))[0, prefix:]
        key = dc.features(img, layer=layer, facet="key", resolution=112)
        assert rel_err(key.reshape(cells * cells, -1), ref_key) < tol


# -- local weights -----------------------------------------------------------------------------------------
def test_dinov2_checkpoint_with_registers_round_trips(tmp_path):
    """An original-layout DINOv2+registers .pth (ls1/ls2.gamma, register_tokens, mask_token) loads into
    Dinov2WithRegistersModel and gives the source model's features."""
    src = shallow("dinov2_vits14_reg")
    perturb_(src.model, seed=4)
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(to_dino_layout(src.model), path)
    dc = DeepCut(str(path))
    assert dc.backbone.family == "dinov2_reg" and dc.backbone.num_registers == 4
    assert dc.backbone.model.config.image_size == 518
    ref = DeepCut(src)
    img = smooth_image(112, seed=5)
    for facet in ("token", "query"):
        a = dc.features(img, layer=1, facet=facet, resolution=112)
        b = ref.features(img, layer=1, facet=facet, resolution=112)
        assert rel_err(a, b) < 1e-6


def test_training_checkpoint_uses_the_teacher_backbone_or_the_student(tmp_path):
    """DINO's checkpoint.pth: teacher/student with module./backbone. prefixes, heads, argparse args."""
    teacher = shallow("dino_vits16", seed=5)
    perturb_(teacher.model, seed=6)
    student = shallow("dino_vits16", seed=7).model
    head = {"head.mlp.0.weight": torch.randn(8, 384), "head.last_layer.weight_g": torch.randn(65536, 1)}
    ckpt = {
        "student": {**{f"module.backbone.{k}": v for k, v in to_dino_layout(student).items()},
                    **{f"module.{k}": v for k, v in head.items()}},
        "teacher": {**{f"backbone.{k}": v for k, v in to_dino_layout(teacher.model).items()}, **head},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_small", patch_size=16),
        "dino_loss": {"center": torch.zeros(1, 65536)},
    }
    path = tmp_path / "checkpoint.pth"
    torch.save(ckpt, path)
    dc = DeepCut(str(path))
    ref = DeepCut(teacher)
    img = smooth_image(112)
    assert dc.backbone.depth == 2
    a = dc.features(img, layer=1, facet="token", resolution=112)
    assert rel_err(a, ref.features(img, layer=1, facet="token", resolution=112)) < 1e-6
    student_feats = DeepCut(wrap_model(student, "student", "random")).features(img, layer=1, facet="token",
                                                                                 resolution=112)
    assert rel_err(a, student_feats) > 1e-2
    # "#student" selects the student network, "#teacher" says the default
    chosen = DeepCut(f"{path}#student")
    assert chosen.backbone.name.endswith("checkpoint.pth#student")
    assert rel_err(chosen.features(img, layer=1, facet="token", resolution=112), student_feats) < 1e-6
    assert rel_err(DeepCut(f"{path}#teacher").features(img, layer=1, facet="token", resolution=112), a) < 1e-6
    plain = tmp_path / "plain.pth"
    torch.save(to_dino_layout(student), plain)
    with pytest.raises(BackboneLoadError, match="no 'student' entry"):
        DeepCut(f"{plain}#student")


def test_hf_folder_of_a_dinov2_model(tmp_path):
    model = build_model(REGISTRY["dinov2_vits14_reg"].arch(), seed=8)
    model.save_pretrained(tmp_path / "dinov2reg")
    dc = DeepCut(str(tmp_path / "dinov2reg"))
    assert dc.backbone.family == "dinov2_reg" and dc.backbone.source == str(tmp_path / "dinov2reg")
    assert torch.equal(dc.backbone.model.embeddings.register_tokens, model.embeddings.register_tokens)


def test_files_that_are_not_dino_checkpoints_give_clear_errors(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(BackboneLoadError, match=r"not a PyTorch checkpoint.*expected an original DINO"):
        DeepCut(str(text))

    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(BackboneLoadError, match="not a state dict"):
        DeepCut(str(tensor))

    resnet = tmp_path / "dino_resnet50_pretrain.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.zeros(64),
                "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)}, resnet)
    with pytest.raises(BackboneLoadError, match=r"not a DINO ViT checkpoint.*missing cls_token.*Expected .*blocks\.N"):
        DeepCut(str(resnet))

    sd = to_dino_layout(shallow("dino_vits16").model)
    sd["blocks.1.attn.qkv.weight"] = torch.zeros(3 * 384, 192)
    odd = tmp_path / "odd_shape.pth"
    torch.save(sd, odd)
    with pytest.raises(BackboneLoadError, match=r"do not fit a DINO ViT: patch 16, width 384, 2 blocks"):
        DeepCut(str(odd))

    with pytest.raises(BackboneLoadError, match="does not exist"):
        DeepCut(str(tmp_path / "missing.pth"))

    pickled = tmp_path / "with_objects.pth"  # anything but tensors and DINO's argparse args is refused
    torch.save({"teacher": to_dino_layout(shallow("dino_vits16").model), "args": Path("/x")}, pickled)
    with pytest.raises(BackboneLoadError, match=r"Python objects besides tensors \(e\.g\. pathlib\.\w*Path\).*Re-save"):
        DeepCut(str(pickled))


def test_deepcut_weights_env_sets_the_default_backbone(tmp_path, monkeypatch):
    src = load_backbone("dino_vits8", pretrained=False)
    perturb_(src.model, seed=9)
    path = tmp_path / "dino_deitsmall8_pretrain.pth"
    torch.save(to_dino_layout(src.model), path)
    monkeypatch.setenv("DEEPCUT_WEIGHTS", str(path))
    assert weights_available("dino_vits8")
    dc = DeepCut()
    assert dc.backbone.name == "dino_vits8" and dc.backbone.source == str(path)
    img = smooth_image(112)
    assert rel_err(dc.features(img, resolution=112), DeepCut(src).features(img, resolution=112)) < 1e-6
    # random weights ignore it; other names ignore it
    assert DeepCut(pretrained=False).backbone.source == "random"

    other = tmp_path / "dino_vits16_pretrain.pth"
    torch.save(to_dino_layout(shallow("dino_vits16").model), other)
    monkeypatch.setenv("DEEPCUT_WEIGHTS", str(other))
    with pytest.raises(BackboneLoadError, match=r"patch 16.*default backbone 'dino_vits8'.*patch 8"):
        DeepCut()
    monkeypatch.setenv("DEEPCUT_WEIGHTS", str(tmp_path / "nowhere.pth"))
    with pytest.raises(BackboneLoadError, match="DEEPCUT_WEIGHTS=.*does not exist"):
        DeepCut()


# -- overlapping patches -----------------------------------------------------------------------------------
def test_stride_4_gives_69_cells_with_interpolated_positions(vit_model):
    img = smooth_image(280)
    f = vit_model.features(img, layer=0, facet="key", resolution=280, stride=4)
    assert f.shape == (69, 69, 384)  # (280 - 8) / 4 + 1

    bb = vit_model.backbone
    dense, _ = vit_model.embed(img, 280, 4)
    plain, _ = vit_model.embed(img, 280, 8)
    assert dense.grid == (69, 69) and plain.grid == (35, 35)
    assert dense.work.shape == plain.work.shape == (280, 280, 3)
    proj = bb.model.embeddings.patch_embeddings.projection
    pos = bb.model.embeddings.position_embeddings  # learned for 28 x 28 patches
    x = normalized(dense.work)
    with torch.no_grad():
        conv4 = F.conv2d(x, proj.weight, proj.bias, stride=4).flatten(2).transpose(1, 2)[0]
        pos69 = F.interpolate(pos[:, 1:].reshape(1, 28, 28, 384).permute(0, 3, 1, 2),
                              scale_factor=(69.1 / 28, 69.1 / 28), mode="bicubic", align_corners=False,
                              recompute_scale_factor=False).permute(0, 2, 3, 1).reshape(69 * 69, 384)
    tokens4 = dense.state.hidden[0][0, 1:]
    assert torch.allclose(tokens4, conv4 + pos69, atol=1e-5)
    # every other overlapping patch is exactly a patch of the non-overlapping grid
    tokens8 = plain.state.hidden[0][0, 1:]
    pos35 = F.interpolate(pos[:, 1:].reshape(1, 28, 28, 384).permute(0, 3, 1, 2),
                          scale_factor=(35.1 / 28, 35.1 / 28), mode="bicubic", align_corners=False,
                          recompute_scale_factor=False).permute(0, 2, 3, 1).reshape(35 * 35, 384)
    sub = (tokens4 - pos69).reshape(69, 69, 384)[::2, ::2].reshape(-1, 384)
    assert torch.allclose(sub, tokens8 - pos35, atol=1e-4)


def test_stride_must_divide_the_patch_size():
    dc = DeepCut("dinov2_vits14", pretrained=False)
    img = smooth_image(140)
    assert dc.features(img, layer=0, resolution=140, stride=7).shape == (19, 19, 384)  # (140 - 14) / 7 + 1
    with pytest.raises(ConfigError, match=r"stride 4 .*patch size 14"):
        dc.features(img, layer=0, resolution=140, stride=4)
    with pytest.raises(ConfigError, match="stride 4"):
        dc.segment(img, resolution=140, stride=4)


# -- log-binned descriptor ---------------------------------------------------------------------------------
def log_bin_reference(feats: np.ndarray, hierarchy: int) -> np.ndarray:
    """Straight from the definition: for each cell and level, the mean over the 3^k window (only cells
    inside the grid) around each of the 3x3 sampled neighbours, positions clamped to the grid."""
    h, w, d = feats.shape
    out = np.zeros((h, w, (1 + 8 * hierarchy) * d))
    for y in range(h):
        for x in range(w):
            parts = []
            for k in range(hierarchy):
                s = 3 ** k
                for i in (y - s, y, y + s):
                    for j in (x - s, x, x + s):
                        if k and i == y and j == x:
                            continue
                        ci, cj = min(max(i, 0), h - 1), min(max(j, 0), w - 1)
                        r = s // 2
                        win = feats[max(ci - r, 0):ci + r + 1, max(cj - r, 0):cj + r + 1]
                        parts.append(win.reshape(-1, d).mean(0))
            out[y, x] = np.concatenate(parts)
    return out


@pytest.mark.parametrize("hierarchy", [1, 2, 3])
def test_log_bin_matches_its_definition(hierarchy):
    rng = np.random.default_rng(hierarchy)
    feats = rng.normal(size=(5, 7, 3)).astype(np.float32)
    got = log_bin(torch.from_numpy(feats).reshape(35, 3), (5, 7), hierarchy=hierarchy)
    assert got.shape == (35, (1 + 8 * hierarchy) * 3)
    np.testing.assert_allclose(got.numpy(), log_bin_reference(feats, hierarchy).reshape(35, -1), atol=1e-5)


def test_log_bin_feature_option_and_segment(color_model):
    img = smooth_image(96)
    plain = color_model.features(img, resolution=96)
    binned = color_model.features(img, resolution=96, log_bin=True)
    h, w, d = plain.shape
    assert binned.shape == (h, w, 17 * d)
    assert torch.equal(binned[..., 4 * d:5 * d], plain)  # the centre bin of level 0 is the feature itself
    assert color_model.features(img, resolution=96, log_bin=True).data_ptr() == binned.data_ptr()  # memoised
    emb, _ = color_model.embed(img, 96)
    assert set(emb.facets) >= {(0, "key", False), (0, "key", True)}

    seg = color_model.segment(img, resolution=96, log_bin=True, epochs=3)
    assert seg.config.log_bin and seg.patch_labels.shape == (h, w)
    again = color_model.segment(img, SegmentConfig(resolution=96, log_bin=True, epochs=3))
    assert again.features_cached
    np.testing.assert_array_equal(again.patch_labels, seg.patch_labels)


def test_cli_log_bin_flag():
    from deepcut.cli.common import add_config_args, config_from_args

    p = argparse.ArgumentParser()
    add_config_args(p)
    assert config_from_args(p.parse_args(["--log-bin"])).log_bin is True
    assert config_from_args(p.parse_args([])).log_bin is False


# -- offline behaviour -------------------------------------------------------------------------------------
OFFLINE_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from deepcut import DeepCut
    from deepcut.errors import BackboneLoadError
    from deepcut.backbones import weights_available
    out = {}

    def attempt(name):
        t = time.perf_counter()
        try:
            dc = DeepCut(name)
            return {"ok": True, "source": dc.backbone.source, "family": dc.backbone.family,
                    "s": time.perf_counter() - t,
                    "cls": dc.backbone.model.embeddings.cls_token.flatten()[:4].tolist(),
                    "q0": dc.backbone.blocks[0].attention.q_proj.weight.flatten()[:4].tolist()}
        except BackboneLoadError as e:
            return {"ok": False, "error": str(e), "s": time.perf_counter() - t}

    out["available"] = [weights_available("dinov2_vits14"), weights_available("dinov2_vits14_reg")]
    out["cached"] = attempt("dinov2_vits14")
    out["offline"] = attempt("dinov2_vits14_reg")
    # without HF_HUB_OFFLINE: the endpoint is probed; a closed local port refuses at once
    del os.environ["HF_HUB_OFFLINE"]
    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
    out["unreachable"] = attempt("dino_vitb8")
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_offline_fails_fast_and_a_populated_cache_loads(tmp_path):
    """In a fresh process with HF_HOME in tmp: a model in the HF hub cache layout loads with
    HF_HUB_OFFLINE=1; a missing one fails at once with the backbone, the hub id and the two ways out."""
    from safetensors.torch import save_file

    repo = tmp_path / "hf" / "hub" / "models--facebook--dinov2-small"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    model = build_model(REGISTRY["dinov2_vits14"].arch(), seed=11)
    model.config.save_pretrained(snapshot)
    # the tensor names of the hub's model.safetensors (transformers 4 layout, renamed on load)
    legacy = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
              "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense"}
    tensors = {}
    for key, value in model.state_dict().items():
        for new_name, old_name in legacy.items():
            key = key.replace(new_name, old_name)
        tensors[key] = value.contiguous()
    assert "encoder.layer.0.attention.attention.query.weight" in tensors
    save_file(tensors, str(snapshot / "model.safetensors"), metadata={"format": "pt"})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "DEEPCUT_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), DEEPCUT_TUNE="0")
    proc = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["available"] == [True, False]
    assert out["cached"]["ok"], out["cached"]
    assert out["cached"]["source"] == "facebook/dinov2-small" and out["cached"]["family"] == "dinov2"
    assert np.allclose(out["cached"]["cls"], model.embeddings.cls_token.flatten()[:4].tolist())
    assert np.allclose(out["cached"]["q0"], model.encoder.layer[0].attention.q_proj.weight.flatten()[:4].tolist())

    for case, name, hub_id in [("offline", "dinov2_vits14_reg", "facebook/dinov2-with-registers-small"),
                               ("unreachable", "dino_vitb8", "facebook/dino-vitb8")]:
        res = out[case]
        assert not res["ok"]
        msg = res["error"]
        assert f"'{name}'" in msg and f"'{hub_id}'" in msg
        assert "Two ways out" in msg and ".pth" in msg and "backbone='color'" in msg
        # a hang guard, not a speed target: failing must not wait on a network timeout
        assert res["s"] < 30, res
    assert "HF_HUB_OFFLINE" in out["offline"]["error"]
    assert "127.0.0.1 cannot be reached" in out["unreachable"]["error"]
