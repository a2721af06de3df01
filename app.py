#!/usr/bin/env python
"""DeepCut web demo: ``python app.py`` (also the entry point of the HuggingFace Space).

A thin Gradio layer: one builder per tab lays out the page; the settings' controls come from
:class:`~deepcut.config.SegmentConfig`'s metadata (:mod:`deepcut.demo.controls`) and the events call
:class:`~deepcut.demo.handlers.PageHandlers` over one shared :class:`~deepcut.demo.DemoSession`.
Flags or environment variables (flags win), e.g. ``python app.py --backbone color --resolution 160``.
Also an API (``gradio_client``): ``/segment``, ``/discover``, ``/segment_video``, ``/cosegment`` (see docs/app.md).
"""

import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

try:
    import gradio as gr  # noqa: E402  (after the environment above)
except ImportError:  # the library and CLI do not need it: the web app is the `app` extra
    raise SystemExit("app.py needs Gradio: ./dev app installs it (or pip install -r requirements.txt, "
                     "or pip install 'deepcut-gnn[app]')") from None

from deepcut.config import defaults  # noqa: E402
from deepcut.demo import MAX_COSEG_IMAGES, DemoSession, controls, guards, layout, lesson_view, teach_view  # noqa: E402
from deepcut.demo.arrival import queue_arrival  # noqa: E402
from deepcut.demo.handlers import PageHandlers, gpu  # noqa: E402
from deepcut.demo.live_streams import LiveStreams  # noqa: E402
from deepcut.demo.live_view import LIVE_CSS, live_tab  # noqa: E402
from deepcut.demo.server import limits_from_args, parse_args  # noqa: E402
from deepcut.errors import ConfigError  # noqa: E402

ASSETS = Path(__file__).resolve().parent / "assets"  # the examples (see assets/CREDITS.md)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")

HEADER = """
# ✂️ DeepCut: cut a photo into its parts, with no training data
Click an example or upload a photo: the object is separated from the background (or split into parts).
[Paper](https://arxiv.org/abs/2212.05853) · how it works: below the result, or *Step through the method*.
"""

VIDEO_HELP = """
Every frame is segmented, and the GNN trained on one frame continues on the next, so a part keeps its
label and colour through the video (segments are also matched frame to frame). Long videos are cut to
*Max frames*; big frames are downscaled.
"""

COSEG_HELP = """
Upload 2 to {max_images} images of the same kind of object: the patches of all of them form **one graph**
and **one GNN** clusters it, so the same part gets the same label and colour in every image.
"""

CSS = """
#notice { border-left: 4px solid #f59e0b; padding: 0.4em 0.8em; background: rgba(245, 158, 11, 0.08); }
""" + layout.CSS + LIVE_CSS

#: The Image tab's settings in the order of the ``/segment`` API (``ep1``-``ep3``: epochs per stage).
IMAGE_API = ("k", "loss", "alpha", "layer", "facet", "stages", "ep1", "ep2", "ep3", "resolution", "largest", "seed",
             "refine", "settle", "bg_k")
DISCOVER_API = ("loss", "alpha", "layer", "facet", "ep1", "resolution", "seed", "refine")  # after the N of objects
#: The settings of the video and co-segmentation tabs (and of their APIs, in this order).
COMPACT_SETTINGS = ("k", "loss", "stages", "resolution")


