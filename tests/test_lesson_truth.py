"""A lesson that stays true: what the method did is said wherever the method is shown.

When NCut's first epochs leave a segment empty, the GNN restarts from the graph's spectral cut
(:func:`deepcut.clustering.fit.fit`). The cat at k = 3 does so with the colour backbone; these tests check
that the library's result says so (the notes, :attr:`Segmentation.restarts`), that the loss plot draws and
names the restart's epochs, that the replay holds the restart's real snapshots in order, and that the
walkthrough and *Explain this result* say that the GNN started from the spectral cut.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from deepcut import DeepCut
from deepcut.clustering.fit import NCUT_START_EPOCHS, RESTART_LABEL, RESTART_NOTE, fit, restart_words
from deepcut.clustering.spectral import spectral_partition
from deepcut.graph.patch_graph import graph_of
from deepcut.lessons.explain import explain
from deepcut.lessons.result import LessonResult, loss_plot
from deepcut.lessons.walkthrough import Walkthrough
from deepcut.render.teaching import training_frame_figure
from deepcut.segmentation.notes import is_information

CAT = Path(__file__).resolve().parents[1] / "assets" / "cat.jpg"


@pytest.fixture(scope="module")
def dc() -> DeepCut:
    return DeepCut("color")


@pytest.fixture(scope="module")
def cat3(dc):
    """The cat at k = 3, one stage: NCut's first 10 epochs use 2 clusters, so it restarts."""
    return dc.segment(CAT, k=3, resolution=160)


def test_fit_records_the_restart_in_order_and_recording_changes_nothing(dc):
    pf = dc.patch_features(CAT, resolution=160)
    graph = graph_of(pf)
    plain = fit(pf.features, k=3, epochs=10, graph=graph)
    marks = list(range(21))
    rec = fit(pf.features, k=3, epochs=10, graph=graph, snapshots=marks)
    assert plain.restarted and rec.restarted and rec.restart_epoch == 10 and len(rec.losses) == 20
    np.testing.assert_array_equal(plain.labels, rec.labels)  # recording does not change the training
    np.testing.assert_allclose(plain.losses, rec.losses)
    assert sorted(rec.snapshots) == marks  # the first try's epochs 0-10, then the restart's 11-20
    np.testing.assert_allclose(rec.snapshots[20], rec.soft)  # the last snapshot is the result
    assert len(np.unique(rec.snapshots[10].argmax(1))) < 3  # the first try left a cluster empty …
    np.testing.assert_array_equal(rec.first_labels, rec.snapshots[10].argmax(1))  # … and is kept to compare
    # the restart's start: the fresh GNN once it learned the spectral cut (most patches agree with that cut)
    spectral = spectral_partition(graph.cluster_affinity("ncut"), 3, 0)
    start = rec.restart_start.argmax(1)
    assert rec.restart_start.shape == rec.soft.shape
    agree = max(np.mean(np.asarray(p)[start] == spectral) for p in itertools.permutations(range(3)))
    assert agree > 0.8, agree
    assert rec.note == restart_words(10, 3, len(np.unique(rec.first_labels)))
    assert f"{NCUT_START_EPOCHS} epochs" in rec.note and "epochs 11–20" in rec.note


def test_the_result_and_the_status_say_the_method_restarted(dc, cat3):
    assert cat3.restarts == [10]
    said = [n for n in cat3.notes if RESTART_NOTE in n]
    assert said == [f"stage 1: {restart_words(10, 3, 2)}"]  # its first 10 epochs used 2 of the 3 clusters
    assert is_information(said[0])  # what the method did: shown as information, not a warning
    two = dc.segment(CAT, k=2, resolution=160)
    assert two.restarts == [0] and not any(RESTART_NOTE in n for n in two.notes)

    from deepcut.demo import DemoSession

    result = DemoSession(default_backbone="color").segment(str(CAT), k=3, resolution=160)
    status = result.status_markdown()
    assert f"ℹ️ {said[0]}" in status  # the library's words, as they are
    assert "⚠️ stage 1: NCut restarted" not in status


def test_the_loss_plot_draws_and_names_the_restart(cat3):
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Rectangle

    for text in (1.0, 1.6):  # a laptop, and compact (a phone, a projector)
        fig = loss_plot(cat3, text)
        ax = fig.axes[0]
        assert RESTART_LABEL in ax.get_title()
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
        assert [list(ln.get_xdata()) for ln in lines] == [list(range(1, 11)), list(range(11, 21))]  # two tries
        marker = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [10.5, 10.5]]
        assert marker, "a dashed line where the restart begins"
        spans = [p for p in ax.patches if isinstance(p, Rectangle)] + [
            c for c in ax.collections if isinstance(c, PolyCollection)]
        assert spans, "the restart's epochs are shaded"
        assert "first try" in fig.get_supxlabel()
    plain = loss_plot(dataclasses.replace(cat3, restarts=[0]))  # the same losses, not marked: one line
    assert RESTART_LABEL not in plain.axes[0].get_title() and len(plain.axes[0].get_lines()) == 1


