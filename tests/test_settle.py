"""Stopping a settled training (``deepcut/clustering/settle.py``): the stopped result is the full training's
state at the stop, the rule waits for still labels and a flat loss, short stages train every epoch, and every
front end says so (note, replay, walkthrough, ``--no-settle``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import voronoi_scene
from test_clustering import planted, same_partition

from deepcut import DeepCut, cluster
from deepcut.cli import build_parser
from deepcut.cli.options import config_from_args
from deepcut.clustering.fit import fit
from deepcut.clustering.settle import SETTLE, SETTLED_NOTE, Settle, SettleWatch, settled_words
from deepcut.errors import ConfigError
from deepcut.graph.patch_graph import graph_of
from deepcut.lessons.replay import record_training
from deepcut.lessons.walkthrough import settled_caption
from deepcut.render.teaching import SETTLED_LABEL, frame_words, loss_panel


@pytest.fixture(scope="module")
def blocks():
    """Four planted groups of 120 nodes: a graph whose cut settles long before 100 epochs."""
    return planted(120, 4, seed=5)


def test_a_settled_training_is_the_full_training_up_to_its_stop(blocks):
    x, truth = blocks
    short = fit(x, k=4, epochs=100, seed=2)
    assert short.settled and short.settle == SETTLE and 20 < len(short.losses) < 100 and short.epochs == 100
    stop = len(short.losses)
    full = fit(x, k=4, epochs=100, seed=2, settle=None, snapshots=[stop])
    assert not full.settled and len(full.losses) == 100 and full.settle is None
    assert short.losses == full.losses[:stop]  # the same epochs, the same dropout masks
    np.testing.assert_array_equal(short.labels, full.snapshots[stop].argmax(-1))
    np.testing.assert_allclose(short.soft, full.snapshots[stop], atol=1e-6)
    assert same_partition(short.labels, truth) and same_partition(full.labels, truth)
    assert short.note == settled_words(stop, 100, SETTLE) and short.note.startswith(SETTLED_NOTE)
    assert f"after {stop} of its 100 epochs" in short.note and f"the other {100 - stop} were not trained" in short.note
    assert short.trained == stop


def test_short_trainings_and_corrections_train_every_epoch(blocks):
    x, _ = blocks
    assert len(fit(x, k=4, epochs=SETTLE.after).losses) == SETTLE.after  # the paper's 10-epoch stages untouched
    assert len(fit(x, k=4, epochs=10).losses) == 10
    ten = cluster(x, k=4, epochs=100)  # deepcut.cluster stops as segment() does
    assert same_partition(ten, fit(x, k=4, epochs=100, settle=None).labels)


def test_the_watch_waits_for_still_labels_and_a_flat_loss():
    rule = Settle(after=4, every=2, still=4, change=0.01)
    same = torch.tensor([0, 1, 1, 0])
    flat = [torch.tensor(-1.0)] * 10
    watch = SettleWatch(rule)
    assert not watch.settled(2, same, flat[:2])  # the first look
    assert not watch.settled(4, same, flat[:4])  # labels still for 2 epochs only
    assert watch.settled(6, same, flat[:6])      # still for 4 epochs, loss flat
    moved = SettleWatch(rule)
    for epoch in (2, 4):
        moved.settled(epoch, same, flat[:epoch])
    assert not moved.settled(6, torch.tensor([1, 1, 1, 0]), flat[:6])  # a patch moved: wait again
    falling = [torch.tensor(-1.0 - 0.1 * e) for e in range(10)]
    sliding = SettleWatch(rule)
    assert not any(sliding.settled(e, same, falling[:e]) for e in (2, 4, 6, 8))  # the loss keeps falling
    early = SettleWatch(Settle(after=20, every=2, still=4))
    assert not any(early.settled(e, same, flat[:e]) for e in (2, 4, 6, 8))  # never before `after` epochs


@pytest.mark.parametrize("bad", [dict(after=0), dict(every=0), dict(still=2, every=5), dict(change=-0.1),
                                 dict(change=float("nan"))])
def test_a_bad_rule_is_refused(bad):
    with pytest.raises(ConfigError, match="Settle"):
        Settle(**bad)


def test_segment_and_the_command_line_turn_it_off():
    dc = DeepCut("color")
    image = voronoi_scene(4, 0, side=160)[0]
    on = dc.segment(image, resolution=160, k=4, epochs=100)
    off = dc.segment(image, resolution=160, k=4, epochs=100, settle=False)
    assert len(off.losses[0]) == 100 and not any(SETTLED_NOTE in n for n in off.notes)
    assert len(on.losses[0]) < 100 and any(n.startswith(f"stage 1: {SETTLED_NOTE}") for n in on.notes)
    assert on.losses[0] == off.losses[0][:len(on.losses[0])]
    parser = build_parser()
    args = parser.parse_args(["segment", "x.jpg", "--out", "o", "--no-settle"])
    assert config_from_args(args).settle is False
    assert config_from_args(parser.parse_args(["segment", "x.jpg", "--out", "o"])).settle is True


def test_the_replay_shows_real_snapshots_up_to_the_stop_and_says_so():
    dc = DeepCut("color")
    image = voronoi_scene(4, 0, side=160)[0]
    seg = dc.segment(image, resolution=160, k=4, epochs=100)
    feats = dc.store.get(seg.image, seg.config)
    record = record_training(graph_of(feats), feats.grid, seg.config)
    st = record.stages[0]
    trained = len(seg.losses[0])
    assert st.settled == SETTLE and st.planned == 100 and len(st.losses) == trained
    np.testing.assert_allclose(st.losses, seg.losses[0], rtol=1e-4)  # the same training (threads may differ)
    assert st.epochs[-1] == trained and all(e <= trained for e in st.epochs)  # no snapshot past the stop
    np.testing.assert_array_equal(record.labels, seg.patch_labels.ravel())  # the very result, replayed
    assert frame_words(st, len(st.epochs) - 1).endswith(f"settled: stopped here, {100 - trained} epochs early")
    assert "(settled)" in frame_words(st, 1, compact=True)
    words = settled_caption(st)
    assert f"stopped after {trained} epochs of 100" in words and "hatched" in words
    fig, ax = plt.subplots()
    loss_panel(ax, st, len(st.epochs) - 1)
    assert SETTLED_LABEL in ax.get_legend_handles_labels()[1]  # the epochs not trained, hatched
    assert ax.get_xlim()[1] >= 100
    plt.close(fig)


def test_a_restart_after_a_settled_first_try_numbers_its_epochs_from_the_stop():
    """A first try that settled with clusters empty restarts at once: the restart's epochs follow the first
    try's actual epochs, and its snapshots are keyed so."""
    x = np.repeat(np.eye(3, 8, dtype=np.float32), 40, axis=0) + 0.01 * np.random.default_rng(0).normal(
        size=(120, 8)).astype(np.float32)
    r = fit(x, k=6, epochs=60, snapshots=[0, 30, 60])
    if not r.restarted:
        pytest.skip("this graph did not restart")
    first = r.restart_epoch
    assert first <= 60 and all(e <= first for e in r.snapshots if e <= first)
    assert set(r.snapshots) - {0, 30, 60, first} <= {first + 30, first + 60, len(r.losses)}
    assert len(r.losses) - first <= 60
