"""Command-line flags of the segmentation settings, built from :class:`~deepcut.config.SegmentConfig`.

Every :class:`SegmentConfig` field becomes one flag described by its :class:`~deepcut.config.Option`
metadata (help, type, choices, flag name, ``nargs``), so a setting added to the config appears on the
command line without touching the CLI. Besides those, every command gets ``--backbone``,
``--random-weights``, ``--threads`` and ``--device`` (see :func:`make_model`).
"""

from __future__ import annotations

import argparse
from typing import Any, Iterable, Mapping

from ..backbones.precision import PRECISION_ENV
from ..config import Option, SegmentConfig, options, parse_epochs
from ..config import defaults as config_defaults
from ..errors import ConfigError, DeepCutError
from ..utils.device import DEVICE_ENV
from ..utils.threads import THREADS_ENV

#: Flags added next to the config fields whose default a command may also override.
MODEL_DEFAULTS: dict[str, Any] = {"backbone": "dino_vits8"}


class UsageError(DeepCutError):
    """Bad command-line usage (exit code 2)."""


def flag_names(name: str, opt: Option) -> list[str]:
    """The flags of field ``name``: its short flag (if any), then ``opt.flag`` or ``--name-with-dashes``."""
    return ([opt.short] if opt.short else []) + [opt.flag or "--" + name.replace("_", "-")]


def _help(opt: Option, default: Any, default_help: str | None) -> str:
    text = opt.help.replace("%", "%%")
    if default_help is not None:
        return f"{text} (default: {default_help.replace('%', '%%')})"
    if opt.kind is bool or default is None:  # a switch, or a None whose meaning the help already says
        return text
    if opt.nargs:
        return f"{text} (default: {' '.join(str(v) for v in default)})"
    return f"{text} (default: %(default)s)"


def _argument(name: str, opt: Option, default: Any, default_help: str | None) -> dict[str, Any]:
    """``add_argument`` keywords of field ``name``."""
    kw: dict[str, Any] = {"dest": name, "default": default, "help": _help(opt, default, default_help)}
    if opt.kind is bool:
        kw["action"] = argparse.BooleanOptionalAction if default else "store_true"
        return kw
    kw["type"] = opt.kind
    if opt.choices:
        kw["choices"] = opt.choices
    if opt.nargs:
        kw.update(nargs=opt.nargs, metavar="N", default=None if default is None else list(default))
    return kw


def add_config_args(parser: argparse.ArgumentParser, defaults: Mapping[str, Any] | None = None,
                    default_help: Mapping[str, str] | None = None, omit: Iterable[str] = ()) -> argparse._ArgumentGroup:
    """Add a flag for every :class:`SegmentConfig` field, plus ``--backbone``, ``--random-weights`` and
    ``--device``, in a "segmentation settings" group (returned).

    Args:
        parser: the command's parser.
        defaults: per-command defaults by field name (or ``backbone``), replacing the config's;
            ``None`` means "decided later by the command" (e.g. eval's task-dependent ``k``).
        default_help: per-field text shown as ``(default: TEXT)`` in ``--help``, for defaults that
            ``%(default)s`` cannot describe (such as a ``None`` from ``defaults``).
        omit: fields the command does not use: no flag (given anyway, argparse refuses it), their default.
    """
    fields = {name: opt for name, opt in options().items() if name not in set(omit)}
    overrides = dict(defaults or {})
    unknown = sorted(set(overrides) - set(fields) - set(MODEL_DEFAULTS))
    if unknown:
        raise ValueError(f"add_config_args: no such setting(s) {unknown}")
    base = {**config_defaults(), **MODEL_DEFAULTS, **overrides}
    texts = dict(default_help or {})
    g = parser.add_argument_group("segmentation settings")
    g.add_argument("--backbone", default=base["backbone"],
                   help="backbone name (see `python -m deepcut backbones`), 'color' (no weights), a hub id "
                        "or a local model folder (default: %(default)s)")
    g.add_argument("--random-weights", action="store_true",
                   help="build the backbone with random weights (testing and benchmarks only)")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help=f"CPU threads of the ViT (default: ${THREADS_ENV} if set, else the cores idle at the "
                        f"time; the GNN takes one for a short training, the idle cores for a long one)")
    g.add_argument("--device", default=None, metavar="{auto,cpu,cuda,cuda:N,mps}",
                   help=f"where to compute (default: ${DEVICE_ENV} if set, else auto: CUDA when available, "
                        f"else the CPU)")
    g.add_argument("--precision", default=None, metavar="{auto,fp32,bf16,fp16,int8}",
                   help=f"precision of the ViT forward pass, or an engine such as bf16-weights+sdpa or "
                        f"openvino-bf16 (CPU, the openvino extra) (default: "
                        f"${PRECISION_ENV} if set, else auto: the fastest engine faithful to fp32, measured once "
                        f"per machine and backbone and stored, see `deepcut speed`; int8: CPU only, opt-in)")
    for name, opt in fields.items():
        g.add_argument(*flag_names(name, opt), **_argument(name, opt, base[name], texts.get(name)))
    return g


