"""Hardware for the firmware's tests, on MicroPython (unix port) and CPython alike.

* DirFlash: firmware.hal.Flash over a folder, with power cuts at a chosen write;
  LfsFlash puts it on a real littlefs2 file system in RAM (MicroPython's os.VfsLfs2,
  the board's file system); flash_kinds() gives each kind the interpreter has.
* FakeClock (ticks only move when told, or when something waits) and RealClock.
* FakeDisplay, FakeKeypad.
* FakeCard (a MIFARE Classic 1K: 64 blocks, keys A/B and access bits enforced,
  halted after a failed authentication) and FakeReader (firmware.hal.Reader)
  that can lose the card after N block writes, or tear the last one; FakePN532, the
  far end of the PN532 driver's UART, with a FakeCard in its field.
* FakeBroker: an in-memory MQTT 3.1.1 broker behind a firmware.netio-like Network,
  for the client and the sync loop without sockets or wall time.

Only the firmware's interfaces (firmware/hal.py, firmware/reader.py, the Network
seam of firmware/netio.py) are implemented; nothing in firmware/ is changed for them.
"""

import errno
import gc
import os
import time

from firmware import hal, mqtt
from firmware.hal import Reader
from firmware.reader import AuthFailed, CardLost, ReaderError, ReaderTimeout
from protocol import access, mifare

# -- flash ---------------------------------------------------------------------------


class PowerCut(Exception):
    """The power went off during a flash write (raised where a write was cut)."""


