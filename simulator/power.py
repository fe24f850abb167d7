"""A power switch that can cut a virtual handheld at any numbered write."""

from __future__ import annotations

import threading


class PowerCut(BaseException):
    """The power died. BaseException, so firmware error handlers cannot swallow it."""


CUT_MODES = ("before", "torn", "after")


class PowerSwitch:
    """Counts every write to flash or to a card; dies at the armed one.

    Modes: 'before' (the write never happens), 'torn' (part of it lands),
    'after' (it lands, then the power dies before anyone hears back).
    """

    def __init__(self) -> None:
        self.on = True
        self.writes = 0
        self.log: list[str] = []
        self._cut_at: int | None = None
        self._mode = "before"
        self._lock = threading.Lock()

    def arm(self, index: int, mode: str) -> None:
        """Cut at write number index (0-based, counted from the last reset_count())."""
        if mode not in CUT_MODES:
            raise ValueError(f"cut mode must be one of {CUT_MODES}, got {mode!r}")
        self._cut_at = index
        self._mode = mode

    def reset_count(self) -> None:
        self.writes = 0
        self.log = []

    def check(self) -> None:
        """Raise PowerCut when the power is off (the firmware's IO calls this first)."""
        if not self.on:
            raise PowerCut()

    def next_write(self, what: str) -> str:
        """Count a write: 'ok', or the cut mode when this is the armed write (power is then off)."""
        with self._lock:
            if not self.on:
                return "before"
            index = self.writes
            self.writes += 1
            self.log.append(what)
            if index == self._cut_at:
                self.on = False
                self._cut_at = None
                return self._mode
            return "ok"

    def restore(self) -> None:
        """Power comes back; nothing is armed."""
        self.on = True
        self._cut_at = None
