"""A virtual handheld running the real firmware: sales, and every kind of bad input.

Each bad input must show a clear message, leave an event in the journal, and
never record half a sale.
"""

import json
import random

import pytest

from firmware import sale
from protocol import card as layout
from simulator.handheld import VirtualHandheld, committed_sales
from simulator.mifare_card import MifareClassic1K
from simulator.shop import PRICE_LIST, blank_card, issue_card, master_key, member_card, read_card_directly

MASTER = master_key(random.Random(5))


@pytest.fixture
def rng():
    return random.Random(7)


@pytest.fixture
def handheld(tmp_path):
    hh = VirtualHandheld("hh-test", tmp_path, MASTER, PRICE_LIST)
    hh.boot()
    yield hh
    hh.close()


def events(hh):
    return [r for r in hh.journal().records() if r["kind"] == "event"]


def codes(hh):
    return [r["code"] for r in events(hh)]


def pull_card_mid_write(handheld, rng):
    """Ring up a sale and pull the card as its purse is written; the card."""
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    handheld.tap(card)
    handheld.run()
    handheld.press("1", "0", "1", "ENTER", "OK")
    handheld.run()
    handheld.pn532.inject("card_removed")
    handheld.press("OK")
    handheld.run()
    assert handheld.state == sale.UNFINISHED
    return card


def test_a_sale_with_discount_points_and_stored_value(handheld, rng):
    card = member_card(rng, MASTER, 3, balance=1000, points=200, tier=2)
    assert handheld.sell(card, [(102, 2), (401, 1)], redeem_points=True) == sale.RECEIPT
    # 2 x 3.20 discountable at 12.5 % = 0.80 off; the voucher is not discounted.
    [record] = committed_sales(handheld.journal())
    assert (record["subtotal"], record["discount"], record["total"]) == (2640, 80, 2560)
    assert (record["points_value"], record["stored_value"], record["cash"]) == (200, 1000, 1360)
    assert record["points_earned"] == 23
    purse = read_card_directly(card, MASTER)["purse"]
    assert (purse["balance"], purse["points"], purse["counter"]) == (0, 23, 1)
    assert handheld.display.lines[0].startswith("PAID 25.60")


