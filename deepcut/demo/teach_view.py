"""The Image tab's teaching view and the page's layout modes, as Gradio pieces the app places and wires.

* :func:`results_column`: the result column (status, overlay, click mode, downloads);
* :func:`method_section`: loss curves, soft maps, the affinity of a patch (with colour bars);
* :func:`teaching_panel`: GNN vs spectral cut, the training replay (a scrubber over epochs), the
  features' principal components (:func:`deepcut.demo.teaching.explain`);
* :func:`click_mode`: what a click on the overlay does (show affinities, or pick the object);
* :func:`header` and :func:`page_scripts`: the presenter-mode checkbox and the page's scripts (layout
  modes, typed values, keyboard shortcuts: :mod:`deepcut.demo.layout`).

The logic is :mod:`deepcut.demo.teaching` and :mod:`deepcut.lessons`; this module only lays out and
wires. Imports Gradio, so only the app imports it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import gradio as gr

from ..lessons.picking import label_at
from ..lessons.words import settings_line
from ..render.marks import draw_focus
from . import corrections, layout
from .controls import downloads, opacity_slider, picture
from .errors import DemoError
from .handlers import click_point, shows_errors, upload_name
from .layout import figure_text
from .outputs import display_factor
from .results import DemoResult
from .session import DemoSession
from .teaching import Explanation, explain, pick

TEACHING = """
**How.** The backbone describes every small square (patch) of the photo by a vector (a DINO vision model:
what the patch shows; the colour backbone: its colour, texture and position), patches that look alike
are linked into a graph, and a tiny neural network (a GNN), trained **on this photo alone** in about a
second, cuts that graph into segments. Moving a slider only retrains the tiny network.

**Reading the pictures.** *Loss*: one panel per stage, each with its own epochs (stage 1: foreground
and background, stage 2: foreground parts, stage 3: background parts); lower is better. With the
paper's 10 epochs the stage-1 curve is usually **still falling when training stops**: the soft maps
are not crisp yet, but the segments (the argmax) are mostly settled — replay the training below to
see it, or give stage 1 more epochs under *More settings*. *Soft assignments*: the softmax output S
of the GNN for each segment (colour bar: yellow = surely this segment); argmax S gives the overlay.
*Affinity*: the row of the graph A for one patch (green box): how strongly it is linked to every
other patch. With CC, red links attract and blue links repel.
"""

EXPLAIN_HELP = """
**Inside the method** (runs on demand: it trains the GNN again, recording it). *Same graph, two
solvers*: the GNN and the classical spectral method (Shi & Malik's normalized cut by eigenvectors)
cut the very same graph, and each cut is scored by its normalized cut on it. *Training replay*:
drag the slider to watch the GNN's output take shape, epoch by epoch and stage by stage (an exact
replay of this result's training); its loss panel splits the NCut loss into the *cut term* (minus the
share of edge weight kept inside segments: −1 when everything is one segment) and the
*orthogonality* penalty (0 when the segments are crisp and equal-sized): training trades one for the
other, which is why the loss is negative for k = 2. *Patch features*: what the backbone sees, reduced to three
principal components shown as red, green and blue: patches of similar colour have similar features.
"""

#: What a click on the overlay does.
CLICK_MODES = (("show its affinities", "affinity"), ("pick it as the object", "pick"),
               ("join two points (click both)", "join"), ("separate two points (click both)", "separate"))

CORRECT_HELP = ("**Correct the cut:** choose *join* or *separate*, click two points on the overlay: the GNN "
                "continues from its training with that constraint (two points in one segment, or in two). "
                "Corrections add up; *Undo* takes the last back, *Reset* returns to the plain cut.")

def header(text: str) -> tuple[gr.Checkbox, gr.Number]:
    """The page's title and introduction, with the presenter-mode checkbox beside it; returns the checkbox
    and the figures' text scale (hidden; set in the browser, see :data:`~deepcut.demo.layout.LOAD_JS`)."""
    with gr.Row(equal_height=False):
        gr.Markdown(text, elem_id="header")
        toggle = gr.Checkbox(False, label="Presenter mode", elem_id="presenter-toggle", container=False,
                             info=None)
        text_scale = gr.Number(1.0, visible=False, elem_id="figure-text")
    return toggle, text_scale


