"""Running a labelling job on this machine: in this process, or in N worker processes.

Both runners have the same shape (a context manager; :meth:`start` loads the model(s) and returns the
backbone's description; :meth:`map` turns :class:`~.sources.ImageSource` s into records as they
finish), so the run (:mod:`.run`) does not care which one, or the Ray one (:mod:`.ray_runner`), it has.

* :class:`InProcessRunner`: one model here. On a GPU it batches images through the ViT
  (:func:`~.worker.label_batch`); on the CPU it labels image by image with all cores.
* :class:`ProcessRunner`: ``--workers N`` processes (``spawn``), each loading its own model once and
  using ``cores // N`` torch (and BLAS) threads; they pull images from a queue and send records back.
  This process only hands out work and writes the shards, so it does not compete for the cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import threading
from dataclasses import replace
from typing import Any, Iterable, Iterator

from ..errors import DeepCutError
from ..utils.threads import available_cores
from .lifeline import die_with_parent
from .sources import ImageSource
from .worker import LabelSpec, label_data, label_items

#: Environment variables that size the thread pools of BLAS / OpenMP libraries in a worker.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: How many images each worker may have queued beyond the one it is labelling.
QUEUE_DEPTH = 2
#: Seconds between checks that every worker is still alive while waiting for results.
POLL_SECONDS = 1.0
#: Memory of a worker besides its model's weights and one image's work: Python, torch and DeepCut
#: (their imports and buffers, rounded up: a worker with the colour backbone at resolution 64 needs less).
WORKER_BASE_BYTES = 400 << 20


def worker_bytes(spec: LabelSpec) -> int:
    """About the peak memory of one worker: :data:`WORKER_BASE_BYTES`, the weights (a ViT-B's for a
    backbone not in the registry) and :func:`~deepcut.utils.memory.estimate_bytes` of a square image
    at the run's resolution."""
    from ..backbones.specs import REGISTRY
    from ..utils.memory import estimate_bytes

    arch = REGISTRY.get(spec.backbone) or REGISTRY["dino_vitb8"]
    weights = 0 if arch.family == "color" else 12 * arch.depth * arch.dim * arch.dim * 4
    resolution = spec.config.with_default_resolution(arch.resolution).resolution  # the backbone's when unset
    side = max(1, int(resolution) // int(spec.config.stride or arch.patch_size))
    return WORKER_BASE_BYTES + weights + estimate_bytes(arch, (side, side), log_bin=bool(spec.config.log_bin))


def cap_workers(requested: int, spec: LabelSpec, cores: int | None = None,
                available: int | None = None) -> tuple[int, str | None]:
    """``(workers, note)``: ``requested`` capped by the cores (one worker per core at most) and by the
    memory available now (:func:`worker_bytes` each); ``note`` says the cap and why (None: no cap).

    Args:
        requested: ``--workers``.
        spec: the run's settings.
        cores: default :func:`deepcut.utils.threads.available_cores`.
        available: bytes of memory, default :func:`deepcut.utils.memory.available_memory`.
    """
    from ..utils.memory import available_memory, human

    cores = int(cores or available_cores())
    available = available_memory() if available is None else int(available)
    each = worker_bytes(spec)
    by_memory = max(1, available // each) if available else requested
    workers = max(1, min(int(requested), cores, by_memory))
    if workers == requested:
        return workers, None
    why = []
    if cores == workers:
        why.append(f"this machine has {cores} core{'s' if cores != 1 else ''}")
    if available and by_memory == workers:  # without a figure for the memory, by_memory is requested
        why.append(f"each worker needs about {human(each)} and {human(available)} of memory is available")
    return workers, f"--workers {requested} capped to {workers}: {' and '.join(why)}"


class InProcessRunner:
    """Labels in this process with one model (batched on a GPU).

    Args:
        spec: the run's settings; ``spec.batch_size`` images go through the ViT together.
    """

    def __init__(self, spec: LabelSpec) -> None:
        self.spec = spec
        self.model: Any = None  # start() loads the DeepCut

    def start(self) -> dict[str, Any]:
        """Load the model; returns the backbone's description."""
        self.model = self.spec.load_model()
        return self.model.backbone.describe()

    def map(self, sources: Iterable[ImageSource]) -> Iterator[dict[str, Any]]:
        """Records of ``sources``, in order (``spec.batch_size`` at a time)."""
        chunk: list[ImageSource] = []
        for s in sources:
            chunk.append(s)
            if len(chunk) >= self.spec.batch_size:
                yield from label_items(self.model, self.spec, [(c.file_name, c.path) for c in chunk])
                chunk = []
        if chunk:
            yield from label_items(self.model, self.spec, [(c.file_name, c.path) for c in chunk])

    def close(self, interrupted: bool = False) -> None:
        self.model = None

    def __enter__(self) -> "InProcessRunner":
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        self.close(interrupted=exc_type is not None)


def worker_main(spec: LabelSpec, tasks, results, parent_pid: int | None = None) -> None:
    """A worker process: build the model once, then label ``(index, source)`` tasks until ``None``.

    Sends ``("ready", describe)`` or ``("failed", message)`` once, then ``("done", index, record)``
    per task. Ctrl-C is left to the parent, which stops the workers itself; when the parent
    ``parent_pid`` dies, however (SIGKILL included), the worker ends (:mod:`.lifeline`).
    """
    if parent_pid is not None:
        die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        model = spec.load_model()
    except DeepCutError as e:
        results.put(("failed", str(e)))
        return
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises a DeepCutError
        results.put(("failed", f"the model could not be built ({type(e).__name__}: {e})"))
        return
    results.put(("ready", model.backbone.describe()))
    while (task := tasks.get()) is not None:
        index, source = task
        results.put(("done", index, label_data(model, spec, source.file_name, source.path)))


@contextlib.contextmanager
def _worker_env(threads: int) -> Iterator[None]:
    """While worker processes start (they inherit both): :data:`THREAD_ENV` set to ``threads``, and
    Ctrl-C ignored, so that it reaches only this process, which stops the workers itself."""
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: str(threads) for k in THREAD_ENV})
    main = threading.current_thread() is threading.main_thread()
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, handler)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ProcessRunner:
    """Labels in ``workers`` processes, one model each, ``cores // workers`` threads each.

    Args:
        spec: the run's settings (its ``threads`` is set here).
        workers: how many processes.
        cores: cores to share among them (default: :func:`deepcut.utils.threads.available_cores`).
    """

    def __init__(self, spec: LabelSpec, workers: int, cores: int | None = None) -> None:
        self.workers = max(1, int(workers))
        # --threads, if given, is each worker's; else the worker's share of the cores
        self.spec = replace(spec, threads=spec.threads or max(1, (cores or available_cores()) // self.workers),
                            batch_size=1)
        ctx = mp.get_context("spawn")
        self._tasks = ctx.Queue()
        self._results = ctx.Queue()
        self._procs = [ctx.Process(target=worker_main, args=(self.spec, self._tasks, self._results, os.getpid()),
                                   name=f"deepcut-label-{i + 1}", daemon=True) for i in range(self.workers)]

    def start(self) -> dict[str, Any]:
        """Start the workers and wait until each has built its model; returns the backbone's description.

        Raises:
            DeepCutError: a worker could not build its model (the message says why).
        """
        with _worker_env(self.spec.threads or 1):
            for p in self._procs:
                p.start()
        described: dict[str, Any] = {}
        for _ in self._procs:
            msg = self._next()
            if msg[0] == "failed":
                raise DeepCutError(msg[1])
            described = msg[1]
        return described

    def _next(self) -> tuple:
        """The next message from a worker; raises if a worker died meanwhile."""
        while True:
            try:
                return self._results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                pass
            dead = [p for p in self._procs if p.exitcode is not None]
            if dead:  # its last message may still be on its way
                try:
                    return self._results.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    code = dead[0].exitcode or 0
                    raise DeepCutError(f"worker process {dead[0].name} stopped unexpectedly (exit code {code}"
                                       f"{': killed, perhaps for lack of memory' if code < 0 else ''}); "
                                       "try fewer --workers") from None

    def map(self, sources: Iterable[ImageSource]) -> Iterator[dict[str, Any]]:
        """Records of ``sources`` as workers finish them (not in order)."""
        todo = iter(enumerate(sources))
        in_flight: set[int] = set()

        def feed() -> None:
            while len(in_flight) < self.workers * QUEUE_DEPTH:
                item = next(todo, None)
                if item is None:
                    return
                in_flight.add(item[0])
                self._tasks.put(item)

        feed()
        while in_flight:
            msg = self._next()
            if msg[0] != "done":
                continue
            in_flight.discard(msg[1])
            feed()
            yield msg[2]

    def close(self, interrupted: bool = False) -> None:
        """Stop the workers: let them finish and exit, or (``interrupted``) terminate them now."""
        if not interrupted:
            for _ in self._procs:
                self._tasks.put(None)
        for p in self._procs:
            if p.pid is None:
                continue
            p.join(timeout=0.1 if interrupted else 60)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        self._tasks.cancel_join_thread()
        self._results.cancel_join_thread()

    def __enter__(self) -> "ProcessRunner":
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        self.close(interrupted=exc_type is not None)
