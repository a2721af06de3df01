"""Running a labelling job on a Ray cluster (``--ray [ADDRESS]``): one model per Ray actor.

The driver (this process) starts or joins a cluster (:func:`ray.init`), creates actors that each
build their model once (``num_cpus`` / ``num_gpus`` each), reads every image file and sends its
bytes to an idle actor (:class:`ray.util.ActorPool`), so workers need no access to the driver's
files, and writes the records that stream back into the same shards as a local run. The package
itself travels with the job (Ray's ``py_modules``), so cluster nodes need only its dependencies.

Ray is optional (``pip install 'deepcut-gnn[ray]'``) and imported only here, only when used.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..errors import DeepCutError
from .coco import failure_record
from .sources import ImageSource
from .worker import LabelSpec, failure_message, label_items, read_image_bytes

if TYPE_CHECKING:
    from ray.util import ActorPool

#: Images per actor in flight (one being labelled, the next ones waiting in its queue).
QUEUE_DEPTH = 2
#: Images per ViT batch on GPU actors.
GPU_BATCH_SIZE = 8
#: Seconds to wait for a TCP answer at a cluster's address before ``ray.init`` is tried (Ray's own
#: client retries an address where nothing listens for minutes).
CONNECT_SECONDS = 10.0


def host_port(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of a cluster address ``HOST:PORT`` or ``ray://HOST:PORT`` (``[v6]:PORT`` too);
    None for ``auto``, a local cluster, or a text Ray itself must judge."""
    text = (address or "").strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or text.lower() in ("auto", "local"):
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


#: What a gRPC client sends first (HTTP/2's connection preface and an empty SETTINGS frame); Ray's GCS and
#: client server answer with a SETTINGS frame of their own at once.
GRPC_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_reachable(address: str | None, timeout: float = CONNECT_SECONDS) -> None:
    """Raise :class:`DeepCutError` naming ``address`` unless something accepts a TCP connection there and
    answers as a gRPC server does (Ray's GCS and client server do), each within ``timeout`` seconds
    (addresses :func:`host_port` does not parse are left to Ray; with ``RAY_USE_TLS`` only the TCP
    connection is checked). Ray itself waits for minutes at an address where nothing listens, and
    without end at one where another kind of server does."""
    where = host_port(address)
    if where is None:
        return
    import socket

    hint = "is it running (ray start --head prints its address) and is the address right?"

    def refuse(reason: str) -> DeepCutError:
        return DeepCutError(f"cannot reach the Ray cluster at {address}: {reason}; {hint}")

    try:
        conn = socket.create_connection(where, timeout=timeout)
    except (OSError, OverflowError, ValueError) as e:
        raise refuse(f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else
                     getattr(e, "strerror", None) or str(e) or type(e).__name__) from None
    answer = b""
    with conn:
        if os.environ.get("RAY_USE_TLS", "").strip().lower() in ("1", "true"):
            return
        try:
            conn.settimeout(timeout)
            conn.sendall(GRPC_PREFACE)
            while len(answer) < 9 and (chunk := conn.recv(9 - len(answer))):
                answer += chunk
        except TimeoutError:
            raise refuse(f"a server accepts connections there but gave no answer within {timeout:g} s") from None
        except OSError:
            pass  # reset or closed: judged by what it sent
    if len(answer) < 9 or answer[3] != 0x04:  # an HTTP/2 frame of type SETTINGS
        seen = answer.decode("latin-1", "replace").strip()[:40]
        raise refuse(f"a server listens there but it is not a Ray cluster (it answered {seen!r}, not as gRPC does)"
                     if seen else "a server listens there but it is not a Ray cluster (it closed the connection)")


