"""The page's controls, made from :class:`~deepcut.config.SegmentConfig`'s field metadata.

Every setting's kind of control, label, range, step, choices and default come from
:func:`deepcut.config.options` and :func:`deepcut.config.defaults`; this module adds only what is
the page's own: the wording under each control and how choices are named. A tab asks for the
settings it offers by name and overrides a property where it differs (a shorter text, a lower
maximum). Imports Gradio, so only the app imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..config import DEFAULT_K, SegmentConfig, defaults, options
from .errors import visitor_error
from .limits import NOT_OFFERED
from .settings import COMPACT_TOP, EPOCH_INPUTS, field_name

#: The explanation under each setting's control (the Image tab's; other tabs override some).
INFO = {
    "k": "Stage 1 alone: segments. With 2-3 stages: foreground parts.",
    "loss": "NCut: k segments of any size (fewer where its training leaves one empty: the status then says why). "
            "CC (correlation clustering) picks the number itself, k is a maximum (10 when CC is chosen).",
    "alpha": "CC only. Patch pairs less similar than 1/α of the strongest similarity repel, the others attract: "
             "a larger α makes more pairs attract, so fewer, larger segments. Just above 1 nearly every pair "
             "repels and CC fills all k segments; at α = 1 no pair attracts and the result is one segment.",
    "stages": "2 and 3 first split foreground/background, then cut each into parts.",
    "bg_k": "Stage 3 only: how many parts the background is cut into (CC: at most this many).",
    "layer": "Which transformer block's features. Deep layers: semantic parts; shallow layers: colour and texture.",
    "facet": "Which vector of the attention block describes a patch; 'key' works best in the paper.",
    "resolution": "The image is resized to about this many pixels squared; patches = (resolution / patch size)². "
    "Higher: finer, slower.",
    "largest_component": "Keep only the biggest foreground blob (removes specks).",
    "seed": "GNN initialisation; the same seed gives the same result.",
    "settle": "Stop a training once its segments and loss stop changing (the same result, sooner; the status says "
              "where). Off: every epoch, e.g. to replay all of them.",
    "refine": "Snap the mask to the image's edges: guided filter (fast) or dense CRF (slower). "
    "None: the paper's upsampling of the patches.",
}
#: How a choice is shown, per setting (others show their value).
CHOICE_LABELS: dict[str, dict[Any, str]] = {
    "loss": {"ncut": "NCut", "cc": "CC"},
    "stages": {1: "1: single stage", 2: "2: foreground parts", 3: "3: foreground + background parts"},
    "refine": {"none": "None (patches)", "guided": "Guided filter", "crf": "Dense CRF"},
}
#: Where the page starts otherwise than the library: edges refined (measured in docs/results/refine.md).
PAGE_DEFAULTS = {"refine": "guided"}
#: The stage choices where space is short (video and co-segmentation tabs).
SHORT_STAGES = {1: "1", 2: "2: foreground parts", 3: "3: + background parts"}
#: Per epoch slider (stages 1-3): its own maximum and explanation.
EPOCH_SLIDERS = ((100, "GNN training steps."), (300, "Foreground parts."), (100, "Background parts."))


def backbone_picker(choices: list[tuple[str, str]], start: str,
                    allow_custom: bool = True) -> dict[str, gr.components.Component]:
    """The backbone every tab uses: ``{"backbone": dropdown of registered ones, "custom": own weights}``.

    ``allow_custom=False`` (a public server): the own-weights box is hidden (the handlers ignore it).
    A name not in the dropdown gets one message whatever it is (Gradio's would repeat it)."""
    with gr.Row(equal_height=True):
        backbone = gr.Dropdown(
            choices, value=start, label="Backbone", scale=3, elem_id="backbone",
            info="Feature extractor for every tab. DINO ViTs understand objects; 'color' needs no weights and "
                 "groups by colour. Marked ones cannot load here.")
        custom = gr.Textbox(
            value="", label="…or your own weights: local model folder or hub id", scale=2,
            placeholder="/path/to/dino-vits8",
            info="A HuggingFace-format DINO ViT folder. Press Enter to load; it overrides the dropdown.",
            visible=allow_custom)
    original = backbone.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except Exception:  # not one of the choices
            raise visitor_error(NOT_OFFERED) from None

    backbone.preprocess = preprocess  # type: ignore[method-assign]  # wraps this component's own
    return {"backbone": backbone, "custom": custom}


def on_backbone(shared: dict, fn: Any, outputs: Any) -> list:
    """Run ``fn(backbone, custom)`` into ``outputs`` when the page's backbone is chosen (the dropdown, or Enter in
    the own-weights box of :func:`backbone_picker`'s ``shared``); returns the two events."""
    return [trigger(fn, [shared["backbone"], shared["custom"]], outputs, api_visibility="private")
            for trigger in (shared["backbone"].input, shared["custom"].submit)]


def setting(name: str, labels: dict | None = None, **props: Any) -> gr.components.Component:
    """The control of the :class:`SegmentConfig` field ``name``: a checkbox for a flag, radio
    buttons for a fixed set of choices (named by ``labels`` or :data:`CHOICE_LABELS`), else a
    slider over the field's range. ``props`` override Gradio properties (value, info, maximum …)."""
    opt = options()[name]
    value = defaults()[name]
    if value is None:  # e.g. k: the default loss's default (2 for NCut)
        value = getattr(SegmentConfig(), name)
    props = {"label": opt.label, "value": PAGE_DEFAULTS.get(name, value), "info": INFO.get(name),
             "elem_classes": [f"setting-{name}"], **props}
    if opt.kind is bool:
        return gr.Checkbox(**props)
    if opt.choices:
        names = labels or CHOICE_LABELS.get(name, {})
        return gr.Radio([(names.get(c, str(c)), c) for c in opt.choices], **props)
    return gr.Slider(**{"minimum": opt.minimum, "maximum": opt.maximum, "step": opt.step, **props})


def settings(names: list[str] | tuple[str, ...], overrides: dict[str, dict] | None = None) -> dict[str, Any]:
    """:func:`setting` for each page input name (see :data:`~deepcut.demo.settings.PAGE_NAMES`), in
    order, with ``overrides[name]`` as its ``props``."""
    overrides = overrides or {}
    return {name: setting(field_name(name), **overrides.get(name, {})) for name in names}


def epoch_sliders(stages: int) -> dict[str, gr.Slider]:
    """The three epoch sliders ``ep1``-``ep3``; those of stages beyond ``stages`` are hidden."""
    opt, values = options()["epochs"], defaults()["epochs"]
    assert opt.minimum is not None  # epochs have a range
    return {name: gr.Slider(opt.minimum, top, value=values[i], step=opt.step, label=f"{opt.label}, stage {i + 1}",
                            visible=stages >= i + 1, info=info)
            for i, (name, (top, info)) in enumerate(zip(EPOCH_INPUTS, EPOCH_SLIDERS, strict=False))}


def loss_switch(loss: str, k: float | None, ncut_k: float | None) -> tuple:
    """The Image tab's loss choice: ``(α slider, k slider, the NCut k kept)``. α is shown for CC; choosing CC
    sets k to CC's bound (:data:`~deepcut.config.DEFAULT_K`) and keeps the NCut k, which choosing NCut again
    restores (else NCut's default)."""
    if loss == "cc":
        return gr.update(visible=True), gr.update(value=DEFAULT_K["cc"]), k
    return gr.update(visible=False), gr.update(value=DEFAULT_K["ncut"] if ncut_k is None else ncut_k), None


def layer_props(depth: int) -> dict:
    """The layer slider's range and label for a backbone of ``depth`` layers (fixed for colour)."""
    label = options()["layer"].label
    if depth <= 1:
        return dict(minimum=0, maximum=11, value=11, interactive=False,
                    label=f"{label} (the colour backbone has no layers)")
    return dict(minimum=0, maximum=depth - 1, value=depth - 1, interactive=True, label=label)


def facet_props(depth: int) -> dict:
    """The facet radio for a backbone of ``depth`` layers: inactive, and saying so, for colour."""
    if depth <= 1:
        return dict(value="key", interactive=False, info="The colour backbone has no facets.")
    return dict(interactive=True, info=INFO.get("facet"))


def backbone_props(depth: int) -> dict:
    """Overrides of the layer and facet controls (for :func:`settings`) for a backbone of ``depth``."""
    return {"layer": layer_props(depth), "facet": facet_props(depth)}


def compact(resolution: int, k: dict, stages: dict | None = None, resolution_info: str | None = None) -> dict:
    """Overrides for :func:`settings` where space is short (video, co-segmentation and live tabs): shorter
    texts, short stage names, the resolution slider starting at ``resolution`` and up to :data:`COMPACT_TOP`."""
    return {"k": k, "loss": dict(info=None), "stages": dict(labels=SHORT_STAGES, info=None, **(stages or {})),
            "resolution": dict(maximum=COMPACT_TOP, value=resolution, info=resolution_info)}


def opacity_slider(elem_id: str | None = None) -> gr.Slider:
    """The colour opacity of overlays (re-renders without segmenting again)."""
    return gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity", elem_id=elem_id)


def picture(label: str, elem_id: str, height: int) -> gr.Image:
    """A read-only picture (PNG) the page draws into."""
    return gr.Image(label=label, type="pil", format="png", interactive=False, elem_id=elem_id, height=height)


def examples(folder: Path, suffixes: tuple[str, ...], target: gr.components.Component, label: str,
             **props: Any) -> gr.helpers.Examples | None:
    """Clickable examples: the files in ``folder`` with these suffixes, sorted by name, each loading
    into ``target``; None if there are none."""
    paths = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in suffixes) if folder.is_dir() else []
    return gr.Examples(examples=[[p] for p in paths], inputs=[target], label=label, **props) if paths else None


