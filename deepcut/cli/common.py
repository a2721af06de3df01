"""Argument handling shared by every ``python -m deepcut`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import FACETS, LOSSES, SegmentConfig
from ..errors import ConfigError, DeepCutError


class UsageError(DeepCutError):
    """Bad command-line usage (exit code 2)."""


def add_config_args(p: argparse.ArgumentParser) -> None:
    """Add a flag for every :class:`SegmentConfig` field, plus ``--backbone`` / ``--random-weights``."""
    d = SegmentConfig()
    g = p.add_argument_group("segmentation settings")
    g.add_argument("--backbone", default="dino_vits8",
                   help="backbone name (see `python -m deepcut backbones`), 'color' (no weights), a hub id "
                        "or a local model folder (default: %(default)s)")
    g.add_argument("--random-weights", action="store_true",
                   help="build the backbone with random weights (testing and benchmarks only)")
    g.add_argument("-k", "--k", type=int, default=d.k, help="number of clusters / foreground parts (default: %(default)s)")
    g.add_argument("--loss", choices=LOSSES, default=d.loss, help="clustering objective (default: %(default)s)")
    g.add_argument("--alpha", type=float, default=d.alpha, help="CC sensitivity, larger = more segments (default: %(default)s)")
    g.add_argument("--layer", type=int, default=d.layer, help="ViT layer, 0-based (default: %(default)s)")
    g.add_argument("--facet", choices=FACETS, default=d.facet, help="ViT facet (default: %(default)s)")
    g.add_argument("--resolution", type=int, default=d.resolution,
                   help="working resolution in pixels, ~(resolution/patch)^2 patches (default: %(default)s)")
    g.add_argument("--stride", type=int, default=None, help="patch stride in pixels (default: the patch size)")
    g.add_argument("--stages", type=int, choices=(1, 2, 3), default=d.stages,
                   help="1: k-way, 2: + foreground parts, 3: + background parts (default: %(default)s)")
    g.add_argument("--epochs", type=int, nargs="+", default=list(d.epochs), metavar="N",
                   help="GNN epochs of stages 1 [2 3] (default: 10 100 10)")
    g.add_argument("--bg-k", type=int, default=d.bg_k, help="background parts in stage 3 (default: %(default)s)")
    g.add_argument("--largest-component", action="store_true", help="keep only the largest foreground component")
    g.add_argument("--seed", type=int, default=d.seed, help="GNN seed (default: %(default)s)")
    g.add_argument("--log-bin", action="store_true",
                   help="log-binned descriptor (feature + neighbourhood averages at 2 scales, 17x longer)")


def config_from_args(args: argparse.Namespace) -> SegmentConfig:
    """The :class:`SegmentConfig` described by parsed flags; raises :class:`UsageError`."""
    epochs = list(args.epochs)
    if len(epochs) not in (1, 3):
        raise UsageError(f"--epochs takes 1 or 3 numbers, got {len(epochs)}")
    if len(epochs) == 1:
        epochs = [epochs[0], *SegmentConfig().epochs[1:]]
    try:
        return SegmentConfig(
            k=args.k, loss=args.loss, alpha=args.alpha, layer=args.layer, facet=args.facet,
            resolution=args.resolution, stride=args.stride, stages=args.stages, epochs=tuple(epochs),
            bg_k=args.bg_k, largest_component=args.largest_component, seed=args.seed,
            log_bin=getattr(args, "log_bin", False),
        )
    except ConfigError as e:
        raise UsageError(str(e)) from None


def make_model(args: argparse.Namespace):
    """Build :class:`~deepcut.DeepCut` from ``--backbone`` / ``--random-weights``."""
    from ..predictor import DeepCut

    return DeepCut(args.backbone, pretrained=not args.random_weights)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files named on the command line; a directory stands for its (non-hidden) files, sorted.

    Missing paths are kept, so that they are reported as failures like unreadable files.

    Raises:
        DeepCutError: nothing to process (only empty folders); the CLI exits with 1.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")))
        else:
            files.append(path)
    if not files:
        raise DeepCutError("no input files found")
    return files


def file_error(path: Path, exc: Exception) -> str:
    """The message for a file that failed, naming it once (many errors already name the file)."""
    return str(exc) if str(path) in str(exc) else f"{path}: {exc}"


def unique_stems(files: list[Path]) -> list[str]:
    """Output stems, made unique (``a``, ``a_2``, …) when two inputs share a stem."""
    seen: dict[str, int] = {}
    stems = []
    for f in files:
        n = seen.get(f.stem, 0) + 1
        seen[f.stem] = n
        stems.append(f.stem if n == 1 else f"{f.stem}_{n}")
    return stems


def error(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
