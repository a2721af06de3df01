"""The ViT's precision (#19): choosing it, applying it, and how faithful each one is to fp32."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, shared_data_dir

import deepcut.backbones.precision as precision_module
import deepcut.backbones.tune as tune
from deepcut import DeepCut
from deepcut.backbones.precision import PRECISION_ENV, Engine, check_precision, parse_engine, resolve_precision
from deepcut.backbones.tune import REFERENCE, Trial, candidates, pick
from deepcut.errors import ConfigError
from deepcut.model_cache import ModelCache


def test_names_and_aliases():
    assert [check_precision(p) for p in ("FP32", "bfloat16", "half", " int8 ", "auto", torch.bfloat16)] == [
        "fp32", "bf16", "fp16", "int8", "auto", "bf16"]
    for bad in ("fp64", "", 16.5, None):
        with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, fp16, int8"):
            check_precision(bad)


def test_auto_is_bf16_only_where_the_cpu_has_native_bf16(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision(None, "cpu") == resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)  # emulated bf16 is slower
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for explicitly: honoured
    assert resolve_precision("auto", "mps") == "fp32"


def test_auto_on_cuda_and_int8_off_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda") == "fp16"
    with pytest.raises(ConfigError, match="int8.*CPU only"):
        resolve_precision("int8", "cuda")


def test_the_environment_sets_the_default(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("int8", "cpu") == "int8"  # an argument wins over the environment
    monkeypatch.setenv(PRECISION_ENV, "float8")
    with pytest.raises(ConfigError, match=f"{PRECISION_ENV}='float8'"):
        resolve_precision(None, "cpu")


def test_the_default_model_uses_bf16_on_this_cpu_only_if_it_is_native(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    dc = DeepCut("dino_vits8", pretrained=False)
    assert dc.precision == ("bf16" if precision_module.cpu_has_native_bf16() else "fp32")
    assert dc.backbone.describe()["precision"] == dc.precision


def test_the_colour_backbone_computes_in_fp32_whatever_is_asked():
    assert DeepCut("color", precision="bf16").precision == "fp32"


def test_int8_quantizes_a_copy_and_fp32_goes_back(square_image):
    dc = DeepCut("dino_vits8", pretrained=False, precision="int8")
    attention = dc.backbone.blocks[11].attention
    assert type(attention.k_proj).__name__ == "Linear" and "quantized" in type(attention.k_proj).__module__
    feats = dc.features(square_image, resolution=112)
    assert feats.dtype == torch.float32
    ref = DeepCut("dino_vits8", pretrained=False, precision="fp32").features(square_image, resolution=112)  # same seed
    cos = torch.nn.functional.cosine_similarity(feats.reshape(-1, 384), ref.reshape(-1, 384), dim=-1)
    assert 0.99 < float(cos.mean()) < 1.0  # close, not identical: the products are int8
    dc.backbone.set_precision("fp32")
    dc.clear_cache()
    assert type(dc.backbone.blocks[11].attention.k_proj) is torch.nn.Linear
    assert torch.allclose(dc.features(square_image, resolution=112), ref, atol=1e-5)


def test_bf16_features_are_float32_and_the_cache_keeps_them(square_image):
    dc = DeepCut("dino_vits8", pretrained=False, precision="bf16")
    emb, _ = dc.embed(square_image, 112)
    feats = dc.features(square_image, resolution=112, layer=5, facet="value")
    assert feats.dtype == torch.float32 and all(h.dtype == torch.float32 for h in emb.state.hidden)


def test_model_cache_and_cli_pass_the_precision(tmp_path):
    pool = ModelCache("dino_vits8", pretrained=False, precision="int8", device="cpu")
    assert pool.load("dino_vits8").precision == "int8"
    with pytest.raises(ConfigError, match="precision"):
        ModelCache("dino_vits8", precision="fp8")
    cmd = [sys.executable, "-m", "deepcut", "segment", str(REPO / "assets" / "cat.jpg"), "--out", str(tmp_path)]
    bad = subprocess.run(cmd + ["--precision", "fp64"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "precision must be one of" in bad.stderr and "Traceback" not in bad.stderr
    assert not any(tmp_path.iterdir())  # refused before any work


def test_app_flag_and_environment(monkeypatch):
    from deepcut.demo.server import parse_args

    monkeypatch.setenv(PRECISION_ENV, "int8")
    assert parse_args([]).precision == "int8"
    assert parse_args(["--precision", "fp32"]).precision == "fp32"


@pytest.fixture()
def square_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)


def _held_out(shared_data: Path, count: int) -> list:
    """Every few images of the Weizmann horses and GrabCut (real photos with one object each)."""
    horses = sorted((shared_data / "weizmann_horse" / "images").glob("*"))
    grabcut = sorted((shared_data / "grabcut" / "images").glob("*"))
    if not horses or not grabcut:
        pytest.skip(f"the shared evaluation data is not at {shared_data}")
    return horses[:: max(1, len(horses) // count)][:count] + grabcut[:: max(1, len(grabcut) // count)][:count]


#: Skips a case without OpenVINO (requirements-dev.txt installs it; the library runs without it).
NEEDS_OPENVINO = pytest.mark.skipif(precision_module.openvino_module() is None, reason="OpenVINO is not installed")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["bf16", "bf16-weights+sdpa", pytest.param("openvino-bf16", marks=NEEDS_OPENVINO)])
def test_bf16_is_faithful_on_real_images(engine):
    """bf16 (the default on CPUs with native bf16 and on CUDA), autocast, with the weights cast or in OpenVINO
    (what auto may choose by measurement): feature cosine to fp32 >= 0.999 and the
    patch labels equal to fp32's on >= 98 % of the patches, on every image; the foreground mask's IoU to
    fp32's >= 0.98 on average (random weights: pretrained ones cannot be downloaded here; their graphs are
    near-complete, so on a few images which segment is the foreground is knife-edge)."""
    ref = DeepCut("dino_vits8", pretrained=False, precision="fp32")
    bf16 = DeepCut("dino_vits8", pretrained=False, precision=engine)
    ious = []
    for path in _held_out(shared_data_dir(), 8):
        a, b = ref.patch_features(path).features, bf16.patch_features(path).features
        assert float(torch.nn.functional.cosine_similarity(a, b, dim=-1).min()) >= 0.999, path.name
        sa, sb = ref.segment(path), bf16.segment(path)
        la, lb = sa.patch_labels, sb.patch_labels
        same = max(float((la == lb).mean()), float((la == 1 - lb).mean()))  # k=2: up to a swap of the labels
        assert same >= 0.98, (path.name, same)
        fa, fb = sa.foreground, sb.foreground
        ious.append(float((fa & fb).sum() / max((fa | fb).sum(), 1)))
    assert float(np.mean(ious)) >= 0.98, ious


def test_blocked_attention_equals_the_fused_kernel_and_stays_blocked():
    """bf16 / fp16 on the CPU attend a block of query rows at a time (the fused kernel gains nothing there):
    the same attention as SDPA's, never a whole (heads, T, T) map."""
    from test_highres import LargestTensor

    from deepcut.backbones.vit import ATTENTION_BLOCK, blocked_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 600, 16, generator=g) for _ in range(3))
    with LargestTensor() as probe:
        out, weights = blocked_attention(None, q, k, v, None, scaling=0.25)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.25).transpose(1, 2)
    assert weights is None and out.shape == (2, 600, 3, 16)
    assert torch.allclose(out, ref, atol=1e-5)
    assert probe.largest <= 2 * 3 * ATTENTION_BLOCK * 600  # one block of scores, not 600 x 600
    bf16 = DeepCut("dino_vits8", pretrained=False, precision="bf16")
    assert bf16.backbone.attention == "blocked"
    assert DeepCut("dino_vits8", pretrained=False, precision="fp32").backbone.attention == "sdpa"
    bf16.backbone.set_precision("fp32")
    assert bf16.backbone.attention == "sdpa"
    bf16.backbone.set_attention("eager").set_precision("bf16")  # a choice made by hand is kept
    assert bf16.backbone.attention == "eager"


