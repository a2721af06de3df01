"""For slides: a result's figures as slide PNGs, the training replay as GIF or MP4, all in one zip.

File names say what they show: ``<image>_<figure>_<settings>``, e.g. ``cat_overlay_ncut-k3-2stages``
(:func:`~.names.file_stem`). Pictures become slides with :func:`deepcut.render.slides.slide`. With a
:class:`~.walkthrough.Walkthrough`, the slides also hold the affinity picture (the clicked patch's row of the
graph, or the foreground's centre patch, as its caption says) and every step of the walkthrough, in order, its
words under it. The replay is drawn :data:`REPLAY_WIDTH` pixels wide, a slide's width. The app's *For slides*
and the ``deepcut slides`` command both write :func:`export_files`.

Example::

    dc = DeepCut("color")
    seg = dc.segment("cat.jpg", stages=2, k=3)
    result, ex = LessonResult.of(dc.store, seg), explain(dc.store, seg)
    files = export_files(result, "lecture/", "cat.jpg", ex, walk=Walkthrough(dc.store, result, ex))
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

from PIL import Image

from ..errors import ConfigError
from ..render.figures import soft_maps_figure
from ..render.slides import MAX_CAPTION_LINES, SLIDE_SIZE, check_slide_size, slide
from ..render.teaching import comparison_figure
from ..segmentation.notes import plural
from ..tasks.video import write_video
from ..utils.manifest import OutputManifest
from .affinity import which_patch
from .explain import Explanation
from .names import file_stem, stem_of
from .result import Shown
from .walkthrough import STEP_NAMES, Walkthrough
from .words import settings_line

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["EXPLAINED_FIGURES", "FIGURES", "README_NAME", "REPLAY_FPS", "REPLAY_WIDTH", "STEP_CAPTION_LINES",
           "WALK_FIGURES", "export_files", "export_names", "export_zip", "replay_frames", "replay_gif", "replay_mp4",
           "result_figures", "walk_figures", "write_slides", "zip_files"]

Picture = Union[Image.Image, "Figure"]
#: ``progress(done, total, what)``: where an export is (:func:`write_slides`).
Progress = Callable[[int, int, str], None]
#: The figures of every result (:func:`result_figures`), and those of its explanation.
FIGURES = ("overlay", "mask", "cutout", "soft", "loss")
EXPLAINED_FIGURES = ("comparison", "pca")
#: The figures of a walkthrough (:func:`walk_figures`): the affinity picture, then every step in order.
WALK_FIGURES = ("affinity", *(f"step{i}-{name}" for i, name in enumerate(STEP_NAMES, 1)))
#: Width in pixels of the replay's GIF and MP4 frames: a full-HD slide's (the figure drawn at that size, its fonts
#: and lines scaled with it).
REPLAY_WIDTH = 1920
#: Snapshots per second of the replay's GIF and MP4.
REPLAY_FPS = 4.0
#: Most caption lines of a walkthrough slide (its words explain the step); other slides have three.
STEP_CAPTION_LINES = 6
#: The file listing the others, in the folder and the zip.
README_NAME = "README.txt"


def replay_frames(explanation: Explanation, text: float = 1.0, width: int | None = REPLAY_WIDTH) -> list[Image.Image]:
    """Every snapshot of the training replay as a picture ``width`` pixels wide (None: the figure's own 900 px;
    ``text``: font factor), all of the first one's size."""
    frames = [explanation.frame_picture(i, text=text, width=width) for i in range(explanation.frames)]
    size = frames[0].size if frames else (1, 1)
    return [f if f.size == size else f.resize(size, Image.Resampling.LANCZOS) for f in frames]


def replay_gif(explanation: Explanation, path: str | Path, fps: float = REPLAY_FPS, text: float = 1.0,
               width: int | None = REPLAY_WIDTH) -> Path:
    """The training replay as an animated GIF (looping), one frame per snapshot: ``explanation.frames`` frames,
    ``width`` pixels wide (:func:`replay_frames`)."""
    path = Path(path)
    write_video(replay_frames(explanation, text, width), path.with_suffix(".gif"), fps=fps)
    return path.with_suffix(".gif")


