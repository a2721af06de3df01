"""Graph clustering of patch features with a per-image GNN (the core of DeepCut)."""

from __future__ import annotations

import warnings
from typing import Callable, Sequence, Union

import numpy as np
import torch

from ..errors import ConfigError
from ..graph.patch_graph import CompactAffinity, PatchGraph, SparseAffinity, affinity, affinity_from_gram
from ..utils.coerce import as_bool, as_int
from ..utils.device import generator
from ..utils.threads import GNN_THREADS, ThreadPolicy, torch_threads
from .arithmetic import gcn_dtype, resolve
from .checks import as_features, check_fit
from .gnn import DeepCutGNN, DropoutMasks, LossGrad, cross_entropy_grad
from .links import Links
from .objective import Affinity, graph_of_these, low_affinity, objective_of, propagation
from .optim import adamw
from .result import Clusterer, ClusterResult
from .settle import SETTLE, Settle, settled_words
from .spectral import spectral_partition
from .train import assign, train, train_links

__all__ = ["RESTART_LABEL", "RESTART_NOTE", "ClusterResult", "Clusterer", "affinity", "affinity_from_gram",
           "cluster", "compact_labels", "fit", "restart_words"]

FeaturesLike = Union[np.ndarray, torch.Tensor]


def fit(features: FeaturesLike, k: int = 2, loss: str = "ncut", alpha: float = 3.0, epochs: int = 10,
        seed: int = 0, model: DeepCutGNN | None = None, lr: float = 1e-3,
        adj: Affinity | None = None, graph: PatchGraph | None = None, snapshots: Sequence[int] = (),
        links: Links | None = None, max_epochs: int | None = None, threads: int | None = None,
        settle: Settle | None = SETTLE, precision: str = "auto") -> ClusterResult:
    """Train a DeepCut GNN on one graph and return the clustering.

    Args:
        features: node features ``(N, D)``.
        k: number of clusters (upper bound for CC); clamped to ``N``.
        loss: ``"ncut"`` or ``"cc"``.
        alpha: CC sensitivity, > 0 (NCut does not use it).
        epochs: training epochs (AdamW, ``lr``), at most: a training of more than ``settle.after`` epochs stops
            once it has settled (``settle``). NCut returns ``k`` segments: when its first try leaves a
            cluster empty it restarts once from the graph's spectral k-way cut (see :func:`_reach_k`: the
            restart's losses follow the first try's, the restarted GNN, ``restarted`` set, a note); ``0``
            trains nothing.
        seed: seeds initialisation and dropout; the global RNG is not touched.
        model: a trained GNN to continue from (warm start, e.g. the previous video frame);
            its ``k`` and input width must match.
        adj: a precomputed :func:`affinity` of ``features`` (saves an ``N²D`` product), or a
            :class:`~deepcut.graph.patch_graph.SparseAffinity` (:func:`~deepcut.graph.patch_graph.knn_affinity`).
        graph: the :class:`~deepcut.graph.patch_graph.PatchGraph` of ``features``; its
            :meth:`~deepcut.graph.patch_graph.PatchGraph.cluster_affinity` is used when ``adj`` is not given
            (dense up to :data:`~deepcut.graph.patch_graph.DENSE_MAX_NODES` nodes, compact up to
            :data:`~deepcut.graph.patch_graph.COMPACT_MAX_NODES`, a sparse k-NN graph above).
            Without either, ``PatchGraph(features)`` decides.
        snapshots: epochs of a try after which to keep the soft assignments (``0``: the untrained GNN), for
            :attr:`ClusterResult.snapshots`; recording does not change the training. A restart's epoch ``e``
            is kept as ``restart_epoch + e`` (its start: :attr:`ClusterResult.restart_start`); a try that
            ``settle`` stopped early also keeps its last epoch.
        links: must-link / cannot-link constraints (a correction by click, :mod:`deepcut.clustering.links`): their
            penalty joins the objective and the GNN trains (at ``links.lr``, in blocks) until they hold, up
            to ``links.epochs`` epochs, instead of ``epochs``; NCut's exactly-k rule is off (a join may
            leave fewer segments).
        max_epochs: the most epochs trained in all, whatever the rule (``epochs``, NCut's exactly-k
            rule, ``links``): a server's cap (the note says when it stopped the exactly-k rule). ``None``: no cap.
        threads: torch threads of the training (``None`` or 0: :data:`~deepcut.utils.threads.GNN_THREADS`, one: on a
            busy core more threads only wait; see :meth:`deepcut.utils.threads.ThreadPolicy.gnn`).
        settle: stops a try once its argmax labels and loss have settled (:class:`~deepcut.clustering.settle.Settle`;
            never before 20 epochs): the result is the full training's state at that epoch
            (:attr:`ClusterResult.settled`). ``None``: every epoch. Corrections (``links``) have their own rule.
        precision: the GCN's products (and ``Â X``'s): ``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 where measured
            faster here: :mod:`~deepcut.clustering.arithmetic`); the rest, and NCut's restart, are float32.

    A compact graph (:class:`~deepcut.graph.patch_graph.CompactAffinity`) is the dense one: same propagation, same
    objective. On a sparse graph the GCN propagates over the k-NN edges; NCut cuts the k-NN graph, CC's loss
    is exact over all pairs (:func:`~deepcut.clustering.losses.cc_loss_lowrank`).

    Everything runs on the device of ``features``; the results are numpy arrays on the host.
    """
    epochs, links = check_fit(loss, k, epochs, max_epochs, links, (alpha, seed, lr, threads, settle), precision)
    x = as_features(features)
    n, k = x.shape[0], model.k if model is not None else k
    k_eff, note = _clamped_k(int(k), n)
    a = _graph_of(x, adj, graph, loss, alpha)
    positive = a.has_positive() if isinstance(a, (CompactAffinity, SparseAffinity)) else bool(a.max() > 0)
    if k_eff < 2 or not positive:
        return _one_cluster(n, int(k), k_eff, model, _why_one(n, loss, alpha))

    with torch.enable_grad(), torch_threads(int(threads or GNN_THREADS)):  # on a busy core more threads only wait
        arithmetic = resolve(precision, x.device, x.shape[1], n)
        dtype, warm = gcn_dtype(arithmetic), model is not None
        model = _model_for(x, k_eff, int(seed), model)
        g_drop = DropoutMasks(int(seed) + 1, model.dropout, x.device)
        memo = graph if adj is None and graph_of_these(graph, x, features) else None
        ax, objective = _inputs(x, a, loss, memo, alpha, dtype)
        record: dict[int, torch.Tensor | None] = {int(e): None for e in snapshots}
        if 0 in record:
            record[0] = assign(model, ax)
        history, soft = _first_try(model, ax, objective, (links, lr, int(epochs), settle, _needs(loss, k_eff)),
                                   g_drop, record, dtype)
        first, extra, start = soft, list[torch.Tensor](), None  # the restart's losses, start: only if kept
        if loss == "ncut" and int(epochs) > 0 and not links:
            exact = (lambda: (ax, objective)) if dtype == torch.float32 else (lambda: _inputs(x, a, loss, memo, alpha))
            model, soft, extra, note, start = _reach_k(x, a, exact, model, soft, int(epochs), int(seed), lr,
                                                       note, record, max_epochs, not warm, len(history), settle,
                                                       [int(e) for e in snapshots])
    return _result(model, soft, k_eff, note, record, history, (extra, first, start),
                   int(epochs), None if links else settle, "fp32" if extra else arithmetic)  # a kept restart: fp32


