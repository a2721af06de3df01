"""Files written in one step: a crash, a kill or a full disk leaves either the old file or the whole new
one, never a part of it. Every writer of results in DeepCut goes through :func:`atomic_path` (the CLI's
``results.json``, the labelling run's COCO file and shard metadata, overlay videos, the app's pictures).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def default_mode() -> int:
    """The permissions a new file gets from ``open()``: ``0o666`` less the process's umask (read from
    ``/proc`` where possible: setting the umask to read it is not thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without an error it replaces
    ``path`` in one ``os.replace`` (the file, then the folder, fsynced first unless ``fsync=False``),
    after an error (or an interrupt) it is removed and ``path`` is untouched.

    The new file gets the permissions ``open()`` would give it (:func:`default_mode`). ``suffix`` ends
    the temporary name (a writer that picks the format by extension, such as ffmpeg,
    needs the real one).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        os.fchmod(fd, default_mode())  # mkstemp's 0600 would make every result private
    except (OSError, AttributeError):
        pass
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


def write_atomic(path: str | Path, data: str | bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` in one step (see :func:`atomic_path`); returns the path."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON to ``path`` in one step (see :func:`atomic_path`); returns the path."""
    separators = (",", ":") if indent is None else None
    return write_atomic(path, json.dumps(data, indent=indent, separators=separators))


def read_json_dict(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` where the file is missing or unreadable, not JSON, or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cache_json(path: str | Path, data: Any) -> bool:
    """Write ``data`` as JSON to ``path`` in one step (:func:`write_json_atomic`), making its folder first; False
    where that cannot be done (a read-only or missing cache folder is passed over: what was measured then holds
    for this process only)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, data)
    except OSError:
        return False
    return True


#: Environment variable with the folder of DeepCut's per-machine cache (``auto``'s stored engine choices,
#: the converted OpenVINO models).
CACHE_ENV = "DEEPCUT_CACHE_DIR"


def cache_dir() -> Path:
    """``$DEEPCUT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepcut``, else ``~/.cache/deepcut``."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    if raw:
        return Path(os.path.expanduser(raw))
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return Path(os.path.expanduser(xdg) if xdg else os.path.expanduser("~/.cache")) / "deepcut"
