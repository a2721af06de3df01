"""ViT feature extraction: facets against a hand computation, the resumable single forward pass, grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepcut.backbones.vit import IMAGENET_MEAN, IMAGENET_STD
from deepcut.errors import ConfigError
from deepcut.features.image import grid_size


def reference_hidden_states(model, pixels: np.ndarray) -> list[torch.Tensor]:
    """Inputs of every block (and the last output) from the model's own, unmodified forward pass."""
    seen: list[torch.Tensor] = []
    hooks = [blk.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach())) for blk in model.layers]
    hooks.append(model.layers[-1].register_forward_hook(
        lambda m, args, out: seen.append((out[0] if isinstance(out, tuple) else out).detach())))
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    try:
        with torch.no_grad():
            model(pixel_values=x, interpolate_pos_encoding=True)
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.fixture(scope="module")
def square_image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)


def test_first_layer_key_matches_hand_computation(vit_model, square_image):
    """Layer 0 key facet from the raw weights: patch conv, CLS, positions, LayerNorm, k_proj."""
    m = vit_model.backbone.model
    feats = vit_model.features(square_image, layer=0, facet="key", resolution=112)
    x = torch.from_numpy(square_image).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    proj = m.embeddings.patch_embeddings.projection
    with torch.no_grad():
        patches = F.conv2d(x, proj.weight, proj.bias, stride=8).flatten(2).transpose(1, 2)  # (1, 196, 384)
        pos = m.embeddings.position_embeddings  # (1, 1 + 28*28, 384), interpolated to 14x14 as DINO does
        patch_pos = F.interpolate(pos[:, 1:].reshape(1, 28, 28, 384).permute(0, 3, 1, 2),
                                  scale_factor=(14.1 / 28, 14.1 / 28), mode="bicubic", align_corners=False,
                                  recompute_scale_factor=False).permute(0, 2, 3, 1).reshape(1, 196, 384)
        tokens = torch.cat([m.embeddings.cls_token + pos[:, :1], patches + patch_pos], 1)
        ln = m.layers[0].layernorm_before
        normed = (tokens - tokens.mean(-1, keepdim=True)) / torch.sqrt(
            tokens.var(-1, unbiased=False, keepdim=True) + ln.eps
        )
        normed = normed * ln.weight + ln.bias
        key = normed @ m.layers[0].attention.k_proj.weight.T + m.layers[0].attention.k_proj.bias
    assert feats.shape == (14, 14, 384)
    assert torch.allclose(feats.reshape(196, 384), key[0, 1:], atol=1e-4)


@pytest.mark.parametrize("layer", [3, 11])
def test_qkv_and_token_facets_match_the_models_own_forward(vit_model, square_image, layer, monkeypatch):
    """Every facet equals the transformers model's own forward (which resizes the position
    embeddings with ``size=``, so the backbone is told to do the same here; DINO's own resize is
    tested against timm in test_backbones.py)."""
    m = vit_model.backbone.model
    monkeypatch.setattr(vit_model.backbone, "pos_offset", 0.0)
    vit_model.clear_cache()
    hidden = reference_hidden_states(m, square_image)  # 12 block inputs + last output
    blk = m.layers[layer]
    with torch.no_grad():
        normed = blk.layernorm_before(hidden[layer])
        expected = {
            "key": blk.attention.k_proj(normed),
            "query": blk.attention.q_proj(normed),
            "value": blk.attention.v_proj(normed),
            "token": hidden[layer + 1],
        }
    for facet, ref in expected.items():
        ours = vit_model.features(square_image, layer=layer, facet=facet, resolution=112)
        assert torch.allclose(ours.reshape(-1, 384), ref[0, 1:], atol=1e-4), facet


def count_block_calls(model):
    calls = []
    hooks = [blk.register_forward_hook(lambda m, a, o, i=i: calls.append(i)) for i, blk in enumerate(model.layers)]
    return calls, hooks


def test_one_forward_pass_serves_every_layer_and_facet(square_image):
    from deepcut import DeepCut

    dc = DeepCut("dino_vits8", pretrained=False)
    calls, hooks = count_block_calls(dc.backbone.model)
    try:
        dc.features(square_image, layer=2, facet="key", resolution=112)
        assert calls == [0, 1]  # stops early: the key of layer 2 needs blocks 0 and 1 only
        dc.features(square_image, layer=11, facet="key", resolution=112)
        assert calls == list(range(11))  # resumes from block 2, no block runs twice
        for facet in ("query", "value", "key"):
            dc.features(square_image, layer=5, facet=facet, resolution=112)
        dc.features(square_image, layer=11, facet="token", resolution=112)
        assert calls == list(range(12))
        seg = dc.segment(square_image, resolution=112, layer=7, facet="value", epochs=(2, 2, 2))
        assert calls == list(range(12)) and seg.features_cached is False  # facet new, no ViT block rerun
        seg = dc.segment(square_image, resolution=112, layer=7, facet="value", k=3, epochs=(2, 2, 2))
        assert seg.features_cached is True
        dc.features(square_image, layer=11, facet="key", resolution=224)  # another resolution: new pass
        assert len(calls) == 12 + 11
    finally:
        for h in hooks:
            h.remove()


