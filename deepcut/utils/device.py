"""Choosing the torch device DeepCut computes on.

``DeepCut(device=None)`` picks CUDA when it is available and the CPU otherwise; ``"cpu"``,
``"cuda"``, ``"cuda:1"`` or ``"mps"`` choose explicitly, and ``$DEEPCUT_DEVICE`` sets the default for
every front end (library, CLI, app). Features, graphs and the GNN live on that device; results are
numpy arrays on the host.
"""

from __future__ import annotations

import os

import torch

from ..errors import ConfigError

#: Environment variable with the default device (``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``).
DEVICE_ENV = "DEEPCUT_DEVICE"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on.

    Args:
        device: ``None`` or ``"auto"`` (``$DEEPCUT_DEVICE`` if set, else CUDA when available, else
            the CPU), or an explicit ``"cpu"`` / ``"cuda[:N]"`` / ``"mps"`` / :class:`torch.device`.

    Raises:
        ConfigError: an unknown device name, or a device this machine does not have.
    """
    if isinstance(device, torch.device):
        chosen = device
    else:
        name = (device or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            chosen = torch.device(name)
        except (RuntimeError, ValueError):
            raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(chosen)!r} was asked for, but this PyTorch build sees no CUDA GPU; "
                              f"choose the CPU ('cpu') or leave the device unset ('auto') to pick automatically")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(chosen)!r} does not exist: {torch.cuda.device_count()} CUDA GPU(s) found")
    elif chosen.type == "mps":
        if not _mps_available():
            raise ConfigError("device 'mps' was asked for, but Apple's Metal backend is not available here")
    elif chosen.type != "cpu":
        raise ConfigError(f"device type {chosen.type!r} is not supported; use cpu, cuda or mps")
    return chosen


def generator(seed: int, device: torch.device | None = None) -> torch.Generator:
    """A seeded generator on ``device`` (CPU when None): draws never touch the global RNG."""
    dev = torch.device("cpu") if device is None else device
    return torch.Generator(device=dev).manual_seed(int(seed))
