"""DINOv3 backbones: the registry, features equal to transformers' forward pass and to timm's from a
Meta-layout checkpoint, any image size, every front end, and gated weights against a real HTTP server."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_backbones import TOLERANCE, normalized, perturb_, rel_err, smooth_image, timm  # noqa: F401  (fixture)

from deepcut import DeepCut, SegmentConfig
from deepcut.backbones import REGISTRY, list_backbones, load_backbone
from deepcut.backbones.dinov3 import DINOV3_RESOLUTION, Dinov3Backbone
from deepcut.errors import BackboneLoadError, ConfigError

REPO = Path(__file__).resolve().parents[1]
DINOV3_NAMES = ["dinov3_vits16", "dinov3_vits16plus", "dinov3_vitb16", "dinov3_vitl16"]


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Structure at several scales, not an exact square: a non-square test of the rotary positions."""
    return smooth_image(max(height, width), seed)[:height, :width].copy()


# -- a random-weight DINOv3 ViT-S/16 in HuggingFace format ---------------------------------------------------
@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    """``DINOv3ViTModel(config).save_pretrained(folder)``: full-size ViT-S/16 (12 blocks, 384 wide, 6 heads,
    4 registers), random weights moved off their init values so that no mapping hides behind a 1 or a 0."""
    import transformers

    torch.manual_seed(0)
    config = transformers.DINOv3ViTConfig(num_register_tokens=4)
    model = transformers.DINOv3ViTModel(config).eval()
    perturb_(model, seed=1)
    folder = tmp_path_factory.mktemp("dinov3") / "dinov3-vits16-random"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def dc3(hf_folder) -> DeepCut:
    return DeepCut(backbone=str(hf_folder), precision="fp32")


def hf_reference(bb: Dinov3Backbone, img: np.ndarray, layers: tuple[int, ...]) -> dict[int, dict[str, torch.Tensor]]:
    """transformers' own forward pass (one): for each of ``layers`` the token (``hidden_states[layer + 1]``)
    and the outputs of ``{q,k,v}_proj`` (hooks: before the rotation), patch tokens only."""
    seen: dict[tuple[int, str], torch.Tensor] = {}
    hooks = [getattr(bb.blocks[layer].attention, f"{f}_proj").register_forward_hook(
        lambda m, a, out, key=(layer, f): seen.__setitem__(key, out.detach())) for layer in layers for f in "qkv"]
    try:
        with torch.no_grad():
            hidden = bb.model(pixel_values=normalized(np.array(img)), output_hidden_states=True).hidden_states
    finally:
        for h in hooks:
            h.remove()
    prefix = 1 + bb.num_registers
    return {layer: {"token": hidden[layer + 1][0, prefix:], "key": seen[layer, "k"][0, prefix:],
                    "query": seen[layer, "q"][0, prefix:], "value": seen[layer, "v"][0, prefix:]} for layer in layers}


