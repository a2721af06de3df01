"""High resolution: memory-efficient attention in the ViT; above ``DENSE_MAX_NODES`` nodes a compact graph
that is the dense one (every pair, no float32 ``N x N`` tensor), and above ``COMPACT_MAX_NODES`` a sparse
graph that agrees with the dense one when its k-NN holds every pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO, disc_image, disc_mask, iou
from torch.utils._python_dispatch import TorchDispatchMode

from deepcut import DeepCut, SegmentConfig
from deepcut.clustering.fit import fit
from deepcut.clustering.gnn import DeepCutGNN, gcn_input_graph, gcn_normalize
from deepcut.clustering.losses import cc_loss, cc_loss_lowrank, ncut_loss
from deepcut.clustering.spectral import spectral_fit
from deepcut.errors import ConfigError
from deepcut.features.store import FeatureStore
from deepcut.graph.large import knn_gram
from deepcut.graph.patch_graph import (
    COMPACT_MAX_NODES,
    DENSE_MAX_NODES,
    CompactAffinity,
    PatchGraph,
    SparseAffinity,
    affinity,
    compact_affinity,
    graph_kind,
    graph_of,
    knn_affinity,
    normalized_cut,
    score_graph,
)
from deepcut.stages.run import run_stages
from deepcut.utils.matching import best_matching, iou_matrix


class LargestTensor(TorchDispatchMode):
    """Records the element count of the largest dense tensor any torch operation produces (:attr:`largest`),
    and of the largest of each dtype (:attr:`by_dtype`)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.by_dtype: dict[torch.dtype, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.largest = max(self.largest, t.numel())
                self.by_dtype[t.dtype] = max(self.by_dtype.get(t.dtype, 0), t.numel())
        return out


def mean_matched_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mean IoU of the labels of ``a`` and ``b`` under the best one-to-one renaming (an unmatched
    label counts 0)."""
    _, _, scores = iou_matrix(a, b)
    pairs = best_matching(scores)
    return float(sum(scores[r, c] for r, c in pairs) / max(scores.shape))


def random_features(n: int = 120, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, d, generator=g) * 2
    return centres[torch.arange(n) % 3] + torch.randn(n, d, generator=g) + 0.3


# -- attention ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dino_vits8", "dinov2_vits14_reg"])
def test_sdpa_attention_equals_eager(name, vit_model):
    bb = (vit_model if name == "dino_vits8" else DeepCut(name, pretrained=False, precision="fp32")).backbone
    assert bb.attention == "sdpa" and bb.describe()["attention"] == "sdpa"
    img = np.random.default_rng(0).integers(0, 255, (2, 84, 112, 3), dtype=np.uint8)
    wanted = [(11, "key"), (11, "token"), (3, "value")]
    sdpa = [bb.facet(bb.embed(img, None), layer, facet) for layer, facet in wanted]
    bb.set_attention("eager")
    try:
        eager = [bb.facet(bb.embed(img, None), layer, facet) for layer, facet in wanted]
    finally:
        bb.set_attention("sdpa")
    for a, b in zip(sdpa, eager, strict=False):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    with pytest.raises(ConfigError, match="attention"):
        bb.set_attention("flash")


def test_sdpa_never_materialises_an_attention_matrix(vit_model):
    """The eager path builds the ``(heads, T, T)`` attention maps; SDPA builds nothing that large."""
    bb = vit_model.backbone
    img = np.random.default_rng(1).integers(0, 255, (1, 256, 256, 3), dtype=np.uint8)  # 32 x 32 patches
    tokens = 32 * 32 + 1
    maps = bb.heads * tokens * tokens
    seen = {}
    for impl in ("eager", "sdpa"):
        bb.set_attention(impl)
        with LargestTensor() as probe:
            bb.facet(bb.embed(img, None), 11, "key")
        seen[impl] = probe.largest
    bb.set_attention("sdpa")
    assert seen["eager"] >= maps  # the probe does see attention maps where they exist
    assert seen["sdpa"] < maps / 3  # the MLP's (T, 4 D) is the largest left


# -- the sparse graph ---------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["ncut", "cc"])
def test_knn_graph_with_every_pair_is_the_dense_graph(loss):
    x = random_features()
    n = x.shape[0]
    dense = affinity(x, loss, alpha=3.0)
    sp = knn_affinity(x, loss, alpha=3.0, neighbours=n)
    assert torch.allclose(sp.matrix().to_dense(), dense, atol=1e-5)
    s = torch.softmax(torch.randn(n, 3, generator=torch.Generator().manual_seed(2)), dim=-1)
    if loss == "ncut":
        for a, b in zip(ncut_loss(sp.matrix(), s), ncut_loss(dense, s), strict=False):
            assert torch.allclose(a, b, atol=1e-5)
    else:  # exact over all pairs, with or without the k-NN graph
        ref = cc_loss(dense, s)
        assert torch.allclose(cc_loss_lowrank(x, sp.offset, s), ref, rtol=1e-5)
        assert torch.allclose(cc_loss(sp.matrix(), s), ref, rtol=1e-5)
    gcn_dense = gcn_normalize(gcn_input_graph(dense))
    gcn_sparse = gcn_normalize(gcn_input_graph(sp.matrix()))
    assert gcn_sparse.is_sparse and torch.allclose(gcn_sparse.to_dense(), gcn_dense, atol=1e-6)
    assert torch.allclose(DeepCutGNN.propagate(x, gcn_input_graph(sp.matrix())),
                          DeepCutGNN.propagate(x, gcn_input_graph(dense)), atol=1e-5)


def test_cc_lowrank_loss_and_gradient_equal_the_dense_ones():
    x = random_features(80, 8)
    offset = float((x @ x.T).max()) / 2.5
    s1 = torch.softmax(torch.randn(80, 4, generator=torch.Generator().manual_seed(3)), -1).requires_grad_()
    s2 = s1.detach().clone().requires_grad_()
    a = cc_loss_lowrank(x, offset, s1)
    b = cc_loss(x @ x.T - offset, s2)
    a.backward()
    b.backward()
    assert torch.allclose(a, b, rtol=1e-5)
    assert torch.allclose(s1.grad, s2.grad, rtol=1e-4, atol=1e-3)


def test_knn_graph_is_symmetric_chunked_and_keeps_the_nearest():
    x = random_features(200, 12, seed=4)
    w = x @ x.T
    cols, vals, top = knn_gram(x, 10, chunk_elements=200 * 7)  # 7 rows at a time
    cols1, vals1, _ = knn_gram(x, 10, chunk_elements=1 << 20)
    assert top == pytest.approx(float(w.max()), rel=1e-6)
    assert torch.equal(torch.sort(cols, 1).values, torch.sort(cols1, 1).values)
    assert torch.allclose(torch.sort(vals, 1).values, torch.sort(w, 1).values[:, -10:], atol=1e-5)
    sp = knn_affinity(x, "ncut", neighbours=10)
    m = sp.matrix().to_dense()
    assert torch.equal(m, m.T)  # exactly symmetric
    assert ((m > 0).sum(1) >= 1).all() and sp.num_edges < 200 * 200 / 4
    assert torch.allclose(sp.degree(), m.sum(1))
    assert float(m.max()) == pytest.approx(1.0)  # divided by max(W) over all pairs


# -- the compact graph --------------------------------------------------------------------------------
def odd_features(n: int = 150, d: int = 12, seed: int = 6) -> torch.Tensor:
    """Planted clusters plus the cases the GCN's self-loop rule treats apart: a zero row (its NCut diagonal
    is 0) and short rows (their CC diagonal ``‖f‖² - max / alpha`` is negative)."""
    x = random_features(n, d, seed)
    x[7] = 0.0
    x[11] *= 0.05
    x[12] *= 0.1
    return x


@pytest.mark.parametrize("loss", ["ncut", "cc"])
@pytest.mark.parametrize("chunk", [150 * 7, 1 << 22])  # 7 rows a block (blocks off the diagonal's grid), or one
def test_compact_graph_is_the_dense_graph(loss, chunk):
    """Every quantity the GNN trains on equals the dense graph's: degrees, the GCN's propagation ``Â X``
    (self-loops included), the positive check, NCut's ``A S``, loss and gradient, CC's loss."""
    x = odd_features()
    n = x.shape[0]
    dense = affinity(x, loss, alpha=3.0)
    cp = compact_affinity(x, loss, alpha=3.0, chunk_elements=chunk)
    assert cp.loss == loss and cp.num_nodes == n and cp.has_positive()
    assert cp.top == pytest.approx(float((x @ x.T).max()), rel=1e-6)
    assert torch.allclose(cp.degree(), dense.sum(1), rtol=1e-5, atol=1e-4)
    assert torch.allclose(cp.diagonal, dense.diagonal(), rtol=1e-5, atol=1e-5)
    ref = DeepCutGNN.propagate(x, gcn_input_graph(dense))
    assert torch.allclose(cp.propagate(), ref, rtol=1e-3, atol=1e-4 * float(ref.abs().max()))
    s1 = torch.softmax(torch.randn(n, 3, generator=torch.Generator().manual_seed(8)), -1).requires_grad_()
    s2 = s1.detach().clone().requires_grad_()
    if loss == "ncut":
        assert cp.values.dtype == torch.float16 and cp.values.shape == (n, n)
        assert torch.allclose(cp.values.float(), dense, atol=1e-3)
        assert torch.allclose(cp.matmul(s1.detach()), dense @ s1.detach(), rtol=1e-3, atol=1e-4)
        a, b = sum(ncut_loss(cp, s1)), sum(ncut_loss(dense, s2))
    else:
        assert cp.values is None  # CC keeps no matrix
        a, b = cc_loss_lowrank(x, cp.offset, s1), cc_loss(dense, s2)
    a.backward()
    b.backward()
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-4)
    assert torch.allclose(s1.grad, s2.grad, rtol=1e-3, atol=1e-3 * float(s2.grad.abs().max()))


def test_compact_graph_without_a_positive_pair():
    x = torch.zeros(30, 4)
    cp = compact_affinity(x, "ncut")
    assert not cp.has_positive() and float(cp.values.float().abs().max()) == 0.0
    r = fit(x, k=2, adj=cp)
    assert np.unique(r.labels).size == 1 and "no positive affinity" in r.note
    cc = compact_affinity(torch.randn(30, 4), "cc", alpha=1.0)  # the threshold is max(W): nothing is above it
    assert not cc.has_positive() and not bool((affinity(cc.features, "cc", alpha=1.0) > 0).any())


@pytest.mark.parametrize("loss", ["ncut", "cc"])
def test_fit_on_the_compact_graph_is_fit_on_the_dense_graph(loss):
    """Trained on a planted graph of 600 nodes, the GNN gives the same labels and the same losses, epoch
    by epoch, on the compact graph as on the dense one."""
    x = random_features(600, 16, seed=9)
    truth = np.arange(600) % 3
    dense = fit(x, k=3, loss=loss, alpha=2.0, epochs=30, graph=PatchGraph(x, mode="dense"))
    compact = fit(x, k=3, loss=loss, alpha=2.0, epochs=30, graph=PatchGraph(x, mode="compact"))
    assert np.array_equal(dense.labels, compact.labels)
    assert np.allclose(dense.losses, compact.losses, rtol=1e-4, atol=1e-5)
    assert np.allclose(dense.soft, compact.soft, atol=1e-3)
    assert mean_matched_iou(compact.labels, truth) >= 0.95
    with pytest.raises(ConfigError, match="compact graph was built for"):
        fit(x, k=2, loss="cc" if loss == "ncut" else "ncut", adj=compact_affinity(x, loss))


def test_segmentation_on_the_compact_graph_is_the_dense_one(color_model):
    """Stages 1-3 of the pipeline on the compact graph (subgraphs rebuilt per stage) give the dense graph's
    labels, and the normalized cut scored on it is the dense graph's."""
    img = disc_image(160, two_tone=True, striped_bg=True)
    cfg = SegmentConfig(resolution=160, k=2, stages=3, epochs=(20, 40, 20))
    dense = segment_graph(color_model, img, cfg, "dense", 64)
    compact = segment_graph(color_model, img, cfg, "compact", 64)
    assert len(np.unique(dense)) >= 3 and np.array_equal(dense, compact)
    pf = color_model.store.get(img, cfg)
    graph = PatchGraph(pf.features, None, "compact")
    scored = score_graph(graph)
    assert isinstance(scored, CompactAffinity) and graph.is_sparse  # too big for float32: spectral uses the k-NN
    assert normalized_cut(scored, dense) == pytest.approx(normalized_cut(affinity(pf.features), dense), rel=1e-4)


