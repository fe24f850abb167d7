"""Downlinks on a virtual handheld running the real firmware: price lists, the hotlist, card actions.

The messages go in as the sync loop hands them over (Terminal.downlink); the MQTT path
is in tests/test_downlinks_sync.py. What a member or staff would check: the screen, the
card, the journal.
"""

import json
import random

import pytest

from firmware import sale
from protocol import downlink as dl
from simulator.handheld import VirtualHandheld, committed_sales
from simulator.shop import PRICE_LIST, master_key, member_card, read_card_directly

MASTER = master_key(random.Random(11))
CARD_NO = "9000000000000001"


@pytest.fixture
def rng():
    return random.Random(3)


@pytest.fixture
def handhelds(tmp_path):
    made = []

    def make(device_id="hh-a"):
        hh = VirtualHandheld(device_id, tmp_path, MASTER, PRICE_LIST)
        hh.boot()
        made.append(hh)
        return hh

    yield make
    for hh in made:
        hh.close()


def send(hh, kind, payload):
    return hh.terminal.downlink(dl.topic(hh.device_id, kind), payload)


def hotlist(hh, frm, to, cards):
    return send(hh, dl.HOTLIST, dl.encode_hotlist(frm, to, cards))


def actions(hh, frm, to, rows):
    return send(hh, dl.ACTIONS, dl.encode_actions(frm, to, rows))


def records(hh, kind):
    return [r for r in hh.journal().records() if r["kind"] == kind]


def codes(hh):
    return [r["code"] for r in records(hh, "event")]


def on_card(card):
    state = read_card_directly(card, MASTER)
    return state["ident"], state["purse"]


