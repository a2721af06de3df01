"""The caps a server states hold against a client that is not the page (deepcut/demo/live_gate.py and
deepcut/demo/traffic.py): live frames per second per visitor, quiet streams ended, one stream per visitor,
and images sent inline as ``data:`` URLs counted as uploads.

The rules alone (a real event loop, no server), the upload guard in front of a small ASGI app, then a real
``app.py --public`` over HTTP with :class:`live_client.LiveClient`, which posts frames itself."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request

import pytest
from app_server import app_server
from live_client import LiveClient, file_data, frame_url, post

from deepcut.demo.live_gate import StreamGate, Superseded
from deepcut.demo.traffic import UploadGuard, UploadPolicy, inline_images


# -- the rules alone ---------------------------------------------------------------------------------------
def test_frames_beyond_the_rate_are_refused_per_visitor():
    gate = StreamGate(fps=2.0, burst=2.0)
    assert gate.admit("a", 0.0) is None and gate.admit("a", 0.0) is None  # the burst
    retry = gate.admit("a", 0.0)
    assert retry is not None and 0.4 < retry <= 0.5  # one frame every half second
    assert gate.admit("b", 0.0) is None  # another visitor has their own rate
    taken = sum(gate.admit("c", i / 26) is None for i in range(260))  # 26 frames/s for 10 s
    assert 20 <= taken <= 22  # 2 frames/s, plus the burst
    assert gate.refused == 1 + 260 - taken


def test_a_stream_is_never_quiet_while_it_works_and_ends_after_its_seconds():
    gate = StreamGate(fps=2.0, seconds=60.0)
    assert gate.quiet == 3.0  # three frame intervals or 3 s
    assert StreamGate(fps=0.5).quiet == 6.0
    with gate.frame("v", "e1"):
        assert gate.due(time.monotonic() + 30) == []  # busy: a slow frame is not quiet
    now = time.monotonic()
    assert gate.due(now + 1) == []
    assert gate.due(now + 3.5) == [("e1", "quiet")]
    gate.posted("e1", now + 3.0)  # a frame arrived: alive again
    assert gate.due(now + 3.5) == []
    assert gate.due(now + 61) == [("e1", "time")]
    with pytest.raises(ValueError, match="fps"):
        StreamGate(fps=0)


def test_a_newer_stream_ends_the_older_at_once_and_a_quiet_one_within_seconds():
    """On a real event loop in another thread, as on a server: the first frame of a visitor's newer stream
    ends the older stream at once; a stream with no frame is ended by the watch."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    ended: dict[str, float] = {}

    def end(event: str) -> bool:
        ended[event] = time.monotonic()
        return True
    gate = StreamGate(fps=2.0, quiet=1.0)
    asyncio.run_coroutine_threadsafe(_bind(gate, loop, end), loop).result(5)
    try:
        with gate.frame("v", "old"):
            pass
        with gate.frame("w", "other"):
            pass
        started = time.monotonic()
        with gate.frame("v", "new"):
            deadline = time.monotonic() + 2
            while "old" not in ended and time.monotonic() < deadline:
                time.sleep(0.01)
            assert "old" in ended and ended["old"] - started < 0.5  # at once, not at its next frame
        assert "other" not in ended or ended["other"] - started > 0.5  # another visitor's: only when quiet
        deadline = time.monotonic() + 3
        while not {"new", "other"} <= set(ended) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {"new", "other"} <= set(ended)  # quiet for 1 s: ended by the watch
        assert gate.running() == [] and gate.ended == {"newer": 1, "quiet": 2, "time": 0}
    finally:
        gate.unbind()
        time.sleep(0.1)
        loop.call_soon_threadsafe(loop.stop)


