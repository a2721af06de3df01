"""``precision="auto"``: the engine chosen by measurement, where it runs, and remembered on disk.

On first use of a backbone on a device (CPU model and flags, or GPU name), with a torch version and
for a grid-size class (:func:`grid_class`: the backbone's default resolution's when the model is made,
then, lazily, every other one a model runs at: :class:`EngineChoices`), :func:`choose_engine` times the
faithful candidates (:func:`candidates`: float32; bf16 autocast with DeepCut's blocked attention or
PyTorch's SDPA; the blocks' weights cast to bf16; OpenVINO where it is installed; fp16 on CUDA; int8 is
shown, never chosen) on a seeded random image, and keeps the fastest whose last-layer key features stay within a mean
per-patch cosine of :data:`MIN_COSINE` of float32's (:func:`pick`). The choice is written to
``precision.json`` in :func:`cache_dir` (``$DEEPCUT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepcut``, else
``~/.cache/deepcut``), in one step and under a lock, so that the next model (another process, a labelling
worker) reads it instead of measuring again. A file that cannot be read or parsed counts as empty.

The measuring is bounded: one warm-up forward of every candidate (which also gives its features), then
rounds of one timed forward each, in turns, among the (at most :data:`MAX_TIMED`) candidates within
:data:`KEEP_WITHIN` of the fastest warm-up, until :data:`BUDGET_S` seconds have passed (at least one round, at most
:data:`MAX_ROUNDS`); each time is the minimum over its rounds. An engine's one-off set-up (OpenVINO's
conversion, done once per backbone, layer and facet and then read from the disk, and its compilation) is
timed apart, as its trial's ``setup_s``, and counts neither as forward time nor against the budget.

``$DEEPCUT_TUNE``: ``0`` / ``off`` measures nothing and reads no file (the rule of
:func:`~deepcut.backbones.precision.auto_precision`; the test suite sets it), ``force`` measures again
even where a choice is stored. A precision or engine named by the caller, ``$DEEPCUT_PRECISION`` or
``--precision`` is never measured.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..utils import files
from ..utils.files import cache_dir, read_json_dict, write_cache_json
from ..utils.threads import feature_threads, torch_threads
from . import openvino_engine
from .base import Backbone
from .precision import Engine, auto_precision, default_engine, machine, parse_engine
from .precision import hardware_line as hardware_line  # where the CLI and the benchmarks find it

#: Environment variable: ``0`` / ``off`` (never measure), ``force`` (measure again), else measure once.
TUNE_ENV = "DEEPCUT_TUNE"
#: Environment variable with the folder of the stored choices (:func:`~deepcut.utils.files.cache_dir`).
CACHE_ENV = files.CACHE_ENV
CACHE_FILE = "precision.json"
CACHE_VERSION = 1
#: The least mean per-patch cosine to float32's features a candidate must keep to be chosen.
MIN_COSINE = 0.999
#: Timed rounds stop once the measuring has taken this many seconds (the warm-up round always runs).
BUDGET_S = 3.0
MAX_ROUNDS = 5
#: Candidates whose warm-up took longer than this many times the fastest warm-up are not timed again ...
KEEP_WITHIN = 1.75
#: ... nor any but the this many fastest warm-ups.
MAX_TIMED = 3
REFERENCE = Engine("fp32", "sdpa")


@dataclass
class Trial:
    """One candidate's measurement.

    Attributes:
        engine: the engine's name.
        seconds: the fastest of its forward passes (the warm-up's where it ran only that one).
        cosine: mean per-patch cosine of its last-layer key features to float32's.
        min_cosine: the least per-patch cosine.
        runs: timed forward passes (0: only the warm-up ran).
        error: why it could not run (then it is never chosen).
        setup_s: its one-off set-up before the first forward pass (OpenVINO: converting or reading the model,
            compiling it), not counted in ``seconds``.
    """

    engine: str
    seconds: float = math.inf
    cosine: float = 0.0
    min_cosine: float = 0.0
    runs: int = 0
    error: str | None = None
    setup_s: float = 0.0

    def faithful(self, min_cosine: float = MIN_COSINE) -> bool:
        return self.error is None and self.cosine >= min_cosine


@dataclass
class Choice:
    """The engine chosen for a backbone, and how.

    Attributes:
        engine: the engine.
        how: ``"measured"`` (now), ``"stored"`` (read from the file), ``"pinned"`` (asked for by name),
            ``"rule"`` (nothing measured: :func:`~deepcut.backbones.precision.auto_precision`) or
            ``"fixed"`` (a backbone without weights).
        trials: the measurements it was chosen from (also those read back from the file).
        seconds: how long the measuring took.
        key: the key it is stored under (None where nothing is stored).
    """

    engine: Engine
    how: str
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    key: str | None = None


def candidates(device: torch.device | str, int8: bool = False, openvino: bool = True) -> list[Engine]:
    """The engines timed on ``device``, the float32 reference first (none off the CPU and CUDA); on the CPU
    with ``openvino``, :func:`~deepcut.backbones.openvino_engine.engines` (none where it is not installed).

    ``int8`` adds dynamic int8 quantization on the CPU: shown by ``deepcut speed``, never chosen by
    ``"auto"``. On a random image its cosine to float32 is about 0.999, the bar itself, and on held-out
    photos it flipped a foreground where bf16 did not (docs/speed.md, *Precision*), so it stays opt-in.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return [REFERENCE, Engine("bf16", "blocked"), Engine("bf16", "sdpa"), Engine("bf16", "sdpa", "bf16"),
                Engine("bf16", "blocked", "bf16"), *(openvino_engine.engines() if openvino else []),
                *([Engine("int8", "sdpa")] if int8 else [])]
    if device.type == "cuda":
        half = ["bf16"] if torch.cuda.is_bf16_supported() else []
        return [REFERENCE, *[Engine(p, "sdpa", w) for p in [*half, "fp16"] for w in ("fp32", p)]]
    return []


def pick(trials: list[Trial], min_cosine: float = MIN_COSINE) -> Engine:
    """The fastest of ``trials`` whose features are faithful (:meth:`Trial.faithful`); the first listed
    wins a tie; float32 where none is."""
    faithful = [t for t in trials if t.faithful(min_cosine) and math.isfinite(t.seconds)]
    if not faithful:
        return REFERENCE
    best = min(faithful, key=lambda t: t.seconds)
    return parse_engine(best.engine) or REFERENCE


# -- measuring ------------------------------------------------------------------------------------
def probe_pixels(backbone: Backbone, resolution: int | None = None) -> np.ndarray:
    """A seeded random ``(1, S, S, 3)`` uint8 image on whole patches, ``S`` the largest multiple of the
    patch size up to ``resolution`` (None: the backbone's default resolution)."""
    patch = backbone.patch_size
    side = max(patch, (int(resolution or backbone.default_resolution) // patch) * patch)
    return np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8)


def patch_class(patches: int) -> str:
    """The grid-size class of a grid of ``patches`` patches: ``"grid<=N"``, N the least power of 2 (from
    256) at or above it (ViT-S/8: 280 px, 1225 patches, ``grid<=2048``; 448 px ``grid<=4096``; 1024 px
    ``grid<=16384``). Attention's share of the work grows with the number of patches, and with it which
    engine is fastest."""
    bound = 256
    while bound < patches:
        bound *= 2
    return f"grid<={bound}"


def grid_class(backbone: Backbone, resolution: int | None = None) -> str:
    """The grid-size class (:func:`patch_class`) of ``resolution``'s patch grid (None: the default's)."""
    side = probe_pixels(backbone, resolution).shape[1] // backbone.patch_size
    return patch_class(side * side)


def class_resolution(backbone: Backbone, patches: int) -> int:
    """The side in pixels of a square image whose grid is of the class of ``patches`` patches' (measured for it)."""
    side = max(1, math.isqrt(patches))
    if patch_class(side * side) != patch_class(patches):
        side += 1
    return side * backbone.patch_size


def _forward(backbone: Backbone, pixels: np.ndarray) -> torch.Tensor:
    """The last layer's key features ``(N, D)`` of one image, finished on the device."""
    out = backbone.facet(backbone.embed(pixels, backbone.patch_size), backbone.depth - 1, "key")[0]
    if out.device.type == "cuda":
        torch.cuda.synchronize(out.device)
    return out


def _timed(backbone: Backbone, engine: Engine, pixels: np.ndarray) -> tuple[float, torch.Tensor]:
    backbone.set_engine(engine)
    t = time.perf_counter()
    out = _forward(backbone, pixels)
    return time.perf_counter() - t, out


def _warm_up(backbone: Backbone, engines: list[Engine], pixels: np.ndarray) -> list[Trial]:
    """One forward pass of each engine (the first is the reference): its time and its features' cosine."""
    trials, ref = [], None
    for engine in engines:
        trial = Trial(engine.name)
        try:
            backbone.set_engine(engine)
            trial.setup_s = round(backbone.prepare(backbone.depth - 1, "key"), 4)
            trial.seconds, out = _timed(backbone, engine, pixels)
        except (RuntimeError, ValueError, TypeError, NotImplementedError, MemoryError, ConfigError) as e:
            if ref is None:
                raise
            trial.error = f"{type(e).__name__}: {e}"[:200]
            trials.append(trial)
            continue
        if ref is None:
            ref = out.float().clone()
        cos = torch.nn.functional.cosine_similarity(out.float(), ref, dim=-1)
        trial.cosine, trial.min_cosine = round(float(cos.mean()), 6), round(float(cos.min()), 6)
        trials.append(trial)
    return trials


def measure(backbone: Backbone, engines: list[Engine] | None = None, resolution: int | None = None,
            budget_s: float | None = BUDGET_S, rounds: int = MAX_ROUNDS, keep_within: float | None = KEEP_WITHIN,
            threads: int | None = None) -> list[Trial]:
    """Time ``engines`` (None: :func:`candidates`; the first must be float32's, the reference) on
    :func:`probe_pixels` of ``resolution``: a warm-up round, then up to ``rounds`` timed rounds in turns
    while ``budget_s`` seconds have not passed (None: all ``rounds``), among the :data:`MAX_TIMED` fastest
    engines within ``keep_within`` times the fastest warm-up (None: all). Runs on ``threads`` threads (None: the idle
    cores, as the ViT would) and puts the backbone back in the engine it was in.

    Raises:
        RuntimeError etc.: the reference itself cannot run (any other engine's failure is its trial's
            ``error``).
    """
    engines = candidates(backbone.device) if engines is None else engines
    pixels, before, start = probe_pixels(backbone, resolution), backbone.engine, time.perf_counter()
    with torch_threads(feature_threads(threads)), backbone.trying_engines():
        try:
            trials = _warm_up(backbone, engines, pixels)
            fastest = min((t.seconds for t in trials if t.error is None), default=math.inf)
            timed = sorted(((e, t) for e, t in zip(engines, trials, strict=True) if t.error is None
                            and (keep_within is None or t.seconds <= keep_within * fastest)),
                           key=lambda et: et[1].seconds)[:MAX_TIMED if keep_within is not None else None]
            setup = sum(t.setup_s for t in trials)
            for i in range(rounds):
                if i and budget_s is not None and time.perf_counter() - start - setup > budget_s:
                    break
                for engine, trial in timed:
                    seconds, _ = _timed(backbone, engine, pixels)
                    trial.seconds = seconds if trial.runs == 0 else min(trial.seconds, seconds)
                    trial.runs += 1
        finally:
            backbone.set_engine(before)
    return trials


# -- the stored choices ---------------------------------------------------------------------------
def cache_key(backbone: Backbone, resolution: int | None = None) -> str:
    """The key a choice is stored under: the machine, the torch version, OpenVINO's where it is installed and
    the backbone runs on the CPU (so that installing or upgrading OpenVINO measures again, with it among the
    candidates), the backbone and the grid-size class of ``resolution``."""
    runtime = openvino_engine.installed_version() if torch.device(backbone.device).type == "cpu" else None
    return f"{machine(backbone.device)} | torch {torch.__version__} | " + \
        (f"openvino {runtime} | " if runtime else "") + f"{backbone.name} | {grid_class(backbone, resolution)}"


def read_choices(path: Path | None = None) -> dict[str, Any]:
    """The stored choices by key; ``{}`` where the file is missing, unreadable, not JSON or of another version."""
    data = read_json_dict(path or cache_dir() / CACHE_FILE)
    if data.get("version") != CACHE_VERSION or not isinstance(data.get("choices"), dict):
        return {}
    return data["choices"]


def stored_choice(key: str, device: torch.device | str, path: Path | None = None) -> Choice | None:
    """The choice stored under ``key``, if it names an engine that can run on ``device``."""
    entry = read_choices(path).get(key)
    if not isinstance(entry, dict):
        return None
    engine = parse_engine(entry.get("engine"))
    if engine is None or engine not in candidates(device, openvino=engine.runtime == "openvino"):
        return None
    trials = []
    rows = entry.get("trials")
    for row in rows if isinstance(rows, list) else []:
        try:
            trial = Trial(**row)
            trial.seconds = math.inf if trial.seconds is None else float(trial.seconds)
        except (TypeError, ValueError):  # not a mapping, other fields, not a number
            continue
        trials.append(trial)
    seconds = entry.get("seconds", 0.0)
    return Choice(engine, "stored", trials, float(seconds) if isinstance(seconds, (int, float)) else 0.0, key)


def store_choice(choice: Choice, path: Path | None = None) -> None:
    """Add ``choice`` to the file (read again first, so that other keys stay), in one step; a folder that
    cannot be written is passed over (the choice then holds for this process only)."""
    path = path or cache_dir() / CACHE_FILE
    choices = read_choices(path)
    choices[str(choice.key)] = {"engine": choice.engine.name, "seconds": round(choice.seconds, 3),
                                "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                "trials": [{**asdict(t), "seconds": round(t.seconds, 5) if math.isfinite(t.seconds)
                                            else None, "setup_s": round(t.setup_s, 3)} for t in choice.trials]}
    write_cache_json(path, {"version": CACHE_VERSION, "choices": choices})


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/precision.lock`` (nothing where it cannot be made), so that
    processes starting together measure one at a time and the later ones read the first one's choice."""
    try:
        import fcntl

        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / "precision.lock", "a")
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def tune_mode() -> str:
    """``"off"``, ``"force"`` or ``"on"``, from ``$DEEPCUT_TUNE``."""
    raw = os.environ.get(TUNE_ENV, "").strip().lower()
    if raw in ("0", "off", "false", "no"):
        return "off"
    return "force" if raw == "force" else "on"


