"""The GNN's arithmetic: float32, or an epoch's three big products in bfloat16 where this machine runs them
faster.

An epoch of the per-image GNN multiplies the fixed propagation ``Â X`` ``(N, D)`` by the GCN's weights
``(D, 64)`` (forward), the layer's output gradient ``(N, 64)`` by ``Â X`` (the weights' gradient), and, in the
loss, the dense graph ``A`` ``(N, N)`` by the soft assignments ``S`` ``(N, k)``: the largest products of the
epoch, ``A S`` the largest read (``N²`` entries). With ``"bf16"`` the GCN's two read ``Â X`` and their other
factor as bfloat16, ``A S`` reads a bf16 copy of the graph (made once per graph, kept with a cached image's
propagation, :func:`~deepcut.clustering.objective.low_affinity`) and ``S`` in bf16, and so does the product
that makes ``Â X`` once per graph (dense graphs); each gives a float32 tensor of bf16-rounded values (the
CPU's bf16 kernels round their results). Everything else (the graph's degrees, the head, the softmax, the
loss's other terms, the optimiser, the parameters, and NCut's restart from the spectral cut, on a float32
``Â X`` and ``A S`` of its own) stays float32. On a CPU with bf16 matrix units (AMX) the products ran 1.4–2
times faster than in float32; elsewhere bf16 may be slower.

``"auto"`` (the default) is chosen by measurement where it runs (:func:`measure`: the three products at one
image's size, in turns, both ways; :func:`pick`) and remembered on disk beside the ViT's engine choices
(``gnn.json`` in :func:`~deepcut.utils.files.cache_dir`, keyed by the machine, the torch version, the feature
width and the threads: :func:`cache_key`), so that every later process on the machine trains the same way;
processes starting together measure one at a time (the ViT's lock). ``$DEEPCUT_TUNE=0`` (the test suite)
measures nothing: ``"auto"`` is then float32; ``force`` measures again, once per process.
``$DEEPCUT_GNN_PRECISION`` (``fp32`` or ``bf16``) pins ``"auto"``'s choice on the CPU; off the CPU ``"auto"``
is float32.
"""

from __future__ import annotations

import math
import os
import time

import torch

from ..backbones.precision import machine
from ..backbones.tune import locked, tune_mode
from ..errors import ConfigError
from ..utils.files import cache_dir, read_json_dict, write_cache_json
from .gnn import gcn_forward, gcn_weight_grad, soft_assign
from .losses import graph_product

__all__ = ["ENV", "GNN_PRECISIONS", "MIN_GAIN", "cache_key", "check_precision", "choose", "gcn_dtype", "measure",
           "pick", "pinned", "resolve", "stored_choice"]

#: What ``precision=`` of :func:`~deepcut.clustering.fit.fit` takes.
GNN_PRECISIONS = ("auto", "fp32", "bf16")
#: Environment variable that pins ``"auto"``'s choice on the CPU (``fp32`` or ``bf16``).
ENV = "DEEPCUT_GNN_PRECISION"
#: How much faster than float32 the bf16 products must be for ``"auto"`` to choose them.
MIN_GAIN = 1.25
#: The stored choices' file in :func:`~deepcut.utils.files.cache_dir`.
CACHE_FILE = "gnn.json"
#: The size measured: one image's graph of ViT-S/8 at 280 px, the GCN's 64 outputs.
NODES, HIDDEN = 1225, 64
#: Graphs of fewer nodes train in float32 under ``"auto"`` whatever was measured: an epoch's bf16 casts are fixed
#: costs and its products small there (2 epochs of a warm-started 196-node GNN, the live view's ViT-S/16 at 224 px:
#: 3.23 ms in float32 against 3.43 in bf16 on the AMX machine; 289 nodes 4.05 against 4.15; 400 nodes 5.49 against
#: 5.12; one thread).
BF16_MIN_NODES = 320
#: Timed rounds of each way (the fastest counts), after one warm-up: enough that a moment of other work on the
#: machine does not decide a choice that is stored for good.
ROUNDS = 15

#: Choices measured in this process, by :func:`cache_key`: what holds where the file cannot be written, and
#: what ``$DEEPCUT_TUNE=force`` measured (once per process).
_MEASURED: dict[str, str] = {}


def check_precision(precision: object, where: str = "GNN precision") -> str:
    """``precision`` if it is one of :data:`GNN_PRECISIONS`; raises :class:`~deepcut.errors.ConfigError` (naming
    ``where``) otherwise."""
    if precision not in GNN_PRECISIONS:
        raise ConfigError(f"{where} must be one of {GNN_PRECISIONS}, got {precision!r}")
    return str(precision)


