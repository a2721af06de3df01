"""``python -m deepcut segment``: outputs, results.json, bad files, usage errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import REPO, disc_image


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


def test_all_good_exit_zero_and_k_way_has_no_mask(tmp_path):
    Image.fromarray(disc_image(64, two_tone=True)).save(tmp_path / "x.png")
    r = run_cli("segment", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--backbone", "color",
                "--resolution", "64", "-k", "3", "--epochs", "30", "--loss", "cc", "--alpha", "4")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "x_labels.png").is_file() and not (tmp_path / "o" / "x_mask.png").exists()
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["files"][str(tmp_path / "x.png")]["bbox"] is None
    assert results["config"]["epochs"] == [30, 100, 10] and results["config"]["loss"] == "cc"


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
