"""Issue #13 "Hardening": bounded work per request, allocation failures as DeepCutError, guarded
checkpoints, checked video arguments, truncated videos noted, and a batch CLI that loses nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import disc_image
from PIL import Image

import deepcut
from deepcut import DeepCut, ResourceLimitError
from deepcut.errors import BackboneLoadError, ConfigError
from deepcut.utils.memory import estimate_bytes, is_oom, memory_errors, parse_bytes


@pytest.fixture(scope="module")
def color():
    return DeepCut("color", cache_size=1)


@pytest.fixture(scope="module")
def vit():
    return DeepCut("dino_vits8", pretrained=False, cache_size=1, max_memory="off")


# -- memory and patch limits ------------------------------------------------------------------------
def test_sizes_parse_with_units_and_off():
    assert parse_bytes("8G") == 8 << 30 and parse_bytes("512m") == 512 << 20 and parse_bytes("1.5GB") == 3 << 29
    assert parse_bytes(1000) == 1000 and parse_bytes("off") is None and parse_bytes(0) is None
    for bad in ("abc", -1, "8X", None, float("nan")):
        with pytest.raises(ConfigError, match="max_memory"):
            parse_bytes(bad)


def test_an_image_over_the_memory_limit_is_refused_before_the_vit_runs(monkeypatch):
    dc = DeepCut("dino_vits8", pretrained=False, max_memory="64M")
    monkeypatch.setattr(dc.backbone, "embed", lambda *a, **k: pytest.fail("the ViT ran"))
    with pytest.raises(ResourceLimitError) as e:
        dc.segment(disc_image(96), resolution=448)
    text = str(e.value)
    assert "64.0 MB" in text and "56 x 56 patches" in text and "resolution" in text and "stride" in text
    assert "DEEPCUT_MAX_MEMORY" in text


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEEPCUT_MAX_MEMORY", "100K")
    with pytest.raises(ResourceLimitError, match="100.0 KB"):
        DeepCut("color").segment(disc_image(64), resolution=64)
    monkeypatch.setenv("DEEPCUT_MAX_MEMORY", "off")
    assert DeepCut("color").segment(disc_image(64), resolution=64).num_segments >= 1
    monkeypatch.setenv("DEEPCUT_MAX_MEMORY", "lots")
    with pytest.raises(ConfigError, match="DEEPCUT_MAX_MEMORY"):
        DeepCut("color")


def test_stride_one_at_the_largest_resolution_is_refused_at_once(vit):
    t = time.perf_counter()
    with pytest.raises(ResourceLimitError, match="patches, over the limit"):
        vit.segment(disc_image(64), stride=1, resolution=4096)
    assert time.perf_counter() - t < 5


def test_an_extreme_aspect_ratio_is_refused_by_its_patch_count(color, monkeypatch):
    monkeypatch.setenv("DEEPCUT_MAX_PATCHES", "5000")
    with pytest.raises(ResourceLimitError, match=r"1 x \d+ = \d+ patches.*DEEPCUT_MAX_PATCHES"):
        color.segment(np.zeros((1, 200_000, 3), np.uint8), resolution=280)


def test_a_batch_is_made_smaller_instead_of_refused(monkeypatch):
    frames = [disc_image(64)] * 4
    dc = DeepCut("color")
    one = estimate_bytes(dc.backbone, dc.store.grid((64, 64), 64, None), 1)
    dc.store.memory_limit = int(one * 1.5)  # one image fits, two do not
    sizes = []
    real = dc.backbone.embed
    monkeypatch.setattr(dc.backbone, "embed", lambda px, s: sizes.append(len(px)) or real(px, s))
    assert len(dc.store.embed_many(frames, 64, batch_size=4, cache=False)) == 4
    assert sizes == [1, 1, 1, 1]


def test_allocation_failures_become_resource_limit_errors(color, monkeypatch):
    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 9800000000 bytes")

    monkeypatch.setattr(color.backbone, "embed", oom)
    color.clear_cache()
    with pytest.raises(ResourceLimitError, match="ran out of memory.*not enough memory"):
        color.segment(disc_image(48), resolution=48)
    monkeypatch.setattr(color.backbone, "embed", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(ResourceLimitError):
        color.segment(disc_image(48), resolution=48)
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory")) and not is_oom(RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors are not disguised
        with memory_errors():
            raise RuntimeError("shape mismatch")


def test_segment_features_checks_its_input(color):
    with pytest.raises(ConfigError, match="features"):
        color.segment_features("x", (1, 1))
    with pytest.raises(ConfigError, match="finite"):
        color.segment_features(np.full((16, 8), np.nan, np.float32), (4, 4))
    with pytest.raises(ConfigError, match="grid"):
        color.segment_features(np.ones((4, 8), np.float32), (-2, -2))


def test_segment_features_refuses_a_shape_it_would_have_to_guess_and_reads_any_image(color):
    """Two images' features stacked ``(2N, D)``, or flattened ``(N * D,)``, were reshaped to fit the grid and
    segmented; ``image=`` a path, a grey or a float image failed deep inside (overlay, save), a bad
    ``work_size`` in torch or numpy."""
    from deepcut.errors import ImageLoadError

    x = torch.randn(16, 8)
    for bad in (torch.cat([x, x]), x.reshape(-1), x.reshape(2, 8, 8)):
        with pytest.raises(ConfigError, match=r"\(h\*w, D\) or \(h, w, D\)"):
            color.segment_features(bad, (4, 4))
    assert color.segment_features(x.reshape(4, 4, 8), (4, 4)).labels.shape == (4 * 8, 4 * 8)
    assert color.segment_features(x[None], (4, 4)).labels.shape == (4 * 8, 4 * 8)  # a ViT's batch of one
    grey = np.linspace(0, 1, 40 * 40).reshape(40, 40)  # float, 0-1, one channel
    seg = color.segment_features(x, (4, 4), image=grey)
    assert seg.image.shape == (40, 40, 3) and seg.image.dtype == np.uint8
    seg.overlay(), seg.bbox_image()
    with pytest.raises(ImageLoadError, match="no such file"):
        color.segment_features(x, (4, 4), image="/nonexistent.png")
    for size in ((0, 0), (5,), (-5, 10), "ab"):
        with pytest.raises(ConfigError, match="work_size"):
            color.segment_features(x, (4, 4), work_size=size)
    with pytest.raises(ConfigError, match="cache_size"):
        DeepCut("color", cache_size="x")
    with pytest.raises(ConfigError, match="device"):
        DeepCut("color", device=5)


# -- video ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    import imageio_ffmpeg

    path = tmp_path_factory.mktemp("video") / "full.mp4"
    w = imageio_ffmpeg.write_frames(str(path), (64, 48), fps=10, macro_block_size=16,
                                    output_params=["-movflags", "+faststart"])
    w.send(None)
    for i in range(30):
        f = np.zeros((48, 64, 3), np.uint8)
        f[:, :, 0] = i * 8
        f[10:30, i:i + 20] = 255
        w.send(f.tobytes())
    w.close()
    return path


@pytest.mark.parametrize("bad", [5, "x", True, 2.5])
def test_video_progress_must_be_a_function(color, mp4, bad):
    with pytest.raises(ConfigError, match="progress"):
        color.segment_video(mp4, progress=bad)


def test_video_counts_are_checked(color, mp4):
    for kw in ({"max_frames": "x"}, {"max_frames": 2.5}, {"frame_stride": None}, {"batch_size": "many"},
               {"warm": "no"}):
        with pytest.raises(ConfigError):
            color.segment_video(mp4, **kw)


def test_a_truncated_mp4_says_it_stopped_early(mp4, tmp_path):
    from deepcut.tasks.video import read_frames

    data = mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    reader = read_frames(cut)
    n = sum(1 for _ in reader)
    assert reader.info.n_frames == 30 and 0 < n < 30
    assert any(f"stopped after {n} of the 30 frames" in note and "truncated" in note for note in reader.notes)
    full = read_frames(mp4)
    assert sum(1 for _ in full) == 30 and not full.notes


# -- checkpoints --------------------------------------------------------------------------------------
def _dino_sd(dim: int, depth: int, patch: int, side: int, expand: bool) -> dict:
    def t(*shape):
        return torch.zeros(1).expand(*shape) if expand else torch.randn(*shape) * 0.02

    sd = {
        "cls_token": t(1, 1, dim),
        "pos_embed": t(1, 1 + side * side, dim),
        "patch_embed.proj.weight": t(dim, 3, patch, patch),
        "patch_embed.proj.bias": t(dim),
        "norm.weight": t(dim),
        "norm.bias": t(dim),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        for name, shape in [("norm1.weight", (dim,)), ("norm1.bias", (dim,)), ("attn.qkv.weight", (3 * dim, dim)),
                            ("attn.qkv.bias", (3 * dim,)), ("attn.proj.weight", (dim, dim)), ("attn.proj.bias", (dim,)),
                            ("norm2.weight", (dim,)), ("norm2.bias", (dim,)), ("mlp.fc1.weight", (4 * dim, dim)),
                            ("mlp.fc1.bias", (4 * dim,)), ("mlp.fc2.weight", (dim, 4 * dim)), ("mlp.fc2.bias", (dim,))]:
            sd[b + name] = t(*shape)
    return sd


def test_a_checkpoint_of_expanded_tensors_is_refused_before_building(tmp_path):
    path = tmp_path / "expanded.pth"
    torch.save(_dino_sd(2048, 2, 16, 14, expand=True), path)
    assert path.stat().st_size < 50_000
    with pytest.raises(BackboneLoadError, match="expanded view"):
        deepcut.load_backbone(str(path))
    fine = tmp_path / "tiny.pth"
    torch.save(_dino_sd(64, 1, 8, 4, expand=False), fine)
    assert deepcut.load_backbone(str(fine)).dim == 64


def test_architectures_over_the_size_limit_are_refused(tmp_path):
    from deepcut.backbones.arch import ViTArch, check_size, parameter_count

    assert parameter_count(ViTArch("vit", 384, 12, 6, 8, 224, 1536)) == 21_679_488  # DINO ViT-S/8
    with pytest.raises(BackboneLoadError, match="B parameters"):
        check_size(ViTArch("vit", 8192, 64, 128, 14, 518, 32768), "x.pth")
    folder = tmp_path / "huge"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 65536,
                                                    "num_hidden_layers": 1000, "num_attention_heads": 1024}))
    with pytest.raises(BackboneLoadError, match="over DeepCut's limit"):
        deepcut.load_backbone(str(folder))


# -- the batch command ----------------------------------------------------------------------------
def _images(folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"im{i}.png")
        Image.fromarray(disc_image(48 + 8 * i)).save(paths[-1])
    return paths


def _no_model(*a, **k):
    raise AssertionError("the model was loaded before --out was checked")


@pytest.mark.parametrize("case", ["file", "under_file", "results_dir"])
def test_a_bad_out_is_a_usage_error_before_the_model_loads(tmp_path, monkeypatch, capsys, case):
    from deepcut.cli import main
    from deepcut.cli import segment as segment_cmd

    _images(tmp_path / "in", 1)
    (tmp_path / "f").write_text("x")
    (tmp_path / "r" / "results.json").mkdir(parents=True)
    out = {"file": tmp_path / "f", "under_file": tmp_path / "f" / "sub", "results_dir": tmp_path / "r"}[case]
    monkeypatch.setattr(segment_cmd, "make_model", _no_model)
    assert main(["segment", str(tmp_path / "in"), "--out", str(out), "--backbone", "color"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "Traceback" not in err


def test_results_are_written_after_every_image_and_survive_errors_and_ctrl_c(tmp_path, monkeypatch, capsys):
    from deepcut.cli import main

    paths = _images(tmp_path / "in", 4)
    real = DeepCut.segment

    def flaky(self, image, *a, **k):
        name = Path(image).name
        if name == "im1.png":
            raise RuntimeError("boom from torch")
        if name == "im3.png":
            raise KeyboardInterrupt
        return real(self, image, *a, **k)

    monkeypatch.setattr(DeepCut, "segment", flaky)
    out = tmp_path / "out"
    rc = main(["segment", str(tmp_path / "in"), "--out", str(out), "--backbone", "color", "--resolution", "48"])
    assert rc == 130
    results = json.loads((out / "results.json").read_text())
    assert set(results["files"]) == {str(paths[0]), str(paths[2])}
    assert "RuntimeError: boom from torch" in results["failures"][str(paths[1])]
    assert results["interrupted"] is True and results["finished"] is False
    assert "interrupted" in capsys.readouterr().err
    assert not list(out.glob(".results.json.*"))  # no temporary file left behind


def test_a_rerun_into_the_input_folder_neither_reads_its_outputs_nor_leaves_stale_ones(tmp_path, capsys):
    from deepcut.cli import main

    folder = tmp_path / "imgs"
    _images(folder, 2)
    flags = ["--backbone", "color", "--resolution", "48"]
    assert main(["segment", str(folder), "--out", str(folder), *flags, "--stages", "2", "--cutout"]) == 0
    assert (folder / "im0_mask.png").exists() and (folder / "im0_cutout.png").exists()
    assert main(["segment", str(folder), "--out", str(folder), *flags, "-k", "3"]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err
    results = json.loads((folder / "results.json").read_text())
    assert set(results["files"]) == {str(folder / "im0.png"), str(folder / "im1.png")} and not results["failures"]
    listed = {Path(p).name for r in results["files"].values() for p in r["outputs"].values()}
    written = {p.name for p in folder.iterdir()} - {"im0.png", "im1.png", "results.json", ".deepcut-outputs.json"}
    assert written == listed  # k=3 has no mask or cut-out: the first run's are gone


# -- inputs the first hardening missed (#22) ----------------------------------------------------------
def test_segment_features_takes_grad_and_sparse_tensors_and_refuses_meta():
    from deepcut import DeepCut

    dc = DeepCut("color")
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(0))
    plain = dc.segment_features(x, (8, 8))
    with_grad = dc.segment_features(x.clone().requires_grad_(True), (8, 8))
    sparse = dc.segment_features(x.to_sparse(), (8, 8))
    np.testing.assert_array_equal(with_grad.labels, plain.labels)
    np.testing.assert_array_equal(sparse.labels, plain.labels)
    with pytest.raises(ConfigError, match="meta tensor"):
        dc.segment_features(torch.empty(64, 12, device="meta"), (8, 8))


def test_overlay_opacity_is_checked():
    from deepcut import DeepCut

    seg = DeepCut("color").segment_features(torch.randn(64, 12), (8, 8))
    assert np.array_equal(np.asarray(seg.overlay("0.5")), np.asarray(seg.overlay(0.5)))
    for bad in ("half", None, 1.5, -0.1, float("nan")):
        with pytest.raises(ConfigError, match="alpha"):
            seg.overlay(bad)


def test_absurd_thread_counts_are_refused_not_a_crash(monkeypatch):
    from deepcut.utils.threads import MAX_THREADS_PER_CORE, available_cores, check_threads, feature_threads

    most = MAX_THREADS_PER_CORE * available_cores()
    assert check_threads(most) == most
    with pytest.raises(ConfigError, match=f"at most {most}"):
        check_threads(5000)
    monkeypatch.setenv("DEEPCUT_THREADS", "5000")
    with pytest.raises(ConfigError, match="DEEPCUT_THREADS='5000'.*at most"):
        feature_threads()


def test_save_onto_an_existing_file_destroys_nothing(color, tmp_path):
    from deepcut.errors import DeepCutError

    seg = color.segment(disc_image(48), resolution=48)
    mine = tmp_path / "photo.png"
    mine.write_bytes(b"the user's photo")
    for out in (mine, mine / "sub"):  # a file given as the folder, a folder under a file
        with pytest.raises(ConfigError, match="file"):
            seg.save(out, "x")
    assert mine.read_bytes() == b"the user's photo" and sorted(tmp_path.iterdir()) == [mine]
    (tmp_path / "out" / "x_overlay.png").mkdir(parents=True)  # a target that is a folder
    (tmp_path / "out" / "x_overlay.png" / "inside").write_text("kept")
    with pytest.raises(DeepCutError, match="is a folder"):
        seg.save(tmp_path / "out", "x")
    assert (tmp_path / "out" / "x_overlay.png" / "inside").read_text() == "kept"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x_overlay.png"]  # nothing else written
    for stem, alpha in (("../x", 0.5), ("", 0.5), ("x", 2.0)):  # refused before anything is written
        with pytest.raises(ConfigError):
            seg.save(tmp_path / "clean", stem, alpha=alpha)
    assert not (tmp_path / "clean").exists()
    written = seg.save(tmp_path / "fine", "x", cutout=True)
    assert sorted(Path(p).name for p in written.values()) == ["x_cutout.png", "x_labels.png", "x_mask.png",
                                                              "x_overlay.png"]
    assert sorted(p.name for p in (tmp_path / "fine").iterdir()) == sorted(Path(p).name for p in written.values())


@pytest.mark.parametrize("text", ["[" * 100_000, '{"model_type": ' * 50_000])
def test_json_nested_too_deep_is_a_clear_error_in_a_model_folder_and_a_report(tmp_path, capsys, text):
    from deepcut.evaluation.report import main as report_main

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    with pytest.raises(BackboneLoadError, match="config.json is not valid JSON"):
        DeepCut(str(folder))
    (tmp_path / "r.json").write_text(text)
    assert report_main([str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "recursion" in err, err


# -- the app's flags --------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--visitor-files", "-1"], "--visitor-files must be 0 or more"),
    (["--max-temp-files", "-5"], "--max-temp-files must be 0 or more"),
    (["--time-limit", "-1"], "--time-limit must be 0 or more"),
    (["--time-limit", "nan"], "--time-limit must be 0 or more"),
    (["--time-limit", "inf"], "--time-limit must be 0 or more"),
    (["--max-epochs", "-1"], "--max-epochs must be 0 or more"),
    (["--max-resolution", "1"], "--max-resolution must be 0 .* or at least 64 px"),
    (["--max-epochs", "many"], "--max-epochs must be a whole number"),
    (["--max-file-size", "lots"], "--max-file-size must be a number of bytes"),
])
def test_the_apps_caps_are_checked_at_start(argv, message, capsys):
    from deepcut.demo.server import parse_args

    with pytest.raises(SystemExit) as caught:
        parse_args(["--public", *argv])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert any(__import__("re").search(message, line) for line in err.splitlines()), err


@pytest.mark.parametrize("var, value, message", [
    ("DEEPCUT_MAX_EPOCHS", "many", "DEEPCUT_MAX_EPOCHS='many': --max-epochs must be a whole number"),
    ("DEEPCUT_TIME_LIMIT", "nan", "DEEPCUT_TIME_LIMIT='nan': --time-limit must be 0 or more"),
    ("DEEPCUT_VISITOR_FILES", "-1", "DEEPCUT_VISITOR_FILES='-1': --visitor-files must be 0 or more"),
    ("DEEPCUT_MAX_TEMP_BYTES", "-3", "DEEPCUT_MAX_TEMP_BYTES='-3'"),
    ("DEEPCUT_GNN_PRECISION", "bf17", "$DEEPCUT_GNN_PRECISION must be one of ('auto', 'fp32', 'bf16'), got 'bf17'"),
])
def test_a_bad_environment_value_is_a_usage_error_naming_the_variable(var, value, message, monkeypatch, capsys):
    from deepcut.demo.server import parse_args

    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as caught:
        parse_args(["--public"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_good_caps_still_reach_the_limits(monkeypatch):
    from deepcut.demo.server import limits_from_args, parse_args

    monkeypatch.setenv("DEEPCUT_TIME_LIMIT", "30")
    limits = limits_from_args(parse_args(["--public", "--max-epochs", "40", "--max-resolution", "64",
                                          "--visitor-files", "0", "--max-temp-bytes", "1G"]))
    assert limits.max_epochs == 40 and limits.max_resolution == 64 and limits.seconds == 30
    assert limits.temp_bytes == 1 << 30 and limits.visitor_files is not None  # 0: the public default


@pytest.mark.slow
def test_app_py_with_a_negative_cap_exits_two_before_serving():
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "DEEPCUT_MAX_EPOCHS": "many"}
    for argv, extra, message in ((["--public", "--max-epochs", "-1"], {}, "--max-epochs must be 0 or more"),
                                 (["--public"], env, "DEEPCUT_MAX_EPOCHS='many'")):
        r = subprocess.run([sys.executable, "app.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=120,
                           env=extra or None)
        assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
        assert message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("call", [lambda dc, img: dc.features(img, resolution=0),
                                  lambda dc, img: dc.features(img, resolution=2.5),
                                  lambda dc, img: dc.embed(img, resolution=-5),
                                  lambda dc, img: dc.features(img, layer=3.7),
                                  lambda dc, img: dc.warm_up(side=2.5)])
def test_the_facades_feature_calls_check_their_settings_as_segment_does(color, call):
    """``features(resolution=0)`` gave a (1, 1, D) grid and ``layer=3.7`` was cut to 3, where ``segment`` refuses
    both; ``warm_up(side=2.5)`` failed in numpy."""
    with pytest.raises(ConfigError, match="resolution|layer|side"):
        call(color, np.zeros((32, 32, 3), np.uint8))


@pytest.mark.parametrize("kwargs, says", [
    (dict(backbone="dino_vits8", pretrained="False"), "pretrained must be True or False"),  # tried the download
    (dict(backbone="color", threads=True), "threads must be a whole number"),  # was one thread
    (dict(backbone="color", max_memory=1.5), "write '1.5G' for gigabytes"),  # was a 1-byte limit
])
def test_settings_of_another_kind_are_refused_not_reinterpreted(kwargs, says):
    with pytest.raises(ConfigError, match=says):
        DeepCut(**kwargs)
