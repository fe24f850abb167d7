"""A handheld's network link that the simulator can cut (shop Wi-Fi down, cable pulled).

With chaos on, it also sends every MQTT PUBLISH twice and shuffles them, so the
broker (QoS 1 does not deduplicate) hands the hub duplicates out of order.
"""

from __future__ import annotations

import errno
import random

from firmware import netio
from firmware.mqtt import PacketParser, encode_length

PUBLISH = 3
REORDER_WINDOW = 4  # PUBLISH packets shuffled together


class LinkDown(OSError):
    def __init__(self) -> None:
        super().__init__(errno.ENETUNREACH, "network is down")


class SimConnection:
    """A real TCP connection that fails like a dropped link when the network goes down."""

    def __init__(self, conn: netio.TcpConnection, network: SimNetwork) -> None:
        self.conn = conn
        self.network = network
        self.parser = PacketParser()
        self.held: list[bytes] = []  # PUBLISH packets waiting to go out shuffled and doubled

    def _check(self) -> None:
        if not self.network.up:
            self.conn.close()
            raise LinkDown()

    def write(self, data: bytes) -> None:
        self._check()
        if self.network.chaos is None:
            self.conn.write(data)
            return
        for kind, flags, body in self.parser.feed(bytes(data)):
            packet = bytes([(kind << 4) | flags]) + encode_length(len(body)) + bytes(body)
            if kind == PUBLISH:
                self.held += [packet, packet]
                self.network.duplicated += 1
                if len(self.held) >= 2 * REORDER_WINDOW:
                    self._release()
            else:
                self._release()
                self.conn.write(packet)

    def _release(self) -> None:
        """Send the held PUBLISH packets, each twice, in a shuffled order."""
        assert self.network.chaos is not None
        self.network.chaos.shuffle(self.held)
        for packet in self.held:
            self.conn.write(packet)
        self.held = []

    def read(self, n: int, timeout_ms: int) -> bytes:
        self._check()
        if self.held:
            self._release()  # nothing waits forever for a full window
        return self.conn.read(n, timeout_ms)

    def close(self) -> None:
        self.conn.close()


class SimNetwork(netio.Network):
    """netio.Network with an on/off switch; connections made while up die when it goes down."""

    def __init__(self, up: bool = True, chaos: random.Random | None = None) -> None:
        self.up = up
        self.connects = 0
        self.chaos = chaos  # when set: every PUBLISH goes out twice, out of order
        self.duplicated = 0

    def connect(self, host: str, port: int, timeout_ms: int) -> SimConnection:
        if not self.up:
            raise LinkDown()
        self.connects += 1
        return SimConnection(netio.connect(host, port, timeout_ms), self)
