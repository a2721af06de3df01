"""Pictures of the teaching view: GNN vs spectral cut, the training replay, the features' PCA.

They draw what :mod:`deepcut.lessons` computes, with matplotlib's object API (no ``pyplot``), so
they are safe to call from several threads. Patch maps are drawn with nearest upsampling: the patch
grid stays visible, which is what the pictures are about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..clustering.fit import NCUT_START_EPOCHS, RESTART_LABEL
from ..graph.patch_graph import graph_kind
from ..segmentation.colors import label_colors
from ..segmentation.notes import plural
from ..utils.matching import best_matching, iou_matrix
from .style import COMPACT_TEXT, SMALLEST_PT, new_figure, plain_ticks

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..lessons.records import CutComparison, StageRecord, TrainingRecord

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
    cells8 = Image.fromarray(cells.round().clip(0, 255).astype(np.uint8))
    big = np.asarray(cells8.resize(size, Image.Resampling.NEAREST), np.float32)
    wbig = np.asarray(Image.fromarray((weight * 255).astype(np.uint8)).resize(size, Image.Resampling.NEAREST),
                      np.float32)[..., None] / 255.0
    return (big * wbig + gray * (1.0 - wbig)).round().astype(np.uint8)


def _matched(reference: np.ndarray, labels: np.ndarray, spare: int | None = None) -> np.ndarray:
    """``labels`` renumbered so each overlaps most with the same-numbered ``reference`` cluster (Hungarian);
    those left over get ``spare``, ``spare + 1`` … (default: above both)."""
    ids_r, ids_l, iou = iou_matrix(reference, labels)
    mapping = {int(ids_l[c]): int(ids_r[r]) for r, c in best_matching(iou)}
    spare = int(max(reference.max(), labels.max())) + 1 if spare is None else int(spare)
    for v in ids_l.tolist():
        if int(v) not in mapping:
            mapping[int(v)], spare = spare, spare + 1
    return np.array([mapping[int(v)] for v in labels.tolist()], np.int64)


def comparison_colors(cmp: "CutComparison", n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gnn (n, 3), spectral (n, 3), keep (n,))`` of :func:`comparison_figure`: the colour of every patch
    of the grid (``n = h * w``) in each panel, uint8, and which patches the stage cut (the others are grey).
    The GNN's are :func:`label_colors` of its labels (the result's final labels: the overlay's colours);
    the spectral clusters take the colour of the GNN segment each overlaps most (Hungarian matching), the
    others colours no segment of the result has."""
    rows = np.arange(n) if cmp.rows is None else np.asarray(cmp.rows)
    top = max(int(cmp.num_labels), int(cmp.gnn_labels.max(initial=0)) + 1)
    spectral = _matched(cmp.gnn_labels, cmp.spectral_labels, top)
    colors = label_colors(int(max(top, spectral.max(initial=0) + 1)))
    keep = np.zeros(n, bool)
    keep[rows] = True
    gnn, spec = np.zeros((n, 3), np.uint8), np.zeros((n, 3), np.uint8)
    gnn[rows], spec[rows] = colors[cmp.gnn_labels], colors[spectral]
    return gnn, spec, keep


#: Each loss's measure: its name and what it is, in words.
MEASURES = {"ncut": ("NCut", "NCut = Σ cut/volume, 0 = no edge cut; lower is better"),
            "cc": ("CC objective", "CC objective = −Σ A·[same segment]: repulsions kept inside segments minus "
                                   "attractions; lower is better")}