@pytest.mark.parametrize("k", [3, 5])
def test_the_spectral_restart_on_the_compact_graph(vit_model, k):
    """A near-complete graph (random ViT weights) leaves clusters empty after 10 epochs; on the compact graph
    too, NCut restarts from a spectral cut (of the graph's k-NN part: a start, not the objective) and finds k."""
    pf = vit_model.patch_features(REPO / "assets" / "cat.jpg")
    graph = PatchGraph(pf.features, mode="compact")
    r = fit(pf.features, k=k, epochs=10, graph=graph)
    assert len(np.unique(r.labels)) == k and r.restarted and len(r.losses) == 20
    assert r.note.startswith("NCut restarted from the graph's spectral cut")
    assert isinstance(graph.cluster_affinity("ncut").knn(), SparseAffinity)


def test_graph_kinds_by_size():
    assert [graph_kind(n) for n in (1, DENSE_MAX_NODES, DENSE_MAX_NODES + 1, COMPACT_MAX_NODES,
                                    COMPACT_MAX_NODES + 1)] == ["dense", "dense", "compact", "compact", "sparse"]
    assert {graph_kind(10 ** 6, m) for m in ("dense", "compact", "sparse")} == {"dense", "compact", "sparse"}
    with pytest.raises(ConfigError, match="graph mode"):
        graph_kind(10, "half")
    # 1024 px with 8-px patches (about 16384 patches, whatever the aspect ratio) is compact: 2 bytes a pair
    assert graph_kind(128 * 128) == graph_kind(105 * 157) == "compact"
    assert COMPACT_MAX_NODES ** 2 * 2 <= 800 * 2 ** 20


