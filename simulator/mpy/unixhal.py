"""The simulator's HAL for firmware running on the MicroPython unix port.

The unix port has no UART, no power switch and no keypad; this module bridges
them: the PN532's UART is the simulator's pseudo-terminal, flash is a folder
whose writes can be cut by the host, keys and the wall clock come from the host
over the control channel. The firmware itself is the same code as on a board.
"""

import gc
import os
import select
import sys
import time

from firmware import netio


class Meter:
    """The peak of gc.mem_alloc(), sampled at every HAL call, i.e. inside firmware steps too.

    With gc.threshold(GC_EVERY) garbage is collected after every GC_EVERY bytes
    allocated, so a sample overstates the live heap by at most that much.
    """

    GC_EVERY = 4096

    def __init__(self):
        self.peak = 0
        self.on = False

    def start(self) -> None:
        gc.collect()
        gc.threshold(self.GC_EVERY)
        self.on = True

    def sample(self) -> None:
        if self.on:
            used = gc.mem_alloc()
            if used > self.peak:
                self.peak = used


meter = Meter()


class Host:
    """The control channel: JSON lines on stdin/stdout."""

    def __init__(self):
        self.count_writes = False

    def send(self, text: str) -> None:
        sys.stdout.write(text)  # not text + "\n": that copy would need a second block the answer's size
        sys.stdout.write("\n")

    def ask_write(self, what: str) -> str:
        """Ask the host's power switch about one write: ok, before, torn or after."""
        if not self.count_writes:
            return "ok"
        self.send('{"w": "%s"}' % what)
        return sys.stdin.readline().strip()


class PtyUart:  # hal.Uart
    """The PN532's UART: the simulator's pseudo-terminal, opened as a file."""

    def __init__(self, path: str):
        self.f = open(path, "r+b")
        self.poller = select.poll()
        self.poller.register(self.f, select.POLLIN)

    def write(self, data: bytes) -> None:
        meter.sample()
        self.f.write(data)

    def read(self, n: int, timeout_ms: int) -> bytes:
        meter.sample()
        if not self.poller.poll(max(0, timeout_ms)):
            return b""
        # A MicroPython file read(n) waits for all n bytes: take only what is there.
        out = bytearray()
        while len(out) < n and self.poller.poll(0):
            byte = self.f.read(1)
            if not byte:
                break
            out += byte
        return bytes(out)

    def flush_input(self) -> None:
        while self.poller.poll(0):
            if not self.f.read(1):
                return


class HostClock:  # hal.Clock
    """Wall time set by the host's scenario clock; real monotonic ticks."""

    def __init__(self):
        self.now = 0

    def time(self) -> int:
        return self.now

    def ticks_ms(self) -> int:
        return time.ticks_ms()

    def sleep_ms(self, ms: int) -> None:
        time.sleep_ms(ms)


class FileFlash:  # hal.Flash
    """Flash as files in a folder; every write asks the host's power switch first."""

    def __init__(self, root: str, host: Host):
        self.root = root
        self.host = host
        self.bytes_written = 0

    def _path(self, name: str) -> str:
        return self.root + "/" + name

    def read(self, name: str, offset: int = 0, size: int = -1):
        try:
            with open(self._path(name), "rb") as f:
                f.seek(offset)
                return f.read() if size < 0 else f.read(size)
        except OSError:
            return None

    def size(self, name: str) -> int:
        try:
            return os.stat(self._path(name))[6]
        except OSError:
            return -1

    def _cut(self, mode: str) -> None:
        if mode != "ok":
            raise SystemExit(99)  # the power is gone: nothing after this runs

    def _write(self, path: str, mode: str, data: bytes, how: str) -> None:
        meter.sample()
        if how == "before":
            self._cut(how)
        part = data if how != "torn" else data[: max(1, len(data) // 2)]
        with open(path, mode) as f:
            f.write(part)
        self.bytes_written += len(part)
        self._cut(how)

    def append(self, name: str, data: bytes) -> None:
        self._write(self._path(name), "ab", data, self.host.ask_write("flash:append:" + name))

    def replace(self, name: str, data) -> None:
        how = self.host.ask_write("flash:replace:" + name)
        tmp = self._path(name + ".tmp")
        mode = "wb"
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = (data,)
        for chunk in data:  # chunk by chunk, as a board with little RAM must
            self._write(tmp, mode, chunk, "ok" if how == "after" else how)
            mode = "ab"
        if mode == "wb":
            self._write(tmp, mode, b"", "ok" if how == "after" else how)
        os.rename(tmp, self._path(name))
        self._cut(how)

    def truncate(self, name: str, size: int) -> None:
        how = self.host.ask_write("flash:truncate:" + name)
        if how == "before":
            self._cut(how)
        data = self.read(name, 0, size) or b""
        with open(self._path(name) + ".tmp", "wb") as f:
            f.write(data)
        os.rename(self._path(name) + ".tmp", self._path(name))
        self._cut(how)

    def remove(self, name: str) -> None:
        how = self.host.ask_write("flash:remove:" + name)
        if how == "before":
            self._cut(how)
        try:
            os.remove(self._path(name))
        except OSError:
            pass
        self._cut(how)


class Panel:  # hal.Display and hal.Keypad: one class, not two (a class takes ~300 bytes of the metered heap)
    """The front panel: the lines shown, the keys the host pressed."""

    def __init__(self):
        self.lines = []
        self.keys = []

    def show(self, lines: list) -> None:
        self.lines = list(lines)

    def get_key(self):
        return self.keys.pop(0) if self.keys else None


class GatedNetwork(netio.Network):
    """Real sockets, behind a switch the host flips (the shop's network up or down)."""

    def __init__(self):
        self.up = True
        self.conns = []

    def connect(self, host: str, port: int, timeout_ms: int):
        meter.sample()
        if not self.up:
            raise OSError(101)  # ENETUNREACH
        conn = netio.connect(host, port, timeout_ms)
        self.conns.append(conn)
        return conn

    def set_up(self, up: bool) -> None:
        self.up = up
        if not up:
            for conn in self.conns:
                conn.close()  # the link drops under every open connection
            self.conns = []
