"""DeepCut at high resolution: time, peak memory and quality of the dense, compact and sparse graphs.

    python benchmarks/highres.py                                  # both tables, written to docs/results/highres.md
    python benchmarks/highres.py --tables speed --sizes 280 448 --graphs compact sparse   # a subset
    python benchmarks/highres.py --tables quality --images 4 --no-write

Every (resolution, graph) setting runs in a fresh subprocess, so its peak resident memory (``VmHWM``)
is its own. The parent watches each child's resident memory and kills it above ``--cap-gb``
(recorded as such); a dense graph whose estimate is over the cap is skipped without starting.

* ``speed``: DINO ViT-S/8 with random weights (``pretrained=False``; time and memory do not depend on
  the weights), the ``key`` facet of layer 11, then stage 1 with ``k=2`` for NCut and for CC on the
  same features. "ViT" is the feature extraction (resize + forward to layer 11), "NCut" / "CC" the
  graph construction plus GNN training (10 epochs) of each loss.
* ``quality``: the colour backbone (no weights needed) on held-out single-object images with
  ground truth (``--images`` evenly spaced images of each of ``grabcut`` and ``weizmann_horse`` in
  ``--data``), the default settings (NCut, ``k=2``, stage 1) at 280 px (dense graph) and at 1024 px
  with each graph: mean foreground IoU against the masks, the mean IoU of each 1024-px mask with the
  dense graph's 1024-px mask (agreement; the dense run comes first), seconds per image (graph + GNN)
  and the process's peak memory.

The tables are printed and written to ``docs/results/highres.md`` (a run of one table keeps the other).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GRAPHS = ("dense", "compact", "sparse")
#: The held-out single-object sets (images + ground-truth masks) of ``--data``.
QUALITY_SETS = ("grabcut", "weizmann_horse")

#: Dense graph: about this many live ``N x N`` float32 matrices at the peak (Gram, affinity, the
#: GCN's positive part and its normalisation).
DENSE_MATRICES = 5
#: The resolutions of the quality table: the default, and the high resolution.
QUALITY_SIZES = (280, 1024)


def benchmark_image():
    """A real photo: the first example in assets/, else scikit-image's astronaut (public domain)."""
    from deepcut.features.image import load_image

    photos = sorted(p for p in (ROOT / "assets").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if photos:
        return load_image(photos[0])
    from skimage import data

    return data.astronaut()


def peak_rss_gb() -> float:
    """This process's peak resident memory (``VmHWM``) in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 ** 2
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def worker(size: int, graph: str, threads: int | None) -> dict:
    """One setting, in this (fresh) process: ``{"vit_s", "ncut_s", "cc_s", "peak_gb", ...}``."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from deepcut import DeepCut, SegmentConfig, fit
    from deepcut.graph.patch_graph import PatchGraph
    from deepcut.stages.run import run_stages

    model = DeepCut("dino_vits8", pretrained=False)
    warm = torch.randn(64, 384)
    for loss in ("ncut", "cc"):  # warm-up: the first training step of a process pays one-off costs
        fit(warm, k=2, loss=loss, epochs=2, graph=PatchGraph(warm, mode=graph))
    img = benchmark_image()
    cfg = SegmentConfig(resolution=size, k=2, stages=1)
    t = time.perf_counter()
    pf = model.store.get(img, cfg, gram=False)  # each graph is built from the features below
    out = {"vit_s": time.perf_counter() - t, "grid": list(pf.grid), "n": int(pf.features.shape[0]),
           "vit_peak_gb": peak_rss_gb(), "attention": model.backbone.attention}
    for loss in ("ncut", "cc"):
        g = PatchGraph(pf.features, None, mode=graph)
        t = time.perf_counter()
        stages = run_stages(g, pf.grid, cfg.replace(loss=loss))
        out[f"{loss}_s"] = time.perf_counter() - t
        out[f"{loss}_segments"] = int(len(set(stages.labels.tolist())))
        out["sparse"] = g.is_sparse
    out["peak_gb"] = peak_rss_gb()
    return out


def quality_samples(data: Path, per_set: int) -> list:
    """``per_set`` evenly spaced samples of each of :data:`QUALITY_SETS` (the same ones on every run)."""
    from deepcut.evaluation.datasets import load_dataset

    out = []
    for name in QUALITY_SETS:
        samples = load_dataset(data / name, "single").samples
        step = max(1, len(samples) // per_set)
        out += samples[step // 2::step][:per_set]
    return out


def quality_worker(size: int, graph: str, data: Path, per_set: int, masks: Path) -> dict:
    """One quality setting in this (fresh) process: mean IoU, seconds per image, peak memory; the
    foreground masks are saved to ``masks`` (npz) for the agreement with the dense graph."""
    import numpy as np
    import torch

    from deepcut import DeepCut, SegmentConfig, fit
    from deepcut.evaluation.runner import prediction_from_segmentation, score_single
    from deepcut.features.image import load_image
    from deepcut.graph.patch_graph import PatchGraph
    from deepcut.segmentation.finish import to_segmentation
    from deepcut.stages.run import run_stages

    model = DeepCut("color")
    warm = torch.randn(64, 384)
    fit(warm, k=2, epochs=2, graph=PatchGraph(warm, mode=graph))  # the first training step pays one-off costs
    cfg = SegmentConfig(resolution=size)
    ious, seconds, fgs, nodes = [], [], {}, []
    for sample in quality_samples(data, per_set):
        pf = model.store.get(load_image(sample.image), cfg, gram=False)
        t = time.perf_counter()
        out = run_stages(PatchGraph(pf.features, None, mode=graph), pf.grid, cfg)
        seconds.append(time.perf_counter() - t)
        seg = to_segmentation(out, pf, cfg, t)
        ious.append(score_single(prediction_from_segmentation(seg), sample)[0]["iou"])
        fgs[sample.key] = seg.foreground
        nodes.append(int(pf.features.shape[0]))
        model.clear_cache()
    np.savez_compressed(masks, **fgs)
    return {"iou": float(np.mean(ious)), "ious": [float(v) for v in ious], "s_per_image": float(np.mean(seconds)),
            "images": len(ious), "nodes": [min(nodes), max(nodes)], "peak_gb": peak_rss_gb()}


def patches(size: int) -> int:
    """Patches of the benchmark image at ``size`` px (ViT-S/8)."""
    from deepcut.features.image import grid_size

    img = benchmark_image()
    h, w = grid_size(img.shape[0], img.shape[1], size, 8, 8)
    return h * w


def run_child(size: int, graph: str, threads: int | None, cap_gb: float, extra: list[str] | None = None) -> dict:
    """Run :func:`worker` (or, with ``extra``, :func:`quality_worker`) in a subprocess, killing it if its
    resident memory passes ``cap_gb``."""
    cmd = [sys.executable, __file__, "--worker", "--sizes", str(size), "--graphs", graph, *(extra or [])]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    status = Path(f"/proc/{proc.pid}/status")
    rss = 0.0
    t0 = time.perf_counter()
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = max(rss, int(line.split()[1]) / 1024 ** 2)
        except OSError:
            pass
        if rss > cap_gb:
            proc.kill()
            proc.wait()
            return {"note": f"killed: resident memory passed {cap_gb:.0f} GB"}
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        tail = (stderr.strip().splitlines() or ["?"])[-1]
        return {"note": f"failed (exit {proc.returncode}): {tail[:120]}"}
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    return result


def row(size: int, graph: str, n: int, r: dict) -> str:
    if "vit_s" not in r:
        return f"| {size} | {n} | {graph} | – | – | – | – | {r['note']} |"
    grid = "x".join(str(v) for v in r["grid"])
    return (f"| {size} | {grid} = {r['n']} | {graph} | {r['vit_s']:.1f} s | {r['ncut_s']:.1f} s | {r['cc_s']:.1f} s | "
            f"{r['peak_gb']:.2f} GB | ViT alone {r['vit_peak_gb']:.2f} GB |")


def speed_table(args: argparse.Namespace) -> list[str]:
    lines = ["| px | grid = N | graph | ViT | NCut (graph + GNN) | CC (graph + GNN) | peak RSS | note |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for size in args.sizes:
        n = patches(size)
        for graph in args.graphs:
            need = DENSE_MATRICES * n * n * 4 / 1024 ** 3
            if graph == "dense" and need > args.cap_gb:
                r = {"note": f"skipped: needs about {need:.0f} GB"}
            else:
                r = run_child(size, graph, args.threads, args.cap_gb)
            lines.append(row(size, graph, n, r))
            print(lines[-1], flush=True)
    return lines


def quality_table(args: argparse.Namespace) -> list[str]:
    import numpy as np

    lines = ["| px | graph | patches | mean IoU | vs 280 px | mask IoU with the dense graph | graph + GNN per image | "
             "peak RSS |", "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    settings = [(QUALITY_SIZES[0], "dense")] + [(QUALITY_SIZES[1], g) for g in sorted(args.graphs, key=GRAPHS.index)]
    base, dense_masks = None, None
    with tempfile.TemporaryDirectory() as tmp:
        for size, graph in settings:
            masks = Path(tmp) / f"{size}_{graph}.npz"
            extra = ["--quality-worker", "--data", str(args.data), "--images", str(args.images), "--masks", str(masks)]
            r = run_child(size, graph, args.threads, args.cap_gb, extra)
            if "iou" not in r:
                lines.append(f"| {size} | {graph} | – | – | – | – | – | {r['note']} |")
                print(lines[-1], flush=True)
                continue
            agree = "–"
            if size == QUALITY_SIZES[1] and graph == "dense":
                dense_masks = dict(np.load(masks))
            elif size == QUALITY_SIZES[1] and dense_masks is not None:
                mine = dict(np.load(masks))
                agree = f"{np.mean([mask_iou(dense_masks[k], mine[k]) for k in mine]):.4f}"
            base = r["iou"] if base is None else base
            delta = "–" if size == QUALITY_SIZES[0] else f"{r['iou'] - base:+.4f}"
            lines.append(f"| {size} | {graph} | {r['nodes'][0]}–{r['nodes'][1]} | {r['iou']:.4f} | {delta} | {agree} | "
                         f"{r['s_per_image']:.1f} s | {r['peak_gb']:.2f} GB |")
            print(lines[-1], flush=True)
    return lines


def mask_iou(a, b) -> float:
    """IoU of two boolean masks (1 when both are empty)."""
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", nargs="+", default=["speed", "quality"], choices=["speed", "quality"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[280, 448, 672, 1024], help="speed: the resolutions")
    ap.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=GRAPHS)
    ap.add_argument("--images", type=int, default=12, help="quality: images of each held-out set")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="quality: the evaluation data")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's)")
    ap.add_argument("--cap-gb", type=float, default=12.0, help="kill / skip a run above this resident memory")
    ap.add_argument("--no-write", action="store_true", help="print only, do not write docs/results/highres.md")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--quality-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--masks", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if args.quality_worker:
            print(json.dumps(quality_worker(args.sizes[0], args.graphs[0], args.data, args.images, args.masks)))
        else:
            print(json.dumps(worker(args.sizes[0], args.graphs[0], args.threads)))
        return
    tables = {}
    for name in args.tables:
        load = os.getloadavg()[1]
        tables[name] = (speed_table if name == "speed" else quality_table)(args), load, os.getloadavg()[1]
    if not args.no_write:
        write(tables, args)


def header(name: str, args: argparse.Namespace) -> str:
    import torch

    cmd = "python benchmarks/highres.py " + " ".join(sys.argv[1:])
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               f"{args.threads or torch.get_num_threads()} threads")
    if name == "speed":
        return (f"`{cmd.strip()}` — {machine}; DINO ViT-S/8 with random weights, `key` facet of layer 11, stage 1, "
                "k = 2, 10 epochs; one fresh process per row (peak RSS = its `VmHWM`).")
    return (f"`{cmd.strip()}` — {machine}; colour backbone, NCut, k = 2, stage 1 (the defaults), {args.images} "
            f"evenly spaced images of each of {' and '.join(QUALITY_SETS)} (`../shared/data`); one fresh process "
            "per row (peak RSS = its `VmHWM`).")


NOTES = {
    "speed": "The ViT runs with SDPA attention (no `(heads, T, T)` matrix). `dense` builds the float32 `N x N` "
             "graph at any size (DeepCut's graph up to 4096 patches); `compact` is the graph DeepCut uses from 4097 "
             "to 20480 patches: every pair, NCut's matrix in float16 (2 bytes an entry), its products in float32 "
             "blocks, CC without any matrix; `sparse` is the k-NN graph (k = 64, symmetrised) DeepCut uses above "
             "20480 patches, where NCut is cut on the k-NN graph and CC's loss is exact over all pairs.",
    "quality": "IoU of the foreground against the ground truth (GrabCut's unlabelled band excluded), the mean over "
               "the images; \"vs 280 px\" is the difference with the first row. The mask IoU with the dense graph "
               "compares each 1024-px foreground with the dense graph's 1024-px foreground on the same image.",
}


def write(tables: dict, args: argparse.Namespace) -> None:
    out = ROOT / "docs" / "results" / "highres.md"
    old = out.read_text() if out.exists() else ""
    sections = {}
    for name in ("speed", "quality"):
        m = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->\n", old, re.S)
        sections[name] = m.group(1) if m else ""
    for name, (lines, load_start, load_end) in tables.items():
        sections[name] = "\n".join([
            header(name, args), "", *lines, "",
            f"{NOTES[name]} Times on a shared machine are indicative only: 5-minute load average {load_start:.1f} "
            f"at the start and {load_end:.1f} at the end on {os.cpu_count()} cores (other jobs inflate times, not "
            "memory).",
            ""])
    text = ["# High resolution: dense, compact and sparse graphs", "",
            "## Time and peak memory", "", "<!-- speed -->", sections["speed"] + "<!-- /speed -->", "",
            "## Quality at 1024 px against 280 px", "", "<!-- quality -->",
            sections["quality"] + "<!-- /quality -->", ""]
    out.write_text("\n".join(text))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
