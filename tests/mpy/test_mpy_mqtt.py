"""firmware/mqtt.py: the codec by the spec's bytes, the client on an in-memory broker, and a
round trip through a real Mosquitto over firmware/netio.py sockets ($MQTT_PORT)."""

import errno

from fakes import FakeBroker, FakeClock, RealClock
from harness import mqtt_port, raises, unique

from firmware import mqtt, netio
from firmware.mqtt import MQTTBusy, MQTTClient, MQTTConnectError, MQTTDisconnected, MQTTProtocolError, PacketParser

# -- codec -------------------------------------------------------------------------------


def test_remaining_length_table():
    # The table of 2.2.3.
    for n, encoded in (
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2097151, b"\xff\xff\x7f"),
        (2097152, b"\x80\x80\x80\x01"),
        (268435455, b"\xff\xff\xff\x7f"),
    ):
        assert mqtt.encode_length(n) == encoded, n
    with raises(ValueError):
        mqtt.encode_length(268435456)
    with raises(MQTTProtocolError):
        PacketParser().feed(b"\x30\xff\xff\xff\xff\x01")
    with raises(MQTTProtocolError):
        PacketParser(max_size=1024).feed(b"\x30\xff\x7f")


def test_encode_connect():
    assert mqtt.encode_connect("hh-01", False, 30) == b"\x10\x11\x00\x04MQTT\x04\x00\x00\x1e\x00\x05hh-01"
    pkt = mqtt.encode_connect("c", True, 60, user="u", password=b"pw", will=("w/t", b"bye", 1, True))
    body = b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02]) + b"\x00\x3c"
    body += b"\x00\x01c" + b"\x00\x03w/t" + b"\x00\x03bye" + b"\x00\x01u" + b"\x00\x02pw"
    assert pkt == b"\x10" + bytes([len(body)]) + body
    with raises(ValueError):
        mqtt.encode_connect("c", password="p")
    with raises(ValueError):
        mqtt.encode_connect("c", will=("w/#", b"", 0, False))


def test_encode_publish_and_friends():
    assert mqtt.encode_publish("a/b", b"hi") == b"\x30\x07\x00\x03a/bhi"
    assert mqtt.encode_publish("a/b", b"hi", 1, True, True, 0x1234) == b"\x3b\x09\x00\x03a/b\x12\x34hi"
    assert mqtt.encode_puback(5) == b"\x40\x02\x00\x05"
    assert mqtt.encode_subscribe(10, [("a/#", 1), ("b", 0)]) == b"\x82\x0c\x00\x0a\x00\x03a/#\x01\x00\x01b\x00"
    assert mqtt.PINGREQ_PACKET == b"\xc0\x00"
    big = bytes(300)
    assert mqtt.publish_header("t", len(big), 1, False, False, 1) + big == mqtt.encode_publish("t", big, 1, pid=1)
    assert mqtt.encode_publish("é/ü", b"") == b"\x30\x07\x00\x05\xc3\xa9/\xc3\xbc"  # topics are UTF-8
    for args, kw in (
        (("a/+", b""), {}),
        (("", b""), {}),
        (("a", b""), {"qos": 1}),  # no packet id
        (("a", b""), {"dup": True}),  # DUP with QoS 0
    ):
        with raises(ValueError):
            mqtt.encode_publish(*args, **kw)
    with raises(ValueError):
        mqtt.encode_subscribe(1, [])
    with raises(ValueError):
        mqtt.encode_puback(0)


