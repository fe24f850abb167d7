"""PN532 frames (UM0701-02 section 6.2.1): building, checksums, incremental parsing."""

from hypothesis import given
from hypothesis import strategies as st

from firmware import pn532
from firmware.pn532 import ACK, ERROR_FRAME, NACK, Event, FrameParser, build_frame, build_information_frame


def frame_event(tfi, code, data=b""):
    return Event(pn532.EV_FRAME, tfi, code, data)


def test_get_firmware_version_frame_matches_the_manual():
    # The manual's example: 00 00 FF 02 FE D4 02 2A 00.
    assert build_frame(0x02) == bytes.fromhex("0000ff02fed4022a00")


def test_in_list_passive_target_frame_and_checksums():
    frame = build_frame(0x4A, b"\x01\x00")
    assert frame == bytes.fromhex("0000ff04fcd44a0100e100")
    length, lcs = frame[3], frame[4]
    assert (length + lcs) & 0xFF == 0
    assert (sum(frame[5:-1])) & 0xFF == 0  # TFI + data + DCS


def test_extended_frame_when_data_exceeds_255_bytes():
    params = bytes(range(256)) + bytes(3)  # TFI + CMD + 259 = 261 bytes
    frame = build_frame(0x40, params)
    assert frame[:5] == b"\x00\x00\xff\xff\xff"
    lenm, lenl, lcs = frame[5], frame[6], frame[7]
    assert lenm * 256 + lenl == 261
    assert (lenm + lenl + lcs) & 0xFF == 0
    assert FrameParser().feed(frame) == [frame_event(0xD4, 0x40, params)]


def test_normal_frame_up_to_255_bytes():
    frame = build_frame(0x40, bytes(253))
    assert frame[3] == 255 and frame[4] == 1
    assert FrameParser().feed(frame) == [frame_event(0xD4, 0x40, bytes(253))]


def test_parser_recognises_each_frame_kind_and_skips_noise():
    response = build_information_frame(0xD5, b"\x03\x32\x01\x06\x07")
    stream = b"\x55\x55\x00\x00\x13\x37" + ACK + b"\xfe" + response + NACK + ERROR_FRAME
    events = FrameParser().feed(stream)
    assert events == [
        Event(pn532.EV_ACK),
        frame_event(0xD5, 0x03, b"\x32\x01\x06\x07"),
        Event(pn532.EV_NACK),
        Event(pn532.EV_ERROR),
    ]


def test_parser_is_incremental_byte_by_byte():
    parser = FrameParser()
    stream = ACK + build_information_frame(0xD5, b"\x41\x00" + bytes(range(16)))
    events = []
    for i in range(len(stream)):
        assert parser.needed() >= 1
        events += parser.feed(stream[i : i + 1])
    assert events == [Event(pn532.EV_ACK), frame_event(0xD5, 0x41, b"\x00" + bytes(range(16)))]


def test_needed_asks_for_the_rest_of_a_frame():
    frame = build_information_frame(0xD5, b"\x41\x00" + bytes(16))
    parser = FrameParser()
    assert parser.feed(frame[:5]) == []
    assert parser.needed() == len(frame) - 5 - 1  # everything but the postamble


def test_bad_dcs_is_reported_and_the_next_frame_still_parses():
    good = build_information_frame(0xD5, b"\x03\x32\x01\x06\x07")
    bad = bytearray(good)
    bad[-2] ^= 0xFF  # DCS
    events = FrameParser().feed(bytes(bad) + good)
    assert events == [Event(pn532.EV_BAD, why="DCS"), frame_event(0xD5, 0x03, b"\x32\x01\x06\x07")]


def test_bad_lcs_is_reported_and_the_parser_resynchronises():
    good = build_information_frame(0xD5, b"\x15")
    bad = bytearray(good)
    bad[4] ^= 0x01  # LCS
    events = FrameParser().feed(bytes(bad) + good)
    assert events[0] == Event(pn532.EV_BAD, why="LCS")
    assert events[-1] == frame_event(0xD5, 0x15)


def test_a_corrupted_data_byte_fails_the_dcs():
    frame = bytearray(build_information_frame(0xD5, b"\x41\x00" + bytes(16)))
    frame[10] ^= 0x40
    assert FrameParser().feed(bytes(frame)) == [Event(pn532.EV_BAD, why="DCS")]


def test_noise_counts_only_non_zero_bytes():
    parser = FrameParser()
    parser.feed(b"\x00\x00\x12\x34\x00")
    assert parser.noise == 2
    parser.reset()
    assert parser.noise == 0


EVENT_KINDS = {pn532.EV_ACK, pn532.EV_NACK, pn532.EV_ERROR, pn532.EV_FRAME, pn532.EV_BAD}


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_never_crash_the_parser(chunks):
    parser = FrameParser()
    for chunk in chunks:
        for ev in parser.feed(chunk):
            assert isinstance(ev, Event)
            assert ev.kind in EVENT_KINDS
            if ev.kind == pn532.EV_FRAME:
                assert isinstance(ev.data, bytes)
        assert parser.needed() >= 1


@given(st.binary(max_size=40), st.integers(0, 255), st.binary(max_size=200))
def test_a_frame_after_noise_is_found(noise, cmd, params):
    # Noise without a start code in it, then one frame: exactly that frame comes out.
    noise = noise.replace(b"\x00", b"\x01")
    events = FrameParser().feed(noise + build_frame(cmd, params))
    assert events == [frame_event(0xD4, cmd, params)]
