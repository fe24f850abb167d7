"""The member card layout: its errors and their codes, the two purse copies, key diversification."""

from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import access, card, mifare

MASTER = b"\x11" * 32
UID = bytes.fromhex("04a1b2c3")
IDENT: dict = {"card_no": "9000000000000007", "member_id": 7, "tier": 1, "category": 0, "issued_day": 0, "expiry_day": 0,
               "blocked": False, "actions": 0}


@contextmanager
def refused(code):
    """Expect a CardError with this code (the reason the handheld journals)."""
    with pytest.raises(card.CardError) as err:
        yield err
    assert err.value.code == code


def purse(counter, balance=500, points=3, tag=0):
    return {"counter": counter, "balance": balance, "points": points, "tag": tag}


def test_identity_round_trip_and_bad_mac():
    blocks = card.encode_identity(MASTER, UID, IDENT)
    assert card.decode_identity(MASTER, UID, blocks) == IDENT
    tampered = [blocks[0], bytes([blocks[1][0] ^ 1]) + blocks[1][1:], blocks[2]]  # tier changed
    with refused("bad_mac"):
        card.decode_identity(MASTER, UID, tampered)


def test_blocked_flag_and_actions_applied_are_under_the_identity_mac():
    blocked = dict(IDENT, blocked=True, actions=5)
    blocks = card.encode_identity(MASTER, UID, blocked)
    assert blocks[0][3] == card.BLOCKED and blocks[1][6:10] == bytes([0, 0, 0, 5])
    assert card.decode_identity(MASTER, UID, blocks) == blocked
    for forged in ([bytes(blocks[0][:3]) + b"\x00" + blocks[0][4:], blocks[1], blocks[2]],  # unblocked by hand
                   [blocks[0], blocks[1][:9] + b"\x04" + blocks[1][10:], blocks[2]]):  # an action made undone
        with refused("bad_mac"):
            card.decode_identity(MASTER, UID, forged)


def test_identity_bound_to_uid_and_master():
    blocks = card.encode_identity(MASTER, UID, IDENT)
    with refused("bad_mac"):
        card.decode_identity(MASTER, bytes.fromhex("04a1b2c4"), blocks)  # copied to another card
    with refused("bad_mac"):
        card.decode_identity(b"\x22" * 32, UID, blocks)  # another system's key


def test_blank_and_unknown_layout():
    with refused("blank_card"):
        card.decode_identity(MASTER, UID, [bytes(16)] * 3)
    header = card.encode_identity(MASTER, UID, IDENT)[0]
    with refused("unknown_layout") as err:
        card.decode_identity(MASTER, UID, [header[:2] + b"\x09" + header[3:], bytes(16), bytes(16)])
    assert "v9" in str(err.value)
    with refused("unknown_layout"):
        card.decode_identity(MASTER, UID, [b"XX" + header[2:], bytes(16), bytes(16)])


def test_newest_valid_copy_wins_and_the_older_is_written_next():
    a = purse(4)
    b = purse(5)
    assert card.choose_purse(a, b) == (b, "A")
    assert card.choose_purse(a, None) == (a, "B")
    assert card.choose_purse(None, b) == (b, "A")
    with refused("purse_invalid"):
        card.choose_purse(None, None)


def test_purse_copy_mac_binds_copy_card_and_uid():
    blocks = card.encode_purse(MASTER, UID, IDENT["card_no"], "A", purse(3))
    assert card.decode_purse(MASTER, UID, IDENT["card_no"], "A", blocks) == purse(3)
    assert card.decode_purse(MASTER, UID, IDENT["card_no"], "B", blocks) is None  # moved to the other slot
    assert card.decode_purse(MASTER, UID, "9000000000000008", "A", blocks) is None
    torn = [blocks[0][:8] + bytes(8), blocks[1]]
    assert card.decode_purse(MASTER, UID, IDENT["card_no"], "A", torn) is None
    assert not card.is_empty_copy(torn) and card.is_empty_copy([bytes(16), bytes(16)])


@given(counter=st.integers(0, 2**32 - 1), balance=st.integers(0, 2**31 - 1), points=st.integers(0, 2**32 - 1),
       tag=st.integers(0, 2**32 - 1), copy=st.sampled_from("AB"))
def test_purse_round_trip(counter, balance, points, tag, copy):
    p = purse(counter, balance, points, tag)
    assert card.decode_purse(MASTER, UID, IDENT["card_no"], copy, card.encode_purse(MASTER, UID, IDENT["card_no"], copy, p)) == p


@given(data=st.binary(min_size=16, max_size=16), mac=st.binary(min_size=16, max_size=16))
def test_random_purse_bytes_are_invalid_not_a_crash(data, mac):
    assert card.decode_purse(MASTER, UID, IDENT["card_no"], "A", [data, mac]) is None


@given(blocks=st.lists(st.binary(min_size=16, max_size=16), min_size=3, max_size=3))
def test_random_identity_bytes_give_a_typed_error(blocks):
    with pytest.raises(card.CardError):
        card.decode_identity(MASTER, UID, blocks)


def test_sector_keys_differ_per_card_and_sector():
    keys = {card.sector_keys(MASTER, uid, s) for uid in (UID, b"\x01\x02\x03\x04") for s in card.APP_SECTORS}
    assert len(keys) == 6
    assert all(len(a) == 6 and len(b) == 6 and a != b for a, b in keys)


def test_issue_writes_end_with_trailers_that_lock_with_key_b():
    writes = card.issue_writes(MASTER, UID, IDENT, 100, 0)
    trailers = [b for b, _ in writes if mifare.is_trailer(b)]
    assert trailers == [7, 11, 15] and [b for b, _ in writes][-3:] == trailers
    conds = access.decode_access_bits(writes[-1][1][6:9])
    assert access.data_allowed(conds[0], "read", "A") and not access.data_allowed(conds[0], "write", "A")
    assert access.data_allowed(conds[0], "write", "B")
    assert not access.key_b_readable(conds[3])
    assert card.APP_ACCESS == access.encode_access_bits([(1, 0, 0)] * 3 + [(0, 1, 1)])


def test_bad_card_numbers():
    bad: object
    for bad in ("123", "900000000000000x", 9000000000000007):
        with pytest.raises(ValueError):
            card.card_number_int(bad)  # type: ignore[arg-type]
