"""The numeric precision of the ViT forward pass.

DeepCut spends most of its time in one ViT forward pass per image; the GNN, the losses and the graph
are small and stay in float32. The forward pass can run in:

* ``"fp32"``: PyTorch's float32, the reference;
* ``"bf16"``: ``torch.autocast`` with bfloat16 (matrix products in bfloat16, norms and softmax in
  float32, hidden states and features float32);
* ``"fp16"``: the same with float16 (for GPUs; on most CPUs float16 products are emulated and slow);
* ``"int8"``: dynamic int8 quantization of the ViT's ``Linear`` layers (CPU only; weights int8,
  activations quantized per call);
* ``"auto"`` (the default): the fastest :class:`Engine` whose features stay faithful to float32's,
  chosen by measurement on first use and remembered on disk (:mod:`deepcut.backbones.tune`). Where
  nothing is measured (``$DEEPCUT_TUNE=0``, a device other than the CPU or CUDA) it is
  :func:`auto_precision`'s rule: bfloat16 on CUDA GPUs that support it (else float16), bfloat16 on
  CPUs with native bfloat16 instructions (AVX-512 BF16 or AMX on x86, the BF16 extension on Arm;
  never emulated bfloat16, which is slower than float32), float32 elsewhere; ``int8`` never.

An :class:`Engine` is a precision together with how it runs: where the weights of the ViT's blocks
are held in bfloat16 / float16 (``"bf16-weights"``) rather than cast by autocast at every product, and
how attention is computed (PyTorch's fused ``"sdpa"`` or DeepCut's ``"blocked"`` one). Its name, e.g.
``"bf16-weights+sdpa"``, is accepted wherever a precision is, and pins that engine. ``"openvino-bf16"`` /
``"openvino-fp32"`` run the blocks through OpenVINO instead of PyTorch (CPU only; the optional extra
``pip install 'deepcut-gnn[openvino]'``, see :mod:`deepcut.backbones.openvino_engine`).

``$DEEPCUT_PRECISION`` sets the default for every front end (library, CLI, app).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import os
import platform
import re
import warnings
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
from torch import nn

from ..errors import ConfigError
from ..utils.threads import available_cores

#: Environment variable with the default precision.
PRECISION_ENV = "DEEPCUT_PRECISION"
#: Every precision a caller may ask for.
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
_ALIASES = {"float32": "fp32", "float": "fp32", "32": "fp32", "bfloat16": "bf16", "float16": "fp16",
            "half": "fp16", "16": "fp16", "qint8": "int8", "8": "int8"}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: How attention may be computed by an :class:`Engine` (the names of ``ViTBackbone.set_attention``).
ENGINE_ATTENTION = ("sdpa", "blocked", "eager")
_ENGINE = re.compile(r"^(fp32|bf16|fp16|int8)(-weights)?\+(sdpa|blocked|eager)$")
_OPENVINO = re.compile(r"^openvino-(fp32|bf16)$")
#: What to install for the OpenVINO engines.
OPENVINO_INSTALL = "pip install 'deepcut-gnn[openvino]' (or pip install openvino)"


@dataclass(frozen=True)
class Engine:
    """How a ViT's forward pass runs.

    Attributes:
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"int8"`` (see the module's docstring).
        attention: ``"sdpa"`` (PyTorch's fused kernel), ``"blocked"`` (a block of query rows at a time in
            the inputs' dtype) or ``"eager"`` (written out).
        weights: the dtype the blocks' weights are held in: ``"fp32"`` (autocast casts them at every
            product), or ``"bf16"`` / ``"fp16"`` (cast once, the blocks' inputs too; the embeddings, the
            hidden states between blocks and the features stay float32).
        runtime: ``"torch"``, or ``"openvino"`` (the blocks converted once to an OpenVINO model of float32
            weights, compiled with ``precision`` as its inference precision; traced with ``"sdpa"``).
    """

    precision: str = "fp32"
    attention: str = "sdpa"
    weights: str = "fp32"
    runtime: str = "torch"

    @property
    def name(self) -> str:
        """``"<precision>[-weights]+<attention>"``, e.g. ``"bf16+blocked"``, ``"bf16-weights+sdpa"``; an
        OpenVINO engine's is ``"openvino-<precision>"``."""
        if self.runtime == "openvino":
            return f"openvino-{self.precision}"
        head = f"{self.precision}-weights" if self.weights != "fp32" else self.precision
        return f"{head}+{self.attention}"

    def __str__(self) -> str:
        return self.name


def parse_engine(name: object) -> Engine | None:
    """The :class:`Engine` named ``name`` (e.g. ``"bf16-weights+sdpa"``, ``"openvino-bf16"``), None for
    anything else."""
    name = name.strip().lower() if isinstance(name, str) else ""
    openvino = _OPENVINO.match(name)
    if openvino is not None:
        return Engine(openvino.group(1), "sdpa", "fp32", "openvino")
    match = _ENGINE.match(name)
    if match is None:
        return None
    precision, cast, attention = match.groups()
    if cast and precision not in _DTYPES:  # fp32 weights are the default; int8's are quantized
        return None
    return Engine(precision, attention, precision if cast else "fp32")


def default_engine(precision: str, device: torch.device | str) -> Engine:
    """The engine a precision named without one runs: autocast over float32 weights, attention in
    blocks for bf16 / fp16 on the CPU (PyTorch's fused kernel gains nothing there), SDPA otherwise."""
    blocked = precision in _DTYPES and torch.device(device).type == "cpu"
    return Engine(precision, "blocked" if blocked else "sdpa")


def check_precision(precision: object) -> str:
    """``precision`` as one of :data:`PRECISIONS` (aliases such as ``"bfloat16"`` accepted) or the
    canonical name of an :class:`Engine` (``"bf16-weights+sdpa"``).

    Raises:
        ConfigError: not a precision DeepCut knows.
    """
    if isinstance(precision, torch.dtype):
        precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(precision, precision)
    engine = parse_engine(precision)
    if engine is not None:
        return engine.name
    message = (f"precision must be one of {', '.join(PRECISIONS)} (or an engine such as bf16-weights+sdpa or "
               f"openvino-bf16), got {precision!r}")
    if not isinstance(precision, str):
        raise ConfigError(message)
    name = precision.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ConfigError(message)
    return name


@functools.lru_cache(maxsize=1)
def cpu_info() -> tuple[str, frozenset[str]]:
    """This CPU's model name and feature flags, from ``/proc/cpuinfo`` (``model name`` on x86; on Arm the
    implementer and part numbers), else :func:`platform.processor` and no flags. Read once per process (every
    GNN training asks for it, through the machine key of :mod:`~deepcut.clustering.arithmetic`)."""
    model, flags, arm = "", set[str](), list[str]()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip().lower(), value.strip()
                if key == "model name" and not model:
                    model = value
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
                elif key in ("cpu implementer", "cpu part") and len(arm) < 2:
                    arm.append(value)
    except OSError:
        pass
    return model or " ".join(arm) or platform.processor() or platform.machine(), frozenset(flags)


def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it cannot be read)."""
    return cpu_info()[1]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 products natively: AVX-512 BF16 or AMX tiles on x86
    (as PyTorch's own CPU checks report them), the BF16 extension on Arm (``/proc/cpuinfo``)."""
    cpu = getattr(torch, "cpu", None)
    for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, check, None)
        try:
            if fn is not None and fn():
                return True
        except (RuntimeError, AttributeError):
            pass
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "bf16" in _cpu_flags()
    return False


