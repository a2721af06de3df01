"""``python -m deepcut segment IMAGE_OR_DIR... --out DIR``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import add_config_args, config_from_args, expand_inputs, file_error, make_model, unique_stems


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment images or folders of images",
                       description="Segment images. Writes <stem>_labels.png, <stem>_overlay.png, "
                                   "<stem>_mask.png (with a foreground) and results.json into --out.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--opacity", type=float, default=0.5, help="overlay colour opacity (default: %(default)s)")
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
        t = time.perf_counter()
        try:
            seg = model.segment(path, cfg)
            written = seg.save(out, stem, alpha=args.opacity)
        except DeepCutError as e:
            tqdm.write(f"error: {file_error(path, e)}", file=sys.stderr)
            failures[str(path)] = str(e)
            continue
        except MemoryError:
            tqdm.write(f"error: {path}: out of memory", file=sys.stderr)
            failures[str(path)] = "out of memory"
            continue
        results[str(path)] = {
            "bbox": list(seg.bbox) if seg.bbox is not None else None,
            "num_segments": seg.num_segments,
            "seconds": round(time.perf_counter() - t, 4),
            "outputs": written,
            "notes": seg.notes,
        }
    summary = {
        "backbone": model.backbone.describe(),
        "config": cfg.to_dict(),
        "files": results,
        "failures": failures,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"{len(results)} segmented, {len(failures)} failed; results in {out / 'results.json'}", file=sys.stderr)
    return 1 if failures else 0
