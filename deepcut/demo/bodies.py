"""Reading a whole HTTP request body in an ASGI middleware and handing it on (no Gradio import).

:class:`~deepcut.demo.traffic.UploadGuard` counts the images a JSON body carries and
:class:`~deepcut.demo.paths.PathAlias` rewrites the paths in it; both read the body once and give the app
behind them a ``receive`` that delivers it (the body limit in front of them bounds its size).
"""

from __future__ import annotations

from typing import Callable


async def read_body(receive: Callable) -> tuple[bytes, dict | None]:
    """``(body, end)``: the whole request body, and the message that ended it early (a disconnect), or None."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def replaying(body: bytes, receive: Callable, end: dict | None = None) -> Callable:
    """``receive`` that hands ``body`` over in one message (or ``end``, the message that cut it short), then
    waits as ``receive`` does (for a disconnect)."""
    first = end if end is not None else {"type": "http.request", "body": body, "more_body": False}
    given = False

    async def replay() -> dict:
        nonlocal given
        if not given:
            given = True
            return first
        return await receive()
    return replay
