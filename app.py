#!/usr/bin/env python
"""DeepCut web demo: ``python app.py`` (also the entry point of the HuggingFace Space).

A thin Gradio layer over :mod:`deepcut.demo`: it builds the page, wires the controls to one shared
:class:`~deepcut.demo.DemoSession` and renders what it returns. All logic lives in ``deepcut/``.

Settings come from flags or environment variables (flags win)::

    python app.py                                   # DINO ViT-S/8 (colour backbone if no weights)
    python app.py --backbone color --resolution 160 # weight-free and fast
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 python app.py

The image pipeline is also an API: ``gradio_client.Client(url).predict(handle_file("x.jpg"),
api_name="/segment")`` returns the overlay first, then mask, box image, downloads and status.
"""

import argparse
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parent
ASSETS = ROOT / "assets"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")

log = logging.getLogger("deepcut.app")

HEADER = """
# ✂️ DeepCut: unsupervised segmentation with graph neural networks
A self-supervised ViT (DINO) describes every image patch; the patches form a graph whose edges are
feature similarities; a small GNN, trained **on this image only** for a few epochs, cuts the graph
into segments (NCut or correlation-clustering loss). No labels, no training set.
[Paper](https://arxiv.org/abs/2212.05853) · Upload an image or click an example, then move the sliders:
the ViT features are cached, so only the GNN reruns.
"""

