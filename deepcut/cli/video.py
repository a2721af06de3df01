"""``python -m deepcut video VIDEO --out OUT.mp4|OUT.gif`` and ``python -m deepcut cosegment IMAGES... --out DIR``."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from pathlib import Path

import numpy as np

from ..config import parse_epochs
from ..errors import ConfigError
from ..segmentation.notes import plural
from ..utils.files import atomic_path, write_json_atomic
from ..utils.manifest import Manifests, file_lock, folder_lock
from .common import (
    UsageError,
    add_config_args,
    add_image_args,
    add_opacity_arg,
    check_terminated,
    config_from_args,
    error,
    expand_inputs,
    file_error,
    finish_results,
    make_model,
    path_arg,
    write_results,
)
from .outdir import OutDir, check_out_dir, check_video_paths

#: What ``--labels-dir`` holds: ``frame_<index>.png`` and this summary.
SUMMARY_NAME = "summary.json"


def register(sub: argparse._SubParsersAction) -> None:
    from ..tasks.video import WRITE_SUFFIXES

    p = sub.add_parser(
        "video", help="segment a video with labels consistent over time",
        description="Segment a video (mp4, webm, mov, mkv, avi, gif … or a folder of frames). Writes an overlay "
                    "video with one frame per processed frame (MP4/H.264, WebM or GIF, by the suffix of --out); "
                    "--labels-dir also saves every frame's label map as PNG. A part keeps its label and colour "
                    "from frame to frame.")
    p.add_argument("video", metavar="VIDEO", type=path_arg, help="video file, GIF, or folder of frame images")
    p.add_argument("--out", type=path_arg, required=True, help=f"overlay video to write ({', '.join(WRITE_SUFFIXES)})")
    p.add_argument(
        "--max-frames", type=int, default=300, help="process at most this many frames (default: %(default)s)"
    )
    p.add_argument("--frame-stride", type=int, default=1, help="process every S-th frame (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per ViT forward pass (default: %(default)s)")
    p.add_argument("--warm-epochs", type=int, nargs="+", default=None, metavar="N",
                   help="GNN epochs of stages 1 [2 3] after the first frame, which warm-starts the others "
                        "(default: a fifth of --epochs)")
    p.add_argument("--labels-dir", type=path_arg, default=None, metavar="DIR",
                   help="also write every frame's label map to DIR/frame_<index>.png and DIR/summary.json")
    add_opacity_arg(p)
    add_config_args(p)
    p.set_defaults(func=run_video)

    c = sub.add_parser(
        "cosegment", help="segment several images together (shared labels)",
        description="Segment several images with one shared GNN so that the same part gets the same label "
                    "(and colour) in every image. Writes <stem>_labels.png, <stem>_overlay.png, <stem>_mask.png "
                    "and results.json into --out.")
    add_image_args(c)
    add_config_args(c)
    c.set_defaults(func=run_cosegment)


def label_values(labels: np.ndarray) -> list[int]:
    """The distinct labels of a label map, sorted."""
    return [int(v) for v in np.unique(labels)]


def warm_epochs_from_args(values: list[int] | None, cfg) -> tuple[int, int, int] | None:
    """``--warm-epochs``, like ``--epochs`` one number or three, except that one number leaves stages
    2 and 3 at their warm default (a fifth of ``cfg.epochs``); None: the default for all three.

    Raises:
        UsageError: other than one or three numbers, or a number below 1.
    """
    if values is None:
        return None
    from ..tasks.video import default_warm_epochs

    try:
        epochs = parse_epochs(values)
        if len(values) == 1:
            epochs = (epochs[0], *default_warm_epochs(cfg.epochs)[1:])
        return cfg.replace(epochs=epochs).epochs  # the config's own checks (at least 1 epoch)
    except ConfigError as e:
        raise UsageError(f"--warm-epochs: {e}") from None


def frame_name(index: int) -> str:
    """The name of the label map of frame ``index`` in ``--labels-dir``."""
    return f"frame_{index:05d}.png"


def clear_label_maps(labels) -> int:
    """Remove the label maps (and summary) an earlier run wrote into ``--labels-dir`` (its
    :class:`~deepcut.utils.manifest.OutputManifest` ``labels``: files DeepCut wrote and nobody changed), so that
    the folder holds this run's frames only (another ``--max-frames`` or ``--frame-stride``, or a run stopped
    half-way, left its other frames beside them). Returns how many frames were removed."""
    frames = [n for n in labels.entries if re.fullmatch(r"frame_\d{5,}\.png", n)]
    gone = labels.remove([*frames, SUMMARY_NAME])
    return len([n for n in gone if n != SUMMARY_NAME])


def _check_video_args(args: argparse.Namespace, cfg, manifests: Manifests) -> tuple[Path, Path | None, tuple | None]:
    """``(out, labels_dir, warm_epochs)`` once every flag and path is checked (nothing written yet)."""
    from ..tasks.video import WRITE_SUFFIXES

    out = Path(args.out)
    if out.suffix.lower() not in WRITE_SUFFIXES:
        raise UsageError(f"--out must end in one of {', '.join(WRITE_SUFFIXES)}, got {out.name!r}")
    if args.max_frames < 1 or args.frame_stride < 1 or args.batch_size < 1:
        raise UsageError("--max-frames, --frame-stride and --batch-size must be at least 1")
    warm_epochs = warm_epochs_from_args(args.warm_epochs, cfg)
    labels_dir = Path(args.labels_dir) if args.labels_dir else None
    last = args.max_frames * args.frame_stride
    try:
        if out.is_dir():
            raise UsageError(f"--out {out} is a folder; name the video file to write")
        check_video_paths(Path(args.video), out, labels_dir, manifests, frame_name, SUMMARY_NAME,
                          lambda i: i % args.frame_stride == 0 and i < last)
    except OSError as e:  # a name too long, no permission …: the path and the OS's reason, not a traceback
        raise UsageError(f"cannot use {e.filename or out} ({e.strerror or e})") from None
    check_out_dir(out.parent, "--out's folder", create=False)
    if labels_dir is not None:
        check_out_dir(labels_dir, "--labels-dir", create=False)
    return out, labels_dir, warm_epochs


def run_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    cfg = config_from_args(args)
    manifests = Manifests()
    out, labels_dir, warm_epochs = _check_video_args(args, cfg, manifests)
    model = make_model(args)
    t0 = time.perf_counter()
    bar = None

    def progress(done: int, total: int) -> None:
        if bar is None:
            return
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    # Opening checks the input (a clear error before any work); frames are read while writing.
    stream = model.segment_video(args.video, cfg, max_frames=args.max_frames, frame_stride=args.frame_stride,
                                 batch_size=args.batch_size, progress=progress, warm_epochs=warm_epochs)
    bar = tqdm(desc="segmenting", unit="frame", total=stream.total, file=sys.stderr)
    if labels_dir is not None:
        check_out_dir(labels_dir, "--labels-dir")
    check_out_dir(out.parent, "--out's folder")
    with contextlib.ExitStack() as held:  # one run at a time writes this video (and its label maps)
        held.enter_context(file_lock(out))
        if labels_dir is not None:
            held.enter_context(folder_lock(labels_dir, "--labels-dir"))
        return _write_video(args, model, cfg, manifests, stream, out, labels_dir, bar, t0)


def _write_video(args: argparse.Namespace, model, cfg, manifests: Manifests, stream, out: Path,
                 labels_dir: Path | None, bar, t0: float) -> int:
    """Write the overlay video (and the label maps and their summary) of ``stream`` (held by this run)."""
    from ..tasks.video import write_video

    labels = manifests.of(labels_dir) if labels_dir is not None else None
    if labels is not None and (cleared := clear_label_maps(labels)):
        print(f"--labels-dir: removed {plural(cleared, 'label map')} of an earlier run", file=sys.stderr)
    written: list[str] = []
    segments: set[int] = set()

    def overlays():
        for i, seg in enumerate(stream):
            check_terminated()
            if labels is not None:
                path = labels_dir / frame_name(i * args.frame_stride)
                labels.reserve([path.name])
                with atomic_path(path, suffix=".png") as tmp:
                    seg.labels_image().save(tmp, format="PNG")
                written.append(str(path))
            segments.update(label_values(seg.labels))
            yield seg.overlay(args.opacity)

    try:
        with manifests.of(out.parent).writing([out.name]):
            n = write_video(overlays(), out, fps=stream.fps)
    finally:
        bar.close()
        if labels is not None:
            labels.record(Path(p).name for p in written)
    summary = video_summary(args, out, n, stream, segments, model, cfg)
    if labels is not None and labels_dir is not None:
        summary["label_maps"] = written
        with labels.writing([SUMMARY_NAME]):
            write_json_atomic(labels_dir / SUMMARY_NAME, summary)
    for note in stream.notes:
        print(f"note: {note}", file=sys.stderr)
    secs = time.perf_counter() - t0
    print(f"{plural(n, 'frame')} segmented in {secs:.1f} s ({n / max(secs, 1e-9):.2f} frames/s); overlay video: {out}",
          file=sys.stderr)
    return 0


def video_summary(args: argparse.Namespace, out: Path, n: int, stream, segments: set[int], model, cfg) -> dict:
    """What ``--labels-dir``'s ``summary.json`` says about the run."""
    info = stream.info
    return {
        "video": str(args.video),
        "out": str(out),
        "frames": n,
        "fps": round(stream.fps, 4),
        "input": {"kind": info.kind, "fps": round(info.fps, 4), "size": list(info.size),
                  "source_size": list(info.source_size), "frames": info.n_frames, "codec": info.codec},
        "labels": sorted(segments),
        "stats": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in stream.stats.items()},
        "notes": stream.notes,
        "backbone": model.backbone.describe(),
        "config": model.store.config(cfg).to_dict(),  # the backbone's resolution when none was given
    }


