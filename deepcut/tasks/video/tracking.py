"""Keeping labels stable from frame to frame (the guard against drift of the warm-started GNN).

:class:`TemporalBackground` keeps foreground and background from swapping (the stage-1 background is
the cluster that overlaps the previous background and covers the border), and :class:`LabelTracker`
matches the segments of each frame to the tracks of the previous frames (Hungarian assignment on
overlap + feature similarity + a bonus for the warm start's own numbering): when two parts swap
cluster indices, or a part disappears and comes back, it keeps its label and colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from ...stages.run import StageOutput, relabel
from ...utils.masks import background_label, border_mask
from ...utils.matching import best_matching


@dataclass
class _Track:
    group: str
    centroid: np.ndarray  # (D,) unit feature centroid (running average)
    mask: np.ndarray  # (N,) bool patches in the last frame it was seen
    label: int  # the stages' label it had in that frame
    seen: int  # that frame's index


def _groups(out: StageOutput) -> list[tuple[str, list[int]]]:
    """Labels that may be matched to each other: foreground parts among themselves and background
    parts among themselves (a part never changes side); all segments together without a split."""
    present = [int(v) for v in np.unique(out.labels)]
    if out.foreground_labels is None:
        return [("all", present)]
    fg = set(int(v) for v in out.foreground_labels)
    return [("fg", [v for v in present if v in fg]), ("bg", [v for v in present if v not in fg])]


class LabelTracker:
    """Gives the segments of successive frames stable labels ("track ids").

    Each frame's segments are matched, within the foreground and within the background, to the
    tracks seen so far by maximising ``IoU(previous patches) + cos(feature centroids) + prior``,
    where ``prior`` rewards keeping the stages' own label (the warm-started GNN's cluster index).
    Unmatched segments start new tracks; a track that is not seen for a while keeps its centroid, so
    a part that comes back gets its old label.

    Args:
        prior: bonus for the warm start's numbering (0: match on overlap and features only).
        momentum: weight of the old centroid in the running average.
    """

    def __init__(self, prior: float = 0.3, momentum: float = 0.5) -> None:
        self.prior = float(prior)
        self.momentum = float(momentum)
        self.tracks: dict[int, _Track] = {}
        self.frame = -1
        self._next_id = 0

    def _new_id(self, wanted: int, taken: Iterable[int]) -> int:
        """A fresh track id: the stages' own label if it is still free, else the next unused one."""
        used = set(self.tracks) | set(taken)
        tid = wanted if wanted not in used else max(self._next_id, max(used, default=-1) + 1)
        self._next_id = max(self._next_id, tid + 1)
        return tid

    def update(self, out: StageOutput, feats: torch.Tensor | np.ndarray) -> tuple[StageOutput, bool]:
        """Relabel one frame's stage output with track ids.

        Args:
            out: the frame's stages (labels ``(N,)``, soft ``(N, L)``).
            feats: the frame's patch features ``(N, D)``.

        Returns:
            ``(relabelled output, rematched)``; ``rematched`` is True when the matching changed the
            label that the warm start's numbering alone would have given to some segment.
        """
        self.frame += 1
        f = feats.detach().float().cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float32)
        labels = np.asarray(out.labels)
        mapping: dict[int, int] = {}
        rematched = False
        new_state: dict[int, tuple[np.ndarray, np.ndarray, int, str]] = {}
        for group, members in _groups(out):
            if not members:
                continue
            masks = [labels == m for m in members]
            cents = []
            for mask in masks:
                c = f[mask].mean(axis=0)
                cents.append(c / max(float(np.linalg.norm(c)), 1e-12))
            cand = [tid for tid, t in self.tracks.items() if t.group == group]
            assigned: dict[int, int] = {}
            if cand:
                sim = np.zeros((len(members), len(cand)))
                for j, tid in enumerate(cand):
                    t = self.tracks[tid]
                    recent = t.seen == self.frame - 1
                    for i, (m, mask) in enumerate(zip(members, masks, strict=False)):
                        overlap = 0.0
                        if recent:
                            union = np.logical_or(mask, t.mask).sum()
                            overlap = float(np.logical_and(mask, t.mask).sum() / max(union, 1))
                        bonus = self.prior if recent and t.label == m else 0.0
                        sim[i, j] = overlap + float(cents[i] @ t.centroid) + bonus
                assigned = {int(members[r]): cand[c] for r, c in best_matching(sim)}
                by_label = {t.label: tid for tid, t in self.tracks.items()
                            if t.group == group and t.seen == self.frame - 1}
                rematched |= any(m in by_label and assigned.get(m) != by_label[m] for m in members)
            for i, m in enumerate(members):
                tid = assigned[m] if m in assigned else self._new_id(m, new_state)
                mapping[m] = tid
                new_state[tid] = (cents[i], masks[i], m, group)
        for tid, (c, mask, m, group) in new_state.items():
            known = self.tracks.get(tid)
            if known is None:
                self.tracks[tid] = _Track(group, c, mask, m, self.frame)
            else:
                avg = self.momentum * known.centroid + (1.0 - self.momentum) * c
                known.centroid = avg / max(float(np.linalg.norm(avg)), 1e-12)
                known.mask, known.label, known.seen = mask, m, self.frame
        return relabel(out, mapping), rematched


class TemporalBackground:
    """Chooses the background cluster of stage 1 for a video frame from the previous frame's
    background and the border: the cluster maximising ``IoU(cluster, previous background) +
    share of the border cells it covers``; the plain border rule on the first frame.

    The border rule alone flips foreground and background whenever both touch the border about
    equally (common with large segments), and a warm-started GNN may swap its two cluster indices
    when a frame's assignments are close to 50/50; the overlap term keeps the orientation in those
    cases, while a cluster that clearly owns the border still becomes the background (so a wrong
    orientation of the first frame is corrected later).

    Args:
        grid: the frames' patch grid ``(h, w)``.
    """

    def __init__(self, grid: tuple[int, int]) -> None:
        self.grid = (int(grid[0]), int(grid[1]))
        self.border = border_mask(self.grid).ravel()
        self.previous: np.ndarray | None = None  # (N,) bool background of the previous frame

    def __call__(self, raw: np.ndarray) -> int:
        """The background cluster id for one frame's stage-1 cluster ids ``(N,)``."""
        raw = np.asarray(raw, np.int64).ravel()
        if self.previous is None or self.previous.shape != raw.shape:
            bg = background_label(raw.reshape(self.grid))
        else:
            ids = np.unique(raw)
            on_border = raw[self.border]
            score = [
                np.logical_and(raw == i, self.previous).sum() / max(np.logical_or(raw == i, self.previous).sum(), 1)
                + (on_border == i).mean()
                for i in ids
            ]
            bg = int(ids[int(np.argmax(score))])
        self.previous = raw == bg
        return bg
