"""The GNN clustering: planted clusters, the losses against their formulas, determinism, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO, voronoi_scene
from torch_geometric.nn import DenseGCNConv, GCNConv, dense_mincut_pool

from deepcut import cluster, fit
from deepcut.clustering.checks import as_features
from deepcut.clustering.fit import affinity, affinity_from_gram, compact_labels, restart_words
from deepcut.clustering.gnn import DeepCutGNN, gcn_input_graph, gcn_normalize
from deepcut.clustering.losses import cc_loss, ncut_loss
from deepcut.errors import ConfigError
from deepcut.graph.patch_graph import graph_of


def planted(n_per: int, centers: int, dim: int = 384, noise: float = 0.35, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    truth = np.repeat(np.arange(centers), n_per)
    rng.shuffle(truth)
    return (c[truth] + noise * rng.normal(size=(truth.size, dim))).astype(np.float32), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True if the two labelings are equal up to a renaming of labels."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=False))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("k", [2, 3, 4])
def test_ncut_recovers_planted_clusters(k):
    x, truth = planted(150, k)
    labels = cluster(x, k=k, loss="ncut", epochs=30)
    assert labels.shape == truth.shape
    assert same_partition(labels, truth)


def test_cc_finds_the_number_of_clusters_itself():
    x, truth = planted(150, 3)
    labels = cluster(x, k=10, loss="cc", alpha=3.0, epochs=30)
    assert len(np.unique(labels)) == 3
    assert same_partition(labels, truth)
    assert labels.max() == 2  # consecutive labels


def test_torch_input_matches_numpy_input():
    x, _ = planted(60, 2, seed=1)
    assert np.array_equal(cluster(x, k=2), cluster(torch.from_numpy(x), k=2))


def paper_ncut(adj: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The paper's loss written literally: -tr(SᵀAS)/tr(SᵀDS) + ‖SᵀS/‖SᵀS‖_F − I_k/√k‖_F."""
    d = torch.diag(adj.sum(1))
    cut = -torch.trace(s.T @ adj @ s) / torch.trace(s.T @ d @ s)
    ss = s.T @ s
    k = s.shape[1]
    ortho = torch.norm(ss / torch.norm(ss) - torch.eye(k) / torch.norm(torch.eye(k)))
    return cut + ortho


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ncut_loss_equals_paper_formula_and_dense_mincut_pool(seed):
    g = torch.Generator().manual_seed(seed)
    n, k = 70, 4
    a = torch.rand(n, n, generator=g)
    a = (a + a.T) / 2
    logits = torch.randn(n, k, generator=g, requires_grad=True)
    s = torch.softmax(logits, -1)

    cut, ortho = ncut_loss(a, s)
    ours = cut + ortho
    (g_ours,) = torch.autograd.grad(ours, logits)
    ref = paper_ncut(a, torch.softmax(logits, -1))
    (g_ref,) = torch.autograd.grad(ref, logits)
    _, _, pcut, portho = dense_mincut_pool(torch.randn(n, 3, generator=g), a, logits)
    (g_pyg,) = torch.autograd.grad(pcut + portho, logits)

    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(ours, pcut + portho, atol=1e-6)
    assert torch.allclose(g_ours, g_ref, atol=1e-6)
    assert torch.allclose(g_ours, g_pyg, atol=1e-6)
    assert -1.0 <= cut.item() <= 0.0


def test_cc_loss_equals_elementwise_formula():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(50, 8, generator=g)
    a = affinity(f, "cc", alpha=3.0)
    s = torch.softmax(torch.randn(50, 5, generator=g), -1)
    assert torch.allclose(cc_loss(a, s), -(a * (s @ s.T)).sum(), rtol=1e-5)


def test_affinity_definitions():
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    w = f @ f.T
    a = affinity(f, "ncut")
    assert torch.allclose(a, w.clamp(min=0) / 4.0)
    assert torch.allclose(affinity(f, "cc", alpha=2.0), w - 2.0)


def test_affinity_from_a_gram_leaves_it_alone_unless_told_in_place():
    """affinity_from_gram keeps a cached Gram matrix as it was; in place (a Gram nobody else holds, as
    affinity() makes) it becomes the affinity itself, with the same values."""
    f = torch.randn(30, 8, generator=torch.Generator().manual_seed(2))
    for loss in ("ncut", "cc"):
        gram = f @ f.T
        kept = gram.clone()
        a = affinity_from_gram(gram, loss, 3.0)
        assert torch.equal(gram, kept) and a.data_ptr() != gram.data_ptr()
        b = affinity_from_gram(gram, loss, 3.0, in_place=True)
        assert b.data_ptr() == gram.data_ptr() and torch.allclose(a, b) and torch.allclose(affinity(f, loss), a)
    zero = -torch.ones(3, 3)  # no positive pair: NCut's affinity is all zeros, in place too
    assert torch.equal(affinity_from_gram(zero, "ncut", in_place=True), torch.zeros(3, 3))


