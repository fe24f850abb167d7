"""Driving virtual handhelds against a live stack in tests: step their sync loops until something holds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any


def until(what: Callable[[], Any], handhelds: Iterable[Any], timeout: float = 20.0) -> None:
    """Step the handhelds' sync loops until what() holds; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for hh in handhelds:
            hh.sync_step()
        if what():
            return
        time.sleep(0.02)
    raise AssertionError(f"not reached in {timeout} s: {what.__doc__ or what}")
