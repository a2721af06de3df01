"""Pictures that explain a segmentation: loss curves, soft assignment maps, patch affinities.

Pure functions of a :class:`~deepcut.segmentation.Segmentation` or of patch features; they draw with
matplotlib's object API (no ``pyplot`` global state), so they are safe to call from several threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np
import torch
from PIL import Image, ImageDraw

from .utils.colors import label_colors

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .segmentation import Segmentation

FeaturesLike = Union[np.ndarray, torch.Tensor]

STAGE_NAMES = {
    1: "stage 1",
    2: "stage 2: foreground parts",
    3: "stage 3: background parts",
}


def loss_figure(losses: list[list[float]], loss: str = "ncut", stages_k: list[int] | None = None) -> "Figure":
    """A line plot of the training loss of each stage against the epoch.

    Args:
        losses: one list per stage that was run, the loss after each epoch.
        loss: ``"ncut"`` or ``"cc"`` (names the y axis).
        stages_k: optional number of clusters of each stage, shown in the legend.

    Returns:
        A matplotlib :class:`~matplotlib.figure.Figure` (not registered with ``pyplot``).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 2.9), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    name = {"ncut": "NCut loss", "cc": "CC loss"}.get(loss, f"{loss} loss")
    drawn = 0
    for i, values in enumerate(losses, start=1):
        if not values:
            continue
        label = STAGE_NAMES.get(i, f"stage {i}")
        if stages_k is not None and i - 1 < len(stages_k):
            label += f" (k={stages_k[i - 1]})"
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, marker="o" if len(values) <= 30 else None, markersize=3, label=label)
        drawn += 1
    if drawn == 0:
        ax.text(0.5, 0.5, "no GNN training was needed\n(degenerate graph)", ha="center", va="center",
                transform=ax.transAxes)
    else:
        ax.legend(fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name, fontsize=9)
    ax.grid(alpha=0.3)
    return fig


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
    big = np.asarray(Image.fromarray(heat).resize(size, Image.BILINEAR), dtype=np.float32)
    gray = np.asarray(Image.fromarray(image).convert("L").resize(size, Image.BILINEAR), dtype=np.float32)
    out = big * (1.0 - image_weight) + gray[..., None] * image_weight
    return Image.fromarray(out.round().astype(np.uint8))


def soft_maps(seg: "Segmentation", longest: int = 240, cmap: str = "viridis") -> list[tuple[Image.Image, str]]:
    """One picture per final label: how strongly the GNN assigns each patch to it.

    Each map is ``seg.soft[..., l]`` (0 … 1) drawn with ``cmap`` over a faint grey copy of the image,
    framed in the label's overlay colour so it can be matched with the part overlay.

    Returns:
        ``[(image, caption), …]`` for labels ``0 … L-1`` (labels no patch ended up with are skipped).
    """
    soft = np.asarray(seg.soft, dtype=np.float32)
    n = soft.shape[-1]
    colors = label_colors(max(n, int(seg.labels.max(initial=0)) + 1))
    present = set(np.unique(seg.patch_labels).tolist())
    size = _fit_size(seg.image.shape[:2], longest)
    border = max(3, longest // 60)
    fg_labels = set(np.unique(seg.labels[seg.foreground]).tolist()) if seg.foreground is not None else set()
    out = []
    for label in range(n):
        if label not in present:
            continue
        tile = _blend_on_gray(seg.image, _heat(soft[..., label], cmap, 0.0, 1.0), size, 0.25)
        framed = Image.new("RGB", (size[0] + 2 * border, size[1] + 2 * border), tuple(int(c) for c in colors[label]))
        framed.paste(tile, (border, border))
        if seg.foreground is None:
            role = "segment"
        elif label in fg_labels:
            role = "foreground" if seg.config.stages == 1 else "foreground part"
        else:
            role = "background" if label == 0 else "background part"
        share = float((seg.patch_labels == label).mean())
        out.append((framed, f"{label}: {role}, {share:.0%}"))
    return out


def pixel_to_patch(x: float, y: float, image_shape: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """The patch ``(row, col)`` of grid ``(h, w)`` under pixel ``(x, y)`` of an image of ``(H, W)``."""
    height, width = image_shape
    row = int(np.clip(np.floor(y / max(height, 1) * grid[0]), 0, grid[0] - 1))
    col = int(np.clip(np.floor(x / max(width, 1) * grid[1]), 0, grid[1] - 1))
    return row, col


def patch_affinity(features: FeaturesLike, patch: tuple[int, int], loss: str = "ncut", alpha: float = 3.0,
                   chunk: int = 2048) -> np.ndarray:
    """Row ``patch`` of the graph DeepCut clusters (see :func:`deepcut.clustering.affinity`), as a map.

    Args:
        features: ``(h, w, D)`` patch features.
        patch: ``(row, col)`` of the chosen patch.
        loss: ``"ncut"``: ``relu(F_p · F_j) / max(W)`` in ``[0, 1]``; ``"cc"``: ``F_p · F_j - max(W) / alpha``
            (signed: negative weights push patches into different segments).
        alpha: CC sensitivity.
        chunk: rows per block when computing ``max(W)`` (bounds memory to ``chunk x N``).

    Returns:
        ``(h, w)`` float32 edge weights from the chosen patch to every patch.
    """
    f = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features).float()
    if f.ndim != 3:
        raise ValueError(f"features must be (h, w, D), got shape {tuple(f.shape)}")
    h, w, d = f.shape
    flat = f.reshape(h * w, d)
    r, c = patch
    row = flat @ flat[r * w + c]
    top = max(float((flat[i:i + chunk] @ flat.T).max()) for i in range(0, flat.shape[0], chunk))
    if loss == "cc":
        out = row - top / float(alpha)
    else:
        out = row.clamp(min=0) / top if top > 0 else torch.zeros_like(row)
    return out.reshape(h, w).cpu().numpy().astype(np.float32)


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
    big = np.asarray(Image.fromarray(heat).resize(size, Image.NEAREST), dtype=np.float32)
    gray = np.asarray(Image.fromarray(image).convert("L").resize(size, Image.BILINEAR), dtype=np.float32)
    pil = Image.fromarray((big * 0.75 + gray[..., None] * 0.25).round().astype(np.uint8))
    h, w = affinity.shape
    cell_w, cell_h = size[0] / w, size[1] / h
    x0, y0 = patch[1] * cell_w, patch[0] * cell_h
    draw = ImageDraw.Draw(pil)
    line = max(2, longest // 200)
    pad = line + 1
    draw.rectangle([x0 - pad, y0 - pad, x0 + cell_w + pad, y0 + cell_h + pad], outline=(0, 255, 0), width=line)
    return pil
