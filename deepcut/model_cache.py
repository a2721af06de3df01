"""Shared models: one :class:`~deepcut.DeepCut` per backbone, built once and reused by every caller.

A :class:`ModelCache` is what a server (the web demo) or a long-running CLI holds instead of building
models itself:

* each backbone is built once, under a lock, and shared (so is its feature cache); the least
  recently used ones are dropped beyond ``max_models``;
* a registered backbone whose weights cannot be loaded (no network, nothing cached, gated weights
  without access) falls back to the weight-free colour backbone with a notice (for gated weights it
  says how to get access: :func:`deepcut.backbones.hub.access_help`), and the failure is remembered for
  :data:`RETRY_AFTER` seconds so that it costs time once; after that it is tried again;
* :meth:`ModelCache.choices` lists every registered backbone with whether it can be used here.

Example::

    pool = ModelCache(default_backbone="dino_vits8", device="cpu")
    model, used, notice = pool.get()           # used == "color" and a notice if DINO is missing
    seg = model.segment("assets/cat.jpg")
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .backbones import DEFAULT_BACKBONE, REGISTRY, list_backbones, weights_available
from .backbones.hub import access_help
from .backbones.precision import resolve_precision
from .errors import BackboneLoadError
from .predictor import DeepCut
from .utils.device import resolve_device

log = logging.getLogger(__name__)

#: The weight-free backbone used when a registered backbone's weights cannot be loaded.
FALLBACK_BACKBONE = "color"
#: A backbone whose weights failed to load is tried again after this many seconds.
RETRY_AFTER = 600.0

_FAMILIES = {"vit": "DINO", "dinov2": "DINOv2", "dinov2_reg": "DINOv2 + registers", "dinov3": "DINOv3"}


class CachedModel(NamedTuple):
    """What :meth:`ModelCache.get` hands out (unpacks as ``model, backbone, notice``).

    Attributes:
        model: the shared :class:`DeepCut`.
        backbone: the backbone it runs (the fallback if the requested one failed).
        notice: why the fallback was used, or None.
    """

    model: DeepCut
    backbone: str
    notice: str | None


@dataclass(frozen=True)
class BackboneChoice:
    """A registered backbone as a picker lists it.

    Attributes:
        name: registry name.
        label: what the picker shows; unavailable ones are marked.
        available: True if it loads (or loaded) without network; False if loading failed;
            None if its weights are not cached yet and have not been tried (they may download).
        depth: number of layers (valid layers are ``0 … depth-1``).
        patch_size: patch side in pixels.
    """

    name: str
    label: str
    available: bool | None
    depth: int
    patch_size: int


class ModelCache:
    """Thread-safe pool of shared models, one per backbone.

    Args:
        default_backbone: what :meth:`get` loads when no backbone is named.
        max_models: how many backbones stay loaded (least recently used ones are dropped).
        cache_size: images whose features each model keeps.
        device: where every model computes (``None``/``"auto"``, ``"cpu"``, ``"cuda[:N]"``,
            ``"mps"``; see :func:`deepcut.utils.device.resolve_device`). Checked here, so a device this
            machine lacks fails at start-up with :class:`~deepcut.errors.ConfigError`.
        retry_after: seconds before a backbone that failed to load is tried again.
        pretrained: build backbones with pretrained weights (``False``: random weights, for tests
            and benchmarks).
        threads: every model's ViT threads (``None``: automatic, see :mod:`deepcut.utils.threads`).
        precision: every model's ViT precision (``None``: ``$DEEPCUT_PRECISION``, else ``"auto"``; see
            :mod:`deepcut.backbones.precision`). Checked here, like the device.
    """

    def __init__(self, default_backbone: str = DEFAULT_BACKBONE, max_models: int = 3, cache_size: int = 8,
                 device: str | torch.device | None = None, retry_after: float = RETRY_AFTER,
                 pretrained: bool = True, threads: int | None = None, precision: str | None = None) -> None:
        resolve_precision(precision, resolve_device(device))
        self.precision = precision
        self.threads = threads
        self.pretrained = bool(pretrained)
        self.default_backbone = str(default_backbone)
        self.max_models = max(1, int(max_models))
        self.cache_size = int(cache_size)
        self.device = device
        self.retry_after = float(retry_after)
        self._models: OrderedDict[str, DeepCut] = OrderedDict()
        self._failures: dict[str, tuple[str, float]] = {}  # name -> (reason, time.monotonic())
        self._lock = threading.RLock()
        self._build_lock = threading.Lock()

    def get(self, backbone: str | None = None) -> CachedModel:
        """The shared model for ``backbone`` (default: :attr:`default_backbone`).

        A registered backbone whose weights cannot be loaded falls back to
        :data:`FALLBACK_BACKBONE`, with a notice. A local folder or hub id that fails raises: the
        caller asked for it explicitly.

        Raises:
            BackboneLoadError: ``backbone`` is not registered and cannot be loaded.
        """
        name = (backbone or "").strip() or self.default_backbone
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return CachedModel(self._models[name], name, None)
            failed = self._recent_failure(name)
        if not failed:
            try:
                return CachedModel(self.load(name), name, None)
            except BackboneLoadError as e:
                if name not in REGISTRY:
                    raise
                with self._lock:
                    self._failures[name] = (str(e), time.monotonic())
                log.warning("backbone %s unavailable, using %s: %s", name, FALLBACK_BACKBONE, e)
        notice = f"`{name}` weights are unavailable here, so the colour backbone was used"
        spec = REGISTRY.get(name)
        if spec is not None and spec.gated and spec.hub_id:
            notice += f". {access_help(spec.hub_id)}"
        return CachedModel(self.load(FALLBACK_BACKBONE), FALLBACK_BACKBONE, notice)

    def load(self, name: str) -> DeepCut:
        """The shared model for ``name``, built now if needed (no fallback).

        Raises:
            BackboneLoadError: the weights cannot be loaded.
        """
        with self._build_lock:
            with self._lock:
                if name in self._models:
                    return self._models[name]
            model = DeepCut(name, pretrained=self.pretrained, cache_size=self.cache_size, device=self.device,
                            threads=self.threads, precision=self.precision)
            with self._lock:
                self._models[name] = model
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            return model

    def _recent_failure(self, name: str) -> bool:
        """Whether ``name`` failed less than :attr:`retry_after` seconds ago (call under the lock)."""
        hit = self._failures.get(name)
        if hit is not None and time.monotonic() - hit[1] > self.retry_after:
            del self._failures[name]  # the network may be back: try once more
            return False
        return hit is not None

    def failure(self, backbone: str) -> str | None:
        """Why ``backbone`` could not be loaded, or None if it did not fail."""
        with self._lock:
            hit = self._failures.get(backbone)
        return hit[0] if hit else None

    def loaded(self, backbone: str) -> bool:
        """Whether ``backbone`` is built and in the pool."""
        with self._lock:
            return backbone in self._models

    def choices(self) -> list[BackboneChoice]:
        """Every registered backbone, marked by whether it can be used here."""
        out = []
        for spec in list_backbones():
            name = spec["name"]
            failed = self.failure(name) is not None
            if self.loaded(name) or (not failed and weights_available(name)):
                available, note = True, ""
            elif failed:
                available, note = False, " — unavailable (uses colour)"
            else:
                available, note = None, " — weights not cached: fetched on first use if the server is online"
            family = _FAMILIES.get(spec.get("family", ""), spec.get("family", "ViT"))
            gated = ", gated licence" if spec.get("gated") else ""
            desc = "no weights, colour + position" if name == FALLBACK_BACKBONE else (
                f"{family}, patch {spec['patch_size']}, {spec['dim']}-d{gated}")
            out.append(BackboneChoice(name, f"{name} ({desc}){note}", available, int(spec["depth"]),
                                      int(spec["patch_size"])))
        return out
