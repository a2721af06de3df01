"""``python -m deepcut segment``: outputs, results.json, bad files, usage errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, disc_image, moving_disc
from PIL import Image


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepcut", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_directory_with_one_broken_file(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(disc_image(96)).save(src / "a.png")
    Image.fromarray(disc_image(80, two_tone=True)).save(src / "b.jpg")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    out = tmp_path / "out"
    r = run_cli("segment", str(src), str(tmp_path / "missing.png"), "--out", str(out), "--backbone", "color",
                "--resolution", "96", "--stages", "2", "-k", "2")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    error_lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 2
    assert any("broken.jpg" in line for line in error_lines) and any("missing.png" in line for line in error_lines)
    for stem, size in [("a", (96, 96)), ("b", (80, 80))]:
        labels = np.asarray(Image.open(out / f"{stem}_labels.png"))
        assert labels.shape == size and labels.max() >= 1
        assert (out / f"{stem}_overlay.png").is_file() and (out / f"{stem}_mask.png").is_file()
    results = json.loads((out / "results.json").read_text())
    assert set(results["failures"]) == {str(src / "broken.jpg"), str(tmp_path / "missing.png")}
    entry = results["files"][str(src / "a.png")]
    assert len(entry["bbox"]) == 4 and entry["num_segments"] >= 2 and entry["seconds"] > 0
    assert results["config"]["stages"] == 2 and results["backbone"]["name"] == "color"


def test_all_good_exit_zero_and_k_way_has_the_apps_mask_and_box(tmp_path):
    """One stage with k > 2 (here CC): the mask is every segment but the background, as the app shows it."""
    Image.fromarray(disc_image(64, two_tone=True)).save(tmp_path / "x.png")
    r = run_cli("segment", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--backbone", "color",
                "--resolution", "64", "-k", "3", "--epochs", "30", "--loss", "cc", "--alpha", "4")
    assert r.returncode == 0, r.stderr
    labels = np.asarray(Image.open(tmp_path / "o" / "x_labels.png"))
    mask = np.asarray(Image.open(tmp_path / "o" / "x_mask.png")) > 0
    assert np.array_equal(mask, labels != 0) and mask.any()
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    ys, xs = np.nonzero(mask)
    assert results["files"][str(tmp_path / "x.png")]["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                                                 int(ys.max()) + 1]
    assert results["config"]["epochs"] == [30, 100, 10] and results["config"]["loss"] == "cc"


@pytest.mark.slow
def test_usage_errors_exit_two_without_traceback(tmp_path):
    for args in (["segment", "x.png", "--out", str(tmp_path), "-k", "1"],
                 ["segment", "x.png", "--out", str(tmp_path), "--stages", "5"],
                 ["segment", "x.png"],
                 ["segment", "x.png", "--out", str(tmp_path), "--epochs", "1", "2"],
                 ["frobnicate"]):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and "error" in r.stderr


def test_unloadable_backbone_is_a_clear_error(tmp_path):
    Image.fromarray(disc_image(32)).save(tmp_path / "x.png")
    r = run_cli("segment", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--backbone", "no_such_net")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "unknown backbone 'no_such_net'" in r.stderr


def test_backbones_command_lists_names():
    r = run_cli("backbones", "--json")
    names = [b["name"] for b in json.loads(r.stdout)]
    assert r.returncode == 0 and "dino_vits8" in names and "color" in names


# -- flags built from SegmentConfig's metadata ---------------------------------------------------------------
def test_every_config_field_has_a_flag():
    import argparse

    from deepcut.cli.common import add_config_args, config_from_args
    from deepcut.cli.options import flag_names
    from deepcut.config import SegmentConfig, options

    p = argparse.ArgumentParser()
    add_config_args(p)
    assert config_from_args(p.parse_args([])) == SegmentConfig()
    text = " ".join(p.format_help().split())
    for name, opt in options().items():
        assert all(flag in text for flag in flag_names(name, opt)), name
    assert "--device" in text and "DEEPCUT_DEVICE" in text and "(default: 10 100 10)" in text
    args = p.parse_args(["-k", "4", "--loss", "cc", "--alpha", "5", "--layer", "-2", "--facet", "value",
                         "--resolution", "96", "--stride", "4", "--stages", "3", "--epochs", "7", "--bg-k", "3",
                         "--largest-component", "--seed", "5", "--log-bin"])
    assert set(options()) <= set(vars(args))
    assert config_from_args(args) == SegmentConfig(k=4, loss="cc", alpha=5.0, layer=-2, facet="value", resolution=96,
                                                   stride=4, stages=3, epochs=(7, 100, 10), bg_k=3,
                                                   largest_component=True, seed=5, log_bin=True)


def test_command_defaults_and_task_defaults():
    import argparse

    import pytest

    from deepcut.cli import build_parser
    from deepcut.cli.eval import config_for_task
    from deepcut.cli.options import add_config_args

    p = argparse.ArgumentParser()
    add_config_args(p, defaults={"k": None, "seed": 3}, default_help={"k": "the task's"})
    args = p.parse_args([])
    assert args.k is None and args.seed == 3 and "(default: the task's)" in " ".join(p.format_help().split())
    with pytest.raises(ValueError):
        add_config_args(argparse.ArgumentParser(), defaults={"no_such_setting": 1})

    parser = build_parser()
    eval_args = ["eval", "data", "--out", "r.json", "--task"]
    cfg = config_for_task(parser.parse_args([*eval_args, "parts"]))
    assert (cfg.k, cfg.stages) == (5, 2)
    cfg = config_for_task(parser.parse_args([*eval_args, "single"]))
    assert (cfg.k, cfg.stages) == (2, 1)
    cfg = config_for_task(parser.parse_args([*eval_args, "parts", "-k", "3", "--stages", "3"]))
    assert (cfg.k, cfg.stages) == (3, 3)


def test_bad_device_is_a_usage_error_before_any_output(tmp_path, monkeypatch, capsys):
    from deepcut.cli import main

    Image.fromarray(disc_image(32)).save(tmp_path / "x.png")
    out = tmp_path / "o"
    for device in ("tpu", "cuda:99"):
        assert main(["segment", str(tmp_path / "x.png"), "--out", str(out), "--backbone", "color",
                     "--device", device]) == 2
    monkeypatch.setenv("DEEPCUT_DEVICE", "nonsense")
    assert main(["segment", str(tmp_path / "x.png"), "--out", str(out), "--backbone", "color"]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_device_reaches_the_model_and_records_use_the_summary(tmp_path):
    import torch

    from deepcut.cli import build_parser, main
    from deepcut.cli.common import make_model

    args = build_parser().parse_args(["segment", "x.png", "--out", "o", "--backbone", "color", "--device", "cpu"])
    assert make_model(args).device == torch.device("cpu")
    Image.fromarray(disc_image(64)).save(tmp_path / "x.png")
    assert main(["segment", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--backbone", "color",
                 "--resolution", "64", "--stages", "2", "--device", "cpu"]) == 0
    entry = json.loads((tmp_path / "o" / "results.json").read_text())["files"][str(tmp_path / "x.png")]
    assert {"bbox", "num_segments", "size", "grid", "seconds", "notes", "outputs"} <= set(entry)
    assert entry["size"] == [64, 64] and set(entry["outputs"]) == {"labels", "overlay", "mask"}
    assert entry["gnn_precision"] == "fp32"  # auto, not measured in tests


def test_warm_epochs_take_one_or_three_numbers():
    import pytest

    from deepcut.cli.common import UsageError
    from deepcut.cli.video import warm_epochs_from_args
    from deepcut.config import SegmentConfig
    from deepcut.tasks.video import default_warm_epochs

    cfg = SegmentConfig(epochs=(20, 50, 10))
    assert warm_epochs_from_args(None, cfg) is None
    assert warm_epochs_from_args([3], cfg) == (3, *default_warm_epochs(cfg.epochs)[1:]) == (3, 10, 2)
    assert warm_epochs_from_args([3, 4, 5], cfg) == (3, 4, 5)
    for bad in ([1, 2], [0], [2, 0, 1]):
        with pytest.raises(UsageError, match="--warm-epochs"):
            warm_epochs_from_args(bad, cfg)


def test_settings_the_backbone_cannot_honour_are_usage_errors_before_any_output(tmp_path, capsys):
    """``--layer 20`` on a 12-block ViT, or ``--layer``/``--facet`` on the colour backbone (which has
    neither), is refused once, with exit code 2, before a file is read or written."""
    from deepcut.cli import main

    img = tmp_path / "a.png"
    Image.fromarray(disc_image(64)).save(img)
    for flags, words in ([["--random-weights", "--layer", "20"], "layer 20 is out of range"],
                         [["--backbone", "color", "--layer", "5"], "colour backbone has no ViT layers"],
                         [["--backbone", "color", "--facet", "query"], "colour backbone has no ViT layers"],
                         [["--random-weights", "--stride", "3"], "--stride: stride 3 does not suit"],  # failed each
                         [["--backbone", "color", "--stride", "9"], "it must divide the patch size"],  # image
                         [["--backbone", "color", "--random-weights"], "the colour backbone has no weights"],
                         [["--backbone", "color", "--precision", "bf16"], "--precision does not apply to it"]):

        out = tmp_path / f"out{len(flags)}{flags[-1]}"
        assert main(["segment", str(img), "--out", str(out), "--resolution", "64", *flags]) == 2
        assert words in capsys.readouterr().err
        assert not out.exists()
    out = tmp_path / "ok"
    assert main(["segment", str(img), "--out", str(out), "--resolution", "64", "--backbone", "color"]) == 0


@pytest.mark.parametrize("command", ["segment", "cosegment", "video"])
@pytest.mark.parametrize("value", ["5", "nan", "-0.1", "half"])
def test_a_bad_opacity_is_a_usage_error_before_any_work(tmp_path, capsys, command, value):
    """``--opacity 5`` was checked after the work: every image segmented, then exit 1 (``cosegment`` left an
    empty folder, ``video`` stopped after a frame)."""
    img = tmp_path / "a.png"
    Image.fromarray(disc_image(64)).save(img)
    out = tmp_path / ("out.mp4" if command == "video" else "out")
    inputs = [str(img), str(img)] if command == "cosegment" else [str(img)]
    assert _cli([command, *inputs, "--out", str(out), *FAST, "--opacity", value]) == 2
    assert f"argument --opacity: expected an opacity between 0 and 1, got '{value}'" in capsys.readouterr().err
    assert not out.exists()


# -- outputs: unique names, a manifest of what DeepCut wrote, never a file it did not write (#22) -------------
FAST = ["--backbone", "color", "--resolution", "48"]


def _cli(argv: list[str]) -> int:
    from deepcut.cli import main

    try:
        return main(argv)
    except SystemExit as e:  # argparse
        return int(e.code)


def _outputs(results: dict) -> dict[str, set[str]]:
    return {k: set(v["outputs"].values()) for k, v in results["files"].items()}


def _no_model(*a, **k):
    raise AssertionError("the model was loaded before the paths were checked")


def test_colliding_stems_get_output_names_of_their_own(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(["a.jpg", "a.png", "a_2.png", "A.PNG"]):
        Image.fromarray(disc_image(48 + 8 * i)).save(src / name)
    assert _cli(["segment", str(src), "--out", str(tmp_path / "out"), *FAST]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    outputs = _outputs(results)
    assert len(outputs) == 4
    every = [p for files in outputs.values() for p in files]
    assert len(every) == len(set(every)) == 12  # no two inputs share a file
    assert len({p.lower() for p in every}) == 12  # not even on a file system that ignores case
    for name, files in outputs.items():  # each set is that input's: its labels have the input's size
        labels = next(p for p in files if p.endswith("_labels.png"))
        assert Image.open(labels).size == Image.open(name).size


def test_a_later_run_into_the_folder_keeps_the_earlier_runs_records(tmp_path):
    """Nothing is lost in a batch, also across runs: a second run into the same --out lists its own images at the
    top of results.json and keeps, under ``earlier``, the records (and failures) of the images it does not redo,
    with the settings they were made with; an image run again has one record, the latest."""
    src = tmp_path / "in"
    src.mkdir()
    for name, size in [("a.png", 48), ("b.png", 56)]:
        Image.fromarray(disc_image(size)).save(src / name)
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    a, b, broken = (str(src / n) for n in ("a.png", "b.png", "broken.png"))
    assert _cli(["segment", a, broken, "--out", str(out), *FAST, "-k", "3"]) == 1
    first = json.loads((out / "results.json").read_text())
    assert "earlier" not in first
    assert _cli(["segment", b, "--out", str(out), *FAST]) == 0
    second = json.loads((out / "results.json").read_text())
    assert set(second["files"]) == {b} and second["config"]["k"] == 2
    (run,) = second["earlier"]
    assert run["files"] == first["files"] and run["failures"] == first["failures"] and run["config"]["k"] == 3
    assert all(Path(p).is_file() for p in run["files"][a]["outputs"].values())  # a's files are still there
    assert _cli(["segment", a, "--out", str(out), *FAST]) == 0  # a again: its latest record only
    third = json.loads((out / "results.json").read_text())
    assert set(third["files"]) == {a} and third["failures"] == {}
    assert [set(r["files"]) for r in third["earlier"]] == [{b}, set()]
    assert set(third["earlier"][1]["failures"]) == {broken} and third["earlier"][0]["files"][b] == second["files"][b]


def test_a_users_file_named_like_an_output_is_never_deleted_skipped_or_overwritten(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(disc_image(48)).save(folder / "photo.png")
    Image.fromarray(disc_image(56, two_tone=True)).save(folder / "photo_cutout.png")  # the user's own picture
    (folder / "notes_mask.png").write_bytes(b"the user's, not an image")
    mine = {p.name: p.read_bytes() for p in folder.iterdir()}
    for extra in (["--cutout"], ["-k", "3"]):  # the second run removes DeepCut's own cut-outs only
        assert _cli(["segment", str(folder), "--out", str(folder), *FAST, *extra]) == 1  # notes_mask.png fails
        results = json.loads((folder / "results.json").read_text())
        assert str(folder / "photo_cutout.png") in results["files"]  # read as the input it is
        assert str(folder / "notes_mask.png") in results["failures"]
        assert {name: (folder / name).read_bytes() for name in mine} == mine
        outputs = _outputs(results)
        assert not set(map(str, (folder / n for n in mine))) & {p for f in outputs.values() for p in f}
    listed = {Path(p).name for files in _outputs(results).values() for p in files}
    assert {p.name for p in folder.iterdir()} == set(mine) | listed | {"results.json", ".deepcut-outputs.json"}
    assert "Traceback" not in capsys.readouterr().err


def test_a_file_deepcut_wrote_and_the_user_replaced_is_the_users(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(disc_image(48)).save(src / "im.png")
    assert _cli(["segment", str(src), "--out", str(out), *FAST, "--cutout"]) == 0
    (out / "im_cutout.png").write_bytes(b"edited by the user")
    assert _cli(["segment", str(src), "--out", str(out), *FAST]) == 0  # no --cutout: would remove im_cutout.png
    assert (out / "im_cutout.png").read_bytes() == b"edited by the user"
    results = json.loads((out / "results.json").read_text())
    assert _outputs(results)[str(src / "im.png")] == {str(out / f"im_2_{k}.png") for k in ("labels", "overlay", "mask")}


def test_results_json_or_manifest_that_deepcut_did_not_write_is_refused(tmp_path, monkeypatch, capsys):
    from deepcut.cli import segment as segment_cmd

    Image.fromarray(disc_image(48)).save(tmp_path / "im.png")
    monkeypatch.setattr(segment_cmd, "make_model", _no_model)
    for name in ("results.json", ".deepcut-outputs.json"):
        out = tmp_path / f"out_{name}"
        out.mkdir()
        (out / name).write_text('{"mine": true}')
        assert _cli(["segment", str(tmp_path / "im.png"), "--out", str(out), *FAST]) == 2
        assert "DeepCut did not write it" in capsys.readouterr().err
        assert (out / name).read_text() == '{"mine": true}' and sorted(p.name for p in out.iterdir()) == [name]


@pytest.mark.parametrize("name", ["results.json", ".deepcut-outputs.json"])
@pytest.mark.parametrize("text", ["[" * 100_000, '{"format": "deepcut-outputs/1", "files": ' * 20_000])
def test_json_nested_too_deep_to_read_is_someone_elses_file_not_a_traceback(tmp_path, monkeypatch, capsys, name,
                                                                            text):
    from deepcut.cli import segment as segment_cmd

    Image.fromarray(disc_image(48)).save(tmp_path / "im.png")
    monkeypatch.setattr(segment_cmd, "make_model", _no_model)
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text(text)
    assert _cli(["segment", str(tmp_path / "im.png"), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "DeepCut did not write it" in err and "Traceback" not in err, err
    assert (out / name).read_text() == text and sorted(p.name for p in out.iterdir()) == [name]


def test_manifest_entries_that_are_not_plain_file_names_are_ignored(tmp_path):
    from deepcut.utils.manifest import MANIFEST_NAME, OutputManifest

    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "escape.png").write_bytes(b"the user's")
    (folder / "sub" / "x.png").write_bytes(b"the user's")
    (folder / "mine.png").write_bytes(b"DeepCut's")
    forged = {"../escape.png": {"pending": True}, "sub/x.png": {"pending": True}, "": {"pending": True},
              ".": {"pending": True}, "..": {"pending": True}, "a\0b": {"pending": True}, "mine.png": {"pending": True}}
    (folder / MANIFEST_NAME).write_text(json.dumps({"format": "deepcut-outputs/1", "files": forged}))
    manifest = OutputManifest(folder)
    assert not manifest.foreign and list(manifest.entries) == ["mine.png"]
    assert not manifest.owns("../escape.png") and not manifest.owns("sub/x.png") and manifest.owns("mine.png")
    assert manifest.remove(["../escape.png", "sub/x.png", "mine.png"]) == ["mine.png"]
    assert (tmp_path / "escape.png").read_bytes() == (folder / "sub" / "x.png").read_bytes() == b"the user's"


def test_a_linked_out_folder_is_the_folder_it_links_to(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(disc_image(48)).save(folder / "a.png")
    (tmp_path / "link").symlink_to(folder)
    for _ in range(2):  # the second run sees the first one's outputs through the link and skips them
        assert _cli(["segment", str(folder), "--out", str(tmp_path / "link"), *FAST]) == 0
        results = json.loads((folder / "results.json").read_text())
        assert list(results["files"]) == [str(folder / "a.png")]
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "a.png", "a_labels.png", "a_mask.png", "a_overlay.png", "results.json"]


def test_an_output_name_that_is_a_link_or_an_input_is_not_written(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    Image.fromarray(disc_image(48)).save(src / "x.png")
    (tmp_path / "precious.png").write_bytes(b"precious")
    (out / "x_labels.png").symlink_to(tmp_path / "precious.png")
    missing_input = out / "y_overlay.png"  # named on the command line, not there yet
    Image.fromarray(disc_image(56)).save(src / "y.png")
    assert _cli(["segment", str(src / "x.png"), str(src / "y.png"), str(missing_input), "--out", str(out), *FAST]) == 1
    assert (tmp_path / "precious.png").read_bytes() == b"precious" and (out / "x_labels.png").is_symlink()
    results = json.loads((out / "results.json").read_text())
    outputs = _outputs(results)
    assert str(out / "x_2_labels.png") in outputs[str(src / "x.png")]
    assert str(missing_input) not in outputs[str(src / "y.png")] and str(missing_input) in results["failures"]


def test_cosegment_gives_colliding_stems_their_own_names(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(["a.jpg", "a.png", "a_2.png"]):
        Image.fromarray(disc_image(48 + 8 * i)).save(src / name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_overlay.png").write_bytes(b"the user's")
    assert _cli(["cosegment", str(src), "--out", str(tmp_path / "out"), *FAST]) == 0
    every = [p for files in _outputs(json.loads((tmp_path / "out" / "results.json").read_text())).values()
             for p in files]
    assert len(every) == len(set(every)) == 9 and str(tmp_path / "out" / "a_overlay.png") not in every
    assert (tmp_path / "out" / "a_overlay.png").read_bytes() == b"the user's"


def _gif(path: Path, n: int = 4) -> None:
    frames = [Image.fromarray(f) for f in moving_disc(n, 64, 48)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)


def test_an_out_folder_that_is_a_dangling_link_or_a_loop_is_refused_before_the_model_loads(tmp_path, monkeypatch,
                                                                                           capsys):
    from deepcut.cli import segment as segment_cmd
    from deepcut.cli import video as video_cmd

    _gif(tmp_path / "v.gif")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    monkeypatch.setattr(video_cmd, "make_model", _no_model)
    monkeypatch.setattr(segment_cmd, "make_model", _no_model)
    for link in ("dangling", "loop"):
        for argv in (["video", str(tmp_path / "v.gif"), "--out", str(tmp_path / "o.gif"), "--labels-dir"],
                     ["segment", str(tmp_path / "v.gif"), "--out"], ["cosegment", str(tmp_path / "v.gif"), "--out"]):
            assert _cli([*argv, str(tmp_path / link), *FAST]) == 2
            assert "does not exist (or is a loop)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "loop", "v.gif"]


def test_video_never_writes_over_its_input_or_a_file_it_did_not_write(tmp_path, monkeypatch, capsys):
    from deepcut.cli import video as video_cmd

    _gif(tmp_path / "v.gif")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(disc_image(48)).save(frames / f"frame_{i:05d}.png")
    (tmp_path / "user.gif").write_bytes(b"the user's video")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "frame_00002.png").write_bytes(b"the user's")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    monkeypatch.setattr(video_cmd, "make_model", _no_model)
    v = str(tmp_path / "v.gif")
    for argv in ([v, "--out", v], [str(frames), "--out", str(frames / "o.gif")],
                 [v, "--out", str(tmp_path / "user.gif")],
                 [v, "--out", str(tmp_path / "o.gif"), "--labels-dir", str(labels), "--frame-stride", "2"],
                 [str(frames), "--out", str(tmp_path / "o.gif"), "--labels-dir", str(frames)]):
        assert _cli(["video", *argv, *FAST]) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("input" in err or "did not write" in err), err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_video_reruns_replace_only_their_own_files(tmp_path):
    _gif(tmp_path / "v.gif")
    out, labels = tmp_path / "o.gif", tmp_path / "labels"
    labels.mkdir()
    (labels / "frame_00001.png").write_bytes(b"the user's")  # not a frame of --frame-stride 2
    for _ in range(2):
        assert _cli(["video", str(tmp_path / "v.gif"), "--out", str(out), "--labels-dir", str(labels),
                     "--frame-stride", "2", *FAST]) == 0
    assert sorted(p.name for p in labels.iterdir()) == [".deepcut-outputs.json", "frame_00000.png",
                                                          "frame_00001.png", "frame_00002.png", "summary.json"]
    assert (labels / "frame_00001.png").read_bytes() == b"the user's"


def test_an_out_name_the_os_refuses_is_a_usage_error_naming_it(tmp_path, monkeypatch, capsys):
    from deepcut import predictor

    monkeypatch.setattr(predictor.DeepCut, "__init__", _no_model)
    Image.fromarray(disc_image(32)).save(tmp_path / "x.png")
    image, long = str(tmp_path / "x.png"), str(tmp_path / ("a" * 300))  # over the 255-byte name limit
    for argv in (["segment", image, "--out", long], ["cosegment", image, image, "--out", long],
                 ["slides", image, "--out", long], ["label", image, "--out", long + ".json"],
                 ["video", image, "--out", long + ".mp4"], ["video", image, "--out", str(tmp_path / "v.mp4"),
                                                             "--labels-dir", long]):
        assert _cli([*argv, "--backbone", "color"]) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and "OSError" not in err, err
        assert "a" * 300 in err and "name too long" in err.lower(), err
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err


def test_a_second_run_into_a_folder_another_run_holds_is_refused_and_writes_nothing(tmp_path, capsys):
    """Two runs into one --out interleaved their files, and results.json listed only the last writer's (#33):
    while one run holds the folder, segment, cosegment and slides into it are refused with one line, and
    nothing of theirs lands there; once it is free, they run."""
    import os
    import subprocess

    from deepcut.utils.manifest import folder_lock

    img = tmp_path / "disc.png"
    Image.fromarray(disc_image(48)).save(img)
    out = tmp_path / "out"
    out.mkdir()
    commands = [["segment", str(img)], ["cosegment", str(img), str(img)], ["slides", str(img)]]
    with folder_lock(out):
        for command in commands:
            assert _cli([*command, "--out", str(out), *FAST]) == 1, command
            assert "another DeepCut run is writing into this folder" in capsys.readouterr().err
        # another process, as a second `deepcut` would be: the lock is the operating system's, not this process's
        holder = subprocess.run([sys.executable, "-c", "import sys; from deepcut.utils.manifest import folder_lock\n"
                                 f"with folder_lock({str(out)!r}): sys.exit(0)"], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        assert holder.returncode == 1 and "another DeepCut run" in holder.stderr
    assert sorted(os.listdir(out)) == []
    assert _cli(["segment", str(img), "--out", str(out), *FAST]) == 0
    assert (out / "results.json").is_file() and (out / "disc_labels.png").is_file()


def test_cosegment_into_a_held_folder_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    """``cosegment`` took the folder's lock only after co-segmenting: the whole computation ran, then it was
    refused. An existing folder is now held (or refused) before the model loads."""
    import deepcut.cli.video as video_cli
    from deepcut.utils.manifest import folder_lock

    img = tmp_path / "disc.png"
    Image.fromarray(disc_image(48)).save(img)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(video_cli, "make_model", _no_model)
    with folder_lock(out):
        assert _cli(["cosegment", str(img), str(img), "--out", str(out), *FAST]) == 1
    assert "another DeepCut run is writing into this folder" in capsys.readouterr().err


def test_a_second_run_writing_a_file_another_run_writes_is_refused(tmp_path, capsys):
    """``video`` and ``label`` write one file each (and video a labels folder): while a run holds that file,
    another run writing it is refused with one line and changes nothing; the lock leaves no file behind."""
    import os
    import subprocess

    from deepcut.utils.manifest import file_lock, folder_lock

    _gif(tmp_path / "v.gif")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(disc_image(48)).save(images / "disc.png")
    video, pseudo, labels = tmp_path / "o.gif", tmp_path / "pseudo.json", tmp_path / "labels"
    commands = [(video, ["video", str(tmp_path / "v.gif"), "--out", str(video), *FAST]),
                (pseudo, ["label", str(images), "--out", str(pseudo), *FAST])]
    for target, command in commands:
        with file_lock(target):
            assert _cli(command) == 1, command
            assert "another DeepCut run is writing this file" in capsys.readouterr().err
            holder = subprocess.run([sys.executable, "-c", "import sys; from deepcut.utils.manifest import "
                                     f"file_lock\nwith file_lock({str(target)!r}): sys.exit(0)"], cwd=REPO,
                                    capture_output=True, text=True, timeout=120)
            assert holder.returncode == 1 and "another DeepCut run" in holder.stderr
            assert not target.exists()
        assert _cli(command) == 0 and target.is_file(), command
    labels.mkdir()
    with folder_lock(labels):  # the label maps' folder is held too
        assert _cli(["video", str(tmp_path / "v.gif"), "--out", str(tmp_path / "p.gif"), "--labels-dir",
                     str(labels), *FAST]) == 1
        assert "another DeepCut run is writing into this folder" in capsys.readouterr().err
    assert not (tmp_path / "p.gif").exists() and sorted(os.listdir(labels)) == []
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".lock")) == []  # no lock file left


def test_cosegment_prints_every_images_notes(tmp_path, capsys):
    """Only the first image's notes were printed: a "no foreground in this image" of another image was in
    results.json alone. Notes all images share are printed once, the others with their image's name."""
    square = np.zeros((64, 64, 3), np.uint8)
    square[16:48, 16:48] = (220, 40, 40)
    Image.fromarray(square).save(tmp_path / "square.png")
    Image.fromarray(np.full((64, 64, 3), (30, 90, 200), np.uint8)).save(tmp_path / "plain.png")
    out = tmp_path / "out"
    assert _cli(["cosegment", str(tmp_path / "square.png"), str(tmp_path / "plain.png"), "--out", str(out),
                 "--backbone", "color", "--resolution", "64"]) == 0
    err = capsys.readouterr().err
    files = json.loads((out / "results.json").read_text())["files"]
    notes = {Path(k).name: v.get("notes", []) for k, v in files.items()}
    assert any(notes.values())
    for name, said in notes.items():
        for note in said:
            assert f"note: {note}" in err if all(note in n for n in notes.values()) else f"note: {name}: {note}" in err


