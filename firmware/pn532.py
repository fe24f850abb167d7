"""PN532 driver over HSU (UART), per NXP's PN532 User Manual UM0701-02 (Rev. 02).

MicroPython-compatible: imports only firmware.reader and builtins (the UART and the
clock are firmware.hal objects passed in); annotations only, no typing at run time.

Manual sections used:
* 6.2.1.1 normal information frame, 6.2.1.2 extended information frame (LEN > 255),
  6.2.1.3 ACK, 6.2.1.4 NACK (only ever sent by the host), 6.2.1.5 error frame,
  6.2.1.6 preamble/postamble (any number of 0x00: skipped here like noise);
* 6.2.2 dialog: command, ACK, response; an ACK from the host aborts the command in
  progress; 6.2.3: a host that sees no ACK resends the command;
* 7.1 error codes of the status byte (status & 0x3F; bit 6 MI, bit 7 NAD);
* 7.2.2 GetFirmwareVersion, 7.2.10 SAMConfiguration, 7.2.11 PowerDown (waking the
  HSU: 0x55 0x55 and zeros, then SAMConfiguration), 7.3.1 RFConfiguration (CfgItem
  0x05 MaxRetries), 7.3.5 InListPassiveTarget, 7.3.8 InDataExchange.

MIFARE Classic commands inside InDataExchange: 0x60/0x61 authenticate with key A/B
(block, key, the last 4 UID bytes), 0x30 read, 0xA0 write 16 bytes.

Status bytes become reader errors: 0x14 AuthFailed; 0x01 (the target did not answer:
gone, or halted after a failed authentication) and 0x2B (card disappeared) CardLost;
anything else PN532StatusError with the code and its name from the 7.1 table. A
MIFARE read/write refused by the access bits comes back as 0x13 (the card's 4-bit
NAK is not a valid frame; libnfc's mifare.c documents the same observation).

Timeouts use clock.ticks_ms() differences; a wait longer than any timeout is taken
as a wrapped tick counter and ends the wait.
"""

from firmware.reader import AuthFailed, CardLost, ReaderError, ReaderProtocolError, ReaderTimeout

TFI_HOST = 0xD4
"""Frame identifier of frames from the host controller to the PN532."""

TFI_PN532 = 0xD5
"""Frame identifier of frames from the PN532 to the host controller."""

TFI_ERROR = 0x7F
"""The single data byte of the application-level error frame."""

ACK = bytes([0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00])
"""ACK frame (6.2.1.3): 'your frame arrived'; from the host it aborts a command."""

NACK = bytes([0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00])
"""NACK frame (6.2.1.4): the host asks the PN532 to repeat its last response."""

ERROR_FRAME = bytes([0x00, 0x00, 0xFF, 0x01, 0xFF, TFI_ERROR, 0x81, 0x00])
"""Error frame (6.2.1.5): the PN532 found a syntax error at application level."""

HSU_WAKEUP = bytes([0x55, 0x55]) + bytes(14)
"""HSU wake-up preamble sent before the first command after power-down."""

MAX_DATA = 265
"""Largest LEN (TFI + data) the PN532 firmware handles (6.2.1.2)."""

CMD_GET_FIRMWARE_VERSION = 0x02
CMD_SAM_CONFIGURATION = 0x14
CMD_RF_CONFIGURATION = 0x32
CMD_IN_DATA_EXCHANGE = 0x40
CMD_IN_LIST_PASSIVE_TARGET = 0x4A

RF_CFG_MAX_RETRIES = 0x05
"""RFConfiguration item: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation."""

MIFARE_AUTH_A = 0x60
MIFARE_AUTH_B = 0x61
MIFARE_READ = 0x30
MIFARE_WRITE = 0xA0

STATUS_TIMEOUT = 0x01
"""The target has not answered (card gone, or halted)."""

STATUS_INVALID_FRAME = 0x13
"""MIFARE: the card answered with a NAK (libnfc: read/write refused by access bits)."""

STATUS_MIFARE_AUTH = 0x14
"""MIFARE authentication error."""

STATUS_CARD_DISAPPEARED = 0x2B
"""The card previously activated has disappeared."""

