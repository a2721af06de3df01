"""Thread policy: the GNN on one thread, the ViT on the chosen count, the caller's setting restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import disc_image

from deepcut import DeepCut, fit
from deepcut.cli import main
from deepcut.clustering.gnn import DeepCutGNN
from deepcut.errors import ConfigError
from deepcut.utils.threads import (
    GNN_THREADS,
    THREADS_ENV,
    ThreadPolicy,
    available_cores,
    feature_threads,
    idle_cores,
    torch_threads,
)


@pytest.fixture
def caller_threads():
    """The test's own torch setting (3, unlike any policy's choice here), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def test_torch_threads_restores_the_callers_setting_even_on_error(caller_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == caller_threads
    with pytest.raises(RuntimeError), torch_threads(2):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == caller_threads


class RecordingGNN(DeepCutGNN):
    """A real DeepCut GNN that notes the torch thread count each time it runs."""

    seen: list[int]

    def training_step(self, inp, drop, loss_grad, inp_t=None):
        self.seen.append(torch.get_num_threads())
        return super().training_step(inp, drop, loss_grad, inp_t)


def test_gnn_trains_on_one_thread_and_gives_the_callers_back(caller_threads):
    x = torch.randn(60, 16, generator=torch.Generator().manual_seed(0))
    model = DeepCutGNN.create(16, 2, torch.Generator().manual_seed(0))
    model.__class__ = RecordingGNN
    model.seen = []
    fit(x, k=2, epochs=5, model=model)
    assert model.seen and set(model.seen) == {GNN_THREADS}
    assert torch.get_num_threads() == caller_threads


def test_a_long_training_on_a_large_graph_uses_the_policys_threads(caller_threads):
    """One thread for small trainings; a large graph gets the ViT's count (here threads=2, as if 2 cores
    idled), or the idle cores as counted for the ViT pass just before; a count that is not recent is taken
    again for long trainings, and for short ones only where it needs no 30 ms wait."""
    import time

    from deepcut.utils.threads import GNN_MEASURE_WORK, GNN_PARALLEL_WORK

    policy = ThreadPolicy(threads=2)
    assert policy.gnn(1225, 10) == 2 and policy.gnn(1225, 100) == 2
    assert policy.gnn(GNN_PARALLEL_WORK // 10 - 1, 10) == GNN_THREADS
    auto = ThreadPolicy()
    auto._last = (time.monotonic(), 2)  # the ViT just counted two idle cores
    assert auto.gnn(1225, 10) == 2
    import deepcut.utils.threads as threads

    auto._last = (time.monotonic() - 60, 2)  # long ago, and no reading of the counters to count from:
    threads._last_reading.clear()  # a short training takes one thread rather than wait for a count
    assert auto.gnn(1225, 10) == GNN_THREADS and auto._last[0] < time.monotonic() - 30
    time.sleep(threads.IDLE_WINDOW * 2)  # ... but with a reading of the last few seconds it counts, no wait
    assert auto.gnn(1225, 10) >= 1 and auto._last[0] > time.monotonic() - 5
    assert auto.gnn(GNN_MEASURE_WORK, 1) >= 1 and auto._last[0] > time.monotonic() - 5  # counted again
    x = torch.randn(60, 16, generator=torch.Generator().manual_seed(0))
    model = DeepCutGNN.create(16, 2, torch.Generator().manual_seed(0))
    model.__class__ = RecordingGNN
    model.seen = []
    fit(x, k=2, epochs=3, model=model, threads=2)
    assert set(model.seen) == {2} and torch.get_num_threads() == caller_threads
    dc = DeepCut("color", threads=2)
    seen = []
    real = dc.gnn

    def spy(features, **kw):
        seen.append((len(features), kw["epochs"], dc.store.threads.gnn(len(features), kw["epochs"])))
        return real(features, **kw)

    dc.gnn = spy
    img = disc_image(288)
    seg = dc.segment(img, resolution=288)  # 36 x 36 = 1296 patches, 10 epochs
    dc.segment(disc_image(160), resolution=160, epochs=(10, 100, 10))  # 20 x 20 = 400 patches
    assert seen == [(1296, 10, 2), (400, 10, GNN_THREADS)]
    fixed = dc.correct(img, seg, separate=[((130.0, 144.0), (160.0, 144.0))])  # a correction trains as segment()
    assert len(seen) > 2 and {t for _, _, t in seen[2:]} == {2} and fixed.labels.shape == seg.labels.shape


def test_vit_runs_on_the_requested_threads(caller_threads):
    dc = DeepCut("dino_vits8", pretrained=False, threads=1)
    seen = []
    hook = dc.backbone.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(torch.get_num_threads()))
    try:
        seg = dc.segment(disc_image(64), resolution=64)
    finally:
        hook.remove()
    assert seg.labels.shape == (64, 64)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == caller_threads


def test_feature_threads_precedence(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "2")
    assert feature_threads(1) == 1  # the argument wins
    assert feature_threads(None) == 2  # then the environment
    monkeypatch.setenv(THREADS_ENV, "0")  # 0: automatic
    assert 1 <= feature_threads(None) <= available_cores()
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        feature_threads(None)
    for bad in (-1, 1.5, "x"):
        with pytest.raises(ConfigError, match="threads"):
            ThreadPolicy(bad)
    with pytest.raises(ConfigError, match="threads"):
        DeepCut("color", threads=-2)


@pytest.mark.slow
def test_idle_cores_sees_a_busy_core():
    """With every core kept busy by other processes, no core is idle: the ViT gets the floor of one
    thread instead of spin-waiting on busy cores."""
    import multiprocessing as mp

    cores = available_cores()
    if cores < 2:
        pytest.skip("needs 2 cores to keep one busy")
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    spinners = [ctx.Process(target=_spin, args=(stop,)) for _ in range(cores)]
    for p in spinners:
        p.start()
    try:
        import time

        time.sleep(0.5)
        busy = [idle_cores(window=0.2) for _ in range(3)]
    finally:
        stop.set()
        for p in spinners:
            p.join(5)
    assert min(busy) == 1  # every core is taken: only the floor of 1 thread is left
    assert 1 <= idle_cores() <= cores


@pytest.mark.slow
def test_idle_cores_counts_from_the_last_reading_without_waiting(monkeypatch):
    """A count within IDLE_REUSE seconds of the previous one runs from that reading, with no sampling wait: it
    still sees other processes' busy cores, and counts this process's own work as idle."""
    import multiprocessing as mp
    import time

    import deepcut.utils.threads as threads

    cores = available_cores()
    if cores < 2:
        pytest.skip("needs 2 cores to keep one busy")
    idle_cores(window=0.05)  # a reading to count from
    x = torch.randn(600, 600)
    with torch_threads(cores):
        start = time.monotonic()
        while time.monotonic() - start < 0.3:  # this process keeps every core busy
            x @ x
    monkeypatch.setattr(threads.time, "sleep", _no_sleep)
    assert idle_cores(window=0.2) == cores  # its own work is not competition
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    spinners = [ctx.Process(target=_spin, args=(stop,)) for _ in range(cores)]
    monkeypatch.undo()
    for p in spinners:
        p.start()
    try:
        time.sleep(0.5)
        idle_cores(window=0.05)
        time.sleep(0.3)
        monkeypatch.setattr(threads.time, "sleep", _no_sleep)
        busy = idle_cores(window=0.2)
    finally:
        stop.set()
        for p in spinners:
            p.join(5)
    assert busy == 1  # every core taken by others: the floor of 1 thread


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"idle_cores waited {seconds} s although a recent reading was there")


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def test_cli_threads_flag(tmp_path, caller_threads):
    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(disc_image(64)).save(img)
    assert main(["segment", str(img), "--out", str(tmp_path / "o"), "--backbone", "color", "--threads", "1",
                 "--resolution", "64"]) == 0
    assert torch.get_num_threads() == caller_threads
    assert main(["segment", str(img), "--out", str(tmp_path / "p"), "--threads", "0"]) == 2
    assert np.asarray(Image.open(tmp_path / "o" / "a_labels.png")).max() == 1


