"""``python -m deepcut speed``: the engines a ViT can run in here, measured now.

Times every engine ``auto`` chooses from on this device (``tune.candidates``; int8 too, marked opt-in) on a
seeded random image at ``--resolution``, in turns, the fastest of ``--rounds`` timed forward passes after
one warm-up each, and prints per engine: the time of one forward pass to the last layer's keys, its ratio
to float32's, the mean and least per-patch cosine of its features to float32's, its one-off set-up where
it has one (OpenVINO, installed with the ``openvino`` extra: converting the ViT, once per backbone, layer
and facet, then reading it back, and compiling it; not counted in its time), and which one ``auto`` picks
from these figures and which one it has stored for this machine. ``--store`` records this measurement as
``auto``'s choice. Then the GNN's: an epoch's three big products (the GCN layer's two, the loss's ``A S``) at
one image's size in float32 and in bf16 (the best of at least 7 rounds), on one thread and on ``--threads``,
and what ``auto`` takes (bf16 where it is 1.25 times faster or more; ``deepcut.clustering.arithmetic``) and has stored.
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from ..backbones.tune import Trial


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speed", help="time the ViT's precisions and engines here; show what auto picks",
                       description=__doc__.split("\n\n", 1)[1].replace("``", "'") if __doc__ else None)
    p.add_argument("--backbone", default="dino_vits8", help="backbone name, hub id or folder (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=None, metavar="PX",
                   help="side of the random image (default: the backbone's default resolution)")
    p.add_argument("--rounds", type=int, default=3, metavar="N", help="timed forward passes each (default: 3)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: $DEEPCUT_THREADS if set, else the cores idle at the time)")
    p.add_argument("--device", default=None, metavar="{auto,cpu,cuda,cuda:N}", help="where to compute")
    p.add_argument("--pretrained", action="store_true",
                   help="load the pretrained weights (default: random weights; the times do not depend on them)")
    p.add_argument("--store", action="store_true", help="record this measurement as auto's choice here")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=run)


def _note(trial: Trial, picked: str, stored: str | None) -> str:
    notes = []
    if trial.error:
        notes.append(f"failed: {trial.error}")
    elif trial.engine.startswith("int8"):
        notes.append("opt-in, never auto")
    elif not trial.faithful():
        notes.append("not faithful")
    if trial.engine == picked:
        notes.append("fastest faithful: auto's pick")
    if trial.engine == stored:
        notes.append("auto's stored choice")
    if trial.setup_s:
        notes.append(f"set-up {trial.setup_s:.1f} s, once")
    return "; ".join(notes)


def run(args: argparse.Namespace) -> int:
    from ..backbones import load_backbone, tune
    from ..utils.device import resolve_device
    from ..utils.threads import feature_threads
    from .common import UsageError

    if args.rounds < 1 or (args.resolution is not None and args.resolution < 16):
        raise UsageError("--rounds must be at least 1 and --resolution at least 16")
    device = resolve_device(args.device)
    backbone = load_backbone(args.backbone, pretrained=args.pretrained).to(device)
    if not backbone.tunable:
        raise UsageError(f"backbone {args.backbone!r} has no weights: it computes one way only")
    threads = feature_threads(args.threads)
    trials = tune.measure(backbone, tune.candidates(device, int8=True), args.resolution, budget_s=None,
                          rounds=args.rounds, keep_within=None, threads=threads)
    picked = tune.pick([t for t in trials if not t.engine.startswith("int8")])
    key = tune.cache_key(backbone, args.resolution)
    if args.store:
        tune.store_choice(tune.Choice(picked, "measured", trials, 0.0, key))
    stored = tune.stored_choice(key, device)
    ref = trials[0].seconds
    gnn = _gnn(device, backbone.dim, threads, args.store, args.rounds)
    if args.json:
        print(json.dumps({"hardware": tune.hardware_line(device, threads), "key": key, "picked": picked.name,
                          "stored": stored.engine.name if stored else None, "gnn": gnn,
                          "trials": [vars(t) | {"ratio": ref / t.seconds if math.isfinite(t.seconds) else None}
                                     for t in trials]}, indent=2))
        return 0
    side = tune.probe_pixels(backbone, args.resolution).shape[1]
    print(f"{backbone.name} forward to the last layer's keys, {side} px random image, best of {args.rounds}")
    print(tune.hardware_line(device, threads))
    held = stored.engine.name if stored else None
    print(f"{'engine':<22} {'ms':>8} {'vs fp32':>8} {'cosine':>9} {'least':>9}  note")
    for t in trials:
        ms = f"{t.seconds * 1000:.0f}" if math.isfinite(t.seconds) else "-"
        ratio = f"{ref / t.seconds:.2f}x" if math.isfinite(t.seconds) else "-"
        print(f"{t.engine:<22} {ms:>8} {ratio:>8} {t.cosine:>9.6f} {t.min_cosine:>9.6f}  {_note(t, picked.name, held)}")
    print(f"stored for this machine: {held or 'nothing yet'} ({tune.cache_dir() / tune.CACHE_FILE})")
    for line in _gnn_lines(gnn, backbone.dim):
        print(line)
    return 0


def _gnn(device: torch.device, dim: int, threads: int, store: bool, rounds: int) -> list[dict]:
    """The GNN's products in float32 and bf16 on 1 and ``threads`` threads, what auto picks from them and has
    stored (the CPU only: elsewhere none)."""
    from ..clustering import arithmetic
    from ..utils.threads import torch_threads

    if device.type != "cpu":
        return []
    rows = []
    for n in sorted({1, int(threads)}):
        with torch_threads(n):
            times = arithmetic.measure(dim, rounds=max(rounds, arithmetic.ROUNDS))
            picked = arithmetic.pick(times)
            if store:
                arithmetic.choose(times, device, dim)
            rows.append({"threads": n, "fp32_s": times["fp32"], "bf16_s": times["bf16"], "picked": picked,
                         "stored": arithmetic.stored_choice(device, dim)})
    return rows


def _gnn_lines(rows: list[dict], dim: int) -> list[str]:
    from ..clustering import arithmetic

    if not rows:
        return ["GNN: float32 (bf16 products are chosen on the CPU only)"]
    lines = [f"GNN, an epoch's three big products (the GCN's {arithmetic.NODES} x {dim} by {arithmetic.HIDDEN}, "
             f"the loss's {arithmetic.NODES} x {arithmetic.NODES} by 4): "
             f"auto takes bf16 where it is {arithmetic.MIN_GAIN}x faster or more"]
    for r in rows:
        lines.append(f"  {r['threads']} thread{'s' if r['threads'] > 1 else ''}: fp32 {r['fp32_s'] * 1e3:.2f} ms, "
                     f"bf16 {r['bf16_s'] * 1e3:.2f} ms ({r['fp32_s'] / r['bf16_s']:.2f}x): auto's pick "
                     f"{r['picked']}; stored: {r['stored'] or 'nothing yet'}")
    lines.append(f"  ({arithmetic.cache_dir() / arithmetic.CACHE_FILE}; pin with ${arithmetic.ENV}=fp32|bf16)")
    return lines
