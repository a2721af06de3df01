"""The package as a newcomer gets it: a light ``import deepcut``, one list of dependencies, the
``./dev`` commands, and a wheel that works from a fresh virtual environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
HEAVY = ("gradio", "ray", "fastapi", "uvicorn", "starlette", "gradio_client", "openvino")


def _requirements(path: Path) -> list[str]:
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("-")]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def test_importing_the_library_and_cli_loads_no_web_or_cluster_framework():
    code = ("import sys, deepcut, deepcut.cli, deepcut.labeling, deepcut.evaluation, deepcut.lessons.explain, "
            "deepcut.lessons.slides, deepcut.lessons.sweep, deepcut.lessons.walkthrough, "
            "deepcut.render, deepcut.tasks.video, deepcut.model_cache, deepcut.clustering.spectral; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_requirements_txt_is_the_library_plus_the_app_extra():
    """A HuggingFace Space installs requirements.txt: the same pins as the package and its app extra."""
    declared = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["app"]
    assert sorted(map(_norm, _requirements(REPO / "requirements.txt"))) == sorted(map(_norm, declared))
    assert not any(_norm(d).startswith("gradio") for d in PYPROJECT["project"]["dependencies"])


def test_pyg_is_a_test_dependency_only():
    """PyG is the tests' oracle for the written-out GCN and losses (docs/method.md), not the package's."""
    assert any(_norm(r).startswith("torch-geometric") for r in _requirements(REPO / "requirements-dev.txt"))
    assert not any(_norm(d).startswith("torch-geometric") for d in PYPROJECT["project"]["dependencies"])


def test_the_gradio_range_is_the_one_the_app_checks():
    guards = pytest.importorskip("deepcut.demo.guards")
    (lo, hi) = guards.TESTED_GRADIO
    assert PYPROJECT["project"]["optional-dependencies"]["app"] == [f"gradio>={lo[0]}.{lo[1]},<{hi[0]}"]
    guards.check_gradio()  # the installed one is in range
    for outside in ("5.50.0", "6.30.9", "7.0.0"):
        with pytest.raises(RuntimeError, match=r"gradio>=6\.31,<7.*this is gradio " + re.escape(outside)):
            guards.check_gradio(outside)


def test_one_version_everywhere():
    import deepcut

    out = subprocess.run([sys.executable, "-m", "deepcut", "--version"], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"deepcut-gnn {deepcut.__version__}"
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "deepcut.__version__"}


def test_dev_script_lists_its_commands():
    out = subprocess.run(["bash", str(REPO / "dev"), "help"], capture_output=True, text=True, check=True)
    for command in ("app", "test", "quick", "lint", "docs", "wheel"):
        assert f"./dev {command}" in out.stdout
    bad = subprocess.run(["bash", str(REPO / "dev"), "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command" in bad.stderr


def _outer_site_packages() -> list[str]:
    """Where this interpreter finds its packages (torch & co.), for the fresh venv's dependencies."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return sorted(p for p in paths if os.path.isdir(p))


@pytest.mark.slow
def test_the_wheel_works_from_a_fresh_venv(tmp_path):
    """``python -m build`` makes a wheel and an sdist; the wheel, installed alone into a new venv (its
    dependencies are this interpreter's, reached through a .pth file), runs the CLI on an example."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
                   check=True, capture_output=True, text=True, cwd=tmp_path)
    version = __import__("deepcut").__version__
    wheel = dist / f"deepcut_gnn-{version}-py3-none-any.whl"
    assert wheel.is_file() and (dist / f"deepcut_gnn-{version}.tar.gz").is_file(), sorted(os.listdir(dist))

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(f"deepcut_gnn-{version}.dist-info/METADATA").decode()
        entry = z.read(f"deepcut_gnn-{version}.dist-info/entry_points.txt").decode()
    assert "deepcut/__init__.py" in names and not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    assert "Name: deepcut-gnn" in meta and f"Version: {version}" in meta
    requires = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    assert any("torch" in r for r in requires)
    assert all("extra ==" in r for r in requires if "gradio" in r or "ray" in r)  # extras, not the core
    assert "deepcut = deepcut.cli:main" in entry

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "outer_packages.pth").write_text("\n".join(_outer_site_packages()) + "\n")
    subprocess.run([str(vpy), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)

    run = dict(cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    where = subprocess.run([str(vpy), "-c", "import deepcut; print(deepcut.__file__)"], check=True, **run)
    assert where.stdout.strip().startswith(site), where.stdout  # the installed copy, not the clone
    cli = venv / "bin" / "deepcut"
    assert subprocess.run([str(cli), "--version"], check=True, **run).stdout.strip() == f"deepcut-gnn {version}"
    out = tmp_path / "out"
    seg = subprocess.run([str(cli), "segment", str(REPO / "assets" / "cat.jpg"), "--backbone", "color",
                          "--resolution", "160", "--out", str(out)], **run)
    assert seg.returncode == 0, seg.stderr
    assert (out / "cat_mask.png").is_file() and (out / "cat_overlay.png").is_file()
    (record,) = json.loads((out / "results.json").read_text())["files"].values()
    assert record["num_segments"] == 2 and record["size"] == [451, 300] and record["bbox"] is not None
