"""The sale flow: sale.py's table and decisions, and the Terminal on fake flash, reader, clock, keys."""

import json

from fakes import DirFlash, FakeCard, FakeClock, FakeDisplay, FakeKeypad, FakeReader, PowerCut
from harness import TempDir, raises

from firmware import sale
from firmware.cardservice import CardService
from firmware.journal import Journal
from firmware.terminal import Terminal, load_config
from protocol import card as layout
from protocol import downlink as dl
from protocol import pricing, salecheck

MASTER = bytes(range(32))
DEVICE = "hh-mpy"
PRICES = {
    "version": 3,
    "currency": "EUR",
    "items": [
        {"id": 101, "name": "Espresso", "price": 250},
        {"id": 102, "name": "Cappuccino", "price": 320},
        {"id": 401, "name": "Gift voucher", "price": 2000, "discountable": False},
    ],
    "tiers": [{"tier": 0, "name": "Member", "discount_bps": 0}, {"tier": 2, "name": "Gold", "discount_bps": 1250}],
    "points": {"earn_per_100": 1, "point_value": 1},
}
# The lease the test handheld is provisioned with: generous, so only the lease tests meet its limits.
LEASE = {"device": DEVICE, "version": 0, "issued": 0, "expires_after_s": 86400, "max_sv_per_sale": 100000,
         "max_sv_per_card_day": 100000, "max_sv_offline_total": 1000000}


def member_card(number=1, balance=5000, points=0, tier=0):
    uid = bytes([0x40, number, 0x5A, 0xC3])
    card = FakeCard.blank(uid)
    reader = FakeReader()
    reader.tap(card)
    ident = {"card_no": "9%015d" % number, "member_id": number, "tier": tier}
    CardService(reader, MASTER).issue(uid, ident, balance, points)
    card.reset()
    return card


def ident_of(card):
    """The card's identity, read straight from its memory."""
    return layout.decode_identity(MASTER, card.uid, [card.blocks[b] for b in layout.IDENTITY_BLOCKS])


def purse_of(card):
    """The card's current purse, read straight from its memory."""
    blocks = card.blocks
    ident = layout.decode_identity(MASTER, card.uid, [blocks[b] for b in layout.IDENTITY_BLOCKS])
    copies = [
        layout.decode_purse(MASTER, card.uid, ident["card_no"], c, [blocks[b] for b in layout.PURSE_BLOCKS[c]]) for c in "AB"
    ]
    return layout.choose_purse(copies[0], copies[1])[0]


class Handheld:
    """The firmware's Terminal on fakes; boot() again after a power cut."""

    def __init__(self, tmp, prices=None, lease=LEASE):
        self.flash = DirFlash(tmp + "/flash")
        self.flash.put("config.json", json.dumps({"device_id": DEVICE, "master_key": MASTER.hex()}).encode())
        self.flash.put("prices.json", json.dumps(prices or PRICES).encode())
        if lease is not None:
            self.flash.put("lease.json", json.dumps(dict(lease, mac=dl.lease_mac(MASTER, lease))).encode())
        self.reader = FakeReader()
        self.clock = FakeClock()
        self.display = FakeDisplay()
        self.keypad = FakeKeypad()
        self.terminal = None  # type: Terminal | None

    def boot(self):
        self.flash.disarm()
        self.terminal = Terminal(self.reader, self.flash, self.clock, self.display, self.keypad, load_config(self.flash))
        self.terminal.boot()
        return self.terminal

    @property
    def state(self):
        assert self.terminal is not None
        return self.terminal.state

    def run(self, limit=100):
        assert self.terminal is not None
        for _ in range(limit):
            self.clock.advance(50)
            if not self.terminal.poll():
                return
        raise AssertionError("the terminal is still busy after %d polls" % limit)

    def press(self, *keys):
        self.keypad.press(*keys)
        self.run()

    def ring_up(self, card, entries):
        self.reader.tap(card)
        self.run()
        assert self.state == sale.ITEMS, self.display.text()
        for entry in entries:
            self.keypad.type(entry)
            self.press("ENTER")
        self.press("OK")
        assert self.state == sale.CONFIRM, self.display.text()

    def sell(self, card, entries, extra_keys=()):
        self.ring_up(card, entries)
        for key in extra_keys:
            self.press(key)
        self.press("OK")
        return self.state

    def records(self, kind=None):
        journal = Journal(self.flash, DEVICE)
        journal.open()
        return [r for r in journal.records() if kind is None or r["kind"] == kind]

    def codes(self):
        return [r["code"] for r in self.records("event")]

    def outcomes(self):
        return [(r["ref"], r["result"]) for r in self.records("outcome")]


