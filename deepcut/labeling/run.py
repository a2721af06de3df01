"""One labelling run: shards checked or resumed, images labelled by a runner, the COCO file assembled.

:func:`label_dataset` is what ``python -m deepcut label`` calls once its arguments are checked; it
does not care where the work runs (:mod:`.local` or :mod:`.ray_runner`). Each record is in the
shards (:mod:`.shards`) before it counts as done; the COCO file is assembled from the shards, ids in
input order, and written atomically, then the shards are removed. So a run killed at any moment and
rerun with ``resume=True`` labels only what is missing and writes the same bytes as a run that was
never interrupted.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from ..errors import DeepCutError
from ..utils.files import write_json_atomic
from ..utils.manifest import OutputManifest
from .coco import build_coco, is_failure
from .shards import ShardStore, parts_dir
from .sources import IMAGE_EXTENSIONS, ImageSource
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
    """Ctrl-C (or SIGTERM, where a front end turns it into a ``KeyboardInterrupt``: :attr:`stopped_by`) stopped a
    run; what was done is kept in the shards. The message says how to resume."""

    def __init__(self, message: str, saved: int, total: int, stopped_by: BaseException | None = None) -> None:
        super().__init__(message)
        self.saved, self.total, self.stopped_by = saved, total, stopped_by


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


#: How every COCO file DeepCut writes begins (compact JSON, ``info`` first): an earlier run's output
#: (from before the folder manifest) is recognised by it.
COCO_SIGNATURE = b'{"info":{"description":"DeepCut pseudo-labels'


def is_own_output(path: Path) -> bool:
    """Whether ``path`` is a COCO file DeepCut wrote: recorded in its folder's manifest
    (:mod:`deepcut.utils.manifest`), or a regular file beginning with :data:`COCO_SIGNATURE`."""
    if OutputManifest(path.parent).owns(path.name):
        return True
    try:
        if path.is_symlink() or not path.is_file():
            return False
        with open(path, "rb") as f:
            return f.read(len(COCO_SIGNATURE)) == COCO_SIGNATURE
    except OSError:
        return False


def _is_input(path: Path, inputs: Iterable[str | os.PathLike]) -> str | None:
    """The input ``path`` is (an input named on the command line, or an image file inside an input
    folder), if any."""
    real = Path(os.path.realpath(path))
    for item in inputs:
        other = Path(os.path.realpath(item))
        if real == other:
            return str(item)
        if other.is_dir() and other in real.parents and real.suffix.lower() in IMAGE_EXTENSIONS \
                and real.exists() and not is_own_output(path):
            return str(item)
    return None


def check_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """The absolute path of the output file, after checking it can be written and that nothing but
    DeepCut's own earlier output is replaced.

    Raises:
        DeepCutError: it is a folder or one of ``inputs`` (or an image in an input folder), its folder
            cannot be created or written to, it exists and DeepCut did not write it, or its shard folder
            (``OUT.parts``) is a file.
    """
    path = Path(os.path.abspath(os.fspath(out)))
    try:
        return _check_output(path, out, list(inputs))
    except OSError as e:  # no permission, a name too long …: the OS's reason, not a traceback
        raise DeepCutError(f"--out {out}: cannot be checked ({e.strerror or e})") from None


def _check_output(path: Path, out: str | os.PathLike, inputs: list) -> Path:
    if path.is_dir():
        raise DeepCutError(f"--out {out}: is a folder; give the path of the .json file to write")
    source = _is_input(path, inputs)
    if source is not None:
        raise DeepCutError(f"--out {out} is one of the inputs ({source}); name another file")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DeepCutError(f"--out {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DeepCutError(f"--out {out}: cannot write in {parent} (permission denied)")
    if os.path.lexists(path) and not is_own_output(path):
        raise DeepCutError(f"--out {out} exists and DeepCut did not write it; remove it or choose another name")
    if path.parent.is_dir():
        OutputManifest(path.parent).check("--out's folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise DeepCutError(f"--out {out}: the file exists and is read-only")
    parts = parts_dir(path)
    if os.path.lexists(parts) and (parts.is_symlink() or not parts.is_dir()):
        raise DeepCutError(f"--out {out}: {parts} exists and is not a folder (a run keeps its progress there); "
                           f"move it away or choose another --out")
    return path


def run_info(spec: LabelSpec, backbone: dict[str, Any], root: Path) -> dict[str, Any]:
    """The COCO ``info`` of a run (no timings, so that a file depends only on what was computed and on the input
    files' stamps, their size and modification time, kept per image for a later ``--resume``; ``resume``: what
    that resume must share, :meth:`~.shards.ShardStore.reopen`)."""
    meta = spec.meta(root)
    return {"description": "DeepCut pseudo-labels: class-agnostic object masks (python -m deepcut label)",
            "version": meta["version"], "backbone": backbone, "pretrained": spec.pretrained,
            "objects": meta["objects"], "configuration": meta["configuration"], "image_root": meta["image_root"],
            "resume": meta}


def open_store(out: Path, meta: dict[str, Any], resume: bool, restart: bool) -> tuple[ShardStore, dict[str, Record]]:
    """The run's shard store and the records an earlier run left (only with ``resume``: an unfinished run's
    shards, else a finished run's file ``out``).

    Raises:
        DeepCutError: an unfinished run is there and neither ``resume`` nor ``restart`` says what to
            do with it, or ``resume`` with settings other than that run's.
    """
    store = ShardStore(out)
    if not store.exists():
        store.clear()  # at most an empty folder left by a crash while creating it; anything else is refused
        if not (resume and out.is_file()):
            return store, {}
        try:  # a finished run: resumed from its file (check_output made sure it is DeepCut's)
            coco = json.loads(out.read_bytes())
        except (OSError, ValueError, RecursionError) as e:
            raise DeepCutError(f"cannot --resume from {out}: it cannot be read ({e}); rerun without --resume") from None
        store.reopen(coco if isinstance(coco, dict) else {}, meta, out)
        return store, store.records()
    if resume:
        store.check_resumable(meta)
        return store, store.records()
    if not restart:
        raise DeepCutError(f"{store.folder} holds an unfinished run for {out.name}: add --resume to continue it, "
                           f"or --restart to discard it and start again")
    return store, {}


def file_stamp(path: Path) -> dict[str, int] | None:
    """What tells whether the file at ``path`` changed: its size and modification time (None: cannot stat)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _label(runner: Runner, store: ShardStore, todo: list[ImageSource], progress: Callable[[Record], None],
           report: LabelReport, stamps: dict[str, dict[str, int] | None]) -> None:
    """Label ``todo``, each record fsynced into a new part file before it is counted, with its file's
    :func:`file_stamp` from before it was read (so that a resume redoes an image whose file changed)."""
    with store.writer() as writer:
        for record in runner.map(todo):
            stamp = stamps.get(record.get("file_name"))
            writer.write(record if stamp is None else {**record, "stamp": stamp})
            report.labelled += 1
            progress(record)