def _inputs(x: torch.Tensor, a: Affinity, loss: str, memo: PatchGraph | None, alpha: float,
            dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, LossGrad]:
    """``(ÂX (N, D), objective)`` a training whose products read ``dtype`` trains on: with bfloat16 both read the
    dense graph's bf16 copy (:func:`~deepcut.clustering.objective.low_affinity`, kept in ``memo``)."""
    low = low_affinity(a, loss, memo, alpha, dtype)
    return propagation(x, a, loss, memo, alpha, dtype, low), objective_of(x, a, loss, low)


def _first_try(model: DeepCutGNN, ax: torch.Tensor, objective: LossGrad,
               rules: tuple[Links | None, float, int, Settle | None, int | None], g_drop: DropoutMasks,
               record: dict[int, torch.Tensor | None], dtype: torch.dtype) -> tuple[list[torch.Tensor], torch.Tensor]:
    """:func:`fit`'s first training: ``(losses, soft (N, k))``; ``rules = (links, lr, epochs, settle, clusters)``:
    until the ``links`` hold where there are some, else ``epochs`` of AdamW at ``lr`` under ``settle``."""
    links, lr, epochs, settle, clusters = rules
    if links:
        return train_links(model, ax, objective, links, g_drop, record, dtype)
    history = train(model, ax, objective, adamw(model, lr), epochs, g_drop, record, 0, settle, clusters, dtype)
    return history, assign(model, ax)


