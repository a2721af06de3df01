"""Contracts between the front ends and the one pipeline below them.

Video, co-segmentation and evaluation are front ends of the same pipeline as ``DeepCut.segment``:
with their extras switched off they must give exactly what ``segment`` gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import disc_image, moving_disc

from deepcut import DeepCut, SegmentConfig, fit


def same_segmentation(a, b) -> None:
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.patch_labels, b.patch_labels)
    np.testing.assert_allclose(a.soft, b.soft, atol=1e-6)
    assert a.bbox == b.bbox
    if a.foreground is None:
        assert b.foreground is None
    else:
        np.testing.assert_array_equal(a.foreground, b.foreground)


@pytest.fixture(scope="module")
def model():
    return DeepCut("color")


@pytest.mark.parametrize("settings", [dict(), dict(k=3), dict(stages=2, k=3), dict(stages=3, k=2, loss="cc")])
def test_video_without_warm_start_or_matching_is_segment_frame_by_frame(model, settings):
    frames = moving_disc(5, 96, 72)
    cfg = SegmentConfig(resolution=96, **settings)
    video = list(model.segment_video(frames, cfg, warm=False, match=False, batch_size=2))
    assert len(video) == len(frames)
    for frame, seg in zip(frames, video, strict=False):
        same_segmentation(seg, model.segment(frame, cfg))


@pytest.mark.parametrize("settings", [dict(), dict(k=4), dict(stages=2, k=3), dict(stages=3), dict(loss="cc", k=5)])
def test_cosegment_of_one_image_is_segment(model, settings):
    img = disc_image(128, two_tone=True, striped_bg=True)
    cfg = SegmentConfig(resolution=128, **settings)
    (co,) = model.cosegment([img], cfg)
    same_segmentation(co, model.segment(img, cfg))


def test_cosegment_of_one_image_is_segment_with_a_vit():
    vit = DeepCut("dino_vits8", pretrained=False)
    img = disc_image(96, two_tone=True)
    cfg = SegmentConfig(resolution=96, stages=2, k=3, log_bin=True)
    (co,) = vit.cosegment([img], cfg)
    same_segmentation(co, vit.segment(img, cfg))


def test_segment_features_is_the_lower_level_entry_of_segment(model):
    img = disc_image(128, two_tone=True)
    cfg = SegmentConfig(resolution=128, stages=2, k=3)
    feats = model.features(img, resolution=128)
    low = model.segment_features(feats.reshape(-1, feats.shape[-1]), feats.shape[:2], cfg, image=img)
    same_segmentation(low, model.segment(img, cfg))
    # a baseline plugs in as the clusterer; the features and post-processing are the same
    other = model.segment_features(feats.reshape(-1, feats.shape[-1]), feats.shape[:2], cfg, image=img,
                                   clusterer=lambda x, **kw: fit(x, **{**kw, "seed": 7}))
    assert other.patch_labels.shape == low.patch_labels.shape


def test_results_are_numpy_on_the_host(model):
    seg = model.segment(disc_image(96), resolution=96)
    assert isinstance(seg.labels, np.ndarray) and isinstance(seg.soft, np.ndarray)
    assert str(model.device) == "cpu"
    assert isinstance(model.features(disc_image(96), resolution=96), torch.Tensor)
