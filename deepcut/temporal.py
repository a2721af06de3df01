"""Segmentation with labels that agree across frames (video) and across images (co-segmentation).

Video (:func:`segment_video`), the paper's way plus a guard:

1. the ViT runs on batches of frames (:func:`embed_frames`);
2. the first frame is clustered like a single image; every later frame continues training the GNN
   of the previous frame (``run_stages(..., warm=…)``) for a few epochs (``warm_epochs``) and its
   segments are numbered by the GNN's cluster index, so a part keeps its number;
3. the guard against drift: :class:`TemporalBackground` keeps foreground and background from
   swapping (the stage-1 background is the cluster that overlaps the previous background and
   covers the border), and :class:`LabelTracker` matches the segments of each frame to the tracks
   of the previous frames (Hungarian assignment, :func:`scipy.optimize.linear_sum_assignment`, on
   overlap + feature similarity + a bonus for the warm start's own numbering): when two parts swap
   cluster indices, or a part disappears and comes back, it keeps its label and colour.

Co-segmentation (:func:`cosegment`): the patches of all images form one graph (the full affinity
``F Fᵀ`` over the stacked features, so similar parts of different images are connected) and one GNN
is trained on it in every stage, which is what the paper does for several images; the same part
therefore gets the same label in every image.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .config import SegmentConfig
from .errors import ConfigError, ImageLoadError
from .modeling.base import Backbone
from .predictor import StageOutput, run_stages, to_segmentation
from .segmentation import Segmentation
from .utils.image import ImageLike, grid_size, load_image, resize_for_grid
from .utils.masks import background_label, border_mask
from .video import FrameReader, VideoLike, frame_files

if TYPE_CHECKING:
    from .predictor import DeepCut

ProgressFn = Callable[[int, int], None]

#: Default number of frames per ViT forward pass.
DEFAULT_BATCH_SIZE = 8
#: Warm-started frames train for this fraction of the first frame's epochs (at least one).
WARM_FRACTION = 0.2
#: A batch's attention maps are bounded by ``batch * tokens**2 <= ATTENTION_BUDGET``
#: (8 frames of 1226 tokens: ViT-S/8 at 280 px), so fine strides fall back to smaller batches.
ATTENTION_BUDGET = 8 * 1226 ** 2
#: Co-segmentation clusters one dense graph of all patches; beyond this many patches the
#: resolution is lowered (the graph's N x N matrices take ~0.25 GB each at 8000 patches).
MAX_COSEG_PATCHES = 8000


def default_warm_epochs(epochs: Sequence[int]) -> tuple[int, int, int]:
    """Epochs of stages 1-3 for warm-started frames: ``WARM_FRACTION`` of ``epochs``, at least 1."""
    return tuple(max(1, int(round(e * WARM_FRACTION))) for e in epochs)  # type: ignore[return-value]


def _cfg(config: SegmentConfig | None, overrides: dict) -> SegmentConfig:
    cfg = config or SegmentConfig()
    return cfg.replace(**overrides) if overrides else cfg


# -- features ---------------------------------------------------------------------------------------
def frames_grid(backbone: Backbone, size: tuple[int, int], cfg: SegmentConfig) -> tuple[int, int]:
    """Patch grid ``(h, w)`` of frames of ``size = (width, height)`` under ``cfg``."""
    stride = backbone.check_stride(cfg.stride)
    return grid_size(size[1], size[0], int(cfg.resolution), backbone.patch_size, stride)


def embed_frames(backbone: Backbone, frames: Sequence[np.ndarray], cfg: SegmentConfig
                 ) -> tuple[torch.Tensor, tuple[int, int], list[np.ndarray]]:
    """One batched ViT pass over frames of one size.

    Args:
        frames: ``B`` frames ``(H, W, 3)`` uint8, all of the same size.

    Returns:
        ``(features (B, N, D), grid (h, w), works)``: the ``cfg.layer`` / ``cfg.facet`` features of
        the ``N = h * w`` patches of each frame, and the resized frames the backbone saw.
    """
    stride = backbone.check_stride(cfg.stride)
    layer = backbone.check_layer_facet(int(cfg.layer), cfg.facet)
    h, w = frames[0].shape[:2]
    grid = grid_size(h, w, int(cfg.resolution), backbone.patch_size, stride)
    works = [resize_for_grid(f, grid, backbone.patch_size, stride) for f in frames]
    state = backbone.embed(np.stack(works), stride)
    feats = backbone.facet(state, layer, cfg.facet)
    if getattr(cfg, "log_bin", False):
        from .modeling.descriptors import log_bin

        feats = torch.stack([log_bin(f, state.grid) for f in feats])
    return feats, state.grid, works


def batch_size_for(grid: tuple[int, int], batch_size: int) -> int:
    """``batch_size`` lowered so that the batch's attention maps stay within :data:`ATTENTION_BUDGET`."""
    tokens = grid[0] * grid[1] + 1
    return max(1, min(int(batch_size), ATTENTION_BUDGET // (tokens * tokens)))


# -- label tracking -----------------------------------------------------------------------------------
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
        f = feats.detach().float().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float32)
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
                    for i, (m, mask) in enumerate(zip(members, masks)):
                        overlap = 0.0
                        if recent:
                            union = np.logical_or(mask, t.mask).sum()
                            overlap = float(np.logical_and(mask, t.mask).sum() / max(union, 1))
                        bonus = self.prior if recent and t.label == m else 0.0
                        sim[i, j] = overlap + float(cents[i] @ t.centroid) + bonus
                rows, cols = linear_sum_assignment(sim, maximize=True)
                assigned = {int(members[r]): cand[c] for r, c in zip(rows, cols)}
                by_label = {t.label: tid for tid, t in self.tracks.items()
                            if t.group == group and t.seen == self.frame - 1}
                rematched |= any(m in by_label and assigned.get(m) != by_label[m] for m in members)
            for i, m in enumerate(members):
                tid = assigned[m] if m in assigned else self._new_id(m, new_state)
                mapping[m] = tid
                new_state[tid] = (cents[i], masks[i], m, group)
        for tid, (c, mask, m, group) in new_state.items():
            t = self.tracks.get(tid)
            if t is None:
                self.tracks[tid] = _Track(group, c, mask, m, self.frame)
            else:
                avg = self.momentum * t.centroid + (1.0 - self.momentum) * c
                t.centroid = avg / max(float(np.linalg.norm(avg)), 1e-12)
                t.mask, t.label, t.seen = mask, m, self.frame
        return relabel(out, mapping), rematched


def relabel(out: StageOutput, mapping: dict[int, int]) -> StageOutput:
    """``out`` with its labels renamed by ``mapping`` (old → new); soft columns move along."""
    lut = np.zeros(int(out.labels.max()) + 1, np.int64)
    for old, new in mapping.items():
        lut[old] = new
    labels = lut[out.labels]
    width = max(mapping.values()) + 1
    soft = np.zeros((out.soft.shape[0], width), np.float32)
    for old, new in mapping.items():
        if old < out.soft.shape[1]:
            soft[:, new] = out.soft[:, old]
    fg = None
    if out.foreground_labels is not None:
        fg = sorted(mapping[v] for v in out.foreground_labels if v in mapping)
    return StageOutput(labels, soft, fg, out.losses, out.timings, list(out.notes), out.models)


# -- video --------------------------------------------------------------------------------------------
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

    def reset(self) -> None:
        self.previous = None

    def __call__(self, raw: np.ndarray) -> int:
        """The background cluster id for one frame's stage-1 cluster ids ``(N,)``."""
        raw = np.asarray(raw, np.int64).ravel()
        if self.previous is None or self.previous.shape != raw.shape:
            bg = background_label(raw.reshape(self.grid))
        else:
            ids = np.unique(raw)
            on_border = raw[self.border]
            score = [np.logical_and(raw == i, self.previous).sum() / max(np.logical_or(raw == i, self.previous).sum(), 1)
                     + (on_border == i).mean() for i in ids]
            bg = int(ids[int(np.argmax(score))])
        self.previous = raw == bg
        return bg


def _degenerate(out: StageOutput) -> bool:
    return np.unique(out.labels).size < 2


class VideoSegmentation:
    """A lazy stream of per-frame :class:`Segmentation` with consistent labels; made by :func:`segment_video`.

    Iterate it (once) to process the frames. Attributes:

    * ``reader``: the :class:`~deepcut.video.FrameReader` (``info``, ``expected`` …);
    * ``fps``: frame rate of the processed frames (input fps / ``frame_stride``);
    * ``notes``: reader notes (downscaled, capped …) and pipeline notes;
    * ``stats``: ``frames``, ``rematched`` (frames where matching corrected the warm start),
      ``cold_restarts`` (frames re-clustered from scratch because the warm start collapsed),
      ``seconds``.
    """

    def __init__(self, model: "DeepCut", reader: FrameReader, cfg: SegmentConfig, batch_size: int = DEFAULT_BATCH_SIZE,
                 progress: ProgressFn | None = None, warm_epochs: int | Sequence[int] | None = None,
                 warm: bool = True, match: bool = True) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.reader = reader
        self.cfg = cfg
        if warm_epochs is None:
            warm_epochs = default_warm_epochs(cfg.epochs)
        self.warm_cfg = cfg.replace(epochs=warm_epochs)
        self.warm = bool(warm)
        self.match = bool(match)
        self.progress = progress
        self.grid = frames_grid(model.backbone, reader.info.size, cfg)
        self.batch_size = batch_size_for(self.grid, batch_size)
        self.fps = reader.fps
        self.info = reader.info
        self.stats = {"frames": 0, "rematched": 0, "cold_restarts": 0, "seconds": 0.0}
        self._extra_notes: list[str] = []
        self._vote: TemporalBackground | None = None
        self._gen: Iterator[Segmentation] | None = None

    @property
    def notes(self) -> list[str]:
        return list(self.reader.notes) + self._extra_notes

    @property
    def total(self) -> int:
        """Expected number of frames (exact once the stream is exhausted)."""
        return max(self.reader.expected or self.reader.max_frames, self.stats["frames"])

    def __iter__(self) -> "VideoSegmentation":
        return self

    def __next__(self) -> Segmentation:
        if self._gen is None:
            self._gen = self._run()
        return next(self._gen)

    def close(self) -> None:
        """Stop reading (ends the decoder); the stream yields nothing more."""
        if self._gen is not None:
            self._gen.close()

    def _cluster(self, feats: torch.Tensor, models: list | None) -> tuple[StageOutput, list | None]:
        """Stages for one frame: warm-started from ``models`` (the previous frame's GNNs) if given."""
        cold = models is None or not self.warm
        if self.match and (self._vote is None or self._vote.grid != tuple(self.grid)):
            self._vote = TemporalBackground(self.grid)
        vote = self._vote if self.match else None
        previous = vote.previous if vote is not None else None
        out = run_stages(feats, self.grid, self.cfg if cold else self.warm_cfg, warm=None if cold else models,
                         keep_cluster_ids=self.warm, background_fn=vote)
        if not cold and _degenerate(out):
            if vote is not None:
                vote.previous = previous
            again = run_stages(feats, self.grid, self.cfg, keep_cluster_ids=True, background_fn=vote)
            if not _degenerate(again):
                self.stats["cold_restarts"] += 1
                out = again
                out.notes.append("the warm-started clustering collapsed to one segment; re-clustered from scratch")
        if not self.warm:
            return out, None
        # A stage that did not run this frame keeps the GNN it had.
        kept = [m if m is not None else (models[i] if models else None) for i, m in enumerate(out.models)]
        return out, kept

    def _run(self) -> Iterator[Segmentation]:
        t_start = time.perf_counter()
        backbone = self.model.backbone
        tracker = LabelTracker(prior=0.3 if self.warm else 0.0) if self.match else None
        frames = iter(self.reader)
        models: list | None = None
        done = 0
        while True:
            batch = list(islice(frames, self.batch_size))
            if not batch:
                break
            t0 = time.perf_counter()
            feats, grid, works = embed_frames(backbone, batch, self.cfg)
            t_feat = (time.perf_counter() - t0) / len(batch)
            self.grid = grid
            for frame, work, f in zip(batch, works, feats):
                t1 = time.perf_counter()
                out, models = self._cluster(f, models)
                note = None
                if tracker is not None:
                    out, rematched = tracker.update(out, f)
                    if rematched and done > 0:
                        self.stats["rematched"] += 1
                        note = "labels re-matched to the previous frame (the warm-started clustering drifted)"
                seg = to_segmentation(out, frame, work.shape[:2], grid, self.cfg, False, t1 - t_feat, t_feat)
                if done == 0:
                    seg.notes[:0] = self.reader.notes
                if note:
                    seg.notes.append(note)
                done += 1
                self.stats["frames"] = done
                self.stats["seconds"] = time.perf_counter() - t_start
                if self.progress is not None:
                    self.progress(done, self.total)
                yield seg
        if self.stats["rematched"]:
            self._extra_notes.append(f"labels re-matched to the previous frame in {self.stats['rematched']} of "
                                     f"{done} frames (the warm-started clustering drifted)")
        if self.stats["cold_restarts"]:
            self._extra_notes.append(f"{self.stats['cold_restarts']} frames re-clustered from scratch "
                                     f"(the warm start collapsed to one segment)")
        if self.progress is not None and done and self.reader.expected != done:
            self.progress(done, done)


def segment_video(model: "DeepCut", video: VideoLike, config: SegmentConfig | None = None, max_frames: int = 300,
                  frame_stride: int = 1, batch_size: int = DEFAULT_BATCH_SIZE, progress: ProgressFn | None = None,
                  warm_epochs: int | Sequence[int] | None = None, warm: bool = True, match: bool = True,
                  **overrides) -> VideoSegmentation:
    """Segment a video with labels that stay consistent from frame to frame (see the module doc).

    The input is opened (and checked) now; frames are read and segmented lazily while iterating.

    Args:
        model: the :class:`~deepcut.DeepCut` whose backbone extracts features.
        video: path of a video file, GIF or folder of frames, or frames in memory
            (see :func:`deepcut.video.read_frames`).
        config, overrides: settings, as for :meth:`DeepCut.segment`.
        max_frames, frame_stride: at most ``max_frames`` frames, every ``frame_stride``-th.
        batch_size: frames per ViT pass (lowered automatically for very fine patch grids).
        progress: ``progress(done, total)`` after each frame.
        warm_epochs: GNN epochs of stages 1-3 for frames after the first (one number: stage 1 only,
            like :class:`SegmentConfig`; default :func:`default_warm_epochs`).
        warm: continue each frame's GNN from the previous frame's (False: a fresh GNN per frame,
            numbered by size like :meth:`DeepCut.segment`).
        match: guard the labels: orient foreground/background by the previous frame
            (:class:`TemporalBackground`) and match segments to the previous frames
            (:class:`LabelTracker`). ``warm=False, match=False`` is ``DeepCut.segment`` frame by frame.

    Raises:
        VideoLoadError: the input cannot be read. ConfigError: a bad setting.
    """
    cfg = _cfg(config, overrides)
    reader = FrameReader(video, max_frames=max_frames, frame_stride=frame_stride)
    return VideoSegmentation(model, reader, cfg, batch_size=batch_size, progress=progress,
                             warm_epochs=warm_epochs, warm=warm, match=match)


# -- several images -------------------------------------------------------------------------------------
def _load_images(images: ImageLike | Iterable[ImageLike]) -> list[np.ndarray]:
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        images = frame_files(images)
    elif isinstance(images, (str, os.PathLike, bytes)) or (isinstance(images, np.ndarray) and images.ndim < 4):
        images = [images]
    out = []
    for i, img in enumerate(images):
        try:
            out.append(load_image(img))
        except ImageLoadError as e:
            raise ImageLoadError(f"image {i + 1}: {e}") from None
    if not out:
        raise ConfigError("co-segmentation needs at least one image")
    return out


def cosegment(model: "DeepCut", images: Iterable[ImageLike], config: SegmentConfig | None = None,
              max_patches: int = MAX_COSEG_PATCHES, **overrides) -> list[Segmentation]:
    """Segment several images together: one graph over all their patches, one GNN per stage.

    Every stage of :func:`~deepcut.predictor.run_stages` runs on the union: the background is the
    segment that covers most of the images' borders together, foreground parts (stage 2) and
    background parts (stage 3) are clustered over all images at once, so one label means one part
    in every image (and one colour in the overlays). With ``loss="cc"`` the number of segments is
    found once for all images.

    Args:
        images: paths, arrays, PIL images (or a folder path).
        config, overrides: settings, as for :meth:`DeepCut.segment`.
        max_patches: if the images together have more patches, the resolution is lowered (a note
            says so) to keep the dense graph affordable.

    Returns:
        One :class:`Segmentation` per image, in order.
    """
    cfg = _cfg(config, overrides)
    t0 = time.perf_counter()
    imgs = _load_images(images)
    backbone = model.backbone
    stride = backbone.check_stride(cfg.stride)
    notes: list[str] = []

    def grids_at(res: int) -> list[tuple[int, int]]:
        return [grid_size(im.shape[0], im.shape[1], res, backbone.patch_size, stride) for im in imgs]

    res = int(cfg.resolution)
    grids = grids_at(res)
    total = sum(h * w for h, w in grids)
    if total > max_patches:
        res = int(res * math.sqrt(max_patches / total))
        grids = grids_at(res)
        while sum(h * w for h, w in grids) > max_patches and res > 16:
            res -= 8
            grids = grids_at(res)
        if sum(h * w for h, w in grids) > max_patches:
            raise ConfigError(f"{len(imgs)} images are too many to co-segment at once (more than {max_patches} "
                              f"patches even at the lowest resolution); split them into smaller groups")
        notes.append(f"resolution lowered from {cfg.resolution} to {res} so that the {len(imgs)} images fit in "
                     f"one graph of at most {max_patches} patches")
        cfg = cfg.replace(resolution=res)

    feats, works, cached, t_feats = [], [], [], []
    for img in imgs:
        t = time.perf_counter()
        emb, was_cached = model.embed(img, cfg.resolution, cfg.stride)
        f = model.features(img, cfg.layer, cfg.facet, cfg.resolution, cfg.stride,
                           **({"log_bin": True} if getattr(cfg, "log_bin", False) else {}))
        feats.append(f.reshape(emb.grid[0] * emb.grid[1], -1))
        works.append(emb.work.shape[:2])
        cached.append(was_cached)
        t_feats.append(time.perf_counter() - t)
        grids[len(feats) - 1] = emb.grid
    out = run_stages(torch.cat(feats, dim=0), grids, cfg)
    out.notes[:0] = notes
    offsets = np.cumsum([0] + [h * w for h, w in grids])
    segs = []
    for i, (img, work, grid) in enumerate(zip(imgs, works, grids)):
        a, b = offsets[i], offsets[i + 1]
        part = StageOutput(out.labels[a:b], out.soft[a:b], out.foreground_labels, out.losses,
                           {**out.timings, "images": len(imgs)}, list(out.notes), out.models)
        seg = to_segmentation(part, img, work, grid, cfg, cached[i], t0, t_feats[i])
        if seg.foreground is not None and not seg.foreground.any():
            seg.notes.append("no foreground in this image (its patches all joined the shared background)")
        segs.append(seg)
    return segs


# -- measures -------------------------------------------------------------------------------------------
def labels_permuted(prev: np.ndarray, cur: np.ndarray) -> bool:
    """Whether the labels of two consecutive label maps (same shape) are permuted.

    Among the labels present in both maps, the one-to-one matching of maximal total IoU is
    computed (Hungarian); the labels are permuted when that matching is strictly better than
    matching every label with itself, i.e. some part changed its label.
    """
    prev = np.asarray(prev).ravel()
    cur = np.asarray(cur).ravel()
    if prev.shape != cur.shape:
        raise ValueError(f"label maps differ in size: {prev.size} and {cur.size}")
    shared = np.intersect1d(np.unique(prev), np.unique(cur))
    if shared.size < 2:
        return False
    a = np.searchsorted(shared, prev)
    b = np.searchsorted(shared, cur)
    in_a = (a < shared.size) & (shared[np.minimum(a, shared.size - 1)] == prev)
    in_b = (b < shared.size) & (shared[np.minimum(b, shared.size - 1)] == cur)
    k = shared.size
    inter = np.zeros((k, k), np.float64)
    both = in_a & in_b
    np.add.at(inter, (a[both], b[both]), 1)
    size_a = np.bincount(a[in_a], minlength=k).astype(np.float64)
    size_b = np.bincount(b[in_b], minlength=k).astype(np.float64)
    iou = inter / np.maximum(size_a[:, None] + size_b[None, :] - inter, 1)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    best = float(iou[rows, cols].sum())
    return best > float(np.trace(iou)) + 1e-9


def consistency(label_maps: Iterable[np.ndarray]) -> float:
    """Share of consecutive pairs of label maps whose labels are not permuted (1.0 for < 2 maps)."""
    prev = None
    pairs = ok = 0
    for cur in label_maps:
        if prev is not None:
            pairs += 1
            ok += not labels_permuted(prev, cur)
        prev = cur
    return ok / pairs if pairs else 1.0
