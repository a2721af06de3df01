"""How long the web demo takes to answer: first request vs. moving a slider (features reused).

Measures :class:`deepcut.demo.DemoSession` (what ``app.py`` calls) in one run, so the ratios compare
like with like. ViT-S/8 runs with random weights (``--vit``; same architecture and compute as DINO
ViT-S/8, which this machine cannot download), saved to a temporary local model folder and loaded the
way a visitor's "own weights" are.

    python benchmarks/demo_latency.py                 # colour backbone and ViT-S/8, 280 px
    python benchmarks/demo_latency.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default=str(REPO / "assets" / "cat.jpg"))
    p.add_argument("--resolution", type=int, default=280)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses cores / concurrency)")
    p.add_argument("--no-vit", action="store_true", help="only the colour backbone")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from deepcut.backbones import load_backbone
    from deepcut.demo import DemoSession

    backbones = {"color": "color"}
    tmp = tempfile.mkdtemp(prefix="deepcut-bench-")
    if not args.no_vit:
        folder = Path(tmp) / "vits8-random"
        load_backbone("dino_vits8", pretrained=False).model.save_pretrained(folder)
        backbones["ViT-S/8 (random weights)"] = str(folder)

    res = args.resolution
    print(f"image {Path(args.image).name}, resolution {res}, torch threads {args.threads}, "
          f"median of {args.repeats}\n")
    print("| backbone | first request (features computed) | k=3 (GNN only) | 2 stages, k=3 (GNN only) "
          "| CC loss (GNN only) | affinity click | opacity |")
    print("|---|---|---|---|---|---|---|")
    for label, name in backbones.items():
        row = measure(DemoSession(default_backbone="color", output_dir=Path(tmp) / "out"), name, args.image, res,
                      args.repeats)
        print(f"| {label} | " + " | ".join(row) + " |")


def measure(session, name: str, image: str, res: int, repeats: int) -> list[str]:
    """The table row of one backbone: first request, GNN-only reruns, affinity click, opacity."""
    session.model(name)  # load once, as the app does at start-up

    def first():
        session.model(name).model.clear_cache()
        return session.segment(image, backbone=name, resolution=res)

    t_first = timed(first, repeats)
    r = session.segment(image, backbone=name, resolution=res)
    assert r.seg.features_cached
    t_k = timed(lambda: session.segment(image, backbone=name, resolution=res, k=3), repeats)
    t_st = timed(lambda: session.segment(image, backbone=name, resolution=res, k=3, stages=2), repeats)
    t_cc = timed(lambda: session.segment(image, backbone=name, resolution=res, loss="cc"), repeats)
    t_aff = timed(lambda: session.affinity(r, 100, 100), repeats)
    t_op = timed(lambda: r.overlay(0.7), repeats)
    return [f"{t_first:.2f} s", f"{t_k:.2f} s", f"{t_st:.2f} s", f"{t_cc:.2f} s", f"{t_aff:.3f} s", f"{t_op:.3f} s"]

if __name__ == "__main__":
    main()
