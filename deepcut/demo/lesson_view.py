"""The Image tab's pieces for teaching and presenting, as Gradio blocks the app places and wires.

* :func:`compare_panel`: pin a result and see the next one beside it; a sweep strip (k = 2…6, several α …)
  as one figure (:mod:`deepcut.lessons.compare`, :mod:`deepcut.lessons.sweep`);
* :func:`walk_panel`: the walkthrough of the method on the current image, step by step with Previous /
  Next (and the keyboard: :mod:`deepcut.demo.layout`) (:mod:`deepcut.lessons.walkthrough`);
* :func:`slides_panel`: every figure as a slide-size PNG with its settings in the caption (the clicked patch's
  affinities and every walkthrough step among them), the training replay as GIF and MP4, all of it as one zip
  (:mod:`deepcut.lessons.slides`; ``deepcut slides`` writes the same files from the command line).

:class:`LessonHandlers` are their events over the shared :class:`~deepcut.demo.DemoSession`; like the
page's other events they keep only keys of ``session.results`` in the page. Imports Gradio, so only the app
imports this module.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import gradio as gr

from ..lessons.compare import pair_picture
from ..lessons.names import file_stem
from ..lessons.slides import export_files
from ..lessons.sweep import SWEEP_NAMES, not_sweepable, sweepable
from ..lessons.words import settings_diff, settings_line
from ..render.slides import slide
from . import teaching
from .controls import picture
from .errors import DemoError, as_demo_errors
from .handlers import shows_errors, upload_name
from .layout import LARGE_TEXT, figure_text
from .results import DemoResult
from .session import DemoSession
from .teaching import Explanation, Walkthrough, explain

#: Text scale of the walkthrough's figures, wherever they are shown (its column is narrow on a laptop, a phone
#: and a projector alike): their compact forms, reading at 16 px or more in the presenter layout's figure
#: column on a 1280×720 projector (tests/test_lesson_browser.py measures it).
WALK_TEXT = LARGE_TEXT
#: Text scale of the pair and sweep figures on the page (drawn wide, shown in the result column).
PAGE_TEXT = 1.5
#: Text scale of the pinned pair in presenter mode (it spans the overlay's and the walkthrough's columns there).
PAIR_PRESENTER_TEXT = 1.6
#: The walkthrough's step that shows a patch's affinities (0-based), which presenter mode opens after a click.
AFFINITY_STEP = 1
#: The settings a sweep may offer: ``(label, SegmentConfig field)``; a result is offered those that apply to it
#: (:func:`sweep_choices`).
SWEEP_PARAMS = (("k", "k"), ("α (CC)", "alpha"), ("layer", "layer"))
#: The settings whose values are whole numbers (a typed 2.5 is refused, not cut to 2).
WHOLE_PARAMS = ("k", "layer")

WALK_HELP = ("Keys: **→ / ←** the training replay, then the next step · **PageDown / PageUp** (a presenter's "
             "clicker) or **N / P** next / previous step · **1-9** k · **F** the overlay full screen (Esc leaves).")


def compare_panel() -> dict[str, Any]:
    """Pin / unpin, the pair picture and its caption, the sweep's setting, values, button, picture and file."""
    c: dict[str, Any] = {"pinned": gr.State(None)}
    with gr.Accordion("Compare: pin a result, sweep a setting", open=True, elem_id="compare-panel"):
        with gr.Row():
            c["pin"] = gr.Button("Pin this result", size="sm", elem_id="pin-btn")
            c["unpin"] = gr.Button("Unpin", size="sm", elem_id="unpin-btn")
        c["pair"] = picture("Pinned (left) and now (right)", "compare-pair", 300)
        c["pair_caption"] = gr.Markdown("Pin a result, then change a setting (e.g. NCut → CC, layer 4 → 11): "
                                        "the new result appears beside the pinned one.", elem_id="pair-caption")
        with gr.Row(equal_height=True, elem_id="sweep-row"):
            c["param"] = gr.Radio([SWEEP_PARAMS[0]], value="k", label="Sweep", elem_id="sweep-param", scale=2)
            c["values"] = gr.Textbox("", label="Values (empty: 2…6 for k, a range of α for CC)",
                                     placeholder="2, 3, 4, 5, 6", elem_id="sweep-values", scale=2)
            c["sweep"] = gr.Button("Sweep", elem_id="sweep-btn", scale=1)
        c["strip"] = picture("Sweep: one panel per value, the other settings fixed", "sweep", 260)
        c["strip_caption"] = gr.Markdown("", elem_id="sweep-caption")
        c["strip_file"] = gr.File(label="The sweep as a slide (PNG)", interactive=False, elem_id="sweep-file")
    return c


