"""``python -m deepcut label``: COCO output, inputs, bad files, workers, crash safety and resume, Ray."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from conftest import REPO, disc_frame, disc_image, process_group
from PIL import Image

from deepcut import SegmentConfig
from deepcut.cli import main
from deepcut.errors import DeepCutError
from deepcut.labeling import InProcessRunner, LabelSpec, check_output, collect_sources, decode_mask, label_dataset
from deepcut.labeling.shards import ShardStore, parts_dir

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools, numpy 2

FLAGS = ["--backbone", "color", "--resolution", "64"]
CONFIG = SegmentConfig(resolution=64)
NAMES = ["a.png", "b.jpg", "broken.jpg", "e.png", "f.png", "sub/c.png", "sub/deeper/d.png"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepcut", "label", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Six small images in nested folders, a broken one, and files a folder scan must skip."""
    root = tmp_path_factory.mktemp("label") / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    images = {"a.png": disc_image(64), "b.jpg": disc_image(72, two_tone=True), "e.png": disc_image(80, striped_bg=True),
              "f.png": disc_frame(72, 96, 36, 50, 20, two_tone=False), "sub/c.png": disc_frame(96, 64, 40, 30, 18),
              "sub/deeper/d.png": disc_image(64, blob=True), ".hidden.png": disc_image(32)}
    for name, img in images.items():
        Image.fromarray(img).save(root / name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("a.png\n")
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict[str, bytes]:
    """Uninterrupted runs' files, by number of workers (computed when first asked for); ``runs`` holds
    each run's output path and completed process."""
    runs: dict[str, tuple[Path, subprocess.CompletedProcess]] = {}

    class Files(dict):
        def __missing__(self, workers: str) -> bytes:
            out = tmp_path_factory.mktemp("ref") / "not" / "yet" / "pseudo.json"  # missing folders are created
            r = run_cli(str(data), "--out", str(out), "--workers", workers, *FLAGS)
            assert r.returncode == 1, r.stderr  # the broken file
            runs[workers] = (out, r)
            self[workers] = out.read_bytes()
            return self[workers]

    files = Files()
    files.runs = runs
    return files


def test_coco_file_matches_the_library(data, reference, color_model):
    reference["1"]
    out, r = reference.runs["1"]
    assert "Traceback" not in r.stderr and not parts_dir(out).exists()
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    from pycocotools.coco import COCO

    coco = COCO(str(out))
    assert [coco.imgs[i]["file_name"] for i in sorted(coco.imgs)] == [n for n in NAMES if n != "broken.jpg"]
    assert coco.dataset["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    info = coco.dataset["info"]
    assert info["failures"][0]["file"] == "broken.jpg" and len(info["failures"]) == 1
    assert info["backbone"]["name"] == "color" and info["objects"] == 3 and info["configuration"]["resolution"] == 64
    assert info["image_root"] == str(data) and "version" in info
    for img_id, img in coco.imgs.items():
        found = color_model.discover(data / img["file_name"], CONFIG, objects=3)
        assert (img["height"], img["width"]) == found.image.shape[:2]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        assert len(anns) == len(found.objects) >= 1
        for ann, obj in zip(anns, found.objects, strict=False):
            mask = coco.annToMask(ann).astype(bool)
            assert mask.shape == (img["height"], img["width"]) and np.array_equal(mask, obj.mask)
            x0, y0, x1, y1 = obj.bbox
            assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0] and ann["area"] == int(mask.sum())
            assert ann["category_id"] == 1 and ann["iscrowd"] == 0 and abs(ann["score"] - obj.score) < 1e-6
    assert sorted(a["id"] for a in coco.dataset["annotations"]) == list(range(1, len(coco.anns) + 1))


def test_list_files_folders_and_limit(data, tmp_path):
    listing = data / "sub" / "list.txt"
    listing.write_text("# my images\nc.png\n\n../a.png\ndeeper\nc.png\n")
    root, sources = collect_sources([listing])
    assert root == data and [s.file_name for s in sources] == ["sub/c.png", "a.png", "sub/deeper/d.png"]
    root, sources = collect_sources([data / "sub"], limit=1)
    assert root == data / "sub" and [s.file_name for s in sources] == ["c.png"]
    out = data / "sub" / "out.json"  # inside the input folder: its own files are never read back
    parts_dir(out).mkdir()
    Image.fromarray(disc_image(32)).save(parts_dir(out) / "stray.png")
    root, sources = collect_sources([data], exclude=[out, parts_dir(out)])
    assert [s.file_name for s in sources] == NAMES
    parts_dir(out).joinpath("stray.png").unlink()
    parts_dir(out).rmdir()
    listing.unlink()
    with pytest.raises(DeepCutError, match="no input images"):
        collect_sources([data / "sub" / "deeper"], exclude=[data / "sub"])


def test_objects_auto_and_batched_runner(data, tmp_path, color_model):
    out = tmp_path / "auto.json"
    listing = data / "some.txt"  # a list file: paths relative to it, folders searched
    listing.write_text("a.png\nsub\n")
    code = main(["label", str(listing), "--out", str(out), "--objects", "auto", *FLAGS])
    listing.unlink()
    coco = json.loads(out.read_text())
    assert code == 0 and coco["info"]["objects"] == "auto" and not coco["info"]["failures"]
    assert [i["file_name"] for i in coco["images"]] == ["a.png", "sub/c.png", "sub/deeper/d.png"]
    found = color_model.discover(data / "a.png", CONFIG, objects=None)
    anns = [a for a in coco["annotations"] if a["image_id"] == 1]
    assert [decode_mask(a["segmentation"]).sum() for a in anns] == [int(o.mask.sum()) for o in found.objects]
    # The GPU path (ViT batched over images, FeatureStore.get_many) gives the same records on the CPU.
    root, sources = collect_sources([data])
    one = LabelSpec("color", True, "cpu", CONFIG, 2)
    with InProcessRunner(one) as runner:
        runner.start()
        single = list(runner.map(sources))
    with InProcessRunner(LabelSpec("color", True, "cpu", CONFIG, 2, batch_size=3)) as runner:
        runner.start()
        batched = list(runner.map(sources))
    assert [r["file_name"] for r in batched] == NAMES and "error" in batched[NAMES.index("broken.jpg")]
    for a, b in zip(single, batched, strict=False):
        assert a.get("error") == b.get("error")
        for oa, ob in zip(a.get("objects", []), b.get("objects", []), strict=False):
            ia, ib = decode_mask(oa["segmentation"]), decode_mask(ob["segmentation"])
            assert (ia & ib).sum() / max((ia | ib).sum(), 1) >= 0.99


def _iou(a: dict, b: dict) -> float:
    ma, mb = decode_mask(a["segmentation"]), decode_mask(b["segmentation"])
    return float((ma & mb).sum() / max((ma | mb).sum(), 1))


@pytest.mark.slow
def test_two_workers_give_the_same_annotations(reference):
    one, two = json.loads(reference["1"]), json.loads(reference["2"])
    assert one["images"] == two["images"] and one["info"]["failures"] == two["info"]["failures"]
    assert [a["image_id"] for a in one["annotations"]] == [a["image_id"] for a in two["annotations"]]
    assert all(_iou(a, b) >= 0.99 for a, b in zip(one["annotations"], two["annotations"], strict=False))


def _lines(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in parts_dir(out).glob("part-*.jsonl"))


def _stop_when(proc: subprocess.Popen, out: Path, lines: int, sig: int) -> None:
    """Send ``sig`` to ``proc`` once the shards hold ``lines`` lines (0: once the shard folder exists)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (parts_dir(out) / "meta.json").exists() and _lines(out) >= lines:
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    proc.wait(timeout=120)


def _start(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deepcut", "label", str(data), "--out", str(out), *FLAGS, *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_killed_runs_resume_to_the_same_file(data, reference, tmp_path):
    out = tmp_path / "pseudo.json"
    for lines, resume in ((0, []), (1, ["--resume"]), (4, ["--resume"])):  # before any image, after one, mid-way
        proc = _start(data, out, *resume)
        _stop_when(proc, out, lines, signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL and not out.exists()
    done = sum(1 for line in b"".join(p.read_bytes() for p in parts_dir(out).glob("*.jsonl")).split(b"\n")
               if line.strip() and b'"error"' not in line)
    r = run_cli(str(data), "--out", str(out), "--resume", *FLAGS)
    assert r.returncode == 1, r.stderr
    assert f"resuming: {done} of 7 images already done" in r.stderr
    assert out.read_bytes() == reference["1"] and not parts_dir(out).exists()


@pytest.mark.slow
def test_ctrl_c_keeps_the_work_of_two_workers(data, reference, tmp_path):
    out = tmp_path / "pseudo.json"
    proc = _start(data, out, "--workers", "2")
    _stop_when(proc, out, 2, signal.SIGINT)
    stderr = proc.stderr.read()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "--resume" in stderr and _lines(out) >= 2 and not out.exists()
    r = run_cli(str(data), "--out", str(out), "--resume", "--workers", "2", *FLAGS)
    assert r.returncode == 1 and "resuming:" in r.stderr, r.stderr
    assert out.read_bytes() == reference["2"]


def exit_code(argv: list[str]) -> int:
    """``python -m deepcut`` in this process: its exit code."""
    try:
        return main(argv)
    except SystemExit as e:  # argparse
        return int(e.code)


def test_unfinished_runs_are_never_overwritten(data, tmp_path, capsys):
    out = tmp_path / "pseudo.json"
    root, sources = collect_sources([data])
    ShardStore(out).create(LabelSpec("color", True, None, CONFIG, 3).meta(root))
    assert exit_code(["label", str(data), "--out", str(out), "--resume", "--seed", "1", *FLAGS]) == 1
    err = capsys.readouterr().err
    assert "cannot --resume" in err and '"seed": 0' in err and '"seed": 1' in err, err
    assert exit_code(["label", str(data), "--out", str(out), "--objects", "2", *FLAGS]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "--restart" in err
    assert (parts_dir(out) / "meta.json").exists() and not out.exists()


def records_of(coco: dict, names: list[str]) -> list[dict]:
    """The shard records a COCO file was assembled from (the inverse of ``build_coco``), in ``names`` order."""
    failures = {f["file"]: f["error"] for f in coco["info"]["failures"]}
    images = {img["file_name"]: img for img in coco["images"]}
    out = []
    for name in names:
        if name in failures:
            out.append({"file_name": name, "error": failures[name]})
            continue
        img = images[name]
        objects = [{k: a[k] for k in ("segmentation", "bbox", "area", "score")}
                   for a in coco["annotations"] if a["image_id"] == img["id"]]
        out.append({"file_name": name, "width": img["width"], "height": img["height"], "objects": objects,
                    **({"stamp": img["stamp"]} if "stamp" in img else {})})
    return out


def test_resume_labels_only_what_has_no_result(data, reference, tmp_path):
    """Killed near the end, a torn line at the end of the shard: --resume labels only what is missing
    (failures are retried) and assembles the same bytes."""
    out = tmp_path / "pseudo.json"
    root, sources = collect_sources([data])
    spec = LabelSpec("color", True, None, CONFIG, 3)
    coco = json.loads(reference["1"])
    store = ShardStore(out)
    store.create(spec.meta(root))
    store.save_backbone(coco["info"]["backbone"])
    with store.writer() as w:
        for rec in records_of(coco, NAMES):
            if rec["file_name"] != "sub/c.png":
                w.write(rec)
    with open(next(parts_dir(out).glob("part-*.jsonl")), "a") as f:
        f.write('{"file_name": "sub/c.png", "wid')  # a line torn by the kill

    class Recording(InProcessRunner):
        asked: list[str] = []

        def map(self, todo):
            self.asked.extend(s.file_name for s in todo)
            yield from super().map(todo)

    report = label_dataset(sources, root, out, spec, Recording(spec), resume=True)
    assert Recording.asked == ["broken.jpg", "sub/c.png"]
    assert report.resumed == 5 and report.labelled == 2 and len(report.failures) == 1
    assert out.read_bytes() == reference["1"] and not parts_dir(out).exists()


def test_usage_errors_before_any_work(data, tmp_path, capsys):
    for args in (["--out", str(tmp_path)], ["--out", str(tmp_path / "x.json"), "--objects", "many"],
                 ["--out", str(tmp_path / "x.json"), "--workers", "0"], ["--out", str(tmp_path / "x.json"), "-k", "1"],
                 ["--out", str(tmp_path / "x.json"), "--resume", "--restart"],
                 ["--out", str(tmp_path / "x.json"), "--stages", "3"],  # k and stages: unused, were accepted
                 ["--out", str(tmp_path / "x.json"), "--cpus-per-worker", "4"],  # Ray's, without --ray
                 ["--out", str(tmp_path / "x.json"), "--precision", "bf16"],  # the colour backbone of FLAGS
                 ["--out", str(tmp_path / "x.json"), "--random-weights"]):
        assert exit_code(["label", str(data), *args, *FLAGS]) == 2, args
        assert "Traceback" not in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(DeepCutError, match="not a folder"):
        check_output(tmp_path / "file" / "x.json")


def test_missing_ray_says_how_to_install(monkeypatch):
    from deepcut.labeling.ray_runner import RayRunner

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(DeepCutError, match=r"pip install 'deepcut-gnn\[ray\]'"):
        RayRunner(LabelSpec("color", True, None, CONFIG, 3)).start()


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster of 2 CPUs; yields its address."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.mark.ray
def test_ray_cluster_gives_the_local_file(data, reference, ray_cluster, tmp_path):
    out = tmp_path / "pseudo.json"
    r = run_cli(str(data), "--out", str(out), "--ray", ray_cluster, *FLAGS)
    assert r.returncode == 1 and "broken.jpg" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert out.read_bytes() == reference["1"]


# -- signals, caps, headers and shards (#22) ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_workers_and_the_resource_tracker_end_when_the_parent_is_killed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(24):
        Image.fromarray(disc_image(64 + 8 * (i % 4), two_tone=bool(i % 2))).save(src / f"im{i:02d}.png")
    out = tmp_path / "pseudo.json"
    proc = subprocess.Popen([sys.executable, "-m", "deepcut", "label", str(src), "--out", str(out), "--workers", "2",
                             *FLAGS], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: the workers and the tracker join it
    try:
        deadline = time.monotonic() + 240
        while not (parts_dir(out) / "meta.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the shard folder is made once every worker has built its model
        assert proc.poll() is None, "the run ended before it could be killed"
        children = [p for p in process_group(proc.pid) if p != proc.pid]
        assert len(children) >= 3, children  # two workers and multiprocessing's resource tracker
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while process_group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process_group(proc.pid) == []
    finally:
        for pid in process_group(proc.pid):  # the test's own children only
            os.kill(pid, signal.SIGKILL)


def test_workers_are_capped_by_cores_and_by_memory():
    from deepcut.labeling.local import cap_workers, worker_bytes

    spec = LabelSpec("color", True, None, CONFIG, 3)
    assert cap_workers(2, spec, cores=4, available=64 << 30) == (2, None)
    workers, note = cap_workers(64, spec, cores=2, available=64 << 30)
    assert workers == 2 and "--workers 64 capped to 2" in note and "2 cores" in note and "memory" not in note
    each = worker_bytes(spec)
    workers, note = cap_workers(8, spec, cores=16, available=3 * each + each // 2)
    assert workers == 3 and "capped to 3" in note and "memory" in note and "cores" not in note
    assert cap_workers(8, spec, cores=16, available=1)[0] == 1
    assert worker_bytes(LabelSpec("dino_vitb8", True, None, SegmentConfig(), 3)) > each  # weights, bigger grid


@pytest.mark.slow
def test_many_workers_on_few_cores_start_no_more_than_the_cap(data, tmp_path, capsys):
    from deepcut.utils.threads import available_cores

    out = tmp_path / "pseudo.json"
    assert exit_code(["label", str(data / "a.png"), "--out", str(out), "--workers", "64", *FLAGS]) == 0
    err = capsys.readouterr().err
    assert f"--workers 64 capped to {available_cores()}" in err and "core" in err, err
    assert len(json.loads(out.read_text())["images"]) == 1


def test_an_address_where_no_ray_cluster_listens_fails_at_once():
    from deepcut.labeling.ray_runner import check_reachable, host_port

    assert host_port("auto") is None and host_port(None) is None and host_port("ray://h:10001") == ("h", 10001)
    t0 = time.monotonic()
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1", "localhost:1"):
        with pytest.raises(DeepCutError, match=address.replace(".", r"\.")):
            check_reachable(address, timeout=5)
    assert time.monotonic() - t0 < 15


def _fake_server(reply: bytes | None, close: bool = False) -> tuple[str, Callable[[], None]]:
    """A TCP server on 127.0.0.1 answering each connection's first bytes with ``reply`` (None: nothing, ever);
    its address and a function that stops it."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held: list = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                conn.recv(64)
                conn.sendall(reply)
            if close:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()

    def stop() -> None:
        server.close()
        for conn in held:
            conn.close()
    return f"127.0.0.1:{server.getsockname()[1]}", stop


@pytest.mark.parametrize("reply, close, message", [
    (b"HTTP/1.0 400 Bad request\r\n\r\n", True, "not a Ray cluster (it answered 'HTTP/1.0'"),
    (b"SSH-2.0-OpenSSH_9.6\r\n", False, "not a Ray cluster (it answered 'SSH-2.0"),
    (b"", True, "it closed the connection"),
    (None, False, "gave no answer within 2 s"),
])
def test_an_address_where_another_kind_of_server_listens_fails_at_once(reply, close, message):
    """Ray waited without end at such an address (an HTTP server: still waiting after 150 s)."""
    from deepcut.labeling.ray_runner import check_reachable

    address, stop = _fake_server(reply, close)
    try:
        t0 = time.monotonic()
        with pytest.raises(DeepCutError, match=re.escape(address) + ".*" + re.escape(message)):
            check_reachable(address, timeout=2)
        with pytest.raises(DeepCutError, match=re.escape(message)):
            check_reachable("ray://" + address, timeout=2)
        assert time.monotonic() - t0 < 10
    finally:
        stop()


def test_an_address_that_answers_as_grpc_does_passes_the_check():
    from deepcut.labeling.ray_runner import check_reachable

    address, stop = _fake_server(b"\x00\x00\x18\x04\x00\x00\x00\x00\x00" + b"\x00" * 24)  # a SETTINGS frame, as Ray's
    try:
        check_reachable(address, timeout=5)
    finally:
        stop()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_address_where_nothing_listens_is_an_error_within_30_s(data, tmp_path):
    pytest.importorskip("ray")
    t0 = time.monotonic()
    r = run_cli(str(data / "a.png"), "--out", str(tmp_path / "x.json"), "--ray", "127.0.0.1:1", *FLAGS, timeout=60)
    assert time.monotonic() - t0 < 30
    assert r.returncode == 1 and "127.0.0.1:1" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_huge_file_is_refused_by_its_header_without_being_read(color_model, tmp_path):
    import resource

    from deepcut.labeling.worker import label_data, read_image_bytes

    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(6 << 30)  # sparse: takes no disk, reads as 6 GB of zeros
    tail = tmp_path / "tail.jpg"  # a real JPEG header, then 6 GB
    Image.fromarray(disc_image(64)).save(tail)
    with open(tail, "r+b") as f:
        f.truncate(6 << 30)
    spec = LabelSpec("color", True, None, CONFIG, 3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    record = label_data(color_model, spec, "huge.jpg", huge)
    assert record == {"file_name": "huge.jpg", "error": "huge.jpg: not an image file (or a format Pillow cannot read)"}
    assert "objects" in label_data(color_model, spec, "tail.jpg", tail)  # decoded from the file: the head only
    with pytest.raises(DeepCutError, match="not an image"):
        read_image_bytes(huge)  # what the Ray driver sends
    with pytest.raises(DeepCutError, match="over the limit"):
        read_image_bytes(tail)
    assert time.monotonic() - t0 < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < (1 << 20)  # KB: under 1 GB more


def test_shard_lines_that_are_not_whole_records_are_reported_and_redone(data, reference, tmp_path, capsys):
    out = tmp_path / "pseudo.json"
    root, sources = collect_sources([data])
    spec = LabelSpec("color", True, None, CONFIG, 3)
    coco = json.loads(reference["1"])
    store = ShardStore(out)
    store.create(spec.meta(root))
    store.save_backbone(coco["info"]["backbone"])
    records = {r["file_name"]: r for r in records_of(coco, NAMES)}
    bad_objects = {**records["e.png"], "objects": [{"bbox": [1, 2]}]}
    with store.writer() as w:
        w.write(records["a.png"])
    part = next(parts_dir(out).glob("part-*.jsonl"))
    with open(part, "a") as f:
        for line in ("{}", "[1]", "5", '"x"', "null", json.dumps({"file_name": "b.jpg"}), json.dumps(bad_objects),
                     json.dumps({"file_name": ["f.png"], "error": "x"}), '{"file_name": "sub/c.png", "wid',
                     json.dumps(records["f.png"]), '{"file_name": "sub/deeper/d.png", "objects": [{"segm'):
            f.write(line + "\n")
    (parts_dir(out) / "part-0002.jsonl").mkdir()  # a part that cannot be read
    assert exit_code(["label", str(data), "--out", str(out), "--resume", *FLAGS]) == 1  # broken.jpg
    err = capsys.readouterr().err
    assert "Traceback" not in err and "resuming: 2 of 7 images already done" in err, err
    assert err.count("labelled again") == 11, err
    assert out.read_bytes() == reference["1"]


def test_bad_shard_settings_and_a_parts_file_are_clear_errors(data, tmp_path, capsys):
    out = tmp_path / "pseudo.json"
    parts_dir(out).write_text("mine")
    assert exit_code(["label", str(data), "--out", str(out), *FLAGS]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err and parts_dir(out).read_text() == "mine"
    parts_dir(out).unlink()
    parts_dir(out).mkdir()
    for meta in ("[1]", "{not json", '"x"'):
        (parts_dir(out) / "meta.json").write_text(meta)
        assert exit_code(["label", str(data), "--out", str(out), "--resume", *FLAGS]) == 1
        err = capsys.readouterr().err
        assert "meta.json" in err and "Traceback" not in err, err


DEEP = ("[" * 100_000, '{"a": ' * 50_000)  # JSON nested too deep for Python's parser (RecursionError)


def test_shard_json_nested_too_deep_is_reported_not_a_traceback(tmp_path):
    out = tmp_path / "pseudo.json"
    store = ShardStore(out)
    store.create({"seed": 1})
    good = {"file_name": "a.png", "width": 4, "height": 4, "objects": []}
    (parts_dir(out) / "part-0001.jsonl").write_text("\n".join([*DEEP, json.dumps(good)]) + "\n")
    assert store.records() == {"a.png": good}
    assert len(store.problems) == 2 and all("is not JSON; its image is labelled again" in p for p in store.problems)
    for text in DEEP:
        (parts_dir(out) / "backbone.json").write_text(text)
        assert store.backbone() is None
        (parts_dir(out) / "meta.json").write_text(text)
        with pytest.raises(DeepCutError, match="meta.json: cannot read the earlier run's settings"):
            store.read_meta()


def test_a_deep_meta_json_on_resume_is_a_clear_error(data, tmp_path, capsys):
    out = tmp_path / "pseudo.json"
    parts_dir(out).mkdir()
    for text in DEEP:
        (parts_dir(out) / "meta.json").write_text(text)
        assert exit_code(["label", str(data / "a.png"), "--out", str(out), "--resume", *FLAGS]) == 1
        err = capsys.readouterr().err
        assert "meta.json" in err and "Traceback" not in err, err
        assert (parts_dir(out) / "meta.json").read_text() == text


def test_a_shard_folder_holding_someone_elses_files_is_left_alone(data, tmp_path, capsys, monkeypatch):
    from deepcut.labeling import run as run_module

    theirs = tmp_path / "theirs"  # a folder of someone else's files that happen to have a run's names
    theirs.mkdir()
    for name in ("notes.txt", "backbone.json", "part-0001.jsonl", "draft.tmp"):
        (theirs / name).write_text("the user's")
    before = {p.name: p.read_text() for p in theirs.iterdir()}
    out = tmp_path / "pseudo.json"
    parts_dir(out).symlink_to(theirs)  # a link to it where the shards belong: never followed
    monkeypatch.setattr(run_module, "_run", lambda *a, **k: pytest.fail("work started"))
    assert exit_code(["label", str(data / "a.png"), "--out", str(out), *FLAGS]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(DeepCutError, match="is a link"):
        ShardStore(out).create({"seed": 1})
    assert {p.name: p.read_text() for p in theirs.iterdir()} == before
    parts_dir(out).unlink()
    parts_dir(out).mkdir()  # the folder itself, holding a file that is not a run's
    (parts_dir(out) / "notes.txt").write_text("the user's")
    for resume in ([], ["--resume"], ["--restart"]):  # refused before any work, the file left
        assert exit_code(["label", str(data / "a.png"), "--out", str(out), *FLAGS, *resume]) == 1
        err = capsys.readouterr().err
        assert "notes.txt" in err and "not a run's shards" in err and "Traceback" not in err, err
    with pytest.raises(DeepCutError, match="notes.txt"):
        ShardStore(out).create({"seed": 1})
    assert [p.name for p in parts_dir(out).iterdir()] == ["notes.txt"]
    (parts_dir(out) / "notes.txt").unlink()
    (parts_dir(out) / "meta.json").mkdir()  # a folder where a shard file belongs
    with pytest.raises(DeepCutError, match="meta.json"):
        ShardStore(out).create({"seed": 1})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_folder_is_a_clear_error(data, tmp_path, capsys):
    locked = tmp_path / "locked"
    (locked / "sub").mkdir(parents=True)
    Image.fromarray(disc_image(32)).save(locked / "sub" / "a.png")
    (locked / "sub").chmod(0)
    try:
        for inputs in ([locked], [locked / "sub"], [locked / "sub" / "a.png"]):
            code = exit_code(["label", *map(str, inputs), "--out", str(tmp_path / "x.json"), *FLAGS])
            err = capsys.readouterr().err
            assert code in (1, 2) and "Traceback" not in err and "sub" in err, err
        assert exit_code(["segment", str(locked / "sub"), "--out", str(tmp_path / "o"), *FLAGS]) == 1
        assert "Permission denied" in capsys.readouterr().err
    finally:
        (locked / "sub").chmod(0o755)


def test_out_that_is_an_input_or_someone_elses_file_is_refused_before_any_work(data, tmp_path, capsys):
    import shutil

    src = tmp_path / "in"
    shutil.copytree(data, src)
    listing = tmp_path / "list.txt"
    listing.write_text(str(src / "a.png") + "\n")
    (tmp_path / "mine.json").write_text('{"mine": true}')
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for inputs, out in (([src], src / "b.jpg"), ([src / "a.png"], src / "a.png"), ([listing], listing),
                        ([src], tmp_path / "mine.json"), ([src], src / "sub" / "c.png")):
        assert exit_code(["label", *map(str, inputs), "--out", str(out), *FLAGS]) == 2, out
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("one of the inputs" in err or "did not write" in err), err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    out = src / "labels.png"  # a COCO file named like an image, inside the input folder
    for _ in range(2):  # the second run replaces its own file and does not read it as an image
        assert exit_code(["label", str(src), "--out", str(out), *FLAGS]) == 1  # broken.jpg
        coco = json.loads(out.read_text())
        assert "labels.png" not in [i["file_name"] for i in coco["images"]] + [f["file"] for f in
                                                                             coco["info"]["failures"]]


def test_resume_with_another_precision_is_refused_naming_it(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "pseudo.json"
    root, _ = collect_sources([data / "a.png"])
    store = ShardStore(out)
    store.create(LabelSpec("color", True, None, CONFIG, 3, precision="bf16").meta(root))  # killed after this
    for how in (["--precision", "fp32"], ["--precision", "auto"]):  # (the colour backbone takes no other flag)
        assert exit_code(["label", str(data / "a.png"), "--out", str(out), "--resume", *FLAGS, *how]) == 1
        err = capsys.readouterr().err
        assert 'cannot --resume' in err and 'precision: was "bf16", now "' in err and "Traceback" not in err, err
    store.create(LabelSpec("color", True, None, CONFIG, 3, precision="fp32").meta(root))
    monkeypatch.setenv("DEEPCUT_PRECISION", "int8")
    assert exit_code(["label", str(data / "a.png"), "--out", str(out), "--resume", *FLAGS]) == 1
    assert 'precision: was "fp32", now "int8"' in capsys.readouterr().err
    monkeypatch.setenv("DEEPCUT_PRECISION", "float32")  # the same precision, spelt otherwise: resumed
    assert exit_code(["label", str(data / "a.png"), "--out", str(out), "--resume", *FLAGS]) == 0, \
        capsys.readouterr().err
    assert out.is_file() and not parts_dir(out).exists()


def test_resume_with_another_effective_backbone_setup_is_refused(data, tmp_path, color_model):
    out = tmp_path / "pseudo.json"
    root, sources = collect_sources([data / "a.png", data / "b.jpg"])
    spec = LabelSpec("color", True, None, SegmentConfig(), 3)  # resolution: the backbone's default
    store = ShardStore(out)
    store.create(spec.meta(root))
    described = color_model.backbone.describe()
    store.save_backbone({**described, "default_resolution": 448, "precision": "bf16"})  # e.g. "auto" elsewhere
    with store.writer() as w:
        w.write({"file_name": "a.png", "error": "x"})
    with pytest.raises(DeepCutError, match=r"default_resolution: was 448, now 280.*precision: was \"bf16\""):
        label_dataset(sources, root, out, spec, InProcessRunner(spec), resume=True)
    assert parts_dir(out).is_dir() and not out.exists()


def test_resume_relabels_an_image_whose_file_changed(data, tmp_path):
    from deepcut.labeling.run import file_stamp

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        (folder / name).write_bytes((data / name).read_bytes())
    out = tmp_path / "pseudo.json"
    root, sources = collect_sources([folder])
    spec = LabelSpec("color", True, None, CONFIG, 3)
    first = label_dataset(sources, root, tmp_path / "first.json", spec, InProcessRunner(spec))
    assert first.labelled == 2
    coco = json.loads((tmp_path / "first.json").read_text())
    store = ShardStore(out)  # a run killed after both records
    store.create(spec.meta(root))
    store.save_backbone(coco["info"]["backbone"])
    with store.writer() as w:
        for rec in records_of(coco, ["a.png", "b.jpg"]):
            w.write({**rec, "stamp": file_stamp(folder / rec["file_name"])})
    Image.fromarray(disc_image(96, two_tone=True)).save(folder / "a.png")  # replaced before the resume

    class Recording(InProcessRunner):
        asked: list[str] = []

        def map(self, todo):
            self.asked.extend(s.file_name for s in todo)
            yield from super().map(todo)

    notes: list[str] = []
    report = label_dataset(sources, root, out, spec, Recording(spec), resume=True, on_note=notes.append)
    assert Recording.asked == ["a.png"] and report.resumed == 1 and report.labelled == 1
    assert notes == ["a.png changed since it was labelled; it is labelled again"]
    images = {im["file_name"]: im for im in json.loads(out.read_text())["images"]}
    assert images["a.png"]["width"] == 96 and images["b.jpg"]["width"] == 72


def test_resume_of_a_finished_file_labels_only_new_and_changed_images(data, tmp_path):
    """``--resume`` after a finished run labelled every image again (and with other settings silently replaced
    the file): it found no shards. A finished file now records what a resume must match; a resume labels only
    the images it lacks, and refuses other settings or a file that does not say its own."""
    import time

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        (folder / name).write_bytes((data / name).read_bytes())
    out = tmp_path / "pseudo.json"
    spec = LabelSpec("color", True, None, CONFIG, 3)

    class Recording(InProcessRunner):
        asked: list[str] = []

        def map(self, todo):
            self.asked.extend(s.file_name for s in todo)
            yield from super().map(todo)

    def resume(spec=spec, notes=None) -> list[str]:
        Recording.asked = []
        root, sources = collect_sources([folder])
        report = label_dataset(sources, root, out, spec, Recording(spec), resume=True,
                               on_note=(notes if notes is not None else []).append)
        assert report.resumed + report.labelled == len(sources) and not parts_dir(out).exists()
        return Recording.asked

    root, sources = collect_sources([folder])
    label_dataset(sources, root, out, spec, InProcessRunner(spec))
    first = out.read_bytes()
    assert resume() == [] and out.read_bytes() == first  # nothing new: the same file
    (folder / "e.png").write_bytes((data / "e.png").read_bytes())
    assert resume() == ["e.png"]
    time.sleep(0.01)
    Image.fromarray(disc_image(96, two_tone=True)).save(folder / "a.png")
    notes: list[str] = []
    assert resume(notes=notes) == ["a.png"] and notes == ["a.png changed since it was labelled; it is labelled again"]
    images = {im["file_name"]: im for im in json.loads(out.read_text())["images"]}
    assert sorted(images) == ["a.png", "b.jpg", "e.png"] and images["a.png"]["width"] == 96
    kept = out.read_bytes()

    class Failing(InProcessRunner):
        def start(self):
            raise DeepCutError("the model cannot be built")

    (folder / "f.png").write_bytes((data / "f.png").read_bytes())  # work to do, then the model fails
    root, sources = collect_sources([folder])
    with pytest.raises(DeepCutError, match="cannot be built"):
        label_dataset(sources, root, out, spec, Failing(spec), resume=True)
    assert out.read_bytes() == kept and not parts_dir(out).exists()  # no shards of a run nobody started
    coco = json.loads(kept)
    coco["info"]["backbone"]["engine"] = "another+engine"  # as if measured on another machine
    out.write_text(json.dumps(coco))
    with pytest.raises(DeepCutError, match=f"{out} was computed with another backbone setup"):  # not ".parts"
        label_dataset(sources, root, out, spec, InProcessRunner(spec), resume=True)
    assert not parts_dir(out).exists()
    out.write_bytes(kept)
    (folder / "f.png").unlink()
    with pytest.raises(DeepCutError, match=r"made with other settings \(objects: was 3, now 2\)"):
        resume(LabelSpec("color", True, None, CONFIG, 2))
    assert out.read_bytes() == kept and not parts_dir(out).exists()
    coco = json.loads(kept)
    del coco["info"]["resume"]  # a file of an earlier version
    out.write_text(json.dumps(coco))
    with pytest.raises(DeepCutError, match="earlier DeepCut version wrote it"):
        resume()
