"""Fuzz cases of ``benchmarks/fuzz.py`` for two classes of issue #22: **CLI outputs** (``h22-out/``:
colliding names, users' files named like outputs, links, forged or foreign manifests and results,
``--out`` that is an input, ``eval``'s ``--out`` and ``--save-masks``) and **label signals and shards**
(``h22-label/``: the parent killed under ``--workers 2``, ``--workers 64``, an unreachable Ray address
or one where another kind of server listens, a 6 GB sparse file, malformed shard lines and settings,
parts folders that are files, links or someone's folder, ``--out`` that is an input).

Each thunk returns the command's exit status (or raises a :class:`deepcut.DeepCutError`) and checks
what must hold besides: a user's file is byte for byte what it was, output names are unique, no
process outlives its parent. A broken promise raises ``AssertionError``, which the fuzz counts as a
crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import process_group  # noqa: E402  (the test suite's check for processes left behind)

Case = tuple[str, Callable[[], object]]
FAST = ["--backbone", "color", "--resolution", "48", "--epochs", "20", "10", "5"]


def _img(seed: int, h: int = 40, w: int = 48) -> Image.Image:
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    a[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (220, 30, 30)
    return Image.fromarray(a)


def _cli(argv: list) -> int:
    from deepcut.cli import main

    try:
        return main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        return int(e.code) if isinstance(e.code, int) else 2


def _snapshot(paths: list[Path]) -> dict[Path, bytes | str]:
    """What the user's files hold (a link: its target), to prove they were left alone."""
    out: dict[Path, bytes | str] = {}
    for p in paths:
        out[p] = ("link", os.readlink(p)) if p.is_symlink() else ("dir",) if p.is_dir() else p.read_bytes()
    return out


def _guarded(run: Callable[[], int], keep: list[Path]) -> Callable[[], int]:
    """``run()``, then a check that every path of ``keep`` is unchanged."""
    def thunk() -> int:
        before = _snapshot(keep)
        code = run()
        after = _snapshot(keep)
        changed = [str(p) for p in keep if after.get(p) != before[p]]
        assert not changed, f"the user's files changed: {changed}"
        return code
    return thunk


def _unique_outputs(results: Path) -> None:
    data = json.loads(results.read_text())
    every = [p for r in data["files"].values() for p in r["outputs"].values()]
    assert len(every) == len({p.casefold() for p in every}), "two inputs share an output file"


def _collide(d: Path) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    names = ["a.jpg", "a.png", "a_2.png", "A.PNG", "a_2_2.png", "b.tif", "b.png"]
    for i, n in enumerate(names):
        _img(i).save(d / n)
    return [d / n for n in names]