def test_the_replay_walkthrough_and_explanation_show_the_restart(dc, cat3):
    ex = explain(dc.store, cat3)
    st = ex.record.stages[0]
    assert st.restart == 11 and st.epochs == list(range(11)) + [10] + list(range(11, 21))
    assert [st.phase(i) for i in (0, 10, 11, 12, 21)] == ["first try", "first try", "restart start", "restart",
                                                          "restart"]
    # real snapshots: the first try's last uses fewer clusters; the last is the result's own labels
    assert len(np.unique(st.soft[10].argmax(1))) < 3 and len(np.unique(st.soft[-1].argmax(1))) == 3
    np.testing.assert_array_equal(st.label_of[st.soft[-1].argmax(1)], ex.record.labels[st.rows])
    titles = [training_frame_figure(ex.image, ex.record, f).get_suptitle() for f in (5, 11, 15)]
    assert "first try" in titles[0] and "after epoch 5 of 10" in titles[0]
    assert RESTART_LABEL in titles[1] and "learning that cut" in titles[1]
    assert RESTART_LABEL in titles[2] and "after epoch 14 of 20" in titles[2]

    walk = Walkthrough(dc.store, LessonResult.of(dc.store, cat3), ex)
    caption = walk.step(2).caption
    assert "first try of 10 epochs left a segment empty" in caption and RESTART_LABEL in caption
    assert walk.step(2).frames == 22

    words = ex.comparison_caption()
    assert "The GNN started from the spectral cut here" in words
    assert f"{ex.comparison.first_try_segments} of the k = 3 segments" in words
    assert ex.comparison.first_try_segments == 2 and ex.comparison.first_try_score is not None
    from deepcut.render.teaching import _comparison_titles

    assert "started from the spectral cut" in _comparison_titles(ex.comparison)[0]


def test_no_restart_no_restart_words(dc):
    seg = dc.segment(CAT, k=2, resolution=160)
    ex = explain(dc.store, seg)
    assert ex.record.stages[0].restart is None and ex.comparison.restart_epoch == 0
    assert "started from the spectral cut" not in ex.comparison_caption()
    walk = Walkthrough(dc.store, LessonResult.of(dc.store, seg), ex)
    assert RESTART_LABEL not in walk.step(2).caption


# -- the objects panel's table ---------------------------------------------------------------------
def test_the_objects_table_is_one_markdown_block():
    """The score table is one paragraph of rows (a blank line between them would end the table: the page
    showed raw ``| # | score |`` lines)."""
    from deepcut.demo import DemoSession

    found = DemoSession(default_backbone="color").discover(str(CAT), objects=2, resolution=96)
    status = found.status()
    n = len(found.found.objects)
    assert n >= 1
    blocks = status.split("\n\n")
    table = [b for b in blocks if b.startswith("| # | score |")]
    assert len(table) == 1, status
    rows = table[0].split("\n")
    assert rows[1] == "|---|---|---|---|" and len(rows) == 2 + n and all(r.startswith("| ") for r in rows[2:])


# -- the words of a correction by click ------------------------------------------------------------
def test_a_correction_note_describes_the_last_correction_alone(tmp_path):
    """Join two points, then separate the same two: the second note says what the separation did to the
    joined result, not "joined segments … the points were already apart" (both corrections against the plain
    cut); information carries ℹ️, not ⚠️; undo and reset say what they did; a pick's notice goes with it."""
    from conftest import voronoi_scene
    from test_correct import _at, _centres, _pairs

    from deepcut.demo import DemoSession
    from deepcut.demo import corrections as dcorr
    from deepcut.demo.teaching import pick

    session = DemoSession(default_backbone="color", output_dir=tmp_path)
    img, cells = voronoi_scene(5, 0)
    pts = _centres(cells)
    result = session.segment(img, k=3, loss="cc")
    model = session.model("color").model
    a, b = _pairs(result.seg, pts, False)[0]
    joined = dcorr.click(model, dcorr.click(model, result, "join", *pts[a]), "join", *pts[b])
    assert _at(joined.seg, pts[a]) == _at(joined.seg, pts[b])
    apart = dcorr.click(model, dcorr.click(model, joined, "separate", *pts[a]), "separate", *pts[b])
    assert _at(apart.seg, pts[a]) != _at(apart.seg, pts[b])
    notes = [n for n in apart.notices if n.startswith("Correction")]
    assert len(notes) == 1 and notes[0].startswith("Correction 2: separated"), apart.notices
    assert "joined" not in notes[0] and "already apart" not in notes[0]  # nothing of correction 1
    status = apart.status_markdown()
    assert f"ℹ️ {notes[0]}" in status and "⚠️ Correction" not in status
    assert all(not n.startswith("After correction") or n.startswith("After correction 2,") for n in apart.notices)

    undone = dcorr.undo(model, apart)
    said = [n for n in undone.notices if n.startswith(("Correction", "Undid"))]
    assert said == ["Undid correction 2: the result of the first correction again"], undone.notices
    np.testing.assert_array_equal(undone.seg.labels, joined.seg.labels)

    picked = pick(apart, *pts[a])
    assert "ℹ️ Picked segment" in picked.status_markdown()
    plain = dcorr.reset(model, picked)
    assert not any(n.startswith("Picked segment") for n in plain.notices)  # the pick went with the cut
    assert "ℹ️ Corrections reset: the plain cut." in plain.status_markdown()
    waiting = dcorr.click(model, pick(result, *pts[a]), "join", *pts[a])
    assert any(n.startswith("Picked segment") for n in waiting.notices)  # a waiting point changes nothing


def test_gone_segments_are_said_in_good_grammar():
    from types import SimpleNamespace

    from deepcut.tasks.correct import describe

    old = SimpleNamespace(labels=np.array([[0, 1, 2, 2]]))
    one = describe([], old, SimpleNamespace(labels=np.array([[1, 1, 2, 2]])))
    two = describe([], old, SimpleNamespace(labels=np.array([[2, 2, 2, 2]])))
    assert "segment 0 no longer exists" in one and "segments 0, 1 no longer exist" in two
