"""What DeepCut wrote into a folder, by record rather than by name: a manifest per folder.

Every command that writes into a folder the user names (``segment`` and ``cosegment``'s ``--out``,
``video``'s ``--out`` and ``--labels-dir``, ``label``'s ``--out``) records each of its files in that
folder's :data:`MANIFEST_NAME` (written atomically): first as *pending*, just before the file is
written, then with the size and modification time it was left with. A file counts as DeepCut's
(:meth:`OutputManifest.owns`) only while it is the regular file recorded there (same size and
modification time, or still pending after a run was killed while writing it). Anything else — a
user's ``photo_cutout.png``, a link, or one of DeepCut's files that the user has since replaced or
edited — is never overwritten, deleted or read back as input.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DeepCutError
from .files import write_json_atomic

#: The manifest's file name (hidden, so folder scans never take it for an input).
MANIFEST_NAME = ".deepcut-outputs.json"
#: The manifest's ``format`` field; a file of that name without it is not DeepCut's.
FORMAT = "deepcut-outputs/1"


def _plain_name(name: object) -> bool:
    """Whether ``name`` names a file in the folder itself (no folder part, no ``..``)."""
    return isinstance(name, str) and name not in ("", ".", "..") and not any(
        c in name for c in ("/", "\0", os.sep, os.altsep or "/"))


class ForeignManifestError(DeepCutError):
    """A file named :data:`MANIFEST_NAME` exists but DeepCut did not write it."""


class OutputManifest:
    """The manifest of ``folder`` (which need not exist yet).

    Attributes:
        folder: the folder (its files are named by their names in it).
        entries: ``{name: {"size", "mtime_ns"} | {"pending": True}}``.
        foreign: a file of the manifest's name exists that is not a DeepCut manifest (nothing is then
            written: :meth:`save` raises :class:`ForeignManifestError`).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self.foreign = False
        self.entries: dict[str, dict] = self._load()

    def _load(self) -> dict[str, dict]:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError:  # a folder of that name, no permission, a path under a file
            self.foreign = os.path.lexists(self.path)
            return {}
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        files = data.get("files") if isinstance(data, dict) and data.get("format") == FORMAT else None
        if not isinstance(files, dict):
            self.foreign = True
            return {}
        return {k: v for k, v in files.items() if isinstance(v, dict) and _plain_name(k)}

    def _stat(self, name: str) -> os.stat_result | None:
        try:
            return os.lstat(self.folder / name)
        except (OSError, ValueError):
            return None

    def owns(self, name: str) -> bool:
        """Whether ``folder/name`` is a regular file DeepCut wrote and nobody has changed since."""
        entry = self.entries.get(name)
        st = self._stat(name) if entry is not None else None
        if entry is None or st is None or not stat.S_ISREG(st.st_mode):
            return False
        if entry.get("pending") is True:
            return True
        return entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns

    def writable(self, name: str) -> bool:
        """Whether DeepCut may (over)write ``folder/name``: nothing is there, or DeepCut's own file."""
        return self._stat(name) is None or self.owns(name)

    def check(self, flag: str = "--out") -> None:
        """Raise :class:`ForeignManifestError` if the manifest's name is taken by someone else's file."""
        if self.foreign:
            raise ForeignManifestError(f"{flag} {self.folder}: {self.path} exists and DeepCut did not write it; "
                                       f"move it away or choose another {flag}")

    def save(self) -> None:
        """Write the manifest (atomically)."""
        self.check()
        write_json_atomic(self.path, {"format": FORMAT, "about": "files DeepCut wrote in this folder",
                                      "files": dict(sorted(self.entries.items()))})

    def reserve(self, names: Iterable[str], kind: str | None = None) -> None:
        """Record ``names`` as pending (about to be written); ``kind``: what wrote them (e.g. ``"eval-mask"``,
        kept when they are recorded, see :meth:`of_kind`)."""
        for name in names:
            self.entries[name] = {"pending": True, **({"kind": kind} if kind else {})}
        self.save()

    def record(self, names: Iterable[str]) -> None:
        """Record ``names`` as written, with their size and modification time (missing ones are dropped)."""
        for name in names:
            st = self._stat(name)
            if st is None or not stat.S_ISREG(st.st_mode):
                self.entries.pop(name, None)
            else:
                kind = self.entries.get(name, {}).get("kind")
                self.entries[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                      **({"kind": kind} if kind else {})}
        self.save()

    def of_kind(self, kind: str) -> list[str]:
        """The names recorded with ``kind`` (see :meth:`reserve`)."""
        return [name for name, entry in self.entries.items() if entry.get("kind") == kind]

    @contextmanager
    def writing(self, names: Iterable[str]) -> Iterator[None]:
        """Around writing ``names``: reserved before the block, recorded after it (also after an error)."""
        names = list(names)
        self.reserve(names)
        try:
            yield
        finally:
            self.record(names)

    def remove(self, names: Iterable[str]) -> list[str]:
        """Delete those of ``names`` that DeepCut owns (:meth:`owns`); returns the names deleted."""
        gone = []
        for name in names:
            if not self.owns(name):
                continue
            try:
                (self.folder / name).unlink()
            except OSError:
                continue
            self.entries.pop(name, None)
            gone.append(name)
        if gone:
            self.save()
        return gone


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with links resolved as far as they go (a loop of links does not raise)."""
    return Path(os.path.realpath(path))


class Manifests:
    """The manifests of several folders, each read once (by real path)."""

    def __init__(self) -> None:
        self._by_folder: dict[Path, OutputManifest] = {}

    def of(self, folder: str | os.PathLike) -> OutputManifest:
        key = real_path(folder)
        if key not in self._by_folder:
            self._by_folder[key] = OutputManifest(key)
        return self._by_folder[key]

    def owns(self, path: str | os.PathLike) -> bool:
        """Whether the file ``path`` (links resolved) is one DeepCut wrote, per its folder's manifest."""
        real = real_path(path)
        return self.of(real.parent).owns(real.name)


