"""Step through: how one result came about, in five steps a teacher can click through.

1. the features (their principal components as colours);
2. the affinity graph (one patch's row of it);
3. the GNN's training, replayed snapshot by snapshot (a step of several frames);
4. the argmax: each patch's segment, upsampled without refinement;
5. the edge refinement (before and after), or a sentence saying there was none.

A :class:`Walkthrough` is built from a result and its :class:`~.explain.Explanation` (which did the only
training): it reads the store's cached features once and draws each picture when asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
from PIL import Image

from ..clustering.fit import NCUT_START_EPOCHS, RESTART_LABEL
from ..features.store import FeatureStore
from ..graph.patch_graph import graph_kind
from ..render.figures import figure_image
from ..render.style import COMPACT_TEXT, min_text_px, new_figure
from ..render.teaching import training_frame_figure
from ..segmentation.colors import overlay
from ..segmentation.notes import plural
from ..segmentation.refine import segment_maps
from .affinity import affinity_view, which_patch
from .explain import Explanation
from .records import StageRecord
from .result import Shown
from .words import count

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["REFINE_WORDS", "STEP_NAMES", "Step", "Walkthrough", "refinement_figure", "restart_caption"]

#: Short names of the steps, in order (file names of their slides: :mod:`.slides`).
STEP_NAMES = ("features", "graph", "training", "argmax", "refinement")
#: What each refinement does, in words.
REFINE_WORDS = {"guided": "a guided filter (the image guides the smoothing of each segment's probability)",
                "crf": "a dense CRF (neighbouring pixels of similar colour prefer the same segment)"}


@dataclass(frozen=True)
class Step:
    """One step of a :class:`Walkthrough`.

    Attributes:
        title: a few words (``"1. Features"``).
        caption: what the picture shows for this image, in true numbers.
        frames: how many pictures the step has (the training replay: one per snapshot).
        draw: ``draw(frame, text)``, the picture of a step that is not a figure.
        figure: ``figure(frame, text)``, the matplotlib figure of a step drawn as one (then ``draw`` is unused).
    """

    title: str
    caption: str
    frames: int
    draw: Callable[[int, float], Image.Image] | None = field(default=None, repr=False, compare=False)
    figure: Callable[[int, float], "Figure"] | None = field(default=None, repr=False, compare=False)

    def picture(self, frame: int = 0, text: float = 1.0) -> Image.Image:
        """Frame ``frame`` (clamped to ``0 … frames-1``) as an RGB picture; ``text`` scales the fonts
        of pictures drawn as figures."""
        frame = int(np.clip(int(frame), 0, self.frames - 1))
        if self.figure is not None:
            return figure_image(self.figure(frame, float(text)))
        assert self.draw is not None, "a step has a picture or a figure"
        return self.draw(frame, float(text))

    def min_text_px(self, frame: int = 0, text: float = 1.0) -> float:
        """The smallest text of frame ``frame``'s picture, in its pixels (``inf``: a picture without text)."""
        if self.figure is None:
            return float("inf")
        return min_text_px(self.figure(int(np.clip(int(frame), 0, self.frames - 1)), float(text)))


def refinement_figure(image: np.ndarray, before: np.ndarray, after: np.ndarray, method: str,
                      opacity: float = 0.5, text: float = 1.0) -> "Figure":
    """Two overlays of ``image`` ``(H, W, 3)``: the labels ``(H, W)`` before refinement and after it
    (``text``: font factor, see :func:`~deepcut.render.style.new_figure`)."""
    h, w = image.shape[:2]
    compact = text >= COMPACT_TEXT  # a projector: shorter words, a narrower picture
    fig = new_figure(7.0 if compact else 10.0, 1.0 + (3.4 if compact else 4.8) * h / max(w, 1), text)
    axes = fig.subplots(1, 2)
    for ax, labels, title in ((axes[0], before, "before" if compact else "before: patch labels upsampled"),
                              (axes[1], after, "after" if compact else f"after: {method} refinement")):
        ax.imshow(overlay(image, labels, opacity))
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    changed = float((before != after).mean())
    fig.suptitle(f"{method.capitalize()}: {changed:.1%} of pixels changed" if compact else
                 f"Edge refinement ({method}): {changed:.1%} of the pixels changed segment", fontsize=11, wrap=True)
    return fig


