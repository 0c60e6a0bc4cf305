"""Train-to-accuracy: the pure rule on crafted accuracy sequences."""

from __future__ import annotations

import pytest

from trainbed.contract.trial import epochs_to_run
from trainbed.worker.stopping import TargetTracker


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("threshold", "patience", "accuracies", "met_epoch"),
    [
        (0.9, 1, [0.5, 0.8, 0.91, 0.95], 3),
        (0.9, 1, [0.9], 1),  # equal to the threshold counts
        (0.9, 2, [0.5, 0.92, 0.85, 0.93, 0.94, 0.96], 5),  # a dip resets the streak
        (0.9, 2, [0.92, 0.93], 2),
        (0.9, 3, [0.95, 0.95, 0.2, 0.95, 0.95, 0.95], 6),
        (0.9, 1, [0.1, 0.5, 0.89], None),  # never reached
        (0.9, 2, [0.95, 0.5, 0.95, 0.5], None),  # reached, never held
        (1.0, 1, [0.99, 0.999], None),
    ],
)
def test_tracker_met_epoch(
    threshold: float, patience: int, accuracies: list[float], met_epoch: int | None
) -> None:
    tracker = TargetTracker(threshold, patience)
    fired = [tracker.update(epoch, acc) for epoch, acc in enumerate(accuracies, start=1)]
    assert tracker.met_epoch == met_epoch
    assert tracker.met is (met_epoch is not None)
    # update() is True exactly once, at the epoch that met the target.
    assert fired.count(True) == (0 if met_epoch is None else 1)
    if met_epoch is not None:
        assert fired[met_epoch - 1] is True
    assert tracker.history == accuracies


@pytest.mark.timeout(10)
def test_tracker_fires_once_and_keeps_first_epoch() -> None:
    tracker = TargetTracker(0.5, 1)
    assert tracker.update(1, 0.6) is True
    assert tracker.update(2, 0.7) is False
    assert tracker.update(3, 0.1) is False
    assert tracker.update(4, 0.9) is False
    assert tracker.met_epoch == 1


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("epochs", "max_epochs", "has_target", "expected"),
    [(5, None, False, 5), (5, 9, False, 5), (5, None, True, 5), (5, 9, True, 9), (5, 2, True, 2)],
)
def test_epochs_to_run(
    epochs: int, max_epochs: int | None, has_target: bool, expected: int
) -> None:
    assert epochs_to_run(epochs, max_epochs, has_target) == expected
