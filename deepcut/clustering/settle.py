"""When a GNN training has settled: the epochs left could not change its answer, so they are not trained.

:func:`~deepcut.clustering.fit.fit` checks a :class:`Settle` rule while it trains: every ``every`` epochs it
takes the argmax of the soft assignments without dropout (what the result's labels are); once that argmax
has not moved for ``still`` epochs and the loss has settled too, the training stops. The epochs before the
stop are exactly those of a full training (same seed, same dropout masks), so a stopped result is the full
training's state at that epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError

__all__ = ["SETTLE", "SETTLED_NOTE", "Settle", "SettleWatch", "settled_words"]


@dataclass(frozen=True)
class Settle:
    """The rule that stops a training once it has settled.

    Attributes:
        after: never stop before this many epochs (a stage of at most ``after`` epochs trains them all:
            the paper's 10-epoch stages are untouched).
        every: epochs between two looks at the argmax.
        still: the argmax must be the same at every look over the last ``still`` epochs (at least
            ``still // every + 1`` looks) ...
        change: ... and the mean training loss of the last ``every`` epochs may differ from that of the
            ``every`` epochs ``still`` epochs earlier by at most this fraction of the latter's size.
    """

    after: int = 20
    every: int = 5
    still: int = 15
    change: float = 0.01

    def __post_init__(self) -> None:
        for name in ("after", "every", "still"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Settle.{name} must be at least 1, got {getattr(self, name)}")
        if int(self.still) < int(self.every):
            raise ConfigError(f"Settle.still ({self.still}) must be at least Settle.every ({self.every})")
        if not float(self.change) >= 0:
            raise ConfigError(f"Settle.change must be non-negative, got {self.change}")

    def words(self) -> str:
        """The rule in plain words (for notes and the lessons)."""
        return (f"its labels had not changed for {self.still} epochs and its loss by less than "
                f"{self.change:.0%}")


#: How the note of a training the rule stopped begins (:func:`settled_words`).
SETTLED_NOTE = "the training settled"


def settled_words(trained: int, planned: int, rule: Settle, restart: bool = False) -> str:
    """The note of a try that ``rule`` stopped after ``trained`` of its ``planned`` epochs (``restart``: NCut's
    second try from the spectral cut), in plain words."""
    whose = "the restart's" if restart else "its"
    return (f"{SETTLED_NOTE} after {trained} of {whose} {planned} epochs: {rule.words()}, so the other "
            f"{planned - trained} were not trained (settle off: every epoch)")


#: The rule :func:`~deepcut.clustering.fit.fit` uses unless told otherwise (``settle=None``: train every epoch).
SETTLE = Settle()


class SettleWatch:
    """Follows one training (one try, epochs ``start + 1 …``) and says when it has settled by ``rule``.

    ``clusters``: the clusters the argmax must use before the training may stop (NCut's ``k``: a try that
    leaves a cluster empty is not stopped, since its last epochs decide whether NCut restarts from the
    spectral cut; None: any number, as for CC, whose ``k`` is a bound)."""

    def __init__(self, rule: Settle, start: int = 0, clusters: int | None = None) -> None:
        self.rule, self.start, self.clusters = rule, int(start), clusters
        self._labels: torch.Tensor | None = None
        self._since = self.start  # the epoch of the first look at the current argmax

    def due(self, epoch: int) -> bool:
        """Whether the argmax should be looked at after ``epoch``."""
        return (int(epoch) - self.start) % int(self.rule.every) == 0

    def settled(self, epoch: int, labels: torch.Tensor, losses: list[torch.Tensor]) -> bool:
        """Look at the argmax ``labels`` ``(N,)`` after ``epoch``; ``losses``: this try's losses so far, one per
        epoch. True when the training should stop here."""
        if self._labels is None or not torch.equal(labels, self._labels):
            self._labels, self._since = labels, int(epoch)
            return False
        done = int(epoch) - self.start
        if done < int(self.rule.after) or int(epoch) - self._since < int(self.rule.still):
            return False
        if self.clusters is not None and int(torch.unique(labels).numel()) < int(self.clusters):
            return False
        every, still = int(self.rule.every), int(self.rule.still)
        if len(losses) < still + every:
            return False
        now = torch.stack(losses[-every:]).float().mean()
        then = torch.stack(losses[-still - every:-still]).float().mean()
        return bool((now - then).abs() <= float(self.rule.change) * then.abs().clamp(min=1e-12))