def _result(model: DeepCutGNN, soft: torch.Tensor, k: int, note: str | None, record: dict[int, torch.Tensor | None],
            history: list[torch.Tensor], restart: tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None],
            epochs: int, settle: Settle | None, precision: str | None = None) -> ClusterResult:
    """:func:`fit`'s :class:`ClusterResult` of the trained ``model``, its soft assignments ``soft`` ``(N, k)``, the
    first try's losses ``history`` and ``restart``: ``(the restart's losses, the first try's soft assignments,
    the restart's start)`` (no losses: no restart kept). ``settle``: the rule the training ran under (None: none);
    ``precision``: what the GCN's products ran in."""
    extra, first, start = restart
    losses = [float(v) for v in torch.stack(history + extra).cpu()] if history or extra else []
    kept = dict(restarted=True, restart_epoch=len(history), first_labels=_host(first).argmax(-1),
                restart_start=None if start is None else _host(start)) if extra else {}
    last_try = len(extra) if extra else len(history)
    stopped = settle if settle is not None and 0 < last_try < epochs else None
    if stopped is not None:
        note = _join(note, settled_words(last_try, epochs, stopped, restart=bool(extra)))
    return ClusterResult(_host(soft).argmax(-1).astype(np.int64), _host(soft), losses, model, k, note,
                         {e: _host(s) for e, s in record.items() if s is not None}, **kept,
                         epochs=epochs, settle=stopped, precision=precision)


def _needs(loss: str, k: int) -> int | None:
    """The clusters a try's argmax must use before the settle rule may stop it: NCut's ``k``; CC: any."""
    return k if loss == "ncut" else None


def _clamped_k(k: int, n: int) -> tuple[int, str | None]:
    """``k`` clamped to the ``n`` nodes, and the note that says so where it was (no node: an error)."""
    if n == 0:
        raise ConfigError("cannot cluster zero nodes")
    k_eff = max(1, min(k, n))
    return k_eff, (f"k={k} is more than the {n} nodes; using k={k_eff}" if k_eff < k else None)


def _host(t: torch.Tensor) -> np.ndarray:
    """``t`` as a float32 numpy array on the host."""
    return t.detach().cpu().numpy().astype(np.float32)


def _model_for(x: torch.Tensor, k: int, seed: int, model: DeepCutGNN | None) -> DeepCutGNN:
    """``model`` (a warm start, checked against the features ``(N, D)``), else a fresh GNN drawn on the CPU
    from ``seed``, so that a seed gives the same GNN on every device."""
    if model is None:
        return DeepCutGNN.create(x.shape[1], k, generator(seed), device=x.device)
    if model.in_dim != x.shape[1]:
        raise ConfigError(f"warm-start model expects {model.in_dim}-d features, got {x.shape[1]}")
    return model


