"""Start ``python app.py`` once per test run, offline and fast, for the app and browser tests.

The app runs in a subprocess exactly as a visitor's server would, with:

* ``HF_HUB_OFFLINE=1`` and an empty ``HF_HOME``, so the default DINO weights cannot load and the
  app must fall back to the colour backbone with a notice (deterministic on any machine);
* a free port passed through ``GRADIO_SERVER_PORT`` (which the app must honour);
* a low resolution and a small ``--max-side`` so every request takes a fraction of a second.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Uploads larger than this are downscaled by the test server.
MAX_SIDE = 256
RESOLUTION = 112

_server: dict | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop() -> None:
    if _server is not None and _server["proc"].poll() is None:
        _server["proc"].terminate()
        try:
            _server["proc"].wait(timeout=10)
        except subprocess.TimeoutExpired:
            _server["proc"].kill()


def app_server(timeout: float = 180.0) -> dict:
    """The running test app: ``{"url", "proc", "log"}`` (started on first use, stopped at exit)."""
    global _server
    if _server is not None and _server["proc"].poll() is None:
        return _server
    home = tempfile.mkdtemp(prefix="deepcut-test-hf-")
    log_path = Path(tempfile.mkdtemp(prefix="deepcut-test-app-")) / "app.log"
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": home,
        "HF_HUB_CACHE": os.path.join(home, "hub"),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "DEEPCUT_RESOLUTION": str(RESOLUTION),
        "DEEPCUT_MAX_SIDE": str(MAX_SIDE),
        "DEEPCUT_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DEEPCUT_WEIGHTS", None)  # the default backbone must not find weights
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    _server = {"url": url, "proc": proc, "log": log_path}
    atexit.register(_stop)
    return _server
