"""``python -m deepcut label INPUT... --out PSEUDO.json``: pseudo-label a dataset as a COCO instances file."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..segmentation.notes import plural
from .common import UsageError, add_config_args, config_from_args, error, path_arg, stop_code
from .options import check_colour_flags, parse_objects

if TYPE_CHECKING:
    from tqdm import tqdm

DESCRIPTION = """\
Discover up to --objects objects per image (iterative cuts of the patch graph, DeepCut's GNN) and
write them as a COCO instances file (RLE masks at the input size, boxes, scores, one category
"object") that pycocotools and detectron2 / CutLER training read. INPUT is an image, a folder
(searched recursively) or a .txt list of paths (one per line, relative to the list file). Results
are saved as they come in PSEUDO.json.parts/; a killed or interrupted run continues with --resume."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="pseudo-label images as a COCO instances file (several objects per image)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", type=path_arg,
                   help="images, folders (recursive) or .txt lists of paths")
    p.add_argument("--out", type=path_arg, required=True, metavar="PSEUDO.json", help="the COCO file to write")
    p.add_argument("--objects", type=parse_objects, default=3, metavar="N|auto",
                   help="most objects per image, found by successive cuts (default: %(default)s); 'auto' (or 0): "
                        "one correlation-clustering cut, as many objects as it finds")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="label only the first N images")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes, each with its own model and cores/N threads (default: 1); with --ray: "
                        "actors (default: as many as the cluster has room for); on a GPU one process batches images")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue the run of --out with the same settings, unfinished or finished: label only "
                             "what it lacks (new or changed images, failures)")
    resume.add_argument("--restart", action="store_true", help="discard an unfinished run of --out and start again")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="images per ViT batch on a GPU (default: %(default)s)")
    ray = p.add_argument_group("Ray (pip install 'deepcut-gnn[ray]')")
    ray.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                     help="run on a Ray cluster: 'auto' or HOST:PORT joins one, no ADDRESS starts a local one")
    ray.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                     help="CPUs of each Ray actor, also its torch threads (default: %(default)s)")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                     help="GPUs of each Ray actor; above 0 the actors batch images on their GPU (default: %(default)s)")
    add_config_args(p, omit=UNUSED)
    p.set_defaults(func=run)


#: Settings object discovery does not use (:mod:`deepcut.tasks.discover`): not offered (they were accepted,
#: changed nothing and made ``--resume`` refuse a run that differed only in them).
UNUSED = ("k", "stages", "bg_k", "largest_component")


def _check_counts(args: argparse.Namespace) -> None:
    for flag, value, low in (("--workers", args.workers, 1), ("--limit", args.limit, 1),
                             ("--batch-size", args.batch_size, 1)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    if args.cpus_per_worker <= 0 or args.gpus_per_worker < 0:
        raise UsageError("--cpus-per-worker must be above 0 and --gpus-per-worker at least 0")
    if args.ray is None and (args.cpus_per_worker != 1.0 or args.gpus_per_worker != 0.0):
        raise UsageError("--cpus-per-worker and --gpus-per-worker size Ray's actors: they apply with --ray only "
                         "(local processes: --workers N)")


def make_runner(args: argparse.Namespace, spec):
    """The runner the flags ask for: Ray actors, one batching process on a GPU, or N processes."""
    from dataclasses import replace

    from ..labeling import InProcessRunner, ProcessRunner
    from ..labeling.local import cap_workers
    from ..utils.device import resolve_device

    if args.ray is not None:
        from ..labeling.ray_runner import RayRunner

        return RayRunner(spec, args.ray, args.workers, args.cpus_per_worker, args.gpus_per_worker)
    if resolve_device(args.device).type == "cuda":
        if (args.workers or 1) > 1:
            print("note: on a GPU one process batches the images; --workers is not used", file=sys.stderr)
        return InProcessRunner(replace(spec, batch_size=args.batch_size))
    workers, note = cap_workers(args.workers or 1, spec)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if workers == 1:
        return InProcessRunner(spec)
    return ProcessRunner(spec, workers)


class Progress:
    """The tqdm bar (images/s, ETA) and one ``error:`` line per failed image."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def start(self, total: int, done: int) -> None:
        from tqdm import tqdm

        if done:
            print(f"resuming: {done} of {total} images already done", file=sys.stderr)
        self.bar = tqdm(total=total, initial=done, desc="labelling", unit="img", file=sys.stderr, smoothing=0.1)

    def record(self, record: dict) -> None:
        assert self.bar is not None, "start() makes the bar"
        if "error" in record:
            self.bar.write(f"error: {record['error']}", file=sys.stderr)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from ..errors import DeepCutError
    from ..labeling import LabelInterrupted, LabelSpec, check_output, collect_sources, label_dataset
    from ..labeling.shards import parts_dir
    from ..utils.manifest import file_lock

    cfg = config_from_args(args)
    _check_counts(args)
    if args.backbone == "color":  # the workers build the model: what it cannot honour is refused here
        check_colour_flags(args)
    try:
        out = check_output(args.out, args.inputs)
    except DeepCutError as e:
        raise UsageError(str(e)) from None
    root, sources = collect_sources(args.inputs, exclude=[out, parts_dir(out)], limit=args.limit)
    spec = LabelSpec(args.backbone, not args.random_weights, args.device, cfg, args.objects,
                     threads=getattr(args, "threads", None), precision=getattr(args, "precision", None))
    progress = Progress()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(out):  # one run at a time writes OUT and OUT.parts
            report = label_dataset(sources, root, out, spec, make_runner(args, spec), resume=args.resume,
                                   restart=args.restart, on_start=progress.start, on_record=progress.record,
                                   on_note=lambda m: print(f"note: {m}", file=sys.stderr))
    except LabelInterrupted as e:
        progress.close()
        code, word = stop_code(e.stopped_by)
        error(str(e).replace("interrupted", word, 1))
        return code
    finally:
        progress.close()
    kept = f", {report.resumed} of them from the earlier run" if report.resumed else ""
    speed = (f" ({report.images_per_second:.2f} images/s, after {report.load_seconds:.1f} s building the model)"
             if report.labelled else " (nothing left to label)")
    print(f"{plural(report.total - len(report.failures), 'image')} labelled{kept} "
          f"({plural(report.annotations, 'object')}), {len(report.failures)} failed; wrote {out}{speed}",
          file=sys.stderr)
    return 1 if report.failures else 0
