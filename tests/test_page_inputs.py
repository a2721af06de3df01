"""Values the page never sends, sent anyway: every one gets a one-line message naming the control
(deepcut/demo/guards.py ``readable_inputs``), never Gradio's empty error or "Something went wrong".

The inputs' checks on their own, then a real ``app.py --public`` over HTTP, with ``gradio_client`` and raw
JSON (``NaN`` and ``Infinity``, which ``gradio_client`` cannot send)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from app_server import app_server
from conftest import disc_image
from PIL import Image

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from deepcut.demo.errors import DemoError  # noqa: E402
from deepcut.demo.guards import readable_inputs  # noqa: E402
from deepcut.demo.handlers import as_message, click_point  # noqa: E402
from deepcut.demo.layout import figure_text  # noqa: E402
from deepcut.demo.lesson_view import parse_values  # noqa: E402
from deepcut.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def controls():
    with gr.Blocks() as demo:
        k = gr.Slider(1, 10, value=2, step=1, label="Number of clusters k")
        opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity")
        scale = gr.Number(value=1.0, label="text scale")
        loss = gr.Dropdown(["ncut", "cc"], value="ncut", label="Loss")
    readable_inputs(demo)
    readable_inputs(demo)  # idempotent: wrapped once
    return k, opacity, scale, loss


@pytest.mark.parametrize("value, message", [
    ("x", "Number of clusters k must be a number, got 'x'"), (None, "Number of clusters k: a number is needed"),
    (float("nan"), "must be a finite number"), (float("inf"), "must be a finite number"),
    ("-inf", "must be a finite number"), (11, "Number of clusters k: 11 is above the maximum, 10"),
    (0, "Number of clusters k: 0 is below the minimum, 1"), (2.5, "takes whole numbers, got 2.5"),
    (True, "must be a number"), ([3], "must be a number, got [3]"), ({"a": 1}, "must be a number")])
def test_a_slider_refuses_what_it_cannot_read_naming_itself(controls, value, message):
    k = controls[0]
    with pytest.raises(gr.Error) as info:
        k.preprocess(value)
    assert message in info.value.message and "\n" not in info.value.message


def test_good_values_still_pass(controls):
    k, opacity, scale, loss = controls
    assert k.preprocess(3) == 3 and k.preprocess("4") == 4 and k.preprocess(5.0) == 5
    assert opacity.preprocess(0.35) == pytest.approx(0.35)
    assert scale.preprocess(None) is None and scale.preprocess(2) == 2
    with pytest.raises(gr.Error, match="text scale must be a finite number"):
        scale.preprocess(float("nan"))
    assert loss.preprocess("cc") == "cc"
    with pytest.raises(gr.Error, match="not in the list of choices"):
        loss.preprocess("zzz")
    assert getattr(k.preprocess, "readable", False)


def test_page_values_that_reach_the_handlers_are_checked_there():
    for text in ("inf", "2, nan", "-inf 3", "1e999"):
        with pytest.raises(DemoError, match="finite numbers"):
            parse_values(text, "k")
    assert parse_values("2, 3 4", "k") == [2, 3, 4] and parse_values("", "k") is None
    for index in (["x", 3], [float("nan"), 1], [1], None, "ab", [None, None]):
        assert click_point(index) is None
    assert click_point([3, "4.5"]) == (3.0, 4.5)
    assert figure_text(float("nan")) == 1.0 and figure_text(float("inf")) == 1.0 and figure_text(2) == 2.0


def test_a_library_error_is_shown_as_its_message():
    """``opacity=NaN`` reached the library, whose clear ConfigError the page turned into "Something went
    wrong"; a library error is the visitor's message now (an unexpected one still is not)."""
    assert as_message(ConfigError("opacity must be between 0 and 1, got nan")).message == \
        "opacity must be between 0 and 1, got nan"
    assert "Something went wrong (KeyError)" in as_message(KeyError("x")).message


# -- over HTTP ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    return app_server(public=True)


@pytest.fixture(scope="module")
def disc_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "disc.png"
    Image.fromarray(disc_image(64)).save(path)
    return path


@pytest.mark.server
@pytest.mark.parametrize("kwargs, message", [
    (dict(k="x"), "Number of clusters k must be a number, got 'x'"),
    (dict(k=None), "Number of clusters k: a number is needed"),
    (dict(k=2.5), "Number of clusters k takes whole numbers, got 2.5"),
    (dict(ep1="many"), "Epochs, stage 1 must be a number"),
    (dict(resolution=-5), "Resolution (px): -5 is below the minimum, 64"),
    (dict(opacity="half"), "Overlay opacity must be a number")])
def test_the_api_names_the_control_and_the_value(server, disc_png, kwargs, message):
    client = Client(server["url"], verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(disc_png)), api_name="/segment", **kwargs)
    assert message in str(info.value)


def _raw_segment(server, replace: dict[str, str]) -> str:
    """``/gradio_api/call/segment`` with JSON written by hand (``replace``: parameter -> JSON text, e.g.
    ``NaN``); the answer's event stream."""
    with urllib.request.urlopen(f"{server['url']}gradio_api/info", timeout=10) as r:
        params = json.loads(r.read())["named_endpoints"]["/segment"]["parameters"]
    values = []
    for p in params:
        if p["parameter_name"] in replace:
            values.append(replace[p["parameter_name"]])
        elif p["parameter_name"] == "image":
            values.append(json.dumps({"path": None, "url": _data_url(), "meta": {"_type": "gradio.FileData"}}))
        else:
            values.append(json.dumps(p.get("parameter_default")))
    body = ('{"data": [' + ", ".join(values) + "]}").encode()
    req = urllib.request.Request(f"{server['url']}gradio_api/call/segment", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        event = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{server['url']}gradio_api/call/segment/{event}", timeout=60) as r:
        return r.read().decode()


def _data_url() -> str:
    import base64
    import io

    buf = io.BytesIO()
    Image.fromarray(disc_image(64)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.server
@pytest.mark.parametrize("name, text", [("opacity", "NaN"), ("k", "Infinity"), ("seed", "-Infinity"),
                                         ("alpha", "NaN")])
def test_nan_and_infinity_in_raw_json_are_named(server, name, text):
    answer = _raw_segment(server, {name: text})
    assert "event: error" in answer and "must be a finite number" in answer, answer[-400:]
    assert "Something went wrong" not in answer


# -- in the browser -------------------------------------------------------------------------------------------
@pytest.mark.browser
def test_the_page_shows_a_sweep_of_inf_and_nan_as_one_named_error(browser):
    """Typed on the page: the error toast says what is wrong, with the value; no "Something went wrong"."""
    from test_lesson_browser import open_page, tap_example

    page = open_page(browser, 1400, 900)
    try:
        tap_example(page)
        page.locator("#sweep-values textarea").fill("inf, nan")
        page.locator("#sweep-btn").click()
        toast = page.locator("[data-testid='toast-body']").first
        toast.wait_for()
        text = toast.inner_text()
        assert "finite numbers" in text and "inf, nan" in text and "Something went wrong" not in text, text
        assert toast.is_visible()
    finally:
        page.close()