# -- sale.py -----------------------------------------------------------------------------


def test_the_table_refuses_what_it_does_not_list():
    state = sale.IDLE
    for event in ("card", "read_ok", "add", "ok", "written", "journaled", "printed", "done"):
        state = sale.next_state(state, event)
    assert state == sale.IDLE
    with raises(ValueError):
        sale.next_state(sale.IDLE, "ok")
    with raises(ValueError):
        sale.next_state(sale.CARD_WRITTEN, "cancel")
    assert sale.next_state(sale.RECEIPT, "card") == sale.CARD_READ and sale.next_state(sale.ERROR, "done") == sale.IDLE


def test_keypad_entries_and_lines():
    assert sale.parse_entry("101") == (101, 1) and sale.parse_entry("3*102") == (102, 3)
    for bad in ("", "*", "1*", "a", "2*x", "1*2*3"):
        with raises(ValueError):
            sale.parse_entry(bad)
    lines = sale.add_line(sale.add_line(sale.add_line([], 101, 1), 102, 2), 101, 2)
    assert lines == [(101, 3), (102, 2)]


def test_resolving_a_pending_sale_from_the_card():
    pending = {"counter_before": 4, "counter_after": 5}
    purse4 = {"counter": 4, "balance": 100, "points": 0, "tag": 1}
    ours = {"counter": 5, "balance": 50, "points": 0, "tag": 99}
    theirs = {"counter": 5, "balance": 70, "points": 0, "tag": 7}
    assert sale.resolve(pending, {"copies": {"A": purse4, "B": ours}, "purse": ours}, 99) == "committed"
    assert sale.resolve(pending, {"copies": {"A": purse4, "B": theirs}, "purse": theirs}, 99) == "voided"
    assert sale.resolve(pending, {"copies": {"A": purse4, "B": None}, "purse": purse4}, 99) == "voided"
    later = {"counter": 7, "balance": 10, "points": 0, "tag": 3}
    six = {"counter": 6, "balance": 20, "points": 0, "tag": 2}
    assert sale.resolve(pending, {"copies": {"A": six, "B": later}, "purse": later}, 99) is None


# -- the terminal ------------------------------------------------------------------------------


def test_a_sale_with_discount_points_and_stored_value():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        hh.boot()
        assert hh.display.lines[0] == "Ready" and hh.display.lines[2] == "Prices v3"
        card = member_card(3, balance=1000, points=200, tier=2)
        assert hh.sell(card, ["2*102", "401"], extra_keys=("POINTS",)) == sale.RECEIPT
        [record] = hh.records("sale")
        # 2 x 3.20 discountable at 12.5 % = 0.80 off; the voucher is not discounted.
        assert (record["subtotal"], record["discount"], record["total"]) == (2640, 80, 2560)
        assert (record["points_value"], record["stored_value"], record["cash"]) == (200, 1000, 1360)
        assert record["points_earned"] == 23 and record["device"] == DEVICE and record["price_list_version"] == 3
        assert salecheck.verify_sale(pricing.PriceList(PRICES), record, 1000, 200) == []
        assert hh.outcomes() == [(record["seq"], "committed")]
        purse = purse_of(card)
        assert (purse["balance"], purse["points"], purse["counter"]) == (0, 23, 1)
        assert purse["tag"] == layout.txn_tag(DEVICE, record["seq"])
        assert hh.display.lines[0].startswith("PAID 25.60")


