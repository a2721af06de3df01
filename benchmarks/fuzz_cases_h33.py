"""Issue #33's classes for ``benchmarks/fuzz.py`` (``--only h33/``): the failure paths of the features added
after the last hardening (live, corrections, the lessons' exports, precision, the page's inputs).

* ``h33/library/``: corrections with odd pairs (a million, NaN, off the image, another image's result)
  and slides of odd sizes, extras and names, a zip onto a user's file;
* ``h33/cli/``: runs into a file or folder another run holds, ``label --resume`` with another precision,
  ``app.py`` with nonsense caps;
* ``h33/web/``: a real ``app.py --public`` (started once, before the children fork) probed by a client
  that is not the page: live frames posted at 26 per second, quiet streams, a visitor's second stream,
  frames that are not pictures, images inline as ``data:`` URLs past the visitor cap, and values no page
  sends (``"x"``, ``null``, ``NaN``, ``Infinity``, 2.5, a click index that is not a number).

Each thunk is one call that must end in a result or a :class:`~deepcut.DeepCutError` (the CLI: status 1, 2
or 130). A cap that does not hold, a message that is empty or a generic "Something went wrong", a file
replaced or lost is a :class:`RuntimeError`: a crash in the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

Case = tuple[str, Callable[[], object]]
ROOT = Path(__file__).resolve().parents[1]
RES = 48


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).integers(0, 60, (h, w, 3), np.uint8)
    a[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (200, 40, 40)
    return a


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(what)


# -- library ------------------------------------------------------------------------------------------------
def library_cases(d: Path) -> list[Case]:
    from deepcut import DeepCut
    from deepcut.lessons.result import LessonResult
    from deepcut.lessons.slides import export_zip, write_slides

    d.mkdir(parents=True, exist_ok=True)
    dc = DeepCut("color", cache_size=2)
    img, other = _img(48, 64), _img(48, 64, seed=1)
    seg = dc.segment(img, k=3, resolution=RES)
    small = dc.segment(_img(32, 32), k=2, resolution=RES)
    shown = LessonResult.of(dc.store, seg)
    pairs: dict[str, object] = {
        "a million pairs": [((1.0, 1.0), (2.0, 2.0))] * 1_000_000, "NaN points": [((float("nan"), 1), (2, 2))],
        "inf points": [((float("inf"), 1), (2, 2))], "off the image": [((-500, 3), (9000, 9000))],
        "strings": [(("a", "b"), ("c", "d"))], "not pairs": [1, 2, 3], "one point": [((1, 1),)],
        "nested deep": [[[[[1]]]]], "a dict": {"x": 1}, "empty": [], "33 pairs": [((1, 1), (40, 30))] * 33}
    cases: list[Case] = [(f"h33/library/correct join {name}", lambda p=p: dc.correct(img, seg, join=p))
                         for name, p in pairs.items()]
    cases += [("h33/library/correct another image", lambda: dc.correct(other, seg, join=[((5, 5), (40, 30))])),
              ("h33/library/correct another size", lambda: dc.correct(img, small, join=[((5, 5), (20, 20))]))]
    for size in [(0, 0), (1, 1), (-10, 100), (20000, 20000), (320, 8000), ("a", 3), (float("nan"), 500), None,
                 (640, 360, 3)]:
        cases.append((f"h33/library/slides size {size}",
                      lambda s=size: write_slides(shown, d / f"s{abs(hash(str(s)))}", "a.png", size=s)))
    for name, extra in [("not a picture", {"x": 12}), ("two names one file", {"my fig": seg.overlay(),
                                                                               "my_fig": seg.overlay()}),
                        ("a built-in name", {"overlay": seg.overlay()}), ("an empty name", {"": seg.overlay()}),
                        ("a path name", {"../../x": seg.overlay()})]:
        cases.append((f"h33/library/slides extra {name}",
                      lambda e=extra, n=name: write_slides(shown, d / f"x{abs(hash(n))}", "a.png", extra=e,
                                                           size=(640, 360))))

    def onto_user_files() -> None:
        folder = d / "users"
        folder.mkdir(exist_ok=True)
        for name in ("README.txt", "a_slides_ncut-k3.zip"):
            (folder / name).write_text("mine")
        for call in (lambda: write_slides(shown, folder, "a.png", size=(640, 360)),
                     lambda: export_zip(shown, folder, "a.png", size=(640, 360))):
            try:
                call()
            except Exception as e:  # a refusal is fine; a lost file is not
                if not isinstance(e, __import__("deepcut").DeepCutError):
                    raise
        _expect(all((folder / n).read_text() == "mine" for n in ("README.txt", "a_slides_ncut-k3.zip")),
                "a user's file was replaced")
    cases.append(("h33/library/slides onto a user's files", onto_user_files))
    return cases


# -- CLI ------------------------------------------------------------------------------------------------------
def _cli(*argv: str, timeout: float = 50) -> int:
    return subprocess.run([sys.executable, "-m", "deepcut", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout).returncode


def cli_cases(d: Path) -> list[Case]:
    from deepcut.cli import main
    from deepcut.utils.manifest import file_lock, folder_lock

    d.mkdir(parents=True, exist_ok=True)
    images = d / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(_img(32, 32, i)).save(images / f"im{i}.png")
    base = ["--backbone", "color", "--resolution", str(RES)]

    def held_folder(command: list[str]) -> Callable[[], object]:
        def run() -> object:
            out = d / f"held{abs(hash(tuple(command)))}"
            out.mkdir(exist_ok=True)
            with folder_lock(out):
                code = main([*command, "--out", str(out), *base])
            _expect(code == 1 and os.listdir(out) == [], f"a run into a held folder wrote or passed ({code})")
            return code
        return run

    def held_file(command: list[str], suffix: str) -> Callable[[], object]:
        def run() -> object:
            out = d / f"held{abs(hash(tuple(command)))}{suffix}"
            with file_lock(out):
                code = main([*command, "--out", str(out), *base])
            _expect(code == 1 and not out.exists(), f"a run onto a held file wrote or passed ({code})")
            return code
        return run

    image = str(images / "im0.png")
    cases: list[Case] = [
        ("h33/cli/segment into a held folder", held_folder(["segment", str(images)])),
        ("h33/cli/cosegment into a held folder", held_folder(["cosegment", image, image])),
        ("h33/cli/slides into a held folder", held_folder(["slides", image])),
        ("h33/cli/video onto a held file", held_file(["video", image], ".gif")),
        ("h33/cli/label onto a held file", held_file(["label", str(images)], ".json")),
        ("h33/cli/segment --out of 300 characters", lambda: main(["segment", image, "--out", str(d / ("a" * 300)),
                                                                   *base])),
    ]

    def resume_other_precision() -> object:
        """A run at fp32 killed once its shards hold an image, resumed at int8: refused, nothing mixed."""
        import signal

        from deepcut.labeling.shards import parts_dir

        out, vit = d / "pseudo.json", ["--backbone", "dino_vits8", "--random-weights", "--resolution", "32"]
        many = d / "many"
        many.mkdir(exist_ok=True)
        for i in range(60):
            Image.fromarray(_img(32, 32, i)).save(many / f"im{i:02d}.png")
        proc = subprocess.Popen([sys.executable, "-m", "deepcut", "label", str(many), "--out", str(out),
                                 "--precision", "fp32", *vit], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.stat().st_size for p in parts_dir(out).glob("part-*.jsonl")):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=30)
        if proc.returncode != -signal.SIGKILL:
            return "the run ended before it could be killed"
        shards = {p.name: p.read_bytes() for p in parts_dir(out).iterdir()}
        again = main(["label", str(many), "--out", str(out), "--resume", "--precision", "int8", *vit])
        _expect(again in (1, 2) and not out.exists() and {p.name: p.read_bytes() for p in parts_dir(out).iterdir()}
                == shards, f"a resume at another precision ran or changed the shards ({again})")
        return again
    cases.append(("h33/cli/label --resume at another precision", resume_other_precision))
    for flags in (["--live-fps", "nan"], ["--live-seconds", "-1"], ["--visitor-files", "-1"], ["--time-limit", "nan"],
                  ["--max-temp-files", "-5"], ["--max-resolution", "1"], ["--max-epochs", "inf"]):
        cases.append((f"h33/cli/app.py {' '.join(flags)}",
                      lambda f=flags: _expect(subprocess.run([sys.executable, "app.py", *f], cwd=ROOT,
                                                             capture_output=True, timeout=50).returncode == 2,
                                              "app.py started on a nonsense cap")))
    return cases


# -- a public server --------------------------------------------------------------------------------------------
def _raw_call(server: dict, api: str, replace: dict[str, str], visitor: str) -> str:
    """``/gradio_api/call/<api>`` with JSON written by hand (``replace``: parameter -> JSON text); the event
    stream of the answer (or ``HTTP <status>``)."""
    from live_client import file_data, frame_url, post

    with urllib.request.urlopen(f"{server['url']}gradio_api/info", timeout=10) as r:
        params = json.loads(r.read())["named_endpoints"][f"/{api}"]["parameters"]
    values = [replace[p["parameter_name"]] if p["parameter_name"] in replace else
              json.dumps(file_data(frame_url(0, 64))) if p["parameter_name"] == "image" else
              json.dumps(p.get("parameter_default")) for p in params]
    status, text = post(f"{server['url']}gradio_api/call/{api}", ('{"data": [' + ", ".join(values) + "]}").encode(),
                        {"X-Forwarded-For": visitor})
    if status != 200:
        return f"HTTP {status}"
    with urllib.request.urlopen(f"{server['url']}gradio_api/call/{api}/{json.loads(text)['event_id']}",
                                timeout=60) as r:
        return r.read().decode()


def _named_error(answer: str) -> None:
    """An answer must be a result or an error that says something (not empty, not generic)."""
    if "event: error" not in answer:
        return
    data = answer.split("event: error", 1)[1].split("data:", 1)[-1].strip()
    _expect(data not in ("", "null", '""') and "Something went wrong" not in data, f"an empty error: {data[:80]}")


def web_cases(d: Path) -> list[Case]:
    from fuzz_cases_web import _server
    from live_client import LiveClient, file_data, frame_url, post

    server = _server(d)
    url = server["url"]

    def flood(visitor: str) -> Callable[[], object]:
        def run() -> object:
            live = LiveClient(url, visitor)
            _expect(live.start()[0] == 200, "the stream did not start")
            start, i = time.monotonic(), 1
            while time.monotonic() - start < 4:
                live.send(i)
                i += 1
                time.sleep(1 / 26)
            time.sleep(1)
            answered = live.count("process_streaming")
            _expect(answered <= 1 + 2 + 2 * 5, f"{answered} frames answered in 4 s at a cap of 2 per second")
            return f"{answered} frames answered"
        return run

    def quiet(visitor: str) -> Callable[[], object]:
        def run() -> object:
            live = LiveClient(url, visitor)
            _expect(live.start()[0] == 200, "the stream did not start")
            ended = live.wait_ended(15)
            answered = [t for t, k in live.messages if k == "process_streaming"]
            _expect(ended is not None and bool(answered) and ended - answered[-1] < 5,
                    "a quiet stream held its worker for more than 5 s")
            return ended
        return run

    def second_stream(visitor: str) -> Callable[[], object]:
        def run() -> object:
            older, newer = LiveClient(url, visitor), LiveClient(url, visitor)
            older.start()
            deadline = time.monotonic() + 20  # the older stream is running: its first frame was answered
            while older.count("process_streaming") == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            started = time.monotonic()
            newer.start()
            ended = older.wait_ended(6)

            def seen(live: LiveClient) -> str:
                return ", ".join(f"{kind} {t - started:+.2f} s" for t, kind in live.messages)
            _expect(ended is not None and ended - started < 2.5 and newer.ended_at() is None,
                    f"a visitor's newer stream did not end the older (older: {seen(older)}; newer: {seen(newer)})")
            return f"the older ended {ended - started:.2f} s after the newer joined"
        return run

    def bad_frame(data_url: str, visitor: str) -> Callable[[], object]:
        def run() -> object:
            live = LiveClient(url, visitor)
            body = json.loads(live.body(0))
            body["data"][live.inputs.index(live.camera)] = file_data(data_url)
            status, text = post(url + "gradio_api/queue/join", json.dumps(body).encode(),
                                {"X-Forwarded-For": visitor})
            if status != 200:
                return f"HTTP {status}"
            with urllib.request.urlopen(url + f"gradio_api/queue/data?session_hash={live.session}", timeout=60) as r:
                for line in r:
                    text = line.decode().strip()
                    if '"process_completed"' in text:
                        message = json.loads(text[5:])
                        error = (message.get("output") or {}).get("error")
                        _expect(message.get("success") or bool(error), "a bad live frame got an empty error")
                        return error
            return None
        return run

    def inline_past_cap(visitor: str) -> Callable[[], object]:
        def run() -> object:
            body = json.dumps({"data": [file_data(frame_url(0))]}).encode()
            codes = [post(url + "gradio_api/run/nothing", body, {"X-Forwarded-For": visitor})[0] for _ in range(61)]
            _expect(codes[-1] == 429 and 429 not in codes[:60], f"inline images past the visitor cap: {codes[-3:]}")
            return f"HTTP {codes[-1]}"
        return run

    cases: list[Case] = [
        ("h33/web/live flood 26 fps", flood("192.0.2.1")),
        ("h33/web/live quiet stream", quiet("192.0.2.2")),
        ("h33/web/live two quiet streams of two visitors", quiet("192.0.2.3")),
        ("h33/web/live a second stream", second_stream("192.0.2.4")),
        ("h33/web/inline images past the visitor cap", inline_past_cap("192.0.2.5")),
    ]
    for i, frame in enumerate(["data:image/png;base64,AAAA", "data:image/png;base64,%%%", "data:,",
                               "data:image/png;base64," + "iVBORw0KGgo" * 40, "data:text/plain;base64,aGVsbG8=",
                               "not a url at all"]):
        cases.append((f"h33/web/live frame {frame[:28]}", bad_frame(frame, f"192.0.2.{20 + i}")))
    for i, (name, text) in enumerate([("k", '"x"'), ("k", "null"), ("k", "2.5"), ("k", "NaN"), ("opacity", "NaN"),
                                      ("opacity", "Infinity"), ("seed", "-Infinity"), ("alpha", "NaN"),
                                      ("ep1", '"many"'), ("resolution", "1e308"), ("loss", "42"), ("k", "[3]"),
                                      ("largest", '"yes"'), ("refine", "{}")]):
        cases.append((f"h33/web/segment {name}={text}",
                      lambda n=name, t=text, v=f"192.0.2.{40 + i}": _named_error(_raw_call(server, "segment",
                                                                                          {n: t}, v))))
    return cases


def h33_cases(folder: Path) -> list[Case]:
    """Every case of issue #33's classes (see the module doc)."""
    return library_cases(folder / "library") + cli_cases(folder / "cli") + web_cases(folder / "web")