def test_parser_splits_and_joins():
    stream = (
        b"\x20\x02\x01\x00"  # CONNACK, session present
        + mqtt.encode_publish("t/x", b"payload", qos=1, pid=9)
        + b"\x40\x02\x00\x09"  # PUBACK 9
        + b"\x90\x04\x00\x02\x01\x80"  # SUBACK 2: granted 1, refused
        + b"\xd0\x00"  # PINGRESP
    )
    for step in (1, 2, 3, 7, len(stream)):
        parser = PacketParser()
        packets = []
        for i in range(0, len(stream), step):
            packets += parser.feed(stream[i : i + step])
        assert [p[0] for p in packets] == [mqtt.CONNACK, mqtt.PUBLISH, mqtt.PUBACK, mqtt.SUBACK, mqtt.PINGRESP], step
        assert mqtt.decode_connack(packets[0][2]) == (True, 0)
        assert mqtt.decode_publish(packets[1][1], packets[1][2]) == ("t/x", 9, b"payload", 1, False, False)
        assert mqtt.decode_puback(packets[2][2]) == 9
        assert mqtt.decode_suback(packets[3][2]) == (2, [1, 0x80])
        mqtt.decode_pingresp(packets[4][2])


def test_parser_and_decoders_reject_malformed_packets():
    for data in (b"\x00\x00", b"\xf0\x00", b"\x36\x00", b"\x21\x02\x00\x00", b"\x80\x00"):
        with raises(MQTTProtocolError):
            PacketParser().feed(data)
    for decode, flags, body in (
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
    ):
        with raises(MQTTProtocolError):
            if decode == "publish":
                mqtt.decode_publish(flags, bytearray(body))
            else:
                getattr(mqtt, "decode_" + decode)(bytearray(body))


def test_publish_round_trips_through_the_parser():
    for topic, payload, qos, retain, pid in (
        ("a", b"", 0, False, 0),
        ("terminals/hh-1/up/records", bytes(range(256)) * 3, 1, False, 65535),
        ("x/y/z", b"\x00\xff", 1, True, 1),
    ):
        pkt = mqtt.encode_publish(topic, payload, qos, retain, bool(qos), pid)
        got = PacketParser().feed(pkt)
        assert len(got) == 1 and got[0][0] == mqtt.PUBLISH
        assert mqtt.decode_publish(got[0][1], got[0][2]) == (topic, pid, payload, qos, retain, bool(qos)), topic


# -- the client, on a broker in memory ---------------------------------------------------------


def client_on(broker, clock, **kw):
    kw.setdefault("timeout_ms", 1000)
    return MQTTClient(broker, clock, "hh-mem", "127.0.0.1", 1883, **kw)


def test_connect_subscribe_publish_and_puback():
    clock = FakeClock()
    broker = FakeBroker(clock)
    c = client_on(broker, clock, user="hh-mem", password="pw", keepalive_s=30)
    assert c.connect(clean_session=False, will=("st/hh-mem", b"off", 1, True)) is False
    session = broker.connects[0]
    assert (session["client_id"], session["user"], session["password"], session["clean"]) == ("hh-mem", "hh-mem", "pw", False)
    assert session["will"] == ("st/hh-mem", b"off", 1, True) and session["keepalive"] == 30
    assert c.subscribe([("down/#", 1)]) == [1]
    pid = c.publish("down/x", b"hello", qos=1)
    assert pid > 0 and c.inflight == 1
    got = c.poll(0)
    assert got == [("down/x", b"hello", False)] and c.inflight == 0
    assert c.publish("down/x", "text", qos=0) == 0
    assert c.poll(0) == [("down/x", b"text", False)]
    c.close()
    assert not c.connected
    with raises(MQTTDisconnected):
        c.publish("down/x", b"late")


def test_refused_connection_carries_the_connack_code():
    clock = FakeClock()
    broker = FakeBroker(clock)
    broker.refuse = 5
    c = client_on(broker, clock)
    with raises(MQTTConnectError) as caught:
        c.connect()
    assert getattr(caught.value, "code", None) == 5 and "not authorized" in str(caught.value)
    assert not c.connected
    broker.refuse = 0
    broker.down = True
    with raises(MQTTDisconnected):
        c.connect()


