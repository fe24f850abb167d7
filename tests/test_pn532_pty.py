"""The PN532 driver against the virtual PN532 over a real pseudo-terminal and pyserial."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from firmware.pn532 import ACK, ERROR_FRAME, NACK, PN532, Event, FrameParser, PN532StatusError, build_frame
from firmware.reader import AuthFailed, CardLost, ReaderProtocolError, ReaderTimeout
from protocol import mifare
from simulator.mifare_card import MifareClassic1K
from simulator.pn532_device import FAULT_KINDS, VirtualPN532
from simulator.serial_uart import SerialUart
from simulator.vhal import SimClock

UID = bytes.fromhex("0badcafe")
DATA = bytes(range(0x30, 0x40))


@dataclass
class Rig:
    device: VirtualPN532
    uart: SerialUart
    reader: PN532
    card: MifareClassic1K


def make_rig(**device_options) -> Rig:
    card = MifareClassic1K.blank(UID)
    device = VirtualPN532(card, rng=random.Random(7), **device_options).start()
    uart = SerialUart(device.path)
    reader = PN532(uart, SimClock(), timeout_ms=50, retries=2, response_timeout_ms=150)
    return Rig(device, uart, reader, card)


def close_rig(rig: Rig) -> None:
    rig.uart.close()
    rig.device.stop()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test stops its device thread and closes its descriptors."""
    fds = set(os.listdir("/proc/self/fd"))
    yield
    assert not [t for t in threading.enumerate() if t.name == "VirtualPN532"]
    assert set(os.listdir("/proc/self/fd")) <= fds


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = make_rig()
    try:
        r.reader.start()
        yield r
    finally:
        close_rig(r)


def open_sector_1(rig: Rig) -> None:
    assert rig.reader.select() == UID
    rig.reader.authenticate(4, "A", mifare.DEFAULT_KEY, UID)


def test_firmware_version(rig: Rig) -> None:
    assert rig.reader.get_firmware_version() == (0x32, 1, 6, 7)
    assert rig.device.commands >= 3  # SAMConfiguration, RFConfiguration, GetFirmwareVersion
    assert rig.device.bytes_in > 0 and rig.device.bytes_out > 0


def test_select_with_and_without_a_card(rig: Rig) -> None:
    assert rig.reader.select() == UID
    rig.device.remove_card()
    assert rig.reader.select() is None
    rig.device.place_card(rig.card)
    assert rig.reader.select() == UID


def test_select_with_infinite_retries_waits_for_a_card(rig: Rig) -> None:
    rig.device.remove_card()
    rig.reader.set_max_retries(0xFF)
    timer = threading.Timer(0.05, rig.device.place_card, [rig.card])
    timer.start()
    try:
        assert rig.reader.select() == UID
    finally:
        timer.cancel()


def test_select_with_infinite_retries_and_no_card_times_out_and_aborts(rig: Rig) -> None:
    rig.device.remove_card()
    rig.reader.set_max_retries(0xFF)
    with pytest.raises(ReaderTimeout):
        rig.reader.select()
    # The abort ACK ended the wait: a card placed now is not answered unasked.
    rig.reader.set_max_retries(1)
    assert rig.reader.select() is None


def test_wrong_key_fails_then_select_again_works(rig: Rig) -> None:
    assert rig.reader.select() == UID
    with pytest.raises(AuthFailed):
        rig.reader.authenticate(4, "A", bytes(6), UID)
    # The card is halted now: it does not answer until selected again.
    with pytest.raises(CardLost):
        rig.reader.read_block(4)
    open_sector_1(rig)
    assert rig.reader.read_block(4) == bytes(16)


def test_write_read_round_trip(rig: Rig) -> None:
    open_sector_1(rig)
    rig.reader.write_block(5, DATA)
    assert rig.reader.read_block(5) == DATA
    assert rig.card.blocks[5] == DATA


def test_access_denied_is_status_0x13(rig: Rig) -> None:
    open_sector_1(rig)
    with pytest.raises(PN532StatusError) as info:
        rig.reader.read_block(8)  # sector 2 is not authenticated
    assert info.value.code == 0x13
    assert "MIFARE NAK" in info.value.name
    assert rig.reader.select() == UID
    rig.reader.authenticate(0, "A", mifare.DEFAULT_KEY, UID)
    with pytest.raises(PN532StatusError) as info:
        rig.reader.write_block(0, bytes(16))
    assert info.value.code == 0x13


def test_no_answer_once_is_retried(rig: Rig) -> None:
    sent = rig.reader.frames_sent
    rig.device.inject("no_answer")
    assert rig.reader.get_firmware_version() == (0x32, 1, 6, 7)
    assert rig.reader.frames_sent - sent == 2  # the command went twice


