"""Uploads bounded per request, per visitor and on disk: an ASGI middleware in front of Gradio's routes.

Gradio's ``/gradio_api/upload`` takes up to 1000 files of ``max_file_size`` each in one request, as
often as a client likes, and keeps them for ``--cache-seconds``. :class:`UploadGuard` refuses, before
the body is read, an upload from a visitor who has sent more than :attr:`UploadPolicy.visitor_files`
files or :attr:`UploadPolicy.visitor_bytes` bytes in the last :attr:`UploadPolicy.window` seconds, or
while Gradio's temporary folder holds more than :attr:`UploadPolicy.disk_files` files or
:attr:`UploadPolicy.disk_bytes` bytes (``429``, with ``Retry-After``); and while the body streams in,
a request of more than :attr:`UploadPolicy.request_files` files or :attr:`UploadPolicy.request_bytes`
bytes (``413``). A refused or abandoned body ends as a malformed one does, so Gradio deletes the parts
it had written.

Images also reach Gradio inline, as ``data:`` URLs in the JSON body of an event (``/queue/join``,
``/call/…``, ``/run/…``), which Gradio writes to the same temporary folder: they count against the same
per-visitor and folder caps, one file per URL. Live webcam frames posted to a running stream
(``/stream/<event>``) are bounded by the live rules instead (:class:`~deepcut.demo.live_gate.StreamGate`:
a frame rate per visitor, frames beyond it refused with ``429`` before Gradio decodes or queues them)
and by the folder caps.

A visitor is the client's address; behind a proxy on the same machine or a private network (a
HuggingFace Space, a reverse proxy), the address that proxy appended last to ``X-Forwarded-For`` (the
entries before it are the client's own word, which anyone can forge).

Imports Gradio (its multipart error), so only the app imports this module.
"""

from __future__ import annotations

import collections
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from gradio.route_utils import MultiPartException

from .bodies import read_body, replaying
from .live_gate import StreamGate
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


#: The routes whose JSON bodies may carry images inline: joining the queue, the REST calls, stream frames.
INLINE_ROUTE = re.compile(r"/(queue/join|call/(v2/)?[^/]+|run/[^/]+|api/[^/]+|stream/[^/]+)$")
#: A frame posted to a running stream (the route's last part: the event id).
STREAM_ROUTE = re.compile(r"/stream/([^/]+)$")


def inline_route(scope: dict) -> str | None:
    """``"stream"`` for a frame posted to a running stream, ``"event"`` for another route whose body may hold
    inline images, ``None`` for the rest."""
    if scope["type"] != "http" or scope.get("method") != "POST":
        return None
    path = scope.get("path", "").rstrip("/")
    if not INLINE_ROUTE.search(path) or path.endswith("/close"):
        return None
    return "stream" if STREAM_ROUTE.search(path) else "event"


def inline_images(body: bytes) -> tuple[int, int]:
    """``(files, bytes)`` of the images a JSON request body carries as ``data:`` URLs (a file object's
    ``url`` or ``path``, as Gradio reads them); ``(0, 0)`` for a body that is not JSON."""
    if b"data:" not in body:
        return 0, 0
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return 0, 0
    files = size = 0
    todo, seen = [data], 0
    while todo and seen < 100_000:
        item, seen = todo.pop(), seen + 1
        if isinstance(item, dict):
            urls = [v for k, v in item.items() if k in ("url", "path") and isinstance(v, str) and v.startswith("data:")]
            if urls:
                files += 1
                size += max(len(u.split(",", 1)[-1]) * 3 // 4 for u in urls)
            todo.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            todo.extend(v for v in item if isinstance(v, (dict, list)))
    return files, size


class UploadGuard:
    """ASGI middleware bounding Gradio's upload route by an :class:`UploadPolicy` (see the module doc).

    Args:
        app: the ASGI app.
        policy: the bounds.
        folder: Gradio's temporary folder (where uploads go), for the disk bounds.
        rescan: seconds a count of the folder is reused.
        streams: the live rules for frames posted to running streams (``None``: such frames count as uploads).
        bind: called with the running event loop on the first request (the server binds ``streams`` to it).
    """

    def __init__(self, app: Any, policy: UploadPolicy, folder: str | None = None, rescan: float = 2.0,
                 streams: StreamGate | None = None, bind: Callable[[Any], None] | None = None) -> None:
        self.app, self.policy, self.folder, self.rescan = app, policy, folder, float(rescan)
        self.streams, self._bind = streams, bind
        self._lock = threading.Lock()
        self._sent: dict[str, collections.deque] = {}  # visitor -> [[time, files, bytes]]
        self._disk: tuple[float, int, int] = (-1e9, 0, 0)
        self._inflight = 0  # bytes of uploads being received

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if self._bind is not None:
            import asyncio

            self._bind(asyncio.get_running_loop())
            self._bind = None
        route = inline_route(scope)
        if route is not None:
            await self.inline(scope, receive, send, route)
            return
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

    async def inline(self, scope: dict, receive: Callable, send: Callable, route: str) -> None:
        """A request whose JSON body may carry images as ``data:`` URLs: counted as uploads of that many files
        (a live stream's frames: by the live rules), refused whole (``429``) past a cap, else passed on."""
        body, end = await read_body(receive)
        files, size = inline_images(body)
        key, now = visitor_key(scope), time.monotonic()
        refusal: tuple[int, str, float | None] | None = None
        if route == "stream" and self.streams is not None:
            retry = self.streams.admit(key, now)
            if retry is not None:
                refusal = 429, f"Too many live frames: at most {self.streams.fps:g} per second from one visitor " \
                               f"on this server; this frame was dropped.", retry
            elif files:
                refusal = self.disk_refusal(now, size)
            if refusal is None:
                event = STREAM_ROUTE.search(scope.get("path", "").rstrip("/"))
                self.streams.posted(event.group(1) if event else "", now)
        elif files:
            refusal = self.admit(key, size, files)
            if refusal is None:
                with self._lock:
                    self._sent.setdefault(key, collections.deque()).append([now, files, size])
                    self._disk = (-1e9, 0, 0)
        if refusal is not None:
            await respond(send, *refusal)
            return
        await self.app(scope, replaying(body, receive, end), send)

    def admit(self, key: str, size: int, count: int = 1) -> tuple[int, str, float | None] | None:
        """``(status, message, retry after)`` if an upload of ``count`` files and ``size`` (declared) bytes from
        ``key`` is refused now."""
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
        if p.visitor_files is not None and files + count > p.visitor_files:
            return 429, f"Too many uploads: at most {p.visitor_files} files per {p.window:g} s from one visitor " \
                        f"on this server. Please wait a moment and try again.", retry
        if p.visitor_bytes is not None and sent_bytes + size > p.visitor_bytes:
            return 429, f"Too much uploaded: at most {p.visitor_bytes / 1024 ** 2:g} MB per {p.window:g} s from " \
                        f"one visitor on this server. Please wait a moment and try again.", retry
        return self.disk_refusal(now, size)

    def disk_refusal(self, now: float, size: int) -> tuple[int, str, float | None] | None:
        """The ``429`` answer while the temporary folder is full (or ``size`` more bytes would fill it)."""
        p = self.policy
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
