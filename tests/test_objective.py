"""What a GNN training reads (``deepcut.clustering.objective``): the GCN propagation, float32 or with a bf16
product, each kept once in a cached image's memo, and the objective."""

from __future__ import annotations

import torch

from deepcut.clustering.gnn import DeepCutGNN, gcn_input_graph
from deepcut.clustering.objective import graph_of_these, objective_of, propagation
from deepcut.graph.patch_graph import PatchGraph, affinity


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