def page_scripts(demo: gr.Blocks, toggle: gr.Checkbox, text_scale: gr.Number) -> None:
    """Wire :data:`~deepcut.demo.layout.LOAD_JS` on page load and the presenter checkbox (both in the
    browser only: they set presenter mode and the figures' ``text_scale``)."""
    demo.load(None, None, [toggle, text_scale], js=layout.LOAD_JS)
    toggle.input(None, toggle, [toggle, text_scale], js=layout.TOGGLE_JS)


def click_mode() -> dict[str, Any]:
    """What a click on the overlay does (show the clicked patch's affinities, pick its segment, or correct
    the cut), with the corrections' Undo and Reset buttons and presenter mode's pin:
    ``{"click_mode", "undo", "reset", "pin_here"}``."""
    out: dict[str, Any] = {"click_mode": gr.Radio(list(CLICK_MODES), value="affinity", elem_id="click-mode",
                                                  label="Click on a segment of the overlay to…", container=True)}
    with gr.Row(elem_id="correct-row"):
        out["undo"] = gr.Button("Undo correction", size="sm", elem_id="undo-btn")
        out["reset"] = gr.Button("Reset corrections", size="sm", elem_id="reset-btn")
        out["pin_here"] = gr.Button("Pin to compare", size="sm", elem_id="pin-here")  # presenter mode only
    gr.Markdown(CORRECT_HELP, elem_id="correct-help")
    return out


def results_column() -> dict[str, Any]:
    """The Image tab's result column: status (the segment count first), overlay, click mode, the walkthrough's
    start button, opacity, mask, box, cut-out (RGBA), downloads."""
    out = {"status": gr.Markdown("", elem_id="status"),
           "overlay": picture("Part overlay (click a segment: see the choice below it)", "overlay", 420),
           **click_mode(), "opacity": opacity_slider("opacity"),
           "walk_start": gr.Button("Step through the method ▶", size="sm", elem_id="walk-start")}
    with gr.Row(elem_id="results-small"):
        for name, label in (("mask", "Foreground mask"), ("bbox", "Bounding box"), ("cutout", "Cut-out (PNG)")):
            out[name] = picture(label, name, 220)
    out["files"] = downloads("Downloads: label map (PNG, pixel value = label) and box (JSON)", elem_id="downloads")
    return out


def method_section() -> dict[str, Any]:
    """The pictures under the results: loss per stage, soft maps (one figure, colour bar), affinity."""
    out: dict[str, Any] = {}
    with gr.Column(elem_id="method-section"):
        gr.Markdown("## What the method does")
        gr.Markdown(TEACHING)
        with gr.Row(equal_height=False):
            out["loss_plot"] = gr.Plot(label="GNN loss per epoch", show_label=False, format="png",
                                       elem_id="loss-plot")
            out["soft"] = picture("Soft assignment of each segment (frame = overlay colour)", "soft-maps", 330)
        with gr.Row(equal_height=False):
            with gr.Column():
                out["affinity"] = picture("Affinity of one patch to all others (click to choose)", "affinity", 360)
                out["caption"] = gr.Markdown("", elem_id="affinity-caption")
    return out