def test_memory_estimate_follows_the_graph_kind():
    """The request's memory estimate counts the compact graph's float16 matrix (and its blocks) between the
    dense and the sparse sizes, and agrees with the graph module's thresholds."""
    import deepcut.graph.large as large_graphs
    from deepcut.utils import memory

    assert (memory.DENSE_NODES, memory.COMPACT_NODES, memory.CHUNK, memory.NEIGHBOURS) == (
        DENSE_MAX_NODES, COMPACT_MAX_NODES, large_graphs.CHUNK_ELEMENTS, large_graphs.DEFAULT_NEIGHBOURS)
    n, d = 128 * 128, 384
    compact = memory.graph_bytes(n, d)
    assert n * n * 2 + n * d * 4 < compact < 0.65 * 2 ** 30  # 1024 px: the matrix is 512 MB, all of it under 2 GB
    assert compact < 3 * n * n * 4 / 4  # a quarter of what the dense graph would need
    assert memory.graph_bytes(COMPACT_MAX_NODES + 1, d) < memory.graph_bytes(COMPACT_MAX_NODES, d) / 2  # sparse


def test_sparse_graph_of_wrong_loss_is_refused():
    x = random_features()
    with pytest.raises(ConfigError, match="built for"):
        fit(x, k=2, loss="cc", adj=knn_affinity(x, "ncut"))
    with pytest.raises(ConfigError, match="graph mode"):
        PatchGraph(x, mode="lazy")


