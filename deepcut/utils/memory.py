"""Bounds on the work of one request: a memory estimate checked before anything large is allocated,
and allocation failures turned into :class:`~deepcut.errors.ResourceLimitError`.

The limit is, in order: the ``max_memory`` a caller passes (``DeepCut(max_memory=...)``), else
``$DEEPCUT_MAX_MEMORY``, else :data:`DEFAULT_FRACTION` of the device's memory (the machine's RAM, or
its cgroup limit, for the CPU; the GPU's memory for CUDA). A limit is a number of bytes or a text
such as ``"8G"``, ``"512M"``, ``"1.5GB"``; ``0``, ``"none"`` or ``"off"`` switches the check off.

The estimate (:func:`estimate_bytes`) counts what one forward pass keeps and what the graph needs:
every hidden state the ViT keeps (``(depth + 1) * B * T * D`` floats), one block's temporaries
(q, k, v, the MLP's ``4 D``), the ``(B, heads, T, T)`` attention maps only for ``"eager"`` attention
(SDPA never materialises them), the features (17x with ``log_bin``) and the graph (``N^2`` floats
when dense, ``N^2`` float16 values when compact, ``O(N k)`` when sparse). It is an upper bound of the
order of magnitude, not an exact figure; a request over the limit is refused before the ViT or the graph
allocate.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
from typing import Any, Callable, Iterator, TypeVar

from ..errors import ConfigError, ResourceLimitError

#: Environment variable with the memory limit of one request (bytes, or ``8G`` / ``512M``; 0: none).
MEMORY_ENV = "DEEPCUT_MAX_MEMORY"
#: Without an explicit limit, one request may use this fraction of the device's memory.
DEFAULT_FRACTION = 0.5
#: Patches of one image at most (the sparse graph's k-NN search costs ``N^2 D``: 50k patches take about a
#: minute on two CPU cores): 256 x 256, i.e. 2048 px with 8-px patches, or 1024 px at stride 4.
MAX_PATCHES = 1 << 16
#: Environment variable replacing :data:`MAX_PATCHES`.
PATCHES_ENV = "DEEPCUT_MAX_PATCHES"
#: Graphs of at most this many nodes are dense (kept equal to :data:`deepcut.graph.patch_graph.DENSE_MAX_NODES`).
DENSE_NODES = 4096
#: Graphs of at most this many nodes (and more than :data:`DENSE_NODES`) are compact (kept equal to
#: :data:`deepcut.graph.patch_graph.COMPACT_MAX_NODES`).
COMPACT_NODES = 20480
#: Entries of the graph's float32 blocks (kept equal to :data:`deepcut.graph.patch_graph.CHUNK_ELEMENTS`).
CHUNK = 1 << 22
#: Neighbours of the sparse graph (kept equal to :data:`deepcut.graph.patch_graph.DEFAULT_NEIGHBOURS`).
NEIGHBOURS = 64
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
          "t": 1 << 40, "tb": 1 << 40, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
_OOM_WORDS = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory",
              "defaultcpuallocator", "failed to allocate")

T = TypeVar("T")


def parse_bytes(value: Any, name: str = "max_memory") -> int | None:
    """A memory limit in bytes from ``value`` (an int, or a text like ``"8G"``); None: no limit.

    Raises:
        ConfigError: not a size (the message names ``name`` and the accepted forms).
    """
    wants = f"{name} must be a number of bytes or a size like '8G' or '512M' (0, 'none' or 'off': no limit)"
    if value is None or isinstance(value, bool):
        raise ConfigError(f"{wants}, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        text = str(value).strip().lower()
        if text in ("none", "off", "no", "unlimited"):
            return None
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([a-z]*)", text)
        if m is None or m.group(2) not in _UNITS:
            raise ConfigError(f"{wants}, got {value!r}")
        number, unit = float(m.group(1)), m.group(2)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{wants}, got {value!r}")
    if not unit and not number.is_integer():  # 1.5 is not 1.5 GB: a bare number counts bytes
        raise ConfigError(f"{wants} (a bare number counts bytes: write '{number:g}G' for gigabytes), got {value!r}")
    out = int(number * _UNITS[unit])
    return None if out == 0 else out


def machine_memory() -> int | None:
    """Bytes of RAM this process may use: the physical memory, or the cgroup's limit if lower."""
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            total = int(text) if total is None else min(total, int(text))
    return total


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes of RAM free for new work now: the kernel's ``MemAvailable``, or what the cgroup's limit
    leaves (limit less usage) if that is lower; :func:`machine_memory` where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         (v1 + "limit_in_bytes", v1 + "usage_in_bytes")):
        most, used = _read_int(limit), _read_int(usage)
        if most is not None and used is not None and most < (1 << 60):
            found.append(max(0, most - used))
    return min(found) if found else machine_memory()


