"""Corrections by click: *join* two points into one segment, or *separate* them, on a result already computed.

The correction continues the result's own trained GNNs (:attr:`Segmentation.models`) on the same graph with
must-link / cannot-link constraints added (:mod:`deepcut.clustering.links`): each point speaks through the patches of
its segment that look like it, the stages that decide the pair train a few epochs on
``loss + w · link_loss`` until the pair holds, the other stages keep their GNN. What the GNN still gets wrong
at the clicked points is then enforced (a join merges the two segments, a separation splits the segment
between the two points), so every joined pair shares a label and every separated pair does not. The new
labels are matched to the old ones, so an untouched segment keeps its number and colour.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from ..clustering.fit import Clusterer, fit
from ..clustering.links import Link, Links
from ..config import SegmentConfig
from ..errors import ConfigError
from ..features.image import pixel_to_patch
from ..features.store import PatchFeatures
from ..graph.patch_graph import graph_of
from ..segmentation.finish import to_segmentation
from ..segmentation.result import Segmentation
from ..stages.run import NO_FOREGROUND, StageOutput, Tracking, relabel, run_stages
from ..utils.masks import background_label, present_labels
from ..utils.matching import best_matching, iou_matrix

#: Each point speaks through at most this many patches (those most like it): the penalty stays cheap.
GROUP_SIZE = 64
#: Most correction pairs in one call (joins and separations together): each adds a link to the GNN's training
#: and a round to their enforcement, so that thousands (2 minutes of CPU for 5000 on a 56 x 56 grid) are
#: refused instead of running for minutes. The app uses the same cap.
MAX_CORRECTIONS = 32

Point = tuple[float, float]
Pair = tuple[Point, Point]


@dataclass(frozen=True)
class Correction:
    """One click pair: ``kind`` ``"join"`` or ``"separate"``, the two points ``(x, y)`` in input pixels."""

    kind: str
    points: Pair


def as_pairs(name: str, pairs: Iterable | None) -> list[Pair]:
    """``[((x, y), (x, y)), …]`` checked: each a pair of two finite ``(x, y)`` points, at most
    :data:`MAX_CORRECTIONS` of them.

    Raises:
        ConfigError: anything else.
    """
    if pairs is None:
        return []
    out: list = []
    try:
        for pair in pairs:
            if len(out) == MAX_CORRECTIONS:  # before reading the rest: a million pairs is refused at once
                raise ConfigError(f"at most {MAX_CORRECTIONS} correction pairs at once ({name} has more): "
                                  f"correct in steps, each on the result of the one before")
            (x0, y0), (x1, y1) = pair
            pts = tuple((float(x), float(y)) for x, y in ((x0, y0), (x1, y1)))
            if not np.isfinite(np.asarray(pts)).all():
                raise ValueError
            out.append(pts)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise ConfigError(f"{name} must be a list of point pairs [((x, y), (x, y)), …], got {pairs!r:.200}"
                          ) from None
    return out


def _patch(point: Point, seg: Segmentation) -> int:
    """The patch index under pixel ``point`` of ``seg``'s input."""
    h, w = seg.patch_labels.shape
    x, y = point
    height, width = seg.labels.shape
    if not (0 <= x < width and 0 <= y < height):
        raise ConfigError(f"point ({x:g}, {y:g}) is outside the {width} x {height} image")
    row, col = pixel_to_patch(x, y, (height, width), (h, w))
    return row * w + col


def _foreground(seg: Segmentation) -> set[int]:
    if seg.foreground_labels is not None:
        return set(seg.foreground_labels)
    return {int(v) for v in np.unique(seg.patch_labels) if v != 0}


