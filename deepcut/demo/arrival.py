"""When a visitor's request reached the server, so that the status line gives the wait as the visitor saw it.

Gradio's queue notes the moment each event joins it (``Event.enqueue_time``, a :func:`time.monotonic`
reading taken when ``/queue/join`` is answered), and runs the event's handler with the event's id in its
context (``gradio.context.LocalContext``). :func:`queue_arrival` reads that moment from inside a handler; the
app hands it to :class:`~deepcut.demo.session.DemoSession` (``arrival=``), whose requests then count the time
spent waiting in the queue for a free worker (:attr:`~deepcut.demo.jobs.Request.waited`) beside the time
spent computing. Imports Gradio, so only the app imports this module.
"""

from __future__ import annotations

import time


def queue_arrival() -> float | None:
    """The :func:`time.monotonic` time at which the Gradio event being handled joined the queue; None outside
    a queued event (a direct call, a test, a GPU worker process) or if this Gradio keeps no such time."""
    from gradio.context import LocalContext

    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    events = getattr(getattr(blocks, "_queue", None), "event_ids_to_events", None)
    event = events.get(event_id) if isinstance(events, dict) and event_id else None
    arrived = getattr(event, "enqueue_time", None)
    if not isinstance(arrived, (int, float)) or arrived > time.monotonic():
        return None
    return float(arrived)
