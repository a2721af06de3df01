"""Edge-aware refinement of DeepCut's masks (:mod:`deepcut.segmentation.refine`): quality and cost.

On real images with ground-truth masks (``../shared/data``), per data set:

(a) a perfect patch mask (each 8-px patch of the 280-px working image takes the majority of the true
    mask) brought to the image's size by each method: nearest neighbour, DeepCut's bilinear
    upsampling ("none"), the guided filter and the dense CRF: mean IoU and boundary F;
(b) DeepCut's own foreground (colour backbone; ViT-S/8 with random weights with ``--vit``) with each
    refinement: one clustering per image, the same labels refined by each method (as
    :func:`deepcut.stages.run.to_segmentation` does);
(c) the refinement's time against the ViT-S/8 forward pass (random weights, same compute as DINO) of
    the same image at the same resolution, median over images.

Prints Markdown tables and writes them to ``--out``.

    python benchmarks/refine.py --limit 20                      # quick
    python benchmarks/refine.py --limit 0 --vit --sweep         # everything (the docs' table)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepcut.config import SegmentConfig  # noqa: E402
from deepcut.evaluation.datasets import load_dataset, read_mask  # noqa: E402
from deepcut.evaluation.metrics import binary_target, boundary_f, iou  # noqa: E402
from deepcut.features.image import grid_size, load_image  # noqa: E402
from deepcut.graph.patch_graph import graph_of  # noqa: E402
from deepcut.segmentation.refine import METHODS, refine_segmentation, segment_maps  # noqa: E402
from deepcut.segmentation.upsample import resize_nearest  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SETS = ("weizmann_horse", "grabcut")
PATCH = 8
#: (a)'s methods: nearest neighbour first, then the pipeline's.
UPSAMPLERS = ("nearest",) + METHODS
#: --sweep: the parameters tried on perfect patch masks (the others keep their defaults).
SWEEP = {"guided": [dict(radius=r, eps=e) for r in (0.5, 0.75, 1.0, 1.5) for e in (1e-4, 3e-4, 1e-3, 3e-3)],
         "crf": [dict(sxy=s, srgb=c, compat=w) for s in (0.5, 1.0) for c in (10.0, 20.0, 30.0) for w in (5.0, 10.0)]
         + [dict(side=v) for v in (0, 240, 480)]}


def ground_truth(set_name: str, path) -> tuple[np.ndarray, np.ndarray]:
    """``(foreground, valid)`` ``(H, W)`` bool; COCO's instance maps give the union of instances."""
    mask = read_mask(path)
    if set_name.startswith("coco"):
        return mask > 0, np.ones(mask.shape, bool)
    return binary_target(mask)


def perfect_patch_mask(fg: np.ndarray, valid: np.ndarray, resolution: int) -> np.ndarray:
    """``(h, w)`` int: each patch of DeepCut's working image takes the majority of the true mask
    (unknown pixels count one half)."""
    from PIL import Image

    grid = grid_size(*fg.shape, resolution, PATCH, PATCH)
    frac = np.where(valid, fg.astype(np.float32), 0.5)
    work = np.asarray(Image.fromarray(frac).resize((grid[1] * PATCH, grid[0] * PATCH), Image.BOX))
    return (work.reshape(grid[0], PATCH, grid[1], PATCH).mean((1, 3)) > 0.5).astype(np.int64)


def upsample(image: np.ndarray, patch: np.ndarray, method: str, **params) -> np.ndarray:
    """The foreground ``(H, W)`` bool of a patch mask by ``method`` (``nearest`` or a refinement)."""
    size = image.shape[:2]
    if method == "nearest":
        return resize_nearest(patch.astype(np.uint8), size) > 0
    if method == "none":
        work = (patch.shape[0] * PATCH, patch.shape[1] * PATCH)
        return segment_maps(image, patch, work, [1], "none")[1]
    return refine_segmentation(image, patch, [1], method, **params)[1]


def samples(args, set_name: str):
    """``(image, foreground, valid)`` of the first ``--limit`` images of a set."""
    ds = load_dataset(Path(args.data) / set_name, "single", limit=args.limit or None)
    for s in ds.samples:
        fg, valid = ground_truth(set_name, s.mask)
        yield load_image(s.image), fg, valid


#: (IoU, boundary F, ms) of each image, per method.
Scores = dict[str, np.ndarray]
#: An image counts as worse when its IoU drops by more than this.
WORSE = 0.005
#: The goals: IoU gain over nearest on perfect patch masks, refinement time / ViT-S/8 forward time.
GOAL_GAIN, GOAL_TIME = 0.03, 0.3
#: Methods this close in mean IoU on perfect masks count as equal (the faster one is chosen).
TIE = 0.005


