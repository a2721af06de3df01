"""DINO ViT feature extraction on top of ``transformers.ViTModel``.

The forward pass is run block by block (``model.layers[i]``) so that it can stop at the requested
layer and resume later. Facets follow the DINO dense-descriptor convention (Amir et al. 2021):

* ``key`` / ``query`` / ``value`` of layer ``l``: ``{k,q,v}_proj(layernorm_before(h_l))``, the
  per-head vectors concatenated (``D`` = hidden size);
* ``token`` of layer ``l``: the block's output ``h_{l+1}`` (before the final layer norm).

Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (the ``transformers``
model's ``"sdpa"`` implementation, set explicitly), so no ``(heads, T, T)`` attention matrix is
materialised and a 1024-px image (16385 tokens for ViT-S/8) fits in a few hundred MB.

The CLS token (and any register tokens) is dropped from every facet. With a ``stride`` smaller than
the patch size the patch projection is applied at that step (overlapping patches, Amir et al.) and the
learned position embeddings are interpolated to the denser grid.

:class:`ViTBackbone` holds everything the ViT families share; a family only says where its blocks,
norms and prefix tokens live (see :mod:`deepcut.backbones.dinov2`), and how positions enter
(:mod:`deepcut.backbones.dinov3`: rotary, inside attention).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Backbone, TokenState
from .openvino_engine import OpenVinoRunner
from .positions import ResizedPositions
from .precision import Engine, autocast, check_precision, default_engine, parse_engine, quantize_int8

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: How the blocks may compute attention (see :meth:`ViTBackbone.set_attention`).
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "blocked")
#: Query rows per block of :func:`blocked_attention` (ViT-S/8 at 1024 px: 6 x 256 x 16385 bf16 scores, 50 MB).
ATTENTION_BLOCK = 256
_BLOCKED = "deepcut_blocked"  # the name it is registered under in transformers' AttentionInterface
#: A ``transformers`` model or one of its parts, for the type checker: each family reaches its blocks,
#: norms and projections by attribute name, which ``nn.Module`` types as ``Tensor | Module``.
HFModule = Any


def blocked_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      **kwargs) -> tuple[torch.Tensor, None]:
    """``softmax(Q Kᵀ · scaling) V`` for ``(B, heads, T, d)`` queries, keys and values, written out a block of
    :data:`ATTENTION_BLOCK` query rows at a time, in the inputs' own dtype (a ``transformers`` attention
    function: returns ``(B, T, heads, d)`` and no weights).

    For bf16 / fp16 on the CPU, where PyTorch's fused (flash) kernel is no faster than in float32 while two
    half-precision matrix products and a softmax are (docs/speed.md, *Precision*); the ``(heads, block, T)``
    scores of one block are all that is materialised. Masks and dropout (never used
    here: DeepCut's ViTs attend to every token, in eval mode) go to the fused kernel.
    """
    if attention_mask is not None or dropout:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
    # DINOv3's queries and keys leave the rotation in float32 (fp32 tables): compute in the values' dtype
    query, key = query.to(value.dtype), key.to(value.dtype)
    out = torch.empty_like(query)
    with torch.autocast(query.device.type, enabled=False):  # the inputs' dtype throughout, softmax included
        keys = key.transpose(-1, -2)
        for i in range(0, query.shape[2], ATTENTION_BLOCK):
            scores = torch.matmul(query[:, :, i:i + ATTENTION_BLOCK] * scale, keys)
            out[:, :, i:i + ATTENTION_BLOCK] = torch.matmul(torch.softmax(scores, dim=-1), value)
    return out.transpose(1, 2).contiguous(), None


def _register_blocked() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(_BLOCKED, blocked_attention)


class ViTBackbone(Backbone):
    """A ``transformers`` ``ViTModel`` (DINO v1 layout) used as a dense feature extractor.

    Args:
        model: the ``transformers`` model (its weights are frozen and it is put in eval mode).
        name: registry name or path, for messages.
        source: where the weights came from (hub id, path, ``"random"``).
        mean, std: per-channel input normalisation (ImageNet's for every DINO model).

    Attributes:
        attention: ``"sdpa"``, ``"blocked"`` or ``"eager"`` (see :meth:`set_attention`).
        engine: the name of the :class:`~deepcut.backbones.precision.Engine` it runs in (see :meth:`set_engine`).
    """

    family = "vit"
    #: whether position embeddings are resized with antialiasing (as the model's own code does)
    pos_antialias = False
    #: DINO's ``(n + 0.1) / n0`` scale factor (:func:`~deepcut.backbones.positions.interpolate_pos_embed`); 0: resize
    #: to the grid.
    pos_offset = 0.1

    def __init__(self, model: nn.Module, name: str, source: str,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        self.model: HFModule = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._float_model: HFModule = self.model  # the float32 weights every other engine is made from
        self._block_dtype: torch.dtype | None = None  # where the blocks' weights are cast: their inputs' dtype
        self._copies: dict[str, HFModule] | None = None  # the engines' models, while trying engines
        self._runner: OpenVinoRunner | None = None  # the OpenVINO engine's runner (None: a torch engine)
        self._runners: dict[str, OpenVinoRunner] = {}  # the OpenVINO runners made, by precision
        self._positions = ResizedPositions()  # the position embeddings, resized once per grid
        self.attention = "sdpa"
        self.set_attention("sdpa")
        cfg: HFModule = model.config
        self.name = name
        self.source = source
        patch = cfg.patch_size
        self.patch_size = int(patch if isinstance(patch, int) else patch[0])
        self.dim = int(cfg.hidden_size)
        self.depth = int(cfg.num_hidden_layers)
        self.heads = int(cfg.num_attention_heads)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        first = next(self.model.parameters(), None)
        self.to(first.device if first is not None else "cpu")

    def to(self, device: str | torch.device) -> ViTBackbone:
        """Move the model and the normalisation constants to ``device``; returns ``self``.

        Raises:
            ConfigError: the model is quantized to int8 or runs in OpenVINO (CPU only) and ``device`` is not the CPU.
        """
        if (self.precision == "int8" or self._runner is not None) and torch.device(device).type != "cpu":
            raise ConfigError(f"a ViT in the {self.engine} engine runs on the CPU only, not on {device}")
        self.model.to(device)
        self._float_model.to(device)
        self._mean = self._mean.to(device)
        self._std = self._std.to(device)
        return super().to(self._mean.device)

    @property
    def tunable(self) -> bool:
        return True

    def set_precision(self, precision: str) -> ViTBackbone:
        """Run the forward pass in ``precision`` by its :func:`~deepcut.backbones.precision.default_engine`
        (an engine's name: that engine); returns ``self``. An attention chosen by hand (``"eager"``) is kept.

        ``"bf16"`` / ``"fp16"``: the blocks run under ``torch.autocast`` (weights stay float32);
        ``"int8"``: the ``Linear`` layers of a copy of the model are dynamically quantized (the float
        model is kept, so ``"fp32"`` later goes back to it). Hidden states and facets stay float32.

        Raises:
            ConfigError: an unknown precision, ``"auto"`` (resolve it first), or int8 off the CPU.
        """
        precision = check_precision(precision)
        if precision == "auto":
            raise ConfigError("resolve 'auto' first (deepcut.backbones.tune.choose_engine)")
        engine = parse_engine(precision) or default_engine(precision, self.device)
        if self.attention == "eager" and engine.attention != "eager" and parse_engine(precision) is None:
            engine = Engine(engine.precision, "eager", engine.weights)
        return self.set_engine(engine)

    def set_engine(self, engine: Engine | str) -> ViTBackbone:
        """Run the forward pass in ``engine`` (an :class:`~deepcut.backbones.precision.Engine` or its name);
        returns ``self``. Weights cast to bf16 / fp16 or quantized to int8 live in a copy of the model's;
        the float32 model is kept, so any engine can follow any other. An OpenVINO engine runs the float32
        model's blocks converted (:mod:`~deepcut.backbones.openvino_engine`, on first use of a layer and facet).

        Raises:
            ConfigError: not an engine, int8 or OpenVINO off the CPU, OpenVINO not installed.
        """
        parsed = parse_engine(engine) if isinstance(engine, str) else engine
        if parsed is None:
            raise ConfigError(f"not an engine: {engine!r} (e.g. 'bf16+blocked', 'bf16-weights+sdpa', 'fp32+sdpa')")
        engine = parsed
        if engine.precision == "int8" and self.device.type != "cpu":
            raise ConfigError(f"precision 'int8' (dynamic quantization) runs on the CPU only, not on {self.device}")
        runner = None
        if engine.runtime == "openvino":  # one runner per precision, kept with its compiled models
            runner = self._runners.setdefault(engine.precision, OpenVinoRunner(self, engine.precision))
        held = "int8" if engine.precision == "int8" else engine.weights
        if held != self._weights():
            self.model = self._model_holding(held)
        self._block_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(held)
        self.precision = engine.precision
        self.set_attention(engine.attention)
        self._runner, self.engine = runner, engine.name
        return self

    @contextmanager
    def trying_engines(self) -> Iterator[None]:
        self._copies = {}
        try:
            yield
        finally:  # the tried engines' copies and OpenVINO runners go, but the current one's
            self._copies, self._runners = None, {k: r for k, r in self._runners.items() if r is self._runner}

    def _model_holding(self, held: str) -> HFModule:
        """The model with its blocks' weights held as ``held``: ``"fp32"`` (the float model itself), ``"int8"``
        (a quantized copy) or ``"bf16"`` / ``"fp16"`` (a copy whose blocks are cast); inside
        :meth:`trying_engines` each copy is made once."""
        copies = self._copies
        if held == "fp32":
            return self._float_model
        if copies is not None and held in copies:
            return copies[held]
        if held == "int8":
            made = quantize_int8(self._float_model)
        else:
            made = copy.deepcopy(self._float_model)
            self.model = made  # self.blocks reads the current model's blocks
            self.blocks.to({"bf16": torch.bfloat16, "fp16": torch.float16}[held])
        if copies is not None:
            copies[held] = made
        return made

    def compute(self):
        """``torch.autocast`` for ``"bf16"`` / ``"fp16"`` (weights cast or not), nothing for ``"fp32"`` / ``"int8"``
        and OpenVINO (PyTorch's part of the forward pass, before the blocks, stays float32)."""
        return autocast("fp32" if self._runner is not None else self.precision, self.device)

    def prepare(self, layer: int, facet: str) -> float:
        """Convert (or read) and compile the OpenVINO model of ``layer`` / ``facet`` for the current thread
        count, where the engine is OpenVINO's; returns the seconds it took (0: nothing to do)."""
        layer = self.check_layer_facet(layer, facet)
        return 0.0 if self._runner is None else float(self._runner.prepare(layer, facet))

    def set_attention(self, implementation: str = "sdpa") -> ViTBackbone:
        """Choose how every block computes attention; returns ``self``.

        * ``"sdpa"`` (the default): ``torch.nn.functional.scaled_dot_product_attention``, whose CPU
          (flash) and CUDA (flash / memory-efficient) kernels work through blocks of queries and keys,
          so no ``(B, heads, T, T)`` attention matrix is ever materialised: at 1024 px ViT-S/8 has
          ``T = 16385`` tokens, whose 6 attention maps would take 6.4 GB.
        * ``"eager"``: ``softmax(Q Kᵀ / √d) V`` written out (the reference; ``O(T²)`` memory).
        * ``"blocked"``: :func:`blocked_attention`, the same written out a block of query rows at a time in
          the inputs' dtype: what bf16 / fp16 use on the CPU by default (:meth:`set_precision`).

        All give the same features up to float rounding.
        """
        if implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ConfigError(f"attention must be one of {ATTENTION_IMPLEMENTATIONS}, got {implementation!r}")
        if implementation == "blocked":
            _register_blocked()
        name = _BLOCKED if implementation == "blocked" else implementation
        self._runner = None  # a torch engine from here on (set_engine sets an OpenVINO one after this)
        for model in {id(m): m for m in (self.model, self._float_model)}.values():
            model.set_attn_implementation(name)
        self.attention = implementation
        weights = self._weights()
        self.engine = Engine(self.precision, implementation, weights if weights in ("bf16", "fp16") else "fp32").name
        return self

    def _weights(self) -> str:
        """How the blocks' weights are held: ``"fp32"``, ``"bf16"``, ``"fp16"`` (cast) or ``"int8"`` (quantized)."""
        if self.precision == "int8":
            return "int8"
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self._block_dtype, "fp32")  # type: ignore[arg-type]

    # -- model-family specific parts (overridden by other ViT families) ---------------------------
    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.layers

    def _attention(self, block: HFModule) -> HFModule:
        return block.attention

    def _pre_norm(self, block: HFModule) -> nn.Module:
        return block.layernorm_before

    def _patch_projection(self) -> nn.Conv2d:
        return self.model.embeddings.patch_embeddings.projection

    def _prefix_tokens(self, batch: int) -> torch.Tensor:
        """Tokens put before the patches: ``(B, prefix, D)``."""
        return self.model.embeddings.cls_token.expand(batch, -1, -1)

    @property
    def num_registers(self) -> int:
        """Register tokens between the CLS token and the patches (0 for DINO v1)."""
        return 0

    def _add_positions(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Add position embeddings, resized to ``grid`` (once per grid: :class:`ResizedPositions`), to
        ``(B, 1 + h*w, D)`` CLS + patch tokens."""
        return tokens + self._positions(self.model.embeddings.position_embeddings, grid, 1, self.pos_antialias,
                                        self.pos_offset)

    def _run_block(self, block: nn.Module, hidden: torch.Tensor, state: TokenState | None = None) -> torch.Tensor:
        """Block ``block`` on ``hidden``; ``state`` carries what a family's blocks need besides (DINOv3's
        rotary tables)."""
        out = block(hidden, None)
        return out[0] if isinstance(out, tuple) else out

    # -- Backbone interface ------------------------------------------------------------------------
    def describe(self) -> dict:
        return {**super().describe(), "family": self.family, "heads": self.heads,
                "registers": self.num_registers, "attention": self.attention}

    def normalize(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, H, W, 3)`` uint8 → ``(B, 3, H, W)`` float32 on :attr:`device`, mean/std normalised."""
        return (self.pixels_to_tensor(pixels) - self._mean) / self._std

    @torch.inference_mode()
    def embed(self, pixels: np.ndarray, stride: int) -> TokenState:
        with self.compute():
            return self._embed(pixels, stride)

    def _patch_tokens(self, pixels: np.ndarray, stride: int
                      ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], torch.Tensor]:
        """``(x, tokens, grid, prefix)``: the normalised pixels ``(B, 3, H, W)``, the patch tokens ``(B, h*w, D)``
        on the ``(h, w)`` grid of patches ``stride`` apart, and the prefix tokens ``(B, P, D)`` (CLS, registers)."""
        stride = self.check_stride(stride)
        x = self.normalize(pixels)
        proj = self._patch_projection()
        patches = F.conv2d(x, proj.weight, proj.bias, stride=stride)  # (B, D, h, w)
        grid = (int(patches.shape[2]), int(patches.shape[3]))
        tokens = patches.flatten(2).transpose(1, 2)
        return x, tokens, grid, self._prefix_tokens(tokens.shape[0])

    def _embed(self, pixels: np.ndarray, stride: int) -> TokenState:
        _, tokens, grid, prefix = self._patch_tokens(pixels, stride)
        hidden = self._add_positions(torch.cat([prefix[:, :1], tokens], dim=1).float(), grid)
        if prefix.shape[1] > 1:  # registers come after CLS and carry no position embedding
            hidden = torch.cat([hidden[:, :1], prefix[:, 1:], hidden[:, 1:]], dim=1)
        return TokenState(grid=grid, hidden=[hidden], prefix=int(prefix.shape[1]))

    @torch.inference_mode()
    def run_to(self, state: TokenState, n_blocks: int) -> None:
        """Make sure the inputs of blocks ``0 … n_blocks`` are in ``state.hidden``."""
        with self.compute():
            while len(state.hidden) <= n_blocks:
                i = len(state.hidden) - 1
                hidden = state.hidden[-1] if self._block_dtype is None else state.hidden[-1].to(self._block_dtype)
                state.hidden.append(self._run_block(self.blocks[i], hidden, state).float())

    @torch.inference_mode()
    def facet(self, state: TokenState, layer: int, facet: str) -> torch.Tensor:
        """:meth:`Backbone.facet`, resuming from ``state``'s hidden states: OpenVINO runs (adding the states it
        computed) only where two or more blocks are left, else PyTorch finishes (a projection or one block)."""
        layer = self.check_layer_facet(layer, facet)
        if self._runner is not None and len(state.hidden) < layer + (facet == "token"):
            return self._runner.facet(state, layer, facet)  # else at most one block is left to run: in torch
        with self.compute():
            return self.torch_facet(state, layer, facet)

    def torch_facet(self, state: TokenState, layer: int, facet: str) -> torch.Tensor:
        """:meth:`facet` of a checked ``layer``, computed by PyTorch (what the OpenVINO engines convert)."""
        if facet == "token":
            self.run_to(state, layer + 1)
            out = state.hidden[layer + 1]
        else:
            self.run_to(state, layer)
            block = self.blocks[layer]
            attn = self._attention(block)
            hidden = state.hidden[layer]
            x = self._pre_norm(block)(hidden if self._block_dtype is None else hidden.to(self._block_dtype))
            proj = {"key": attn.k_proj, "query": attn.q_proj, "value": attn.v_proj}[facet]
            out = proj(x)
        return out[:, state.prefix:].float().contiguous()
