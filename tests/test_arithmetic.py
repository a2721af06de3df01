"""The GNN's arithmetic (``deepcut.clustering.arithmetic``): the GCN's products in bf16 against float32, the
choice ``"auto"`` makes by measurement and remembers, and a training in bf16 against the float32 one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REPO, voronoi_scene

from deepcut import DeepCut, fit
from deepcut.clustering import arithmetic
from deepcut.clustering.arithmetic import cache_key, check_precision, measure, resolve
from deepcut.clustering.gnn import gcn_forward, gcn_weight_grad
from deepcut.errors import ConfigError


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_gcn_products_in_bf16_are_float32_results_close_to_float32s():
    inp, weight, bias, grad = rand(300, 48), rand(16, 48, seed=1), rand(16, seed=2), rand(300, 16, seed=3)
    exact = torch.nn.functional.linear(inp, weight, bias)
    assert torch.equal(gcn_forward(inp, weight, bias), exact)  # float32: the fused kernel itself
    assert torch.equal(gcn_weight_grad(grad, inp), grad.T @ inp)
    low = inp.bfloat16()
    out, wgrad = gcn_forward(low, weight, bias), gcn_weight_grad(grad, low)
    assert out.dtype == wgrad.dtype == torch.float32 and out.shape == (300, 16) and wgrad.shape == (16, 48)
    assert not torch.equal(out, exact)  # the product really ran in bf16
    assert float((out - exact).norm() / exact.norm()) < 1e-2
    assert float((wgrad - grad.T @ inp).norm() / (grad.T @ inp).norm()) < 1e-2
    turned = gcn_weight_grad(grad, low, low.T.contiguous())  # the transposed product a training uses in bf16
    assert turned.is_contiguous() and turned.dtype == torch.float32 and turned.shape == (16, 48)
    assert float((turned - wgrad).norm() / wgrad.norm()) < 1e-2  # both bf16 products of the same numbers
    assert torch.equal(gcn_forward(low, weight), gcn_forward(low, weight, bias) - bias) or \
        torch.allclose(gcn_forward(low, weight), gcn_forward(low, weight, bias) - bias, atol=1e-6)


def test_named_precisions_are_themselves_and_others_are_refused(monkeypatch):
    assert resolve("fp32", "cpu", 384) == "fp32" and resolve("bf16", "cpu", 384) == "bf16"
    for bad in ("float32", "BF16", "", None, 16):
        with pytest.raises(ConfigError, match="GNN precision must be one of"):
            check_precision(bad)
    monkeypatch.setenv(arithmetic.ENV, "half")
    with pytest.raises(ConfigError, match=r"\$DEEPCUT_GNN_PRECISION must be one of .*'half'"):
        resolve("auto", "cpu", 384)
    with pytest.raises(ConfigError, match=r"\$DEEPCUT_GNN_PRECISION must be one of"):
        DeepCut("color")  # a front end fails when it starts, not at the first segmentation
    monkeypatch.setenv(arithmetic.ENV, " BF16 ")
    assert arithmetic.pinned() == "bf16" and resolve("auto", "cpu", 384) == "bf16"


def test_auto_is_float32_without_measuring_under_the_test_suites_setting_and_off_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCUT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(arithmetic, "measure", lambda *a, **k: pytest.fail("measured"))
    assert resolve("auto", "cpu", 384) == "fp32"  # DEEPCUT_TUNE=0 (conftest)
    assert not (tmp_path / arithmetic.CACHE_FILE).exists()
    monkeypatch.setenv(arithmetic.ENV, "bf16")  # a pin wins, on the CPU
    assert resolve("auto", "cpu", 384) == "bf16"
    assert resolve("auto", "meta", 384) == "fp32"  # off the CPU, auto is float32 whatever is pinned
    assert resolve("bf16", "meta", 384) == "bf16"  # (asked for by name, it is taken)


@pytest.fixture
def measuring(tmp_path, monkeypatch):
    """auto measures (into a temporary cache folder), with this process's memo empty; the measurements, counted,
    say what the test wants (``times``)."""
    monkeypatch.setenv("DEEPCUT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("DEEPCUT_TUNE", "1")
    monkeypatch.delenv(arithmetic.ENV, raising=False)
    monkeypatch.setattr(arithmetic, "_MEASURED", {})
    calls = {"n": 0, "times": {"fp32": 2e-3, "bf16": 1e-3}}

    def fake(dim, *args, **kwargs):
        calls["n"] += 1
        return dict(calls["times"])
    monkeypatch.setattr(arithmetic, "measure", fake)
    return calls


def test_auto_measures_once_stores_the_choice_and_reads_it_back(tmp_path, measuring):
    path = tmp_path / arithmetic.CACHE_FILE
    assert resolve("auto", "cpu", 24) == "bf16" and measuring["n"] == 1  # 2x faster: bf16
    entry = json.loads(path.read_text())[cache_key("cpu", 24)]
    assert entry["precision"] == "bf16" and entry["fp32_ms"] == 2.0 and entry["bf16_ms"] == 1.0
    assert resolve("auto", "cpu", 24) == "bf16" and measuring["n"] == 1  # read back, not measured again
    stored = json.loads(path.read_text())
    stored[cache_key("cpu", 24)]["precision"] = "fp32"  # what the file says is what every later call takes
    path.write_text(json.dumps(stored))
    assert resolve("auto", "cpu", 24) == "fp32" and measuring["n"] == 1
    measuring["times"] = {"fp32": 1.1e-3, "bf16": 1e-3}  # another width: 1.1x is under MIN_GAIN
    assert resolve("auto", "cpu", 32) == "fp32" and measuring["n"] == 2
    assert set(json.loads(path.read_text())) == {cache_key("cpu", 24), cache_key("cpu", 32)}  # both kept


def test_auto_keeps_small_graphs_in_float32_without_measuring(measuring, monkeypatch):
    small = arithmetic.BF16_MIN_NODES - 1
    assert resolve("auto", "cpu", 24, nodes=small) == "fp32" and measuring["n"] == 0  # nothing measured for it
    assert resolve("auto", "cpu", 24, nodes=arithmetic.BF16_MIN_NODES) == "bf16" and measuring["n"] == 1
    assert resolve("bf16", "cpu", 24, nodes=small) == "bf16"  # asked for by name: taken
    x = rand(small, 24) + 0.5
    assert fit(x, k=2, epochs=2).precision == "fp32"  # fit passes the graph's size
    assert fit(rand(arithmetic.BF16_MIN_NODES, 24) + 0.5, k=2, epochs=2).precision == "bf16"
    monkeypatch.setenv(arithmetic.ENV, "bf16")  # a pin is a pin, at any size
    assert resolve("auto", "cpu", 24, nodes=small) == "bf16"


def test_force_measures_again_once_per_process_and_a_broken_file_counts_as_empty(tmp_path, measuring, monkeypatch):
    path = tmp_path / arithmetic.CACHE_FILE
    path.write_text(json.dumps({cache_key("cpu", 24): {"precision": "fp32"}}))
    monkeypatch.setenv("DEEPCUT_TUNE", "force")
    assert resolve("auto", "cpu", 24) == "bf16" and measuring["n"] == 1  # the stored fp32 is not read
    assert resolve("auto", "cpu", 24) == "bf16" and measuring["n"] == 1  # once per process
    assert json.loads(path.read_text())[cache_key("cpu", 24)]["precision"] == "bf16"
    monkeypatch.setenv("DEEPCUT_TUNE", "1")
    monkeypatch.setattr(arithmetic, "_MEASURED", {})
    for broken in ("{not json", "[1, 2]", json.dumps({cache_key("cpu", 24): 5}),
                   json.dumps({cache_key("cpu", 24): {"precision": ["bf16"]}})):
        path.write_text(broken)
        arithmetic._MEASURED.clear()
        assert resolve("auto", "cpu", 24) == "bf16"
        assert json.loads(path.read_text())[cache_key("cpu", 24)]["precision"] == "bf16"  # replaced
    measuring["times"] = {"fp32": 1e-3, "bf16": float("inf")}  # no bf16 products in this build
    arithmetic._MEASURED.clear()
    assert resolve("auto", "cpu", 40) == "fp32"
    assert json.loads(path.read_text())[cache_key("cpu", 40)]["bf16_ms"] is None  # valid JSON, no Infinity


def test_an_unwritable_cache_measures_once_per_process(tmp_path, measuring, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DEEPCUT_CACHE_DIR", str(tmp_path / "file" / "below"))  # a folder that cannot be made
    assert resolve("auto", "cpu", 24) == "bf16" and resolve("auto", "cpu", 24) == "bf16"
    assert measuring["n"] == 1


def test_pick_takes_bf16_from_min_gain_on():
    assert arithmetic.pick({"fp32": arithmetic.MIN_GAIN, "bf16": 1.0}) == "bf16"
    assert arithmetic.pick({"fp32": arithmetic.MIN_GAIN * 0.99, "bf16": 1.0}) == "fp32"
    assert arithmetic.pick({"fp32": 1.0, "bf16": float("inf")}) == "fp32"


def test_measure_times_both_ways():
    times = measure(32, nodes=200, rounds=2)
    assert set(times) == {"fp32", "bf16"} and 0 < times["fp32"] < 1 and 0 < times["bf16"] < 1


def scene_features(k: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    image, cells = voronoi_scene(k, seed, side=160)
    return DeepCut("color").features(image, resolution=160).reshape(-1, 384).clone(), cells.reshape(-1)


@pytest.mark.parametrize("k,epochs", [(2, 10), (4, 100)])
def test_a_bf16_training_gives_the_float32_trainings_labels(k, epochs):
    """The planted regions, in float32 and with the GCN's products in bf16: the same labels on ≥ 99 % of
    the patches (benchmarks/gnn_precision.py measures it on held-out photos)."""
    for seed in range(2):
        x, _ = scene_features(4, seed)
        exact, low = fit(x, k=k, epochs=epochs, seed=seed), fit(x, k=k, epochs=epochs, seed=seed, precision="bf16")
        assert exact.precision == "fp32" and low.precision == "bf16"
        assert not np.allclose(exact.losses, low.losses, rtol=0, atol=0)  # the bf16 products really ran
        assert np.mean(exact.labels == low.labels) >= 0.99
        assert len(np.unique(low.labels)) == k


def test_the_restart_from_the_spectral_cut_trains_in_float32(vit_model):
    """Random ViT weights give a near-complete graph: the first 10 epochs leave clusters empty and NCut restarts
    from the spectral cut. The first try ran in bf16, the restart (a fresh GNN, same seed, same spectral cut)
    in float32 whatever was asked: its losses and labels are the float32 training's, bit for bit, and the
    result says fp32 (the kept GNN's)."""
    pf = vit_model.patch_features(REPO / "assets" / "cat.jpg")
    low, exact = fit(pf.features, k=4, epochs=10, precision="bf16"), fit(pf.features, k=4, epochs=10)
    assert low.restarted and exact.restarted and low.precision == exact.precision == "fp32"
    assert not np.array_equal(low.losses[:10], exact.losses[:10])  # the first try really ran in bf16
    assert np.array_equal(low.losses[10:], exact.losses[10:]) and np.array_equal(low.labels, exact.labels)
    assert len(np.unique(low.labels)) == 4


def test_segment_reports_what_the_gnn_ran_in(monkeypatch):
    dc = DeepCut("color")
    image = voronoi_scene(3, 1, side=160)[0]
    seg = dc.segment(image, resolution=160)
    assert seg.timings.gnn_precision == seg.summary()["gnn_precision"] == "fp32"  # auto, not measured in tests
    monkeypatch.setenv(arithmetic.ENV, "bf16")
    two = dc.segment(image, resolution=160, stages=2, k=2)
    assert two.timings.gnn_precision == two.summary()["gnn_precision"] == "bf16"
    with pytest.raises(ConfigError, match="GNN precision"):
        fit(rand(50, 8), precision="fast")
