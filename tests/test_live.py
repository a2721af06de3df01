"""Live streams (``DeepCut.live``): one frame at a time, labels consistent with the frames before, the
same tracking path as ``segment_video``; ``reset``; frame-size changes; fps / latency; DAVIS stability."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import moving_disc, shared_data_dir
from PIL import Image

from deepcut import ImageLoadError
from deepcut.evaluation.metrics import consistency
from deepcut.tasks.video import FrameTracker, LiveSession
from deepcut.tasks.video.live import LIVE_RESOLUTION


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


# -- the Live tab's logic (deepcut/demo/live_streams.py), without a browser ----------------------------------------
def _streams(**limits):
    from deepcut.demo import DemoSession
    from deepcut.demo.limits import Limits
    from deepcut.demo.live_streams import LiveStreams

    lim = Limits.public_defaults(backbones=("color",), **limits) if limits else Limits()
    return LiveStreams(DemoSession(default_backbone="color", max_side=128, limits=lim))


def test_live_streams_track_a_visitor_and_restart_on_new_settings():
    streams = _streams()
    frames = moving_disc(4)
    overlay, status, state = streams.step(frames[0], None, "1.2.3.4", "color", k=2, resolution=96)
    assert overlay.size == (96, 72) and "frame 1" in status and "`color` at 96 px" in status
    _, status, same = streams.step(frames[1], state, "1.2.3.4", "color", k=2, resolution=96)
    assert same is state and "frames/s" in status and "frame 2" in status
    _, _, new = streams.step(frames[2], state, "1.2.3.4", "color", k=3, resolution=96)
    assert new is not state and new.live.stats.frames == 1 and new.key[1].k == 3  # another k: new tracks
    assert streams.step(None, new, "1.2.3.4", "color")[0] is None  # no frame yet: nothing computed
    assert streams.frames == 3


def test_one_live_stream_per_visitor():
    from deepcut.demo.errors import DemoError

    streams = _streams()
    frame = moving_disc(1)[0]
    _, _, old = streams.step(frame, None, "5.6.7.8", "color", resolution=96)
    _, _, newer = streams.step(frame, None, "5.6.7.8", "color", resolution=96)  # a second tab
    with pytest.raises(DemoError, match="newer one"):
        streams.step(frame, old, "5.6.7.8", "color", resolution=96)
    streams.step(frame, newer, "5.6.7.8", "color", resolution=96)
    streams.step(frame, None, "9.9.9.9", "color", resolution=96)  # another visitor is not affected
    streams.step(frame, newer, "5.6.7.8", "color", resolution=96)


def test_a_stream_that_joined_first_but_starts_second_is_the_older():
    """Two tabs' first frames on two workers: the stream that joined the server's queue later keeps running even
    when the earlier one's first frame is worked on after it (the earlier one gets the newer-stream error)."""
    from deepcut.demo.errors import DemoError

    streams = _streams()
    frame = moving_disc(1)[0]
    _, _, newer = streams.step(frame, None, "5.6.7.8", "color", event="b", joined=20.0, resolution=96)
    with pytest.raises(DemoError, match="newer one"):
        streams.step(frame, None, "5.6.7.8", "color", event="a", joined=10.0, resolution=96)
    streams.step(frame, newer, "5.6.7.8", "color", event="b", joined=20.0, resolution=96)
    assert streams.gate.running("5.6.7.8") == ["b"]


