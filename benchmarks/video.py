"""Video segmentation on DAVIS-2016: label consistency, J, and throughput against the ViT alone.

    python benchmarks/video.py                         # all frames of the 5 sequences (tens of minutes on 2 cores)
    python benchmarks/video.py --quick                 # 12 frames per sequence, 8 timing frames
    python benchmarks/video.py --json docs/results/video_davis.json --markdown docs/results/video_davis.md

Two parts, measured in one run:

* **Quality** (weight-free colour backbone, since no pretrained DINO weights can be downloaded here):
  per sequence, J = mean foreground IoU over the frames (k=2), and the share of consecutive frame
  pairs whose labels are not permuted (:func:`deepcut.evaluation.metrics.consistency`) for the foreground
  split and for a part segmentation (stages=2, k=3). Each is measured for the video pipeline
  (warm-started GNN + matching), the warm start alone (the paper's recipe, no matching), and
  independent per-frame segmentation (what ``DeepCut.segment`` gives frame by frame).
* **Throughput** (DINO ViT-S/8 with random weights: speed does not depend on the weights): frames
  per second of the full video pipeline, of the ViT alone on the same frames (same batches, same
  resize, same facet), and of ``DeepCut.segment`` called frame by frame. The goal is full/ViT >= 0.8.

Frames are decoded once into memory for the throughput part, so file decoding is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepcut import DeepCut, SegmentConfig
from deepcut.evaluation.metrics import (
    consistency,
    iou,
)
from deepcut.features.image import load_image
from deepcut.tasks.video import segment_video

SEQUENCES = ("blackswan", "car-shadow", "dog", "kite-surf", "libby")


def default_data() -> Path:
    """``$DEEPCUT_DATA/davis2016``, else ``../shared/data/davis2016`` beside the repository."""
    base = Path(os.environ["DEEPCUT_DATA"]) if "DEEPCUT_DATA" in os.environ else ROOT.parent / "shared" / "data"
    return base / "davis2016"


def load_sequence(root: Path, seq: str, limit: int | None) -> tuple[list[Path], list[np.ndarray]]:
    frames = sorted((root / "images" / seq).glob("*.jpg"))[:limit]
    masks = [np.asarray(Image.open(root / "masks" / seq / f"{f.stem}.png").convert("L")) > 127 for f in frames]
    return frames, masks


def run(model: DeepCut, frames, cfg: SegmentConfig, batch_size: int, **kw) -> tuple[list, float, dict]:
    t = time.perf_counter()
    stream = segment_video(model.store, frames, cfg, max_frames=len(frames), batch_size=batch_size, **kw)
    segs = list(stream)
    return segs, time.perf_counter() - t, dict(stream.stats)


def quality(args: argparse.Namespace) -> list[dict]:
    model = DeepCut("color")
    fg_cfg = SegmentConfig(resolution=args.resolution)
    parts_cfg = fg_cfg.replace(stages=2, k=3)
    variants = {"video": dict(), "warm only": dict(match=False), "per frame": dict(warm=False, match=False)}
    rows = []
    for seq in args.sequences:
        files, masks = load_sequence(args.data, seq, args.max_frames)
        row = {"sequence": seq, "frames": len(files)}
        for name, kw in variants.items():
            segs, secs, stats = run(model, files, fg_cfg, args.batch_size, **kw)
            row[f"J {name}"] = float(np.mean([iou(s.foreground, m) for s, m in zip(segs, masks, strict=False)]))
            row[f"fg consistency {name}"] = consistency(s.labels for s in segs)
            segs, secs, stats = run(model, files, parts_cfg, args.batch_size, **kw)
            row[f"parts consistency {name}"] = consistency(s.labels for s in segs)
            if name == "video":
                row["parts rematched frames"] = stats["rematched"]
                row["parts seconds/frame"] = secs / len(files)
        rows.append(row)
        print(f"{seq}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in row.items() if k != "sequence"), file=sys.stderr)
    return rows


def throughput(args: argparse.Namespace, threads: int) -> dict:
    torch.set_num_threads(threads)
    model = DeepCut(args.timing_backbone, pretrained=False)
    files, _ = load_sequence(args.data, args.timing_sequence, args.timing_frames)
    frames = [load_image(f) for f in files]
    cfg = SegmentConfig(resolution=args.timing_resolution)
    bs = args.batch_size

    def vit_only() -> float:
        t = time.perf_counter()
        for i in range(0, len(frames), bs):
            model.store.get_many(frames[i:i + bs], cfg, bs, cache=False, gram=False)
        return time.perf_counter() - t

    # warm-up (first calls allocate), then ViT / pipeline / ViT so that drifting load hits both
    model.store.get_many(frames[:1], cfg, 1, cache=False, gram=False)
    vit_a = vit_only()
    _, full_fg, _ = run(model, frames, cfg, bs)
    _, full_parts, _ = run(model, frames, cfg.replace(stages=2, k=3), bs)
    vit_b = vit_only()
    t = time.perf_counter()
    for f in frames:
        model.segment(f, cfg)
    per_image = time.perf_counter() - t
    vit = (vit_a + vit_b) / 2
    n = len(frames)
    return {
        "backbone": f"{args.timing_backbone} (random weights)",
        "threads": threads,
        "sequence": args.timing_sequence,
        "frames": n,
        "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "resolution": args.timing_resolution,
        "batch_size": bs,
        "fps ViT only": n / vit,
        "fps video k=2": n / full_fg,
        "fps video stages=2 k=3": n / full_parts,
        "fps segment() per frame": n / per_image,
        "ratio k=2": vit / full_fg,
        "ratio stages=2 k=3": vit / full_parts,
        "vit seconds (two passes)": [vit_a, vit_b],
    }


def markdown(rows: list[dict], speeds: list[dict], args: argparse.Namespace) -> str:
    out = []
    if rows:
        out.append(f"Quality: colour backbone (no pretrained weights here), resolution {args.resolution}, "
                   f"{'all' if args.max_frames is None else f'first {args.max_frames}'} frames per sequence.\n")
        out.append("| sequence | frames | J video | J per frame | fg consistency video | parts consistency video "
                   "| parts consistency warm only | parts consistency per frame | parts frames re-matched |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows + [_mean_row(rows)]:
            out.append(f"| {r['sequence']} | {r['frames']} | {r['J video']:.3f} | {r['J per frame']:.3f} "
                       f"| {r['fg consistency video']:.3f} | {r['parts consistency video']:.3f} "
                       f"| {r['parts consistency warm only']:.3f} | {r['parts consistency per frame']:.3f} "
                       f"| {r['parts rematched frames']} |")
    if speeds:
        sp = speeds[0]
        out.append("")
        out.append(f"Throughput: {sp['backbone']}, {sp['frames']} frames of `{sp['sequence']}` "
                   f"({sp['size']}) at resolution {sp['resolution']}, batches of {sp['batch_size']}; "
                   f"frames/s and the ratio to the ViT alone in the same run.\n")
        out.append(
            "| pipeline | "
            + " | ".join(f"{s['threads']} thread{'s' * (s['threads'] > 1)}: frames/s | vs ViT only" for s in speeds)
            + " |"
        )
        out.append("|---|" + "---:|---:|" * len(speeds))
        for key in ("fps ViT only", "fps video k=2", "fps video stages=2 k=3", "fps segment() per frame"):
            cells = " | ".join(f"{s[key]:.2f} | {s[key] / s['fps ViT only']:.2f}×" for s in speeds)
            out.append(f"| {key[4:]} | {cells} |")
    return "\n".join(out) + "\n"


def _mean_row(rows: list[dict]) -> dict:
    mean = {"sequence": "**mean**", "frames": sum(r["frames"] for r in rows)}
    for k in rows[0]:
        if k not in mean:
            vals = [r[k] for r in rows]
            mean[k] = sum(vals) if k == "parts rematched frames" else float(np.mean(vals))
    return mean


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=default_data(), help="DAVIS-2016 folder (default: %(default)s)")
    p.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    p.add_argument("--max-frames", type=int, default=None, help="frames per sequence (default: all)")
    p.add_argument("--resolution", type=int, default=280, help="working resolution of the quality part")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--timing-backbone", default="dino_vits8")
    p.add_argument("--timing-sequence", default="dog")
    p.add_argument("--timing-frames", type=int, default=24)
    p.add_argument("--timing-resolution", type=int, default=280)
    p.add_argument("--timing-threads", type=int, nargs="+", default=[1, torch.get_num_threads()],
                   help="torch intra-op thread counts to time (default: 1 and torch's default, %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the quality part (default: torch's)")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--quick", action="store_true", help="12 frames per sequence, 8 timing frames")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    p.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    args = p.parse_args(argv)
    if args.quick:
        args.max_frames = args.max_frames or 12
        args.timing_frames = min(args.timing_frames, 8)
    if not (args.data / "images").is_dir():
        print(f"error: no DAVIS-2016 frames in {args.data} (use --data or DEEPCUT_DATA)", file=sys.stderr)
        return 1
    load_start = os.getloadavg()
    torch.manual_seed(0)
    default_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [] if args.skip_quality else quality(args)
    speeds = [] if args.skip_speed else [throughput(args, t) for t in dict.fromkeys(args.timing_threads)]
    torch.set_num_threads(default_threads)
    table = markdown(rows, speeds, args)
    table += (f"\nMachine: {os.cpu_count()} CPUs shared with other jobs; 1-minute load average {load_start[0]:.1f} at "
              f"the start and {os.getloadavg()[0]:.1f} at the end.\n")
    print(table)
    meta = {
        "command": "python benchmarks/video.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "load average (1, 5, 15 min) at start / end": [load_start, os.getloadavg()],
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**meta, "quality": rows, "throughput": speeds}, indent=2))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
