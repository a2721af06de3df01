"""Crash-safe storage of a labelling run: JSON-lines shards beside the output, the output written atomically.

A run writing ``PSEUDO.json`` keeps its progress in ``PSEUDO.json.parts/``:

* ``meta.json``: what the run computes (configuration, objects, backbone, input root, version);
  ``--resume`` refuses a run that would compute something else; ``backbone.json``: the backbone's
  description, for the final file;
* ``part-0001.jsonl``, ``part-0002.jsonl``, …: one file per (resumed) run, one image record per line
  (:mod:`.coco`), each line flushed and fsynced before the next image counts as done. Old parts are
  never written again, so a line torn by a crash can only be the last line of a part. A line that is
  not a whole record (torn, not JSON, or JSON of another shape: :func:`~.coco.record_problem`) and a
  part that cannot be read are skipped and reported (:attr:`ShardStore.problems`); their images have
  no result, so ``--resume`` labels them again.

The final file is written to a temporary file in the same folder, fsynced and moved over the output
with :func:`os.replace` (:mod:`deepcut.utils.files`), so it is either the old file or the complete new one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import DeepCutError
from ..utils.files import write_json_atomic
from .coco import record_problem

META = "meta.json"
BACKBONE = "backbone.json"
PART = re.compile(r"^part-(\d+)\.jsonl$")


def parts_dir(out: Path) -> Path:
    """The shard folder of output file ``out``: ``out`` + ``.parts``."""
    return out.with_name(out.name + ".parts")


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """``"key: was X, now Y; …"`` for every key whose value differs (empty: none)."""
    keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    return "; ".join(f"{k}: was {json.dumps(stored.get(k))}, now {json.dumps(wanted.get(k))}" for k in keys)


def _normalise(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(meta))


class ShardWriter:
    """Appends image records, one JSON line each, to a new part file; every line is fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "x", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        """Append ``records``, fsynced once at the end (records copied from a finished file, not new work)."""
        for record in records:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShardStore:
    """The shard folder of one output file.

    Args:
        out: the final COCO file (``PSEUDO.json``); shards live in :func:`parts_dir` of it.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.folder = parts_dir(out)
        self.problems: list[str] = []
        #: Whether the shards were made from the finished file ``out`` (:meth:`reopen`): messages name the file.
        self.reopened = False

    def exists(self) -> bool:
        return (self.folder / META).is_file()

    def read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.folder / META).read_text())
            if not isinstance(meta, dict):
                raise ValueError(f"expected an object, got {type(meta).__name__}")
            return meta
        except (OSError, ValueError, RecursionError) as e:
            raise DeepCutError(f"{self.folder / META}: cannot read the earlier run's settings ({e}); "
                               f"delete {self.folder} (or use --restart) to start again") from None

    def check_resumable(self, meta: dict[str, Any]) -> None:
        """Raise :class:`DeepCutError` unless the stored run computes exactly what ``meta`` describes."""
        diffs = _differences(self.read_meta(), _normalise(meta))
        if diffs:
            raise DeepCutError(f"cannot --resume: the earlier run in {self.folder} used other settings ({diffs}). "
                               f"Rerun with the same settings, or delete {self.folder} (or use --restart) to "
                               f"start again")

    def check_backbone(self, described: dict[str, Any]) -> None:
        """Raise :class:`DeepCutError` if the earlier run's backbone (its stored description) differs from
        ``described``, the resumed run's: another effective precision (``"auto"`` on other hardware),
        default resolution (the resolution a config without one runs at), weights or shape."""
        stored = self.backbone()
        if stored is None:  # the earlier run stopped before its model was built
            return
        diffs = _differences(stored, _normalise(described))
        if diffs and self.reopened:
            raise DeepCutError(f"cannot --resume: {self.out} was computed with another backbone setup ({diffs}). "
                               f"Rerun with the same settings, or without --resume to label everything again")
        if diffs:
            raise DeepCutError(f"cannot --resume: the earlier run in {self.folder} computed with another backbone "
                               f"setup ({diffs}). Rerun with the same settings, or delete {self.folder} (or use "
                               f"--restart) to start again")

    def clear(self) -> None:
        """Remove an earlier run's shards (:meth:`remove`) and check that nothing is left at the folder's path.

        Raises:
            DeepCutError: something that is not a run's shards is there (a link, a file, someone else's
                files in the folder, a folder where a shard file belongs); it is left as it was.
        """
        self.remove()
        if not os.path.lexists(self.folder):
            return
        if self.folder.is_symlink() or not self.folder.is_dir():
            what = "a link" if self.folder.is_symlink() else "a file"
            raise DeepCutError(f"{self.folder} is {what}, not a run's shard folder; move it away or choose another "
                               f"--out")
        try:
            left = sorted(p.name for p in self.folder.iterdir())
        except OSError as e:
            raise DeepCutError(f"{self.folder}: cannot list it ({e.strerror or e})") from None
        more = f" and {len(left) - 3} more" if len(left) > 3 else ""
        raise DeepCutError(f"{self.folder} holds {', '.join(left[:3]) or 'nothing readable'}{more}, which is not a "
                           f"run's shards (someone else's file, or a folder where a shard file belongs); DeepCut "
                           f"leaves it as it is: move it away or choose another --out")

    def create(self, meta: dict[str, Any]) -> None:
        """Start a new run: an empty shard folder holding ``meta`` (removing an earlier one's shards).

        Raises:
            DeepCutError: something else is at the folder's path (:meth:`clear`).
        """
        self.clear()
        self.folder.mkdir(parents=True)
        write_json_atomic(self.folder / META, _normalise(meta))

    def reopen(self, coco: dict[str, Any], meta: dict[str, Any], source: Path) -> None:
        """Make the finished COCO file ``coco`` (read from ``source``) an unfinished run of ``meta`` again: its
        settings checked against ``meta``, its backbone and records stored as shards, so that a resumed run
        labels only what it lacks (new images, changed files, failures).

        Raises:
            DeepCutError: ``coco`` records other settings, none (an earlier version's file), or is not a COCO
                file of DeepCut's.
        """
        from .coco import records_from_coco

        try:
            info = coco["info"]
            if "resume" not in info:
                raise DeepCutError(f"cannot --resume from {source}: an earlier DeepCut version wrote it without the "
                                   f"settings a resume must match; rerun without --resume to label everything again")
            stored, described, records = info["resume"], info["backbone"], records_from_coco(coco)
        except (KeyError, TypeError, ValueError) as e:
            raise DeepCutError(f"cannot --resume from {source}: it is not a COCO file of DeepCut's ({e}); rerun "
                               f"without --resume to label everything again") from None
        diffs = _differences(stored, _normalise(meta))
        if diffs:
            raise DeepCutError(f"cannot --resume: {source} was made with other settings ({diffs}). Rerun with the "
                               f"same settings, or without --resume to label everything again")
        self.create(meta)
        self.save_backbone(described)
        with self.writer() as writer:
            writer.write_all(records)
        self.reopened = True

    def save_backbone(self, described: dict[str, Any]) -> None:
        """Remember the backbone's description (the first run's; it goes into the final file)."""
        if not (self.folder / BACKBONE).is_file():
            write_json_atomic(self.folder / BACKBONE, described)

    def backbone(self) -> dict[str, Any] | None:
        """The stored backbone description, if a run got as far as building its model."""
        try:
            described = json.loads((self.folder / BACKBONE).read_text())
        except (OSError, ValueError, RecursionError):
            return None
        return described if isinstance(described, dict) else None

    def part_files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        try:
            found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := PART.match(p.name))]
        except OSError as e:
            raise DeepCutError(f"{self.folder}: cannot list the earlier run's shards ({e.strerror or e})") from None
        return [p for _, p in sorted(found)]

    def writer(self) -> ShardWriter:
        """A writer to a new part file (numbered after every existing one)."""
        parts = self.part_files()
        last = PART.match(parts[-1].name) if parts else None  # part_files holds only matching names
        n = int(last.group(1)) + 1 if last else 1
        return ShardWriter(self.folder / f"part-{n:04d}.jsonl")

    def records(self) -> dict[str, dict[str, Any]]:
        """Every stored whole record by ``file_name`` (a later record of the same image replaces an
        earlier one); what was skipped is in :attr:`problems`."""
        out: dict[str, dict[str, Any]] = {}
        self.problems = []
        for part in self.part_files():
            for record in _read_part(part, self.problems):
                out[record["file_name"]] = record
        return out

    def remove(self) -> None:
        """Delete the shard folder (only the files a run writes; anything else is left, with the folder;
        a link is never followed)."""
        if self.folder.is_symlink() or not self.folder.is_dir():
            return
        for p in self.folder.iterdir():
            if (p.name in (META, BACKBONE) or PART.match(p.name) or p.name.endswith(".tmp")) and p.is_file():
                try:
                    p.unlink()
                except OSError:
                    pass  # left, with the folder
        try:
            self.folder.rmdir()
        except OSError:
            pass


def _read_part(part: Path, problems: list[str]) -> Iterator[dict[str, Any]]:
    """The whole records of one part file; any other line (torn by a crash, or not a record), or the
    whole part if it cannot be read, is skipped and described in ``problems``."""
    try:
        lines = part.read_bytes().split(b"\n")
    except OSError as e:
        problems.append(f"{part}: cannot be read ({e.strerror or e}); its images are labelled again")
        return
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to be a record
            torn = all(not rest.strip() for rest in lines[i + 1:])
            problems.append(f"{part}: line {i + 1} is {'cut short' if torn else 'not JSON'}; its image is "
                            f"labelled again")
            continue
        problem = record_problem(record)
        if problem is not None:
            problems.append(f"{part}: line {i + 1} is not a whole image record ({problem}); its image is "
                            f"labelled again")
            continue
        yield record
