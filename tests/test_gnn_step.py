"""The GNN's written-out training epoch: its gradients, its losses' gradients and its dropout masks against
autograd and the plain formulas, and a whole training against the autograd training it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import voronoi_scene

from deepcut import DeepCut, fit
from deepcut.clustering.fit import affinity
from deepcut.clustering.gnn import DeepCutGNN, DropoutMasks, cross_entropy_grad, gcn_input_graph, soft_assign
from deepcut.clustering.losses import autograd_grad, cc_grad, cc_loss, cc_loss_lowrank, ncut_grad, ncut_loss, sparse_csr
from deepcut.graph.large import compact_affinity, knn_affinity
from deepcut.utils.threads import torch_threads


def features(n: int = 90, d: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + 0.5


def soft(n: int, k: int, seed: int = 1, column_major: bool = False) -> torch.Tensor:
    logits = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    return soft_assign(logits) if column_major else torch.softmax(logits, dim=-1)


def reference(objective, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = s.detach().clone().requires_grad_()
    value = objective(leaf)
    value.backward()
    return value.detach(), leaf.grad


def test_soft_assign_is_the_softmax_over_clusters_in_a_column_major_layout():
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    s = soft_assign(z)
    assert torch.allclose(s, torch.softmax(z, dim=-1), atol=1e-7)
    assert s.shape == (50, 4) and s.T.is_contiguous()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k", [2, 4, 7])
@pytest.mark.parametrize("column_major", [False, True])
def test_ncut_grad_equals_autograd_of_ncut_loss_on_a_dense_graph(k, threads, column_major):
    """Both orders of the product A S (one thread: (Sᵀ A)ᵀ; several and a column-major S: A S)."""
    a = affinity(features(), "ncut")
    s = soft(a.shape[0], k, column_major=column_major)
    with torch_threads(threads):
        value, grad = ncut_grad(a, s)
    ref_value, ref_grad = reference(lambda t: sum(ncut_loss(a, t)), s)
    assert torch.allclose(value, ref_value, atol=1e-6)
    assert torch.allclose(grad, ref_grad, atol=1e-6)
    assert grad.abs().max() > 1e-4  # not trivially zero


def test_ncut_grad_equals_autograd_on_sparse_and_compact_graphs():
    x = features(120, 10)
    sparse = knn_affinity(x, "ncut", 3.0, 12).matrix()
    compact = compact_affinity(x, "ncut", 3.0)
    for graph, s in [(g, soft(120, 3, column_major=c)) for g in (sparse, sparse_csr(sparse), compact)
                     for c in (False, True)]:  # training passes soft_assign's column-major S
        value, grad = ncut_grad(graph, s)
        ref_value, ref_grad = reference(lambda t, g=graph: sum(ncut_loss(g, t)), s)
        assert torch.allclose(value, ref_value, atol=1e-5)
        assert torch.allclose(grad, ref_grad, atol=1e-5)


def test_ncut_grad_at_an_orthogonal_assignment_has_no_nan():
    """ortho = 0 exactly (equal-sized one-hot clusters): autograd's norm gives the orthogonality term no
    gradient there, and neither does the written-out one."""
    a = affinity(features(8, 4), "ncut")
    s = torch.nn.functional.one_hot(torch.arange(8) % 2, 2).float()
    value, grad = ncut_grad(a, s)
    ref_value, ref_grad = reference(lambda t: sum(ncut_loss(a, t)), s)
    assert torch.isfinite(grad).all()
    assert torch.allclose(value, ref_value, atol=1e-6) and torch.allclose(grad, ref_grad, atol=1e-6)


def test_cc_grad_and_autograd_grad_equal_autograd():
    x = features()
    a = affinity(x, "cc", alpha=3.0)
    s = soft(a.shape[0], 5)
    for value_and_grad, objective in [(lambda t: cc_grad(a, t), lambda t: cc_loss(a, t)),
                                      (autograd_grad(lambda t: cc_loss_lowrank(x, 2.0, t)),
                                       lambda t: cc_loss_lowrank(x, 2.0, t))]:
        value, grad = value_and_grad(s)
        ref_value, ref_grad = reference(objective, s)
        assert torch.allclose(value, ref_value, rtol=1e-5) and torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss", ["ncut", "cc"])
@pytest.mark.parametrize("standardised", [False, True])
def test_training_step_sets_the_gradients_autograd_would(loss, standardised):
    x = features(70, 16)
    a = affinity(x, loss, alpha=3.0)
    ax = DeepCutGNN.propagate(x, gcn_input_graph(a))
    net = DeepCutGNN.create(16, 4, torch.Generator().manual_seed(0))
    if standardised:
        net.standardise(ax)
    drop = DropoutMasks(1, net.dropout).next((70, 32))
    objective = (lambda t: sum(ncut_loss(a, t))) if loss == "ncut" else (lambda t: cc_loss(a, t))
    value_and_grad = (lambda t: ncut_grad(a, t)) if loss == "ncut" else (lambda t: cc_grad(a, t))

    net.train()
    ref = objective(torch.softmax(net.forward_propagated(ax, drop), dim=-1))
    ref.backward()
    expected = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    value = net.training_step(net.gcn_input(ax), drop, value_and_grad)
    assert torch.allclose(value, ref.detach(), rtol=1e-6, atol=1e-6)
    for name, p in net.named_parameters():
        scale = float(expected[name].norm())  # a bias's gradient sums N terms that nearly cancel: compare norms
        assert scale > 0 and float((p.grad - expected[name]).norm()) <= 1e-3 * scale, name


def test_cross_entropy_step_sets_the_gradients_autograd_would():
    """The spectral restart's start (learning the spectral cut) as a written-out step on the logits."""
    x = features(70, 16)
    ax = DeepCutGNN.propagate(x, gcn_input_graph(affinity(x, "ncut")))
    net = DeepCutGNN.create(16, 3, torch.Generator().manual_seed(0)).standardise(ax)
    target = torch.randint(0, 3, (70,), generator=torch.Generator().manual_seed(2))
    drop = DropoutMasks(1, net.dropout).next((70, 32))
    net.train()
    ref = torch.nn.functional.cross_entropy(net.forward_propagated(ax, drop), target)
    ref.backward()
    expected = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    value = net.training_step_logits(net.gcn_input(ax), drop, cross_entropy_grad(target))
    assert torch.allclose(value, ref.detach(), rtol=1e-6, atol=1e-6)
    for name, p in net.named_parameters():
        scale = float(expected[name].norm())
        assert scale > 0 and float((p.grad - expected[name]).norm()) <= 1e-4 * scale, name


