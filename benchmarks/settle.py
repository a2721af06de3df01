"""Stopping a settled training: the same labels on held-out images, and how many epochs it saves (issue #31).

A training stopped by :class:`deepcut.clustering.settle.Settle` is the full training up to its stop (same seed,
same dropout masks), so its labels are the full training's labels at that epoch. This measures, on held-out
real photos of ``../shared/data`` (every n-th Weizmann horse, GrabCut image, DAVIS-2016 frame and CUB bird;
``--images`` of each), how many of the patches keep the label the full training gives them, and the epochs
and time it takes, for the trainings long enough to be stopped (more than ``Settle.after`` epochs):

* ``stage 2``: ``segment(stages=2, k=3)``, its foreground parts trained 100 epochs;
* ``k=4`` and ``k=6``: NCut on all patches, 100 epochs (what ``deepcut.cluster(features, k, epochs=100)`` runs);
* ``cc``: correlation clustering (``k`` up to 10), 100 epochs.

Both the weight-free colour backbone and DINO ViT-S/8 with random weights (pretrained weights cannot be
downloaded here), 280 px::

    python benchmarks/settle.py                      # 6 images of each set (about 6 minutes on 2 cores)
    python benchmarks/settle.py --images 2 --backbones color
    python benchmarks/settle.py --still 10 --change 0.02   # another rule
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import shared_data_dir  # noqa: E402

from deepcut import DeepCut  # noqa: E402
from deepcut.clustering.fit import fit  # noqa: E402
from deepcut.clustering.settle import SETTLE, Settle  # noqa: E402
from deepcut.graph.patch_graph import PatchGraph  # noqa: E402

SETS = ("weizmann_horse", "grabcut", "davis2016", "cub_parts_tiny")


def held_out(data: Path, count: int) -> list[Path]:
    """Every n-th image of each set (DAVIS: across its sequences' frames), ``count`` of each."""
    out: list[Path] = []
    for name in SETS:
        files = sorted(p for p in (data / name / "images").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        out += files[:: max(1, len(files) // count)][:count]
    return out


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def compare(run, rule: Settle) -> tuple[float, int, int, float, float]:
    """``run(settle) -> (labels, epochs trained)`` with the rule and without: (share of equal labels, epochs
    with the rule, epochs without, seconds with, seconds without)."""
    t = time.perf_counter()
    full, n_full = run(None)
    t_full = time.perf_counter() - t
    t = time.perf_counter()
    short, n_short = run(rule)
    t_short = time.perf_counter() - t
    return float((np.asarray(full) == np.asarray(short)).mean()), n_short, n_full, t_short, t_full


def cases(dc: DeepCut, path: Path):
    """``(name, run)`` of every case on one image."""
    pf = dc.patch_features(path)
    graph = PatchGraph(pf.features)
    dc.segment(path)  # the image's features and graph cached before either run is timed

    def stage2(settle):
        seg = dc.segment(path, stages=2, k=3, settle=settle is not None)
        return seg.patch_labels.ravel(), sum(len(v) for v in seg.losses)

    def ncut(k):
        def run(settle):
            r = fit(pf.features, k=k, epochs=100, graph=graph, settle=settle)
            return r.labels, len(r.losses)
        return run

    def cc(settle):
        r = fit(pf.features, k=10, loss="cc", epochs=100, graph=graph, settle=settle)
        return r.labels, len(r.losses)

    return [("stage 2, k=3", stage2), ("ncut k=4", ncut(4)), ("ncut k=6", ncut(6)), ("cc", cc)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=6, help="images of each set (default: %(default)s)")
    p.add_argument("--backbones", nargs="+", default=["color", "dino_vits8"])
    for name in ("after", "every", "still"):
        p.add_argument(f"--{name}", type=int, default=getattr(SETTLE, name))
    p.add_argument("--change", type=float, default=SETTLE.change)
    args = p.parse_args()
    rule = Settle(args.after, args.every, args.still, args.change)
    paths = held_out(shared_data_dir(), args.images)
    if not paths:
        sys.exit(f"no images under {shared_data_dir()}")
    print(f"{cpu_name()}; {len(paths)} held-out images; rule {rule}")
    rows: dict[tuple[str, str], list[tuple[float, int, int, float, float]]] = {}
    for name in args.backbones:
        dc = DeepCut(name, pretrained=False) if name != "color" else DeepCut("color")
        for path in paths:
            for case, run in cases(dc, path):
                rows.setdefault((name, case), []).append(compare(run, rule))
    print("| backbone | training | patches with the full training's label: mean | lowest | images >= 99 % "
          "| epochs trained (of the full run's) | time (of the full run's) |")
    print("|---|---|---|---|---|---|---|")
    for (name, case), vals in rows.items():
        same, short, full, t_short, t_full = (np.asarray(v, np.float64) for v in zip(*vals, strict=True))
        print(f"| {name} | {case} | {same.mean():.2%} | {same.min():.2%} | {(same >= 0.99).sum()} of {same.size} "
              f"| {short.sum() / full.sum():.2f} | {t_short.sum() / t_full.sum():.2f} |")


if __name__ == "__main__":
    main()
