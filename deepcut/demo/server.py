"""The web demo's command line: flags or environment variables (flags win), and the server's limits.

``python app.py --public --backbones dino_vits8,color`` (or ``DEEPCUT_PUBLIC=1``, or running as a
HuggingFace Space, where ``SPACE_ID`` is set) serves a public deployment: visitors' own weights are
ignored, only the listed backbones are offered, and :meth:`~deepcut.demo.limits.Limits.public_defaults`
caps every request; each cap has its own flag (``0``/empty: the mode's default).
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Callable

from ..clustering.arithmetic import pinned as gnn_pinned
from ..errors import ConfigError
from ..utils.memory import parse_bytes
from .limits import Limits

#: (flag, type, environment variable, default, help) of every option of ``app.py``; a cap's help ends with its
#: local and public defaults, read from :class:`Limits` (:data:`CAPS`).
FLAGS = [
    ("--backbone", str, "DEEPCUT_BACKBONE", "dino_vits8", "starting backbone: registry name, hub id or folder"),
    ("--device", str, "DEEPCUT_DEVICE", "auto", "where models compute: auto, cpu, cuda, cuda:N or mps"),
    ("--resolution", int, "DEEPCUT_RESOLUTION", "280", "default working resolution in pixels"),
    ("--max-side", int, "DEEPCUT_MAX_SIDE", "1600", "uploads are downscaled to this longer side"),
    ("--concurrency", int, "DEEPCUT_CONCURRENCY", "2", "segmentations at a time; others wait in the queue"),
    ("--threads", int, "DEEPCUT_THREADS", "0", "ViT threads (0: the cores idle at the time; the GNN uses 1)"),
    ("--precision", str, "DEEPCUT_PRECISION", "auto", "ViT precision: auto (the fastest engine faithful to fp32, "
                                                      "measured once per machine and backbone), fp32, bf16, fp16, "
                                                      "int8 (CPU) or an engine such as bf16-weights+sdpa"),
    ("--max-file-size", str, "DEEPCUT_MAX_FILE_SIZE", "", "largest accepted upload"),
    ("--host", str, "GRADIO_SERVER_NAME", "127.0.0.1", "interface to listen on"),
    ("--port", int, "GRADIO_SERVER_PORT", "7860", "port"),
    ("--backbones", str, "DEEPCUT_BACKBONES", "", "backbones offered, comma separated (public default: "
                                                  "--backbone and color; otherwise all)"),
    ("--max-pixels", int, "DEEPCUT_MAX_PIXELS", "0", "largest upload in pixels"),
    ("--max-resolution", int, "DEEPCUT_MAX_RESOLUTION", "0", "highest working resolution"),
    ("--max-epochs", int, "DEEPCUT_MAX_EPOCHS", "0", "most GNN epochs per stage"),
    ("--max-frames", int, "DEEPCUT_MAX_FRAMES", "0", "most video frames per request"),
    ("--max-images", int, "DEEPCUT_MAX_IMAGES", "0", "most images co-segmented together"),
    ("--time-limit", float, "DEEPCUT_TIME_LIMIT", "0", "seconds a request may run"),
    ("--cache-seconds", int, "DEEPCUT_CACHE_SECONDS", "0", "temporary files are deleted after this many seconds"),
    ("--sessions", int, "DEEPCUT_SESSIONS", "0", "sessions remembered; each API call is one"),
    ("--max-upload-files", int, "DEEPCUT_MAX_UPLOAD_FILES", "0", "most files in one upload request"),
    ("--visitor-files", int, "DEEPCUT_VISITOR_FILES", "0", "most files one visitor uploads per minute"),
    ("--visitor-bytes", str, "DEEPCUT_VISITOR_BYTES", "", "most bytes one visitor uploads per minute"),
    ("--max-temp-files", int, "DEEPCUT_MAX_TEMP_FILES", "0", "uploads wait while the temporary folder holds this "
                                                            "many files"),
    ("--max-temp-bytes", str, "DEEPCUT_MAX_TEMP_BYTES", "", "uploads wait while the temporary folder holds this "
                                                           "many bytes"),
    ("--live-fps", float, "DEEPCUT_LIVE_FPS", "0", "most webcam frames per second one visitor's live stream may "
                                                  "send (more are dropped)"),
    ("--live-seconds", float, "DEEPCUT_LIVE_SECONDS", "0", "a live stream ends after this many seconds"),
]
#: The flag of each cap and the :class:`Limits` field it sets (0 or empty: the mode's default).
CAPS = {"--max-file-size": "max_bytes", "--max-pixels": "max_pixels", "--max-resolution": "max_resolution",
        "--max-epochs": "max_epochs", "--max-frames": "max_frames", "--max-images": "max_images",
        "--time-limit": "seconds", "--cache-seconds": "cache_seconds", "--sessions": "sessions",
        "--max-upload-files": "upload_files", "--visitor-files": "visitor_files", "--visitor-bytes": "visitor_bytes",
        "--max-temp-files": "temp_files", "--max-temp-bytes": "temp_bytes", "--live-fps": "live_fps",
        "--live-seconds": "live_seconds"}


def _shown(field: str, value: object) -> str:
    """A cap's value as the help shows it: ``none``, bytes as ``50mb`` / ``2gb``, numbers as they are."""
    if value is None:
        return "none"
    if field == "max_pixels" and isinstance(value, int) and value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if field.endswith("bytes") and isinstance(value, int):
        for unit, size in (("gb", 1024 ** 3), ("mb", 1024 ** 2), ("kb", 1024)):
            if value % size == 0:
                return f"{value // size}{unit}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def cap_help(flag: str) -> str:
    """``"(default X, public Y)"``: a cap's defaults on a local and on a public server, from :class:`Limits`."""
    field = CAPS[flag]
    local, public = getattr(Limits(), field), getattr(Limits.public_defaults(), field)
    return f"(default {_shown(field, local)}, public {_shown(field, public)})"


