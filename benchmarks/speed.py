"""Speed and memory of DeepCut on the CPU, as ratios to one ViT forward pass measured in the same run.

    python benchmarks/speed.py            # full table (a few minutes on 2 cores)
    python benchmarks/speed.py --quick    # fewer repeats, no per-backbone rows (the DINOv3 rows stay)

Backbones use random weights (``pretrained=False``): speed does not depend on the weights. The first
line names the CPU (model, the flags that matter, cores). The ViT rows compare its engines (fp32, the
reference; bf16 autocast with attention in blocks or PyTorch's SDPA; the blocks' weights cast to bf16;
int8 dynamic quantization) with their feature cosine to fp32, beside the plain ``transformers`` model
under bf16 autocast and cast to bf16, and name the one ``auto`` chose, measured afresh in this run (into
a temporary cache folder) with the time that took; the GNN's rows say what its GCN products ran in (``auto``
measures that afresh too, :mod:`deepcut.clustering.arithmetic`), beside float32. Every other row names the
engine its ViT ran in (the auto choice unless it says otherwise), and every ratio is to the fp32 forward pass
of the same run.
Every time is the minimum over ``--repeats`` runs; the rows measured in turns with the fp32 ViT (the
precisions, the 100 GNN epochs, ``segment()``) take the minimum over ``2 × --repeats`` rounds, since a
slow spell of this shared machine can last several rounds. The "original formulation" is the authors'
code path: the affinity turned into an edge list of every positive pair and PyG's sparse ``GCN``,
with the loss written with dense ``N x N`` degree matrices, as in the DeepCut repository.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import voronoi_scene  # noqa: E402  (the test suite's planted scenes)

from deepcut import DeepCut, cluster, fit  # noqa: E402
from deepcut.backbones import list_backbones, tune  # noqa: E402
from deepcut.backbones.arch import build_model  # noqa: E402
from deepcut.backbones.precision import cpu_has_native_bf16  # noqa: E402
from deepcut.backbones.specs import REGISTRY  # noqa: E402
from deepcut.clustering.arithmetic import resolve  # noqa: E402
from deepcut.clustering.gnn import DeepCutGNN, DropoutMasks, gcn_input_graph  # noqa: E402
from deepcut.utils.threads import ThreadPolicy, torch_threads  # noqa: E402


def best_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """:func:`best_time` of several functions measured in turns (one call of each per round), so that a
    slow spell of a shared machine hits them alike and their ratios hold."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def benchmark_image() -> np.ndarray:
    """A real photo: the first example in assets/, else scikit-image's astronaut (public domain)."""
    from deepcut.features.image import load_image

    assets = Path(__file__).resolve().parents[1] / "assets"
    photos = sorted(p for p in assets.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if photos:
        return load_image(photos[0])
    from skimage import data

    return data.astronaut()


# -- the authors' formulation (reference) ----------------------------------------------------------
class OriginalGNNpool(nn.Module):
    """DeepCut's original GNN: PyG ``GCN`` over an edge list, MLP head, loss with dense matrices."""

    def __init__(self, in_dim: int, k: int) -> None:
        super().__init__()
        from torch_geometric.nn import GCN

        self.k = k
        self.convs = GCN(in_dim, 64, 1, act="elu")
        self.mlp = nn.Sequential(nn.Linear(64, 32), nn.ELU(), nn.Dropout(0.25), nn.Linear(32, k))

    def forward(self, x, edge_index, edge_weight):
        x = F.elu(self.convs(x, edge_index, edge_weight))
        return F.softmax(self.mlp(x), dim=-1)

    def loss(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        a_pool = torch.matmul(torch.matmul(a, s).t(), s)
        num = torch.trace(a_pool)
        d = torch.diag(torch.sum(a, dim=-1))
        d_pooled = torch.matmul(torch.matmul(d, s).t(), s)
        den = torch.trace(d_pooled)
        mincut = -(num / den)
        ss = torch.matmul(s.t(), s)
        i_s = torch.eye(self.k)
        ortho = torch.norm(ss / torch.norm(ss) - i_s / torch.norm(i_s))
        return mincut + ortho


def original_ncut(features: np.ndarray, k: int = 2, epochs: int = 10) -> np.ndarray:
    w = features @ features.T
    w = w * (w > 0)
    w = w / w.max()
    edge_index = torch.from_numpy(np.array(np.nonzero(w > 0)))
    row, col = edge_index
    edge_weight = torch.from_numpy(w[row.numpy(), col.numpy()])
    x = torch.from_numpy(features)
    a = torch.from_numpy(w)
    model = OriginalGNNpool(features.shape[1], k)
    opt = torch.optim.AdamW(model.parameters(), lr=0.001)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        s = model(x, edge_index, edge_weight)
        loss = model.loss(a, s)
        loss.backward()
        opt.step()
    return s.argmax(-1).numpy()


def pyg_mincut_epochs(features: torch.Tensor, k: int, epochs: int) -> None:
    """Our dense GNN, but with the loss from ``torch_geometric.nn.dense_mincut_pool`` (for comparison)."""
    from torch_geometric.nn import dense_mincut_pool

    from deepcut.clustering.fit import affinity

    a = affinity(features, "ncut")
    ax = DeepCutGNN.propagate(features, gcn_input_graph(a))
    net = DeepCutGNN.create(features.shape[1], k, torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    masks = DropoutMasks(1, net.dropout)
    for _ in range(epochs):
        opt.zero_grad()
        _, _, cut, ortho = dense_mincut_pool(features, a, net.forward_propagated(ax, masks.next((len(ax), 32))))
        (cut + ortho).backward()
        opt.step()


def autograd_epochs(features: torch.Tensor, k: int, epochs: int) -> None:
    """The NCut training loop before the written-out epoch (#19), for the before/after rows: the same graph,
    GNN and AdamW, autograd through the network and ``ncut_loss``, softmax over the last dimension and a
    ``torch.rand`` dropout mask each epoch (what ``fit`` ran until then, restart rule aside)."""
    from deepcut.clustering.fit import affinity
    from deepcut.clustering.losses import ncut_loss, row_sums

    a = affinity(features, "ncut")
    ax = DeepCutGNN.propagate(features, gcn_input_graph(a))
    degree = row_sums(a)
    net = DeepCutGNN.create(features.shape[1], k, torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    g = torch.Generator().manual_seed(1)
    for _ in range(epochs):
        opt.zero_grad(set_to_none=True)
        h = F.elu(net.mlp1(F.elu(net.gcn(ax))))
        h = h * (torch.rand(h.shape, generator=g) >= net.dropout) / (1.0 - net.dropout)
        cut, ortho = ncut_loss(a, torch.softmax(net.mlp2(h), dim=-1), degree)
        (cut + ortho).backward()
        opt.step()


# -- the ViT's engines ---------------------------------------------------------------------------------
@contextmanager
def fresh_measurements() -> Iterator[None]:
    """Inside the block ``auto`` measures on first use of each backbone, into a temporary cache folder: the
    run shows what it chooses now, and the user's stored choices are neither read nor changed."""
    import shutil
    import tempfile

    before = {k: os.environ.get(k) for k in (tune.TUNE_ENV, tune.CACHE_ENV)}
    folder = tempfile.mkdtemp(prefix="deepcut-speed-")
    os.environ.update({tune.TUNE_ENV: "1", tune.CACHE_ENV: folder})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(folder, ignore_errors=True)


def plain_forwards(work: np.ndarray) -> tuple[dict[str, Callable[[], torch.Tensor]], torch.Tensor]:
    """The plain ``transformers`` ViT-S/8 (DeepCut's random weights, its own forward, SDPA attention) under
    bf16 autocast and cast to bf16, and its fp32 output: ``({name: forward}, fp32 last hidden state)``."""
    from deepcut.backbones.vit import IMAGENET_MEAN, IMAGENET_STD

    model = build_model(REGISTRY["dino_vits8"].arch(), seed=0)
    model.set_attn_implementation("sdpa")
    cast = build_model(REGISTRY["dino_vits8"].arch(), seed=0).to(torch.bfloat16)
    cast.set_attn_implementation("sdpa")
    x = torch.tensor(work).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @torch.inference_mode()
    def run(m: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        return m(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state[0, 1:].float()

    def autocast_bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return run(model, x)

    return {"plain bf16 autocast": autocast_bf16, "plain bf16 weights": lambda: run(cast, x.to(torch.bfloat16))}, \
        run(model, x)


def engine_rows(dc32: DeepCut, work: np.ndarray, repeats: int) -> tuple[list, dict, DeepCut]:
    """The ViT-S/8 forward at 280 px in every engine and in the plain ``transformers`` model, measured in turns
    with fp32; the auto choice measured now. Returns ``(rows, figures, the auto model)``."""
    dc_auto = DeepCut("dino_vits8", pretrained=False)  # the default: auto, measured now (fresh_measurements)
    choice = dc_auto.engine_choice
    engines = {e.name: DeepCut("dino_vits8", pretrained=False, precision=e.name)
               for e in tune.candidates("cpu", int8=True)[1:]}

    def forward(model: DeepCut) -> torch.Tensor:
        return model.backbone.facet(model.backbone.embed(work[None], model.backbone.patch_size), 11, "key")[0]

    plain, plain_ref = plain_forwards(work)
    fns: dict[str, Callable[[], object]] = {"fp32+sdpa": lambda: forward(dc32),
                                            **{n: (lambda m=m: forward(m)) for n, m in engines.items()}, **plain}
    for fn in fns.values():
        fn()
    times = best_times(fns, 2 * repeats)
    ref, t32 = forward(dc32), times["fp32+sdpa"]
    figures: dict = {"vit_forward_s": t32, "auto_engine": dc_auto.engine, "auto_tuning_s": choice.seconds,
                     "native_bf16": cpu_has_native_bf16()}
    rows = [("ViT-S/8 forward pass (280 px, random weights), fp32 (SDPA attention)", f"{t32 * 1000:.0f} ms", "1.00x")]
    for name in [*engines, *plain]:
        out = plain[name]() if name in plain else forward(engines[name])
        cos = float(F.cosine_similarity(out.float(), plain_ref if name in plain else ref, dim=-1).mean())
        what = f"transformers' own ViTModel, {name[6:]}, SDPA" if name in plain else f"DeepCut, engine {name}"
        chosen = " — auto's choice here" if name == dc_auto.engine else ""
        figures.update({f"vit_forward[{name}]_s": times[name], f"vit_cosine[{name}]": cos})
        rows.append((f"ViT-S/8 forward, {what}{chosen}; feature cosine to fp32 {cos:.5f}",
                     f"{times[name] * 1000:.0f} ms", f"{times[name] / t32:.2f}x ({t32 / times[name]:.2f}x faster)"))
    setup = sum(getattr(t, "setup_s", 0.0) for t in choice.trials)
    rows.append((f"auto's measurement on first use ({len(choice.trials)} engines, chose {dc_auto.engine}; "
                 f"set-up {setup:.1f} s of it)", f"{choice.seconds * 1000:.0f} ms",
                 f"{choice.seconds / t32:.1f}x, once per machine"))
    ov = [name for name in engines if name.startswith("openvino")]
    if ov:  # OpenVINO's one-off set-up: converting the blocks, then (a later process) reading and compiling
        from deepcut.backbones import openvino_engine

        bb = engines[ov[0]].backbone
        t = time.perf_counter()
        openvino_engine.convert(bb, 11, "key")
        convert_s = time.perf_counter() - t
        later_s = openvino_engine.OpenVinoRunner(bb, ov[0].split("-", 1)[1]).prepare(11, "key")
        figures.update(openvino_convert_s=convert_s, openvino_read_compile_s=later_s)
        rows.append((f"OpenVINO set-up, once per weights, layer and facet (a later process reads and compiles it "
                     f"in {later_s:.2f} s)", f"{convert_s * 1000:.0f} ms", "once"))
    return rows, figures, dc_auto


# -- memory --------------------------------------------------------------------------------------
# Run in a fresh process; VmHWM (peak resident memory of this process image, in KiB) is read
# from /proc because getrusage's ru_maxrss survives exec and would include the parent's peak.
MEMORY_SNIPPET = """
import re, sys, numpy as np
sys.path.insert(0, {root!r})
from deepcut import DeepCut
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
dc = DeepCut("dino_vits8", pretrained=False)
img = np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8)
before = hwm()
seg = dc.segment(img, resolution=448)
after = hwm()
print(seg.patch_labels.size, before, after)
"""


def peak_memory_448() -> tuple[int, float, float]:
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", MEMORY_SNIPPET.format(root=root)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    patches, before, after = out.stdout.split()[-3:]
    return int(patches), int(before) / 1024, int(after) / 1024


# -- DINOv3 ---------------------------------------------------------------------------------------
def dinov3_rows(image: np.ndarray, repeats: int) -> tuple[list, dict]:
    """DINOv3 ViT-S/16 at its default 448 px against DINO ViT-S/8 at 224 px (the same 28 x 28 patches) and at
    its default 280 px (35 x 35), all in the default precision and measured in turns: the forward pass to
    the last layer's keys, and a whole ``segment()`` at each backbone's default resolution."""
    runs = {"dino_vits8@224": ("dino_vits8", 224), "dino_vits8@280": ("dino_vits8", 280),
            "dinov3_vits16@448": ("dinov3_vits16", 448)}
    models = {name: DeepCut(name, pretrained=False) for name in ("dino_vits8", "dinov3_vits16")}
    embs = {key: models[name].embed(image, res)[0] for key, (name, res) in runs.items()}

    def forward(key: str):
        bb = models[runs[key][0]].backbone
        return bb.facet(bb.embed(embs[key].work[None], bb.patch_size), bb.depth - 1, "key")

    def fresh_segment(name: str):
        models[name].clear_cache()
        return models[name].segment(image)  # the backbone's default resolution

    fns = {**{key: (lambda key=key: forward(key)) for key in runs},
           **{f"segment[{name}]": (lambda name=name: fresh_segment(name)) for name in models}}
    for fn in fns.values():
        fn()
    times = best_times(fns, 2 * repeats)
    ref, prec = times["dino_vits8@280"], models["dinov3_vits16"].precision
    rows, figures = [], {"dinov3_precision": prec}
    for key, (name, res) in runs.items():
        grid = embs[key].grid
        figures[f"forward[{key}]_s"] = times[key]
        rows.append((f"{name} forward at {res} px ({grid[0]} x {grid[1]} = {grid[0] * grid[1]} patches), {prec}",
                     f"{times[key] * 1000:.0f} ms", f"{times[key] / ref:.2f}x of dino_vits8 at 280 px"))
    for name, model in models.items():
        t = times[f"segment[{name}]"]
        figures[f"segment_default[{name}]_s"] = t
        rows.append((f"segment() end to end, {name} at its default {model.backbone.default_resolution} px, {prec}",
                     f"{t * 1000:.0f} ms", f"{t / ref:.2f}x of dino_vits8 at 280 px"))
    return rows, figures


# -- main ----------------------------------------------------------------------------------------
def busy_core() -> subprocess.Popen:
    """Another process that keeps one core busy (as on a shared vCPU, a laptop, a batch job)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(1.0)
    return proc


def shared_machine(dc: DeepCut, image: np.ndarray, feats: torch.Tensor, repeats: int) -> tuple[list, dict]:
    """With one core busy: DeepCut's thread policy (ViT on the idle cores, GNN on one thread) against
    PyTorch's default (every core for everything), as ratios to the ViT forward under the policy."""
    import deepcut.clustering.fit as clustering
    from deepcut.utils.threads import available_cores

    cores = available_cores()
    emb, _ = dc.embed(image, 280)

    def vit(threads: int):
        with torch_threads(threads):
            return dc.backbone.facet(dc.backbone.embed(emb.work[None], dc.backbone.patch_size), 11, "key")

    def fresh_segment():
        dc.clear_cache()
        return dc.segment(image)

    proc = busy_core()
    try:
        chosen = dc.store.threads.vit()
        t_vit = best_time(lambda: vit(dc.store.threads.vit()), repeats)
        t_vit_default = best_time(lambda: vit(cores), repeats)
        t_gnn = best_time(lambda: fit(feats, k=2, epochs=10), repeats)
        t_seg = best_time(fresh_segment, repeats)
        clustering.GNN_THREADS = cores  # PyTorch's default, for comparison
        try:
            t_gnn_default = best_time(lambda: fit(feats, k=2, epochs=10), repeats)
        finally:
            clustering.GNN_THREADS = 1
    finally:
        proc.kill()
        proc.wait()
    figures = {"busy_vit_forward_s": t_vit, "busy_vit_threads": chosen, "busy_vit_default_threads_s": t_vit_default,
               "busy_ncut10_s": t_gnn, "busy_ncut10_default_threads_s": t_gnn_default, "busy_segment_fresh_s": t_seg}
    rows = [
        (f"one core busy: ViT forward, DeepCut's choice ({chosen} thread(s))", f"{t_vit * 1000:.0f} ms", "1.00x"),
        (f"one core busy: ViT forward, PyTorch default ({cores} threads)", f"{t_vit_default * 1000:.0f} ms",
         f"{t_vit_default / t_vit:.2f}x"),
        ("one core busy: 10 NCut epochs, 1 thread (DeepCut)", f"{t_gnn * 1000:.0f} ms", f"{t_gnn / t_vit:.3f}x"),
        (f"one core busy: 10 NCut epochs, {cores} threads (PyTorch default)", f"{t_gnn_default * 1000:.0f} ms",
         f"{t_gnn_default / t_vit:.3f}x"),
        ("one core busy: segment() end to end, stages=1, k=2", f"{t_seg * 1000:.0f} ms", f"{t_seg / t_vit:.2f}x"),
    ]
    return rows, figures


def main() -> None:
    with fresh_measurements():
        run()


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="3 repeats, skip the per-backbone rows")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args()
    repeats = 3 if args.quick else args.repeats
    torch.set_grad_enabled(True)
    image = benchmark_image()
    rows: list[tuple[str, str, str]] = []
    figures: dict[str, object] = {"threads": torch.get_num_threads()}

    dc32 = DeepCut("dino_vits8", pretrained=False, precision="fp32")  # the reference: fp32 eager
    emb, _ = dc32.embed(image, 280)

    def forward(model: DeepCut) -> torch.Tensor:
        state = model.backbone.embed(emb.work[None], model.backbone.patch_size)
        return model.backbone.facet(state, 11, "key")

    def vit_forward():
        return forward(dc32)

    vit_rows, vit_figures, dc_auto = engine_rows(dc32, emb.work, repeats)
    rows += vit_rows
    figures.update(vit_figures)
    t_vit, auto = vit_figures["vit_forward_s"], dc_auto.engine
    n = emb.grid[0] * emb.grid[1]
    figures.update(patches=n, auto_precision=dc_auto.precision)
    models = {"fp32": dc32, auto: dc_auto}
    dc = dc_auto
    feats = forward(dc)[0].clone()

    fit(feats, k=2, epochs=2)
    t10 = best_time(lambda: fit(feats, k=2, epochs=10), repeats)
    t_orig = best_time(lambda: original_ncut(feats.numpy(), k=2, epochs=10), max(1, repeats // 2))
    planted = DeepCut("color").features(voronoi_scene(4, 0, side=280)[0], resolution=280).reshape(-1, 384).clone()
    idle = dc.store.threads.vit()

    def autograd_on(threads: int) -> None:
        with torch_threads(threads):
            autograd_epochs(planted, 4, 100)

    gnn_auto = {}  # auto's choice, measured now (temp cache), on the threads of each row
    for t in (1, idle):
        with torch_threads(t):
            gnn_auto[t] = resolve("auto", "cpu", planted.shape[1])
    gnn = best_times({"one": lambda: fit(planted, k=4, epochs=100, settle=None),
                      "one_fp32": lambda: fit(planted, k=4, epochs=100, settle=None, precision="fp32"),
                      "idle": lambda: fit(planted, k=4, epochs=100, threads=idle, settle=None),
                      "idle_fp32": lambda: fit(planted, k=4, epochs=100, threads=idle, settle=None, precision="fp32"),
                      "cluster": lambda: cluster(planted, k=4, epochs=100, settle=False),
                      "settled": lambda: cluster(planted, k=4, epochs=100),
                      "before_one": lambda: autograd_on(1), "before_idle": lambda: autograd_on(idle),
                      "vit": vit_forward}, 2 * repeats)
    t100, t100_idle, t_vit_g = gnn["one"], gnn["idle"], gnn["vit"]  # ratios against the ViT of the same rounds
    reached = len(np.unique(fit(planted, k=4, epochs=100, settle=None).labels))
    stopped = fit(planted, k=4, epochs=100, threads=ThreadPolicy(None).gnn(planted.shape[0], 100))
    same = float((stopped.labels == fit(planted, k=4, epochs=100, settle=None).labels).mean())
    t100_pyg = best_time(lambda: pyg_mincut_epochs(planted, 4, 100), max(1, repeats // 2))
    figures.update(ncut10_s=t10, original10_s=t_orig, speedup_vs_original=t_orig / t10, ncut100_k4_s=t100,
                   ncut100_k4_ratio=t100 / t_vit_g, ncut100_k4_idle_ratio=t100_idle / t_vit_g,
                   ncut100_k4_idle_threads_s=t100_idle, idle_threads=idle, ncut100_k4_dense_mincut_pool_s=t100_pyg,
                   cluster100_k4_ratio=gnn["cluster"] / t_vit_g, cluster100_k4_settled_ratio=gnn["settled"] / t_vit_g,
                   cluster100_k4_settled_epochs=len(stopped.losses))
    rows.append((f"10 NCut epochs, k=2, {n} patches: original formulation (edge list + sparse GCN)",
                 f"{t_orig * 1000:.0f} ms", f"{t_orig / t_vit:.2f}x"))
    rows.append((f"10 NCut epochs, k=2, {n} patches: DeepCut (dense) — {t_orig / t10:.0f}x faster than original",
                 f"{t10 * 1000:.0f} ms", f"{t10 / t_vit:.3f}x"))
    figures.update(gnn_auto={str(t): v for t, v in gnn_auto.items()}, ncut100_k4_fp32_ratio=gnn["one_fp32"] / t_vit_g,
                   ncut100_k4_idle_fp32_ratio=gnn["idle_fp32"] / t_vit_g)
    rows.append((f"100 NCut epochs, k=4, planted graph ({planted.shape[0]} nodes, {reached} segments), 1 thread, "
                 f"GCN products in {gnn_auto[1]} (auto's choice here)", f"{t100 * 1000:.0f} ms",
                 f"{t100 / t_vit_g:.2f}x"))
    rows.append(("100 NCut epochs, k=4, planted graph, 1 thread, GCN products in fp32",
                 f"{gnn['one_fp32'] * 1000:.0f} ms", f"{gnn['one_fp32'] / t_vit_g:.2f}x"))
    rows.append((f"100 NCut epochs, k=4, planted graph, {idle} thread(s) (the idle cores: DeepCut.segment's choice), "
                 f"GCN products in {gnn_auto[idle]} (auto's choice here)", f"{t100_idle * 1000:.0f} ms",
                 f"{t100_idle / t_vit_g:.2f}x"))
    rows.append((f"100 NCut epochs, k=4, planted graph, {idle} thread(s), GCN products in fp32",
                 f"{gnn['idle_fp32'] * 1000:.0f} ms", f"{gnn['idle_fp32'] / t_vit_g:.2f}x"))
    rows.append(("100 NCut epochs, k=4, planted graph, through deepcut.cluster (its own thread choice), every epoch "
                 "(settle=False)", f"{gnn['cluster'] * 1000:.0f} ms", f"{gnn['cluster'] / t_vit_g:.2f}x"))
    rows.append((f"deepcut.cluster(k=4, epochs=100) as it runs: settled after {len(stopped.losses)} epochs, "
                 f"{same:.1%} of the labels of all 100", f"{gnn['settled'] * 1000:.0f} ms",
                 f"{gnn['settled'] / t_vit_g:.2f}x"))
    for threads, key in ((1, "before_one"), (idle, "before_idle")):
        figures[f"ncut100_k4_autograd[{threads}]_ratio"] = gnn[key] / t_vit_g
        rows.append((f"100 NCut epochs, k=4, {threads} thread(s), before: autograd through the GNN and the loss",
                     f"{gnn[key] * 1000:.0f} ms", f"{gnn[key] / t_vit_g:.2f}x"))
    rows.append(("100 NCut epochs, k=4, loss via torch_geometric dense_mincut_pool (not used)",
                 f"{t100_pyg * 1000:.0f} ms", f"{t100_pyg / t_vit:.2f}x"))

    def fresh_segment(m: DeepCut):
        m.clear_cache()
        return m.segment(image)

    precs = ("fp32", auto) if auto != "fp32" else ("fp32",)
    for prec in precs:
        fresh_segment(models[prec])
    seg_times = best_times({**{p: (lambda m=models[p]: fresh_segment(m)) for p in precs}, "vit": vit_forward},
                           2 * repeats)
    for prec in precs:
        t_seg = seg_times[prec]  # its ratio is to the fp32 ViT measured in the same rounds
        figures[f"segment_fresh[{prec}]_s"] = t_seg
        figures[f"segment_fresh[{prec}]_ratio"] = t_seg / seg_times["vit"]
        rows.append((f"segment() end to end, stages=1, k=2 (image decode → labels at input size), ViT in {prec}",
                     f"{t_seg * 1000:.0f} ms", f"{t_seg / seg_times['vit']:.2f}x"))
    figures["segment_fresh_s"] = figures[f"segment_fresh[{auto}]_s"]
    dc.segment(image)
    for name, kw in [
        ("k=3", dict(k=3)),
        ("loss=cc", dict(loss="cc", k=6)),
        ("cc, alpha=5", dict(loss="cc", k=6, alpha=5.0)),
        ("epochs=20", dict(epochs=(20, 100, 10))),
        ("stages=2, k=3", dict(stages=2, k=3)),
        ("stages=3, k=3", dict(stages=3, k=3)),
    ]:
        seg = dc.segment(image, **kw)
        assert seg.features_cached
        t = best_time(lambda kw=kw: dc.segment(image, **kw), repeats)
        figures[f"segment_cached[{name}]_s"] = t
        rows.append((f"second segment(), cached features, {name}", f"{t * 1000:.0f} ms", f"{t / t_vit:.3f}x"))

    worst = (0.0, 0, False, 0)
    for k in range(3, 9):  # random weights: a near-complete graph, where NCut's start is too uniform for k > 2
        seg = dc.segment(image, k=k)
        t = best_time(lambda k=k: dc.segment(image, k=k), repeats)
        figures[f"kway_cached[k={k}]_s"] = t
        if t > worst[0]:
            restarted = any("restart" in n for n in seg.notes) or len(seg.losses[0]) > 10
            worst = (t, k, restarted, len(np.unique(seg.patch_labels)))
    rows.append((f"k-way NCut on cached features, worst of k=3..8 (k={worst[1]}: {worst[3]} segments"
                 f"{', restarted from the spectral cut' if worst[2] else ''})", f"{worst[0] * 1000:.0f} ms",
                 f"{worst[0] / t_vit:.2f}x"))
    figures["kway_cached_worst_s"] = worst[0]

    patches, before, after = peak_memory_448()
    figures.update(peak_rss_448_mb=after, rss_before_segment_448_mb=before)
    rows.append((f"peak memory, 448 px image ({patches} patches), whole process (RSS)", f"{after:.0f} MB",
                 f"model loaded: {before:.0f} MB"))

    busy_rows, busy = shared_machine(dc, image, feats, repeats)
    rows += busy_rows
    figures.update(busy)

    v3_rows, v3 = dinov3_rows(image, repeats)
    rows += v3_rows
    figures.update(v3)

    if not args.quick:
        for spec in list_backbones():
            name = spec["name"]
            try:
                model = DeepCut(name, pretrained=False)
            except Exception as e:  # a backbone that cannot be built is reported, not fatal
                rows.append((f"backbone {name}", "n/a", f"could not build: {e}"))
                continue
            e2, _ = model.embed(image, 280)
            stride = model.backbone.patch_size
            layer = model.backbone.depth - 1

            def fwd(m=model, e=e2, s=stride, layer=layer):
                return m.backbone.facet(m.backbone.embed(e.work[None], s), layer, "key")

            fwd()
            tf = best_time(fwd, max(1, repeats // 2))

            def seg_fresh(m=model):
                m.clear_cache()
                return m.segment(image)

            ts = best_time(seg_fresh, max(1, repeats // 2))
            figures[f"backbone[{name}]_forward_s"] = tf
            figures[f"backbone[{name}]_segment_s"] = ts
            rows.append((f"backbone {name}: forward, {e2.grid[0] * e2.grid[1]} patches; segment() total",
                         f"{tf * 1000:.0f} ms; {ts * 1000:.0f} ms", f"{ts / tf:.2f}x of its forward"))

    width = max(len(r[0]) for r in rows)
    print(f"\nDeepCut speed: {tune.hardware_line('cpu')}\n")
    print(f"| {'measurement':<{width}} | time | ratio to ViT forward |")
    print(f"|{'-' * (width + 2)}|------|----------------------|")
    for what, t, ratio in rows:
        print(f"| {what:<{width}} | {t} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