# -- auto chooses by measurement (#31) -------------------------------------------------------------------
def _trial(engine: str, ms: float, cosine: float = 0.99998, error: str | None = None) -> Trial:
    return Trial(engine, ms / 1000, cosine, cosine, 1, error)


def test_the_tuner_picks_the_fastest_faithful_engine():
    trials = [_trial("fp32+sdpa", 400, 1.0), _trial("bf16+blocked", 200), _trial("bf16+sdpa", 150),
              _trial("bf16-weights+sdpa", 120, 0.99994), _trial("bf16-weights+blocked", 130, 0.99994)]
    assert pick(trials) == Engine("bf16", "sdpa", "bf16") and pick(trials).name == "bf16-weights+sdpa"
    assert pick(trials[:3]).name == "bf16+sdpa"
    assert pick([_trial("fp32+sdpa", 100, 1.0), _trial("bf16+blocked", 200)]).name == "fp32+sdpa"  # emulated bf16
    assert pick([]) == REFERENCE


def test_an_unfaithful_or_failed_engine_is_never_chosen():
    trials = [_trial("fp32+sdpa", 400, 1.0), _trial("bf16+sdpa", 100, 0.9989), _trial("bf16+blocked", 90, error="x"),
              _trial("bf16-weights+sdpa", 300, 0.999)]
    assert pick(trials).name == "bf16-weights+sdpa"  # 0.999 is faithful, 0.9989 is not
    assert pick(trials[:3]).name == "fp32+sdpa"
    assert pick([_trial("bf16+sdpa", 100, 0.99)]) == REFERENCE
    assert all(e.precision != "int8" for e in candidates("cpu")) and Engine("int8") in candidates("cpu", int8=True)


