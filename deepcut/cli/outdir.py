"""The output folder of the batch commands (``segment``, ``cosegment``): checked before any work,
written atomically, never read back as input, and without stale files.

* :func:`check_out_dir` creates ``--out`` and proves it writable before a model is loaded, so a bad
  ``--out`` (an existing file, a path under a file, an unwritable folder, a ``results.json`` that is
  a folder) is a usage error, not a traceback after all the work.
* :func:`~deepcut.utils.files.write_json_atomic` replaces ``results.json`` in one step (a temporary file, then
  ``os.replace``): after every image it lists what is done, so an interruption loses nothing.
* :func:`drop_own_outputs` removes DeepCut's own outputs from the inputs (when ``--out`` is, or is
  inside, an input folder), and :func:`clear_outputs` removes an image's earlier outputs before it is
  written again, so that a rerun with other settings leaves no file that ``results.json`` does not list.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from .options import UsageError

RESULTS_NAME = "results.json"
#: The images written per input: ``<stem>_<kind>.png``.
OUTPUT_KINDS = ("labels", "overlay", "mask", "cutout")
OUTPUT_NAME = re.compile(r".+_(" + "|".join(OUTPUT_KINDS) + r")\.png$")


def check_out_dir(out: str | Path, flag: str = "--out", create: bool = True) -> Path:
    """``out`` proven usable: created (with its parents) and written to, or, with ``create=False``,
    only checked (an existing folder is probed; for a missing one, its nearest existing parent must
    be a writable folder) so that nothing is written before the other flags are checked. Returns it.

    Raises:
        UsageError: ``out`` is a file or lies under one, cannot be created or written, or its
            ``results.json`` is a folder.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is an existing file; name a folder (it is created if missing)")
    if not path.exists() and not create:
        parent = next((p for p in path.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir():
            raise UsageError(f"{flag} {path} cannot be created: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path} cannot be created: {parent} is not writable")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{flag} {path} cannot be created: part of the path is a file, not a folder") from None
    except OSError as e:
        raise UsageError(f"{flag} {path} cannot be created ({e.strerror or e})") from None
    results = path / RESULTS_NAME
    if results.exists() and not results.is_file():
        raise UsageError(f"{flag} {path}: {results} is a folder; remove it or choose another {flag}")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".deepcut-probe-", delete=True) as f:
            f.write(b"ok")
            f.flush()
    except OSError as e:
        raise UsageError(f"{flag} {path} is not writable ({e.strerror or e})") from None
    return path


def _real(path: str | Path) -> Path:
    """``path`` with links resolved as far as they go (a loop of links does not raise)."""
    return Path(os.path.realpath(path))


def listed_outputs(folder: Path) -> set[Path]:
    """The files an earlier run's ``folder/results.json`` lists as outputs (empty if none or unreadable)."""
    try:
        data = json.loads((folder / RESULTS_NAME).read_text())
    except (OSError, ValueError):
        return set()
    found: set[Path] = set()
    files = data.get("files") if isinstance(data, dict) else None
    for record in (files.values() if isinstance(files, dict) else ()):
        outputs = record.get("outputs") if isinstance(record, dict) else None
        for value in (outputs.values() if isinstance(outputs, dict) else ()):
            if isinstance(value, str):
                found.add(_real(value))
    return found


def is_own_output(path: Path, out: Path, listed: set[Path]) -> bool:
    """Whether ``path`` is something DeepCut wrote: listed by a ``results.json``, or, inside ``out``,
    ``results.json`` itself or a ``<stem>_<kind>.png``."""
    resolved = _real(path)
    if resolved in listed:
        return True
    if resolved.parent == _real(out):
        return path.name == RESULTS_NAME or bool(OUTPUT_NAME.fullmatch(path.name))
    return False


def drop_own_outputs(files: list[Path], out: Path) -> tuple[list[Path], list[Path]]:
    """``(inputs, skipped)``: ``files`` without DeepCut's own outputs (see :func:`is_own_output`; the
    ``results.json`` of every folder the files are in is consulted)."""
    listed: set[Path] = set()
    for folder in {f.parent for f in files} | {out}:
        listed |= listed_outputs(folder)
    keep, skipped = [], []
    for f in files:
        (skipped if is_own_output(f, out, listed) else keep).append(f)
    return keep, skipped


def clear_outputs(out: Path, stem: str, keep: dict[str, str] | None = None) -> None:
    """Remove ``out/<stem>_<kind>.png`` of every kind not in ``keep`` (``{kind: path}`` just written)."""
    for kind in OUTPUT_KINDS:
        if keep is not None and kind in keep:
            continue
        try:
            (out / f"{stem}_{kind}.png").unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # a folder of that name, or no permission: nothing of ours to remove