def example_sets(folder: Path, suffixes: tuple[str, ...], target: gr.Gallery, label: str) -> None:
    """Clickable sets of images for a gallery input: the files ``<set>_<n>.<suffix>`` in ``folder``,
    grouped by ``<set>`` and sorted, one example per set (nothing if there are none)."""
    sets: dict[str, list[str]] = {}
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.suffix.lower() in suffixes and "_" in p.stem:
            sets.setdefault(p.stem.rsplit("_", 1)[0], []).append(str(p))
    if sets:
        gr.Examples(examples=[[paths] for paths in sets.values()], inputs=[target], label=label,
                    example_labels=[f"{name} ({len(paths)} images)" for name, paths in sets.items()])


def downloads(label: str, **props: Any) -> gr.File:
    """A read-only list of files to download."""
    return gr.File(label=label, file_count="multiple", interactive=False, **props)


def safe_image_upload(component: gr.Image) -> gr.Image:
    """Make ``component`` answer an undecodable upload with a message, not a traceback.

    Gradio opens an uploaded image before our function sees it; wrapping that step (on this one
    instance: subclassing a component would make Gradio write a ``.pyi`` file next to the app)
    turns its exception into a ``gr.Error`` the visitor sees.
    """
    original = component.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception as e:  # a corrupt or non-image upload
            raise visitor_error(f"Could not read this file as an image ({type(e).__name__}). "
                                f"Please upload a JPEG, PNG or WebP photo.") from None

    component.preprocess = preprocess  # type: ignore[method-assign]  # wraps this component's own
    return component


