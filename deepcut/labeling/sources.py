"""The images a labelling run reads: files, folders (recursive) and list files, in a fixed order.

Every image gets a ``file_name`` relative to the *input root* (the deepest folder holding every
input: a folder argument counts as itself, a list file or an image as its folder). That is the
COCO ``file_name`` and the key results are stored and resumed under, so a dataset can be moved
together with its labels, and detectron2's ``image_root`` is that folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import DeepCutError

#: Extensions of the files a folder contributes (compared in lower case). Files named explicitly
#: are read whatever their extension; a bad one is reported like any unreadable image.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff",
                              ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".avif"})
#: Extensions of list files: one image (or folder) path per line, relative to the list file's folder;
#: blank lines and lines starting with ``#`` are skipped.
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})


@dataclass(frozen=True)
class ImageSource:
    """One image to label.

    Attributes:
        path: absolute path of the file.
        file_name: POSIX path relative to the input root (the COCO ``file_name``; unique in a run).
    """

    path: Path
    file_name: str


def _abspath(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.fspath(path)))


def _is_excluded(path: Path, excluded: tuple[Path, ...]) -> bool:
    return any(path == e or e in path.parents for e in excluded)


def walk_images(folder: Path, excluded: tuple[Path, ...] = ()) -> list[Path]:
    """Image files under ``folder`` (recursive, following links to folders once each, hidden entries
    skipped), sorted by relative path."""
    found: list[Path] = []
    seen: set[str] = set()

    def unreadable(e: OSError) -> None:
        raise DeepCutError(f"{e.filename or folder}: cannot read this folder ({e.strerror or e}); fix its "
                           f"permissions or leave it out of the inputs")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        here = Path(dirpath)
        seen.add(os.path.realpath(here))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _is_excluded(here / d, excluded)
                             and os.path.realpath(here / d) not in seen)
        found.extend(here / f for f in filenames
                     if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted((p for p in found if not _is_excluded(p, excluded)), key=lambda p: p.relative_to(folder).parts)


def _read_list(list_file: Path) -> list[Path]:
    """The paths a list file names, relative ones taken from the list file's folder."""
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DeepCutError(f"{list_file}: cannot read the list of images ({e})") from None
    base = list_file.parent
    return [_abspath(base / line.strip()) for line in lines if line.strip() and not line.strip().startswith("#")]


def _expand(item: Path, excluded: tuple[Path, ...], from_list: bool) -> tuple[Path, list[Path]]:
    """``(root, files)`` of one input: a folder, a list file (only on the command line) or an image."""
    if item.is_dir():
        return item, walk_images(item, excluded)
    if not from_list and item.suffix.lower() in LIST_EXTENSIONS and item.is_file():
        files: list[Path] = []
        for entry in _read_list(item):
            files.extend(walk_images(entry, excluded) if entry.is_dir() else [entry])
        return item.parent, files
    return item.parent, [item]


def collect_sources(inputs: Iterable[str | os.PathLike], exclude: Iterable[str | os.PathLike] = (),
                    limit: int | None = None) -> tuple[Path, list[ImageSource]]:
    """The images of ``inputs``, in order, each once: ``(input_root, sources)``.

    Args:
        inputs: image files, folders (searched recursively for :data:`IMAGE_EXTENSIONS`) and list
            files (:data:`LIST_EXTENSIONS`). Missing files are kept, so that they are reported as
            failures like unreadable ones.
        exclude: files or folders never read (the run's own output file and shard folder).
        limit: keep only the first ``limit`` images.

    Raises:
        DeepCutError: no images found, a list file cannot be read, or a folder cannot be read
            (no permission).
    """
    excluded = tuple(_abspath(e) for e in exclude)
    roots: list[Path] = []
    files: list[Path] = []
    for item in inputs:
        try:
            root, found = _expand(_abspath(item), excluded, from_list=False)
        except OSError as e:  # a path under a folder that cannot be searched
            raise DeepCutError(f"{item}: cannot be read ({e.strerror or e})") from None
        roots.append(root)
        files.extend(f for f in found if not _is_excluded(f, excluded))
    unique = list(dict.fromkeys(files))
    if limit is not None:
        unique = unique[:max(int(limit), 0)]
    if not unique:
        raise DeepCutError("no input images found (folders are searched for "
                           f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    root = Path(os.path.commonpath([str(r) for r in roots + [f.parent for f in unique]]))
    return root, [ImageSource(f, f.relative_to(root).as_posix()) for f in unique]
