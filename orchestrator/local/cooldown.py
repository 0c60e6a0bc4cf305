"""The pause before a local trial (``execution.cooldown_s``), recorded in its result.

A GPU that has just trained is hot, and a hot GPU boosts less: a trial that follows another
starts throttled where the first did not. Zeus profiles only once the GPU is thermally stable.
trainbed waits up to ``cooldown_s`` before each trial; on a GPU trial the wait ends early once
every one of its GPUs is back within :data:`IDLE_MARGIN_C` of the temperature it had before the
campaign's first trial. A CPU trial waits the whole time. What happened goes into the result as
``cooldown``. The loop is here with injectable clock, sleep and thermometer; the decision is pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

#: Degrees above its idle temperature at which a GPU counts as cooled down.
IDLE_MARGIN_C = 3.0
#: Seconds between two temperature reads.
POLL_S = 1.0


def cooled(
    temperatures: Sequence[float | None],
    idle: Sequence[float | None],
    margin: float = IDLE_MARGIN_C,
) -> bool:
    """Every GPU within ``margin`` of its idle temperature; False where any is unknown (then the
    whole cooldown is waited) or there are no GPUs."""
    if not temperatures or len(temperatures) != len(idle):
        return False
    return all(
        t is not None and i is not None and t <= i + margin
        for t, i in zip(temperatures, idle, strict=True)
    )


def wait_cooldown(
    seconds: float,
    read: Callable[[], list[float | None]] | None,
    idle: Sequence[float | None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Wait up to ``seconds`` (less once ``read()`` says the GPUs are cool); the record."""
    start = clock()
    record: dict[str, Any] = {"limit_s": seconds, "ended_by": "time"}
    if read is not None:
        record["idle_temperature_c"] = list(idle)
        record["start_temperature_c"] = read()
    while clock() - start < seconds:
        if read is not None and cooled(read(), idle):
            record["ended_by"] = "idle temperature"
            break
        sleep(min(POLL_S if read is not None else seconds, max(0.0, seconds - (clock() - start))))
    record["waited_s"] = round(clock() - start, 3)
    if read is not None:
        record["temperature_c"] = read()
    return record
