"""The OpenVINO engines ``"openvino-bf16"`` and ``"openvino-fp32"``: the ViT's blocks run by OpenVINO.

An optional extra: ``pip install 'deepcut-gnn[openvino]'``. What comes before the first block (the patch
embedding, the prefix tokens, the position embeddings resized to the grid, DINOv3's rotary tables) stays
in PyTorch, in float32: it is cheap, and it is what depends on the grid. The rest, the blocks up to the
requested layer and its facet (the key / query / value projection of the layer's normed input, or the
block's output for ``"token"``), is one graph, :class:`FacetGraph`: exactly
:meth:`~deepcut.backbones.vit.ViTBackbone.torch_facet`, traced from the float32 model with PyTorch's SDPA
attention by ``openvino.convert_model``, once per backbone weights, layer and facet, with the batch and
the number of tokens left dynamic, so that one conversion serves every grid and batch.

The converted model is saved with its float32 weights under ``<cache dir>/openvino/``
(:func:`~deepcut.utils.files.cache_dir`), named by the backbone, the layer, the facet and a hash of the
weights' bytes and of the OpenVINO, PyTorch and transformers versions, so that a later process only reads
and compiles it (a fraction of a second; converting ViT-S/8 takes seconds). It is compiled for the CPU
with the inference precision bf16 for ``"openvino-bf16"`` where the CPU computes bf16 natively (OpenVINO
lists ``BF16`` among its ``OPTIMIZATION_CAPABILITIES``; f32 elsewhere) and f32 for ``"openvino-fp32"``,
one stream on the threads torch is set to at the time (one compiled model per thread count), without
pinning threads to cores (several labelling workers share the machine). Features stay float32.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..utils.files import cache_dir
from .base import TokenState
from .precision import Engine, openvino_module, require_openvino

#: The folder of the converted models, inside the cache folder.
FOLDER = "openvino"
#: Compiled models a runner keeps (by layer, facet and thread count), least recently used dropped first.
MAX_COMPILED = 4
#: The side, in patches, of the image the graph is traced on (any grid runs after).
TRACE_GRID = 4
#: What a converted graph returns (part of its file's hash: a graph of another layout is converted again).
GRAPH_OUTPUTS = "facet, hidden states"
#: Bytes the converted models in :data:`FOLDER` may take together: after each conversion the least recently
#: used are deleted beyond it (never the one just written). ViT-S/8 to its last layer takes about 80 MB.
MAX_STORED_BYTES = 2 * 1024 ** 3
#: Seconds after which a half-written file in :data:`FOLDER` (a conversion that crashed) is deleted.
STALE_S = 3600.0


class GraphBackbone(Protocol):
    """What a backbone offers the conversion (:class:`~deepcut.backbones.vit.ViTBackbone` does)."""

    name: str
    patch_size: int
    model: Any

    def embed(self, pixels: np.ndarray, stride: int) -> TokenState: ...

    def torch_facet(self, state: TokenState, layer: int, facet: str) -> torch.Tensor: ...


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    return require_openvino("openvino").Core()


def installed_version() -> str | None:
    """The installed OpenVINO distribution's version, read from its metadata without importing it (None: not
    installed)."""
    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def bf16_supported() -> bool:
    """Whether OpenVINO computes bf16 natively on this CPU (False where OpenVINO is not installed)."""
    if openvino_module() is None:
        return False
    try:
        return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except (RuntimeError, TypeError, AttributeError):
        return False


def engines() -> list[Engine]:
    """The OpenVINO engine ``auto`` tries on the CPU: ``openvino-bf16`` where the CPU computes bf16 natively,
    else ``openvino-fp32``; none where OpenVINO is not installed."""
    if openvino_module() is None:
        return []
    return [Engine("bf16" if bf16_supported() else "fp32", "sdpa", "fp32", "openvino")]


_DIGESTS: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()


def weights_digest(model: nn.Module) -> str:
    """A SHA-1 of ``model``'s state dict: every tensor's name, shape, dtype and bytes (once per model)."""
    known = _DIGESTS.get(model)
    if known is None:
        digest = hashlib.sha1()
        for name, tensor in model.state_dict().items():
            t = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name} {tuple(tensor.shape)} {t.dtype};".encode())
            digest.update(t.view(torch.uint8).numpy() if t.numel() else b"")
        known = _DIGESTS[model] = digest.hexdigest()
    return known


def model_path(backbone: GraphBackbone, layer: int, facet: str) -> Path:
    """Where the converted model of ``backbone``'s ``layer`` / ``facet`` is kept (the ``.xml``; its weights
    are the ``.bin`` beside it)."""
    import transformers

    ov = require_openvino("openvino")
    ident = json.dumps([backbone.name, type(backbone).__name__, weights_digest(backbone.model), layer, facet,
                        ov.__version__, torch.__version__, transformers.__version__, GRAPH_OUTPUTS])
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", backbone.name)[-48:]
    return cache_dir() / FOLDER / f"{stem}-layer{layer}-{facet}-{hashlib.sha1(ident.encode()).hexdigest()[:16]}.xml"


def _flatten(extra: dict) -> tuple[list[tuple[str, int]], list[torch.Tensor]]:
    """A state's other tensors (DINOv3's rotary tables) in one list, and how to put them back
    (``(key, parts)``, -1 parts: a tensor, not a tuple)."""
    layout, tensors = [], []
    for key in sorted(extra):
        value = extra[key]
        parts = list(value) if isinstance(value, (tuple, list)) else [value]
        if not all(isinstance(p, torch.Tensor) for p in parts):
            raise ValueError(f"the state's {key!r} is not tensors: OpenVINO cannot take it")
        layout.append((key, len(parts) if isinstance(value, (tuple, list)) else -1))
        tensors += parts
    return layout, tensors


class FacetGraph(nn.Module):
    """The features ``(B, N, D)`` of ``layer`` / ``facet`` from the first block's input ``(B, T, D)`` and the
    state's other tensors: :meth:`~deepcut.backbones.vit.ViTBackbone.torch_facet` as a module to convert."""

    def __init__(self, backbone: GraphBackbone, layer: int, facet: str, like: TokenState) -> None:
        super().__init__()
        self.model = backbone.model  # registered, so that the trace sees its weights as parameters
        self.backbone, self.layer, self.facet, self.prefix = backbone, layer, facet, like.prefix
        self.layout = _flatten(like.extra)[0]

    def forward(self, hidden: torch.Tensor, *extra: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(features (B, N, D), the inputs of blocks 1 … (B, T, D) …)``: the facet, then every hidden state
        the blocks computed on the way (those a later layer or facet of the same image resumes from)."""
        parts, i = {}, 0
        for key, n in self.layout:
            parts[key] = extra[i] if n < 0 else tuple(extra[i:i + n])
            i += 1 if n < 0 else n
        state = TokenState(grid=(0, 0), hidden=[hidden], prefix=self.prefix, extra=parts)
        return (self.backbone.torch_facet(state, self.layer, self.facet), *state.hidden[1:])


def convert(backbone: GraphBackbone, layer: int, facet: str) -> Any:
    """``openvino.convert_model`` of :class:`FacetGraph`, traced on a :data:`TRACE_GRID`-patch-square image
    (the backbone must run its float32 model with SDPA attention: the OpenVINO engines do)."""
    from transformers.utils import logging as hf_logging

    ov = require_openvino("openvino")
    side = TRACE_GRID * backbone.patch_size
    like = backbone.embed(np.zeros((1, side, side, 3), np.uint8), backbone.patch_size)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the tracer reads every property of the model, loss_function's warning too
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python values it keeps (none depend on the grid)
            example = tuple(t.clone() for t in [like.hidden[0], *_flatten(like.extra)[1]])
            shapes = [ov.PartialShape([-1] * (t.dim() - 1) + [t.shape[-1]]) for t in example]
            return ov.convert_model(FacetGraph(backbone, layer, facet, like), example_input=example, input=shapes)
    finally:
        hf_logging.set_verbosity(verbosity)


def save(model: Any, path: Path) -> bool:
    """Save ``model`` to ``path`` (float32 weights), the pair of files in one step each (the ``.bin``
    first); False where the folder cannot be written (the model then lives in this process only)."""
    ov = require_openvino("openvino")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.xml")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)
        return True
    except (OSError, RuntimeError):
        for leftover in (tmp, tmp.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
        return False


_UNSAVED: OrderedDict[Path, Any] = OrderedDict()  # converted models this process could not save, by path
_CONVERTING = threading.Lock()


def load_or_convert(backbone: GraphBackbone, layer: int, facet: str) -> tuple[Any, bool]:
    """The converted model of ``layer`` / ``facet``: read from the disk cache (in a few milliseconds), else
    converted now and saved (else kept in this process). Returns ``(model, converted)``."""
    path = model_path(backbone, layer, facet)
    with _CONVERTING:
        if path in _UNSAVED:
            return _UNSAVED[path], False
        if path.is_file() and path.with_suffix(".bin").is_file():
            try:
                model = _core().read_model(str(path))
                _touch(path)
                return model, False
            except RuntimeError:  # a damaged file: convert again
                pass
        try:
            model = convert(backbone, layer, facet)
        except Exception as e:  # the converter's own errors are of its own types
            raise RuntimeError(f"OpenVINO could not convert {backbone.name} ({type(e).__name__}: {e})") from e
        if save(model, path):
            prune(path.parent, keep=path)
        else:
            _UNSAVED[path] = model
            while len(_UNSAVED) > MAX_COMPILED:
                _UNSAVED.popitem(last=False)
        return model, True


def _touch(path: Path) -> None:
    """Mark the model at ``path`` (``.xml`` and ``.bin``) as used now, for :func:`prune` (where it may be)."""
    for part in (path, path.with_suffix(".bin")):
        try:
            os.utime(part)
        except OSError:
            pass


def prune(folder: Path, keep: Path | None = None, budget: int | None = None) -> list[Path]:
    """Delete the least recently used converted models in ``folder`` until the others take at most ``budget``
    bytes (None: :data:`MAX_STORED_BYTES`; ``keep``, a model's ``.xml``, always stays), and what crashed
    conversions left behind more than :data:`STALE_S` seconds ago (a ``.bin`` without its ``.xml``, a hidden
    temporary file). Returns the files deleted; a file that cannot be read or deleted (another process's, a
    read-only folder) is passed over."""
    now, removed = time.time(), list[Path]()
    budget = MAX_STORED_BYTES if budget is None else int(budget)
    models: list[tuple[float, int, Path]] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        try:
            stat = entry.stat()
            if entry.suffix == ".xml" and not entry.name.startswith("."):
                weights = entry.with_suffix(".bin").stat()
                models.append((max(stat.st_mtime, weights.st_mtime), stat.st_size + weights.st_size, entry))
            elif now - stat.st_mtime > STALE_S and (entry.name.startswith(".") or (
                    entry.suffix == ".bin" and not entry.with_suffix(".xml").exists())):
                entry.unlink()
                removed.append(entry)
        except OSError:  # gone meanwhile, or its .bin is missing (being written: left alone)
            continue
    total = 0
    for _, size, xml in sorted(models, key=lambda m: (m[2] != keep, -m[0])):  # the kept one, then newest first
        total += size
        if total > budget and xml != keep:
            for part in (xml, xml.with_suffix(".bin")):
                try:
                    part.unlink()
                    removed.append(part)
                except OSError:
                    pass
    return removed


class OpenVinoRunner:
    """Runs one backbone's blocks in OpenVINO at one precision (``"bf16"`` or ``"fp32"``).

    Attributes:
        conversions: how many models this runner converted (0: all were read from the disk cache).
        convert_s, compile_s: seconds spent converting (or reading) and compiling, in all.

    Raises:
        ConfigError: OpenVINO is not installed.
    """

    def __init__(self, backbone: GraphBackbone, precision: str) -> None:
        require_openvino(f"openvino-{precision}")
        self.backbone, self.precision = backbone, precision
        self.hint = "bf16" if precision == "bf16" and bf16_supported() else "f32"
        self.conversions, self.convert_s, self.compile_s = 0, 0.0, 0.0
        self._compiled: OrderedDict[tuple[int, str, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def compiled(self, layer: int, facet: str) -> Any:
        """The compiled model of ``layer`` / ``facet`` for torch's current thread count (made on first use)."""
        key = (layer, facet, torch.get_num_threads())
        with self._lock:
            if key in self._compiled:
                self._compiled.move_to_end(key)
                return self._compiled[key]
            start = time.perf_counter()
            model, converted = load_or_convert(self.backbone, layer, facet)
            self.conversions += int(converted)
            loaded = time.perf_counter()
            config = {"INFERENCE_PRECISION_HINT": self.hint, "INFERENCE_NUM_THREADS": key[2], "NUM_STREAMS": 1,
                      "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
            try:
                made = _core().compile_model(model, "CPU", config)
            except Exception as e:  # OpenVINO's own error types
                raise RuntimeError(f"OpenVINO could not compile {self.backbone.name} ({type(e).__name__}: {e})") from e
            self.convert_s += loaded - start
            self.compile_s += time.perf_counter() - loaded
            self._compiled[key] = made
            while len(self._compiled) > MAX_COMPILED:
                self._compiled.popitem(last=False)
            return made

    def prepare(self, layer: int, facet: str) -> float:
        """:meth:`compiled` ahead of the first forward pass; returns the seconds it took."""
        start = time.perf_counter()
        self.compiled(layer, facet)
        return time.perf_counter() - start

    def facet(self, state: TokenState, layer: int, facet: str) -> torch.Tensor:
        """The features ``(B, N, D)`` float32 of ``layer`` / ``facet`` of ``state`` (its first hidden state and
        other tensors), as :meth:`~deepcut.backbones.vit.ViTBackbone.facet` gives them; the hidden states the
        blocks computed are added to ``state.hidden`` (as the torch engines add them)."""
        request = self.compiled(layer, facet).create_infer_request()
        inputs = [t.detach().float().contiguous().numpy() for t in [state.hidden[0], *_flatten(state.extra)[1]]]
        request.infer(inputs)
        out = [request.get_output_tensor(i).data for i in range(len(request.model_outputs))]
        for i in range(len(state.hidden), len(out)):  # the blocks' outputs: later facets resume from them in torch
            state.hidden.append(torch.from_numpy(np.array(out[i], dtype=np.float32, copy=True)))
        return torch.from_numpy(np.array(out[0], dtype=np.float32, copy=True))
