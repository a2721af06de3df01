"""The ``deepcut`` command line (also ``python -m deepcut``).

Each command lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``func``; :data:`COMMANDS` lists them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from ..errors import DeepCutError
from . import eval as eval_cmd
from . import label, segment, slides, speed
from . import video as video_cmd
from .common import TERMINATING, Terminated, UsageError, error

COMMANDS = [segment, eval_cmd, video_cmd, label, slides, speed]


def _backbones(args: argparse.Namespace) -> int:
    from ..backbones import list_backbones

    rows = list_backbones()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<18} {'patch':>5} {'dim':>5} {'depth':>5} {'reg':>3}  {'positions':<22} {'default resolution':<25}"
          f" {'licence':<24} weights")
    for r in rows:
        side = int(round(r["patches"] ** 0.5))
        licence = r["licence"] + (", gated" if r["gated"] else "")
        print(f"{r['name']:<18} {r['patch_size']:>5} {r['dim']:>5} {r['depth']:>5} {r['registers']:>3}  "
              f"{r['position']:<22} {str(r['resolution']) + f' px ({side} x {side} patches)':<25} {licence:<24} "
              f"{'none needed' if r['hub_id'] is None else 'huggingface.co/' + r['hub_id']}")
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


def _terminate(signum, frame) -> None:
    TERMINATING.set()  # an exception raised inside a finaliser is dropped: the loops check this too
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    on_main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if on_main else None
    TERMINATING.clear()
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        error(str(e))
        return 2
    except DeepCutError as e:
        error(str(e))
        return 1
    except Terminated:
        error("terminated")
        return 143
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, before)