def test_a_card_left_on_the_reader_does_not_buy_twice():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        hh.boot()
        card = member_card()
        assert hh.sell(card, ["101"]) == sale.RECEIPT
        hh.run()
        hh.run()
        assert hh.state == sale.RECEIPT and len(hh.records("sale")) == 1
        hh.reader.remove()
        hh.run()
        hh.reader.tap(card)
        hh.run()
        assert hh.state == sale.ITEMS  # off the reader and back: a new sale


def test_bad_entries_and_refused_cards_leave_events_not_sales():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        hh.boot()
        hh.reader.tap(member_card())
        hh.run()
        hh.keypad.type("999")
        hh.press("ENTER")
        assert hh.state == sale.ITEMS and hh.display.lines[3] == "Unknown item 999"
        hh.press("CANCEL")
        assert hh.state == sale.CANCELLED
        hh.press("OK")
        hh.reader.tap(FakeCard.blank(bytes([9, 9, 9, 9])))
        hh.run()
        assert hh.state == sale.ERROR and "blank card" in hh.display.text()
        assert hh.codes() == ["unknown_item", "sale_cancelled", "blank_card"]
        assert hh.records("sale") == []


def test_card_pulled_mid_write_then_back():
    for writes, result in ((1, "voided"), (2, "committed")):
        with TempDir() as tmp:
            hh = Handheld(tmp)
            hh.boot()
            card = member_card(balance=5000)
            hh.ring_up(card, ["101"])
            hh.reader.pull_after(writes)  # 1: the MAC block never lands; 2: both land, the read-back fails
            hh.press("OK")
            assert hh.state == sale.UNFINISHED and hh.display.lines[0] == "Card removed!", writes
            assert "card_lost" in hh.codes()
            hh.reader.tap(card)
            hh.run()
            assert hh.state == sale.RECEIPT, (writes, hh.display.text())
            assert hh.outcomes() == [(1, result)], writes
            assert purse_of(card)["balance"] == (5000 if result == "voided" else 4750), writes
            if result == "voided":
                assert "NOT charged" in hh.display.lines[0]


def test_power_cut_anywhere_in_a_sale_loses_nothing_and_doubles_nothing():
    # Cut the power at every flash write of a sale, in every way; reboot; tap the card again.
    cuts = 0
    for n in range(4):
        for mode in ("before", "torn", "after"):
            with TempDir() as tmp:
                hh = Handheld(tmp)
                hh.boot()
                card = member_card(balance=5000)
                hh.ring_up(card, ["101"])
                hh.flash.arm(n, mode)
                try:
                    hh.press("OK")
                except PowerCut:
                    cuts += 1
                else:
                    hh.flash.disarm()
                    assert hh.state == sale.RECEIPT
                    continue
                hh.boot()
                hh.reader.remove()
                hh.run()
                hh.reader.tap(card)
                hh.run()
                where = "write %d, %s" % (n, mode)
                sales = hh.records("sale")
                pending = hh.terminal.journal.pending_sales if hh.terminal else {}
                assert not pending, where
                balance = purse_of(card)["balance"]
                committed = [ref for ref, result in hh.outcomes() if result == "committed"]
                assert len(committed) <= 1, where
                assert balance == 5000 - 250 * len(committed), (where, balance, hh.outcomes())
                assert len(sales) == len(hh.outcomes()), (where, sales, hh.outcomes())
    assert cuts >= 6  # the sale itself writes the flash at least twice


def test_reader_fault_is_journaled_once_and_clears():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        hh.reader.dead = True
        hh.boot()
        for _ in range(5):
            hh.run()
        assert hh.display.lines[0] == "Card reader fault" and hh.codes() == ["reader_fault"]
        hh.reader.dead = False
        hh.reader.tap(member_card())
        hh.run()
        assert hh.state == sale.ITEMS


