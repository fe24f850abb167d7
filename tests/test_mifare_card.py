"""The virtual MIFARE Classic 1K card: keys, halting, access bits, persistence."""

import random

import pytest

from protocol import access, mifare
from simulator.mifare_card import CardAccessError, CardHalted, MifareClassic1K

UID = bytes.fromhex("a1b2c3d4")
KEY_A = bytes.fromhex("a0a1a2a3a4a5")
KEY_B = bytes.fromhex("b0b1b2b3b4b5")
# Data blocks: read A|B, write B only; trailer managed by key B (the member-card layout).
APP_ACCESS = access.encode_access_bits([(1, 0, 0)] * 3 + [(0, 1, 1)])


def app_card() -> MifareClassic1K:
    """A blank card whose sector 1 uses KEY_A/KEY_B and APP_ACCESS."""
    card = MifareClassic1K.blank(UID)
    assert card.authenticate(4, "A", mifare.DEFAULT_KEY, UID)
    card.write_block(7, mifare.make_trailer(KEY_A, APP_ACCESS, 0x69, KEY_B))
    card.reset()
    return card


def test_blank_card_factory_layout():
    card = MifareClassic1K.blank(UID)
    block0 = card.blocks[0]
    assert block0[:4] == UID
    assert block0[4] == UID[0] ^ UID[1] ^ UID[2] ^ UID[3]
    assert block0[5] == 0x08
    for sector in range(mifare.SECTORS):
        assert card.blocks[mifare.trailer_of(sector)] == mifare.make_trailer(
            mifare.DEFAULT_KEY, mifare.TRANSPORT_ACCESS, 0x69, mifare.DEFAULT_KEY
        )
    assert card.blocks[1] == bytes(16)


def test_wrong_key_fails_and_halts_until_reset():
    card = MifareClassic1K.blank(UID)
    assert not card.authenticate(4, "A", bytes(6), UID)
    assert card.halted
    # Halted: even the right key gets no answer, and reads get none either.
    assert not card.authenticate(4, "A", mifare.DEFAULT_KEY, UID)
    with pytest.raises(CardHalted):
        card.read_block(4)
    card.reset()
    assert card.authenticate(4, "A", mifare.DEFAULT_KEY, UID)
    assert card.read_block(4) == bytes(16)


def test_wrong_uid_fails():
    card = MifareClassic1K.blank(UID)
    assert not card.authenticate(4, "A", mifare.DEFAULT_KEY, bytes(4))
    assert card.halted


def test_authentication_covers_one_sector():
    card = MifareClassic1K.blank(UID)
    assert card.authenticate(4, "A", mifare.DEFAULT_KEY, UID)
    with pytest.raises(CardAccessError):
        card.read_block(8)
    assert card.halted  # a NAK ends the session


def test_write_needing_key_b_is_refused_with_key_a():
    card = app_card()
    assert card.authenticate(4, "A", KEY_A, UID)
    assert card.read_block(5) == bytes(16)
    with pytest.raises(CardAccessError):
        card.write_block(5, b"\x01" * 16)
    card.reset()
    assert card.authenticate(4, "B", KEY_B, UID)
    card.write_block(5, b"\x01" * 16)
    assert card.read_block(5) == b"\x01" * 16


def test_trailer_reads_with_keys_hidden():
    card = app_card()
    assert card.authenticate(4, "B", KEY_B, UID)
    assert card.read_block(7) == bytes(6) + APP_ACCESS + b"\x69" + bytes(6)
    # In the transport configuration key B is readable with key A.
    card.reset()
    assert card.authenticate(8, "A", mifare.DEFAULT_KEY, UID)
    assert card.read_block(11)[10:] == mifare.DEFAULT_KEY
    assert card.read_block(11)[:6] == bytes(6)


def test_key_b_cannot_be_used_while_readable():
    card = MifareClassic1K.blank(UID)  # transport access: key B is readable
    assert card.authenticate(4, "B", mifare.DEFAULT_KEY, UID)
    with pytest.raises(CardAccessError):
        card.read_block(4)


def test_block_zero_is_read_only():
    card = MifareClassic1K.blank(UID)
    assert card.authenticate(0, "A", mifare.DEFAULT_KEY, UID)
    with pytest.raises(CardAccessError):
        card.write_block(0, bytes(16))
    assert card.blocks[0][:4] == UID


def test_trailer_write_keeps_parts_the_key_may_not_change():
    card = app_card()
    assert card.authenticate(4, "B", KEY_B, UID)
    # Under 011 key B may rewrite everything; switch the trailer to 100 (access bits frozen).
    frozen = access.encode_access_bits([(1, 0, 0)] * 3 + [(1, 0, 0)])
    card.write_block(7, mifare.make_trailer(KEY_A, frozen, 0x69, KEY_B))
    card.write_block(7, mifare.make_trailer(mifare.DEFAULT_KEY, mifare.TRANSPORT_ACCESS, 0, KEY_B))
    assert card.blocks[7][:6] == mifare.DEFAULT_KEY  # key A: writable with B under 100
    assert card.blocks[7][6:9] == frozen  # access bits: never writable under 100


def test_torn_write_keeps_old_tail():
    card = MifareClassic1K.blank(UID)
    assert card.authenticate(4, "A", mifare.DEFAULT_KEY, UID)
    card.write_block(4, b"\xaa" * 16)
    card.write_torn(4, b"\x55" * 16, 5)
    assert card.blocks[4] == b"\x55" * 5 + b"\xaa" * 11
    card.write_torn(4, b"\x11" * 16, 3, rng=random.Random(1))
    assert card.blocks[4][:3] == b"\x11" * 3
    assert card.blocks[4][3:] != b"\x55" * 2 + b"\xaa" * 11


def test_save_load_round_trip(tmp_path):
    card = app_card()
    assert card.authenticate(4, "B", KEY_B, UID)
    card.write_block(6, bytes(range(16)))
    path = tmp_path / "card.json"
    card.save(path)
    again = MifareClassic1K.load(path)
    assert again.uid == UID
    assert again.blocks == card.blocks
    assert not again.halted and again.auth_sector is None
    assert MifareClassic1K.from_json(card.to_json()).blocks == card.blocks
