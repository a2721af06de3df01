"""How the web demo's memory and temporary files grow with API calls (each REST call is a new session).

Starts ``python app.py`` (colour backbone, offline, a fresh ``GRADIO_TEMP_DIR``), sends ``--requests``
``/segment`` calls with ``gradio_client``, each in a new session (as every REST call is) with a different
``--side``-pixel image, and prints the server's resident memory (RSS) every ``--every`` calls and the
number of files in Gradio's temporary folder; then waits ``--wait`` seconds (idle) and measures again,
so that ``--cache-seconds`` (how old temporary files may get) can show the clean-up.

    python benchmarks/app_memory.py                                   # 60 calls, 800 px, local mode
    python benchmarks/app_memory.py --public --cache-seconds 30 --wait 45
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (from ``/proc``, or psutil elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    return psutil.Process(pid).memory_info().rss / 1024 ** 2


def count_files(folder: Path) -> tuple[int, float]:
    """``(files, MB)`` under ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files) / 1024 ** 2


def start(args: argparse.Namespace, temp: Path) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free port; returns the process and its URL once it answers."""
    from app_server import free_port, launch

    port = free_port()
    home = tempfile.mkdtemp(prefix="deepcut-bench-hf-")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HOME": home,
           "GRADIO_TEMP_DIR": str(temp), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "DEEPCUT_BACKBONE": "color", "DEEPCUT_RESOLUTION": str(args.resolution), "DEEPCUT_THREADS": "1",
           "DEEPCUT_PUBLIC": "1" if args.public else "0"}
    env.pop("SPACE_ID", None)
    if args.cache_seconds:
        env["DEEPCUT_CACHE_SECONDS"] = str(args.cache_seconds)
    if args.sessions:
        env["DEEPCUT_SESSIONS"] = str(args.sessions)
    try:
        return launch(env, log_path=temp.parent / "app.log")
    except RuntimeError as e:
        raise SystemExit(str(e)) from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--every", type=int, default=20, help="measure after every this many calls")
    p.add_argument("--side", type=int, default=800, help="the uploads' side in pixels")
    p.add_argument("--resolution", type=int, default=112)
    p.add_argument("--public", action="store_true", help="run the app in public mode")
    p.add_argument("--cache-seconds", type=int, default=0, help="DEEPCUT_CACHE_SECONDS (0: the mode's default)")
    p.add_argument("--sessions", type=int, default=0, help="DEEPCUT_SESSIONS (0: the mode's default)")
    p.add_argument("--wait", type=float, default=0.0, help="idle seconds before the last measurement")
    args = p.parse_args()

    import numpy as np
    from gradio_client import Client, handle_file
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="deepcut-bench-"))
    temp = work / "gradio"
    temp.mkdir()
    proc, url = start(args, temp)
    try:
        client = Client(url, verbose=False)
        rng = np.random.default_rng(0)
        base = rss_mb(proc.pid)
        print(f"{'calls':>6} {'RSS MB':>8} {'+MB':>7} {'temp files':>10} {'temp MB':>8}")
        print(f"{0:>6} {base:>8.0f} {0:>7.0f} {count_files(temp)[0]:>10} {count_files(temp)[1]:>8.1f}")
        t0 = time.perf_counter()
        for i in range(1, args.requests + 1):
            path = work / f"upload_{i}.jpg"
            img = (rng.random((args.side // 8, args.side // 8, 3)) * 255).astype(np.uint8)
            Image.fromarray(img).resize((args.side, args.side * 3 // 4)).save(path, quality=90)
            client.session_hash = uuid.uuid4().hex  # a new session per call, as each REST call is
            client.predict(handle_file(str(path)), api_name="/segment")
            path.unlink()
            if i % args.every == 0 or i == args.requests:
                files, mb = count_files(temp)
                now = rss_mb(proc.pid)
                print(f"{i:>6} {now:>8.0f} {now - base:>+7.0f} {files:>10} {mb:>8.1f}")
        print(f"({(time.perf_counter() - t0) / args.requests:.2f} s per call)")
        if args.wait:
            time.sleep(args.wait)
            files, mb = count_files(temp)
            now = rss_mb(proc.pid)
            print(f"after {args.wait:.0f} s idle: RSS {now:.0f} MB ({now - base:+.0f}), {files} temp files, "
                  f"{mb:.1f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
