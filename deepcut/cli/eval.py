"""``python -m deepcut eval DATASET_DIR --task single|corloc|video|parts|objects --out RESULTS.json``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from ..config import defaults
from ..utils.files import write_json_atomic
from ..utils.manifest import OutputManifest
from .common import UsageError, add_config_args, config_from_args, make_model, path_arg, stop_code
from .options import parse_objects
from .outdir import check_out_dir

#: The default of a flag that applies only to some runs (``SCOPED_FLAGS``): not given.
UNSET = argparse.SUPPRESS

#: Segmentation settings that depend on the task unless given on the command line.
TASK_DEFAULTS = {
    "parts": {"k": 5, "stages": 2},  # 5 = the parts of cub_parts_tiny (head, chest, wing, tail, feet)
}
#: The settings whose flags default to None (the task's default).
TASK_SETTINGS = ("k", "stages")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="score a method on a dataset with ground truth (the paper's metrics)",
        description="Evaluate DeepCut or a baseline clustering of the same features on a dataset with "
                    "images/ and masks/ (same stems; video: images/<seq>/<frame>; corloc: optional "
                    "annotations.json). Writes RESULTS.json and prints a summary table.",
    )
    p.add_argument("dataset", metavar="DATASET_DIR", type=path_arg)
    p.add_argument("--task", required=True, choices=("single", "corloc", "video", "parts", "objects"),
                   help="single: IoU / accuracy / max F-beta; corloc: box IoU >= 0.5; video: J; "
                        "parts: NMI / ARI / Hungarian mIoU; objects: several objects per image (CorLoc of the "
                        "best-scoring one, recall of the boxes at IoU 0.5, mask IoU)")
    p.add_argument("--objects", type=parse_objects, default=UNSET, metavar="N|auto",
                   help="objects task: most objects per image, found by successive cuts (default: 3); "
                        "'auto' (or 0): one correlation-clustering cut, as many objects as it finds")
    p.add_argument("--method", choices=("deepcut", "spectral", "kmeans"), default=UNSET,
                   help="DeepCut's GNN, spectral normalized cut, or k-means, on identical features "
                        "(default: deepcut)")
    p.add_argument("--spectral-graph", choices=("deepcut", "tokencut"), default=UNSET,
                   help="graph of --method spectral: DeepCut's relu(F F^T)/max, or TokenCut's cosine > 0.2 "
                        "(default: deepcut)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate the first N images (video: the first N sequences)")
    p.add_argument("--frame-step", type=int, default=UNSET, metavar="S",
                   help="video: keep every S-th frame of each sequence (default: all frames)")
    p.add_argument("--video-mode", choices=("frames", "temporal"), default=UNSET,
                   help="video: segment every frame on its own (k=2), or with DeepCut.segment_video, whose GNN "
                        "is carried from frame to frame (--method deepcut only) (default: frames)")
    p.add_argument("--save-masks", type=path_arg, metavar="DIR",
                   help="write the predicted masks as DIR/<stem>.png (0/255; parts: label maps; video: "
                        "DIR/<seq>/<frame>.png)")
    p.add_argument("--predictions", type=path_arg, metavar="DIR",
                   help="score masks saved earlier with --save-masks instead of segmenting")
    p.add_argument("--out", type=path_arg, required=True, metavar="RESULTS.json", help="where to write the results")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    # None = "the task's default" (see TASK_DEFAULTS); filled in by config_for_task.
    add_config_args(p, defaults=dict.fromkeys(TASK_SETTINGS), default_help=task_default_help())
    p.set_defaults(func=run)


def task_default_help() -> dict[str, str]:
    """``--help`` text of the task-dependent defaults, e.g. ``{"k": "2; parts: 5", …}``."""
    base = {**defaults(), "k": 2}
    return {name: "; ".join([str(base[name])] + [f"{task}: {d[name]}" for task, d in TASK_DEFAULTS.items()
                                                  if name in d])
            for name in TASK_SETTINGS}


def config_for_task(args: argparse.Namespace):
    """The :class:`SegmentConfig` of the flags, with the task's defaults for unset ``-k`` / ``--stages``."""
    # k=2 whatever the loss: these tasks score a foreground (a CC run's k is then a bound of 2)
    fallback = {**defaults(), "k": 2, **TASK_DEFAULTS.get(args.task, {})}
    unset = {name: fallback[name] for name in TASK_SETTINGS if getattr(args, name) is None}
    cfg = config_from_args(argparse.Namespace(**{**vars(args), **unset}))
    if args.task not in ("parts", "objects") and cfg.stages == 1 and cfg.k != 2:
        raise UsageError(f"--task {args.task} scores a foreground: use -k 2 or --stages 2 (got -k {cfg.k} --stages 1)")
    return cfg


