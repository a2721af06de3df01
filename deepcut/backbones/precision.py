"""The numeric precision of the ViT forward pass.

DeepCut spends most of its time in one ViT forward pass per image; the GNN, the losses and the graph
are small and stay in float32. The forward pass can run in:

* ``"fp32"``: PyTorch's float32, the reference;
* ``"bf16"``: ``torch.autocast`` with bfloat16 (matrix products in bfloat16, norms and softmax in
  float32, hidden states and features float32);
* ``"fp16"``: the same with float16 (for GPUs; on most CPUs float16 products are emulated and slow);
* ``"int8"``: dynamic int8 quantization of the ViT's ``Linear`` layers (CPU only; weights int8,
  activations quantized per call);
* ``"auto"`` (the default): the fastest precision that is faithful on this hardware: bfloat16 on
  CUDA GPUs that support it (else float16), bfloat16 on CPUs with native bfloat16 instructions
  (AVX-512 BF16 or AMX on x86, the BF16 extension on Arm; never emulated bfloat16, which is slower
  than float32), float32 elsewhere. ``int8`` is never chosen automatically: its features are further
  from float32's (see the speed page of the docs for the measured cosine).

``$DEEPCUT_PRECISION`` sets the default for every front end (library, CLI, app).
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import warnings
from typing import ContextManager

import torch
from torch import nn

from ..errors import ConfigError

#: Environment variable with the default precision.
PRECISION_ENV = "DEEPCUT_PRECISION"
#: Every precision a caller may ask for.
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
_ALIASES = {"float32": "fp32", "float": "fp32", "32": "fp32", "bfloat16": "bf16", "float16": "fp16",
            "half": "fp16", "16": "fp16", "qint8": "int8", "8": "int8"}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: object) -> str:
    """``precision`` as one of :data:`PRECISIONS` (aliases such as ``"bfloat16"`` accepted).

    Raises:
        ConfigError: not a precision DeepCut knows.
    """
    if isinstance(precision, torch.dtype):
        precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(precision, precision)
    if not isinstance(precision, str):
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    name = precision.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return name


def _cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


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


def auto_precision(device: torch.device) -> str:
    """What ``"auto"`` means on ``device``: see the module's docstring."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def resolve_precision(precision: object, device: torch.device | str) -> str:
    """The precision to run the ViT in on ``device``: ``precision``, else ``$DEEPCUT_PRECISION``, else
    ``"auto"``, with ``"auto"`` replaced by :func:`auto_precision`. Never returns ``"auto"``.

    Raises:
        ConfigError: an unknown precision (the environment variable is named when it came from
            there), or ``"int8"`` on a device other than the CPU.
    """
    device = torch.device(device)
    if precision is None:
        raw = os.environ.get(PRECISION_ENV, "").strip()
        try:
            name = check_precision(raw) if raw else "auto"
        except ConfigError as e:
            raise ConfigError(f"{PRECISION_ENV}={raw!r}: {e}") from None
    else:
        name = check_precision(precision)
    if name == "auto":
        return auto_precision(device)
    if name == "int8" and device.type != "cpu":
        raise ConfigError(f"precision 'int8' (dynamic quantization) runs on the CPU only, not on {device}; "
                          f"use 'bf16' or 'fp16' there")
    return name


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
