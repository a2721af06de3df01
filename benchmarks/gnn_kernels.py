"""The CPU kernel choices inside one GNN epoch, timed side by side (ratios within one run).

Each row pits the form DeepCut uses against the plain one it replaced, at the size of one image's graph
(ViT-S/8 at 280 px: N = 1225 patches, k = 4 clusters, hidden width 32):

* the softmax over k clusters: over the ``(k, N)`` transposed view (:func:`deepcut.clustering.gnn.soft_assign`)
  against ``torch.softmax(logits, dim=-1)``;
* ``A S`` for a symmetric ``A`` (:func:`deepcut.clustering.losses.row_sums`' product rule): ``(Sᵀ A)ᵀ`` and
  ``A S`` with a column-major ``S``, against ``A S`` with a row-major ``S``, on 1 and 2 threads;
* the dropout masks (:class:`deepcut.clustering.gnn.DropoutMasks`) against ``torch.rand`` and a comparison.

    python benchmarks/gnn_kernels.py [--repeats 200]

Prints a markdown table (mean microseconds and the ratio to the plain form) and the CPU model; the
table in docs/speed.md (*Kernel choices*) comes from it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from deepcut.clustering.gnn import DropoutMasks, soft_assign  # noqa: E402


def mean_us(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(max(3, repeats // 10)):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.mean(times) * 1e6  # the mean: the dropout masks are drawn in blocks of epochs


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def rows(repeats: int, n: int = 1225, k: int = 4, hidden: int = 32) -> list[tuple[str, float, float]]:
    """``[(what, DeepCut's form µs, plain form µs), …]``."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(n, k, generator=gen)
    a = torch.rand(n, n, generator=gen)
    a = (a + a.T) / 2
    s_rows = torch.softmax(torch.randn(n, k, generator=gen), dim=-1)
    s_cols = soft_assign(torch.randn(n, k, generator=gen))
    out = []
    torch.set_num_threads(1)
    out.append(("softmax over k = 4, transposed view vs last dim (1 thread)",
                mean_us(lambda: soft_assign(logits), repeats), mean_us(lambda: torch.softmax(logits, -1), repeats)))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        plain = mean_us(lambda: a @ s_rows, repeats)
        out.append((f"A S, (Sᵀ A)ᵀ vs A S with row-major S ({threads} thread(s))",
                    mean_us(lambda: (s_rows.T @ a).T, repeats), plain))
        out.append((f"A S, column-major S vs row-major S ({threads} thread(s))", mean_us(lambda: a @ s_cols, repeats),
                    plain))
    torch.set_num_threads(1)
    masks = DropoutMasks(seed=0, p=0.25)

    def plain_mask() -> torch.Tensor:
        return (torch.rand(n, hidden, generator=gen) >= 0.25).float() / 0.75

    out.append(("dropout mask (1225, 32): PCG64 blocks vs torch.rand (1 thread)",
                mean_us(lambda: masks.next((n, hidden)), repeats), mean_us(plain_mask, repeats)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    print(f"CPU: {cpu_model()}; torch {torch.__version__}; mean of {args.repeats} calls\n")
    print("| kernel | DeepCut's form | plain form | ratio |")
    print("|---|---|---|---|")
    for what, ours, plain in rows(args.repeats):
        print(f"| {what} | {ours:.0f} µs | {plain:.0f} µs | {ours / plain:.2f}x |")


if __name__ == "__main__":
    main()
