"""Time and peak memory of DeepCut at high resolution: dense ``N x N`` graph vs sparse k-NN graph.

    python benchmarks/highres.py                                  # 280, 448, 672, 1024 px, dense and sparse
    python benchmarks/highres.py --sizes 280 448 --graphs sparse  # a subset
    python benchmarks/highres.py --sizes 1024 --graphs sparse --no-write

Every (resolution, graph) setting runs in a fresh subprocess, so its peak resident memory (``VmHWM``)
is its own: DINO ViT-S/8 with random weights (``pretrained=False``; time and memory do not depend on
the weights), the ``key`` facet of layer 11, then stage 1 with ``k=2`` for NCut and for CC on the
same features. "ViT" is the feature extraction (resize + forward to layer 11), "NCut" / "CC" the
graph construction plus GNN training (10 epochs) of each loss. The parent watches each child's
resident memory and kills it above ``--cap-gb`` (recorded as such); a dense graph whose estimate is
over the cap is skipped without starting. The table is printed and written to
``docs/results/highres.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Dense graph: about this many live ``N x N`` float32 matrices at the peak (Gram, affinity, the
#: GCN's positive part and its normalisation).
DENSE_MATRICES = 5


def benchmark_image():
    """A real photo: the first example in assets/, else scikit-image's astronaut (public domain)."""
    from deepcut.utils.image import load_image

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
    from deepcut.graph import PatchGraph
    from deepcut.pipeline import run_stages

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


def patches(size: int) -> int:
    """Patches of the benchmark image at ``size`` px (ViT-S/8)."""
    from deepcut.utils.image import grid_size

    img = benchmark_image()
    h, w = grid_size(img.shape[0], img.shape[1], size, 8, 8)
    return h * w


def run_child(size: int, graph: str, threads: int | None, cap_gb: float) -> dict:
    """Run :func:`worker` in a subprocess, killing it if its resident memory passes ``cap_gb``."""
    cmd = [sys.executable, __file__, "--worker", "--sizes", str(size), "--graphs", graph]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[280, 448, 672, 1024])
    ap.add_argument("--graphs", nargs="+", default=["dense", "sparse"], choices=["dense", "sparse"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's)")
    ap.add_argument("--cap-gb", type=float, default=12.0, help="kill / skip a run above this resident memory")
    ap.add_argument("--no-write", action="store_true", help="print only, do not write docs/results/highres.md")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.sizes[0], args.graphs[0], args.threads)))
        return
    load = os.getloadavg()[1]
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
    if not args.no_write:
        write(lines, args, load)


def write(lines: list[str], args: argparse.Namespace, load_start: float) -> None:
    cmd = "python benchmarks/highres.py " + " ".join(sys.argv[1:])
    import torch

    text = [
        "# High resolution: time and peak memory, dense vs sparse graph",
        "",
        f"`{cmd.strip()}` — {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; DINO ViT-S/8 with random weights, "
        "`key` facet of layer 11, stage 1, k = 2, 10 epochs; one fresh process per row (peak RSS = its `VmHWM`).",
        "",
        *lines,
        "",
        "The ViT runs with SDPA attention (no `(heads, T, T)` matrix). `dense` builds the `N x N` graph at any "
        "size; `sparse` is the k-NN graph (k = 64, symmetrised) DeepCut uses above 4096 patches, where NCut is cut "
        "on the k-NN graph and CC's loss is exact over all pairs. Times on a shared machine are indicative only: "
        f"5-minute load average {load_start:.1f} at the start and {os.getloadavg()[1]:.1f} at the end "
        f"on {os.cpu_count()} cores (other jobs inflate times, not memory).",
        "",
    ]
    out = ROOT / "docs" / "results" / "highres.md"
    out.write_text("\n".join(text))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
