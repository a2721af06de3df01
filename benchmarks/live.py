"""Live streams and corrections by click, against one ViT forward pass, measured in one run.

    python benchmarks/live.py                  # ~3 minutes on 2 cores
    python benchmarks/live.py --quick          # fewer frames and repeats
    python benchmarks/live.py --json docs/results/live.json --markdown docs/results/live.md

* **Live step** (``dc.live(...).step(frame)``, random weights: speed does not depend on them): frames per
  second and the ratio of one step (ViT + warm-started GNN + matching) to the ViT forward of the same frame
  alone, for DINO ViT-S/16 at 224 px (the Live tab's resolution) and for ViT-S/8 at 280 px. Goal: step <= 1.2x ViT.
* **Stability** (weight-free colour backbone: no pretrained weights can be downloaded here): the share of
  consecutive frame pairs whose part labels are not permuted (:func:`deepcut.evaluation.metrics.consistency`,
  stages=2, k=3) on the example video ``assets/cat_pan.mp4`` and the DAVIS-2016 sequences in ``../shared/data``.
  Goal: >= 0.95.
* **Correction** (``dc.correct`` on a cached image, ViT-S/8 at 280 px): seconds of a join and of a separation
  (NCut and CC) as a ratio to the ViT forward of the image. Goal: <= 0.3x.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepcut import DeepCut
from deepcut.backbones.tune import hardware_line  # noqa: E402
from deepcut.evaluation.metrics import consistency
from deepcut.tasks.video import read_frames

SEQUENCES = ("blackswan", "car-shadow", "dog", "kite-surf", "libby")


def data_root() -> Path:
    return Path(os.environ.get("DEEPCUT_DATA", ROOT.parent / "shared" / "data"))


def vit_seconds(dc: DeepCut, frame: np.ndarray, resolution: int, repeats: int) -> float:
    """Median seconds of the ViT forward of ``frame`` alone (its key facet, uncached)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        dc.store.get_many([frame], dc.live(resolution=resolution).cfg, batch_size=1, cache=False)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def live_rows(frames: list[np.ndarray], repeats: int) -> list[dict]:
    """Each frame's ViT forward alone and its live step, interleaved (the machine's drift hits both alike)."""
    rows = []
    for name, backbone, res in (("ViT-S/16", "dino_vits16", 224), ("ViT-S/8", "dino_vits8", 280)):
        dc = DeepCut(backbone, pretrained=False)
        dc.live(resolution=res).step(frames[0])  # warm-up
        live = dc.live(resolution=res)
        cfg = live.cfg
        vits, steps = [], []
        for i, f in enumerate(frames):
            t = time.perf_counter()
            dc.store.get_many([f], cfg, batch_size=1, cache=False)
            vit = time.perf_counter() - t
            t = time.perf_counter()
            live.step(f)
            step = time.perf_counter() - t
            if i == 0:
                first = step  # the first frame trains from scratch (a full segment)
            else:
                vits.append(vit)
                steps.append(step)
        vit, step = float(np.median(vits)), float(np.median(steps))
        rows.append({"setting": f"{name} ({backbone}, {res} px)", "vit_ms": 1000 * vit, "step_ms": 1000 * step,
                     "first_ms": 1000 * first, "fps": 1.0 / step, "ratio": step / vit})
    return rows


def stability_rows(limit: int) -> list[dict]:
    dc = DeepCut("color")
    videos = {"assets/cat_pan.mp4": list(read_frames(ROOT / "assets" / "cat_pan.mp4", max_frames=limit))}
    davis = data_root() / "davis2016" / "images"
    for seq in SEQUENCES:
        files = sorted((davis / seq).glob("*.jpg"))[:limit]
        if files:
            videos[f"DAVIS {seq}"] = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    rows = []
    for name, frames in videos.items():
        live = dc.live(stages=2, k=3, resolution=224)
        segs = [live.step(f) for f in frames]
        rows.append({"video": name, "frames": len(frames), "consistency": consistency([s.labels for s in segs])})
    return rows


def correction_rows(repeats: int) -> list[dict]:
    dc = DeepCut("dino_vits8", pretrained=False)
    img = np.asarray(Image.open(ROOT / "assets" / "cat.jpg").convert("RGB"))
    h, w = img.shape[:2]
    vit = vit_seconds(dc, img, 280, repeats)
    rows = []
    for loss in ("ncut", "cc"):
        seg = dc.segment(img, k=4, loss=loss)  # caches the features
        ys, xs = np.mgrid[h // 8: h: h // 4, w // 8: w: w // 4].reshape(2, -1)
        pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
        lab = [int(seg.labels[int(y), int(x)]) for x, y in pts]
        apart = next(((a, b) for i, a in enumerate(pts) for j, b in enumerate(pts) if i < j and lab[i] != lab[j]), None)
        together = next(((a, b) for i, a in enumerate(pts) for j, b in enumerate(pts) if i < j and lab[i] == lab[j]),
                        None)
        runs = []
        if together is not None:
            runs.append(("separate", seg, together))
        if apart is not None:
            runs.append(("join", seg, apart))
        elif together is not None:  # everything in one segment: join the two parts a separation made
            runs.append(("join", dc.correct(img, seg, separate=[together]), together))
        for kind, base, pair in runs:
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                new = dc.correct(img, base, **{kind: [pair]})
                times.append(time.perf_counter() - t)
            sec = float(np.median(times))
            rows.append({"correction": f"{loss} {kind}", "ms": 1000 * sec, "ratio": sec / vit,
                         "epochs": sum(len(x) for x in new.losses), "note": new.notes[0]})
    return rows, vit


def markdown(res: dict) -> str:
    out = [f"Machine: {res['machine']}; torch {res['torch']}; {res['threads']} threads.", "",
           "| live setting | ViT forward | live step | first frame | fps | step / ViT |", "|---|---|---|---|---|---|"]
    out += [f"| {r['setting']} | {r['vit_ms']:.0f} ms | {r['step_ms']:.0f} ms | {r['first_ms']:.0f} ms | "
            f"{r['fps']:.2f} | {r['ratio']:.2f}x |" for r in res["live"]]
    out += ["", "| video (colour backbone, stages=2, k=3) | frames | label consistency |", "|---|---|---|"]
    out += [f"| {r['video']} | {r['frames']} | {r['consistency']:.3f} |" for r in res["stability"]]
    out += ["", f"Corrections on a cached image (ViT-S/8 at 280 px; its forward: {res['vit_ms']:.0f} ms):", "",
            "| correction | time | / ViT | epochs | what it said |", "|---|---|---|---|---|"]
    out += [f"| {r['correction']} | {r['ms']:.0f} ms | {r['ratio']:.2f}x | {r['epochs']} | {r['note']} |"
            for r in res["correct"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer frames and repeats")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--markdown", default=None, help="write the tables here")
    args = p.parse_args(argv)
    repeats, frames = (3, 6) if args.quick else (5, 16)
    cam = list(read_frames(ROOT / "assets" / "cat_pan.mp4", max_frames=frames))
    res = {"machine": hardware_line("cpu").rsplit("; torch", 1)[0],
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    res["live"] = live_rows(cam, repeats)
    res["stability"] = stability_rows(12 if args.quick else 40)
    res["correct"], vit = correction_rows(repeats)
    res["vit_ms"] = 1000 * vit
    text = markdown(res)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