#: The lowest ``--max-resolution`` (0 aside: the mode's default): below it no backbone gives a useful grid.
MIN_MAX_RESOLUTION = 64
#: The flags whose value is a size in bytes (checked with :func:`~deepcut.utils.memory.parse_bytes`).
BYTE_FLAGS = ("--max-file-size", "--visitor-bytes", "--max-temp-bytes")


def checked(kind: type, flag: str) -> Callable[[str], object]:
    """The argparse ``type`` of ``flag``: ``kind`` of the text, a number never negative nor NaN nor infinite,
    ``--max-resolution`` 0 or at least :data:`MIN_MAX_RESOLUTION`, a size a size (:data:`BYTE_FLAGS`).
    Each refusal is an :class:`argparse.ArgumentTypeError` saying what is wanted."""
    def convert(text: str) -> object:
        if flag in BYTE_FLAGS:
            if text.strip():
                try:
                    parse_bytes(text, flag)
                except ConfigError as e:
                    raise argparse.ArgumentTypeError(str(e)) from None
            return text
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{flag} must be {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind in (int, float) and not (math.isfinite(value) and value >= 0):
            zero = " (0: the mode's default)" if flag in CAPS else ""
            raise argparse.ArgumentTypeError(f"{flag} must be 0 or more{zero}, got {text!r}")
        if flag == "--max-resolution" and 0 < value < MIN_MAX_RESOLUTION:
            raise argparse.ArgumentTypeError(f"{flag} must be 0 (the mode's default) or at least "
                                             f"{MIN_MAX_RESOLUTION} px, got {text!r}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


def _bytes(value: str, flag: str) -> int | None:
    return parse_bytes(value, flag) if value.strip() else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The app's options from ``argv`` (default: the command line) and the environment, each checked
    (:func:`checked`): a bad value, a flag's or an environment variable's (named), is a usage error (exit 2)."""
    env = os.environ.get
    p = argparse.ArgumentParser(description="DeepCut web demo (Gradio).")
    for flag, kind, var, default, text in FLAGS:
        caps = f" {cap_help(flag)}" if flag in CAPS else ""
        check = checked(kind, flag)
        raw = env(var, default)
        try:
            value = check(raw)
        except argparse.ArgumentTypeError as e:  # a bad environment value: a usage error naming the variable
            p.error(f"environment variable {var}={raw!r}: {e}")
        p.add_argument(flag, type=check, default=value, help=f"{text}{caps} [env {var}, default %(default)s]")
    public = env("DEEPCUT_PUBLIC", "").strip().lower() in ("1", "true", "yes") or bool(env("SPACE_ID"))
    p.add_argument("--public", action="store_true", default=public,
                   help="public deployment: no own weights, listed backbones only, tight caps "
                        "[env DEEPCUT_PUBLIC=1, or SPACE_ID set (HuggingFace Spaces)]")
    try:
        gnn_pinned()  # the GNN's products have no flag, only their environment variable
    except ConfigError as e:
        p.error(str(e))
    return p.parse_args(argv)


def limits_from_args(args: argparse.Namespace) -> Limits:
    """The server's :class:`Limits`: the mode's defaults, with the caps given by flag or environment."""
    listed = tuple(b.strip() for b in args.backbones.split(",") if b.strip()) or None
    if args.public and listed is None:
        listed = tuple(dict.fromkeys([args.backbone, "color"]))
    caps = dict(backbones=listed, max_pixels=args.max_pixels or None, max_resolution=args.max_resolution or None,
                max_epochs=args.max_epochs or None, max_frames=args.max_frames or None,
                max_images=args.max_images or None, seconds=args.time_limit or None,
                cache_seconds=args.cache_seconds or None, workers=max(1, args.concurrency),
                sessions=args.sessions or None, upload_files=args.max_upload_files or None,
                visitor_files=args.visitor_files or None, temp_files=args.max_temp_files or None,
                max_bytes=_bytes(args.max_file_size, "--max-file-size"),
                visitor_bytes=_bytes(args.visitor_bytes, "--visitor-bytes"),
                temp_bytes=_bytes(args.max_temp_bytes, "--max-temp-bytes"), live_fps=args.live_fps or None,
                live_seconds=args.live_seconds or None)
    return Limits.public_defaults(**caps) if args.public else Limits().with_overrides(**caps)