def test_a_hotlisted_card_is_refused_marked_blocked_and_refused_elsewhere_too(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    synced, stale = handhelds("hh-a"), handhelds("hh-b")
    assert hotlist(synced, 0, 3, [[CARD_NO, "lost"]])
    assert synced.sell(card, [(101, 1)]) == sale.ERROR
    assert synced.lines[1:3] == ["Card blocked:", "reported lost"]
    assert codes(synced) == ["card_hotlisted"] and records(synced, "sale") == []
    ident, purse = on_card(card)
    assert ident["blocked"] and purse["balance"] == 5000  # the card itself now says so, money untouched
    # A handheld that never heard of the hotlist entry refuses it by the card's own flag.
    assert stale.sell(card, [(101, 1)]) == sale.ERROR
    assert stale.lines[1:3] == ["Card blocked:", "see HQ"] and codes(stale) == ["card_blocked"]
    # HQ takes it off the list (found again): a handheld that knows clears the flag, the card sells again.
    assert hotlist(stale, 0, 4, [[CARD_NO, ""]])
    assert stale.sell(card, [(101, 1)]) == sale.RECEIPT
    assert not on_card(card)[0]["blocked"] and codes(stale)[-1] == "card_unblocked"


def test_a_hotlisted_card_pulled_while_it_is_marked_is_refused_all_the_same(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    hh = handhelds()
    hotlist(hh, 0, 1, [[CARD_NO, "lost"]])
    pull_during(hh, 4)  # the card leaves between the flag's header block and the MAC
    hh.tap(card)
    hh.run()
    assert hh.state == sale.ERROR and hh.lines[1:3] == ["Card blocked:", "reported lost"]
    assert codes(hh) == ["card_hotlisted", "card_lost"]
    hh.press("OK")
    hh.tap(card)  # back on this handheld: the flag it meant to write is finished
    hh.run()
    assert hh.state == sale.ERROR and on_card(card)[0]["blocked"]


def test_hotlist_deltas_apply_in_order_and_survive_a_reboot(handhelds, rng):
    hh = handhelds()
    assert hotlist(hh, 0, 2, [["9000000000000002", "lost"], [CARD_NO, "replaced"]])
    assert not hotlist(hh, 0, 2, [["9000000000000002", "lost"]])  # again: nothing moves
    assert not hotlist(hh, 5, 7, [["9000000000000003", "lost"]])  # a gap: not taken, the hub sends from 2
    assert hotlist(hh, 2, 4, [["9000000000000002", ""]])
    hh.boot()
    assert hh.terminal.status()["hotlist"] == 4
    assert hh.terminal.downlinks.hotlist == {"9000000000000002": "", CARD_NO: "replaced"}
    card = member_card(rng, MASTER, 1, balance=100, points=0, tier=0)
    assert hh.sell(card, [(101, 1)]) == sale.ERROR and hh.lines[2] == "replaced"


def test_a_topup_is_applied_once_even_when_two_handhelds_hold_it(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=1000, points=10, tier=0)
    first, second = handhelds("hh-a"), handhelds("hh-b")
    topup = [[41, CARD_NO, 1, "topup", 1500, 20, -1]]
    for hh in (first, second):
        assert actions(hh, 0, 41, topup) and hh.terminal.status()["actions"] == 41
    assert first.sell(card, [(101, 1)]) == sale.RECEIPT  # 2.50 from 10.00 + 15.00
    ident, purse = on_card(card)
    assert ident["actions"] == 1 and (purse["balance"], purse["points"], purse["counter"]) == (2250, 32, 2)
    [applied] = records(first, "action")
    assert (applied["action"], applied["number"], applied["amount"], applied["points"]) == (41, 1, 1500, 20)
    assert (applied["counter_before"], applied["counter_after"], applied["balance_after"]) == (0, 1, 2500)
    outcomes = {r["ref"]: r["result"] for r in records(first, "outcome")}
    assert outcomes[applied["seq"]] == "committed" and not first.journal().pending_sales
    assert first.terminal.downlinks.actions == []
    # The second handheld sees the card's number and skips it: no second top-up, no record.
    assert second.sell(card, [(101, 1)]) == sale.RECEIPT
    assert on_card(card)[1]["balance"] == 2000 and records(second, "action") == []
    assert second.terminal.downlinks.actions == []


def test_a_tier_change_is_written_before_the_sale_and_prices_it(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    hh = handhelds()
    assert actions(hh, 0, 9, [[9, CARD_NO, 1, "tier", 0, 0, 2]])
    hh.tap(card)
    hh.run()
    assert hh.state == sale.ITEMS and hh.lines[3] == "Card updated by HQ" and "Gold" in hh.lines[0]
    hh.remove_card()
    hh.run()
    assert hh.sell(card, [(102, 2)]) == sale.RECEIPT
    [sold] = committed_sales(hh.journal())
    assert sold["tier"] == 2 and sold["discount"] == 80  # 12.5 % of 6.40
    ident, purse = on_card(card)
    assert (ident["tier"], ident["actions"], purse["counter"]) == (2, 1, 1)  # the tier change left the purse alone


@pytest.mark.parametrize("pull_after", [5, 6, 12], ids=["identity-torn", "before-purse", "purse-torn"])
def test_card_pulled_while_an_action_is_written_gets_it_exactly_once(handhelds, rng, pull_after):
    """Pulled after block 5 (identity data, MAC not yet), after the identity, or inside the purse write."""
    card = member_card(rng, MASTER, 1, balance=1000, points=0, tier=0)
    hh = handhelds()
    actions(hh, 0, 7, [[7, CARD_NO, 1, "topup", 500, 0, -1]])
    guard = hh.pn532.card_write_guard

    def pull(block, data):
        if block == pull_after:
            hh.pn532.inject("card_removed")  # the next card command finds no card
        return guard(block, data)

    hh.pn532.card_write_guard = pull
    hh.tap(card)
    hh.run()
    assert hh.state == sale.UNFINISHED and hh.lines[0] == "Card removed!"
    hh.pn532.card_write_guard = guard
    hh.tap(card)
    hh.run()
    hh.run()
    assert hh.state == sale.ITEMS  # finished, and the sale goes on
    ident, purse = on_card(card)
    assert ident["actions"] == 1 and purse["balance"] == 1500
    results = [r["result"] for r in records(hh, "outcome")]
    assert results.count("committed") == 1 and not hh.journal().pending_sales
    hh.remove_card()
    hh.run()
    assert hh.sell(card, [(101, 1)]) == sale.RECEIPT and on_card(card)[1]["balance"] == 1250


def pull_during(hh, block):
    """Pull the card right after the given block is written (the next card command finds none)."""
    guard = hh.pn532.card_write_guard

    def pull(written, data):
        if written == block:
            hh.pn532.inject("card_removed")
            hh.pn532.card_write_guard = guard
        return guard(written, data)

    hh.pn532.card_write_guard = pull


def test_a_torn_identity_is_refused_elsewhere_and_finished_where_it_was_written(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=1000, points=0, tier=0)
    first, second = handhelds("hh-a"), handhelds("hh-b")
    for hh in (first, second):
        actions(hh, 0, 7, [[7, CARD_NO, 1, "topup", 500, 0, -1]])
    pull_during(first, 5)  # member block written, its MAC not
    first.tap(card)
    first.run()
    assert first.state == sale.UNFINISHED
    assert second.sell(card, [(101, 1)]) == sale.ERROR and codes(second) == ["bad_mac"]  # never applied twice meanwhile
    first.tap(card)
    first.run()
    assert first.state == sale.ITEMS and on_card(card)[1]["balance"] == 1500
    first.remove_card()
    first.run()
    assert second.sell(card, [(101, 1)]) == sale.RECEIPT and on_card(card)[1]["balance"] == 1250
    assert records(second, "action") == []


def test_money_an_interrupted_action_may_have_missed_is_left_to_hq_never_doubled(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=1000, points=0, tier=0)
    first, second = handhelds("hh-a"), handhelds("hh-b")
    for hh in (first, second):
        actions(hh, 0, 7, [[7, CARD_NO, 1, "topup", 500, 0, -1]])
    pull_during(first, 6)  # the number is on the card, the money not yet
    first.tap(card)
    first.run()
    first.boot()  # the power goes; the card is used at the other handheld meanwhile
    assert second.sell(card, [(101, 1)]) == sale.RECEIPT  # the card says action 1 is done: skipped
    first.tap(card)
    first.run()
    assert on_card(card)[1]["balance"] == 750 and records(second, "action") == []
    [outcome] = records(first, "outcome")
    assert outcome["result"] == "unknown" and not first.journal().pending_sales  # the hub lists it for HQ


def test_a_new_price_list_is_used_by_the_next_sale_and_kept(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    hh = handhelds()
    newer = json.loads(json.dumps(PRICE_LIST))
    newer["version"] = 2
    newer["items"][0]["price"] = 275  # an espresso now costs 2.75
    assert send(hh, dl.PRICES, json.dumps(newer).encode())
    assert not send(hh, dl.PRICES, json.dumps(PRICE_LIST).encode())  # an older list never replaces a newer one
    assert hh.lines[2] == "Prices v2" and hh.terminal.status()["prices"] == 2
    assert hh.sell(card, [(101, 1)]) == sale.RECEIPT
    [sold] = committed_sales(hh.journal())
    assert sold["price_list_version"] == 2 and sold["total"] == 275
    hh.boot()
    assert hh.terminal.price_list is not None and hh.terminal.price_list.version == 2


def test_a_sale_under_way_keeps_the_list_it_started_with(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    hh = handhelds()
    hh.tap(card)
    hh.run()
    hh.press("1", "0", "1", "ENTER")
    hh.run()
    newer = dict(PRICE_LIST, version=2, items=[dict(PRICE_LIST["items"][0], price=999)])
    assert send(hh, dl.PRICES, json.dumps(newer).encode())
    hh.press("OK", "OK")
    hh.run()
    [sold] = committed_sales(hh.journal())
    assert (sold["price_list_version"], sold["total"]) == (1, 250)


@pytest.mark.parametrize(
    "kind, payload",
    [
        (dl.PRICES, b"{not json"),
        (dl.PRICES, json.dumps(dict(PRICE_LIST, version=5, items=[])).encode()),
        (dl.HOTLIST, b'{"from": 0, "to": 3, "cards": [["42", "lost"]]}'),
        (dl.HOTLIST, b'{"from": 4, "to": 3, "cards": []}'),
        (dl.ACTIONS, b'{"from": 0, "to": 2, "actions": [[1, "9000000000000001", 1, "jackpot", 5, 0, -1]]}'),
        (dl.ACTIONS, b'{"from": 0, "to": 2, "actions": [[1, "9000000000000001", 1, "topup", "5", 0, -1]]}'),
        (dl.ACTIONS, b"[]"),
    ],
)
def test_a_bad_downlink_is_an_event_and_changes_nothing(handhelds, kind, payload):
    hh = handhelds()
    files = {name: hh.flash.read(name) for name in ("prices.json", "hotlist.json", "actions.json")}
    before = hh.terminal.status()
    assert not send(hh, kind, payload)
    assert hh.terminal.status() == before
    assert {name: hh.flash.read(name) for name in files} == files
    [event] = records(hh, "event")
    assert event["code"] == "bad_downlink" and event["message"].startswith(kind)


def test_an_action_the_purse_cannot_take_is_reported_and_dropped(handhelds, rng):
    card = member_card(rng, MASTER, 1, balance=100, points=0, tier=0)
    hh = handhelds()
    actions(hh, 0, 2, [[2, CARD_NO, 1, "transfer", -500, 0, -1]])
    assert hh.sell(card, [(101, 1)], pay_cash=True) == sale.RECEIPT
    assert codes(hh) == ["bad_action"] and on_card(card)[0]["actions"] == 0
    assert hh.terminal.downlinks.actions == []
