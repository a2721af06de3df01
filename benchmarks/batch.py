"""Images per second of one process that batches the ViT (``FeatureStore.get_many``), by batch size.

What ``deepcut label --batch-size N`` does on a GPU: N images of one size go through the ViT together in
the chosen precision, then each image's GNN runs on its own. Two figures per batch size: the ViT alone
(features of every image) and end to end (features + the k=2 GNN + the masks at input size).
Random weights (speed does not depend on them), ViT-S/8 at 280 px on copies of real photos resized to one
size (a batch needs one size). Runs wherever it is started: the device and precision are DeepCut's
defaults (CUDA and bf16 where there is a GPU) unless ``--device`` / ``--precision`` say otherwise::

    python benchmarks/batch.py                              # batch sizes 1 2 4 8 16 32 64
    python benchmarks/batch.py --device cpu --sizes 1 4 8 --images 16
    python benchmarks/batch.py --json docs/results/batch.json

On a CPU batches barely help (the cores are busy at batch size 1); the figure that matters is the GPU's
(the authors report about 5 images/s on a V100 for their code).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepcut import DeepCut, SegmentConfig  # noqa: E402
from deepcut.features.image import load_image  # noqa: E402


def photos(count: int, side: int) -> list[np.ndarray]:
    """``count`` real photos from assets/ (public domain / CC0), cycled and resized to ``side`` x ``side``
    (flipped every other round, so no two inputs are the same bytes and nothing is cached)."""
    from PIL import Image

    files = sorted(p for p in (ROOT / "assets").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    base = [np.asarray(Image.fromarray(load_image(p)).resize((side, side))) for p in files]
    out = []
    for i in range(count):
        img = base[i % len(base)]
        rounds = i // len(base)
        out.append(np.ascontiguousarray(np.roll(img, rounds, axis=1)))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64], help="batch sizes")
    p.add_argument("--images", type=int, default=64, help="images per measurement (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: DeepCut's, CUDA when available)")
    p.add_argument("--precision", default=None, help="ViT precision (default: DeepCut's, auto)")
    p.add_argument("--resolution", type=int, default=280)
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args()

    dc = DeepCut("dino_vits8", pretrained=False, device=args.device, precision=args.precision, cache_size=0)
    cfg = SegmentConfig(resolution=args.resolution)
    images = photos(args.images, args.resolution)
    dc.store.get_many(images[:2], cfg, batch_size=2, cache=False)  # kernels, allocator, lazy imports
    name = torch.cuda.get_device_name(dc.device) if dc.device.type == "cuda" else "CPU"
    rows, figures = [], {"device": str(dc.device), "device_name": name, "precision": dc.precision,
                         "resolution": args.resolution, "images": len(images), "torch": torch.__version__}
    for size in args.sizes:
        sync(dc.device)
        t = time.perf_counter()
        feats = dc.store.get_many(images, cfg, batch_size=size, cache=False, gram=False)
        sync(dc.device)
        vit = time.perf_counter() - t
        del feats
        t = time.perf_counter()
        feats = dc.store.get_many(images, cfg, batch_size=size, cache=False)
        masks = [dc.segment_features(f.features, f.grid, cfg, image=f.image, work_size=f.work_size).foreground
                 for f in feats]
        sync(dc.device)
        total = time.perf_counter() - t
        assert len(masks) == len(images)
        figures[f"batch[{size}]"] = {"vit_images_per_s": len(images) / vit, "images_per_s": len(images) / total}
        rows.append((size, len(images) / vit, len(images) / total))
        print(f"batch {size}: ViT {len(images) / vit:.1f} images/s, end to end {len(images) / total:.1f} images/s",
              flush=True)
    print(f"\nViT-S/8 at {args.resolution} px, random weights, {name} ({dc.device}), precision {dc.precision}, "
          f"{len(images)} images, torch {torch.__version__}\n")
    print("| batch size | ViT images/s | end to end images/s (ViT + k=2 GNN + masks) |")
    print("|---|---|---|")
    for size, vit, total in rows:
        print(f"| {size} | {vit:.1f} | {total:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