def perfect_masks(args, set_name: str) -> Scores:
    """(a): ``{method: (n, 3)}`` IoU, boundary F and ms of each image's perfect patch mask."""
    rows: dict[str, list] = {m: [] for m in UPSAMPLERS}
    for image, fg, valid in samples(args, set_name):
        patch = perfect_patch_mask(fg, valid, args.resolution)
        for m in UPSAMPLERS:
            t = time.perf_counter()
            pred = upsample(image, patch, m)
            ms = 1000 * (time.perf_counter() - t)
            rows[m].append((iou(pred, fg, valid), boundary_f(pred, fg, valid), ms))
    return {m: np.asarray(r) for m, r in rows.items()}


def sweep(args, set_name: str) -> dict[str, float]:
    """Mean IoU of perfect patch masks for each parameter set of :data:`SWEEP`."""
    out: dict[str, list[float]] = {}
    for image, fg, valid in samples(args, set_name):
        patch = perfect_patch_mask(fg, valid, args.resolution)
        for method, grid in SWEEP.items():
            for params in grid:
                key = f"{method} " + ", ".join(f"{k}={v:g}" for k, v in params.items())
                out.setdefault(key, []).append(iou(upsample(image, patch, method, **params), fg, valid))
    return {k: float(np.mean(v)) for k, v in out.items()}


def deepcut_outputs(args, set_name: str, model) -> Scores:
    """(b): ``{method: (n, 3)}`` IoU, boundary F and ms of ``to_segmentation`` of DeepCut's foreground."""
    from deepcut.segmentation.finish import to_segmentation
    from deepcut.stages.run import run_stages

    cfg = SegmentConfig(k=2, resolution=args.resolution)
    rows: dict[str, list] = {m: [] for m in METHODS}
    for image, fg, valid in samples(args, set_name):
        feats = model.store.get(image, cfg)
        out = run_stages(graph_of(feats), feats.grid, cfg)
        for m in METHODS:
            t = time.perf_counter()
            seg = to_segmentation(out, feats, cfg.replace(refine=m), t)
            ms = 1000 * (time.perf_counter() - t)
            rows[m].append((iou(seg.foreground, fg, valid), boundary_f(seg.foreground, fg, valid), ms))
        model.clear_cache()
    return {m: np.asarray(r) for m, r in rows.items()}


