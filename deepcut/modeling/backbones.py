"""Backbone registry and loading: hub ids, local folders, original DINO checkpoints, random weights,
the colour backbone.

Names (see :func:`list_backbones`): DINO v1 ``dino_vits8`` (default), ``dino_vits16``, ``dino_vitb8``,
``dino_vitb16`` (``transformers.ViTModel``); DINOv2 ``dinov2_vits14``, ``dinov2_vitb14``
(``Dinov2Model``) and ``dinov2_vits14_reg``, ``dinov2_vitb14_reg`` (``Dinov2WithRegistersModel``);
``color`` (no weights). Pretrained weights come from the HuggingFace cache or hub; a local folder or
an original DINO ``.pth`` works too, and ``DEEPCUT_WEIGHTS`` points the default backbone at one.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import BackboneLoadError
from .base import Backbone
from .color import ColorBackbone
from .convert import ViTArch, build_model, load_dino_checkpoint
from .dinov2 import Dinov2Backbone
from .vit import ViTBackbone

#: Environment variable: a folder or ``.pth`` with the weights of the default backbone.
WEIGHTS_ENV = "DEEPCUT_WEIGHTS"


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: architecture and where its pretrained weights live."""

    name: str
    family: str  # "vit" (DINO v1), "dinov2", "dinov2_reg" (DINOv2 with registers), "color"
    hub_id: str | None
    patch_size: int
    dim: int
    depth: int
    heads: int = 0
    registers: int = 0
    image_size: int = 224  # training resolution: sets the number of learned position embeddings

    def arch(self) -> ViTArch:
        """The ViT shape of this backbone (not for ``color``)."""
        return ViTArch(family="vit" if self.family == "vit" else "dinov2", dim=self.dim, depth=self.depth,
                       heads=self.heads, patch_size=self.patch_size, image_size=self.image_size,
                       mlp_dim=4 * self.dim, registers=self.registers)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "patch_size": self.patch_size,
            "dim": self.dim,
            "depth": self.depth,
            "heads": self.heads,
            "registers": self.registers,
            "hub_id": self.hub_id,
            "weights": f"huggingface.co/{self.hub_id}" if self.hub_id else "none needed",
        }


REGISTRY: dict[str, BackboneSpec] = {
    s.name: s
    for s in [
        BackboneSpec("dino_vits8", "vit", "facebook/dino-vits8", 8, 384, 12, 6),
        BackboneSpec("dino_vits16", "vit", "facebook/dino-vits16", 16, 384, 12, 6),
        BackboneSpec("dino_vitb8", "vit", "facebook/dino-vitb8", 8, 768, 12, 12),
        BackboneSpec("dino_vitb16", "vit", "facebook/dino-vitb16", 16, 768, 12, 12),
        BackboneSpec("dinov2_vits14", "dinov2", "facebook/dinov2-small", 14, 384, 12, 6, image_size=518),
        BackboneSpec("dinov2_vitb14", "dinov2", "facebook/dinov2-base", 14, 768, 12, 12, image_size=518),
        BackboneSpec("dinov2_vits14_reg", "dinov2_reg", "facebook/dinov2-with-registers-small", 14, 384, 12, 6,
                     registers=4, image_size=518),
        BackboneSpec("dinov2_vitb14_reg", "dinov2_reg", "facebook/dinov2-with-registers-base", 14, 768, 12, 12,
                     registers=4, image_size=518),
        BackboneSpec("color", "color", None, 8, 384, 1),
    ]
}

_BY_HUB_ID = {s.hub_id: s for s in REGISTRY.values() if s.hub_id}

DEFAULT_BACKBONE = "dino_vits8"


def list_backbones() -> list[dict]:
    """Every named backbone with its patch size, width, depth and where its weights come from."""
    return [spec.as_dict() for spec in REGISTRY.values()]


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
    hub_id = spec.hub_id if spec is not None else name
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:
        return False


def _random_backbone(spec: BackboneSpec, seed: int = 0) -> Backbone:
    """``spec``'s architecture with seeded random weights (two such backbones are identical)."""
    return wrap_model(build_model(spec.arch(), seed=seed), name=spec.name, source="random")


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
                                             f"{_hub_address()[0]} cannot be reached (no network?)"))
    try:
        return model_cls.from_pretrained(hub_id, **kwargs)
    except Exception as e:
        raise BackboneLoadError(weights_help(name, hub_id, f"the download failed ({type(e).__name__}: {e})")) from None


_MODEL_CLASSES = {
    # model_type → (transformers class, from_pretrained keyword arguments)
    "vit": ("ViTModel", {"add_pooling_layer": False}),
    "dinov2": ("Dinov2Model", {}),
    "dinov2_with_registers": ("Dinov2WithRegistersModel", {}),
}
_FAMILY_MODEL_TYPE = {"vit": "vit", "dinov2": "dinov2", "dinov2_reg": "dinov2_with_registers"}


