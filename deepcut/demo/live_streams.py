"""The Live tab's logic: a visitor's webcam frames through :meth:`deepcut.DeepCut.live`, one stream each.

Gradio's streaming input keeps only the newest frame while the server works on one (a frame that
arrives meanwhile replaces the one waiting), so nothing queues up behind a slow frame; when the visitor
stops the camera or leaves, Gradio closes the stream and no frame is computed any more. What this
module adds:

* one :class:`~deepcut.tasks.video.LiveSession` per stream, kept in the page's state: the parts keep their labels
  and colours while the camera moves; a change of backbone or setting starts new tracks;
* one live stream per visitor (client address): a newer stream (one that joined the server's queue later)
  ends the older one at once, whichever of the two is worked on first;
* the server's caps: the settings clamped like any request, NCut's exactly-k rule within the epoch cap, frames
  downscaled to the upload side; the seconds per stream and the frame rate
  (:attr:`~deepcut.demo.limits.Limits.live_seconds`, ``live_fps``) are the page's event settings and are held
  by the server whatever the client does (:attr:`LiveStreams.gate`, a
  :class:`~deepcut.demo.live_gate.StreamGate`: frames beyond the rate refused, quiet streams ended).
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..clustering.fit import fit
from ..config import SegmentConfig
from ..errors import DeepCutError
from ..tasks.video.live import LIVE_RESOLUTION, LiveSession
from .errors import DemoError
from .live_gate import StreamGate, Superseded
from .results import plural, with_notices
from .session import DemoSession
from .settings import COMPACT_TOP, backbone_resolution, build_config
from .uploads import downscale
from .visitors import client_address

#: The Live tab's backbone choice meaning "the page's backbone" (the page-wide *Backbone*, own weights included).
SAME_AS_PAGE = ""

#: The error of a stream ended by a newer one of the same visitor.
ENDED_BY_NEWER = "This live stream was ended: a newer one from your address is running (one at a time)."


@dataclass
class LiveState:
    """One visitor's stream, as the page's state holds it.

    Attributes:
        live: the library's session (tracks, fps, latency).
        key: the backbone used and the settings.
        requested: the backbone the visitor chose (another choice or setting starts a new session).
        stream: this stream's number (a visitor's newer stream ends an older one).
        notices: what the visitor should know about every frame (fallback, clamped settings).
    """

    live: LiveSession
    key: tuple[str, SegmentConfig]
    requested: str
    stream: int
    notices: list[str]


class LiveStreams:
    """Runs the Live tab's frames over the shared :class:`DemoSession` (thread safe).

    Args:
        session: the demo's session (models, limits, upload side).

    Attributes:
        gate: the server's live rules (frame rate per visitor, one stream each, quiet streams ended); the
            server binds it to its queue (:func:`deepcut.demo.guards.app_kwargs`).
    """

    def __init__(self, session: DemoSession) -> None:
        self.session = session
        limits = session.limits
        self.gate = StreamGate(fps=limits.live_fps, seconds=limits.live_seconds)
        self._lock = threading.Lock()
        self._newest: dict[str, tuple[float, int]] = {}  # visitor -> (when it joined, number) of their newest
        self._ids = itertools.count(1)
        self.frames = 0  # every frame segmented, all streams together

    def default_backbone(self) -> str:
        """The backbone of a stream that names none (an API call, not the page): the session's default."""
        return self.session.default_backbone

    def resolution(self, backbone: str | None = None) -> int | None:
        """The Live tab's resolution for ``backbone`` (None: the default): :data:`LIVE_RESOLUTION` scaled to the
        backbone's grid (:func:`~deepcut.demo.settings.backbone_resolution`: 360 px for DINOv3's 16-px patches),
        within the live slider and the server's cap; None where it cannot be loaded (the stream says why)."""
        try:
            model = self.session.model(backbone or self.default_backbone()).model
        except DemoError:
            return None
        return backbone_resolution(LIVE_RESOLUTION, int(model.backbone.default_resolution), COMPACT_TOP,
                                   self.session.limits.max_resolution)

    def start(self, visitor: str, backbone: str | None, settings: dict[str, Any],
              joined: float | None = None) -> LiveState:
        """A new stream for ``visitor`` (ending their older one) with ``settings`` (config fields); ``joined``:
        when it joined the server's queue (:func:`time.monotonic`; ``None``: now).

        Raises:
            DemoError: a stream of ``visitor`` that joined later has started already (this one is over).
        """
        joined = time.monotonic() if joined is None else joined
        limits, notices = self.session.limits, []
        requested = backbone or self.default_backbone()
        model, used, notice = self.session.model(requested)
        if notice:
            notices.append(notice)
        settings = limits.clamp(settings, notices)
        config = build_config(settings, int(model.backbone.depth), used, notices)
        clusterer = fit if limits.max_epochs is None else functools.partial(fit, max_epochs=limits.max_epochs)
        live = LiveSession(model.store, config, clusterer=clusterer)
        with self._lock:
            newest = self._newest.get(visitor)
            if newest is not None and newest[0] > joined:
                raise DemoError(ENDED_BY_NEWER)
            stream = next(self._ids)
            self._newest[visitor] = (joined, stream)
        return LiveState(live, (used, config), requested, stream, notices)

    def step(self, frame: np.ndarray | None, state: LiveState | None, visitor: str, backbone: str | None,
             opacity: float = 0.5, event: str | None = None, joined: float | None = None,
             **settings: Any) -> tuple[Image.Image | None, str, LiveState | None]:
        """One webcam frame ``(H, W, 3)``: ``(overlay, status markdown, state)``; ``event``: the server's id of
        this stream and ``joined`` when it joined the queue (its first frame ends the visitor's streams that
        joined before it, at once; ``None``: not on a server).

        Raises:
            DemoError: the frame cannot be segmented, or this visitor started a newer stream.
        """
        if frame is None:
            return None, "Start the camera: the parts appear here, frame by frame.", state
        if state is not None and self._newest.get(visitor, (0.0, None))[1] != state.stream:
            raise DemoError(ENDED_BY_NEWER)
        if state is None or state.key[1] != self._config(state, backbone, settings):
            state = self.start(visitor, backbone, settings, joined)
        image = downscale(np.ascontiguousarray(np.asarray(frame)[..., :3], np.uint8), self.session.max_side)
        try:
            with self.gate.frame(visitor, event, joined):
                seg = state.live.step(image)
        except Superseded:
            raise DemoError(ENDED_BY_NEWER) from None
        except DeepCutError as e:
            raise DemoError(str(e)) from None
        with self._lock:
            self.frames += 1
        return seg.overlay(float(opacity)), self.status(state, seg.num_segments, self.session.limits.live_fps), state

    def _config(self, state: LiveState, backbone: str | None, settings: dict[str, Any]) -> SegmentConfig | None:
        """The config these controls give now (None if the backbone changed: a new stream anyway)."""
        if (backbone or self.default_backbone()) != state.requested:
            return None
        notices: list[str] = []
        model = state.live.store.backbone
        try:
            return build_config(self.session.limits.clamp(settings, notices), int(model.depth), state.key[0], notices)
        except DemoError:
            return None

    @staticmethod
    def status(state: LiveState, segments: int, cap: float | None = None) -> str:
        """The live status line: frames per second (``cap``: the most the page sends, said when it is what holds
        the rate), latency, segments, what runs."""
        live, (used, cfg) = state.live, state.key
        fps = f"{live.fps:.1f} frames/s" if live.fps else "first frame"
        held = (f" (the page sends at most {cap:g} a second)" if live.fps and cap and live.fps >= 0.9 * cap
                and live.latency * cap < 0.9 else "")  # the rate is the page's cap, not the work's
        line = (f"**{fps}**{held} · {1000 * live.latency:.0f} ms per frame · {plural(segments, 'segment')} · "
                f"`{used}` at {cfg.resolution} px · frame {live.stats.frames}")
        return with_notices([line], state.notices)

    @staticmethod
    def visitor(request: Any) -> str:
        """The visitor of a Gradio request, keyed as the upload rules key them
        (:func:`~deepcut.demo.visitors.client_address`: the peer, or a local proxy's last ``X-Forwarded-For``
        hop; never the client's own word, so that nobody gets a second stream, or ends another's, by a header)."""
        headers = getattr(request, "headers", None) or {}
        forwarded = headers.get("x-forwarded-for", "") if hasattr(headers, "get") else ""
        client = getattr(request, "client", None)
        return client_address(getattr(client, "host", None), forwarded)


def live_defaults(resolution: int = LIVE_RESOLUTION) -> dict[str, Any]:
    """The Live tab's starting settings: 2 segments, NCut, one stage, a coarse grid."""
    return {"k": 2, "loss": "ncut", "stages": 1, "resolution": resolution}
