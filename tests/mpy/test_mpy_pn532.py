"""The PN532 driver (firmware/pn532.py): its frames by the manual, and the card service through it,
over a fake UART whose far end behaves like a PN532 with a MIFARE Classic card in its field."""

from fakes import FakeCard, FakeClock, FakePN532
from harness import raises

from firmware import pn532
from firmware.cardservice import CardService
from firmware.pn532 import ACK, NACK, PN532, Event, FrameParser, build_frame, build_information_frame
from firmware.reader import AuthFailed, CardLost, ReaderError
from protocol import mifare

MASTER = bytes(range(1, 33))
UID = bytes([0xDE, 0xAD, 0xBE, 0x01])


def test_frames_match_the_manual():
    assert build_frame(0x02) == bytes.fromhex("0000ff02fed4022a00")  # GetFirmwareVersion, UM0701-02 6.2.1
    frame = build_frame(0x4A, b"\x01\x00")
    assert frame == bytes.fromhex("0000ff04fcd44a0100e100")
    params = bytes(range(256)) + bytes(3)  # LEN > 255: an extended frame
    big = build_frame(0x40, params)
    assert big[:5] == b"\x00\x00\xff\xff\xff" and big[5] * 256 + big[6] == 261
    assert FrameParser().feed(big) == [Event(pn532.EV_FRAME, 0xD4, 0x40, params)]


def test_parser_skips_noise_and_is_incremental():
    response = build_information_frame(0xD5, b"\x41\x00" + bytes(range(16)))
    stream = b"\x55\x13\x37" + ACK + b"\xfe" + response + NACK
    want = [Event(pn532.EV_ACK), Event(pn532.EV_FRAME, 0xD5, 0x41, b"\x00" + bytes(range(16))), Event(pn532.EV_NACK)]
    assert FrameParser().feed(stream) == want
    parser = FrameParser()
    events = []
    for i in range(len(stream)):
        assert parser.needed() >= 1
        events += parser.feed(stream[i : i + 1])
    assert events == want


def reader_with(card):
    clock = FakeClock()
    uart = FakePN532(clock)
    uart.card = card
    reader = PN532(uart, clock)
    reader.start()
    return uart, reader


def test_the_card_service_through_the_driver():
    uart, reader = reader_with(FakeCard.blank(UID))
    assert reader.get_firmware_version() == (0x32, 1, 6, 7)
    service = CardService(reader, MASTER)
    assert service.present() == UID
    service.issue(UID, {"card_no": "9000000000000007", "member_id": 7, "tier": 0}, 1200, 3)
    assert service.present() == UID
    card = service.read(UID)
    assert card["purse"]["balance"] == 1200 and card["write_copy"] == "B"
    service.write_purse(card, {"counter": 1, "balance": 950, "points": 5, "tag": 11})
    service.present()
    assert service.read(UID)["purse"] == {"counter": 1, "balance": 950, "points": 5, "tag": 11}
    assert reader.frames_sent == len(uart.commands) and pn532.CMD_IN_DATA_EXCHANGE in uart.commands


def test_status_bytes_become_reader_errors():
    uart, reader = reader_with(FakeCard.blank(UID))
    assert reader.select() == UID
    with raises(AuthFailed):  # 0x14
        reader.authenticate(4, "A", b"\x00" * 6, UID)
    with raises(CardLost):  # 0x01: the card halted after the failed authentication
        reader.read_block(4)
    assert reader.select() == UID
    reader.authenticate(0, "A", mifare.DEFAULT_KEY, UID)
    with raises(ReaderError):  # 0x13: block 0 is read-only
        reader.write_block(0, bytes(16))
    uart.card = None
    assert reader.select() is None
    with raises(CardLost):
        reader.read_block(4)


def test_noise_on_the_line_is_skipped():
    uart, reader = reader_with(FakeCard.blank(UID))
    uart.noise = b"\x00\xff\x13\x55"
    assert reader.get_firmware_version() == (0x32, 1, 6, 7)
    uart.noise = b"\xaa" * 40
    assert reader.select() == UID
