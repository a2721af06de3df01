"""Shared fixtures: synthetic images with known segments, and the path to the shared data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["DEEPCUT_TUNE"] = "0"  # "auto" precision by the rule, never measured (a test that measures says so)

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under pytest only (the benchmarks import this module too): the GNN's products "auto", which
    DEEPCUT_TUNE=0 keeps fp32, whatever the developer's shell pins."""
    os.environ.pop("DEEPCUT_GNN_PRECISION", None)


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository (override with ``DEEPCUT_DATA``)."""
    return Path(os.environ.get("DEEPCUT_DATA", REPO.parent / "shared" / "data"))


def process_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, from /proc (the label tests and the fuzz
    check with it that a killed run leaves no worker behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def disc_image(size: int = 160, two_tone: bool = False, blob: bool = False, striped_bg: bool = False) -> np.ndarray:
    """A red disc (radius 0.3·size) centred on a blue background: ``(size, size, 3)`` uint8.

    two_tone: the disc's left half is yellow; blob: a small separate red square near a corner;
    striped_bg: the lower half of the background is a purplish blue (a second, similar background colour).
    """
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (40, 60, 200)
    if striped_bg:
        img[size // 2:] = (90, 60, 200)
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.3 * size) ** 2
    img[disc] = (220, 30, 30)
    if two_tone:
        img[disc & (xx < size / 2)] = (240, 220, 40)
    if blob:
        s = size // 10
        img[s:2 * s, s:2 * s] = (220, 30, 30)
    return img


BLUE, RED, YELLOW = (40, 60, 200), (220, 30, 30), (240, 220, 40)


def disc_frame(width: int, height: int, cx: float, cy: float, r: float, two_tone: bool = True) -> np.ndarray:
    """A red disc (left half yellow when ``two_tone``) at ``(cx, cy)`` on blue: ``(height, width, 3)`` uint8."""
    yy, xx = np.mgrid[:height, :width]
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BLUE
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    img[disc] = RED
    if two_tone:
        img[disc & (xx < cx)] = YELLOW
    return img


def moving_disc(n: int = 10, width: int = 96, height: int = 72, two_tone: bool = True) -> list[np.ndarray]:
    """``n`` frames of a disc moving from left to right."""
    return [disc_frame(width, height, 30 + 36 * i / max(n - 1, 1), height / 2, 20, two_tone) for i in range(n)]


def voronoi_scene(k: int, seed: int, side: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """A planted ``k``-way partition: ``(image (side, side, 3) uint8, cell of each 8-px patch
    (side/8, side/8))`` for ``k`` Voronoi cells of random colours, plus noise."""
    rng = np.random.default_rng(seed)
    centres, colours = rng.uniform(0, side, (k, 2)), rng.uniform(0, 255, (k, 3))
    yy, xx = np.mgrid[:side, :side]
    cell = ((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2).argmin(-1)
    image = np.clip(colours[cell] + rng.normal(0, 12, (side, side, 3)), 0, 255).astype(np.uint8)
    return image, cell[4::8, 4::8]


def disc_mask(size: int = 160) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.3 * size) ** 2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="session")
def color_model():
    from deepcut import DeepCut

    return DeepCut("color")


@pytest.fixture(scope="session")
def vit_model():
    from deepcut import DeepCut

    return DeepCut("dino_vits8", pretrained=False, precision="fp32")  # the exact reference (tests compare to it)


def segment_requests(page, action, settle_ms: int = 2500) -> list[list]:
    """The ``data`` of every segmentation request (the image first) that ``action()`` sends from the Playwright
    ``page``, within ``settle_ms`` after it."""
    sent: list[list] = []

    def record(request):
        if "queue/join" in request.url and request.post_data:
            data = json.loads(request.post_data).get("data")
            if isinstance(data, list) and data and isinstance(data[0], dict) and "path" in data[0]:
                sent.append(data)

    page.on("request", record)
    try:
        action()
        page.wait_for_timeout(settle_ms)
    finally:
        page.remove_listener("request", record)
    return sent


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium (Playwright) for the page of the test server (``tests/app_server.py``, started
    on first use): the browser, with the page's address as ``browser.url``; closed after the module."""
    from app_server import CHROMIUM, CHROMIUM_ARGS, app_server

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (./dev installs it)")
    server = app_server()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        b.url = server["url"]
        yield b
        b.close()