#: Flags that apply only to some runs: ``flag: (attribute, its default, when it applies, that case in words)``.
SCOPED_FLAGS = {
    "--objects": ("objects", 3, lambda a: a.task == "objects", "--task objects"),
    "--frame-step": ("frame_step", 1, lambda a: a.task == "video", "--task video"),
    "--video-mode": ("video_mode", "frames", lambda a: a.task == "video", "--task video"),
    "--method": ("method", "deepcut", lambda a: not a.predictions, "a run that segments (not --predictions)"),
    "--spectral-graph": ("spectral_graph", "deepcut", lambda a: a.method == "spectral", "--method spectral"),
}


def check_scoped_flags(args: argparse.Namespace) -> None:
    """Refuse a flag given for a run it does not apply to (``SCOPED_FLAGS``: e.g. ``--video-mode`` without
    ``--task video``), which would otherwise be ignored without a word; then fill in the defaults of the
    flags not given.

    Raises:
        UsageError: such a flag was given.
    """
    for flag, (name, _, applies, case) in SCOPED_FLAGS.items():
        given = hasattr(args, name)
        if not given:
            setattr(args, name, SCOPED_FLAGS[flag][1])
        elif not applies(args):
            raise UsageError(f"{flag} applies only to {case}; leave it out")


def git_revision() -> str | None:
    """The commit of the deepcut checkout (``+dirty`` with local changes), or None outside git."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        # --no-optional-locks: a read-only look that never writes the index (another git may be running)
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


#: The keys of an eval results file written before the folder manifest (recognised, replaced).
RESULTS_KEYS = frozenset({"task", "method", "dataset", "num_images"})


def _earlier_results(path: Path) -> bool:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > (256 << 20):
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and RESULTS_KEYS <= set(data)


def check_eval_outputs(args: argparse.Namespace, dataset) -> None:
    """Refuse, before any work, an ``--out`` that exists and is not an earlier result of DeepCut's, and a
    ``--save-masks`` inside the dataset's ``images/`` or ``masks/`` or holding a mask this run would
    replace that DeepCut did not write.

    Raises:
        UsageError: any of those.
    """
    from ..evaluation.saved import mask_path
    from ..utils.manifest import Manifests, real_path

    out = Path(args.out)
    manifests = Manifests()
    if os.path.lexists(out) and not manifests.owns(out) and not _earlier_results(out):
        raise UsageError(f"--out {out} exists and DeepCut did not write it; remove it or choose another name")
    if not args.save_masks:
        return
    check_out_dir(args.save_masks, "--save-masks", create=False)  # a file, a dangling link or a loop, unwritable
    masks = real_path(args.save_masks)
    for part in ("images", "masks"):
        inside = real_path(Path(dataset.root) / part)
        if masks == inside or inside in masks.parents:
            raise UsageError(f"--save-masks {args.save_masks} is inside the dataset's {part}/ folder, whose files it "
                             f"would replace; choose another folder")
    for sample in dataset.samples:
        path = mask_path(args.save_masks, sample.key)
        if os.path.lexists(path) and not manifests.owns(path):
            raise UsageError(f"--save-masks {args.save_masks} holds {path}, which this run would replace and DeepCut "
                             f"did not write; move it away or choose another folder")


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..evaluation.datasets import load_dataset
    from ..evaluation.object_methods import discoverer, saved_objects
    from ..evaluation.runner import evaluate, segmenter, video_segmenter
    from ..evaluation.saved import saved_predictions

    check_scoped_flags(args)
    cfg = config_for_task(args)
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    if args.frame_step < 1:
        raise UsageError(f"--frame-step must be at least 1, got {args.frame_step}")
    if args.predictions and args.save_masks:
        raise UsageError("--predictions scores saved masks; it cannot be combined with --save-masks")
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out must be a file name (RESULTS.json), {out} is a folder")
    dataset = load_dataset(args.dataset, args.task, limit=args.limit, frame_step=args.frame_step)
    check_eval_outputs(args, dataset)

    header: dict = {
        "task": args.task,
        "method": "predictions" if args.predictions else args.method,
        "dataset": str(Path(args.dataset).resolve()),
        "version": __version__,
        "git": git_revision(),
        "command": "python -m deepcut " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if len(sys.argv) > 1 and sys.argv[1] == "eval" else None,
    }
    if args.predictions:
        method = (saved_objects(args.predictions) if args.task == "objects"
                  else saved_predictions(args.predictions, args.task))
        header.update(backbone=None, config=None, options={"predictions": str(Path(args.predictions).resolve())})
        desc = "scoring"
    else:
        model = make_model(args)
        if args.task == "video" and args.video_mode == "temporal":
            if args.method != "deepcut":
                raise UsageError("--video-mode temporal carries the GNN from frame to frame: --method deepcut only")
            method = video_segmenter(model, cfg, dataset.samples)
        elif args.task == "objects":
            method = discoverer(model, cfg, args.objects, args.method, args.spectral_graph)
            if args.objects is None:  # record what the CC variant uses
                from ..tasks.discover import CC_MAX_SEGMENTS

                cfg = cfg.replace(loss="cc", k=CC_MAX_SEGMENTS)
        else:
            method = segmenter(model, cfg, args.method, args.spectral_graph)
        header.update(backbone=model.backbone.describe(), config=model.store.config(cfg).to_dict(), options={
            "spectral_graph": args.spectral_graph if args.method == "spectral" else None,
            "limit": args.limit, "frame_step": args.frame_step,
            "save_masks": str(Path(args.save_masks).resolve()) if args.save_masks else None,
        })
        desc = f"{args.method} on {Path(args.dataset).name}"
    if args.task == "video":
        header["options"] = {**header["options"], "frame_step": args.frame_step, "video_mode": args.video_mode}
    if args.task == "objects":
        header["options"] = {**header["options"], "objects": "auto" if args.objects is None else args.objects}

    try:
        scores = evaluate(dataset, method, save_masks=args.save_masks, progress=not args.quiet, desc=desc)
    except KeyboardInterrupt as e:  # the images scored before it are written, marked "interrupted"
        _write_partial(out, header, getattr(e, "partial", None), stop_code(e)[1])
        raise
    results = {**header, **{k: v for k, v in scores.items() if k != "task"}}
    _write(out, results)
    _print_summary(args, results)
    if results["skipped"]:
        print(f"{len(results['skipped'])} skipped (no ground truth)", file=sys.stderr)
    if results["failures"]:
        print(f"{len(results['failures'])} failed (see failures in {out})", file=sys.stderr)
    print(f"results in {out}", file=sys.stderr)
    if results["num_images"] == 0:
        return 1
    return 1 if results["failures"] else 0


def _write_partial(out: Path, header: dict, partial: dict | None, word: str = "interrupted") -> None:
    """After Ctrl-C (or SIGTERM: ``word`` "terminated"): write the scores of the images done (``partial``, from
    :func:`evaluate`), and say so."""
    if partial is None:
        return
    _write(out, {**header, **{k: v for k, v in partial.items() if k != "task"}})
    done = partial["interrupted"]
    print(f"{word} after {done['scored']} of {done['of']} images; their scores in {out}", file=sys.stderr)


def _print_summary(args: argparse.Namespace, results: dict) -> None:
    """The results' table (and each video sequence's J) on stdout."""
    from ..evaluation.report import summary_table

    print(summary_table([results]))
    if args.task == "video":
        for seq, v in results["per_sequence"].items():
            j = "–" if v["j"] is None else f"{100 * v['j']:.1f}"
            print(f"  {seq:<20} J {j:>5}  ({v['frames']} frames)")


def _write(out: Path, results: dict) -> None:
    """Write the results file (atomically, recorded in its folder's manifest)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with OutputManifest(out.parent).writing([out.name]):
        write_json_atomic(out, results, indent=1)
