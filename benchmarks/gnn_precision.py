"""The GCN's products in bf16 against float32: the same labels on held-out images, and the time (issue #31).

``fit(precision="bf16")`` runs the GCN layer's two products (forward and the weight gradient) in bf16 with
float32 results, the rest of the training in float32 (:mod:`deepcut.clustering.arithmetic`); ``"auto"``
chooses it where this machine runs those products at least ``MIN_GAIN`` times faster. This measures, on
held-out real photos of ``../shared/data`` (every n-th Weizmann horse, GrabCut image, DAVIS-2016 frame and
CUB bird; ``--images`` of each), for each training below, how many patches keep the float32 training's
segment (labels matched between the two by the Hungarian method: a renumbering is the same segmentation),
how often NCut's result has exactly k segments in each, and the time of the two (summed over the images,
run in turns), on the threads ``DeepCut.segment`` would use:

* ``stage 1``: ``k = 2``, 10 epochs (what ``segment()`` trains by default);
* ``k = 6, 10 epochs``: a k-way re-segment (NCut restarts from the spectral cut where 10 epochs leave a
  cluster empty);
* ``k = 4, 100 epochs``: what ``deepcut.cluster(features, 4, epochs=100)`` runs (with the settle rule);
* ``cc``: correlation clustering, k up to 10, 100 epochs.

Both the weight-free colour backbone and DINO ViT-S/8 with random weights (pretrained weights cannot be
downloaded here), 280 px::

    python benchmarks/gnn_precision.py                 # 4 images of each set (about 4 minutes on 2 cores)
    python benchmarks/gnn_precision.py --images 2 --backbones color
    python benchmarks/gnn_precision.py --perturb 1e-6     # the noise floor: fp32 against slightly moved features
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from conftest import shared_data_dir  # noqa: E402
from settle import cpu_name, held_out  # noqa: E402

from deepcut import DeepCut  # noqa: E402
from deepcut.backbones.tune import hardware_line  # noqa: E402
from deepcut.clustering import arithmetic  # noqa: E402
from deepcut.clustering.fit import fit  # noqa: E402
from deepcut.graph.patch_graph import PatchGraph  # noqa: E402
from deepcut.utils.threads import ThreadPolicy, torch_threads  # noqa: E402

TRAININGS = {"stage 1 (k=2, 10 epochs)": dict(k=2, epochs=10), "k=6, 10 epochs": dict(k=6, epochs=10),
             "k=4, 100 epochs": dict(k=4, epochs=100), "cc (k<=10, 100 epochs)": dict(k=10, epochs=100, loss="cc")}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """The share of patches in the same segment of ``a`` and ``b`` ``(N,)``, segments matched one to one."""
    k = int(max(a.max(), b.max())) + 1
    table = np.zeros((k, k))
    np.add.at(table, (a, b), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / a.size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=4, help="images of each set (default: %(default)s)")
    p.add_argument("--backbones", nargs="+", default=["color", "dino_vits8"])
    p.add_argument("--perturb", type=float, default=0.0, metavar="EPS",
                   help="instead of bf16, compare fp32 with fp32 on the features times (1 + EPS * N(0, 1)), e.g. "
                        "1e-6: how far a tiny change of the input moves these trainings (the noise floor)")
    args = p.parse_args()
    paths = held_out(shared_data_dir(), args.images)
    if not paths:
        sys.exit(f"no images under {shared_data_dir()}")
    rows: dict[tuple[str, str], list[tuple[float, bool, bool, float, float]]] = {}
    turn, used = 0, set[int]()
    for name in args.backbones:
        dc = DeepCut(name, pretrained=False) if name != "color" else DeepCut("color")
        for path in paths:
            feats = dc.patch_features(path).features
            other = None if not args.perturb else \
                feats * (1 + args.perturb * torch.randn(feats.shape, generator=torch.Generator().manual_seed(1)))
            graph = PatchGraph(feats)
            fit(feats, graph=graph, epochs=0)  # the graph's Gram matrix, before either run is timed
            for case, kw in TRAININGS.items():
                threads = ThreadPolicy(None).gnn(int(feats.shape[0]), kw["epochs"])  # as DeepCut.segment chooses
                runs = {}
                turn += 1
                for precision in ("fp32", "bf16") if turn % 2 else ("bf16", "fp32"):
                    t = time.perf_counter()
                    if other is None:
                        r = fit(feats, graph=graph, precision=precision, threads=threads, **kw)
                    else:  # "bf16" stands for the perturbed features, in fp32
                        r = fit(other if precision == "bf16" else feats, precision="fp32", threads=threads, **kw)
                    runs[precision] = (r.labels, time.perf_counter() - t)
                used.add(threads)
                (exact, t32), (low, t16) = runs["fp32"], runs["bf16"]
                k = kw["k"]
                rows.setdefault((name, case), []).append(
                    (agreement(exact, low), len(np.unique(exact)) == k, len(np.unique(low)) == k, t32, t16))
    with torch_threads(1):
        one = arithmetic.measure(384)
    two = arithmetic.measure(384)
    if args.perturb:
        print(f"`--perturb {args.perturb:g}`: the bf16 columns below are fp32 on the perturbed features.")
    print(f"`python benchmarks/gnn_precision.py --images {args.images}`: {len(paths)} held-out images; "
          f"{hardware_line('cpu')} ({cpu_name()}). The GCN's two products (1225 x 384 by 64): fp32 "
          f"{one['fp32'] * 1e3:.2f} ms, bf16 {one['bf16'] * 1e3:.2f} ms on 1 thread, {two['fp32'] * 1e3:.2f} and "
          f"{two['bf16'] * 1e3:.2f} ms on {torch.get_num_threads()}; `auto` takes bf16 where it is "
          f"{arithmetic.MIN_GAIN}x faster or more. The trainings ran on {sorted(used)} thread(s).\n")
    print("| backbone | training | patches in the fp32 training's segment: mean | lowest | images >= 99 % "
          "| exactly k: fp32, bf16 | time bf16 / fp32 |")
    print("|---|---|---|---|---|---|---|")
    for (name, case), vals in rows.items():
        same, k32, k16, t32, t16 = (np.asarray(v, np.float64) for v in zip(*vals, strict=True))
        exact_k = "–" if "cc" in case else f"{int(k32.sum())}, {int(k16.sum())} of {same.size}"
        print(f"| {name} | {case} | {same.mean():.2%} | {same.min():.2%} | {int((same >= 0.99).sum())} of "
              f"{same.size} | {exact_k} | {t16.sum() / t32.sum():.2f} |")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
