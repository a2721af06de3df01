"""Argument handling shared by every ``python -m deepcut`` command.

The segmentation flags live in :mod:`.options` (re-exported here).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from ..errors import ConfigError, DeepCutError
from ..segmentation.result import check_opacity
from ..utils.files import write_json_atomic
from .options import UsageError, add_config_args, check_device, config_from_args, make_model
from .outdir import RESULTS_NAME, OutDir

__all__ = ["TERMINATING", "Terminated", "check_terminated", "stop_code", "UsageError",
           "add_config_args", "check_device", "config_from_args", "make_model", "expand_inputs", "relative_names",
           "file_error", "write_results", "finish_results", "add_image_args", "add_opacity_arg", "error", "path_arg"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch scheduler, ``docker stop``) during a command: raised where the
    command is, so that it cleans up as after Ctrl-C (partial files removed, a label run's work kept)."""


#: Set by the CLI's SIGTERM handler. Python drops an exception raised while a finaliser runs (``__del__``, a
#: generator's cleanup), so the handler's :class:`Terminated` can be lost; the commands' loops call
#: :func:`check_terminated` at each item, which raises it again.
TERMINATING = threading.Event()


def check_terminated() -> None:
    """Raise :class:`Terminated` if a SIGTERM came (see :data:`TERMINATING`)."""
    if TERMINATING.is_set():
        raise Terminated()


def stop_code(stop: BaseException | None) -> tuple[int, str]:
    """The exit code and word of a command stopped by ``stop``: ``(143, "terminated")`` for SIGTERM
    (:class:`Terminated`), ``(130, "interrupted")`` for Ctrl-C (or an unknown stop)."""
    return (143, "terminated") if isinstance(stop, Terminated) else (130, "interrupted")


def path_arg(text: str) -> str:
    """A path flag (``--out``, ``--labels-dir``, ``--save-masks`` …): not empty, which would mean the current
    folder (checked when the command line is read)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty (it would mean the current folder): name one")
    return text


def opacity_arg(text: str) -> float:
    """``--opacity``: a number from 0 to 1 (checked when the command line is read, before any work), by the
    library's own rule (:func:`~deepcut.segmentation.result.check_opacity`)."""
    try:
        return check_opacity(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected an opacity between 0 and 1, got {text!r}") from None


def add_opacity_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--opacity", type=opacity_arg, default=0.5,
                   help="overlay colour opacity, 0 to 1 (default: %(default)s)")


def add_image_args(p: argparse.ArgumentParser) -> None:
    """``IMAGE_OR_DIR...``, ``--out DIR`` and ``--opacity``: the commands writing one set of images per input."""
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", type=path_arg)
    p.add_argument("--out", required=True, type=path_arg, help="output folder")
    add_opacity_arg(p)


def expand_inputs(inputs: list[str], recursive: bool = False) -> list[Path]:
    """Files named on the command line; a directory stands for its (non-hidden) files, sorted, or with
    ``recursive`` for the images in it and its subfolders (hidden ones skipped, sorted by relative path).

    Missing paths are kept, so that they are reported as failures like unreadable files.

    Raises:
        DeepCutError: nothing to process (only empty folders), or a folder that cannot be listed (no
            permission); the CLI exits with 1.
    """
    files: list[Path] = []
    nested: list[Path] = []
    for item in inputs:
        path = Path(item)
        try:
            if recursive and path.is_dir():
                from ..labeling.sources import walk_images

                files.extend(walk_images(path))
            elif path.is_dir():
                entries = [f for f in path.iterdir() if not f.name.startswith(".")]
                files.extend(sorted(f for f in entries if f.is_file()))
                nested.extend(sorted(f for f in entries if f.is_dir()))
            else:
                files.append(path)
        except OSError as e:
            raise DeepCutError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not files:
        hint = (f" (a folder stands for its own files, not for those in its subfolders: name them, e.g. "
                f"{' '.join(map(str, nested[:3]))}{' …' if len(nested) > 3 else ''}, or add --recursive where the "
                f"command has it)") if nested else ""
        raise DeepCutError(f"no input files found{hint}")
    return files


def relative_names(files: list[Path], inputs: list[str]) -> list[str]:
    """A name per file for its outputs: its path below the input folder it was found in, without suffix,
    folders joined by ``_`` (``bear/00001.jpg`` → ``bear_00001``); a file named on its own, its stem."""
    folders = [Path(i) for i in inputs if Path(i).is_dir()]
    names = []
    for f in files:
        under = next((d for d in folders if d in f.parents), None)
        names.append("_".join(f.relative_to(under).with_suffix("").parts) if under is not None else f.stem)
    return names


def file_error(path: Path, exc: Exception | str) -> str:
    """The message for a file that failed, naming it once (many errors already name the file)."""
    return str(exc) if str(path) in str(exc) else f"{path}: {exc}"


def write_results(out: OutDir, model, config, files: dict, failures: dict, **extra) -> Path:
    """Write ``results.json`` into ``out`` atomically: the backbone, the config, ``extra``, then every
    file's record and the failures, and (``earlier``) the records of earlier runs into ``out`` that this run
    leaves standing (:meth:`~deepcut.cli.outdir.OutDir.earlier_runs`); returns its path. The first write reserves
    it in the folder's manifest; :func:`finish_results` records it."""
    earlier = out.earlier_runs()  # read before this run's first write replaces the file
    if out.manifest.entries.get(RESULTS_NAME) != {"pending": True}:
        out.manifest.reserve([RESULTS_NAME])
    summary = {"backbone": model.backbone.describe(), "config": model.store.config(config).to_dict(), **extra,
               "files": files, "failures": failures, **({"earlier": earlier} if earlier else {})}
    return write_json_atomic(out.path / RESULTS_NAME, summary)


def finish_results(out: OutDir) -> None:
    """Record ``results.json`` (its size and time) in the manifest of ``out`` once the run wrote it last."""
    out.manifest.record([RESULTS_NAME])


def error(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
