"""firmware.hal.Uart over pyserial: a pseudo-terminal from VirtualPN532, or a real port."""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from types import TracebackType

import serial

from firmware.hal import Uart


class SerialUart(Uart):
    """A serial port at 115200 8N1 (the PN532's HSU default).

    check, when given, is called at the start of every write and read: the
    simulator's power switch raises from it to cut the handheld off mid-dialog.
    """

    def __init__(
        self,
        path: str,
        baudrate: int = 115200,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.check = check
        self._serial = serial.Serial(path, baudrate, timeout=0)
        # On POSIX, select() on the descriptor waits without re-programming the port's
        # timeout (a tcsetattr) for every read; elsewhere pyserial's timeout is used.
        self._use_select = os.name == "posix" and hasattr(self._serial, "fileno")

    def _check(self) -> None:
        """Run the power check, if any."""
        if self.check is not None:
            self.check()

    def write(self, data: bytes) -> None:
        """Send all of data."""
        self._check()
        self._serial.write(data)

    def read(self, n: int, timeout_ms: int) -> bytes:
        """Up to n bytes: waits up to timeout_ms for the first, then takes what is there."""
        self._check()
        if n <= 0:
            return b""
        first = self._read_first(max(0, timeout_ms) / 1000.0)
        if not first or n == 1:
            return first
        waiting = self._serial.in_waiting
        if not waiting:
            return first
        self._set_timeout(0)
        return first + bytes(self._serial.read(min(n - 1, waiting)))

    def _read_first(self, timeout_s: float) -> bytes:
        """One byte, or b'' when timeout_s passes first."""
        if self._use_select:
            ready, _, _ = select.select([self._serial.fileno()], [], [], timeout_s)
            if not ready:
                return b""
            self._set_timeout(0)
            return bytes(self._serial.read(1))
        self._set_timeout(timeout_s)
        return bytes(self._serial.read(1))

    def _set_timeout(self, timeout_s: float) -> None:
        """Set pyserial's read timeout; only when it changes, as each set reconfigures the port."""
        if self._serial.timeout != timeout_s:
            self._serial.timeout = timeout_s

    def flush_input(self) -> None:
        """Drop whatever is waiting in the receive buffer."""
        self._serial.reset_input_buffer()

    def close(self) -> None:
        """Close the port."""
        self._serial.close()

    def __enter__(self) -> SerialUart:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