def test_fit_equals_the_autograd_training_it_replaces():
    """fit's written-out epochs give the losses and labels of the plain autograd loop over the same GNN,
    dropout masks and optimiser (the DeepCut paper's training, on a planted four-region scene)."""
    x = DeepCut("color").features(voronoi_scene(4, 0, side=160)[0], resolution=160).reshape(-1, 384).clone()
    result = fit(x, k=4, epochs=40, seed=3)
    assert not result.restarted

    a = affinity(x, "ncut")
    ax = DeepCutGNN.propagate(x, gcn_input_graph(a))
    net = DeepCutGNN.create(384, 4, torch.Generator().manual_seed(3)).train()
    masks = DropoutMasks(4, net.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    losses = []
    with torch.enable_grad():
        for _ in range(40):
            opt.zero_grad()
            value = sum(ncut_loss(a, torch.softmax(net.forward_propagated(ax, masks.next((x.shape[0], 32))), -1)))
            value.backward()
            opt.step()
            losses.append(float(value.detach()))
    labels = net.eval().forward_propagated(ax).argmax(dim=-1).numpy()
    assert np.allclose(result.losses, losses, rtol=1e-4, atol=1e-5)
    assert np.array_equal(result.labels, labels)
    assert len(np.unique(labels)) == 4


def test_dropout_masks_drop_p_and_scale_the_rest_from_the_seed_alone():
    shape = (400, 32)
    state = torch.get_rng_state()
    masks = DropoutMasks(7, 0.25)
    drawn = [masks.next(shape) for _ in range(DropoutMasks.BLOCK + 3)]  # across a block's end
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is not touched
    stacked = torch.stack(drawn)
    assert torch.unique(stacked).tolist() == pytest.approx([0.0, 4 / 3])
    assert abs(float((stacked == 0).float().mean()) - 0.25) < 0.01
    assert not torch.equal(drawn[0], drawn[1])  # a new mask each epoch
    again = DropoutMasks(7, 0.25)
    assert all(torch.equal(m, again.next(shape)) for m in drawn)
    assert not torch.equal(drawn[0], DropoutMasks(8, 0.25).next(shape))
    assert torch.equal(DropoutMasks(0, 0.0).next((5, 3)), torch.ones(5, 3))
    assert DropoutMasks(0, 0.5).next((9, 2)).shape == (9, 2)  # another shape starts a new block