def teaching_panel() -> dict[str, Any]:
    """The on-demand teaching view: its button, pictures, scrubber and the explanation it keeps."""
    t: dict[str, Any] = {}
    with gr.Accordion("Inside the method: GNN vs spectral cut, training replay, features", open=True,
                      elem_id="teach-panel"):
        gr.Markdown(EXPLAIN_HELP)
        t["run"] = gr.Button("Explain this result", elem_id="explain-btn")
        t["compare"] = picture("Same graph, two solvers: GNN vs spectral", "compare", 340)
        t["compare_caption"] = gr.Markdown("", elem_id="compare-caption")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                t["scrub"] = gr.Slider(0, 1, value=0, step=1, label="Training replay: snapshot (stage by stage)",
                                       elem_id="train-scrub", interactive=True)
                t["frame"] = picture("The GNN's output during training", "train-frame", 300)
            t["pca"] = picture("Patch features: 3 principal components as RGB", "pca", 300)
        t["explanation"] = gr.State(None)
    return t


class TeachingHandlers:
    """The teaching view's events over the shared :class:`DemoSession` (errors become messages).

    Like the page's other events they get and give keys of ``session.results``, never the results
    themselves (the page's ``gr.State`` holds only a key)."""

    def __init__(self, session: DemoSession) -> None:
        self.session = session

    @shows_errors
    def explain(self, key, text: float = 1.0) -> tuple:
        """Compare, replay and PCA for the page's result: compare picture, caption, scrubber, first
        frame, PCA picture, the key of the explanation (``text``: the figures' text scale)."""
        result = self.session.results.get(key)
        if result is None:
            raise DemoError("Segment an image first, then ask for the explanation.")
        ex: Explanation = explain(self.session.model(result.backbone).model, result, self.session.limits.max_epochs)
        scrub = gr.update(minimum=0, maximum=max(1, ex.frames - 1), value=0)
        t = figure_text(text)
        return (ex.comparison_picture(text=t), ex.comparison_caption(), scrub, ex.frame_picture(0, text=t),
                ex.pca_picture(),
                {"explanation": self.session.results.add(ex), "result": key})

    def out_of_date(self, shown: dict | None, key) -> Any:
        """The explanation's caption once the page shows another result than the one explained: marked out of
        date, with the settings it explains (nothing before an explanation, or while it is the page's)."""
        if not isinstance(shown, dict) or shown.get("result") in (None, key):
            return gr.skip()
        ex, was = self.session.results.get(shown.get("explanation")), self.session.results.get(shown["result"])
        if not isinstance(ex, Explanation):
            return gr.skip()
        what = f" ({settings_line(was)})" if was is not None else ""
        return (f"⚠️ **Out of date:** this explains an earlier result{what}. Press *Explain this result* for "
                f"the one shown now.\n\n{ex.comparison_caption()}")

    def scrub(self, shown: dict | None, frame: float, text: float = 1.0):
        """Snapshot ``frame`` of the replay of the explanation shown (``{"explanation": key, "result": key}``)."""
        ex = self.session.results.get(shown.get("explanation")) if isinstance(shown, dict) else None
        return ex.frame_picture(int(frame), text=figure_text(text)) if isinstance(ex, Explanation) else gr.skip()

    def figures(self, key, text: float = 1.0) -> tuple:
        """The loss plot and the soft maps of the page's result redrawn at the figures' new text scale ``text``
        (presenter mode switched on or off)."""
        result = self.session.results.get(key)
        if not isinstance(result, DemoResult):
            return gr.skip(), gr.skip()
        t = figure_text(text)
        return result.loss_plot(t), result.soft_picture(t)

    def click_overlay(self, key, mode: str, image: str | None, opacity: float, evt: gr.SelectData) -> tuple:
        """A click on the overlay: the affinity view of the clicked patch (``mode="affinity"``), the clicked
        segment as the object (``"pick"``), or a point of a correction (``"join"``, ``"separate"``): the
        overlay, mask, box, cut-out, status, downloads and the kept result follow."""
        result = self.session.results.get(key)
        point = click_point(evt.index)
        if result is None or point is None:
            return (gr.skip(),) * 9
        f = display_factor(result.seg.image.shape)  # the page shows the overlay enlarged by f
        return self.click(result, mode, image, point[0] / f, point[1] / f, opacity)

    @shows_errors
    def click(self, result, mode: str, image: str | None, x: float, y: float, opacity: float = 0.5) -> tuple:
        """:meth:`click_overlay` at pixel ``(x, y)`` of the overlay of ``result``."""
        skip = gr.skip()
        if mode not in ("pick", "join", "separate"):  # the point and its segment marked where the eye is
            segment = result.seg.labels == label_at(result.seg, x, y)
            marked = draw_focus(result.overlay(opacity), segment, (x, y))
            return (self.session.overlay_file(result, marked, upload_name(image), display=True),
                    *self.session.affinity(result, x, y, clicked=True),
                    *(skip,) * 6)
        if mode == "pick":
            return self.shown(pick(result, x, y), image, opacity)
        model, cap = self.session.model(result.backbone).model, self.session.limits.max_epochs
        return self.shown(corrections.click(model, result, mode, x, y, cap), image, opacity)

    @shows_errors
    def correction(self, key, action: str, image: str | None, opacity: float) -> tuple:
        """Undo the last correction (``action="undo"``) or drop them all (``"reset"``)."""
        result = self.session.results.get(key)
        if result is None:
            return (gr.skip(),) * 9
        model = self.session.model(result.backbone).model
        cap = self.session.limits.max_epochs
        done = corrections.undo(model, result, cap) if action == "undo" else corrections.reset(model, result)
        return self.shown(done, image, opacity)

    def shown(self, result, image: str | None, opacity: float) -> tuple:
        """The outputs of a click for a new ``result``: overlay, (affinity and caption unchanged), mask, box,
        cut-out, status, downloads, the kept result."""
        files = self.session.save_outputs(result, upload_name(image))
        overlay = self.session.overlay_file(result, result.overlay(opacity), upload_name(image), display=True)
        return (overlay, gr.skip(), gr.skip(), result.mask(), result.bbox_image(), result.cutout(),
                result.status_markdown(), files, self.session.results.add(result))


