"""The web demo through its API: ``python app.py`` launched offline, called with ``gradio_client``."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from app_server import MAX_SIDE, REPO, app_server
from conftest import disc_image, disc_mask, iou, moving_disc
from PIL import Image

gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is in requirements-dev.txt")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server():
    return app_server()


@pytest.fixture(scope="module")
def client(server):
    return Client(server["url"], verbose=False)


@pytest.fixture(scope="module")
def disc_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "disc.png"
    Image.fromarray(disc_image(160)).save(path)
    return path


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_segment_with_only_an_image_uses_defaults(client, disc_png):
    out = client.predict(handle_file(str(disc_png)), api_name="/segment")
    overlay, mask, bbox_image, files, status = out[:5]
    # The overlay comes first: the input's size, tinted (not the input itself).
    ov = load(overlay)
    assert ov.shape == (160, 160, 3)
    assert np.abs(ov.astype(int) - disc_image(160).astype(int)).mean() > 5
    fg = load(mask) > 127
    disc = disc_mask(160)
    assert fg[disc].mean() > 0.95 and iou(fg, disc) > 0.7  # the colour backbone may add a corner speck
    assert load(bbox_image).shape == (160, 160, 3)
    names = sorted(f.rsplit("/", 1)[-1] for f in files)
    assert names == ["disc.json", "disc_labels.png"]
    labels = load(next(f for f in files if f.endswith("_labels.png")))
    assert set(np.unique(labels)) == {0, 1}
    meta = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    # The JSON box is the box of the foreground mask (x1, y1 exclusive); the disc starts at 32 px.
    ys, xs = np.nonzero(fg)
    assert meta["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    assert abs(meta["bbox"][0] - 32) <= 12 and abs(meta["bbox"][1] - 32) <= 12
    assert meta["config"]["k"] == 2 and meta["config"]["resolution"] == 112
    assert "2 segments" in status and "color" in status


def test_changing_k_reruns_only_the_gnn(client, disc_png):
    client.predict(handle_file(str(disc_png)), api_name="/segment")
    out = client.predict(handle_file(str(disc_png)), k=3, stages=2, api_name="/segment")
    status = out[4]
    assert "features reused" in status
    assert "stage 2" in status
    labels = load(next(f for f in out[3] if f.endswith("_labels.png")))
    assert labels.max() >= 2  # background + at least two foreground parts


def test_falls_back_to_colour_with_a_visible_notice(server):
    with urllib.request.urlopen(server["url"] + "config", timeout=10) as r:
        config = json.loads(r.read())
    props = {c.get("props", {}).get("elem_id"): c.get("props", {}) for c in config["components"]}
    notice = props["notice"]
    assert notice.get("visible", True) is not False
    assert "could not be loaded" in notice["value"] and "colour backbone" in notice["value"]
    assert props["backbone"]["value"] == "color"
    labels = [c[0] if isinstance(c, (list, tuple)) else c for c in props["backbone"]["choices"]]
    assert any("dino_vits8" in lab and "unavailable" in lab for lab in labels)


@pytest.mark.parametrize("content, suffix", [(b"this is not an image\n", ".txt"),
                                             (b"\xff\xd8\xff\xe0" + b"\x00" * 64, ".jpg")])
def test_bad_uploads_get_a_clear_message(client, tmp_path, content, suffix):
    bad = tmp_path / f"upload{suffix}"
    bad.write_bytes(content)
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(bad)), api_name="/segment")
    assert "could not read this file as an image" in str(err.value).lower()
    assert "Traceback" not in str(err.value)


def test_huge_images_are_downscaled(client, tmp_path):
    big = tmp_path / "wide.png"
    Image.fromarray(np.tile(disc_image(300), (1, 2, 1))).save(big)  # 600 x 300
    out = client.predict(handle_file(str(big)), api_name="/segment")
    assert load(out[0]).shape == (MAX_SIDE // 2, MAX_SIDE, 3)
    assert "downscaled" in out[4]


def test_concurrent_visitors_get_the_same_results_as_one_at_a_time(client, disc_png):
    settings = [dict(k=2), dict(k=3, stages=2), dict(k=2, loss="cc"), dict(k=4)]

    def run(kw):
        out = client.predict(handle_file(str(disc_png)), api_name="/segment", **kw)
        return load(next(f for f in out[3] if f.endswith("_labels.png")))

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, settings))
    alone = [run(kw) for kw in settings]
    for a, b in zip(together, alone, strict=False):
        np.testing.assert_array_equal(a, b)


def test_video_tab_api(client, tmp_path):
    from deepcut.tasks.video import write_video

    frames = moving_disc(10, width=128, height=96, two_tone=False)
    src = tmp_path / "moving_disc.mp4"
    write_video(frames, src, fps=10)
    video, status, files = client.predict(handle_file(str(src)), max_frames=6, api_name="/segment_video")
    from deepcut.tasks.video import read_frames

    decoded = list(read_frames(video))
    assert len(decoded) == 6
    assert "6 frames" in status
    boxes = json.loads(open(next(f for f in files if f.endswith(".json"))).read())["frames"]
    assert len(boxes) == 6
    # The disc moves right by 4 px per frame: so does its box.
    assert boxes[-1]["bbox"][0] > boxes[0]["bbox"][0]


def test_cosegment_api_shares_labels(client, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(disc_image(160)).save(a)
    Image.fromarray(np.ascontiguousarray(disc_image(160, striped_bg=True)[:, ::-1])).save(b)
    gallery, status, files = client.predict([{"image": handle_file(str(a))}, {"image": handle_file(str(b))}],
                                            k=2, stages=1, api_name="/cosegment")
    assert len(gallery) == 2 and "2 images" in status
    maps = {f.rsplit("/", 1)[-1]: load(f) for f in files if f.endswith("_labels.png")}
    la, lb = maps["a_labels.png"], maps["b_labels.png"]
    disc = disc_mask(160)
    # The red disc has one label, and it is the same label in both images.
    va, vb = np.bincount(la[disc]).argmax(), np.bincount(lb[disc]).argmax()
    assert va == vb
    with pytest.raises(AppError, match="at least two images"):
        client.predict([{"image": handle_file(str(a))}], api_name="/cosegment")


def test_discover_api_finds_several_objects_with_boxes_scores_and_coco_masks(client, tmp_path):
    """``/discover``: two separate discs are two objects, each with its box, score and an RLE mask
    in a COCO-style download at the upload's size; 0 objects asks correlation clustering."""
    from pycocotools import mask as mask_utils

    img = np.full((120, 200, 3), (40, 90, 40), np.uint8)
    yy, xx = np.mgrid[:120, :200]
    truth = [(yy - 60) ** 2 + (xx - 50) ** 2 < 28 ** 2, (yy - 60) ** 2 + (xx - 150) ** 2 < 28 ** 2]
    img[truth[0]] = (220, 40, 40)
    img[truth[1]] = (40, 40, 220)
    path = tmp_path / "two.png"
    Image.fromarray(img).save(path)
    overlay, status, files = client.predict(handle_file(str(path)), objects=2, resolution=120,
                                            api_name="/discover")
    assert load(overlay).shape[:2] == (120, 200)
    assert "**2 objects**" in status and "score" in status
    # named after the upload, as the other tabs' downloads (they were objects_overlay.png and objects.json)
    assert sorted(Path(f).name for f in files) == ["two_objects.json", "two_objects.png"]
    assert Path(overlay).name == "two_objects.png"
    coco = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert coco["images"][0]["width"] == 200 and len(coco["annotations"]) == 2
    assert coco["images"][0]["file_name"] == "two.png"
    masks = [mask_utils.decode({**a["segmentation"], "counts": a["segmentation"]["counts"].encode()}).astype(bool)
             for a in coco["annotations"]]
    best = sorted(max(iou(m, t) for m in masks) for t in truth)
    assert best[0] > 0.8, best
    assert all(0 <= a["score"] <= 1 for a in coco["annotations"])
    _, status, _ = client.predict(handle_file(str(path)), objects=0, resolution=120, api_name="/discover")
    assert "correlation clustering" in status