def test_engine_names_pin_an_engine_and_parse_back():
    for engine in candidates("cpu", int8=True):
        assert parse_engine(engine.name) == engine and check_precision(engine.name.upper()) == engine.name
    assert parse_engine("int8-weights+sdpa") is None and parse_engine("fp32-weights+sdpa") is None
    with pytest.raises(ConfigError, match="or an engine such as"):
        check_precision("bf16+flash")
    with pytest.raises(ConfigError, match="CPU only"):
        resolve_precision("int8+sdpa", "cuda")
    assert resolve_precision("bf16-weights+sdpa", "cpu") == "bf16"


@pytest.fixture()
def tuning(monkeypatch, tmp_path):
    """Measuring on (as outside the tests), into a cache folder of its own; ``measure`` replaced by a
    counter that reports given times. Returns the list of calls."""
    monkeypatch.setenv(tune.TUNE_ENV, "1")
    monkeypatch.setenv(tune.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    calls: list[str] = []

    def fake_measure(backbone, *args, **kwargs):
        calls.append(backbone.name)
        return [_trial("fp32+sdpa", 400, 1.0), _trial("bf16+blocked", 200), _trial("bf16+sdpa", 300),
                _trial("bf16-weights+sdpa", 120, 0.9985), _trial("bf16-weights+blocked", 180, 0.99994)]

    monkeypatch.setattr(tune, "measure", fake_measure)
    return calls


def test_the_choice_is_stored_and_a_second_model_reads_it(tuning, tmp_path):
    first = DeepCut("dino_vits8", pretrained=False)
    assert first.engine_choice.how == "measured" and first.engine == "bf16-weights+blocked"
    assert first.precision == "bf16" and first.backbone.describe()["engine"] == first.engine
    path = tmp_path / "cache" / tune.CACHE_FILE
    stamp = path.stat().st_mtime_ns
    stored = json.loads(path.read_text())["choices"]
    assert list(stored) == [first.engine_choice.key] and "dino_vits8" in first.engine_choice.key
    assert "torch " + torch.__version__ in first.engine_choice.key and "grid<=2048" in first.engine_choice.key
    second = DeepCut("dino_vits8", pretrained=False)
    assert second.engine_choice.how == "stored" and second.engine == first.engine and tuning == ["dino_vits8"]
    assert path.stat().st_mtime_ns == stamp and len(second.engine_choice.trials) == 5
    DeepCut("dino_vits16", pretrained=False)  # another backbone: its own measurement, the first one kept
    assert tuning == ["dino_vits8", "dino_vits16"] and len(json.loads(path.read_text())["choices"]) == 2
    assert DeepCut("color").engine_choice.how == "fixed" and len(tuning) == 2


def test_installing_openvino_measures_again(tuning, tmp_path, monkeypatch):
    from deepcut.backbones import openvino_engine

    monkeypatch.setattr(openvino_engine, "installed_version", lambda: None)
    before = DeepCut("dino_vits8", pretrained=False)
    assert "openvino" not in before.engine_choice.key and tuning == ["dino_vits8"]
    monkeypatch.setattr(openvino_engine, "installed_version", lambda: "2026.4.1")
    after = DeepCut("dino_vits8", pretrained=False)  # a choice made without OpenVINO among the candidates
    assert after.engine_choice.how == "measured" and tuning == ["dino_vits8", "dino_vits8"]
    assert "| openvino 2026.4.1 | dino_vits8 |" in after.engine_choice.key
    assert len(json.loads((tmp_path / "cache" / tune.CACHE_FILE).read_text())["choices"]) == 2
    assert DeepCut("dino_vits8", pretrained=False).engine_choice.how == "stored" and len(tuning) == 2


@pytest.mark.parametrize("content", [b"", b"{", b"[1, 2]", b'{"version": 1, "choices": []}', b"\x00\xff garbage",
                                     b'{"version": 99, "choices": {}}', None])
def test_a_corrupt_or_odd_cache_file_is_ignored(tuning, tmp_path, content):
    from deepcut.backbones import load_backbone

    path = tmp_path / "cache" / tune.CACHE_FILE
    path.parent.mkdir(parents=True)
    if content is None:  # an entry that names an engine auto never runs, with odd trials
        key = tune.cache_key(load_backbone("dino_vits8", pretrained=False))
        path.write_text(json.dumps({"version": 1, "choices": {key: {"engine": "int8+sdpa", "trials": [1, {"x": 2}]}}}))
    else:
        path.write_bytes(content)
    dc = DeepCut("dino_vits8", pretrained=False)
    assert dc.engine_choice.how == "measured" and dc.engine == "bf16-weights+blocked" and tuning == ["dino_vits8"]
    assert json.loads(path.read_text())["choices"][dc.engine_choice.key]["engine"] == dc.engine
    path.write_text(json.dumps({"version": 1, "choices": {dc.engine_choice.key: {"engine": "bf16+sdpa",
                                                                                  "trials": [1, {"x": 2}]}}}))
    again = DeepCut("dino_vits8", pretrained=False)
    assert again.engine_choice.how == "stored" and again.engine == "bf16+sdpa" and again.engine_choice.trials == []


def test_an_unwritable_cache_folder_is_passed_over(tuning, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(tune.CACHE_ENV, str(tmp_path / "file" / "cache"))
    assert DeepCut("dino_vits8", pretrained=False).engine == "bf16-weights+blocked"  # measured, not stored


def test_a_pinned_precision_or_engine_never_measures(tuning, monkeypatch):
    assert DeepCut("dino_vits8", pretrained=False, precision="fp32").engine == "fp32+sdpa"
    assert DeepCut("dino_vits8", pretrained=False, precision="bf16").engine == "bf16+blocked"  # the rule's engine
    dc = DeepCut("dino_vits8", pretrained=False, precision="bf16-weights+sdpa")
    assert (dc.engine, dc.precision, dc.backbone.attention, dc.engine_choice.how) == (
        "bf16-weights+sdpa", "bf16", "sdpa", "pinned")
    monkeypatch.setenv(PRECISION_ENV, "bf16+sdpa")
    assert DeepCut("dino_vits8", pretrained=False).engine == "bf16+sdpa"
    monkeypatch.setenv(tune.TUNE_ENV, "0")
    monkeypatch.delenv(PRECISION_ENV)
    rule = DeepCut("dino_vits8", pretrained=False)
    assert rule.engine_choice.how == "rule" and rule.precision == resolve_precision("auto", "cpu")
    assert tuning == []


def test_nothing_is_measured_where_nothing_can_be(tuning):
    from deepcut.backbones import load_backbone

    backbone = load_backbone("dino_vits8", pretrained=False).to("meta")
    assert tune.candidates("meta") == [] and tune.choose_engine(backbone).how == "rule" and tuning == []


def test_engines_switch_both_ways_and_the_result_names_its_engine(square_image):
    dc = DeepCut("dino_vits8", pretrained=False, precision="fp32")
    ref = dc.features(square_image, resolution=112).clone()
    for name in ("bf16-weights+sdpa", "bf16-weights+blocked", "int8+sdpa", "bf16+sdpa", "fp32+sdpa"):
        dc.backbone.set_engine(name)
        dc.clear_cache()
        feats = dc.features(square_image, resolution=112)
        assert dc.backbone.engine == name and feats.dtype == torch.float32
        cos = float(torch.nn.functional.cosine_similarity(feats.reshape(-1, 384), ref.reshape(-1, 384), dim=-1).mean())
        assert cos > (0.99 if name.startswith("int8") else 0.9999), name
    assert torch.equal(feats, ref)  # back in fp32: the float weights were never touched
    assert dc.segment(square_image, resolution=112).timings.engine == "fp32+sdpa"


def test_the_measured_choice_is_faithful_and_bounded(monkeypatch, tmp_path, square_image):
    """A real measurement (ViT-S/8, random weights, 112 px): every candidate timed, the choice one of the
    faithful, its features within cosine 0.999 of fp32's; stored; the backbone left as it was."""
    from deepcut.backbones import load_backbone

    monkeypatch.setenv(tune.TUNE_ENV, "force")
    monkeypatch.setenv(tune.CACHE_ENV, str(tmp_path))
    backbone = load_backbone("dino_vits8", pretrained=False)
    choice = tune.choose_engine(backbone, resolution=112, threads=1)
    assert choice.how == "measured" and backbone.engine == "fp32+sdpa"
    assert [t.engine for t in choice.trials] == [e.name for e in candidates("cpu")]
    assert all(t.error is None and t.faithful() for t in choice.trials), choice.trials
    assert choice.engine == pick(choice.trials) and choice.seconds < 30
    assert tune.stored_choice(choice.key, "cpu").engine == choice.engine
    fp32 = DeepCut(backbone, precision="fp32").features(square_image, resolution=112).reshape(-1, 384).clone()
    chosen = DeepCut(backbone, precision=choice.engine.name)
    feats = chosen.features(square_image, resolution=112).reshape(-1, 384)
    assert chosen.engine == choice.engine.name
    assert float(torch.nn.functional.cosine_similarity(feats, fp32, dim=-1).mean()) >= 0.999


def test_the_speed_command_prints_the_candidates(tmp_path, monkeypatch, capsys):
    from deepcut.cli import main

    monkeypatch.setenv(tune.CACHE_ENV, str(tmp_path))
    assert main(["speed", "--resolution", "64", "--rounds", "1", "--threads", "1", "--store"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].startswith("CPU ") and "torch" in lines[1]
    end = next(i for i, line in enumerate(lines) if line.startswith("stored for this machine"))
    names = [line.split()[0] for line in lines[3:end]]
    assert names == [e.name for e in candidates("cpu", int8=True)]
    assert "opt-in" in lines[end - 1] and "auto's pick" in out and "auto's stored choice" in out
    assert (tmp_path / tune.CACHE_FILE).is_file()
    # then the GNN's products, measured on one thread and stored (--store) as auto's choice for them
    assert lines[end + 1].startswith("GNN, an epoch's three big products (the GCN's 1225 x 384 by 64, the loss's "
                                     "1225 x 1225 by 4)")
    one = lines[end + 2]
    fp32_ms, bf16_ms = (float(one.split(f"{way} ")[1].split(" ms")[0]) for way in ("fp32", "bf16"))
    picked = one.split("auto's pick ")[1].split(";")[0]
    assert picked == ("bf16" if fp32_ms >= 1.25 * bf16_ms else "fp32") or abs(fp32_ms / bf16_ms - 1.25) < 0.02
    assert one.startswith("  1 thread: fp32 ") and one.endswith(f"stored: {picked}")
    assert (tmp_path / "gnn.json").is_file() and "DEEPCUT_GNN_PRECISION" in lines[-1]


def test_grid_classes_double():
    from deepcut.backbones import load_backbone

    vits8 = load_backbone("dino_vits8", pretrained=False)
    assert [tune.patch_class(n) for n in (1, 256, 257, 1225, 2048, 2049, 3136, 16384)] == [
        "grid<=256", "grid<=256", "grid<=512", "grid<=2048", "grid<=2048", "grid<=4096", "grid<=4096", "grid<=16384"]
    assert [tune.grid_class(vits8, r) for r in (None, 448, 1024)] == ["grid<=2048", "grid<=4096", "grid<=16384"]
    for patches in (1, 100, 257, 1225, 2049, 3136, 4097, 16000):  # a square image of the same class, measured for it
        side = tune.class_resolution(vits8, patches)
        assert side % 8 == 0 and tune.grid_class(vits8, side) == tune.patch_class(patches), patches


def test_another_grid_class_is_measured_once_on_its_first_use(monkeypatch, tmp_path, square_image):
    """A model made at its default resolution's class (here 64 px: 8 x 8 patches, ``grid<=256``) measures
    another class (160 px: 20 x 20, ``grid<=512``) when an image first runs at it, stores it under its
    own key, and runs that class in its engine; a later model reads both."""
    from deepcut.backbones import load_backbone

    monkeypatch.setenv(tune.TUNE_ENV, "force")
    monkeypatch.setenv(tune.CACHE_ENV, str(tmp_path))
    measured, real = [], tune.measure

    def small(backbone, engines=None, resolution=None, **kwargs):  # every torch engine, one round, 1 thread
        measured.append(resolution)
        return real(backbone, tune.candidates("cpu", openvino=False), resolution, budget_s=0.01, rounds=1, threads=1)

    monkeypatch.setattr(tune, "measure", small)
    backbone = load_backbone("dino_vits8", pretrained=False)
    backbone.default_resolution = 64
    dc = DeepCut(backbone)
    assert dc.engine_choice.how == "measured" and measured == [None]
    dc.features(square_image, resolution=64)
    dc.features(square_image, resolution=72)  # 9 x 9: the same class
    assert measured == [None]
    dc.features(square_image, resolution=160)
    assert measured == [None, 160] and dc.backbone.engine == dc.store.engines.by_class["grid<=512"].engine.name
    dc.features(square_image, resolution=152)  # 19 x 19: the same class as 20 x 20
    dc.features(square_image, resolution=64, layer=5)
    assert measured == [None, 160] and dc.backbone.engine == dc.engine
    keys = list(tune.read_choices())
    assert len(keys) == 2 and [k.rsplit(" | ", 1)[1] for k in keys] == ["grid<=256", "grid<=512"]
    assert {k.rsplit(" | ", 1)[0] for k in keys} == {dc.engine_choice.key.rsplit(" | ", 1)[0]}
    monkeypatch.setenv(tune.TUNE_ENV, "1")
    later = DeepCut(backbone)
    later.features(square_image, resolution=160)
    assert measured == [None, 160] and later.engine_choice.how == "stored"
    assert later.store.engines.by_class["grid<=512"].how == "stored"
    monkeypatch.setenv(tune.TUNE_ENV, "0")
    assert DeepCut(backbone).store.engines is None  # the rule: one engine, nothing measured
