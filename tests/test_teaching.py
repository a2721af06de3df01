"""The teaching view's computations (deepcut.lessons, deepcut.demo.teaching) and pictures
(deepcut.render.figures, deepcut.render.teaching): colour backbone, small synthetic images, no server."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import disc_image, disc_mask, iou
from PIL import Image

from deepcut import DeepCut, SegmentConfig
from deepcut.clustering.fit import fit
from deepcut.clustering.spectral import spectral_fit
from deepcut.demo import DemoSession
from deepcut.demo.teaching import explain, pick
from deepcut.graph.patch_graph import PatchGraph, cut_score, graph_of, normalized_cut, score_graph
from deepcut.lessons.cuts import cc_objective, compare_with_spectral
from deepcut.lessons.pca import feature_pca
from deepcut.lessons.picking import label_at, pick_object
from deepcut.lessons.replay import SnapshotRecorder, record_training, snapshot_epochs
from deepcut.render.figures import affinity_picture, figure_image, loss_figure, soft_maps_figure, soft_roles
from deepcut.render.teaching import comparison_colors, frame_colors
from deepcut.segmentation.colors import label_colors
from deepcut.stages.run import run_stages


@pytest.fixture(scope="module")
def model():
    return DeepCut("color")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return DemoSession(default_backbone="color", max_side=400, output_dir=tmp_path_factory.mktemp("out"))


def two_blobs(n: int = 20, d: int = 6, seed: int = 0) -> torch.Tensor:
    """``(2n, d)`` features: two tight clusters around different directions (positive affinities)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([1.0] + [0.0] * (d - 1)) + 0.05 * torch.randn(n, d, generator=g)
    b = torch.tensor([0.2, 1.0] + [0.0] * (d - 2)) + 0.05 * torch.randn(n, d, generator=g)
    return torch.cat([a, b])


# -- normalized cut, GNN vs spectral ---------------------------------------------------------------
def test_normalized_cut_by_hand():
    adj = torch.tensor([[0, 2, 1, 0], [2, 0, 0, 0], [1, 0, 0, 3], [0, 0, 3, 0]], dtype=torch.float64)
    labels = np.array([0, 0, 1, 1])
    # cut = 1; vol(A) = 3 + 2 = 5, vol(B) = 4 + 3 = 7
    assert normalized_cut(adj, labels) == pytest.approx(1 / 5 + 1 / 7)
    assert normalized_cut(adj, np.zeros(4, int)) == 0.0  # one segment: nothing is cut
    # the same value on the sparse form of the graph, and it agrees with discovery's cut_score
    assert normalized_cut(adj.to_sparse(), labels) == pytest.approx(1 / 5 + 1 / 7)
    assert normalized_cut(adj, labels) == pytest.approx(2 * (1 - cut_score(adj, labels == 1)))


def test_comparison_scores_both_cuts_on_the_same_graph():
    x = two_blobs()
    graph = PatchGraph(x)
    cmp = compare_with_spectral(graph, k=2, epochs=30, seed=0)
    adj = score_graph(graph)
    gnn = fit(x, k=2, loss="ncut", epochs=30, seed=0, graph=graph)
    spectral = spectral_fit(x, k=2, seed=0, graph=graph)
    np.testing.assert_array_equal(cmp.gnn_labels, gnn.labels)  # the pipeline's stage 1, exactly
    np.testing.assert_array_equal(cmp.spectral_labels, spectral.labels)
    assert cmp.gnn_score == pytest.approx(normalized_cut(adj, gnn.labels))
    assert cmp.spectral_score == pytest.approx(normalized_cut(adj, spectral.labels))
    # two clean clusters: the spectral cut finds them, and its value is the true minimum here
    truth = np.repeat([0, 1], 20)
    assert abs(np.corrcoef(cmp.spectral_labels, truth)[0, 1]) == pytest.approx(1.0)
    assert cmp.spectral_score == pytest.approx(normalized_cut(adj, truth))
    assert cmp.k == 2 and "Fiedler" in cmp.spectral_method and cmp.num_nodes == 40


def test_comparison_with_more_segments_uses_eigenvectors_and_kmeans():
    cmp = compare_with_spectral(PatchGraph(torch.cat([two_blobs(seed=1), two_blobs(seed=2) + 3.0])), k=3)
    assert "k-means" in cmp.spectral_method and cmp.gnn_score >= 0 and cmp.spectral_score >= 0