def import_ray():
    """The ``ray`` module, or a :class:`DeepCutError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DeepCutError("--ray needs Ray, which is not installed: pip install 'deepcut-gnn[ray]' "
                           "(or pip install 'ray>=2.9')") from None
    return ray


class LabelActor:
    """The body of a Ray actor: one model, built once; labels lists of ``(file_name, bytes)``."""

    def __init__(self, spec: LabelSpec) -> None:
        self.spec = spec
        self.model = None
        self.error: str | None = None
        try:
            self.model = spec.load_model()
        except DeepCutError as e:
            self.error = str(e)

    def describe(self) -> dict[str, Any]:
        """``{"backbone": description}``, or ``{"error": message}`` if the model could not be built."""
        return {"error": self.error} if self.model is None else {"backbone": self.model.backbone.describe()}

    def label(self, items: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        return label_items(self.model, self.spec, items)


class RayRunner:
    """Labels on a Ray cluster, one model per actor.

    Args:
        spec: the run's settings.
        address: cluster to join (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``); None or
            ``""`` starts a local cluster (unless this process is already connected to one).
        workers: number of actors (default: as many as the cluster's CPUs, or GPUs, allow).
        cpus_per_worker: ``num_cpus`` of each actor (also its torch threads).
        gpus_per_worker: ``num_gpus`` of each actor (0: CPU actors).
    """

    def __init__(self, spec: LabelSpec, address: str | None = None, workers: int | None = None,
                 cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> None:
        self.address = address or None
        self.workers = workers
        self.cpus = float(cpus_per_worker)
        self.gpus = float(gpus_per_worker)
        self.spec = replace(spec, threads=max(1, math.floor(self.cpus)),
                            batch_size=GPU_BATCH_SIZE if self.gpus > 0 else 1)
        self.actors: list = []
        self._pool: ActorPool | None = None
        self._started_ray = False

    def _connect(self):
        ray = import_ray()
        if not ray.is_initialized():
            check_reachable(self.address)
            package = str(Path(__file__).resolve().parents[1])
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING,
                         runtime_env={"py_modules": [package]})
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise DeepCutError(f"cannot start or join the Ray cluster {self.address or '(local)'}: {e}") from None
            self._started_ray = True
        return ray

    def _count(self, ray) -> int:
        """How many actors: ``workers``, checked against what the cluster has."""
        have = ray.cluster_resources()
        fit = [int(have.get("CPU", 0) // self.cpus)] if self.cpus > 0 else []
        if self.gpus > 0:
            fit.append(int(have.get("GPU", 0) // self.gpus))
        most = min(fit) if fit else 1
        if most < 1 or (self.workers and self.workers > most):
            raise DeepCutError(f"the Ray cluster has {have.get('CPU', 0):g} CPUs and {have.get('GPU', 0):g} GPUs: "
                               f"room for {most} worker(s) of {self.cpus:g} CPUs and {self.gpus:g} GPUs, "
                               f"not {self.workers or 1}; use fewer --workers or smaller --cpus-per-worker")
        return int(self.workers or most)

    def start(self) -> dict[str, Any]:
        """Connect, create the actors and wait until each has built its model; returns the backbone's description.

        Raises:
            DeepCutError: Ray is missing, the cluster cannot be reached or is too small, or a model
                could not be built.
        """
        ray = self._connect()
        from ray.util import ActorPool

        actor = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)(LabelActor)
        self.actors = [actor.remote(self.spec) for _ in range(self._count(ray))]
        described = ray.get([a.describe.remote() for a in self.actors])
        for d in described:
            if "error" in d:
                raise DeepCutError(d["error"])
        self._pool = ActorPool(self.actors)
        return described[0]["backbone"]

    def map(self, sources: Iterable[ImageSource]) -> Iterator[dict[str, Any]]:
        """Records of ``sources`` as actors finish them (not in order); unreadable files are
        reported by the driver without a round trip."""
        from ray.exceptions import RayError

        assert self._pool is not None  # start() made it
        todo = iter(sources)
        busy, limit, size = 0, len(self.actors) * QUEUE_DEPTH, max(1, self.spec.batch_size)
        while True:
            while busy < limit:
                items, failures = _read_chunk(todo, size)
                yield from failures
                if not items:
                    break
                self._pool.submit(lambda a, v: a.label.remote(v), items)
                busy += 1
            if busy == 0:
                return
            try:
                records = self._pool.get_next_unordered()
            except RayError as e:
                raise DeepCutError(f"a Ray worker failed ({type(e).__name__}: {str(e).splitlines()[0]})") from None
            busy -= 1
            yield from records

    def close(self, interrupted: bool = False) -> None:
        """Remove the actors; disconnect (stopping a local cluster this runner started)."""
        if not self.actors and not self._started_ray:
            return
        ray = import_ray()
        for a in self.actors:
            ray.kill(a)
        self.actors, self._pool = [], None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> "RayRunner":
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        self.close(interrupted=exc_type is not None)


def _read_chunk(todo: Iterator[ImageSource], size: int) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]]]:
    """Up to ``size`` readable images of ``todo`` as ``(file_name, bytes)``, and the failure records
    of the unreadable ones met on the way."""
    items: list[tuple[str, bytes]] = []
    failures: list[dict[str, Any]] = []
    while len(items) < size:
        source = next(todo, None)
        if source is None:
            break
        try:
            items.append((source.file_name, read_image_bytes(source.path)))
        except DeepCutError as e:
            failures.append(failure_record(source.file_name, failure_message(source.file_name, e)))
    return items, failures
