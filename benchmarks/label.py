"""Images per second of ``python -m deepcut label`` with 1 and N worker processes, and whether they agree.

Labels the same images (default: the first 24 Weizmann horses of ``../shared/data``) with each
``--workers`` count through the library the CLI runs (:func:`deepcut.labeling.label_dataset`, the
same runners), and reports images/s of the labelling alone (model building is timed separately),
the speed-up over the first count, and the mean mask IoU of every annotation against the first
count's (annotations matched per image by the Hungarian method on IoU; an unmatched one counts 0).

The default backbone is DINO ViT-S/8 with random weights, so the ViT costs what it costs in a real
run. Writes a Markdown table to stdout and ``docs/results/label.md``::

    python benchmarks/label.py                      # 24 horses, --workers 1 then 2
    python benchmarks/label.py --images 8 --backbone color --out /tmp/label.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepcut import SegmentConfig, __version__  # noqa: E402
from deepcut.backbones import load_backbone  # noqa: E402
from deepcut.backbones.tune import choose_engine, hardware_line  # noqa: E402
from deepcut.labeling import (  # noqa: E402
    InProcessRunner,
    LabelSpec,
    ProcessRunner,
    collect_sources,
    decode_mask,
    label_dataset,
)
from deepcut.utils.threads import available_cores  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "weizmann_horse" / "images"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="image folder (default: %(default)s)")
    p.add_argument("--images", type=int, default=24, help="how many images (default: %(default)s)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                   help="worker counts, each with cores // N threads (default: 1 2)")
    p.add_argument("--backbone", default="dino_vits8", help="backbone (default: %(default)s)")
    p.add_argument("--pretrained", action="store_true", help="pretrained weights (default: random weights)")
    p.add_argument("--resolution", type=int, default=280, help="working resolution (default: %(default)s)")
    p.add_argument("--objects", type=int, default=3, help="objects per image (default: %(default)s)")
    p.add_argument("--no-thread-row", dest="thread_row", action="store_false",
                   help="skip the last row (one process, one thread), which shows what threads alone give")
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "label.md"), help="Markdown file to write")
    return p.parse_args(argv)


def run_once(args: argparse.Namespace, workers: int, threads: int, out: Path) -> tuple[dict, dict]:
    """Label the images with ``workers`` processes of ``threads`` torch threads (one worker: this
    process); returns ``(timings, coco dict)``."""
    root, sources = collect_sources([args.data], limit=args.images)
    spec = LabelSpec(args.backbone, args.pretrained, "cpu", SegmentConfig(resolution=args.resolution), args.objects,
                     threads=threads)
    runner = InProcessRunner(spec) if workers == 1 else ProcessRunner(spec, workers)
    report = label_dataset(sources, root, out, spec, runner, restart=True)
    timing = {"workers": workers, "threads": threads, "images": report.total, "load": report.load_seconds,
              "label": report.label_seconds, "rate": report.images_per_second}
    return timing, json.loads(out.read_text())


def masks_by_image(coco: dict) -> dict[str, list[np.ndarray]]:
    names = {img["id"]: img["file_name"] for img in coco["images"]}
    out: dict[str, list[np.ndarray]] = {name: [] for name in names.values()}
    for ann in coco["annotations"]:
        out[names[ann["image_id"]]].append(decode_mask(ann["segmentation"]))
    return out


def mean_iou(a: dict, b: dict) -> float:
    """Mean IoU of matched annotations (Hungarian on IoU per image; unmatched ones count 0)."""
    ma, mb = masks_by_image(a), masks_by_image(b)
    scores: list[float] = []
    for name in sorted(set(ma) | set(mb)):
        xs, ys = ma.get(name, []), mb.get(name, [])
        if not xs or not ys:
            scores.extend([0.0] * max(len(xs), len(ys)))
            continue
        iou = np.array([[(x & y).sum() / max((x | y).sum(), 1) for y in ys] for x in xs])
        rows, cols = linear_sum_assignment(-iou)
        scores.extend(iou[rows, cols].tolist())
        scores.extend([0.0] * (max(len(xs), len(ys)) - len(rows)))
    return float(np.mean(scores)) if scores else 1.0


def table(args: argparse.Namespace, rows: list[dict], engine: str) -> str:
    base = rows[0]["rate"]
    shown_args = [a for i, a in enumerate(sys.argv[1:]) if a != "--out" and (i == 0 or sys.argv[i] != "--out")]
    command = "python benchmarks/label.py " + shlex.join(shown_args)
    data = Path(args.data).resolve()
    shown = f"../{data.relative_to(ROOT.parent)}" if data.is_relative_to(ROOT.parent) else str(data)
    lines = ["# `python -m deepcut label`: worker processes on one machine", "",
             f"`{command.strip()}`", "",
             f"{args.images} images from `{shown}`, "
             f"backbone `{args.backbone}` ({'pretrained' if args.pretrained else 'random weights'}), resolution "
             f"{args.resolution}, {args.objects} objects per image, the ViT in `{engine}` (`auto`'s choice, made "
             f"before the first row); {hardware_line('cpu').rsplit(', ', 1)[0]}, deepcut {__version__}. "
             "Images/s counts the labelling only; building the models is the load column. The last row (one "
             "process, one thread) is for reading the others: N workers can beat one process by at most N times "
             "its thread speed-up (first row / last row). The steady state is the labelling alone (models built "
             "and warmed up: the load column), the last column compares it with one process of one thread.", "",
             "| --workers | threads each | images | model load (s) | labelling (s) | images/s | speed-up | "
             "vs one 1-thread process | mean mask IoU vs first |", "|---|---|---|---|---|---|---|---|---|"]
    single = next((r["rate"] for r in rows if (r["workers"], r["threads"]) == (1, 1)), None)
    for r in rows:
        versus = f"{r['rate'] / single:.2f}x" if single else "–"
        lines.append(f"| {r['workers']} | {r['threads']} | {r['images']} | {r['load']:.1f} | {r['label']:.1f} | "
                     f"{r['rate']:.3f} | {r['rate'] / base:.2f}x | {versus} | {r['iou']:.4f} |")
    return "\n".join(lines) + "\n"


def auto_engine(args: argparse.Namespace) -> str:
    """The engine ``auto`` runs the ViT in at ``args.resolution`` on this machine, chosen (measured, or read back)
    now, so that no row's model load includes the measuring and every worker reads the same choice."""
    backbone = load_backbone(args.backbone, pretrained=args.pretrained)
    return choose_engine(backbone, "auto", resolution=args.resolution).engine.name


def plan(args: argparse.Namespace) -> list[tuple[int, int]]:
    """``(workers, threads each)`` of every row: each count as the CLI runs it (``cores // N`` threads),
    then one process of one thread, which shows how far threads alone speed one process up."""
    cores = available_cores()
    rows = [(w, max(1, cores // w)) for w in args.workers]
    if args.thread_row and (1, 1) not in rows:
        rows.append((1, 1))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows, first = [], None
    engine = auto_engine(args)
    print(f"engine: {engine}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        for workers, threads in plan(args):
            timing, coco = run_once(args, workers, threads, Path(tmp) / f"w{workers}t{threads}.json")
            first = first or coco
            timing["iou"] = mean_iou(first, coco)
            rows.append(timing)
            print(f"workers {workers} x {threads} threads: {timing['rate']:.3f} images/s", file=sys.stderr)
    text = table(args, rows, engine)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
