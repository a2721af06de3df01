"""Fuzz DeepCut's public surface with odd inputs: no crash, no hang, no allocation over a cap.

    python benchmarks/fuzz.py            # every case (~600, a few minutes on 2 cores)
    python benchmarks/fuzz.py --quick    # every 8th case (~75, under a minute)
    python benchmarks/fuzz.py --only config --verbose
    python benchmarks/fuzz.py --only h22-out/      # one group of issue #22 (also web:, h22-label/)
    python benchmarks/fuzz.py --only h33/          # issue #33's classes

Each case runs in a child forked from this process (the models are built once, before any fork), so
a case cannot disturb another. A case's outcome is

* **ok**: it returned;
* **clean**: it raised a :class:`deepcut.DeepCutError` (or the CLI exited with status 1, 2 or 130);
* **crash**: any other exception (listed with the head of its traceback), or the child died;
* **hang**: it ran longer than ``--timeout`` seconds (the child is killed);
* **over cap**: its resident memory rose above ``--cap-gb`` (the parent polls it and kills the child).

The inputs: image files of every odd kind (sizes 1 x 1 to 1 x 2,000,000, 16-bit, palette, CMYK, LA,
I;16, float TIFF, EXIF rotations, animated, truncated, random bytes, text, a folder, a FIFO, a loop
of links, a name too long), numpy arrays of odd dtypes / shapes / NaN / inf, torch tensors, PIL
images (closed, empty, odd modes), odd values of every setting, odd constructor arguments, videos
(truncated, empty, one frame, palette GIFs, odd arrays, odd ``progress`` / ``max_frames``), crafted
checkpoints (expanded tensors, huge configs, random bytes), and the ``segment`` / ``video`` commands
with bad ``--out`` paths. Issue #22's classes: ``web:`` (image and video containers declaring huge
frames, odd upload bodies to a real public ``app.py``: ``benchmarks/fuzz_cases_web.py``), ``h22-out/``
(the CLI's outputs: colliding names, users' files named like outputs, links, forged manifests and
results, ``--out`` that is an input) and ``h22-label/`` (``label``: the parent killed under
``--workers 2``, worker and Ray caps, sparse files, malformed shards and settings, odd parts folders,
``--out`` that is an input): ``benchmarks/fuzz_cases_cli.py``. Issue #33's classes, ``h33/`` (corrections and
slides with odd values, runs into held outputs, ``label --resume`` at another precision, ``app.py`` with
nonsense caps, and a public server probed by a client that is not the page: live floods, quiet and second
streams, bad frames, inline images past the caps, values no page sends): ``benchmarks/fuzz_cases_h33.py``.
``--only`` text that begins with a
group's prefix (``config/``, ``web:``, ``h22-out/``, ...) builds that group alone (no models, no web
server it does not need). Children run with ``DEEPCUT_MAX_MEMORY`` below the cap and
``DEEPCUT_MAX_PATCHES`` at 16384, the limits DeepCut checks before it allocates (each case must end
in the timeout on two busy cores). Exit status 1 if any case crashed, hung or went over the cap.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("DEEPCUT_THREADS", "1")
os.environ.setdefault("DEEPCUT_MAX_PATCHES", "16384")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="every 8th case only")
    p.add_argument("--only", default=None, help="only the cases whose name contains this text")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it counts as a hang")
    p.add_argument("--cap-gb", type=float, default=2.0, help="resident memory cap per case (GB)")
    p.add_argument("--jobs", type=int, default=2, help="cases run at once")
    p.add_argument("--verbose", action="store_true", help="print every case's outcome")
    args = p.parse_args(argv)
    cap = int(args.cap_gb * (1 << 30))
    os.environ.setdefault("DEEPCUT_MAX_MEMORY", str(int(cap * 0.6)))

    import torch

    torch.set_num_threads(1)  # no thread pool exists in the parent when it forks
    from fuzz_cases import build_cases
    from fuzz_runner import report, run_cases

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepcut-fuzz-") as tmp:
        cases = build_cases(Path(tmp), args.only)
        if args.only:
            cases = [c for c in cases if args.only in c[0]]
        if args.quick:
            cases = cases[::8]
        results = run_cases(cases, timeout=args.timeout, cap=cap, jobs=args.jobs, verbose=args.verbose)
    return report(results, time.perf_counter() - t0, args.timeout, cap)


if __name__ == "__main__":
    sys.exit(main())
