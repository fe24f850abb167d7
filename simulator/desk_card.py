"""A virtual ACR122-class desk reader with a MIFARE Classic 1K in its field, behind vpcd.

vsmartcard's vpcd is a PC/SC reader driver for pcscd that forwards everything to a
"virtual ICC" over TCP. DeskCard is that virtual ICC, but it plays what a real
contactless reader and its card do together: pcscd sees the ATR an ACR122U builds for
a MIFARE Classic 1K storage card, and the PC/SC storage-card pseudo-APDUs (class FF)
are answered from a simulator.mifare_card.MifareClassic1K, whose keys and access bits
decide, as the reader's firmware would relay them.

The vpcd protocol (virtualsmartcard/src/vpcd/vpcd.c): every message either way is a
2-byte big-endian length and that many bytes. From vpcd, a 1-byte message is a control
message: 0 power off, 1 power on, 2 reset (no answer expected), 4 get ATR (answered
with the ATR); anything longer is a command APDU, answered with the response APDU.
vpcd calls a card present while its TCP connection is up and answers the ATR request;
pcscd asks for the ATR every 400 ms to poll for presence.

Pseudo-APDUs (ACR122U API v2.04 section 4-5, PC/SC part 3 storage cards):

* ``FF CA 00 00 Le`` get UID: UID + 90 00 (Le 00: all of it; Le shorter: 6C 04;
  longer: UID + 62 82); ``FF CA 01 ..`` (ATS): 6A 81, a MIFARE Classic has none.
* ``FF 82 00 slot 06 key`` load key into volatile slot 0 or 1: 90 00 (other slot or
  key structure: 63 00).
* ``FF 86 00 00 05 01 00 block 60|61 slot`` general authenticate (and the obsolete
  ``FF 88 00 block 60|61 slot``): 90 00, or 63 00 when the card refuses the key (the
  card is then halted), the slot is empty, or there is no card.
* ``FF B0 00 block 10`` read binary: 16 bytes + 90 00, or 63 00 when the card refuses
  (not authenticated for that sector, access bits, halted); Le other than 16: 6C 10.
* ``FF D6 00 block 10 data`` update binary: 90 00 or 63 00 likewise.
* Any other class-FF instruction: 6A 81 (function not supported); another class:
  6E 00; malformed lengths: 67 00; P1/P2 out of place: 6B 00.

As on an ACR122U, a card that stopped answering gives 63 00 like a refusal; power off,
power on and reset (SCardReconnect with SCARD_RESET_CARD) re-activate the card: a
halted card wakes up and loses its authentication. The key slots belong to the
reader and outlive cards.

Card removal: remove() takes the card out of the field. Commands that need the card
answer 63 00 from then on; at pcscd's next presence poll (the ATR request) the
connection is closed, which is how vpcd learns the card is gone. insert() connects
again; pcscd notices within one poll, powers the card up and reads its ATR.
remove_at_write() makes a later UPDATE BINARY take the card away (before or after
the write lands) for tests of a card pulled mid-write.

TCP_NODELAY and TCP_QUICKACK are set on the connection: vpcd sends power and reset
messages that get no answer, and a delayed ACK of those would hold up its next
message by the peer's Nagle timer (~40 ms).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from protocol import mifare
from simulator.mifare_card import CardAccessError, MifareClassic1K

# ACR122U API 3.1.1: 3B 8F 80 01 80 4F 0C, RID A0 00 00 03 06, standard 03 (ISO 14443-A part 3),
# card name 00 01 (MIFARE Classic 1K), RFU 00 00 00 00, TCK 6A.
ACR122_MIFARE_1K_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

VPCD_POWER_OFF = 0
VPCD_POWER_ON = 1
VPCD_RESET = 2
VPCD_GET_ATR = 4

SW_OK = b"\x90\x00"
SW_FAILED = b"\x63\x00"  # ACR122U: "the operation failed"
SW_WRONG_LENGTH = b"\x67\x00"
SW_NOT_SUPPORTED = b"\x6a\x81"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_CLASS_NOT_SUPPORTED = b"\x6e\x00"
SW_END_OF_DATA = b"\x62\x82"

KEY_SLOTS = 2  # ACR122U: volatile key locations 00h and 01h
KEY_TYPES = {0x60: "A", 0x61: "B"}


def _le(value: int | None) -> int:
    """An Le byte as a length: absent or 00 mean 256 (everything)."""
    return 256 if not value else value


class DeskCard:
    """A reader + card behind vpcd on host:port; start(), insert(card), remove(), stop()."""

    def __init__(self, port: int, host: str = "127.0.0.1", atr: bytes = ACR122_MIFARE_1K_ATR) -> None:
        self.host = host
        self.port = port
        self.atr = bytes(atr)
        self.keys: list[bytes | None] = [None] * KEY_SLOTS
        self.apdus = 0  # command APDUs answered
        self._card: MifareClassic1K | None = None
        self._in_field = False  # the card answers; False after remove() until insert()
        self._writes_until_removal: int | None = None  # remove_at_write(): UPDATE BINARYs still let through
        self._removal_lands = False
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._atr_answers = 0
        self._present = threading.Event()  # pcscd has polled and powered the card on this connection
        self._gone = threading.Event()  # no connection: vpcd reports no card
        self._gone.set()
        self._drop = False  # close the connection at once (card swapped, or nobody polled)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> DeskCard:
        """Run the connection thread (it connects whenever a card is in the field)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="DeskCard", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Drop the connection (vpcd sees the card go at its next poll) and end the thread; final."""
        self._stop.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> DeskCard:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the card in the field -----------------------------------------------------------

    @property
    def card(self) -> MifareClassic1K | None:
        """The card in the field (or the one last removed), None before any insert()."""
        return self._card

    @property
    def in_field(self) -> bool:
        return self._in_field

    def insert(self, card: MifareClassic1K, wait: bool = True, timeout: float = 5.0) -> None:
        """Put card in the field (replacing any); wait until pcscd has powered it up."""
        if self._in_field:
            self.remove(wait=wait, timeout=timeout)
        if not self._gone.is_set():
            self._hang_up(timeout)  # a card swapped faster than pcscd polls: still a removal for vpcd
        with self._lock:
            card.reset()
            self._card = card
            self._in_field = True
            self._present.clear()
        self._poke()
        if wait and not self._present.wait(timeout):
            raise TimeoutError(f"pcscd did not pick up the card on vpcd port {self.port} within {timeout} s")

    def remove(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Take the card out of the field; wait until vpcd has been told (its next presence poll)."""
        with self._lock:
            self._in_field = False
            self._writes_until_removal = None
        self._poke()
        if wait and not self._gone.wait(timeout):
            self._hang_up(timeout)  # nobody polled: drop the connection anyway

    def _hang_up(self, timeout: float) -> None:
        """Have the connection thread close the connection now."""
        with self._lock:
            self._drop = True
        self._poke()
        self._gone.wait(timeout)

    def remove_at_write(self, nth: int = 1, landed: bool = False) -> None:
        """The nth UPDATE BINARY from now takes the card away: after the write lands if landed, else before.

        The reader then answers that write with 63 00, as an ACR122U does when the card
        stops answering.
        """
        if nth < 1:
            raise ValueError("nth counts from 1")
        with self._lock:
            self._writes_until_removal = nth - 1
            self._removal_lands = landed

    # -- the connection thread -----------------------------------------------------------

    def _poke(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            self._buffer = b""
            self._present.clear()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self._gone.set()

    def _connect(self) -> bool:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2)
        except OSError:
            return False
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack(sock)
        with self._lock:
            self._sock = sock
            self._buffer = b""
            self._atr_answers = 0
            self._gone.clear()
        return True

    @staticmethod
    def _quickack(sock: socket.socket) -> None:
        # Linux resets TCP_QUICKACK after it acks; set it again after every read.
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._drop:
                self._drop = False
                self._close()
            sock = self._sock
            if sock is None:
                if self._in_field and not self._connect():
                    self._stop.wait(0.05)  # vpcd not listening yet
                    continue
                if not self._in_field:
                    self._wait_wake(0.5)
                    continue
                sock = self._sock
                assert sock is not None
            try:
                readable, _, _ = select.select([sock, self._wake_r], [], [], 0.5)
            except (OSError, ValueError):
                self._close()
                continue
            if self._wake_r in readable:
                self._drain_wake()
            if sock in readable:
                try:
                    chunk = sock.recv(4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    self._close()  # vpcd went away (pcscd stopped)
                    continue
                self._quickack(sock)
                self._buffer += chunk
                self._serve(sock)

    def _wait_wake(self, timeout: float) -> None:
        readable, _, _ = select.select([self._wake_r], [], [], timeout)
        if readable:
            self._drain_wake()

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)

    def _serve(self, sock: socket.socket) -> None:
        """Answer every complete message in the buffer."""
        while len(self._buffer) >= 2:
            size = int.from_bytes(self._buffer[:2], "big")
            if len(self._buffer) < 2 + size:
                return
            message, self._buffer = self._buffer[2 : 2 + size], self._buffer[2 + size :]
            if size == 1:
                if not self._control(sock, message[0]):
                    return
                continue
            response = self.process_apdu(message)
            try:
                sock.sendall(len(response).to_bytes(2, "big") + response)
            except OSError:
                self._close()
                return

    def _control(self, sock: socket.socket, code: int) -> bool:
        """A vpcd control message; False when the connection was closed."""
        with self._lock:
            if code in (VPCD_POWER_OFF, VPCD_POWER_ON, VPCD_RESET):
                if self._card is not None and self._in_field:
                    self._card.reset()  # the field dropped or the reader re-activated the card
                return True
            if code != VPCD_GET_ATR:
                return True
            if not self._in_field:
                # The presence poll after remove(): closing is how vpcd learns the card is gone.
                self._close()
                return False
            self._atr_answers += 1
            # The poll that accepted us, then the power-up's ATR: pcscd now calls the card present.
            if self._atr_answers >= 2:
                self._present.set()
        try:
            sock.sendall(len(self.atr).to_bytes(2, "big") + self.atr)
        except OSError:
            self._close()
            return False
        return True

    # -- the reader's firmware: pseudo-APDUs ---------------------------------------------

    def process_apdu(self, apdu: bytes) -> bytes:
        """The response APDU (data + SW1 SW2) to a command APDU, as the reader with this card gives it."""
        with self._lock:
            self.apdus += 1
            return self._apdu(bytes(apdu))

    def _apdu(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        if cla != 0xFF:
            return SW_CLASS_NOT_SUPPORTED
        if ins == 0x88:  # obsolete authenticate: FF 88 00 block keytype slot (no Lc)
            if len(apdu) != 6:
                return SW_WRONG_LENGTH
            return self._authenticate((p1 << 8) | p2, apdu[4], apdu[5])
        parsed = self._parse(apdu[4:])
        if parsed is None:
            return SW_WRONG_LENGTH
        data, le = parsed
        if ins == 0xCA:
            return self._get_data(p1, p2, data, le)
        if ins == 0x82:
            return self._load_key(p1, p2, data)
        if ins == 0x86:
            if p1 or p2:
                return SW_WRONG_P1P2
            if len(data) != 5:
                return SW_WRONG_LENGTH
            if data[0] != 0x01:
                return SW_FAILED
            return self._authenticate((data[1] << 8) | data[2], data[3], data[4])
        if ins == 0xB0:
            return self._read((p1 << 8) | p2, data, le)
        if ins == 0xD6:
            return self._update((p1 << 8) | p2, data, le)
        return SW_NOT_SUPPORTED

    @staticmethod
    def _parse(body: bytes) -> tuple[bytes, int | None] | None:
        """(command data, Le or None) of a short APDU's body; None when malformed."""
        if not body:
            return b"", None
        if len(body) == 1:
            return b"", body[0]
        lc = body[0]
        if lc == 0 or len(body) not in (1 + lc, 2 + lc):
            return None
        return body[1 : 1 + lc], (body[1 + lc] if len(body) == 2 + lc else None)

    def _card_in_field(self) -> MifareClassic1K | None:
        return self._card if self._in_field else None

    def _get_data(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if data:
            return SW_WRONG_LENGTH
        if p2 != 0:
            return SW_WRONG_P1P2
        card = self._card_in_field()
        if p1 == 0x01:
            return SW_NOT_SUPPORTED if card is not None else SW_FAILED  # ATS: only ISO 14443-4 cards have one
        if p1 != 0x00:
            return SW_WRONG_P1P2
        if card is None:
            return SW_FAILED
        uid = card.uid
        want = _le(le)
        if want == 256:
            return uid + SW_OK
        if want < len(uid):
            return bytes([0x6C, len(uid)])
        if want > len(uid):
            return uid + SW_END_OF_DATA
        return uid + SW_OK

    def _load_key(self, structure: int, slot: int, key: bytes) -> bytes:
        if len(key) != 6:
            return SW_WRONG_LENGTH
        if structure != 0x00 or slot >= KEY_SLOTS:
            return SW_FAILED  # only the volatile slots 00h-01h exist
        self.keys[slot] = key
        return SW_OK

    def _authenticate(self, block: int, key_type: int, slot: int) -> bytes:
        card = self._card_in_field()
        kind = KEY_TYPES.get(key_type)
        key = self.keys[slot] if slot < KEY_SLOTS else None
        if card is None or kind is None or key is None or block >= mifare.BLOCKS:
            return SW_FAILED
        return SW_OK if card.authenticate(block, kind, key, card.uid) else SW_FAILED

    def _read(self, block: int, data: bytes, le: int | None) -> bytes:
        if data:
            return SW_WRONG_LENGTH
        if _le(le) != mifare.BLOCK_SIZE:
            return bytes([0x6C, mifare.BLOCK_SIZE])
        card = self._card_in_field()
        if card is None or block >= mifare.BLOCKS:
            return SW_FAILED
        try:
            return card.read_block(block) + SW_OK
        except CardAccessError:
            return SW_FAILED

    def _update(self, block: int, data: bytes, le: int | None) -> bytes:
        if len(data) != mifare.BLOCK_SIZE or le is not None:
            return SW_WRONG_LENGTH
        card = self._card_in_field()
        if card is None or block >= mifare.BLOCKS:
            return SW_FAILED
        if self._writes_until_removal is not None:
            if self._writes_until_removal > 0:
                self._writes_until_removal -= 1
            else:
                self._writes_until_removal = None
                if self._removal_lands:
                    with contextlib.suppress(CardAccessError):
                        card.write_block(block, data)
                self._in_field = False  # pulled away: the reader's wait for the card's ACK times out
                return SW_FAILED
        try:
            card.write_block(block, data)
        except CardAccessError:
            return SW_FAILED
        return SW_OK

