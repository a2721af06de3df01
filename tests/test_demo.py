"""The demo's logic (deepcut.demo, deepcut.render.figures) without a server: fast, colour backbone, small images."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import disc_image, disc_mask, iou, moving_disc
from PIL import Image

from deepcut.backbones import weights_available
from deepcut.clustering.fit import affinity
from deepcut.demo import DemoError, DemoSession, downscale
from deepcut.features.image import pixel_to_patch
from deepcut.lessons.affinity import patch_affinity
from deepcut.render.figures import affinity_image, loss_figure, soft_maps


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return DemoSession(default_backbone="color", max_side=400, output_dir=tmp_path_factory.mktemp("out"),
                       keep_outputs=3)


def test_segment_builds_every_output(session, tmp_path):
    r = session.segment(disc_image(160), resolution=160)
    assert r.backbone == "color" and r.notices == []
    assert iou(np.asarray(r.mask()) > 127, disc_mask(160)) > 0.85
    assert r.overlay(0.0).size == (160, 160)
    np.testing.assert_array_equal(np.asarray(r.overlay(0.0)), disc_image(160))  # opacity 0: the image
    assert r.bbox_image().size == (160, 160)
    png, meta = session.save_outputs(r, "my photo.JPG")
    assert png.endswith("my_photo_labels.png") and meta.endswith("my_photo.json")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), r.seg.labels)
    record = json.loads(open(meta).read())
    assert record["bbox"] == list(r.seg.bbox)
    assert record["labels"] == {"0": "background", "1": "foreground"}
    assert "features computed" in r.status_markdown()


def test_second_run_reuses_features_and_says_so(session):
    img = disc_image(96, two_tone=True)
    first = session.segment(img, resolution=96)
    again = session.segment(img, resolution=96, k=2, stages=2, epochs=(10, 40, 10))
    assert not first.seg.features_cached and again.seg.features_cached
    assert "features reused" in again.status_markdown()
    assert "stage 2" in again.status_markdown()
    # The two halves of the disc are the two foreground parts.
    assert again.seg.num_segments == 3


def test_bad_inputs_raise_demo_errors(session, tmp_path):
    with pytest.raises(DemoError, match="upload an image"):
        session.segment(None)
    bad = tmp_path / "secret_dir_name" / "x.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    with pytest.raises(DemoError, match="Could not read this file as an image") as err:
        session.segment(str(bad))
    assert "secret_dir_name" not in str(err.value)  # server paths are not shown
    with pytest.raises(DemoError, match="Invalid setting"):
        session.segment(disc_image(64), k=1)
    with pytest.raises(DemoError):
        session.segment(disc_image(64), backbone=str(tmp_path))  # a folder without a model


def test_huge_images_are_downscaled_with_a_notice(session):
    r = session.segment(np.tile(disc_image(200), (1, 5, 1)), resolution=96)  # 1000 x 200
    assert r.seg.image.shape == (80, 400, 3)
    assert r.original_size == (200, 1000) and r.scale == pytest.approx(2.5)
    assert any("downscaled" in n for n in r.notices)
    assert r.record()["bbox_original"] == [round(v * 2.5) for v in r.seg.bbox]
    assert downscale(disc_image(100), 400).shape == (100, 100, 3)  # small ones stay


def test_missing_weights_fall_back_to_colour(monkeypatch, tmp_path, caplog):
    if weights_available("dino_vitb16"):
        pytest.skip("dino_vitb16 weights are cached here, so they load and there is no fallback to test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DEEPCUT_WEIGHTS", raising=False)
    s = DemoSession(default_backbone="dino_vitb16", output_dir=tmp_path)
    with caplog.at_level("WARNING", logger="deepcut.app"):
        used, notice = s.startup()
    assert used == "color"
    assert "**Simple mode" in notice and "**colour backbone**" in notice and "<details>" in notice
    logged = [r.getMessage() for r in caplog.records if r.name == "deepcut.app"]  # the server's log: plain text
    assert len(logged) == 1 and "Simple mode" in logged[0] and "Reason: " in logged[0] and "dino_vitb16" in logged[0]
    assert not any(mark in logged[0] for mark in ("*", "<", ">"))
    r = s.segment(disc_image(96), resolution=96)
    assert r.backbone == "color" and any("dino_vitb16" in n for n in r.notices)
    marked = {c.name: c for c in s.backbone_choices()}
    assert marked["dino_vitb16"].available is False and "unavailable" in marked["dino_vitb16"].label
    assert marked["color"].available is True


def test_old_output_folders_are_removed(session):
    r = session.segment(disc_image(64), resolution=64)
    paths = [session.save_outputs(r, f"img{i}")[0] for i in range(5)]
    from pathlib import Path

    assert [Path(p).exists() for p in paths] == [False, False, True, True, True]


def test_concurrent_requests_match_sequential_ones(tmp_path):
    s = DemoSession(default_backbone="color", output_dir=tmp_path)
    jobs = [(disc_image(96), dict(k=2)), (disc_image(96, two_tone=True), dict(k=2, stages=2, epochs=(10, 30, 10))),
            (disc_image(96, blob=True), dict(k=3)), (disc_image(96), dict(k=2, loss="cc"))]

    def run(job):
        img, kw = job
        return s.segment(img, resolution=96, **kw).seg.labels

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, jobs))
    for job, labels in zip(jobs, together, strict=False):
        np.testing.assert_array_equal(labels, run(job))


def test_affinity_view_is_a_row_of_the_graph(session):
    r = session.segment(disc_image(96), resolution=96)
    feats = session.model("color")[0].features(r.seg.image, resolution=96)
    h, w, _ = feats.shape
    for loss in ("ncut", "cc"):
        a = patch_affinity(feats, (3, 5), loss, alpha=3.0)
        full = affinity(feats.reshape(h * w, -1), loss, 3.0)
        np.testing.assert_allclose(a.ravel(), full[3 * w + 5].numpy(), rtol=1e-4, atol=1e-5)
    # Clicking inside the disc: its patches are linked to it more than the background's.
    pic, caption = session.affinity(r, 48, 48)
    assert pic.size[0] == 512 and pic.size[1] > 512 and "row 6, col 6" in caption  # the map, its colour bar
    a = patch_affinity(feats, (6, 6))
    disc = np.asarray(Image.fromarray(disc_mask(96)).resize((w, h), Image.NEAREST))
    assert a[disc].mean() > 3 * a[~disc].mean()
    # A click on the affinity picture itself maps through its own frame.
    _, caption = session.affinity(r, 511, 0, session.affinity_frame(r))
    assert f"row 0, col {w - 1}" in caption


def test_pixel_to_patch_corners():
    assert pixel_to_patch(0, 0, (100, 200), (10, 20)) == (0, 0)
    assert pixel_to_patch(199.9, 99.9, (100, 200), (10, 20)) == (9, 19)
    assert pixel_to_patch(500, -4, (100, 200), (10, 20)) == (0, 19)  # clamped


def test_soft_maps_one_per_present_label(session):
    r = session.segment(disc_image(96, two_tone=True), resolution=96, k=2, stages=2, epochs=(10, 40, 10))
    maps = soft_maps(r.seg)
    assert len(maps) == r.seg.num_segments == 3
    assert [c.split(":")[0] for _, c in maps] == ["0", "1", "2"]
    assert "background" in maps[0][1] and "foreground part" in maps[1][1]
    assert all(isinstance(im, Image.Image) for im, _ in maps)


def test_loss_figure_has_one_panel_per_stage():
    fig = loss_figure([[3.0, 2.0, 1.0], [1.0, 0.5]], "ncut", [2, 3, 2])
    assert [len(ax.lines) for ax in fig.axes] == [1, 1]  # one panel per stage, each its own epochs
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), [3.0, 2.0, 1.0])
    assert "k=3" in fig.axes[1].get_title()
    assert len(loss_figure([], "cc").axes[0].lines) == 0  # degenerate: a note, no crash


def test_affinity_image_marks_the_patch():
    img = np.zeros((64, 64, 3), np.uint8)
    aff = np.zeros((8, 8), np.float32)
    pic = np.asarray(affinity_image(img, aff, (0, 0), longest=64))
    assert pic.shape == (64, 64, 3)
    assert (pic[..., 1] == 255).sum() > 10  # the green box


def test_video_and_cosegmentation(session, tmp_path):
    frames = moving_disc(6, width=96, height=64, two_tone=False)
    from deepcut.tasks.video import write_video

    src = tmp_path / "clip.mp4"
    write_video(frames, src, fps=6)
    seen = []
    v = session.segment_video(str(src), resolution=64, progress=lambda d, n: seen.append(d))
    assert v.frames == 6 and seen[-1] == 6 and v.video.endswith("clip_overlay.mp4")
    assert json.loads(open(v.files[1]).read())["frames"][0]["bbox"] is not None
    with pytest.raises(DemoError, match="not a video"):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"nope")
        session.segment_video(str(bad))
    c = session.cosegment([disc_image(96), disc_image(96, striped_bg=True)], resolution=96, stages=1, k=2)
    assert len(c.results) == 2 and len(c.gallery()) == 2
    assert [c.results[i].seg.labels[48, 48] for i in (0, 1)] == [c.results[0].seg.labels[48, 48]] * 2
    with pytest.raises(DemoError, match="at least two"):
        session.cosegment([disc_image(96)])
    assert torch.get_num_threads() >= 1


def test_local_weights_folder_and_layer_clamp(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8,
                    image_size=64)
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(tmp_path / "tiny-vit")
    s = DemoSession(default_backbone="color", output_dir=tmp_path / "out")
    r = s.segment(disc_image(64), backbone=str(tmp_path / "tiny-vit"), resolution=64, layer=11)
    assert r.backbone == str(tmp_path / "tiny-vit") and r.depth == 2
    assert r.seg.config.layer == 1
    assert any("layer 11 does not exist" in n for n in r.notices)


def test_affinity_view_shows_the_log_binned_graph_that_was_segmented(session):
    from deepcut.demo.teaching import patch_row

    for loss in ("ncut", "cc"):
        r = session.segment(disc_image(96, blob=True), resolution=96, log_bin=True, loss=loss)
        cfg = r.seg.config
        assert cfg.log_bin and cfg.loss == loss
        model = session.model(r.backbone).model
        binned = model.features(r.seg.image, cfg.layer, cfg.facet, cfg.resolution, cfg.stride, log_bin=True).cpu()
        plain = model.features(r.seg.image, cfg.layer, cfg.facet, cfg.resolution, cfg.stride).cpu()
        h, w, d = binned.shape
        assert d > plain.shape[-1]
        x, y = 20.0, 70.0
        patch = pixel_to_patch(x, y, r.seg.image.shape[:2], (h, w))
        i = patch[0] * w + patch[1]
        expected = affinity(binned.reshape(h * w, -1), loss, cfg.alpha)[i].reshape(h, w).numpy()
        without = affinity(plain.reshape(h * w, -1), loss, cfg.alpha)[i].reshape(h, w).numpy()
        assert np.abs(expected - without).max() > 1e-2  # the test tells the two apart
        # The row the view draws is the row of the graph that was segmented ...
        shown = patch_row(model, r, x, y)
        assert shown.patch == patch
        np.testing.assert_allclose(shown.weights, expected, rtol=1e-4, atol=1e-5)
        # ... and so is the picture the visitor sees.
        pic, caption = session.affinity(r, x, y)
        drawn = affinity_image(r.seg.image, expected, patch, signed=loss == "cc", longest=512)
        assert np.abs(np.asarray(pic, dtype=int)[:drawn.height] - np.asarray(drawn, dtype=int)).max() <= 2
        assert f"row {patch[0]}, col {patch[1]}" in caption


def test_model_pool_builds_once_shares_and_drops_the_least_recently_used(monkeypatch):
    import threading
    import time
    from types import SimpleNamespace

    from deepcut import model_cache as pool_module
    from deepcut.model_cache import ModelCache

    built = []
    lock = threading.Lock()

    class FakeDeepCut:
        def __init__(self, name, cache_size, device, pretrained=True, threads=None, precision=None):
            time.sleep(0.05)  # a slow build: concurrent callers must wait for it, not build again
            with lock:
                built.append((name, cache_size, device))
            self.backbone = SimpleNamespace(depth=1)

    monkeypatch.setattr(pool_module, "DeepCut", FakeDeepCut)
    p = ModelCache("a", max_models=2, cache_size=5, device="cpu")
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda _: p.get(), range(8)))
    assert built == [("a", 5, "cpu")]
    assert len({id(g.model) for g in got}) == 1 and all(g.backbone == "a" and g.notice is None for g in got)
    p.get("b")
    p.get("a")  # a is now the most recently used
    p.get("c")  # drops b
    assert p.loaded("a") and p.loaded("c") and not p.loaded("b")


def test_model_pool_falls_back_and_retries_later(monkeypatch):
    from types import SimpleNamespace

    from deepcut import model_cache as pool_module
    from deepcut.errors import BackboneLoadError
    from deepcut.model_cache import FALLBACK_BACKBONE, ModelCache

    tries = []
    online = {"value": False}

    class FlakyDeepCut:
        def __init__(self, name, cache_size, device, pretrained=True, threads=None, precision=None):
            tries.append(name)
            if name != FALLBACK_BACKBONE and not online["value"]:
                raise BackboneLoadError(f"no weights for {name} offline")
            self.backbone = SimpleNamespace(depth=12)

    monkeypatch.setattr(pool_module, "DeepCut", FlakyDeepCut)
    p = ModelCache("dino_vitb16", retry_after=1000.0)
    model, used, notice = p.get()
    assert used == FALLBACK_BACKBONE and "dino_vitb16" in notice and "offline" in p.failure("dino_vitb16")
    online["value"] = True
    assert p.get().backbone == FALLBACK_BACKBONE  # not tried again so soon
    assert tries == ["dino_vitb16", FALLBACK_BACKBONE]
    p.retry_after = 0.0
    got = p.get()  # tried again: the network is back
    assert (got.backbone, got.notice) == ("dino_vitb16", None) and got.model.backbone.depth == 12
    assert p.failure("dino_vitb16") is None
    marked = {c.name: c.available for c in p.choices()}
    assert marked["dino_vitb16"] is True and marked["color"] is True
    online["value"] = False
    with pytest.raises(BackboneLoadError):
        p.get("/no/such/model/folder")  # not registered: no fallback, the caller asked for it


def test_model_pool_and_session_use_the_given_device():
    from deepcut.errors import ConfigError
    from deepcut.model_cache import ModelCache

    with pytest.raises(ConfigError):
        ModelCache("color", device="no-such-device")
    s = DemoSession(default_backbone="color", device="cpu")
    assert s.model().model.device == torch.device("cpu")


def test_page_values_become_config_fields():
    from deepcut.demo.settings import from_page

    got = from_page({"k": 3.0, "loss": "cc", "alpha": 2, "ep1": 5.0, "ep2": 20, "ep3": 7, "largest": 1,
                     "seed": None, "resolution": 96.0})
    assert got == {"k": 3, "loss": "cc", "alpha": 2.0, "largest_component": True, "seed": None, "resolution": 96,
                   "epochs": (5, 20, 7)}
    assert type(got["k"]) is int and type(got["alpha"]) is float and type(got["resolution"]) is int


def test_counts_read_as_english():
    """The status says "1 segment", never "1 segments"."""
    from deepcut.demo.results import plural

    assert (plural(1, "segment"), plural(2, "segment"), plural(0, "object")) == ("1 segment", "2 segments", "0 objects")


def test_colour_backbone_status_and_controls_say_it_has_no_layers_or_facets():
    """The status line no longer says "layer 0" for the colour backbone, and the page makes its
    layer slider and facet radio inactive (they would change nothing)."""
    from deepcut.demo.controls import backbone_props

    session = DemoSession("color")
    status = session.segment(disc_image(64), resolution=64).status_markdown()
    assert "layer 0" not in status and "no layers" in status
    props = backbone_props(1)
    assert props["layer"]["interactive"] is False and props["facet"]["interactive"] is False
    assert backbone_props(12)["facet"]["interactive"] is True and backbone_props(12)["layer"]["maximum"] == 11


def test_the_status_counts_the_queues_wait_beside_the_work():
    import time

    from deepcut.demo.results import ready_words

    assert ready_words(1.234) == "ready in **1.23 s**" == ready_words(1.234, 0.01)  # no wait worth a word
    assert ready_words(1.2, 1.1) == "ready in **2.3 s** (1.1 s waiting for a free worker, 1.2 s computing)"
    arrived: list[float] = []
    session = DemoSession(default_backbone="color", max_side=128, arrival=lambda: arrived[0])
    arrived.append(time.monotonic() - 2.0)  # the request reached the server 2 s ago, then waited in the queue
    result = session.segment(disc_image(96), resolution=96)
    answered = time.monotonic()
    assert result.waited >= 2.0 and result.seconds > 0  # a busy machine may add to either, never take away
    # the wait is not counted twice (the work's clock starts a moment before the wait is read: a little slack)
    assert result.waited + result.seconds <= answered - arrived[0] + 0.5
    total = result.waited + result.seconds
    assert f"ready in **{total:.1f} s** ({result.waited:.1f} s waiting for a free worker, {result.seconds:.1f} s " \
           f"computing)" in result.status_markdown()
    plain = DemoSession(default_backbone="color", max_side=128).segment(disc_image(96), resolution=96)
    assert plain.waited == 0.0 and f"ready in **{plain.seconds:.2f} s**" in plain.status_markdown()


def test_the_image_upload_keeps_a_16_bit_png(tmp_path):
    """Gradio's default ``image_mode="RGB"`` converted a 16-bit PNG before DeepCut read it, clipping almost every
    pixel to white: the page segmented a blank image. The upload now passes the file as sent, which
    ``load_image`` reads at its full range."""
    gr = pytest.importorskip("gradio")
    from gradio.data_classes import ImageData

    import app
    from deepcut.features.image import load_image

    demo = app.build_demo(DemoSession("color"), 96)
    upload = next(b for b in demo.blocks.values() if isinstance(b, gr.Image) and b.elem_id == "input-image")
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (32, 1))
    path = tmp_path / "ramp.png"
    Image.fromarray(ramp).save(path)  # mode I;16
    sent = upload.preprocess(ImageData(path=str(path), orig_name="ramp.png"))
    rgb = load_image(sent)
    assert rgb.shape == (32, 64, 3)
    assert rgb[:, :8].max() < 40 and rgb[:, -8:].min() > 215  # dark on the left, bright on the right


def test_choosing_cc_and_back_restores_the_visitors_k():
    """Choosing CC sets k to its bound, 10; choosing NCut again set k to 2, losing the 3 the visitor had."""
    pytest.importorskip("gradio")
    import app
    from deepcut.demo.controls import loss_switch

    alpha, k, kept = loss_switch("cc", 3, None)
    assert alpha["visible"] and k["value"] == 10 and kept == 3
    alpha, k, kept = loss_switch("ncut", 6, kept)  # k moved while on CC: NCut gets its own back
    assert not alpha["visible"] and k["value"] == 3 and kept is None
    assert loss_switch("ncut", 10, None)[1]["value"] == 2  # nothing kept (the page opened on CC): the default
    demo = app.build_demo(DemoSession("color"), 96)
    [event] = [fn for fn in demo.fns.values() if fn.fn is loss_switch]
    assert [type(b).__name__ for b in event.inputs] == ["Radio", "Slider", "State"] and event.outputs[2] is \
        event.inputs[2]
