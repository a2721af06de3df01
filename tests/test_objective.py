"""What a GNN training reads (``deepcut.clustering.objective``): the GCN propagation, float32 or with a bf16
product, each kept once in a cached image's memo, the graph's bf16 copy, and the objective."""

from __future__ import annotations

import pytest
import torch

from deepcut.clustering.checks import as_features
from deepcut.clustering.gnn import DeepCutGNN, gcn_input_graph, soft_assign
from deepcut.clustering.losses import graph_product
from deepcut.clustering.objective import graph_of_these, low_affinity, objective_of, propagation
from deepcut.graph.patch_graph import PatchGraph, affinity, compact_affinity


def test_the_propagation_in_float32_and_with_a_bf16_product_each_kept_once():
    x = torch.randn(300, 32, generator=torch.Generator().manual_seed(0)) + 0.3
    a = affinity(x, "ncut")
    exact = DeepCutGNN.propagate(x, gcn_input_graph(a))
    memo: dict = {}
    graph = PatchGraph(x, memo=memo)
    assert graph_of_these(graph, x) and not graph_of_these(PatchGraph(x), x)
    first = propagation(x, a, "ncut", graph)
    assert torch.equal(first, exact) and propagation(x, a, "ncut", graph) is first  # kept
    low = propagation(x, a, "ncut", graph, dtype=torch.bfloat16)
    assert low.dtype == torch.float32 and not torch.equal(low, exact)  # a bf16 product, a float32 result
    assert float((low - exact).norm() / exact.norm()) < 1e-2
    assert propagation(x, a, "ncut", graph, dtype=torch.bfloat16) is low and len(memo) == 2  # one per dtype
    assert propagation(x, a, "ncut", graph) is first  # the float32 one is still the float32 one


def test_the_objective_is_ncuts_or_ccs():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(1)) + 0.5
    s = torch.softmax(torch.randn(50, 3, generator=torch.Generator().manual_seed(2)), dim=-1)
    ncut_value, _ = objective_of(x, affinity(x, "ncut"), "ncut")(s)
    cc_value, cc_grad = objective_of(x, affinity(x, "cc"), "cc")(s)
    assert -1.0 - 1e-6 <= float(ncut_value) < 2.0  # -cut/assoc (≥ -1) plus the orthogonality term
    assert torch.allclose(cc_value, -(s * (affinity(x, "cc") @ s)).sum(), atol=1e-4)
    assert cc_grad.shape == s.shape


def test_the_graph_in_bf16_is_made_once_per_graph_and_shared_with_ncuts_propagation(monkeypatch):
    x = torch.randn(300, 32, generator=torch.Generator().manual_seed(3)) + 0.3
    a = affinity(x, "ncut")
    assert low_affinity(a, "ncut") is None  # float32: no copy
    assert low_affinity(compact_affinity(x, "ncut"), "ncut", dtype=torch.bfloat16) is None  # not a dense tensor
    memo: dict = {}
    graph = PatchGraph(x, memo=memo)
    low = low_affinity(a, "ncut", graph, dtype=torch.bfloat16)
    assert low.dtype == torch.bfloat16 and torch.equal(low, a.bfloat16())
    assert low_affinity(affinity(x, "ncut"), "ncut", graph, dtype=torch.bfloat16) is low  # kept in the memo
    cc = low_affinity(affinity(x, "cc", 3.0), "cc", graph, 3.0, dtype=torch.bfloat16)
    assert cc is not low and low_affinity(affinity(x, "cc", 5.0), "cc", graph, 5.0, dtype=torch.bfloat16) is not cc
    made = []
    real = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda t, *args, **kw: made.append(t.shape) or real(t, *args, **kw))
    shared = propagation(x, a, "ncut", None, dtype=torch.bfloat16, low=low)
    assert (300, 300) not in made  # NCut's GCN graph is the affinity itself: its bf16 copy is read, not made again
    monkeypatch.undo()
    assert torch.equal(shared, propagation(x, a, "ncut", None, dtype=torch.bfloat16))  # the same bf16 product


def test_the_objective_with_the_graph_in_bf16_is_close_to_float32s():
    x = torch.randn(400, 16, generator=torch.Generator().manual_seed(4)) + 0.4
    s = soft_assign(torch.randn(400, 4, generator=torch.Generator().manual_seed(5)))
    for loss in ("ncut", "cc"):
        a = affinity(x, loss)
        (v32, g32), (v16, g16) = objective_of(x, a, loss)(s), objective_of(x, a, loss, a.bfloat16())(s)
        assert g16.dtype == torch.float32 and g16.shape == s.shape
        assert not torch.equal(g16, g32)  # A S really ran in bf16
        assert float((g16 - g32).norm() / g32.norm()) < 1e-2 and abs(float(v16 - v32)) < 1e-2 * abs(float(v32)) + 1e-4
        assert torch.allclose(graph_product(a, s, a.bfloat16()), graph_product(a, s), rtol=1e-2, atol=1e-2)


def test_a_graph_of_inference_mode_features_is_known_without_comparing_them(monkeypatch):
    """A cached image's features come from inference mode, and :func:`as_features` copies them: the graph of
    those very features is known by their memory, not by comparing every number."""
    with torch.inference_mode():
        f = torch.randn(200, 16, generator=torch.Generator().manual_seed(6))
    graph = PatchGraph(f, memo={})
    x = as_features(f)
    assert x.data_ptr() != f.data_ptr() and torch.equal(x, f)  # a copy
    monkeypatch.setattr(torch, "equal", lambda *a: pytest.fail("compared every number"))
    assert graph_of_these(graph, x, f)
    monkeypatch.undo()
    assert graph_of_these(graph, x)  # without what x was made from: compared, the same
    other = x.clone()
    other[0, 0] += 1
    assert not graph_of_these(graph, other, other) and not graph_of_these(graph, other)
