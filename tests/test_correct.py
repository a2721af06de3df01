"""Corrections by click (``DeepCut.correct``): joined points share a label, separated points do not,
untouched segments keep their numbers, the input result is not changed; planted scenes and real images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import shared_data_dir, voronoi_scene
from PIL import Image
from scipy.ndimage import distance_transform_edt

from deepcut import ConfigError
from deepcut.clustering.links import Link, Links
from deepcut.clustering.losses import link_grad, link_loss
from deepcut.tasks.correct import Correction


def _centres(cells: np.ndarray, patch: int = 8) -> list[tuple[float, float]]:
    """The most interior pixel ``(x, y)`` of each planted cell (``cells`` is on the 8-px patch grid)."""
    out = []
    for v in np.unique(cells):
        r, c = np.unravel_index(distance_transform_edt(cells == v).argmax(), cells.shape)
        out.append((c * patch + patch / 2, r * patch + patch / 2))
    return out


def _at(seg, point) -> int:
    return int(seg.labels[int(point[1]), int(point[0])])


def _pairs(seg, pts, same: bool) -> list[tuple[int, int]]:
    n = len(pts)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if (_at(seg, pts[i]) == _at(seg, pts[j])) == same]


@pytest.mark.parametrize("loss", ["ncut", "cc"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_join_and_separate_hold_on_planted_scenes(color_model, loss, seed):
    img, cells = voronoi_scene(5, seed)
    pts = _centres(cells)
    seg = color_model.segment(img, k=3, loss=loss)
    apart, together = _pairs(seg, pts, False), _pairs(seg, pts, True)
    assert apart and together  # 5 planted cells in at most 3 segments: some pairs of each kind
    i, j = apart[0]
    joined = color_model.correct(img, seg, join=[(pts[i], pts[j])])
    assert _at(joined, pts[i]) == _at(joined, pts[j])
    assert joined.notes[0].startswith(f"joined segments {_at(seg, pts[i])} and {_at(seg, pts[j])}")
    i, j = together[0]
    split = color_model.correct(img, seg, separate=[(pts[i], pts[j])])
    assert _at(split, pts[i]) != _at(split, pts[j])
    assert split.notes[0].startswith("separated")


def test_several_corrections_at_once_all_hold_and_undo_is_the_list_minus_one(color_model):
    img, cells = voronoi_scene(6, 3)
    pts = _centres(cells)
    seg = color_model.segment(img, k=4, loss="cc")
    join = [(pts[0], pts[1]), (pts[2], pts[3])]
    separate = [(pts[4], pts[5])] if _at(seg, pts[4]) == _at(seg, pts[5]) else [(pts[1], pts[4])]
    both = color_model.correct(img, seg, join=join, separate=separate)
    for a, b in join:
        assert _at(both, a) == _at(both, b)
    for a, b in separate:
        assert _at(both, a) != _at(both, b)
    assert len([n for n in both.notes if n.startswith(("joined", "the points", "separated"))]) == 3
    undone = color_model.correct(img, seg, join=join)  # undo = the same corrections minus the last
    again = color_model.correct(img, seg, join=join)
    assert np.array_equal(undone.labels, again.labels)  # deterministic


def test_the_corrected_result_is_new_and_untouched_segments_keep_their_numbers(color_model):
    img, cells = voronoi_scene(4, 0)
    pts = _centres(cells)
    seg = color_model.segment(img, k=4, loss="ncut")
    labels, params = seg.labels.copy(), [p.detach().clone() for p in seg.models[0].parameters()]
    a, b = _pairs(seg, pts, False)[0]
    new = color_model.correct(img, seg, join=[(pts[a], pts[b])])
    assert np.array_equal(seg.labels, labels)  # the input result is not changed
    assert all(torch.equal(p, q) for p, q in zip(params, seg.models[0].parameters(), strict=True))
    involved = {_at(seg, pts[a]), _at(seg, pts[b])}
    for v in set(np.unique(seg.labels).tolist()) - involved:
        if v in np.unique(new.labels):  # a segment that survives keeps its number where it was
            assert (new.labels[seg.labels == v] == v).mean() > 0.5
    assert new.models and new.models[0] is not seg.models[0]
    again = color_model.correct(img, new, separate=[(pts[a], pts[b])])  # a corrected result corrects on
    assert _at(again, pts[a]) != _at(again, pts[b])


def test_two_stage_results_are_corrected_in_the_stage_that_decides(color_model):
    img, cells = voronoi_scene(5, 4)
    pts = _centres(cells)
    seg = color_model.segment(img, stages=2, k=3)
    fg = set(seg.foreground_labels)
    inside = [p for p in pts if _at(seg, p) in fg]
    pairs = [(p, q) for i, p in enumerate(inside) for q in inside[i + 1:]]
    if not pairs:
        pytest.skip("the planted scene has fewer than two cells in the foreground")
    p, q = pairs[0]
    kind = "separate" if _at(seg, p) == _at(seg, q) else "join"
    new = color_model.correct(img, seg, **{kind: [(p, q)]})
    assert (_at(new, p) == _at(new, q)) == (kind == "join")
    assert 0 in np.unique(new.labels)  # the background stays


def test_corrections_hold_on_real_images(color_model):
    folder = shared_data_dir() / "weizmann_horse" / "images"
    files = sorted(folder.glob("*"))[:3] if folder.is_dir() else []
    if not files:
        pytest.skip("../shared/data is not here")
    rng = np.random.default_rng(0)
    for file in files:
        img = np.asarray(Image.open(file).convert("RGB"))
        h, w = img.shape[:2]
        for loss in ("ncut", "cc"):
            seg = color_model.segment(img, k=3, loss=loss)
            pts = [(float(x), float(y)) for x, y in zip(rng.integers(0, w, 6), rng.integers(0, h, 6), strict=True)]
            join, separate = [(pts[0], pts[1])], [(pts[2], pts[3])]
            if pts[2] in pts[:2] or pts[3] in pts[:2]:
                continue
            new = color_model.correct(img, seg, join=join, separate=separate)
            assert _at(new, pts[0]) == _at(new, pts[1]), (file.name, loss)
            assert _at(new, pts[2]) != _at(new, pts[3]), (file.name, loss)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "nothing to correct"),
    ({"join": [((1, 1),)]}, "point pairs"),
    ({"join": "abc"}, "point pairs"),
    ({"separate": [((1, 1), (float("nan"), 2))]}, "point pairs"),
    ({"join": [((10 ** 400, 1), (2, 2))]}, "point pairs"),  # too large for a float: not an OverflowError
    ({"join": [((1, 1), (5000, 2))]}, "outside"),
    ({"separate": [((1, 1), (2, 2))]}, "same patch"),
])
def test_bad_corrections_are_clear_errors(color_model, kwargs, message):
    img, _ = voronoi_scene(3, 0)
    seg = color_model.segment(img)
    with pytest.raises(ConfigError, match=message):
        color_model.correct(img, seg, **kwargs)


def test_a_result_of_another_image_is_refused(color_model):
    img, _ = voronoi_scene(3, 0)
    seg = color_model.segment(img)
    with pytest.raises(ConfigError, match="patch grid"):
        color_model.correct(np.zeros((100, 300, 3), np.uint8), seg, join=[((1, 1), (50, 50))])
    with pytest.raises(ConfigError, match="Segmentation"):
        color_model.correct(img, "seg", join=[((1, 1), (50, 50))])


def test_link_loss_matches_its_formula_and_pulls_the_right_way():
    s = torch.softmax(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), dim=-1).requires_grad_()
    a, b = torch.tensor([0, 1]), torch.tensor([4, 5])
    p = s[a] @ s[b].T
    assert torch.allclose(link_loss(s, must=[(a, b)]), -torch.log(p).mean())
    assert torch.allclose(link_loss(s, cannot=[(a, b)]), -torch.log(1 - p).mean())
    assert float(link_loss(s)) == 0.0
    link_loss(s, must=[(a, b)]).backward()  # descending the must-link raises the shared probability
    with torch.no_grad():
        moved = s - 0.1 * s.grad
        assert float((moved[a] @ moved[b].T).mean()) > float(p.mean())


def test_link_grad_equals_autograd_of_the_link_loss():
    """Overlapping and repeated groups, both kinds at once, and pairs where the clamp at 1e-6 holds (nearly
    one-hot rows in different clusters: P underflows; in one cluster: 1 - P does)."""
    g = torch.Generator().manual_seed(3)
    soft = torch.softmax(torch.randn(12, 4, generator=g), dim=-1)
    sharp = torch.softmax(torch.tensor([[40.0, 0, 0, 0]] * 3 + [[0, 40.0, 0, 0]] * 3), dim=-1)
    for s, must, cannot in [
        (soft, [(torch.tensor([0, 1, 1]), torch.tensor([4, 5])), (torch.tensor([2]), torch.tensor([2, 3]))],
         [(torch.tensor([5, 6]), torch.tensor([0, 9, 11]))]),
        (soft, [], [(torch.tensor([7]), torch.tensor([8]))]),
        (sharp, [(torch.tensor([0, 1]), torch.tensor([3, 4]))], [(torch.tensor([0]), torch.tensor([2]))]),
    ]:
        for weight in (1.0, 2.5):
            value, grad = link_grad(must, cannot, weight)(s)
            leaf = s.clone().requires_grad_()
            ref = weight * link_loss(leaf, must, cannot)
            ref.backward()
            assert torch.allclose(value, ref.detach(), rtol=1e-6, atol=1e-6)
            assert torch.allclose(grad, leaf.grad, rtol=1e-5, atol=1e-6)
            assert (grad.abs().max() > 0) == (s is soft)  # the sharp pairs: every clamp holds, no gradient
    value, grad = link_grad()(soft)
    assert float(value) == 0.0 and not grad.any()


def test_links_restrict_to_a_stage_and_its_rows():
    links = Links([Link("must", (2, 7), (np.array([1, 2]), np.array([7, 8]))),
                   Link("cannot", (3, 4), (np.array([3]), np.array([4])), frozenset({1}))])
    assert len(links.restrict(0, None)) == 1 and len(links.restrict(1, None)) == 2
    sub = links.restrict(0, np.array([2, 7, 8]))
    assert sub.links[0].anchors == (0, 1) and [g.tolist() for g in sub.links[0].groups] == [[0], [1, 2]]
    assert not links.restrict(1, np.array([3, 5]))  # an anchor outside the rows drops the link
    assert links.links[0].satisfied(np.array([0, 0, 1, 0, 0, 0, 0, 1, 0]))


# -- the Image tab's corrections (deepcut/demo/corrections.py), without a browser ----------------------------
def test_demo_corrections_accumulate_undo_and_reset(tmp_path):
    from deepcut.demo import DemoSession
    from deepcut.demo import corrections as dcorr
    from deepcut.render.marks import COLOURS

    session = DemoSession(default_backbone="color", output_dir=tmp_path)
    img, cells = voronoi_scene(5, 0)
    pts = _centres(cells)
    result = session.segment(img, k=3, loss="cc")
    model = session.model("color").model
    a, b = _pairs(result.seg, pts, False)[0]
    first = dcorr.click(model, result, "join", *pts[a])
    assert first.pending == ("join", pts[a]) and first.seg is result.seg  # waits for the second point
    assert "First point marked" in first.status_markdown()
    assert tuple(np.asarray(first.overlay(0.5))[int(pts[a][1]), int(pts[a][0])]) == COLOURS["pending"]
    joined = dcorr.click(model, first, "join", *pts[b])
    assert _at(joined.seg, pts[a]) == _at(joined.seg, pts[b]) and len(joined.corrections) == 1
    assert "Correction 1: joined segments" in joined.status_markdown()
    assert tuple(np.asarray(joined.overlay(0.5))[int(pts[b][1]), int(pts[b][0])]) == COLOURS["join"]
    c, d = _pairs(joined.seg, pts, True)[0]
    both = dcorr.click(model, dcorr.click(model, joined, "separate", *pts[c]), "separate", *pts[d])
    assert len(both.corrections) == 2 and _at(both.seg, pts[c]) != _at(both.seg, pts[d])
    from deepcut.demo.teaching import Walkthrough, explain

    ex = explain(model, both)  # its replay is the plain cut's training, and says so under the title
    assert ex.replay_note == "the plain cut's training: the 2 corrections by click came after it"
    assert explain(model, result).replay_note == ""
    replay = Walkthrough(model, both, ex).training_step().figure(1, 1.0)
    assert ex.replay_note in replay._suptitle.get_text()
    undone = dcorr.undo(model, both)
    assert np.array_equal(undone.seg.labels, joined.seg.labels) and len(undone.corrections) == 1
    plain = dcorr.reset(model, both)
    assert np.array_equal(plain.seg.labels, result.seg.labels) and not plain.corrections and plain.plain is None
    assert "Corrections reset" in plain.status_markdown()
    assert "nothing to undo" in dcorr.undo(model, plain).status_markdown()


def test_a_server_cap_bounds_the_corrections_training(tmp_path):
    from deepcut.demo import DemoSession
    from deepcut.demo import corrections as dcorr

    session = DemoSession(default_backbone="color", output_dir=tmp_path)
    img, cells = voronoi_scene(5, 0)
    pts = _centres(cells)
    result = session.segment(img, k=3)
    i, j = _pairs(result.seg, pts, True)[0]
    capped = dcorr.apply(session.model("color").model, result, [Correction("separate", (pts[i], pts[j]))], 2)
    assert sum(len(x) for x in capped.seg.losses) <= 2
    assert _at(capped.seg, pts[i]) != _at(capped.seg, pts[j])  # what the cap leaves undone is enforced


def test_demo_corrections_are_capped_and_deep_json_is_a_clear_error(tmp_path):
    from deepcut.demo import DemoSession
    from deepcut.demo import corrections as dcorr
    from deepcut.demo.errors import DemoError

    for text in ("[" * 100_000, '[{"join": ' * 30_000,  # too deep for Python's parser: not a traceback
                 '[{"join": [[1' + "0" * 400 + ', 1], [2, 2]]}]'):  # too large for a float
        with pytest.raises(DemoError, match="corrections must be JSON"):
            dcorr.parse(text)
    one = {"join": [[1, 1], [20, 20]]}
    assert len(dcorr.parse(json.dumps([one] * dcorr.MAX_CORRECTIONS))) == dcorr.MAX_CORRECTIONS
    with pytest.raises(DemoError, match=f"at most {dcorr.MAX_CORRECTIONS} corrections"):
        dcorr.parse(json.dumps([one] * 5000))  # thousands would hold a worker for minutes
    session = DemoSession(default_backbone="color", output_dir=tmp_path)
    img, cells = voronoi_scene(5, 0)
    pts = _centres(cells)
    result = session.segment(img, k=3)
    i, j = _pairs(result.seg, pts, True)[0]
    full = [Correction("join", (pts[i], pts[j]))] * (dcorr.MAX_CORRECTIONS + 1)
    with pytest.raises(DemoError, match="undo some, or reset"):  # a click past the cap adds nothing
        dcorr.apply(session.model("color").model, result, full)


def test_the_library_caps_correction_pairs_and_the_app_uses_its_cap(color_model):
    import time

    from deepcut.demo import corrections as dcorr
    from deepcut.tasks import correct as tcorrect

    assert dcorr.MAX_CORRECTIONS == tcorrect.MAX_CORRECTIONS
    img, _ = voronoi_scene(3, 0)
    seg = color_model.segment(img)
    pair = ((1, 1), (50, 50))
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"at most {tcorrect.MAX_CORRECTIONS} correction pairs"):
        color_model.correct(img, seg, join=[pair] * 1_000_000)  # refused at once, not minutes of training
    assert time.perf_counter() - t0 < 5
    half = tcorrect.MAX_CORRECTIONS // 2 + 1  # each list within the cap, both together past it
    with pytest.raises(ConfigError, match=f"at most {tcorrect.MAX_CORRECTIONS} correction pairs"):
        color_model.correct(img, seg, join=[pair] * half, separate=[pair] * half)


def test_a_segmentation_of_another_size_or_other_pixels_is_refused(color_model):
    img, _ = voronoi_scene(3, 0)
    seg = color_model.segment(img)
    h, w = img.shape[:2]
    bigger = np.asarray(Image.fromarray(img).resize((w + 3, h + 3)))  # the same patch grid, another size
    with pytest.raises(ConfigError, match="another image"):
        color_model.correct(bigger, seg, join=[((1, 1), (50, 50))])
    other = img.copy()
    other[:8, :8] = 255 - other[:8, :8]
    with pytest.raises(ConfigError, match="another image"):
        color_model.correct(other, seg, join=[((1, 1), (50, 50))])


def test_a_split_of_a_one_segment_result_has_a_foreground_again(color_model):
    """Join the foreground to the background (one segment: no foreground), then separate two points: the
    result has two segments again, so it has a foreground, its box and mask, and no "no foreground" note.
    Before, a split the GNN did not learn by itself (forced at the clicks) kept the one-segment result's empty
    foreground and note beside two segments on the overlay."""
    from deepcut.stages.run import NO_FOREGROUND
    from deepcut.tasks.correct import correct_features

    img = np.asarray(Image.open("assets/cat.jpg").convert("RGB"))
    h, w = img.shape[:2]
    seg = color_model.segment(img)
    fg, bg = np.argwhere(seg.foreground), np.argwhere(~seg.foreground)
    join = Correction("join", ((float(fg[len(fg) // 2][1]), float(fg[len(fg) // 2][0])),
                               (float(bg[0][1]), float(bg[0][0]))))
    feats = color_model.patch_features(img, seg.config)
    one = correct_features(feats, seg, [join])
    assert np.unique(one.labels).size == 1 and not one.foreground.any() and NO_FOREGROUND in one.notes
    rng, forced = np.random.default_rng(0), 0
    for _ in range(8):
        pair = ((float(rng.integers(0, w)), float(rng.integers(0, h))), (float(rng.integers(0, w)),
                                                                        float(rng.integers(0, h))))
        try:
            new = correct_features(feats, seg, [join, Correction("separate", pair)], previous=one)
        except ConfigError:  # both points in one patch
            continue
        forced += any("split between them" in n for n in new.notes)
        assert _at(new, pair[0]) != _at(new, pair[1])
        assert new.foreground.any() and not new.foreground.all() and new.bbox is not None, new.notes
        assert NO_FOREGROUND not in new.notes
        assert set(np.unique(new.labels[new.foreground]).tolist()) == set(new.foreground_labels)
    assert forced, "no pair went through the forced split: the test no longer covers it"
