"""Any device: features, graphs and the GNN live on the chosen device; results are numpy on the host.

Every test runs on the CPU; the ``cuda`` (and ``mps``) variants run where such a device exists and
are skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import disc_image, moving_disc

from deepcut import ConfigError, DeepCut, SegmentConfig, fit
from deepcut.utils.device import DEVICE_ENV, resolve_device

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="no CUDA GPU on this machine: the CUDA variant runs only there"
        ),
    ),
    pytest.param(
        "mps",
        marks=pytest.mark.skipif(
            not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
            reason="no Apple Metal (MPS) device on this machine",
        ),
    ),
]


def test_auto_device_is_cuda_when_available_else_cpu(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == want
    assert resolve_device("auto").type == want
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert resolve_device(None).type == "cpu"


def test_bad_or_missing_devices_are_config_errors():
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            DeepCut("color", device="cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backbone", ["color", "dino_vits8"])
def test_segment_on_a_device_gives_the_cpu_labels(device, backbone):
    img = disc_image(96, two_tone=True)
    cfg = SegmentConfig(resolution=96, stages=2, k=3)
    cpu = DeepCut(backbone, pretrained=False, device="cpu")
    dev = DeepCut(backbone, pretrained=False, device=device)
    assert dev.device.type == device and dev.backbone.device.type == device
    feats = dev.features(img, resolution=96)
    assert feats.device.type == device
    a, b = cpu.segment(img, cfg), dev.segment(img, cfg)
    assert isinstance(b.labels, np.ndarray) and isinstance(b.soft, np.ndarray)
    # the GNN starts from the same weights on every device; float round-off may move a border patch
    assert (a.patch_labels == b.patch_labels).mean() >= 0.97
    np.testing.assert_allclose(cpu.features(img, resolution=96).numpy(), feats.cpu().numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_fit_keeps_the_gnn_on_the_device_of_the_features(device):
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(30, 8, generator=g) + 4, torch.randn(30, 8, generator=g) - 4]).to(device)
    r = fit(x, k=2, epochs=20)
    assert next(r.model.parameters()).device.type == device
    assert isinstance(r.labels, np.ndarray) and len(set(r.labels[:30])) == 1 and r.labels[0] != r.labels[-1]


@pytest.mark.parametrize("device", DEVICES)
def test_video_and_cosegmentation_on_a_device(device):
    dc = DeepCut("color", device=device)
    segs = list(dc.segment_video(moving_disc(4), resolution=64, stages=2, k=2))
    assert len(segs) == 4 and all(isinstance(s.labels, np.ndarray) for s in segs)
    co = dc.cosegment([disc_image(64), disc_image(64, striped_bg=True)], resolution=64)
    assert len(co) == 2