def run_cosegment(args: argparse.Namespace) -> int:
    from ..errors import ImageLoadError
    from ..features.image import load_image

    cfg = config_from_args(args)
    out = OutDir(check_out_dir(args.out, create=False, results=True))
    files, _ = out.inputs(expand_inputs(args.inputs))
    images, names, failures = [], [], {}
    for path, stem in zip(files, out.plan(files), strict=False):
        try:
            images.append(load_image(path))
            names.append((path, stem))
        except ImageLoadError as e:
            error(file_error(path, e))
            failures[str(path)] = str(e)
    if not images:
        error("none of the images could be read")
        return 1
    with contextlib.ExitStack() as held:
        early = out.path.is_dir()  # held before the work: a run already writing into it is refused at once
        if early:
            held.enter_context(folder_lock(out.path))
        model = make_model(args)
        print(f"co-segmenting {len(images)} images with one GNN …", file=sys.stderr)
        t = time.perf_counter()
        segs = model.cosegment(images, cfg)
        check_out_dir(out.path, results=True)  # a new folder is made only now, with something to write into it
        if not early:
            held.enter_context(folder_lock(out.path))
        return write_cosegmentation(args, model, out, names, segs, failures, time.perf_counter() - t)


def write_cosegmentation(args: argparse.Namespace, model, out: OutDir, names: list, segs: list, failures: dict,
                         seconds: float) -> int:
    """Write the co-segmented images' files and ``results.json`` into ``out`` (held by this run)."""
    results = {}
    for (path, stem), seg in zip(names, segs, strict=False):
        out.clear(stem)
        with out.manifest.writing(f"{stem}_{kind}.png" for kind in ("labels", "overlay", "mask")):
            written = seg.save(out.path, stem, alpha=args.opacity)
        results[str(path)] = {**seg.summary(), "labels": label_values(seg.labels), "outputs": written}
    results_path = write_results(out, model, segs[0].config, results, failures, seconds=round(seconds, 3))
    finish_results(out)
    common = [n for n in segs[0].notes if all(n in seg.notes for seg in segs)]  # the one GNN's, said once
    for note in common:
        print(f"note: {note}", file=sys.stderr)
    for (path, _), seg in zip(names, segs, strict=False):  # and each image's own, named
        for note in seg.notes:
            if note not in common:
                print(f"note: {Path(path).name}: {note}", file=sys.stderr)
    print(f"{plural(len(segs), 'image')} co-segmented, {len(failures)} failed; results in {results_path}",
          file=sys.stderr)
    return 1 if failures else 0
