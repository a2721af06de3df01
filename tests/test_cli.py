"""``python -m deepcut segment``: outputs, results.json, bad files, usage errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, disc_image
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


def test_warm_epochs_take_one_or_three_numbers():
    import pytest

    from deepcut.cli.common import UsageError
    from deepcut.cli.video import warm_epochs_from_args
    from deepcut.config import SegmentConfig
    from deepcut.video import default_warm_epochs

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
                         [["--backbone", "color", "--facet", "query"], "colour backbone has no ViT layers"]):
        out = tmp_path / f"out{len(flags)}{flags[-1]}"
        assert main(["segment", str(img), "--out", str(out), "--resolution", "64", *flags]) == 2
        assert words in capsys.readouterr().err
        assert not out.exists()
    out = tmp_path / "ok"
    assert main(["segment", str(img), "--out", str(out), "--resolution", "64", "--backbone", "color"]) == 0
