"""For slides: a result's figures as slide PNGs, the training replay as GIF or MP4, all in one zip.

File names say what they show: ``<image>_<figure>_<settings>``, e.g. ``cat_overlay_ncut-k3-2stages``
(:func:`file_stem`). Pictures become slides with :func:`deepcut.render.slides.slide`.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Union

from PIL import Image

from ..render.figures import soft_maps_figure
from ..render.slides import SLIDE_SIZE, slide
from ..render.teaching import comparison_figure
from ..tasks.video import write_video
from .compare import settings_line
from .outputs import safe_stem
from .results import DemoResult, plural
from .teaching import Explanation

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

Picture = Union[Image.Image, "Figure"]


def settings_slug(result: DemoResult) -> str:
    """The result's main settings as a file-name part: ``ncut-k3-2stages``, ``cc-a2.5-1stage``, with
    ``-l11key`` for a backbone with layers and ``-guided`` for a refinement."""
    cfg = result.seg.config
    parts = [f"ncut-k{cfg.k}" if cfg.loss == "ncut" else f"cc-a{cfg.alpha:g}",
             f"{cfg.stages}stage{'s' if cfg.stages > 1 else ''}"]
    if result.depth > 1:
        parts.append(f"l{cfg.layer}{cfg.facet}")
    if cfg.refine != "none":
        parts.append(cfg.refine)
    return "-".join(parts)


def file_stem(image_name: str | None, figure: str, result: DemoResult) -> str:
    """A meaningful, file-system-safe stem: ``cat_overlay_ncut-k3-2stages`` for ``cat.jpg``'s overlay.

    Args:
        image_name: the upload's file name (its stem is kept, made safe by
            :func:`~deepcut.demo.outputs.safe_stem`); None: ``deepcut``.
        figure: what the file shows (``"overlay"``, ``"replay"`` …; made safe too).
        result: the result whose settings name the file.
    """
    what = re.sub(r"[^A-Za-z0-9.-]+", "-", figure).strip(".-") or "figure"
    return f"{safe_stem(image_name)}_{what[:40]}_{settings_slug(result)}"


def replay_frames(explanation: Explanation, text: float = 1.0) -> list[Image.Image]:
    """Every snapshot of the training replay as a picture (``text``: font factor), all of the first one's size."""
    frames = [explanation.frame_picture(i, text=text) for i in range(explanation.frames)]
    size = frames[0].size if frames else (1, 1)
    return [f if f.size == size else f.resize(size, Image.LANCZOS) for f in frames]


def replay_gif(explanation: Explanation, path: str | Path, fps: float = 4, text: float = 1.0) -> Path:
    """The training replay as an animated GIF (looping), one frame per snapshot: ``explanation.frames`` frames."""
    path = Path(path)
    write_video(replay_frames(explanation, text), path.with_suffix(".gif"), fps=fps)
    return path.with_suffix(".gif")


def replay_mp4(explanation: Explanation, path: str | Path, fps: float = 4, text: float = 1.0) -> Path:
    """The training replay as an H.264 MP4 (even width and height: an odd last row or column is
    cropped), one frame per snapshot."""
    path = Path(path)
    write_video(replay_frames(explanation, text), path.with_suffix(".mp4"), fps=fps)
    return path.with_suffix(".mp4")


def result_figures(result: DemoResult, explanation: Explanation | None = None, opacity: float = 0.5,
                   text: float = 1.0) -> dict[str, tuple[Picture, str]]:
    """``{name: (picture or figure, what it shows)}`` of every figure of ``result`` (and of its
    explanation); ``text``: the figures' font factor."""
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


README = """DeepCut slides of {name}

Settings: {settings}
Segments: {segments}
Backbone: {backbone}

Files:
{files}

Slides are {width} x {height} PNGs with the settings in their caption. The label map PNG's
pixel values are the labels; the JSON has the box, the settings and the timings.
"""