# Section 7.1 error table, names in short: one string, which stays in flash (a dict would take ~1 KB of heap).
STATUS_NAMES = """
01 timeout: the target has not answered
02 CRC error
03 parity error
04 erroneous bit count during anticollision/select
05 framing error during MIFARE operation
06 abnormal bit collision during anticollision
07 communication buffer size insufficient
09 RF buffer overflow
0A RF field not switched on in time by the counterpart
0B RF protocol error
0D overheating: antenna drivers switched off
0E internal buffer overflow
10 invalid parameter
12 DEP: command not supported by the target
13 data format does not match the specification (MIFARE NAK)
14 MIFARE authentication error
23 wrong UID check byte
25 DEP: invalid device state
26 operation not allowed in this configuration
27 command not acceptable in the current context
29 the target has been released by the initiator
2A card ID mismatch: the card has been exchanged
2B the card previously activated has disappeared
2C NFCID3 mismatch
2D over-current event
2E NAD missing in DEP frame
"""


def status_name(code: int) -> str:
    """The 7.1 table's name of a status code."""
    i = STATUS_NAMES.find("\n%02X " % code)
    return STATUS_NAMES[i + 4 : STATUS_NAMES.find("\n", i + 4)] if i >= 0 else "unknown error"


class PN532StatusError(ReaderError):
    """The PN532 reported an error in a status byte (manual section 7.1)."""

    def __init__(self, code: int, name: str = "") -> None:
        self.code = code
        self.name = name or status_name(code)
        super().__init__("PN532 status 0x%02X: %s" % (code, self.name))


def _checksum(data) -> int:
    """The byte that makes the sum of data plus itself 0 modulo 256."""
    return (-sum(data)) & 0xFF


def build_information_frame(tfi: int, body: bytes) -> bytes:
    """A normal (LEN <= 255) or extended information frame around TFI + body."""
    data = bytes([tfi]) + bytes(body)
    n = len(data)
    if n > MAX_DATA:
        raise ValueError("frame data too long: %d bytes" % n)
    if n <= 0xFF:
        head = bytes([0x00, 0x00, 0xFF, n, _checksum((n,))])
    else:
        lenm, lenl = n >> 8, n & 0xFF
        head = bytes([0x00, 0x00, 0xFF, 0xFF, 0xFF, lenm, lenl, _checksum((lenm, lenl))])
    return head + data + bytes([_checksum(data), 0x00])


def build_frame(cmd: int, params: bytes = b"") -> bytes:
    """A host-to-PN532 command frame: 00 00 FF LEN LCS D4 CMD params DCS 00."""
    return build_information_frame(TFI_HOST, bytes([cmd]) + bytes(params))


EV_ACK = "ack"
EV_NACK = "nack"
EV_ERROR = "error"
EV_FRAME = "frame"
EV_BAD = "bad"


class Event:
    """One thing FrameParser recognised: ack, nack, error (frame), frame, or bad."""

    def __init__(self, kind: str, tfi: int = -1, code: int = -1, data: bytes = b"", why: str = "") -> None:
        self.kind = kind
        self.tfi = tfi
        self.code = code
        self.data = data
        self.why = why

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            # A builtin on every port (py/modbuiltins.c); the ESP32 stubs leave it out.
            return NotImplemented  # pyright: ignore[reportUndefinedVariable]
        return (self.kind, self.tfi, self.code, self.data, self.why) == (
            other.kind,
            other.tfi,
            other.code,
            other.data,
            other.why,
        )

    def __repr__(self) -> str:
        if self.kind == EV_FRAME:
            return "Event(frame tfi=0x%02X code=0x%02X data=%r)" % (self.tfi, self.code, self.data)
        if self.kind == EV_BAD:
            return "Event(bad %s)" % self.why
        return "Event(%s)" % self.kind