@contextmanager
def folder_lock(folder: str | os.PathLike, flag: str = "--out") -> Iterator[None]:
    """Hold ``folder`` for one run that writes into it: a second run into the same folder is refused while
    this one holds it, so two runs never interleave their files or their manifest and results.

    The lock is the operating system's advisory lock (``flock``) on the folder itself: no file is added, and
    it is released when the block ends or the process dies, however it dies. Where ``flock`` does not exist
    (Windows) runs are not locked.

    Raises:
        DeepCutError: another process holds ``folder`` (the message names ``flag`` and the folder).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    fd = os.open(os.fspath(folder), os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeepCutError(f"{flag} {folder}: another DeepCut run is writing into this folder; wait for it to "
                               f"finish, or choose another folder") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def file_lock(path: str | os.PathLike, flag: str = "--out") -> Iterator[None]:
    """Hold the file ``path`` for one run that writes it: a second run writing the same file is refused while
    this one holds it (two runs never interleave one file, and neither's result is silently replaced).

    The lock is ``flock`` on a hidden ``.<name>.lock`` beside ``path`` (its folder must exist), removed when
    the block ends; if the process dies the file may stay, but the lock goes with the process, so it never
    blocks a later run. Where ``flock`` does not exist (Windows) runs are not locked.

    Raises:
        DeepCutError: another process holds ``path`` (the message names ``flag`` and the file).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    target = Path(path)
    lock = target.parent / f".{target.name}.lock"
    busy = DeepCutError(f"{flag} {target}: another DeepCut run is writing this file; wait for it to finish, or "
                        f"choose another name")
    for _ in range(3):  # the lock file may be removed by its holder between our open and our lock: try again
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy from None
        try:
            held = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            held = False
        if held:
            break
        os.close(fd)
    else:
        raise busy
    try:
        yield
    finally:
        try:
            os.unlink(lock)  # while still holding it: a run that opened it meanwhile sees it gone and retries
        except OSError:
            pass
        os.close(fd)
