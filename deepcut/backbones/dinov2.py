"""DINOv2 feature extraction on top of ``transformers.Dinov2Model`` / ``Dinov2WithRegistersModel``.

The same block-by-block, resumable forward pass and facets as :class:`~deepcut.backbones.vit.ViTBackbone`
(DINO v1); only the module layout differs:

* blocks are ``model.encoder.layer[i]``, their pre-attention norm is ``norm1``; the layer-scale
  factors live inside the block and are applied by the block itself;
* with registers (Darcet et al., "Vision Transformers Need Registers", 2024) the sequence is
  ``[CLS, reg_1 … reg_R, patches]``: the registers carry no position embedding and, like CLS, are
  dropped from every facet, so the patch grid is the same as without them.

Position embeddings are resized exactly as the ``transformers`` model resizes them (bicubic; with
antialiasing for the register models), so at ``stride == patch`` the ``token`` facet of layer ``l``
equals the model's own ``hidden_states[l + 1]``.
"""

from __future__ import annotations

import torch
from torch import nn

from .vit import IMAGENET_MEAN, IMAGENET_STD, HFModule, ViTBackbone


class Dinov2Backbone(ViTBackbone):
    """A ``transformers`` ``Dinov2Model`` or ``Dinov2WithRegistersModel`` as a dense feature extractor.

    Args:
        model: the ``transformers`` model (frozen, eval mode).
        name: registry name or path, for messages.
        source: where the weights came from (hub id, path, ``"random"``).
    """

    family = "dinov2"

    def __init__(self, model: nn.Module, name: str, source: str,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__(model, name=name, source=source, mean=mean, std=std)
        registers = getattr(model.embeddings, "register_tokens", None)
        self._registers = 0 if registers is None else int(registers.shape[1])
        if self._registers:
            self.family = "dinov2_reg"
            # DINOv2 with registers resizes its position embeddings to the grid, with antialiasing
            # (facebookresearch/dinov2 hub: interpolate_antialias=True, interpolate_offset=0)
            self.pos_antialias = True
            self.pos_offset = 0.0

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.encoder.layer

    def _pre_norm(self, block: HFModule) -> nn.Module:
        return block.norm1

    @property
    def num_registers(self) -> int:
        return self._registers

    def _prefix_tokens(self, batch: int) -> torch.Tensor:
        """``(B, 1 + R, D)``: CLS, then the ``R`` register tokens (none without registers)."""
        emb = self.model.embeddings
        cls = emb.cls_token.expand(batch, -1, -1)
        if not self._registers:
            return cls
        return torch.cat([cls, emb.register_tokens.expand(batch, -1, -1)], dim=1)