def cli_output_cases(d: Path) -> list[Case]:
    """CLI outputs: names, manifests, links, inputs as outputs."""
    d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def collide(cmd: str, into_inputs: bool):
        def run() -> int:
            src = d / f"collide_{cmd}_{into_inputs}"
            files = _collide(src)
            out = src if into_inputs else src.with_name(src.name + "_out")
            codes = [_cli([cmd, src, "--out", out, *FAST]) for _ in range(2)]
            _unique_outputs(out / "results.json")
            assert len(json.loads((out / "results.json").read_text())["files"]) == len(files)
            return max(codes)
        return run

    for cmd in ("segment", "cosegment"):
        for into in (False, True):
            cases.append((f"h22-out/{cmd} colliding stems{' into inputs' if into else ''}", collide(cmd, into)))

    users = d / "users"
    users.mkdir()
    _img(1).save(users / "photo.png")
    _img(2).save(users / "photo_cutout.png")
    (users / "x_mask.png").write_text("a text file named like a mask")
    (users / "z_overlay.png").mkdir()
    (d / "outside.png").write_bytes(b"outside")
    (users / "y_labels.png").symlink_to(d / "outside.png")
    _img(3).save(users / "y.png")
    _img(4).save(users / "z.png")
    keep = [users / n for n in ("photo.png", "photo_cutout.png", "x_mask.png", "z_overlay.png", "y_labels.png",
                                "y.png", "z.png")] + [d / "outside.png"]
    for flags in (["--cutout"], ["-k", "3"], ["--stages", "2"]):
        cases.append((f"h22-out/segment users' files in --out {' '.join(flags)}",
                      _guarded(lambda f=flags: _cli(["segment", users, "--out", users, *FAST, *f]), keep)))
    cases.append(("h22-out/cosegment users' files in --out",
                  _guarded(lambda: _cli(["cosegment", users, "--out", users, *FAST]), keep)))

    forged = d / "forged"
    forged.mkdir()
    _img(5).save(forged / "p.png")
    _img(6).save(forged / "p_labels.png")
    (d / "escape.png").write_bytes(b"escape")
    manifests = {
        "garbage": b"\xff\xfe not json",
        "deep": b"[" * 100000,
        "list": b"[1, 2]",
        "wrong_sizes": json.dumps({"format": "deepcut-outputs/1", "files": {
            "p_labels.png": {"size": 1, "mtime_ns": 1}, "../escape.png": {"pending": True},
            "p.png": {"size": "x"}, "": {}, "5": 5}}).encode(),
    }
    for name, text in manifests.items():
        def forge(name=name, text=text) -> int:
            (forged / ".deepcut-outputs.json").write_bytes(text)
            return _cli(["segment", forged, "--out", forged, *FAST])
        cases.append((f"h22-out/segment forged manifest {name}",
                      _guarded(forge, [forged / "p.png", forged / "p_labels.png", d / "escape.png"])))
    foreign = d / "foreign"
    (foreign / "dir_manifest" / ".deepcut-outputs.json").mkdir(parents=True)
    (foreign / "results").mkdir()
    (foreign / "results" / "results.json").write_text('{"mine": 1}')
    (foreign / "deep_results").mkdir()
    (foreign / "deep_results" / "results.json").write_text("[" * 100000)
    for sub in ("dir_manifest", "results", "deep_results"):
        cases.append((f"h22-out/segment foreign {sub}", _guarded(
            lambda s=sub: _cli(["segment", users / "photo.png", "--out", foreign / s, *FAST]),
            [foreign / sub / n for n in os.listdir(foreign / sub)])))

    links = d / "links"
    links.mkdir()
    _img(7).save(links / "q.png")
    (d / "link_to_links").symlink_to(links)
    (d / "dangling").symlink_to(d / "nowhere")
    (d / "loop").symlink_to(d / "loop")
    for name, out in (("linked out", d / "link_to_links"), ("dangling out", d / "dangling"),
                      ("loop out", d / "loop"), ("out is an input image", links / "q.png")):
        cases.append((f"h22-out/segment {name}", _guarded(lambda o=out: _cli(["segment", links, "--out", o, *FAST]),
                                                          [links / "q.png"])))
    odd = d / "odd_names"
    odd.mkdir()
    for i, n in enumerate(["x" * 240 + ".png", "é t\nab.png", "results.png", "-k.png", " .png", "a.b.c.png"]):
        _img(10 + i).save(odd / n)
    cases.append(("h22-out/segment odd names twice, same file twice", lambda: max(
        _cli(["segment", odd, odd / "a.b.c.png", os.path.join(odd, ".", "a.b.c.png"), "--out", odd, *FAST])
        for _ in range(2))))

    data = d / "eval_data"  # a single-object dataset of two images, for eval's outputs
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for i in range(2):
        _img(40 + i).save(data / "images" / f"im{i}.png")
        mask = np.zeros((40, 48), np.uint8)
        mask[10:30, 12:36] = 255
        Image.fromarray(mask).save(data / "masks" / f"im{i}.png")
    (d / "eval_file").write_text("the user's")
    (d / "eval_dangling").symlink_to(d / "eval_nowhere")
    (d / "eval_loop").symlink_to(d / "eval_loop")
    keep = sorted((data / "images").iterdir()) + sorted((data / "masks").iterdir()) + [d / "eval_file"]
    for name, extra in (("--save-masks a file", ["--save-masks", d / "eval_file"]),
                        ("--save-masks a dangling link", ["--save-masks", d / "eval_dangling"]),
                        ("--save-masks a loop", ["--save-masks", d / "eval_loop"]),
                        ("--save-masks the masks", ["--save-masks", data / "masks"]),
                        ("--out a user's file", ["--out", d / "eval_file"]),
                        ("--out a dangling link", ["--out", d / "eval_dangling"]),
                        ("fine, twice", ["--save-masks", d / "eval_masks"])):
        argv = ["eval", data, "--task", "single", *FAST, "--quiet", "--out", d / "eval.json", *extra]
        cases.append((f"h22-out/eval {name}", _guarded(lambda a=argv: max(_cli(a) for _ in range(2)), keep)))

    video = d / "video"
    frames = video / "frames"
    frames.mkdir(parents=True)
    for i in range(3):
        _img(20 + i).save(frames / f"frame_{i:05d}.png")
    gif = video / "v.gif"
    _img(30).save(gif, save_all=True, append_images=[_img(31), _img(32)], duration=100)
    (video / "user.mp4").write_bytes(b"the user's film")
    (video / "link.gif").symlink_to(gif)
    labels = video / "labels"
    labels.mkdir()
    (labels / "frame_00000.png").write_bytes(b"the user's map")
    (labels / "summary.json").write_text("{}")
    keep = [gif, video / "user.mp4", labels / "frame_00000.png", labels / "summary.json"] + sorted(frames.iterdir())
    for name, argv in (("out is the input", [gif, "--out", gif]), ("out links to the input", [gif, "--out", video /
                       "link.gif"]), ("out inside the frames", [frames, "--out", frames / "o.gif"]),
                       ("out is the user's", [gif, "--out", video / "user.mp4"]),
                       ("labels-dir is the frames", [frames, "--out", video / "o.gif", "--labels-dir", frames]),
                       ("labels-dir holds the user's maps", [gif, "--out", video / "o.gif", "--labels-dir", labels]),
                       ("fine, twice", [gif, "--out", video / "fine.gif", "--labels-dir", video / "fine"])):
        cases.append((f"h22-out/video {name}", _guarded(lambda a=argv: max(
            _cli(["video", *a, *FAST, "--max-frames", "3"]) for _ in range(2)), keep)))
    return cases


