"""Segmentation settings, each declared once with the metadata every front end reads.

:class:`SegmentConfig` is the single place a setting is defined: its default, type, allowed values,
help text, command-line flag and the range a slider offers all live in the field's
:class:`Option` metadata. The CLI (:mod:`deepcut.cli.options`) and the web app build their controls
from :func:`options`, so a new setting is added here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from .errors import ConfigError
from .utils.coerce import as_bool, as_choice, as_float, as_int

Loss = Literal["ncut", "cc"]
Facet = Literal["key", "query", "value", "token"]
FACETS: tuple[str, ...] = ("key", "query", "value", "token")
LOSSES: tuple[str, ...] = ("ncut", "cc")
#: Edge refinements of the label map (:mod:`deepcut.segmentation.refine`); "none" is the paper's upsampling.
REFINEMENTS: tuple[str, ...] = ("none", "guided", "crf")
#: The number of clusters ``k`` when none is given: a bipartition for NCut; for CC, whose ``k`` is
#: only an upper bound, the authors' bound of 10, so that CC finds the number of segments itself.
DEFAULT_K: dict[str, int] = {"ncut": 2, "cc": 10}
#: Hard limits that keep one request bounded (the sliders' ranges are narrower).
MAX_CLUSTERS = 64
MAX_EPOCHS = 10_000
MAX_RESOLUTION = 4096
#: The smallest resolution (pixels) a config takes.
MIN_RESOLUTION = 16
MAX_SEED = 2**63 - 2  # the GNN's dropout generator takes seed + 1
#: The working resolution when none is given and the backbone has no default of its own (DINO, DINOv2;
#: a backbone states its own as ``default_resolution``, e.g. 448 px for DINOv3's 16-px patches).
DEFAULT_RESOLUTION = 280
#: Epochs of stages 2 and 3 when only the first stage's are given.
DEFAULT_LATER_EPOCHS: tuple[int, int] = (100, 10)


@dataclass(frozen=True)
class Option:
    """How one :class:`SegmentConfig` field is presented and checked.

    Attributes:
        help: one-line description (CLI ``--help``, app info text).
        label: short UI label.
        kind: ``int``, ``float``, ``str`` or ``bool`` (``epochs``: ``int``, one or three values).
        choices: allowed values, if a fixed set.
        minimum, maximum: the range (``maximum`` is a UI range, not a hard cap, unless noted).
        step: slider step.
        flag: the command-line flag (default ``--`` + the name with ``-`` for ``_``).
        short: an extra short flag (``-k``).
        nargs: ``"+"`` for a field that takes several numbers on the command line.
        optional: ``None`` is allowed (e.g. ``stride``: the patch size).
    """

    help: str
    label: str
    kind: type = int
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    flag: str | None = None
    short: str | None = None
    nargs: str | None = None
    optional: bool = False


def _opt(default: Any, **meta: Any) -> Any:
    return field(default=default, metadata={"option": Option(**meta)})


def parse_epochs(value: int | Sequence[int]) -> tuple[int, int, int]:
    """Epochs of stages 1-3 from one number (stage 1; stages 2 and 3 keep
    :data:`DEFAULT_LATER_EPOCHS`) or three, each in ``1 … MAX_EPOCHS``; raises :class:`ConfigError`."""
    wants = f"one number or three (stage 1, 2, 3), each 1 … {MAX_EPOCHS}"
    if value is None or isinstance(value, (bool, dict, set)):
        raise ConfigError(f"epochs must be {wants}, got {value!r}")
    values: list[Any] = [value] if isinstance(value, (int, numbers.Number, str)) else list(value)
    if len(values) == 1:
        values += list(DEFAULT_LATER_EPOCHS)
    if len(values) != 3:
        raise ConfigError(f"epochs must be {wants}, got {value!r}")
    try:
        return tuple(as_int("epochs", v, 1, MAX_EPOCHS) for v in values)  # type: ignore[return-value]  # three
    except ConfigError:
        raise ConfigError(f"epochs must be {wants}, got {value!r}") from None


@dataclass(frozen=True)
class SegmentConfig:
    """Every knob of a DeepCut segmentation (see each field's :class:`Option` for its help text).

    Attributes:
        k: number of clusters. With ``stages=1`` the image is split into ``k`` segments; with
            ``stages>=2`` the first stage is a foreground/background bipartition and ``k`` is the
            number of foreground parts. NCut gives ``k`` segments; with ``loss="cc"`` it is only an
            upper bound (CC finds the number itself). ``None`` (the default) means
            :data:`DEFAULT_K`: 2 for NCut, 10 for CC; the config then holds the resolved number, and
            :meth:`replace` with another ``loss`` resolves it again.
        loss: ``"ncut"`` (relaxed normalized cut + orthogonality, as in MinCutPool) or ``"cc"``
            (correlation clustering, finds the number of segments itself).
        alpha: CC's threshold: the graph is ``W - max(W) / alpha``, so pairs less similar than
            ``1/alpha`` of the strongest similarity repel; a larger alpha gives fewer, larger segments.
        layer: ViT block whose features are used (0-based; negative counts from the end).
        facet: ``"key"``, ``"query"``, ``"value"`` or ``"token"``.
        resolution: the image is resized, keeping its aspect ratio, to about
            ``resolution x resolution`` pixels, i.e. about ``(resolution / patch)**2`` patches.
            ``None`` (the default) means the backbone's default: :data:`DEFAULT_RESOLUTION` (280) until
            the config meets a backbone, which replaces it with its own (:meth:`with_default_resolution`;
            448 for DINOv3), as :meth:`replace` keeps an unset resolution unset.
        stride: patch stride of the ViT (``None``: the patch size, no overlap).
        stages: 1 (k-way), 2 (+ foreground parts) or 3 (+ background parts).
        epochs: GNN training epochs of stages 1, 2 and 3 (one number: stage 1 only), at most where ``settle``.
        settle: stop a stage's training once it has settled (:data:`~deepcut.clustering.settle.SETTLE`: its argmax
            labels unchanged and its loss flat, after 20 epochs at the earliest), with the same labels as the
            full training at that epoch; False: train every epoch.
        bg_k: number of background parts in stage 3.
        largest_component: keep only the largest connected foreground component.
        seed: seed of the GNN initialisation and dropout; equal seeds give equal results.
        log_bin: use the log-binned descriptor of Amir et al. (each patch's feature plus averages of
            its neighbourhood at two scales, 17x longer) instead of the plain facet.
        refine: how patch labels become pixel labels: ``"none"`` (the paper's smooth upsampling),
            ``"guided"`` (guided filter: edges follow the image, fast) or ``"crf"`` (dense CRF); the
            foreground, largest component and box then come from the refined labels.
    """

    k: int | None = _opt(None, help="number of clusters (stage 1 alone) or of foreground parts (stages 2-3): "
                                   "exactly k for ncut, an upper bound for cc (default: 2 for ncut, 10 for cc)",
                         label="Number of clusters k", minimum=2, maximum=10, step=1, short="-k", optional=True)
    loss: Loss = _opt("ncut", help="clustering objective: ncut (normalized cut) or cc (correlation clustering)",
                      label="Loss", kind=str, choices=LOSSES)
    alpha: float = _opt(3.0, help="CC threshold: pairs less similar than max(W)/alpha repel, so a larger alpha "
                                  "gives fewer, larger segments", label="CC sensitivity α",
                        kind=float, minimum=1.0, maximum=10.0, step=0.1)
    layer: int = _opt(11, help="ViT layer whose features are used, 0-based (negative: from the end)",
                      label="ViT layer", minimum=0, maximum=11, step=1)
    facet: Facet = _opt("key", help="ViT facet describing a patch", label="Facet", kind=str, choices=FACETS)
    resolution: int = _opt(None, help="working resolution in pixels, about (resolution/patch)^2 patches "
                                      "(default: the backbone's: 280; 448 for DINOv3)",
                           label="Resolution (px)", minimum=64, maximum=640, step=8, optional=True)
    stride: int | None = _opt(None, help="patch stride in pixels (default: the patch size)", label="Stride",
                              minimum=1, optional=True)
    stages: int = _opt(1, help="1: k-way, 2: + foreground parts, 3: + background parts", label="Stages",
                       choices=(1, 2, 3))
    epochs: tuple[int, int, int] = _opt((10, 100, 10), help="GNN epochs of stages 1 [2 3]",
                                        label="Epochs", minimum=1, maximum=300, step=1, nargs="+")
    settle: bool = _opt(True, help="stop a stage's training once its labels and loss have settled (never before "
                                   "20 epochs: 10-epoch stages train every epoch); --no-settle trains every epoch",
                        label="Stop when settled", kind=bool)
    bg_k: int = _opt(2, help="background parts in stage 3", label="Background parts", minimum=2, maximum=10,
                     step=1)
    largest_component: bool = _opt(False, help="keep only the largest connected foreground component",
                                   label="Largest connected component", kind=bool)
    seed: int = _opt(0, help="GNN seed; the same seed gives the same result", label="Seed", minimum=0,
                     maximum=99, step=1)
    log_bin: bool = _opt(False, help="log-binned descriptor (feature + neighbourhood averages at 2 scales, "
                                     "17x longer)", label="Log-binned descriptor", kind=bool)
    refine: str = _opt("none", help="edge refinement of the pixel labels: none (patch upsampling, as in the "
                                    "paper), guided (guided filter, edges follow the image) or crf (dense CRF)",
                       label="Edge refinement", kind=str, choices=REFINEMENTS)

    def __post_init__(self) -> None:
        """Check every field and coerce lossless variants (``"3"`` → 3); :class:`ConfigError` names
        the field and what it accepts."""
        check = {
            "loss": lambda v: as_choice("loss", v, LOSSES),
            "facet": lambda v: as_choice("facet", v, FACETS),
            "refine": lambda v: as_choice("refine", v, REFINEMENTS),
            "k": lambda v: None if v is None else as_int("k", v, 2, MAX_CLUSTERS),
            "bg_k": lambda v: as_int("bg_k", v, 2, MAX_CLUSTERS),
            "alpha": lambda v: as_float("alpha", v, positive=True),
            "layer": lambda v: as_int("layer", v),
            "resolution": lambda v: DEFAULT_RESOLUTION if v is None else as_int("resolution", v, MIN_RESOLUTION,
                                                                                 MAX_RESOLUTION),
            "stride": lambda v: None if v is None else as_int("stride", v, 1),
            "stages": lambda v: as_choice("stages", v, (1, 2, 3)),
            "largest_component": lambda v: as_bool("largest_component", v),
            "seed": lambda v: as_int("seed", v, 0, MAX_SEED),
            "log_bin": lambda v: as_bool("log_bin", v),
            "settle": lambda v: as_bool("settle", v),
            "epochs": parse_epochs,
        }
        unset_resolution = self.resolution is None
        for name, fn in check.items():
            object.__setattr__(self, name, fn(getattr(self, name)))
        # resolution=None: the backbone's default, remembered so that a backbone can put in its own
        object.__setattr__(self, "_resolution_auto", unset_resolution)
        # k=None: the loss's default, remembered so that replace(loss=...) picks the other loss's default
        object.__setattr__(self, "_k_auto", self.k is None)
        if self.k is None:
            object.__setattr__(self, "k", DEFAULT_K[self.loss])

    def replace(self, **overrides: Any) -> "SegmentConfig":
        """A copy with some fields changed; unknown names raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; valid: {sorted(names)}")
        if getattr(self, "_k_auto", False) and "k" not in overrides:
            overrides = {**overrides, "k": None}
        out = dataclasses.replace(self, **overrides)
        if not self.resolution_given and "resolution" not in overrides:  # still the backbone's to choose
            object.__setattr__(out, "_resolution_auto", True)
        return out

    @property
    def resolution_given(self) -> bool:
        """Whether ``resolution`` was set, rather than left to the backbone's default."""
        return not getattr(self, "_resolution_auto", False)

    def with_default_resolution(self, resolution: int | None) -> "SegmentConfig":
        """This config with an unset ``resolution`` replaced by ``resolution`` (a backbone's default;
        it stays "unset", so another backbone puts in its own); a set one, or ``None``, changes nothing."""
        if self.resolution_given or resolution is None or int(resolution) == self.resolution:
            return self
        out = self.replace(resolution=int(resolution))
        object.__setattr__(out, "_resolution_auto", True)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["epochs"] = list(self.epochs)
        return d

    @property
    def first_stage_k(self) -> int:
        """Clusters of stage 1: 2 (a bipartition) when more stages follow, else ``k``."""
        assert self.k is not None  # resolved when the config was made
        return 2 if self.stages >= 2 else int(self.k)


def options() -> dict[str, Option]:
    """Every :class:`SegmentConfig` field's :class:`Option`, in declaration order."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(SegmentConfig)}


def defaults() -> dict[str, Any]:
    """Every field's default value, as declared (``k`` and ``resolution`` are None: the loss's and the
    backbone's default, see :data:`DEFAULT_K` and :data:`DEFAULT_RESOLUTION`)."""
    return {**SegmentConfig().to_dict(), "k": None, "resolution": None}


def make_config(config: SegmentConfig | None, overrides: dict[str, Any]) -> SegmentConfig:
    """``config`` (default :class:`SegmentConfig`) with single fields replaced by ``overrides``."""
    if config is not None and not isinstance(config, SegmentConfig):
        raise ConfigError(f"config must be a SegmentConfig (or None), got a {type(config).__name__}; pass single "
                          f"settings as keywords, e.g. segment(image, k=3)")
    cfg = config or SegmentConfig()
    return cfg.replace(**overrides) if overrides else cfg