def test_cc_objective_by_hand_on_every_kind_of_graph():
    x = two_blobs(n=6)
    labels = np.repeat([0, 1], 6)
    w = (x @ x.T).double().numpy()
    a = w - w.max() / 2.0
    by_hand = -sum(a[i, j] for i in range(12) for j in range(12) if labels[i] == labels[j])
    for mode in ("dense", "compact", "sparse"):
        assert cc_objective(PatchGraph(x, mode=mode), labels, alpha=2.0) == pytest.approx(by_hand, rel=1e-4), mode
    assert cc_objective(PatchGraph(x), labels, 2.0) < cc_objective(PatchGraph(x), np.zeros(12, int), 2.0)


def test_explain_compares_this_results_own_cut(session, model):
    """Not a fresh NCut at k = 2: the result's own stage, labels, k and loss, on that stage's graph."""
    r = session.segment(disc_image(96, two_tone=True), resolution=96, k=3, stages=2, epochs=(10, 40, 10))
    c = explain(session.model(r.backbone).model, r).comparison
    labels = r.seg.patch_labels.ravel()
    fg = np.isin(labels, r.seg.foreground_labels)
    assert (c.stage, c.loss, c.asked, c.k) == (2, "ncut", 3, 3)
    np.testing.assert_array_equal(c.rows, np.flatnonzero(fg))
    np.testing.assert_array_equal(c.gnn_labels, labels[fg])  # the result itself: no GNN trained again
    sub = graph_of(model.patch_features(r.seg.image, r.seg.config)).subgraph(c.rows)
    assert c.gnn_score == pytest.approx(normalized_cut(score_graph(sub), labels[fg]))
    assert c.spectral_score == pytest.approx(normalized_cut(score_graph(sub), c.spectral_labels))
    assert np.unique(c.spectral_labels).size == 3 and c.num_nodes == fg.sum()
    words = explain(session.model(r.backbone).model, r).comparison_caption()
    assert "the foreground into its parts (stage 2)" in words and "NCut loss, k = 3" in words
    cc = session.segment(disc_image(96, two_tone=True), resolution=96, loss="cc", k=6)
    c = explain(session.model(cc.backbone).model, cc).comparison
    found = np.unique(cc.seg.patch_labels).size
    assert (c.stage, c.loss, c.asked, c.k) == (1, "cc", 6, found) and np.unique(c.spectral_labels).size == found
    graph = graph_of(model.patch_features(cc.seg.image, cc.seg.config))
    assert c.gnn_score == pytest.approx(cc_objective(graph, cc.seg.patch_labels.ravel(), cc.seg.config.alpha))
    assert c.spectral_score == pytest.approx(cc_objective(graph, c.spectral_labels, cc.seg.config.alpha))


@pytest.mark.parametrize("settings", [dict(k=4), dict(k=3, stages=3, bg_k=2), dict(loss="cc", k=10)])
def test_a_segment_has_one_colour_in_every_figure(session, settings):
    """The overlay, the comparison's GNN panel, the replay's last frame and the soft maps' frames colour
    every patch by ``label_colors()[final label]``; the spectral panel uses those colours for the clusters
    matched to a segment and colours no other segment has for the rest."""
    r = session.segment(disc_image(96, two_tone=True), resolution=96, epochs=(10, 30, 10), **settings)
    ex = explain(session.model(r.backbone).model, r)
    labels = r.seg.patch_labels.ravel()
    np.testing.assert_array_equal(ex.record.labels, labels)  # the replay is of this very result
    palette = label_colors(64)
    np.testing.assert_array_equal(np.asarray(r.seg.overlay(1.0, boundaries=False)), palette[r.seg.labels])
    gnn, spectral, keep = comparison_colors(ex.comparison, labels.size)
    np.testing.assert_array_equal(gnn[keep], palette[labels[keep]])
    allowed = {tuple(c) for c in palette[np.unique(labels[keep])]} | {tuple(c) for c in palette[labels.max() + 1:]}
    assert {tuple(c) for c in spectral[keep]} <= allowed
    _, hard, kept = frame_colors(ex.record, ex.frames - 1)
    assert kept.any()
    np.testing.assert_array_equal(hard[kept], palette[labels[kept]])
    np.testing.assert_array_equal(label_colors(25), palette[:25])  # beyond tab20's 20 too: whatever n is
    fig = soft_maps_figure(r.seg)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    for ax, (label, _, _) in zip(panels, soft_roles(r.seg), strict=True):
        np.testing.assert_allclose(ax.spines["top"].get_edgecolor()[:3], palette[label] / 255.0)


