"""The spectral relaxation of the normalized cut (Shi & Malik) on DeepCut's own graph: the classical
solver the GNN is compared with (the teaching view, the evaluation baselines, the object discovery's
MaskCut-style baseline). :func:`spectral_fit` has the signature of :func:`deepcut.clustering.fit.fit`,
so it plugs in wherever the GNN does (:meth:`deepcut.DeepCut.segment_with`).

``k = 2``: the Fiedler vector of the normalized Laplacian, split at its mean (TokenCut); ``k > 2``:
k-means on the row-normalised first ``k`` eigenvectors (Ng, Jordan & Weiss; Deep Spectral Methods).
The graph is DeepCut's NCut graph ``relu(F Fᵀ) / max`` by default, or TokenCut's binarised cosine
graph. Above :data:`deepcut.graph.patch_graph.DENSE_MAX_NODES` nodes (or when the pipeline's graph is sparse)
DeepCut's graph is the same sparse k-NN graph the GNN cuts and ARPACK works on it without an
``N x N`` matrix; TokenCut's graph (every pair has a weight) is then refused.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
from scipy.cluster.vq import kmeans2

from ..errors import ConfigError
from ..graph.patch_graph import (
    DEFAULT_NEIGHBOURS,
    DENSE_MAX_NODES,
    PatchGraph,
    SparseAffinity,
    affinity,
    knn_affinity,
    use_sparse,
)
from ..utils.threads import blas_threads
from .result import ClusterResult

#: Graphs :func:`spectral_fit` can cut.
SPECTRAL_GRAPHS = ("deepcut", "tokencut")


def as_matrix(features) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().float().numpy()
    x = np.asarray(features, np.float64)
    if x.ndim != 2:
        raise ConfigError(f"features must be an (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError("features contain NaN or infinite values")
    return x


def single_cluster(n: int, k: int, reason: str) -> ClusterResult:
    soft = np.zeros((n, max(int(k), 1)), np.float32)
    soft[:, 0] = 1.0
    return ClusterResult(np.zeros(n, np.int64), soft, [], None, 1, note=f"one cluster: {reason}")


def build_graph(features, kind: str = "deepcut", tau: float = 0.2, eps: float = 1e-5) -> np.ndarray:
    """The affinity matrix ``(N, N)`` float64 the spectral baseline cuts, from features ``(N, D)``.

    * ``"deepcut"``: DeepCut's NCut graph, ``relu(F Fᵀ) / max`` (:func:`deepcut.clustering.fit.affinity`);
    * ``"tokencut"``: TokenCut's graph, 1 where the cosine similarity exceeds ``tau``, else ``eps``.
    """
    if kind == "deepcut":
        t = torch.as_tensor(as_matrix(features), dtype=torch.float32)
        return affinity(t, "ncut").double().numpy()
    if kind == "tokencut":
        x = as_matrix(features)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return np.where(x @ x.T > tau, 1.0, eps)
    raise ConfigError(f"spectral graph must be one of {SPECTRAL_GRAPHS}, got {kind!r}")


def build_sparse_graph(x: np.ndarray, neighbours: int = DEFAULT_NEIGHBOURS) -> scipy.sparse.csr_matrix:
    """DeepCut's NCut graph as the GNN sees it above :data:`~deepcut.graph.patch_graph.DENSE_MAX_NODES` nodes:
    the symmetric k-NN graph of :func:`deepcut.graph.patch_graph.knn_affinity`, ``(N, N)`` float64 CSR."""
    sp = knn_affinity(torch.as_tensor(x, dtype=torch.float32), "ncut", neighbours=neighbours)
    return _scipy_csr(sp.index, sp.weight, x.shape[0])


def _scipy_csr(index: torch.Tensor, weight: torch.Tensor, n: int) -> scipy.sparse.csr_matrix:
    """Edges ``index`` ``(2, E)`` with weights ``(E,)`` as an ``(n, n)`` float64 scipy CSR matrix."""
    rows, cols = index.cpu().numpy()
    return scipy.sparse.csr_matrix((weight.double().cpu().numpy(), (rows, cols)), shape=(n, n))


def fuzzy_memberships(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Soft assignments ``(N, k)`` from squared distances (fuzzy c-means, m = 2); argmax = nearest."""
    d2 = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    exact = d2 <= 1e-12
    inv = 1.0 / np.maximum(d2, 1e-12)
    soft = inv / inv.sum(1, keepdims=True)
    rows = exact.any(1)
    soft[rows] = exact[rows] / exact[rows].sum(1, keepdims=True)
    return soft.astype(np.float32)


