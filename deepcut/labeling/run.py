"""One labelling run: shards checked or resumed, images labelled by a runner, the COCO file assembled.

:func:`label_dataset` is what ``python -m deepcut label`` calls once its arguments are checked; it
does not care where the work runs (:mod:`.local` or :mod:`.ray_runner`). Each record is in the
shards (:mod:`.shards`) before it counts as done; the COCO file is assembled from the shards, ids in
input order, and written atomically, then the shards are removed. So a run killed at any moment and
rerun with ``resume=True`` labels only what is missing and writes the same bytes as a run that was
never interrupted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ..errors import DeepCutError
from ..utils.files import write_json_atomic
from .coco import build_coco, is_failure
from .shards import ShardStore
from .sources import ImageSource
from .worker import LabelSpec

Record = dict[str, Any]


class Runner(Protocol):
    """Where images are labelled: a context manager with ``start`` (build the models; returns the
    backbone's description) and ``map`` (sources → records, in any order)."""

    def start(self) -> dict[str, Any]: ...

    def map(self, sources: Sequence[ImageSource]): ...

    def __enter__(self): ...

    def __exit__(self, *exc: object): ...


class LabelInterrupted(Exception):
    """Ctrl-C stopped a run; what was done is kept in the shards. The message says how to resume."""

    def __init__(self, message: str, saved: int, total: int) -> None:
        super().__init__(message)
        self.saved, self.total = saved, total


@dataclass
class LabelReport:
    """What a run did.

    Attributes:
        out: the COCO file written.
        total: images in the run; resumed: of those, labelled by an earlier run.
        labelled: images labelled now (failures included); failures: ``{"file", "error"}`` in the file;
        annotations: objects in the file.
        load_seconds: building the models; label_seconds: labelling, after that.
    """

    out: Path
    total: int
    resumed: int = 0
    labelled: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    annotations: int = 0
    load_seconds: float = 0.0
    label_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.labelled / self.label_seconds if self.label_seconds > 0 else 0.0


def check_output(out: str | os.PathLike) -> Path:
    """The absolute path of the output file, after checking it can be written.

    Raises:
        DeepCutError: it is a folder, or its folder cannot be created or written to.
    """
    path = Path(os.path.abspath(os.fspath(out)))
    if path.is_dir():
        raise DeepCutError(f"--out {out}: is a folder; give the path of the .json file to write")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DeepCutError(f"--out {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DeepCutError(f"--out {out}: cannot write in {parent} (permission denied)")
    if path.exists() and not os.access(path, os.W_OK):
        raise DeepCutError(f"--out {out}: the file exists and is read-only")
    return path


def run_info(spec: LabelSpec, backbone: dict[str, Any], root: Path) -> dict[str, Any]:
    """The COCO ``info`` of a run (no timings, so that a file depends only on what was computed)."""
    meta = spec.meta(root)
    return {"description": "DeepCut pseudo-labels: class-agnostic object masks (python -m deepcut label)",
            "version": meta["version"], "backbone": backbone, "pretrained": spec.pretrained,
            "objects": meta["objects"], "configuration": meta["configuration"], "image_root": meta["image_root"]}


def open_store(out: Path, meta: dict[str, Any], resume: bool, restart: bool) -> tuple[ShardStore, dict[str, Record]]:
    """The run's shard store and the records an earlier run left (only with ``resume``).

    Raises:
        DeepCutError: an unfinished run is there and neither ``resume`` nor ``restart`` says what to
            do with it, or ``resume`` with settings other than that run's.
    """
    store = ShardStore(out)
    if not store.exists():
        store.remove()  # at most an empty folder left by a crash while creating it
        return store, {}
    if resume:
        store.check_resumable(meta)
        return store, store.records()
    if not restart:
        raise DeepCutError(f"{store.folder} holds an unfinished run for {out.name}: add --resume to continue it, "
                           f"or --restart to discard it and start again")
    return store, {}


def _label(runner: Runner, store: ShardStore, todo: list[ImageSource], progress: Callable[[Record], None],
           report: LabelReport) -> None:
    """Label ``todo``, each record fsynced into a new part file before it is counted."""
    with store.writer() as writer:
        for record in runner.map(todo):
            writer.write(record)
            report.labelled += 1
            progress(record)


def label_dataset(sources: Sequence[ImageSource], root: Path, out: Path, spec: LabelSpec, runner: Runner, *,
                  resume: bool = False, restart: bool = False, on_start: Callable[[int, int], None] | None = None,
                  on_record: Callable[[Record], None] | None = None) -> LabelReport:
    """Label ``sources`` into the COCO file ``out`` (see the module doc).

    Args:
        sources: from :func:`~.sources.collect_sources`.
        root: from :func:`~.sources.collect_sources`.
        out: the COCO file (checked with :func:`check_output`).
        spec: what to compute.
        runner: where (not started yet).
        resume: continue the unfinished run of ``out`` (same settings), labelling only what is missing
            (earlier failures are retried). Without an unfinished run, start afresh.
        restart: discard an unfinished run of ``out``.
        on_start: ``(total, already_done)`` once the models are built, before the first image.
        on_record: called with each record as it is saved.

    Raises:
        LabelInterrupted: Ctrl-C; what was labelled is kept in the shards.
        DeepCutError: see :func:`open_store`; a model cannot be built; a worker died.
    """
    meta = spec.meta(root)
    store, earlier = open_store(out, meta, resume, restart)
    done = {name for name, r in earlier.items() if not is_failure(r)}
    todo = [s for s in sources if s.file_name not in done]
    report = LabelReport(out, len(sources), resumed=len(sources) - len(todo))
    backbone = store.backbone() if not todo else None
    try:
        if backbone is None:
            backbone = _run(runner, store, meta, todo, report, bool(earlier), on_start, on_record)
    except KeyboardInterrupt:
        saved = report.resumed + report.labelled
        where = f"kept in {store.folder}; rerun the same command with --resume to continue" if store.exists() \
            else "nothing was saved"
        raise LabelInterrupted(f"interrupted: {saved} of {len(sources)} images done, {where}", saved,
                               len(sources)) from None
    except DeepCutError as e:
        if store.exists() and report.labelled:
            raise DeepCutError(f"{e}. The {report.resumed + report.labelled} images done are kept in "
                               f"{store.folder}: rerun with --resume to continue") from None
        raise
    info = assemble(sources, root, out, spec, store, backbone)
    report.failures, report.annotations = info["failures"], info["annotations"]
    return report


def _run(runner: Runner, store: ShardStore, meta: dict[str, Any], todo: list[ImageSource], report: LabelReport,
         resuming: bool, on_start: Callable[[int, int], None] | None,
         on_record: Callable[[Record], None] | None) -> dict[str, Any]:
    """Build the models, (re)create the store, label ``todo``; returns the backbone's description."""
    t0 = time.perf_counter()
    with runner:
        backbone = runner.start()
        report.load_seconds = time.perf_counter() - t0
        if not resuming:
            store.create(meta)
        store.save_backbone(backbone)
        if on_start:
            on_start(report.total, report.resumed)
        t1 = time.perf_counter()
        _label(runner, store, todo, on_record or (lambda r: None), report)
        report.label_seconds = time.perf_counter() - t1
    return store.backbone() or backbone


def assemble(sources: Sequence[ImageSource], root: Path, out: Path, spec: LabelSpec, store: ShardStore,
             backbone: dict[str, Any]) -> dict[str, Any]:
    """Write the COCO file of ``sources`` from the shards (atomically), then remove the shards; returns
    its ``info`` (with the failures and the number of annotations)."""
    records = store.records()
    missing = [s.file_name for s in sources if s.file_name not in records]
    if missing:
        raise DeepCutError(f"{len(missing)} images have no result (first: {missing[0]}); they are kept in "
                           f"{store.folder}: rerun with --resume to label them")
    coco = build_coco((records[s.file_name] for s in sources), run_info(spec, backbone, root))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, coco, indent=None)
    store.remove()
    return coco["info"]
