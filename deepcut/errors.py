"""Exceptions raised for user-facing problems (bad input, missing weights).

Everything the CLI and the app show to a person derives from :class:`DeepCutError`, so callers can
catch one type and print its message instead of a traceback.
"""

from __future__ import annotations


class DeepCutError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""


class ImageLoadError(DeepCutError, ValueError):
    """An image (or video frame) could not be read or understood."""


class BackboneLoadError(DeepCutError, RuntimeError):
    """A feature extractor could not be built or its weights could not be loaded."""


class ConfigError(DeepCutError, ValueError):
    """A segmentation setting is out of range or inconsistent."""


class VideoLoadError(ImageLoadError):
    """A video could not be read: missing, empty, corrupt, without a video stream, or without frames."""


class ResourceLimitError(DeepCutError):
    """A request would need more memory (or patches) than the configured limit, or ran out of memory.

    The message names the estimate, the limit and what to change (a lower ``resolution``, a larger
    ``stride``, ``$DEEPCUT_MAX_MEMORY``).
    """
