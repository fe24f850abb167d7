"""A handheld's network link that the simulator can cut (shop Wi-Fi down, cable pulled)."""

from __future__ import annotations

import errno

from firmware import netio


class LinkDown(OSError):
    def __init__(self) -> None:
        super().__init__(errno.ENETUNREACH, "network is down")


class SimConnection:
    """A real TCP connection that fails like a dropped link when the network goes down."""

    def __init__(self, conn: netio.TcpConnection, network: SimNetwork) -> None:
        self.conn = conn
        self.network = network

    def _check(self) -> None:
        if not self.network.up:
            self.conn.close()
            raise LinkDown()

    def write(self, data: bytes) -> None:
        self._check()
        self.conn.write(data)

    def read(self, n: int, timeout_ms: int) -> bytes:
        self._check()
        return self.conn.read(n, timeout_ms)

    def close(self) -> None:
        self.conn.close()


class SimNetwork(netio.Network):
    """netio.Network with an on/off switch; connections made while up die when it goes down."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.connects = 0

    def connect(self, host: str, port: int, timeout_ms: int) -> SimConnection:
        if not self.up:
            raise LinkDown()
        self.connects += 1
        return SimConnection(netio.connect(host, port, timeout_ms), self)