def timing(args, vit) -> dict[str, float]:
    """(c): median seconds of the ViT-S/8 forward pass and of each refinement, on the same images."""
    cfg = SegmentConfig(resolution=args.resolution)
    times: dict[str, list[float]] = {"forward": [], **{m: [] for m in METHODS if m != "none"}}
    images = [image for s in args.sets for image, _, _ in list(samples(args, s))[: args.timing]]
    for image in images:
        for _ in range(args.repeats):
            vit.clear_cache()
            t = time.perf_counter()
            vit.store.get(image, cfg, gram=False)
            times["forward"].append(time.perf_counter() - t)
        grid = grid_size(*image.shape[:2], args.resolution, PATCH, PATCH)
        patch = np.zeros(grid, np.int64)
        patch[grid[0] // 4: 3 * grid[0] // 4, grid[1] // 4: 3 * grid[1] // 4] = 1
        for m in times:
            if m == "forward":
                continue
            for _ in range(args.repeats):
                t = time.perf_counter()
                refine_segmentation(image, patch, [1], m)
                times[m].append(time.perf_counter() - t)
    return {m: statistics.median(v) for m, v in times.items()}


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def quality_table(results: dict[str, Scores], base: str) -> str:
    """One row per method: per set the mean IoU (gain over ``base``), the images whose IoU is more
    than :data:`WORSE` below ``base``'s, the mean boundary F; then the mean ms."""
    methods = list(next(iter(results.values())))
    header = ["method"] + [f"{s} {c}" for s in results for c in ("IoU", "worse", "boundary F")] + ["ms / image"]
    rows = []
    for m in methods:
        row = [f"`{m}`"]
        for res in results.values():
            score, ref = res[m].mean(0), res[base].mean(0)
            worse = int(np.count_nonzero(res[m][:, 0] < res[base][:, 0] - WORSE))
            row += [f"{score[0]:.3f}" + ("" if m == base else f" ({score[0] - ref[0]:+.3f})"),
                    "" if m == base else f"{worse}/{len(res[m])}", f"{score[1]:.3f}"]
        row.append(f"{np.mean([res[m][:, 2].mean() for res in results.values()]):.0f}")
        rows.append(row)
    return table(header, rows)


def make_models(vit_too: bool):
    from deepcut import DeepCut

    models = {"colour": DeepCut("color")}
    if vit_too:
        models["ViT-S/8 (random weights)"] = DeepCut("dino_vits8", pretrained=False)
    return models


def recommend(perfect: dict[str, Scores], outputs: list[dict[str, Scores]], times: dict[str, float] | None) -> str:
    """The app's method: among those that gain at least :data:`GOAL_GAIN` IoU over nearest on perfect
    masks (mean over sets), are not worse than "none" on DeepCut's output (mean, every set and backbone)
    and cost at most :data:`GOAL_TIME` of the forward pass, the fastest of those within :data:`TIE` IoU
    of the best on perfect masks."""
    lines, ok = [], {}
    for m in METHODS[1:]:
        gain = float(np.mean([res[m][:, 0].mean() - res["nearest"][:, 0].mean() for res in perfect.values()]))
        drop = min(res[m][:, 0].mean() - res["none"][:, 0].mean() for out in outputs for res in out.values())
        ratio = times[m] / times["forward"] if times else float("nan")
        passed = gain >= GOAL_GAIN and drop >= 0 and not ratio > GOAL_TIME
        lines.append(f"- `{m}`: {gain:+.3f} IoU over nearest on perfect masks, {drop:+.4f} on DeepCut's output "
                     f"(worst set), " + (f"{ratio:.2f}x the forward pass" if times else "time not measured")
                     + f": {'meets' if passed else 'misses'} the goals")
        if passed:
            ok[m] = float(np.mean([res[m][:, 0].mean() for res in perfect.values()]))
    ms = {m: float(np.mean([res[m][:, 2].mean() for res in perfect.values()])) for m in ok}
    best = min((m for m in ok if ok[m] >= max(ok.values()) - TIE), key=ms.get) if ok else "none"
    return "\n".join(["\n## Choice\n", f"Goals: >= {GOAL_GAIN} IoU over nearest, never worse on DeepCut's output, "
                      f"<= {GOAL_TIME}x the ViT-S/8 forward pass. Of the methods that meet them, the fastest within "
                      f"{TIE} IoU of the best on perfect masks.\n", *lines, f"\n**App default: `{best}`**"])


def report(args) -> str:
    """Every part's tables as one Markdown text."""
    parts = [f"Command: `python benchmarks/refine.py {' '.join(sys.argv[1:])}`  \n"
             f"Sets: {', '.join(args.sets)}; first {args.limit or 'all'} images each; working resolution "
             f"{args.resolution} px, {PATCH}-px patches. IoU gains in brackets are over the first row; *worse*: "
             f"images whose IoU is more than {WORSE} below the first row's.\n",
             "## (a) Perfect patch masks brought to the image's size\n"]
    perfect = {s: perfect_masks(args, s) for s in args.sets}
    parts.append(quality_table(perfect, "nearest"))
    if args.sweep:
        res = {s: sweep(args, s) for s in args.sets}
        keys = list(next(iter(res.values())))
        rows = [[k] + [f"{res[s][k]:.4f}" for s in args.sets] for k in keys]
        parts += ["\n### Parameters (IoU of perfect patch masks)\n", table(["parameters"] + list(args.sets), rows)]
    models, outputs, t = make_models(args.vit), [], None
    for name, model in models.items():
        outputs.append({s: deepcut_outputs(args, s, model) for s in args.sets})
        parts += [f"\n## (b) DeepCut's foreground ({name} backbone, k=2, one stage)\n",
                  quality_table(outputs[-1], "none")]
    if args.timing:
        vit = models.get("ViT-S/8 (random weights)") or make_models(True)["ViT-S/8 (random weights)"]
        t = timing(args, vit)
        rows = [["ViT-S/8 forward", f"{1000 * t['forward']:.0f}", "1.00"]]
        rows += [[f"`{m}` refinement", f"{1000 * t[m]:.0f}", f"{t[m] / t['forward']:.2f}"] for m in t if m != "forward"]
        parts += [f"\n## (c) Time per image (median of {args.timing} images per set x {args.repeats})\n",
                  table(["step", "ms", "x forward"], rows)]
    parts.append(recommend(perfect, outputs, t))
    return "\n".join(parts) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA), help="folder with the data sets (default: %(default)s)")
    p.add_argument("--sets", nargs="+", default=list(SETS), help="data sets (default: %(default)s; coco128_seg: "
                                                                   "union of the instances)")
    p.add_argument("--limit", type=int, default=20, help="images per set, 0 = all (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=280)
    p.add_argument("--vit", action="store_true", help="also (b) with ViT-S/8, random weights (slow on a CPU)")
    p.add_argument("--sweep", action="store_true", help="also the parameter sweep of guided and crf")
    p.add_argument("--timing", type=int, default=5, help="images per set timed in (c), 0 = skip (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch and OpenCV threads (0: their default)")
    p.add_argument("--out", default=str(REPO / "docs" / "results" / "refine.md"))
    args = p.parse_args()
    if args.threads:
        import cv2
        import torch

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    text = "# Edge-aware refinement\n\n" + report(args)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
