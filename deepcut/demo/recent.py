"""The last few results, by a short key: what a page keeps between events (opacity, clicks).

A visitor's page (and every API call, which is a session of its own) holds only the key in its
``gr.State``; the results themselves (images, soft maps, the segmentation) live here, at most
``keep`` of them for all visitors together, so memory stays bounded whatever the number of sessions.
A key whose result was dropped gives ``None`` (the page then just does not redraw).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Any


class RecentResults:
    """A thread-safe LRU of results by key.

    Args:
        keep: how many results are kept (the least recently used ones beyond it are dropped).
    """

    def __init__(self, keep: int = 16) -> None:
        self.keep = max(1, int(keep))
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, result: Any) -> str:
        """Keep ``result``; returns its key (a short random string)."""
        key = uuid.uuid4().hex[:16]
        with self._lock:
            self._items[key] = result
            while len(self._items) > self.keep:
                self._items.popitem(last=False)
        return key

    def get(self, key: Any) -> Any:
        """The result of ``key``, or None if there is none (dropped, or ``key`` is not a key)."""
        if not isinstance(key, str):
            return None
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
