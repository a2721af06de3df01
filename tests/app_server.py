"""Start ``python app.py`` once per test run, offline and fast, for the app and browser tests.

The app runs in a subprocess exactly as a visitor's server would, with:

* ``HF_HUB_OFFLINE=1`` and an empty ``HF_HOME``, so the default DINO weights cannot load and the
  app must fall back to the colour backbone with a notice (deterministic on any machine);
* a free port passed through ``GRADIO_SERVER_PORT`` (which the app must honour);
* a low resolution and a small ``--max-side`` so every request takes a fraction of a second.

``app_server(public=True)`` starts a second server in public mode (``DEEPCUT_PUBLIC=1``, with the
caps of ``PUBLIC_ENV``), beside the first; ``app_server(extra={...})`` one with those settings too (e.g. one
segmentation at a time), beside the others.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Debian's Chromium for the browser tests (None: not installed; ``./dev`` installs it), and its flags.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
#: Uploads larger than this are downscaled by the test server.
MAX_SIDE = 256
RESOLUTION = 112

#: The public test server's caps (small, so a test can reach them quickly).
PUBLIC_ENV = {"DEEPCUT_PUBLIC": "1", "DEEPCUT_BACKBONES": "color", "DEEPCUT_MAX_PIXELS": "1000000",
              "DEEPCUT_MAX_FILE_SIZE": "1mb", "DEEPCUT_MAX_EPOCHS": "20", "DEEPCUT_MAX_RESOLUTION": "160",
              "DEEPCUT_MAX_FRAMES": "5", "DEEPCUT_TIME_LIMIT": "30", "DEEPCUT_MAX_UPLOAD_FILES": "3",
              "DEEPCUT_VISITOR_FILES": "40", "DEEPCUT_VISITOR_BYTES": "4mb"}

_servers: dict[tuple, dict] = {}


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of process ``pid`` and all its descendants (ffmpeg included), from ``/proc``."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(env: dict[str, str], args: tuple[str, ...] = (), log_path: Path | None = None,
           timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """``python app.py *args`` with environment ``env`` (which must hold ``GRADIO_SERVER_PORT``), its
    output to ``log_path`` (default: a new temporary file); returns ``(process, url)`` once the page
    answers. Raises RuntimeError with the log's end if the app exits or does not answer in time."""
    log_path = log_path or Path(tempfile.mkdtemp(prefix="deepcut-app-")) / "app.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "app.py", *args], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def _stop(server: dict) -> None:
    if server["proc"].poll() is None:
        server["proc"].terminate()
        try:
            server["proc"].wait(timeout=10)
        except subprocess.TimeoutExpired:
            server["proc"].kill()
    if server.get("temp"):  # its uploads and outputs go with it
        shutil.rmtree(server["temp"], ignore_errors=True)


def app_server(timeout: float = 180.0, public: bool = False, extra: dict[str, str] | None = None) -> dict:
    """The running test app: ``{"url", "proc", "log", "temp"}`` (started on first use, stopped at exit;
    ``temp``: its own Gradio temporary folder, so files other runs left in the shared one count for nothing);
    ``public``: the public-mode one (see :data:`PUBLIC_ENV`); ``extra``: more environment settings (one server
    per set)."""
    key = (public, tuple(sorted((extra or {}).items())))
    running = _servers.get(key)
    if running is not None and running["proc"].poll() is None:
        return running
    home = tempfile.mkdtemp(prefix="deepcut-test-hf-")
    temp = tempfile.mkdtemp(prefix="deepcut-test-gradio-")  # its own: the public caps count this folder's files
    log_path = Path(tempfile.mkdtemp(prefix="deepcut-test-app-")) / "app.log"
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": home,
        "HF_HUB_CACHE": os.path.join(home, "hub"),
        "GRADIO_TEMP_DIR": temp,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "DEEPCUT_RESOLUTION": str(RESOLUTION),
        "DEEPCUT_MAX_SIDE": str(MAX_SIDE),
        "DEEPCUT_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        **(PUBLIC_ENV if public else {}),
        **(extra or {}),
    }
    env.pop("DEEPCUT_WEIGHTS", None)  # the default backbone must not find weights
    for var in ("SPACE_ID", *([] if public else PUBLIC_ENV)):  # the mode is the caller's choice only
        env.pop(var, None)
    proc, url = launch(env, log_path=log_path, timeout=timeout)
    server = _servers[key] = {"url": url, "proc": proc, "log": log_path, "temp": temp}
    atexit.register(_stop, server)
    return server