def _why_one(n: int, loss: str, alpha: float) -> str:
    """Why :func:`fit` returns one cluster untrained, in words: a single node, or no two nodes attract."""
    if n == 1:
        return "a single node"
    if loss != "cc":
        return "no positive affinity between any two nodes (every pair's similarity F·Fᵀ is ≤ 0, e.g. zero features)"
    if float(alpha) <= 1.0:
        return (f"CC at α = {float(alpha):g} makes every pair of patches repel (A = W − max(W)/α ≤ 0 everywhere, "
                f"as for any α ≤ 1), so nothing can be grouped and the GNN is not trained; raise α above 1")
    return "with CC no pair of nodes attracts (A = W − max(W)/α ≤ 0 everywhere, e.g. zero features)"


def _one_cluster(n: int, k: int, k_eff: int, model: DeepCutGNN | None, reason: str) -> ClusterResult:
    """Every node in cluster 0, untrained: a single node, or no positive affinity between any two (``reason``)."""
    soft = np.zeros((n, k), np.float32)
    soft[:, 0] = 1.0
    return ClusterResult(np.zeros(n, np.int64), soft, [], model, k_eff, note=f"one cluster: {reason}")


#: When NCut's ``epochs`` leave a cluster empty, the GNN restarts from the spectral k-way cut of the same
#: graph: a fresh GNN (same seed, standardised inputs) first learns that partition by cross-entropy for
#: this many epochs at :data:`NCUT_START_LR`, then trains NCut's ``epochs`` again.
NCUT_START_EPOCHS = 20
NCUT_START_LR = 1e-2
#: Whether NCut restarts at all (False: ``fit`` trains exactly ``epochs``; for comparisons).
NCUT_RESTART = True


def _graph_of(x: torch.Tensor, adj: Affinity | None, graph: PatchGraph | None, loss: str, alpha: float) -> Affinity:
    """The affinity :func:`fit` trains on: ``adj``, else ``graph``'s (else ``PatchGraph(x)``'s), checked."""
    n = x.shape[0]
    a = adj if adj is not None else (graph if graph is not None else PatchGraph(x)).cluster_affinity(loss, alpha)
    if isinstance(a, (CompactAffinity, SparseAffinity)) and (a.loss != loss or a.num_nodes != n):
        kind = "compact" if isinstance(a, CompactAffinity) else "sparse"
        raise ConfigError(f"the {kind} graph was built for {a.loss!r} on {a.num_nodes} nodes, "
                          f"not for {loss!r} on {n}: build it from these features with this loss")
    return a


