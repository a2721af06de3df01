"""Patch labels to pixel labels (``deepcut.segmentation.upsample``) against the plain formulation: one-hot maps
upsampled bilinearly, the foreground share over 1/2, and an arg-max over each side's channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepcut.segmentation.upsample import resize_nearest, upsample_labels, upsample_segmentation


def smooth(labels: np.ndarray, work: tuple[int, int]) -> torch.Tensor:
    n = int(labels.max()) + 1
    onehot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), n).permute(2, 0, 1)[None].float()
    return F.interpolate(onehot, size=work, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)


def reference(labels, work, out, foreground):
    s = smooth(labels, work)
    is_fg = torch.zeros(s.shape[-1], dtype=torch.bool)
    is_fg[[i for i in foreground if i < s.shape[-1]]] = True
    fg = s[..., is_fg].sum(-1) > 0.5
    best = torch.where(fg, s.masked_fill(~is_fg, -1).argmax(-1), s.masked_fill(is_fg, -1).argmax(-1))
    return resize_nearest(best.numpy().astype(np.int32), out), resize_nearest(fg.numpy(), out)


def cases(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(2, 30, 2))
        n = int(rng.integers(1, 10))
        labels = rng.integers(0, n, (h, w))
        if rng.random() < 0.5:  # regions of 3 x 3 patches: ties on their borders
            labels = np.kron(rng.integers(0, n, (h // 3 + 1, w // 3 + 1)), np.ones((3, 3), int))[:h, :w]
        work = (max(1, int(h * rng.uniform(0.7, 9))), max(1, int(w * rng.uniform(0.7, 9))))  # not whole multiples
        out = (int(work[0] * rng.uniform(0.5, 3)) + 1, int(work[1] * rng.uniform(0.5, 3)) + 1)
        m = int(labels.max()) + 1
        fg = [int(v) for v in rng.choice(m + 2, int(rng.integers(0, m + 2)), replace=False)]  # some out of range
        yield labels, work, out, fg


@pytest.mark.parametrize("seed", [0, 1])
def test_upsampling_equals_the_plain_arg_max_formulation(seed):
    for labels, work, out, fg in cases(150, seed):
        got, want = upsample_segmentation(labels, work, out, fg), reference(labels, work, out, fg)
        assert got[0].dtype == np.int32 and got[1].dtype == bool and got[0].shape == out
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (labels.shape, work, fg)
        plain = resize_nearest(smooth(labels, work).argmax(-1).numpy().astype(np.int32), out)
        assert np.array_equal(upsample_labels(labels, work, out), plain)


def test_ties_go_to_the_lower_label_and_each_side_keeps_its_own_labels():
    labels = np.array([[0, 1], [2, 3]])
    got, fg = upsample_segmentation(labels, (2, 2), (2, 2), [1, 3])
    assert np.array_equal(got, labels) and np.array_equal(fg, labels % 2 == 1)
    even = upsample_labels(np.array([[0, 1]]), (1, 3), (1, 3))  # the middle pixel: half 0, half 1
    assert even.tolist() == [[0, 0, 1]]
