"""A small MQTT 3.1.1 client (OASIS Standard, 29 October 2014) for the handheld's sync.

MicroPython-compatible: imports nothing at all (the connection comes from a
firmware.netio.Network, the time from a firmware.hal.Clock); annotations only, no
typing at run time.

Two parts:

* a sans-IO codec: encode_*() build packets; PacketParser cuts a byte stream into
  (type, flags, body) packets (2.2: fixed header, remaining-length varint); decode_*()
  read the bodies the client receives. Malformed input raises MQTTProtocolError.
* MQTTClient: QoS 0 and 1 only (QoS 2 is neither sent nor subscribed to).

Spec sections used: 2.2.2 fixed-header flags (wrong ones are malformed), 2.2.3
remaining length (at most 4 bytes), 2.3.1 packet identifiers (non-zero), 3.1 CONNECT
(3.1.2.9: no password without a user name), 3.2 CONNACK return codes, 3.3 PUBLISH
(3.3.1.1: DUP only with QoS > 0; 3.3.2.1: no wildcards in a topic name), 3.4 PUBACK,
3.8 SUBSCRIBE, 3.9 SUBACK, 3.12/3.13 PINGREQ/PINGRESP, 3.1.2.10 keep alive, 4.4
redelivery with DUP after a reconnect with CleanSession 0, 4.6 in order, 4.7.3 topics
at least one character, no U+0000. Only what the sync loop uses: a handheld never
disconnects politely (its link drops, and the will says so), so there is no DISCONNECT.

Memory: a packet's body is read into one bytearray of its exact size (the parser
never joins chunks); a QoS 1 message is kept by reference (topic, payload) until its
PUBACK, never copied; a payload larger than a small threshold is written after its
header instead of being concatenated to it.
"""

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
# The packet types the handheld never sends nor takes (QoS 2, UNSUBSCRIBE, DISCONNECT) have no names:
# each name would take heap on the handheld.

MAX_REMAINING_LENGTH = 268435455
"""The largest remaining length four varint bytes can carry (2.2.3)."""

MAX_PACKET = 16384
"""Default limit on a received packet's remaining length (the body is allocated whole)."""

PINGREQ_PACKET = b"\xc0\x00"

