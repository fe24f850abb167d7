"""The card service on a fake reader holding a MIFARE Classic 1K with its keys and access bits."""

from fakes import FakeCard, FakeReader
from harness import raises, vectors

from firmware.cardservice import CardService
from firmware.reader import AuthFailed, CardLost, ReaderError
from protocol import card as layout
from protocol import mifare

MASTER = bytes.fromhex(vectors()["master_key"])
UID = bytes([0x11, 0x22, 0x33, 0x44])
IDENT = {"card_no": "9000000000000042", "member_id": 42, "tier": 1}


def issued(balance=5000, points=10, master=MASTER, uid=UID):
    """A reader with a freshly issued member card in its field."""
    reader = FakeReader()
    card = FakeCard.blank(uid)
    reader.tap(card)
    service = CardService(reader, master)
    assert service.present() == uid
    service.issue(uid, IDENT, balance, points)
    return reader, card, CardService(reader, MASTER)


def test_issue_then_read():
    reader, card, service = issued()
    reader.counts["auth"] = 0
    assert service.present() == UID
    got = service.read(UID)
    assert got["ident"]["card_no"] == IDENT["card_no"] and got["ident"]["tier"] == 1
    assert got["purse"] == {"counter": 0, "balance": 5000, "points": 10, "tag": 0}
    assert got["write_copy"] == "B" and got["torn"] == [] and got["copies"]["B"] is None
    assert reader.counts["auth"] == 3  # one authentication per sector, key B


def test_issued_card_is_locked_to_the_diversified_keys():
    reader, card, service = issued()
    key_a, key_b = layout.sector_keys(MASTER, UID, layout.IDENTITY_SECTOR)
    block = layout.IDENTITY_BLOCKS[0]
    reader.select()
    with raises(AuthFailed):  # the transport key no longer opens the sector
        reader.authenticate(block, "A", mifare.DEFAULT_KEY, UID)
    with raises(CardLost):  # and the card halted: it must be selected again
        reader.authenticate(block, "A", key_a, UID)
    reader.select()
    reader.authenticate(block, "A", key_a, UID)
    assert reader.read_block(block) == card.blocks[block]
    with raises(ReaderError):  # key A reads; only key B writes
        reader.write_block(block, bytes(16))
    reader.select()
    reader.authenticate(block, "B", key_b, UID)
    trailer = reader.read_block(mifare.trailer_of(layout.IDENTITY_SECTOR))
    assert trailer[:6] == bytes(6) and trailer[10:] == bytes(6)  # keys never read back


def test_write_purse_alternates_copies():
    reader, card, service = issued()
    service.present()
    before = service.read(UID)
    service.write_purse(before, {"counter": 1, "balance": 4750, "points": 12, "tag": 77})
    service.present()
    after = service.read(UID)
    assert after["purse"] == {"counter": 1, "balance": 4750, "points": 12, "tag": 77}
    assert after["write_copy"] == "A" and after["copies"]["A"] == before["purse"]
    service.write_purse(after, {"counter": 2, "balance": 4500, "points": 14, "tag": 78})
    service.present()
    third = service.read(UID)
    assert third["purse"]["counter"] == 2 and third["write_copy"] == "B"


def test_blank_foreign_and_tampered_cards_are_told_apart():
    reader = FakeReader()
    service = CardService(reader, MASTER)
    reader.tap(FakeCard.blank(UID))
    assert service.present() == UID
    with raises(layout.CardError, "blank_card"):
        service.read(UID)
    stranger_reader, _card, _ = issued(master=b"\x99" * 32)
    stranger = CardService(stranger_reader, MASTER)
    stranger.present()
    with raises(layout.CardError, "unknown_card"):
        stranger.read(UID)
    reader, card, service = issued()
    block = layout.IDENTITY_BLOCKS[1]
    card.blocks[block] = bytes([2]) + card.blocks[block][1:]  # a member upgrades their own tier
    service.present()
    with raises(layout.CardError, "bad_mac"):
        service.read(UID)


def test_card_with_transport_keys_but_foreign_data():
    reader = FakeReader()
    card = FakeCard.blank(UID)
    card.blocks[layout.IDENTITY_BLOCKS[0]] = b"someone else's!!"
    reader.tap(card)
    service = CardService(reader, MASTER)
    service.present()
    with raises(layout.CardError, "unknown_card") as caught:
        service.read(UID)
    assert "foreign data" in str(caught.value)


def test_card_pulled_while_writing_the_purse():
    # After the data block, before the MAC block: the copy is torn, the other one holds.
    reader, card, service = issued()
    service.present()
    before = service.read(UID)
    reader.pull_after(1)
    with raises(CardLost):
        service.write_purse(before, {"counter": 1, "balance": 4000, "points": 20, "tag": 5})
    assert service.present() is None
    reader.tap(card)
    service.present()
    again = service.read(UID)
    assert again["torn"] == ["B"] and again["purse"] == before["purse"] and again["write_copy"] == "B"


def test_card_torn_inside_a_block():
    reader, card, service = issued()
    service.present()
    before = service.read(UID)
    reader.pull_after(0, tear=6)
    with raises(CardLost):
        service.write_purse(before, {"counter": 1, "balance": 4000, "points": 20, "tag": 5})
    reader.tap(card)
    service.present()
    again = service.read(UID)
    assert again["torn"] == ["B"] and again["purse"] == before["purse"]


def test_card_pulled_after_the_write_landed():
    # Both blocks written, the read-back fails: CardLost, but the card holds the new purse.
    reader, card, service = issued()
    service.present()
    before = service.read(UID)
    reader.pull_after(2)
    with raises(CardLost):
        service.write_purse(before, {"counter": 1, "balance": 4000, "points": 20, "tag": 5})
    reader.tap(card)
    service.present()
    again = service.read(UID)
    assert again["purse"] == {"counter": 1, "balance": 4000, "points": 20, "tag": 5} and again["torn"] == []


def test_both_copies_torn_is_refused():
    reader, card, service = issued()
    card.blocks[layout.PURSE_BLOCKS["A"][1]] = bytes(15) + b"\x01"
    service.present()
    with raises(layout.CardError, "purse_invalid"):
        service.read(UID)


def test_reader_that_does_not_answer():
    reader, card, service = issued()
    reader.dead = True
    with raises(ReaderError):
        service.present()
