"""Live streams bounded by the server, whatever the client does (no Gradio import).

The page sends a webcam frame every ``1 / live_fps`` seconds, but a client that is not the page may post
frames as fast as it likes, or open a stream, send one frame and then nothing (which held a worker until
the stream's time limit). :class:`StreamGate` keeps, per visitor (client address):

* **the frame rate**: a token bucket of :attr:`StreamGate.burst` frames refilled at ``fps`` per second; a
  frame beyond it is refused at once (``429``) by the upload guard, before Gradio decodes or queues it;
* **one stream**: when a visitor's newer stream starts, the older one is ended at once (its worker freed).
  *Newer* means joined the queue later (``joined``), not first worked on: two streams joined together may
  start work in either order on two workers, and the one that joined first must not end the other;
* **no quiet stream**: a stream that has sent no frame for :attr:`StreamGate.quiet` seconds and is not
  working on one is ended, so its worker is free again within a few seconds;
* **the seconds per stream**: a stream older than ``seconds`` is ended (Gradio's own time limit agrees).

The gate does not know Gradio's queue: the server binds it (:meth:`StreamGate.bind`) to its event loop and
to a function that ends one event (a stream) by its id; streams are ended on that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

#: Seconds without a frame after which a stream is ended (at least three frame intervals).
QUIET_SECONDS = 3.0
#: Seconds between two looks for quiet or overlong streams.
TICK_SECONDS = 0.5


class Superseded(Exception):
    """This stream joined before a stream of the same visitor that is already running: it is ended."""


@dataclass
class _Stream:
    visitor: str
    started: float
    last: float  # the last frame received or finished
    joined: float  # when it joined the queue (what orders a visitor's streams)
    busy: int = 0  # frames being worked on


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class StreamGate:
    """The server's live-stream rules (see the module doc); thread safe.

    Args:
        fps: most frames per second one visitor's streams may send, in the long run.
        seconds: a stream is ended after this many seconds (``None``: no limit).
        burst: frames a visitor may send at once before the rate applies.
        quiet: a stream with no frame for this many seconds is ended (default: :data:`QUIET_SECONDS`,
            or three frame intervals where that is longer).
    """

    fps: float
    seconds: float | None = None
    burst: float = 2.0
    quiet: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _buckets: dict[str, _Bucket] = field(default_factory=dict, repr=False)
    _streams: dict[str, _Stream] = field(default_factory=dict, repr=False)  # event id -> stream
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _end: Callable[[str], bool] | None = field(default=None, repr=False)
    _task: asyncio.Task | None = field(default=None, repr=False)
    ended: dict[str, int] = field(default_factory=lambda: {"newer": 0, "quiet": 0, "time": 0}, repr=False)
    refused: int = 0  # frames refused for the rate

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be above 0, got {self.fps}")
        if self.quiet is None:
            self.quiet = max(QUIET_SECONDS, 3.0 / self.fps)

    # -- frames ------------------------------------------------------------------------------------------
    def admit(self, visitor: str, now: float | None = None) -> float | None:
        """Take one frame of ``visitor`` (a frame posted to a running stream): ``None`` if it may go on, else
        the seconds until it would be taken (the frame is to be refused, not queued)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(visitor)
            if bucket is None:
                bucket = self._buckets[visitor] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.fps)
            bucket.at = now
            if bucket.tokens < 1.0:
                self.refused += 1
                return (1.0 - bucket.tokens) / self.fps
            bucket.tokens -= 1.0
            for gone in [v for v, b in self._buckets.items() if now - b.at > 60.0]:
                del self._buckets[gone]
            return None

    def posted(self, event: str, now: float | None = None) -> None:
        """A frame for stream ``event`` was taken (it counts as a sign of life)."""
        with self._lock:
            stream = self._streams.get(event)
            if stream is not None:
                stream.last = time.monotonic() if now is None else now

    @contextlib.contextmanager
    def frame(self, visitor: str, event: str | None, joined: float | None = None) -> Iterator[None]:
        """Around the work on one frame of stream ``event`` from ``visitor``, which joined the queue at
        ``joined`` (:func:`time.monotonic`; ``None``: now). The first frame starts the stream and ends the
        visitor's streams that joined before it, at once; a stream is never quiet while it works.

        Raises:
            Superseded: a stream of ``visitor`` that joined after this one is running already (this one is
                not started; the caller ends it with an error).
        """
        if event is None:  # not run by a server's queue (a script, a test): nothing to bound
            yield
            return
        now = time.monotonic()
        with self._lock:
            stream = self._streams.get(event)
            older = []
            if stream is None:
                joined = now if joined is None else joined
                if any(s.visitor == visitor and s.joined > joined for s in self._streams.values()):
                    raise Superseded(event)
                stream = self._streams[event] = _Stream(visitor, now, now, joined)
                older = [e for e, s in self._streams.items() if s.visitor == visitor and e != event]
            stream.busy += 1
        for e in older:
            self._stop(e, "newer")
        try:
            yield
        finally:
            with self._lock:
                stream.busy -= 1
                stream.last = time.monotonic()

    def running(self, visitor: str | None = None) -> list[str]:
        """The streams not ended (of ``visitor``, or all)."""
        with self._lock:
            return [e for e, s in self._streams.items() if visitor is None or s.visitor == visitor]

    # -- ending streams ----------------------------------------------------------------------------------
    def due(self, now: float | None = None) -> list[tuple[str, str]]:
        """``(event, why)`` for each stream to end now: quiet (not working, no frame for :attr:`quiet`
        seconds) or past :attr:`seconds`."""
        now = time.monotonic() if now is None else now
        quiet = float(self.quiet or QUIET_SECONDS)
        with self._lock:
            due = []
            for event, s in self._streams.items():
                if self.seconds is not None and now - s.started > self.seconds:
                    due.append((event, "time"))
                elif not s.busy and now - s.last > quiet:
                    due.append((event, "quiet"))
            return due

    def bind(self, loop: asyncio.AbstractEventLoop, end: Callable[[str], bool]) -> None:
        """Work on the server's event ``loop``, where ``end(event)`` ends a stream (True if it was running);
        starts the watch for quiet streams there (once; call from the loop)."""
        with self._lock:
            if self._loop is loop and self._task is not None and not self._task.done():
                return
            self._loop, self._end = loop, end
            self._task = loop.create_task(self._watch())

    def unbind(self) -> None:
        """Stop the watch (from any thread); streams are no longer ended by the gate."""
        with self._lock:
            loop, task, self._loop, self._end, self._task = self._loop, self._task, None, None, None
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                for event, why in self.due():
                    self._end_now(event, why)
            except Exception:  # the watch must outlive any one failure
                logging.getLogger("deepcut.app").exception("live stream watch failed; retrying")

    def _stop(self, event: str, why: str) -> None:
        """End ``event`` on the server's loop (from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            with self._lock:
                self._streams.pop(event, None)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._end_now(event, why)
        else:
            loop.call_soon_threadsafe(self._end_now, event, why)

    def _end_now(self, event: str, why: str) -> None:
        with self._lock:
            if self._streams.pop(event, None) is None:
                return
        if self._end is not None and self._end(event):  # False: it had ended by itself
            with self._lock:
                self.ended[why] += 1