def choose_engine(backbone: Backbone, asked: str = "auto", threads: int | None = None,
                  resolution: int | None = None) -> Choice:
    """The engine ``backbone`` runs in for ``asked`` (a checked precision or engine name, or ``"auto"``).

    ``"auto"``: the stored choice for :func:`cache_key` (with the grid-size class of ``resolution``; None:
    the default resolution's), else measured now at ``resolution`` (:func:`measure`, :func:`pick`) and
    stored, else, where nothing can be measured (``$DEEPCUT_TUNE=0``, a device other than the CPU or CUDA,
    the reference failing), :func:`~deepcut.backbones.precision.auto_precision`'s rule. A precision runs
    its :func:`~deepcut.backbones.precision.default_engine`, an engine's name that engine.
    """
    device = backbone.device
    if not backbone.tunable:
        return Choice(Engine(), "fixed")
    if asked != "auto":
        return Choice(parse_engine(asked) or default_engine(asked, device), "pinned")
    rule = Choice(default_engine(auto_precision(device), device), "rule")
    mode = tune_mode()
    if mode == "off" or not candidates(device, openvino=False):  # (no OpenVINO import where a choice is stored)
        return rule
    key, folder = cache_key(backbone, resolution), cache_dir()
    with locked(folder):
        stored = stored_choice(key, device, folder / CACHE_FILE) if mode == "on" else None
        if stored is not None:
            return stored
        start = time.perf_counter()
        try:
            trials = measure(backbone, resolution=resolution, threads=threads)
        except (RuntimeError, ValueError, TypeError, NotImplementedError, MemoryError):
            return rule
        choice = Choice(pick(trials), "measured", trials, time.perf_counter() - start, key)
        store_choice(choice, folder / CACHE_FILE)
    return choice


class EngineChoices:
    """``"auto"``'s engine for every grid-size class a model runs at (:func:`patch_class`): ``first``, chosen
    for the backbone's default resolution, then each other class's chosen (:func:`choose_engine`: stored,
    else measured on a square image of that class, else the rule) on its first use, and kept."""

    def __init__(self, backbone: Backbone, first: Choice, threads: int | None = None) -> None:
        self.backbone, self.threads = backbone, threads
        self.by_class: dict[str, Choice] = {grid_class(backbone): first}

    def engine_for(self, grid: tuple[int, int]) -> Engine:
        """The engine for a grid of ``grid = (h, w)`` patches."""
        patches = int(grid[0]) * int(grid[1])
        known = self.by_class.get(patch_class(patches))
        if known is None:
            resolution = class_resolution(self.backbone, patches)
            known = self.by_class[patch_class(patches)] = choose_engine(self.backbone, "auto", self.threads,
                                                                        resolution)
        return known.engine