CONNACK_CODES = (
    "connection accepted",
    "unacceptable protocol version",
    "client identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)
"""The CONNACK return codes' names, by code (3.2.2.3)."""

SUBACK_FAILURE = 0x80
"""A SUBACK return code: the broker refused that topic filter."""

_PROTOCOL = b"\x00\x04MQTT\x04"  # protocol name and level 4 (3.1.1)
_JOIN_MAX = 256  # payloads up to this size are sent in one write with their header


class MQTTError(Exception):
    """Base of the MQTT errors that are not OSErrors."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)


class MQTTProtocolError(MQTTError):
    """Bytes that are not a valid MQTT 3.1.1 packet (or not one a client may receive)."""


class MQTTConnectError(MQTTError):
    """The broker refused the connection: code is the CONNACK return code (1-5)."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.name = CONNACK_CODES[code] if 0 <= code < len(CONNACK_CODES) else "unknown return code"
        super().__init__("connection refused: %d %s" % (code, self.name))


class MQTTBusy(MQTTError):
    """max_inflight QoS 1 messages wait for their PUBACK: poll() and try again."""


class MQTTDisconnected(OSError):
    """The connection is gone (socket error, timeout, malformed packet, dead peer).

    The client has closed it and keeps its in-flight messages; connect() again.
    """

    def __init__(self, msg: str) -> None:
        super().__init__(msg)


# -- codec: encoding -----------------------------------------------------------------


def _utf8(s) -> bytes:
    """s as UTF-8 bytes (str is encoded, bytes are taken as they are)."""
    if isinstance(s, str):
        return s.encode("utf-8")
    return bytes(s)


def encode_length(n: int) -> bytes:
    """The remaining-length varint (2.2.3): 7 bits a byte, least significant first."""
    if n < 0 or n > MAX_REMAINING_LENGTH:
        raise ValueError("remaining length out of range: %d" % n)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(data) -> bytes:
    """A u16 length and the bytes (UTF-8 strings and binary data alike, 1.5.3)."""
    data = _utf8(data)
    if len(data) > 0xFFFF:
        raise ValueError("field longer than 65535 bytes")
    return bytes([len(data) >> 8, len(data) & 0xFF]) + data


def _u16(n: int) -> bytes:
    return bytes([(n >> 8) & 0xFF, n & 0xFF])


def _check_pid(pid: int) -> None:
    if not 0 < pid <= 0xFFFF:
        raise ValueError("packet identifier must be 1-65535, not %d" % pid)


def _check_topic_name(topic: bytes) -> None:
    """A topic name to publish to: not empty, no wildcards, no U+0000 (3.3.2.1, 4.7.3)."""
    if not topic or b"+" in topic or b"#" in topic or b"\x00" in topic:
        raise ValueError("invalid topic name %r" % topic)


def _packet(first: int, body) -> bytes:
    """Fixed header (type and flags byte, remaining length) and body."""
    return bytes([first]) + encode_length(len(body)) + bytes(body)


def encode_connect(client_id, clean_session: bool = True, keepalive_s: int = 0, user=None, password=None, will=None) -> bytes:
    """CONNECT (3.1); will is (topic, payload, qos, retain) or None."""
    if not 0 <= keepalive_s <= 0xFFFF:
        raise ValueError("keep alive must be 0-65535 s")
    if password is not None and user is None:
        raise ValueError("a password needs a user name (3.1.2.9)")
    flags = 0x02 if clean_session else 0
    payload = bytearray(_field(client_id))
    if will is not None:
        topic, message, qos, retain = will
        topic = _utf8(topic)
        _check_topic_name(topic)
        if qos not in (0, 1, 2):
            raise ValueError("will QoS must be 0, 1 or 2")
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload.extend(_field(topic))
        payload.extend(_field(message))
    if user is not None:
        flags |= 0x80
        payload.extend(_field(user))
    if password is not None:
        flags |= 0x40
        payload.extend(_field(password))
    body = bytearray(_PROTOCOL)
    body.append(flags)
    body.extend(_u16(keepalive_s))
    body.extend(payload)
    return _packet(CONNECT << 4, body)


def publish_header(topic, payload_len: int, qos: int = 0, retain: bool = False, dup: bool = False, pid: int = 0) -> bytes:
    """A PUBLISH packet up to its payload (3.3): fixed header, topic, packet id."""
    topic = _utf8(topic)
    _check_topic_name(topic)
    if qos not in (0, 1, 2):
        raise ValueError("QoS must be 0, 1 or 2")
    if qos:
        _check_pid(pid)
    elif dup or pid:
        raise ValueError("QoS 0 has neither DUP nor a packet identifier (3.3.1.1)")
    var = _field(topic) + (_u16(pid) if qos else b"")
    first = (PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    return bytes([first]) + encode_length(len(var) + payload_len) + var


def encode_publish(topic, payload, qos: int = 0, retain: bool = False, dup: bool = False, pid: int = 0) -> bytes:
    """A whole PUBLISH packet (3.3)."""
    payload = _utf8(payload)
    return publish_header(topic, len(payload), qos, retain, dup, pid) + payload


def encode_puback(pid: int) -> bytes:
    """PUBACK (3.4) for a QoS 1 PUBLISH received."""
    _check_pid(pid)
    return bytes([PUBACK << 4, 2]) + _u16(pid)


def encode_subscribe(pid: int, topics) -> bytes:
    """SUBSCRIBE (3.8): topics is a list of (topic filter, requested QoS)."""
    _check_pid(pid)
    if not topics:
        raise ValueError("SUBSCRIBE needs at least one topic filter")
    body = bytearray(_u16(pid))
    for topic, qos in topics:
        topic = _utf8(topic)
        if not topic or b"\x00" in topic:
            raise ValueError("invalid topic filter %r" % topic)
        if qos not in (0, 1, 2):
            raise ValueError("QoS must be 0, 1 or 2")
        body.extend(_field(topic))
        body.append(qos)
    return _packet((SUBSCRIBE << 4) | 0x02, body)


# -- codec: parsing ------------------------------------------------------------------


class PacketParser:
    """Incremental: feed() bytes, get the packets completed as (type, flags, body) tuples.

    body is a bytearray of exactly the remaining length. A packet longer than
    max_size, a remaining length over 4 bytes, a reserved packet type or wrong
    fixed-header flags raise MQTTProtocolError; the stream cannot be trusted after
    that: reset() before parsing another one.
    """

    def __init__(self, max_size: int = MAX_PACKET) -> None:
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        """Forget any partial packet."""
        self._first = -1  # the type-and-flags byte, -1 before it arrives
        self._length = 0  # the remaining length decoded so far
        self._shift = 0  # bits of it decoded so far
        self._body = None  # type: bytearray | None
        self._got = 0

    def needed(self) -> int:
        """A lower bound (>= 1) on the bytes missing for the next packet."""
        if self._body is not None:
            return len(self._body) - self._got
        return 2 if self._first < 0 else 1

    def feed(self, data) -> list:
        """Add bytes; return the packets now complete, in order."""
        packets = []  # type: list
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            body = self._body
            if body is not None:
                take = min(n - i, len(body) - self._got)
                body[self._got : self._got + take] = view[i : i + take]
                self._got += take
                i += take
                if self._got == len(body):
                    packets.append((self._first >> 4, self._first & 0x0F, body))
                    self.reset()
                continue
            b = view[i]
            i += 1
            if self._first < 0:
                _check_fixed_header(b)
                self._first = b
                continue
            if self._shift >= 28:
                raise MQTTProtocolError("remaining length longer than 4 bytes")
            self._length |= (b & 0x7F) << self._shift
            self._shift += 7
            if b & 0x80:
                continue
            if self._length > self.max_size:
                raise MQTTProtocolError("packet of %d bytes exceeds the limit of %d" % (self._length, self.max_size))
            if self._length == 0:
                packets.append((self._first >> 4, self._first & 0x0F, bytearray()))
                self.reset()
            else:
                self._body = bytearray(self._length)
        return packets


def _check_fixed_header(b: int) -> None:
    """Reserved types and flags are malformed (2.2.1, 2.2.2)."""
    ptype, flags = b >> 4, b & 0x0F
    if ptype == 0 or ptype == 15:
        raise MQTTProtocolError("reserved packet type %d" % ptype)
    if ptype == PUBLISH:
        if flags & 0x06 == 0x06:
            raise MQTTProtocolError("PUBLISH with QoS 3")
        return
    want = 0x02 if ptype in (6, 8, 10) else 0  # PUBREL, SUBSCRIBE, UNSUBSCRIBE
    if flags != want:
        raise MQTTProtocolError("packet type %d with flags 0x%X" % (ptype, flags))


def _expect_length(body, n: int, what: str) -> None:
    if len(body) != n:
        raise MQTTProtocolError("%s: %d bytes, not %d" % (what, len(body), n))


def _pid(body, off: int, what: str) -> int:
    pid = (body[off] << 8) | body[off + 1]
    if pid == 0:
        raise MQTTProtocolError("%s with packet identifier 0" % what)
    return pid


def decode_connack(body) -> tuple:
    """CONNACK (3.2): (session_present, return_code)."""
    _expect_length(body, 2, "CONNACK")
    if body[0] & 0xFE:
        raise MQTTProtocolError("CONNACK with reserved flags 0x%02X" % body[0])
    return (bool(body[0] & 1), body[1])


def decode_publish(flags: int, body) -> tuple:
    """PUBLISH (3.3): (topic, pid, payload, qos, retain, dup); pid is 0 for QoS 0."""
    qos = (flags >> 1) & 3
    if qos == 3:
        raise MQTTProtocolError("PUBLISH with QoS 3")
    if len(body) < 2:
        raise MQTTProtocolError("PUBLISH too short for its topic")
    tlen = (body[0] << 8) | body[1]
    off = 2 + tlen
    if len(body) < off + (2 if qos else 0):
        raise MQTTProtocolError("PUBLISH shorter than its topic and packet identifier")
    try:
        topic = bytes(body[2:off]).decode("utf-8")
    except (UnicodeError, ValueError):
        raise MQTTProtocolError("PUBLISH topic is not UTF-8")
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise MQTTProtocolError("PUBLISH with an invalid topic name")
    pid = 0
    if qos:
        pid = _pid(body, off, "PUBLISH")
        off += 2
    elif flags & 0x08:
        raise MQTTProtocolError("QoS 0 PUBLISH with DUP set")
    payload = bytes(memoryview(body)[off:])  # one copy, not two
    return (topic, pid, payload, qos, bool(flags & 1), bool(flags & 0x08))


def decode_puback(body) -> int:
    """PUBACK (3.4): the packet identifier."""
    _expect_length(body, 2, "PUBACK")
    return _pid(body, 0, "PUBACK")


def decode_suback(body) -> tuple:
    """SUBACK (3.9): (pid, [return code per topic filter]); 0x80 is a refusal."""
    if len(body) < 3:
        raise MQTTProtocolError("SUBACK without return codes")
    codes = list(body[2:])
    for c in codes:
        if c not in (0, 1, 2, SUBACK_FAILURE):
            raise MQTTProtocolError("SUBACK return code 0x%02X" % c)
    return (_pid(body, 0, "SUBACK"), codes)


def decode_pingresp(body) -> None:
    """PINGRESP (3.13): no body."""
    _expect_length(body, 0, "PINGRESP")


# -- client --------------------------------------------------------------------------


def _elapsed(clock, since: int) -> int:
    """Milliseconds since a tick; a negative difference (wrapped counter) counts as very long."""
    d = clock.ticks_ms() - since
    return d if d >= 0 else 1 << 30


class MQTTClient:
    """An MQTT 3.1.1 client with QoS 0 and 1, made for a sync loop on a handheld.

    network has connect(host, port, timeout_ms) giving an object with write(data),
    read(n, timeout_ms) and close() (firmware.netio); clock is a firmware.hal.Clock,
    the only time source. timeout_ms bounds the TCP connect, the CONNACK and the
    SUBACK waits. Every failure of the connection (socket error, timeout, malformed
    packet from the broker, missing PINGRESP) closes it and raises MQTTDisconnected;
    in-flight QoS 1 messages stay and are re-sent with DUP after connect().
    """

    def __init__(
        self,
        network,
        clock,
        client_id,
        host: str,
        port: int,
        user=None,
        password=None,
        keepalive_s: int = 30,
        max_inflight: int = 8,
        timeout_ms: int = 5000,
        max_packet: int = MAX_PACKET,
    ) -> None:
        self.network = network
        self.clock = clock
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive_ms = keepalive_s * 1000
        self.max_inflight = max_inflight
        self.timeout_ms = timeout_ms
        self._parser = PacketParser(max_packet)
        self._conn = None
        self._connected = False
        self._inflight = []  # type: list
        self._messages = []  # type: list
        self._suback = None  # type: tuple | None
        self._next_pid = 0
        self._last_sent = 0
        self._last_recv = 0
        self._ping_wait = False  # a PINGREQ waits for its PINGRESP
        self._ping_at = 0  # when that PINGREQ was sent

    # -- state ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a CONNACK accepted the current connection and nothing failed since."""
        return self._connected

    @property
    def inflight(self) -> int:
        """QoS 1 messages sent (or to re-send) whose PUBACK has not arrived."""
        return len(self._inflight)

    # -- connection ----------------------------------------------------------------

    def connect(self, clean_session: bool = False, will=None) -> bool:
        """Open the connection and wait for CONNACK; whether the broker had a session.

        will is (topic, payload, qos, retain) or None. With clean_session the
        in-flight messages are dropped (3.1.2.4: both ends discard the session);
        without, each is re-sent at once with DUP, oldest first (4.4). Raises
        MQTTConnectError when the broker refuses, MQTTDisconnected when the
        connection fails or no CONNACK comes within timeout_ms.
        """
        packet = encode_connect(self.client_id, clean_session, self.keepalive_ms // 1000, self.user, self.password, will)
        self._drop()
        try:
            self._conn = self.network.connect(self.host, self.port, self.timeout_ms)
        except OSError as e:
            raise MQTTDisconnected("cannot connect to %s:%d: %s" % (self.host, self.port, e))
        self._send(packet)
        self._last_recv = self.clock.ticks_ms()
        start = self._last_recv
        packets = []  # type: list
        while not packets:
            left = self.timeout_ms - _elapsed(self.clock, start)
            if left <= 0:
                self._fail("no CONNACK within %d ms" % self.timeout_ms)
            packets = self._read(left)
        ptype, _, body = packets[0]
        if ptype != CONNACK:
            self._fail("packet type %d before CONNACK" % ptype)
        try:
            session_present, code = decode_connack(body)
        except MQTTProtocolError as e:
            self._fail(str(e))
        if code:
            self._drop()
            raise MQTTConnectError(code)
        self._connected = True
        if clean_session:
            self._inflight = []
        else:
            for pid, topic, payload, retain in self._inflight:
                self._send_publish(topic, payload, 1, retain, True, pid)
        for p in packets[1:]:
            self._handle(p)
        return session_present

    def close(self) -> None:
        """Drop the connection abruptly (the broker publishes the will); keep the in-flight messages."""
        self._drop()

    # -- messages ------------------------------------------------------------------

    def publish(self, topic, payload, qos: int = 1, retain: bool = False) -> int:
        """Send a message; its packet identifier (0 for QoS 0).

        A QoS 1 message stays in flight until its PUBACK (which poll() reads); when
        max_inflight are waiting, MQTTBusy. payload (bytes or str) is kept by
        reference, not copied. If the write fails the message is still in flight:
        connect() re-sends it; MQTTDisconnected is raised all the same.
        """
        if qos not in (0, 1):
            raise ValueError("QoS must be 0 or 1")
        if not self._connected:
            raise MQTTDisconnected("not connected")
        topic = _utf8(topic)
        _check_topic_name(topic)
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        pid = 0
        if qos:
            if len(self._inflight) >= self.max_inflight:
                raise MQTTBusy("%d messages wait for PUBACK" % len(self._inflight))
            pid = self._new_pid()
            self._inflight.append((pid, topic, payload, retain))
        self._send_publish(topic, payload, qos, retain, False, pid)
        return pid

    def subscribe(self, topics: list) -> list:
        """Subscribe to [(topic filter, QoS 0 or 1)] and wait for SUBACK; its return codes.

        A code of SUBACK_FAILURE (0x80) means the broker refused that filter.
        Messages arriving meanwhile are kept for the next poll().
        """
        for _, qos in topics:
            if qos not in (0, 1):
                raise ValueError("QoS must be 0 or 1")
        if not self._connected:
            raise MQTTDisconnected("not connected")
        pid = self._new_pid()
        self._suback = None
        self._send(encode_subscribe(pid, topics))
        start = self.clock.ticks_ms()
        while self._suback is None:
            left = self.timeout_ms - _elapsed(self.clock, start)
            if left <= 0:
                self._fail("no SUBACK within %d ms" % self.timeout_ms)
            for p in self._read(left):
                self._handle(p)
        # _handle() set _suback; pyright keeps the loop's narrowing of it to None across that call.
        got_pid, codes = self._suback  # pyright: ignore[reportGeneralTypeIssues]
        self._suback = None
        if got_pid != pid:
            self._fail("SUBACK for packet %d, expected %d" % (got_pid, pid))
        if len(codes) != len(topics):
            self._fail("SUBACK with %d codes for %d filters" % (len(codes), len(topics)))
        return codes

    def poll(self, timeout_ms: int = 0) -> list:
        """Messages received, as [(topic, payload, retain)], waiting up to timeout_ms.

        Returns as soon as some packets were handled (then with every packet
        already waiting), or when timeout_ms passes. Answers QoS 1 messages with
        PUBACK, retires PUBACKed messages, sends PINGREQ when the keep-alive is due
        and raises MQTTDisconnected when a PINGRESP is a keep-alive late.
        """
        if not self._connected:
            raise MQTTDisconnected("not connected")
        start = self.clock.ticks_ms()
        while True:
            self._keepalive()
            if self._messages:
                break
            left = timeout_ms - _elapsed(self.clock, start)
            wait = max(0, min(left, self._keepalive_due()))
            packets = self._read(wait)
            rounds = 0
            while packets:
                for p in packets:
                    self._handle(p)
                rounds += 1
                if rounds >= 8:  # what is already waiting, within reason
                    break
                packets = self._read(0)
            if rounds:
                break
            if left <= 0:
                break
        messages, self._messages = self._messages, []
        return messages

    # -- internals -----------------------------------------------------------------

    def _drop(self) -> None:
        """Close the connection, keeping the in-flight messages."""
        conn, self._conn = self._conn, None
        self._connected = False
        self._ping_wait = False
        self._suback = None
        self._parser.reset()
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def _fail(self, why: str):  # unannotated: pyright infers NoReturn (typing.NoReturn is not on the board)
        """Close the connection and raise MQTTDisconnected(why)."""
        self._drop()
        raise MQTTDisconnected(why)

    def _send(self, data) -> None:
        if self._conn is None:
            raise MQTTDisconnected("not connected")
        try:
            self._conn.write(data)
        except OSError as e:
            self._fail("send failed: %s" % e)
        self._last_sent = self.clock.ticks_ms()

    def _send_publish(self, topic: bytes, payload, qos: int, retain: bool, dup: bool, pid: int) -> None:
        head = publish_header(topic, len(payload), qos, retain, dup, pid)
        if len(payload) <= _JOIN_MAX:
            packet = bytearray(head)
            packet.extend(payload)
            self._send(packet)
        else:
            self._send(head)
            self._send(payload)

    def _read(self, wait_ms: int) -> list:
        """Packets from one read of up to wait_ms (often none)."""
        if self._conn is None:
            raise MQTTDisconnected("not connected")
        try:
            data = self._conn.read(max(256, min(self._parser.needed(), 2048)), wait_ms)
        except OSError as e:
            self._fail("receive failed: %s" % e)
        if not data:
            return []
        self._last_recv = self.clock.ticks_ms()
        try:
            return self._parser.feed(data)
        except MQTTProtocolError as e:
            self._fail("malformed packet from the broker: %s" % e)
        return []

    def _handle(self, packet) -> None:
        """Act on one packet received after CONNACK."""
        ptype, flags, body = packet
        try:
            if ptype == PUBLISH:
                topic, pid, payload, qos, retain, _ = decode_publish(flags, body)
                if qos > 1:
                    raise MQTTProtocolError("QoS %d PUBLISH (only 0 and 1 are subscribed)" % qos)
                self._messages.append((topic, payload, retain))
                if qos:
                    self._send(encode_puback(pid))
            elif ptype == PUBACK:
                pid = decode_puback(body)
                for i, m in enumerate(self._inflight):
                    if m[0] == pid:
                        self._inflight.pop(i)
                        break
            elif ptype == SUBACK:
                self._suback = decode_suback(body)
            elif ptype == PINGRESP:
                decode_pingresp(body)
                self._ping_wait = False
            else:
                raise MQTTProtocolError("unexpected packet type %d" % ptype)
        except MQTTProtocolError as e:
            self._fail("broker: %s" % e)

    def _keepalive(self) -> None:
        """Send PINGREQ when due (3.1.2.10); fail when the last one got no PINGRESP in time."""
        ka = self.keepalive_ms
        if not ka:
            return
        if self._ping_wait:
            if _elapsed(self.clock, self._ping_at) >= ka:
                self._fail("no PINGRESP within %d ms" % ka)
            return
        # Quiet in either direction for a whole keep-alive: ask the broker.
        if _elapsed(self.clock, self._last_sent) >= ka or _elapsed(self.clock, self._last_recv) >= ka:
            self._send(PINGREQ_PACKET)
            self._ping_wait = True
            self._ping_at = self._last_sent

    def _keepalive_due(self) -> int:
        """Milliseconds until _keepalive() has something to do."""
        ka = self.keepalive_ms
        if not ka:
            return 1 << 30
        if self._ping_wait:
            return ka - _elapsed(self.clock, self._ping_at)
        return ka - max(_elapsed(self.clock, self._last_sent), _elapsed(self.clock, self._last_recv))

    def _new_pid(self) -> int:
        """The next packet identifier not in flight (1-65535, 2.3.1)."""
        busy = [m[0] for m in self._inflight]
        while True:
            self._next_pid = self._next_pid % 0xFFFF + 1
            if self._next_pid not in busy:
                return self._next_pid
