"""Building a :class:`~deepcut.backbones.base.Backbone` from a name, hub id, local folder, original DINO /
DINOv2 / DINOv3 checkpoint or random weights.

Pretrained weights come from the HuggingFace cache or hub (:mod:`deepcut.backbones.hub`); a local
folder or an original ``.pth`` (:mod:`deepcut.backbones.checkpoint`, :mod:`deepcut.backbones.dinov3`)
works too, and
``DEEPCUT_WEIGHTS`` points the default backbone at one. The names are those of
:mod:`deepcut.backbones.specs`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BackboneLoadError
from .arch import build_model, check_config_size
from .base import Backbone
from .checkpoint import load_dino_checkpoint, split_branch
from .color import ColorBackbone
from .dinov2 import Dinov2Backbone
from .dinov3 import Dinov3Backbone
from .hub import load_pretrained
from .specs import BY_HUB_ID, DEFAULT_BACKBONE, REGISTRY, WEIGHTS_ENV, BackboneSpec
from .vit import ViTBackbone


def _random_backbone(spec: BackboneSpec, seed: int = 0) -> Backbone:
    """``spec``'s architecture with seeded random weights (two such backbones are identical)."""
    return wrap_model(build_model(spec.arch(), seed=seed), name=spec.name, source="random")


_MODEL_CLASSES = {
    # model_type → (transformers class, from_pretrained keyword arguments)
    "vit": ("ViTModel", {"add_pooling_layer": False}),
    "dinov2": ("Dinov2Model", {}),
    "dinov2_with_registers": ("Dinov2WithRegistersModel", {}),
    "dinov3_vit": ("DINOv3ViTModel", {}),
}
_FAMILY_MODEL_TYPE = {"vit": "vit", "dinov2": "dinov2", "dinov2_reg": "dinov2_with_registers", "dinov3": "dinov3_vit"}


def _model_class_for(model_type: str):
    """``(transformers model class, from_pretrained kwargs)`` of a config's ``model_type``."""
    import transformers

    if model_type not in _MODEL_CLASSES:
        raise BackboneLoadError(
            f"model type '{model_type}' is not supported; expected one of {sorted(_MODEL_CLASSES)} "
            f"(DINO ViTs, DINOv2, DINOv2 with registers, DINOv3 ViTs)"
        )
    cls_name, kwargs = _MODEL_CLASSES[model_type]
    return getattr(transformers, cls_name), dict(kwargs)


def wrap_model(model, name: str, source: str) -> Backbone:
    """A :class:`Backbone` around a ``transformers`` ``ViTModel`` / ``Dinov2Model`` /
    ``Dinov2WithRegistersModel`` / ``DINOv3ViTModel``."""
    model_type = getattr(model.config, "model_type", "")
    if model_type == "vit":
        return ViTBackbone(model, name=name, source=source)
    if model_type in ("dinov2", "dinov2_with_registers"):
        return Dinov2Backbone(model, name=name, source=source)
    if model_type == "dinov3_vit":
        return Dinov3Backbone(model, name=name, source=source)
    raise BackboneLoadError(f"model type '{model_type}' is not supported; expected one of {sorted(_MODEL_CLASSES)}")


def _from_folder(path: Path) -> Backbone:
    import json

    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise BackboneLoadError(f"{path} is a folder but has no config.json: expected a HuggingFace-format "
                                f"model folder (config.json + model.safetensors)")
    try:
        config = json.loads(cfg_file.read_text())
        model_type = config.get("model_type", "")
    except OSError as e:
        raise BackboneLoadError(f"{cfg_file} cannot be read ({e.strerror or e})") from None
    except (ValueError, AttributeError, RecursionError) as e:  # RecursionError: nested too deep to be a config
        raise BackboneLoadError(f"{cfg_file} is not valid JSON of a model config: {e}") from None
    check_config_size(config, str(cfg_file))
    cls, kwargs = _model_class_for(model_type)
    try:
        model = cls.from_pretrained(str(path), local_files_only=True, **kwargs)
    except Exception as e:
        raise BackboneLoadError(f"could not load the model in {path}: {type(e).__name__}: {e}") from None
    return wrap_model(model, name=str(path), source=str(path))


def _from_path(path: Path, branch: str | None = None) -> Backbone:
    """A local HF-format folder or an original DINO checkpoint file (``branch``: teacher/student)."""
    if path.is_dir() and branch is None:
        return _from_folder(path)
    if path.is_file():
        model, _ = load_dino_checkpoint(path, branch=branch)
        name = f"{path}#{branch}" if branch else str(path)
        return wrap_model(model, name=name, source=name)
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
    spec = BY_HUB_ID.get(hub_id)
    if spec is not None:
        model_type = _FAMILY_MODEL_TYPE[spec.family]
    else:
        from transformers import AutoConfig

        model_type = getattr(load_pretrained(AutoConfig, hub_id, name), "model_type", "")
    cls, kwargs = _model_class_for(model_type)
    model = load_pretrained(cls, hub_id, name, **kwargs)
    return wrap_model(model, name=name, source=hub_id)


def load_backbone(backbone: str | Backbone = DEFAULT_BACKBONE, pretrained: bool = True) -> Backbone:
    """Build a backbone by name, hub id or local path.

    Args:
        backbone: a registry name (:func:`list_backbones`), ``"color"``, a local HF-format folder, an
            original DINO/DINOv2/DINOv3 checkpoint file (``.pth``, architecture read from its shapes; of a
            training checkpoint the teacher, or the student with ``"checkpoint.pth#student"``), a hub
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
        assert spec.hub_id is not None  # only the colour backbone has none
        return _from_hub(spec.hub_id, name)
    base, branch = split_branch(name)
    path = Path(os.path.expanduser(base))
    if path.exists():
        return _from_path(path, branch)
    if path.suffix in (".pth", ".pt", ".safetensors", ".bin"):
        raise BackboneLoadError(f"checkpoint file {path} does not exist")
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        if not pretrained and name in BY_HUB_ID:
            return _random_backbone(BY_HUB_ID[name])
        return _from_hub(name, name)
    raise BackboneLoadError(
        f"unknown backbone '{name}': not a registered name ({', '.join(REGISTRY)}), "
        f"not an existing path and not a hub id of the form 'owner/model'"
    )
