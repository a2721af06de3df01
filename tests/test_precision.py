"""The ViT's precision (#19): choosing it, applying it, and how faithful each one is to fp32."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, shared_data_dir

import deepcut.backbones.precision as precision_module
from deepcut import DeepCut
from deepcut.backbones.precision import PRECISION_ENV, check_precision, resolve_precision
from deepcut.errors import ConfigError
from deepcut.model_cache import ModelCache


def test_names_and_aliases():
    assert [check_precision(p) for p in ("FP32", "bfloat16", "half", " int8 ", "auto", torch.bfloat16)] == [
        "fp32", "bf16", "fp16", "int8", "auto", "bf16"]
    for bad in ("fp64", "", 16.5, None):
        with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, fp16, int8"):
            check_precision(bad)


def test_auto_is_bf16_only_where_the_cpu_has_native_bf16(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision(None, "cpu") == resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)  # emulated bf16 is slower
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for explicitly: honoured
    assert resolve_precision("auto", "mps") == "fp32"


def test_auto_on_cuda_and_int8_off_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda") == "fp16"
    with pytest.raises(ConfigError, match="int8.*CPU only"):
        resolve_precision("int8", "cuda")


def test_the_environment_sets_the_default(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("int8", "cpu") == "int8"  # an argument wins over the environment
    monkeypatch.setenv(PRECISION_ENV, "float8")
    with pytest.raises(ConfigError, match=f"{PRECISION_ENV}='float8'"):
        resolve_precision(None, "cpu")


def test_the_default_model_uses_bf16_on_this_cpu_only_if_it_is_native(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    dc = DeepCut("dino_vits8", pretrained=False)
    assert dc.precision == ("bf16" if precision_module.cpu_has_native_bf16() else "fp32")
    assert dc.backbone.describe()["precision"] == dc.precision


def test_the_colour_backbone_computes_in_fp32_whatever_is_asked():
    assert DeepCut("color", precision="bf16").precision == "fp32"


def test_int8_quantizes_a_copy_and_fp32_goes_back(square_image):
    dc = DeepCut("dino_vits8", pretrained=False, precision="int8")
    attention = dc.backbone.blocks[11].attention
    assert type(attention.k_proj).__name__ == "Linear" and "quantized" in type(attention.k_proj).__module__
    feats = dc.features(square_image, resolution=112)
    assert feats.dtype == torch.float32
    ref = DeepCut("dino_vits8", pretrained=False, precision="fp32").features(square_image, resolution=112)  # same seed
    cos = torch.nn.functional.cosine_similarity(feats.reshape(-1, 384), ref.reshape(-1, 384), dim=-1)
    assert 0.99 < float(cos.mean()) < 1.0  # close, not identical: the products are int8
    dc.backbone.set_precision("fp32")
    dc.clear_cache()
    assert type(dc.backbone.blocks[11].attention.k_proj) is torch.nn.Linear
    assert torch.allclose(dc.features(square_image, resolution=112), ref, atol=1e-5)


def test_bf16_features_are_float32_and_the_cache_keeps_them(square_image):
    dc = DeepCut("dino_vits8", pretrained=False, precision="bf16")
    emb, _ = dc.embed(square_image, 112)
    feats = dc.features(square_image, resolution=112, layer=5, facet="value")
    assert feats.dtype == torch.float32 and all(h.dtype == torch.float32 for h in emb.state.hidden)


def test_model_cache_and_cli_pass_the_precision(tmp_path):
    pool = ModelCache("dino_vits8", pretrained=False, precision="int8", device="cpu")
    assert pool.load("dino_vits8").precision == "int8"
    with pytest.raises(ConfigError, match="precision"):
        ModelCache("dino_vits8", precision="fp8")
    cmd = [sys.executable, "-m", "deepcut", "segment", str(REPO / "assets" / "cat.jpg"), "--out", str(tmp_path)]
    bad = subprocess.run(cmd + ["--precision", "fp64"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "precision must be one of" in bad.stderr and "Traceback" not in bad.stderr
    assert not any(tmp_path.iterdir())  # refused before any work


def test_app_flag_and_environment(monkeypatch):
    from deepcut.demo.server import parse_args

    monkeypatch.setenv(PRECISION_ENV, "int8")
    assert parse_args([]).precision == "int8"
    assert parse_args(["--precision", "fp32"]).precision == "fp32"


@pytest.fixture()
def square_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)


def _held_out(shared_data: Path, count: int) -> list:
    """Every few images of the Weizmann horses and GrabCut (real photos with one object each)."""
    horses = sorted((shared_data / "weizmann_horse" / "images").glob("*"))
    grabcut = sorted((shared_data / "grabcut" / "images").glob("*"))
    if not horses or not grabcut:
        pytest.skip(f"the shared evaluation data is not at {shared_data}")
    return horses[:: max(1, len(horses) // count)][:count] + grabcut[:: max(1, len(grabcut) // count)][:count]


@pytest.mark.slow
def test_bf16_is_faithful_on_real_images():
    """bf16 (the default on CPUs with native bf16 and on CUDA): feature cosine to fp32 >= 0.999 and the
    patch labels equal to fp32's on >= 98 % of the patches, on every image; the foreground mask's IoU to
    fp32's >= 0.98 on average (random weights: pretrained ones cannot be downloaded here; their graphs are
    near-complete, so on a few images which segment is the foreground is knife-edge)."""
    ref = DeepCut("dino_vits8", pretrained=False, precision="fp32")
    bf16 = DeepCut("dino_vits8", pretrained=False, precision="bf16")
    ious = []
    for path in _held_out(shared_data_dir(), 8):
        a, b = ref.patch_features(path).features, bf16.patch_features(path).features
        assert float(torch.nn.functional.cosine_similarity(a, b, dim=-1).min()) >= 0.999, path.name
        sa, sb = ref.segment(path), bf16.segment(path)
        la, lb = sa.patch_labels, sb.patch_labels
        same = max(float((la == lb).mean()), float((la == 1 - lb).mean()))  # k=2: up to a swap of the labels
        assert same >= 0.98, (path.name, same)
        fa, fb = sa.foreground, sb.foreground
        ious.append(float((fa & fb).sum() / max((fa | fb).sum(), 1)))
    assert float(np.mean(ious)) >= 0.98, ious


def test_blocked_attention_equals_the_fused_kernel_and_stays_blocked():
    """bf16 / fp16 on the CPU attend a block of query rows at a time (the fused kernel gains nothing there):
    the same attention as SDPA's, never a whole (heads, T, T) map."""
    from test_highres import LargestTensor

    from deepcut.backbones.vit import ATTENTION_BLOCK, blocked_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 600, 16, generator=g) for _ in range(3))
    with LargestTensor() as probe:
        out, weights = blocked_attention(None, q, k, v, None, scaling=0.25)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.25).transpose(1, 2)
    assert weights is None and out.shape == (2, 600, 3, 16)
    assert torch.allclose(out, ref, atol=1e-5)
    assert probe.largest <= 2 * 3 * ATTENTION_BLOCK * 600  # one block of scores, not 600 x 600
    bf16 = DeepCut("dino_vits8", pretrained=False, precision="bf16")
    assert bf16.backbone.attention == "blocked"
    assert DeepCut("dino_vits8", pretrained=False, precision="fp32").backbone.attention == "sdpa"
    bf16.backbone.set_precision("fp32")
    assert bf16.backbone.attention == "sdpa"
    bf16.backbone.set_attention("eager").set_precision("bf16")  # a choice made by hand is kept
    assert bf16.backbone.attention == "eager"
