"""A virtual PN532 on a pseudo-terminal, speaking the HSU frame protocol of UM0701-02.

The host (the firmware's PN532 driver through pyserial) opens ``.path``; a background
thread serves the other end. What it does, and where a real PN532 differs:

* Every well-formed command frame is ACKed at once (6.2.2), then answered.
* A frame with a bad LCS/DCS is ignored: no ACK, so the host resends after its ACK
  timeout (6.2.3). A real PN532 never sends a NACK: the manual reserves NACK for the
  host (6.2.1.4); the ``nack`` fault below exists only to test the driver's handling.
* A NACK from the host makes it resend its last response; an ACK from the host aborts
  a command still waiting (an InListPassiveTarget with infinite retries).
* Unknown commands and malformed parameters get ACK + the error frame (6.2.1.5).
* InListPassiveTarget without a card answers NbTg=0 at once, unless
  MxRtyPassiveActivation is 0xFF (the power-on default), when it waits for a card
  or an abort. A real one spends RF time on each retry and card command; only the
  UART is timed here (``wire_timing``), so ``rf_delay_ms`` defaults to 0.
* InDataExchange status bytes (7.1): 0x14 when MIFARE authentication fails (also on
  a card halted by an earlier failure), 0x13 when the card NAKs a read/write (access
  bits, block 0, wrong sector: libnfc reports this case as "Invalid received frame"),
  0x01 when the card does not answer (removed, swapped, halted), 0x27 when no target
  is active (nothing listed since power-on or since the last empty InListPassiveTarget).

Faults (``inject``), each consumed by one command unless said otherwise:
``no_answer`` swallows it (no ACK, no response); ``nack`` answers it with a NACK
instead of ACK + response; ``card_removed`` takes the card out of the field just
before the next InListPassiveTarget/InDataExchange. ``garbage`` counts response transmissions, not
commands: the command runs, but its response (and each resend asked for by a host
NACK, until the count is used up) goes out as random bytes. So ``garbage`` once is
line noise a NACK recovers from; more than the driver's retries makes it give up.

Power: before a MIFARE write is applied, ``card_write_guard(block, data)`` decides:
'ok' (write, answer), 'before' (no write), 'torn' (the first ``torn_bytes`` bytes
land, see MifareClassic1K.write_torn), 'after' (write); for the last three the power
dies before the response. Unpowered, the device reads and drops everything until
``power_on()``, which restores power-on defaults (MxRtyPassiveActivation 0xFF, no
target) and resets the card's field state.
"""

from __future__ import annotations

import errno
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable
from types import TracebackType

from firmware.pn532 import (
    ACK,
    CMD_GET_FIRMWARE_VERSION,
    CMD_IN_DATA_EXCHANGE,
    CMD_IN_LIST_PASSIVE_TARGET,
    CMD_RF_CONFIGURATION,
    CMD_SAM_CONFIGURATION,
    ERROR_FRAME,
    EV_ACK,
    EV_FRAME,
    EV_NACK,
    MIFARE_AUTH_A,
    MIFARE_AUTH_B,
    MIFARE_READ,
    MIFARE_WRITE,
    NACK,
    RF_CFG_MAX_RETRIES,
    STATUS_INVALID_FRAME,
    STATUS_MIFARE_AUTH,
    STATUS_TIMEOUT,
    TFI_HOST,
    TFI_PN532,
    Event,
    FrameParser,
    build_information_frame,
)
from protocol import mifare
from simulator.mifare_card import CardAccessError, CardHalted, MifareClassic1K

FAULT_KINDS = ("no_answer", "garbage", "card_removed", "nack")
"""What inject() accepts."""

GUARD_RESULTS = ("ok", "before", "torn", "after")
"""What a card_write_guard may return."""

FIRMWARE_VERSION = bytes([0x32, 0x01, 0x06, 0x07])
"""GetFirmwareVersion answer of a PN532 v1.6: IC, Ver, Rev, Support."""

STATUS_NOT_ACCEPTABLE = 0x27
"""Command not acceptable in the current context (no active target)."""

_CARD_COMMANDS = (CMD_IN_LIST_PASSIVE_TARGET, CMD_IN_DATA_EXCHANGE)