def _comparison_titles(cmp: "CutComparison", compact: bool = False) -> tuple[str, str, str]:
    """The GNN panel's, the spectral panel's and the figure's title, in words true of ``cmp``; ``compact``
    (large text: a phone, a projector): the same facts in fewer words (the caption under the picture says
    the rest)."""
    name, meaning = MEASURES.get(cmp.loss, MEASURES["ncut"])
    where = STAGE_TITLES.get(cmp.stage, f"Stage {cmp.stage}")
    if compact:
        gnn = (f"GNN (CC, k ≤ {cmp.asked}): {plural(cmp.k, 'segment')}" if cmp.loss == "cc" else
               f"GNN (NCut, k = {cmp.asked})" + (", from the spectral cut" if cmp.restart_epoch else ""))
        return gnn, "Spectral cut", f"{where}: one graph of {cmp.num_nodes} patches, two solvers"
    if cmp.loss == "cc":
        gnn = f"GNN, this result: CC loss (α = {cmp.alpha:g}, k ≤ {cmp.asked}), {plural(cmp.k, 'segment')}"
        graph = (f"CC graph A = F·Fᵀ − max/α of {cmp.num_nodes} patches; CC found {plural(cmp.k, 'segment')} "
                 f"itself, and the spectral method (no CC form) cut NCut's graph relu(F·Fᵀ)/max into as many")
    else:
        gnn = f"GNN, this result: NCut loss, k = {cmp.asked}" + (
            ", started from the spectral cut" if cmp.restart_epoch else "")
        kind = graph_kind(cmp.num_nodes) if cmp.sparse else "dense"
        graph = (f"one graph A = relu(F·Fᵀ)/max of {cmp.num_nodes} patches (" +
                 {"dense": "dense", "compact": "every pair, float16; the spectral cut on its k-NN part",
                  "sparse": "sparse k-NN graph"}[kind] + f"), cut by both into k = {cmp.k}")
    return gnn, f"Spectral: {cmp.spectral_method}", f"{where}: {graph}. {meaning}"


