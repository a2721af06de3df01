"""A client of the Live tab that is not the page: it joins the webcam stream of a running ``app.py`` and
posts frames itself, as fast or as seldom as it likes (for the tests and ``benchmarks/fuzz.py``).

Gradio's protocol: ``POST /gradio_api/queue/join`` with the first frame (answer: the event id), the
event's messages on ``GET /gradio_api/queue/data?session_hash=…`` (server-sent events), and every further
frame ``POST /gradio_api/stream/<event id>``.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
from PIL import Image


def frame_url(i: int, size: int = 96) -> str:
    """A small moving-square frame ``i`` as a PNG ``data:`` URL."""
    a = np.zeros((size, size, 3), np.uint8)
    a[..., 0] = (37 * i) % 255
    a[20:60, 20 + i % 30:60 + i % 30] = 200
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def file_data(url: str) -> dict:
    """Gradio's file object for an inline image."""
    return {"path": None, "url": url, "meta": {"_type": "gradio.FileData"}}


def post(url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, str]:
    """``(HTTP status, answer)`` of a POST."""
    req = urllib.request.Request(url, body, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


class LiveClient:
    """One visitor's live stream on the server at ``url`` (``visitor``: sent as ``X-Forwarded-For``, which a
    server on 127.0.0.1 takes as the visitor behind a local proxy)."""

    def __init__(self, url: str, visitor: str, backbone: str = "color") -> None:
        self.url, self.visitor, self.backbone = url, visitor, backbone
        with urllib.request.urlopen(url + "config", timeout=10) as r:
            config = json.loads(r.read())
        components = {c["id"]: c for c in config["components"]}
        self.camera = next(c["id"] for c in config["components"]
                           if c.get("props", {}).get("elem_id") == "live-camera")
        self.fn_index, dep = next((i, d) for i, d in enumerate(config["dependencies"])
                                  if [self.camera, "stream"] in [list(t) for t in d["targets"]])
        self.inputs = dep["inputs"]
        self.defaults = {cid: components[cid].get("props", {}) for cid in self.inputs}
        self.session = uuid.uuid4().hex[:12]
        self.event: str | None = None
        self.messages: list[tuple[float, str]] = []  # (monotonic time, message kind)
        self._listener: threading.Thread | None = None

    def data(self, i: int) -> list:
        values = []
        for cid in self.inputs:
            props = self.defaults[cid]
            if cid == self.camera:
                values.append(file_data(frame_url(i)))
            elif props.get("elem_id") == "live-backbone":
                values.append(self.backbone)
            else:
                values.append(props.get("value"))
        return values

    def body(self, i: int) -> bytes:
        return json.dumps({"data": self.data(i), "fn_index": self.fn_index, "session_hash": self.session,
                           "event_data": None, "trigger_id": self.camera}).encode()

    def start(self) -> tuple[int, str]:
        """Join the stream with frame 0 and listen to its messages; ``(status, answer)`` of the join."""
        status, text = post(self.url + "gradio_api/queue/join", self.body(0), {"X-Forwarded-For": self.visitor})
        if status == 200:
            self.event = json.loads(text)["event_id"]
            self._listener = threading.Thread(target=self._listen, daemon=True)
            self._listener.start()
        return status, text

    def send(self, i: int) -> int:
        """Post frame ``i`` to the running stream: the HTTP status."""
        return post(self.url + f"gradio_api/stream/{self.event}", self.body(i), {"X-Forwarded-For": self.visitor})[0]

    def _listen(self) -> None:
        try:
            with urllib.request.urlopen(self.url + f"gradio_api/queue/data?session_hash={self.session}",
                                        timeout=120) as r:
                for line in r:
                    text = line.decode(errors="replace").strip()
                    if text.startswith("data:"):
                        kind = json.loads(text[5:]).get("msg", "")
                        self.messages.append((time.monotonic(), kind))
                        if kind == "close_stream":
                            return
        except OSError:
            return

    def count(self, kind: str) -> int:
        return sum(1 for _, k in self.messages if k == kind)

    def ended_at(self) -> float | None:
        """When the server ended the stream (its ``process_completed``), or None."""
        return next((t for t, k in self.messages if k == "process_completed"), None)

    def wait_ended(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.ended_at() is None:
            time.sleep(0.05)
        return self.ended_at()