def _listener(reply: bytes | None) -> str:
    """The address of a TCP server (in a thread of this process) that answers every connection's first bytes
    with ``reply`` and then closes it (None: accepts and never answers): not a Ray cluster."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            if reply is not None:
                conn.recv(64)
                conn.sendall(reply)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"127.0.0.1:{server.getsockname()[1]}"


def _kill_parent(src: Path, out: Path, sig: int) -> int:
    """Start ``label --workers 2``, send ``sig`` to the parent once the workers are ready; every
    process of its group must be gone 10 s later."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "deepcut", "label", str(src), "--out", str(out), "--workers", "2",
                             *FAST], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    meta = out.with_name(out.name + ".parts") / "meta.json"
    try:
        deadline = time.monotonic() + 18
        while not meta.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            return proc.returncode if proc.returncode in (0, 1) else 0
        proc.send_signal(sig)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 6
        while process_group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = process_group(proc.pid)
        assert not left, f"{len(left)} processes outlived their parent ({signal.Signals(sig).name})"
        return 0
    finally:
        for pid in process_group(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _shard_lines(out: Path, src: Path, lines: list[str | bytes], meta: str | None = None) -> int:
    """A run's shards with ``lines`` appended (and ``meta`` replacing its settings), then ``--resume``."""
    from deepcut import SegmentConfig
    from deepcut.cli import build_parser
    from deepcut.cli.options import config_from_args
    from deepcut.labeling import LabelSpec, collect_sources
    from deepcut.labeling.shards import ShardStore, parts_dir

    args = build_parser().parse_args(["label", str(src), "--out", str(out), *FAST])
    cfg: SegmentConfig = config_from_args(args)
    root, _ = collect_sources([src])
    store = ShardStore(out)
    store.create(LabelSpec("color", True, None, cfg, 3).meta(root))
    with open(parts_dir(out) / "part-0001.jsonl", "wb") as f:
        f.write(b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines))
    if meta is not None:
        (parts_dir(out) / "meta.json").write_text(meta)
    code = _cli(["label", src, "--out", out, "--resume", *FAST])
    if meta is None:  # everything redone: a whole COCO file
        coco = json.loads(out.read_text())
        inputs = [p for p in src.iterdir() if not p.name.startswith(".")]  # as label reads it: hidden entries
        assert len(coco["images"]) + len(coco["info"]["failures"]) == len(inputs)  # (a run's lock) are not inputs
    return code