def test_cluster_chooses_its_threads_as_segment_does(monkeypatch, caller_threads):
    """``deepcut.cluster`` kept one thread whatever the work; it now asks the same policy as ``segment``:
    one thread for a small training, the given or ``$DEEPCUT_THREADS`` count (else the idle cores) for a
    large one; the labels do not depend on it."""
    import deepcut.clustering.fit as clustering
    from deepcut import cluster

    seen: list[int] = []
    real = clustering.fit

    def spy(*args, **kwargs):
        seen.append(kwargs["threads"])
        return real(*args, **kwargs)

    monkeypatch.setattr(clustering, "fit", spy)
    g = torch.Generator().manual_seed(0)
    small = torch.randn(60, 16, generator=g)
    large = torch.cat([torch.randn(400, 16, generator=g) + 3 * i for i in range(3)])  # 1200 nodes
    cluster(small, k=2)
    assert seen[-1] == GNN_THREADS
    one = cluster(large, k=3, epochs=50, threads=1)
    two = cluster(large, k=3, epochs=50, threads=2)
    assert seen[-2:] == [1, 2]
    assert (one == two).mean() >= 0.99 and torch.get_num_threads() == caller_threads
    monkeypatch.setenv("DEEPCUT_THREADS", "2")
    cluster(large, k=3, epochs=50)
    assert seen[-1] == 2


def test_the_spectral_cut_runs_blas_on_one_thread_and_restores_it(monkeypatch):
    """NumPy/SciPy's BLAS runs on one thread inside blas_threads(1) and inside the spectral cut's solvers (its
    spinning workers would take the cores from torch's next steps), and gets its setting back after."""
    from threadpoolctl import threadpool_info

    import deepcut.clustering.spectral as spectral
    from deepcut.utils.threads import blas_threads

    def blas() -> set[int]:
        return {int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}

    before = blas()
    assert before  # NumPy's BLAS is there to limit
    with blas_threads(1):
        assert blas() == {1}
    assert blas() == before
    seen: list[set[int]] = []
    real = spectral.kmeans2

    def spy(*args, **kwargs):
        seen.append(blas())
        return real(*args, **kwargs)

    monkeypatch.setattr(spectral, "kmeans2", spy)
    f = torch.rand(200, 8, generator=torch.Generator().manual_seed(0))
    labels = spectral.spectral_partition(torch.relu(f @ f.T), 3)
    assert labels.shape == (200,) and seen and all(s == {1} for s in seen) and blas() == before