def _similar_half(f: torch.Tensor, members: np.ndarray, anchor: int) -> np.ndarray:
    """The patches of ``members`` at least as like ``anchor`` (cosine of features) as the median member,
    at most :data:`GROUP_SIZE` of them (the most alike)."""
    sim = (f[members] @ f[anchor]).cpu().numpy()
    order = np.argsort(-sim, kind="stable")
    return np.sort(members[order[: min(GROUP_SIZE, max(1, (members.size + 1) // 2))]])


def _link(c: Correction, seg: Segmentation, f: torch.Tensor) -> Link:
    """The :class:`Link` of one correction on ``seg``'s patches ``f`` ``(N, D)`` (unit rows)."""
    old = seg.patch_labels.ravel()
    p, q = (_patch(pt, seg) for pt in c.points)
    if p == q:
        h, w = seg.patch_labels.shape
        raise ConfigError(f"the two points of a {c.kind} are in the same patch (the grid is {w} x {h} patches of "
                          f"{seg.labels.shape[1] / w:.0f} px): pick points farther apart")
    if c.kind == "join":
        groups = tuple(np.union1d(_similar_half(f, np.flatnonzero(old == old[a]), a), [a]) for a in (p, q))
        return Link("must", (p, q), groups)  # type: ignore[arg-type]  # two groups: p's and q's
    members = np.flatnonzero((old == old[p]) | (old == old[q]))
    closer = ((f[members] @ f[p]) >= (f[members] @ f[q])).cpu().numpy()
    halves = (np.setdiff1d(members[closer], [q]), np.setdiff1d(members[~closer], [p]))
    groups = tuple(np.union1d(_similar_half(f, half, a) if half.size else half, [a]) for half, a in zip(halves, (p, q),
                                                                                                        strict=True))
    fg, cfg = _foreground(seg), seg.config
    both_fg, both_bg = old[p] in fg and old[q] in fg, old[p] not in fg and old[q] not in fg
    if cfg.stages >= 2 and both_fg:
        stages = {1}
    elif cfg.stages >= 3 and both_bg:
        stages = {2}
    else:
        stages = {0}
    return Link("cannot", (p, q), groups, frozenset(stages))  # type: ignore[arg-type]  # two groups: p's, q's


#: How the notes of :func:`correct_features` that warn begin (the GNN did not learn a correction by itself and
#: the labels were forced, or the corrections contradict each other); the others only say what changed.
WARNINGS = ("the GNN kept", "the corrections contradict")


def is_warning(note: str) -> bool:
    """Whether a correction's note warns (:data:`WARNINGS`) rather than only saying what changed."""
    return note.startswith(WARNINGS)


def _enforce(labels: np.ndarray, links: Links, f: torch.Tensor, only: int | None = None
             ) -> tuple[np.ndarray, list[str]]:
    """Make the links hold at their anchors on ``labels`` ``(N,)``, in rounds: a join still apart moves the
    second point's segment into the first's (but for the anchors of separations), a separation still
    together splits its segment by the nearer anchor (cosine), joined anchors kept on one side. When the
    links contradict each other, the later one wins. ``only``: the notes are about link ``only`` alone
    (the last correction), and a contradiction."""
    labels = labels.copy()
    notes: list[str] = []
    cannot_anchors = {a for ln in links.links if ln.kind == "cannot" for a in ln.anchors}
    for _ in range(3):
        broken = [(i, ln) for i, ln in enumerate(links.links) if not ln.satisfied(labels)]
        if not broken:
            return labels, notes
        for i, ln in broken:
            if ln.satisfied(labels):
                continue
            p, q = ln.anchors
            if ln.kind == "must":
                moved = np.flatnonzero(labels == labels[q])
                moved = np.union1d(np.setdiff1d(moved, list(cannot_anchors)), [q])
                labels[moved] = labels[p]
                note = "the GNN kept joined points apart; their segments were merged"
            else:
                labels = _split(labels, p, q, links, f)
                note = "the GNN kept separated points together; their segment was split between them"
            if note not in notes and only in (None, i):
                notes.append(note)
    if not links.satisfied(labels):
        notes.append("the corrections contradict each other; the later ones won")
    return labels, notes


def _split(labels: np.ndarray, p: int, q: int, links: Links, f: torch.Tensor) -> np.ndarray:
    """Split the segment holding ``p`` and ``q`` by the nearer of the two (cosine); the patches joined to
    one of them by a must-link follow it."""
    members = np.flatnonzero(labels == labels[p])
    side = {int(m): bool(v) for m, v in zip(members, (f[members] @ f[q] > f[members] @ f[p]).cpu().numpy(),
                                              strict=True)}
    side[p], side[q] = False, True
    for ln in links.links:
        u, v = ln.anchors
        if ln.kind == "must" and u in side and v in side and {u, v} != {p, q}:
            fixed = u if u in (p, q) else v
            side[v if fixed == u else u] = side[fixed]
    labels = labels.copy()
    labels[[m for m, s in side.items() if s]] = labels.max() + 1
    return labels


def _keep_numbers(new: np.ndarray, old: np.ndarray) -> dict[int, int]:
    """New label → label: each new segment takes the old label it overlaps best (one to one, Hungarian
    on IoU); the rest get unused numbers."""
    ids_new, ids_old, iou = iou_matrix(new, old)
    mapping = {int(ids_new[r]): int(ids_old[c]) for r, c in best_matching(iou) if iou[r, c] > 0}
    free = (v for v in range(int(max(old.max(), new.max())) + len(ids_new) + 1) if v not in mapping.values())
    for v in ids_new:
        mapping.setdefault(int(v), next(free))
    return mapping


def describe(corrections: Sequence[Correction], old: Segmentation, new: Segmentation) -> list[str]:
    """What changed, in words: one sentence per correction (e.g. ``"joined segments 2 and 4"``), then the
    segments that vanished or appeared besides and the share of pixels that changed segment."""
    out = []
    before, after = set(present_labels(old.labels).tolist()), set(present_labels(new.labels).tolist())
    for c in corrections:
        (x0, y0), (x1, y1) = ((int(x), int(y)) for x, y in c.points)
        a, b = int(old.labels[y0, x0]), int(old.labels[y1, x1])
        na, nb = int(new.labels[y0, x0]), int(new.labels[y1, x1])
        if c.kind == "join":
            out.append(f"the points were already in segment {a}" if a == b else
                       f"joined segments {a} and {b} (now segment {na})")
        elif a != b:
            out.append(f"the points were already apart (segments {a} and {b})")
        elif na not in before or nb not in before:
            out.append(f"separated: segment {a} split in two (segments {na} and {nb})")
        else:
            out.append(f"separated: the points of segment {a} are now in segments {na} and {nb}")
    gone, born = sorted(before - after), sorted(after - before)
    if gone:
        out.append(f"segments {', '.join(map(str, gone))} no longer exist" if len(gone) > 1 else
                   f"segment {gone[0]} no longer exists")
    if born:
        out.append("new segment" + ("s " if len(born) > 1 else " ") + ", ".join(map(str, born)))
    out.append(f"{100.0 * float(np.mean(old.labels != new.labels)):.0f}% of the pixels changed segment")
    return out


def correct_features(feats: PatchFeatures, seg: Segmentation, corrections: Sequence[Correction],
                     links: Links | None = None, previous: Segmentation | None = None,
                     clusterer: Clusterer = fit) -> Segmentation:
    """:meth:`deepcut.DeepCut.correct` on the image's features (see the module doc).

    Args:
        feats: the image's features for ``seg.config`` (grid ``(h, w)`` = ``seg.patch_labels.shape``).
        seg: the result to correct (its models are copied, never trained in place).
        corrections: the clicks, in order.
        links: the training budget (epochs, learning rate, weight); the links themselves are made here.
        previous: the result the visitor saw before the last correction (``seg`` with the corrections but the
            last, as an app applies them one click at a time): the notes then describe the last correction
            alone, against ``previous`` (:func:`describe`), not every correction against ``seg``.
        clusterer: trains each stage (:func:`~deepcut.clustering.fit.fit`; ``DeepCut.correct`` passes its own,
            which picks the threads as ``segment`` does).
    """
    t0 = time.perf_counter()
    cfg: SegmentConfig = seg.config
    check_corrections(feats, seg, corrections)
    f = torch.nn.functional.normalize(feats.features.float(), dim=-1)
    budget = links if links is not None else Links()
    todo = Links([_link(c, seg, f) for c in corrections], budget.epochs, budget.lr, budget.weight)
    graph = graph_of(feats)
    models = copy.deepcopy(seg.models) if any(m is not None for m in seg.models) else None
    if models is None:  # no trained GNN kept: train the plain cut again (deterministic), then correct it
        models = run_stages(graph, feats.grid, cfg, clusterer).models
    out = run_stages(graph, feats.grid, cfg, clusterer, Tracking(warm=models, links=todo))
    labels, forced = _enforce(out.labels, todo, f, None if previous is None else len(corrections) - 1)
    if forced:
        out = _with_labels(out, labels, feats.grid)
    old = seg.patch_labels.ravel()
    out = relabel(out, _keep_numbers(out.labels, old))
    new = to_segmentation(out, feats, cfg, t0, count_notes=False)
    _pin(new, corrections)
    said = describe(corrections, seg, new) if previous is None else describe(corrections[-1:], previous, new)
    new.notes = said + new.notes + forced
    return new


def check_corrections(feats: PatchFeatures, seg: Segmentation, corrections: Sequence[Correction]) -> None:
    """Refuse more than :data:`MAX_CORRECTIONS` pairs, or a segmentation of another image than ``feats``'.

    Raises:
        ConfigError: either.
    """
    if len(corrections) > MAX_CORRECTIONS:
        raise ConfigError(f"at most {MAX_CORRECTIONS} correction pairs at once (got {len(corrections)}): "
                          f"correct in steps, each on the result of the one before")
    if tuple(feats.grid) != tuple(seg.patch_labels.shape):
        raise ConfigError(f"the segmentation's patch grid {tuple(seg.patch_labels.shape)} is not this image's "
                          f"{tuple(feats.grid)} for its settings: correct the image it was computed on")
    image, own = np.asarray(feats.image), np.asarray(seg.image)
    if image.shape != own.shape or seg.labels.shape != image.shape[:2]:
        raise ConfigError(f"the segmentation is of another image ({own.shape[1]} x {own.shape[0]} px, this one is "
                          f"{image.shape[1]} x {image.shape[0]} px): correct the image it was computed on")
    if not np.array_equal(image, own):
        raise ConfigError("the segmentation is of another image (same size, other pixels): correct the image it "
                          "was computed on")


def _with_labels(out: StageOutput, labels: np.ndarray, grid: tuple[int, int]) -> StageOutput:
    """``out`` with patch ``labels`` ``(N,)`` set by hand (``grid``: the patch grid ``(h, w)``): the changed patches'
    soft rows become one-hot.

    Where ``out`` splits foreground from background, a label is foreground where most of its patches were;
    when none was (a split of a result that was one segment) the segment touching the image border most is
    the background and the others the foreground, as in stage 1; a single segment has no foreground. The
    note that no foreground was found is kept only where that is still so."""
    width = max(out.soft.shape[1], int(labels.max()) + 1)
    soft = np.zeros((labels.size, width), np.float32)
    soft[:, : out.soft.shape[1]] = out.soft
    changed = np.flatnonzero(labels != out.labels)
    soft[changed] = 0.0
    soft[changed, labels[changed]] = 1.0
    fg, notes = out.foreground_labels, [n for n in out.notes if n != NO_FOREGROUND]
    if fg is not None:
        was_fg, present = np.isin(out.labels, fg), np.unique(labels)
        fg = [int(v) for v in present if was_fg[labels == v].mean() > 0.5] if present.size > 1 else []
        if not fg and present.size > 1:
            bg = background_label(labels.reshape(grid))
            fg = [int(v) for v in present if v != bg]
        if not fg:
            notes.append(NO_FOREGROUND)
    return StageOutput(labels, soft, fg, out.losses, out.timings, notes, out.models, list(out.restarts))


def _pin(seg: Segmentation, corrections: Sequence[Correction]) -> None:
    """Where the upsampling gave a clicked pixel another label than its patch's, give the pixels of that
    patch's cell its patch label, so that the pixel labels honour the corrections too."""
    h, w = seg.patch_labels.shape
    height, width = seg.labels.shape
    fg = set(seg.foreground_labels or [])
    for c in corrections:
        for x, y in c.points:
            r, col = pixel_to_patch(x, y, (height, width), (h, w))
            want = seg.patch_labels[r, col]
            if seg.labels[int(y), int(x)] == want:
                continue
            cell = (slice(-(-r * height // h), -(-(r + 1) * height // h)),
                    slice(-(-col * width // w), -(-(col + 1) * width // w)))
            seg.labels[cell] = want
            if seg.foreground is not None:
                seg.foreground[cell] = int(want) in fg
