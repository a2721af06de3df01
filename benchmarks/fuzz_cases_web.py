"""The web server's odd inputs for ``benchmarks/fuzz.py`` (#22): ``web_cases(folder)`` returns
``[(name, thunk)]`` of three classes, every name starting with ``web:`` (``--only web:``):

* **image containers**: files whose headers declare huge frames (GIF screens and frame rectangles, PNG
  / JPEG / BMP headers, APNG, animated WebP, TIFF pages), broken GIF structures and ordinary ones,
  under any name, each into one entry of :class:`~deepcut.demo.DemoSession` with the public pixel cap
  (``segment``, ``discover``, ``cosegment``) and into the library's :func:`~deepcut.tasks.video.read_frames`;
* **video containers**: the same plus PNG-in-Matroska frames of 8000² and 16000², a VP9 WebM over the
  cap, images named ``.mp4``, random bytes and truncated files, into ``DemoSession.segment_video`` and
  ``read_frames(max_pixels=…)``;
* **web uploads**: odd multipart bodies to Gradio's upload route of a real ``app.py --public`` (started
  once, before the children fork): too many files, too many bytes, no boundary, a truncated body, path
  names, a forged ``X-Forwarded-For``, many visitors; an answer of 500 or more, a dead server, a server
  over its memory budget or a server folder in an answer counts as a crash.

Each thunk is one call; it must end in a result or a :class:`~deepcut.DeepCutError` (``DemoError``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import odd_files  # noqa: E402  (tests/odd_files.py: the small files that declare huge frames)

Case = tuple[str, Callable[[], object]]
#: The public pixel cap the cases run under (the public default).
MAX_PIXELS = 16_000_000
#: The server's memory budget (docs/deploy.md): server + children RSS.
SERVER_BUDGET_MB = 2048


def _jpeg_header(path: Path, w: int, h: int) -> Path:
    """A JPEG whose frame header (SOF0) declares ``w`` × ``h`` and then ends."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    path.write_bytes(b"\xff\xd8" + sof + b"\xff\xd9")
    return path