def test_a_forged_forwarded_header_neither_opens_a_second_stream_nor_ends_anothers():
    from types import SimpleNamespace

    from deepcut.demo.live_streams import LiveStreams
    from deepcut.demo.traffic import visitor_key

    def request(peer: str, forwarded: str | None = None):
        return SimpleNamespace(client=SimpleNamespace(host=peer),
                               headers={"x-forwarded-for": forwarded} if forwarded is not None else {})

    visitor = LiveStreams.visitor
    assert visitor(request("93.184.216.34")) == "93.184.216.34"
    public = "93.184.216.34"  # a forged header from a public peer is ignored
    assert visitor(request(public, "1.2.3.4")) == visitor(request(public, "9.9.9.9")) == public
    assert visitor(request("127.0.0.1", "6.6.6.6, 198.51.100.7")) == "198.51.100.7"  # a local proxy's last hop
    assert visitor(request("10.0.0.2", "")) == "10.0.0.2"
    assert visitor(SimpleNamespace()) == "unknown"
    for peer, forwarded in (("93.184.216.34", "1.2.3.4"), ("127.0.0.1", "6.6.6.6, 198.51.100.7"), ("10.0.0.2", "")):
        scope = {"client": (peer, 1234), "headers": [(b"x-forwarded-for", forwarded.encode())]}
        assert visitor_key(scope) == visitor(request(peer, forwarded))  # one key for uploads and streams


def test_live_streams_apply_the_public_caps():
    from deepcut.demo.errors import DemoError

    streams = _streams(max_resolution=64, max_epochs=3)
    _, status, state = streams.step(moving_disc(1)[0], None, "1.1.1.1", None, k=6, resolution=200,
                                    epochs=(50, 100, 10))
    cfg = state.key[1]
    assert cfg.resolution == 64 and max(cfg.epochs) <= 3 and "limit" in status
    assert state.key[0] == "color"  # ViT-S/16 is not offered here: the server's default
    with pytest.raises(DemoError, match="not offered"):  # a backbone this server does not offer is not loaded
        streams.step(moving_disc(1)[0], None, "1.1.1.1", "dino_vits16")
    assert streams.session.limits.live_seconds == 60 and streams.session.limits.live_fps == 2


def test_the_live_event_carries_the_caps():
    gradio = pytest.importorskip("gradio")  # noqa: F841
    import app
    from deepcut.demo import DemoSession
    from deepcut.demo.limits import Limits

    demo = app.build_demo(DemoSession("color", limits=Limits.public_defaults(backbones=("color",))), 96)
    live = [fn for fn in demo.fns.values() if getattr(fn, "connection", None) == "stream"]
    assert len(live) == 1 and live[0].time_limit == 60 and live[0].stream_every == pytest.approx(0.5)
    image = next(fn for fn in demo.fns.values() if fn.api_name == "segment")
    assert (live[0].concurrency_id, live[0].concurrency_limit) == (image.concurrency_id, image.concurrency_limit) == (
        "heavy", 2)  # one fair queue: live frames wait with the images and videos (were 2 more jobs beside them)


def test_every_child_of_the_pages_tabs_is_a_tab():
    """A hidden component directly under ``gr.Tabs`` (the ``/correct`` API's) shifted the page's tab list: after
    a click on Video the tabs read Image, Video, Co-segmentation, Video, and the Live tab could not be reached."""
    gr = pytest.importorskip("gradio")
    import app
    from deepcut.demo import DemoSession

    demo = app.build_demo(DemoSession("color"), 96)
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tabs)]
    assert tabs and all(isinstance(child, gr.Tab) for t in tabs for child in t.children)
    assert [child.label for child in tabs[0].children] == ["Image", "Video", "Co-segmentation", "Live"]


def test_the_status_says_when_the_pages_cap_holds_the_rate():
    """5 frames/s at 37 ms a frame read as the method's speed; it is the rate the page sends at, and says so."""
    streams = _streams()
    _, _, state = streams.step(moving_disc(1)[0], None, "1.2.3.4", "color", k=2, resolution=96)
    for fps, latency, said in ((4.9, 0.04, True), (2.0, 0.04, False), (4.9, 0.19, False)):
        state.live.fps, state.live.latency = fps, latency
        text = streams.status(state, 2, 5.0)
        assert ("(the page sends at most 5 a second)" in text) == said, (fps, latency, text)
