"""Uploads bounded per request, per visitor and on disk: an ASGI middleware in front of Gradio's upload route.

Gradio's ``/gradio_api/upload`` takes up to 1000 files of ``max_file_size`` each in one request, as
often as a client likes, and keeps them for ``--cache-seconds``. :class:`UploadGuard` refuses, before
the body is read, an upload from a visitor who has sent more than :attr:`UploadPolicy.visitor_files`
files or :attr:`UploadPolicy.visitor_bytes` bytes in the last :attr:`UploadPolicy.window` seconds, or
while Gradio's temporary folder holds more than :attr:`UploadPolicy.disk_files` files or
:attr:`UploadPolicy.disk_bytes` bytes (``429``, with ``Retry-After``); and while the body streams in,
a request of more than :attr:`UploadPolicy.request_files` files or :attr:`UploadPolicy.request_bytes`
bytes (``413``). A refused or abandoned body ends as a malformed one does, so Gradio deletes the parts
it had written.

A visitor is the client's address; behind a proxy on the same machine or a private network (a
HuggingFace Space, a reverse proxy), the address that proxy appended last to ``X-Forwarded-For`` (the
entries before it are the client's own word, which anyone can forge).

Imports Gradio (its multipart error), so only the app imports this module.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from gradio.route_utils import MultiPartException

from .visitors import client_address

#: Bytes of multipart framing (part headers, boundaries) allowed on top of :attr:`UploadPolicy.request_bytes`.
FRAMING = 64 * 1024


@dataclass(frozen=True)
class UploadPolicy:
    """What uploads may cost (``None``: no bound).

    Attributes:
        request_files: most files in one upload request.
        request_bytes: most bytes of files in one upload request (plus :data:`FRAMING`).
        visitor_files: most files one visitor may upload within :attr:`window` seconds.
        visitor_bytes: most bytes one visitor may upload within :attr:`window` seconds.
        disk_files: no upload is taken while the temporary folder holds this many files.
        disk_bytes: no upload is taken while the temporary folder holds this many bytes.
        window: seconds over which a visitor's uploads are counted.
    """

    request_files: int | None = None
    request_bytes: int | None = None
    visitor_files: int | None = None
    visitor_bytes: int | None = None
    disk_files: int | None = None
    disk_bytes: int | None = None
    window: float = 60.0


def visitor_key(scope: dict) -> str:
    """Who sent a request: its peer address, or the last ``X-Forwarded-For`` hop when the peer is a proxy
    on this machine or a private network (:func:`~deepcut.demo.visitors.client_address`)."""
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-for", b"").decode("latin-1")
    return client_address((scope.get("client") or ("unknown",))[0], forwarded)


def folder_usage(folder: str) -> tuple[int, int]:
    """``(files, bytes)`` under ``folder`` (0, 0 if it does not exist)."""
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                continue
    return files, size


def is_upload(scope: dict) -> bool:
    return scope["type"] == "http" and scope.get("method") == "POST" and \
        scope.get("path", "").rstrip("/").endswith("/upload")


class UploadGuard:
    """ASGI middleware bounding Gradio's upload route by an :class:`UploadPolicy` (see the module doc).

    Args:
        app: the ASGI app.
        policy: the bounds.
        folder: Gradio's temporary folder (where uploads go), for the disk bounds.
        rescan: seconds a count of the folder is reused.
    """

    def __init__(self, app: Any, policy: UploadPolicy, folder: str | None = None, rescan: float = 2.0) -> None:
        self.app, self.policy, self.folder, self.rescan = app, policy, folder, float(rescan)
        self._lock = threading.Lock()
        self._sent: dict[str, collections.deque] = {}  # visitor -> [[time, files, bytes]]
        self._disk: tuple[float, int, int] = (-1e9, 0, 0)
        self._inflight = 0  # bytes of uploads being received

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if not is_upload(scope):
            await self.app(scope, receive, send)
            return
        key = visitor_key(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        size = int(declared) if declared.isdigit() else 0
        refusal = self.admit(key, size)
        if refusal is not None:
            await drain(receive, 1024 ** 2)
            await respond(send, *refusal)
            return
        entry = [time.monotonic(), 1, size]  # counted now, so parallel uploads see it
        with self._lock:
            self._sent.setdefault(key, collections.deque()).append(entry)
            self._inflight += size
        try:
            await self.app(scope, self.counting(receive, scope, entry), send)
        finally:
            with self._lock:
                self._inflight -= size
                self._disk = (-1e9, 0, 0)  # count the folder afresh next time

    def admit(self, key: str, size: int) -> tuple[int, str, float | None] | None:
        """``(status, message, retry after)`` if an upload of ``size`` declared bytes from ``key`` is refused now."""
        p, now = self.policy, time.monotonic()
        if p.request_bytes is not None and size > p.request_bytes + FRAMING:
            return 413, f"This upload is {size / 1024 ** 2:.1f} MB; this server takes at most " \
                        f"{p.request_bytes / 1024 ** 2:g} MB of files per upload.", None
        with self._lock:
            sent = self._sent.setdefault(key, collections.deque())
            while sent and now - sent[0][0] > p.window:
                sent.popleft()
            for gone in [k for k, q in self._sent.items() if not q]:
                del self._sent[gone]
            files, sent_bytes = sum(e[1] for e in sent), sum(e[2] for e in sent)
            retry = p.window - (now - sent[0][0]) if sent else p.window
        if p.visitor_files is not None and files >= p.visitor_files:
            return 429, f"Too many uploads: at most {p.visitor_files} files per {p.window:g} s from one visitor " \
                        f"on this server. Please wait a moment and try again.", retry
        if p.visitor_bytes is not None and sent_bytes + size > p.visitor_bytes:
            return 429, f"Too much uploaded: at most {p.visitor_bytes / 1024 ** 2:g} MB per {p.window:g} s from " \
                        f"one visitor on this server. Please wait a moment and try again.", retry
        disk_files, disk_bytes = self.disk(now)
        if (p.disk_files is not None and disk_files >= p.disk_files) or \
                (p.disk_bytes is not None and disk_bytes + size > p.disk_bytes):
            return 429, "This server holds too many uploaded files right now; they are deleted after a while. " \
                        "Please try again in a few minutes.", 60.0
        return None

    def disk(self, now: float) -> tuple[int, int]:
        """``(files, bytes)`` in the temporary folder (recounted every :attr:`rescan` seconds) plus uploads
        being received."""
        if self.folder is None:
            return 0, 0
        with self._lock:
            at, files, size = self._disk
        if now - at > self.rescan:
            files, size = folder_usage(self.folder)
            with self._lock:
                self._disk = (now, files, size)
        with self._lock:
            return files, size + self._inflight

    def counting(self, receive: Callable, scope: dict, entry: list) -> Callable:
        """``receive`` that counts the body's bytes and parts into ``entry`` and ends a body over the bounds
        (or abandoned by the client) as a malformed one, so that Gradio deletes what it wrote."""
        p = self.policy
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        boundary = content_type.split(b"boundary=", 1)[1].split(b";")[0].strip(b'"') if b"boundary=" in \
            content_type else b""
        marker = b"--" + boundary
        state: dict[str, Any] = {"tail": b"", "marks": 0, "bytes": 0}
        limit = None if p.request_bytes is None else p.request_bytes + FRAMING

        async def counted() -> dict:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise MultiPartException("The upload was abandoned by the client.")
            chunk = message.get("body", b"")
            state["bytes"] += len(chunk)
            if boundary:
                data = state["tail"] + chunk
                state["marks"] += data.count(marker)
                state["tail"] = data[-(len(marker) - 1):] if len(marker) > 1 else b""
            files = max(1, state["marks"] - 1)  # the closing delimiter starts with the marker too
            with self._lock:
                entry[1], entry[2] = files, max(entry[2], state["bytes"])
            if limit is not None and state["bytes"] > limit:
                raise MultiPartException(f"This upload is over the maximum allowed size of "
                                         f"{(limit - FRAMING) / 1024 ** 2:g} MB of files per upload on this server.")
            if p.request_files is not None and files > p.request_files:
                raise MultiPartException(f"This upload has more than {p.request_files} files, the maximum allowed "
                                         f"size of one upload on this server.")
            return message
        return counted


async def drain(receive: Callable, most: int) -> None:
    """Read and drop up to ``most`` bytes of a request body, so that the client reads the answer cleanly."""
    seen = 0
    while seen <= most:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def respond(send: Callable, status: int, message: str, retry_after: float | None = None) -> None:
    """Send a JSON ``{"detail": message}`` answer with ``status`` (and ``Retry-After`` seconds)."""
    import json

    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, int(retry_after + 0.999))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
