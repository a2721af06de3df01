"""For slides: slide pictures (deepcut.render.slides) and the files (deepcut.lessons.slides): file names,
the replay as GIF and MP4, the zip of everything. Colour backbone, small synthetic images."""

from __future__ import annotations

import json
import zipfile

import imageio.v2 as imageio
import numpy as np
import pytest
from conftest import disc_image
from matplotlib.figure import Figure
from PIL import Image, ImageFont

from deepcut.demo import DemoSession
from deepcut.demo.teaching import Walkthrough, explain
from deepcut.errors import ConfigError
from deepcut.lessons.names import config_slug, file_stem
from deepcut.lessons.slides import (
    REPLAY_WIDTH,
    WALK_FIGURES,
    export_files,
    export_names,
    export_zip,
    replay_gif,
    replay_mp4,
)
from deepcut.lessons.sweep import sweep
from deepcut.lessons.words import settings_line
from deepcut.render.slides import caption_font, caption_font_size, render_figure, slide, wrap

IMAGE = disc_image(96, two_tone=True, striped_bg=True)


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the True pixels of ``mask``, x1 and y1 exclusive."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def not_white(picture: Image.Image) -> np.ndarray:
    return (np.asarray(picture.convert("RGB")) < 245).any(-1)


# -- slides ----------------------------------------------------------------------------------------------
def test_a_picture_is_fitted_with_its_aspect_on_white():
    red = Image.new("RGB", (200, 100), (220, 30, 30))
    out = slide(red, "", size=(1920, 1080))
    assert out.size == (1920, 1080) and out.mode == "RGB"
    arr = np.asarray(out)
    x0, y0, x1, y1 = box_of((arr[..., 0] > 200) & (arr[..., 1] < 60))
    assert (x1 - x0) / (y1 - y0) == pytest.approx(2.0, abs=0.01)  # aspect kept
    assert x1 - x0 >= 1920 - 2 * caption_font_size(1920)  # upscaled to fill the width
    assert arr[0, 0].tolist() == arr[-1, -1].tolist() == [255, 255, 255]  # letterboxed on white


def test_the_caption_is_large_and_wrapped():
    assert caption_font_size(1920) >= 28
    out = slide(Image.new("RGB", (100, 100), (255, 255, 255)), "Hg NCut k=3 · 2 stages · color")
    x0, y0, x1, y1 = box_of(not_white(out))  # the picture is white: only the caption is drawn
    assert y1 - y0 >= 28 and y0 > 1080 * 0.8 and 1920 * 0.2 < x1 - x0 < 1920  # one large line at the bottom
    font = ImageFont.load_default(size=40)
    lines = wrap("word " * 200, font, 800)
    assert len(lines) == 3 and lines[-1].endswith("…") and all(font.getlength(line) <= 800 for line in lines)


def test_a_figure_is_rendered_at_the_dpi_that_fills_the_slide():
    fig = Figure(figsize=(4, 3), dpi=100)
    fig.subplots().plot([0, 1], [0, 1])
    assert render_figure(fig, (1600, 900)).size == (1200, 900)  # rendered at 300 dpi, not 400 x 300 upscaled
    assert fig.dpi == 100  # the figure itself is left as it was
    out = slide(fig, "a figure")
    x0, y0, x1, y1 = box_of(not_white(out.crop((0, 0, 1920, 900))))
    assert y1 - y0 > 0.8 * 900


def test_captions_draw_the_lessons_symbols_not_boxes():
    font = caption_font(40)
    missing = np.asarray(font.getmask("\U0010FFFF"))  # a character no font has: its box
    for ch in "α×–≤Fᵀé":  # CC's α, "29 × 43 patches", "epochs 11–20", "k≤10", relu(F·Fᵀ)
        mask = font.getmask(ch)
        assert mask.size != font.getmask("\U0010FFFF").size or not np.array_equal(np.asarray(mask), missing), ch


def test_a_longer_caption_may_take_more_lines():
    words = "word " * 120
    three = not_white(slide(Image.new("RGB", (10, 10), (255, 255, 255)), words))
    six = not_white(slide(Image.new("RGB", (10, 10), (255, 255, 255)), words, lines=6))
    assert box_of(six)[1] < box_of(three)[1] - 2 * caption_font_size(1920)  # three more lines above


