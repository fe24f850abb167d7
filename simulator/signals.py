"""Stopping a long-running simulator command on SIGINT/SIGTERM, safely."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any


def on_stop_signals(received: list[int]) -> Callable[[], None]:
    """Append SIGINT/SIGTERM to received; returns a function restoring the old handlers.

    The handler only appends to a list: taking a lock in a signal handler (Event.set())
    can deadlock against the main thread that holds it when the signal arrives.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    old: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: rely on KeyboardInterrupt
            pass

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    return restore
