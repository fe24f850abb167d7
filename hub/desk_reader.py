"""The HQ desk card reader over PC/SC (pyscard -> libpcsclite -> pcscd): a firmware.hal.Reader.

With it, firmware.cardservice.CardService issues and reads member cards at the desk.
The reader is ACR122-class: it runs MIFARE Classic through the PC/SC storage-card
pseudo-APDUs (PC/SC part 3; ACR122U API v2.04 sections 4-5):

    get UID             FF CA 00 00 00                   -> UID 90 00
    load key            FF 82 00 <slot> 06 <key>         -> 90 00 | 63 00
    general authenticate FF 86 00 00 05 01 00 <block> <60 A|61 B> <slot>
    read binary         FF B0 00 <block> 10              -> 16 bytes 90 00 | 63 00
    update binary       FF D6 00 <block> 10 <16 bytes>   -> 90 00 | 63 00

An ACR122U answers 63 00 for every failure, whether the card refused or stopped
answering. So after a refused read or write this driver asks which it was: when pcscd
reports the card gone, or the reader no longer has it (get UID fails or gives another
UID), it is CardLost; otherwise DeskReaderError (like the PN532's status 0x13). A 63 00
to authenticate is AuthFailed: the card is then halted, and select() re-activates it
(SCardReconnect with SCARD_RESET_CARD), as the Reader interface asks.

PC/SC failures map to the reader errors: the card gone (SCARD_W_REMOVED_CARD,
SCARD_E_NO_SMARTCARD, SCARD_W_RESET_CARD, SCARD_W_UNPOWERED_CARD,
SCARD_W_UNRESPONSIVE_CARD, SCARD_E_NOT_TRANSACTED, or an answer without a status word)
is CardLost; the reader or pcscd gone (SCARD_E_READER_UNAVAILABLE, SCARD_E_UNKNOWN_READER,
SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED, SCARD_F_COMM_ERROR, SCARD_E_TIMEOUT, ...) is
ReaderTimeout; anything else is DeskReaderError.

The connection is shared (SCARD_SHARE_SHARED): a PC/SC tool can look at the card too,
but must not load keys into slot 0 while the desk is using the card. The uid argument
of authenticate() is not sent: the reader authenticates the card it activated.
libpcsclite finds pcscd through PCSCLITE_CSOCK_NAME when that is set (a private pcscd,
see simulator/pcsc.py), else /run/pcscd/pcscd.comm.
"""

from __future__ import annotations

import time
from typing import Any

from smartcard import scard

from firmware.hal import Reader
from firmware.reader import AuthFailed, CardLost, ReaderError, ReaderProtocolError, ReaderTimeout

KEY_SLOT = 0  # the volatile key location used for every authentication
BLOCK_SIZE = 16
BLOCKS = 64

GET_UID = bytes.fromhex("FFCA000000")
SW_OK = 0x9000
SW_FAILED = 0x6300

_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_W_UNPOWERED_CARD,
    scard.SCARD_W_UNRESPONSIVE_CARD,
    scard.SCARD_E_NOT_TRANSACTED,
    scard.SCARD_E_INVALID_HANDLE,
}
_READER_GONE = {
    scard.SCARD_E_READER_UNAVAILABLE,
    scard.SCARD_E_UNKNOWN_READER,
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_F_COMM_ERROR,
    scard.SCARD_E_TIMEOUT,
    scard.SCARD_E_NO_READERS_AVAILABLE,
}


