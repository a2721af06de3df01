"""The OpenVINO engines (the ``openvino`` extra, #31): features equal to float32's within the tuning's bar,
the converted model kept on disk and only compiled by later processes, a clear error without OpenVINO."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO

import deepcut.backbones.tune as tune
from deepcut import DeepCut
from deepcut.backbones import load_backbone, openvino_engine
from deepcut.backbones.precision import Engine, check_precision, parse_engine, requested_precision, resolve_precision
from deepcut.config import SegmentConfig
from deepcut.errors import ConfigError

pytest.importorskip("openvino")  # requirements-dev.txt installs it; the library runs without it

OV = Engine("bf16", "sdpa", "fp32", "openvino")


@pytest.fixture()
def ov_cache(monkeypatch, tmp_path):
    """A cache folder of its own (the converted models go to its ``openvino/``)."""
    monkeypatch.setenv(tune.CACHE_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture()
def square_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]), dim=-1)


def test_the_names_parse_and_pin_an_openvino_engine():
    assert parse_engine("openvino-bf16") == OV and OV.name == "openvino-bf16"
    assert parse_engine("OpenVINO-fp32") == Engine("fp32", "sdpa", "fp32", "openvino")
    assert parse_engine("openvino-fp16") is None and parse_engine("openvino-bf16+sdpa") is None
    assert check_precision("openvino-bf16") == "openvino-bf16" and resolve_precision("openvino-bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="CPU only"):
        requested_precision("openvino-bf16", "cuda")
    assert tune.candidates("cpu")[-1].runtime == "openvino" and not any(
        e.runtime == "openvino" for e in tune.candidates("cpu", openvino=False))


def test_features_equal_float32s_at_any_grid_layer_and_facet(ov_cache, square_image):
    """ViT-S/8, random weights: the default layer / facet and another, at two grids (one a non-square
    image's) and a batch, from one conversion per layer and facet (traced on a 4 x 4 grid); another layer or
    facet of a cached image resumes in torch from the hidden states OpenVINO returned, without a conversion."""
    fp32 = DeepCut("dino_vits8", pretrained=False, precision="fp32")
    ov = DeepCut("dino_vits8", pretrained=False, precision="openvino-bf16")
    assert (ov.engine, ov.precision, ov.backbone.describe()["engine"]) == ("openvino-bf16", "bf16", "openvino-bf16")
    runner = ov.backbone._runners["bf16"]
    wide = np.ascontiguousarray(np.concatenate([square_image, square_image[:, ::-1]], axis=1)[:, :200])
    fresh = np.ascontiguousarray(square_image[:, ::-1])
    cases = [(square_image, 112, 11, "key", 1), (wide, 96, 11, "key", 1),  # converted once, any grid
             (square_image, 112, 5, "token", 1), (wide, 96, 3, "query", 1),  # resumed from the hidden states
             (square_image, 112, 11, "token", 1),  # one block left to run: in torch
             (fresh, 112, 5, "token", 2), (fresh, 112, 5, "key", 2)]  # a new image: a conversion of its own
    for image, resolution, layer, facet, conversions in cases:
        ref = fp32.features(image, layer=layer, facet=facet, resolution=resolution)
        got = ov.features(image, layer=layer, facet=facet, resolution=resolution)
        assert got.dtype == torch.float32 and got.shape == ref.shape
        cos = _cosine(got, ref)
        assert float(cos.mean()) >= tune.MIN_COSINE and float(cos.min()) >= 0.998, (layer, facet, resolution)
        assert runner.conversions == conversions, (layer, facet, resolution)
    assert len(list((ov_cache / "openvino").glob("*.xml"))) == 2
    assert len(ov.store.embed(square_image, 112)[0].state.hidden) == 13  # OpenVINO's 11, torch's 12th
    batch = ov.store.get_many([square_image, square_image[::-1].copy()], SegmentConfig(resolution=112))
    ref = fp32.features(square_image[::-1].copy(), resolution=112)
    assert float(_cosine(batch[1].features, ref).mean()) >= tune.MIN_COSINE and runner.conversions == 2
    assert ov.segment(square_image, resolution=112).timings.engine == "openvino-bf16"


@pytest.mark.parametrize("name", ["dinov2_vits14_reg", "dinov3_vits16"])
def test_every_family_converts_and_resumes_in_torch(ov_cache, square_image, name):
    """DINOv2 with registers and DINOv3 (its rotary tables are inputs of the graph), random weights: OpenVINO's
    features equal fp32's, and another layer of the cached image resumes in torch from the states it returned."""
    fp32 = DeepCut(name, pretrained=False, precision="fp32")
    ov = DeepCut(name, pretrained=False, precision="openvino-bf16")
    for layer, facet in [(11, "key"), (4, "value")]:
        ref = fp32.features(square_image, layer=layer, facet=facet, resolution=112)
        got = ov.features(square_image, layer=layer, facet=facet, resolution=112)
        assert float(_cosine(got, ref).mean()) >= tune.MIN_COSINE, (name, layer, facet)
    assert ov.backbone._runners["bf16"].conversions == 1


_LATER = """
import json, os, sys
os.environ["DEEPCUT_TUNE"] = "0"
import numpy as np
from deepcut import DeepCut
dc = DeepCut("dino_vits8", pretrained=False, precision="openvino-bf16")
feats = dc.features(np.full((96, 96, 3), 120, np.uint8), resolution=96)
runner = dc.backbone._runners["bf16"]
print(json.dumps({"conversions": runner.conversions, "convert_s": runner.convert_s, "shape": list(feats.shape)}))
"""


def test_a_later_process_reads_the_converted_model_and_only_compiles(ov_cache):
    dc = DeepCut("dino_vits8", pretrained=False, precision="openvino-bf16")
    assert dc.backbone.prepare(-1, "key") > 0 and dc.backbone._runners["bf16"].conversions == 1
    assert dc.backbone.prepare(11, "key") < 0.05  # compiled already, for these threads
    (xml,) = (ov_cache / "openvino").glob("*.xml")
    assert xml.with_suffix(".bin").stat().st_size > 40e6 and "dino_vits8-layer11-key-" in xml.name
    stamps = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (ov_cache / "openvino").iterdir()}
    env = {**os.environ, "PYTHONPATH": str(REPO), tune.CACHE_ENV: str(ov_cache)}
    out = subprocess.run([sys.executable, "-c", _LATER], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    later = json.loads(out.stdout.strip().splitlines()[-1])
    assert later["conversions"] == 0 and later["shape"] == [12, 12, 384], later
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (ov_cache / "openvino").iterdir()}
    assert after.keys() == stamps.keys() and all(after[n][0] == stamps[n][0] for n in stamps)  # not written again
    assert all(after[n][1] >= stamps[n][1] for n in stamps)  # but marked as used, for the pruning
    same, other = load_backbone("dino_vits8", pretrained=False), load_backbone("dino_vits8", pretrained=False)
    with torch.no_grad():
        next(other.model.parameters()).add_(1e-3)
    assert openvino_engine.model_path(same, 11, "key") == xml  # the weights' bytes name it, not the object
    assert openvino_engine.model_path(other, 11, "key") != xml != openvino_engine.model_path(same, 11, "query")