def test_sigterm_cleans_up_as_ctrl_c_does(tmp_path):
    """``kill`` (what ``timeout``, SLURM and ``docker stop`` send) left a hidden partial video and its lock file
    that no later run removed; it now ends the command as Ctrl-C does, exit 143, nothing partial left."""
    import signal
    import time

    import imageio.v3 as iio

    frames = np.zeros((300, 120, 160, 3), np.uint8)
    frames[...] = (30, 90, 200)
    for t in range(300):
        frames[t, 40:80, t % 120:t % 120 + 30] = (220, 40, 40)
    iio.imwrite(tmp_path / "long.mp4", frames, fps=25)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "deepcut", "video", str(tmp_path / "long.mp4"), "--out",
                             str(out / "o.mp4"), "--backbone", "color", "--resolution", "96"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(".o.mp4.*.partial.mp4")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the video finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)  # one run in eight let it pass (lost in a finaliser): the loop checks too
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "error: terminated" in err, err[-500:]
    assert sorted(p.name for p in out.iterdir()) == [".deepcut-outputs.json"]


@pytest.mark.parametrize("command", ["segment", "label"])
def test_sigterm_ends_segment_and_label_with_143_and_their_work_kept(tmp_path, command):
    """``segment`` and ``label`` caught SIGTERM as Ctrl-C and said "interrupted", exit 130 (the other commands and
    the docs: "terminated", 143); a scheduler could not tell a kill from a Ctrl-C. The work done is kept."""
    import json
    import signal
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(150):  # enough work for the stop to land in the middle on a fast machine too
        Image.fromarray(np.roll(disc_image(96), i, axis=1)).save(folder / f"im{i:03d}.png")
    out = tmp_path / ("out" if command == "segment" else "pseudo.json")
    proc = subprocess.Popen([sys.executable, "-m", "deepcut", command, str(folder), "--out", str(out), "--backbone",
                             "color", "--resolution", "96"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    done = (lambda: json.loads((out / "results.json").read_text())["files"]) if command == "segment" else \
        (lambda: any(p.stat().st_size for p in out.with_name(out.name + ".parts").glob("*.jsonl")))
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if done():
                break
        except (OSError, ValueError):  # not written yet, or being replaced
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err and "interrupted" not in err, err[-500:]
    if command == "segment":
        results = json.loads((out / "results.json").read_text())
        assert results["interrupted"] and results["files"]
    else:
        assert "--resume" in err and out.with_name(out.name + ".parts").is_dir()


@pytest.mark.parametrize("argv", [["segment", "a.png", "--out", ""], ["slides", "a.png", "--out", " "],
                                  ["video", "a.mp4", "--out", "o.mp4", "--labels-dir", ""],
                                  ["eval", "d", "--out", "r.json", "--save-masks", ""], ["label", "d", "--out", ""],
                                  ["segment", "", "--out", "o"], ["cosegment", "a.png", " ", "--out", "o"],
                                  ["label", "", "--out", "p.json"], ["eval", "", "--task", "single", "--out", "r.json"],
                                  ["slides", "", "--out", "o"], ["video", "", "--out", "o.mp4"]])
def test_an_empty_path_is_a_usage_error(tmp_path, capsys, monkeypatch, argv):
    """``segment --out ""`` wrote into the current folder (and ``eval --save-masks ""`` its masks there); an empty
    input (``segment ""``, ``label ""`` …) read the current folder as the input."""
    monkeypatch.chdir(tmp_path)
    assert _cli(argv) == 2
    assert "the path is empty (it would mean the current folder): name one" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_subfolders_says_to_name_them(tmp_path, capsys):
    """``segment dup/`` with images only in ``dup/a`` and ``dup/b`` said "no input files found" and no more."""
    for sub in ("a", "b"):
        (tmp_path / "dup" / sub).mkdir(parents=True)
        Image.fromarray(disc_image(48)).save(tmp_path / "dup" / sub / "x.png")
    assert _cli(["segment", str(tmp_path / "dup"), "--out", str(tmp_path / "out"), *FAST]) == 1
    err = capsys.readouterr().err
    assert "no input files found (a folder stands for its own files, not for those in its subfolders" in err
    assert f"{tmp_path / 'dup' / 'a'} {tmp_path / 'dup' / 'b'}" in err


def test_recursive_segments_a_tree_of_folders_naming_outputs_by_their_path(tmp_path, capsys):
    """``segment data/`` with images only in subfolders said "no input files found" (label searches folders
    recursively, segment did not): ``--recursive`` takes the images of the whole tree (hidden folders and
    files that are not images left out), outputs named after their path; a rerun into a folder inside the tree
    does not take its own outputs as inputs."""
    import json

    tree = tmp_path / "data"
    for rel in ("bear/00001.png", "bear/00002.png", "cow/00001.png", ".cache/x.png"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(disc_image(64)).save(tree / rel)
    (tree / "bear" / "notes.txt").write_text("not an image")
    for out in (tmp_path / "out", tree / "out", tree / "out"):  # the last: a rerun inside the tree
        assert _cli(["segment", str(tree), "--out", str(out), "-r", *FAST]) == 0
        stems = sorted(p.name[:-len("_labels.png")] for p in out.glob("*_labels.png"))
        assert stems == ["bear_00001", "bear_00002", "cow_00001"], stems
        assert len(json.loads((out / "results.json").read_text())["files"]) == 3
    assert _cli(["segment", str(tree), "--out", str(tmp_path / "flat"), *FAST]) == 1
    assert "or add --recursive" in capsys.readouterr().err
