"""The odd inputs of ``benchmarks/fuzz.py``: ``build_cases(folder)`` writes the files and returns
``[(name, thunk)]``, deterministic (fixed seeds), each thunk one call into DeepCut."""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

import deepcut
from deepcut import DeepCut, SegmentConfig

Case = tuple[str, Callable[[], object]]
RES = 64  # the resolution of most cases: small grids keep every case well inside the timeout


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    a = _rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    a[h // 4: 3 * h // 4 + 1, w // 4: 3 * w // 4 + 1] = (220, 30, 30)
    return a


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header claims ``w x h`` pixels with a tiny, truncated data stream."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def write_images(d: Path) -> list[Path]:
    """Image files of every odd kind in ``d``; returns their paths (plus odd non-files)."""
    d.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []

    def save(name: str, img: Image.Image, **kw) -> None:
        img.save(d / name, **kw)
        out.append(d / name)

    rgb = Image.fromarray(_img(40, 56))
    for h, w in [(1, 1), (1, 2), (2, 1), (3, 3), (7, 5), (1, 5000), (5000, 1), (2, 3000), (1, 2_000_000)]:
        save(f"size_{h}x{w}.png", Image.fromarray(_img(h, w, h * 7 + w)))
    for mode in ["1", "L", "LA", "P", "RGB", "RGBA", "I", "F", "I;16", "CMYK", "YCbCr", "HSV", "LAB", "PA"]:
        try:
            img = rgb.convert(mode) if mode not in ("I;16", "F", "I") else Image.fromarray(
                (_img(40, 56)[:, :, 0].astype(np.float32) * (257 if mode != "F" else 1 / 255)).astype(
                    {"I;16": np.uint16, "F": np.float32, "I": np.int32}[mode]))
        except (ValueError, OSError):
            continue
        for ext in ("png", "tif", "jpg", "bmp", "webp", "gif"):
            try:
                save(f"mode_{mode.replace(';', '_')}.{ext}", img)
            except (OSError, ValueError, KeyError):
                (d / f"mode_{mode.replace(';', '_')}.{ext}").unlink(missing_ok=True)
    trans = rgb.convert("P")
    save("palette_transparent.png", trans, transparency=0)
    sixteen = (_img(30, 20).astype(np.uint16) * 257)
    import cv2

    cv2.imwrite(str(d / "rgb16.png"), sixteen)
    out.append(d / "rgb16.png")
    nanf = np.full((20, 20), np.nan, np.float32)
    save("float_nan.tif", Image.fromarray(nanf))
    save("float_inf.tif", Image.fromarray(np.where(np.eye(20) > 0, np.inf, -1e30).astype(np.float32)))
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        save(f"exif_{o}.jpg", rgb, exif=exif.tobytes())
    exif = Image.Exif()
    exif[0x0112] = 99
    save("exif_bad.jpg", rgb, exif=exif.tobytes())
    frames = [Image.fromarray(_img(20, 30, s)).convert("P") for s in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out.append(d / "anim.gif")
    frames[0].save(d / "multi.tif", save_all=True, append_images=frames[1:])
    out.append(d / "multi.tif")
    save("progressive.jpg", rgb, progressive=True, quality=50)
    for src in ("size_7x5.png", "mode_RGB.jpg", "mode_RGB.png", "anim.gif", "mode_RGB.webp", "mode_RGB.tif"):
        data = (d / src).read_bytes()
        for frac in (0.0, 0.1, 0.5, 0.9, 0.99):
            p = d / f"cut{int(frac * 100)}_{src}"
            p.write_bytes(data[: int(len(data) * frac)])
            out.append(p)
    for i, head in enumerate([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\x00", b"BM", b"RIFF"]):
        p = d / f"random_{i}.png"
        p.write_bytes(head + _rng(i).integers(0, 256, 300 * (i + 1), dtype=np.uint8).tobytes())
        out.append(p)
    (d / "text.png").write_text("this is not an image\n")
    (d / "empty.jpg").write_bytes(b"")
    _png_header_only(d / "claims_huge.png", 100_000, 100_000)
    _png_header_only(d / "claims_0x0.png", 0, 0)
    _png_header_only(d / "claims_wide.png", 1_000_000, 1)
    out += [d / "text.png", d / "empty.jpg", d / "claims_huge.png", d / "claims_0x0.png", d / "claims_wide.png"]
    (d / "folder.png").mkdir(exist_ok=True)
    os.mkfifo(d / "fifo.png")
    os.symlink(d / "loop_a.png", d / "loop_b.png")
    os.symlink(d / "loop_b.png", d / "loop_a.png")
    os.symlink(d / "nowhere.png", d / "dangling.png")
    out += [d / "folder.png", d / "fifo.png", d / "loop_a.png", d / "dangling.png", d / "missing.png",
            d / ("x" * 300 + ".png"), Path("/" + "deep/" * 900 + "a.png"), Path("/dev/zero"), Path("/dev/null")]
    return out


def odd_arrays() -> list[tuple[str, object]]:
    """Arrays, tensors, PIL images and other objects passed as an image."""
    a = _img(24, 32)
    nan = a.astype(np.float32) / 255
    nan[::3] = np.nan
    items: list[tuple[str, object]] = [
        ("shape0x0", np.zeros((0, 0), np.uint8)),
        ("shape0x5x3", np.zeros((0, 5, 3), np.uint8)),
        ("shape1x1", np.zeros((1, 1), np.uint8)),
        ("shape1x1x3", np.ones((1, 1, 3), np.uint8)),
        ("shape5x5x2", np.ones((5, 5, 2), np.uint8)),
        ("shape5x5x5", np.ones((5, 5, 5), np.uint8)),
        ("shape5x5x1", np.ones((5, 5, 1), np.uint8)),
        ("1d", np.ones(10, np.uint8)),
        ("0d", np.array(3)),
        ("4d", np.ones((2, 5, 5, 3), np.uint8)),
        ("float_nan", nan),
        ("float_allnan", np.full((9, 9), np.nan)),
        ("float_inf", np.full((9, 9, 3), np.inf)),
        ("float_neg", -nan),
        ("float_big", nan * 1e30),
        ("float16", nan.astype(np.float16)),
        ("float128", a.astype(np.longdouble)),
        ("int8", a.astype(np.int8)),
        ("int64_huge", a.astype(np.int64) * 10**15),
        ("int64_neg", -a.astype(np.int64)),
        ("uint32", a.astype(np.uint32) << 20),
        ("bool", a > 128),
        ("complex", a.astype(np.complex64)),
        ("object", a.astype(object)),
        ("strings", a.astype(str)),
        ("bytes_dtype", a.astype("S3")),
        ("big_endian", a.astype(">u2") * 200),
        ("strided", a[::2, ::3]),
        ("fortran", np.asfortranarray(a)),
        ("readonly", np.frombuffer(a.tobytes(), np.uint8).reshape(a.shape)),
        ("rgba_float", np.dstack([nan, nan[:, :, :1]])),
        ("structured", np.zeros((4, 4), [("a", "u1"), ("b", "f4")])),
        ("datetime", np.zeros((4, 4), "datetime64[s]")),
        ("huge_aspect_array", np.zeros((1, 100_000, 3), np.uint8)),
        ("tensor_uint8", torch.from_numpy(a)),
        ("tensor_float", torch.rand(3, 24, 32)),
        ("tensor_empty", torch.empty(0)),
        ("list", a.tolist()),
        ("dict", {"image": a}),
        ("none", None),
        ("int", 5),
        ("float", math.nan),
        ("str_empty", ""),
        ("str_nul", "a\x00b.png"),
        ("bytes_empty", b""),
        ("bytes_random", bytes(range(256)) * 4),
        ("bytearray_png", bytearray(_png_bytes(a))),
        ("memoryview", memoryview(_png_bytes(a))),
        ("pil_empty", Image.new("RGB", (0, 0))),
        ("pil_1x0", Image.new("RGB", (1, 0))),
        ("pil_closed", _closed()),
        ("pil_I16", Image.new("I;16", (9, 9), 40000)),
        ("pil_F_nan", Image.fromarray(np.full((9, 9), np.nan, np.float32))),
        ("pil_1", Image.new("1", (9, 9), 1)),
        ("pil_CMYK", Image.new("CMYK", (9, 9), (0, 255, 0, 0))),
        ("pil_HSV", Image.new("HSV", (9, 9), (10, 200, 200))),
        ("pil_LAB", Image.new("LAB", (9, 9), (50, 0, 0))),
        ("pil_P_no_palette", Image.new("P", (9, 9))),
        ("pil_lazy_bad", _lazy_truncated()),
        ("path_object_dir", Path("/")),
        ("generator", (x for x in [a])),
    ]
    return items


def _png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _closed() -> Image.Image:
    img = Image.open(io.BytesIO(_png_bytes(_img(9, 9))))
    img.close()
    return img


def _lazy_truncated() -> Image.Image:
    return Image.open(io.BytesIO(_png_bytes(_img(40, 40))[:200]))


ODD_VALUES: dict[str, list] = {
    "k": [
        None,
        0,
        1,
        2,
        64,
        65,
        2.5,
        "3",
        " 4 ",
        "x",
        math.nan,
        math.inf,
        -1,
        10**20,
        True,
        [2],
        np.int64(3),
        np.float32(2.0),
    ],
    "loss": ["NCUT", "", None, 0, "cc ", "cc"],
    "alpha": [0, -1, math.nan, math.inf, 1e-30, 1e30, "2.5", "x", True, None, 1e308],
    "layer": [-13, -1, 12, 100, "a", 1.5, None, 11, -12],
    "facet": ["KEY", None, "", "token", "value", 3],
    "resolution": [0, 15, 16, 17, 4096, 4097, math.nan, "280", 10**9, -64, 63.0, 2048],
    "stride": [0, 3, 1, 7, "4", -8, 8, 16, 2.0, math.inf, 4],
    "stages": [0, 4, "2", 2.0, None, 3, True],
    "epochs": [0, 10**7, [1, 2], [1, 2, 3, 4], "10", (1, 1, 1), -1, [], None, {"a": 1}, 1.5, [1, "x", 1], 10001, 1000],
    "bg_k": [1, 65, "x", 2, None],
    "seed": [-1, 2**64, 1.5, "7", None, 2**63 - 2],
    "refine": ["CRF", None, "guided", "crf", 1],
    "log_bin": ["yes", 1, None, True],
    "largest_component": [None, "no", True, 0],
}


def config_cases(models: dict[str, DeepCut], img: np.ndarray) -> list[Case]:
    """Every setting with odd values, on a small image with the colour backbone (and a random ViT for a few)."""
    cases: list[Case] = []
    for name, values in ODD_VALUES.items():
        for i, v in enumerate(values):
            res = {} if name == "resolution" else {"resolution": RES}
            cases.append(
                (
                    f"config/{name}={v!r:.40}/color",
                    lambda n=name, v=v, r=res: models["color"].segment(img, **{n: v}, **r),
                )
            )
            if i % 3 == 0:
                cases.append(
                    (
                        f"config/{name}={v!r:.40}/vit",
                        lambda n=name, v=v, r=res: models["vit"].segment(img, **{n: v}, **r),
                    )
                )
    cases += [
        ("config/unknown_field", lambda: models["color"].segment(img, colour=3)),
        ("config/SegmentConfig_positional_junk", lambda: SegmentConfig("x")),
        ("config/config_not_a_config", lambda: models["color"].segment(img, config={"k": 2})),
        ("config/replace_none", lambda: SegmentConfig().replace(**{"k": None, "loss": "cc"})),
        ("config/stages3_k64", lambda: models["color"].segment(img, stages=3, k=64, bg_k=64, resolution=RES)),
        ("config/log_bin_vit_stride4", lambda: models["vit"].segment(img, log_bin=True, stride=4, resolution=RES)),
        ("config/stride1_res4096_vit", lambda: models["vit"].segment(img, stride=1, resolution=4096)),
        ("config/stride4_res2048_vit", lambda: models["vit"].segment(img, stride=4, resolution=2048)),
        ("config/res512_color", lambda: models["color"].segment(img, resolution=512)),
        ("config/discover_objects", lambda: models["color"].discover(img, objects=0, resolution=RES)),
        ("config/discover_objects_neg", lambda: models["color"].discover(img, objects=-1, resolution=RES)),
        ("config/discover_objects_str", lambda: models["color"].discover(img, objects="x", resolution=RES)),
        ("config/discover_objects_huge", lambda: models["color"].discover(img, objects=10**6, resolution=RES)),
        ("config/discover_auto", lambda: models["color"].discover(img, objects=None, resolution=RES)),
    ]
    return cases


def constructor_cases() -> list[Case]:
    """Odd arguments of :class:`DeepCut`."""
    cases: list[Case] = []
    for kw in [{"cache_size": -1}, {"cache_size": "x"}, {"cache_size": None}, {"cache_size": 0}, {"threads": 0},
               {"threads": -1}, {"threads": "x"}, {"threads": 1.5}, {"device": "tpu"}, {"device": 5},
               {"device": "cuda:99"}, {"max_memory": "abc"}, {"max_memory": -1}, {"max_memory": "1K"},
               {"max_memory": math.nan}, {"max_memory": "off"}, {"backbone": ""}, {"backbone": None},
               {"backbone": 5}, {"backbone": "nope/nope"}, {"backbone": "/nonexistent.pth"}, {"pretrained": "x"}]:
        def make(kw=kw):
            kw = {"backbone": "color", **kw}
            dc = DeepCut(**kw)
            return dc.segment(_img(24, 24), resolution=RES)
        cases.append((f"ctor/{kw!r:.50}", make))
    return cases


def image_cases(models: dict[str, DeepCut], files: list[Path]) -> list[Case]:
    """Every odd file and object through ``segment`` (colour backbone; a random ViT for every 4th)."""
    cases: list[Case] = []
    for i, path in enumerate(files):
        res = 16 if "2000000" in path.name else RES  # 1 x 2828 patches: each case stays well inside the timeout
        cases.append((f"file/{path.name[:60]}/color", lambda p=path, r=res: models["color"].segment(p, resolution=r)))
        if i % 4 == 0 and "2000000" not in path.name:  # that one is slow on a ViT with one thread (~30 s)
            cases.append((f"file/{path.name[:60]}/vit", lambda p=path, r=res: models["vit"].segment(p, resolution=r)))
        if i % 5 == 0:
            cases.append((f"file/{path.name[:60]}/load_image", lambda p=path: deepcut.load_image(p)))
    for i, (name, obj) in enumerate(odd_arrays()):
        cases.append((f"object/{name}/color", lambda o=obj: models["color"].segment(o, resolution=RES)))
        if i % 3 == 0:
            cases.append((f"object/{name}/vit", lambda o=obj: models["vit"].segment(o, resolution=RES)))
        if i % 4 == 1:
            cases.append(
                (f"object/{name}/cosegment", lambda o=obj: models["color"].cosegment([o, _img(20, 20)], resolution=RES))
            )
    cases += [
        ("object/cosegment_empty", lambda: models["color"].cosegment([], resolution=RES)),
        ("object/cosegment_none", lambda: models["color"].cosegment(None, resolution=RES)),
        ("object/features_nan", lambda: models["color"].segment_features(np.full((16, 8), np.nan, np.float32), (4, 4))),
        ("object/features_bad_grid", lambda: models["color"].segment_features(np.ones((16, 8), np.float32), (5, 5))),
        ("object/features_zero_grid", lambda: models["color"].segment_features(np.ones((0, 8), np.float32), (0, 0))),
        ("object/features_1node", lambda: models["color"].segment_features(np.ones((1, 8), np.float32), (1, 1))),
        ("object/features_str", lambda: models["color"].segment_features("x", (1, 1))),
        ("object/features_neg_grid", lambda: models["color"].segment_features(np.ones((4, 8), np.float32), (-2, -2))),
    ]
    return cases


def write_videos(d: Path) -> dict[str, Path]:
    """Videos of odd kinds: full, truncated, one frame, empty, text, GIFs, a folder of odd frames."""
    import imageio_ffmpeg

    d.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name, n, size in (("full", 12, (48, 32)), ("one_frame", 1, (48, 32)), ("odd_size", 6, (34, 18))):
        p = d / f"{name}.mp4"
        w = imageio_ffmpeg.write_frames(str(p), size, fps=8, macro_block_size=1,
                                        output_params=["-movflags", "+faststart"])
        w.send(None)
        for i in range(n):
            w.send(_img(size[1], size[0], i).tobytes())
        w.close()
        out[name] = p
    data = out["full"].read_bytes()
    for frac in (0.05, 0.3, 0.6, 0.9):
        p = d / f"cut{int(frac * 100)}.mp4"
        p.write_bytes(data[: int(len(data) * frac)])
        out[p.stem] = p
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video")
    (d / "random.mp4").write_bytes(_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    out.update(empty=d / "empty.mp4", text=d / "text.mp4", random=d / "random.mp4")
    frames = [Image.fromarray(_img(20, 30, s)).convert("P") for s in range(4)]
    frames[0].save(d / "palette.gif", save_all=True, append_images=frames[1:], duration=0, loop=0, transparency=0)
    frames[0].save(d / "single.gif")
    out.update(palette_gif=d / "palette.gif", single_gif=d / "single.gif")
    folder = d / "frames"
    folder.mkdir()
    Image.fromarray(_img(20, 30)).save(folder / "1.png")
    Image.fromarray(_img(40, 10)).save(folder / "2.png")
    (folder / "3.png").write_bytes(b"broken")
    Image.fromarray(_img(1, 1)).save(folder / "10.png")
    out["frames_folder"] = folder
    (d / "no_frames").mkdir()
    out["empty_folder"] = d / "no_frames"
    return out


def video_cases(models: dict[str, DeepCut], videos: dict[str, Path]) -> list[Case]:
    """``segment_video`` on odd videos and with odd arguments (the stream is consumed)."""
    dc = models["color"]

    def run(video, **kw):
        stream = dc.segment_video(video, resolution=RES, **kw)
        n = sum(1 for _ in stream)
        return n, stream.notes

    def truncated_note():
        n, notes = run(videos["cut60"])
        if n < 12 and not any("truncated" in x for x in notes):
            raise AssertionError(f"{n} of 12 frames and no note: {notes}")

    cases: list[Case] = [(f"video/{k}", lambda v=v: run(v)) for k, v in videos.items()]
    cases.append(("video/truncated_has_a_note", truncated_note))
    full = videos["full"]
    for kw in [{"progress": 5}, {"progress": "x"}, {"progress": True}, {"progress": False}, {"progress": None},
               {"max_frames": 0}, {"max_frames": -1}, {"max_frames": "3"}, {"max_frames": 2.5}, {"max_frames": None},
               {"max_frames": math.nan}, {"max_frames": 10**12}, {"frame_stride": 0}, {"frame_stride": "x"},
               {"frame_stride": 10**9}, {"batch_size": 0}, {"batch_size": "8"}, {"batch_size": 10**9},
               {"batch_size": None}, {"warm_epochs": 0}, {"warm_epochs": [1, 2]}, {"warm_epochs": "x"},
               {"warm": "no"}, {"match": None}, {"stages": 3, "k": 3}]:
        cases.append((f"video/kw {kw!r:.40}", lambda kw=kw: run(full, **kw)))
    a = np.stack([_img(16, 24, s) for s in range(3)])
    for name, obj in [
        ("array_TxHxW", a[:, :, :, 0]),
        ("array_float_nan", np.full((2, 8, 8, 3), np.nan)),
        ("array_empty", a[:0]),
        ("array_5d", a[None]),
        ("array_2d", a[0, :, :, 0]),
        ("list_mixed_sizes", [_img(10, 10), _img(30, 5), _img(1, 1)]),
        ("list_bad_frames", ["x", None, 5]),
        ("list_empty", []),
        ("generator_empty", iter([])),
        ("bytes", b"\x00" * 100),
        ("int", 3),
        ("none", None),
        ("pil", Image.fromarray(_img(9, 9))),
        ("dict", {"a": 1}),
        ("fifo_like", Path("/dev/null")),
    ]:
        cases.append((f"video/object {name}", lambda o=obj: run(o)))
    return cases


def _dino_state_dict(dim: int = 64, depth: int = 1, patch: int = 8, side: int = 4, expand: bool = False) -> dict:
    """A DINO-layout state dict (random, or ``expand``: stride-0 views of one number each)."""
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.zeros(1).expand(*shape) if expand else torch.randn(*shape, generator=g) * 0.02

    sd = {
        "cls_token": t(1, 1, dim),
        "pos_embed": t(1, 1 + side * side, dim),
        "patch_embed.proj.weight": t(dim, 3, patch, patch),
        "patch_embed.proj.bias": t(dim),
        "norm.weight": t(dim),
        "norm.bias": t(dim),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        sd.update({b + "norm1.weight": t(dim), b + "norm1.bias": t(dim), b + "attn.qkv.weight": t(3 * dim, dim),
                   b + "attn.qkv.bias": t(3 * dim), b + "attn.proj.weight": t(dim, dim), b + "attn.proj.bias": t(dim),
                   b + "norm2.weight": t(dim), b + "norm2.bias": t(dim), b + "mlp.fc1.weight": t(4 * dim, dim),
                   b + "mlp.fc1.bias": t(4 * dim), b + "mlp.fc2.weight": t(dim, 4 * dim), b + "mlp.fc2.bias": t(dim)})
    return sd


def write_checkpoints(d: Path) -> list[Path]:
    """Crafted checkpoints and model folders: valid tiny ones, expanded tensors, huge configs, garbage."""
    import pickle
    import zipfile

    d.mkdir(parents=True, exist_ok=True)
    out = []
    torch.save(_dino_state_dict(), d / "tiny.pth")
    torch.save({"teacher": {f"backbone.{k}": v for k, v in _dino_state_dict().items()}}, d / "training.pth")
    torch.save(_dino_state_dict(dim=2048, depth=2, patch=16, side=14, expand=True), d / "expanded_2048.pth")
    torch.save(_dino_state_dict(dim=8192, depth=24, patch=16, side=14, expand=True), d / "expanded_huge.pth")
    sd = _dino_state_dict()
    sd["pos_embed"] = torch.zeros(1, 17, 64).as_strided((1, 17, 64), (0, 0, 1))
    torch.save(sd, d / "strided.pth")
    sd = _dino_state_dict()
    sd["blocks.0.attn.qkv.weight"] = torch.zeros(10)
    torch.save(sd, d / "bad_shape.pth")
    torch.save([1, 2, 3], d / "list.pth")
    torch.save({"teacher": 5}, d / "teacher_int.pth")
    (d / "random.pth").write_bytes(_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (d / "pickle_global.pth").write_bytes(pickle.dumps(os.getcwd))
    (d / "empty.pth").write_bytes(b"")
    with zipfile.ZipFile(d / "zip.pth", "w") as z:
        z.writestr("a/data.pkl", b"garbage")
    (d / "garbage.safetensors").write_bytes(b"\xff" * 100)
    (d / "header.safetensors").write_bytes(struct.pack("<Q", 10**15) + b"{}")
    out += sorted(d.glob("*.pth")) + sorted(d.glob("*.safetensors"))
    for name, cfg in [
        (
            "huge_folder",
            {
                "model_type": "vit",
                "hidden_size": 65536,
                "num_hidden_layers": 1000,
                "num_attention_heads": 1024,
                "intermediate_size": 262144,
            },
        ),
        ("list_folder", [1, 2]),
        ("text_folder", "{not json"),
        ("neg_folder", {"model_type": "vit", "hidden_size": -5}),
        ("str_sizes_folder", {"model_type": "vit", "hidden_size": "big"}),
        ("unknown_type_folder", {"model_type": "bert"}),
    ]:
        (d / name).mkdir()
        (d / name / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
        out.append(d / name)
    (d / "no_config_folder").mkdir()
    out.append(d / "no_config_folder")
    return out


def checkpoint_cases(paths: list[Path]) -> list[Case]:
    cases: list[Case] = []
    for p in paths:
        def load(p=p):
            dc = DeepCut(str(p))
            return dc.segment(_img(24, 24), resolution=RES).num_segments
        cases.append((f"checkpoint/{p.name}", load))
    cases.append(("checkpoint/student_branch_missing", lambda: DeepCut(str(paths[0].parent / "tiny.pth") + "#student")))
    return cases


def cli_cases(d: Path, files: list[Path], videos: dict[str, Path]) -> list[Case]:
    """The ``segment`` / ``video`` / ``cosegment`` commands with odd inputs and bad ``--out`` paths."""
    from deepcut.cli import main

    d.mkdir(parents=True, exist_ok=True)
    inputs = d / "in"
    inputs.mkdir()
    for i in range(3):
        Image.fromarray(_img(24, 24, i)).save(inputs / f"im{i}.png")
    (inputs / "broken.png").write_bytes(b"broken")
    (d / "a_file").write_text("x")
    (d / "results_dir" / "results.json").mkdir(parents=True)
    base = ["--backbone", "color", "--resolution", str(RES)]
    odd_outs = [d / "a_file", d / "a_file" / "sub", d / "results_dir", inputs, d / "fine", Path("/proc/nope")]
    cases: list[Case] = []
    for out in odd_outs:
        cases.append(
            (f"cli/segment --out {out.name}", lambda o=out: main(["segment", str(inputs), "--out", str(o), *base]))
        )
    cases.append(
        (
            "cli/segment rerun into inputs",
            lambda: main(["segment", str(inputs), "--out", str(inputs), *base, "-k", "3"]),
        )
    )
    odd = [p for p in files if p.name.startswith(("size_1x2000000", "fifo", "loop", "text", "claims", "folder"))]
    cases.append(("cli/segment odd files", lambda: main(["segment", *map(str, odd), "--out", str(d / "odd"), *base,
                                                         "--resolution", "16"])))
    for flags in (["--epochs", "0"], ["--stride", "3"], ["--resolution", "nan"], ["--threads", "0"], ["-k", "x"],
                  ["--device", "tpu"], ["--layer", "5"], ["--opacity", "nan"], ["--opacity", "-3"]):
        cases.append(
            (
                f"cli/segment {' '.join(flags)}",
                lambda f=flags: main(["segment", str(inputs / "im0.png"), "--out", str(d / "f"), *base, *f]),
            )
        )
    for name in ("cut60", "empty", "palette_gif", "frames_folder"):
        cases.append(
            (
                f"cli/video {name}",
                lambda n=name: main(
                    ["video", str(videos[n]), "--out", str(d / f"{n}.gif"), *base, "--max-frames", "4"]
                ),
            )
        )
    for out in (d / "a_file" / "x.mp4", d / "v.txt", inputs, d / "nowhere" / "deep" / "v.gif"):
        cases.append(
            (
                f"cli/video --out {out}",
                lambda o=out: main(["video", str(videos["full"]), "--out", str(o), *base, "--max-frames", "2"]),
            )
        )
    cases.append(("cli/cosegment", lambda: main(["cosegment", str(inputs), "--out", str(d / "co"), *base])))
    cases.append(("cli/cosegment bad out", lambda: main(["cosegment", str(inputs), "--out", str(d / "a_file"), *base])))
    return cases


#: The library's and the first CLI's group prefixes (built together: they share models and files).
LIBRARY = ("config/", "file/", "object/", "ctor/", "video/", "checkpoint/", "cli/")
#: Every group's name prefix (each case of a group starts with its prefix), in build order.
GROUPS = (*LIBRARY, "web:", "h22-out/", "h22-label/", "h33/")


def _wanted(only: str | None) -> set[str]:
    """The groups ``--only TEXT`` can select: the one whose prefix TEXT starts with (so that ``--only
    h22-out/`` builds neither the models nor the web server it does not need), else every group."""
    hit = {g for g in GROUPS if only and only.startswith(g)}
    return hit or set(GROUPS)


def build_cases(folder: Path, only: str | None = None) -> list[Case]:
    """Every case, in a fixed order (``--quick`` takes every 8th, so each group is sampled); ``only``:
    build just the group it names by prefix (see :func:`_wanted`; the caller still filters by name)."""
    want = _wanted(only)
    groups: list[list[Case]] = []
    if want & set(LIBRARY):
        models = {"color": DeepCut("color", cache_size=1),
                  "vit": DeepCut("dino_vits8", pretrained=False, cache_size=1)}
        files = write_images(folder / "images")
        videos = write_videos(folder / "videos")
        img = _img(40, 56)
        groups += [config_cases(models, img), image_cases(models, files), constructor_cases(),
                   video_cases(models, videos), checkpoint_cases(write_checkpoints(folder / "checkpoints")),
                   cli_cases(folder / "cli", files, videos)]
    if "web:" in want:  # the web server's classes (#22)
        from fuzz_cases_web import web_cases

        groups.append(web_cases(folder / "web"))
    if want & {"h22-out/", "h22-label/"}:  # the CLI's outputs and label's signals and shards (#22)
        from fuzz_cases_cli import cli_output_cases, label_cases

        if "h22-out/" in want:
            groups.append(cli_output_cases(folder / "cli_output_cases"))
        if "h22-label/" in want:
            groups.append(label_cases(folder / "label_cases"))
    if "h33/" in want:  # the failure paths of live, corrections, exports, precision and the page (#33)
        from fuzz_cases_h33 import h33_cases

        groups.append(h33_cases(folder / "h33"))
    cases: list[Case] = []
    longest = max(len(g) for g in groups)
    for i in range(longest):  # interleaved, so that every 8th case covers each group
        cases += [g[i] for g in groups if i < len(g)]
    names = [c[0] for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    return [(f"{n}#{i}" if n in dup else n, fn) for i, (n, fn) in enumerate(cases)]