def replay_mp4(explanation: Explanation, path: str | Path, fps: float = REPLAY_FPS, text: float = 1.0,
               width: int | None = REPLAY_WIDTH) -> Path:
    """The training replay as an H.264 MP4 (even width and height: an odd last row or column is
    cropped), one frame per snapshot, ``width`` pixels wide (:func:`replay_frames`)."""
    path = Path(path)
    write_video(replay_frames(explanation, text, width), path.with_suffix(".mp4"), fps=fps)
    return path.with_suffix(".mp4")


def result_figures(result: Shown, explanation: Explanation | None = None, opacity: float = 0.5,
                   text: float = 1.0) -> dict[str, tuple[Picture, str]]:
    """``{name: (picture or figure, what it shows)}`` of every figure of ``result`` (:data:`FIGURES`) and of
    its explanation (:data:`EXPLAINED_FIGURES`); ``text``: the figures' font factor."""
    seg = result.seg
    out: dict[str, tuple[Picture, str]] = {
        "overlay": (result.overlay(opacity), f"Segments: {plural(seg.num_segments, 'segment')}"),
        "mask": (result.mask(), "Foreground mask (white)"),
        "cutout": (result.cutout(), "Foreground cut out"),
        "soft": (soft_maps_figure(seg, text=text), "Soft assignment of each patch to each segment"),
        "loss": (result.loss_plot(text), "GNN training loss"),
    }
    if explanation is not None:
        out["comparison"] = (comparison_figure(explanation.image, explanation.record.grid, explanation.comparison,
                                               text=text), "This result's cut against the spectral cut")
        out["pca"] = (explanation.pca_picture(), "Features: 3 principal components as RGB")
    return out


def walk_figures(walk: Walkthrough, text: float = 1.0) -> dict[str, tuple[Picture, str]]:
    """``{name: (picture or figure, what it shows)}`` of a walkthrough (:data:`WALK_FIGURES`): the affinity
    picture of its patch (the clicked one, or the foreground's centre patch: the words say which), then every
    step in order with its title and caption (the training step at its last snapshot: the replay has them all);
    ``text``: the figures' font factor."""
    which = which_patch(walk.clicked)
    out: dict[str, tuple[Picture, str]] = {
        "affinity": (walk.affinity, f"Affinity of {which} to every patch. {walk.affinity_caption}")}
    for name, i in zip(WALK_FIGURES[1:], range(len(walk)), strict=True):
        step = walk.step(i)
        last = step.frames - 1
        picture: Picture = step.figure(last, text) if step.figure is not None else step.picture(last, text)
        when = " (its last snapshot; the replay GIF shows them all)" if step.frames > 1 else ""
        out[name] = (picture, f"{step.title}{when}: {step.caption}".replace("`", "").replace("**", ""))
    return out


def export_names(image_name: str | None, slug: str, explained: bool = True, replay: bool = True,
                 mp4: bool = True, walked: bool = True) -> list[str]:
    """The names :func:`export_files` gives its files, the zip last, for settings ``slug``
    (:func:`~.names.config_slug`): known before anything is computed, so that a caller can check them first.

    Args:
        image_name: the image's file name.
        slug: the settings part of the names.
        explained: with an explanation (the comparison and PCA slides, the replay).
        replay: the replay has snapshots (a result whose graph needed no cut has none).
        mp4: the replay also as MP4.
        walked: with a walkthrough (the affinity slide and one per step, :data:`WALK_FIGURES`).
    """
    shown = FIGURES + (EXPLAINED_FIGURES if explained else ()) + (WALK_FIGURES if walked else ())
    names = [f"{stem_of(image_name, f, slug)}.png" for f in shown]
    if explained and replay:
        names += [f"{stem_of(image_name, 'replay', slug)}{ext}" for ext in (".gif", ".mp4")[: 1 + mp4]]
    result = stem_of(image_name, "result", slug)
    return names + [f"{result}_labels.png", f"{result}.json", f"{stem_of(image_name, 'slides', slug)}.zip"]