def comparison_figure(image: np.ndarray, grid: tuple[int, int], cmp: "CutComparison", text: float = 1.0) -> "Figure":
    """Two panels over ``image``: the GNN's cut (the result's own, in the overlay's colours) and the spectral
    cut of the same stage's graph (colours matched to the GNN's, :func:`comparison_colors`), each titled
    with its score under the result's loss (the lower one marked); patches the stage did not cut are grey.
    ``text``: every font this many times its size, the PNG's pixels unchanged."""
    gnn_colors, spectral_colors, keep = comparison_colors(cmp, grid[0] * grid[1])
    h, w = image.shape[:2]
    fig = new_figure(7.0, 1.5 + 3.3 * h / max(w, 1), text)
    engine = fig.get_layout_engine()
    if engine is not None:  # room between the wrapped suptitle and the panel titles
        engine.set(h_pad=0.08)  # type: ignore[call-arg]  # constrained layout's own keyword
    axes = fig.subplots(1, 2)
    name = MEASURES.get(cmp.loss, MEASURES["ncut"])[0]
    best = min(cmp.gnn_score, cmp.spectral_score)
    titles = _comparison_titles(cmp, compact=text >= COMPACT_TEXT)
    for ax, cells, title, value in ((axes[0], gnn_colors, titles[0], cmp.gnn_score),
                                    (axes[1], spectral_colors, titles[1], cmp.spectral_score)):
        ax.imshow(patch_colors_image(image, cells, grid, keep=keep))
        mark = "  ✓ lower" if value <= best + 1e-9 and cmp.gnn_score != cmp.spectral_score else ""
        ax.set_title(f"{title}\n{name} = {value:.4g}{mark}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(titles[2], fontsize=9)
    return fig


def frame_colors(record: "TrainingRecord", frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mixed (N, 3) float32, hard (N, 3) uint8, keep (N,) bool)`` of snapshot ``frame`` of the replay:
    each patch's colours mixed by its soft assignment, the colour of its argmax, and the patches that
    stage clustered. A GNN cluster has the colour of the final label it became
    (:attr:`~deepcut.lessons.replay.StageRecord.label_of`, :func:`label_colors`), so the last frame of the last
    stage ends at the overlay's colours."""
    s, i = record.frames()[frame]
    st = record.stages[s]
    soft = st.soft[i]
    colors = label_colors(int(max(st.label_of.max(initial=0), record.labels.max(initial=0))) + 1)[st.label_of]
    n = record.grid[0] * record.grid[1]
    keep = np.zeros(n, bool)
    keep[st.rows] = True
    mixed, hard = np.zeros((n, 3), np.float32), np.zeros((n, 3), np.uint8)
    mixed[st.rows] = soft @ colors.astype(np.float32)
    hard[st.rows] = colors[soft.argmax(1)]
    return mixed, hard, keep


def training_frame_figure(image: np.ndarray, record: "TrainingRecord", frame: int, text: float = 1.0,
                          note: str = "") -> "Figure":
    """Snapshot ``frame`` (an index into :meth:`~deepcut.lessons.replay.TrainingRecord.frames`) of the replay:
    the soft assignments (colours mixed by probability: a pale mix is an unsure patch), their
    argmax (the segments at that moment, :func:`frame_colors`) and the stage's loss curve with the epoch
    marked. ``text``: every font this many times its size, the PNG's pixels unchanged (from
    :data:`COMPACT_TEXT` on, without the argmax panel); ``note``: a line under the title (e.g. that the result
    was corrected after this training). A record without snapshots (no GNN was trained) gives a figure that
    says so."""
    if not record.frames():
        fig = new_figure(9.0, 1.6, text)
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "Nothing to replay: no GNN was trained for this result\n(its graph had nothing to cut: "
                "see the status line)", ha="center", va="center", fontsize=10, transform=ax.transAxes)
        return fig
    s, i = record.frames()[frame]
    st = record.stages[s]
    mixed, hard, keep = frame_colors(record, frame)
    h, w = image.shape[:2]
    compact = text >= COMPACT_TEXT  # large text: the soft map and the loss only (the next step shows the argmax)
    panels = [(mixed, "soft S (pale = unsure)" if compact else "soft S: colours mixed\nby probability\n"
               "(pale mix = unsure)")] + ([] if compact else [(hard, "argmax S:\nthe segments now")])
    fig = new_figure(7.0 if compact else 9.0, 1.3 + (4.2 if compact else 2.9) * h / max(w, 1), text)
    axes = fig.subplots(1, len(panels) + 1, width_ratios=[1.8 if compact else 1] * len(panels) + [0.9])
    for ax, (cells, title) in zip(axes, panels, strict=False):
        ax.imshow(patch_colors_image(image, cells, record.grid, 0.8, keep))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    loss_panel(axes[-1], st, i, terms=not compact)
    if compact:
        axes[-1].set_title("loss", fontsize=9)
    stage = f"Stage {st.stage}" if compact else STAGE_TITLES.get(st.stage, f"Stage {st.stage}")
    title = f"{stage} (k={st.soft[i].shape[1]}) — {frame_words(st, i, compact)}"
    fig.suptitle(f"{title}\n{note}" if note else title, fontsize=10)
    return fig


def frame_words(st: "StageRecord", i: int, compact: bool = False) -> str:
    """What snapshot ``i`` of ``st`` shows, for its title: the epoch of how many, and where NCut restarted
    from the spectral cut, which try it belongs to (``compact``: fewer words)."""
    phase, epoch, total = st.phase(i), st.epochs[i], len(st.losses)
    if phase == "first try":
        return (f"first try, epoch {epoch} of {st.restart_epoch}" if compact else
                f"first try, after epoch {epoch} of {st.restart_epoch} (it will leave a segment empty)")
    if phase == "restart start":
        return (f"{RESTART_LABEL}: its start" if compact else
                f"{RESTART_LABEL}: a fresh GNN after learning that cut ({NCUT_START_EPOCHS} epochs), "
                f"before NCut's epoch {epoch + 1}")
    settled = ""
    if st.settled is not None and phase in ("restart", "training"):
        last = i == len(st.epochs) - 1
        settled = (" (settled)" if compact else
                   f" — settled: stopped here, {st.planned - (total - st.restart_epoch)} epochs early" if last else
                   f" (it settled after epoch {total}; {st.planned} allowed)")
    if phase == "restart":
        return f"{RESTART_LABEL}, epoch {epoch} of {total}{settled}" if compact else (
            f"{RESTART_LABEL}, after epoch {epoch} of {total}{settled}")
    return f"after epoch {epoch} of {total}{settled}"