def restart_caption(st: StageRecord) -> str:
    """The replay's words on a stage whose NCut restarted from the spectral cut (``st.restart`` set): why,
    what was done, and which snapshots show it."""
    first = st.restart_epoch
    return (f"In stage {st.stage} NCut's first try of {plural(first, 'epoch')} left a segment empty, so it "
            f"restarted from the graph's spectral cut: a fresh GNN learned that cut ({NCUT_START_EPOCHS} epochs) "
            f"and NCut trained {plural(len(st.losses) - first, 'epoch')} again from there. The replay shows both: "
            f"the first try, then the {RESTART_LABEL} (epochs {first + 1}–{len(st.losses)}, shaded in the loss).")


def settled_caption(st: StageRecord) -> str:
    """The replay's words on a stage whose training stopped once settled (``st.settled`` set): when, why, and
    where the loss plot shows it."""
    assert st.settled is not None
    trained = len(st.losses) - st.restart_epoch
    which = f"the {RESTART_LABEL}" if st.restart is not None else f"stage {st.stage}"
    return (f"Training of {which} stopped after {plural(trained, 'epoch')} of {st.planned}: "
            f"{st.settled.words()}, so the other {st.planned - trained} could not be expected to change the "
            f"segments and were not trained (hatched in the loss; settle off trains every epoch).")


