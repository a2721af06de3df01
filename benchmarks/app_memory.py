"""How the web demo's memory and temporary files grow with API calls (each REST call is a new session).

Starts ``python app.py`` (colour backbone, offline, a fresh ``GRADIO_TEMP_DIR``), sends ``--requests``
``/segment`` calls with ``gradio_client``, each in a new session (as every REST call is) with a different
``--side``-pixel image, and prints the server's resident memory (RSS) every ``--every`` calls and the
number of files in Gradio's temporary folder; then waits ``--wait`` seconds (idle) and measures again,
so that ``--cache-seconds`` (how old temporary files may get) can show the clean-up.

    python benchmarks/app_memory.py                                   # 60 calls, 800 px, local mode
    python benchmarks/app_memory.py --public --cache-seconds 30 --wait 45

``--videos N`` instead sends, from ``N`` concurrent visitors, ``/segment_video`` calls with the files
of the pixel-cap classes (a GIF declaring a 13000² screen, PNG-in-MKV frames of 8000² and 16000², a
16000² PNG named ``.mp4``), two videos of 4000² frames (16 megapixels, the public cap: decoded) and the
example video, ``--rounds`` times each, and prints the peak and
idle resident memory of the server and its children (ffmpeg), sampled every 0.1 s:

    python benchmarks/app_memory.py --public --videos 3 --rounds 2 --wait 20
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


def video_files(folder: Path) -> list[Path]:
    """The pixel-cap classes' videos (tests/odd_files.py) and the example video."""
    import odd_files
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    at_cap = [Image.new("P", (4000, 4000), i) for i in range(5)]  # 16 megapixels: decoded, as allowed
    at_cap[0].save(folder / "cap4k.gif", save_all=True, append_images=at_cap[1:], duration=100)
    return [folder / "cap4k.gif", odd_files.matroska(folder / "cap4k.mkv", 4000, frames=5),
            odd_files.gif(folder / "screen13k.gif", (13000, 13000)),
            odd_files.matroska(folder / "png8k.mkv", 8000), odd_files.matroska(folder / "png16k.mkv", 16000),
            odd_files.png_header(folder / "png16k.mp4", 16000, 16000), REPO / "assets" / "cat_pan.mp4"]


def videos(url: str, pid: int, args: argparse.Namespace, work: Path) -> None:
    """``args.videos`` visitors at once, each sending every file of :func:`video_files` ``args.rounds`` times."""
    import threading

    from app_server import tree_rss_mb
    from gradio_client import Client, handle_file

    files = video_files(work / "videos")
    base = tree_rss_mb(pid)
    peak, stop = [base], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_mb(pid))
            time.sleep(0.1)

    outcomes: list[str] = []

    def visitor(i: int) -> None:  # each its own address, as a proxy in front reports it (X-Forwarded-For)
        client = Client(url, verbose=False, headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
        for _ in range(args.rounds):
            for f in files:
                try:
                    client.predict(handle_file(str(f)), api_name="/segment_video")
                    outcomes.append(f"{f.name}: segmented")
                except Exception as e:  # noqa: BLE001 - the refusals are the point
                    outcomes.append(f"{f.name}: {str(e).splitlines()[0][:90]}")

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(args.videos)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    after = tree_rss_mb(pid)
    time.sleep(args.wait)
    stop.set()
    idle = tree_rss_mb(pid)
    for line in sorted(set(outcomes)):
        print(f"  {outcomes.count(line):>3} × {line}")
    print(f"{args.videos} visitors × {args.rounds} rounds × {len(files)} files in {seconds:.0f} s: server + children "
          f"RSS {base:.0f} MB at start, peak {peak[0]:.0f} MB ({peak[0] - base:+.0f}), {after:.0f} MB at the end, "
          f"{idle:.0f} MB ({idle - base:+.0f}) after {args.wait:.0f} s idle")


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
    p.add_argument("--videos", type=int, default=0, help="concurrent visitors sending the pixel-cap videos "
                                                         "(0: the /segment calls instead)")
    p.add_argument("--rounds", type=int, default=1, help="--videos: how often each visitor sends every file")
    args = p.parse_args()

    import numpy as np
    from gradio_client import Client, handle_file
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="deepcut-bench-"))
    temp = work / "gradio"
    temp.mkdir()
    proc, url = start(args, temp)
    try:
        if args.videos:
            videos(url, proc.pid, args, work)
            return
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