@blas_threads(1)  # no spinning BLAS workers left behind for torch's next steps
def kmeans(x: np.ndarray, k: int, seed: int, n_init: int) -> tuple[np.ndarray, np.ndarray]:
    """Best of ``n_init`` k-means++ runs (lowest inertia): ``(centroids (k, D), labels (N,))``."""
    rng = np.random.default_rng(int(seed))
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kmeans2 warns when a cluster empties; the best run is kept
        for _ in range(max(1, int(n_init))):
            centroids, labels = kmeans2(x, int(k), minit="++", seed=rng)
            inertia = float(((x - centroids[labels]) ** 2).sum())
            if best is None or inertia < best[0]:
                best = (inertia, centroids, labels)
    assert best is not None  # at least one run
    return best[1], best[2].astype(np.int64)


def prepare_features(features, k: int) -> tuple[np.ndarray, int, str | None, ClusterResult | None]:
    """Shared start of the baselines: ``(x (N, D), k clamped to N, note, result if degenerate)``."""
    x = as_matrix(features)
    n = x.shape[0]
    if n == 0:
        raise ConfigError("cannot cluster zero nodes")
    k_eff = max(1, min(int(k), n))
    note = f"k={k} is more than the {n} nodes; using k={k_eff}" if k_eff < int(k) else None
    if k_eff < 2 or np.allclose(x, x[0]):
        return x, k_eff, note, single_cluster(n, k, "a single node" if n == 1 else "constant features")
    return x, k_eff, note, None


def _top_eigenvectors(m: np.ndarray | scipy.sparse.linalg.LinearOperator, k: int, tol: float = 1e-10) -> np.ndarray:
    """Eigenvectors ``(N, k)`` of the ``k`` largest eigenvalues of a symmetric ``(N, N)`` matrix, largest first.

    Lanczos (ARPACK, deterministic start) for large matrices, a dense solver for small ones or if
    ARPACK does not converge. A :class:`scipy.sparse.linalg.LinearOperator` always goes to ARPACK.
    """
    n = m.shape[0]
    if isinstance(m, scipy.sparse.linalg.LinearOperator):
        vals, vecs = scipy.sparse.linalg.eigsh(m, k=k, which="LA", v0=np.ones(n), tol=max(tol, 1e-8))
        return vecs[:, np.argsort(-vals)]
    if n > 64 and k < n - 1:
        try:
            vals, vecs = scipy.sparse.linalg.eigsh(m, k=k, which="LA", v0=np.ones(n), tol=tol)
            return vecs[:, np.argsort(-vals)]
        except scipy.sparse.linalg.ArpackError:
            pass
    _, vecs = scipy.linalg.eigh(m, subset_by_index=[n - k, n - 1], driver="evr")
    return vecs[:, ::-1]