def test_keys_on_the_items_screen(handheld, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    handheld.tap(card)
    handheld.run()
    handheld.press("1", "0", "1", "ENTER", "2", "*", "1", "0", "3", "ENTER", "CLEAR")
    handheld.run()
    assert handheld.terminal.ctx["lines"] == [(101, 1)]
    assert "1 items 2.50" in handheld.display.lines[2]


def test_a_card_left_on_the_reader_does_not_buy_twice(handheld, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    handheld.tap(card)
    handheld.run()
    handheld.press("1", "0", "1", "ENTER", "OK", "OK")
    handheld.run()
    assert handheld.state == sale.RECEIPT
    handheld.run()
    handheld.run()
    assert handheld.state == sale.RECEIPT
    assert len(committed_sales(handheld.journal())) == 1


def test_unknown_item_is_refused_with_a_message_and_an_event(handheld, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    handheld.tap(card)
    handheld.run()
    handheld.press("9", "9", "9", "ENTER")
    handheld.run()
    assert handheld.state == sale.ITEMS
    assert handheld.display.lines[3] == "Unknown item 999"
    assert events(handheld)[-1]["code"] == "unknown_item"
    assert "999" in events(handheld)[-1]["message"]
    handheld.press("OK")  # nothing to pay for yet
    handheld.run()
    assert handheld.state == sale.ITEMS


def test_blank_card_is_refused(handheld, rng):
    assert handheld.sell(blank_card(rng), [(101, 1)]) == sale.ERROR
    assert "blank card" in " ".join(handheld.display.lines)
    assert codes(handheld) == ["blank_card"]
    assert committed_sales(handheld.journal()) == []


def test_card_of_another_system_is_refused(handheld, rng):
    stranger = member_card(rng, b"\x99" * 32, 1, balance=5000, points=0, tier=0)
    assert handheld.sell(stranger, [(101, 1)]) == sale.ERROR
    assert codes(handheld) == ["unknown_card"]
    assert events(handheld)[0]["uid"] == stranger.uid.hex()


def test_card_with_bad_mac_is_refused(handheld, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    card.blocks[5] = bytes([2]) + bytes(card.blocks[5][1:])  # a member upgrades their own tier
    assert handheld.sell(card, [(101, 1)]) == sale.ERROR
    assert "MAC" in " ".join(handheld.display.lines)
    assert codes(handheld) == ["bad_mac"]


def test_card_with_foreign_layout_version_is_refused(handheld, rng):
    card = blank_card(rng)
    ident = {"card_no": "9000000000000001", "member_id": 1, "tier": 0}
    issue_card(card, MASTER, ident, 100, 0)
    card.blocks[4] = bytes(card.blocks[4][:2]) + b"\x07" + bytes(card.blocks[4][3:])
    assert handheld.sell(card, [(101, 1)]) == sale.ERROR
    assert codes(handheld) == ["unknown_layout"]


def test_torn_purse_copy_is_reported_and_the_other_copy_used(handheld, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    card.blocks[12] = bytes([0, 0, 0, 9]) + bytes(12)  # copy B torn by an earlier pulled card
    assert handheld.sell(card, [(101, 1)]) == sale.RECEIPT
    assert "torn_purse" in codes(handheld)
    purse = read_card_directly(card, MASTER)["purse"]
    assert (purse["counter"], purse["balance"]) == (1, 4750)
    assert read_card_directly(card, MASTER)["copies"]["B"] == purse  # the torn copy was the one rewritten


def test_both_purse_copies_torn_is_refused(handheld, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    card.blocks[8] = bytes(16)[:15] + b"\x01"
    assert handheld.sell(card, [(101, 1)]) == sale.ERROR
    assert codes(handheld) == ["purse_invalid"]


def test_card_pulled_mid_write_then_back(handheld, rng):
    card = pull_card_mid_write(handheld, rng)
    assert handheld.display.lines[0] == "Card removed!"
    assert "card_lost" in codes(handheld)
    assert 1 in handheld.journal().pending_sales
    handheld.tap(card)
    handheld.run()
    assert handheld.state == sale.RECEIPT
    assert not handheld.journal().pending_sales
    # The purse write never started, so the sale is void and the card unchanged.
    assert committed_sales(handheld.journal()) == []
    assert "NOT charged" in handheld.display.lines[0]
    assert read_card_directly(card, MASTER)["purse"]["counter"] == 0


@pytest.mark.parametrize("fault", ["no_answer", "garbage"])
def test_pn532_that_answers_garbage_or_nothing(handheld, rng, fault):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    handheld.pn532.inject(fault, count=12)
    handheld.tap(card)
    for _ in range(3):
        handheld.run(max_polls=1)
    assert handheld.display.lines[0] == "Card reader fault"
    assert codes(handheld).count("reader_fault") == 1  # once per fault, not once per poll
    for _ in range(10):  # the fault clears: the handheld recovers by itself
        handheld.run(max_polls=1)
    assert handheld.state == sale.ITEMS
    assert committed_sales(handheld.journal()) == []


def test_bad_price_list_blocks_sales_with_a_message(tmp_path, rng):
    hh = VirtualHandheld("hh-bad", tmp_path, MASTER, PRICE_LIST)
    hh.flash.provision("prices.json", json.dumps({"version": 2, "items": [{"id": 1, "price": 5}]}).encode())
    try:
        hh.boot()
        assert hh.display.lines[2] == "Prices v-"
        assert codes(hh) == ["bad_price_list"]
        card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
        assert hh.sell(card, [(101, 1)]) == sale.ERROR
        assert "No price list" in " ".join(hh.display.lines)
    finally:
        hh.close()


def test_journal_torn_tail_is_reported_after_boot(tmp_path, rng):
    hh = VirtualHandheld("hh-torn", tmp_path, MASTER, PRICE_LIST)
    try:
        hh.boot()
        card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
        hh.sell(card, [(101, 1)])
        path = tmp_path / "hh-torn" / "journal.bin"
        path.write_bytes(path.read_bytes() + b"\xa5\x00\x40partial")
        hh.boot()
        assert codes(hh)[-1] == "journal_torn_tail"
        assert len(committed_sales(hh.journal())) == 1
    finally:
        hh.close()


def test_sale_record_matches_the_card(handheld, rng):
    card = member_card(rng, MASTER, 9, balance=300, points=5, tier=1)
    handheld.sell(card, [(201, 1)], pay_cash=True)
    [record] = committed_sales(handheld.journal())
    assert record["card_no"] == "9000000000000009" and record["uid"] == card.uid.hex()
    assert record["stored_value"] == 0 and record["cash"] == record["total"]
    assert record["device"] == "hh-test" and record["firmware"] and record["price_list_version"] == 1
    purse = read_card_directly(card, MASTER)["purse"]
    assert purse["tag"] == layout.txn_tag("hh-test", record["seq"])


def test_same_card_twice_is_refused_by_a_cloned_copy(handheld, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    clone = MifareClassic1K.from_json(card.to_json())
    assert handheld.sell(card, [(101, 1)]) == sale.RECEIPT
    assert handheld.sell(clone, [(101, 1)]) == sale.RECEIPT  # offline, a clone still spends: the hub flags it
    counters = [s["counter_after"] for s in committed_sales(handheld.journal())]
    assert counters == [1, 1]


def test_card_that_never_comes_back_is_left_to_the_hub(handheld, rng):
    pull_card_mid_write(handheld, rng)
    handheld.press("CANCEL")
    handheld.run()
    assert handheld.state == sale.IDLE
    handheld.boot()  # the decision is on flash, not only in memory
    assert not handheld.journal().pending_sales
    outcomes = [r for r in handheld.journal().records() if r["kind"] == "outcome"]
    assert [(o["ref"], o["result"]) for o in outcomes] == [(1, "unknown")]
    assert handheld.display.lines[0] == "Ready"
