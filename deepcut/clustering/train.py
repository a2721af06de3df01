"""The GNN's training loops: epochs of one objective (:func:`train`, with the settle rule), and a correction's
epochs until its links hold (:func:`train_links`); the soft assignments of a trained GNN (:func:`assign`)."""

from __future__ import annotations

import torch

from .gnn import DeepCutGNN, DropoutMasks, LossGrad, soft_assign
from .links import Links
from .losses import link_grad
from .optim import Stepper, adamw
from .settle import Settle, SettleWatch

__all__ = ["LINK_BLOCK", "assign", "train", "train_links"]


def train(model: DeepCutGNN, ax: torch.Tensor, objective: LossGrad, opt: Stepper, epochs: int,
           g_drop: DropoutMasks, record: dict[int, torch.Tensor | None], start: int = 0,
           settle: Settle | None = None, clusters: int | None = None, dtype: torch.dtype = torch.float32,
           inp: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Up to ``epochs`` optimiser steps on ``objective(softmax(GNN(ax)))`` (``objective``: the loss and its
    gradient, :meth:`~deepcut.clustering.gnn.DeepCutGNN.training_step`), with dropout masks from ``g_drop``; the
    loss of each (on the device): fewer than ``epochs`` where the ``settle`` rule stopped the training
    (:class:`~deepcut.clustering.settle.Settle`; None: every epoch; ``clusters``: never while its argmax uses
    fewer, see :class:`~deepcut.clustering.settle.SettleWatch`). Fills ``record[start + e]`` with the soft
    assignments after epoch ``e`` where asked for, and, where the rule stopped it and ``record`` is not empty,
    after the last epoch. ``dtype``: what the GCN's two products read (bfloat16: :mod:`~deepcut.clustering.arithmetic`);
    ``inp``: ``model.gcn_input(ax)`` (float32) where the caller already has it.
    """
    history: list[torch.Tensor] = []
    model.train()
    full = model.gcn_input(ax) if inp is None else inp  # float32, for the recorded assignments
    inp = full.to(dtype)
    inp_t = inp.T.contiguous() if dtype != torch.float32 else None  # the bf16 weight gradient's factor
    shape = (ax.shape[0], model.mlp1.out_features)
    watch = SettleWatch(settle, start, clusters) if settle is not None and epochs > settle.after else None
    for epoch in range(start + 1, start + epochs + 1):
        drop, done = g_drop.next(shape), epoch - 1
        if watch is not None and done > start and watch.due(done):  # a look at the state after epoch `done`
            value, looked = model.training_step_looking(inp, drop, objective, inp_t)
            if watch.settled(done, looked, history):  # this step's gradients are not applied
                if record and record.get(done) is None:
                    record[done] = _looked_soft(model, ax, full)
                break
        else:
            value = model.training_step(inp, drop, objective, inp_t)
        opt.step()
        history.append(value)  # read back only at a look of the settle rule or the end: few GPU syncs
        if epoch in record:
            record[epoch] = _looked_soft(model, ax, full)
    model.eval()
    return history


def _looked_soft(model: DeepCutGNN, ax: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
    """:func:`assign` in the middle of a training (evaluation mode for the look, training mode after it)."""
    model.eval()
    try:
        return assign(model, ax, inp)
    finally:
        model.train()


#: Epochs between two checks of the links while a correction trains.
LINK_BLOCK = 5


def train_links(model: DeepCutGNN, ax: torch.Tensor, objective: LossGrad,
                 links: Links, g_drop: DropoutMasks, record: dict[int, torch.Tensor | None],
                 dtype: torch.dtype = torch.float32) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Train ``objective + w · link_loss`` in blocks of :data:`LINK_BLOCK` epochs until ``links`` hold on the
    argmax (anchors and groups, :meth:`~deepcut.clustering.links.Links.hold`), up to ``links.epochs``; returns
    ``(losses, soft (N, k))``. ``dtype``: as :func:`train`'s."""
    inp = model.gcn_input(ax)  # once for every block and look (a standardised GNN computes it)
    soft = assign(model, ax, inp)
    must, cannot = links.tensors(ax.device)
    with torch.no_grad():
        weight = links.penalty_weight(float(objective(soft)[0]), ax.shape[0])
    link = link_grad(must, cannot, weight)

    def penalised(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (v1, g1), (v2, g2) = objective(s), link(s)
        return v1 + v2, g1 + g2

    opt = adamw(model, links.lr)
    history: list[torch.Tensor] = []
    done = 0
    while done < links.epochs and not links.hold(soft.argmax(dim=-1).cpu().numpy()):
        block = min(LINK_BLOCK, links.epochs - done)
        history += train(model, ax, penalised, opt, block, g_drop, record, done, dtype=dtype, inp=inp)
        done += block
        soft = assign(model, ax, inp)
    return history, soft


def assign(model: DeepCutGNN, ax: torch.Tensor, inp: torch.Tensor | None = None) -> torch.Tensor:
    """The trained GNN's soft assignments ``(N, k)`` (no dropout) on the propagation ``ax`` ``(N, D)``; ``inp``: its
    ``model.gcn_input(ax)`` (float32) where already computed."""
    with torch.no_grad():
        return soft_assign(model.forward_input(model.gcn_input(ax) if inp is None else inp))