def device_memory(device: Any = "cpu") -> int | None:
    """Bytes of memory of ``device`` (a CUDA GPU's total memory; the machine's RAM otherwise)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        try:
            import torch

            return int(torch.cuda.get_device_properties(device).total_memory)
        except Exception:  # noqa: BLE001 - no such GPU: fall back to RAM
            pass
    return machine_memory()


def resolve_limit(max_memory: Any = None, device: Any = "cpu") -> int | None:
    """The memory limit of one request in bytes (None: unlimited), see the module docstring."""
    if max_memory is not None:
        return parse_bytes(max_memory)
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        return parse_bytes(env, f"${MEMORY_ENV}")
    total = device_memory(device)
    return None if total is None else int(total * DEFAULT_FRACTION)


def patch_limit() -> int:
    """Patches of one image at most: ``$DEEPCUT_MAX_PATCHES`` if set, else :data:`MAX_PATCHES`."""
    text = os.environ.get(PATCHES_ENV, "").strip()
    if not text:
        return MAX_PATCHES
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"${PATCHES_ENV} must be a whole number of patches >= 1, got {text!r}")
    return int(text)


def human(n: float) -> str:
    """``n`` bytes as a short text (``1.5 GB``)."""
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def graph_bytes(nodes: int, dim: int, log_bin: bool = False) -> int:
    """Bytes of the features ``(N, D)`` (17 D log-binned) and the graph of ``N = nodes`` patches."""
    n = int(nodes)
    feats = n * dim * 4 * (18 if log_bin else 1)
    if n <= DENSE_NODES:
        graph = 3 * n * n * 4  # Gram matrix, affinity, one temporary
    elif n <= COMPACT_NODES:  # the float16 matrix, a float32 block and its temporaries, the GCN's propagation
        graph = n * n * 2 + 3 * CHUNK * 4 + 2 * n * dim * 4
    else:
        graph = 8 * n * NEIGHBOURS * 24 + (1 << 24) * 4  # k-NN pairs before/after symmetrising, one block
    return feats + graph


def estimate_bytes(backbone: Any, grid: tuple[int, int], batch: int = 1, log_bin: bool = False) -> int:
    """Peak bytes of embedding ``batch`` images of patch grid ``grid`` with ``backbone`` and building
    one image's graph (see the module docstring for what is counted)."""
    n = int(grid[0]) * int(grid[1])
    dim = int(getattr(backbone, "dim", 384))
    b = max(1, int(batch))
    patch, p = int(getattr(backbone, "patch_size", 8)), 4
    if getattr(backbone, "family", None) == "color":
        forward = b * n * (3 * dim + 16) * p
    else:
        depth = int(getattr(backbone, "depth", 12))
        tokens = n + 1 + int(getattr(backbone, "num_registers", 0) or 0)
        mlp = 4 * dim
        kept = (depth + 1) * b * tokens * dim * p
        temp = b * tokens * (mlp + 6 * dim) * p
        attn = 0
        if getattr(backbone, "attention", "sdpa") == "eager":
            attn = 2 * b * int(getattr(backbone, "heads", 6)) * tokens * tokens * p
        forward = kept + temp + attn
    pixels = b * 3 * n * patch * patch * p  # at most one pixel tensor per patch area (stride = patch)
    return forward + pixels + graph_bytes(n, dim, log_bin)


def check_request(backbone: Any, grid: tuple[int, int], limit: int | None, batch: int = 1,
                  log_bin: bool = False, what: str = "the image") -> int:
    """The estimate of :func:`estimate_bytes`; raises :class:`ResourceLimitError` if it is over
    ``limit`` (None: only the patch count is checked) or the grid has more patches than
    :func:`patch_limit`."""
    n = int(grid[0]) * int(grid[1])
    fix = "lower the resolution or use a larger stride (or none: the patch size)"
    most = patch_limit()
    if n > most:
        raise ResourceLimitError(
            f"{what} would have {grid[0]} x {grid[1]} = {n} patches, over the limit of {most} per image "
            f"(an extreme aspect ratio, a fine stride or a very high resolution): {fix}; or raise the limit "
            f"with ${PATCHES_ENV}")
    need = estimate_bytes(backbone, grid, batch, log_bin)
    if limit is not None and need > limit:
        raise ResourceLimitError(
            f"{what} would need about {human(need)} ({grid[0]} x {grid[1]} patches, batch of {batch}), over "
            f"the memory limit of {human(limit)}: {fix}; or raise the limit with DeepCut(max_memory=...) or "
            f"${MEMORY_ENV}")
    return need


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (``MemoryError``, torch's ``OutOfMemoryError`` or a
    ``RuntimeError`` whose message says the allocator failed)."""
    if isinstance(exc, ResourceLimitError):
        return False
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _OOM_WORDS)


@contextlib.contextmanager
def memory_errors(what: str = "the request") -> Iterator[None]:
    """Turn an allocation failure inside the block into :class:`ResourceLimitError` (others pass)."""
    try:
        yield
    except BaseException as e:
        if not is_oom(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ResourceLimitError(
            f"{what} ran out of memory ({type(e).__name__}: {first}): lower the resolution, use a larger "
            f"stride, or free memory; ${MEMORY_ENV} makes DeepCut refuse such requests before they start"
        ) from None


def guard_memory(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: :func:`memory_errors` around a call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with memory_errors(f"{fn.__name__}()"):
            return fn(*args, **kwargs)

    return wrapper