README = """DeepCut slides of {name}

Settings: {settings}
Segments: {segments}
Backbone: {backbone}

Files:
{files}

Slides are {width} x {height} PNGs with the settings in their caption; the replay GIF and MP4 are
{replay} px wide. The label map PNG's pixel values are the labels; the JSON has the box, the settings
and the timings.
{notes}"""


def _readme(result: Shown, image_name: str | None, files: list[str], size: tuple[int, int],
            notes: dict[str, str] | None = None) -> str:
    """The README: what, how, the files, and ``notes`` ``{file name: words}`` in full (a walkthrough slide's
    caption may be cut short on the slide)."""
    text = "".join(f"\n{name}:\n  {words}\n" for name, words in (notes or {}).items())
    return README.format(name=image_name or "an image", settings=settings_line(result),
                         segments=result.seg.num_segments, backbone=result.backbone,
                         files="\n".join(f"  {f}" for f in files), width=size[0], height=size[1],
                         replay=REPLAY_WIDTH, notes=f"\nThe walkthrough's words in full:\n{text}" if text else "")


def _pictures(result: Shown, explanation: Explanation | None, extra: dict[str, Picture] | None, opacity: float,
              text: float, walk: Walkthrough | None = None) -> dict[str, tuple[Picture, str]]:
    """:func:`result_figures`, :func:`walk_figures` (with ``walk``) and the ``extra`` slides, each checked: a
    picture or a figure, under a name of its own (no built-in figure's, nor one that makes another's file name).

    Raises:
        ConfigError: an extra that is not a picture or figure, or whose name is not a string or clashes; a
            walkthrough of another result.
    """
    from matplotlib.figure import Figure

    if walk is not None and (not isinstance(walk, Walkthrough) or walk.result.seg is not result.seg):
        raise ConfigError("walk must be the Walkthrough of this very result (built from it), got "
                          f"{'one of another result' if isinstance(walk, Walkthrough) else type(walk).__name__}")

    if extra is not None and not isinstance(extra, dict):
        raise ConfigError(f"extra must be a dict {{name: picture or figure}}, got {type(extra).__name__}")
    for name, picture in (extra or {}).items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"extra slide names must be non-empty strings, got {name!r:.60}")
        if not isinstance(picture, (Image.Image, Figure)):
            raise ConfigError(f"extra slide {name!r:.60} must be a PIL image or a matplotlib figure, got "
                              f"{type(picture).__name__}")
    figures = result_figures(result, explanation, opacity, text)
    if walk is not None:
        figures.update(walk_figures(walk, text))
    stems = {file_stem(None, name, result): name for name in figures}
    for name in extra or {}:
        stem = file_stem(None, name, result)
        if stem in stems:
            raise ConfigError(f"extra slide {name!r:.60} would be written as the same file as "
                              f"{stems[stem]!r:.60} ({stem}.png): give it another name")
        stems[stem] = name
    figures.update({name: (picture, name) for name, picture in (extra or {}).items()})
    return figures


def _folder(folder: str | Path) -> Path:
    """``folder``, created if missing.

    Raises:
        ConfigError: it is a file, or cannot be created (the OS's reason).
    """
    work = Path(folder)
    if os.path.lexists(work) and not work.is_dir():
        raise ConfigError(f"cannot write slides into {work}: it is a file, not a folder")
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write slides into {work}: {e.strerror or e}") from None
    return work


def _claim(manifest: OutputManifest, names: list[str]) -> None:
    """Refuse ``names`` if a file of one of them is in the manifest's folder and DeepCut did not write it.

    Raises:
        ConfigError: the first such name, and how many more.
    """
    manifest.check("folder")
    clash = [n for n in names if not manifest.writable(n)]
    if clash:
        more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
        raise ConfigError(f"{manifest.folder} holds {clash[0]}{more}, which the slides would replace and DeepCut "
                          f"did not write; move it away or choose another folder")


