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

#: The live overlay fills its panel (a small frame is drawn large, aspect kept); once stopped (:data:`LIVE_JS`) the
#: status says so above its last figures, greyed; a camera that cannot be opened is said below it.
LIVE_CSS = """#live-overlay img { width: 100%; height: 100%; object-fit: contain; }
body.live-stopped #live-status p { color: var(--body-text-color-subdued); }
body.live-stopped #live-status::before { content: "Stopped: press Record to go on. Before the stop:"; display: block;
  font-weight: 600; }
#live-camera-note { color: var(--error-text-color, #b91c1c); font-weight: 600; margin: 0.3em 0; }
"""

#: Installed when the Live tab is first opened (Gradio has no event when the camera stops, nor when it cannot be
#: opened): the body gets the class ``live-stopped`` while the camera's record button reads *Record* again after a
#: recording (the status then reads as stopped, see :data:`LIVE_CSS`); the webcam's own request for a camera is
#: watched, and the browser's refusal said in words under the camera (or, where the page gets no camera API at
#: all, that it must be served over https).
LIVE_JS = """() => {
  if (window.deepcutLive) return; window.deepcutLive = true;
  let recorded = false;
  const note = (text) => {
    let n = document.querySelector('#live-camera-note');
    const cam = document.querySelector('#live-camera');
    if (!text) { if (n) n.remove(); return; }
    if (!n && cam) {
      n = document.createElement('div'); n.id = 'live-camera-note'; cam.insertAdjacentElement('afterend', n);
    }
    if (n) n.textContent = text;
  };
  const recordButton = () => [...document.querySelectorAll('#live-camera button')]
    .find((b) => /^(Record|Stop)$/.test(b.innerText.trim()));
  setInterval(() => {
    const b = recordButton();
    const on = !!b && b.innerText.trim() === 'Stop';
    recorded = recorded || on;
    document.body.classList.toggle('live-stopped', !!b && !on && recorded);
    if (b) note('');
  }, 400);
  const blocked = 'The camera is blocked for this page: allow it (the camera icon in the address bar), then try again.';
  const why = (e) => ({
    NotAllowedError: blocked, SecurityError: blocked,
    NotFoundError: 'No camera was found: connect one, then click again.',
    OverconstrainedError: 'No camera was found: connect one, then click again.',
    NotReadableError: 'The camera is in use by another program: close it, then click again.',
  })[e && e.name] || ('The camera could not be opened (' + ((e && (e.name || e.message)) || 'no reason given') + ').');
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {  // the webcam's own request for a camera: its refusal is said, not swallowed
    const ask = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => ask(c).then((s) => { note(''); return s; },
                                         (err) => { if (c && c.video) note(why(err)); throw err; });
  }
  document.addEventListener('click', (e) => {
    const t = e.target && e.target.closest && e.target.closest('#live-camera button');
    if (t && /Access Webcam/.test(t.innerText) && !(md && md.getUserMedia)) {
      note('This browser offers no camera to this page: it must be served over https (or from localhost).');
    }
  }, true);
}"""


def live_tab(streams: LiveStreams, choices: list[tuple[str, str]], gpu: Callable[[Callable], Callable],
             concurrency_id: str | None = None, page: dict[str, Any] | None = None,
             chosen: Callable[[str, str | None], str] | None = None) -> dict[str, Any]:
    """The Live tab; ``choices``: the backbones offered, ``gpu``: the app's wrapper of work that may need a
    GPU slot, ``concurrency_id``: the queue it shares (a public server's fair queue); ``page``: the page-wide
    backbone picker (``{"backbone", "custom"}``) and ``chosen(backbone, custom)`` the backbone it names, which
    the Live tab uses unless the visitor picks another here. Returns its components."""
    limits = streams.session.limits
    d = live_defaults()
    with gr.Tab("Live", id="live") as tab:
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
    tab.select(None, None, None, js=LIVE_JS, api_visibility="private")

    def follow(name, page_backbone=None, page_custom=None):  # the resolution: the backbone's grid
        value = streams.resolution(live_backbone(name, page_backbone, page_custom))
        return gr.skip() if value is None else gr.update(value=value)
    sources = [backbone] + ([page["backbone"], page["custom"]] if page is not None else [])
    for trigger in [backbone.input] + ([page["backbone"].input, page["custom"].submit] if page is not None else []):
        trigger(follow, sources, c["resolution"], api_visibility="private")
    return {"camera": cam, "overlay": out, "status": status, "state": state, "backbone": backbone, **c}
