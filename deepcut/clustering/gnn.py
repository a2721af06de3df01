"""The per-image graph neural network of DeepCut: one GCN layer and a small MLP head."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..graph.gcn import gcn_degree_scale, gcn_normalize

#: ``S (N, k) -> (loss (0-d), ∂loss/∂S (N, k))``: an objective of soft assignments with its gradient.
LossGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def gcn_input_graph(adj: torch.Tensor) -> torch.Tensor:
    """The graph the GCN sees: the positive part of ``adj`` ``(N, N)`` (dense, or sparse COO:
    then only its positive edges are kept and the result is sparse too).

    Self-loops keep their own (positive) weight and get weight 1 where it is not positive (or,
    sparse, absent), which is what the authors' edge list + PyG ``GCNConv``
    (``add_remaining_self_loops``) does. A dense ``adj`` that already is that graph (no negative entry, a positive
    diagonal: NCut's affinity of nonzero features) is returned itself, not copied: read it, do not change it.
    """
    if adj.is_sparse:
        return _sparse_positive_with_loops(adj.coalesce())
    if bool((adj.diagonal() > 0).all()) and bool(adj.min() >= 0):  # a pass over adj, no N x N allocation
        return adj
    a = adj.clamp(min=0)  # a new tensor: its diagonal may be set in place
    diag = a.diagonal()
    diag.copy_(torch.where(diag > 0, diag, torch.ones_like(diag)))
    return a


def _sparse_positive_with_loops(adj: torch.Tensor) -> torch.Tensor:
    """:func:`gcn_input_graph` of a coalesced sparse COO ``(N, N)``: a coalesced sparse COO."""
    n = adj.shape[0]
    index, weight = adj.indices(), adj.values()
    keep = weight > 0
    index, weight = index[:, keep], weight[keep]
    loops = torch.ones(n, dtype=weight.dtype, device=weight.device)
    on_diag = index[0] == index[1]
    loops[index[0, on_diag]] = weight[on_diag]  # positive self-loops keep their weight
    nodes = torch.arange(n, device=index.device)
    index = torch.cat([index[:, ~on_diag], torch.stack([nodes, nodes])], dim=1)
    weight = torch.cat([weight[~on_diag], loops])
    return torch.sparse_coo_tensor(index, weight, adj.shape, check_invariants=False).coalesce()


class DeepCutGNN(nn.Module):
    """GCN layer ``(D → 64)`` → ELU → ``Linear(64 → 32)`` → ELU → dropout → ``Linear(32 → k)``.

    The architecture of the DeepCut paper and code, whose GCN layer is PyG's ``DenseGCNConv``:
    ``Â X Θ + b`` with ``Â = D^-1/2 A D^-1/2`` (:func:`gcn_normalize`). The network owns the layer's
    weight ``Θ`` (:attr:`gcn_weight`, ``(64, D)``) and bias ``b`` (:attr:`gcn_bias`). Because the
    graph and the node features are fixed while one image is clustered, the propagation ``Â X`` is
    computed once (:meth:`propagate`) and every epoch only applies the layer's weights
    (:meth:`forward_propagated`); :meth:`forward` does both.

    Attributes:
        in_dim: node feature dimension ``D``.
        k: number of clusters (output logits).
    """

    def __init__(self, in_dim: int, k: int, conv_hidden: int = 64, mlp_hidden: int = 32,
                 dropout: float = 0.25) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.k = k
        self.gcn_weight = nn.Parameter(torch.empty(conv_hidden, in_dim))
        self.gcn_bias = nn.Parameter(torch.empty(conv_hidden))
        self.mlp1 = nn.Linear(conv_hidden, mlp_hidden)
        self.mlp2 = nn.Linear(mlp_hidden, k)
        self.dropout = dropout
        #: ``(D,)`` shift and scale applied to ``Â X`` before the GCN's weights (None: none), see
        #: :meth:`standardise`.
        self.register_buffer("input_shift", None)
        self.register_buffer("input_scale", None)

    @classmethod
    def create(cls, in_dim: int, k: int, generator: torch.Generator, device: str | torch.device | None = None,
               **kwargs) -> "DeepCutGNN":
        """A freshly initialised GNN whose weights are drawn from the CPU ``generator`` only.

        The modules are built on the ``meta`` device (so PyTorch's default initialisers do not
        consume the global RNG), initialised on the CPU by :meth:`reset_parameters` (the same seed
        gives the same weights on every device) and then moved to ``device`` (default: the CPU).
        """
        with torch.device("meta"):
            net = cls(in_dim, k, **kwargs)
        net = net.to_empty(device="cpu").reset_parameters(generator)
        return net if device is None else net.to(device)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> "DeepCutGNN":
        """Re-initialise with the layers' default distributions, drawn from ``generator``
        (glorot for the GCN weight, zero GCN bias, PyTorch's default for the linear layers)."""
        w = self.gcn_weight
        bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        w.copy_(_uniform(w.shape, bound, generator))
        self.gcn_bias.zero_()
        for lin in (self.mlp1, self.mlp2):
            bound = 1.0 / math.sqrt(lin.in_features)
            lin.weight.copy_(_uniform(lin.weight.shape, bound, generator))
            lin.bias.copy_(_uniform(lin.bias.shape, bound, generator))
        return self

    @staticmethod
    def propagate(x: torch.Tensor, adj: torch.Tensor, dtype: torch.dtype = torch.float32,
                  low: torch.Tensor | None = None) -> torch.Tensor:
        """``Â X`` ``(N, D)`` for node features ``x`` ``(N, D)`` and the GCN's graph ``adj`` ``(N, N)``
        (dense, or sparse COO: then ``O(E D)`` time and no ``N x N`` tensor). Dense, computed as
        ``D^-1/2 (A (D^-1/2 X))``: the scaling touches ``N x D`` entries instead of ``N x N`` twice; ``dtype``:
        what its product reads (bfloat16: a float32 result of bf16 factors; the degrees stay float32); ``low``:
        ``adj`` already in ``dtype`` where the caller keeps one."""
        if adj.is_sparse:
            return torch.sparse.mm(gcn_normalize(adj), x)
        d = gcn_degree_scale(adj.sum(dim=-1)).unsqueeze(-1)
        if dtype == torch.float32:
            return d * (adj @ (d * x))
        low = adj.to(dtype) if low is None else low
        return d * (low @ (d * x).to(dtype)).float()

    @torch.no_grad()
    def standardise(self, ax: torch.Tensor) -> "DeepCutGNN":
        """From now on, centre and scale every column of ``Â X`` ``(N, D)`` as those of ``ax`` (zero mean,
        unit standard deviation over the nodes) before the GCN's weights; returns ``self``.

        On a graph whose nodes all look alike (a near-complete graph: every row of ``Â X`` is close to
        the mean row) the fresh GNN gives every node almost the same output, and training moves them
        together; standardised inputs let it tell them apart. Used by the spectral restart of
        :func:`deepcut.clustering.fit.fit`; a warm start on another graph keeps these statistics.
        """
        self.input_shift = ax.mean(dim=0).detach().clone()
        self.input_scale = ax.std(dim=0).clamp_min(1e-12).reciprocal().detach()
        return self

    def gcn_input(self, ax: torch.Tensor) -> torch.Tensor:
        """What the GCN's weights multiply: ``ax = Â X`` ``(N, D)``, standardised if :meth:`standardise` was
        called (fixed while one graph is clustered: a training computes it once)."""
        if self.input_shift is None:
            return ax
        return (ax - self.input_shift) * self.input_scale

    def gcn(self, ax: torch.Tensor) -> torch.Tensor:
        """The GCN layer's output ``Â X Θ + b`` ``(N, 64)`` from the propagation ``ax = Â X`` ``(N, D)``
        (standardised first if :meth:`standardise` was called)."""
        return gcn_forward(self.gcn_input(ax), self.gcn_weight, self.gcn_bias)  # float32: one fused kernel (addmm)

    @torch.no_grad()
    def training_step(self, inp: torch.Tensor, drop: torch.Tensor, loss_grad: LossGrad,
                      inp_t: torch.Tensor | None = None) -> torch.Tensor:
        """One training epoch's forward and backward pass, written out: sets every parameter's ``.grad``
        and returns the loss (0-d) of the soft assignments, for an optimiser step.

        The same values and gradients as ``loss(softmax(forward_propagated(ax, drop))).backward()`` (the
        tests compare them), without autograd's graph, whose bookkeeping is a large part of an epoch of this
        small network (the autograd loop's time: the *before* rows of ``benchmarks/speed.py``).

        Args:
            inp: :meth:`gcn_input` of the propagation ``Â X`` ``(N, D)``, float32, or bfloat16 for the GCN's two
                products in bf16 (:func:`gcn_forward`, :func:`gcn_weight_grad`; :mod:`~deepcut.clustering.arithmetic`).
            drop: the epoch's ``(N, 32)`` dropout multipliers (:class:`DropoutMasks`).
            loss_grad: ``S (N, k) -> (loss, ∂loss/∂S (N, k))`` (e.g. :func:`~deepcut.clustering.losses.ncut_grad`).
            inp_t: ``inp.T.contiguous()`` ``(D, N)``, for the weight's gradient in bf16 (:func:`gcn_weight_grad`).
        """
        return self._step(inp, drop, loss_grad, False, inp_t=inp_t)[0]

    @torch.no_grad()
    def training_step_looking(self, inp: torch.Tensor, drop: torch.Tensor, loss_grad: LossGrad,
                              inp_t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`training_step`, also returning the argmax ``(N,)`` of the soft assignments without dropout
        before this step (what :meth:`forward_propagated` in evaluation mode gives now, with the GCN's products in
        the dtype of ``inp``): one ``(N, 32) x (32, k)`` product more, instead of a whole evaluation forward pass.
        Returns ``(loss, argmax)``."""
        value, looked = self._step(inp, drop, loss_grad, True, inp_t=inp_t)
        assert looked is not None
        return value, looked

    @torch.no_grad()
    def training_step_logits(self, inp: torch.Tensor, drop: torch.Tensor, logits_grad: LossGrad) -> torch.Tensor:
        """:meth:`training_step` of an objective of the logits ``(N, k)`` before the softmax: ``logits_grad`` gives
        ``(loss, ∂loss/∂logits)`` (e.g. :func:`cross_entropy_grad`)."""
        return self._step(inp, drop, logits_grad, False, True)[0]

    def _step(self, inp: torch.Tensor, drop: torch.Tensor, loss_grad: LossGrad, look: bool, logits: bool = False,
              inp_t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One epoch's forward and backward pass (see :meth:`training_step`); ``look``: also the argmax;
        ``logits``: ``loss_grad`` takes the logits, not the soft assignments."""
        e0 = F.elu(gcn_forward(inp, self.gcn_weight, self.gcn_bias))
        e1 = F.elu(self.mlp1(e0))
        looked = F.linear(e1, self.mlp2.weight, self.mlp2.bias).argmax(dim=-1) if look else None
        hidden = e1 * drop
        z = self.mlp2(hidden)
        if logits:
            value, dz = loss_grad(z)
        else:
            s = soft_assign(z)
            value, ds = loss_grad(s)
            dz = s * (ds - (ds * s).sum(dim=1, keepdim=True))  # softmax's backward
        self.mlp2.weight.grad, self.mlp2.bias.grad = dz.T @ hidden, dz.sum(dim=0)
        d1 = _elu_backward((dz @ self.mlp2.weight).mul_(drop), e1)
        self.mlp1.weight.grad, self.mlp1.bias.grad = d1.T @ e0, d1.sum(dim=0)
        d0 = _elu_backward(d1 @ self.mlp1.weight, e0)
        self.gcn_weight.grad, self.gcn_bias.grad = gcn_weight_grad(d0, inp, inp_t), d0.sum(dim=0)
        return value, looked

    def head(self, h: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, k)`` from GCN outputs ``(N, 64)``. In training, dropout multiplies the hidden
        ``(N, 32)`` activations by ``drop`` (0 or ``1 / (1 - p)`` per entry, see :class:`DropoutMasks`);
        without one it draws from the global RNG (:func:`torch.nn.functional.dropout`)."""
        h = F.elu(self.mlp1(F.elu(h)))
        if self.training and self.dropout > 0:
            h = h * drop if drop is not None else F.dropout(h, self.dropout, training=True)
        return self.mlp2(h)

    def forward_propagated(self, ax: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, k)`` from the precomputed propagation ``ax = Â X`` ``(N, D)``; ``drop``: as :meth:`head`'s."""
        return self.forward_input(self.gcn_input(ax), drop)

    def forward_input(self, inp: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, k)`` from :meth:`gcn_input` ``(N, D)`` of the propagation, already computed (a training
        that assigns several times computes it once); ``drop``: as :meth:`head`'s."""
        return self.head(gcn_forward(inp, self.gcn_weight, self.gcn_bias), drop)

    def forward(self, x: torch.Tensor, adj: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, k)`` for node features ``(N, D)`` and the GCN graph ``(N, N)`` (dense or sparse,
        self-loops included)."""
        return self.forward_propagated(self.propagate(x, adj), drop)


def gcn_forward(inp: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The GCN layer's product ``inp Θᵀ + b`` ``(N, H)``, float32, for ``inp`` ``(N, D)`` and the float32 ``weight``
    ``Θ`` ``(H, D)`` and ``bias`` ``(H,)``: one fused kernel for a float32 ``inp``; for a bfloat16 one the product
    reads ``Θ`` as bf16 too and the bias is added in float32 (:mod:`~deepcut.clustering.arithmetic`)."""
    if inp.dtype == torch.float32:
        return F.linear(inp, weight, bias)
    out = F.linear(inp, weight.to(inp.dtype)).float()
    return out if bias is None else out.add_(bias)


def gcn_weight_grad(grad: torch.Tensor, inp: torch.Tensor, inp_t: torch.Tensor | None = None) -> torch.Tensor:
    """The GCN weight's gradient ``gradᵀ inp`` ``(H, D)``, float32 and contiguous, from the layer's output gradient
    ``grad`` ``(N, H)`` (float32) and its input ``inp`` ``(N, D)``, in the dtype of ``inp`` (see :func:`gcn_forward`).
    ``inp_t``: ``inp.T.contiguous()`` ``(D, N)`` where the caller keeps one (a training computes it once): a bf16
    product then computes the transpose ``inpᵀ grad``, whose large factor needs no repacking at every call."""
    if inp.dtype == torch.float32:
        return grad.T @ inp
    if inp_t is not None:
        return (inp_t @ grad.to(inp_t.dtype)).T.to(torch.float32, memory_format=torch.contiguous_format)
    return (grad.to(inp.dtype).T @ inp).float()


def soft_assign(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(logits)`` over the clusters: ``(N, k)`` soft assignments from ``(N, k)`` logits.

    The same values as ``torch.softmax(logits, dim=-1)``, computed over the transposed view: with few
    clusters (k ≪ N) PyTorch's CPU softmax over a short last dimension runs row by row, while over the
    first dimension of the ``(k, N)`` view it runs across nodes (``benchmarks/gnn_kernels.py``; docs/speed.md,
    *Kernel choices*)."""
    return torch.softmax(logits.T, dim=0).T


class DropoutMasks:
    """The dropout multipliers of one training, ``(N, H)`` per epoch: each entry is 0 with probability ``p``
    and ``1 / (1 - p)`` otherwise, drawn from ``seed`` only (the global RNG is not touched).

    On the CPU the masks come in blocks of :attr:`BLOCK` epochs from the raw 64-bit words of NumPy's PCG64,
    read as 16-bit integers and compared with ``round(p · 2¹⁶)`` (``p`` exact to 2⁻¹⁶, e.g. 0.25 exactly),
    fewer kernels than ``torch.rand``, its comparison and scaling (``benchmarks/gnn_kernels.py``). On other
    devices ``torch.rand`` draws on the device itself.
    """

    #: Epochs drawn at a time on the CPU.
    BLOCK = 10

    def __init__(self, seed: int, p: float, device: str | torch.device | None = None) -> None:
        self.p = float(p)
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._scale = 1.0 / (1.0 - self.p) if self.p < 1 else 0.0
        if self.device.type == "cpu":
            self._bits = np.random.PCG64(int(seed))
            self._threshold = round(self.p * 2 ** 16)
        else:
            self._torch = torch.Generator(device=self.device).manual_seed(int(seed))
        self._block: torch.Tensor | None = None
        self._next = 0

    def next(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The next epoch's ``(N, H)`` float32 multipliers."""
        shape = tuple(int(v) for v in shape)
        if self.device.type != "cpu":
            return (torch.rand(shape, generator=self._torch, device=self.device) >= self.p).float() * self._scale
        if self._block is None or self._next == len(self._block) or tuple(self._block.shape[1:]) != shape:
            count = self.BLOCK * math.prod(shape)
            words = self._bits.random_raw(-(-count // 4)).view(np.uint16)[:count]  # four draws per word
            keep = (words >= self._threshold).reshape(self.BLOCK, *shape).view(np.uint8)  # 0 / 1 bytes
            self._block = torch.from_numpy(keep).float().mul_(self._scale)  # from uint8: a faster cast than bool's
            self._next = 0
        self._next += 1
        return self._block[self._next - 1]


def cross_entropy_grad(target: torch.Tensor) -> LossGrad:
    """The mean cross-entropy of logits ``(N, k)`` against ``target`` ``(N,)`` class indices with its gradient
    ``(softmax(logits) - onehot(target)) / N``, for :meth:`DeepCutGNN.training_step_logits` (the same value and,
    to rounding, the same gradient as autograd's ``F.cross_entropy``; the tests compare them)."""
    def value_and_grad(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad = torch.softmax(z, dim=-1)
        grad[torch.arange(z.shape[0], device=z.device), target] -= 1.0
        return F.cross_entropy(z, target), grad.div_(z.shape[0])
    return value_and_grad


def _elu_backward(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The gradient through ``out = elu(x)`` (α = 1) from its output: ``grad`` where ``out > 0``, else
    ``grad · (out + 1)`` (ATen's own kernel, as autograd uses it)."""
    return torch.ops.aten.elu_backward(grad, 1.0, 1, 1, True, out)


def _uniform(shape: torch.Size, bound: float, generator: torch.Generator) -> torch.Tensor:
    """``U(-bound, bound)`` on the CPU, drawn from ``generator``."""
    return torch.rand(shape, generator=generator) * 2 * bound - bound