def test_the_stream_that_joined_last_wins_whichever_is_worked_on_first():
    """Two streams of one visitor joined together run on two workers in either order: the one that joined the
    queue later is the newer, so an older stream worked on second is refused instead of ending the newer."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    ended: list[str] = []
    gate = StreamGate(fps=2.0)
    asyncio.run_coroutine_threadsafe(_bind(gate, loop, lambda e: ended.append(e) or True), loop).result(5)
    try:
        with gate.frame("v", "new", joined=2.0):
            pass
        with pytest.raises(Superseded), gate.frame("v", "old", joined=1.0):
            pytest.fail("an older stream was worked on")
        with gate.frame("w", "other", joined=1.0):  # another visitor's older join: theirs alone
            pass
        time.sleep(0.2)
        assert ended == [] and sorted(gate.running()) == ["new", "other"]
        with gate.frame("v", "newest", joined=3.0):
            pass
        time.sleep(0.2)
        assert ended == ["new"] and gate.ended["newer"] == 1
    finally:
        gate.unbind()
        time.sleep(0.1)
        loop.call_soon_threadsafe(loop.stop)


async def _bind(gate: StreamGate, loop, end) -> None:
    gate.bind(loop, end)


# -- inline images through the upload guard ------------------------------------------------------------------
def test_inline_images_are_counted_from_the_json_body():
    url = frame_url(1)
    body = json.dumps({"data": [file_data(url), {"nested": [file_data(url)]}, "data:not-a-file"]}).encode()
    files, size = inline_images(body)
    assert files == 2 and abs(size - 2 * len(url.split(",")[1]) * 3 // 4) <= 2
    assert inline_images(b'{"data": [1, 2]}') == (0, 0)
    assert inline_images(b"data: not json") == (0, 0)
    assert inline_images(b"[" * 100_000 + b'"data:x"' + b"]" * 100_000) == (0, 0)  # too deep for json: not JSON


class _Reached:
    """The app behind the guard: counts the requests that reach it and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def _ask(guard, path: str, body: bytes, visitor: str) -> int:
    httpx = pytest.importorskip("httpx")

    async def go() -> int:
        transport = httpx.ASGITransport(app=guard, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.post(path, content=body, headers={"X-Forwarded-For": visitor,
                                                                 "Content-Type": "application/json"})
            return r.status_code
    return asyncio.run(go())


def test_inline_images_count_against_the_visitor_and_folder_caps(tmp_path):
    reached = _Reached()
    guard = UploadGuard(reached, UploadPolicy(visitor_files=3, disk_files=5), folder=str(tmp_path), rescan=0.0,
                        streams=StreamGate(fps=2.0))
    one = json.dumps({"data": [file_data(frame_url(0))]}).encode()
    two = json.dumps({"data": [file_data(frame_url(0)), file_data(frame_url(1))]}).encode()
    plain = json.dumps({"data": [1, "text"]}).encode()
    assert _ask(guard, "/gradio_api/queue/join", two, "1.1.1.1") == 200
    assert _ask(guard, "/gradio_api/call/segment", one, "1.1.1.1") == 200  # 3 files: the cap
    assert _ask(guard, "/gradio_api/run/segment", one, "1.1.1.1") == 429  # a 4th: refused, not passed on
    assert _ask(guard, "/gradio_api/queue/join", plain, "1.1.1.1") == 200  # no image: not an upload
    assert _ask(guard, "/gradio_api/call/v2/segment", one, "2.2.2.2") == 200  # another visitor
    assert len(reached.bodies) == 4 and reached.bodies[0] == two  # passed on unchanged
    for i in range(5):  # the temporary folder is full
        (tmp_path / f"{i}.png").write_bytes(b"x")
    assert _ask(guard, "/gradio_api/queue/join", one, "3.3.3.3") == 429
    assert _ask(guard, "/gradio_api/stream/e1", one, "3.3.3.3") == 429  # stream frames too
    assert _ask(guard, "/gradio_api/queue/join", plain, "3.3.3.3") == 200
    for i in range(5):
        (tmp_path / f"{i}.png").unlink()
    codes = [_ask(guard, "/gradio_api/stream/e2", one, "4.4.4.4") for _ in range(6)]  # frames: the live rate
    assert codes[:2] == [200, 200] and 429 in codes[2:]
    assert _ask(guard, "/gradio_api/stream/e2/close", b"{}", "4.4.4.4") == 200  # closing is never refused


# -- a real public server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    return app_server(public=True)


@pytest.mark.server
def test_a_client_posting_frames_itself_is_held_to_the_fps_cap(server):
    live = LiveClient(server["url"], "203.0.113.60")
    assert live.start()[0] == 200
    codes, start = [], time.monotonic()
    i = 1
    while time.monotonic() - start < 5.0:  # 20 frames per second for 5 s; the cap is 2
        codes.append(live.send(i))
        i += 1
        time.sleep(0.05)
    time.sleep(1.0)
    answered = live.count("process_streaming")
    assert codes.count(429) >= len(codes) // 2  # most frames refused at once
    assert 4 <= answered <= 1 + 2 + 2 * 6  # the first, the burst, 2 per second (and a second of slack)


@pytest.mark.server
def test_quiet_streams_free_their_workers_within_seconds(server):
    """Two visitors each open a stream, send one frame and then nothing: both public workers are theirs until
    the server ends the quiet streams (it used to wait for the stream's 60 s)."""
    from conftest import disc_image
    from PIL import Image
    from test_public import call, data_url  # the public API's own helpers

    quiet = [LiveClient(server["url"], f"203.0.113.{n}") for n in (61, 62)]
    for live in quiet:
        assert live.start()[0] == 200
    for live in quiet:
        ended = live.wait_ended(10.0)
        answered = max(t for t, kind in live.messages if kind == "process_streaming")  # then quiet
        assert ended is not None and ended - answered < 5.0
    began = time.monotonic()
    status, text = call(server, "segment", data_url(Image.fromarray(disc_image(64))))
    assert status == 200 and "event: complete" in text and time.monotonic() - began < 20


@pytest.mark.server
def test_a_visitors_newer_stream_ends_the_older_at_once(server):
    older, newer = LiveClient(server["url"], "203.0.113.63"), LiveClient(server["url"], "203.0.113.63")
    assert older.start()[0] == 200
    deadline = time.monotonic() + 10
    while older.count("process_streaming") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert older.send(1) in (200, 429)
    started = time.monotonic()
    assert newer.start()[0] == 200
    ended = older.wait_ended(5.0)
    assert ended is not None and ended - started < 2.0  # at once (its first frame), not at the quiet limit
    assert newer.ended_at() is None and newer.send(2) in (200, 429)


@pytest.mark.server
def test_inline_images_count_against_a_visitors_upload_cap_over_http(server):
    """``DEEPCUT_VISITOR_FILES=40``: 40 images as ``data:`` URLs from one visitor in a minute are taken,
    the 41st is refused before Gradio reads it (any route that takes a body with images counts)."""
    body = json.dumps({"data": [file_data(frame_url(0))]}).encode()
    headers = {"X-Forwarded-For": "203.0.113.64"}
    codes = [post(server["url"] + "gradio_api/run/no_such_api", body, headers)[0] for _ in range(40)]
    assert 429 not in codes
    status, text = post(server["url"] + "gradio_api/call/segment", body, headers)
    assert status == 429 and "Too many uploads" in text


@pytest.mark.server
@pytest.mark.parametrize("url", ["data:image/png;base64,AAAA", "data:image/png;base64,%%%not-base64",
                                 "data:,", "data:image/png;base64," + "iVBORw0KGgo" * 3])
def test_a_live_frame_that_is_not_a_picture_gets_a_named_error(server, url):
    live = LiveClient(server["url"], "203.0.113.65")
    body = json.loads(live.body(0))
    body["data"][live.inputs.index(live.camera)] = file_data(url)
    status, text = post(server["url"] + "gradio_api/queue/join", json.dumps(body).encode(),
                             {"X-Forwarded-For": "203.0.113.65"})
    assert status == 200
    event = json.loads(text)["event_id"]
    with urllib.request.urlopen(server["url"] + f"gradio_api/queue/data?session_hash={live.session}",
                                timeout=60) as r:
        for line in r:
            text = line.decode().strip()
            if text.startswith("data:") and '"process_completed"' in text:
                message = json.loads(text[5:])
                break
    assert message["event_id"] == event and message["success"] is False
    error = message["output"]["error"]
    assert error and ("Camera: could not read" in error or "Could not read this file" in error), error