def resolve(precision: str, device: torch.device | str, dim: int, nodes: int | None = None) -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` (checked) on ``device`` for features of width ``dim`` (``nodes``: the
    graph's size, where known): itself where named; for ``"auto"``: float32 off the CPU, ``$DEEPCUT_GNN_PRECISION``
    where set, float32 for a graph of fewer than :data:`BF16_MIN_NODES` nodes and where ``$DEEPCUT_TUNE`` is ``0``,
    else the choice stored for this machine (:func:`stored_choice`), or measured now (:func:`measure`, :func:`pick`;
    also where ``$DEEPCUT_TUNE`` is ``force``, once) and stored."""
    precision = check_precision(precision)
    if precision != "auto":
        return precision
    if torch.device(device).type != "cpu":
        return "fp32"
    fixed = pinned()
    if fixed is not None:
        return fixed
    if nodes is not None and int(nodes) < BF16_MIN_NODES:
        return "fp32"
    mode = tune_mode()
    if mode == "off":
        return "fp32"
    key = cache_key(device, dim)
    stored = stored_choice(device, dim) if mode == "on" else None
    if stored is not None:
        return stored
    if key not in _MEASURED:
        folder = cache_dir()
        with locked(folder):  # processes starting together: the later ones read the first one's choice
            stored = stored_choice(device, dim) if mode == "on" else None
            _MEASURED[key] = stored or _store(key, measure(int(dim)))
    return _MEASURED[key]


def pinned() -> str | None:
    """``$DEEPCUT_GNN_PRECISION`` (``"fp32"`` or ``"bf16"``; None where unset or ``auto``), checked: a front end
    calls it when it starts, so that a wrong value fails there rather than at the first segmentation."""
    raw = os.environ.get(ENV, "").strip().lower()
    return None if not raw or check_precision(raw, f"${ENV}") == "auto" else raw


def pick(times: dict[str, float]) -> str:
    """``"bf16"`` where :func:`measure`'s ``times`` show it at least :data:`MIN_GAIN` times faster, else ``"fp32"``."""
    return "bf16" if times["fp32"] >= MIN_GAIN * times["bf16"] else "fp32"


def cache_key(device: torch.device | str, dim: int) -> str:
    """The key a choice is stored under: the machine, the torch version, the feature width and torch's threads."""
    return f"{machine(device)} | torch {torch.__version__} | dim {int(dim)} | {torch.get_num_threads()} threads"


def stored_choice(device: torch.device | str, dim: int) -> str | None:
    """The choice stored for this machine, ``dim`` and torch's current threads; None where there is none."""
    entry = read_json_dict(cache_dir() / CACHE_FILE).get(cache_key(device, dim))
    choice = entry.get("precision") if isinstance(entry, dict) else None
    return choice if choice in ("fp32", "bf16") else None


def gcn_dtype(precision: str) -> torch.dtype:
    """The dtype the GCN's products read for a resolved ``precision`` (``"fp32"`` or ``"bf16"``)."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def measure(dim: int, nodes: int = NODES, rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds of one epoch's large products: the GCN layer's forward product and weight gradient (``(nodes, dim)``
    by ``(dim, 64)`` and ``(64, nodes)`` by ``(nodes, dim)``) and the loss's ``A S`` (``(nodes, nodes)`` by
    ``(nodes, 4)``), float32 against bf16 with float32 results (each as a training computes it: bf16's gradient
    from the transposed input, :func:`gcn_weight_grad`; ``A S`` from the bf16 copy of the graph), on the
    CPU with torch's current threads: the fastest of ``rounds``, in turns. ``{"fp32": s, "bf16": s}``;
    bf16 is ``inf`` where this build cannot run it."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(nodes, dim, generator=g), torch.randn(HIDDEN, dim, generator=g)
    d = torch.randn(nodes, HIDDEN, generator=g)
    adj, s = torch.rand(nodes, nodes, generator=g), soft_assign(torch.randn(nodes, 4, generator=g))
    adj = adj + adj.T  # symmetric, as every affinity
    low = x.bfloat16()
    ways = {"fp32": (x, None, None), "bf16": (low, low.T.contiguous(), adj.bfloat16())}
    best = {name: math.inf for name in ways}
    for i in range(rounds + 1):
        for name, (inp, inp_t, graph) in ways.items():
            t = time.perf_counter()
            try:
                gcn_forward(inp, w), gcn_weight_grad(d, inp, inp_t), graph_product(adj, s, graph)
            except RuntimeError:  # no bf16 matrix product in this build
                continue
            if i:  # the first round warms up
                best[name] = min(best[name], time.perf_counter() - t)
    return best


def choose(times: dict[str, float], device: torch.device | str, dim: int) -> str:
    """:func:`pick` from ``times``, stored as this machine's choice for ``dim`` and torch's current threads."""
    return _store(cache_key(device, dim), times)


def _store(key: str, times: dict[str, float]) -> str:
    """Add :func:`pick`'s choice from ``times`` under ``key`` (other keys kept) and return it; a folder that cannot
    be written is passed over (the choice then holds for this process)."""
    chosen = pick(times)
    path = cache_dir() / CACHE_FILE
    data = read_json_dict(path)
    data[key] = {"precision": chosen, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 **{f"{k}_ms": round(v * 1e3, 4) if math.isfinite(v) else None for k, v in times.items()}}
    write_cache_json(path, data)
    return chosen