def _reach_k(x: torch.Tensor, a: Affinity, exact: Callable[[], tuple[torch.Tensor, LossGrad]], model: DeepCutGNN,
             soft: torch.Tensor, epochs: int, seed: int, lr: float, note: str | None,
             record: dict[int, torch.Tensor | None], cap: int | None = None, restart: bool = True,
             first_epochs: int | None = None, settle: Settle | None = None, marks: Sequence[int] | None = None
             ) -> tuple[DeepCutGNN, torch.Tensor, list[torch.Tensor], str | None, torch.Tensor | None]:
    """NCut asks for exactly ``k`` segments. When the argmax of ``soft`` ``(N, k)`` after the first ``epochs``
    leaves a cluster empty, the relaxation is still near its uniform start: on a graph whose nodes look
    alike (a near-complete graph) the fresh GNN gives every node almost the same output, every epoch moves
    them together, and more epochs only slide towards the one-cluster solution, although the k-way cut
    has the lower loss. So the GNN restarts from a better point: a fresh GNN (same seed) on standardised
    inputs (:meth:`~deepcut.clustering.gnn.DeepCutGNN.standardise`) learns the spectral k-way cut of the same
    graph (:func:`deepcut.clustering.spectral.spectral_partition`) for :data:`NCUT_START_EPOCHS` epochs, then trains
    NCut for ``epochs`` epochs (fewer where ``settle`` stops it); its result is kept when it has more segments
    (or as many and a lower loss). ``first_epochs``: the epochs the first try trained (``epochs`` unless
    ``settle`` stopped it).

    Returns ``(model, soft, the restart's NCut losses, note, start)``; the note says what happened, a kept
    restart included (:func:`restart_words`); ``start``: ``(N, k)`` the restarted GNN's soft assignments once
    it learned the spectral cut, before NCut's epochs (None: no restart kept, or ``record`` empty). ``record``:
    as :func:`~deepcut.clustering.train.train`'s; a kept restart's epoch ``e`` is recorded as ``first_epochs + e``
    where ``e`` was asked for (``marks``, default ``record``'s epochs), a discarded one records nothing. The restart
    trains in float32 whatever :func:`fit`'s ``precision``: ``exact()`` gives the float32 propagation ``(N, D)`` and
    objective (its ``A S`` in float32; it also compares the two tries' losses): on the
    near-complete graphs where it is needed, bf16 products changed its labels on 5 of 16 held-out images
    (``benchmarks/gnn_precision.py --images 4`` while it still ran in bf16). ``cap``:
    the most epochs in all; ``restart=False`` (a warm start, e.g. the GNN of the previous video frame, whose
    labels the next frames follow): no restart, a note instead."""
    k = soft.shape[1]
    tried = int(epochs if first_epochs is None else first_epochs)
    used = lambda s: int(torch.unique(s.argmax(dim=-1)).numel())  # noqa: E731
    first = used(soft)
    if first == k or not NCUT_RESTART:
        return model, soft, [], note, None
    found, (ax, objective) = f"NCut found {first} of the k = {k} segments asked for", exact()
    distinct = torch.unique(ax, dim=0).shape[0]
    if distinct < k:
        return model, soft, [], _join(note, f"{found}: only {distinct} patches differ at all (fewer than {k} "
                                            f"distinct patches), so no more segments can be told apart"), None
    if not restart:
        return model, soft, [], _join(note, f"{found}: a GNN carried over (e.g. from the previous video frame) "
                                            f"keeps its labels, so it gets no second try (no restart)"), None
    if cap is not None and tried + NCUT_START_EPOCHS + epochs > int(cap):
        return model, soft, [], _join(note, _capped(found, tried, int(cap))), None

    if isinstance(a, CompactAffinity):  # a start, not the objective: the spectral cut of its k-NN part
        a = a.knn()
    target = torch.as_tensor(spectral_partition(a, k, seed), device=ax.device)
    fresh = DeepCutGNN.create(x.shape[1], k, generator(seed), device=x.device).standardise(ax)
    g_drop = DropoutMasks(seed + 1, fresh.dropout, x.device)
    fresh.train()
    opt, learn = adamw(fresh, NCUT_START_LR), cross_entropy_grad(target)
    inp, shape = fresh.gcn_input(ax), (ax.shape[0], fresh.mlp1.out_features)
    for _ in range(NCUT_START_EPOCHS):
        fresh.training_step_logits(inp, g_drop.next(shape), learn)
        opt.step()
    start = assign(fresh, ax, inp) if record else None
    asked = list(record) if marks is None else marks  # the epochs of a try to record
    mine: dict[int, torch.Tensor | None] = {tried + e: None for e in asked if 0 < e <= epochs}
    history = train(fresh, ax, objective, adamw(fresh, lr), epochs, g_drop, mine, tried, settle, k, inp=inp)
    again = assign(fresh, ax, inp)
    last = [float(objective(s)[0]) for s in (soft, again)]
    if (used(again), -last[1]) < (first, -last[0]):
        worse = f"{used(again)}" + (" with a higher loss" if used(again) == first else "")
        return model, soft, [], _join(note, f"{found}: training left {k - first} of its clusters without a patch, "
                                            f"and a second try from the graph's spectral cut found {worse}"), None
    record.update({e: s for e, s in mine.items() if s is not None})
    note = _join(note, restart_words(tried, k, first, len(history)))
    if used(again) < k:
        note = _join(note, f"NCut found {used(again)} of the k = {k} segments asked for, also on a second try from "
                           f"the graph's spectral cut: training left {k - used(again)} of its clusters without a "
                           f"patch (a lower k, or a higher resolution, may suit this image better)")
    return fresh, again, history, note, start


