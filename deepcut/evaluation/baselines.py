"""Classical clustering baselines on exactly the patch features DeepCut sees.

Each baseline has the signature of :func:`deepcut.clustering.fit.fit` (``features (N, D)``, ``k``, and
the GNN settings it ignores) and returns a :class:`~deepcut.clustering.fit.ClusterResult`, so it can
replace the GNN inside :func:`deepcut.stages.run.run_stages`: stages, the border orientation rule
for the foreground, ``largest_component``, upsampling and boxes are then literally the same code.

* :func:`~deepcut.clustering.spectral.spectral_fit` — normalized cut by its spectral relaxation (Shi & Malik),
  on DeepCut's graph or TokenCut's (see :mod:`deepcut.clustering.spectral`, where it lives: the library uses it too);
* :func:`kmeans_fit` — k-means (k-means++ seeding, best of ``n_init`` runs) on the raw features.
"""

from __future__ import annotations

from functools import partial

from ..clustering.fit import Clusterer, ClusterResult
from ..clustering.spectral import SPECTRAL_GRAPHS, fuzzy_memberships, kmeans, prepare_features, spectral_fit
from ..errors import ConfigError
from ..graph.patch_graph import PatchGraph

__all__ = ["SPECTRAL_GRAPHS", "baseline", "kmeans_fit", "spectral_fit"]


def kmeans_fit(features, k: int = 2, loss: str = "ncut", alpha: float = 3.0, epochs: int = 0, seed: int = 0,
               n_init: int = 5, graph: PatchGraph | None = None, settle: object = None) -> ClusterResult:
    """k-means of features ``(N, D)`` into ``k`` clusters (the other settings are ignored).

    Returns labels ``(N,)`` and soft memberships ``(N, k)`` (inverse squared distances, normalised).
    Deterministic for a given ``seed``.
    """
    x, k_eff, note, degenerate = prepare_features(features, k)
    if degenerate is not None:
        return degenerate
    centroids, labels = kmeans(x, k_eff, seed, n_init)
    return ClusterResult(labels, fuzzy_memberships(x, centroids), [], None, k_eff, note)


def baseline(name: str, spectral_graph: str = "deepcut") -> Clusterer:
    """The clustering function of a baseline: ``"spectral"`` or ``"kmeans"``."""
    if name == "spectral":
        if spectral_graph not in SPECTRAL_GRAPHS:
            raise ConfigError(f"spectral graph must be one of {SPECTRAL_GRAPHS}, got {spectral_graph!r}")
        return partial(spectral_fit, graph_kind=spectral_graph)
    if name == "kmeans":
        return kmeans_fit
    raise ConfigError(f"unknown baseline {name!r}; choose 'spectral' or 'kmeans'")