#: What the loss plot calls the epochs a settled training did not train (hatched).
SETTLED_LABEL = "settled: not trained"


def loss_panel(ax: "Axes", st: "StageRecord", i: int, terms: bool = True) -> None:
    """The stage's training loss (grey) with snapshot ``i``'s epoch marked and, for NCut (if ``terms``), its two
    terms at the snapshots: the cut term (share of edge weight kept inside segments, negated) and the
    orthogonality penalty, whose sum is the loss without dropout. Where NCut restarted from the spectral cut
    (:attr:`~deepcut.lessons.records.StageRecord.restart`), the restart's epochs are shaded after a dashed line
    and its curves drawn apart from the first try's (two GNNs); its start is marked on that line. The epochs a
    settled training did not train (:attr:`~deepcut.lessons.records.StageRecord.settled`) are hatched."""
    at = st.restart_epoch
    x = np.asarray(st.epochs, np.float64)
    if st.restart is not None:
        x[st.restart] = at + 0.5  # the restart's start: between the two tries
        ax.axvspan(at + 0.5, max(len(st.losses), at + 1) + 0.5, color="C9", alpha=0.13, lw=0, label=RESTART_LABEL)
        ax.axvline(at + 0.5, color="C9", ls="--", lw=1.2)
    epoch = float(x[i])
    if st.settled is not None and st.planned:  # the epochs the settle rule saved, after the last one trained
        end = st.restart_epoch + st.planned
        ax.axvspan(len(st.losses) + 0.5, end + 0.5, facecolor="none", edgecolor="0.6", hatch="//", lw=0,
                   label=SETTLED_LABEL)
        ax.set_xlim(-0.02 * end, end + 0.5)
    if st.losses:
        parts = [(0, at), (at, len(st.losses))] if at else [(0, len(st.losses))]
        for n, (a, b) in enumerate(parts):
            ax.plot(np.arange(a + 1, b + 1), st.losses[a:b], color="0.5", lw=1, label="loss" if n == 0 else None)
        if epoch >= 1 and epoch == int(epoch):
            ax.plot([epoch], [st.losses[int(epoch) - 1]], "o", color="C3")
    if st.terms and terms:
        cut, ortho = (np.asarray(v) for v in zip(*st.terms, strict=False))
        split = [slice(0, st.restart), slice(st.restart, None)] if st.restart is not None else [slice(None)]
        for n, part in enumerate(split):
            ax.plot(x[part], cut[part], ls="--", lw=1, color="C0", label="cut" if n == 0 else None)
            ax.plot(x[part], ortho[part], ls=":", lw=1.2, color="C1", label="orthogonality" if n == 0 else None)
        ax.figure.legend(*ax.get_legend_handles_labels(), loc="outside lower right", ncols=4, frameon=False,
                         fontsize=SMALLEST_PT, handlelength=1.5, columnspacing=0.8)
    ax.axvline(epoch, color="C3", lw=0.8, ls="--")
    ax.set_xlabel("epoch", fontsize=SMALLEST_PT)
    ax.set_title("loss of this stage", fontsize=9)
    ax.tick_params(labelsize=SMALLEST_PT)
    plain_ticks(ax)
    ax.grid(alpha=0.3)


def pca_image(pca: np.ndarray, longest: int = 512) -> Image.Image:
    """The ``(h, w, 3)`` principal-component colours of :func:`~deepcut.lessons.pca.feature_pca`, one
    square per patch, the longer side ``longest`` pixels."""
    h, w = pca.shape[:2]
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return Image.fromarray((np.clip(pca, 0, 1) * 255).round().astype(np.uint8)).resize(size, Image.Resampling.NEAREST)