def build_demo(session, resolution: int = 280, startup_notice: str | None = None, start_backbone: str | None = None,
               streams: LiveStreams | None = None):
    """The page for ``session`` (its default backbone loaded); ``resolution``: the sliders' start;
    ``startup_notice``: markdown shown on top (e.g. the colour fallback); ``start_backbone``: selected first;
    ``streams``: the Live tab's streams (default: new ones; the server binds their rules to its queue)."""
    page = PageHandlers(session, start_backbone or session.default_backbone, resolution)
    streams = streams or LiveStreams(session)
    limits = session.limits  # temporary files are deleted after limits.cache_seconds
    with gr.Blocks(title="DeepCut — unsupervised segmentation", analytics_enabled=False,
                   delete_cache=limits.delete_cache()) as demo:
        presenter, text = teach_view.header(HEADER)  # text: the figures' text scale (set in the browser)
        notice = gr.Markdown(startup_notice or "", visible=bool(startup_notice), elem_id="notice")
        gr.Markdown(limits.summary(), visible=limits.public, elem_id="limits")
        state = gr.State(None, time_to_live=900)  # a key of session.results, not the result
        shared = controls.backbone_picker(page.backbone_list(), page.start, limits.allows_custom())
        with gr.Tabs():
            image_tab(page, shared, notice, state, page.resolutions()[0], presenter, text)  # the backbone's grid
            video_tab(page, shared, page.resolutions()[1])
            coseg_tab(page, shared, page.resolutions()[1], limits.max_images or MAX_COSEG_IMAGES)
            # public: the live frames wait in the one fair queue with the other heavy jobs (guards.share_queue)
            live_tab(streams, page.backbone_list(), gpu, "segment" if limits.public else None, shared, page.chosen)
        teach_view.page_scripts(demo, presenter, text)
    guards.guard_uploads(demo, limits)
    guards.cap_sliders(demo, limits)
    guards.readable_inputs(demo)  # after the caps: a slider's range is the server's
    if limits.public:  # one fair queue: never more heavy jobs (video included) than limits.workers
        guards.share_queue(demo, limits.workers)
    return demo