def machine(device: torch.device | str) -> str:
    """What the choice depends on besides the backbone: the GPU's name, or the CPU's model, a hash of its
    flags and the cores this process may use."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model, flags = cpu_info()
    digest = hashlib.sha1(" ".join(sorted(flags)).encode()).hexdigest()[:12]
    return f"{device.type}: {model}, flags {digest}, {available_cores()} cores"


#: The CPU flags that say what the products can run on (shown by :func:`hardware_line`).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
               "asimd", "bf16", "i8mm", "sve")


def hardware_line(device: torch.device | str = "cpu", threads: int | None = None) -> str:
    """One line naming what ran: the GPU, or the CPU's model, its flags that matter here and its cores; the
    torch version and ``threads`` (None: torch's current setting)."""
    device = torch.device(device)
    if device.type == "cuda":
        what = f"GPU {torch.cuda.get_device_name(device)}"
    else:
        model, flags = cpu_info()
        what = (f"CPU {model} ({', '.join(f for f in SPEED_FLAGS if f in flags) or 'no bf16/int8 flags'}), "
                f"{available_cores()} cores")
    return f"{what}; torch {torch.__version__}, {threads or torch.get_num_threads()} threads"


def auto_precision(device: torch.device) -> str:
    """What ``"auto"`` means on ``device``: see the module's docstring."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def requested_precision(precision: object, device: torch.device | str) -> str:
    """What is asked for on ``device``: ``precision``, else ``$DEEPCUT_PRECISION``, else ``"auto"``, checked
    (:func:`check_precision`): ``"auto"``, a precision or an engine's name.

    Raises:
        ConfigError: an unknown precision (the environment variable is named when it came from
            there), int8 or OpenVINO on a device other than the CPU, OpenVINO not installed.
    """
    raw = os.environ.get(PRECISION_ENV, "").strip() if precision is None else None
    try:
        name = check_precision(precision if raw is None else raw or "auto")
        device = torch.device(device)
        if name.split("+")[0] == "int8" and device.type != "cpu":
            raise ConfigError(f"precision 'int8' (dynamic quantization) runs on the CPU only, not on {device}; "
                              f"use 'bf16' or 'fp16' there")
        if name.startswith("openvino"):
            require_openvino(name, device)
    except ConfigError as e:
        raise ConfigError(f"{PRECISION_ENV}={raw!r}: {e}" if raw else str(e)) from None
    return name


@functools.lru_cache(maxsize=1)
def openvino_module() -> Any:
    """The ``openvino`` package, imported on first call; None where it is not installed or does not load."""
    try:
        import openvino
    except (ImportError, OSError, RuntimeError):
        return None
    return openvino


def require_openvino(name: str, device: torch.device | str = "cpu") -> Any:
    """The ``openvino`` package, for the engine ``name`` on ``device``.

    Raises:
        ConfigError: ``device`` is not the CPU, or OpenVINO is not installed (the message says what to install).
    """
    if torch.device(device).type != "cpu":
        raise ConfigError(f"precision {name!r} (OpenVINO) runs on the CPU only, not on {device}; "
                          f"use 'bf16' or 'fp16' there")
    module = openvino_module()
    if module is None:
        raise ConfigError(f"precision {name!r} needs OpenVINO, which is not installed here: {OPENVINO_INSTALL}")
    return module


def resolve_precision(precision: object, device: torch.device | str) -> str:
    """The precision to run the ViT in on ``device`` by the rule that measures nothing: that of
    :func:`requested_precision` (an engine's own precision for an engine), with ``"auto"`` replaced by
    :func:`auto_precision`. Never returns ``"auto"``. (``DeepCut`` replaces ``"auto"`` by a measured
    choice instead: :func:`deepcut.backbones.tune.choose_engine`.)

    Raises:
        ConfigError: as :func:`requested_precision`.
    """
    name = requested_precision(precision, device)
    if name == "auto":
        return auto_precision(torch.device(device))
    engine = parse_engine(name)
    return engine.precision if engine is not None else name


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The context the ViT runs in: ``torch.autocast`` for ``"bf16"`` / ``"fp16"``, nothing otherwise."""
    dtype = _DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers are dynamically quantized to int8 (weights
    per tensor, activations per call); the original is left as it is.

    Raises:
        ConfigError: this PyTorch build has no dynamic quantization.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            from torch.ao.quantization import quantize_dynamic

            return quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    except (ImportError, RuntimeError, AttributeError) as e:
        raise ConfigError(f"precision 'int8' needs PyTorch's dynamic quantization, which failed here ({e}); "
                          f"use 'bf16' or 'fp32'") from None
