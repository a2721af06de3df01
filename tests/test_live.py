"""Live streams (``DeepCut.live``): one frame at a time, labels consistent with the frames before, the
same tracking path as ``segment_video``; ``reset``; frame-size changes; fps / latency; DAVIS stability."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import moving_disc, shared_data_dir
from PIL import Image

from deepcut import ImageLoadError
from deepcut.evaluation.metrics import consistency
from deepcut.video import FrameTracker, LiveSession
from deepcut.video.live import LIVE_RESOLUTION


def test_live_steps_are_segment_video_frame_by_frame(color_model):
    frames = moving_disc(8)
    live = color_model.live(resolution=96, stages=2, k=2)
    assert isinstance(live, LiveSession) and isinstance(live.tracker, FrameTracker)
    streamed = [live.step(f) for f in frames]
    filed = list(color_model.segment_video(frames, resolution=96, stages=2, k=2))
    for a, b in zip(streamed, filed, strict=True):  # one tracking path, not two
        assert np.array_equal(a.labels, b.labels)
    assert consistency([s.labels for s in streamed]) == 1.0
    assert live.stats.frames == 8 and live.latency > 0 and live.fps > 0


def test_live_defaults_to_a_fast_grid_and_takes_settings(color_model):
    assert color_model.live().cfg.resolution == LIVE_RESOLUTION
    assert color_model.live(resolution=64, k=3).cfg.k == 3


def test_reset_starts_the_tracks_anew(color_model):
    frames = moving_disc(6)
    live = color_model.live(resolution=96, k=3)
    first = live.step(frames[0])
    for f in frames[1:]:
        live.step(f)
    live.reset()
    assert live.tracker.models is None and live.tracker.since_reset == 0
    again = live.step(frames[0])
    assert np.array_equal(first.labels, again.labels)  # a reset session answers like a new one
    assert live.stats.frames == 7  # the counters go on


def test_a_change_of_frame_size_starts_anew_instead_of_failing(color_model):
    live = color_model.live(resolution=96)
    live.step(moving_disc(1, width=96, height=72)[0])
    seg = live.step(moving_disc(1, width=64, height=128)[0])
    assert seg.labels.shape == (128, 64) and live.tracker.since_reset == 1


def test_a_bad_frame_is_a_clear_error_and_the_session_goes_on(color_model):
    live = color_model.live(resolution=96)
    live.step(moving_disc(1)[0])
    with pytest.raises(ImageLoadError):
        live.step(b"not an image")
    assert live.step(moving_disc(2)[1]).labels.shape == (72, 96)


DAVIS = shared_data_dir() / "davis2016"


@pytest.mark.skipif(not (DAVIS / "images").is_dir(), reason=f"DAVIS-2016 frames not found in {DAVIS}")
@pytest.mark.parametrize("sequence", ["blackswan", "car-shadow", "dog"])
def test_live_labels_stay_stable_on_davis(color_model, sequence):
    files = sorted((DAVIS / "images" / sequence).glob("*.jpg"))[:8]
    live = color_model.live(stages=2, k=3, resolution=96)
    segs = [live.step(np.asarray(Image.open(f).convert("RGB"))) for f in files]
    assert consistency([s.labels for s in segs]) >= 0.95