class VirtualPN532:
    """The PN532 end of a serial line, with a virtual MIFARE card in its field.

    wire_timing: every byte costs 10 bits at baud, both ways (the response waits
    until the command would have arrived, then streams at that rate). rng seeds the
    garbage fault. Counters: commands (information frames received), bytes_in,
    bytes_out. A crash of the serving thread is re-raised by stop().
    """

    def __init__(
        self,
        card: MifareClassic1K | None = None,
        *,
        wire_timing: bool = False,
        baud: int = 115200,
        rf_delay_ms: float = 0.0,
        rng: random.Random | None = None,
        card_write_guard: Callable[[int, bytes], str] | None = None,
        torn_bytes: int = 8,
    ) -> None:
        self.card = card
        self.wire_timing = wire_timing
        self.baud = baud
        self.rf_delay_ms = rf_delay_ms
        self.rng = rng if rng is not None else random.Random(0)
        self.card_write_guard = card_write_guard
        self.torn_bytes = torn_bytes
        self.commands = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.error: BaseException | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parser = FrameParser()
        self._faults: dict[str, int] = {}
        self._powered = True
        self._reset_chip_state()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        # Non-blocking: a host that stops reading loses bytes (a UART overrun), not us.
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> VirtualPN532:
        """Start serving in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="VirtualPN532", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the pseudo-terminal; re-raise a thread crash."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def __enter__(self) -> VirtualPN532:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the field and the power -------------------------------------------------------

    def place_card(self, card: MifareClassic1K | None) -> None:
        """Put a card in the field (None: empty the field); a waiting select sees it."""
        with self._lock:
            if card is not self.card and self.card is not None:
                self.card.reset()
            self.card = card
            if card is not None:
                card.reset()

    def remove_card(self) -> None:
        """Take the card out of the field."""
        self.place_card(None)

    @property
    def powered(self) -> bool:
        """Whether the chip has power (it answers nothing without)."""
        return self._powered

    def power_off(self) -> None:
        """Cut the power: the chip goes silent and forgets its configuration."""
        with self._lock:
            self._powered = False
            self._reset_chip_state()

    def power_on(self) -> None:
        """Restore power: configuration back to defaults, the card's field reset."""
        with self._lock:
            self._reset_chip_state()
            self._powered = True

    def _reset_chip_state(self) -> None:
        """Power-on defaults: no target, infinite passive retries, nothing pending."""
        self._target_uid: bytes | None = None
        self._max_passive_retries = 0xFF
        self._waiting_select = False
        self._last_response: bytes | None = None
        self._parser.reset()
        self._in_wire_until = 0.0
        if self.card is not None:
            self.card.reset()

    # -- fault injection ---------------------------------------------------------------

    def inject(self, kind: str, count: int = 1) -> None:
        """Make the next count commands (garbage: responses) misbehave; kinds in FAULT_KINDS."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + count

    def _take_fault(self, kind: str) -> bool:
        """Consume one pending fault of kind; whether there was one."""
        n = self._faults.get(kind, 0)
        if n:
            self._faults[kind] = n - 1
        return n > 0

    # -- the serving loop --------------------------------------------------------------

    def _run(self) -> None:
        """Read the master side, parse frames, answer them."""
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._master], [], [], 0.01)
                if ready:
                    data = self._read_master()
                    if data:
                        with self._lock:
                            self._on_bytes(data)
                with self._lock:
                    self._poll_waiting_select()
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def _read_master(self) -> bytes:
        """Bytes the host wrote, or b'' when none are waiting."""
        try:
            return os.read(self._master, 4096)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.EIO:  # no process has the slave open right now
                time.sleep(0.01)
                return b""
            raise

    def _on_bytes(self, data: bytes) -> None:
        """Account for arriving bytes and handle the frames they complete."""
        if not self._powered:
            return
        self.bytes_in += len(data)
        now = time.monotonic()
        self._in_wire_until = max(self._in_wire_until, now) + len(data) * self._byte_time()
        for ev in self._parser.feed(data):
            self._on_event(ev)

    def _on_event(self, ev: Event) -> None:
        """React to one parsed host frame."""
        if ev.kind == EV_ACK:
            self._waiting_select = False  # abort (6.2.2)
        elif ev.kind == EV_NACK:
            if self._last_response is not None:
                self._send_response(self._last_response)
        elif ev.kind == EV_FRAME and ev.tfi == TFI_HOST:
            self.commands += 1
            self._on_command(ev.code, ev.data)
        # Bad checksums, error frames and D5 frames from the host: silence.

    def _on_command(self, cmd: int, params: bytes) -> None:
        """ACK a command, apply faults, run it, answer it."""
        self._waiting_select = False  # a new command aborts the one pending
        self._wait_wire_in()
        if self._take_fault("no_answer"):
            return
        if self._take_fault("nack"):
            self._send(NACK)
            return
        self._send(ACK)
        if cmd in _CARD_COMMANDS and self._take_fault("card_removed"):
            self.place_card(None)
        response = self._execute(cmd, params)
        if response is None or not self._powered:
            return
        self._last_response = response
        self._send_response(response)

    def _send_response(self, response: bytes) -> None:
        """Send a response frame, or random bytes in its place while garbage is injected."""
        if self._take_fault("garbage"):
            self._send(bytes(self.rng.randrange(256) for _ in range(self.rng.randint(4, 24))))
        else:
            self._send(response)

    def _execute(self, cmd: int, params: bytes) -> bytes | None:
        """The response frame to cmd, or None when there is none (yet)."""
        if cmd == CMD_GET_FIRMWARE_VERSION:
            return self._answer(cmd, FIRMWARE_VERSION)
        if cmd == CMD_SAM_CONFIGURATION:
            return self._answer(cmd) if params[:1] == b"\x01" else ERROR_FRAME
        if cmd == CMD_RF_CONFIGURATION:
            return self._rf_configuration(params)
        if cmd == CMD_IN_LIST_PASSIVE_TARGET:
            return self._in_list_passive_target(params)
        if cmd == CMD_IN_DATA_EXCHANGE:
            return self._in_data_exchange(params)
        return ERROR_FRAME

    @staticmethod
    def _answer(cmd: int, data: bytes = b"") -> bytes:
        """The response frame D5 (cmd + 1) data."""
        return build_information_frame(TFI_PN532, bytes([cmd + 1]) + data)

    def _rf_configuration(self, params: bytes) -> bytes:
        """RFConfiguration: MaxRetries is honoured, other items are accepted."""
        if not params:
            return ERROR_FRAME
        if params[0] == RF_CFG_MAX_RETRIES:
            if len(params) != 4:
                return ERROR_FRAME
            self._max_passive_retries = params[3]
        return self._answer(CMD_RF_CONFIGURATION)

    def _in_list_passive_target(self, params: bytes) -> bytes | None:
        """InListPassiveTarget for 106 kbps type A; other baud rates find nothing."""
        if len(params) < 2 or params[0] not in (1, 2):
            return ERROR_FRAME
        self._target_uid = None
        if params[1] != 0x00:
            return self._answer(CMD_IN_LIST_PASSIVE_TARGET, b"\x00")
        if self.card is None:
            if self._max_passive_retries == 0xFF:
                self._waiting_select = True
                return None
            return self._answer(CMD_IN_LIST_PASSIVE_TARGET, b"\x00")
        return self._list_card()

    def _list_card(self) -> bytes:
        """Select the card in the field and describe it (NbTg=1)."""
        card = self.card
        assert card is not None
        self._rf_delay()
        card.reset()  # WUPA + anticollision + select: a halted card wakes up
        self._target_uid = card.uid
        uid = card.uid
        target = bytes([1]) + card.atqa + bytes([card.sak, len(uid)]) + uid
        return self._answer(CMD_IN_LIST_PASSIVE_TARGET, b"\x01" + target)

    def _poll_waiting_select(self) -> None:
        """Answer a waiting InListPassiveTarget once a card is in the field."""
        if self._waiting_select and self._powered and self.card is not None:
            self._waiting_select = False
            response = self._list_card()
            self._last_response = response
            self._send(response)

    def _in_data_exchange(self, params: bytes) -> bytes | None:
        """InDataExchange carrying one MIFARE Classic command; D5 41 status [data]."""
        if len(params) < 2:
            return ERROR_FRAME
        tg, mifare_cmd, rest = params[0], params[1], params[2:]
        if tg != 1 or self._target_uid is None:
            return self._status(STATUS_NOT_ACCEPTABLE)
        card = self.card
        if card is None or card.uid != self._target_uid:
            return self._status(STATUS_TIMEOUT)  # the card stopped answering
        self._rf_delay()
        if mifare_cmd in (MIFARE_AUTH_A, MIFARE_AUTH_B):
            if len(rest) != 11:
                return ERROR_FRAME
            key_type = "A" if mifare_cmd == MIFARE_AUTH_A else "B"
            ok = rest[0] < mifare.BLOCKS and card.authenticate(rest[0], key_type, rest[1:7], rest[7:11])
            if not ok:
                card.halt()
            return self._status(0 if ok else STATUS_MIFARE_AUTH)
        if mifare_cmd == MIFARE_READ and len(rest) == 1:
            return self._card_op(lambda: card.read_block(rest[0]))
        if mifare_cmd == MIFARE_WRITE and len(rest) == 17:
            return self._write(card, rest[0], rest[1:])
        if mifare_cmd in (MIFARE_READ, MIFARE_WRITE):
            return ERROR_FRAME
        # Value-block and other commands are not modelled: the card NAKs them.
        card.halt()
        return self._status(STATUS_INVALID_FRAME)

    def _status(self, status: int, data: bytes = b"") -> bytes:
        """An InDataExchange response with a status byte."""
        return self._answer(CMD_IN_DATA_EXCHANGE, bytes([status]) + data)

    @staticmethod
    def _card_status(op: Callable[[], bytes | None]) -> tuple[int, bytes]:
        """Run a card operation: (0, its data), or the status a PN532 reports for the failure."""
        try:
            data = op()
        except CardHalted:
            return STATUS_TIMEOUT, b""  # a halted card does not answer
        except (CardAccessError, ValueError):  # refused, or no such block: the card NAKs
            return STATUS_INVALID_FRAME, b""
        return 0, data or b""

    def _card_op(self, op: Callable[[], bytes | None]) -> bytes:
        """The InDataExchange response for a card operation."""
        status, data = self._card_status(op)
        return self._status(status, data)

    def _write(self, card: MifareClassic1K, block: int, data: bytes) -> bytes | None:
        """A MIFARE write, passed through card_write_guard to model power cuts."""
        status, _ = self._card_status(lambda: card.check_write(block))
        if status:
            return self._status(status)
        verdict = self.card_write_guard(block, data) if self.card_write_guard else "ok"
        if verdict not in GUARD_RESULTS:
            raise ValueError(f"card_write_guard returned {verdict!r}; expected one of {GUARD_RESULTS}")
        if verdict == "torn":
            card.write_torn(block, data, self.torn_bytes)
        elif verdict != "before":
            card.write_block(block, data)
        if verdict == "ok":
            return self._status(0)
        self.power_off()  # before, torn, after: the power dies before the response
        return None

    # -- the wire ----------------------------------------------------------------------

    def _byte_time(self) -> float:
        """Seconds one byte (start + 8 data + stop bits) takes on the wire, if modelled."""
        return 10.0 / self.baud if self.wire_timing else 0.0

    def _rf_delay(self) -> None:
        """Time one RF exchange with the card takes (0 unless rf_delay_ms is set)."""
        if self.rf_delay_ms > 0:
            time.sleep(self.rf_delay_ms / 1000.0)

    def _wait_wire_in(self) -> None:
        """With wire timing, wait until the command would have finished arriving."""
        delay = self._in_wire_until - time.monotonic()
        if self.wire_timing and delay > 0:
            time.sleep(delay)

    def _send(self, data: bytes) -> None:
        """Write to the host, streamed at the baud rate when wire timing is on."""
        if not self._powered:
            return
        self.bytes_out += len(data)
        if not self.wire_timing:
            self._write_master(data)
            return
        bt = self._byte_time()
        start = time.monotonic()
        sent = 0
        while sent < len(data):
            # Release every byte whose last bit has left the wire by now.
            due = min(len(data), int((time.monotonic() - start) / bt))
            if due > sent:
                self._write_master(data[sent:due])
                sent = due
            else:
                time.sleep(bt)

    def _write_master(self, data: bytes) -> None:
        """Write to the pty; bytes that do not fit are lost, as on an overrun UART."""
        try:
            os.write(self._master, data)
        except BlockingIOError:
            pass