def test_correct_api_joins_and_separates_points(client, tmp_path):
    """``/correct``: the image, its settings and corrections as JSON (points in the upload's pixels)."""
    import json

    from conftest import voronoi_scene
    from PIL import Image

    img, _ = voronoi_scene(4, 0)
    path = tmp_path / "scene.png"
    Image.fromarray(img).save(path)
    plain = client.predict(handle_file(str(path)), k=4, api_name="/segment")
    labels = load(next(f for f in plain[3] if f.endswith("_labels.png")))
    ys, xs = np.nonzero(labels == np.bincount(labels.ravel()).argmax())  # the largest segment
    far = int(np.argmax((xs - xs[0]) ** 2 + (ys - ys[0]) ** 2))
    p, q = (int(xs[0]), int(ys[0])), (int(xs[far]), int(ys[far]))  # two far-apart pixels of one segment
    overlay, status, files = client.predict(handle_file(str(path)), k=4, corrections=json.dumps(
        [{"separate": [p, q]}]), api_name="/correct")
    fixed = load(next(f for f in files if f.endswith("_labels.png")))
    assert fixed[p[1], p[0]] != fixed[q[1], q[0]] and "Correction 1: separated" in status, (status, p, q)
    with pytest.raises(AppError, match="corrections must be JSON"):
        client.predict(handle_file(str(path)), corrections="[1, 2]", api_name="/correct")


