"""The demo's one error type: a problem shown to the visitor as a message, never as a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DeepCutError


class DemoError(DeepCutError):
    """A problem to show to the visitor as a message (never as a traceback)."""


def hide_path(message: str, path: object) -> str:
    """``message`` with the server path ``path`` (as given, with ``~`` expanded, and absolute) replaced
    by its file name (visitors see no folders)."""
    if path is None or not str(path).strip():
        return message
    text = str(path)
    name = Path(text).name or text
    for form in sorted({os.path.abspath(os.path.expanduser(text)), os.path.expanduser(text), text}, key=len,
                       reverse=True):
        message = message.replace(form, name)
    return message