def test_transparency_becomes_white():
    cut = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    cut.paste((200, 0, 0, 255), (10, 10, 40, 40))
    arr = np.asarray(slide(cut, "", size=(500, 500)))
    assert arr[5, 250].tolist() == [255, 255, 255] and arr[250, 250].tolist() == [200, 0, 0]


# -- files ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return DemoSession(default_backbone="color", output_dir=tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def result(session):
    return session.segment(IMAGE, k=3, stages=2, resolution=96, epochs=(3, 5, 3))


@pytest.fixture(scope="module")
def explanation(session, result):
    return explain(session.model(result.backbone).model, result)


def test_file_stems_say_what_and_how(session, result):
    assert file_stem("cat.jpg", "overlay", result) == "cat_overlay_ncut-k3-2stages"
    assert file_stem(None, "mask", result) == "deepcut_mask_ncut-k3-2stages"
    odd = file_stem("../my photos/é cat!.png", "sweep k/α", result)
    assert "/" not in odd and " " not in odd and odd.endswith("_ncut-k3-2stages") and odd.startswith("cat_sweep-k")
    cc = session.segment(IMAGE, loss="cc", alpha=2.5, refine="guided", resolution=96, epochs=(3, 5, 3))
    assert file_stem("cat.jpg", "overlay", cc) == "cat_overlay_cc-a2.5-1stage-guided"


def test_replay_gif_and_mp4_have_one_frame_per_snapshot_full_hd_wide(tmp_path, explanation):
    assert explanation.frames > 2
    gif = replay_gif(explanation, tmp_path / "replay", fps=4)
    assert gif.suffix == ".gif"
    with Image.open(gif) as im:
        assert im.n_frames == explanation.frames and im.width == REPLAY_WIDTH >= 1600  # a slide's width
        small = explanation.frame_picture(0)
        assert im.height == pytest.approx(REPLAY_WIDTH * small.height / small.width, abs=2)  # drawn, same aspect
    assert gif.stat().st_size < 15 * 1024 ** 2
    mp4 = replay_mp4(explanation, tmp_path / "replay.mp4", fps=4)
    with imageio.get_reader(mp4, "ffmpeg") as reader:
        frames = list(reader.iter_data())
    assert len(frames) == explanation.frames
    assert frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0 and frames[0].shape[1] >= REPLAY_WIDTH - 1


def test_the_replay_is_drawn_large_with_the_same_layout(explanation):
    small, large = explanation.frame_picture(1), explanation.frame_picture(1, width=1920)
    assert small.width == 900 and large.width == 1920
    assert large.height == pytest.approx(1920 * small.height / small.width, abs=2)
    back = np.asarray(large.resize(small.size, Image.Resampling.LANCZOS), np.float32)
    assert np.abs(back - np.asarray(small, np.float32)).mean() < 12  # the same figure, fonts scaled with it


def test_export_zip_holds_every_figure_as_a_slide(tmp_path, session, result, explanation):
    size = (960, 540)
    extra = {"sweep-k": sweep(session.model(result.backbone).model.store, result, "k", [2, 3]).figure()}
    path = export_zip(result, tmp_path, "disc.png", explanation, extra=extra, size=size)
    assert path.parent == tmp_path and path.name == "disc_slides_ncut-k3-2stages.zip"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        slides = {f"disc_{what}_ncut-k3-2stages.png" for what in
                  ("overlay", "mask", "cutout", "soft", "loss", "comparison", "pca", "sweep-k")}
        assert slides <= names
        assert {"README.txt", "disc_replay_ncut-k3-2stages.gif", "disc_result_ncut-k3-2stages_labels.png",
                "disc_result_ncut-k3-2stages.json"} <= names
        for name in slides:
            with Image.open(archive.open(name)) as im:
                assert im.size == size
        record = json.loads(archive.read("disc_result_ncut-k3-2stages.json"))
        assert record["num_segments"] == result.seg.num_segments
        with Image.open(archive.open("disc_result_ncut-k3-2stages_labels.png")) as im:
            assert np.array_equal(np.asarray(im), result.seg.labels)
        readme = archive.read("README.txt").decode()
        assert settings_line(result) in readme and all(n in readme for n in names - {"README.txt"})
    from deepcut.utils.manifest import MANIFEST_NAME

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, MANIFEST_NAME])  # no working files
    assert export_zip(result, tmp_path, "disc.png", explanation, extra=extra, size=size) == path  # its own: again
    other = tmp_path / "other"
    other.mkdir()
    (other / path.name).write_bytes(b"mine")  # a zip DeepCut did not write is never replaced
    with pytest.raises(ConfigError, match=path.name):
        export_zip(result, other, "disc.png", size=size)
    assert (other / path.name).read_bytes() == b"mine" and sorted(p.name for p in other.iterdir()) == [path.name]


