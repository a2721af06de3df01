"""The interface every feature extractor ("backbone") implements.

A backbone turns a batch of images into a :class:`TokenState`: the patch grid and the hidden states
computed so far. Features of any layer and facet are then read from that state; a deeper layer
resumes the forward pass where it stopped, so one image never runs through the ViT twice and a
shallow layer never pays for the deep ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import ContextManager, TypeVar

import numpy as np
import torch

from ..config import DEFAULT_RESOLUTION, FACETS
from ..errors import ConfigError
from .precision import Engine

_B = TypeVar("_B", bound="Backbone")  # `to` returns the subclass it is called on


@dataclass
class TokenState:
    """Forward-pass state of a batch of images.

    Attributes:
        grid: patch grid ``(h, w)``.
        hidden: ``hidden[i]`` is the input of block ``i``, ``(B, T, D)`` with ``T = prefix + h * w``;
            ``hidden[0]`` is the embedding output. Grows as deeper layers are requested.
        prefix: number of non-patch tokens (CLS, registers) at the start of the sequence.
        extra: backbone-specific data (e.g. precomputed features of the colour backbone).
    """

    grid: tuple[int, int]
    hidden: list[torch.Tensor] = field(default_factory=list)
    prefix: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.hidden[0].shape[0]) if self.hidden else int(self.extra["features"].shape[0])

    def nbytes(self) -> int:
        tensors = list(self.hidden) + [v for v in self.extra.values() if isinstance(v, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)


class Backbone(ABC):
    """A patch-feature extractor.

    Attributes:
        name: registry name or path it was loaded from.
        patch_size: side of a patch in pixels.
        dim: feature dimension ``D`` of every facet.
        depth: number of layers (blocks); valid layers are ``0 … depth-1``.
        source: where the weights came from (hub id, path, ``"random"``, ``"none"``).
        device: where the weights live and the features are computed (the CPU unless moved with
            :meth:`to`); :meth:`embed` takes host images and :meth:`facet` returns tensors there.
        precision: the numeric precision of the forward pass (``"fp32"``, ``"bf16"``, ``"fp16"`` or
            ``"int8"``, see :mod:`deepcut.backbones.precision`); facets are float32 whatever it is.
        engine: the name of the :class:`~deepcut.backbones.precision.Engine` the forward pass runs in
            (e.g. ``"bf16-weights+sdpa"``); ``"fp32"`` for a backbone without weights.
        default_resolution: the working resolution a config that sets none gets with this backbone
            (:meth:`deepcut.config.SegmentConfig.with_default_resolution`): 280 px, 448 for DINOv3.
    """

    name: str
    patch_size: int
    dim: int
    depth: int
    source: str
    _device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    engine: str = "fp32"
    default_resolution: int = DEFAULT_RESOLUTION

    @property
    def device(self) -> torch.device:
        """The device of the weights and of every feature this backbone computes."""
        return self._device

    def to(self: _B, device: str | torch.device) -> _B:
        """Move the weights and constant tensors to ``device``; returns ``self``.

        Subclasses move their own tensors and then call this to record the device.
        """
        self._device = torch.device(device)
        return self

    def set_precision(self, precision: str) -> Backbone:
        """Run the forward pass in ``precision`` (a resolved one, see
        :func:`~deepcut.backbones.precision.resolve_precision`); returns ``self``. A backbone without
        weights computes in float32 whatever is asked: the base class records ``"fp32"``."""
        self.precision, self.engine = "fp32", "fp32"
        return self

    def set_engine(self, engine: Engine | str) -> Backbone:
        """Run the forward pass in ``engine`` (:class:`~deepcut.backbones.precision.Engine` or its name);
        returns ``self``. A backbone without weights computes in float32 whatever is asked."""
        self.precision, self.engine = "fp32", "fp32"
        return self

    def prepare(self, layer: int, facet: str) -> float:
        """Make the current engine ready to compute ``layer`` / ``facet`` (an OpenVINO engine converts or
        reads, then compiles its model); returns the seconds it took. Nothing to do here: 0."""
        return 0.0

    @property
    def tunable(self) -> bool:
        """Whether engines differ here at all (a backbone without weights has one way to compute)."""
        return False

    @contextmanager
    def trying_engines(self) -> Iterator[None]:
        """Inside the block, the copies of the weights that engines make (cast, quantized) are kept, so
        that switching among engines again and again makes each once; after it only the current one's is."""
        yield

    def compute(self) -> ContextManager:
        """The context the forward pass runs in (autocast for a reduced precision); none here."""
        return nullcontext()

    def pixels_to_tensor(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, H, W, 3)`` uint8 RGB images → ``(B, 3, H, W)`` float32 in ``[0, 1]`` on :attr:`device`."""
        if isinstance(pixels, torch.Tensor):
            x = pixels.to(device=self.device, dtype=torch.uint8)
        else:
            x = torch.as_tensor(np.array(pixels, dtype=np.uint8, copy=True)).to(self.device)
        return x.permute(0, 3, 1, 2).float().div_(255.0)

    @abstractmethod
    def embed(self, pixels: np.ndarray, stride: int) -> TokenState:
        """Start the forward pass for ``(B, H, W, 3)`` uint8 RGB images of one size, on :attr:`device`.

        ``H`` and ``W`` must be ``patch + stride * (cells - 1)`` (see :func:`deepcut.features.image.grid_size`).
        """

    @abstractmethod
    def facet(self, state: TokenState, layer: int, facet: str) -> torch.Tensor:
        """Features of ``layer`` and ``facet``: ``(B, h * w, D)`` float32 on :attr:`device`, row-major
        over the grid."""

    def check_stride(self, stride: int | None) -> int:
        """The effective stride (``None`` means the patch size); raises :class:`ConfigError` if invalid."""
        if stride is None:
            return self.patch_size
        stride = int(stride)
        if stride < 1 or stride > self.patch_size or self.patch_size % stride != 0:
            raise ConfigError(
                f"stride {stride} does not suit backbone {self.name!r} with patch size {self.patch_size}: "
                f"it must divide the patch size (e.g. {self.patch_size} or {max(1, self.patch_size // 2)})"
            )
        return stride

    def check_layer_facet(self, layer: int, facet: str) -> int:
        """Normalise a (possibly negative) layer index; raises :class:`ConfigError` if invalid."""
        if facet not in FACETS:
            raise ConfigError(f"facet must be one of {FACETS}, got {facet!r}")
        if not -self.depth <= layer < self.depth:
            raise ConfigError(
                f"layer {layer} is out of range for backbone {self.name!r}, which has {self.depth} layers "
                f"(0 … {self.depth - 1})"
            )
        return layer % self.depth

    def describe(self) -> dict:
        return {
            "name": self.name,
            "patch_size": self.patch_size,
            "dim": self.dim,
            "depth": self.depth,
            "source": self.source,
            "precision": self.precision,
            "engine": self.engine,
            "default_resolution": self.default_resolution,
        }