def walk_panel() -> dict[str, Any]:
    """The walkthrough's column: start button (elsewhere), Previous / title / Next, picture, frame, caption."""
    w: dict[str, Any] = {"walk": gr.State(None), "index": gr.State(0)}
    gr.Markdown("### Step through the method", elem_id="walk-heading")
    with gr.Row(elem_id="walk-nav", equal_height=True):
        w["prev"] = gr.Button("◀ Previous", size="sm", elem_id="walk-prev")
        w["title"] = gr.Markdown("Segment an image: its walkthrough starts here.", elem_id="walk-title")
        w["next"] = gr.Button("Next ▶", size="sm", elem_id="walk-next")
    w["picture"] = picture("This step on the current image", "walk-picture", 420)
    w["frame"] = gr.Slider(0, 1, value=0, step=1, label="Snapshot of the training (← →)", visible=False,
                           elem_id="walk-frame")
    w["caption"] = gr.Markdown("", elem_id="walk-caption")
    gr.Markdown(WALK_HELP, elem_id="walk-keys")
    return w


def slides_panel() -> dict[str, Any]:
    """The slides button and its files."""
    s: dict[str, Any] = {}
    with gr.Accordion("For slides: every figure and walkthrough step as a 1920×1080 PNG, the replay as GIF and "
                      "MP4, one zip", open=False, elem_id="slides-panel"):
        s["run"] = gr.Button("Make slides of this result", elem_id="slides-btn")
        s["files"] = gr.File(label="Slides (PNG), replay (GIF, MP4), everything (zip)", file_count="multiple",
                             interactive=False, elem_id="slides-files")
    return s


def sweep_choices(result: DemoResult | None) -> list[tuple[str, str]]:
    """The ``(label, field)`` of :data:`SWEEP_PARAMS` that apply to ``result`` (k always, α for CC, the layer for
    a backbone with layers; k alone before any result)."""
    if result is None:
        return [SWEEP_PARAMS[0]]
    fields = sweepable(result, [field for _, field in SWEEP_PARAMS])
    return [(label, field) for label, field in SWEEP_PARAMS if field in fields]


def parse_values(text: str | None, param: str) -> list[float] | None:
    """The sweep's values typed as ``"2, 3, 4"`` (commas or spaces); None when empty (the default sweep). Values of
    :data:`WHOLE_PARAMS` must be whole numbers (``3.0`` is 3; ``2.5`` is refused, never cut to 2).

    Raises:
        DemoError: something that is not a number, or a fraction where whole numbers are needed.
    """
    words = (text or "").replace(",", " ").split()
    if not words:
        return None
    try:
        values = [float(w) for w in words]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise DemoError(f"The sweep's values must be finite numbers separated by commas, e.g. 2, 3, 4 "
                        f"(got {text!r}).")
    if param in WHOLE_PARAMS:
        broken = [w for w, v in zip(words, values, strict=True) if not v.is_integer()]
        if broken:
            raise DemoError(f"{SWEEP_NAMES.get(param, param)} takes whole numbers; {broken[0]} is not one "
                            f"(type e.g. 2, 3, 4).")
        return [int(v) for v in values]
    return values