@blas_threads(1)  # no spinning BLAS workers left behind for torch's next steps
def spectral_embedding(a: np.ndarray | scipy.sparse.csr_matrix, k: int, tol: float = 1e-10
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` eigenvectors of the normalized Laplacian of an affinity ``(N, N)`` (dense, or
    scipy sparse: then nothing ``N x N`` is formed).

    Returns ``(u (N, k), d_isqrt (N,))``: ``u`` are the eigenvectors of ``I - D^-1/2 A D^-1/2`` with
    the ``k`` smallest eigenvalues (the trivial ``D^1/2 1`` first), ``d_isqrt = D^-1/2``. The trivial
    eigenvector is known in closed form and deflated before solving, so a graph of (almost)
    disconnected parts, whose first eigenvalues are (almost) equal, still gives the right Fiedler vector.
    ``tol``: the eigensolver's relative tolerance.
    """
    degree = np.maximum(np.asarray(a.sum(1)).ravel(), 1e-12)
    d_isqrt = 1.0 / np.sqrt(degree)
    trivial = np.sqrt(degree) / np.linalg.norm(np.sqrt(degree))
    m: np.ndarray | scipy.sparse.linalg.LinearOperator
    if scipy.sparse.issparse(a):
        d = scipy.sparse.diags(d_isqrt)
        norm = (d @ a @ d).tocsr()
        m = scipy.sparse.linalg.LinearOperator(  # the same deflation, as an operator
            norm.shape, matvec=lambda v: norm @ np.ravel(v) - 2.0 * trivial * (trivial @ np.ravel(v)),
            dtype=np.float64)
    else:
        m = np.asarray(d_isqrt[:, None] * a * d_isqrt[None, :])  # dense: an ndarray already
        m -= 2.0 * np.outer(trivial, trivial)  # its eigenvalue 1 becomes -1, below every other one
    u = _top_eigenvectors(m, k - 1, tol)
    return np.concatenate([trivial[:, None], u], axis=1), d_isqrt


def spectral_fit(features, k: int = 2, loss: str = "ncut", alpha: float = 3.0, epochs: int = 0, seed: int = 0,
                 graph_kind: str = "deepcut", n_init: int = 5, graph: PatchGraph | None = None,
                 settle: object = None) -> ClusterResult:
    """Spectral normalized cut of features ``(N, D)`` into ``k`` clusters (GNN settings ignored).

    The graph is built from the features by ``graph_kind`` (in float64). The pipeline's ``graph``
    only decides dense or sparse (:attr:`~deepcut.graph.patch_graph.PatchGraph.is_sparse`, its ``k``; without
    it, more than :data:`~deepcut.graph.patch_graph.DENSE_MAX_NODES` nodes is sparse): a sparse ``"deepcut"``
    graph is the GNN's k-NN graph (:func:`build_sparse_graph`); ``"tokencut"`` cannot be sparse
    and raises :class:`ConfigError` then.

    ``k = 2``: generalized Fiedler vector ``y = D^-1/2 u₂`` of ``(D - A) y = λ D y``, split at its
    mean; soft memberships are ``0.5 ± 0.5 (y - mean) / max|y - mean|``. ``k > 2``: k-means
    (k-means++, ``seed``) on the unit-normalised rows of the first ``k`` eigenvectors ``u``.
    """
    x, k_eff, note, degenerate = prepare_features(features, k)
    if degenerate is not None:
        return degenerate
    a = _spectral_graph(x, graph_kind, graph)
    u, d_isqrt = spectral_embedding(a, k_eff)  # (N, k), the trivial eigenvector first
    if k_eff == 2:
        y = d_isqrt * u[:, 1]
        centre = y.mean()
        labels = (y > centre).astype(np.int64)
        if labels.min() == labels.max():
            return single_cluster(x.shape[0], k, "the Fiedler vector is constant")
        s = 0.5 + 0.5 * (y - centre) / max(float(np.abs(y - centre).max()), 1e-12)
        soft = np.stack([1.0 - s, s], axis=1).astype(np.float32)
        return ClusterResult(labels, soft, [], None, 2, note)
    rows = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    centroids, labels = kmeans(rows, k_eff, seed, n_init)
    return ClusterResult(labels, fuzzy_memberships(rows, centroids), [], None, k_eff, note)


def spectral_partition(a: torch.Tensor | SparseAffinity, k: int, seed: int = 0, n_init: int = 2) -> np.ndarray:
    """The spectral ``k``-way normalized cut of a non-negative affinity ``(N, N)`` (a dense tensor or a
    :class:`~deepcut.graph.patch_graph.SparseAffinity`): k-means on the unit rows of the first ``k`` eigenvectors of its
    normalized Laplacian (Ng, Jordan & Weiss), solved to a loose tolerance (it is a starting point).
    Returns ``(N,)`` int64 labels (a cluster may stay empty if the graph has fewer than ``k`` groups).
    The start of the GNN's restart in :func:`deepcut.clustering.fit.fit`."""
    m: np.ndarray | scipy.sparse.csr_matrix
    if isinstance(a, SparseAffinity):
        m = _scipy_csr(a.index, a.weight, a.num_nodes)
    else:
        m = a.detach().double().cpu().numpy()
    u, _ = spectral_embedding(m, int(k), tol=1e-5)
    rows = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    return kmeans(rows, int(k), seed, n_init)[1]


def _spectral_graph(x: np.ndarray, kind: str, graph: PatchGraph | None) -> np.ndarray | scipy.sparse.csr_matrix:
    """The graph :func:`spectral_fit` cuts: dense :func:`build_graph` or sparse :func:`build_sparse_graph`."""
    sparse = graph.is_sparse if graph is not None else use_sparse(x.shape[0])
    if not sparse:
        return build_graph(x, kind)
    if kind != "deepcut":
        raise ConfigError(f"the spectral baseline's {kind!r} graph is dense and {x.shape[0]} patches are too "
                          f"many for it (at most {DENSE_MAX_NODES}): lower the resolution or use the "
                          f"'deepcut' graph, which is a sparse k-NN graph at this size")
    return build_sparse_graph(x, graph.neighbours if graph is not None else DEFAULT_NEIGHBOURS)
