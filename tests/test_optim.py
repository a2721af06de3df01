"""The GNN's optimiser: FusedAdamW makes torch.optim.AdamW(fused=True)'s update, bit for bit."""

from __future__ import annotations

import pytest
import torch

from deepcut.clustering.gnn import DeepCutGNN
from deepcut.clustering.optim import FusedAdamW, adamw


def _twins(seed: int = 0) -> tuple[DeepCutGNN, DeepCutGNN]:
    g = torch.Generator().manual_seed(seed)
    a = DeepCutGNN.create(16, 3, g)
    b = DeepCutGNN.create(16, 3, torch.Generator().manual_seed(seed))
    return a, b


@pytest.mark.parametrize("lr", [1e-3, 1e-2])
def test_fused_adamw_is_torch_adamw_bit_for_bit(lr):
    """Twenty steps on the same gradients (drawn afresh each step, weight decay on): every parameter identical
    to torch.optim.AdamW(fused=True)'s, and within rounding of the plain (unfused) AdamW's."""
    mine, ref = _twins()
    plain, _ = _twins()
    opts = [FusedAdamW(mine.parameters(), lr=lr), torch.optim.AdamW(ref.parameters(), lr=lr, fused=True),
            torch.optim.AdamW(plain.parameters(), lr=lr, foreach=False)]
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        for p_mine, p_ref, p_plain in zip(mine.parameters(), ref.parameters(), plain.parameters(), strict=True):
            grad = torch.randn(p_mine.shape, generator=g)
            p_mine.grad, p_ref.grad, p_plain.grad = grad.clone(), grad.clone(), grad.clone()
        for opt in opts:
            opt.step()
    for p_mine, p_ref, p_plain in zip(mine.parameters(), ref.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p_mine, p_ref)
        torch.testing.assert_close(p_mine, p_plain, rtol=1e-5, atol=1e-6)
    assert not torch.equal(next(mine.parameters()), next(_twins()[0].parameters()))  # it did move


def test_fused_adamw_needs_gradients_and_adamw_falls_back():
    """A parameter without .grad is an error, not a silent skip; adamw() picks FusedAdamW on the CPU and
    torch's AdamW for parameters the fused kernel does not take (float64)."""
    model, _ = _twins()
    opt = FusedAdamW(model.parameters())
    with pytest.raises(RuntimeError, match="no gradient"):
        opt.step()
    assert isinstance(adamw(model, 1e-3), FusedAdamW)
    assert isinstance(adamw(model.double(), 1e-3), torch.optim.AdamW)
