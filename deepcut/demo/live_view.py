"""The Live tab's layout and wiring (Gradio pieces the app places): a webcam in, its parts out, frame by frame.

The logic is :mod:`deepcut.demo.live_streams`; this module only lays out and wires. Imports Gradio, so only the app
imports it.
"""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from .arrival import queue_arrival
from .controls import compact, picture, settings
from .errors import DemoError
from .handlers import as_message
from .live_streams import SAME_AS_PAGE, LiveStreams, live_defaults

LIVE_HELP = """
Point a camera at something: every frame goes through the page's feature extractor (the *Backbone* above, or
another you pick here) and the GNN, and the GNN trained on one frame continues on the next, so **a part keeps
its label and colour while the camera moves** (the paper's implicit tracking). Press the camera's record
button to start and stop. For speed, live mode works at **224 px** (360 px for DINOv3, whose patches are twice
as large); the status shows what runs, frames per second and the time per frame. Only the newest frame is
worked on: nothing queues up. It needs a camera and the browser's permission to use it: if the camera view
stays empty, check that one is connected and allowed for this page (the address bar's camera icon).
"""

#: The live overlay fills its panel (a small frame is drawn large, aspect kept).
LIVE_CSS = "#live-overlay img { width: 100%; height: 100%; object-fit: contain; }\n"


def live_tab(streams: LiveStreams, choices: list[tuple[str, str]], gpu: Callable[[Callable], Callable],
             concurrency_id: str | None = None, page: dict[str, Any] | None = None,
             chosen: Callable[[str, str | None], str] | None = None) -> dict[str, Any]:
    """The Live tab; ``choices``: the backbones offered, ``gpu``: the app's wrapper of work that may need a
    GPU slot, ``concurrency_id``: the queue it shares (a public server's fair queue); ``page``: the page-wide
    backbone picker (``{"backbone", "custom"}``) and ``chosen(backbone, custom)`` the backbone it names, which
    the Live tab uses unless the visitor picks another here. Returns its components."""
    limits = streams.session.limits
    d = live_defaults()
    with gr.Tab("Live", id="live"):
        gr.Markdown(LIVE_HELP)
        with gr.Row(equal_height=False, elem_id="live-row"):
            with gr.Column(scale=5, min_width=320, elem_id="live-controls"):
                cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                               elem_id="live-camera", height=300, webcam_options=gr.WebcamOptions(mirror=False))
                backbone = gr.Dropdown([("Same as the page (Backbone above)", SAME_AS_PAGE), *choices],
                                       value=SAME_AS_PAGE, label="Backbone (live)", elem_id="live-backbone")
                c = settings(("k", "loss", "stages", "resolution"), compact(
                    streams.resolution() or d["resolution"], resolution_info="Lower is faster: every frame goes "
                    "through the ViT.", k=dict(value=d["k"], info="Segments (1 stage) or foreground parts (2-3 "
                                                                  "stages).")))
                c["opacity"] = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity",
                                         elem_id="live-opacity")
                reset = gr.Button("Start anew (new labels)", elem_id="live-reset")
            with gr.Column(scale=7, min_width=360, elem_id="live-results"):
                out = picture("Live parts", "live-overlay", 420)
                status = gr.Markdown("Start the camera: the parts appear here, frame by frame.", elem_id="live-status")
        state = gr.State(None, time_to_live=600)

    def live_backbone(name: str | None, page_backbone: str | None, page_custom: str | None) -> str | None:
        """The backbone the Live tab runs: its own choice, else the page's (None: the session's default)."""
        if not name and page_backbone and chosen is not None:
            name = chosen(page_backbone, page_custom)
        return name or None

    def step(frame, live_state, backbone_name, k, loss, stages, resolution, opacity, page_backbone=None,
             page_custom=None, request: gr.Request = None):  # type: ignore[assignment]  # Gradio fills it
        from gradio.context import LocalContext

        try:
            return streams.step(frame, live_state, streams.visitor(request),
                                live_backbone(backbone_name, page_backbone, page_custom), opacity,
                                event=LocalContext.event_id.get(None), joined=queue_arrival(), k=int(k),
                                loss=loss, stages=int(stages), resolution=int(resolution))
        except DemoError as e:
            raise as_message(e) from None

    inputs = [cam, state, backbone, c["k"], c["loss"], c["stages"], c["resolution"], c["opacity"]]
    if page is not None:
        inputs += [page["backbone"], page["custom"]]
    cam.stream(gpu(step), inputs, [out, status, state], stream_every=1.0 / max(limits.live_fps, 0.1),
               time_limit=int(limits.live_seconds) if limits.live_seconds else None, api_visibility="private",
               show_progress="hidden", concurrency_id=concurrency_id, concurrency_limit=limits.workers)
    reset.click(lambda: None, None, state, api_visibility="private")

    def follow(name, page_backbone=None, page_custom=None):  # the resolution: the backbone's grid
        value = streams.resolution(live_backbone(name, page_backbone, page_custom))
        return gr.skip() if value is None else gr.update(value=value)
    sources = [backbone] + ([page["backbone"], page["custom"]] if page is not None else [])
    for trigger in [backbone.input] + ([page["backbone"].input, page["custom"].submit] if page is not None else []):
        trigger(follow, sources, c["resolution"], api_visibility="private")
    return {"camera": cam, "overlay": out, "status": status, "state": state, "backbone": backbone, **c}