def _bmp_header(path: Path, w: int, h: int) -> Path:
    """A BMP whose header declares ``w`` × ``h`` 24-bit pixels, with no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info)
    return path


def write_containers(d: Path) -> dict[str, tuple[Path, bool]]:
    """``{name: (file, is it a video-only case)}``: the image and video container files."""
    d.mkdir(parents=True, exist_ok=True)
    ok = d / "ok.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)).save(ok)
    small_gif = d / "small.gif"
    frames = [Image.new("P", (40, 30), i * 40) for i in range(3)]
    frames[0].save(small_gif, save_all=True, append_images=frames[1:], duration=100)
    files = {
        "ok png": (ok, False), "ok gif": (small_gif, False),
        "gif screen 13000²": (odd_files.gif(d / "screen.gif", (13000, 13000)), False),
        "gif screen 65535²": (odd_files.gif(d / "screen_max.gif", (65535, 65535)), False),
        "gif screen 4000² (at the cap)": (odd_files.gif(d / "screen_cap.gif", (4000, 4000)), False),
        "gif screen named .png": (odd_files.gif(d / "screen.png", (13000, 13000)), False),
        "gif frame beyond a 10² screen": (odd_files.gif(d / "beyond.gif", (10, 10), frame=(13000, 13000)), False),
        "gif frame at offset 60000": (odd_files.gif(d / "offset.gif", (10, 10), frame=(5, 5), at=(60000, 60000)),
                                      False),
        "gif 5000 tiny frames": (odd_files.gif(d / "many.gif", (8, 8), frame=(8, 8), frames=5000), False),
        "gif truncated header": (d / "trunc.gif", False), "gif no frames": (d / "empty.gif", False),
        "png header 16000²": (odd_files.png_header(d / "p16k.png", 16000, 16000), False),
        "png header 1×2^31": (odd_files.png_header(d / "p_wide.png", 2 ** 31 - 1, 1), False),
        "png header 0×0": (odd_files.png_header(d / "p0.png", 0, 0), False),
        "jpeg header 60000²": (_jpeg_header(d / "j60k.jpg", 60000, 60000), False),
        "bmp header 50000²": (_bmp_header(d / "b50k.bmp", 50000, 50000), False),
        "apng 4001²": (odd_files.animated(d / "anim.png", 4001), False),
        "apng small": (odd_files.animated(d / "anim_small.png", 32, frames=3), False),
        "webp animated 4001²": (odd_files.animated(d / "anim.webp", 4001, fmt="WEBP"), False),
        "webp animated small": (odd_files.animated(d / "anim_small.webp", 32, frames=3, fmt="WEBP"), False),
        "tiff second page 5000²": (odd_files.tiff_pages(d / "pages.tif", (64, 5000)), False),
        "tiff 300 small pages": (odd_files.tiff_pages(d / "many.tif", (16,) * 300), False),
        "png 16000² named .mp4": (odd_files.png_header(d / "image.mp4", 16000, 16000), True),
        "gif 13000² named .mkv": (odd_files.gif(d / "screen.mkv", (13000, 13000)), True),
        "small png named .webm": (Path(shutil.copy(ok, d / "ok.webm")), True),
        "mkv png 8000²": (odd_files.matroska(d / "png8k.mkv", 8000), True),
        "mkv png 16000²": (odd_files.matroska(d / "png16k.mkv", 16000), True),
        "mkv png 64² (ok)": (odd_files.matroska(d / "png64.mkv", 64, frames=4), True),
        "webm vp9 4096²": (odd_files.matroska(d / "vp9.webm", 4096, codec="libvpx-vp9"), True),
        "mkv truncated": (d / "cut.mkv", True), "random bytes .mp4": (d / "random.mp4", True),
    }
    (d / "trunc.gif").write_bytes(b"GIF89a\x10")
    (d / "empty.gif").write_bytes(b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0) + b"\x3b")
    (d / "cut.mkv").write_bytes((d / "png8k.mkv").read_bytes()[:5000])
    (d / "random.mp4").write_bytes(np.random.default_rng(1).bytes(20000))
    return files


def container_cases(folder: Path) -> list[Case]:
    """Image and video containers into the demo's entries and the library's reader, under the public cap."""
    from deepcut.demo import DemoSession
    from deepcut.demo.limits import Limits
    from deepcut.tasks.video import read_frames

    session = DemoSession(default_backbone="color", max_side=256, limits=Limits.public_defaults(seconds=30.0))
    files = write_containers(folder / "containers")
    ok = str(files["ok png"][0])
    cases: list[Case] = []
    for name, (path, video_only) in files.items():
        p = str(path)
        cases.append((f"web:video containers: {name}: read_frames",
                      lambda p=p: f"{sum(1 for _ in read_frames(p, max_frames=5, max_pixels=MAX_PIXELS))} frames"))
        cases.append((f"web:video containers: {name}: /segment_video",
                      lambda p=p: session.segment_video(p, max_frames=3, resolution=64).status_markdown()))
        if video_only:
            continue
        cases += [(f"web:image containers: {name}: /segment",
                   lambda p=p: session.segment(p, resolution=64).status_markdown()),
                  (f"web:image containers: {name}: /discover",
                   lambda p=p: session.discover(p, objects=2, resolution=64).status()),
                  (f"web:image containers: {name}: /cosegment",
                   lambda p=p: session.cosegment([ok, p], resolution=64).status_markdown())]
    return cases


# -- web uploads -------------------------------------------------------------------------------------
def _server(folder: Path) -> dict:
    """A public ``app.py`` (colour backbone, offline, its own temporary folder), stopped at exit."""
    from app_server import PUBLIC_ENV, free_port, launch

    temp = folder / "gradio"
    env = {**os.environ, **PUBLIC_ENV, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "HF_HOME": tempfile.mkdtemp(prefix="deepcut-fuzz-hf-"), "GRADIO_TEMP_DIR": str(temp),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(free_port()), "DEEPCUT_BACKBONE": "color",
           "DEEPCUT_THREADS": "1", "DEEPCUT_VISITOR_FILES": "60", "DEEPCUT_MAX_TEMP_FILES": "400"}
    env.pop("SPACE_ID", None)
    folder.mkdir(parents=True, exist_ok=True)
    proc, url = launch(env, log_path=folder / "app.log")
    atexit.register(lambda: (proc.terminate(), proc.wait(timeout=20)))
    return {"url": url, "proc": proc, "temp": str(temp)}


def _post(server: dict, route: str, body: bytes, headers: dict[str, str]) -> str:
    """POST to the server; ``"HTTP <status>"``; raises RuntimeError for a server error, a dead server, one over
    its memory budget, or an answer that names a server folder."""
    from app_server import tree_rss_mb

    req = urllib.request.Request(server["url"] + route, body, headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text = r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError) as e:
        status, text = 0, str(e)
    try:  # the children are not the server's parent: poll() cannot tell, a signal 0 can
        os.kill(server["proc"].pid, 0)
        alive = "zombie" not in Path(f"/proc/{server['proc'].pid}/status").read_text().lower()
    except OSError:
        alive = False
    if not alive:
        raise RuntimeError("the server died")
    if status >= 500 or status == 0:
        raise RuntimeError(f"HTTP {status}: {text[:200]}")
    if server["temp"] in text or str(Path(__file__).resolve().parents[1]) in text:
        raise RuntimeError(f"the answer names a server folder: {text[:200]}")
    rss = tree_rss_mb(server["proc"].pid)
    if rss > SERVER_BUDGET_MB:
        raise RuntimeError(f"the server holds {rss:.0f} MB, over its budget of {SERVER_BUDGET_MB} MB")
    return f"HTTP {status}"


def _multipart(files: list[tuple[str, bytes]], boundary: str = "fuzz-boundary", close: bool = True) -> bytes:
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, data in files)
    return body + (f"--{boundary}--\r\n".encode() if close else b"")


def upload_cases(folder: Path) -> list[Case]:
    """Odd bodies to the upload route of a real public server (see the module doc)."""
    server = _server(folder / "web")
    form = {"Content-Type": "multipart/form-data; boundary=fuzz-boundary"}
    gif = odd_files.gif(folder / "bomb.gif", (13000, 13000)).read_bytes()

    def send(files, headers=None, visitor="203.0.113.1", close=True, route="gradio_api/upload"):
        return lambda: _post(server, route, _multipart(files, close=close),
                             {**form, "X-Forwarded-For": visitor, **(headers or {})})

    one = [("a.bin", b"x" * 1000)]
    cases = [
        ("no files", send([])), ("one file", send(one)), ("an empty file", send([("e.bin", b"")])),
        ("4 files (cap 3)", send(one * 4, visitor="203.0.113.2")),
        ("1000 tiny files", send([(f"{i}.bin", b"x") for i in range(1000)], visitor="203.0.113.3")),
        ("2 × 0.6 MB (cap 1 MB)", send([("a", b"x" * 600_000), ("b", b"y" * 600_000)], visitor="203.0.113.4")),
        ("one 1.5 MB file", send([("big.bin", b"x" * 1_500_000)], visitor="203.0.113.5")),
        ("a truncated body", send(one, close=False, visitor="203.0.113.6")),
        ("no boundary", lambda: _post(server, "gradio_api/upload", _multipart(one),
                                      {"Content-Type": "multipart/form-data"})),
        ("not multipart", lambda: _post(server, "gradio_api/upload", b"{}", {"Content-Type": "application/json"})),
        ("a name with folders", send([("../../../etc/passwd", b"x")])),
        ("a name of 5000 characters", send([("n" * 5000, b"x")])),
        ("a GIF bomb", send([("bomb.gif", gif)])),
        ("a forged X-Forwarded-For chain", send(one, visitor="1.2.3.4, 5.6.7.8, 203.0.113.7")),
        ("an empty X-Forwarded-For", send(one, visitor="")),
        ("the upload route with a slash", send(one, route="gradio_api/upload/")),
        ("the upload route without the prefix", send(one, route="upload")),
    ]
    cases += [(f"visitor {i} of 40, 3 files each", send(one * 3, visitor=f"198.18.0.{i}")) for i in range(40)]
    cases += [(f"one visitor, upload {i} of 25", send(one * 3, visitor="203.0.113.9")) for i in range(25)]
    return [(f"web:uploads: {name}", fn) for name, fn in cases]


def web_cases(folder: Path) -> list[Case]:
    """Every web case (image containers, video containers, web uploads)."""
    return container_cases(folder) + upload_cases(folder)
