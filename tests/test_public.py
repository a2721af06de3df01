"""A public deployment (``DEEPCUT_PUBLIC=1``) through its API: ``python app.py`` in public mode, offline,
called with ``gradio_client`` and plain HTTP (see ``app_server.PUBLIC_ENV`` for its caps)."""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from app_server import REPO, app_server
from conftest import disc_image
from PIL import Image

gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is in requirements-dev.txt")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from deepcut.demo import DemoSession  # noqa: E402
from deepcut.demo.errors import DemoError  # noqa: E402
from deepcut.demo.limits import Limits  # noqa: E402
from deepcut.demo.server import limits_from_args, parse_args  # noqa: E402

#: What visitors might type as "own weights" or backbone: server paths, a hub id, nothing.
TYPED = ["", "/etc/passwd", "~/.ssh/id_rsa", "/nonexistent/folder", "facebook/dino-vitb8"]


@pytest.fixture(scope="module")
def server():
    return app_server(public=True)


@pytest.fixture(scope="module")
def client(server):
    return Client(server["url"], verbose=False)


@pytest.fixture(scope="module")
def disc_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("public") / "disc.png"
    Image.fromarray(disc_image(128)).save(path)
    return path


def config_props(server) -> dict:
    with urllib.request.urlopen(server["url"] + "config", timeout=10) as r:
        config = json.loads(r.read())
    return {c["id"]: (c["type"], c.get("props", {})) for c in config["components"]}


def error_of(fn) -> str:
    with pytest.raises(AppError) as info:
        fn()
    return str(info.value)


def comparable(out: tuple) -> tuple:
    """The /segment answer without what differs between two identical calls (timings, cache, folders)."""
    overlay, mask, bbox, files, status = out[:5]
    status = re.sub(r"\d+(\.\d+)? ?m?s\b", "N s", status).replace("**features reused** from the cache", "")
    status = re.sub(r"features computed in N s", "", status)
    pictures = tuple(np.asarray(Image.open(p)).tobytes() for p in (overlay, mask, bbox))
    labels = next(f for f in files if f.endswith("_labels.png"))
    return pictures, np.asarray(Image.open(labels)).tobytes(), status


@pytest.mark.server
def test_page_hides_own_weights_offers_listed_backbones_and_states_the_caps(server):
    props = config_props(server)
    textboxes = [p for kind, p in props.values() if kind == "textbox" and "own weights" in str(p.get("label"))]
    assert textboxes and all(p.get("visible") is False for p in textboxes)
    dropdown = next(p for kind, p in props.values() if p.get("elem_id") == "backbone")
    assert [value for _, value in dropdown["choices"]] == ["color"]
    limits = next(p for kind, p in props.values() if p.get("elem_id") == "limits")
    assert limits.get("visible") is not False
    assert "On this server" in limits["value"] and "20 training epochs" in limits["value"] and "30 s" in limits["value"]
    sliders = {p.get("label"): p for kind, p in props.values() if kind == "slider"}
    assert sliders["Resolution (px)"]["maximum"] == 160
    assert all(p["maximum"] == 20 for label, p in sliders.items() if label.startswith("Epochs"))
    assert sliders["Max frames"]["maximum"] == 5


@pytest.mark.server
def test_own_weights_are_ignored_whatever_is_typed(client, disc_png):
    client.predict(handle_file(str(disc_png)), api_name="/segment")  # features cached: every answer alike
    answers = [comparable(client.predict(handle_file(str(disc_png)), custom=typed, api_name="/segment"))
               for typed in TYPED]
    assert all(a == answers[0] for a in answers[1:])
    assert "color" in answers[0][2]
    broken = [error_of(lambda t=typed: client.predict(handle_file(__file__), custom=t, api_name="/segment"))
              for typed in TYPED]
    assert len(set(broken)) == 1


@pytest.mark.server
def test_a_backbone_not_offered_gets_one_message_whatever_it_is(client, disc_png):
    messages = {error_of(lambda b=b: client.predict(handle_file(str(disc_png)), backbone=b, api_name="/segment"))
                for b in TYPED[1:] + ["dino_vits8", "dinov2_vitg14"]}
    assert len(messages) == 1
    message = messages.pop()
    assert "not offered" in message and "/" not in message and "exist" not in message


