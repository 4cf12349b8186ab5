"""Waiting on a condition, never on a fixed sleep: the CI machine is loaded, so a test waits
for what it needs with a generous deadline and fails only when that never happens."""
from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], seconds: float = 240, what: str = "a condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.02)