def test_export_files_lists_each_file_then_the_zip_of_all(tmp_path, session, result, explanation):
    walk = Walkthrough(session.model(result.backbone).model, result, explanation)
    said: list[tuple[int, int, str]] = []
    files = export_files(result, tmp_path, "disc.png", explanation, walk=walk,
                         progress=lambda *a: said.append(a))  # the page's progress bar and the CLI's
    names = [p.name for p in files]
    assert names == export_names("disc.png", config_slug(result.seg.config, result.depth))
    total = said[0][1]  # one call per slide, the replay's drawing, the GIF and the MP4, then done
    assert [d for d, _, _ in said] == list(range(total + 1)) and {t for _, t, _ in said} == {total}
    assert said[0][2].startswith("slide 1 of ") and said[-1][2] == "done"
    assert [w for _, _, w in said[-4:-1]] == [f"drawing the training replay ({explanation.frames} frames)",
                                              "writing the replay as GIF", "writing the replay as MP4"]
    assert names[-1].endswith(".zip") and names[-1].startswith("disc_slides_")
    assert any(n.endswith(".mp4") for n in names) and any(n.endswith(".gif") for n in names)
    assert all(p.is_file() and p.parent == tmp_path for p in files)  # kept for the page's downloads
    for p in files:
        if p.suffix == ".png" and "_labels" not in p.name:
            assert Image.open(p).size == (1920, 1080), p.name
    with zipfile.ZipFile(files[-1]) as z:
        assert set(z.namelist()) == {"README.txt", *names[:-1]}
        readme = z.read("README.txt").decode()
    for i, step in enumerate(walk.steps, 1):  # every step's words in full, under its slide's name
        name = f"disc_step{i}-{WALK_FIGURES[i].split('-', 1)[1]}_ncut-k3-2stages.png"
        assert name in names and f"{name}:\n  {step.title}" in readme, name
        assert step.caption.replace("`", "").replace("**", "")[-40:] in readme
    assert "disc_affinity_ncut-k3-2stages.png:\n  Affinity of the patch at the centre of the foreground" in readme


def test_the_affinity_slide_shows_the_clicked_patch_and_says_whether_one_was_clicked(tmp_path, session, result,
                                                                                     explanation):
    model = session.model(result.backbone).model
    centre = Walkthrough(model, result, explanation)
    corner = Walkthrough(model, result, explanation, point=(3.0, 3.0))  # the visitor clicked the top-left patch
    slides = {}
    for name, walk in (("centre", centre), ("corner", corner)):
        files = export_files(result, tmp_path / name, "disc.png", explanation, walk=walk)
        path = next(p for p in files if p.name.startswith("disc_affinity_"))
        slides[name] = np.asarray(Image.open(path).convert("RGB"))
        readme = (tmp_path / name / "README.txt").read_text()
        which = "the patch you clicked" if name == "corner" else "the patch at the centre of the foreground (no "
        assert f"Affinity of {which}" in readme and walk.affinity_caption in readme
    band = 1080 - 3 * round(caption_font_size(1920) * 1.3) - caption_font_size(1920)
    assert not np.array_equal(slides["centre"][:band], slides["corner"][:band])  # another row of the graph drawn
    assert "(row 0, col 0)" in corner.affinity_caption and "(row 0, col 0)" not in centre.affinity_caption


def test_a_walkthrough_of_another_result_is_refused(tmp_path, session, result, explanation):
    other = session.segment(IMAGE, k=2, resolution=96, epochs=(3, 5, 3))
    walk = Walkthrough(session.model(other.backbone).model, other, explain(session.model(other.backbone).model, other))
    with pytest.raises(ConfigError, match="Walkthrough of this very result"):
        export_files(result, tmp_path, "disc.png", explanation, walk=walk)
    assert not any(tmp_path.iterdir())