def segment_graph(model: DeepCut, image: np.ndarray, cfg: SegmentConfig, mode: str, neighbours: int) -> np.ndarray:
    pf = model.store.get(image, cfg)
    graph = PatchGraph(pf.features, None, mode, neighbours)
    assert graph.kind == mode and graph.is_sparse == (mode != "dense")
    return run_stages(graph, pf.grid, cfg).labels


@pytest.mark.parametrize("loss", ["ncut", "cc"])
@pytest.mark.parametrize("stages", [1, 3])
def test_sparse_agrees_with_dense_below_the_threshold(color_model, loss, stages):
    """With every pair among the neighbours the sparse path is the dense one: the labels of stage 1
    and of stages 2-3 (subgraphs rebuilt per stage) agree (mean IoU >= 0.95)."""
    img = disc_image(160, two_tone=True, striped_bg=True)
    cfg = SegmentConfig(resolution=160, loss=loss, k=3 if stages == 1 else 2, stages=stages, epochs=(20, 40, 20))
    n = 20 * 20
    dense = segment_graph(color_model, img, cfg, "dense", n)
    sparse = segment_graph(color_model, img, cfg, "sparse", n)
    assert len(np.unique(dense)) >= 2
    assert mean_matched_iou(dense, sparse) >= 0.95