def affinity_error(feats: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative error of the affinity ``F Fᵀ`` (what the graph is built from)."""
    f = feats.reshape(ref.shape[0], -1)
    return rel_err(f @ f.T, ref @ ref.T)


# -- registry ------------------------------------------------------------------------------------------------
def test_registry_names_meta_repositories_gated_and_a_default_resolution():
    rows = {r["name"]: r for r in list_backbones()}
    assert [n for n in rows if n.startswith("dinov3")] == DINOV3_NAMES
    assert {rows[n]["hub_id"] for n in DINOV3_NAMES} == {
        "facebook/dinov3-vits16-pretrain-lvd1689m", "facebook/dinov3-vits16plus-pretrain-lvd1689m",
        "facebook/dinov3-vitb16-pretrain-lvd1689m", "facebook/dinov3-vitl16-pretrain-lvd1689m"}
    assert all(r["hub_id"] is None or r["hub_id"].startswith("facebook/") for r in rows.values())  # no mirror
    for name in DINOV3_NAMES:
        r = rows[name]
        assert (r["patch_size"], r["registers"], r["gated"], r["licence"]) == (16, 4, True, "DINOv3 License")
        assert r["position"] == "rotary (2-D RoPE)" and "gated" in r["weights"]
        assert (r["resolution"], r["patches"]) == (448, 28 * 28)  # DINO ViT-S/8 at 280 px: 35 x 35 = 1225
    assert (rows["dino_vits8"]["resolution"], rows["dino_vits8"]["patches"], rows["dino_vits8"]["gated"]) == (
        280, 1225, False)
    assert rows["dinov3_vits16plus"]["dim"] == 384 and REGISTRY["dinov3_vits16plus"].swiglu


def test_backbones_command_states_the_default_resolution_and_the_licence(capsys):
    from deepcut.cli import main

    assert main(["backbones"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "448 px (28 x 28 patches)" in lines["dinov3_vits16"] and "DINOv3 License, gated" in lines["dinov3_vits16"]
    assert "rotary (2-D RoPE)" in lines["dinov3_vitb16"] and "280 px (35 x 35 patches)" in lines["dino_vits8"]
    assert "huggingface.co/facebook/dinov3-vits16-pretrain-lvd1689m" in lines["dinov3_vits16"]


@pytest.mark.parametrize("name", ["dinov3_vits16", "dinov3_vits16plus"])
def test_named_dinov3_builds_with_random_weights(name):
    dc = DeepCut(name, pretrained=False)
    bb, spec = dc.backbone, REGISTRY[name]
    assert isinstance(bb, Dinov3Backbone) and bb.default_resolution == spec.resolution == DINOV3_RESOLUTION
    assert (bb.patch_size, bb.dim, bb.depth, bb.heads, bb.num_registers) == (16, 384, 12, 6, 4)
    assert bb.model.config.use_gated_mlp == spec.swiglu
    assert bb.model.config.hidden_act == ("silu" if spec.swiglu else "gelu")
    img = random_image(96, 128)
    for facet in ("key", "query", "value", "token"):
        f = dc.features(img, layer=1, facet=facet, resolution=112)
        assert f.shape == (6, 8, 384) and torch.isfinite(f).all()


# -- equal to transformers' forward pass ---------------------------------------------------------------------
@pytest.mark.parametrize("size", [224, 448])
def test_features_equal_transformers_forward(dc3, size):
    """A full-size random ViT-S/16 saved with save_pretrained: token and q/k/v facets (k_proj output, before
    the rotation) of the first, a middle and the last layer equal transformers' forward pass; the token and
    key affinities to 1e-4 in fp32 (measured: exact, 0.0, as both run the same kernels)."""
    bb = dc3.backbone
    assert isinstance(bb, Dinov3Backbone) and bb.source == bb.name and bb.num_registers == 4
    img = smooth_image(size, seed=3)
    side = size // 16
    refs = hf_reference(bb, img, (0, 5, 11))
    for layer, ref in refs.items():
        for facet in ("token", "key", "query", "value"):
            f = dc3.features(img, layer=layer, facet=facet, resolution=size)
            assert f.shape == (side, side, 384)
            assert rel_err(f.reshape(side * side, -1), ref[facet]) < 1e-4, (layer, facet)
        assert affinity_error(dc3.features(img, layer=layer, facet="token", resolution=size), ref["token"]) < 1e-4
        assert affinity_error(dc3.features(img, layer=layer, facet="key", resolution=size), ref["key"]) < 1e-4
    # not trivially: the rotated keys (what attention uses) differ from the facet
    rotated = bb.model.rope_embeddings(normalized(img))
    assert rotated[0].shape == (side * side, 64) and not torch.allclose(rotated[0], torch.ones_like(rotated[0]))


def test_a_wide_image_gives_a_wide_grid_at_the_default_resolution(dc3):
    """460 x 300 px (W x H) at the default 448 px: 23 x 35 patches, features equal to transformers' forward
    pass on the resized image (the rotary angles of a non-square grid)."""
    img = random_image(300, 460, seed=4)
    feats = dc3.features(img, layer=11, facet="key")
    assert feats.shape == (23, 35, 384)
    emb, _ = dc3.embed(img)
    assert emb.grid == (23, 35) and emb.work.shape == (23 * 16, 35 * 16, 3)
    ref = hf_reference(dc3.backbone, emb.work, (11,))[11]
    assert rel_err(feats.reshape(23 * 35, -1), ref["key"]) < 1e-4
    token = dc3.features(img, layer=11, facet="token")
    assert affinity_error(token, ref["token"]) < 1e-4


def test_default_precision_tolerance(hf_folder):
    """In the default precision (auto: bf16 on a CPU with native bf16, else fp32) the affinities stay within
    :data:`TOLERANCE` of transformers' fp32 forward pass (measured here: see docs/backbones.md)."""
    dc = DeepCut(backbone=str(hf_folder))
    tol = TOLERANCE[dc.precision]
    img = smooth_image(224, seed=5)
    ref = hf_reference(dc.backbone, img, (11,))[11]
    for facet in ("token", "key"):
        assert affinity_error(dc.features(img, layer=11, facet=facet, resolution=224), ref[facet]) < tol, facet


def test_overlapping_patches_are_refused(dc3):
    img = random_image(64, 64)
    with pytest.raises(ConfigError, match=r"stride 8 \(overlapping patches\) is not available for the DINOv3"):
        dc3.features(img, resolution=64, stride=8)
    with pytest.raises(ConfigError, match="Leave stride unset"):
        dc3.segment(img, stride=4)
    assert dc3.features(img, resolution=64, stride=16, layer=0).shape == (4, 4, 384)


# -- equal to timm's DINOv3 from a Meta-layout checkpoint -----------------------------------------------------
def timm_to_meta(model) -> dict[str, torch.Tensor]:
    """A timm DINOv3's weights in the layout of Meta's released ``.pth`` (written as the inverse of timm's
    ``checkpoint_filter_fn``): storage tokens, ``qkv.bias`` with a zero key part and its ``bias_mask``,
    ``ls1/ls2.gamma``, ``mlp.w1/w2/w3`` for SwiGLU, a ``(1, D)`` mask token and the rotary periods."""
    sd, dim = model.state_dict(), model.embed_dim
    swiglu = any(".mlp.fc1_g." in k for k in sd)
    out = {"mask_token": torch.zeros(1, dim), "rope_embed.periods": model.rope.periods.clone()}
    for k, v in sd.items():
        if k.endswith(("attn.k_bias", "attn.v_bias")) or k.startswith("rope."):
            continue
        if k.endswith("attn.q_bias"):
            base = k[:-len("q_bias")]
            zeros = torch.zeros_like(v)
            out[base + "qkv.bias"] = torch.cat([v, zeros, sd[base + "v_bias"]])
            out[base + "qkv.bias_mask"] = torch.cat([torch.ones_like(v), zeros, torch.ones_like(v)])
            continue
        for old, new in (("reg_token", "storage_tokens"), ("gamma_1", "ls1.gamma"), ("gamma_2", "ls2.gamma"),
                         ("mlp.fc1_g.", "mlp.w1."), ("mlp.fc1_x.", "mlp.w2.")):
            k = k.replace(old, new)
        if swiglu:
            k = k.replace("mlp.fc2.", "mlp.w3.")
        out[k] = v.clone()
    return out


def timm_facets(model, x: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's own forward pass: (token, key before the rotation) of ``layer``, patch tokens only."""
    seen = {}
    block = model.blocks[layer]
    hooks = [block.register_forward_hook(lambda m, a, out: seen.__setitem__("token", out.detach())),
             block.attn.k_norm.register_forward_hook(lambda m, a, out: seen.__setitem__("key", out.detach()))]
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    prefix = model.num_prefix_tokens
    key = seen["key"][0].permute(1, 0, 2).reshape(seen["key"].shape[2], -1)  # (heads, N, d) → (N, D)
    return seen["token"][0, prefix:], key[prefix:]


@pytest.mark.slow
@pytest.mark.parametrize("timm_name,depth", [("vit_small_patch16_dinov3_qkvb", 12),
                                             ("vit_small_plus_patch16_dinov3_qkvb", 3)])
def test_meta_checkpoint_matches_timm(timm, tmp_path, timm_name, depth):  # noqa: F811  (the fixture)
    """timm's DINOv3 (random weights) saved in Meta's layout, which timm's own checkpoint filter maps back
    to timm's state dict exactly, loads through DeepCut's .pth path; on a non-square image its token facet
    and the affinity of its key facet (timm's k before the rotation) equal timm's (fp32: measured < 1e-6)."""
    from timm.models.eva import checkpoint_filter_fn

    torch.manual_seed(0)
    model = timm.create_model(timm_name, pretrained=False, num_classes=0, depth=depth).eval()
    perturb_(model, seed=1)
    meta = timm_to_meta(model)
    back, own = checkpoint_filter_fn(dict(meta), model), model.state_dict()
    assert set(back) == {k for k in own if not k.endswith("k_bias")}
    assert all(torch.equal(back[k], own[k]) for k in back)
    path = tmp_path / "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"
    torch.save(meta, path)

    dc = DeepCut(str(path), precision="fp32")
    bb = dc.backbone
    assert isinstance(bb, Dinov3Backbone) and (bb.depth, bb.heads, bb.num_registers) == (depth, 6, 4)
    assert bb.model.config.use_gated_mlp == ("plus" in timm_name) and bb.model.config.rope_theta == 100.0
    img = random_image(224, 320, seed=6)
    x = normalized(img)
    res = int((224 * 320) ** 0.5)
    assert dc.store.grid(img.shape[:2], res, None) == (14, 20)
    ref_token, ref_key = timm_facets(model, x, depth - 1)
    token = dc.features(img, layer=depth - 1, facet="token", resolution=res)
    key = dc.features(img, layer=depth - 1, facet="key", resolution=res)
    assert rel_err(token.reshape(280, -1), ref_token) < 1e-4
    assert rel_err(key.reshape(280, -1), ref_key) < 1e-4 and affinity_error(key, ref_key) < 1e-4
    other = dc.features(img, layer=depth - 2, facet="key", resolution=res)
    assert affinity_error(other, ref_key) > 1e-2


def test_meta_checkpoints_that_do_not_fit_give_clear_errors(tmp_path):
    src = load_backbone("dinov3_vits16", pretrained=False)
    sd = {"cls_token": src.model.embeddings.cls_token, "storage_tokens": src.model.embeddings.register_tokens,
          "patch_embed.proj.weight": src.model.embeddings.patch_embeddings.weight,
          "patch_embed.proj.bias": src.model.embeddings.patch_embeddings.bias, "blocks.0.norm1.weight": torch.ones(384)}
    path = tmp_path / "broken.pth"
    torch.save({k: v.detach().clone() for k, v in sd.items()}, path)
    with pytest.raises(BackboneLoadError, match=r"block 0 lacks .*attn\.qkv\.weight.*original DINOv3 checkpoint"):
        DeepCut(str(path))
    torch.save({**{k: v.detach().clone() for k, v in sd.items()}, "blocks.0.attn.extra": torch.ones(1)}, path)
    with pytest.raises(BackboneLoadError, match=r"block 0 (lacks|has unexpected)"):
        DeepCut(str(path))


# -- every path ----------------------------------------------------------------------------------------------
def test_segment_stages_video_live_cosegment_discover(dc3):
    """With a DINOv3 folder every entry point runs at its default resolution (448 px) unless one is given."""
    img = random_image(300, 460, seed=7)
    for stages in (1, 2, 3):
        seg = dc3.segment(img, stages=stages, k=3, epochs=(5, 10, 5))
        assert seg.patch_labels.shape == (23, 35) and seg.labels.shape == (300, 460)
        assert seg.config.resolution == 448 and not seg.config.resolution_given
    assert dc3.segment(img, resolution=224).patch_labels.shape == (11, 17)  # a set resolution is kept

    frames = [np.roll(img[:150, :230], 8 * i, axis=1).copy() for i in range(3)]
    grid = dc3.store.grid((150, 230), None, None)
    assert grid == (23, 35) == dc3.store.grid((150, 230), 448, None)
    video = list(dc3.segment_video(frames, stages=2, k=2, epochs=(5, 10, 5), batch_size=2))
    assert len(video) == 3 and all(s.patch_labels.shape == grid for s in video)
    assert video[0].config.resolution == 448

    live = dc3.live(k=2, epochs=(5, 10, 5))  # the live default, 224 px: a fast grid
    assert live.step(frames[0]).patch_labels.shape == (11, 17)
    co = dc3.cosegment([frames[0], frames[1]], k=2, epochs=(5, 10, 5))
    assert [s.patch_labels.shape for s in co] == [grid, grid] and co[0].config.resolution == 448
    found = dc3.discover(img, objects=2, epochs=(5, 10, 5))
    assert found.config.resolution == 448 and found.grid == (23, 35)


@pytest.mark.slow
def test_cli_label_and_eval_take_a_dinov3_folder(hf_folder, tmp_path, capsys):
    from test_eval import make_single

    from deepcut.cli import main

    img = tmp_path / "in" / "wide.png"
    img.parent.mkdir()
    Image.fromarray(random_image(300, 460, seed=8)).save(img)
    flags = ["--backbone", str(hf_folder), "--epochs", "5", "10", "5", "--precision", "fp32"]
    assert main(["segment", str(img), "--out", str(tmp_path / "seg"), *flags]) == 0
    meta = json.loads((tmp_path / "seg" / "results.json").read_text())
    assert meta["config"]["resolution"] == 448
    assert main(["label", str(img.parent), "--out", str(tmp_path / "coco.json"), "--objects", "1", *flags]) == 0
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert len(coco["images"]) == 1 and not coco["info"]["failures"]
    make_single(tmp_path / "data", n=2)
    out = tmp_path / "r.json"
    assert main(["eval", str(tmp_path / "data"), "--task", "single", "--out", str(out), "--quiet", *flags]) == 0
    assert json.loads(out.read_text())["config"]["resolution"] == 448
    capsys.readouterr()


def test_config_leaves_the_resolution_to_the_backbone():
    cfg = SegmentConfig()
    assert cfg.resolution == 280 and not cfg.resolution_given  # DINO v1's default is unchanged
    v3 = cfg.with_default_resolution(448)
    assert v3.resolution == 448 and not v3.resolution_given and v3.replace(k=3).resolution == 448
    assert v3.with_default_resolution(280).resolution == 280  # another backbone puts in its own
    fixed = SegmentConfig(resolution=320)
    assert fixed.resolution_given and fixed.with_default_resolution(448).resolution == 320
    assert SegmentConfig(resolution=None).resolution == 280
    assert DeepCut("color").segment(np.zeros((32, 32, 3), np.uint8), epochs=2).config.resolution == 280


def test_the_page_resolution_follows_the_backbones_grid(hf_folder):
    """The app sends its slider's resolution, so the slider follows the backbone: DINOv3's 16-px patches at
    448 px where DINO runs at 280 (Image tab), 360 where the compact and Live tabs start DINO at 224; back on
    choosing another backbone; scaled from the server's --resolution, within a server's cap."""
    from deepcut.demo import DemoSession
    from deepcut.demo.handlers import PageHandlers
    from deepcut.demo.limits import Limits
    from deepcut.demo.live_streams import LiveStreams
    from deepcut.demo.settings import backbone_resolution

    assert [backbone_resolution(b, d, 640) for b, d in ((280, 280), (280, 448), (224, 448), (160, 448), (40, 280))
            ] == [280, 448, 360, 256, 64]  # on 8-px steps, at least the slider's 64
    assert backbone_resolution(280, 448, 400) == 400 == backbone_resolution(280, 448, 640, cap=400)
    page = PageHandlers(DemoSession("color"), "color", 280)
    assert page.resolutions() == (280, 224)
    chosen = page.choose_backbone("color", str(hf_folder))
    assert chosen[0]["maximum"] == 11 and chosen[-1]["value"] == DINOV3_RESOLUTION == 448
    assert page.follow_resolution("color", str(hf_folder))["value"] == 360
    assert page.choose_backbone("color", "")[-1]["value"] == 280 and page.follow_resolution("color", "")["value"] == 224
    assert page.follow_resolution("color", "/no/such/folder") == gr_skip()  # its error is choose_backbone's
    small = PageHandlers(DemoSession("color", limits=Limits(max_resolution=320)), "color", 160)
    assert small.resolutions(small.session.model(str(hf_folder)).model) == (256, 256)
    assert PageHandlers(DemoSession("color", limits=Limits(max_resolution=320)), "color").resolutions(
        DeepCut(str(hf_folder), precision="fp32")) == (320, 320)
    streams = LiveStreams(page.session)  # the Live tab: 224 px for DINO's grid
    assert streams.resolution() == 224 and streams.resolution(str(hf_folder)) == 360
    assert streams.resolution("/no/such/folder") is None


def gr_skip():
    import gradio as gr

    return gr.skip()


# -- gated weights, against a real HTTP server --------------------------------------------------------------
class GatedHub(http.server.BaseHTTPRequestHandler):
    """Answers every request as huggingface.co answers one for a gated repository: 401 without a token,
    403 with a token whose account was not granted access, with ``X-Error-Code: GatedRepo`` and the
    hub's message in ``X-Error-Message`` (and in the JSON body)."""

    def answer(self) -> None:
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        repo = "/".join(parts[2:4] if parts[:2] == ["api", "models"] else parts[:2])
        if self.headers.get("Authorization"):
            code, msg = 403, (f"Access to model {repo} is restricted and you are not in the authorized list. "
                              f"Visit https://huggingface.co/{repo} to ask for access.")
        else:
            code, msg = 401, (f"Access to model {repo} is restricted. You must have access to it and be "
                              f"authenticated to access it. Please log in.")
        self.server.requests.append((self.command, self.path, code))  # type: ignore[attr-defined]
        body = json.dumps({"error": msg}).encode()
        self.send_response(code)
        for header, value in (("Content-Type", "application/json"), ("X-Error-Code", "GatedRepo"),
                              ("X-Error-Message", msg), ("Content-Length", str(len(body)))):
            self.send_header(header, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = answer

    def log_message(self, *args) -> None:
        pass


GATED_SCRIPT = textwrap.dedent("""
    import json, os
    from deepcut import DeepCut
    from deepcut.errors import BackboneLoadError
    from deepcut.model_cache import ModelCache

    def attempt(name):
        try:
            DeepCut(name)
            return "loaded"
        except BackboneLoadError as e:
            return str(e)

    out = {"no_token": attempt("dinov3_vits16")}
    os.environ["HF_TOKEN"] = "hf_aTokenWithoutAccess"
    out["refused_token"] = attempt("dinov3_vitb16")
    out["hub_id"] = attempt("facebook/dinov3-vith16plus-pretrain-lvd1689m")
    del os.environ["HF_TOKEN"]
    model, used, notice = ModelCache("dinov3_vits16", device="cpu").get()
    out["fallback"] = [used, notice]
    endpoint = os.environ["HF_ENDPOINT"]
    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens: no network
    out["no_network"] = attempt("dinov3_vits16")
    out["no_network_dino"] = attempt("dino_vitb16")
    os.environ["HF_HUB_OFFLINE"] = "1"
    out["offline"] = attempt("dinov3_vits16plus")
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_gated_weights_say_how_to_get_access(tmp_path):
    """A hub on 127.0.0.1 that refuses as huggingface.co refuses a gated repository (HF_ENDPOINT points at
    it, HF_HUB_OFFLINE unset): without a token, with a refused one, without network and offline the error
    says to accept the licence on the model page, `hf auth login` or HF_TOKEN, a Space's HF_TOKEN secret; the
    model cache falls back to the colour backbone with that text in its notice."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GatedHub)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "DEEPCUT_"))}
        env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
                   HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(REPO), DEEPCUT_TUNE="0")
        proc = subprocess.run([sys.executable, "-c", GATED_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    codes = {code for _, path, code in server.requests if "dinov3" in path}
    assert codes == {401, 403}, server.requests  # type: ignore[attr-defined]

    def says_what_to_do(text: str, hub_id: str) -> None:
        assert f"accept the licence on the model page https://huggingface.co/{hub_id}" in text
        assert "`hf auth login`" in text and "HF_TOKEN=<your token>" in text
        assert "on a HuggingFace Space, add HF_TOKEN as a secret" in text

    assert "HTTP 401: no HuggingFace token is set up here" in out["no_token"]
    assert "You must have access to it and be authenticated" in out["no_token"]  # the hub's own words
    assert "HTTP 403: the token's account has not been granted access" in out["refused_token"]
    assert "HTTP 403" in out["hub_id"]
    for case, hub_id in [("no_token", "facebook/dinov3-vits16-pretrain-lvd1689m"),
                         ("refused_token", "facebook/dinov3-vitb16-pretrain-lvd1689m"),
                         ("hub_id", "facebook/dinov3-vith16plus-pretrain-lvd1689m"),
                         ("no_network", "facebook/dinov3-vits16-pretrain-lvd1689m"),
                         ("offline", "facebook/dinov3-vits16plus-pretrain-lvd1689m")]:
        says_what_to_do(out[case], hub_id)
        assert "backbone='color'" in out[case] and ".pth" in out[case]
    assert "cannot be reached" in out["no_network"] and "HF_HUB_OFFLINE" in out["offline"]
    assert "gated" not in out["no_network_dino"]  # DINO's weights are not gated
    used, notice = out["fallback"]
    assert used == "color" and "`dinov3_vits16` weights are unavailable here" in notice
    says_what_to_do(notice, "facebook/dinov3-vits16-pretrain-lvd1689m")