#: What the loss plot, the replay and the captions call NCut's second try (:func:`_reach_k`).
RESTART_LABEL = "restart from the spectral cut"
#: How the note of a kept restart begins (:func:`restart_words`).
RESTART_NOTE = "NCut restarted from the graph's spectral cut"


def restart_words(epochs: int, k: int, first: int, again: int | None = None) -> str:
    """The note of a kept restart (:func:`_reach_k`), in plain words: why (the first ``epochs`` used ``first``
    of the ``k`` clusters), what was done (the spectral cut learned for :data:`NCUT_START_EPOCHS` epochs, not
    plotted) and where its ``again`` epochs (default ``epochs``) are in the loss plot
    (``epochs + 1 … epochs + again``)."""
    empty = k - first
    again = int(epochs if again is None else again)
    return (f"{RESTART_NOTE}: its first {epochs} epochs left {empty} of the "
            f"k = {k} clusters without a patch, so a fresh GNN learned the spectral cut ({NCUT_START_EPOCHS} "
            f"epochs, not in the loss plot) and NCut trained {again} epochs again from there (epochs "
            f"{epochs + 1}–{epochs + again} of the loss plot)")


def _capped(found: str, epochs: int, cap: int) -> str:
    """The note when the cap ``max_epochs`` leaves no room for NCut's second try (``2 epochs + 20`` in all)."""
    room = (cap - NCUT_START_EPOCHS) // 2
    fits = (f"with at most {room} epochs in this stage it would be tried" if room >= 1 else
            "this cap leaves no room for it")
    return (f"{found} in its {epochs} epochs: a second try from the graph's spectral cut did not fit in the cap of "
            f"{cap} epochs per stage (max_epochs); {fits}")


def _join(note: str | None, more: str) -> str:
    return more if not note else f"{note}; {more}"


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber labels to ``0 … m-1`` keeping their order (``[0, 3, 3, 5] → [0, 1, 1, 2]``)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int64)


def cluster(features: FeaturesLike, k: int = 2, loss: str = "ncut", alpha: float = 3.0, epochs: int = 10,
            seed: int = 0, threads: int | None = None, settle: bool = True, precision: str = "auto") -> np.ndarray:
    """Cluster ``(N, D)`` features (numpy or torch) into at most ``k`` groups: ``(N,)`` int64 labels.

    NCut finds ``k`` clusters where it can (where it finds fewer, e.g. fewer distinct rows than ``k``, a
    ``UserWarning`` says why: the note :func:`fit` gives); CC treats ``k`` as an upper bound and decides the
    number itself.
    Labels are consecutive (``0 … m-1``). Deterministic for a given ``seed`` (whatever the threads).
    ``threads``: torch threads of the training; ``None``: as ``DeepCut.segment`` chooses them
    (:meth:`~deepcut.utils.threads.ThreadPolicy.gnn`: one thread for a small training, the cores idle right
    now for a large one, ``$DEEPCUT_THREADS`` when set). ``settle``: stop once the labels have settled
    (:data:`~deepcut.clustering.settle.SETTLE`, as ``DeepCut.segment``), False or None: train every epoch.
    ``precision``: the GCN's products, as :func:`fit`'s.
    """
    x = as_features(features)
    gnn_threads = ThreadPolicy(threads).gnn(int(x.shape[0]), as_int("epochs", epochs, 0))
    result = fit(x, k=k, loss=loss, alpha=alpha, epochs=epochs, seed=seed, threads=gnn_threads,
                 settle=SETTLE if settle is not None and as_bool("settle", settle) else None, precision=precision)
    labels = compact_labels(result.labels)
    if loss == "ncut" and int(labels.max(initial=0)) + 1 < int(k) and result.note:
        warnings.warn(f"cluster: {result.note}", stacklevel=2)
    return labels