@pytest.mark.server
def test_settings_above_the_caps_are_refused_with_a_clear_message(client, disc_png):
    message = error_of(lambda: client.predict(handle_file(str(disc_png)), ep1=100, api_name="/segment"))
    assert "maximum" in message and "20" in message
    message = error_of(lambda: client.predict(handle_file(str(disc_png)), resolution=640, api_name="/segment"))
    assert "maximum" in message and "160" in message


@pytest.mark.server
def test_an_image_of_too_many_pixels_is_refused_before_decoding(client, tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (4000, 4000)).save(path)  # 16 megapixels in a few kilobytes
    assert path.stat().st_size < 100_000
    message = error_of(lambda: client.predict(handle_file(str(path)), api_name="/segment"))
    assert "4000×4000" in message and "megapixels" in message


def call(server, api: str, image: dict) -> tuple[int, str]:
    """POST ``image`` (and every other input's default) to ``/gradio_api/call/<api>`` and read the answer:
    ``(HTTP status, event stream)``."""
    with urllib.request.urlopen(f"{server['url']}gradio_api/info", timeout=10) as r:
        params = json.loads(r.read())["named_endpoints"][f"/{api}"]["parameters"]
    data = [image] + [p.get("parameter_default") for p in params[1:]]
    body = json.dumps({"data": data}).encode()
    req = urllib.request.Request(f"{server['url']}gradio_api/call/{api}", body,
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            event = json.loads(r.read())["event_id"]
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    with urllib.request.urlopen(f"{server['url']}gradio_api/call/{api}/{event}", timeout=60) as r:
        return 200, r.read().decode()


def data_url(image: Image.Image) -> dict:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"path": None, "url": url, "meta": {"_type": "gradio.FileData"}}


@pytest.mark.server
def test_data_urls_obey_the_size_and_pixel_limits(server):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 700, 3), np.uint8))  # ~1.4 MB PNG
    status, text = call(server, "segment", data_url(noise))
    assert status == 413 and "larger than" in text
    status, text = call(server, "segment", data_url(Image.new("1", (4000, 4000))))
    assert status == 200 and "event: error" in text and "event: complete" not in text  # refused undecoded
    small = Image.fromarray(disc_image(64))
    status, text = call(server, "segment", data_url(small))
    assert status == 200 and "event: complete" in text  # an ordinary data URL still works


def test_a_request_past_the_time_limit_stops_with_a_clean_message():
    session = DemoSession(default_backbone="color", max_side=128, limits=Limits(seconds=1e-9))
    with pytest.raises(DemoError, match=r"Stopped after \d+ s \(the limit on this server"):
        session.segment(disc_image(64), k=3, stages=2, resolution=64)


def test_objects_and_cosegmentation_also_stop_at_the_time_limit():
    """Discovery checks the deadline before each cut, co-segmentation before each stage (they used to
    check only before starting)."""
    session = DemoSession(default_backbone="color", max_side=128, limits=Limits(seconds=1e-9))
    with pytest.raises(DemoError, match=r"Stopped after \d+ s"):
        session.discover(disc_image(64), objects=3, resolution=64)
    with pytest.raises(DemoError, match=r"Stopped after \d+ s"):
        session.cosegment([disc_image(64), disc_image(64, two_tone=True)], k=3, stages=2, resolution=64)
    free = DemoSession(default_backbone="color", max_side=128)  # no limit: both run
    assert free.discover(disc_image(64), objects=2, resolution=64) is not None


