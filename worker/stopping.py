"""Train-to-accuracy (the energy-to-accuracy study's rule): when has validation accuracy held
the target long enough?

Pure and stateful only in its counters, so the rule is unit-tested on crafted sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TargetTracker:
    """Met when validation accuracy is >= threshold for ``patience`` consecutive epochs."""

    threshold: float
    patience: int = 1
    streak: int = 0
    met_epoch: int | None = None
    history: list[float] = field(default_factory=list)

    def update(self, epoch: int, accuracy: float) -> bool:
        """Feed one epoch's validation accuracy; True exactly once, when the target is met."""
        self.history.append(accuracy)
        self.streak = self.streak + 1 if accuracy >= self.threshold else 0
        if self.met_epoch is None and self.streak >= self.patience:
            self.met_epoch = epoch
            return True
        return False

    @property
    def met(self) -> bool:
        return self.met_epoch is not None