class Walkthrough:
    """The steps of one result, in order (see the module doc).

    Example::

        dc = DeepCut("color")
        result = LessonResult.of(dc.store, dc.segment("cat.jpg", stages=2, k=3))
        walk = Walkthrough(dc.store, result, explain(dc.store, result.seg))
        for i in range(len(walk)):
            step = walk.step(i)
            step.picture(step.frames - 1).save(f"step{i}.png")

    Args:
        store: the feature store of the backbone ``result`` was computed with (its features are cached).
        result: the result to walk through (:class:`~.result.Shown`).
        explanation: :func:`~.explain.explain` of ``result`` (its PCA and training replay).
        point: the pixel ``(x, y)`` the visitor clicked, whose graph row step 2 shows (default: the result's
            ``default_point()``, and step 2 says that no patch was clicked).
        opacity: colour opacity of the overlays.

    Raises:
        DeepCutError: the features cannot be computed.
    """

    def __init__(self, store: FeatureStore, result: Shown, explanation: Explanation,
                 point: tuple[float, float] | None = None, opacity: float = 0.5) -> None:
        seg, cfg = result.seg, result.seg.config
        feats = store.get(seg.image, cfg)
        self.result, self.explanation, self.opacity = result, explanation, float(opacity)
        self.grid = (int(feats.grid[0]), int(feats.grid[1]))
        self.dim = int(feats.features.shape[1])
        #: whether step 2 shows a patch the visitor chose (``point`` given) or the foreground's centre patch
        self.clicked = point is not None
        self.affinity, self.affinity_caption = affinity_view(store, seg, *(point or result.default_point()))
        fg = seg.foreground_labels
        #: ``(H, W)`` int32: the patch labels upsampled as the pipeline does without refinement.
        self.unrefined = segment_maps(seg.image, seg.patch_labels, tuple(feats.work_size), fg, "none")[0]
        self.steps = [self.features_step(), self.graph_step(), self.training_step(), self.argmax_step(),
                      self.refinement_step()]  # in the order of STEP_NAMES

    def __len__(self) -> int:
        return len(self.steps)

    def step(self, i: int) -> Step:
        """Step ``i``, clamped to ``0 … len-1``."""
        return self.steps[int(np.clip(int(i), 0, len(self.steps) - 1))]

    def titles(self) -> list[str]:
        return [s.title for s in self.steps]

    # -- the steps ----------------------------------------------------------------------------------
    def features_step(self) -> Step:
        r, cfg = self.result, self.result.seg.config
        h, w = self.grid
        source = (f"`{r.backbone}` layer {cfg.layer}, facet {cfg.facet}" if r.depth > 1 else
                  f"the `{r.backbone}` backbone (colour, texture and position of each patch)")
        caption = (f"{count(h * w)} patches ({h} × {w}), each a {self.dim}-d vector from {source}"
                   f"{', log-binned' if cfg.log_bin else ''}. Their 3 principal components as RGB: similar "
                   f"vectors get similar colours.")
        return Step("1. Features", caption, 1, lambda frame, text: self.explanation.pca_picture())

    def graph_step(self) -> Step:
        n = self.grid[0] * self.grid[1]
        kind = graph_kind(n)
        edges = "every pair of patches" if kind != "sparse" else "each patch and its nearest neighbours"
        caption = (f"The graph: {count(n)} nodes, one per patch, an edge between {edges}. One row of it, of "
                   f"{which_patch(self.clicked)}: {self.affinity_caption}")
        return Step("2. Affinity graph", caption, 1, lambda frame, text: self.affinity)

    def training_step(self) -> Step:
        ex, seg = self.explanation, self.result.seg
        if ex.frames == 0:
            caption = "No GNN was trained for this image (its graph needed no cut): the segments are shown as they are."
            return Step("3. Training", caption, 1, lambda frame, text: overlay(seg.image, seg.labels, self.opacity))
        stages = [f"stage {st.stage} (k={st.soft[0].shape[1]}) {plural(len(st.losses), 'epoch')}"
                  for st in ex.record.stages if st.soft]
        restarts = [restart_caption(st) for st in ex.record.stages if st.restart is not None]
        settled = [settled_caption(st) for st in ex.record.stages if st.settled is not None]
        caption = (f"The GNN learns the cut: {', then '.join(stages)}; {plural(ex.frames, 'snapshot')}. Soft "
                   f"assignments (a pale mix is an unsure patch) and the loss; step 4 shows their argmax."
                   + "".join(f" {r}" for r in restarts + settled))
        return Step("3. Training", caption, ex.frames, figure=lambda frame, text: training_frame_figure(
            ex.image, ex.record, frame, text=text, note=ex.replay_note))

    def argmax_step(self) -> Step:
        seg = self.result.seg
        h, w = self.grid
        n = int(np.unique(self.unrefined).size)
        caption = (f"Argmax: each of the {count(h * w)} patches takes its most likely segment: "
                   f"{plural(n, 'segment')}. The {h} × {w} patch labels are upsampled to the image's "
                   f"{seg.image.shape[1]} × {seg.image.shape[0]} pixels without refinement, so the "
                   f"boundaries follow the patch grid.")
        return Step("4. Segments (argmax)", caption, 1,
                    lambda frame, text: overlay(seg.image, self.unrefined, self.opacity))

    def refinement_step(self) -> Step:
        seg = self.result.seg
        method = seg.config.refine
        if method == "none":
            caption = ("No edge refinement (refine = none): the upsampled patch labels of the previous step "
                       "are the result. 'guided' or 'crf' would move the boundaries onto the image's edges.")
            return Step("5. Refinement", caption, 1, lambda frame, text: overlay(seg.image, seg.labels, self.opacity))
        changed = float((self.unrefined != seg.labels).mean())
        caption = (f"Edge refinement with {REFINE_WORDS.get(method, method)}: the boundaries move onto the "
                   f"image's edges; {changed:.1%} of the pixels changed segment.")
        return Step("5. Refinement", caption, 1, figure=lambda frame, text: refinement_figure(
            seg.image, self.unrefined, seg.labels, method, self.opacity, text))
