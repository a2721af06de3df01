"""What one request may cost on this server: caps on pixels, patches, epochs, frames, images and time.

A public deployment (``--public``, ``DEEPCUT_PUBLIC=1`` or a HuggingFace Space) gets the tight
:meth:`Limits.public_defaults`; a local demo the generous :class:`Limits` defaults. Settings above a
cap are clamped with a notice the visitor sees (:meth:`Limits.clamp`); uploads above the pixel or
byte caps are refused (:mod:`deepcut.demo.uploads`); a request that runs past :attr:`Limits.seconds`
stops cleanly between GNN stages or video frames (:class:`Deadline`).

Example::

    limits = Limits.public_defaults()
    notices: list[str] = []
    settings = limits.clamp({"resolution": 640, "epochs": (100, 300, 100)}, notices)
    # settings == {"resolution": 448, "epochs": (100, PUBLIC_MAX_EPOCHS, 100)}, two notices
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import Any, Callable

from ..clustering.fit import NCUT_START_EPOCHS
from ..config import SegmentConfig
from .errors import DemoError

#: The name shown for a backbone that is not offered here, whatever was asked for (no path is echoed).
NOT_OFFERED = "This backbone is not offered on this server. Please choose one from the list."

#: A public server's epoch cap per stage: stage 2's default epochs (100), and room for NCut's second try from the
#: spectral cut when they leave a part empty (the start's 20 epochs, then the 100 again), so k parts are reached there.
PUBLIC_MAX_EPOCHS = 2 * SegmentConfig().epochs[1] + NCUT_START_EPOCHS


class TimeLimitError(DemoError):
    """A request ran past the server's time limit (the message says after how long)."""


