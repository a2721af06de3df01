"""Pictures of the teaching view: GNN vs spectral cut, the training replay, the features' PCA.

They draw what :mod:`deepcut.explain` computes, with matplotlib's object API (no ``pyplot``), so
they are safe to call from several threads. Patch maps are drawn with nearest upsampling: the patch
grid stays visible, which is what the pictures are about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..graph import graph_kind
from ..utils.matching import best_matching, iou_matrix
from .colors import label_colors

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..explain import CutComparison, StageRecord, TrainingRecord

#: What each stage does, for titles.
STAGE_TITLES = {1: "Stage 1: whole image", 2: "Stage 2: foreground parts", 3: "Stage 3: background parts"}


def patch_colors_image(image: np.ndarray, colors: np.ndarray, grid: tuple[int, int], strength: float = 0.65,
                       keep: np.ndarray | None = None) -> np.ndarray:
    """Per-patch colours ``(h*w, 3)`` (0-255) over a grey copy of ``image`` ``(H, W, 3)``: ``(H, W, 3)`` uint8.

    ``keep`` ``(h*w,)`` bool: patches drawn (others show the grey image only)."""
    h, w = grid
    size = (image.shape[1], image.shape[0])
    gray = np.asarray(Image.fromarray(image).convert("L"), dtype=np.float32)[..., None].repeat(3, -1)
    cells = np.asarray(colors, np.float32).reshape(h, w, 3)
    weight = np.full((h, w), strength, np.float32) if keep is None else np.where(keep.reshape(h, w), strength, 0.0)
    big = np.asarray(Image.fromarray(cells.round().clip(0, 255).astype(np.uint8)).resize(size, Image.NEAREST),
                     np.float32)
    wbig = np.asarray(Image.fromarray((weight * 255).astype(np.uint8)).resize(size, Image.NEAREST),
                      np.float32)[..., None] / 255.0
    return (big * wbig + gray * (1.0 - wbig)).round().astype(np.uint8)


def _matched(reference: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered so each overlaps most with the same-numbered ``reference`` cluster (Hungarian)."""
    ids_r, ids_l, iou = iou_matrix(reference, labels)
    mapping = {int(ids_l[c]): int(ids_r[r]) for r, c in best_matching(iou)}
    spare = int(max(reference.max(), labels.max())) + 1
    for v in ids_l.tolist():
        if int(v) not in mapping:
            mapping[int(v)], spare = spare, spare + 1
    return np.array([mapping[int(v)] for v in labels.tolist()], np.int64)


def comparison_figure(image: np.ndarray, grid: tuple[int, int], cmp: "CutComparison") -> "Figure":
    """Two panels, the GNN's cut and the spectral cut of the same graph over ``image``, each titled with
    its normalized cut (the lower one marked as the better cut); colours are matched between them."""
    from matplotlib.figure import Figure

    spectral = _matched(cmp.gnn_labels, cmp.spectral_labels)
    colors = label_colors(int(max(cmp.gnn_labels.max(), spectral.max())) + 1)
    h, w = image.shape[:2]
    fig = Figure(figsize=(7.0, 0.9 + 3.3 * h / max(w, 1)), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2)
    best = min(cmp.gnn_ncut, cmp.spectral_ncut)
    for ax, labels, name, value in ((axes[0], cmp.gnn_labels, "GNN (DeepCut, NCut loss)", cmp.gnn_ncut),
                                    (axes[1], spectral, f"Spectral: {cmp.spectral_method}", cmp.spectral_ncut)):
        ax.imshow(patch_colors_image(image, colors[labels], grid))
        mark = "  ✓ lower" if value <= best + 1e-9 and cmp.gnn_ncut != cmp.spectral_ncut else ""
        ax.set_title(f"{name}\nNCut = {value:.3f}{mark}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    kind = graph_kind(cmp.num_nodes) if cmp.sparse else "dense"
    graph = {"dense": "dense graph", "compact": "every pair, float16; the spectral cut on its k-NN part",
             "sparse": "sparse k-NN graph"}[kind]
    fig.suptitle(f"One graph A = relu(F·Fᵀ)/max ({cmp.num_nodes} patches, {graph}), cut into k={cmp.k}: "
                 f"NCut = Σ cut/volume, 0 = perfect", fontsize=8)
    return fig


def training_frame_figure(image: np.ndarray, record: "TrainingRecord", frame: int) -> "Figure":
    """Snapshot ``frame`` (an index into :meth:`~deepcut.explain.TrainingRecord.frames`) of the replay:
    the soft assignments (colours mixed by probability: a pale mix is an unsure patch), their
    argmax (the segments at that moment) and the stage's loss curve with the epoch marked."""
    from matplotlib.figure import Figure

    s, i = record.frames()[frame]
    st = record.stages[s]
    soft, epoch = st.soft[i], st.epochs[i]
    colors = label_colors(int(max(st.label_of.max(initial=0), record.labels.max(initial=0))) + 1)[st.label_of]
    n = record.grid[0] * record.grid[1]
    keep = np.zeros(n, bool)
    keep[st.rows] = True
    mixed, hard = np.zeros((n, 3), np.float32), np.zeros((n, 3), np.float32)
    mixed[st.rows] = soft @ colors.astype(np.float32)
    hard[st.rows] = colors[soft.argmax(1)]
    h, w = image.shape[:2]
    fig = Figure(figsize=(9.0, 0.8 + 2.9 * h / max(w, 1)), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1, 1, 0.9])
    for ax, cells, title in ((axes[0], mixed, "soft S: colours mixed by probability\n(pale mix = unsure)"),
                             (axes[1], hard, "argmax S: the segments now")):
        ax.imshow(patch_colors_image(image, cells, record.grid, 0.8, keep))
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    loss_panel(axes[2], st, epoch)
    k = soft.shape[1]
    fig.suptitle(f"{STAGE_TITLES.get(st.stage, f'Stage {st.stage}')} (k={k}) — after epoch {epoch} of "
                 f"{st.epochs[-1]}", fontsize=10)
    return fig


def loss_panel(ax: "Axes", st: "StageRecord", epoch: int) -> None:
    """The stage's training loss (grey) with ``epoch`` marked and, for NCut, its two terms at the
    snapshots: the cut term (share of edge weight kept inside segments, negated) and the
    orthogonality penalty, whose sum is the loss without dropout."""
    if st.losses:
        ax.plot(np.arange(1, len(st.losses) + 1), st.losses, color="0.5", lw=1, label="loss (training)")
        if epoch > 0:
            ax.plot([epoch], [st.losses[epoch - 1]], "o", color="C3")
    if st.terms:
        cut, ortho = zip(*st.terms, strict=False)
        ax.plot(st.epochs, cut, ls="--", lw=1, color="C0", label="cut term")
        ax.plot(st.epochs, ortho, ls=":", lw=1.2, color="C1", label="orthogonality")
        ax.legend(fontsize=6, loc="center right")
    ax.axvline(epoch, color="C3", lw=0.8, ls="--")
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_title("loss of this stage", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def pca_image(pca: np.ndarray, longest: int = 512) -> Image.Image:
    """The ``(h, w, 3)`` principal-component colours of :func:`~deepcut.explain.feature_pca`, one
    square per patch, the longer side ``longest`` pixels."""
    h, w = pca.shape[:2]
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return Image.fromarray((np.clip(pca, 0, 1) * 255).round().astype(np.uint8)).resize(size, Image.NEAREST)