def test_public_mode_from_the_environment_and_its_caps(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/deepcut")
    limits = limits_from_args(parse_args(["--backbone", "dino_vits8", "--max-epochs", "50"]))
    assert limits.public and not limits.allows_custom()
    assert limits.backbones == ("dino_vits8", "color") and limits.max_epochs == 50
    assert limits.max_frames is not None and limits.seconds is not None
    monkeypatch.delenv("SPACE_ID")
    local = limits_from_args(parse_args([]))
    assert not local.public and local.allows_custom() and local.backbones is None
    notes: list[str] = []
    assert Limits(max_resolution=224, max_epochs=30).clamp({"resolution": 640, "epochs": (10, 100)}, notes) == {
        "resolution": 224, "epochs": (10, 30)}
    assert len(notes) == 2


def test_the_caps_help_and_the_limits_example_read_the_limits_themselves(capsys):
    """The app's --help states each cap's defaults from :class:`Limits`, and the module's example is what
    :meth:`Limits.clamp` does (both once went stale: a help written by hand, an example of 100 epochs)."""
    import deepcut.demo.limits as limits_module
    from deepcut.demo.server import CAPS, FLAGS, cap_help

    public, local = Limits.public_defaults(), Limits()
    assert {flag for flag, *_ in FLAGS} >= set(CAPS)
    assert cap_help("--max-epochs") == f"(default none, public {public.max_epochs})"
    mb = 2 ** 20
    assert cap_help("--max-file-size") == f"(default {local.max_bytes // mb}mb, public {public.max_bytes // mb}mb)"
    assert cap_help("--max-pixels") == "(default 100M, public 16M)"
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert all(cap_help(flag) in shown for flag in CAPS), shown
    notes: list[str] = []
    clamped = public.clamp({"resolution": 640, "epochs": (100, 300, 100)}, notes)
    assert clamped == {"resolution": 448, "epochs": (100, limits_module.PUBLIC_MAX_EPOCHS, 100)} and len(notes) == 2
    assert '"epochs": (100, PUBLIC_MAX_EPOCHS, 100)}, two notices' in limits_module.__doc__


def test_results_are_kept_by_key_and_bounded():
    session = DemoSession(default_backbone="color", max_side=128, keep_results=2)
    keys = [session.results.add(session.segment(disc_image(64), resolution=64)) for _ in range(3)]
    assert all(isinstance(k, str) and len(k) <= 32 for k in keys)
    assert session.results.get(keys[0]) is None and session.results.get(keys[2]) is not None
    assert len(session.results) == 2


def test_public_heavy_events_share_one_queue_of_the_cores(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    import app

    def heavy_groups(limits: Limits) -> dict[str, tuple]:
        demo = app.build_demo(DemoSession(default_backbone="color", max_side=128, limits=limits))
        return {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in demo.fns.values()
                if fn.api_name in ("segment", "discover", "segment_video", "cosegment")}

    public = heavy_groups(Limits.public_defaults(workers=2))
    assert len(public) == 4 and set(public.values()) == {("heavy", 2)}  # the video waits with the images
    local = heavy_groups(Limits())
    assert local["segment_video"][0] != local["segment"][0]


def test_local_mode_error_messages_show_no_server_folders():
    session = DemoSession(default_backbone="color", max_side=128)
    for typed in TYPED[1:4] + ["/etc"]:
        with pytest.raises(DemoError) as info:
            session.model(typed)
        assert not re.search(r"/etc|/root|/home|\.ssh/|/nonexistent", str(info.value)), str(info.value)


def test_cached_pictures_are_never_rewritten_in_place(tmp_path):
    from gradio import processing_utils

    from deepcut.demo import guards

    guards.atomic_picture_cache()
    picture = Image.fromarray(disc_image(32))
    first = processing_utils.save_pil_to_cache(picture, str(tmp_path), format="png")
    Path(first).write_bytes(b"being downloaded")  # stands for a reader holding the file
    again = processing_utils.save_pil_to_cache(picture, str(tmp_path), format="png")
    assert again == first and Path(first).read_bytes() == b"being downloaded"


def test_temporary_file_clean_up_survives_traffic(tmp_path):
    import threading
    import time
    from types import SimpleNamespace

    from gradio import route_utils

    from deepcut.demo import guards

    guards.reliable_cache_cleanup()
    old = [tmp_path / f"old{i}.png" for i in range(200)]
    for path in old:
        path.write_bytes(b"x")
    time.sleep(0.05)  # older than age 0 (Gradio ages files by ctime, which cannot be set)
    files = {str(p) for p in old}
    blocks = SimpleNamespace(blocks={}, temp_file_sets=[files])
    stop = threading.Event()

    def traffic():  # a request adding its files meanwhile (broke Gradio's own loop for good)
        i = 0
        while not stop.is_set():
            files.add(str(tmp_path / f"new{i}.png"))
            i += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        route_utils.delete_files_created_by_app(blocks, 0)
    finally:
        stop.set()
        worker.join()
    assert not any(p.exists() for p in old)
    assert not any(str(p) in files for p in old)


# -- #22: the pixel cap on every endpoint, bounded uploads, every training rule capped, no server path ------
def noise(side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), np.uint8)


def test_every_endpoint_checks_declared_pixels_before_decoding(tmp_path):
    import odd_files

    session = DemoSession(default_backbone="color", max_side=128, limits=Limits.public_defaults(max_pixels=1_000_000))
    ok = tmp_path / "ok.png"
    Image.fromarray(disc_image(64)).save(ok)
    videos = [odd_files.gif(tmp_path / "screen.gif", (13000, 13000)),
              odd_files.gif(tmp_path / "screen.mp4", (13000, 13000)),
              odd_files.png_header(tmp_path / "image.mp4", 16000, 16000),
              odd_files.matroska(tmp_path / "png.mkv", 1200),
              odd_files.animated(tmp_path / "anim.webp", 1200, fmt="WEBP")]
    for video in videos:
        with pytest.raises(DemoError, match="megapixels") as info:
            session.segment_video(str(video), resolution=64)
        assert str(tmp_path) not in str(info.value)
    images = [odd_files.gif(tmp_path / "beyond.gif", (10, 10), frame=(1200, 1200)),
              odd_files.tiff_pages(tmp_path / "pages.tif", (64, 1200)), odd_files.animated(tmp_path / "anim.png", 1200)]
    for image in images:
        for call in (lambda im: session.segment(str(im), resolution=64),
                     lambda im: session.discover(str(im), objects=2, resolution=64),
                     lambda im: session.cosegment([str(ok), str(im)], resolution=64)):
            with pytest.raises(DemoError, match="megapixels"):
                call(image)
    assert session.segment_video("assets/cat_pan.mp4", max_frames=2, resolution=64).frames == 2  # within the cap


def test_the_epoch_cap_bounds_every_training_rule():
    """NCut's exactly-k rule trained k=10 for up to 600 epochs under a cap of 100 per stage; its restart from
    the spectral cut (2 x epochs + 20) is skipped, with a note, where the cap is lower."""
    import torch

    from deepcut.clustering.fit import fit
    from deepcut.demo.teaching import explain

    features = torch.as_tensor(np.random.default_rng(0).normal(size=(120, 8)), dtype=torch.float32)
    assert len(fit(features, k=10, epochs=10).losses) > 10  # the rule trains on past the epochs here
    capped = fit(features, k=10, epochs=10, max_epochs=20)
    assert len(capped.losses) <= 20 and "max_epochs" in (capped.note or "")
    session = DemoSession(default_backbone="color", max_side=128, limits=Limits(max_epochs=20))
    result = session.segment(noise(96), k=10, stages=2, epochs=(100, 100, 100), resolution=96)
    assert result.seg.losses and max(len(stage) for stage in result.seg.losses) <= 20
    assert any("limit of 20 per stage" in n for n in result.notices)  # the status says the cap was applied
    ex = explain(session.model("color").model, result, session.limits.max_epochs)
    assert max(len(stage.losses) for stage in ex.record.stages) <= 20
    assert "every training rule" in Limits.public_defaults().summary()


def upload(server, files: list[tuple[str, bytes]], visitor: str | None = None) -> tuple[int, str]:
    """POST ``files`` in one multipart body to Gradio's upload route (as ``visitor``, sent as the address a
    proxy on this machine saw): ``(HTTP status, body)``."""
    boundary = "deepcut-test-boundary"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, data in files)
    body += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if visitor:
        headers["X-Forwarded-For"] = visitor
    req = urllib.request.Request(f"{server['url']}gradio_api/upload", body, headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.server
def test_uploads_are_bounded_per_request_and_per_visitor(server):
    small = [(f"f{i}.bin", b"x" * 1000) for i in range(4)]
    assert upload(server, small[:3], "198.51.100.1")[0] == 200
    status, text = upload(server, small, "198.51.100.1")  # 4 files, the public test server takes 3
    assert status == 413 and "more than 3 files" in text
    status, text = upload(server, [("a.bin", b"x" * 600_000), ("b.bin", b"x" * 600_000)], "198.51.100.2")
    assert status == 413 and "1 MB of files per upload" in text  # each under the 1 MB cap, together over
    answers = [upload(server, [(f"{i}.bin", b"x" * 900_000)], "198.51.100.3") for i in range(5)]
    assert [s for s, _ in answers] == [200, 200, 200, 200, 429]  # 4 MB per minute from one visitor
    assert "per 60 s from one visitor" in answers[-1][1]
    answers = [upload(server, small[:3], "198.51.100.4")[0] for _ in range(15)]
    assert answers[:13] == [200] * 13 and answers[-1] == 429  # 40 files per minute (13 × 3 = 39, then 42)
    assert upload(server, small[:1], "198.51.100.5")[0] == 200  # another visitor is not held up
    assert upload(server, small[:1])[0] == 200  # nor the tests' own address


@pytest.mark.server
@pytest.mark.slow
def test_uploads_wait_while_the_temporary_folder_is_full(tmp_path):
    import os

    from app_server import PUBLIC_ENV, free_port, launch

    temp = tmp_path / "gradio"
    env = {**os.environ, **PUBLIC_ENV, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "GRADIO_TEMP_DIR": str(temp), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(free_port()), "DEEPCUT_BACKBONE": "color", "DEEPCUT_THREADS": "1",
           "DEEPCUT_MAX_TEMP_FILES": "40", "DEEPCUT_VISITOR_FILES": "1000", "DEEPCUT_VISITOR_BYTES": "1gb"}
    env.pop("SPACE_ID", None)
    proc, url = launch(env, log_path=tmp_path / "app.log")
    try:
        server = {"url": url}
        statuses = [upload(server, [(f"{i}-{j}.bin", os.urandom(100)) for j in range(3)])[0] for i in range(20)]
        assert 200 in statuses and statuses[-1] == 429  # refused once the folder holds 40 files
        held = sum(len(files) for _, _, files in os.walk(temp))
        assert held <= 40 + 3 + 2  # the cap, one upload's files, and the folder counted a moment earlier
        status, text = upload(server, [("late.bin", b"x")])
        assert status == 429 and "try again in a few minutes" in text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.server
def test_video_endpoint_refuses_declared_pixels_whatever_the_name(server, client, tmp_path):
    import odd_files
    from app_server import tree_rss_mb

    before = tree_rss_mb(server["proc"].pid)
    for video in (odd_files.gif(tmp_path / "screen.gif", (13000, 13000)),
                  odd_files.gif(tmp_path / "screen.mp4", (13000, 13000)),
                  odd_files.png_header(tmp_path / "image.mp4", 16000, 16000)):
        message = error_of(lambda v=video: client.predict(handle_file(str(v)), api_name="/segment_video"))
        assert "megapixels" in message and "/" not in message.split(":", 1)[0]
    assert tree_rss_mb(server["proc"].pid) - before < 200  # +2.8 GB per request before


@pytest.mark.server
def test_no_answer_names_a_server_folder(server, client, disc_png):
    temp = server["temp"]  # the test server's Gradio folder
    texts = []
    for route in ("", "config", "gradio_api/info", "gradio_api/info?all_endpoints=true"):
        with urllib.request.urlopen(server["url"] + route, timeout=10) as r:
            texts.append(r.read().decode())
    texts.append(upload(server, [("x.png", disc_png.read_bytes())])[1])
    texts.append(call(server, "segment", {"path": json.loads(texts[-1])[0], "meta": {"_type": "gradio.FileData"}})[1])
    for text in texts:
        assert str(REPO) not in text and temp not in text, text[:300]
    assert "gradio-temp/" in texts[1]  # the examples, by their alias
    example = re.search(r'"url":\s*"([^"]+/cat\.jpg)"', texts[1]).group(1)
    with urllib.request.urlopen(example, timeout=10) as r:  # and the aliases still work
        assert r.status == 200 and r.read()[:2] == b"\xff\xd8"
    overlay = client.predict(handle_file(str(disc_png)), api_name="/segment")[0]
    assert Image.open(overlay).size[0] > 0