def test_no_answer_beyond_retries_times_out_then_recovers(rig: Rig) -> None:
    rig.device.inject("no_answer", 3)
    with pytest.raises(ReaderTimeout):
        rig.reader.get_firmware_version()
    assert rig.reader.get_firmware_version()[0] == 0x32


def test_garbage_response_is_recovered_with_a_nack(rig: Rig) -> None:
    open_sector_1(rig)
    rig.reader.write_block(5, DATA)
    sent = rig.reader.frames_sent
    rig.device.inject("garbage")
    # The device keeps the real response; the driver's NACK gets it repeated.
    assert rig.reader.read_block(5) == DATA
    assert rig.reader.frames_sent - sent == 2  # the command, then a NACK


def test_garbage_beyond_retries_is_a_protocol_error_then_recovers(rig: Rig) -> None:
    rig.device.inject("garbage", 3)  # the response and both resends the driver asks for
    with pytest.raises(ReaderProtocolError):
        rig.reader.get_firmware_version()
    assert rig.reader.get_firmware_version()[0] == 0x32


def test_card_removed_mid_transaction_is_card_lost(rig: Rig) -> None:
    open_sector_1(rig)
    rig.device.inject("card_removed")
    with pytest.raises(CardLost):
        rig.reader.read_block(4)
    assert rig.reader.select() is None


def test_nack_from_the_reader_makes_the_driver_resend(rig: Rig) -> None:
    rig.device.inject("nack")
    assert rig.reader.get_firmware_version()[0] == 0x32
    rig.device.inject("nack", 3)
    with pytest.raises(ReaderProtocolError):
        rig.reader.get_firmware_version()


def test_unknown_fault_kind_lists_the_kinds(rig: Rig) -> None:
    with pytest.raises(ValueError) as info:
        rig.device.inject("smoke")
    for kind in FAULT_KINDS:
        assert kind in str(info.value)


def read_events(uart: SerialUart, wanted: int, timeout_s: float = 0.3) -> list:
    """Parse what the device sends until wanted events came or timeout_s passed."""
    parser = FrameParser()
    events: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < wanted and time.monotonic() < deadline:
        events += parser.feed(uart.read(64, 20))
    return events


def test_device_protocol_on_the_wire() -> None:
    r = make_rig()
    try:
        # An unknown command: ACK, then the error frame.
        r.uart.write(build_frame(0x99))
        assert [e.kind for e in read_events(r.uart, 2)] == ["ack", "error"]
        assert FrameParser().feed(ERROR_FRAME)[0].kind == "error"
        # A bad checksum: silence (no ACK), the host must resend.
        bad = bytearray(build_frame(0x02))
        bad[-2] ^= 0x01
        r.uart.write(bytes(bad))
        assert read_events(r.uart, 1, 0.1) == []
        # A good command, then a NACK: the response comes again.
        r.uart.write(build_frame(0x02))
        first = read_events(r.uart, 2)
        r.uart.write(NACK)
        again = read_events(r.uart, 1)
        assert [e.kind for e in first] == ["ack", "frame"]
        assert again == first[1:]
        r.uart.write(ACK)  # an ACK with nothing to abort is harmless
        assert read_events(r.uart, 1, 0.1) == []
    finally:
        close_rig(r)


def test_wire_timing_costs_at_least_the_byte_time() -> None:
    baud = 9600
    r = make_rig(wire_timing=True, baud=baud)
    try:
        r.reader.timeout_ms = r.reader.response_timeout_ms = 500
        start = time.monotonic()
        assert r.reader.get_firmware_version()[0] == 0x32
        elapsed = time.monotonic() - start
        # Command 9 bytes in, ACK 6 out, then the response up to its DCS (12 of its
        # 13 bytes: the driver does not wait for the postamble), 10 bits a byte.
        assert elapsed >= (9 + 6 + 12) * 10 / baud
    finally:
        close_rig(r)


@pytest.mark.parametrize("verdict", ["before", "torn", "after"])
def test_power_dies_during_a_card_write(verdict: str) -> None:
    calls: list[tuple[int, bytes]] = []

    def guard(block: int, data: bytes) -> str:
        calls.append((block, data))
        return verdict

    r = make_rig(card_write_guard=guard, torn_bytes=4)
    try:
        r.reader.start()
        open_sector_1(r)
        with pytest.raises(ReaderTimeout):
            r.reader.write_block(5, DATA)
        assert calls == [(5, DATA)]
        assert not r.device.powered
        expected = {"before": bytes(16), "torn": DATA[:4] + bytes(12), "after": DATA}[verdict]
        assert r.card.blocks[5] == expected
        r.device.power_on()
        r.reader.start()
        open_sector_1(r)
        assert r.reader.read_block(5) == expected
    finally:
        close_rig(r)