def label_dataset(sources: Sequence[ImageSource], root: Path, out: Path, spec: LabelSpec, runner: Runner, *,
                  resume: bool = False, restart: bool = False, on_start: Callable[[int, int], None] | None = None,
                  on_record: Callable[[Record], None] | None = None,
                  on_note: Callable[[str], None] | None = None) -> LabelReport:
    """Label ``sources`` into the COCO file ``out`` (see the module doc).

    Args:
        sources: from :func:`~.sources.collect_sources`.
        root: from :func:`~.sources.collect_sources`.
        out: the COCO file (checked with :func:`check_output`).
        spec: what to compute.
        runner: where (not started yet).
        resume: continue the run of ``out`` (same settings), labelling only what is missing (new images, files
            that changed, earlier failures): an unfinished run's shards, else the finished file ``out``. Without
            either, start afresh.
        restart: discard an unfinished run of ``out``.
        on_start: ``(total, already_done)`` once the models are built, before the first image.
        on_record: called with each record as it is saved.
        on_note: called with what was wrong in an earlier run's shards (a line that is not a whole
            record: its image is labelled again).

    Raises:
        LabelInterrupted: Ctrl-C; what was labelled is kept in the shards.
        DeepCutError: see :func:`open_store`; a model cannot be built; a worker died.
    """
    meta = spec.meta(root)
    reopened = resume and not ShardStore(out).exists() and out.is_file()  # a finished file made shards again
    store, earlier = open_store(out, meta, resume, restart)
    try:
        return _label_store(sources, root, out, spec, runner, store, earlier, meta, on_start, on_record, on_note)
    except BaseException:
        if reopened and not any(p.stat().st_size for p in store.part_files()[1:]):  # nothing labelled since
            store.remove()  # the finished file is as it was: no shards of a run nobody started are left
        raise


def _label_store(sources: Sequence[ImageSource], root: Path, out: Path, spec: LabelSpec, runner: Runner,
                 store: ShardStore, earlier: dict[str, Record], meta: dict[str, Any],
                 on_start: Callable[[int, int], None] | None, on_record: Callable[[Record], None] | None,
                 on_note: Callable[[str], None] | None) -> LabelReport:
    """:func:`label_dataset` once the store is open: label what ``earlier`` lacks, then assemble ``out``."""
    note = on_note or (lambda m: None)
    for problem in store.problems:
        note(problem)
    stamps = {s.file_name: file_stamp(s.path) for s in sources}
    done = set()
    for name, r in earlier.items():
        if is_failure(r) or name not in stamps:
            continue
        if "stamp" in r and r["stamp"] != stamps[name]:  # records of earlier versions have none: kept
            note(f"{name} changed since it was labelled; it is labelled again")
            continue
        done.add(name)
    todo = [s for s in sources if s.file_name not in done]
    report = LabelReport(out, len(sources), resumed=len(sources) - len(todo))
    backbone = store.backbone() if not todo else None
    try:
        if backbone is None:
            backbone = _run(runner, store, meta, todo, report, bool(earlier), on_start, on_record, stamps)
    except KeyboardInterrupt as stop:
        saved = report.resumed + report.labelled
        where = f"kept in {store.folder}; rerun the same command with --resume to continue" if store.exists() \
            else "nothing was saved"
        raise LabelInterrupted(f"interrupted: {saved} of {len(sources)} images done, {where}", saved,
                               len(sources), stop) from None
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
         on_record: Callable[[Record], None] | None, stamps: dict[str, dict[str, int] | None]) -> dict[str, Any]:
    """Build the models, (re)create the store (resuming: check the backbone is set up as the earlier run's),
    label ``todo``; returns the backbone's description."""
    t0 = time.perf_counter()
    with runner:
        backbone = runner.start()
        report.load_seconds = time.perf_counter() - t0
        if resuming:
            store.check_backbone(backbone)
        else:
            store.create(meta)
        store.save_backbone(backbone)
        if on_start:
            on_start(report.total, report.resumed)
        t1 = time.perf_counter()
        _label(runner, store, todo, on_record or (lambda r: None), report, stamps)
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
    if os.path.lexists(out) and not is_own_output(out):  # put there while the run was going
        raise DeepCutError(f"{out} now exists and DeepCut did not write it; the results are kept in {store.folder}: "
                           f"move it away and rerun with --resume")
    with OutputManifest(out.parent).writing([out.name]):
        write_json_atomic(out, coco, indent=None)
    store.remove()
    return coco["info"]