# -- failure paths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, message", [
    ((0, 0), "out of range"), ((1, 1), "out of range"), ((-10, 100), "out of range"),
    ((20000, 20000), "out of range"), ((1920.5, 1080), "whole pixels"), ("big", "whole pixels"),
    ((1920,), "whole pixels"), (None, "whole pixels"), ((True, 1080), "whole pixels"),
])
def test_slide_sizes_are_checked_with_their_limits_in_the_message(size, message):
    from deepcut import ConfigError
    from deepcut.render.slides import MAX_SLIDE_SIDE, MIN_SLIDE_SIDE, check_slide_size

    with pytest.raises(ConfigError, match=message) as caught:
        slide(Image.new("RGB", (10, 10)), "x", size=size)
    assert f"between {MIN_SLIDE_SIDE} and {MAX_SLIDE_SIDE} px" in str(caught.value)
    assert check_slide_size((MIN_SLIDE_SIDE, np.int64(MAX_SLIDE_SIDE))) == (MIN_SLIDE_SIDE, MAX_SLIDE_SIDE)


def test_slide_sizes_and_extras_are_checked_before_any_file_is_written(tmp_path, result):
    from deepcut import ConfigError
    from deepcut.lessons.slides import write_slides

    with pytest.raises(ConfigError, match="out of range"):
        write_slides(result, tmp_path / "a", "disc.png", size=(20000, 20000))
    with pytest.raises(ConfigError, match="out of range"):
        export_zip(result, tmp_path / "b", "disc.png", size=(0, 0))
    with pytest.raises(ConfigError, match="extra slide 'x' must be a PIL image or a matplotlib figure"):
        write_slides(result, tmp_path / "c", "disc.png", extra={"x": 12})
    pic = Image.new("RGB", (20, 20))
    with pytest.raises(ConfigError, match="same file"):  # both would be disc_my-fig_….png
        write_slides(result, tmp_path / "d", "disc.png", extra={"my fig": pic, "my_fig": pic})
    with pytest.raises(ConfigError, match="same file"):  # nor an extra silently replacing a figure
        write_slides(result, tmp_path / "e", "disc.png", extra={"overlay": pic})
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_slides_never_replace_a_file_deepcut_did_not_write(tmp_path, result):
    from deepcut import ConfigError
    from deepcut.lessons.slides import write_slides

    (tmp_path / "README.txt").write_text("my notes")
    with pytest.raises(ConfigError, match="holds README.txt.*DeepCut did not write"):
        write_slides(result, tmp_path, "disc.png")
    assert (tmp_path / "README.txt").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.txt"]
    (tmp_path / "README.txt").unlink()
    first = write_slides(result, tmp_path, "disc.png", size=(480, 320))
    again = write_slides(result, tmp_path, "disc.png", size=(480, 320))  # DeepCut's own files are replaced
    assert [p.name for p in first] == [p.name for p in again]
    overlay = tmp_path / "disc_overlay_ncut-k3-2stages.png"
    overlay.write_bytes(b"edited by the user")  # changed since: no longer DeepCut's
    with pytest.raises(ConfigError, match="disc_overlay_ncut-k3-2stages.png"):
        write_slides(result, tmp_path, "disc.png", size=(480, 320))
    assert overlay.read_bytes() == b"edited by the user"
    zip_name = "disc_slides_ncut-k3-2stages.zip"
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / zip_name).write_bytes(b"mine")
    with pytest.raises(ConfigError, match=zip_name):
        export_files(result, tmp_path / "z", "disc.png")
    assert (tmp_path / "z" / zip_name).read_bytes() == b"mine"


def test_slides_into_a_path_that_is_a_file_is_a_clear_error(tmp_path, result):
    from deepcut import ConfigError
    from deepcut.lessons.slides import write_slides

    (tmp_path / "f").write_text("x")
    for call in (lambda: write_slides(result, tmp_path / "f", "disc.png"),
                 lambda: export_zip(result, tmp_path / "f", "disc.png"),
                 lambda: export_files(result, tmp_path / "f", "disc.png")):
        with pytest.raises(ConfigError, match="it is a file, not a folder"):
            call()