def test_spectral_baseline_on_the_sparse_graph(color_model):
    img = disc_image(160, two_tone=False)
    pf = color_model.store.get(img, SegmentConfig(resolution=160))
    n = pf.features.shape[0]
    dense = spectral_fit(pf.features, k=2, graph=PatchGraph(pf.features, mode="dense"))
    sparse = spectral_fit(pf.features, k=2, graph=PatchGraph(pf.features, mode="sparse", neighbours=n))
    assert mean_matched_iou(dense.labels, sparse.labels) >= 0.99
    few = spectral_fit(pf.features, k=2, graph=PatchGraph(pf.features, mode="sparse", neighbours=16))
    assert mean_matched_iou(dense.labels, few.labels) >= 0.9
    with pytest.raises(ConfigError, match="too many"):
        spectral_fit(pf.features, k=2, graph_kind="tokencut", graph=PatchGraph(pf.features, mode="sparse"))


@pytest.mark.parametrize("loss", ["ncut", "cc"])
def test_above_the_threshold_no_float32_n_by_n_tensor_is_made(color_model, loss):
    """Just above ``DENSE_MAX_NODES`` patches the whole segmentation (features, graph, GNN, stages)
    runs on the compact graph: no float32 tensor of ``N²`` elements (NCut's one ``N x N`` matrix is
    float16; CC has none), no cached Gram matrix, and the disc is found."""
    img = disc_image(520)
    cfg = SegmentConfig(resolution=520, loss=loss, k=2)
    pf = color_model.store.get(img, cfg)
    n = pf.features.shape[0]
    assert DENSE_MAX_NODES < n <= COMPACT_MAX_NODES and pf.gram is None and graph_of(pf).kind == "compact"
    assert isinstance(graph_of(pf).cluster_affinity(loss), CompactAffinity)
    color_model.clear_cache()
    with LargestTensor() as probe:
        seg = color_model.segment(img, cfg)
    assert probe.by_dtype[torch.float32] < n * n / 4, (probe.by_dtype, n * n)
    if loss == "ncut":
        assert probe.largest == probe.by_dtype[torch.float16] == n * n
    else:
        assert probe.largest < n * n / 4, (probe.largest, n * n)
    assert iou(seg.foreground, disc_mask(520)) > 0.9


@pytest.mark.parametrize("loss", ["ncut", "cc"])
def test_above_the_compact_threshold_the_graph_is_sparse(color_model, loss, monkeypatch):
    """Above ``COMPACT_MAX_NODES`` (lowered here to keep the test small) nothing ``N x N`` is made at all:
    the k-NN graph, and the disc is still found."""
    import deepcut.graph.patch_graph as graph_module

    img = disc_image(520)
    cfg = SegmentConfig(resolution=520, loss=loss, k=2)
    n = color_model.store.get(img, cfg).features.shape[0]
    monkeypatch.setattr(graph_module, "COMPACT_MAX_NODES", n - 1)
    assert PatchGraph(torch.zeros(n, 2)).kind == "sparse"
    assert isinstance(PatchGraph(torch.randn(n, 8)).cluster_affinity(loss), SparseAffinity)
    color_model.clear_cache()
    with LargestTensor() as probe:
        seg = color_model.segment(img, cfg)
    assert probe.largest < n * n / 4, (probe.largest, n * n)
    assert iou(seg.foreground, disc_mask(520)) > 0.9


NO_CUDA = "no CUDA GPU on this machine: the CUDA variant runs only there"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason=NO_CUDA))])
@pytest.mark.parametrize("loss", ["ncut", "cc"])
def test_sparse_graph_on_a_device_recovers_planted_clusters(device, loss):
    x = random_features(300, 16, seed=5).to(device)
    truth = np.arange(300) % 3
    r = fit(x, k=3, loss=loss, alpha=2.0, epochs=40, graph=PatchGraph(x, mode="sparse", neighbours=16))
    assert next(r.model.parameters()).device.type == device
    assert mean_matched_iou(r.labels, truth) >= 0.95


def test_feature_cache_is_bounded_in_bytes(color_model):
    store = FeatureStore(color_model.backbone, cache_size=10, max_bytes=1)
    cfg = SegmentConfig(resolution=96)
    for i in range(3):
        store.get(disc_image(96 + 8 * i), cfg)
        assert len(store._cache) == 1  # only the last one fits (and it always stays)
    store = FeatureStore(color_model.backbone, cache_size=10)
    for i in range(3):
        store.get(disc_image(96 + 8 * i), cfg)
    assert len(store._cache) == 3