class DirFlash(hal.Flash):
    """Flash as files in a folder: appends, and replacements through a temporary file and a rename.

    arm(n, mode) cuts the power at the n-th write from now (0: the next one):
    'before' (nothing written), 'torn' (half of an append, or a temporary file
    never renamed), 'after' (written, then the power went). Each cut raises PowerCut.
    """

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        try:
            os.mkdir(self.root)
        except OSError:
            pass
        self.writes = []  # type: list[str]
        self._cut_in = -1
        self._cut_mode = ""

    # -- power cuts ----------------------------------------------------------

    def arm(self, n: int, mode: str) -> None:
        if mode not in ("before", "torn", "after"):
            raise ValueError("mode is before, torn or after")
        self._cut_in = n
        self._cut_mode = mode

    def disarm(self) -> None:
        self._cut_in = -1

    def _next_write(self, what: str) -> str:
        self.writes.append(what)
        if self._cut_in < 0:
            return "ok"
        if self._cut_in > 0:
            self._cut_in -= 1
            return "ok"
        self._cut_in = -1
        return self._cut_mode

    # -- files ---------------------------------------------------------------

    def path(self, name: str) -> str:
        if not name or "/" in name or name.startswith("."):
            raise ValueError("flash file names are flat, got %r" % name)
        return self.root + "/" + name

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes | None:
        try:
            f = open(self.path(name), "rb")
        except OSError:
            return None
        try:
            f.seek(offset)
            return f.read() if size < 0 else f.read(size)
        finally:
            f.close()

    def size(self, name: str) -> int:
        try:
            return os.stat(self.path(name))[6]
        except OSError:
            return -1

    def _write(self, path: str, mode: str, data: bytes) -> None:
        with open(path, mode) as f:
            f.write(data)
            f.flush()
            fsync = getattr(os, "fsync", None)  # CPython; littlefs commits on close
            if fsync is not None:
                fsync(f.fileno())

    def append(self, name: str, data: bytes) -> None:
        cut = self._next_write("append:" + name)
        if cut == "before":
            raise PowerCut("before append to " + name)
        self._write(self.path(name), "ab", data if cut != "torn" else data[: max(1, len(data) // 2)])
        if cut != "ok":
            raise PowerCut("%s append to %s" % (cut, name))

    def replace(self, name: str, data) -> None:
        data = b"".join(hal.chunks(data))
        cut = self._next_write("replace:" + name)
        if cut == "before":
            raise PowerCut("before replace of " + name)
        tmp = self.path(name + ".tmp")
        if cut == "torn":  # the temporary file is torn; the rename never happens
            self._write(tmp, "wb", data[: len(data) // 2])
            raise PowerCut("torn replace of " + name)
        self._write(tmp, "wb", data)
        os.rename(tmp, self.path(name))
        if cut == "after":
            raise PowerCut("after replace of " + name)

    def truncate(self, name: str, size: int) -> None:
        # MicroPython's files have no truncate(): rewrite the kept part and rename over.
        cut = self._next_write("truncate:" + name)
        if cut == "before":
            raise PowerCut("before truncate of " + name)
        kept = self.read(name, 0, size) or b""
        tmp = self.path(name + ".tmp")
        self._write(tmp, "wb", kept)
        os.rename(tmp, self.path(name))
        if cut != "ok":
            raise PowerCut("%s truncate of %s" % (cut, name))

    def remove(self, name: str) -> None:
        cut = self._next_write("remove:" + name)
        if cut == "before":
            raise PowerCut("before remove of " + name)
        try:
            os.remove(self.path(name))
        except OSError:
            pass
        if cut != "ok":
            raise PowerCut("%s remove of %s" % (cut, name))

    # -- for tests: bytes as they are, no power switch -----------------------

    def raw(self, name: str) -> bytes:
        return self.read(name) or b""

    def put(self, name: str, data: bytes) -> None:
        with open(self.path(name), "wb") as f:
            f.write(data)

    def names(self) -> list:
        return sorted(os.listdir(self.root))


class RamBlockDevice:
    """A block device in RAM with MicroPython's extended block protocol (for os.VfsLfs2)."""

    def __init__(self, block_size: int = 512, blocks: int = 128) -> None:
        self.block_size = block_size
        self.data = bytearray(block_size * blocks)

    def readblocks(self, block: int, buf, offset: int = 0) -> None:
        start = block * self.block_size + offset
        buf[:] = self.data[start : start + len(buf)]

    def writeblocks(self, block: int, buf, offset=None) -> None:
        start = block * self.block_size + (offset or 0)
        self.data[start : start + len(buf)] = buf

    def ioctl(self, op: int, arg):
        if op == 4:  # block count
            return len(self.data) // self.block_size
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase
            return 0
        return None


_mounts = [0]


def has_littlefs() -> bool:
    return hasattr(os, "VfsLfs2") and hasattr(os, "mount")


class LfsFlash(DirFlash):
    """DirFlash on a fresh littlefs2 in RAM, mounted at /lfs-N (MicroPython only); close() unmounts."""

    def __init__(self) -> None:
        vfs_lfs2 = getattr(os, "VfsLfs2", None)
        mount = getattr(os, "mount", None)
        self._umount = getattr(os, "umount", None)
        assert vfs_lfs2 is not None and mount is not None and self._umount is not None, "no littlefs here"
        gc.collect()  # the block device wants 64 KiB in one piece
        bdev = RamBlockDevice()
        vfs_lfs2.mkfs(bdev)
        _mounts[0] += 1
        self.mount_point = "/lfs-%d" % _mounts[0]
        mount(vfs_lfs2(bdev), self.mount_point)
        DirFlash.__init__(self, self.mount_point)

    def close(self) -> None:
        if self._umount is not None:
            self._umount(self.mount_point)


class flash_kinds:
    """for kind, flash in flash_kinds(tmp): a DirFlash in a folder, then (MicroPython) one on littlefs.

    Each flash is fresh; the littlefs one is unmounted when the loop ends.
    """

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp

    def __iter__(self):
        yield "dir", DirFlash(self.tmp + "/flash-%s" % os.urandom(3).hex())
        if has_littlefs():
            flash = LfsFlash()
            try:
                yield "littlefs", flash
            finally:
                flash.close()


# -- clock, display, keypad ------------------------------------------------------------


class FakeClock(hal.Clock):
    """Ticks move only by advance() and sleep_ms(); wall time is start + ticks."""

    def __init__(self, start: int = 1790000000) -> None:
        self.start = start
        self.ms = 0

    def time(self) -> int:
        return self.start + self.ms // 1000

    def ticks_ms(self) -> int:
        return self.ms

    def sleep_ms(self, ms: int) -> None:
        self.advance(ms)

    def advance(self, ms: int) -> None:
        if ms > 0:
            self.ms += ms


class RealClock(hal.Clock):
    """The interpreter's own clock (time.ticks_ms on MicroPython, time.monotonic on CPython)."""

    def time(self) -> int:
        return int(time.time())

    def ticks_ms(self) -> int:
        ticks = getattr(time, "ticks_ms", None)
        if ticks is not None:
            return ticks()
        return int(time.monotonic() * 1000)

    def sleep_ms(self, ms: int) -> None:
        time.sleep(ms / 1000)


class FakeDisplay(hal.Display):
    def __init__(self) -> None:
        self.lines = []  # type: list
        self.screens = 0

    def show(self, lines: list) -> None:
        self.lines = list(lines)
        self.screens += 1

    def text(self) -> str:
        return "\n".join(self.lines)


class FakeKeypad(hal.Keypad):
    def __init__(self) -> None:
        self.queue = []  # type: list[str]

    def press(self, *keys: str) -> None:
        self.queue.extend(keys)

    def type(self, text: str) -> None:
        """'101' -> the keys 1, 0, 1."""
        self.queue.extend([c for c in text])

    def get_key(self) -> str | None:
        return self.queue.pop(0) if self.queue else None


# -- the card and the reader ---------------------------------------------------------------


class FakeCard:
    """MIFARE Classic 1K memory with the card's own rules.

    Authentication compares the key with the sector trailer (key A bytes 0-5, key B
    10-15) and the UID; a wrong one halts the card until it is selected again. Reads
    and writes need an authentication of the block's sector and the access bits'
    permission for the key used (protocol.mifare tables); a refusal halts the card.
    A trailer write keeps the parts (key A; access bits + GPB; key B) the key may not write.
    """

    def __init__(self, uid: bytes, blocks: list) -> None:
        self.uid = bytes(uid)
        self.blocks = [bytes(b) for b in blocks]
        self.halted = False
        self.sector = -1
        self.key_type = ""

    @classmethod
    def blank(cls, uid: bytes) -> "FakeCard":
        """As shipped: transport keys FF..FF and access bits, zeroed data, block 0 with the UID."""
        bcc = 0
        for b in uid:
            bcc ^= b
        trailer = mifare.make_trailer(mifare.DEFAULT_KEY, mifare.TRANSPORT_ACCESS, mifare.TRANSPORT_GPB, mifare.DEFAULT_KEY)
        blocks = []
        for block in range(mifare.BLOCKS):
            if block == 0:
                blocks.append(bytes(uid) + bytes([bcc, 0x08, 0x04, 0x00]) + bytes(range(0x62, 0x6A)))
            elif mifare.is_trailer(block):
                blocks.append(trailer)
            else:
                blocks.append(bytes(16))
        return cls(uid, blocks)

    def reset(self) -> None:
        self.halted = False
        self.sector = -1
        self.key_type = ""

    def halt(self) -> None:
        self.halted = True
        self.sector = -1
        self.key_type = ""

    def _conditions(self, sector: int):
        try:
            return access.decode_access_bits(self.blocks[mifare.trailer_of(sector)][6:9])
        except ValueError:
            return None  # inconsistent access bits block the sector

    def authenticate(self, block: int, key_type: str, key: bytes, uid: bytes) -> bool:
        sector = mifare.sector_of(block)
        trailer = self.blocks[mifare.trailer_of(sector)]
        expected = trailer[0:6] if key_type == "A" else trailer[10:16]
        conds = self._conditions(sector)
        if self.halted or bytes(key) != expected or bytes(uid) != self.uid or conds is None:
            self.halt()
            return False
        if key_type == "B" and access.key_b_readable(conds[3]):
            self.halt()  # key B that is readable cannot serve for authentication
            return False
        self.sector = sector
        self.key_type = key_type
        return True

    def _session(self, block: int):
        if self.halted or self.sector != mifare.sector_of(block):
            self.halt()
            return None
        return self._conditions(self.sector)

    def read_block(self, block: int) -> bytes | None:
        """16 bytes, or None for a NAK (the card halts)."""
        conds = self._session(block)
        if conds is None:
            return None
        data = self.blocks[block]
        if not mifare.is_trailer(block):
            if not access.data_allowed(conds[block % 4], "read", self.key_type):
                self.halt()
                return None
            return data
        cond = conds[3]
        bits = data[6:10] if access.trailer_allowed(cond, "access", "read", self.key_type) else bytes(4)
        key_b = data[10:16] if access.trailer_allowed(cond, "key_b", "read", self.key_type) else bytes(6)
        return bytes(6) + bits + key_b

    def write_block(self, block: int, data: bytes, n_bytes: int = 16) -> bool:
        """Store data (only its first n_bytes when the write is torn); False for a NAK."""
        conds = self._session(block)
        if conds is None or block == 0 or len(data) != 16:
            self.halt()
            return False
        old = self.blocks[block]
        if not mifare.is_trailer(block):
            if not access.data_allowed(conds[block % 4], "write", self.key_type):
                self.halt()
                return False
            new = bytes(data)
        else:
            out = bytearray(old)
            wrote = False
            for part, start, end in (("key_a", 0, 6), ("access", 6, 10), ("key_b", 10, 16)):
                if access.trailer_allowed(conds[3], part, "write", self.key_type):
                    out[start:end] = data[start:end]
                    wrote = True
            if not wrote:
                self.halt()
                return False
            new = bytes(out)
        self.blocks[block] = new[:n_bytes] + old[n_bytes:]
        return True


class FakeReader(Reader):
    """A contactless reader with at most one FakeCard in its field.

    pull_after(n): the card leaves the field right after n more block writes land
    (anything after them raises CardLost, select() finds no card); with tear=k it
    leaves during the write after those n instead, which stores only its first k
    bytes. dead=True: the reader does not answer (ReaderTimeout).
    """

    def __init__(self) -> None:
        self.card = None  # type: FakeCard | None
        self.dead = False
        self.started = 0
        self.writes_left = -1
        self.tear = 0
        self.counts = {"select": 0, "auth": 0, "read": 0, "write": 0}

    def tap(self, card: FakeCard) -> None:
        card.reset()
        self.card = card

    def remove(self) -> None:
        self.card = None

    def pull_after(self, writes: int, tear: int = 0) -> None:
        self.writes_left = writes
        self.tear = tear

    def _alive(self) -> None:
        if self.dead:
            raise ReaderTimeout("reader does not answer")

    def _card(self) -> FakeCard:
        self._alive()
        if self.card is None or self.card.halted:
            raise CardLost("card does not answer")
        return self.card

    def start(self) -> None:
        self._alive()
        self.started += 1

    def select(self) -> bytes | None:
        self._alive()
        self.counts["select"] += 1
        if self.card is None:
            return None
        self.card.reset()
        return self.card.uid

    def authenticate(self, block: int, key_type: str, key: bytes, uid: bytes) -> None:
        card = self._card()
        self.counts["auth"] += 1
        if not card.authenticate(block, key_type, key, uid):
            raise AuthFailed("authentication of block %d with key %s failed" % (block, key_type))

    def read_block(self, block: int) -> bytes:
        card = self._card()
        self.counts["read"] += 1
        data = card.read_block(block)
        if data is None:
            raise ReaderError("card refused to read block %d" % block)
        return data

    def write_block(self, block: int, data: bytes) -> None:
        card = self._card()
        self.counts["write"] += 1
        if self.writes_left == 0:  # only when tearing: the card goes during this write
            self.writes_left = -1
            card.write_block(block, data, self.tear)
            self.card = None
            raise CardLost("card left the field while writing block %d" % block)
        if not card.write_block(block, data):
            raise ReaderError("card refused to write block %d" % block)
        if self.writes_left > 0:
            self.writes_left -= 1
            if self.writes_left == 0 and not self.tear:
                self.writes_left = -1
                self.card = None  # gone right after this write


class FakePN532(hal.Uart):
    """The UART of a PN532 (HSU, UM0701-02) with a FakeCard in its field: the real driver's far end.

    Each command frame is ACKed and answered at once: SAMConfiguration, RFConfiguration,
    GetFirmwareVersion (v1.6), InListPassiveTarget (the card in the field, reset), and
    InDataExchange with MIFARE authenticate / read / write on the card; status 0x14 for a
    refused key, 0x13 for a refused read or write, 0x01 when no card answers. noise=b'...'
    is sent before the next answer; a NACK from the host gets the last answer again.
    """

    def __init__(self, clock) -> None:
        from firmware import pn532

        self.pn532 = pn532
        self.clock = clock
        self.card = None  # type: FakeCard | None
        self.parser = pn532.FrameParser()
        self.out = bytearray()
        self.last = b""
        self.noise = b""
        self.commands = []  # type: list[int]

    def write(self, data: bytes) -> None:
        for ev in self.parser.feed(bytes(data)):
            if ev.kind == self.pn532.EV_NACK:
                self.out.extend(self.last)
            elif ev.kind == self.pn532.EV_FRAME and ev.tfi == self.pn532.TFI_HOST:
                self.commands.append(ev.code)
                answer = bytes([ev.code + 1]) + self._answer(ev.code, ev.data)
                self.last = self.pn532.build_information_frame(self.pn532.TFI_PN532, answer)
                self.out.extend(self.pn532.ACK + self.noise + self.last)
                self.noise = b""

    def read(self, n: int, timeout_ms: int) -> bytes:
        if not self.out:
            self.clock.sleep_ms(max(timeout_ms, 1))
            return b""
        data = bytes(self.out[:n])
        self.out = self.out[n:]
        return data

    def flush_input(self) -> None:
        self.out = bytearray()

    def _answer(self, cmd: int, params: bytes) -> bytes:
        if cmd == self.pn532.CMD_GET_FIRMWARE_VERSION:
            return b"\x32\x01\x06\x07"
        if cmd == self.pn532.CMD_IN_LIST_PASSIVE_TARGET:
            if self.card is None:
                return b"\x00"
            self.card.reset()
            return bytes([1, 1, 0x00, 0x04, 0x08, len(self.card.uid)]) + self.card.uid
        if cmd == self.pn532.CMD_IN_DATA_EXCHANGE:
            card = self.card
            if card is None or card.halted:
                return b"\x01"
            op, block = params[1], params[2]
            if op in (self.pn532.MIFARE_AUTH_A, self.pn532.MIFARE_AUTH_B):
                key_type = "A" if op == self.pn532.MIFARE_AUTH_A else "B"
                return b"\x00" if card.authenticate(block, key_type, params[3:9], params[9:13]) else b"\x14"
            if op == self.pn532.MIFARE_READ:
                data = card.read_block(block)
                return b"\x13" if data is None else b"\x00" + data
            if op == self.pn532.MIFARE_WRITE:
                return b"\x00" if card.write_block(block, params[3:19]) else b"\x13"
            return b"\x27"
        return b""  # SAMConfiguration, RFConfiguration


# -- an MQTT broker in memory -----------------------------------------------------------


def _u16(body, off: int) -> int:
    return (body[off] << 8) | body[off + 1]


def _string(body, off: int) -> tuple:
    n = _u16(body, off)
    return bytes(body[off + 2 : off + 2 + n]), off + 2 + n


def decode_connect(body) -> dict:
    """The fields of a CONNECT body (3.1), as a broker reads them."""
    name, off = _string(body, 0)
    assert name == b"MQTT" and body[off] == 4, "not MQTT 3.1.1"
    flags = body[off + 1]
    out = {"clean": bool(flags & 0x02), "keepalive": _u16(body, off + 2), "will": None, "user": None, "password": None}  # type: dict
    client_id, off = _string(body, off + 4)
    out["client_id"] = client_id.decode()
    if flags & 0x04:
        topic, off = _string(body, off)
        message, off = _string(body, off)
        out["will"] = (topic.decode(), message, (flags >> 3) & 3, bool(flags & 0x20))
    if flags & 0x80:
        user, off = _string(body, off)
        out["user"] = user.decode()
    if flags & 0x40:
        password, off = _string(body, off)
        out["password"] = password.decode()
    assert off == len(body), "CONNECT has trailing bytes"
    return out


def decode_subscribe(body) -> tuple:
    """(pid, [(filter, qos)]) of a SUBSCRIBE body (3.8)."""
    pid = _u16(body, 0)
    off = 2
    topics = []
    while off < len(body):
        topic, off = _string(body, off)
        topics.append((topic.decode(), body[off]))
        off += 1
    return pid, topics


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching with + and # (4.7)."""
    p = pattern.split("/")
    t = topic.split("/")
    for i in range(len(p)):
        if p[i] == "#":
            return True
        if i >= len(t) or (p[i] != "+" and p[i] != t[i]):
            return False
    return len(p) == len(t)


class FakeConnection:
    """The client's end of one connection to a FakeBroker (write, read, close as netio's)."""

    def __init__(self, broker: "FakeBroker", clock) -> None:
        self.broker = broker
        self.clock = clock
        self.inbox = bytearray()
        self.parser = mqtt.PacketParser()
        self.open = True
        self.reset = False  # the broker dropped us
        self.session = None  # type: dict | None

    def write(self, data) -> None:
        if not self.open:
            raise OSError(errno.EBADF, "closed")
        if self.reset:
            raise OSError(errno.EPIPE, "broken pipe")
        self.broker.sent.append(bytes(data))
        for packet in self.parser.feed(bytes(data)):
            self.broker.handle(self, packet)

    def read(self, n: int, timeout_ms: int) -> bytes:
        if not self.open:
            raise OSError(errno.EBADF, "closed")
        if not self.inbox:
            if self.reset:
                raise OSError(errno.ECONNRESET, "connection reset")
            self.clock.sleep_ms(max(timeout_ms, 1))  # time passes while nothing comes
            return b""
        data = bytes(self.inbox[:n])
        self.inbox = self.inbox[n:]
        return data

    def close(self) -> None:
        if self.open:
            self.open = False
            self.broker.closed(self)

    def deliver(self, data: bytes) -> None:
        self.inbox.extend(data)


class FakeBroker:
    """An MQTT 3.1.1 broker in memory, enough for one client (and a test playing the hub).

    It answers CONNECT (refuse=code makes it refuse), SUBSCRIBE, QoS 0/1 PUBLISH
    (hold_acks=True withholds PUBACKs), PINGREQ (mute=True stops PINGRESPs), keeps
    retained messages and every PUBLISH received, routes to subscriptions, and
    publishes a dropped client's will. down=True refuses TCP connections; drop()
    resets the current one.
    """

    def __init__(self, clock) -> None:
        self.clock = clock
        self.down = False
        self.refuse = 0
        self.hold_acks = False
        self.mute = False
        self.connections = []  # type: list[FakeConnection]
        self.connects = []  # type: list[dict]
        self.published = []  # type: list[tuple]
        self.retained = {}  # type: dict
        self.sent = []  # type: list[bytes]
        self.held = []  # type: list[tuple]
        self._pid = 0

    # -- the Network seam ----------------------------------------------------

    def connect(self, host: str, port: int, timeout_ms: int) -> FakeConnection:
        if self.down:
            self.clock.sleep_ms(1)
            raise OSError(errno.ECONNREFUSED, "connection refused")
        conn = FakeConnection(self, self.clock)
        self.connections.append(conn)
        return conn

    @property
    def client(self) -> FakeConnection | None:
        live = [c for c in self.connections if c.open and not c.reset]
        return live[-1] if live else None

    # -- packets from clients ------------------------------------------------

    def handle(self, conn: FakeConnection, packet) -> None:
        ptype, flags, body = packet
        if ptype == mqtt.CONNECT:
            session = decode_connect(body)
            session["subs"] = []
            self.connects.append(session)
            conn.session = session
            conn.deliver(bytes([mqtt.CONNACK << 4, 2, 0, self.refuse]))
        elif ptype == mqtt.SUBSCRIBE:
            pid, topics = decode_subscribe(body)
            if conn.session is not None:
                conn.session["subs"] += [t for t, _q in topics]
            granted = bytes([min(q, 1) for _t, q in topics])
            conn.deliver(bytes([mqtt.SUBACK << 4, 2 + len(topics), pid >> 8, pid & 0xFF]) + granted)
            for topic in sorted(self.retained):
                for t, q in topics:
                    if topic_matches(t, topic):
                        self._send(conn, topic, self.retained[topic], min(q, 1), True)
        elif ptype == mqtt.PUBLISH:
            topic, pid, payload, qos, retain, dup = mqtt.decode_publish(flags, body)
            self.published.append((topic, payload, qos, retain, dup))
            if retain:
                self.retained[topic] = payload
            if qos:
                if self.hold_acks:
                    self.held.append((conn, pid))
                else:
                    conn.deliver(mqtt.encode_puback(pid))
            self._route(topic, payload, qos)
        elif ptype == mqtt.PUBACK:
            pass
        elif ptype == mqtt.PINGREQ:
            if not self.mute:
                conn.deliver(b"\xd0\x00")
        elif ptype == 14:  # DISCONNECT: the client sends none (a handheld's link just drops), but a broker drops the will
            if conn.session is not None:
                conn.session["will"] = None
        else:
            raise AssertionError("unexpected packet type %d from the client" % ptype)

    def closed(self, conn: FakeConnection) -> None:
        """A client closed its end without DISCONNECT: publish its will."""
        session = conn.session
        if session is not None and session["will"] is not None:
            topic, message, qos, retain = session["will"]
            session["will"] = None
            if retain:
                self.retained[topic] = message
            self.published.append((topic, message, qos, retain, False))

    # -- what a test does as the broker (or as the hub behind it) ---------------

    def release_acks(self) -> None:
        for conn, pid in self.held:
            conn.deliver(mqtt.encode_puback(pid))
        self.held = []

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """A message from another client (the hub) to whoever subscribed."""
        self._route(topic, payload, qos)

    def drop(self) -> None:
        """Reset the current connection (a broker restart, a lost link)."""
        conn = self.client
        if conn is not None:
            conn.reset = True
            self.closed(conn)

    def messages(self, prefix: str) -> list:
        """(topic, payload, qos, retain, dup) of the PUBLISHes received under a topic prefix."""
        return [m for m in self.published if m[0].startswith(prefix)]

    def _route(self, topic: str, payload: bytes, qos: int) -> None:
        for conn in self.connections:
            if not conn.open or conn.reset or conn.session is None:
                continue
            for t in conn.session["subs"]:
                if topic_matches(t, topic):
                    self._send(conn, topic, payload, qos, False)
                    break

    def _send(self, conn: FakeConnection, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        pid = 0
        if qos:
            self._pid = self._pid % 0xFFFF + 1
            pid = self._pid
        conn.deliver(mqtt.encode_publish(topic, payload, qos, retain, False, pid))