def test_features_must_be_finite_whatever_their_sum():
    """NaN or an infinity anywhere is refused (even +inf beside -inf, whose sum is NaN); finite features whose
    float32 sum overflows are taken (the sum is only a quick first look)."""
    for bad in ([[np.nan, 1.0], [0.0, 1.0]], [[np.inf, 1.0], [0.0, 1.0]], [[np.inf, -np.inf], [1.0, 1.0]]):
        with pytest.raises(ConfigError, match="NaN or infinite"):
            fit(np.array(bad, np.float32), k=2, epochs=1)
    huge = torch.full((4, 2), 3e38)  # every value finite, their float32 sum is not
    assert not torch.isfinite(huge.sum())
    assert torch.equal(as_features(huge), huge)


def test_gcn_input_graph_reuses_a_graph_that_needs_no_change():
    """NCut's affinity of nonzero features (no negative entry, a positive diagonal) is the GCN's graph as it is:
    returned itself, not copied; any other graph is a new tensor, its input left unchanged."""
    f = torch.rand(20, 4, generator=torch.Generator().manual_seed(3)) + 0.1
    a = affinity(f, "ncut")
    assert gcn_input_graph(a) is a
    signed = affinity(f, "cc")
    kept = signed.clone()
    g = gcn_input_graph(signed)
    assert g is not signed and torch.equal(signed, kept) and (g >= 0).all()
    hole = a.clone()
    hole[0, 0] = 0.0
    assert torch.equal(gcn_input_graph(hole).diagonal()[:1], torch.ones(1)) and hole[0, 0] == 0