def _readme(result: DemoResult, image_name: str | None, files: list[str], size: tuple[int, int]) -> str:
    return README.format(name=image_name or "an image", settings=settings_line(result),
                         segments=result.seg.num_segments, backbone=result.backbone,
                         files="\n".join(f"  {f}" for f in files), width=size[0], height=size[1])


def write_slides(result: DemoResult, folder: str | Path, image_name: str | None,
                 explanation: Explanation | None = None, extra: dict[str, Picture] | None = None,
                 size: tuple[int, int] = SLIDE_SIZE, opacity: float = 0.5, text: float = 1.0,
                 mp4: bool = False) -> list[Path]:
    """Write every figure of ``result`` into ``folder`` as a slide PNG (overlay, mask, cut-out, soft maps,
    loss; with ``explanation`` also the GNN-vs-spectral comparison, the PCA and the replay as GIF, and as MP4
    if ``mp4``), the label map PNG and JSON record (:meth:`DemoResult.write_files`), and a ``README.txt``
    listing them (first in the returned list).

    Args:
        result: the result to export.
        folder: where the files go (created if missing).
        image_name: the upload's file name, for the file names (:func:`file_stem`).
        explanation: :func:`~deepcut.demo.teaching.explain` of ``result``, if computed.
        extra: more ``{name: picture or figure}`` to include as slides (a sweep, a comparison …).
        size: ``(width, height)`` of the slides.
        opacity: colour opacity of the overlay.
        text: font factor of the figures and the replay (the slides' captions are large anyway).
        mp4: also the replay as MP4 (H.264).
    """
    work = Path(folder)
    work.mkdir(parents=True, exist_ok=True)
    line = settings_line(result)
    figures = result_figures(result, explanation, opacity, text)
    figures.update({name: (picture, name) for name, picture in (extra or {}).items()})
    files = []
    for name, (picture, what) in figures.items():
        path = work / f"{file_stem(image_name, name, result)}.png"
        slide(picture, f"{what} · {line}", size).save(path, compress_level=3)  # 2x faster, 10 % larger
        files.append(path)
    if explanation is not None and explanation.frames:
        stem = work / file_stem(image_name, "replay", result)
        files.append(replay_gif(explanation, stem, text=text))
        if mp4:
            files.append(replay_mp4(explanation, stem, text=text))
    files += [Path(p) for p in result.write_files(work, file_stem(image_name, "result", result))]
    readme = work / "README.txt"
    readme.write_text(_readme(result, image_name, [p.name for p in files], size))
    return [readme, *files]


def zip_files(files: list[Path], target: Path) -> Path:
    """``files`` in one zip at ``target`` (PNG, GIF and MP4 stored as they are: already compressed)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            packed = path.suffix in (".png", ".gif", ".mp4")
            archive.write(path, path.name, zipfile.ZIP_STORED if packed else zipfile.ZIP_DEFLATED)
    return target


def export_zip(result: DemoResult, folder: str | Path, image_name: str | None,
               explanation: Explanation | None = None, extra: dict[str, Picture] | None = None,
               size: tuple[int, int] = SLIDE_SIZE, opacity: float = 0.5, text: float = 1.0) -> Path:
    """One zip with the files of :func:`write_slides` (same arguments), written to ``folder`` as
    ``<image>_slides_<settings>.zip``; the files themselves are not kept. Returns the zip's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{file_stem(image_name, 'slides', result)}.zip"
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        return zip_files(write_slides(result, tmp, image_name, explanation, extra, size, opacity, text), target)


def export_files(result: DemoResult, folder: str | Path, image_name: str | None,
                 explanation: Explanation | None = None, opacity: float = 0.5) -> list[Path]:
    """What the page offers for slides: every file of :func:`write_slides` (the replay also as MP4) in
    ``folder``, then the zip of all of them. Returns the paths, the zip last."""
    files = write_slides(result, folder, image_name, explanation, opacity=opacity, mp4=True)
    target = Path(folder) / f"{file_stem(image_name, 'slides', result)}.zip"
    return [*files[1:], zip_files(files, target)]