def _fake_model(folder, stem: str, size: int, age_s: float) -> object:
    xml = folder / f"{stem}.xml"
    for part in (xml, xml.with_suffix(".bin")):
        part.write_bytes(b"x" * (size // 2))
        os.utime(part, (part.stat().st_atime, part.stat().st_mtime - age_s))
    return xml


def test_pruning_keeps_the_most_recently_used_models_within_the_budget(tmp_path):
    old, mid, new = (_fake_model(tmp_path, name, 1000, age) for name, age in [("old", 300), ("mid", 200),
                                                                              ("new", 100)])
    fresh_orphan, stale_orphan = tmp_path / "half.bin", tmp_path / "crashed.bin"
    fresh_tmp, stale_tmp = tmp_path / ".x.1.2.xml", tmp_path / ".y.1.2.bin"
    for part, age in [(fresh_orphan, 10), (stale_orphan, 2 * openvino_engine.STALE_S), (fresh_tmp, 10),
                      (stale_tmp, 2 * openvino_engine.STALE_S)]:
        part.write_bytes(b"x")
        os.utime(part, (part.stat().st_atime, part.stat().st_mtime - age))
    removed = openvino_engine.prune(tmp_path, keep=None, budget=2500)
    assert sorted(p.name for p in removed) == [".y.1.2.bin", "crashed.bin", "old.bin", "old.xml"]
    assert mid.exists() and new.exists() and fresh_orphan.exists() and fresh_tmp.exists()
    removed = openvino_engine.prune(tmp_path, keep=mid, budget=1500)  # the kept one stays, however old
    assert sorted(p.name for p in removed) == ["new.bin", "new.xml"] and mid.exists()
    assert openvino_engine.prune(tmp_path, keep=mid, budget=10) == [] and mid.with_suffix(".bin").exists()
    assert openvino_engine.prune(tmp_path / "missing") == []


def test_a_conversion_deletes_least_recently_used_models_beyond_the_budget(ov_cache, square_image, monkeypatch):
    monkeypatch.setattr(openvino_engine, "MAX_STORED_BYTES", 1)  # room for the newest model only
    ov = DeepCut("dino_vits8", pretrained=False, precision="openvino-bf16")
    first = ov.features(square_image, resolution=64)
    (xml,) = (ov_cache / "openvino").glob("*.xml")
    other_features = ov.features(square_image[::-1].copy(), layer=5, facet="query", resolution=64)  # a new image
    (other,) = (ov_cache / "openvino").glob("*.xml")
    assert other != xml and "layer5-query" in other.name and not xml.with_suffix(".bin").exists()
    assert first.shape == other_features.shape


def test_auto_times_openvino_with_its_setup_apart(ov_cache, monkeypatch):
    backbone = load_backbone("dino_vits8", pretrained=False)
    trials = tune.measure(backbone, [tune.REFERENCE, OV], resolution=64, budget_s=None, rounds=1, threads=1,
                          keep_within=None)
    assert [t.engine for t in trials] == ["fp32+sdpa", "openvino-bf16"] and backbone.engine == "fp32+sdpa"
    assert trials[1].error is None and trials[1].faithful() and trials[1].setup_s > trials[1].seconds
    assert trials[0].setup_s == 0 and trials[1].runs == 1
    again = tune.measure(backbone, [tune.REFERENCE, OV], resolution=64, budget_s=None, rounds=1, threads=1,
                          keep_within=None)
    assert again[1].setup_s < trials[1].setup_s / 3 and again[1].faithful()  # read back and compiled, not converted
    monkeypatch.setenv(tune.TUNE_ENV, "force")
    monkeypatch.setattr(tune, "pick", lambda trials, min_cosine=tune.MIN_COSINE: OV)
    choice = tune.choose_engine(backbone, resolution=64, threads=1)
    assert choice.engine == OV and tune.stored_choice(choice.key, "cpu").engine == OV
    stored = json.loads((ov_cache / tune.CACHE_FILE).read_text())["choices"][choice.key]
    assert [t["engine"] for t in stored["trials"]] == [e.name for e in tune.candidates("cpu")]
    assert next(t for t in stored["trials"] if t["engine"] == "openvino-bf16")["setup_s"] >= 0


_ABSENT = """
import sys
sys.modules["openvino"] = None  # as if it were not installed
import os
os.environ["DEEPCUT_TUNE"] = "0"
from deepcut import DeepCut
from deepcut.backbones import tune
from deepcut.config import SegmentConfig
from deepcut.errors import ConfigError
assert not any(e.runtime == "openvino" for e in tune.candidates("cpu")), tune.candidates("cpu")
for how in ("argument", "environment"):
    try:
        if how == "argument":
            DeepCut("dino_vits8", pretrained=False, precision="openvino-bf16")
        else:
            os.environ["DEEPCUT_PRECISION"] = "openvino-fp32"
            DeepCut("dino_vits8", pretrained=False)
    except ConfigError as e:
        print(how, "->", e)
    else:
        raise SystemExit(f"no error by {how}")
print(DeepCut("dino_vits8", pretrained=False, precision="auto").engine)
"""


def test_without_openvino_it_is_no_candidate_and_naming_it_says_what_to_install():
    env = {k: v for k, v in os.environ.items() if k != "DEEPCUT_PRECISION"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", _ABSENT], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("argument -> precision 'openvino-bf16' needs OpenVINO")
    assert all("pip install 'deepcut-gnn[openvino]'" in line for line in lines[:2])
    assert lines[1].startswith("environment -> DEEPCUT_PRECISION='openvino-fp32'")
    assert not lines[2].startswith("openvino")  # auto without OpenVINO: a torch engine