def test_gcn_fast_path_equals_dense_gcn_conv_and_authors_sparse_gcn():
    """Â X Θ precomputed once equals PyG's DenseGCNConv(X, A) and the authors' edge-list GCNConv,
    both given the GNN's own GCN weight and bias (they are oracles, not part of the GNN)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 16, generator=g) + 1.0
    a = affinity(x, "ncut")
    graph = gcn_input_graph(a)
    net = DeepCutGNN.create(16, 3, g).eval()
    assert net.in_dim == 16 and net.k == 3
    oracle = DenseGCNConv(16, 64)
    oracle.lin.weight.data.copy_(net.gcn_weight)
    oracle.bias.data.copy_(net.gcn_bias)
    dense = oracle(x, graph, add_loop=False).squeeze(0)
    fast = net.gcn(DeepCutGNN.propagate(x, graph))
    assert torch.allclose(dense, fast, atol=1e-5)
    assert torch.allclose(net(x, graph), net.head(dense), atol=1e-5)
    assert torch.allclose(net(x, graph), net.forward_propagated(DeepCutGNN.propagate(x, graph)), atol=1e-5)

    # The authors' formulation: an edge for every positive pair, PyG's sparse GCNConv.
    edge_index = (a > 0).nonzero().T
    sparse = GCNConv(16, 64)
    sparse.lin.weight.data.copy_(net.gcn_weight)
    sparse.bias.data.copy_(net.gcn_bias)
    out = sparse(x, edge_index, a[edge_index[0], edge_index[1]])
    assert (graph.sum(1) >= 1).all()  # no degree clamping at play here
    assert torch.allclose(out, dense, atol=1e-5)


def test_gcn_graph_keeps_positive_self_loops_and_fills_missing_ones():
    a = torch.tensor([[0.5, 0.2, -0.1], [0.2, -0.3, 0.4], [-0.1, 0.4, 1.0]])
    graph = gcn_input_graph(a)
    assert torch.equal(graph.diagonal(), torch.tensor([0.5, 1.0, 1.0]))
    assert (graph >= 0).all() and graph[0, 2] == 0
    assert torch.allclose(gcn_normalize(torch.eye(3) * 4), torch.eye(3))


def test_deterministic_for_a_seed_and_no_global_rng_use():
    x, _ = planted(80, 3, seed=3)
    state = torch.get_rng_state()
    r1 = fit(x, k=3, epochs=15, seed=7)
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(123)  # the global RNG must not matter
    r2 = fit(x, k=3, epochs=15, seed=7)
    r3 = fit(x, k=3, epochs=15, seed=8)
    assert r1.losses == r2.losses and np.array_equal(r1.labels, r2.labels)
    assert r1.losses != r3.losses
    assert len(r1.losses) == 15 and r1.losses[-1] < r1.losses[0]


@pytest.mark.parametrize("loss", ["ncut", "cc"])
def test_constant_features_give_one_cluster_without_nan(loss):
    x = np.ones((30, 16), np.float32)
    r = fit(x, k=3, loss=loss, epochs=5)
    assert np.isfinite(r.soft).all() and all(np.isfinite(r.losses))
    assert len(np.unique(r.labels)) == 1


def test_zero_features_and_single_node():
    r = fit(np.zeros((20, 8), np.float32), k=2)
    assert (r.labels == 0).all() and r.note and "one cluster" in r.note and np.isfinite(r.soft).all()
    r = fit(np.ones((1, 8), np.float32), k=2)
    assert r.labels.tolist() == [0]


def test_k_larger_than_number_of_nodes_is_clamped():
    x, _ = planted(2, 2, dim=8)
    r = fit(x, k=10, epochs=5)
    assert r.k == 4 and "k=10" in r.note
    assert r.labels.max() < 4 and np.isfinite(r.soft).all()


def test_bad_arguments_raise_config_errors():
    x = np.ones((5, 4), np.float32)
    with pytest.raises(ConfigError):
        fit(x, k=1)
    with pytest.raises(ConfigError):
        fit(x, loss="kmeans")
    with pytest.raises(ConfigError):
        fit(np.ones(5), k=2)
    with pytest.raises(ConfigError):
        fit(np.full((4, 2), np.nan), k=2)


@pytest.mark.parametrize("call, says", [
    (lambda x: cluster(x, k=None), "k must be a whole number"),
    (lambda x: cluster(x, k=2.7), "k must be a whole number"),  # was cut to 2
    (lambda x: cluster(x, epochs=2.5), "epochs must be a whole number"),
    (lambda x: cluster(x, seed=2 ** 64), "seed must be"),  # was torch's "Overflow when unpacking long"
    (lambda x: cluster(x, seed=-1), "seed must be"),
    (lambda x: fit(x, lr=-1), "lr must be"),  # was torch Adam's ValueError
    (lambda x: fit(x, lr=float("nan")), "lr must be"),
    (lambda x: cluster(x, loss="cc", alpha=0), "alpha must be"),  # ran: one cluster, no word
    (lambda x: cluster(x, loss="cc", alpha=float("nan")), "alpha must be"),
    (lambda x: fit(x, threads=-1), "threads must be"),
    (lambda x: cluster(x, settle="no"), "settle must be True or False"),  # "no" was taken as True
    (lambda x: fit(x, settle=True), "settle must be a Settle rule or None"),
    (lambda x: cluster("abc"), "features must be"),  # was a torch TypeError
    (lambda x: affinity(x, "cc", alpha=-1), "alpha must be"),
])
def test_settings_that_would_fail_deep_inside_or_be_cut_are_config_errors(call, says):
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with pytest.raises(ConfigError, match=says):
        call(x)


def test_the_defaults_spelled_out_are_still_taken():
    """0 threads (the default, as everywhere threads are given) and settle=None (no rule) worked before the checks."""
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    assert fit(x, threads=0).labels.shape == (30,)
    assert np.array_equal(cluster(x, settle=None, epochs=30), cluster(x, settle=False, epochs=30))


def test_affinity_takes_a_numpy_array_as_cluster_does():
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    assert torch.equal(affinity(x), affinity(torch.from_numpy(x)))  # was: 'ndarray' has no attribute 'float'


def test_warm_start_continues_from_a_trained_model():
    x, truth = planted(60, 3, seed=5)
    first = fit(x, k=3, epochs=20)
    again = fit(x, epochs=3, model=first.model)
    assert again.k == 3 and same_partition(again.labels, truth)


def test_compact_labels_keeps_order():
    assert compact_labels(np.array([5, 0, 3, 3, 5])).tolist() == [2, 0, 1, 1, 2]


@pytest.mark.parametrize("k", [3, 4, 6])
def test_ncut_returns_k_segments_at_the_default_ten_epochs(color_model, k):
    """10 epochs from the near-uniform start used to end with clusters that hold no patch (k=6 on these
    scenes: 3-4 segments); NCut now restarts from the spectral cut then, and stops at 10 where all k are used."""
    for seed in range(3):
        feats = color_model.features(voronoi_scene(k, seed)[0], resolution=192)
        r = fit(feats.reshape(-1, feats.shape[-1]), k=k, epochs=10, seed=seed)
        assert len(np.unique(r.labels)) == k, (seed, np.bincount(r.labels, minlength=k))
        assert len(r.losses) == (20 if r.restarted else 10)
        assert r.note == (restart_words(10, k, len(np.unique(r.first_labels))) if r.restarted else None)


@pytest.mark.parametrize("k", [3, 4, 5, 8])
def test_a_near_complete_graph_reaches_k_by_the_spectral_restart(vit_model, k):
    """Random ViT weights give a near-complete graph (every patch alike): the GNN's outputs start almost
    equal for every node, 10 (or 300) epochs slide to one segment, although the k-way cut has the lower
    loss. The restart from the spectral cut finds all k, in 2 x 10 epochs, with a lower NCut loss."""
    import deepcut.clustering.fit as clustering

    pf = vit_model.patch_features(REPO / "assets" / "cat.jpg")
    graph = graph_of(pf)
    r = fit(pf.features, k=k, epochs=10, graph=graph)
    assert len(np.unique(r.labels)) == k and r.restarted and len(r.losses) == 20 and r.restart_epoch == 10
    assert r.note.startswith("NCut restarted from the graph's spectral cut: its first 10 epochs left")
    assert len(np.unique(r.first_labels)) < k  # the first try, kept for the lessons to compare with
    assert r.model.input_shift is not None  # the restarted GNN sees standardised inputs
    try:
        clustering.NCUT_RESTART = False
        stuck = fit(pf.features, k=k, epochs=10, graph=graph)
    finally:
        clustering.NCUT_RESTART = True
    assert len(np.unique(stuck.labels)) < k and not stuck.restarted
    adj = graph.cluster_affinity("ncut", 3.0)

    def objective(labels):
        cut, ortho = ncut_loss(adj, torch.nn.functional.one_hot(torch.as_tensor(labels), k).float())
        return float(cut + ortho)

    assert objective(r.labels) < objective(stuck.labels)
    again = fit(pf.features, k=k, epochs=10, graph=graph, model=r.model)  # a warm start keeps its inputs' scaling
    assert len(np.unique(again.labels)) == k and not again.restarted
    warm = fit(pf.features, k=k, epochs=10, graph=graph, model=stuck.model)  # the next video frame, say:
    assert not warm.restarted and warm.model is stuck.model and "no restart" in warm.note  # its labels stay


def test_k_two_and_cc_never_restart(color_model):
    feats = color_model.features(voronoi_scene(2, 0)[0], resolution=192).reshape(-1, 384)
    r = fit(feats, k=2, epochs=10)
    assert not r.restarted and len(r.losses) == 10 and r.model.input_shift is None
    assert not fit(feats, k=10, loss="cc", epochs=10).restarted


def test_ncut_trains_exactly_its_epochs_when_every_cluster_is_used_and_cc_never_extends():
    x, _ = planted(100, 2, seed=3)
    assert len(fit(x, k=2, epochs=10).losses) == 10
    assert len(fit(x, k=10, loss="cc", epochs=10).losses) == 10  # CC: k is a bound, clusters may empty
    assert fit(x, k=2, epochs=0).losses == []


def test_fewer_distinct_nodes_than_k_is_said_not_trained_in_vain():
    x = np.repeat(np.eye(3, 16, dtype=np.float32) + 0.1, 20, axis=0)  # 3 distinct nodes, k=5
    r = fit(x, k=5, epochs=10)
    assert len(r.losses) == 10 and "fewer than 5 distinct" in r.note


def test_snapshots_record_the_training_without_changing_it():
    x, _ = planted(60, 3, seed=2)
    plain = fit(x, k=3, epochs=12, seed=4)
    recorded = fit(x, k=3, epochs=12, seed=4, snapshots=[0, 5, 12])
    np.testing.assert_array_equal(plain.soft, recorded.soft)
    assert plain.losses == recorded.losses and plain.snapshots == {}
    assert sorted(recorded.snapshots) == [0, 5, 12]
    np.testing.assert_array_equal(recorded.snapshots[12], recorded.soft)
    assert recorded.snapshots[0].shape == (180, 3) and not np.allclose(recorded.snapshots[0], recorded.soft)


def test_cluster_warns_when_ncut_finds_fewer_than_k():
    """``cluster(two_groups, k=5)`` returned two labels and dropped ``fit``'s note that says why."""
    x = np.repeat(np.eye(2, 8, dtype=np.float32), 20, axis=0)  # two distinct rows
    with pytest.warns(UserWarning, match=r"NCut found 2 of the k = 5 segments"):
        labels = cluster(x, k=5)
    assert set(labels.tolist()) == {0, 1}