def objects_panel() -> dict[str, gr.components.Component]:
    """The Image tab's "several objects" panel: how many, a button, the picture, the table and the
    downloads (overlay PNG, COCO-style JSON)."""
    from .objects import MAX_OBJECTS, SCORE_HELP

    out: dict[str, gr.components.Component] = {}
    with gr.Accordion("Several objects: discover them one cut at a time (pseudo-labels)", open=False,
                      elem_id="objects-panel"):
        gr.Markdown("The graph is cut in two, the foreground's largest piece becomes an object and is removed, "
                    f"and the rest is cut again (MaskCut's procedure, with the GNN). 0 = let correlation "
                    f"clustering decide how many. {SCORE_HELP[0].upper()}{SCORE_HELP[1:]}.")
        with gr.Row():
            out["objects"] = gr.Slider(0, MAX_OBJECTS, value=3, step=1, label="Objects (0: CC decides)",
                                       elem_id="objects-n")
            out["run"] = gr.Button("Discover objects", elem_id="objects-btn")
        out["overlay"] = picture("Objects: one colour, box and score each", "objects-overlay", 360)
        out["status"] = gr.Markdown("", elem_id="objects-status")
        out["files"] = downloads("Downloads: overlay (PNG) and annotations (COCO JSON, RLE masks)")
    return out