def test_no_price_list_blocks_sales_with_a_message():
    with TempDir() as tmp:
        hh = Handheld(tmp, prices={"version": 2, "items": [{"id": 1, "price": 5}]})
        hh.boot()
        assert hh.display.lines[2] == "Prices v-" and hh.codes() == ["bad_price_list"]
        hh.reader.tap(member_card())
        hh.run()
        assert hh.state == sale.ERROR and "No price list" in hh.display.text()


# -- downlinks: the hotlist and card actions from HQ ----------------------------------------------


def test_a_hotlisted_card_is_refused_and_marked_blocked():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        t = hh.boot()
        card = member_card(1, balance=5000)
        assert t.downlink(dl.topic(DEVICE, dl.HOTLIST), dl.encode_hotlist(0, 2, [["9000000000000001", "lost"]]))
        hh.reader.tap(card)
        hh.run()
        assert hh.state == sale.ERROR and hh.display.lines[1:3] == ["Card blocked:", "reported lost"]
        assert ident_of(card)["blocked"] and purse_of(card)["balance"] == 5000
        assert hh.codes() == ["card_hotlisted"] and hh.records("sale") == []
        assert hh.boot().status()["hotlist"] == 2  # kept on flash


def test_a_topup_held_by_two_handhelds_is_applied_once():
    card = member_card(1, balance=1000)
    topup = dl.encode_actions(0, 5, [[5, "9000000000000001", 1, "topup", 700, 0, -1]])
    with TempDir() as tmp_a, TempDir() as tmp_b:
        first, second = Handheld(tmp_a), Handheld(tmp_b)
        for hh in (first, second):
            assert hh.boot().downlink(dl.topic(DEVICE, dl.ACTIONS), topup)
        assert first.sell(card, ["101"]) == sale.RECEIPT
        assert (purse_of(card)["balance"], ident_of(card)["actions"]) == (1450, 1)
        [act] = first.records("action")
        assert act["amount"] == 700 and (act["seq"], "committed") in first.outcomes()
        card.reset()
        assert second.sell(card, ["101"]) == sale.RECEIPT
        assert purse_of(card)["balance"] == 1200 and second.records("action") == []


def test_an_action_torn_in_the_identity_is_finished_on_the_next_tap():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        t = hh.boot()
        card = member_card(1, balance=1000)
        t.downlink(dl.topic(DEVICE, dl.ACTIONS), dl.encode_actions(0, 5, [[5, "9000000000000001", 1, "topup", 700, 0, -1]]))
        hh.reader.pull_after(2)  # header and member blocks land, the identity MAC does not
        hh.reader.tap(card)
        hh.run()
        assert hh.state == sale.UNFINISHED
        with raises(layout.CardError, "bad_mac"):
            ident_of(card)
        hh.reader.tap(card)
        hh.run()
        assert hh.state == sale.ITEMS, hh.display.text()
        assert (ident_of(card)["actions"], purse_of(card)["balance"]) == (1, 1700)
        assert [r for _ref, r in hh.outcomes()] == ["committed"]


def test_an_action_taking_more_points_than_the_card_holds_takes_them_all_and_says_so():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        t = hh.boot()
        card = member_card(1, balance=1000, points=5)
        # A refund: 2.00 back, 30 points taken back; the card holds 5.
        t.downlink(dl.topic(DEVICE, dl.ACTIONS), dl.encode_actions(0, 7, [[7, "9000000000000001", 1, "refund", 200, -30, -1]]))
        hh.reader.tap(card)
        hh.run()
        assert hh.state == sale.ITEMS, hh.display.text()
        assert (purse_of(card)["balance"], purse_of(card)["points"], ident_of(card)["actions"]) == (1200, 0, 1)
        [act] = hh.records("action")
        assert (act["act"], act["amount"], act["points"], act["points_after"]) == ("refund", 200, -5, 0)
        assert hh.codes() == []
