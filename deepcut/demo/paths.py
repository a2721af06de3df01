"""No answer of the server shows where it keeps its files: an ASGI middleware that writes the server's
folders as short aliases in every answer and back in every request.

Gradio names every file it serves by its absolute path: the page's configuration (``/config``) lists
the examples as ``/tmp/gradio/<hash>/cat.jpg`` with URLs ``/gradio_api/file=/tmp/gradio/…``, uploads
answer with such paths, and results carry them. :class:`PathAlias` replaces each of the server's
folders (Gradio's temporary folder, the app's folder) by an alias (``gradio-temp``, ``deepcut-app``) in the
text answers (JSON, event streams, HTML, plain text) and replaces the aliases back in request paths
(``/gradio_api/file=gradio-temp/…``) and JSON request bodies, so clients work as before while nothing
they receive names a server folder. Gradio's own checks on which files may be served still apply to
the paths it then sees.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .bodies import read_body, replaying

#: Answers of these content types are rewritten.
TEXT_TYPES = (b"application/json", b"text/event-stream", b"text/html", b"text/plain", b"application/javascript")


def server_paths(temp_folder: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """``[(folder, alias)]``: Gradio's temporary folder (as given and resolved) and the app's folder
    (the current directory and the folder holding the ``deepcut`` package), longest first."""
    pairs = []
    if temp_folder:
        pairs += [(str(temp_folder), "gradio-temp"), (os.path.realpath(temp_folder), "gradio-temp")]
    app = Path(__file__).resolve().parents[2]
    pairs += [(str(app), "deepcut-app"), (os.getcwd(), "deepcut-app"), (os.path.realpath(os.getcwd()), "deepcut-app")]
    seen: dict[str, str] = {}
    for folder, alias in pairs:
        folder = folder.rstrip("/")
        if len(folder) > 1 and folder != tempfile.gettempdir().rstrip("/"):  # never "/" or "/tmp" alone
            seen.setdefault(folder, alias)
    return sorted(seen.items(), key=lambda p: -len(p[0]))


class PathAlias:
    """ASGI middleware: server folders → aliases in text answers, aliases → folders in requests.

    Args:
        app: the ASGI app.
        aliases: ``[(folder, alias)]`` (see :func:`server_paths`).
    """

    def __init__(self, app: Any, aliases: list[tuple[str, str]]) -> None:
        self.app = app
        self.out = [(f.encode(), a.encode()) for f, a in aliases]
        back: dict[bytes, bytes] = {}
        for folder, alias in aliases:  # an alias goes back to the first (longest) folder it stands for
            back.setdefault(alias.encode(), folder.encode())
        self.back = list(back.items())

    def hide(self, data: bytes) -> bytes:
        """``data`` with every server folder written as its alias."""
        for folder, alias in self.out:
            if folder in data:
                data = data.replace(folder, alias)
        return data

    def restore(self, data: bytes) -> bytes:
        """``data`` with aliases that start a path (after ``"`` or ``=``) written as their folders again."""
        for alias, folder in self.back:
            for lead in (b'"', b"="):
                data = data.replace(lead + alias + b"/", lead + folder + b"/")
        return data

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        restored = self.restore(path.encode()).decode()
        if restored != path:
            scope = {**scope, "path": restored, "raw_path": restored.encode()}
        headers = dict(scope.get("headers") or [])
        if headers.get(b"content-type", b"").startswith(b"application/json"):
            receive = await self.restored_body(receive)
        await self.app(scope, receive, self.hiding(send))

    async def restored_body(self, receive: Callable) -> Callable:
        """``receive`` delivering the whole (JSON) body at once, aliases restored (the body limit in front
        bounds it)."""
        body, end = await read_body(receive)
        return replaying(self.restore(body), receive, end)

    def hiding(self, send: Callable) -> Callable:
        """``send`` rewriting text answers: a whole body (with its length) or each streamed chunk."""
        state: dict[str, Any] = {"rewrite": False, "start": None, "parts": []}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                kind = headers.get(b"content-type", b"")
                state["rewrite"] = kind.startswith(TEXT_TYPES) and b"content-encoding" not in headers
                if state["rewrite"] and b"content-length" in headers:
                    state["start"] = message  # held until the whole body is known
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or not state["rewrite"]:
                await send(message)
                return
            if state["start"] is None:  # streamed: each chunk on its own
                await send({**message, "body": self.hide(message.get("body", b""))})
                return
            state["parts"].append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = self.hide(b"".join(state["parts"]))
            start = state["start"]
            kept = [(k, v) for k, v in start.get("headers") or [] if k != b"content-length"]
            await send({**start, "headers": kept + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        return sending