def label_cases(d: Path) -> list[Case]:
    """``label``: signals, caps, headers, shards, outputs."""
    src = d / "in"
    src.mkdir(parents=True)
    for i in range(12):
        _img(40 + i, 48 + 8 * (i % 3), 56).save(src / f"im{i:02d}.png")
    small = d / "small"
    small.mkdir()
    _img(60).save(small / "a.png")
    _img(61).save(small / "b.jpg")
    cases: list[Case] = []
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
        cases.append((f"h22-label/--workers 2, parent gets {signal.Signals(sig).name}",
                      lambda s=sig: _kill_parent(src, d / f"killed_{int(s)}.json", s)))
    cases.append(("h22-label/--workers 64 on few cores", lambda: _cli(
        ["label", small / "a.png", "--out", d / "many.json", "--workers", "64", *FAST])))
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1", "nohost.invalid:6379", "127.0.0.1:99999", "[::1]:1"):
        cases.append((f"h22-label/--ray {address}", lambda a=address: _cli(
            ["label", small, "--out", d / "ray.json", "--ray", a, *FAST])))
    for name, reply in (("an HTTP server", b"HTTP/1.0 400 Bad request\r\n\r\n"), ("an SSH banner", b"SSH-2.0-x\r\n"),
                        ("a silent server", None)):
        for scheme in ("", "ray://"):
            cases.append((f"h22-label/--ray {scheme}address of {name}", lambda r=reply, sc=scheme: _cli(
                ["label", small, "--out", d / "ray.json", "--ray", sc + _listener(r), *FAST])))
    sparse = d / "sparse"
    sparse.mkdir()
    with open(sparse / "huge.jpg", "wb") as f:
        f.truncate(6 << 30)
    _img(62).save(sparse / "tail.jpg")
    with open(sparse / "tail.jpg", "r+b") as f:
        f.truncate(6 << 30)
    _img(63).save(sparse / "ok.png")
    cases.append(("h22-label/6 GB sparse files", lambda: _cli(["label", sparse, "--out", d / "sparse.json", *FAST])))
    good = json.dumps({"file_name": "a.png", "width": 48, "height": 40, "objects": []})
    for name, lines in (("empty objects and arrays", ["{}", "[1]", "null", "5", '"x"', "true"]),
                        ("missing keys", ['{"file_name": "a.png"}', '{"file_name": "b.jpg", "width": 3}']),
                        ("bad objects", ['{"file_name": "a.png", "width": 4, "height": 4, "objects": [{"bbox": 1}]}',
                                         '{"file_name": "b.jpg", "width": 4, "height": 4, "objects": [5]}']),
                        ("odd types", ['{"file_name": ["a.png"], "error": 1}', '{"file_name": "b.jpg", "error": 5}',
                                       '{"file_name": "a.png", "width": true, "height": 1, "objects": []}']),
                        ("torn in the middle", [good[:20], good, '{"file_name": "b.jpg", "wid']),
                        ("nested too deep", ["[" * 100000, '{"a": ' * 50000]),
                        ("not utf-8", [b"\xff\xfe{}", b'{"file_name": "a.png\xff", "error": "x"}']),
                        ("unknown images", ['{"file_name": "zz.png", "error": "x"}', good])):
        cases.append((f"h22-label/resume with shard lines: {name}",
                      lambda n=name, li=lines: _shard_lines(d / f"shards_{abs(hash(n))}.json", small, li)))
    for name, meta in (("a list", "[1]"), ("not json", "{"), ("deep", "[" * 100000), ("other settings", '{"seed": 5}'),
                       ("a number", "5")):
        cases.append((f"h22-label/resume with meta.json {name}",
                      lambda n=name, m=meta: _shard_lines(d / f"meta_{abs(hash(n))}.json", small, [], meta=m)))

    def parts_file(n: int, kind: str, flags: list[str]) -> int:
        out = d / f"parts_{n}.json"
        parts = out.with_name(out.name + ".parts")
        if kind == "file":
            parts.write_text("mine")
        elif kind == "link":
            (d / "target").write_text("target")
            parts.symlink_to(d / "target")
        elif kind == "link to someone's folder":
            parts.symlink_to(theirs)
        elif kind == "folder holding someone's file":
            parts.mkdir()
            (parts / "notes.txt").write_text("the user's")
        elif kind == "meta folder":
            (parts / "meta.json").mkdir(parents=True)
        elif kind == "part folder":
            parts.mkdir()
            _shard_lines(out, small, [])  # a real run's settings first
            (parts / "part-0009.jsonl").mkdir(parents=True, exist_ok=True)
        code = _cli(["label", small, "--out", out, *flags, *FAST])
        if kind == "folder holding someone's file":
            assert (parts / "notes.txt").read_text() == "the user's", "the user's file in the parts folder changed"
        return code

    theirs = d / "theirs"  # someone's folder whose files have a run's names
    theirs.mkdir()
    for name in ("meta.json", "backbone.json", "part-0001.jsonl", "draft.tmp", "notes.txt"):
        (theirs / name).write_text("the user's")
    keep = sorted(theirs.iterdir())
    kinds = ("file", "link", "meta folder", "part folder", "link to someone's folder", "folder holding someone's file")
    for n, (kind, flags) in enumerate((k, f) for k in kinds for f in ([], ["--resume"], ["--restart"])):
        cases.append((f"h22-label/parts is a {kind} {' '.join(flags)}".rstrip(), _guarded(
            lambda n=n, k=kind, f=flags: parts_file(n, k, f), keep)))
    (d / "mine.json").write_text('{"mine": true}')
    (d / "list.txt").write_text("small/a.png\n")
    keep = [small / "a.png", small / "b.jpg", d / "mine.json", d / "list.txt"]
    for name, argv in (("an input image", [small, "--out", small / "b.jpg"]),
                       ("the only input", [small / "a.png", "--out", small / "a.png"]),
                       ("the list file", [d / "list.txt", "--out", d / "list.txt"]),
                       ("someone else's file", [small, "--out", d / "mine.json"]),
                       ("a folder", [small, "--out", small]),
                       ("inside the input, twice", [small, "--out", small / "own.png"])):
        cases.append((f"h22-label/--out is {name}", _guarded(lambda a=argv: max(
            _cli(["label", *a, *FAST]) for _ in range(2)), keep)))
    return cases