def test_explaining_a_result_without_training(session):
    """CC at α = 1 trains no GNN: nothing to replay and nothing to compare, said so, and no crash."""
    r = session.segment(disc_image(96, two_tone=True), resolution=96, loss="cc", alpha=1.0)
    ex = explain(session.model(r.backbone).model, r)
    assert ex.frames == 0 and ex.frame_picture(0).width > 300
    assert ex.comparison.k == 1 and "nothing to compare" in ex.comparison_caption()
    assert ex.comparison_picture().width > 300


# -- training replay -------------------------------------------------------------------------------
def test_snapshot_epochs():
    assert snapshot_epochs(3) == [0, 1, 2, 3]
    assert snapshot_epochs(10, most=10) == list(range(11))
    marks = snapshot_epochs(100, most=10)
    assert marks[0] == 0 and marks[-1] == 100 and len(marks) == 11


def test_recorder_snapshots_are_the_real_training(monkeypatch):
    x = two_blobs()
    rec = SnapshotRecorder(most=10)
    final = rec(x, k=2, loss="ncut", epochs=6, seed=3)
    (_, marks, softs, result, restart), = rec.calls
    assert restart is None  # two clean blobs: the first try uses both clusters
    assert marks[:7] == list(range(7)) and len(softs) == len(marks)
    direct = fit(x, k=2, loss="ncut", epochs=6, seed=3)
    np.testing.assert_allclose(softs[-1], direct.soft)  # the last snapshot is the result itself
    np.testing.assert_array_equal(final.labels, direct.labels)
    if len(direct.losses) > 6:  # NCut trained on until both clusters held a patch: one more snapshot, at its end
        assert marks[7:] == [len(direct.losses)]
    import deepcut.clustering.fit
    monkeypatch.setattr(deepcut.clustering.fit, "NCUT_RESTART", False)  # fit(epochs=3) = the first 3 epochs, exactly
    np.testing.assert_allclose(softs[3], fit(x, k=2, loss="ncut", epochs=3, seed=3).soft, rtol=1e-5, atol=1e-6)
    assert not np.allclose(softs[0], softs[-1])  # training changed the output


def test_record_training_replays_every_stage(model):
    cfg = SegmentConfig(resolution=96, k=2, stages=3, epochs=(4, 25, 3))
    feats = model.patch_features(disc_image(96, two_tone=True), cfg)
    record = record_training(graph_of(feats), feats.grid, cfg, most=10)
    assert [s.stage for s in record.stages] == [1, 2, 3]
    assert [len(s.epochs) for s in record.stages] == [5, 11, 4]  # per epoch up to 10, else 10 steps + start
    assert len(record.frames()) == 20
    # same labels as the pipeline's own run
    out = run_stages(graph_of(feats), feats.grid, cfg)
    np.testing.assert_array_equal(record.labels, out.labels)
    n = feats.grid[0] * feats.grid[1]
    assert record.stages[0].rows.size == n
    assert record.stages[1].rows.size + record.stages[2].rows.size == n
    for st in record.stages:
        assert all(s.shape == (st.rows.size, st.soft[0].shape[1]) for s in st.soft)
        assert len(st.losses) == st.epochs[-1]
        # NCut's two terms at every snapshot: the cut term in [-1, 0], the orthogonality penalty >= 0
        assert len(st.terms) == len(st.epochs)
        assert all(-1.0 - 1e-6 <= cut <= 1e-6 and ortho >= -1e-6 for cut, ortho in st.terms)
        # the final snapshot's argmax, mapped to final labels, is the final labelling of these rows
        np.testing.assert_array_equal(st.label_of[st.soft[-1].argmax(1)][np.isin(out.labels[st.rows], st.label_of)],
                                      out.labels[st.rows][np.isin(out.labels[st.rows], st.label_of)])