def test_grid_keeps_aspect_ratio_and_patch_budget():
    assert grid_size(512, 512, 280, 8, 8) == (35, 35)
    assert grid_size(480, 640, 280, 8, 8) == (30, 40)
    assert grid_size(280, 280, 280, 8, 4) == (69, 69)
    h, w = grid_size(4000, 6000, 280, 8, 8)
    assert abs(w / h - 1.5) < 0.1 and abs(h * w - 1225) < 60
    assert grid_size(1, 1, 280, 8, 8) == (35, 35)
    assert grid_size(10, 10000, 280, 8, 8)[0] == 1


def test_features_of_a_wide_image(vit_model):
    img = np.zeros((60, 180, 3), np.uint8)
    f = vit_model.features(img, layer=11, facet="key", resolution=112)
    assert f.shape[1] > 2 * f.shape[0] and f.shape[2] == 384


def test_stride_gives_denser_grid(vit_model, square_image):
    f = vit_model.features(square_image, layer=0, facet="key", resolution=112, stride=4)
    assert f.shape[:2] == (27, 27)  # (112 - 8) / 4 + 1
    with pytest.raises(ConfigError, match="stride"):
        vit_model.features(square_image, resolution=112, stride=3)


def test_bad_layer_and_facet(vit_model, square_image):
    with pytest.raises(ConfigError, match="layer 12"):
        vit_model.features(square_image, layer=12, resolution=112)
    with pytest.raises(ConfigError, match="facet"):
        vit_model.features(square_image, facet="keys", resolution=112)
    last = vit_model.features(square_image, layer=-1, resolution=112)
    assert torch.equal(last, vit_model.features(square_image, layer=11, resolution=112))


def test_color_backbone_features(color_model):
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = (255, 0, 0)
    f = color_model.features(img, resolution=64).reshape(-1, 384)
    w = f @ f.T / 384
    assert f.shape == (64, 384)
    # same colour and near: strong affinity; other colour: weak
    assert w[0, 1] > 0.5 and w[0, 7] < 0.2


def test_a_gpu_batch_holds_more_images_than_a_cpu_batch():
    """On the CPU larger batches are no faster (8 images of ViT-S/8 at 280 px at most); a GPU takes 64."""
    import torch

    from deepcut.features.store import batch_size_for

    assert batch_size_for((35, 35), 64) == batch_size_for((35, 35), 64, torch.device("cpu")) == 8
    assert batch_size_for((35, 35), 64, torch.device("cuda")) == 64
    assert batch_size_for((35, 35), 3, torch.device("cuda")) == 3 and batch_size_for((128, 128), 64) == 1


def test_a_refilled_buffer_does_not_change_a_cached_result():
    """The cache kept the caller's array: a batch loop that refilled one buffer gave a later cache hit (same
    content as the buffer had) the refilled picture, and the guided refinement ran on it (5 % of the labels
    changed). The cache now holds its own read-only copy; ``load_image`` never returns the caller's array."""
    from conftest import voronoi_scene

    from deepcut import DeepCut, load_image

    img = voronoi_scene(3, 0, side=96)[0]
    fresh = DeepCut("color").segment(img.copy(), refine="guided", k=3, resolution=96)
    dc = DeepCut("color")
    buf = img.copy()
    first = dc.segment(buf, refine="guided", k=3, resolution=96)
    buf[:] = 255
    again = dc.segment(img, refine="guided", k=3, resolution=96)
    assert again.features_cached
    assert np.array_equal(again.image, img) and np.array_equal(first.image, img)
    assert np.array_equal(again.labels, fresh.labels)
    assert not again.image.flags.writeable  # shared with the cache: read-only
    loaded = load_image(img)
    assert not np.shares_memory(loaded, img) and loaded.flags.writeable


def test_cache_size_zero_keeps_nothing():
    """``DeepCut(cache_size=0)`` still kept one image: a second ``segment`` came from the cache."""
    from deepcut import DeepCut

    img = np.zeros((64, 64, 3), np.uint8)
    img[16:48, 16:48] = 200
    dc = DeepCut("color", cache_size=0)
    first = dc.segment(img, resolution=64)
    again = dc.segment(img, resolution=64)
    assert not first.features_cached and not again.features_cached
    assert (first.labels == again.labels).all()