def write_slides(result: Shown, folder: str | Path, image_name: str | None,
                 explanation: Explanation | None = None, extra: dict[str, Picture] | None = None,
                 size: tuple[int, int] = SLIDE_SIZE, opacity: float = 0.5, text: float = 1.0,
                 mp4: bool = False, walk: Walkthrough | None = None, progress: Progress | None = None) -> list[Path]:
    """Write every figure of ``result`` into ``folder`` as a slide PNG (overlay, mask, cut-out, soft maps,
    loss; with ``explanation`` also the GNN-vs-spectral comparison, the PCA and the replay as GIF
    :data:`REPLAY_WIDTH` px wide, and as MP4 if ``mp4``; with ``walk`` the affinity picture and every
    walkthrough step, :func:`walk_figures`), the label map PNG and JSON record (the result's ``write_files``),
    and a ``README.txt``
    listing them (first in the returned list). Files of those names that DeepCut wrote in ``folder`` (per its
    manifest, :mod:`deepcut.utils.manifest`) are replaced; anyone else's are not: the call is refused first.

    Args:
        result: the result to export (:class:`~.result.Shown`).
        folder: where the files go (created if missing).
        image_name: the image's file name, for the file names (:func:`~.names.file_stem`).
        explanation: :func:`~.explain.explain` of ``result``, if computed.
        extra: more ``{name: picture or figure}`` to include as slides (a sweep, a comparison …); names that
            would give one file name (``my fig``, ``my-fig``) are refused.
        size: ``(width, height)`` of the slides (:func:`deepcut.render.slides.check_slide_size`).
        opacity: colour opacity of the overlay.
        text: font factor of the figures and the replay (the slides' captions are large anyway).
        mp4: also the replay as MP4 (H.264).
        walk: the :class:`~.walkthrough.Walkthrough` of ``result`` (its explanation stands in for a missing
            ``explanation``); its slides' captions are the steps' words (at most :data:`STEP_CAPTION_LINES`
            lines, in full in the README).
        progress: called ``progress(done, total, what)`` before each file (``what``: its words, e.g.
            ``"slide 3 of 14: loss"``), for a progress bar.

    Raises:
        ConfigError: a size out of range, a bad or clashing extra, a walkthrough of another result,
            ``folder`` a file, or a file there that DeepCut did not write holds one of the names.
    """
    size = check_slide_size(size)
    if explanation is None and isinstance(walk, Walkthrough):
        explanation = walk.explanation
    work = _folder(folder)
    figures = _pictures(result, explanation, extra, opacity, text, walk)
    replay = explanation is not None and explanation.frames > 0
    stem = file_stem(image_name, "result", result)
    names = [README_NAME, *(f"{file_stem(image_name, name, result)}.png" for name in figures),
             f"{stem}_labels.png", f"{stem}.json"]
    names += [f"{file_stem(image_name, 'replay', result)}{ext}" for ext in (".gif", ".mp4")[: 1 + mp4] if replay]
    manifest = OutputManifest(work)
    _claim(manifest, names)
    with manifest.writing(names):
        return _write(result, work, image_name, explanation, figures, size, text, mp4, progress)