def parse_objects(text: str) -> int | None:
    """``--objects`` (of ``label`` and ``eval``): a number of objects (1 or more), or ``auto`` / ``0``
    for the correlation-clustering variant that needs no number (None)."""
    if text.strip().lower() in ("auto", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of objects or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of objects (1 or more) or 'auto', got {value}")
    return value


def check_device(args: argparse.Namespace) -> None:
    """Raise :class:`UsageError` if ``--device`` names a device that is unknown or not on this machine,
    or ``--precision`` a precision that is unknown or not for that device."""
    from ..backbones.precision import resolve_precision
    from ..utils.device import resolve_device

    try:
        resolve_precision(getattr(args, "precision", None), resolve_device(getattr(args, "device", None)))
    except ConfigError as e:
        raise UsageError(str(e)) from None


def config_from_args(args: argparse.Namespace) -> SegmentConfig:
    """The :class:`SegmentConfig` of the parsed flags (fields the parser lacks keep their default).

    Also checks ``--device``, so that a command calling this first rejects bad flags (exit 2)
    before it reads or writes a file.

    Raises:
        UsageError: a value the config rejects, ``--epochs`` with other than one or three numbers,
            or a bad ``--device``.
    """
    values = {name: getattr(args, name) for name in options() if hasattr(args, name)}
    try:
        if values.get("epochs") is not None:
            values["epochs"] = parse_epochs(values["epochs"])
        cfg = SegmentConfig(**values)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    check_device(args)
    return cfg


def make_model(args: argparse.Namespace):
    """The :class:`~deepcut.DeepCut` of ``--backbone``, ``--random-weights`` and ``--device``, from a
    :class:`~deepcut.model_cache.ModelCache` (no fallback on the command line: a backbone that cannot load
    is an error that says what to do)."""
    from ..model_cache import ModelCache

    check_device(args)
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    pool = ModelCache(args.backbone, max_models=1, cache_size=4, device=getattr(args, "device", None),
                     pretrained=not args.random_weights, threads=threads, precision=getattr(args, "precision", None))
    model = pool.load(args.backbone)
    check_backbone_settings(args, model.backbone)
    return model


def check_colour_flags(args: argparse.Namespace) -> None:
    """Refuse ``--random-weights`` and a ``--precision`` other than auto or fp32 for the colour backbone (it has
    no weights, and computes in fp32), which would change nothing.

    Raises:
        UsageError: either was given.
    """
    if getattr(args, "random_weights", False):
        raise UsageError("the colour backbone has no weights: --random-weights does not apply to it (leave it "
                         "out, or choose a ViT with --backbone)")
    if getattr(args, "precision", None) not in (None, "auto", "fp32"):
        raise UsageError("the colour backbone has no ViT to run in another precision (it computes in fp32): "
                         "--precision does not apply to it (leave it out, or choose a ViT with --backbone)")


def check_backbone_settings(args: argparse.Namespace, backbone) -> None:
    """Refuse, as a usage error before any file is read, ``--stride``, ``--layer`` or ``--facet`` values that the
    loaded ``backbone`` cannot honour: a stride that does not divide its patch size, a layer out of its range, or
    any layer/facet other than the defaults on the colour backbone (it has one layer and no facets, so they
    would change nothing), or ``--random-weights`` or a ``--precision`` other than ``auto`` on it (it has no weights
    and computes in fp32)."""
    try:
        backbone.check_stride(getattr(args, "stride", None))
    except ConfigError as e:
        raise UsageError(f"--stride: {e}") from None
    layer, facet = getattr(args, "layer", None), getattr(args, "facet", None)
    if getattr(backbone, "family", None) == "color":
        check_colour_flags(args)
    if layer is None or facet is None:
        return
    if getattr(backbone, "family", None) == "color":
        base = config_defaults()
        if (layer, facet) != (base["layer"], base["facet"]):
            raise UsageError("the colour backbone has no ViT layers or facets: --layer and --facet do not apply "
                             "to it (leave them out, or choose a ViT with --backbone)")
        return
    try:
        backbone.check_layer_facet(int(layer), facet)
    except ConfigError as e:
        raise UsageError(str(e)) from None
