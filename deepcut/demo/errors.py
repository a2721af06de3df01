"""The demo's one error type: a problem shown to the visitor as a message, never as a traceback."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..errors import DeepCutError

if TYPE_CHECKING:
    import gradio as gr


class DemoError(DeepCutError):
    """A problem to show to the visitor as a message (never as a traceback)."""


def visitor_error(message: str) -> gr.Error:
    """The ``gr.Error`` that shows ``message`` to the visitor: a toast that stays until closed (the page keeps
    the last result on screen instead of marking each output "Error", see ``layout.CSS``, so the toast is
    what says that the request failed), with no traceback in the server log."""
    import gradio

    return gradio.Error(message, duration=None, print_exception=False)


@contextmanager
def as_demo_errors() -> Iterator[None]:
    """Around a call into the library: its :class:`DeepCutError` (a bad setting, a failing model, memory)
    becomes a :class:`DemoError` with the same message, which the page shows."""
    try:
        yield
    except DemoError:
        raise
    except DeepCutError as e:
        raise DemoError(str(e)) from None


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