class FrameParser:
    """Incremental frame parser: feed() bytes, get Events; skips noise between frames.

    A frame with a wrong LCS or DCS gives a 'bad' event. After a bad LCS the parser
    resynchronises one byte later (the length cannot be trusted); after a bad DCS it
    skips the frame (the length was checked).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.noise = 0

    def reset(self) -> None:
        """Forget buffered bytes and the noise count."""
        self._buf = bytearray()
        self.noise = 0

    def in_frame(self) -> bool:
        """Whether a start code has arrived whose frame is not complete yet."""
        return self._buf.find(b"\x00\xff") >= 0

    def feed(self, data: bytes) -> list:
        """Add bytes; return the events now complete, in order."""
        self._buf.extend(data)
        events: list = []
        while True:
            ev = self._parse_one()
            if ev is None:
                return events
            events.append(ev)

    def needed(self) -> int:
        """A lower bound (>= 1) on the bytes still missing for the next event."""
        buf = self._buf
        i = buf.find(b"\x00\xff")
        if i < 0:
            return 1
        have = len(buf) - i
        if have < 4:
            return 4 - have
        ln, lcs = buf[i + 2], buf[i + 3]
        if ln == 0xFF and lcs == 0xFF:
            if have < 7:
                return 7 - have
            return max(1, 7 + buf[i + 4] * 256 + buf[i + 5] + 1 - have)
        return max(1, 4 + ln + 1 - have)

    def _consume(self, n: int) -> None:
        """Drop the first n buffered bytes (MicroPython bytearrays lack del slices)."""
        self._buf = self._buf[n:]

    def _skip(self, n: int) -> None:
        """Drop n bytes that belong to no frame, counting the non-zero ones as noise."""
        if n <= 0:
            return
        # Zeros are preambles and postambles (6.2.1.6); anything else is line noise.
        for b in self._buf[:n]:
            if b:
                self.noise += 1
        self._consume(n)

    def _parse_one(self):
        """The next event from the buffer, or None when more bytes are needed."""
        if not self._sync():
            return None
        head = self._header()
        if head is None or isinstance(head, Event):
            return head
        return self._body(head[0], head[1])

    def _sync(self) -> bool:
        """Drop bytes before the first start code 00 FF; whether there is one."""
        buf = self._buf
        i = buf.find(b"\x00\xff")
        if i < 0:
            # Keep a trailing 0x00: it may start the next start code.
            self._skip(len(buf) - (1 if buf and buf[-1] == 0 else 0))
            return False
        self._skip(i)
        return True

    def _header(self):
        """ACK/NACK/bad-LCS Event, (length, header size), or None when incomplete."""
        buf = self._buf
        if len(buf) < 4:
            return None
        ln, lcs = buf[2], buf[3]
        if ln == 0x00 and lcs == 0xFF:
            self._consume(4)
            return Event(EV_ACK)
        if ln == 0xFF and lcs == 0x00:
            self._consume(4)
            return Event(EV_NACK)
        if ln == 0xFF and lcs == 0xFF:
            if len(buf) < 7:
                return None
            length, lsum, size = buf[4] * 256 + buf[5], buf[4] + buf[5] + buf[6], 7
        else:
            length, lsum, size = ln, ln + lcs, 4
        if lsum & 0xFF or length == 0 or length > MAX_DATA:
            # The length cannot be trusted: resynchronise one byte later.
            self._consume(1)
            return Event(EV_BAD, why="LCS" if lsum & 0xFF else "length")
        return (length, size)

    def _body(self, length: int, size: int):
        """The frame after a valid header: frame, error or bad-DCS Event, or None."""
        end = size + length
        if len(self._buf) < end + 1:
            return None
        body = bytes(self._buf[size:end])
        dcs = self._buf[end]
        self._consume(end + 1)
        if (sum(body) + dcs) & 0xFF:
            return Event(EV_BAD, why="DCS")
        if length == 1 and body[0] == TFI_ERROR:
            return Event(EV_ERROR)
        if length < 2:
            return Event(EV_BAD, why="length")
        return Event(EV_FRAME, body[0], body[1], body[2:])


def _raise_status(status: int) -> None:
    """Raise the reader error for a non-zero InDataExchange status byte."""
    code = status & 0x3F
    if code == 0:
        return
    if code == STATUS_MIFARE_AUTH:
        raise AuthFailed("MIFARE authentication failed (PN532 status 0x14)")
    if code in (STATUS_TIMEOUT, STATUS_CARD_DISAPPEARED):
        raise CardLost("card stopped answering (PN532 status 0x%02X)" % code)
    raise PN532StatusError(code)


class PN532:  # hal.Reader
    """A PN532 on a UART at 115200 8N1, selecting one ISO 14443-A card at a time.

    timeout_ms bounds the wait for each ACK and, by default, for each response
    (response_timeout_ms); retries bounds resends of an unacknowledged command and
    NACKs sent to get a garbled response repeated. Counters frames_sent and
    frames_received count every frame written / every well-formed frame read
    (ACK, NACK and error frames included).
    """

    def __init__(self, uart, clock, timeout_ms: int = 100, retries: int = 2, response_timeout_ms: int = 0) -> None:
        self.uart = uart
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.response_timeout_ms = response_timeout_ms or timeout_ms
        self.retries = retries
        self.frames_sent = 0
        self.frames_received = 0
        self._parser = FrameParser()
        self._events: list = []
        self._nacks = 0
        self._tg = 1

    # -- public commands -------------------------------------------------------------

    def start(self, passive_retries: int = 1) -> None:
        """Bring the reader up: wake-up, SAMConfiguration, finite passive retries."""
        self.wakeup()
        self.set_max_retries(passive_retries)

    def wakeup(self) -> None:
        """Wake the PN532 from HSU power-down, then SAMConfiguration normal mode."""
        self.uart.write(HSU_WAKEUP)
        self.sam_configuration()

    def sam_configuration(self) -> None:
        """SAMConfiguration: normal mode (no SAM), timeout 1 s, IRQ pin used."""
        self._command(CMD_SAM_CONFIGURATION, b"\x01\x14\x01")

    def get_firmware_version(self) -> tuple:
        """(IC, Ver, Rev, Support); a PN532 v1.6 answers (0x32, 1, 6, 7)."""
        data = self._command(CMD_GET_FIRMWARE_VERSION)
        if len(data) != 4:
            raise ReaderProtocolError("GetFirmwareVersion: %d data bytes" % len(data))
        return (data[0], data[1], data[2], data[3])

    def set_max_retries(self, passive_activation: int) -> None:
        """RFConfiguration MaxRetries: how often InListPassiveTarget retries (0xFF: forever)."""
        if not 0 <= passive_activation <= 0xFF:
            raise ValueError("passive_activation is one byte")
        self._command(CMD_RF_CONFIGURATION, bytes([RF_CFG_MAX_RETRIES, 0xFF, 0x01, passive_activation]))

    def select(self) -> bytes | None:
        """InListPassiveTarget, one 106 kbps type A target: its UID, or None.

        A PN532 retries forever by default (MxRtyPassiveActivation 0xFF): call
        set_max_retries() first, or select() without a card raises ReaderTimeout.
        """
        data = self._command(CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00")
        if not data or data[0] == 0:
            return None
        # Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1...
        if len(data) < 6 or len(data) < 6 + data[5]:
            raise ReaderProtocolError("InListPassiveTarget: short target data")
        self._tg = data[1]
        return bytes(data[6 : 6 + data[5]])

    def authenticate(self, block: int, key_type: str, key: bytes, uid: bytes) -> None:
        """MIFARE authentication of block's sector with key 'A' or 'B'."""
        if key_type not in ("A", "B"):
            raise ValueError("key_type must be 'A' or 'B'")
        if len(key) != 6 or len(uid) < 4:
            raise ValueError("key is 6 bytes, uid at least 4")
        cmd = MIFARE_AUTH_A if key_type == "A" else MIFARE_AUTH_B
        # The card's crypto is seeded with 4 UID bytes: the last 4 of a longer UID.
        self._exchange(bytes([cmd, block]) + bytes(key) + bytes(uid)[-4:])

    def read_block(self, block: int) -> bytes:
        """MIFARE READ: 16 bytes of an authenticated sector's block."""
        data = self._exchange(bytes([MIFARE_READ, block]))
        if len(data) != 16:
            raise ReaderProtocolError("MIFARE read returned %d bytes" % len(data))
        return data

    def write_block(self, block: int, data: bytes) -> None:
        """MIFARE WRITE of 16 bytes."""
        if len(data) != 16:
            raise ValueError("a block is 16 bytes")
        self._exchange(bytes([MIFARE_WRITE, block]) + bytes(data))

    # -- the dialog (manual 6.2.2) ---------------------------------------------------------

    def _exchange(self, data_out: bytes) -> bytes:
        """InDataExchange with the selected target; the data after a zero status byte."""
        data = self._command(CMD_IN_DATA_EXCHANGE, bytes([self._tg]) + data_out)
        if not data:
            raise ReaderProtocolError("InDataExchange: no status byte")
        _raise_status(data[0])
        return bytes(data[1:])

    def _command(self, cmd: int, params: bytes = b"") -> bytes:
        """Send cmd, wait for its ACK and its response; the response data after the code."""
        early = self._send_until_acked(cmd, build_frame(cmd, params))
        if early is not None:
            return early
        return self._await_response(cmd)

    def _restart_input(self) -> None:
        """Drop stale bytes and parser state before a (re)transmission."""
        self.uart.flush_input()
        self._parser.reset()
        self._events = []

    def _write(self, frame: bytes) -> None:
        """Write one frame and count it."""
        self.uart.write(frame)
        self.frames_sent += 1

    def _is_response(self, ev, cmd: int) -> bool:
        """Whether ev is the information frame answering cmd."""
        return ev.kind == EV_FRAME and ev.tfi == TFI_PN532 and ev.code == cmd + 1

    def _send_until_acked(self, cmd: int, frame: bytes):
        """Send frame until ACKed (6.2.3); the response data if it came without an ACK."""
        why = "no ACK"
        for _ in range(self.retries + 1):
            self._restart_input()
            self._write(frame)
            deadline = self.clock.ticks_ms() + self.timeout_ms
            while True:
                ev = self._next_event(deadline)
                if ev is None:
                    break
                if ev.kind == EV_ACK:
                    return None
                if ev.kind == EV_NACK:
                    why = "NACK"
                    break
                if ev.kind == EV_ERROR:
                    raise ReaderProtocolError("PN532 error frame (syntax error) for command 0x%02X" % cmd)
                if self._is_response(ev, cmd):
                    # The ACK was lost on the wire but the answer is here: take it.
                    return ev.data
        if why == "NACK":
            raise ReaderProtocolError("command 0x%02X NACKed %d times" % (cmd, self.retries + 1))
        raise ReaderTimeout("no ACK for command 0x%02X after %d tries" % (cmd, self.retries + 1))

    def _await_response(self, cmd: int) -> bytes:
        """Wait for cmd's response; NACK garbled ones (bounded); abort on silence."""
        self._nacks = 0
        junk = False
        noise0 = self._parser.noise
        deadline = self.clock.ticks_ms() + self.response_timeout_ms
        while True:
            ev = self._next_event(deadline)
            if ev is not None and self._is_response(ev, cmd):
                return ev.data
            if ev is not None and ev.kind == EV_ERROR:
                raise ReaderProtocolError("PN532 error frame (syntax error) for command 0x%02X" % cmd)
            if ev is not None and ev.kind in (EV_ACK, EV_NACK, EV_FRAME):
                junk = junk or ev.kind != EV_ACK  # a stale frame: NACK it at the deadline
                continue
            if ev is None and not (junk or self._parser.noise > noise0 or self._parser.in_frame()):
                self._write(ACK)  # silence: abort the command (6.2.2)
                raise ReaderTimeout("no response to command 0x%02X" % cmd)
            self._ask_again(cmd)  # a bad frame, or noise then silence
            junk, noise0 = False, 0
            deadline = self.clock.ticks_ms() + self.response_timeout_ms

    def _ask_again(self, cmd: int) -> None:
        """NACK a garbled response (6.2.1.4), or abort and give up after retries NACKs."""
        if self._nacks >= self.retries:
            self._write(ACK)
            raise ReaderProtocolError("garbled response to command 0x%02X" % cmd)
        self._nacks += 1
        self._restart_input()
        self._write(NACK)

    def _next_event(self, deadline: int):
        """The next parsed event, or None once the clock passes deadline."""
        longest = max(self.timeout_ms, self.response_timeout_ms)
        while not self._events:
            left = deadline - self.clock.ticks_ms()
            # More than a whole timeout left means the tick counter wrapped: time is up.
            if left <= 0 or left > longest:
                return None
            chunk = self.uart.read(self._parser.needed(), left)
            if chunk:
                self._events = self._parser.feed(chunk)
        ev = self._events.pop(0)
        if ev.kind != EV_BAD:
            self.frames_received += 1
        return ev
