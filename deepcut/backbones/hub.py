"""Pretrained weights from the HuggingFace cache or hub, without hanging when offline.

:func:`weights_available` answers from local files only; :func:`load_pretrained` reads the cache
first and goes to the hub only when ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are unset and the
endpoint answers, so a machine without network fails at once with :func:`weights_help`'s message.

Gated repositories (Meta's DINOv3 ones) serve their files only to an account that accepted the licence
on the model page, with that account's token: the hub answers HTTP 401 (no token) or 403 (a token
without access) with ``X-Error-Code: GatedRepo``. Whatever the failure (no token, a refused token, no
network), the message of a gated backbone says how to get access (:func:`access_help`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..errors import BackboneLoadError
from .specs import BY_HUB_ID, DEFAULT_BACKBONE, REGISTRY, WEIGHTS_ENV

#: Hub ids of gated repositories outside the registry (every DINOv3 repository of Meta's is gated).
GATED_PREFIXES = ("facebook/dinov3-",)


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


def is_gated(hub_id: str | None) -> bool:
    """Whether the hub serves ``hub_id``'s files only to accounts that accepted its licence."""
    spec = BY_HUB_ID.get(hub_id or "")
    return bool(spec.gated) if spec is not None else bool(hub_id) and str(hub_id).startswith(GATED_PREFIXES)


def access_help(hub_id: str) -> str:
    """What to do to get the weights of a gated repository."""
    return (f"The weights of '{hub_id}' are gated: accept the licence on the model page "
            f"https://huggingface.co/{hub_id} (logged in to your HuggingFace account), then let DeepCut use a token "
            f"of that account: run `hf auth login`, or set the environment variable HF_TOKEN=<your token>; on a "
            f"HuggingFace Space, add HF_TOKEN as a secret in the Space's settings. The first load downloads them "
            f"(network needed), later ones read the local cache.")


def gated_refusal(error: BaseException) -> str | None:
    """Why the hub refused a gated download (a ``GatedRepoError`` anywhere in ``error``'s chain of causes),
    or None when ``error`` is not such a refusal."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import GatedRepoError

    seen: BaseException | None = error
    for _ in range(8):
        if seen is None or isinstance(seen, GatedRepoError):
            break
        seen = seen.__cause__ or seen.__context__
    if not isinstance(seen, GatedRepoError):
        return None
    response = getattr(seen, "response", None)
    status = int(getattr(response, "status_code", 0) or 0)
    said = getattr(seen, "server_message", None) or ""
    why = {401: "the hub did not accept the token" if get_token() else "no HuggingFace token is set up here",
           403: "the token's account has not been granted access"}
    told = f" The hub says: {said.strip()[:300]}" if said.strip() else ""
    return f"the hub refused the download (HTTP {status}: {why.get(status, 'access is restricted')}).{told}"


def weights_help(name: str, hub_id: str | None, reason: str) -> str:
    where = f" (hub id '{hub_id}')" if hub_id else ""
    env = (f" For the default backbone, setting {WEIGHTS_ENV}=/path/to/weights does the same."
           if hub_id == REGISTRY[DEFAULT_BACKBONE].hub_id else "")
    gated = f"{access_help(str(hub_id))}\n" if is_gated(hub_id) else ""
    example = ("dinov3_vits16_pretrain_lvd1689m-08c60483.pth" if gated else "dino_deitsmall8_pretrain.pth")
    return (
        f"Could not load pretrained weights for backbone '{name}'{where}: {reason}\n{gated}"
        f"Two ways out{' without the hub' if gated else ''}: (1) point DeepCut at weights you already have, "
        f"DeepCut(backbone='/path/to/weights') or --backbone /path/to/weights, where the path is a "
        f"HuggingFace-format model folder or an original DINO/DINOv2/DINOv3 checkpoint (.pth, e.g. "
        f"{example}).{env} (2) Use the weight-free colour backbone: "
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
        reason = gated_refusal(e) or f"the download failed ({type(e).__name__}: {e})"
        raise BackboneLoadError(weights_help(name, hub_id, reason)) from None
