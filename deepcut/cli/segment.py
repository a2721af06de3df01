"""``python -m deepcut segment IMAGE_OR_DIR... --out DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (add_config_args, add_image_args, config_from_args, expand_inputs, file_error, make_model,
                     unique_stems, write_results)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment images or folders of images",
                       description="Segment images. Writes <stem>_labels.png, <stem>_overlay.png, "
                                   "<stem>_mask.png (with a foreground), <stem>_cutout.png (with --cutout) "
                                   "and results.json into --out.")
    add_image_args(p)
    p.add_argument("--cutout", action="store_true",
                   help="also write <stem>_cutout.png: the foreground on a transparent background (RGBA; "
                        "sharper edges with --refine guided)")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..errors import DeepCutError

    cfg = config_from_args(args)
    files = expand_inputs(args.inputs)
    model = make_model(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    failures: dict[str, str] = {}
    for path, stem in zip(tqdm(files, desc="segmenting", unit="img", file=sys.stderr), unique_stems(files)):
        try:
            seg = model.segment(path, cfg)
            written = seg.save(out, stem, alpha=args.opacity, cutout=args.cutout)
            if args.cutout and "cutout" not in written:
                tqdm.write(f"note: {path}: no cut-out, there is no foreground/background split "
                           f"(use k=2 or --stages 2)", file=sys.stderr)
        except DeepCutError as e:
            tqdm.write(f"error: {file_error(path, e)}", file=sys.stderr)
            failures[str(path)] = str(e)
            continue
        except MemoryError:
            tqdm.write(f"error: {path}: out of memory", file=sys.stderr)
            failures[str(path)] = "out of memory"
            continue
        results[str(path)] = {**seg.summary(), "outputs": written}
    results_path = write_results(out, model, cfg, results, failures)
    print(f"{len(results)} segmented, {len(failures)} failed; results in {results_path}", file=sys.stderr)
    return 1 if failures else 0