#: What the status line says of the time a visitor waited (:func:`deepcut.demo.results.ready_words`).
READY = re.compile(r"ready in \*\*([\d.]+) s\*\*(?: \(([\d.]+) s waiting for a free worker, ([\d.]+) s computing\))?")


def test_the_status_gives_the_wait_as_the_visitor_saw_it(tmp_path):
    """One segmentation at a time: of two requests sent together, the second waits in the queue while the first
    computes. Its status counts that wait beside its own work, as Gradio's own trace of the two events measured
    them (queue wait, handler time), and never more than its visitor waited."""
    server = app_server(extra={"DEEPCUT_CONCURRENCY": "1", "GRADIO_PROFILING": "1"})
    client = Client(server["url"], verbose=False)
    path = tmp_path / "cat.png"
    Image.open(REPO / "assets" / "cat.jpg").save(path)
    slow = dict(resolution=224, ep1=100)  # about half a second of work on one core
    client.predict(handle_file(str(path)), api_name="/segment", **slow)  # the features cached, as for both below

    def timed(_) -> tuple[float, str]:
        start = time.monotonic()
        status = client.predict(handle_file(str(path)), api_name="/segment", **slow)[4]
        return time.monotonic() - start, status

    with ThreadPoolExecutor(2) as pool:
        seen = list(pool.map(timed, range(2)))
    said = []
    for wall, status in seen:
        ready = READY.search(status)
        assert ready, status
        total, waited, computing = (float(v) if v else 0.0 for v in ready.groups())
        said.append((wall, total, waited, computing or total))
    first, second = sorted(said, key=lambda s: s[2])
    assert first[2] < 0.3 and second[2] >= 0.8 * first[3], said  # the second waited while the first computed
    assert second[1] == pytest.approx(second[2] + second[3], abs=0.11)
    for wall, total, _, _ in said:
        assert total <= wall + 0.05, said  # never more than the visitor waited
    with urllib.request.urlopen(server["url"] + "gradio_api/profiling/traces") as r:
        traces = json.load(r)
    traces = [t for t in (traces if isinstance(traces, list) else traces.get("traces", []))
              if t.get("fn_name") == "segment"][-2:]
    gradio = sorted((t["queue_wait_ms"] / 1000, t["fn_call_ms"] / 1000) for t in traces)
    for (_, _, waited, computing), (queued, called) in zip((first, second), gradio, strict=True):
        assert waited == pytest.approx(queued, abs=0.15) and computing == pytest.approx(called, abs=0.25), \
            (said, gradio)  # the wait Gradio's queue measured, and the handler's time


def test_the_page_stops_a_settled_training_or_trains_every_epoch(client, tmp_path):
    """"Stop when settled" (on by default) is a control of the page and of ``/segment``: off, every epoch is
    trained (a teacher replays all of them) and the status says nothing of settling."""
    from conftest import voronoi_scene

    from deepcut.clustering.settle import SETTLED_NOTE

    path = tmp_path / "cells.png"
    Image.fromarray(voronoi_scene(4, 0, side=160)[0]).save(path)
    runs = {settle: client.predict(handle_file(str(path)), k=4, ep1=100, resolution=160, settle=settle,
                                   api_name="/segment") for settle in (True, False)}
    for settle, out in runs.items():
        meta = json.loads(open(next(f for f in out[3] if f.endswith(".json"))).read())
        assert meta["config"]["settle"] is settle and (SETTLED_NOTE in out[4]) is settle, out[4]
    default = client.predict(handle_file(str(path)), k=4, ep1=100, resolution=160, api_name="/segment")
    assert SETTLED_NOTE in default[4]
