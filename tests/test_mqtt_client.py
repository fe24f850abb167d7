"""The MQTT 3.1.1 client (firmware.mqtt) and its TCP link (firmware.netio).

Codec unit tests and a hypothesis test run without a broker; the client tests run
against a real Mosquitto (/usr/sbin/mosquitto) started on a free loopback port and
stopped afterwards, and against tiny fake brokers (threads) for the failures
Mosquitto does not produce (no PINGRESP, garbage).
"""

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import mqtt, netio
from firmware.mqtt import (
    MQTTBusy,
    MQTTClient,
    MQTTConnectError,
    MQTTDisconnected,
    MQTTProtocolError,
    PacketParser,
)
from simulator.vhal import SimClock

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
needs_mosquitto = pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto is not installed")


class CountingNetwork(netio.Network):
    """A netio.Network whose connections record what the client writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def connect(self, host: str, port: int, timeout_ms: int):
        conn = super().connect(host, port, timeout_ms)
        written = self.written
        write = conn.write

        def recording_write(data) -> None:
            written.append(bytes(data))
            write(data)

        conn.write = recording_write  # type: ignore[method-assign]
        return conn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One Mosquitto on 127.0.0.1:port; start() and stop() may be repeated (same port)."""

    def __init__(self, workdir: Path, passwords: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr"]
        if os.geteuid() == 0:
            lines.append("user root")
        if passwords:
            pwfile = workdir / "passwd"
            for i, (user, password) in enumerate(passwords.items()):
                flags = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run([MOSQUITTO_PASSWD, *flags, str(pwfile), user, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        self.config = workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + (self.workdir / "mosquitto.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker for one test alone (it may stop and restart it)."""
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., MQTTClient]]:
    """make(port, client_id, **kw) -> MQTTClient; all are closed after the test."""
    made: list[MQTTClient] = []

    def make(port: int, client_id: str, **kw) -> MQTTClient:
        kw.setdefault("network", netio.Network())
        kw.setdefault("timeout_ms", 2000)
        c = MQTTClient(kw.pop("network"), SimClock(), client_id, "127.0.0.1", port, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def collect(client: MQTTClient, want: int, timeout_s: float = 3.0) -> list:
    """Poll until want messages arrived or timeout_s passed."""
    got: list = []
    end = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < end:
        got += client.poll(100)
    return got


def settle(client: MQTTClient, timeout_s: float = 3.0) -> list:
    """Poll until no QoS 1 message is in flight; the messages received meanwhile."""
    got: list = []
    end = time.monotonic() + timeout_s
    while client.inflight and time.monotonic() < end:
        got += client.poll(100)
    assert client.inflight == 0, f"no PUBACK within {timeout_s:.1f} s"
    return got


# -- codec ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, encoded",
    [
        # The table of 2.2.3.
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2097151, b"\xff\xff\x7f"),
        (2097152, b"\x80\x80\x80\x01"),
        (268435455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length(n: int, encoded: bytes) -> None:
    assert mqtt.encode_length(n) == encoded
    parser = PacketParser(max_size=16384)
    if n == 0:
        assert parser.feed(b"\xd0" + encoded) == [(mqtt.PINGRESP, 0, bytearray())]
    elif n <= 16384:
        assert parser.feed(b"\x30" + encoded) == []
        assert parser.needed() == n
    else:
        with pytest.raises(MQTTProtocolError, match=f"packet of {n} bytes"):
            parser.feed(b"\x30" + encoded)


def test_remaining_length_out_of_range() -> None:
    with pytest.raises(ValueError):
        mqtt.encode_length(268435456)
    with pytest.raises(MQTTProtocolError, match="4 bytes"):
        PacketParser().feed(b"\x30\xff\xff\xff\xff\x01")


def test_encode_connect() -> None:
    assert mqtt.encode_connect("hh-01", clean_session=False, keepalive_s=30) == (
        b"\x10\x11\x00\x04MQTT\x04\x00\x00\x1e\x00\x05hh-01"
    )
    pkt = mqtt.encode_connect("c", True, 60, user="u", password=b"pw", will=("w/t", b"bye", 1, True))
    body = b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02]) + b"\x00\x3c"
    body += b"\x00\x01c" + b"\x00\x03w/t" + b"\x00\x03bye" + b"\x00\x01u" + b"\x00\x02pw"
    assert pkt == b"\x10" + bytes([len(body)]) + body
    with pytest.raises(ValueError):
        mqtt.encode_connect("c", password="p")
    with pytest.raises(ValueError):
        mqtt.encode_connect("c", will=("w/#", b"", 0, False))


def test_encode_publish_and_friends() -> None:
    assert mqtt.encode_publish("a/b", b"hi") == b"\x30\x07\x00\x03a/bhi"
    assert mqtt.encode_publish("a/b", b"hi", qos=1, retain=True, dup=True, pid=0x1234) == b"\x3b\x09\x00\x03a/b\x12\x34hi"
    assert mqtt.encode_puback(5) == b"\x40\x02\x00\x05"
    assert mqtt.encode_subscribe(10, [("a/#", 1), ("b", 0)]) == b"\x82\x0c\x00\x0a\x00\x03a/#\x01\x00\x01b\x00"
    assert mqtt.PINGREQ_PACKET == b"\xc0\x00"
    big = bytes(300)
    assert mqtt.publish_header("t", len(big), 1, False, False, 1) + big == mqtt.encode_publish("t", big, 1, pid=1)
    for bad in (
        lambda: mqtt.encode_publish("a/+", b""),
        lambda: mqtt.encode_publish("", b""),
        lambda: mqtt.encode_publish("a", b"", qos=1),  # no packet id
        lambda: mqtt.encode_publish("a", b"", dup=True),  # DUP with QoS 0
        lambda: mqtt.encode_subscribe(1, []),
        lambda: mqtt.encode_puback(0),
    ):
        with pytest.raises(ValueError):
            bad()


def test_parser_splits_and_joins() -> None:
    stream = (
        b"\x20\x02\x01\x00"  # CONNACK, session present
        + mqtt.encode_publish("t/x", b"payload", qos=1, pid=9)
        + b"\x40\x02\x00\x09"  # PUBACK 9
        + b"\x90\x04\x00\x02\x01\x80"  # SUBACK 2: granted 1, refused
        + b"\xd0\x00"  # PINGRESP
    )
    for step in (1, 2, 3, 7, len(stream)):
        parser = PacketParser()
        packets: list = []
        for i in range(0, len(stream), step):
            packets += parser.feed(stream[i : i + step])
        assert [p[0] for p in packets] == [mqtt.CONNACK, mqtt.PUBLISH, mqtt.PUBACK, mqtt.SUBACK, mqtt.PINGRESP]
        assert mqtt.decode_connack(packets[0][2]) == (True, 0)
        assert mqtt.decode_publish(packets[1][1], packets[1][2]) == ("t/x", 9, b"payload", 1, False, False)
        assert mqtt.decode_puback(packets[2][2]) == 9
        assert mqtt.decode_suback(packets[3][2]) == (2, [1, 0x80])
        mqtt.decode_pingresp(packets[4][2])  # no error


@pytest.mark.parametrize(
    "data, why",
    [
        (b"\x00\x00", "reserved"),
        (b"\xf0\x00", "reserved"),
        (b"\x36\x00", "QoS 3"),
        (b"\x21\x02\x00\x00", "flags"),  # CONNACK with flags
        (b"\x80\x00", "flags"),  # SUBSCRIBE without its 0b0010
        (b"\x30\xff\x7f", "exceeds"),  # 16383 > a 1 KiB limit
    ],
)
def test_parser_rejects(data: bytes, why: str) -> None:
    with pytest.raises(MQTTProtocolError, match=why):
        PacketParser(max_size=1024).feed(data)


@pytest.mark.parametrize(
    "decode, flags, body",
    [
        ("connack", 0, b"\x00"),
        ("connack", 0, b"\x02\x00"),
        ("publish", 0, b"\x00"),
        ("publish", 0, b"\x00\x05ab"),
        ("publish", 2, b"\x00\x01a"),  # QoS 1 without packet id
        ("publish", 2, b"\x00\x01a\x00\x00"),  # packet id 0
        ("publish", 0, b"\x00\x02\xff\xfe"),  # not UTF-8
        ("publish", 0, b"\x00\x03a/+"),  # wildcard
        ("publish", 0, b"\x00\x00x"),  # empty topic
        ("publish", 8, b"\x00\x01ax"),  # DUP on QoS 0
        ("puback", 0, b"\x00"),
        ("puback", 0, b"\x00\x00"),
        ("suback", 0, b"\x00\x01"),
        ("suback", 0, b"\x00\x01\x03"),
        ("pingresp", 0, b"\x00"),
    ],
)
def test_decoders_reject(decode: str, flags: int, body: bytes) -> None:
    with pytest.raises(MQTTProtocolError):
        if decode == "publish":
            mqtt.decode_publish(flags, bytearray(body))
        else:
            getattr(mqtt, "decode_" + decode)(bytearray(body))


def _decode_any(ptype: int, flags: int, body: bytearray) -> None:
    if ptype == mqtt.CONNACK:
        mqtt.decode_connack(body)
    elif ptype == mqtt.PUBLISH:
        mqtt.decode_publish(flags, body)
    elif ptype == mqtt.PUBACK:
        mqtt.decode_puback(body)
    elif ptype == mqtt.SUBACK:
        mqtt.decode_suback(body)
    elif ptype == mqtt.PINGRESP:
        mqtt.decode_pingresp(body)


_VALID = [
    b"\x20\x02\x00\x00",
    mqtt.encode_publish("a/b", b"xyz", qos=1, pid=3),
    b"\x40\x02\x00\x03",
    b"\x90\x03\x00\x01\x01",
    b"\xd0\x00",
]


@settings(max_examples=400, deadline=None)
@given(
    chunks=st.lists(
        st.one_of(st.binary(max_size=40), st.sampled_from(_VALID)),
        max_size=12,
    ),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
)
def test_parser_never_crashes(chunks: list[bytes], flips: list[tuple[int, int]]) -> None:
    """Arbitrary bytes give packets (decodable or MQTTProtocolError), never another exception."""
    stream = bytearray(b"".join(chunks))
    for pos, value in flips:
        if stream:
            stream[pos % len(stream)] = value
    parser = PacketParser(max_size=512)
    step = max(1, len(chunks))
    try:
        for i in range(0, len(stream), step):
            for ptype, flags, body in parser.feed(bytes(stream[i : i + step])):
                assert 1 <= ptype <= 14 and 0 <= flags <= 15 and isinstance(body, bytearray)
                try:
                    _decode_any(ptype, flags, body)
                except MQTTProtocolError:
                    pass
    except MQTTProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(
    topic=st.text(st.characters(exclude_characters="+#\x00", exclude_categories=["Cs"]), min_size=1, max_size=40),
    payload=st.binary(max_size=400),
    qos=st.integers(0, 1),
    retain=st.booleans(),
    pid=st.integers(1, 65535),
)
def test_publish_round_trip(topic: str, payload: bytes, qos: int, retain: bool, pid: int) -> None:
    pkt = mqtt.encode_publish(topic, payload, qos, retain, dup=bool(qos), pid=pid if qos else 0)
    ((ptype, flags, body),) = PacketParser().feed(pkt)
    assert ptype == mqtt.PUBLISH
    assert mqtt.decode_publish(flags, body) == (topic, pid if qos else 0, payload, qos, retain, bool(qos))


# -- against Mosquitto -----------------------------------------------------------------


@needs_mosquitto
def test_round_trip_own_topic(broker: Broker, clients) -> None:
    c = clients(broker.port, "rt-1")
    assert c.connect(clean_session=True) is False
    assert c.connected
    assert c.subscribe([("test/rt/1", 1)]) == [1]
    pid = c.publish("test/rt/1", b"hello", qos=1)
    assert pid > 0 and c.inflight == 1
    got = collect(c, 1)
    got += settle(c)
    assert got == [("test/rt/1", b"hello", False)]
    assert c.publish("test/rt/1", "qos0", qos=0) == 0
    assert collect(c, 1) == [("test/rt/1", b"qos0", False)]
    c.close()
    assert not c.connected
    with pytest.raises(MQTTDisconnected):
        c.publish("test/rt/1", b"x")


@needs_mosquitto
def test_large_payload_round_trip(broker: Broker, clients) -> None:
    c = clients(broker.port, "rt-big")
    c.connect(clean_session=True)
    c.subscribe([("test/big", 1)])
    payload = bytes(range(256)) * 20  # 5 KiB: header and payload written apart, read in pieces
    c.publish("test/big", payload)
    got = collect(c, 1) + settle(c)
    assert got == [("test/big", payload, False)]


@needs_mosquitto
def test_retained_message_reaches_a_later_subscriber(broker: Broker, clients) -> None:
    pub = clients(broker.port, "ret-pub")
    pub.connect(clean_session=True)
    pub.publish("test/ret/price", b"v42", qos=1, retain=True)
    settle(pub)
    pub.close()
    sub = clients(broker.port, "ret-sub")
    sub.connect(clean_session=True)
    sub.subscribe([("test/ret/+", 1)])
    assert collect(sub, 1) == [("test/ret/price", b"v42", True)]


@needs_mosquitto
def test_last_will_on_abrupt_close(broker: Broker, clients) -> None:
    watcher = clients(broker.port, "will-watch")
    watcher.connect(clean_session=True)
    watcher.subscribe([("test/will/#", 1)])

    victim = clients(broker.port, "will-a")
    victim.connect(clean_session=True, will=("test/will/a", b"gone", 1, False))
    victim.close()
    assert not victim.connected
    assert collect(watcher, 1) == [("test/will/a", b"gone", False)]


@needs_mosquitto
def test_qos1_redelivered_after_close_before_puback(broker: Broker, clients) -> None:
    sub = clients(broker.port, "redel-sub")
    sub.connect(clean_session=True)
    sub.subscribe([("test/redel", 1)])
    pub = clients(broker.port, "redel-pub")
    pub.connect(clean_session=True)
    pub.connect(clean_session=False)
    pid = pub.publish("test/redel", b"sale 17")
    pub.close()  # before the PUBACK was read
    assert pub.inflight == 1 and [m[0] for m in pub._inflight] == [pid]
    assert pub.connect(clean_session=False) is True  # the broker kept the session
    settle(pub)
    got = collect(sub, 2, timeout_s=1.0)
    assert 1 <= len(got) <= 2
    assert all(m == ("test/redel", b"sale 17", False) for m in got)


@needs_mosquitto
def test_qos1_redelivered_after_broker_restart(own_broker: Broker, clients) -> None:
    net = CountingNetwork()
    pub = clients(own_broker.port, "restart-pub", network=net)
    pub.connect(clean_session=False)
    own_broker.stop()
    # The client may learn of it from the write or only from the next read.
    try:
        pub.publish("test/restart", b"sale 18")
        pub.poll(1000)
    except MQTTDisconnected:
        pass
    assert not pub.connected
    assert pub.inflight == 1
    with pytest.raises(MQTTDisconnected):
        pub.publish("test/restart", b"not kept")
    assert pub.inflight == 1
    with pytest.raises(MQTTDisconnected, match="cannot connect"):
        pub.connect(clean_session=False)  # the broker is still down: back off, retry

    own_broker.start()
    sub = clients(own_broker.port, "restart-sub")
    sub.connect(clean_session=True)
    sub.subscribe([("test/restart", 1)])
    assert pub.connect(clean_session=False) is False  # no persistence: the session is gone
    settle(pub)
    got = collect(sub, 1)
    assert got == [("test/restart", b"sale 18", False)]
    resent = [w for w in net.written if w[0] >> 4 == mqtt.PUBLISH]
    assert resent[-1][0] & 0x08, "the re-sent PUBLISH carries DUP"


@needs_mosquitto
def test_inflight_limit(broker: Broker, clients) -> None:
    c = clients(broker.port, "busy", max_inflight=2)
    c.connect(clean_session=True)
    c.publish("test/busy", b"1")
    c.publish("test/busy", b"2")
    with pytest.raises(MQTTBusy):
        c.publish("test/busy", b"3")
    settle(c)
    c.publish("test/busy", b"3")
    settle(c)


@needs_mosquitto
def test_keepalive_pings_keep_an_idle_client_connected(broker: Broker, clients) -> None:
    net = CountingNetwork()
    c = clients(broker.port, "ka", keepalive_s=2, network=net)
    c.connect(clean_session=True)
    end = time.monotonic() + 3.5  # the broker drops a silent client after 1.5 x 2 s
    while time.monotonic() < end:
        assert c.poll(500) == []
    assert net.written.count(mqtt.PINGREQ_PACKET) >= 1
    assert c.connected
    c.subscribe([("test/ka", 1)])
    c.publish("test/ka", b"still here")
    assert collect(c, 1) == [("test/ka", b"still here", False)]


@needs_mosquitto
def test_bad_password_is_refused(tmp_path: Path, clients) -> None:
    """Mosquitto answers a wrong password with 5 'not authorized', not 4.

    It does so on purpose (eclipse-mosquitto/mosquitto#1817, closed): 3.1.1 gives 4 for
    malformed credentials. Code 4 itself is checked with a fake broker below.
    """
    b = Broker(tmp_path, passwords={"hh-01": "s3cret"})
    b.start()
    try:
        bad = clients(b.port, "pw-bad", user="hh-01", password="wrong")
        with pytest.raises(MQTTConnectError) as info:
            bad.connect()
        assert info.value.code == 5 and info.value.name == "not authorized"
        assert not bad.connected
        anonymous = clients(b.port, "pw-anon")
        with pytest.raises(MQTTConnectError) as info:
            anonymous.connect()
        assert info.value.code == 5
        good = clients(b.port, "pw-good", user="hh-01", password="s3cret")
        good.connect(clean_session=True)
        assert good.connected
    finally:
        b.stop()


# -- against fake brokers ----------------------------------------------------------------


class FakeBroker:
    """Accepts one client, answers its first bytes with connack + after_connack, then only reads."""

    def __init__(self, after_connack: bytes = b"", connack: bytes = b"\x20\x02\x00\x00") -> None:
        self.connack = connack
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.after_connack = after_connack
        self.received = bytearray()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.listener.settimeout(5)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(0.05)
            sent = False
            while not self.stop.is_set():
                try:
                    data = conn.recv(1024)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self.received += data
                if not sent:
                    conn.sendall(self.connack + self.after_connack)
                    sent = True

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def fake_broker() -> Iterator[Callable[..., FakeBroker]]:
    made: list[FakeBroker] = []

    def make(after_connack: bytes = b"", connack: bytes = b"\x20\x02\x00\x00") -> FakeBroker:
        fb = FakeBroker(after_connack, connack)
        made.append(fb)
        return fb

    yield make
    for fb in made:
        fb.close()


def test_missing_pingresp_is_a_dead_connection(fake_broker, clients) -> None:
    fb = fake_broker(b"")
    c = clients(fb.port, "dead", keepalive_s=1)
    c.connect(clean_session=True)
    start = time.monotonic()
    with pytest.raises(MQTTDisconnected, match="PINGRESP"):
        while time.monotonic() - start < 5:
            c.poll(200)
    assert 1.8 <= time.monotonic() - start < 3.0  # PINGREQ after 1 s, given up 1 s later
    assert not c.connected
    assert mqtt.PINGREQ_PACKET in bytes(fb.received)


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00", b"\x30\x02\x00\x05", b"\x40\x01\x00", b"\x10\x00"])
def test_garbage_from_the_broker_disconnects(fake_broker, clients, garbage: bytes) -> None:
    fb = fake_broker(garbage)
    c = clients(fb.port, "garbage")
    with pytest.raises(MQTTDisconnected, match="malformed|broker"):
        c.connect(clean_session=True)  # the garbage may arrive with the CONNACK
        c.poll(1000)
    assert not c.connected


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5])
def test_connack_refusals(fake_broker, clients, code: int) -> None:
    fb = fake_broker(connack=bytes([0x20, 2, 0, code]))
    c = clients(fb.port, "refused")
    with pytest.raises(MQTTConnectError) as info:
        c.connect()
    assert info.value.code == code and info.value.name == mqtt.CONNACK_CODES[code]
    assert not c.connected
    with pytest.raises(MQTTDisconnected):
        c.poll(0)


def test_connect_refused_is_disconnected(clients) -> None:
    c = clients(free_port(), "nobody")
    with pytest.raises(MQTTDisconnected, match="cannot connect"):
        c.connect()
    assert not c.connected


def test_tcp_connection_read_write_and_peer_close() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        conn = netio.Network().connect("127.0.0.1", listener.getsockname()[1], 1000)
        peer, _ = listener.accept()
        with peer:
            assert conn.read(10, 50) == b""
            conn.write(b"ping")
            assert peer.recv(10) == b"ping"
            peer.sendall(b"pong")
            assert conn.read(10, 1000) == b"pong"
        with pytest.raises(OSError):
            conn.read(10, 1000)
        conn.close()
        conn.close()
        with pytest.raises(OSError):
            conn.write(b"x")
