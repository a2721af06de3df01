"""How faithful a reduced precision is to fp32 on held-out real photos (issue #19).

For every n-th Weizmann horse and GrabCut image of ``../shared/data`` (``--images`` of each, the selection
``tests/test_precision.py`` makes), DINO ViT-S/8 with random weights at 280 px, default ``segment()``:
the lowest per-image feature cosine to fp32, the lowest share of patch labels equal to fp32's (k = 2, up
to a swap), and the foreground IoU to fp32's (mean, median, lowest)::

    python benchmarks/faithful.py                       # bf16, 17 + 17 images (about 2 minutes)
    python benchmarks/faithful.py --precision int8 --images 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import shared_data_dir  # noqa: E402
from test_precision import _held_out  # noqa: E402  (the test's selection of images)

from deepcut import DeepCut  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precision", default="bf16", help="the precision compared with fp32 (default: %(default)s)")
    p.add_argument("--images", type=int, default=17, help="images of each data set (default: %(default)s)")
    args = p.parse_args()
    ref = DeepCut("dino_vits8", pretrained=False, precision="fp32")
    low = DeepCut("dino_vits8", pretrained=False, precision=args.precision)
    cosines, same, ious = [], [], []
    paths = _held_out(shared_data_dir(), args.images)
    for path in paths:
        a, b = ref.patch_features(path).features, low.patch_features(path).features
        cosines.append(float(torch.nn.functional.cosine_similarity(a, b, dim=-1).min()))
        sa, sb = ref.segment(path), low.segment(path)
        la, lb = sa.patch_labels, sb.patch_labels
        same.append(max(float((la == lb).mean()), float((la == 1 - lb).mean())))
        fa, fb = sa.foreground, sb.foreground
        ious.append(float((fa & fb).sum() / max((fa | fb).sum(), 1)))
    print(f"{low.engine} vs fp32, {len(paths)} images: feature cosine >= {min(cosines):.5f}; patch labels equal "
          f">= {min(same):.1%}; foreground IoU mean {np.mean(ious):.3f}, median {np.median(ious):.3f}, "
          f"lowest {min(ious):.3f}")


if __name__ == "__main__":
    main()
