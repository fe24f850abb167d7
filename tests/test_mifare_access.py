"""MIFARE Classic access bits and permission tables (NXP MF1S50 data sheet)."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import access, mifare

BITS = st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 1))


def test_geometry():
    assert [mifare.sector_of(b) for b in (0, 3, 4, 63)] == [0, 0, 1, 15]
    assert mifare.first_block(15) == 60
    assert mifare.trailer_of(15) == 63
    assert [b for b in range(mifare.BLOCKS) if mifare.is_trailer(b)] == [mifare.trailer_of(s) for s in range(16)]
    with pytest.raises(ValueError):
        mifare.sector_of(64)


def test_transport_access_decodes_to_factory_conditions():
    assert access.decode_access_bits(mifare.TRANSPORT_ACCESS) == [(0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 1)]
    assert access.encode_access_bits([(0, 0, 0)] * 3 + [(0, 0, 1)]) == mifare.TRANSPORT_ACCESS


def test_known_encoding_from_the_data_sheet():
    # Data blocks read A|B write B, trailer 011: the common "key B writes" layout.
    assert access.encode_access_bits([(1, 0, 0)] * 3 + [(0, 1, 1)]) == bytes([0x78, 0x77, 0x88])


@given(st.lists(BITS, min_size=4, max_size=4))
def test_access_bits_round_trip(conds):
    encoded = access.encode_access_bits(conds)
    assert len(encoded) == 3
    assert access.decode_access_bits(encoded) == conds


@given(st.lists(BITS, min_size=4, max_size=4), st.integers(0, 23))
def test_any_single_flipped_bit_is_detected(conds, bit):
    encoded = bytearray(access.encode_access_bits(conds))
    encoded[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ValueError, match="access bits inconsistent"):
        access.decode_access_bits(bytes(encoded))


def test_data_block_table():
    assert access.data_allowed((0, 0, 0), "write", "A")
    assert access.data_allowed((1, 0, 0), "read", "A")
    assert not access.data_allowed((1, 0, 0), "write", "A")
    assert access.data_allowed((1, 0, 0), "write", "B")
    assert not access.data_allowed((0, 1, 0), "write", "B")
    assert not access.data_allowed((0, 1, 1), "read", "A")
    assert access.data_allowed((0, 1, 1), "write", "B")
    assert not access.data_allowed((1, 0, 1), "read", "A")
    assert access.data_allowed((1, 0, 1), "read", "B")
    for op, key in itertools.product(("read", "write"), "AB"):
        assert not access.data_allowed((1, 1, 1), op, key)


def test_trailer_table():
    for cond in itertools.product((0, 1), repeat=3):
        for key in "AB":
            assert not access.trailer_allowed(cond, "key_a", "read", key), "key A is never readable"
    # Transport configuration: key A does everything, key B is plain data.
    assert access.trailer_allowed((0, 0, 1), "access", "write", "A")
    assert access.trailer_allowed((0, 0, 1), "key_b", "read", "A")
    # 011: key B manages the sector, key A only reads the access bits.
    assert access.trailer_allowed((0, 1, 1), "key_a", "write", "B")
    assert not access.trailer_allowed((0, 1, 1), "key_a", "write", "A")
    assert access.trailer_allowed((0, 1, 1), "access", "read", "A")
    assert not access.trailer_allowed((0, 1, 1), "key_b", "read", "B")
    assert not access.trailer_allowed((1, 1, 1), "access", "write", "B")


def test_key_b_readable_conditions():
    readable = [c for c in itertools.product((0, 1), repeat=3) if access.key_b_readable(c)]
    assert sorted(readable) == [(0, 0, 0), (0, 0, 1), (0, 1, 0)]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        access.data_allowed((0, 0, 2), "read", "A")
    with pytest.raises(ValueError):
        access.data_allowed((0, 0, 0), "increment", "A")
    with pytest.raises(ValueError):
        access.trailer_allowed((0, 0, 0), "gpb", "read", "A")
    with pytest.raises(ValueError):
        access.data_allowed((0, 0, 0), "read", "C")


def test_make_trailer_layout():
    trailer = mifare.make_trailer(b"\x01" * 6, mifare.TRANSPORT_ACCESS, 0x69, b"\x02" * 6)
    assert trailer == b"\x01" * 6 + b"\xff\x07\x80\x69" + b"\x02" * 6
    with pytest.raises(ValueError):
        mifare.make_trailer(b"\x01" * 5, mifare.TRANSPORT_ACCESS, 0x69, b"\x02" * 6)