def _write(result: Shown, work: Path, image_name: str | None, explanation: Explanation | None,
           figures: dict[str, tuple[Picture, str]], size: tuple[int, int], text: float, mp4: bool,
           progress: Progress | None = None) -> list[Path]:
    """The files of :func:`write_slides` (checked there), the README first."""
    line = settings_line(result)
    files, notes = [], {}
    replay = explanation is not None and explanation.frames > 0
    total = len(figures) + (2 + mp4 if replay else 0)
    say = progress or (lambda done, total, what: None)
    for done, (name, (picture, what)) in enumerate(figures.items()):
        say(done, total, f"slide {done + 1} of {len(figures)}: {name}")
        path = work / f"{file_stem(image_name, name, result)}.png"
        lines = STEP_CAPTION_LINES if name in WALK_FIGURES else MAX_CAPTION_LINES
        slide(picture, f"{what} · {line}", size, lines).save(path, compress_level=3)  # 2x faster, 10 % larger
        files.append(path)
        if name in WALK_FIGURES:
            notes[path.name] = what
    if explanation is not None and replay:
        stem = work / file_stem(image_name, "replay", result)
        say(len(figures), total, f"drawing the training replay ({explanation.frames} frames)")
        frames = replay_frames(explanation, text)  # drawn once for both files (drawing is most of the time)
        for n, suffix in enumerate((".gif", ".mp4")[: 1 + mp4]):
            say(len(figures) + 1 + n, total, f"writing the replay as {suffix[1:].upper()}")
            write_video(frames, stem.with_suffix(suffix), fps=REPLAY_FPS)
            files.append(stem.with_suffix(suffix))
    say(total, total, "done")
    files += [Path(p) for p in result.write_files(work, file_stem(image_name, "result", result))]
    readme = work / README_NAME
    readme.write_text(_readme(result, image_name, [p.name for p in files], size, notes))
    return [readme, *files]


def zip_files(files: list[Path], target: Path) -> Path:
    """``files`` in one zip at ``target`` (PNG, GIF and MP4 stored as they are: already compressed)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            packed = path.suffix in (".png", ".gif", ".mp4")
            archive.write(path, path.name, zipfile.ZIP_STORED if packed else zipfile.ZIP_DEFLATED)
    return target


def export_zip(result: Shown, folder: str | Path, image_name: str | None,
               explanation: Explanation | None = None, extra: dict[str, Picture] | None = None,
               size: tuple[int, int] = SLIDE_SIZE, opacity: float = 0.5, text: float = 1.0,
               walk: Walkthrough | None = None) -> Path:
    """One zip with the files of :func:`write_slides` (same arguments), written to ``folder`` as
    ``<image>_slides_<settings>.zip``; the files themselves are not kept. Returns the zip's path. A zip of that
    name is replaced only if DeepCut wrote it (the folder's output manifest records it).

    Raises:
        ConfigError: as :func:`write_slides`; the zip's name is a folder's, or a file DeepCut did not write.
    """
    size = check_slide_size(size)
    folder = _folder(folder)
    target = folder / f"{file_stem(image_name, 'slides', result)}.zip"
    if target.is_dir():
        raise ConfigError(f"cannot write {target}: a folder has that name; move it away or choose another folder")
    manifest = OutputManifest(folder)
    _claim(manifest, [target.name])
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        files = write_slides(result, tmp, image_name, explanation, extra, size, opacity, text, walk=walk)
        with manifest.writing([target.name]):
            return zip_files(files, target)


def export_files(result: Shown, folder: str | Path, image_name: str | None,
                 explanation: Explanation | None = None, opacity: float = 0.5,
                 walk: Walkthrough | None = None, progress: Progress | None = None) -> list[Path]:
    """What the app offers *for slides* and ``deepcut slides`` writes: every file of :func:`write_slides`
    (the replay also as MP4; with ``walk``, the affinity and walkthrough slides) in ``folder``, then the zip of
    all of them (with the ``README.txt``, which stays in ``folder`` too). Returns the paths, the zip last (the
    names of :func:`export_names`). Like the other files, a zip of that name is replaced only if DeepCut wrote
    it (per the folder's manifest).

    Raises:
        ConfigError: as :func:`write_slides`.
    """
    target = _folder(folder) / f"{file_stem(image_name, 'slides', result)}.zip"
    manifest = OutputManifest(target.parent)
    _claim(manifest, [target.name])
    files = write_slides(result, folder, image_name, explanation, opacity=opacity, mp4=True, walk=walk,
                         progress=progress)
    manifest = OutputManifest(target.parent)  # as write_slides left it
    with manifest.writing([target.name]):
        zipped = zip_files(files, target)
    return [*files[1:], zipped]
