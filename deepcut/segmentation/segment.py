"""One image segmented from a :class:`~deepcut.features.store.FeatureStore`: the whole flow in one call.

:func:`segment_image` is what :meth:`deepcut.DeepCut.segment_with` does, below the facade: the lessons
(a sweep over k or α, the walkthrough) re-segment an image with it from the store's cached features.
"""

from __future__ import annotations

import time

from ..clustering.fit import Clusterer, fit
from ..config import SegmentConfig
from ..features.image import ImageLike
from ..features.store import FeatureStore
from ..graph.patch_graph import graph_of
from ..stages.run import run_stages
from .finish import to_segmentation
from .result import Segmentation

__all__ = ["segment_image"]


def segment_image(store: FeatureStore, image: ImageLike, config: SegmentConfig,
                  clusterer: Clusterer = fit) -> Segmentation:
    """Segment ``image`` with ``config``: its features from ``store`` (cached: another k, loss or α does
    not rerun the backbone), the graph, the stages clustered by ``clusterer`` (default the GNN,
    :func:`~deepcut.clustering.fit.fit`), then the labels at the input's size.

    Args:
        store: the feature store of the backbone to use.
        image: path, PIL image or array (as for :meth:`deepcut.DeepCut.segment`).
        config: the settings.
        clusterer: clusters each stage's graph (:class:`~deepcut.clustering.fit.Clusterer`).
    """
    t0 = time.perf_counter()
    feats = store.get(image, config)
    out = run_stages(graph_of(feats), feats.grid, config, clusterer)
    note = unused_layer_note(store.backbone, config)
    if note:
        out.notes.append(note)
    return to_segmentation(out, feats, config, t0)


def unused_layer_note(backbone: object, config: SegmentConfig) -> str | None:
    """The note that ``config``'s layer or facet changed nothing: a backbone of one layer without facets (the colour
    one) takes any, so that a ViT's settings run unchanged; None where they are the defaults or apply."""
    base = SegmentConfig()
    if getattr(backbone, "family", None) != "color" or (config.layer, config.facet) == (base.layer, base.facet):
        return None
    return (f"the colour backbone has one layer and no facets: layer={config.layer}, facet={config.facet!r} change "
            f"nothing")
