"""The demo's one error type: a problem shown to the visitor as a message, never as a traceback."""

from __future__ import annotations

from pathlib import Path

from ..errors import DeepCutError


class DemoError(DeepCutError):
    """A problem to show to the visitor as a message (never as a traceback)."""


def hide_path(message: str, path: object) -> str:
    """``message`` with the server path ``path`` replaced by its file name (visitors see no folders)."""
    return message.replace(str(path), Path(str(path)).name) if path is not None else message