@dataclass(frozen=True)
class Limits:
    """Caps on one request (``None``: no cap).

    Attributes:
        public: a public deployment: visitors' own weights are ignored, backbones are :attr:`backbones`.
        backbones: the backbones visitors may choose (``None``: every registered one and own weights).
        max_pixels: largest upload in pixels (width × height, read from the file's header).
        max_bytes: largest upload in bytes (also for ``data:`` URLs and request bodies).
        max_resolution: highest working resolution (patches = (resolution / patch size)²).
        max_epochs: most GNN epochs of any stage, every training rule included (:func:`~deepcut.clustering.fit.fit`'s
            ``max_epochs``: NCut's second try from the spectral cut runs only where it fits, corrections stop there).
        max_frames: most video frames per request.
        max_images: most images co-segmented together.
        seconds: a request stops after this many seconds (between GNN stages or video frames).
        queue_size: most requests waiting in the queue.
        workers: heavy requests at a time (on a public server, image, objects, video and co-segmentation
            requests share one queue of this many workers).
        sessions: how many sessions Gradio remembers (each page and each API call is one; the oldest
            beyond are forgotten: each holds a copy of the page's configuration and its outputs'
            values, about 1.3 MB here).
        cache_seconds: Gradio's temporary files (uploads, pictures, downloads) are deleted after this
            many seconds (checked every third of it).
        upload_files: most files in one upload request (its bytes in all: at most :attr:`max_bytes`).
        visitor_files: most files one visitor (client address) may upload per minute.
        visitor_bytes: most bytes one visitor may upload per minute.
        temp_files: no upload is taken while Gradio's temporary folder holds this many files.
        temp_bytes: no upload is taken while Gradio's temporary folder holds this many bytes.
        live_seconds: a live (webcam) stream stops after this many seconds (the visitor may start it again).
        live_fps: most frames per second a live stream sends to the server.
    """

    public: bool = False
    backbones: tuple[str, ...] | None = None
    max_pixels: int | None = 100_000_000
    max_bytes: int | None = 50 * 1024 ** 2
    max_resolution: int | None = None
    max_epochs: int | None = None
    max_frames: int | None = 300
    max_images: int | None = 8
    seconds: float | None = None
    queue_size: int = 64
    workers: int = 2
    sessions: int = 1000
    cache_seconds: int = 7200
    upload_files: int | None = 64
    visitor_files: int | None = 600
    visitor_bytes: int | None = None
    temp_files: int | None = 50_000
    temp_bytes: int | None = 20 * 1024 ** 3
    live_seconds: float | None = None
    live_fps: float = 5.0

    @classmethod
    def public_defaults(cls, **overrides: Any) -> "Limits":
        """The caps of a public deployment; ``overrides`` (``None`` values ignored) replace single ones."""
        base = cls(public=True, max_pixels=16_000_000, max_bytes=10 * 1024 ** 2, max_resolution=448,
                   max_epochs=PUBLIC_MAX_EPOCHS, max_frames=60, max_images=6, seconds=60.0, queue_size=16,
                   cache_seconds=900, sessions=100, upload_files=8, visitor_files=30, visitor_bytes=100 * 1024 ** 2,
                   temp_files=5000, temp_bytes=2 * 1024 ** 3, live_seconds=60.0, live_fps=2.0)
        return base.with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> "Limits":
        """A copy with the given caps replaced (``None`` values and unknown names ignored)."""
        names = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if v is not None and k in names})

    def allows_custom(self) -> bool:
        """Whether visitors may name their own weights (a local folder or hub id): never in public."""
        return not self.public

    def offers(self, backbone: str) -> bool:
        """Whether visitors may choose ``backbone`` here."""
        return self.backbones is None or backbone in self.backbones

    def clamp(self, settings: dict[str, Any], notices: list[str]) -> dict[str, Any]:
        """``settings`` (config fields) with the resolution and epochs lowered to the caps; a notice
        is appended to ``notices`` for each setting lowered."""
        out = dict(settings)
        res = out.get("resolution")
        if res is not None and self.max_resolution is not None and int(res) > self.max_resolution:
            notices.append(f"resolution {int(res)} px is above this server's limit; using {self.max_resolution} px")
            out["resolution"] = self.max_resolution
        epochs = out.get("epochs")
        if epochs is not None and self.max_epochs is not None:
            many = isinstance(epochs, (list, tuple))
            values = [int(e) for e in (epochs if many else [epochs])]
            if max(values, default=0) > self.max_epochs:
                notices.append(f"epochs {'/'.join(map(str, values))} are above this server's limit of "
                               f"{self.max_epochs} per stage; using at most {self.max_epochs}")
                values = [min(e, self.max_epochs) for e in values]
                out["epochs"] = tuple(values) if many else values[0]
        return out

    def frames(self, max_frames: int, notices: list[str]) -> int:
        """``max_frames`` lowered to :attr:`max_frames`, with a notice if it was."""
        if self.max_frames is not None and int(max_frames) > self.max_frames:
            notices.append(f"{int(max_frames)} frames are above this server's limit; using at most {self.max_frames}")
            return self.max_frames
        return int(max_frames)

    def delete_cache(self) -> tuple[int, int]:
        """Gradio's ``delete_cache``: ``(how often, how old)`` in seconds."""
        return max(5, self.cache_seconds // 3), max(5, self.cache_seconds)

    def deadline(self) -> "Deadline":
        """A :class:`Deadline` starting now."""
        return Deadline(self.seconds)

    def summary(self) -> str:
        """One line for the page: what a request may cost here."""
        parts = []
        if self.max_pixels:
            parts.append(f"uploads up to {self.max_pixels / 1e6:g} megapixels")
        if self.max_bytes:
            parts.append(f"{self.max_bytes / 1024 ** 2:g} MB")
        if self.max_resolution:
            parts.append(f"resolution up to {self.max_resolution} px")
        if self.max_epochs:
            parts.append(f"{self.max_epochs} training epochs per stage (every training rule included: NCut's second "
                         f"try from the spectral cut, corrections)")
        if self.max_frames:
            parts.append(f"{self.max_frames} video frames")
        if self.max_images:
            parts.append(f"{self.max_images} images to co-segment")
        if self.seconds:
            parts.append(f"{self.seconds:g} s per request")
        return "**On this server:** " + ", ".join(parts) + "."


class Deadline:
    """The time a request may still run; :meth:`check` raises :class:`TimeLimitError` once it is over.

    Args:
        seconds: the budget (``None``: no limit).
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    def expired(self) -> bool:
        return self.seconds is not None and time.monotonic() - self.started > self.seconds

    def check(self) -> None:
        """Raise :class:`TimeLimitError` if the budget is spent."""
        if self.expired():
            raise TimeLimitError(f"Stopped after {time.monotonic() - self.started:.0f} s (the limit on this server "
                                 f"is {self.seconds:g} s per request). Please try fewer epochs or stages, a lower "
                                 f"resolution or fewer frames.")

    def clusterer(self, inner: Callable) -> Callable:
        """``inner`` (a :class:`~deepcut.clustering.fit.Clusterer`) checking the deadline before each GNN stage."""
        if self.seconds is None:
            return inner

        def clusterer(features, **kwargs):
            self.check()
            return inner(features, **kwargs)
        return clusterer

    def progress(self, inner: Callable[[int, int], None] | None) -> Callable[[int, int], None] | None:
        """``inner`` (a ``progress(done, total)`` callback) checking the deadline after each frame."""
        if self.seconds is None:
            return inner

        def progress(done: int, total: int) -> None:
            if inner is not None:
                inner(done, total)
            self.check()
        return progress
