"""The ``deepcut`` command line (also ``python -m deepcut``).

Each command lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``func``; :data:`COMMANDS` lists them.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import DeepCutError
from . import eval as eval_cmd
from . import label, segment, slides
from . import video as video_cmd
from .common import UsageError, error

COMMANDS = [segment, eval_cmd, video_cmd, label, slides]


def _backbones(args: argparse.Namespace) -> int:
    from ..backbones import list_backbones

    rows = list_backbones()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['name']:<20} patch {r['patch_size']:>2}  dim {r['dim']:>4}  depth {r['depth']:>2}  "
            f"weights: {r['weights']}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="deepcut",
                                description="DeepCut: unsupervised segmentation with graph neural network clustering")
    p.add_argument("--version", action="version", version=f"deepcut-gnn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    b = sub.add_parser("backbones", help="list the available backbones")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_backbones)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        error(str(e))
        return 2
    except DeepCutError as e:
        error(str(e))
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130
