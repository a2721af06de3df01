"""Must-link and cannot-link constraints between patches: what a correction by click adds to the graph.

A :class:`Link` says that two points (their patches, the *anchors*) belong to one segment (``must``) or to
two (``cannot``); its two *groups* are the patches that speak for each point (the part of the point's segment
that looks like it), so that the GNN moves a region, not a single patch. :func:`deepcut.clustering.fit.fit`
adds :func:`~deepcut.clustering.losses.link_loss` of the links to its objective and trains until every
link holds for its groups as well as its anchors (or the epochs run out). :class:`Links` restricts them to
the patches of each stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

KINDS = ("must", "cannot")


@dataclass(frozen=True)
class Link:
    """One constraint between two points.

    Attributes:
        kind: ``"must"`` (one segment) or ``"cannot"`` (two segments).
        anchors: the two points' patch indices ``(p, q)``.
        groups: ``(A, B)``: index arrays of the patches that speak for ``p`` and for ``q`` (each holds its anchor).
        stages: the 0-based stages whose clustering must honour it.
    """

    kind: str
    anchors: tuple[int, int]
    groups: tuple[np.ndarray, np.ndarray]
    stages: frozenset[int] = frozenset({0, 1, 2})

    def satisfied(self, labels: np.ndarray) -> bool:
        """Whether ``labels`` ``(N,)`` honour the link at its anchors."""
        same = bool(labels[self.anchors[0]] == labels[self.anchors[1]])
        return same if self.kind == "must" else not same

    def holds(self, labels: np.ndarray) -> bool:
        """:meth:`satisfied`, and so do the groups: the most common labels of the two groups are one
        (``must``) or two (``cannot``) — the GNN moved the region, not only the clicked patch."""
        if not self.satisfied(labels):
            return False
        a, b = (int(np.bincount(labels[g]).argmax()) if len(g) else -1 for g in self.groups)
        return (a == b) if self.kind == "must" else (a != b)


@dataclass
class Links:
    """The constraints of one correction, and how long the GNN may train to honour them.

    Attributes:
        links: the :class:`Link` list.
        epochs: the most epochs a stage with links trains (in blocks, stopping once its links hold).
        lr: the optimiser's learning rate while it does.
        weight: the penalty's weight relative to the clustering loss (see :meth:`penalty_weight`).
    """

    links: list[Link] = field(default_factory=list)
    epochs: int = 10
    lr: float = 1e-2
    weight: float = 10.0

    def __bool__(self) -> bool:
        return bool(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def restrict(self, stage: int, rows: np.ndarray | None) -> "Links":
        """The links of ``stage`` on the patches ``rows`` (None: all), renumbered to positions in ``rows``;
        a link whose anchors are not both among them is dropped."""
        kept = []
        if rows is None:
            kept = [ln for ln in self.links if stage in ln.stages]
        else:
            pos = {int(r): i for i, r in enumerate(np.asarray(rows).ravel())}
            for ln in self.links:
                if stage not in ln.stages or any(int(a) not in pos for a in ln.anchors):
                    continue
                near_p, near_q = (np.array([pos[int(v)] for v in g if int(v) in pos], np.int64) for g in ln.groups)
                kept.append(Link(ln.kind, (pos[int(ln.anchors[0])], pos[int(ln.anchors[1])]), (near_p, near_q),
                                 ln.stages))
        return Links(kept, self.epochs, self.lr, self.weight)

    def satisfied(self, labels: np.ndarray) -> bool:
        """Whether ``labels`` ``(N,)`` honour every link at its anchors."""
        return all(ln.satisfied(labels) for ln in self.links)

    def hold(self, labels: np.ndarray) -> bool:
        """Whether every link :meth:`~Link.holds` on ``labels`` ``(N,)`` (what training aims for)."""
        return all(ln.holds(labels) for ln in self.links)

    def tensors(self, device: torch.device) -> tuple[list, list]:
        """``(must, cannot)`` group pairs as index tensors on ``device``, for
        :func:`~deepcut.clustering.losses.link_loss`."""
        out: dict[str, list] = {kind: [] for kind in KINDS}
        for ln in self.links:
            out[ln.kind].append(tuple(torch.as_tensor(g, dtype=torch.long, device=device) for g in ln.groups))
        return out["must"], out["cannot"]

    def penalty_weight(self, loss_value: float, num_nodes: int) -> float:
        """The penalty's weight: ``weight · |loss| · (group sizes) / N``, so that on the groups' patches the
        penalty's gradient outweighs the clustering loss's (whose per-patch share is about ``|loss| / N``)
        for NCut and CC alike."""
        sizes = max(sum(len(g) for ln in self.links for g in ln.groups), 1)
        return float(self.weight * max(abs(loss_value), 1e-3) * sizes / max(num_nodes, 1))