def image_tab(page, shared: dict, notice, state, resolution: int, presenter, text) -> None:
    """Image tab: upload, settings, results, and the teaching pictures; wired to ``/segment``."""
    with gr.Tab("Image", id="image"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=300, elem_id="settings-col"):
                image = controls.safe_image_upload(gr.Image(
                    type="filepath", image_mode=None, label="Image", sources=["upload", "clipboard"], height=260,
                    elem_id="input-image"))  # image_mode=None: the file as sent (16-bit PNGs not clipped)
                run = gr.Button("Segment", variant="primary", elem_id="segment-btn")
                controls.examples(ASSETS, IMAGE_SUFFIXES, image, "Examples (click one)", examples_per_page=8,
                                  elem_id="image-examples")
                with gr.Group(elem_id="image-settings"):
                    c = controls.settings(("k", "loss", "alpha", "stages", "layer", "facet", "refine"), {
                        "alpha": dict(visible=defaults()["loss"] == "cc"),
                        **controls.backbone_props(page.depth(page.start))})
                with gr.Accordion("More settings", open=False, elem_id="more-settings"):
                    with gr.Row():
                        c.update(controls.epoch_sliders(c["stages"].value))
                    c.update(controls.settings(("bg_k", "resolution", "largest", "seed", "settle"), {
                        "resolution": dict(value=resolution), "bg_k": dict(visible=c["stages"].value >= 3)}))
            with gr.Column(scale=7, min_width=340, elem_id="results-col"):
                out = teach_view.results_column()
                cmp = lesson_view.compare_panel()
                slides = lesson_view.slides_panel()
                objs = controls.objects_panel()
            with gr.Column(scale=6, min_width=320, elem_id="walk-col"):  # shown when walking, or presenting
                walk = lesson_view.walk_panel()
        out.update(teach_view.method_section())
        teach = teach_view.teaching_panel()
        # the /correct API's corrections and trigger, the /segment API's trigger: hidden, but inside the tab (a
        # component directly under gr.Tabs shifts the page's tab list: after a click on Video the Live tab was gone)
        fixes = gr.Textbox(visible=False, label="corrections (JSON)")
        correct, api = gr.Button(visible=False), gr.Button(visible=False)
        ncut_k = gr.State(None)  # CC sets k to its bound, 10; back on NCut, the k the visitor had

    inputs = {"image": image, **shared, **{name: c[name] for name in IMAGE_API}, "opacity": out["opacity"]}
    outputs = [out[name] for name in ("overlay", "mask", "bbox", "files", "status", "loss_plot", "soft", "affinity",
                                      "caption", "cutout")] + [state]
    auto = dict(fn=gpu(page.segment_if_image), inputs_kwargs={**inputs, "text": text}, outputs=outputs,
                trigger_mode="always_last", concurrency_id="segment", api_visibility="private")
    run.click(**auto)  # the page's overlay is enlarged for its panel; the API's (a hidden trigger) is not
    api.click(gpu(page.segment), inputs_kwargs=inputs, outputs=outputs, api_name="segment", concurrency_id="segment")
    for trigger in (run.click, image.change):  # a phone shows the result (the page takes the visitor to it)
        trigger(None, js=layout.SCROLL_JS, api_visibility="private")
    correct.click(gpu(page.correct), inputs_kwargs={**inputs, "corrections": fixes}, outputs=[
        out["overlay"], out["status"], out["files"]], api_name="correct", concurrency_id="segment")
    image.change(**auto)  # an upload or a click on an example
    objs["run"].click(gpu(page.discover), inputs_kwargs={"image": image, **shared, "objects": objs["objects"], **{
        n: c[n] for n in DISCOVER_API}, "opacity": out["opacity"]}, outputs=[objs["overlay"], objs["status"],
        objs["files"]], api_name="discover", concurrency_id="segment")
    image.clear(page.clear, None, outputs, api_visibility="private")
    for name in ("k", "alpha", "layer", "ep1", "ep2", "ep3", "bg_k", "resolution", "seed"):
        c[name].release(**auto)
    for name in ("facet", "largest", "refine", "settle"):
        c[name].input(**auto)
    c["loss"].input(controls.loss_switch, [c["loss"], c["k"], ncut_k], [c["alpha"], c["k"], ncut_k],
                    api_visibility="private").then(**auto)
    c["stages"].input(lambda s: (gr.update(visible=int(s) >= 2), *[gr.update(visible=int(s) >= 3)] * 2), c["stages"],
                      [c["ep2"], c["ep3"], c["bg_k"]], api_visibility="private").then(**auto)
    for event in controls.on_backbone(shared, page.choose_backbone, [c[n] for n in ("layer", "facet")] + [
            shared["backbone"], notice, c["resolution"]]):  # the resolution: the backbone's grid (also below)
        event.success(**auto)
    out["opacity"].release(page.rerender, [state, out["opacity"], image], out["overlay"], api_visibility="private")
    out["affinity"].select(gpu(page.click_affinity), [state], [out["affinity"], out["caption"]],
                           api_visibility="private")
    clicked = teach_view.wire(teach_view.TeachingHandlers(page.session), out, teach, state, image, text, gpu)
    lesson_view.wire(lesson_view.LessonHandlers(page.session), out, cmp, walk, slides, state, image, presenter, text,
                     out["walk_start"], gpu, clicked)


def video_tab(page, shared: dict, resolution: int) -> None:
    """Video tab: a video in, its overlay video out; wired to ``/segment_video``."""
    with gr.Tab("Video", id="video"):
        gr.Markdown(VIDEO_HELP)
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                video = gr.Video(label="Video", sources=["upload"], format=None, height=300, elem_id="video-input")
                run = gr.Button("Segment video", variant="primary", elem_id="video-btn")
                example = controls.examples(ASSETS, VIDEO_SUFFIXES, video, "Example video (click: it runs)")
                with gr.Group():
                    c = controls.settings(COMPACT_SETTINGS, controls.compact(
                        resolution, k=dict(info="Segments (1 stage) or foreground parts (2-3 stages)."),
                        resolution_info="Lower is faster; every frame goes through the ViT."))
                    c["max_frames"] = gr.Slider(1, 300, value=60, step=1, label="Max frames",
                                                info="Longer videos are cut (a note says so).")
                    c["stride"] = gr.Slider(1, 10, value=1, step=1, label="Frame stride",
                                            info="1: every frame; 2: one frame in 2 (same duration, fewer frames).")
                    c["opacity"] = controls.opacity_slider()
            with gr.Column(scale=7, min_width=360):
                out = [gr.Video(label="Part overlay video", interactive=False, elem_id="video-overlay", height=420),
                       gr.Markdown("", elem_id="video-status"),
                       controls.downloads("Downloads: overlay video (MP4) and boxes per frame (JSON)")]
    run_video = dict(inputs_kwargs={"video": video, **shared, **c}, outputs=out, concurrency_id="video",
                     concurrency_limit=1, show_progress_on=out[0])  # one progress bar, over the old video
    run.click(gpu(page.segment_video), api_name="segment_video", **run_video)
    controls.on_backbone(shared, page.follow_resolution, c["resolution"])
    if example is not None:  # a click on the example runs it, as on the Image tab
        example.load_input_event.then(gpu(page.segment_video), api_visibility="private", **run_video)