# -- features --------------------------------------------------------------------------------------
def test_feature_pca_shape_range_and_structure():
    f = torch.zeros(6, 8, 16)
    f[:, :4, 0] = 1.0  # two kinds of patches: left and right
    f += 0.01 * torch.randn(6, 8, 16, generator=torch.Generator().manual_seed(0))
    pca = feature_pca(f)
    assert pca.shape == (6, 8, 3) and pca.dtype == np.float32
    assert pca.min() >= 0.0 and pca.max() <= 1.0
    # the first component separates the two halves
    assert abs(pca[:, :4, 0].mean() - pca[:, 4:, 0].mean()) > 0.8
    flat = feature_pca(np.ones((3, 3, 4), np.float32))  # constant features: mid grey, no crash
    np.testing.assert_allclose(flat, 0.5)


# -- picking the object ----------------------------------------------------------------------------
def test_pick_object_mask_is_that_label(model):
    seg = model.segment(disc_image(96, two_tone=True), resolution=96, k=2, stages=2, epochs=(10, 40, 10))
    label = label_at(seg, 48 - 15, 48)  # the disc's yellow left half
    assert label != 0
    picked = pick_object(seg, label)
    np.testing.assert_array_equal(picked.foreground, seg.labels == label)
    ys, xs = np.nonzero(seg.labels == label)
    assert picked.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    np.testing.assert_array_equal(np.asarray(picked.cutout())[..., 3] > 0, seg.labels == label)
    np.testing.assert_array_equal(picked.labels, seg.labels)  # only the object changed
    assert label_at(seg, 0, 0) == 0 and label_at(seg, 10, 10, frame=(20, 20)) == label_at(seg, 48, 48)
    with pytest.raises(ValueError):
        pick_object(seg, 99)


def test_demo_pick_and_explain(session):
    r = session.segment(disc_image(96, two_tone=True), resolution=96, k=2, stages=2, epochs=(10, 40, 10))
    # a click in the overlay's frame (twice the image's size) on the background
    bg = pick(r, 4, 4, frame=(192, 192))
    np.testing.assert_array_equal(np.asarray(bg.mask()) > 127, r.seg.labels == 0)
    assert iou(np.asarray(bg.mask()) > 127, ~disc_mask(96)) > 0.85
    assert "Picked segment 0" in bg.status_markdown()
    ex = explain(session.model(r.backbone).model, r)
    assert ex.frames == len(ex.record.frames()) == 11 + 11
    assert ex.pca.shape[:2] == r.seg.patch_labels.shape
    pic = ex.frame_picture(ex.frames + 5)  # clamped to the last snapshot
    assert isinstance(pic, Image.Image) and pic.width > 300
    assert "GNN" in ex.comparison_caption() and f"{ex.comparison.gnn_score:.4g}" in ex.comparison_caption()


# -- pictures --------------------------------------------------------------------------------------
def test_loss_figure_has_one_panel_per_stage():
    fig = loss_figure([[3.0, 2.0, 1.0], [1.0, 0.5] * 50], "ncut", [2, 3, 2])
    assert len(fig.axes) == 2  # stage 2's 100 epochs get their own axis
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), [3.0, 2.0, 1.0])
    assert "k=3" in fig.axes[1].get_title() and fig.axes[0].get_legend() is None
    assert "orthogonality" in fig.get_supxlabel()


def test_soft_maps_figure_has_a_colour_bar(session):
    r = session.segment(disc_image(96, two_tone=True), resolution=96, k=2, stages=2, epochs=(10, 40, 10))
    fig = soft_maps_figure(r.seg)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(titles) == 3 and titles[0].startswith("0: background")
    bar = [ax for ax in fig.axes if "surely" in " ".join(t.get_text() for t in ax.get_yticklabels())]
    assert bar, "a colour bar says what the colours mean"
    assert figure_image(fig).mode == "RGB"


def test_affinity_picture_has_a_colour_bar_below():
    img = np.zeros((64, 64, 3), np.uint8)
    aff = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    pic = np.asarray(affinity_picture(img, aff, (0, 0), longest=64))
    assert pic.shape[1] == 64 and pic.shape[0] > 64
    bar = pic[64 + 6]  # a row through the colour bar: dark on the left, bright on the right
    assert bar[:4].mean() < bar[-4:].mean()