TEACHING = """
**Reading the pictures.** *Loss*: the GNN is trained on this one image; the curve should fall and
flatten (stage 1: foreground/background, stage 2: foreground parts, stage 3: background parts).
*Soft assignments*: the softmax output S of the GNN for each segment (yellow = certainly this
segment); argmax S gives the overlay. *Affinity*: the row of the graph A for one patch (green box):
how strongly it is linked to every other patch. **Click the overlay** (or this picture) to pick
another patch. With CC, red links attract and blue links repel.
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
#status { min-height: 3em; }
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="DeepCut web demo (Gradio).")
    p.add_argument("--backbone", default=env("DEEPCUT_BACKBONE", "dino_vits8"),
                   help="starting backbone: registry name, 'color', hub id or local model folder "
                        "[env DEEPCUT_BACKBONE, default %(default)s]")
    p.add_argument("--resolution", type=int, default=int(env("DEEPCUT_RESOLUTION", "280")),
                   help="default working resolution in pixels [env DEEPCUT_RESOLUTION, default %(default)s]")
    p.add_argument("--max-side", type=int, default=int(env("DEEPCUT_MAX_SIDE", "1600")),
                   help="uploads are downscaled to this longer side [env DEEPCUT_MAX_SIDE, default %(default)s]")
    p.add_argument("--concurrency", type=int, default=int(env("DEEPCUT_CONCURRENCY", "2")),
                   help="segmentations run at the same time; others wait in the queue "
                        "[env DEEPCUT_CONCURRENCY, default %(default)s]")
    p.add_argument("--threads", type=int, default=int(env("DEEPCUT_THREADS", "0")),
                   help="torch threads per process (0: CPU cores / concurrency) [env DEEPCUT_THREADS]")
    p.add_argument("--max-file-size", default=env("DEEPCUT_MAX_FILE_SIZE", "50mb"),
                   help="largest accepted upload [env DEEPCUT_MAX_FILE_SIZE, default %(default)s]")
    p.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="interface to listen on [env GRADIO_SERVER_NAME, default %(default)s]")
    p.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")),
                   help="port [env GRADIO_SERVER_PORT, default %(default)s]")
    return p.parse_args(argv)


def example_images() -> list[str]:
    """The example photos in ``assets/`` (see ``assets/CREDITS.md``), sorted by name."""
    if not ASSETS.is_dir():
        return []
    return sorted(str(p) for p in ASSETS.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def video_examples() -> list[str]:
    """Example videos in ``assets/`` (see ``assets/CREDITS.md``)."""
    if not ASSETS.is_dir():
        return []
    return sorted(str(p) for p in ASSETS.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def safe_image_upload(component):
    """Make ``component`` (a ``gr.Image``) answer an undecodable upload with a message, not a traceback.

    Gradio opens an uploaded image before our function sees it; wrapping that step (on this one
    instance: subclassing a component would make Gradio write a ``.pyi`` file next to this script)
    turns its exception into a ``gr.Error`` the visitor sees.
    """
    import gradio as gr

    original = component.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception as e:  # a corrupt or non-image upload
            raise gr.Error(f"Could not read this file as an image ({type(e).__name__}). "
                           f"Please upload a JPEG, PNG or WebP photo.", print_exception=False) from None

    component.preprocess = preprocess
    return component


def build_demo(session, resolution: int = 280, startup_notice: str | None = None, start_backbone: str | None = None):
    """The Gradio page for ``session`` (a :class:`deepcut.demo.DemoSession`).

    Args:
        session: the shared service; its default backbone should already be loaded.
        resolution: the resolution sliders' starting value.
        startup_notice: markdown shown at the top (e.g. the colour fallback), or None.
        start_backbone: the backbone selected at first (default: the session's default).
    """
    import gradio as gr

    from deepcut.config import SegmentConfig
    from deepcut.demo import MAX_COSEG_IMAGES, DemoError
    from deepcut.viz import loss_figure

    d = SegmentConfig()
    start = start_backbone or session.default_backbone
    start_depth = session.model(start)[0].backbone.depth

    def backbone_list() -> list[tuple[str, str]]:
        choices = [(c.label, c.name) for c in session.backbone_choices()]
        if start not in [name for _, name in choices]:  # a local folder or hub id from the command line
            choices.insert(0, (f"{start} (from the command line)", start))
        return choices

    def layer_props(depth: int) -> dict:
        if depth <= 1:
            return dict(minimum=0, maximum=11, value=11, interactive=False,
                        label="ViT layer (the colour backbone has no layers)")
        return dict(minimum=0, maximum=depth - 1, value=depth - 1, interactive=True, label="ViT layer")

    def fail(e: Exception) -> Exception:
        if isinstance(e, (DemoError, gr.Error)):
            return gr.Error(str(e), print_exception=False)
        log.exception("unexpected error in the demo")
        return gr.Error(f"Something went wrong ({type(e).__name__}). Please try other settings or another "
                        f"file.", print_exception=False)

    def chosen(backbone, custom) -> str:
        return (custom or "").strip() or backbone

    # -- image callbacks ---------------------------------------------------------------------------
    n_out = 10

    def segment(image, backbone=start, custom=None, k=d.k, loss=d.loss, alpha=d.alpha, layer=-1, facet=d.facet,
                stages=d.stages, ep1=d.epochs[0], ep2=d.epochs[1], ep3=d.epochs[2], resolution=resolution,
                largest=d.largest_component, seed=d.seed, opacity=0.5):
        try:
            result = session.segment(
                image, backbone=chosen(backbone, custom), k=int(k), loss=loss, alpha=float(alpha),
                layer=int(layer), facet=facet, stages=int(stages), epochs=(int(ep1), int(ep2), int(ep3)),
                resolution=int(resolution), largest_component=bool(largest), seed=int(seed))
            files = session.save_outputs(result, Path(image).name if isinstance(image, str) else None)
            aff, caption = session.affinity(result, *result.default_point())
            cfg = result.seg.config
            fig = loss_figure(result.seg.losses, cfg.loss, [2 if cfg.stages >= 2 else cfg.k, cfg.k, cfg.bg_k])
            return (result.overlay(opacity), result.mask(), result.bbox_image(), files,
                    result.status_markdown(), fig, result.soft_maps(), aff, caption, result)
        except Exception as e:
            raise fail(e) from None

    def segment_if_image(image, *args):
        if image is None:
            return tuple(gr.skip() for _ in range(n_out))
        return segment(image, *args)

    def clear():
        return (None, None, None, None, "", None, None, None, "", None)

    def rerender(result, opacity):
        return gr.skip() if result is None else result.overlay(opacity)

    def click(result, evt, frame_of_affinity: bool):
        if result is None or not isinstance(evt.index, (list, tuple)) or len(evt.index) < 2:
            return gr.skip(), gr.skip()
        try:
            x, y = evt.index[:2]
            frame = session.affinity_frame(result) if frame_of_affinity else None
            return session.affinity(result, float(x), float(y), frame)
        except Exception as e:
            raise fail(e) from None

    def click_overlay(result, evt: gr.SelectData):
        return click(result, evt, frame_of_affinity=False)

    def click_affinity(result, evt: gr.SelectData):
        return click(result, evt, frame_of_affinity=True)

    def choose_backbone(backbone, custom):
        try:
            model, _, notice = session.model(chosen(backbone, custom))
        except Exception as e:
            raise fail(e) from None
        return (gr.update(**layer_props(model.backbone.depth)), gr.update(choices=backbone_list()),
                gr.update(value=f"⚠️ {notice}." if notice else "", visible=bool(notice)))

    # -- video and co-segmentation callbacks ---------------------------------------------------------
    def segment_video(video, backbone=start, custom=None, k=d.k, loss=d.loss, stages=d.stages,
                      resolution=resolution, max_frames=48, stride=1, opacity=0.5, progress=gr.Progress()):
        try:
            def report(done, total):
                progress((done, max(total, done)), desc="segmenting frames", unit="frames")

            result = session.segment_video(video, backbone=chosen(backbone, custom), max_frames=int(max_frames),
                                           frame_stride=int(stride), opacity=float(opacity), progress=report,
                                           k=int(k), loss=loss, stages=int(stages), resolution=int(resolution))
            return result.video, result.status_markdown(), result.files
        except Exception as e:
            raise fail(e) from None

    def cosegment(gallery, backbone=start, custom=None, k=d.k, loss=d.loss, stages=2, resolution=resolution,
                  opacity=0.5):
        try:
            items = [item[0] if isinstance(item, (list, tuple)) else item for item in (gallery or [])]
            result = session.cosegment(items, backbone=chosen(backbone, custom), k=int(k), loss=loss,
                                       stages=int(stages), resolution=int(resolution))
            return result.gallery(float(opacity)), result.status_markdown(), session.save_coseg_outputs(result)
        except Exception as e:
            raise fail(e) from None

    # -- page ----------------------------------------------------------------------------------------
    with gr.Blocks(title="DeepCut — unsupervised segmentation", analytics_enabled=False) as demo:
        gr.Markdown(HEADER)
        notice = gr.Markdown(startup_notice or "", visible=bool(startup_notice), elem_id="notice")
        state = gr.State(None, time_to_live=3600)
        with gr.Row(equal_height=True):
            backbone = gr.Dropdown(
                backbone_list(), value=start, label="Backbone", scale=3, elem_id="backbone",
                info="Feature extractor for every tab. DINO ViTs understand objects; 'color' needs no weights and "
                     "groups by colour. Marked ones cannot load here.")
            custom = gr.Textbox(
                value="", label="…or your own weights: local model folder or hub id", scale=2,
                placeholder="/path/to/dino-vits8",
                info="A HuggingFace-format DINO ViT folder. Press Enter to load; it overrides the dropdown.")
        with gr.Tabs():
            with gr.Tab("Image", id="image"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        image = safe_image_upload(gr.Image(
                            type="filepath", label="Image", sources=["upload", "clipboard"], height=300,
                            elem_id="input-image"))
                        run = gr.Button("Segment", variant="primary", elem_id="segment-btn")
                        examples = example_images()
                        if examples:
                            gr.Examples(examples=[[p] for p in examples], inputs=[image],
                                        label="Examples (click one)", examples_per_page=8)
                        with gr.Group():
                            k = gr.Slider(2, 10, value=d.k, step=1, label="Number of clusters k",
                                          info="Stage 1 alone: segments. With 2-3 stages: foreground parts.")
                            loss = gr.Radio([("NCut", "ncut"), ("CC", "cc")], value=d.loss, label="Loss",
                                            info="NCut: exactly k balanced segments. CC (correlation clustering) "
                                                 "picks the number itself, k is a maximum.")
                            alpha = gr.Slider(1.0, 10.0, value=d.alpha, step=0.1, label="CC sensitivity α",
                                              visible=d.loss == "cc",
                                              info="Edges below max/α repel: larger α gives more segments.")
                            stages = gr.Radio(
                                [("1: single stage", 1), ("2: foreground parts", 2),
                                 ("3: foreground + background parts", 3)],
                                value=d.stages, label="Stages",
                                info="2 and 3 first split foreground/background, then cut each into parts.")
                            layer = gr.Slider(step=1, **layer_props(start_depth),
                                              info="Which transformer block's features. Deep layers: semantic "
                                                   "parts; shallow layers: colour and texture.")
                            facet = gr.Radio(["key", "query", "value", "token"], value=d.facet, label="Facet",
                                             info="Which vector of the attention block describes a patch; "
                                                  "'key' works best in the paper.")
                        with gr.Accordion("More settings", open=False):
                            with gr.Row():
                                ep1 = gr.Slider(1, 100, value=d.epochs[0], step=1, label="Epochs, stage 1",
                                                info="GNN training steps.")
                                ep2 = gr.Slider(1, 300, value=d.epochs[1], step=1, label="Epochs, stage 2",
                                                visible=d.stages >= 2, info="Foreground parts.")
                                ep3 = gr.Slider(1, 100, value=d.epochs[2], step=1, label="Epochs, stage 3",
                                                visible=d.stages >= 3, info="Background parts.")
                            res = gr.Slider(64, 640, value=resolution, step=8, label="Resolution (px)",
                                            info="The image is resized to about this many pixels squared; "
                                                 "patches = (resolution / patch size)². Higher: finer, slower.")
                            largest = gr.Checkbox(value=d.largest_component, label="Largest connected component",
                                                  info="Keep only the biggest foreground blob (removes specks).")
                            seed = gr.Slider(0, 99, value=d.seed, step=1, label="Seed",
                                             info="GNN initialisation; the same seed gives the same result.")
                    with gr.Column(scale=7, min_width=360):
                        overlay = gr.Image(label="Part overlay (click it to see a patch's affinities below)",
                                           type="pil", format="png", interactive=False, elem_id="overlay",
                                           height=420)
                        opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity")
                        status = gr.Markdown("", elem_id="status")
                        with gr.Row():
                            mask = gr.Image(label="Foreground mask", type="pil", format="png",
                                            interactive=False, elem_id="mask", height=220)
                            bbox = gr.Image(label="Bounding box", type="pil", format="png",
                                            interactive=False, elem_id="bbox", height=220)
                        files = gr.File(label="Downloads: label map (PNG, grey level = label) and box (JSON)",
                                        file_count="multiple", interactive=False, elem_id="downloads")
                gr.Markdown("## What the method does")
                gr.Markdown(TEACHING)
                with gr.Row(equal_height=False):
                    loss_plot = gr.Plot(label="GNN loss per epoch", format="png", elem_id="loss-plot")
                    soft = gr.Gallery(label="Soft assignment of each segment (frame = overlay colour)",
                                      columns=3, height=300, object_fit="contain", elem_id="soft-maps")
                    with gr.Column():
                        affinity = gr.Image(label="Affinity of one patch to all others (click to choose)",
                                            type="pil", format="png", interactive=False, elem_id="affinity",
                                            height=300)
                        affinity_caption = gr.Markdown("", elem_id="affinity-caption")

            with gr.Tab("Video", id="video"):
                gr.Markdown(VIDEO_HELP)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        video_in = gr.Video(label="Video", sources=["upload"], format=None, height=300,
                                            elem_id="video-input")
                        run_video = gr.Button("Segment video", variant="primary", elem_id="video-btn")
                        vids = video_examples()
                        if vids:
                            gr.Examples(examples=[[p] for p in vids], inputs=[video_in], label="Example video")
                        with gr.Group():
                            v_k = gr.Slider(2, 10, value=d.k, step=1, label="Number of clusters k",
                                            info="Segments (1 stage) or foreground parts (2-3 stages).")
                            v_loss = gr.Radio([("NCut", "ncut"), ("CC", "cc")], value=d.loss, label="Loss")
                            v_stages = gr.Radio([("1", 1), ("2: foreground parts", 2), ("3: + background parts", 3)],
                                                value=d.stages, label="Stages")
                            v_res = gr.Slider(64, 448, value=min(resolution, 224), step=8, label="Resolution (px)",
                                              info="Lower is faster; every frame goes through the ViT.")
                            v_max = gr.Slider(1, 300, value=48, step=1, label="Max frames",
                                              info="Longer videos are cut (a note says so).")
                            v_stride = gr.Slider(1, 10, value=1, step=1, label="Frame stride",
                                                 info="Keep every n-th frame.")
                            v_opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity")
                    with gr.Column(scale=7, min_width=360):
                        video_out = gr.Video(label="Part overlay video", interactive=False, elem_id="video-overlay",
                                             height=420)
                        video_status = gr.Markdown("", elem_id="video-status")
                        video_files = gr.File(label="Downloads: overlay video (MP4) and boxes per frame (JSON)",
                                              file_count="multiple", interactive=False)

            with gr.Tab("Co-segmentation", id="coseg"):
                gr.Markdown(COSEG_HELP.format(max_images=MAX_COSEG_IMAGES))
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        co_in = gr.Gallery(label=f"Images (2 to {MAX_COSEG_IMAGES})", type="filepath",
                                           interactive=True, file_types=["image"], columns=3, height=300,
                                           elem_id="coseg-input")
                        run_co = gr.Button("Co-segment", variant="primary", elem_id="coseg-btn")
                        with gr.Group():
                            c_k = gr.Slider(2, 10, value=3, step=1, label="Number of clusters k",
                                            info="Shared parts (2-3 stages) or segments (1 stage).")
                            c_loss = gr.Radio([("NCut", "ncut"), ("CC", "cc")], value=d.loss, label="Loss")
                            c_stages = gr.Radio([("1", 1), ("2: foreground parts", 2), ("3: + background parts", 3)],
                                                value=2, label="Stages")
                            c_res = gr.Slider(64, 448, value=min(resolution, 224), step=8, label="Resolution (px)")
                            c_opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity")
                    with gr.Column(scale=7, min_width=360):
                        co_out = gr.Gallery(label="Part overlays (one colour = one part in every image)",
                                            columns=2, height=420, object_fit="contain", elem_id="coseg-overlays")
                        co_status = gr.Markdown("", elem_id="coseg-status")
                        co_files = gr.File(label="Downloads: label maps (PNG) and boxes (JSON)",
                                           file_count="multiple", interactive=False)

        # -- wiring ----------------------------------------------------------------------------------
        inputs = [image, backbone, custom, k, loss, alpha, layer, facet, stages, ep1, ep2, ep3, res, largest,
                  seed, opacity]
        outputs = [overlay, mask, bbox, files, status, loss_plot, soft, affinity, affinity_caption, state]
        auto = dict(fn=segment_if_image, inputs=inputs, outputs=outputs, trigger_mode="always_last",
                    concurrency_id="segment", api_visibility="private")

        run.click(segment, inputs, outputs, api_name="segment", concurrency_id="segment")
        image.change(**auto)  # an upload or a click on an example
        image.clear(clear, None, outputs, api_visibility="private")
        for slider in (k, alpha, layer, ep1, ep2, ep3, res, seed):
            slider.release(**auto)
        for control in (facet, largest):
            control.input(**auto)
        loss.input(lambda v: gr.update(visible=v == "cc"), loss, alpha, api_visibility="private").then(**auto)
        stages.input(lambda s: (gr.update(visible=int(s) >= 2), gr.update(visible=int(s) >= 3)), stages,
                     [ep2, ep3], api_visibility="private").then(**auto)
        for trigger in (backbone.input, custom.submit):
            trigger(choose_backbone, [backbone, custom], [layer, backbone, notice],
                    api_visibility="private").success(**auto)
        opacity.release(rerender, [state, opacity], overlay, api_visibility="private")
        overlay.select(click_overlay, [state], [affinity, affinity_caption], api_visibility="private")
        affinity.select(click_affinity, [state], [affinity, affinity_caption], api_visibility="private")

        run_video.click(segment_video, [video_in, backbone, custom, v_k, v_loss, v_stages, v_res, v_max, v_stride,
                                        v_opacity], [video_out, video_status, video_files],
                        api_name="segment_video", concurrency_id="video", concurrency_limit=1)
        run_co.click(cosegment, [co_in, backbone, custom, c_k, c_loss, c_stages, c_res, c_opacity],
                     [co_out, co_status, co_files], api_name="cosegment", concurrency_id="segment")
    return demo


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    import gradio as gr
    import torch

    from deepcut.demo import DemoSession

    threads = args.threads or max(1, (os.cpu_count() or 1) // max(1, args.concurrency))
    torch.set_num_threads(threads)
    session = DemoSession(default_backbone=args.backbone, max_side=args.max_side)
    used, notice = session.startup()
    if notice:
        log.warning("%s", notice.replace("**", ""))
    demo = build_demo(session, resolution=args.resolution, startup_notice=notice, start_backbone=used)
    demo.queue(default_concurrency_limit=max(1, args.concurrency), max_size=64)
    demo.launch(
        server_name=args.host, server_port=args.port, theme=gr.themes.Default(), css=CSS,
        allowed_paths=[str(ASSETS)], max_file_size=args.max_file_size, ssr_mode=False,
        footer_links=["api", "gradio"],
    )


if __name__ == "__main__":
    main()
