"""The output folder of the batch commands (``segment``, ``cosegment``): checked before any work,
written atomically, never read back as input, never touching a file DeepCut did not write.

* :func:`check_out_dir` creates ``--out`` and proves it writable before a model is loaded, so a bad
  ``--out`` (an existing file, a path under a file, an unwritable folder, a ``results.json`` that is
  a folder or someone else's file) is a usage error, not a traceback after all the work.
* What DeepCut wrote is known from the folder's manifest (:mod:`deepcut.utils.manifest`), never from
  a file's name: :meth:`OutDir.inputs` leaves DeepCut's own outputs out of the inputs (when ``--out``
  is, or is inside, an input folder), :meth:`OutDir.plan` gives every input a stem whose output names
  are free (``a``, ``a_2``, … for ``a.jpg``, ``a.png``, ``a_2.png``; never the name of a file that is
  not DeepCut's, nor of an input), and :meth:`OutDir.clear` removes only DeepCut's own earlier
  outputs of a stem, so that a rerun with other settings leaves no file that ``results.json`` does
  not list.
* :func:`~deepcut.utils.files.write_json_atomic` replaces ``results.json`` in one step (a temporary
  file, then ``os.replace``): after every image it lists what is done, so an interruption loses nothing.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from ..utils.manifest import ForeignManifestError, Manifests, OutputManifest, real_path
from .options import UsageError

RESULTS_NAME = "results.json"
#: The images written per input: ``<stem>_<kind>.png``.
OUTPUT_KINDS = ("labels", "overlay", "mask", "cutout")
#: Longest stem, in bytes (file names are limited to 255 bytes; the kind and a ``_N`` follow it).
MAX_STEM_BYTES = 200
#: The names ``video --labels-dir`` writes its label maps under.
FRAME_NAME = re.compile(r"frame_(\d+)\.png")
#: The keys of a ``results.json`` that an earlier DeepCut (before the manifest) wrote.
RESULTS_KEYS = frozenset({"backbone", "config", "files", "failures"})


def _check_existing(path: Path, flag: str) -> None:
    if path.is_symlink() and not path.exists():
        raise UsageError(f"{flag} {path} is a link to {os.readlink(path)}, which does not exist (or is a loop); "
                         f"DeepCut does not create folders through links: remove it or name another folder")
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is an existing file; name a folder (it is created if missing)")
    if not path.exists():
        parent = next((p for p in path.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir():
            raise UsageError(f"{flag} {path} cannot be created: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path} cannot be created: {parent} is not writable")


def check_out_dir(out: str | Path, flag: str = "--out", create: bool = True, results: bool = False) -> Path:
    """``out`` proven usable: created (with its parents) and written to, or, with ``create=False``,
    only checked (an existing folder is probed; for a missing one, its nearest existing parent must
    be a writable folder) so that nothing is written before the other flags are checked. Returns it.

    Raises:
        UsageError: ``out`` is a file or lies under one, cannot be created or written, holds a
            manifest DeepCut did not write, or (``results``) its ``results.json`` is a folder or a file
            DeepCut did not write.
    """
    path = Path(out)
    try:
        _check_existing(path, flag)
        if path.is_dir():
            check_results_name(path, flag, results)
    except OSError as e:  # no permission, a name too long, an I/O error …: the OS's reason, not a traceback
        raise UsageError(f"{flag} {path} cannot be used ({e.strerror or e})") from None
    if not path.exists() and not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{flag} {path} cannot be created: part of the path is a file, not a folder") from None
    except OSError as e:
        raise UsageError(f"{flag} {path} cannot be created ({e.strerror or e})") from None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".deepcut-probe-", delete=True) as f:
            f.write(b"ok")
            f.flush()
    except OSError as e:
        raise UsageError(f"{flag} {path} is not writable ({e.strerror or e})") from None
    return path


def check_results_name(folder: Path, flag: str, results: bool) -> None:
    """Refuse a folder whose manifest's name is someone else's file, or (``results``) whose
    ``results.json`` DeepCut cannot replace (a folder, or a file DeepCut did not write)."""
    manifest = OutputManifest(folder)
    try:
        manifest.check(flag)
    except ForeignManifestError as e:
        raise UsageError(str(e)) from None
    if not results:
        return
    path = folder / RESULTS_NAME
    if path.is_dir():
        raise UsageError(f"{flag} {folder}: {path} is a folder; remove it or choose another {flag}")
    if os.path.lexists(path) and not manifest.owns(RESULTS_NAME) and not _earlier_results(path):
        raise UsageError(f"{flag} {folder}: {path} exists and DeepCut did not write it; move it away or "
                         f"choose another {flag}")


def _earlier_results(path: Path) -> bool:
    """Whether ``path`` is a regular file holding a DeepCut ``results.json`` (one written before the
    manifest existed)."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > (64 << 20):
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and RESULTS_KEYS <= set(data)


