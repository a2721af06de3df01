"""Learned position embeddings resized to a grid (``deepcut.backbones.positions``): DINO's formula, each grid
resized once and kept while the embeddings stay the same."""

from __future__ import annotations

import numpy as np
import torch

from deepcut import DeepCut
from deepcut.backbones import positions
from deepcut.backbones.positions import ResizedPositions, interpolate_pos_embed


def test_a_grid_is_resized_once_and_kept_while_the_embeddings_are_unchanged():
    pos = torch.randn(1, 1 + 28 * 28, 16, generator=torch.Generator().manual_seed(0))
    table = ResizedPositions(keep=2)
    first = table(pos, (35, 35))
    assert first.shape == (1, 1 + 35 * 35, 16) and torch.equal(first, interpolate_pos_embed(pos, (35, 35)))
    assert table(pos, (35, 35)) is first  # kept
    other = table(pos, (35, 35), offset=0.0, antialias=True)  # another way of resizing: its own table
    assert other is not first and torch.equal(other, interpolate_pos_embed(pos, (35, 35), 1, True, 0.0))
    assert table(pos, (35, 35)) is first
    with torch.no_grad():
        pos.mul_(2)  # the weights changed in place (e.g. loaded): resized again
    again = table(pos, (35, 35))
    assert again is not first and torch.allclose(again, 2 * first)
    assert table(pos.clone(), (35, 35)) is again  # equal embeddings (e.g. an engine's copy): the same table
    other = pos.clone()
    other[0, 1, 0] += 1
    assert not torch.equal(table(other, (35, 35)), again)  # other numbers: resized for them
    table(pos, (20, 30)), table(pos, (30, 20))
    assert len(table._kept) == 2  # the least recently used are dropped
    assert table(pos, (28, 28)) is pos and len(table._kept) == 2  # the training grid: the embeddings, not kept
    table.clear()
    assert not table._kept


def test_the_vit_resizes_once_per_grid_and_follows_new_weights(monkeypatch):
    dc = DeepCut("dino_vits8", pretrained=False, precision="fp32")
    image = (np.random.default_rng(0).random((280, 280, 3)) * 255).astype(np.uint8)
    calls = []
    real = positions.interpolate_pos_embed
    monkeypatch.setattr(positions, "interpolate_pos_embed", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    first = dc.features(image, resolution=280)
    dc.clear_cache()
    assert torch.equal(dc.features(image, resolution=280), first) and calls == [(35, 35)]  # resized once
    dc.clear_cache()
    dc.features(image, resolution=224)  # DINO's own 28 x 28 grid: the embeddings themselves, nothing resized
    assert calls == [(35, 35)]
    pos = dc.backbone.model.embeddings.position_embeddings
    with torch.no_grad():
        pos.add_(torch.randn(pos.shape, generator=torch.Generator().manual_seed(1)))  # other weights, in place
    dc.clear_cache()
    moved = dc.features(image, resolution=280)
    assert calls == [(35, 35), (35, 35)] and not torch.allclose(moved, first, atol=1e-3)