class DeskReaderError(ReaderError):
    """The reader answered a status word other than 90 00, or a PC/SC call failed; .sw is the status word or None."""

    def __init__(self, message: str, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw


class ReaderNotFound(DeskReaderError):
    """No PC/SC reader of that name (or none at all)."""


def _hex(hresult: int) -> str:
    return f"0x{hresult & 0xFFFFFFFF:08X}"


def _pcsc_message(hresult: int) -> str:
    try:
        return f"{scard.SCardGetErrorMessage(hresult)} ({_hex(hresult)})"
    except Exception:  # the message table is best effort
        return _hex(hresult)


def _pcsc_error(hresult: int, what: str) -> ReaderError:
    """The reader error for a failed PC/SC call."""
    text = f"{what}: {_pcsc_message(hresult)}"
    if hresult in _CARD_GONE:
        return CardLost(text)
    if hresult in _READER_GONE:
        return ReaderTimeout(text)
    return DeskReaderError(text)


def _context() -> Any:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise ReaderTimeout(f"cannot reach pcscd: {_pcsc_message(hresult)}; is pcscd running?")
    return context


def _list(context: Any) -> list[str]:
    hresult, readers = scard.SCardListReaders(context, [])
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise _pcsc_error(hresult, "SCardListReaders")
    return list(readers)


def list_readers() -> list[str]:
    """The PC/SC readers pcscd knows, in its order; ReaderTimeout when pcscd is unreachable."""
    context = _context()
    try:
        return _list(context)
    finally:
        scard.SCardReleaseContext(context)


class DeskReader(Reader):
    """One PC/SC reader by name (the first one when name is None).

    wait_ms: how long select() waits for a card to arrive (pcscd notices a card within
    its polling interval, 400 ms for vpcd); 0 looks once. Call close() (or use a with
    block) to release the card and the PC/SC context.
    """

    def __init__(self, name: str | None = None, wait_ms: int = 0) -> None:
        self.wait_ms = wait_ms
        self._context = _context()
        self._card: Any = None
        self._pci: Any = None
        self._fresh = False  # connected by the last select(): the card was just powered up
        self.uid: bytes | None = None
        self.apdus = 0
        try:
            readers = _list(self._context)
            if name is None:
                if not readers:
                    raise ReaderNotFound("no PC/SC readers: is the reader plugged in and pcscd running?")
                name = readers[0]
            elif name not in readers:
                listed = ", ".join(repr(r) for r in readers) or "none"
                raise ReaderNotFound(f"no PC/SC reader named {name!r}; readers: {listed}")
        except BaseException:
            self.close()
            raise
        self.name: str = name

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Check that the reader is still there (a PC/SC reader needs no waking)."""
        if self._context is None:
            self._context = _context()
        if self.name not in _list(self._context):
            raise ReaderTimeout(f"PC/SC reader {self.name!r} is gone")

    def close(self) -> None:
        """Leave the card as it is, release the connection and the context."""
        self._disconnect()
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def __enter__(self) -> DeskReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- Reader --------------------------------------------------------------------------

    def select(self) -> bytes | None:
        """Connect to (or re-activate) the card in the field; its UID, or None when there is none."""
        self.uid = None
        if not self._card_present(self.wait_ms):
            self._disconnect()
            return None
        if self._card is not None and not self._fresh:
            hresult, protocol = scard.SCardReconnect(
                self._card, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1, scard.SCARD_RESET_CARD
            )
            if hresult == scard.SCARD_S_SUCCESS:
                self._set_protocol(protocol)
            else:
                self._disconnect()
        if self._card is None and not self._connect():
            return None
        self._fresh = False
        try:
            data, sw = self._transmit(GET_UID, "get UID")
        except CardLost:
            self._disconnect()
            return None
        if sw != SW_OK or not data:
            return None
        self.uid = data
        return data

    def authenticate(self, block: int, key_type: str, key: bytes, uid: bytes) -> None:
        """Load key into the volatile slot, then general authenticate; AuthFailed when refused."""
        if key_type not in ("A", "B"):
            raise ValueError("key_type must be 'A' or 'B'")
        if len(key) != 6 or len(uid) < 4:
            raise ValueError("key is 6 bytes, uid at least 4")
        self._check_block(block)
        _, sw = self._transmit(bytes([0xFF, 0x82, 0x00, KEY_SLOT, 0x06]) + bytes(key), "load key")
        if sw != SW_OK:
            raise DeskReaderError(f"the reader refused to load a key into slot {KEY_SLOT} (SW {sw:04X})", sw)
        kind = 0x60 if key_type == "A" else 0x61
        apdu = bytes([0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, block >> 8, block & 0xFF, kind, KEY_SLOT])
        _, sw = self._transmit(apdu, f"authenticate block {block}")
        if sw == SW_FAILED:
            raise AuthFailed(f"MIFARE authentication of block {block} with key {key_type} failed (SW 63 00)")
        if sw != SW_OK:
            raise DeskReaderError(f"authenticate block {block}: SW {sw:04X}", sw)

    def read_block(self, block: int) -> bytes:
        """READ BINARY of 16 bytes."""
        self._check_block(block)
        data, sw = self._transmit(bytes([0xFF, 0xB0, block >> 8, block & 0xFF, BLOCK_SIZE]), f"read block {block}")
        if sw != SW_OK:
            raise self._refused(f"read of block {block}", sw)
        if len(data) != BLOCK_SIZE:
            raise ReaderProtocolError(f"read of block {block} returned {len(data)} bytes")
        return data

    def write_block(self, block: int, data: bytes) -> None:
        """UPDATE BINARY of 16 bytes."""
        if len(data) != BLOCK_SIZE:
            raise ValueError("a block is 16 bytes")
        self._check_block(block)
        apdu = bytes([0xFF, 0xD6, block >> 8, block & 0xFF, BLOCK_SIZE]) + bytes(data)
        _, sw = self._transmit(apdu, f"write block {block}")
        if sw != SW_OK:
            raise self._refused(f"write of block {block}", sw)

    # -- PC/SC ---------------------------------------------------------------------------

    @staticmethod
    def _check_block(block: int) -> None:
        if not 0 <= block < BLOCKS:
            raise ValueError(f"block {block} is not on a MIFARE Classic 1K (0-{BLOCKS - 1})")

    def _require_context(self) -> Any:
        if self._context is None:
            raise ReaderTimeout("the desk reader is closed")
        return self._context

    def _card_present(self, wait_ms: int) -> bool:
        """Whether pcscd reports a card in the reader, waiting up to wait_ms for one."""
        context = self._require_context()
        deadline = time.monotonic() + wait_ms / 1000
        state = scard.SCARD_STATE_UNAWARE
        while True:
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            timeout = 0 if state == scard.SCARD_STATE_UNAWARE else remaining
            hresult, states = scard.SCardGetStatusChange(context, timeout, [(self.name, state)])
            if hresult == scard.SCARD_E_TIMEOUT:
                return False
            if hresult != scard.SCARD_S_SUCCESS:
                raise _pcsc_error(hresult, f"SCardGetStatusChange({self.name!r})")
            event = states[0][1]
            if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                raise ReaderTimeout(f"PC/SC reader {self.name!r} is gone or unavailable")
            if event & scard.SCARD_STATE_PRESENT and not event & scard.SCARD_STATE_MUTE:
                return True
            if remaining <= 0:
                return False
            state = event & ~scard.SCARD_STATE_CHANGED

    def _connect(self) -> bool:
        """SCardConnect to the card; False when there is none after all."""
        hresult, card, protocol = scard.SCardConnect(
            self._require_context(), self.name, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if hresult in _CARD_GONE:  # no card in the field after all
            return False
        if hresult != scard.SCARD_S_SUCCESS:
            raise _pcsc_error(hresult, f"SCardConnect({self.name!r})")
        self._card = card
        self._fresh = True
        self._set_protocol(protocol)
        return True

    def _set_protocol(self, protocol: int) -> None:
        self._pci = scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0

    def _disconnect(self) -> None:
        card, self._card = self._card, None
        self._fresh = False
        if card is not None:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

    def _transmit(self, apdu: bytes, what: str) -> tuple[bytes, int]:
        """(response data, status word) of one APDU to the selected card."""
        if self._card is None:
            raise CardLost(f"{what}: no card selected")
        self.apdus += 1
        hresult, response = scard.SCardTransmit(self._card, self._pci, list(apdu))
        if hresult != scard.SCARD_S_SUCCESS:
            error = _pcsc_error(hresult, what)
            if isinstance(error, CardLost):
                self._disconnect()
            raise error
        if len(response) < 2:
            # vpcd answers nothing when the card's connection dropped mid-command.
            self._disconnect()
            raise CardLost(f"{what}: the reader answered without a status word")
        return bytes(response[:-2]), (response[-2] << 8) | response[-1]

    def _refused(self, what: str, sw: int) -> ReaderError:
        """The error for a read/write answered with sw: CardLost when the card has gone, else DeskReaderError."""
        if sw == SW_FAILED and not self._card_still_here():
            return CardLost(f"{what}: the card left the field (SW 63 00)")
        return DeskReaderError(f"{what} refused by the card (SW {sw:04X})", sw)

    def _card_still_here(self) -> bool:
        """Whether pcscd still reports the card and the reader still has the card it selected."""
        if self._card is None or not self._card_present(0):
            return False
        try:
            data, sw = self._transmit(GET_UID, "get UID")
        except CardLost:
            return False
        return sw == SW_OK and data == self.uid
