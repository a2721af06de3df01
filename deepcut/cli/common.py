"""Argument handling shared by every ``python -m deepcut`` command.

The segmentation flags live in :mod:`.options` (re-exported here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DeepCutError
from ..utils.files import write_json_atomic
from .options import UsageError, add_config_args, check_device, config_from_args, make_model
from .outdir import RESULTS_NAME

__all__ = ["UsageError", "add_config_args", "check_device", "config_from_args", "make_model", "expand_inputs",
           "file_error", "unique_stems", "write_results", "add_image_args", "add_opacity_arg", "error"]


def add_opacity_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--opacity", type=float, default=0.5, help="overlay colour opacity (default: %(default)s)")


def add_image_args(p: argparse.ArgumentParser) -> None:
    """``IMAGE_OR_DIR...``, ``--out DIR`` and ``--opacity``: the commands writing one set of images per input."""
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--out", required=True, help="output folder")
    add_opacity_arg(p)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files named on the command line; a directory stands for its (non-hidden) files, sorted.

    Missing paths are kept, so that they are reported as failures like unreadable files.

    Raises:
        DeepCutError: nothing to process (only empty folders); the CLI exits with 1.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")))
        else:
            files.append(path)
    if not files:
        raise DeepCutError("no input files found")
    return files


def file_error(path: Path, exc: Exception | str) -> str:
    """The message for a file that failed, naming it once (many errors already name the file)."""
    return str(exc) if str(path) in str(exc) else f"{path}: {exc}"


def unique_stems(files: list[Path]) -> list[str]:
    """Output stems, made unique (``a``, ``a_2``, …) when two inputs share a stem."""
    seen: dict[str, int] = {}
    stems = []
    for f in files:
        n = seen.get(f.stem, 0) + 1
        seen[f.stem] = n
        stems.append(f.stem if n == 1 else f"{f.stem}_{n}")
    return stems


def write_results(out: Path, model, config, files: dict, failures: dict, **extra) -> Path:
    """Write ``out/results.json`` atomically: the backbone, the config, ``extra``, then every file's record
    and the failures; returns its path."""
    summary = {"backbone": model.backbone.describe(), "config": config.to_dict(), **extra, "files": files,
               "failures": failures}
    return write_json_atomic(out / RESULTS_NAME, summary)


def error(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