class LessonHandlers:
    """The events of the compare, walkthrough and slides panels over the shared :class:`DemoSession`."""

    def __init__(self, session: DemoSession) -> None:
        self.session = session

    def _result(self, key) -> DemoResult:
        result = self.session.results.get(key)
        if not isinstance(result, DemoResult):
            raise DemoError("Segment an image first.")
        return result

    # -- compare ----------------------------------------------------------------------------------
    def pin(self, key) -> tuple:
        """Pin the page's result: the pinned key, the pair picture (empty until the next result), caption."""
        result = self.session.results.get(key)
        if result is None:
            return None, None, "Segment an image first, then pin its result."
        return key, None, f"Pinned: **{settings_line(result)}**. Change a setting: the next result " \
                          f"appears beside it."

    @shows_errors
    def pair(self, pinned, key, opacity: float = 0.5, text: float = 1.0, presenter: bool | None = False) -> tuple:
        """The pinned result beside the page's new one, and what differs (nothing while none is pinned); in
        presenter mode the pair fills the screen's width, so its text is :data:`PAIR_PRESENTER_TEXT`."""
        a, b = self.session.results.get(pinned), self.session.results.get(key)
        if a is None or b is None or pinned == key:
            return gr.skip(), gr.skip()
        same = a.seg.image.shape == b.seg.image.shape and bool((a.seg.image == b.seg.image).all())
        note = "" if same else " (another image)"
        scale = PAIR_PRESENTER_TEXT if presenter else max(PAGE_TEXT, figure_text(text))
        picture_ = pair_picture(a, b, opacity, text=scale)
        return picture_, f"**{settings_diff(a, b)}**{note}"

    @shows_errors
    def sweep(self, key, param: str, values: str | None, opacity: float = 0.5, image: str | None = None,
              text: float = 1.0) -> tuple:
        """The sweep strip of the page's result: picture, caption, the strip as a slide PNG. A setting that does
        not apply to the result (offered for an earlier one) is refused with a line in the caption, nothing else
        changed."""
        result = self._result(key)
        why = not_sweepable(result, param)
        if why is not None:
            return gr.skip(), f"⚠️ Not swept: {why}", gr.skip()
        chosen = parse_values(values, param)
        if chosen is None:
            chosen = teaching.default_values(result, param)
        model = self.session.model(result.backbone).model
        limits = self.session.limits
        strip = teaching.sweep(model, result, param, chosen, limits.max_epochs, limits.deadline())
        fig = strip.figure(opacity=opacity)
        folder = self.session.outputs.new_folder()
        path = folder / f"{file_stem(upload_name(image), f'sweep-{param}', result)}.png"
        slide(fig, f"{strip.fixed()}").save(path)
        counts = ", ".join(f"{v:g} → {n}" for v, n in zip(strip.values, strip.counts, strict=False))
        caption = f"Segments per {SWEEP_NAMES[param]}: {counts} · fixed: {strip.fixed()}"
        return strip.picture(text=max(PAGE_TEXT, figure_text(text)), opacity=opacity), caption, str(path)

    def sweep_options(self, key, param: str | None) -> Any:
        """The sweep radio for the page's result: only the settings that apply to it (:func:`sweep_choices`),
        the chosen one kept if it still applies, else k."""
        result = self.session.results.get(key)
        choices = sweep_choices(result if isinstance(result, DemoResult) else None)
        return gr.update(choices=choices, value=param if param in [f for _, f in choices] else "k")

    # -- walkthrough ------------------------------------------------------------------------------
    def _walk(self, key) -> Walkthrough | None:
        walk = self.session.results.get(key)
        return walk if isinstance(walk, Walkthrough) else None

    def shown(self, walk: Walkthrough, index: int, frame: int, text: float = 1.0) -> tuple:
        """The outputs for step ``index`` (frame ``frame``): title, picture, frame slider, caption, index."""
        index = max(0, min(int(index), len(walk) - 1))
        step = walk.step(index)
        frame = max(0, min(int(frame), step.frames - 1))
        title = f"**{step.title}** ({index + 1} of {len(walk)})"
        slider = gr.update(visible=step.frames > 1, maximum=max(1, step.frames - 1), value=frame)
        return title, step.picture(frame, max(WALK_TEXT, figure_text(text))), slider, step.caption, index

    @shows_errors
    def start(self, key, index: int = 0, opacity: float = 0.5, text: float = 1.0) -> tuple:
        """Build the walkthrough of the page's result (explaining it first): the walkthrough's key, then
        :meth:`shown` for step ``index`` (the step a presenter was on stays)."""
        result = self._result(key)
        model = self.session.model(result.backbone).model
        ex: Explanation = explain(model, result, self.session.limits.max_epochs)
        walk = Walkthrough(model, result, ex, point=result.clicked, opacity=opacity)
        return (self.session.results.add(walk), *self.shown(walk, index or 0, 0, text))

    def start_if_presenting(self, key, index: int, presenter: bool | None, opacity: float = 0.5,
                            text: float = 1.0) -> tuple:
        """:meth:`start` for a new result in presenter mode (the figure column is on screen); else nothing."""
        if not presenter or self.session.results.get(key) is None:
            return (gr.skip(),) * 6
        return self.start(key, index, opacity, text)

    def follow(self, key, index: int, presenter: bool | None, walk_key, opacity: float = 0.5,
               text: float = 1.0) -> tuple:
        """A new result on the page: the walkthrough follows it wherever it is on screen (presenter mode, or
        opened by *Step through the method*; ``walk_key``: the walkthrough built so far), so that it never
        explains an earlier result; else nothing."""
        if not (presenter or walk_key) or self.session.results.get(key) is None:
            return (gr.skip(),) * 6
        return self.start(key, index, opacity, text)

    def clicked(self, key, mode: str, presenter: bool | None, opacity: float = 0.5, text: float = 1.0) -> tuple:
        """After a click on the overlay in presenter mode (*show its affinities*): the walkthrough's affinity
        step, of the patch just clicked, where the room is looking; else nothing."""
        result = self.session.results.get(key)
        if not presenter or mode != "affinity" or not isinstance(result, DemoResult) or result.clicked is None:
            return (gr.skip(),) * 6
        return self.start(key, AFFINITY_STEP, opacity, text)

    def move(self, walk_key, index: int, delta: int, text: float = 1.0) -> tuple:
        """Step ``index + delta`` (at its first frame); nothing before a walkthrough was built."""
        walk = self._walk(walk_key)
        if walk is None:
            return (gr.skip(),) * 5
        return self.shown(walk, int(index or 0) + delta, 0, text)

    def frame(self, walk_key, index: int, frame: float, text: float = 1.0):
        """The picture of snapshot ``frame`` of the current step."""
        walk = self._walk(walk_key)
        if walk is None:
            return gr.skip()
        return walk.step(int(index or 0)).picture(int(frame), max(WALK_TEXT, figure_text(text)))

    # -- slides -----------------------------------------------------------------------------------
    @shows_errors
    def slides(self, key, image: str | None, opacity: float = 0.5,
               progress: gr.Progress = gr.Progress()) -> list[str]:  # noqa: B008  # Gradio fills it
        """Every figure of the page's result as a slide PNG, the affinity of the clicked patch (else the
        foreground's centre patch) and every walkthrough step as slides, the replay as GIF and MP4, and the zip of
        all (the result explained afresh: an explanation on the page may be of an earlier result). ``progress``:
        the page's progress bar (explaining, then each file)."""
        result = self._result(key)
        model = self.session.model(result.backbone).model
        progress(0.0, desc="explaining the result (spectral cut, training replay, PCA)")
        ex = explain(model, result, self.session.limits.max_epochs)
        walk = Walkthrough(model, result, ex, point=result.clicked, opacity=opacity)
        folder = self.session.outputs.new_folder()
        with as_demo_errors():
            files = export_files(result, folder, upload_name(image), ex, opacity=opacity, walk=walk,
                                 progress=lambda done, total, what: progress(0.1 + 0.9 * done / total, desc=what))
        return [str(p) for p in files]