def wire(handlers: TeachingHandlers, out: dict, teach: dict, state, image, text,
         gpu: Callable[[Callable], Callable] = lambda fn: fn) -> Any:
    """Wire the overlay's clicks (by :func:`click_mode`), the explain button and the scrubber
    (``gpu``: the app's wrapper of work that may need a GPU slot). Returns the overlay click's event (done
    once the click's outputs are shown), for the walkthrough to follow it."""
    clicked = [out[n] for n in ("overlay", "affinity", "caption", "mask", "bbox", "cutout", "status", "files")]
    clicked.append(state)
    click = out["overlay"].select(gpu(handlers.click_overlay), [state, out["click_mode"], image, out["opacity"]],
                                  clicked, api_visibility="private", concurrency_id="segment")
    click.then(None, out["click_mode"], None, js=layout.AFFINITY_JS, api_visibility="private")  # on screen
    for action in ("undo", "reset"):
        out[action].click(gpu(functools.partial(handlers.correction, action=action)),
                          inputs_kwargs={"key": state, "image": image, "opacity": out["opacity"]}, outputs=clicked,
                          api_visibility="private", concurrency_id="segment")
    shown = [teach[n] for n in ("compare", "compare_caption", "scrub", "frame", "pca", "explanation")]
    teach["run"].click(gpu(handlers.explain), [state, text], shown, api_visibility="private", concurrency_id="segment")
    teach["scrub"].change(handlers.scrub, [teach["explanation"], teach["scrub"], text], teach["frame"],
                          trigger_mode="always_last", api_visibility="private", show_progress="hidden")
    # the page's segmentation draws them at its text scale; redrawn when the scale changes (presenter mode)
    text.change(handlers.figures, [state, text], [out["loss_plot"], out["soft"]], api_visibility="private",
                show_progress="hidden")
    state.change(handlers.out_of_date, [teach["explanation"], state], teach["compare_caption"],
                 api_visibility="private", show_progress="hidden")  # a new result: the explanation says so
    return click
