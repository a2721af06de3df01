"""``python -m deepcut slides IMAGE --out DIR``: what the app's *For slides* gives, from the command line.

One image is segmented and explained (:func:`deepcut.lessons.explain.explain`), then
:func:`deepcut.lessons.slides.export_files` writes every figure as a 1920×1080 slide PNG (the affinity of the
foreground's centre patch and every walkthrough step among them), the training replay as GIF and MP4 (1920 px
wide), the label map PNG and JSON, and one zip of all of it (with a ``README.txt`` listing them),
named ``<image>_<figure>_<settings>`` as the app names them. Gradio is not needed.

``--out`` and the names are checked before any work: a file of one of those names that DeepCut did not write
(per the folder's manifest, :mod:`deepcut.utils.manifest`) is a usage error, never replaced. The files are
written into a hidden folder inside ``--out`` and moved into place when all are done, so an interruption
leaves no half of a set; DeepCut's own files of an earlier run with the same settings are replaced.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from ..segmentation.notes import plural
from ..utils.manifest import OutputManifest, folder_lock
from .common import UsageError, add_config_args, add_opacity_arg, config_from_args, make_model, path_arg
from .outdir import check_out_dir

#: The hidden working folder's prefix, inside ``--out``.
WORK_PREFIX = ".deepcut-slides-"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "slides", help="one image's figures as 1920x1080 slides, the training replay as GIF and MP4, one zip",
        description="Segment IMAGE, explain the result (its cut against the spectral one, the training replay, the "
                    "features' principal components) and write what the app's 'For slides' gives into --out: every "
                    "figure as a 1920x1080 PNG with the settings in its caption (the affinity of the foreground's "
                    "centre patch and each step of the walkthrough among them), the replay as GIF and MP4, the "
                    "label map PNG and JSON, and one zip of all of it. Names say what and how: "
                    "<image>_<figure>_<settings>, e.g. cat_overlay_ncut-k3-2stages.png. A file of those names "
                    "that DeepCut did not write is never replaced.")
    p.add_argument("image", metavar="IMAGE", type=path_arg, help="the image to segment and explain")
    p.add_argument("--out", type=path_arg, required=True, help="output folder (created if missing)")
    add_opacity_arg(p)
    add_config_args(p)
    p.set_defaults(func=run)


def check_names(out: Path, manifest: OutputManifest, names: list[str]) -> None:
    """Refuse names that someone else's file (or a folder) holds in ``out``.

    Raises:
        UsageError: the first such name, and how many more.
    """
    clash = [n for n in names if not manifest.writable(n)]
    if clash:
        more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
        raise UsageError(f"--out {out} holds {clash[0]}{more}, which this run would write and DeepCut did not "
                         f"write; move it away or choose another --out")


def publish(out: Path, manifest: OutputManifest, planned: list[str],
            write: Callable[[Path], Iterable[Path]]) -> list[Path]:
    """``write(folder)`` into a hidden folder inside ``out``, then its files moved into ``out``, each recorded
    in the manifest; DeepCut's own files of ``planned`` that this run did not write again are removed.
    Returns the files' paths in ``out``."""
    with tempfile.TemporaryDirectory(dir=out, prefix=WORK_PREFIX) as tmp:
        files = [Path(f) for f in write(Path(tmp))]
        names = [f.name for f in files]
        check_names(out, manifest, names)  # a file that appeared meanwhile is not replaced either
        with manifest.writing(names):
            for f in files:
                os.replace(f, out / f.name)
    manifest.remove(n for n in planned if n not in names)
    return [out / n for n in names]


def run(args: argparse.Namespace) -> int:
    from ..features.image import load_image

    cfg = config_from_args(args)
    opacity = args.opacity  # checked when read (common.opacity_arg)
    out = check_out_dir(args.out, create=False)  # a bad --out fails before the model loads
    image, name = load_image(args.image), Path(args.image).name  # so does an unreadable image
    model = make_model(args)
    check_out_dir(out)
    with folder_lock(out):
        return write_lecture(model, cfg, out, image, name, opacity)


def write_lecture(model, cfg, out: Path, image, name: str, opacity: float) -> int:
    """Segment, explain and write the slides of ``image`` into ``out`` (held by this run)."""
    from tqdm import tqdm

    from ..lessons.explain import explain
    from ..lessons.names import config_slug
    from ..lessons.result import LessonResult
    from ..lessons.slides import export_files, export_names
    from ..lessons.walkthrough import Walkthrough
    from ..lessons.words import settings_line

    manifest = OutputManifest(out)
    planned = export_names(name, config_slug(cfg, int(model.backbone.depth)))
    check_names(out, manifest, planned)
    seg = model.segment(image, cfg)
    result = LessonResult.of(model.store, seg)
    print(f"{name}: {plural(seg.num_segments, 'segment')} ({settings_line(result)}); explaining and drawing the slides",
          file=sys.stderr)
    ex = explain(model.store, seg)
    walk = Walkthrough(model.store, result, ex, opacity=opacity)
    with tqdm(desc="slides", unit="file", file=sys.stderr, dynamic_ncols=True) as bar:
        def progress(done: int, total: int, what: str) -> None:
            bar.total = total
            bar.set_postfix_str(what, refresh=False)
            bar.update(done - bar.n)

        files = publish(out, manifest, planned, lambda folder: export_files(
            result, folder, name, ex, opacity=opacity, walk=walk, progress=progress))
    for f in files:
        print(f)
    print(f"{len(files)} files written into {out}; all of them in {files[-1].name}", file=sys.stderr)
    return 0
