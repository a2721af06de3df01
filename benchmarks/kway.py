"""NCut with ``k > 2``: does the slider deliver ``k`` segments, and at what cost? (issues #12, #19)

DeepCut's GNN trains for 10 epochs from a near-uniform softmax. For ``k = 2`` that is enough; for
larger ``k`` the relaxed solution is often still close to the uniform start when training stops, and
the argmax leaves clusters empty (k=4 on the cat: 3 segments, one covering 86 %). The fix
(:func:`deepcut.clustering.fit.fit`): when a cluster holds no patch after the epochs, a fresh GNN on
standardised inputs restarts from the graph's spectral k-way cut and trains the epochs again
(:data:`~deepcut.clustering.fit.NCUT_RESTART`; it replaced training on for up to 300-600 epochs). The loss,
the GNN, the learning rate and the first 10 epochs are the paper's, so ``k = 2`` results are unchanged
wherever both clusters were already used.

Compares "stop at the epochs" (the old behaviour) with "restart from the spectral cut" on

* real images (the example photos and the first ``--limit`` images of each data set in
  ``../shared/data``), colour backbone, two seeds: how often exactly ``k`` segments, the mean number
  of segments and epochs, the seconds per clustering, and the NCut objective (cut + orthogonality,
  lower is better) of the hard labels on the same graph;
* planted partitions: images of ``k`` Voronoi cells of random colours (plus noise): the same, plus
  the adjusted Rand index against the planted cells;
* ``k = 2``: the fraction of images whose labels are identical in both modes.

    python benchmarks/kway.py                  # about 3 minutes on 2 cores
    python benchmarks/kway.py --limit 4 --ks 3 6
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from conftest import voronoi_scene  # noqa: E402  (the test suite's planted scenes)

import deepcut.clustering.fit as clustering  # noqa: E402
from deepcut import DeepCut  # noqa: E402
from deepcut.clustering.losses import ncut_loss  # noqa: E402
from deepcut.graph.patch_graph import PatchGraph  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SETS = ("weizmann_horse", "grabcut", "coco128_seg")
EXAMPLES = ("cat.jpg", "astronaut.jpg", "coffee.jpg", "rocket.jpg")


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings of the same items."""
    a, b = np.unique(a.ravel(), return_inverse=True)[1], np.unique(b.ravel(), return_inverse=True)[1]
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    pairs = lambda m: float((m * (m - 1) / 2).sum())  # noqa: E731
    both, rows, cols, total = pairs(table), pairs(table.sum(1)), pairs(table.sum(0)), pairs(np.array([a.size]))
    expected = rows * cols / total
    return (both - expected) / ((rows + cols) / 2 - expected)


def objective(adj: torch.Tensor, labels: np.ndarray, k: int) -> float:
    """NCut's training objective (cut + orthogonality) of hard ``labels`` on ``adj``: lower is better."""
    cut, ortho = ncut_loss(adj, torch.nn.functional.one_hot(torch.as_tensor(labels), k).float())
    return float(cut + ortho)


def run(
    features: torch.Tensor, k: int, seed: int, extend: bool
) -> tuple[clustering.ClusterResult, float, torch.Tensor]:
    """One NCut clustering, old (``extend=False``: stop at 10 epochs) or new; ``(result, seconds, graph)``."""
    adj = PatchGraph(features).cluster_affinity("ncut", 3.0)
    saved = clustering.NCUT_RESTART
    clustering.NCUT_RESTART = extend
    try:
        t0 = time.perf_counter()
        result = clustering.fit(features, k=k, epochs=10, seed=seed, adj=adj)
        return result, time.perf_counter() - t0, adj
    finally:
        clustering.NCUT_RESTART = saved


def row(name: str, k: int, cases: list, truths: list | None) -> list[str]:
    """Two Markdown rows (old, new) for ``cases`` = ``[(features, seed), ...]``."""
    out, labels = [], {}
    for extend in (False, True):
        exact, segs, epochs, secs, objs, aris, got = [], [], [], [], [], [], []
        for i, (feats, seed) in enumerate(cases):
            r, s, adj = run(feats, k, seed, extend)
            used = len(np.unique(r.labels))
            exact.append(used == k), segs.append(used), epochs.append(len(r.losses)), secs.append(s)
            objs.append(objective(adj, r.labels, k)), got.append(r.labels)
            if truths is not None:
                aris.append(adjusted_rand(r.labels.reshape(truths[i].shape), truths[i]))
        labels[extend] = got
        ari = f"{np.mean(aris):.3f}" if aris else "–"
        out.append(f"| {name} | {k} | {'restart from the spectral cut' if extend else 'stop at 10 (before)'} | "
                   f"{100 * np.mean(exact):.0f} % | {np.mean(segs):.2f} | {np.mean(epochs):.1f} | {max(epochs)} | "
                   f"{np.median(secs):.3f} | {np.mean(objs):+.3f} | {ari} |")
    if k == 2:
        same = np.mean([np.array_equal(a, b) for a, b in zip(labels[False], labels[True], strict=False)])
        out.append(f"| {name} | 2 | labels identical before/after | {100 * same:.0f} % of clusterings | | | | | | |")
    return out


def real_images(model: DeepCut, limit: int) -> list[torch.Tensor]:
    paths = [REPO / "assets" / name for name in EXAMPLES]
    for name in SETS:
        paths += sorted((DATA / name / "images").glob("*"))[:limit]
    feats = [model.features(p) for p in paths if p.is_file()]
    return [f.reshape(-1, f.shape[-1]) for f in feats]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--limit", type=int, default=8, help="images per data set (default 8)")
    p.add_argument("--ks", type=int, nargs="+", default=[2, 3, 4, 6, 8])
    p.add_argument("--scenes", type=int, default=4, help="planted scenes per k (default 4)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "kway.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = DeepCut("color")
    reals = real_images(model, args.limit)
    lines = ["| graphs | k | NCut training | exactly k | segments | epochs (mean) | epochs (max) | s (median) | "
             "objective | ARI |", "|---|---|---|---|---|---|---|---|---|---|"]
    for k in args.ks:
        lines += row(f"{len(reals)} real images x 2 seeds", k, [(f, s) for f in reals for s in (0, 1)], None)
        scenes = [voronoi_scene(k, s) for s in range(args.scenes)]
        feats = [model.features(img, resolution=192) for img, _ in scenes]
        lines += row(f"{args.scenes} planted {k}-cell scenes", k,
                     [(f.reshape(-1, f.shape[-1]), s) for s, f in enumerate(feats)], [c for _, c in scenes])
        print("\n".join(lines[-(3 if k == 2 else 4):]), flush=True)
    text = ("Colour backbone, 280 px (scenes: 192 px), alpha irrelevant (NCut), 10 epochs asked, one thread.\n"
            f"Command: `python benchmarks/kway.py --limit {args.limit} --ks {' '.join(map(str, args.ks))}`\n\n"
            + "\n".join(lines) + "\n")
    args.out.write_text(text)
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
