"""Odd inputs: every kind of image gives a result or a clear error, never a traceback of ours."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import disc_image
from PIL import Image

from deepcut import ImageLoadError, load_image


def test_grayscale_rgba_16bit_and_float_arrays():
    assert load_image(np.full((5, 7), 128, np.uint8)).shape == (5, 7, 3)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, ..., 3] = 255  # top half opaque red, bottom transparent → white
    out = load_image(rgba)
    assert out[0, 0].tolist() == [255, 0, 0] and out[3, 3].tolist() == [255, 255, 255]
    assert load_image(np.full((3, 3), 65535, np.uint16))[0, 0].tolist() == [255] * 3
    assert load_image(np.full((3, 3, 3), 0.5, np.float32))[0, 0, 0] == 128
    ramp = np.tile(np.linspace(0, 255, 8), (2, 1))
    for floats in (ramp.astype(np.float32), ramp.astype(np.float32) / 255, ramp * 2):  # 0-255, 0-1, above 255
        assert load_image(floats)[0, :, 0].tolist() == [0, 36, 73, 109, 146, 182, 219, 255]  # 0-255 was white
    assert load_image(ramp.round().astype(np.int64))[0, :, 0].tolist() == [0, 36, 73, 109, 146, 182, 219, 255]
    sixteen = np.full((2, 2), 255, np.uint16)  # 16 bits by its type, not its content: as dark as 256 is
    assert load_image(sixteen)[0, 0, 0] == 1 and load_image(sixteen + 1)[0, 0, 0] == 1
    for bad, message in ((np.array([[np.nan, 1.0]]), "NaN or infinite"), (np.array([[np.inf, 1.0]]), "NaN"),
                         (np.array([[-0.5, 1.0]]), "0 or more, got -0.5"), (np.array([[-3, 4]], np.int8), "got -3")):
        with pytest.raises(ImageLoadError, match=message):
            load_image(bad)
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((3, 3, 5), np.uint8))
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(np.zeros((0, 3, 3), np.uint8))


def test_files_of_many_kinds(tmp_path, color_model):
    img = disc_image(64)
    Image.fromarray(img).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(img).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray((img[..., 0].astype(np.uint16) * 257)).save(tmp_path / "deep.png")  # 16-bit
    Image.fromarray(img).convert("P").save(tmp_path / "palette.gif")
    for name in ["gray.png", "rgba.png", "deep.png", "palette.gif"]:
        arr = load_image(tmp_path / name)
        assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8, name
        seg = color_model.segment(tmp_path / name, resolution=64)
        assert seg.labels.shape == (64, 64)
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # white stripe on the left
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    pil.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(tmp_path / "rotated.jpg")
    assert out.shape == (40, 20, 3)
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # the stripe is now on top


def test_tiny_and_huge_images(color_model):
    one = np.array([[[200, 10, 10]]], np.uint8)
    seg = color_model.segment(one)
    assert seg.labels.shape == (1, 1) and seg.patch_labels.shape == (35, 35)
    huge = np.zeros((4000, 6000, 3), np.uint8)
    huge[1000:3000, 2000:4000] = (255, 0, 0)
    seg = color_model.segment(huge)
    assert seg.labels.shape == (4000, 6000)
    x0, y0, x1, y1 = seg.bbox
    assert abs(x0 - 2000) < 200 and abs(y0 - 1000) < 200 and abs(x1 - 4000) < 200 and abs(y1 - 3000) < 200


def test_broken_files_raise_clear_errors(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(disc_image(64)).save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("this is not a png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(tmp_path / "truncated.jpg")
    for name in ["text.png", "empty.jpg"]:
        with pytest.raises(ImageLoadError, match="not an image"):
            load_image(tmp_path / name)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ImageLoadError):
        load_image(12)
    assert load_image(data).shape == (64, 64, 3)  # raw bytes work


def test_odd_paths_and_images_are_image_load_errors(tmp_path):
    """A FIFO (would block forever), a 5000-character path, a closed PIL image and a 0x0 image are
    refused with ImageLoadError, quickly."""
    import os

    from PIL import Image

    from deepcut.errors import ImageLoadError
    from deepcut.features.image import load_image

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    closed = Image.new("RGB", (8, 8))
    closed.close()
    for bad, words in ((fifo, "not a regular file"), ("x" * 5000 + ".png", "cannot be read"),
                       (closed, "could not read"), (Image.new("RGB", (0, 0)), "empty")):
        with pytest.raises(ImageLoadError, match=words):
            load_image(bad)