def listed_outputs(folder: Path) -> set[Path]:
    """The files an earlier run's ``folder/results.json`` lists as outputs (empty if none or unreadable)."""
    try:
        data = json.loads((folder / RESULTS_NAME).read_text())
    except (OSError, ValueError, RecursionError):
        return set()
    found: set[Path] = set()
    files = data.get("files") if isinstance(data, dict) else None
    for record in (files.values() if isinstance(files, dict) else ()):
        outputs = record.get("outputs") if isinstance(record, dict) else None
        for value in (outputs.values() if isinstance(outputs, dict) else ()):
            if isinstance(value, str):
                found.add(real_path(value))
    return found


def _standing_runs(path: Path, inputs: set[Path], names: set[str]) -> list[dict]:
    """:meth:`OutDir.earlier_runs` of the ``results.json`` at ``path`` (none where it is missing or unreadable),
    for a run of ``inputs`` (real paths) writing the output ``names`` (casefolded)."""
    try:
        data = json.loads(path.read_bytes()) if path.is_file() and path.stat().st_size <= (64 << 20) else None
    except (OSError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return []
    earlier = data.get("earlier")
    runs = [data, *(r for r in (earlier if isinstance(earlier, list) else []) if isinstance(r, dict))]
    seen, kept = set(inputs), []
    for run in runs:  # the latest first: a file's latest record wins
        files, failures = run.get("files"), run.get("failures")
        files = {p: r for p, r in (files.items() if isinstance(files, dict) else ())
                 if _stands(p, r, seen, names)}
        failures = {p: why for p, why in (failures.items() if isinstance(failures, dict) else ())
                    if isinstance(p, str) and real_path(p) not in seen and p not in files}
        seen |= {real_path(p) for p in [*files, *failures]}
        if files or failures:
            kept.append({"backbone": run.get("backbone"), "config": run.get("config"), "files": files,
                         "failures": failures})
    return kept


def _stands(path: object, record: object, seen: set[Path], names: set[str]) -> bool:
    """Whether an earlier run's ``record`` of the input ``path`` still holds: not an input redone (``seen``), and
    none of its outputs is one of this run's output ``names``."""
    if not isinstance(path, str) or not isinstance(record, dict) or real_path(path) in seen:
        return False
    outputs = record.get("outputs")
    return not any(isinstance(v, str) and Path(v).name.casefold() in names
                   for v in (outputs.values() if isinstance(outputs, dict) else ()))


def safe_stem(stem: str) -> str:
    """``stem`` cut to :data:`MAX_STEM_BYTES` (at a character boundary); ``image`` if empty."""
    raw = os.fsencode(stem)
    if len(raw) > MAX_STEM_BYTES:
        stem = raw[:MAX_STEM_BYTES].decode("utf-8", "ignore")
    return stem or "image"


class OutDir:
    """The ``--out`` folder of a batch command (it may not exist yet): its manifest and the output
    names of the run's inputs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.manifests = Manifests()
        self.manifest = self.manifests.of(self.path)
        self.real = real_path(self.path)
        self._inputs_here: set[str] = set()
        self._planned: list[tuple[Path, str]] = []  # this run's inputs and their stems (plan)
        self._earlier: list[dict] | None = None  # what earlier runs' results.json keeps (earlier_runs)

    def is_own(self, f: Path, listed: set[Path]) -> bool:
        """Whether the input ``f`` is one of DeepCut's outputs: in its folder's manifest, or (folders
        without a manifest: earlier versions) listed by that folder's ``results.json``."""
        real = real_path(f)
        manifest = self.manifests.of(real.parent)
        if manifest.owns(real.name):
            return True
        if manifest.entries:
            return False
        return real in listed or (real.name == RESULTS_NAME and _earlier_results(real))

    def inputs(self, files: list[Path]) -> tuple[list[Path], list[Path]]:
        """``(inputs, skipped)``: ``files`` once each, without DeepCut's own outputs (:meth:`is_own`)."""
        files = list(dict.fromkeys(files))
        listed: set[Path] = set()
        for folder in {real_path(f).parent for f in files} | {self.real}:
            listed |= listed_outputs(folder)
        keep: list[Path] = []
        skipped: list[Path] = []
        for f in files:
            (skipped if self.is_own(f, listed) else keep).append(f)
        self._inputs_here = {real_path(f).name.casefold() for f in keep if real_path(f).parent == self.real}
        return keep, skipped

    def plan(self, files: list[Path], kinds: tuple[str, ...] = OUTPUT_KINDS,
             bases: list[str] | None = None) -> list[str]:
        """One stem per input (call :meth:`inputs` first) from its ``bases`` (default: the files' stems), unique
        (also when compared without case) and such that none of ``<stem>_<kind>.png`` is an input or a file
        DeepCut did not write."""
        taken = set(self._inputs_here)
        stems = []
        for i, f in enumerate(files):
            base, n = safe_stem(bases[i] if bases is not None else f.stem), 1
            while True:
                stem = base if n == 1 else f"{base}_{n}"
                names = [f"{stem}_{kind}.png" for kind in kinds]
                if all(name.casefold() not in taken and self.manifest.writable(name) for name in names):
                    break
                n += 1
            taken.update(name.casefold() for name in names)
            stems.append(stem)
        self._planned += list(zip(files, stems, strict=True))
        return stems

    def earlier_runs(self) -> list[dict]:
        """The records of earlier runs into this folder that this run leaves standing, for ``results.json``'s
        ``earlier``: read once, at the run's first write of it (under the folder's lock), from the
        ``results.json`` there (DeepCut's: :func:`check_results_name` refused any other). Each earlier run
        (the latest first) keeps its backbone and config and the files and failures of the inputs this run does
        not redo and whose outputs this run does not replace; a run with none of them is left out."""
        if self._earlier is None:
            inputs = {real_path(f) for f, _ in self._planned}
            names = {f"{stem}_{kind}.png".casefold() for _, stem in self._planned for kind in OUTPUT_KINDS}
            self._earlier = _standing_runs(self.path / RESULTS_NAME, inputs, names)
        return self._earlier

    def clear(self, stem: str, keep: dict[str, str] | None = None) -> None:
        """Remove DeepCut's own ``<stem>_<kind>.png`` of every kind not in ``keep`` (``{kind: path}``
        just written); a file DeepCut did not write, whatever its name, stays."""
        self.manifest.remove(f"{stem}_{kind}.png" for kind in OUTPUT_KINDS if keep is None or kind not in keep)


def _within(path: Path, source: Path) -> bool:
    """Whether ``path`` is ``source`` or (``source`` a folder) inside it, links resolved."""
    real, src = real_path(path), real_path(source)
    return real == src or (src.is_dir() and src in real.parents)


def check_video_paths(video: Path, out: Path, labels_dir: Path | None, manifests: Manifests,
                      frame_name: Callable[[int], str], summary_name: str, wanted: Callable[[int], bool]) -> None:
    """Refuse, before any work, a ``video`` run that would write over its input or over a file
    DeepCut did not write: ``--out`` or ``--labels-dir`` that is (or is inside) the input video or
    folder of frames, an existing ``--out`` not DeepCut's, or a ``--labels-dir`` holding a
    ``frame_<index>.png`` the run would write (``wanted(index)``) or a summary that is not DeepCut's.

    Raises:
        UsageError: any of those.
    """
    what = "folder of frames" if video.is_dir() else "video"
    if _within(out, video):
        raise UsageError(f"--out {out} is {'inside ' if video.is_dir() else ''}the input {what} {video}; "
                         f"name another file")
    if labels_dir is not None and _within(labels_dir, video):
        raise UsageError(f"--labels-dir {labels_dir} is the input {what} {video} or inside it; name another folder")
    if os.path.lexists(out) and not manifests.of(out.parent).owns(out.name):
        raise UsageError(f"--out {out} exists and DeepCut did not write it; remove it or choose another name")
    if labels_dir is None or not labels_dir.is_dir():
        return
    manifest = manifests.of(labels_dir)
    names = [summary_name]
    try:
        entries = [entry.name for entry in os.scandir(labels_dir)]
    except OSError as e:
        raise UsageError(f"--labels-dir {labels_dir} cannot be read ({e.strerror or e})") from None
    for name in entries:
        m = FRAME_NAME.fullmatch(name)
        if m and frame_name(int(m.group(1))) == name and wanted(int(m.group(1))):
            names.append(name)
    clash = sorted(n for n in names if not manifest.writable(n))
    if clash:
        more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
        raise UsageError(f"--labels-dir {labels_dir} holds {clash[0]}{more}, which this run would replace and "
                         f"DeepCut did not write; move them away or choose another --labels-dir")