def test_inflight_window_and_redelivery_with_dup_after_reconnect():
    clock = FakeClock()
    broker = FakeBroker(clock)
    broker.hold_acks = True
    c = client_on(broker, clock, max_inflight=3)
    c.connect(clean_session=False)
    for i in range(3):
        c.publish("up/r", bytes([i]), qos=1)
    with raises(MQTTBusy):
        c.publish("up/r", b"4", qos=1)
    ids = [m[0] for m in c._inflight]
    broker.drop()
    with raises(MQTTDisconnected):
        c.poll(0)
    assert not c.connected and c.inflight == 3  # kept for the next connection
    broker.hold_acks = False
    c.connect(clean_session=False)
    dups = [m for m in broker.published if m[4]]
    assert [m[1] for m in dups] == [b"\x00", b"\x01", b"\x02"]  # again, in order, with DUP
    c.poll(0)
    assert c.inflight == 0 and c._inflight == [] and len(ids) == 3


def test_keepalive_pings_and_a_silent_broker_is_dropped():
    clock = FakeClock()
    broker = FakeBroker(clock)
    c = client_on(broker, clock, keepalive_s=10)
    c.connect()
    c.poll(0)
    clock.advance(10000)
    c.poll(0)  # due: PINGREQ, and the PINGRESP comes back at once
    assert broker.sent[-1] == b"\xc0\x00" and c.connected
    broker.mute = True
    clock.advance(10000)
    c.poll(0)  # PINGREQ again, no answer this time
    with raises(MQTTDisconnected):
        for _ in range(100):
            c.poll(500)
    assert not c.connected


def test_malformed_bytes_from_the_broker_drop_the_connection():
    clock = FakeClock()
    broker = FakeBroker(clock)
    c = client_on(broker, clock)
    c.connect()
    conn = broker.client
    assert conn is not None
    conn.deliver(b"\xf0\x00")  # reserved packet type
    with raises(MQTTDisconnected):
        c.poll(0)
    assert not c.connected


# -- against a real Mosquitto --------------------------------------------------------------------


def collect(client, want, timeout_ms=3000):
    clock = RealClock()
    got = []  # type: list
    start = clock.ticks_ms()
    while len(got) < want and clock.ticks_ms() - start < timeout_ms:
        got += client.poll(100)
    return got


def settle(client, timeout_ms=3000):
    clock = RealClock()
    got = []  # type: list
    start = clock.ticks_ms()
    while client.inflight and clock.ticks_ms() - start < timeout_ms:
        got += client.poll(100)
    assert client.inflight == 0, "no PUBACK within %d ms" % timeout_ms
    return got


def test_publish_round_trip_through_mosquitto():
    port = mqtt_port()
    name = unique("mpy-rt")
    c = MQTTClient(netio.Network(), RealClock(), name, "127.0.0.1", port, timeout_ms=3000)
    try:
        assert c.connect(clean_session=True) is False and c.connected
        topic = "test/%s" % name
        assert c.subscribe([(topic, 1)]) == [1]
        assert c.publish(topic, b"hello", qos=1) > 0 and c.inflight == 1
        got = collect(c, 1) + settle(c)
        assert got == [(topic, b"hello", False)], got
        payload = bytes(range(256)) * 20  # 5 KiB: header and payload written apart, read in pieces
        c.publish(topic, payload, qos=1)
        got = collect(c, 1) + settle(c)
        assert got == [(topic, payload, False)], len(got)
        assert c.publish(topic, "qos0", qos=0) == 0
        assert collect(c, 1) == [(topic, b"qos0", False)]
        c.close()
        assert not c.connected
    finally:
        c.close()


def test_netio_waits_reads_and_sees_the_peer_hang_up():
    port = mqtt_port()
    clock = RealClock()
    conn = netio.connect("127.0.0.1", port, 2000)
    try:
        start = clock.ticks_ms()
        assert conn.read(16, 100) == b""  # nothing comes before a CONNECT
        assert 50 <= clock.ticks_ms() - start < 2000
        conn.write(b"\xf0\x00")  # a reserved packet type: Mosquitto hangs up
        with raises(OSError) as caught:
            for _ in range(50):
                conn.read(16, 100)
        assert netio._errno(caught.value) == errno.ECONNRESET, caught.value
    finally:
        conn.close()
    conn.close()  # harmless twice
    with raises(OSError) as caught:
        conn.read(1, 0)
    assert netio._errno(caught.value) == errno.EBADF
