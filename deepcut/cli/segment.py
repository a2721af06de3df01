"""``python -m deepcut segment IMAGE_OR_DIR... --out DIR``.

``--out`` is checked before the model loads; ``results.json`` is rewritten (atomically) after every
image, so an interruption or a crash keeps what is done; a failure of any kind on one image is
listed and the batch goes on (exit status 1 at the end); every input gets output names of its own
(recorded in ``results.json``), DeepCut's own outputs (known from the folder's manifest) are never
read back as inputs, and an image's earlier outputs are removed before it is written again, while a
file DeepCut did not write is never touched (see :mod:`.outdir`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..utils.manifest import folder_lock
from .common import (
    add_config_args,
    add_image_args,
    check_terminated,
    config_from_args,
    expand_inputs,
    file_error,
    finish_results,
    make_model,
    relative_names,
    stop_code,
    write_results,
)
from .outdir import OutDir, check_out_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment images or folders of images",
                       description="Segment images. Writes <stem>_labels.png, <stem>_overlay.png, "
                                   "<stem>_mask.png (with a foreground), <stem>_cutout.png (with --cutout) "
                                   "and results.json into --out (rewritten after every image).")
    add_image_args(p)
    p.add_argument("-r", "--recursive", action="store_true",
                   help="a folder stands for the images in it and in its subfolders; outputs are named after "
                        "their path below it (bear/00001.jpg: bear_00001_labels.png …)")
    p.add_argument("--cutout", action="store_true",
                   help="also write <stem>_cutout.png: the foreground on a transparent background (RGBA; "
                        "sharper edges with --refine guided)")
    add_config_args(p)
    p.set_defaults(func=run)


def failure_reason(exc: Exception) -> str:
    """What went wrong with one file, for the log and ``results.json``."""
    from ..errors import DeepCutError
    from ..utils.memory import is_oom

    if isinstance(exc, DeepCutError):
        return str(exc)
    if is_oom(exc):
        return f"out of memory ({type(exc).__name__}); lower --resolution or raise --stride"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"unexpected error ({type(exc).__name__}: {first})"


def segment_one(model, cfg, args: argparse.Namespace, path: Path, stem: str, out: OutDir) -> tuple[dict, str | None]:
    """Segment ``path`` and write its images: ``(record, note or None)``. DeepCut's earlier outputs
    of ``stem`` that this run does not write are removed."""
    kinds = ("labels", "overlay", "mask", "cutout") if args.cutout else ("labels", "overlay", "mask")
    out.clear(stem)
    with out.manifest.writing(f"{stem}_{kind}.png" for kind in kinds):
        seg = model.segment(path, cfg)
        written = seg.save(out.path, stem, alpha=args.opacity, cutout=args.cutout)
    out.clear(stem, keep=written)
    note = None
    if args.cutout and "cutout" not in written:
        note = f"note: {path}: no cut-out, there is no foreground/background split (use k=2 or --stages 2)"
    return {**seg.summary(), "outputs": written}, note


def prepare(args: argparse.Namespace) -> tuple[OutDir, list[Path], list[str]]:
    """``(out, inputs, stems)``, every check that needs no model done (``--out``, the inputs, their names)."""
    out = OutDir(check_out_dir(args.out, create=False, results=True))  # a bad --out fails before the model loads
    files, skipped = out.inputs(expand_inputs(args.inputs, args.recursive))
    if skipped:
        print(f"note: skipped {len(skipped)} files that DeepCut wrote (e.g. {skipped[0]})", file=sys.stderr)
    if not files:
        from ..errors import DeepCutError

        raise DeepCutError("no input files found (besides DeepCut's own outputs)")
    return out, files, out.plan(files, bases=relative_names(files, args.inputs) if args.recursive else None)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out, files, stems = prepare(args)
    model = make_model(args)
    check_out_dir(out.path, results=True)
    with folder_lock(out.path):
        return segment_all(model, cfg, args, out, files, stems)


def segment_all(model, cfg, args: argparse.Namespace, out: OutDir, files: list[Path], stems: list[str]) -> int:
    """Segment ``files`` into ``out`` (held by this run), ``results.json`` updated after each; the exit code."""
    from tqdm import tqdm

    results: dict[str, dict] = {}
    failures: dict[str, str] = {}
    state = {"finished": False, "total": len(files)}
    write_results(out, model, cfg, results, failures, **state)
    try:
        for path, stem in zip(tqdm(files, desc="segmenting", unit="img", file=sys.stderr), stems, strict=False):
            check_terminated()
            try:
                results[str(path)], note = segment_one(model, cfg, args, path, stem, out)
                if note:
                    tqdm.write(note, file=sys.stderr)
            except Exception as e:  # noqa: BLE001 - one bad image must not end the batch
                out.clear(stem)
                failures[str(path)] = failure_reason(e)
                tqdm.write(f"error: {file_error(path, failures[str(path)])}", file=sys.stderr)
            write_results(out, model, cfg, results, failures, **state)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated)
        path = write_results(out, model, cfg, results, failures, **state, interrupted=True)
        finish_results(out)
        code, word = stop_code(stop)
        print(f"{word}: {len(results)} segmented, {len(failures)} failed of {len(files)}; "
              f"{path} lists them", file=sys.stderr)
        return code
    results_path = write_results(out, model, cfg, results, failures, **{**state, "finished": True})
    finish_results(out)
    print(f"{len(results)} segmented, {len(failures)} failed; results in {results_path}", file=sys.stderr)
    return 1 if failures else 0
