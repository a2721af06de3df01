"""Backbone registry and loading: hub ids, local folders, random weights, the colour backbone."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..errors import BackboneLoadError
from .base import Backbone
from .color import ColorBackbone
from .vit import ViTBackbone


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: architecture and where its pretrained weights live."""

    name: str
    family: str  # "vit" (DINO v1), "color"
    hub_id: str | None
    patch_size: int
    dim: int
    depth: int
    heads: int = 0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "patch_size": self.patch_size,
            "dim": self.dim,
            "depth": self.depth,
            "weights": f"huggingface.co/{self.hub_id}" if self.hub_id else "none needed",
        }


REGISTRY: dict[str, BackboneSpec] = {
    s.name: s
    for s in [
        BackboneSpec("dino_vits8", "vit", "facebook/dino-vits8", 8, 384, 12, 6),
        BackboneSpec("dino_vits16", "vit", "facebook/dino-vits16", 16, 384, 12, 6),
        BackboneSpec("dino_vitb8", "vit", "facebook/dino-vitb8", 8, 768, 12, 12),
        BackboneSpec("dino_vitb16", "vit", "facebook/dino-vitb16", 16, 768, 12, 12),
        BackboneSpec("color", "color", None, 8, 384, 1),
    ]
}

DEFAULT_BACKBONE = "dino_vits8"


def list_backbones() -> list[dict]:
    """Every named backbone with its patch size, width, depth and where its weights come from."""
    return [spec.as_dict() for spec in REGISTRY.values()]


def weights_available(name: str) -> bool:
    """Whether ``name`` can be built with pretrained weights without any network access.

    True for the colour backbone, local folders, and registry names / hub ids whose files are in
    the local HuggingFace cache. Never touches the network.
    """
    spec = REGISTRY.get(name)
    if spec is not None and spec.hub_id is None:
        return True
    if Path(os.path.expanduser(name)).exists():
        return True
    hub_id = spec.hub_id if spec is not None else name
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:
        return False


def _vit_config(spec: BackboneSpec):
    from transformers import ViTConfig

    return ViTConfig(
        hidden_size=spec.dim,
        num_hidden_layers=spec.depth,
        num_attention_heads=spec.heads,
        intermediate_size=4 * spec.dim,
        patch_size=spec.patch_size,
        image_size=224,
        qkv_bias=True,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
    )


def _random_model(spec: BackboneSpec, seed: int = 0):
    from transformers import ViTModel

    # Seeded so that two random backbones are identical; the global RNG is restored afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ViTModel(_vit_config(spec), add_pooling_layer=False)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the HuggingFace endpoint answers a TCP connection within ``timeout`` seconds."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
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
    return (
        f"Could not load pretrained weights for backbone '{name}'{where}: {reason}\n"
        f"Two ways out: point DeepCut at a local copy of the weights, e.g. "
        f"DeepCut(backbone='/path/to/model_folder') or --backbone /path/to/model_folder "
        f"(a HuggingFace-format folder), or use the weight-free colour backbone: "
        f"DeepCut(backbone='color') / --backbone color."
    )


def _load_pretrained(model_cls, hub_id: str, name: str, **kwargs):
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
                                             "huggingface.co cannot be reached (no network?)"))
    try:
        return model_cls.from_pretrained(hub_id, **kwargs)
    except Exception as e:
        raise BackboneLoadError(weights_help(name, hub_id, f"the download failed ({type(e).__name__}: {e})")) from None


def _model_class_for(model_type: str):
    import transformers

    classes = {"vit": "ViTModel"}
    if model_type not in classes:
        raise BackboneLoadError(
            f"model type '{model_type}' is not supported; expected one of {sorted(classes)} (DINO ViTs)"
        )
    return getattr(transformers, classes[model_type])


def _wrap(model, name: str, source: str) -> Backbone:
    return ViTBackbone(model, name=name, source=source)


def _from_folder(path: Path) -> Backbone:
    import json

    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise BackboneLoadError(f"{path} is a folder but has no config.json: expected a HuggingFace-format "
                                f"model folder (config.json + model.safetensors)")
    try:
        model_type = json.loads(cfg_file.read_text()).get("model_type", "")
    except ValueError as e:
        raise BackboneLoadError(f"{cfg_file} is not valid JSON: {e}") from None
    cls = _model_class_for(model_type)
    try:
        model = cls.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
    except Exception as e:
        raise BackboneLoadError(f"could not load the model in {path}: {type(e).__name__}: {e}") from None
    return _wrap(model, name=str(path), source=str(path))


def load_backbone(backbone: str | Backbone = DEFAULT_BACKBONE, pretrained: bool = True) -> Backbone:
    """Build a backbone by name, hub id or local path.

    Args:
        backbone: a registry name (:func:`list_backbones`), ``"color"``, a local HF-format folder,
            a hub id (``"facebook/dino-vits8"``), or an already built :class:`Backbone`.
        pretrained: load pretrained weights; ``False`` builds the same architecture with random
            (seeded) weights, for tests and benchmarks.

    Raises:
        BackboneLoadError: weights cannot be found or read; the message says why and what to do.
    """
    if isinstance(backbone, Backbone):
        return backbone
    name = str(backbone)
    spec = REGISTRY.get(name)
    if spec is not None and spec.family == "color":
        return ColorBackbone()
    if spec is not None:
        if not pretrained:
            return _wrap(_random_model(spec), name=name, source="random")
        from transformers import ViTModel

        model = _load_pretrained(ViTModel, spec.hub_id, name, add_pooling_layer=False)
        return _wrap(model, name=name, source=spec.hub_id)
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        return _from_folder(path)
    if path.exists():
        raise BackboneLoadError(f"{path} is a file, but only HuggingFace-format model folders are supported here")
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        from transformers import ViTModel

        model = _load_pretrained(ViTModel, name, name, add_pooling_layer=False)
        return _wrap(model, name=name, source=name)
    raise BackboneLoadError(
        f"unknown backbone '{name}': not a registered name ({', '.join(REGISTRY)}), "
        f"not an existing path and not a hub id of the form 'owner/model'"
    )
