"""How many CPU threads torch uses for each kind of work.

PyTorch's default (one intra-op thread per core) is pathological when another process uses a core
— a Space's shared vCPUs, a laptop, a batch beside other jobs: its OpenMP threads spin-wait on
the busy core (docs/speed.md, *Threads*, has the figures and the command). So DeepCut chooses:

* the GNN and the graph (tensors of at most a few thousand rows): :data:`GNN_THREADS` (1), except that
  :meth:`deepcut.DeepCut.segment` trains a large graph (from :data:`GNN_PARALLEL_WORK` node-epochs) on
  the cores idle at the time (:meth:`ThreadPolicy.gnn`);
* the ViT forward: ``threads`` if given (``DeepCut(threads=...)``, ``--threads``), else
  ``$DEEPCUT_THREADS``, else the number of cores idle right now (:func:`idle_cores`, at least 1).

Each choice holds only inside :func:`torch_threads`, which restores the caller's setting after. The
thread count is process-wide in PyTorch: two DeepCut calls running in threads of one process (the
web app) may briefly see each other's setting, which changes speed, never results.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import ConfigError

#: Environment variable with the ViT's thread count (a positive integer; unset or 0: automatic).
THREADS_ENV = "DEEPCUT_THREADS"
#: Threads of the GNN training and the graph products: their tensors are tiny.
GNN_THREADS = 1
#: A GNN training of at least this many node-epochs (nodes x epochs) uses the idle cores when they were
#: counted in the last :attr:`ThreadPolicy.remeasure` seconds (e.g. for the ViT pass just before) ...
GNN_PARALLEL_WORK = 1024 * 10
#: ... and from this many on even when they must be counted again (:data:`IDLE_WINDOW` seconds).
GNN_MEASURE_WORK = 1024 * 50
#: :func:`check_threads` refuses more threads than this many per core.
MAX_THREADS_PER_CORE = 4
#: Seconds over which :func:`idle_cores` samples the CPU counters.
IDLE_WINDOW = 0.03


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """``(idle, total)`` jiffies of all CPUs from ``/proc/stat`` (None where it does not exist)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait, all but guest time


#: A reading of the counters is reused as the start of the next count for at most this many seconds.
IDLE_REUSE = 5.0
#: The last reading: ``(monotonic seconds, idle jiffies, total jiffies, this process's CPU seconds, its pid)``.
#: Shared by every count in the process (a cache of the machine's counters: it changes speed, never results); a
#: forked child does not count from its parent's reading.
_last_reading: list[tuple[float, float, float, float, int]] = []


def _reading() -> tuple[float, float, float, float, int] | None:
    """Now, the machine's ``(idle, total)`` jiffies, this process's CPU seconds and its pid (None: no counters)."""
    times = _cpu_times()
    return None if times is None else (time.monotonic(), times[0], times[1], time.process_time(), os.getpid())


def idle_cores(window: float = IDLE_WINDOW) -> int:
    """How many of this process's cores other processes left idle over at least the last ``window`` seconds
    (at least 1; all of them where the CPU counters cannot be read, e.g. on macOS or Windows).

    The count runs from the previous reading of the counters when that is between ``window`` and
    :data:`IDLE_REUSE` seconds old (no waiting: e.g. from the count before the last image), else it samples
    ``window`` seconds now. Cores this process kept busy in between count as idle (its own work is not
    competition): two requests served by threads of one process count each other as idle."""
    count = _idle_cores(window, wait=True)
    assert count is not None
    return count


def idle_cores_if_known(window: float = IDLE_WINDOW) -> int | None:
    """:func:`idle_cores` where it needs no wait (a reading between ``window`` and :data:`IDLE_REUSE` seconds
    old to count from), else None."""
    return _idle_cores(window, wait=False)


def _idle_cores(window: float, wait: bool) -> int | None:
    """The count of :func:`idle_cores`; ``wait=False``: None where it would have to sample now."""
    cores = available_cores()
    now = _reading()
    if now is None:
        return cores
    before = _last_reading[-1] if _last_reading and _last_reading[-1][4] == now[4] else None
    if before is None or not window <= now[0] - before[0] <= IDLE_REUSE:
        if not wait:
            if before is None or now[0] - before[0] > IDLE_REUSE:
                _last_reading[:] = [now]  # a start for the next count
            return None
        time.sleep(window)
        before, now = now, _reading()
        if now is None:
            return cores
    _last_reading[:] = [now]
    ticks = _jiffies_per_second()
    total = now[2] - before[2]
    if total <= 0:
        return cores
    own = max(0.0, now[3] - before[3]) * ticks  # this process's CPU time in jiffies
    idle_share = min(1.0, (now[1] - before[1] + own) / total)
    machine = os.cpu_count() or cores
    return max(1, min(cores, round(idle_share * machine)))