def coseg_tab(page, shared: dict, resolution: int, most: int = MAX_COSEG_IMAGES) -> None:
    """Co-segmentation tab: 2 to ``most`` images in, their overlays with shared labels out; wired to ``/cosegment``."""
    with gr.Tab("Co-segmentation", id="coseg"):
        gr.Markdown(COSEG_HELP.format(max_images=most))
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                gallery = gr.Gallery(label=f"Images (2 to {most})", type="filepath", interactive=True,
                                     file_types=["image"], columns=3, height=300, object_fit="contain",
                                     elem_id="coseg-input")
                run = gr.Button("Co-segment", variant="primary", elem_id="coseg-btn")
                controls.example_sets(ASSETS / "coseg", IMAGE_SUFFIXES, gallery, "Example sets (click one)")
                with gr.Group():
                    c = controls.settings(COMPACT_SETTINGS, controls.compact(
                        resolution, k=dict(info="Shared parts (2-3 stages) or segments (1 stage).", value=3),
                        stages=dict(value=2)))
                    c["opacity"] = controls.opacity_slider()
            with gr.Column(scale=7, min_width=360):
                out = [gr.Gallery(label="Part overlays (one colour = one part in every image)", columns=3,
                                  height="auto", object_fit="contain", elem_id="coseg-overlays"),
                       gr.Markdown("", elem_id="coseg-status"),
                       controls.downloads("Downloads: label maps (PNG) and boxes (JSON)")]
    run.click(gpu(page.cosegment), inputs_kwargs={"gallery": gallery, **shared, **c}, outputs=out,
              api_name="cosegment", concurrency_id="segment")
    controls.on_backbone(shared, page.follow_resolution, c["resolution"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        limits = limits_from_args(args)
        guards.atomic_picture_cache()  # each checks the Gradio version first
        guards.reliable_cache_cleanup()
    except (ConfigError, RuntimeError) as e:  # a bad size, or a Gradio outside the tested range
        raise SystemExit(f"app.py: {e}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    try:
        session = DemoSession(default_backbone=args.backbone, max_side=args.max_side, device=args.device,
                              threads=args.threads or None, limits=limits, precision=args.precision,
                              arrival=queue_arrival)  # the status line counts the queue's wait
    except ConfigError as e:  # a device this machine does not have
        raise SystemExit(f"app.py: {e}") from None
    used, notice = session.startup()  # a fallback's notice is logged too
    streams = LiveStreams(session)
    demo = build_demo(session, resolution=args.resolution, startup_notice=notice, start_backbone=used, streams=streams)
    demo.queue(default_concurrency_limit=max(1, args.concurrency), max_size=limits.queue_size)
    demo.launch(server_name=args.host, server_port=args.port, theme=gr.themes.Default(), css=CSS,
                allowed_paths=[str(ASSETS)], max_file_size=limits.max_bytes, ssr_mode=False,
                app_kwargs=guards.app_kwargs(limits, demo=demo, streams=streams.gate),
                state_session_capacity=limits.sessions, footer_links=["api", "gradio"])


if __name__ == "__main__":
    main()