def wire(handlers: LessonHandlers, out: dict, cmp: dict, walk: dict, slides: dict, state, image, presenter, text,
         walk_start, gpu: Callable[[Callable], Callable] = lambda fn: fn, clicked: Any = None) -> None:
    """Wire the three panels to the page's result ``state`` (a key), its ``image``, the ``presenter`` checkbox
    and the figures' ``text`` scale (``gpu``: the app's wrapper of work that may need a GPU slot; ``clicked``:
    the overlay click's event, which presenter mode's walkthrough follows)."""
    from .layout import PIN_JS, UNPIN_JS, WALK_JS

    private = dict(api_visibility="private")
    for pin in (cmp["pin"], out["pin_here"]):  # presenter mode pins from under the overlay
        pin.click(handlers.pin, [state], [cmp["pinned"], cmp["pair"], cmp["pair_caption"]], **private)
        pin.click(None, js=PIN_JS, **private)
    cmp["unpin"].click(lambda: (None, None, "Unpinned."), None, [cmp["pinned"], cmp["pair"], cmp["pair_caption"]],
                       **private)
    cmp["unpin"].click(None, js=UNPIN_JS, **private)
    state.change(handlers.pair, [cmp["pinned"], state, out["opacity"], text, presenter],
                 [cmp["pair"], cmp["pair_caption"]], **private)
    state.change(handlers.sweep_options, [state, cmp["param"]], cmp["param"], show_progress="hidden", **private)
    cmp["sweep"].click(gpu(handlers.sweep), [state, cmp["param"], cmp["values"], out["opacity"], image, text],
                       [cmp["strip"], cmp["strip_caption"], cmp["strip_file"]], concurrency_id="segment", **private)
    shown = [walk["title"], walk["picture"], walk["frame"], walk["caption"], walk["index"]]
    started = [walk["walk"], *shown]
    walk_start.click(None, js=WALK_JS, **private)
    walk_start.click(gpu(handlers.start), [state, walk["index"], out["opacity"], text], started,
                     concurrency_id="segment", **private)
    presenting = [state, walk["index"], presenter, out["opacity"], text]
    presenter.change(gpu(handlers.start_if_presenting), presenting, started, concurrency_id="segment", **private)
    state.change(gpu(handlers.follow), [state, walk["index"], presenter, walk["walk"], out["opacity"], text],
                 started, concurrency_id="segment", **private)  # the walkthrough follows the page's result
    if clicked is not None:
        clicked.then(gpu(handlers.clicked), [state, out["click_mode"], presenter, out["opacity"], text], started,
                     concurrency_id="segment", **private)
    for button, delta in ((walk["prev"], -1), (walk["next"], 1)):
        button.click(lambda w, i, t, d=delta: handlers.move(w, i, d, t), [walk["walk"], walk["index"], text],
                     shown, show_progress="hidden", trigger_mode="always_last", **private)
    walk["frame"].change(handlers.frame, [walk["walk"], walk["index"], walk["frame"], text], walk["picture"],
                         trigger_mode="always_last", show_progress="hidden", **private)
    slides["run"].click(gpu(handlers.slides), [state, image, out["opacity"]], slides["files"],
                        concurrency_id="segment", **private)