def _jiffies_per_second() -> float:
    """The kernel's clock ticks per second (``/proc/stat``'s unit; 100 where it cannot be read)."""
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, OSError, ValueError):
        return 100.0


def check_threads(threads: int | None) -> int | None:
    """``threads`` as a positive int, or None for automatic (``None`` or 0); raises :class:`ConfigError`."""
    if threads is None:
        return None
    if isinstance(threads, bool):  # True is not 1 thread
        raise ConfigError(f"threads must be a whole number of CPU threads, got {threads!r}")
    try:
        value = int(threads)
    except (TypeError, ValueError):
        raise ConfigError(f"threads must be a whole number of CPU threads, got {threads!r}") from None
    if value < 0 or value != threads:
        raise ConfigError(f"threads must be a whole number >= 1 (0: automatic), got {threads!r}")
    most = MAX_THREADS_PER_CORE * available_cores()
    if value > most:  # thousands of OpenMP threads crash PyTorch (SIGSEGV) instead of helping
        raise ConfigError(f"threads={value} is more than this machine can use: at most {most} "
                          f"({MAX_THREADS_PER_CORE} per core on {available_cores()} cores; 0: automatic)")
    return value or None


def feature_threads(threads: int | None = None) -> int:
    """Threads for the ViT forward: ``threads``, else ``$DEEPCUT_THREADS``, else :func:`idle_cores`."""
    chosen = check_threads(threads)
    if chosen is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        try:
            chosen = check_threads(int(raw)) if raw else None
        except ConfigError as e:
            raise ConfigError(f"{THREADS_ENV}={raw!r}: {e}") from None
        except ValueError:
            raise ConfigError(
                f"{THREADS_ENV}={raw!r}: expected a whole number of threads >= 1 (0: automatic)"
            ) from None
    return chosen if chosen is not None else idle_cores()


class ThreadPolicy:
    """The ViT thread count of one :class:`~deepcut.features.store.FeatureStore`: ``threads`` when given,
    else :func:`feature_threads`' choice, measured again at most every ``remeasure`` seconds (a
    measurement costs :data:`IDLE_WINDOW`)."""

    def __init__(self, threads: int | None = None, remeasure: float = 2.0) -> None:
        self.threads = check_threads(threads)
        self.remeasure = float(remeasure)
        self._last: tuple[float, int] | None = None

    def _recent(self) -> int | None:
        """The idle cores as last counted, if that was at most :attr:`remeasure` seconds ago."""
        if self._last is not None and time.monotonic() - self._last[0] <= self.remeasure:
            return self._last[1]
        return None

    def vit(self) -> int:
        """Threads for the next ViT call."""
        if self.threads is not None:
            return self.threads
        recent = self._recent()
        if recent is None:
            self._last = (time.monotonic(), feature_threads(None))
            recent = self._last[1]
        return recent

    def gnn(self, nodes: int, epochs: int) -> int:
        """Threads for one GNN training of ``epochs`` epochs on ``nodes`` nodes (its graph's propagation
        included): :data:`GNN_THREADS` below :data:`GNN_PARALLEL_WORK` node-epochs; above, ``threads`` if
        given, else the idle cores as last counted if that was recent (a fresh image: the ViT's count), else
        counted now from :data:`GNN_MEASURE_WORK` node-epochs on, and below that only where the count needs no
        wait (:func:`idle_cores_if_known`; else one thread: waiting would cost more than it saves)."""
        work = int(nodes) * int(epochs)
        if work < GNN_PARALLEL_WORK:
            return GNN_THREADS
        if self.threads is not None:
            return self.threads
        recent = self._recent()
        if recent is not None:
            return recent
        if work >= GNN_MEASURE_WORK or os.environ.get(THREADS_ENV, "").strip():
            return self.vit()
        known = idle_cores_if_known()  # a count that costs no wait (a reading of the last few seconds)
        if known is None:
            return GNN_THREADS
        self._last = (time.monotonic(), known)
        return known


@contextmanager
def blas_threads(threads: int = 1) -> Iterator[None]:
    """Run the block with NumPy's and SciPy's BLAS (OpenBLAS, MKL, …) on ``threads`` threads (``threadpoolctl``),
    then restore its setting.

    An OpenBLAS worker spins for a while after each call before it sleeps: on a small machine the spinning
    workers take the cores from torch's next steps (NCut's restart right after the spectral cut; docs/speed.md,
    *Threads*, has the figures). The spectral cut's solvers therefore run on one BLAS thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads), user_api="blas"):
        yield


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
