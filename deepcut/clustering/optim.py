"""The GNN's optimiser: AdamW as ``torch.optim.AdamW(fused=True)`` computes it, one call per step.

A training step of this small network is a fraction of a millisecond, and ``torch.optim.AdamW.step`` spends
much of that in Python (grouping the tensors by device and dtype, checking each parameter's state) before its
fused kernel runs. :class:`FusedAdamW` keeps the moments and step counts itself and calls that very kernel,
``torch._fused_adamw_``, with the same arguments: the same update, bit for bit (the tests compare them).
Where this PyTorch has no such kernel for the parameters' device, :func:`adamw` gives ``torch.optim.AdamW``.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import torch

__all__ = ["FusedAdamW", "Stepper", "adamw"]


class Stepper(Protocol):
    """What a training needs of an optimiser: one update of its parameters from their ``.grad``."""

    def step(self) -> object: ...


class FusedAdamW:
    """AdamW over ``params`` (float32, one device): ``torch.optim.AdamW(params, lr, betas, eps, weight_decay,
    fused=True)``'s update, written as its own call of the fused kernel (see the module's docstring).

    Raises:
        RuntimeError: this PyTorch has no fused AdamW kernel (use :func:`adamw`, which falls back).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        kernel = getattr(torch, "_fused_adamw_", None)
        if kernel is None:
            raise RuntimeError("this PyTorch has no fused AdamW kernel")
        self._kernel = kernel
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = float(lr), betas, float(eps), float(weight_decay)
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def step(self) -> None:
        """One AdamW update of every parameter from its ``.grad`` (each must have one)."""
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("FusedAdamW.step: a parameter has no gradient")
        torch._foreach_add_(self.steps, 1)
        with torch.no_grad():
            self._kernel(self.params, grads, self.exp_avgs, self.exp_avg_sqs, [], self.steps, amsgrad=False,
                         lr=self.lr, beta1=self.betas[0], beta2=self.betas[1], weight_decay=self.weight_decay,
                         eps=self.eps, maximize=False, grad_scale=None, found_inf=None)


def adamw(model: torch.nn.Module, lr: float) -> Stepper:
    """AdamW over ``model``'s parameters at ``lr`` (PyTorch's other defaults): :class:`FusedAdamW` where this
    PyTorch has the fused kernel for their device and dtype, else ``torch.optim.AdamW`` (fused where it can be)."""
    params = list(model.parameters())
    if _fused_here(params):
        return FusedAdamW(params, lr=lr)
    try:
        return torch.optim.AdamW(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr)


def _fused_here(params: list[torch.nn.Parameter]) -> bool:
    """Whether the fused AdamW kernel runs on ``params``: all float32 on one device of a kind PyTorch lists for
    its fused optimisers."""
    if not params or getattr(torch, "_fused_adamw_", None) is None:
        return False
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        kinds = set(_get_fused_kernels_supported_devices())
    except (ImportError, AttributeError):
        kinds = {"cpu", "cuda"}
    device = params[0].device
    return device.type in kinds and all(p.device == device and p.dtype == torch.float32 for p in params)
