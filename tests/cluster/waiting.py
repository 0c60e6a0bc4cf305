"""Waiting on a cluster: poll a check until it holds, for the tests that watch objects change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """``check()``'s first truthy value, polled every ``interval`` s for at most ``timeout`` s
    (monotonic, so a clock step does not cut it short); an AssertionError naming ``what`` after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
