"""The GNN's arithmetic: float32, or the GCN layer's two big products in bfloat16 where this machine runs
them faster.

An epoch of the per-image GNN multiplies the fixed propagation ``Â X`` ``(N, D)`` by the GCN's weights
``(D, 64)`` (forward) and the layer's output gradient ``(N, 64)`` by ``Â X`` (the weights' gradient): the two
largest products of the epoch. With ``"bf16"`` both read ``Â X`` and their other factor as bfloat16 and
give float32 results; everything else (the head, the softmax, the loss and its ``A S``, the optimiser, the
parameters) stays float32. On a CPU with fast bf16 matrix units (e.g. AMX) that is several times faster
for those products; elsewhere bf16 may be slower than float32.

``"auto"`` (the default) is chosen by measurement where it runs (:func:`measure`: the two products at one
image's size, in turns, both ways) and remembered on disk beside the ViT's engine choices
(``gnn.json`` in :func:`~deepcut.utils.files.cache_dir`, keyed by the machine, the torch version, the feature
width and the threads), so that every later process on the machine trains the same way. bf16 is chosen
only when it is at least :data:`MIN_GAIN` times faster. ``$DEEPCUT_TUNE=0`` (the test suite) measures
nothing: ``"auto"`` is then float32. ``$DEEPCUT_GNN_PRECISION`` pins a choice for ``"auto"``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from ..backbones.precision import machine
from ..backbones.tune import tune_mode
from ..errors import ConfigError
from ..utils.files import cache_dir, write_json_atomic
from .gnn import gcn_forward, gcn_weight_grad

__all__ = ["ENV", "GNN_PRECISIONS", "MIN_GAIN", "cache_key", "check_precision", "choose", "gcn_dtype", "measure",
           "resolve", "stored_choice"]

#: What ``precision=`` of :func:`~deepcut.clustering.fit.fit` takes.
GNN_PRECISIONS = ("auto", "fp32", "bf16")
#: Environment variable that pins ``"auto"``'s choice (``fp32`` or ``bf16``).
ENV = "DEEPCUT_GNN_PRECISION"
#: How much faster than float32 the bf16 products must be for ``"auto"`` to choose them.
MIN_GAIN = 1.25
#: The stored choices' file in :func:`~deepcut.utils.files.cache_dir`.
CACHE_FILE = "gnn.json"
#: The size measured: one image's graph of ViT-S/8 at 280 px, the GCN's 64 outputs.
NODES, HIDDEN = 1225, 64
#: Timed rounds of each way (the fastest counts), after one warm-up.
ROUNDS = 7


def check_precision(precision: object) -> str:
    """``precision`` if it is one of :data:`GNN_PRECISIONS`; raises :class:`~deepcut.errors.ConfigError` otherwise."""
    if precision not in GNN_PRECISIONS:
        raise ConfigError(f"GNN precision must be one of {GNN_PRECISIONS}, got {precision!r}")
    return str(precision)


def resolve(precision: str, device: torch.device | str, dim: int) -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` (checked) on ``device`` for features of width ``dim``:
    itself where named; for ``"auto"``, ``$DEEPCUT_GNN_PRECISION`` where set, float32 off the CPU or where
    ``$DEEPCUT_TUNE`` is ``0``, else the choice stored for this machine (:func:`cache_key`), or measured now
    (:func:`measure`; also where ``$DEEPCUT_TUNE`` is ``force``) and stored."""
    precision = check_precision(precision)
    if precision != "auto":
        return precision
    pinned = os.environ.get(ENV, "").strip().lower()
    if pinned and check_precision(pinned) != "auto":
        return pinned
    mode = tune_mode()
    if torch.device(device).type != "cpu" or mode == "off":
        return "fp32"
    stored = stored_choice(device, dim) if mode == "on" else None
    return stored if stored is not None else choose(measure(int(dim)), device, dim)


def choose(times: dict[str, float], device: torch.device | str, dim: int) -> str:
    """``"bf16"`` where :func:`measure`'s ``times`` show it :data:`MIN_GAIN` times faster, else ``"fp32"``;
    stored as this machine's choice (:func:`cache_key`, torch's current threads)."""
    chosen = "bf16" if times["fp32"] >= MIN_GAIN * times["bf16"] else "fp32"
    _store(cache_dir() / CACHE_FILE, cache_key(device, dim),
           {"precision": chosen, **{f"{k}_ms": round(v * 1e3, 4) for k, v in times.items()},
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return chosen


def stored_choice(device: torch.device | str, dim: int) -> str | None:
    """The choice stored for this machine, ``dim`` and torch's current threads; None where there is none."""
    entry = _read(cache_dir() / CACHE_FILE).get(cache_key(device, dim))
    ok = isinstance(entry, dict) and entry.get("precision") in ("fp32", "bf16")
    return str(entry["precision"]) if ok else None  # type: ignore[index]


def cache_key(device: torch.device | str, dim: int) -> str:
    """The key a choice is stored under: the machine, the torch version, the feature width and torch's threads."""
    return f"{machine(device)} | torch {torch.__version__} | dim {int(dim)} | {torch.get_num_threads()} threads"


def gcn_dtype(precision: str) -> torch.dtype:
    """The dtype the GCN's products read for a resolved ``precision`` (``"fp32"`` or ``"bf16"``)."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def measure(dim: int, nodes: int = NODES, rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds of the GCN layer's forward product and weight gradient of one epoch (``(nodes, dim)`` by
    ``(dim, 64)`` and ``(64, nodes)`` by ``(nodes, dim)``), float32 against bf16 with float32 results, on the
    CPU with torch's current threads: the fastest of ``rounds``, in turns. ``{"fp32": s, "bf16": s}``;
    bf16 is ``inf`` where this build cannot run it."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(nodes, dim, generator=g), torch.randn(HIDDEN, dim, generator=g)
    d = torch.randn(nodes, HIDDEN, generator=g)
    ways = {"fp32": (x, w, d), "bf16": (x.bfloat16(), w, d)}
    best = {name: float("inf") for name in ways}
    for i in range(rounds + 1):
        for name, (inp, weight, grad) in ways.items():
            t = time.perf_counter()
            try:
                gcn_forward(inp, weight), gcn_weight_grad(grad, inp)
            except RuntimeError:  # no bf16 matrix product in this build
                continue
            if i:  # the first round warms up
                best[name] = min(best[name], time.perf_counter() - t)
    return best


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}  # a file that cannot be read counts as empty


def _store(path: Path, key: str, entry: dict) -> None:
    """Add ``entry`` under ``key`` (other keys kept); a folder that cannot be written is passed over."""
    data = _read(path)
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, data)
    except OSError:
        pass
