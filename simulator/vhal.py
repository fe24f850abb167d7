"""The simulator's side of firmware/hal.py: flash in a directory, a virtual clock, display, keypad."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from firmware import hal
from simulator.power import PowerCut, PowerSwitch


class SimFlash(hal.Flash):
    """Flash as a directory; every write goes through the power switch."""

    def __init__(self, root: Path, switch: PowerSwitch | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.switch = switch or PowerSwitch()
        self.bytes_written = 0

    def _path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError(f"flash file names are flat, got {name!r}")
        return self.root / name

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes | None:
        self.switch.check()
        path = self._path(name)
        if not path.exists():
            return None
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def size(self, name: str) -> int:
        path = self._path(name)
        return path.stat().st_size if path.exists() else -1

    def _write(self, path: Path, mode: str, data: bytes, cut: str) -> None:
        if cut == "before":
            raise PowerCut()
        part = data if cut != "torn" else data[: max(1, len(data) // 2)]
        with open(path, mode) as f:
            f.write(part)
            f.flush()
            os.fsync(f.fileno())
        self.bytes_written += len(part)
        if cut != "ok":
            raise PowerCut()

    def append(self, name: str, data: bytes) -> None:
        self.switch.check()
        self._write(self._path(name), "ab", data, self.switch.next_write("flash:append:" + name))

    def replace(self, name: str, data: bytes | Iterable[bytes]) -> None:
        self.switch.check()
        data = b"".join(hal.chunks(data))
        cut = self.switch.next_write("flash:replace:" + name)
        tmp = self._path(name + ".tmp")
        # A torn replace leaves only a torn temporary file; the rename is what commits.
        self._write(tmp, "wb", data, "ok" if cut == "after" else cut)
        os.replace(tmp, self._path(name))
        if cut == "after":
            raise PowerCut()

    def truncate(self, name: str, size: int) -> None:
        self.switch.check()
        if self.switch.next_write("flash:truncate:" + name) == "before":
            raise PowerCut()
        os.truncate(self._path(name), size)
        self.switch.check()

    def remove(self, name: str) -> None:
        self.switch.check()
        if self.switch.next_write("flash:remove:" + name) == "before":
            raise PowerCut()
        self._path(name).unlink(missing_ok=True)
        self.switch.check()

    def provision(self, name: str, data: bytes) -> None:
        """Put a file on the flash at the factory (not a firmware write, not counted)."""
        self._path(name).write_bytes(data)


class SimClock(hal.Clock):
    """Wall time that the scenario moves; real monotonic ticks for wire timeouts."""

    def __init__(self, start: int = 1_790_000_000) -> None:
        self.now = start

    def time(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds

    def ticks_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def sleep_ms(self, ms: int) -> None:
        time.sleep(ms / 1000)


class SimDisplay(hal.Display):
    """Keeps what is shown; echo() receives each new screen (for a terminal view)."""

    def __init__(self, echo: Callable[[list[str]], None] | None = None) -> None:
        self.lines: list[str] = []
        self.screens = 0
        self.echo = echo

    def show(self, lines: list) -> None:
        self.lines = list(lines)
        self.screens += 1
        if self.echo:
            self.echo(self.lines)

    def text(self) -> str:
        return "\n".join(self.lines)


class SimKeypad(hal.Keypad):
    """Keys queued by a script or a person at the terminal."""

    KEYS = frozenset("0123456789*") | {"ENTER", "OK", "CANCEL", "CLEAR", "POINTS", "CASH", "COUPON"}

    def __init__(self) -> None:
        self.queue: deque[str] = deque()

    def press(self, *keys: str) -> None:
        for key in keys:
            if key not in self.KEYS:
                raise ValueError(f"no key {key!r} on the keypad; keys: {sorted(self.KEYS)}")
            self.queue.append(key)

    def get_key(self) -> str | None:
        return self.queue.popleft() if self.queue else None
