"""The Live tab in a real browser with a fake camera: Chromium plays ``assets/cat_pan.mp4`` (made into a
``.y4m`` here with imageio-ffmpeg) as its webcam; the test starts the stream, checks that segmented frames
come back with stable labels, and that stopping the camera stops the server's work.
Set ``DEEPCUT_SCREENSHOT_DIR=folder`` to keep screenshots."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from app_server import CHROMIUM, CHROMIUM_ARGS, REPO, app_server
from PIL import Image

from deepcut.evaluation.metrics import consistency
from deepcut.segmentation.colors import label_colors

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./dev installs it)")]

ARGS = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def overlay_labels(page, base_url: str) -> np.ndarray | None:
    """The live overlay's current picture as a label map: each pixel's nearest label colour (opacity 1)."""
    src = page.locator("#live-overlay img").first.get_attribute("src") if page.locator("#live-overlay img").count() \
        else None
    if not src:
        return None
    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        with urllib.request.urlopen(src if src.startswith("http") else base_url.rstrip("/") + src, timeout=10) as r:
            data = r.read()
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int32)
    palette = label_colors(8).astype(np.int32)
    dist = ((rgb[:, :, None, :] - palette[None, None]) ** 2).sum(-1)
    return dist.argmin(-1)


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> Path:
    y4m = tmp_path_factory.mktemp("camera") / "cat_pan.y4m"
    video = REPO / "assets" / "cat_pan.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video), "-vf",
                    "scale=320:-2", "-pix_fmt", "yuv420p", str(y4m)], check=True, timeout=120)
    return y4m


def test_live_tab_segments_a_fake_camera_with_stable_labels_and_stops(camera, tmp_path):
    server = app_server()
    shots = Path(os.environ.get("DEEPCUT_SCREENSHOT_DIR", tmp_path))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=[*ARGS, f"--use-file-for-fake-video-capture={camera}"])
        page = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"]).new_page()
        page.set_default_timeout(90_000)
        page.goto(server["url"], wait_until="load")
        names = ["Image", "Video", "Co-segmentation", "Live"]
        for name in names[1:]:  # the tab list stays the same whatever tab is open (it lost Live once)
            page.get_by_role("tab", name=name).click()
            tabs = page.get_by_role("tab")
            assert [tabs.nth(i).inner_text() for i in range(tabs.count())] == names
        opacity = page.locator("#live-opacity input[type=number]")
        opacity.fill("1")  # label colours alone, to read the label maps back
        opacity.press("Enter")
        page.get_by_text("Click to Access Webcam").click()
        page.get_by_role("button", name="capture photo").click()  # Gradio's "Record" button
        page.wait_for_function("document.querySelector('#live-status').innerText.includes('frames/s')")
        maps, first = [], time.monotonic()
        while len(maps) < 8 and time.monotonic() - first < 60:
            labels = overlay_labels(page, server["url"])
            if labels is not None and (not maps or labels.shape != maps[-1].shape or (labels != maps[-1]).any()):
                maps.append(labels)
            time.sleep(0.4)
        status = page.locator("#live-status").inner_text()
        opacity.fill("0.5")  # the picture for the docs: the frame under its parts
        opacity.press("Enter")
        page.wait_for_timeout(2500)
        page.screenshot(path=str(shots / "live_tab.png"))
        frames_seen = int(status.rsplit("frame", 1)[1].split()[0])
        assert frames_seen >= 5 and "ms per frame" in status and "segment" in status
        # the page's backbone (the test server's is the colour one, after its fallback), named, with no warning
        # on every frame about weights the Live tab had asked for itself
        assert "Same as the page" in page.locator("#live-backbone").inner_text() or \
            page.locator("#live-backbone input").input_value().startswith("Same as the page")
        assert "`color`" not in status and "color at 224 px" in status and "weights" not in status, status
        assert len(maps) >= 5 and all(m.shape == maps[0].shape for m in maps)
        assert consistency(maps) >= 0.8  # the parts keep their colours while the camera pans

        busy0 = cpu_seconds(server["proc"].pid)
        time.sleep(3)
        busy = cpu_seconds(server["proc"].pid) - busy0
        page.locator("#live-camera button", has_text="Stop").click()  # the same button, now "Stop"
        time.sleep(2)  # the stream's last frame may still finish
        idle0 = cpu_seconds(server["proc"].pid)
        time.sleep(3)
        idle = cpu_seconds(server["proc"].pid) - idle0
        after = page.locator("#live-status").inner_text()
        time.sleep(1.5)
        assert page.locator("#live-status").inner_text() == after  # no more frames come back
        assert idle < 0.5 * busy and idle < 0.6, (busy, idle)  # stopping stopped the server's work
        # the status read as live after the stop (frames/s, frame N); it now says it stopped, until Record again
        said = page.evaluate("getComputedStyle(document.querySelector('#live-status'), '::before').content")
        assert "Stopped: press Record to go on" in said, said
        page.get_by_role("button", name="capture photo").click()
        page.wait_for_function("!document.body.classList.contains('live-stopped')")
        browser.close()


def test_without_a_camera_the_live_tab_says_why(tmp_path):
    """Without a camera, *Click to Access Webcam* did nothing visible: Gradio's webcam shows no error. The page
    now asks the browser and says what it answered."""
    server = app_server()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=[*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream"])  # no camera device
        page = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"]).new_page()
        page.set_default_timeout(60_000)
        page.goto(server["url"], wait_until="load")
        page.get_by_role("tab", name="Live").click()
        page.get_by_text("Click to Access Webcam").click()
        note = page.locator("#live-camera-note")
        note.wait_for()
        assert note.inner_text() == "No camera was found: connect one, then click again."
        assert note.is_visible()
        browser.close()
