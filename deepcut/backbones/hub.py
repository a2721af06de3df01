"""Pretrained weights from the HuggingFace cache or hub, without hanging when offline.

:func:`weights_available` answers from local files only; :func:`load_pretrained` reads the cache
first and goes to the hub only when ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are unset and the
endpoint answers, so a machine without network fails at once with :func:`weights_help`'s message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..errors import BackboneLoadError
from .specs import DEFAULT_BACKBONE, REGISTRY, WEIGHTS_ENV


def weights_available(name: str) -> bool:
    """Whether ``name`` can be built with pretrained weights without any network access.

    True for the colour backbone, existing local folders and checkpoint files, the default backbone
    when ``$DEEPCUT_WEIGHTS`` names an existing path, and registry names / hub ids whose files are in
    the local HuggingFace cache. Never touches the network.
    """
    spec = REGISTRY.get(name)
    if spec is not None and spec.hub_id is None:
        return True
    if name == DEFAULT_BACKBONE and os.environ.get(WEIGHTS_ENV):
        return Path(os.path.expanduser(os.environ[WEIGHTS_ENV])).exists()
    if Path(os.path.expanduser(name)).exists():
        return True
    hub_id = spec.hub_id if spec is not None and spec.hub_id is not None else name
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:
        return False


def _hub_address() -> tuple[str, int]:
    """Host and port of the HuggingFace endpoint (``$HF_ENDPOINT`` or huggingface.co)."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the HuggingFace endpoint answers a TCP connection within ``timeout`` seconds."""
    host, port = _hub_address()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def weights_help(name: str, hub_id: str | None, reason: str) -> str:
    where = f" (hub id '{hub_id}')" if hub_id else ""
    env = (f" For the default backbone, setting {WEIGHTS_ENV}=/path/to/weights does the same."
           if hub_id == REGISTRY[DEFAULT_BACKBONE].hub_id else "")
    return (
        f"Could not load pretrained weights for backbone '{name}'{where}: {reason}\n"
        f"Two ways out: (1) point DeepCut at weights you already have, "
        f"DeepCut(backbone='/path/to/weights') or --backbone /path/to/weights, where the path is a "
        f"HuggingFace-format model folder or an original DINO checkpoint (.pth, e.g. "
        f"dino_deitsmall8_pretrain.pth).{env} (2) Use the weight-free colour backbone: "
        f"DeepCut(backbone='color') / --backbone color."
    )


def load_pretrained(model_cls, hub_id: str, name: str, **kwargs):
    """Load from the HF cache, else from the hub; fail fast with a helpful message when offline."""
    try:
        return model_cls.from_pretrained(hub_id, local_files_only=True, **kwargs)
    except OSError:
        pass  # not cached
    except Exception as e:  # a cached but broken/mismatched checkpoint
        raise BackboneLoadError(weights_help(name, hub_id, f"the cached copy could not be read ({e})")) from None
    if _offline():
        raise BackboneLoadError(weights_help(name, hub_id, "they are not in the local HuggingFace cache and "
                                             "HF_HUB_OFFLINE is set"))
    if not _hub_reachable():
        raise BackboneLoadError(weights_help(name, hub_id, "they are not in the local HuggingFace cache and "
                                             f"{_hub_address()[0]} cannot be reached (no network?)"))
    try:
        return model_cls.from_pretrained(hub_id, **kwargs)
    except Exception as e:
        raise BackboneLoadError(weights_help(name, hub_id, f"the download failed ({type(e).__name__}: {e})")) from None
