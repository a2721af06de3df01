"""``deepcut slides IMAGE --out DIR`` and the lessons as a library: the files of the app's *For slides*, written
without Gradio (it is made unimportable here), from the command line and from a script over a FeatureStore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from conftest import REPO
from PIL import Image

CAT = REPO / "assets" / "cat.jpg"
#: Small settings: a coarse grid and short trainings (the files are the same as at full size).
FLAGS = ("--backbone", "color", "--stages", "2", "-k", "3", "--resolution", "112", "--epochs", "4", "12", "4")
SETTINGS = dict(stages=2, k=3, resolution=112, epochs=(4, 12, 4))
SLIDES = ("overlay", "mask", "cutout", "soft", "loss", "comparison", "pca", "affinity", "step1-features", "step2-graph",
          "step3-training", "step4-argmax", "step5-refinement")

#: A library-only script: a DeepCut's store, the lessons, no app; prints the names export_files wrote.
SCRIPT = """
import json, sys
from deepcut import DeepCut
from deepcut.lessons.explain import explain
from deepcut.lessons.result import LessonResult
from deepcut.lessons.slides import export_files
from deepcut.lessons.walkthrough import Walkthrough

dc = DeepCut("color")
seg = dc.segment(sys.argv[1], stages=2, k=3, resolution=112, epochs=(4, 12, 4))
result, ex = LessonResult.of(dc.store, seg), explain(dc.store, seg)
files = export_files(result, sys.argv[2], "cat.jpg", ex, walk=Walkthrough(dc.store, result, ex))
assert "gradio" not in sys.modules
print(json.dumps([f.name for f in files]))
"""


@pytest.fixture(scope="module")
def no_gradio(tmp_path_factory) -> dict:
    """The environment of a subprocess in which ``import gradio`` fails."""
    folder = tmp_path_factory.mktemp("no_gradio")
    (folder / "gradio.py").write_text("raise ImportError('gradio is not installed here')\n")
    return {"PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, no_gradio):
    out = tmp_path_factory.mktemp("lecture")
    r = run(no_gradio, "-m", "deepcut", "slides", str(CAT), "--out", str(out), *FLAGS)
    return r, out


def expected_names() -> list[str]:
    tag = "ncut-k3-2stages"
    return ([f"cat_{what}_{tag}.png" for what in SLIDES] + [f"cat_replay_{tag}.gif", f"cat_replay_{tag}.mp4",
            f"cat_result_{tag}_labels.png", f"cat_result_{tag}.json", f"cat_slides_{tag}.zip"])


def test_slides_takes_the_usual_segment_settings(capsys):
    from deepcut.cli import build_parser
    from deepcut.cli.common import config_from_args
    from deepcut.cli.options import flag_names
    from deepcut.config import SegmentConfig, options

    parser = build_parser()
    args = parser.parse_args(["slides", "cat.jpg", "--out", "o", "--backbone", "color", "--stages", "2", "-k", "3",
                              "--loss", "ncut", "--epochs", "4", "12", "4", "--opacity", "0.7"])
    assert config_from_args(args) == SegmentConfig(stages=2, k=3, epochs=(4, 12, 4))
    assert (args.image, args.out, args.backbone, args.opacity) == ("cat.jpg", "o", "color", 0.7)
    with pytest.raises(SystemExit):
        parser.parse_args(["slides", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(flag in text for name, opt in options().items() for flag in flag_names(name, opt))


def test_gradio_is_unimportable_in_the_subprocesses(no_gradio):
    r = run(no_gradio, "-c", "import gradio")
    assert r.returncode == 1 and "gradio is not installed here" in r.stderr


@pytest.mark.slow
def test_slides_command_writes_the_apps_files_without_gradio(cli_run):
    r, out = cli_run
    assert r.returncode == 0, r.stderr
    names = expected_names()
    assert [Path(line).name for line in r.stdout.splitlines()] == names  # one path per file, the zip last
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(names)
    for name in names[: len(SLIDES)]:
        with Image.open(out / name) as im:
            assert im.size == (1920, 1080), name
    with Image.open(out / names[len(SLIDES)]) as gif:
        assert gif.format == "GIF" and gif.n_frames > 2 and gif.width >= 1600  # sharp on a full-HD slide
        frames = gif.n_frames
    with imageio.get_reader(out / names[len(SLIDES) + 1], "ffmpeg") as reader:
        assert len(list(reader.iter_data())) == frames  # one frame per snapshot, as the GIF
    record = json.loads((out / names[-2]).read_text())
    with Image.open(out / names[-3]) as labels:
        assert labels.size == Image.open(CAT).size and len(np.unique(np.asarray(labels))) == record["num_segments"]
    assert record["backbone"] == "color" and record["config"]["k"] == 3 and record["config"]["stages"] == 2
    with zipfile.ZipFile(out / names[-1]) as archive:
        assert sorted(archive.namelist()) == sorted(["README.txt", *names[:-1]])
        readme = archive.read("README.txt").decode()  # the walkthrough's words in full, each under its slide
        assert "the centre of the foreground (no patch was clicked)" in readme and "\n  5. Refinement: " in readme
        for name in names[:-1]:
            assert archive.read(name) == (out / name).read_bytes(), name
    assert not [p for p in out.iterdir() if p.is_dir()]  # no working folder left behind


@pytest.mark.slow
def test_a_script_over_a_feature_store_gets_the_apps_slide_names(tmp_path, no_gradio, cli_run):
    pytest.importorskip("gradio")
    from deepcut.demo import DemoSession
    from deepcut.demo.lesson_view import LessonHandlers

    r = run(no_gradio, "-c", SCRIPT, str(CAT), str(tmp_path / "script"))
    assert r.returncode == 0, r.stderr
    script = json.loads(r.stdout.splitlines()[-1])
    session = DemoSession(default_backbone="color", output_dir=tmp_path / "app")
    key = session.results.add(session.segment(str(CAT), **SETTINGS))
    app = [Path(p).name for p in LessonHandlers(session).slides(key, str(CAT), 0.5)]  # the page's button
    assert script == app == expected_names()
    _, out = cli_run
    for name in app[: len(SLIDES)]:  # the same pictures (same settings, same deterministic training)
        a, b = (np.asarray(Image.open(folder / name)) for folder in (out, tmp_path / "script"))
        if "_step3-training_" in name:  # the replay's loss curve: the last float bits follow the threads in use
            assert a.shape == b.shape and (a != b).any(-1).mean() < 0.002, name
        else:
            assert np.array_equal(a, b), name


@pytest.mark.slow
def test_a_users_file_is_never_replaced_and_errors_are_one_line(tmp_path, no_gradio):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "cat_mask_ncut-k3-2stages.png"
    mine.write_text("the user's own file")
    r = run(no_gradio, "-m", "deepcut", "slides", str(CAT), "--out", str(out), *FLAGS)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cat_mask_ncut-k3-2stages.png" in r.stderr and "DeepCut did not write" in r.stderr
    assert mine.read_text() == "the user's own file" and [p.name for p in out.iterdir()] == [mine.name]
    missing = run(no_gradio, "-m", "deepcut", "slides", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o"),
                  "--backbone", "color")
    assert missing.returncode == 1 and missing.stderr.strip().startswith("error:") and "nope.jpg" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    bad = run(no_gradio, "-m", "deepcut", "slides", str(CAT), "--out", str(tmp_path / "o"), "--opacity", "2")
    assert bad.returncode == 2 and "--opacity" in bad.stderr and not (tmp_path / "o").exists()
