"""Pictures that explain a segmentation: loss curves, soft assignment maps, patch affinities.

Pure functions of a :class:`~deepcut.segmentation.result.Segmentation` or of patch features; they draw with
matplotlib's object API (no ``pyplot`` global state), so they are safe to call from several threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..clustering.fit import RESTART_LABEL
from ..segmentation.colors import label_colors
from .style import COMPACT_TEXT, SMALLEST_PT, draw_fitted, new_figure, plain_ticks

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..segmentation.result import Segmentation

#: What each stage cut, for :func:`loss_figure`'s panel titles.
STAGE_NAMES = {
    1: "whole image",
    2: "foreground parts",
    3: "background parts",
}


#: What the y axis of :func:`loss_figure` plots, per loss, in words.
LOSS_EXPLAINED = {
    "ncut": "NCut loss = −(share of edge weight kept inside segments, 0…1) + orthogonality penalty "
            "(0 when segments are crisp and equal-sized); lower is better",
    "cc": "CC loss = −Σ A·SSᵀ: repulsions put into one segment minus attractions kept; lower is better",
}


def loss_figure(losses: list[list[float]], loss: str = "ncut", stages_k: list[int] | None = None,
                text: float = 1.0, restarts: Sequence[int] = ()) -> "Figure":
    """The training loss of each stage against its epochs: one panel per stage that was run (each
    with its own epoch axis, so 100 epochs of stage 2 do not squash 10 of stage 1), titled with the
    stage and its ``k``, and a line under the panels saying what the loss is.

    Args:
        losses: the loss after each epoch, one list per stage in stage order (``losses[i]``: stage ``i + 1``,
            as :attr:`~deepcut.segmentation.result.Segmentation.losses` keeps them); an empty list draws no panel.
        loss: ``"ncut"`` or ``"cc"`` (names the y axis and the explanation).
        stages_k: optional number of clusters of each stage, shown in the titles.
        text: every font (and the layout around it) this many times its size; the PNG stays 720 x 360
            pixels (:func:`~deepcut.render.style.new_figure`); from :data:`COMPACT_TEXT` on (a phone, a
            projector) the panels are stacked in a narrower picture, with fewer words.
        restarts: per stage, as :attr:`~deepcut.segmentation.result.Segmentation.restarts`: where NCut restarted
            from the spectral cut after ``restarts[i]`` epochs, those epochs are the first try and the rest the
            restart's, drawn as two lines (two GNNs), the restart's on a shaded span behind a dashed line, named in
            the panel's title (:data:`~deepcut.clustering.fit.RESTART_LABEL`) and in the line under the panels.

    Returns:
        A matplotlib :class:`~matplotlib.figure.Figure` (not registered with ``pyplot``).
    """
    drawn = [(i, values) for i, values in enumerate(losses, start=1) if values]
    compact = text >= COMPACT_TEXT  # large text (a phone, a projector): panels stacked, fewer words
    n = max(1, len(drawn))
    more = 0.4 if any(0 < r for r in restarts) else 0.0  # room for the restart's words
    fig = new_figure(5.2, 0.9 + more + 2.0 * n, text) if compact else new_figure(7.2, 3.6, text)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0] if compact else fig.subplots(1, n, squeeze=False)[0]
    name = {"ncut": "NCut loss", "cc": "CC loss"}.get(loss, f"{loss} loss")
    if not drawn:
        axes[0].text(0.5, 0.5, "no GNN was trained\n(nothing to cut: see the status line)", ha="center", va="center",
                     transform=axes[0].transAxes)
    for ax, (i, values) in zip(axes, drawn, strict=False):
        title = f"stage {i}" + (f" (k={stages_k[i - 1]})" if stages_k is not None and i - 1 < len(stages_k) else "")
        title += "" if compact else f"\n{STAGE_NAMES.get(i, '')}"
        at = int(restarts[i - 1]) if i - 1 < len(restarts) else 0
        at = at if 0 < at < len(values) else 0
        _loss_line(ax, values, at, f"C{i - 1}")
        if at:
            title += f"\n{'shaded' if compact else f'epochs {at + 1}–{len(values)}'}: {RESTART_LABEL}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=SMALLEST_PT)
        ax.margins(x=0.06, y=0.15)
        ax.tick_params(labelsize=SMALLEST_PT)
        plain_ticks(ax)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(name, fontsize=9)
    fig.suptitle(f"{name} per epoch" if compact else f"GNN training on this image: {name} per epoch", fontsize=10,
                 wrap=True)
    caption = "lower is better" if compact else LOSS_EXPLAINED.get(loss, "")
    if any(ax.get_legend_handles_labels()[0] for ax in axes):  # the key to the restart's lines, under the panels
        caption += ("; grey: first try" if compact else
                    f"\ngrey: the first try, which left a segment empty; shaded: the {RESTART_LABEL}")
    fig.supxlabel(caption, fontsize=SMALLEST_PT, wrap=True)
    return fig


def _loss_line(ax: "Axes", values: list[float], restart: int, color: str) -> None:
    """One stage's losses ``values`` on ``ax`` against epochs ``1 … len``; ``restart > 0``: the first
    ``restart`` epochs are the first try and the others the restart's, each its own line (labelled for the
    figure's legend), the restart's on a shaded span after a dashed line."""
    epochs = np.arange(1, len(values) + 1)
    marker = "o" if len(values) <= 30 else None
    if not restart:
        ax.plot(epochs, values, marker=marker, markersize=3, color=color)
        return
    ax.plot(epochs[:restart], values[:restart], marker=marker, markersize=3, color="0.55", label="first try")
    ax.axvspan(restart + 0.5, len(values) + 0.5, color="C9", alpha=0.13, lw=0)
    ax.axvline(restart + 0.5, color="C9", ls="--", lw=1.2)
    ax.plot(epochs[restart:], values[restart:], marker=marker, markersize=3, color=color, label=RESTART_LABEL)


def figure_image(fig: "Figure", width: int | None = None) -> Image.Image:
    """Render a matplotlib figure (Agg, no ``pyplot``) to an RGB PIL image; with ``width``, at the dpi that makes
    it ``width`` pixels wide (its fonts and lines scale with it: the same picture, sharper, not upscaled)."""
    if width is not None:
        fig.set_dpi((int(width) + 0.5) / float(fig.get_size_inches()[0]))  # Agg truncates the pixel size
    canvas = draw_fitted(fig)  # a title wider than its room: wrapped, laid out again
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def _heat(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """``(h, w)`` floats → ``(h, w, 3)`` uint8 colours of ``cmap`` over ``[vmin, vmax]``."""
    from matplotlib import colormaps

    span = vmax - vmin if vmax > vmin else 1.0
    norm = np.clip((values - vmin) / span, 0.0, 1.0)
    return (colormaps[cmap](norm)[..., :3] * 255).round().astype(np.uint8)


def _fit_size(shape: tuple[int, int], longest: int) -> tuple[int, int]:
    """``(width, height)`` with the longer side ``longest``, keeping the aspect of ``shape = (H, W)``."""
    h, w = shape
    scale = longest / max(h, w)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _blend_on_gray(image: np.ndarray, heat: np.ndarray, size: tuple[int, int], image_weight: float) -> Image.Image:
    """Upsample ``heat`` ``(h, w, 3)`` to ``size`` and blend it over a grey copy of ``image``."""
    big = np.asarray(Image.fromarray(heat).resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    gray = np.asarray(Image.fromarray(image).convert("L").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    out = big * (1.0 - image_weight) + gray[..., None] * image_weight
    return Image.fromarray(out.round().astype(np.uint8))


def is_split(seg: "Segmentation") -> bool:
    """Whether stage 1 of ``seg`` cut the image into foreground and background (``k = 2`` in one stage,
    or two or three stages); else it cut ``k`` segments, and its foreground is only every segment but
    label 0 (the one covering most of the border)."""
    assert seg.config.k is not None  # resolved when the config was made
    return seg.config.stages >= 2 or int(seg.config.k) == 2


def _picked(seg: "Segmentation") -> int | None:
    """The label the visitor picked as the object (:func:`deepcut.lessons.picking.pick_object`'s note), if any."""
    for note in seg.notes:
        if note.startswith("picked segment "):
            return int(note.split()[2])
    return None


def soft_roles(seg: "Segmentation") -> list[tuple[int, str, float]]:
    """``[(label, role, share of patches), …]`` for every final label some patch has.

    The role is what the label is in this result: after a foreground/background split (:func:`is_split`)
    ``foreground`` and ``background``, or ``foreground part`` and ``background part`` where stage 2 or 3
    cut that side into several; without a split ``segment``, label 0 being the ``border segment`` (the
    one covering most of the border, which the mask leaves out), and a segment picked as the object
    ``picked object``."""
    n = np.asarray(seg.soft).shape[-1]
    present = [int(v) for v in np.unique(seg.patch_labels) if v < n]
    fg = set(np.unique(seg.labels[seg.foreground]).tolist()) if seg.foreground is not None else set()
    split, picked = is_split(seg), _picked(seg)
    fg_count = len([v for v in present if v in fg])
    bg_count = len(present) - fg_count
    out = []
    for label in present:
        if label == picked:
            role = "picked object"
        elif not split:
            role = "border segment" if label == 0 else "segment"
        elif label in fg:
            role = "foreground" if fg_count == 1 else "foreground part"
        else:
            role = "background" if bg_count == 1 else "background part"
        out.append((label, role, float((seg.patch_labels == label).mean())))
    return out


def soft_maps(seg: "Segmentation", longest: int = 240, cmap: str = "viridis") -> list[tuple[Image.Image, str]]:
    """One picture per final label: how strongly the GNN assigns each patch to it.

    Each map is ``seg.soft[..., l]`` (0 … 1) drawn with ``cmap`` over a faint grey copy of the image,
    framed in the label's overlay colour so it can be matched with the part overlay.

    Returns:
        ``[(image, caption), …]`` for labels ``0 … L-1`` (labels no patch ended up with are skipped).
    """
    soft = np.asarray(seg.soft, dtype=np.float32)
    colors = label_colors(max(soft.shape[-1], int(seg.labels.max(initial=0)) + 1))
    size = _fit_size(seg.image.shape[:2], longest)
    border = max(3, longest // 60)
    out = []
    for label, role, share in soft_roles(seg):
        tile = _blend_on_gray(seg.image, _heat(soft[..., label], cmap, 0.0, 1.0), size, 0.25)
        framed = Image.new("RGB", (size[0] + 2 * border, size[1] + 2 * border), tuple(int(c) for c in colors[label]))
        framed.paste(tile, (border, border))
        out.append((framed, f"{label}: {role}, {share:.0%}"))
    return out


def soft_maps_figure(seg: "Segmentation", cmap: str = "viridis", columns: int = 4, text: float = 1.0) -> "Figure":
    """The soft maps of :func:`soft_maps` in one figure: a panel per label, titled with the label,
    its role (:func:`soft_roles`) and share and framed in its overlay colour, and one colour bar saying
    what the colours mean (the softmax probability of the patch belonging to that segment). ``text``:
    every font this many times its size, the PNG's pixels unchanged (:func:`~deepcut.render.style.new_figure`);
    from :data:`COMPACT_TEXT` on, at most two columns and shorter words."""
    soft = np.asarray(seg.soft, dtype=np.float32)
    roles = soft_roles(seg)
    colors = label_colors(max(soft.shape[-1], int(seg.labels.max(initial=0)) + 1)) / 255.0
    compact = text >= COMPACT_TEXT  # large text (a phone, a projector): two columns, fewer words
    cols = max(1, min(2 if compact else columns, len(roles)))
    rows = max(1, -(-len(roles) // cols))
    h, w = seg.image.shape[:2]
    fig = new_figure(1.0 + 2.1 * cols, 0.5 + 2.1 * rows * h / max(w, 1) + 0.35 * rows, text)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    shown = None
    for ax, (label, role, share) in zip(axes, roles, strict=False):
        ax.imshow(np.asarray(Image.fromarray(seg.image).convert("L")), cmap="gray", alpha=1.0)
        shown = ax.imshow(soft[..., label], cmap=cmap, vmin=0.0, vmax=1.0, alpha=0.8, extent=(0, w, h, 0),
                          interpolation="bilinear")
        head, _, rest = role.partition(" ")  # compact: "0: background" over "part 23%"
        ax.set_title(f"{label}: {head}\n{rest} {share:.0%}".replace("\n ", "\n") if compact else
                     f"{label}: {role}\n{share:.0%} of patches", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colors[label])
            spine.set_linewidth(3)
    for ax in axes[len(roles):]:
        ax.set_visible(False)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.tolist(), shrink=0.8, ticks=[0, 0.5, 1])
        words = ["0: no", "0.5", "1: surely"] if compact else ["0: not this\nsegment", "0.5: unsure",
                                                                "1: surely this\nsegment"]
        bar.ax.set_yticklabels(words, fontsize=SMALLEST_PT)
    return fig


def affinity_image(image: np.ndarray, affinity: np.ndarray, patch: tuple[int, int], signed: bool = False,
                   longest: int = 512) -> Image.Image:
    """A heat map of ``affinity`` ``(h, w)`` over a grey copy of ``image`` ``(H, W, 3)``, the patch marked.

    ``signed`` uses a diverging map centred on 0 (red: attract, blue: repel), else ``magma`` on
    ``[0, max]``.
    """
    if signed:
        lim = float(np.abs(affinity).max()) or 1.0
        heat = _heat(affinity, "RdBu_r", -lim, lim)
    else:
        heat = _heat(affinity, "magma", 0.0, float(affinity.max()) or 1.0)
    size = _fit_size(image.shape[:2], longest)
    # Nearest upsampling keeps the patch grid visible, which is the point of this view.
    big = np.asarray(Image.fromarray(heat).resize(size, Image.Resampling.NEAREST), dtype=np.float32)
    gray = np.asarray(Image.fromarray(image).convert("L").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    pil = Image.fromarray((big * 0.75 + gray[..., None] * 0.25).round().astype(np.uint8))
    h, w = affinity.shape
    cell_w, cell_h = size[0] / w, size[1] / h
    x0, y0 = patch[1] * cell_w, patch[0] * cell_h
    draw = ImageDraw.Draw(pil)
    line = max(2, longest // 200)
    pad = line + 1
    draw.rectangle([x0 - pad, y0 - pad, x0 + cell_w + pad, y0 + cell_h + pad], outline=(0, 255, 0), width=line)
    return pil


def colorbar_strip(width: int, cmap: str, left: str, middle: str, right: str, height: int = 44) -> Image.Image:
    """A horizontal colour bar ``width`` pixels wide: the colours of ``cmap`` from left to right, with
    the texts ``left``, ``middle`` and ``right`` under its ends and centre (what the colours mean)."""
    from PIL import ImageFont

    strip = Image.new("RGB", (width, height), (255, 255, 255))
    bar = _heat(np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :].repeat(14, 0), cmap, 0.0, 1.0)
    strip.paste(Image.fromarray(bar), (0, 4))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=max(10, min(16, width // 36)))
    y = 22
    draw.text((2, y), left, fill=(20, 20, 20), font=font)
    draw.text((width // 2, y), middle, fill=(20, 20, 20), font=font, anchor="ma")
    draw.text((width - 2, y), right, fill=(20, 20, 20), font=font, anchor="ra")
    return strip


def affinity_picture(image: np.ndarray, affinity: np.ndarray, patch: tuple[int, int], signed: bool = False,
                     longest: int = 512) -> Image.Image:
    """:func:`affinity_image` with a colour bar under it saying what the colours mean; the picture's
    top ``affinity_image``-sized part is the map (clicks there map to patches as before)."""
    pic = affinity_image(image, affinity, patch, signed, longest)
    if signed:
        bar = colorbar_strip(pic.width, "RdBu_r", "blue: repel", "0", "red: attract")
    else:
        bar = colorbar_strip(pic.width, "magma", "black: no link", "", "yellow: strongest link")
    out = Image.new("RGB", (pic.width, pic.height + bar.height), (255, 255, 255))
    out.paste(pic, (0, 0))
    out.paste(bar, (0, pic.height))
    return out
