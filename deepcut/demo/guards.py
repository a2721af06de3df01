"""What keeps a (public) server safe below the page: sizes checked before Gradio decodes anything,
request bodies bounded, heavy events in one fair queue, cached pictures written atomically.

* :func:`guard_uploads`: an image sent inline as a ``data:`` URL (which Gradio decodes itself, past
  its upload limit) or as a file is refused if it is larger than the server's bytes or pixels;
* :class:`BodyLimit`: an ASGI middleware refusing request bodies above a size (all routes but the
  upload route, which Gradio limits itself), so a ``data:`` URL cannot bypass ``max_file_size``;
* :func:`share_queue`: every heavy event (image, objects, video, co-segmentation) in one
  concurrency group, so never more heavy jobs than cores;
* :func:`reliable_cache_cleanup`: Gradio's ``delete_cache`` schedule no longer dies under traffic;
* :func:`atomic_picture_cache`: Gradio writes each output picture to a path named by its content,
  in place; two identical results at once rewrote the file while the first was being downloaded
  (a truncated response: ``RemoteProtocolError``). Written under a temporary name and renamed instead.

Imports Gradio, so only the app imports this module.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from gradio import processing_utils
from starlette.middleware import Middleware

from ..utils.files import write_atomic
from .errors import DemoError, visitor_error
from .limits import Limits
from .live_gate import StreamGate
from .paths import PathAlias, server_paths
from .traffic import UploadGuard, UploadPolicy, drain, respond
from .uploads import check_size

#: The events that run the models (the app's concurrency ids).
HEAVY = ("segment", "video")
#: The Gradio versions whose internals :func:`atomic_picture_cache` and :func:`reliable_cache_cleanup`
#: were tested against, ``[low, high)`` (pyproject.toml's ``app`` extra says the same).
TESTED_GRADIO = ((6, 31), (7, 0))
#: The internals they replace: ``(module, attribute)``.
PATCHED = (("gradio.processing_utils", "save_pil_to_cache"), ("gradio.processing_utils", "encode_pil_to_bytes"),
           ("gradio.processing_utils", "hash_bytes"), ("gradio.route_utils", "delete_files_created_by_app"))


def check_gradio(version: str | None = None) -> None:
    """Refuse, with a message that says what to install, a Gradio outside :data:`TESTED_GRADIO` or one
    that lacks an internal of :data:`PATCHED`, before anything is patched.

    Raises:
        RuntimeError: the installed (or given) version is outside the tested range.
    """
    import importlib

    version = gr.__version__ if version is None else version
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    (lo, hi), want = TESTED_GRADIO, "gradio>={}.{},<{}".format(*TESTED_GRADIO[0], TESTED_GRADIO[1][0])
    if not lo <= numbers < hi:
        raise RuntimeError(f"DeepCut's web app needs {want} (it was tested with that range and adjusts two of "
                           f"Gradio's internals); this is gradio {version}. Install it with "
                           f"pip install '{want}' (or pip install 'deepcut-gnn[app]').")
    missing = [f"{m}.{a}" for m, a in PATCHED if not hasattr(importlib.import_module(m), a)]
    if missing:
        raise RuntimeError(f"gradio {version} lacks {', '.join(missing)}, which DeepCut's web app adjusts; "
                           f"install {want} (pip install '{want}').")


def data_url_bytes(url: str, max_bytes: int | None) -> bytes:
    """The bytes of a base64 ``data:`` URL, refused unread if they would exceed ``max_bytes``."""
    encoded = url.split(",", 1)[1] if "," in url else ""
    if max_bytes is not None and len(encoded) * 3 // 4 > max_bytes:
        raise DemoError(f"This file is over {max_bytes / 1024 ** 2:g} MB, the largest this server accepts.")
    try:
        return base64.b64decode(encoded)
    except (binascii.Error, ValueError):
        raise DemoError("Could not read this file as an image (a broken data URL).") from None


def check_payload(payload: Any, limits: Limits) -> None:
    """Refuse an image payload (Gradio's ``FileData``) above the byte or pixel caps, undecoded."""
    url, path = getattr(payload, "url", None), getattr(payload, "path", None)
    if isinstance(url, str) and url.startswith("data:"):
        check_size(data_url_bytes(url, limits.max_bytes), limits.max_pixels, limits.max_bytes)
    elif isinstance(path, str) and os.path.isfile(path):
        check_size(path, limits.max_pixels, limits.max_bytes)


def guard_uploads(demo: gr.Blocks, limits: Limits) -> None:
    """Make every image input of ``demo`` check :func:`check_payload` before Gradio decodes it."""
    for block in demo.blocks.values():
        if isinstance(block, gr.Image):
            block.preprocess = _checked(block.preprocess, limits)  # type: ignore[method-assign]  # wraps its own


def _checked(preprocess: Callable, limits: Limits) -> Callable:
    def guarded(payload):
        try:
            check_payload(payload, limits)
        except DemoError as e:
            raise visitor_error(str(e)) from None
        return preprocess(payload)
    return guarded


def readable_inputs(demo: gr.Blocks) -> None:
    """Make every input of ``demo`` refuse a value it cannot read with a one-line message naming the control
    (Gradio's own preprocessing fails on ``"x"`` in a slider or ``None`` for ``k`` with an empty error):
    numbers (sliders, number fields) must be finite, within the control's range and, on a whole-number
    step, whole; any other failure to read a value names the control too. Idempotent."""
    for block in demo.blocks.values():
        if not isinstance(block, gr.components.Component) or getattr(block.preprocess, "readable", False):
            continue
        block.preprocess = _readable(block, block.preprocess)  # type: ignore[method-assign]  # wraps its own


def control_name(block: Any) -> str:
    """How the page names a control: its label, else its element id, else its kind."""
    label = getattr(block, "label", None)
    return str(label or getattr(block, "elem_id", None) or type(block).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_number(block: Any, payload: Any) -> float | None:
    """The number a slider or number field was sent (``None`` where the field may be empty).

    Raises:
        gradio.Error: not a number, not finite, outside the control's range, or not whole on a whole step.
    """
    name = control_name(block)
    if payload is None:
        if isinstance(block, gr.Number):
            return None
        raise visitor_error(f"{name}: a number is needed (got nothing).")
    if isinstance(payload, bool) or not isinstance(payload, (int, float, str)):
        raise visitor_error(f"{name} must be a number, got {_shown(payload)}.")
    try:
        value = float(payload)
    except ValueError:
        raise visitor_error(f"{name} must be a number, got {_shown(payload)}.") from None
    if not math.isfinite(value):
        raise visitor_error(f"{name} must be a finite number, got {_shown(payload)}.")
    lo, hi = getattr(block, "minimum", None), getattr(block, "maximum", None)
    if lo is not None and value < lo:
        raise visitor_error(f"{name}: {value:g} is below the minimum, {lo:g}.")
    if hi is not None and value > hi:
        raise visitor_error(f"{name}: {value:g} is above the maximum, {hi:g}.")
    step = getattr(block, "step", None)
    if isinstance(block, gr.Slider) and step and float(step).is_integer() and not value.is_integer():
        raise visitor_error(f"{name} takes whole numbers, got {value:g}.")
    return value


def _readable(block: Any, preprocess: Callable) -> Callable:
    numeric = isinstance(block, (gr.Slider, gr.Number))

    def read(payload):
        if numeric:
            value = read_number(block, payload)
            payload = payload if value is None else (int(value) if isinstance(payload, int) else value)
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception:
            sent = "the file sent (not a picture Gradio can read)" if hasattr(payload, "path") or \
                isinstance(payload, dict) else _shown(payload)
            raise visitor_error(f"{control_name(block)}: could not read {sent}.") from None
    read.readable = True  # type: ignore[attr-defined]  # a mark: wrapped once
    return read


def share_queue(demo: gr.Blocks, limit: int) -> None:
    """Put every heavy event of ``demo`` into one concurrency group of ``limit`` jobs at a time."""
    for fn in demo.fns.values():
        if fn.concurrency_id in HEAVY:
            fn.concurrency_id, fn.concurrency_limit = "heavy", max(1, int(limit))


class BodyLimit:
    """ASGI middleware: HTTP request bodies above ``limit`` bytes get ``413`` (the upload route excepted).

    Args:
        app: the ASGI app.
        limit: most bytes of a request body (``None``: no limit).
    """

    def __init__(self, app: Any, limit: int | None) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or self.limit is None or scope.get("path", "").rstrip("/").endswith("/upload"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await drain(receive, 4 * self.limit)
            await self.refuse(send)
            return
        seen, started, limit = 0, False, self.limit

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b"")) if message["type"] == "http.request" else 0
            if seen > limit:
                raise _TooLarge
            return message

        async def sending(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except _TooLarge:
            if not started:
                await self.refuse(send)

    async def refuse(self, send: Callable) -> None:
        await respond(send, 413, f"The request is larger than {self.limit} bytes, the most this server accepts.")


def upload_policy(limits: Limits) -> UploadPolicy:
    """The :class:`~deepcut.demo.traffic.UploadPolicy` of ``limits``."""
    return UploadPolicy(request_files=limits.upload_files, request_bytes=limits.max_bytes,
                        visitor_files=limits.visitor_files, visitor_bytes=limits.visitor_bytes,
                        disk_files=limits.temp_files, disk_bytes=limits.temp_bytes)


def app_kwargs(limits: Limits, folder: str | None = None, demo: gr.Blocks | None = None,
               streams: StreamGate | None = None) -> dict[str, Any]:
    """``launch(app_kwargs=…)`` for the server: request bodies limited to ``limits.max_bytes``, uploads (files,
    inline ``data:`` URLs) bounded per request, per visitor and in Gradio's temporary ``folder`` (default:
    Gradio's), server paths kept out of every answer (:class:`~deepcut.demo.paths.PathAlias`); with ``demo``
    and its live ``streams``, the live rules (:class:`~deepcut.demo.live_gate.StreamGate`) hold on its queue."""
    from gradio.utils import get_upload_folder

    folder = folder or get_upload_folder()
    bind = None
    if demo is not None and streams is not None:
        end = stream_ender(demo)

        def bind(loop: Any) -> None:
            streams.bind(loop, end)
    return {"middleware": [Middleware(BodyLimit, limit=limits.max_bytes),
                           Middleware(UploadGuard, policy=upload_policy(limits), folder=folder, streams=streams,
                                      bind=bind),
                           Middleware(PathAlias, aliases=server_paths(folder))]}


def stream_ender(demo: gr.Blocks) -> Callable[[str], bool]:
    """``end(event_id)``: end a running stream event of ``demo``'s queue as Gradio's own
    ``/stream/<event>/close`` route does (the worker is freed; the client gets the stream's end); True if it
    was running. Call on the server's event loop."""
    def end(event_id: str) -> bool:
        queue = getattr(demo, "_queue", None)
        event = getattr(queue, "event_ids_to_events", {}).get(event_id)
        if event is None or getattr(event, "closed", True):
            return False
        event.closed = True
        event.signal.set()
        return True
    return end


class _TooLarge(Exception):
    """A streamed request body went over the limit."""


def atomic_picture_cache() -> None:
    """Replace Gradio's ``save_pil_to_cache`` by one that never rewrites a file in place (idempotent)."""
    check_gradio()
    if getattr(processing_utils.save_pil_to_cache, "atomic", False):
        return

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = processing_utils.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        target = (folder / f"{name}.{format}").resolve()
        if target.exists():
            try:
                os.utime(target)  # delete_cache ages files by time: this one is handed out again
            except OSError:
                pass
            return str(target)
        write_atomic(target, data, fsync=False)  # a cache: one step matters, durability does not
        return str(target)

    save_pil_to_cache.atomic = True  # type: ignore[attr-defined]  # a mark on the function: patched once
    processing_utils.save_pil_to_cache = save_pil_to_cache


def cap_sliders(demo: gr.Blocks, limits: Limits) -> None:
    """Lower the maxima (and start values) of ``demo``'s resolution, epoch and frame sliders to the caps,
    so the page offers only what the server runs (found by their labels, which come from the config)."""
    from ..config import options

    caps = {options()["resolution"].label: limits.max_resolution, options()["epochs"].label: limits.max_epochs,
            "Max frames": limits.max_frames}
    for block in demo.blocks.values():
        if not isinstance(block, gr.Slider):
            continue
        cap = next((c for label, c in caps.items() if str(block.label or "").startswith(label)), None)
        if cap is not None and block.maximum > cap:
            block.maximum = cap
            if isinstance(block.value, (int, float)) and block.value > cap:
                block.value = cap


def reliable_cache_cleanup() -> None:
    """Make Gradio's ``delete_cache`` survive traffic (idempotent).

    Gradio's scheduled clean-up iterates over its live sets of temporary files; a request adding a file
    meanwhile raises ``Set changed size during iteration``, which ends the schedule for good (measured:
    no file deleted after about 90 quick calls). This version iterates over a snapshot and never raises.
    """
    from gradio import route_utils

    check_gradio()
    if getattr(route_utils.delete_files_created_by_app, "reliable", False):
        return

    def delete_files_created_by_app(blocks: Any, age: int | None) -> None:
        try:
            keep: set = set()
            for component in list(blocks.blocks.values()):
                keep.update(getattr(component, "keep_in_cache", set()))
            for files in list(blocks.temp_file_sets):
                for file in list(files):
                    if file not in keep and _delete_if_older(file, age):
                        files.discard(file)
        except Exception:  # a clean-up round must never end the schedule
            logging.getLogger("deepcut.app").exception("temporary file clean-up failed; retrying later")

    delete_files_created_by_app.reliable = True  # type: ignore[attr-defined]  # a mark: patched once
    route_utils.delete_files_created_by_app = delete_files_created_by_app


def _delete_if_older(file: str, age: int | None) -> bool:
    """Delete ``file`` if it changed more than ``age`` seconds ago (``None``: always); True if it is gone."""
    try:
        if age is None or time.time() - os.lstat(file).st_ctime > age:
            os.remove(file)
            return True
        return False
    except FileNotFoundError:
        return True
