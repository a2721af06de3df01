"""A burst of identical requests against the web demo: does every client get complete result files?

Issue #13 saw 2 of 100 clients fail with ``RemoteProtocolError`` while downloading results in a
burst. This starts ``python app.py`` (colour backbone, small images) on a free local port, sends
``--requests`` identical ``/segment`` calls from ``--clients`` threads (each a new ``gradio_client``
session, as REST callers are), downloads the overlay and the mask of each, and counts failures.

    python benchmarks/app_burst.py                     # 100 requests, 25 at a time (about a minute)
    python benchmarks/app_burst.py --requests 200 --clients 50 --public
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from app_server import free_port, launch  # noqa: E402


def start(public: bool) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_PORT": str(free_port())}
    args = ("--backbone", "color", "--resolution", "112", "--max-side", "256") + ("--public",) * public
    try:
        return launch(env, args)
    except RuntimeError as e:
        raise SystemExit(str(e)) from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--clients", type=int, default=25, help="threads sending at the same time")
    p.add_argument("--image", default=str(REPO / "assets" / "cat.jpg"))
    p.add_argument("--public", action="store_true", help="run the app in public mode")
    args = p.parse_args()
    from gradio_client import Client, handle_file

    proc, url = start(args.public)

    def one(_: int) -> bool:
        out = Client(url, verbose=False).predict(handle_file(args.image), api_name="/segment")
        return all(os.path.getsize(path) > 0 for path in out[:2] if isinstance(path, str))

    errors: collections.Counter = collections.Counter()
    complete, t0 = 0, time.time()
    try:
        with cf.ThreadPoolExecutor(args.clients) as pool:
            for future in cf.as_completed([pool.submit(one, i) for i in range(args.requests)]):
                try:
                    complete += bool(future.result())
                except Exception as e:  # what a client saw: count it by kind
                    errors[f"{type(e).__name__}: {str(e)[:80]}"] += 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(f"{args.requests} requests, {args.clients} at a time: {complete} complete, "
          f"{sum(errors.values())} failed, {time.time() - t0:.1f} s")
    for kind, n in errors.most_common():
        print(f"  {n} x {kind}")
    sys.exit(1 if errors or complete < args.requests else 0)


if __name__ == "__main__":
    main()