def _model_class_for(model_type: str):
    """``(transformers model class, from_pretrained kwargs)`` of a config's ``model_type``."""
    import transformers

    if model_type not in _MODEL_CLASSES:
        raise BackboneLoadError(
            f"model type '{model_type}' is not supported; expected one of {sorted(_MODEL_CLASSES)} "
            f"(DINO ViTs, DINOv2, DINOv2 with registers)"
        )
    cls_name, kwargs = _MODEL_CLASSES[model_type]
    return getattr(transformers, cls_name), dict(kwargs)


def wrap_model(model, name: str, source: str) -> Backbone:
    """A :class:`Backbone` around a ``transformers`` ``ViTModel`` / ``Dinov2Model`` /
    ``Dinov2WithRegistersModel``."""
    model_type = getattr(model.config, "model_type", "")
    if model_type == "vit":
        return ViTBackbone(model, name=name, source=source)
    if model_type in ("dinov2", "dinov2_with_registers"):
        return Dinov2Backbone(model, name=name, source=source)
    raise BackboneLoadError(f"model type '{model_type}' is not supported; expected one of {sorted(_MODEL_CLASSES)}")


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
    cls, kwargs = _model_class_for(model_type)
    try:
        model = cls.from_pretrained(str(path), local_files_only=True, **kwargs)
    except Exception as e:
        raise BackboneLoadError(f"could not load the model in {path}: {type(e).__name__}: {e}") from None
    return wrap_model(model, name=str(path), source=str(path))


def _from_path(path: Path) -> Backbone:
    """A local HF-format folder or an original DINO checkpoint file."""
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        model, _ = load_dino_checkpoint(path)
        return wrap_model(model, name=str(path), source=str(path))
    raise BackboneLoadError(f"{path} does not exist")


def _default_from_env(spec: BackboneSpec) -> Backbone:
    """The default backbone with the weights named by ``DEEPCUT_WEIGHTS``."""
    raw = os.environ[WEIGHTS_ENV]
    path = Path(os.path.expanduser(raw))
    if not path.exists():
        raise BackboneLoadError(f"{WEIGHTS_ENV}={raw} does not exist; it should name the weights of the default "
                                f"backbone '{spec.name}' (a HuggingFace folder or an original DINO .pth), "
                                f"or be unset")
    backbone = _from_path(path)
    got = (getattr(backbone, "family", None), backbone.patch_size, backbone.dim, backbone.depth)
    want = (spec.family, spec.patch_size, spec.dim, spec.depth)
    if got != want:
        raise BackboneLoadError(
            f"{WEIGHTS_ENV}={raw} holds a {got[0]} ViT with patch {got[1]}, width {got[2]}, {got[3]} blocks, "
            f"but it replaces the weights of the default backbone '{spec.name}', which expects a {want[0]} ViT "
            f"with patch {want[1]}, width {want[2]}, {want[3]} blocks. Load other architectures with "
            f"DeepCut(backbone='{raw}') instead."
        )
    backbone.name = spec.name
    return backbone


def _from_hub(hub_id: str, name: str) -> Backbone:
    """A hub id, from the HF cache or the hub (fast, clear failure offline)."""
    spec = _BY_HUB_ID.get(hub_id)
    if spec is not None:
        model_type = _FAMILY_MODEL_TYPE[spec.family]
    else:
        from transformers import AutoConfig

        model_type = getattr(_load_pretrained(AutoConfig, hub_id, name), "model_type", "")
    cls, kwargs = _model_class_for(model_type)
    model = _load_pretrained(cls, hub_id, name, **kwargs)
    return wrap_model(model, name=name, source=hub_id)


def load_backbone(backbone: str | Backbone = DEFAULT_BACKBONE, pretrained: bool = True) -> Backbone:
    """Build a backbone by name, hub id or local path.

    Args:
        backbone: a registry name (:func:`list_backbones`), ``"color"``, a local HF-format folder, an
            original DINO/DINOv2 checkpoint file (``.pth``, architecture read from its shapes), a hub
            id (``"facebook/dino-vits8"``), or an already built :class:`Backbone`. With
            ``pretrained=True`` the default backbone takes its weights from ``$DEEPCUT_WEIGHTS``
            when that is set.
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
            return _random_backbone(spec)
        if name == DEFAULT_BACKBONE and os.environ.get(WEIGHTS_ENV):
            return _default_from_env(spec)
        return _from_hub(spec.hub_id, name)
    path = Path(os.path.expanduser(name))
    if path.exists():
        return _from_path(path)
    if path.suffix in (".pth", ".pt", ".safetensors", ".bin"):
        raise BackboneLoadError(f"checkpoint file {path} does not exist")
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        if not pretrained and name in _BY_HUB_ID:
            return _random_backbone(_BY_HUB_ID[name])
        return _from_hub(name, name)
    raise BackboneLoadError(
        f"unknown backbone '{name}': not a registered name ({', '.join(REGISTRY)}), "
        f"not an existing path and not a hub id of the form 'owner/model'"
    )
