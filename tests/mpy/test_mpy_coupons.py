"""Coupons at the handheld: HQ's coupon action puts one on the card, a sale redeems it offline, once.

The same coupon on two handhelds: the second refuses it, because the card says used. A card
pulled at each write of the coupon action and of the sale: never used twice, never lost.
"""

import json

from harness import TempDir
from test_mpy_sale import DEVICE, MASTER, Handheld, ident_of, member_card

from firmware import sale
from protocol import card as layout
from protocol import coupon as cp
from protocol import downlink as dl

DAY = 1790000000 // 86400  # the fake clock's day
CARD_NO = "9000000000000001"
FIXED = [7, 1, 300, 1000, DAY - 1, DAY + 30]  # 3.00 off a total of 10.00 or more
GIFT = [8, 3, 101, 0, DAY, DAY]  # an espresso, today only


def coupon_action(hh, coupon, action_id=1, number=1):
    payload = dl.encode_actions(action_id - 1, action_id, [[action_id, CARD_NO, number, "coupon", 0, 0, -1, coupon]])
    assert hh.terminal.downlink(dl.topic(DEVICE, dl.ACTIONS), payload)


def on_card(card):
    """(slots, the newest purse) read straight from the card's memory."""
    blocks = card.blocks
    ident = ident_of(card)
    ext = ident.get("coupons")
    copies = []
    for c in "AB":
        numbers = layout.PURSE_BLOCKS[c] + ((layout.PURSE_BLOCKS[c][0] + 2,) if ext else ())
        copies.append(layout.decode_purse(MASTER, card.uid, CARD_NO, c, [blocks[b] for b in numbers]))
    purse = layout.choose_purse(copies[0], copies[1])[0]
    slots = cp.slots(MASTER, card.uid, [blocks[16], blocks[17], blocks[18]]) if ext else [None, None]
    return slots, purse


def tap_and_leave(hh, card):
    """Tap (HQ's actions are applied), then take the card away from the items screen."""
    hh.reader.remove()
    hh.run()
    hh.reader.tap(card)
    hh.run()
    assert hh.state == sale.ITEMS, hh.display.text()
    hh.press("CANCEL")
    hh.reader.remove()
    hh.run()


def redeem(hh, card, entries, presses=1):
    """Ring up, pick the card's coupon (COUPON pressed `presses` times), pay; the confirm screen as it was."""
    hh.reader.remove()
    hh.run()
    hh.ring_up(card, entries)
    for _ in range(presses):
        hh.press("COUPON")
    shown = list(hh.display.lines)
    hh.press("OK")
    return shown


def test_slots_verify_and_the_purse_marks_are_under_its_mac():
    uid = b"\x40\x01\x5a\xc3"
    blank = [bytes(16)] * 3
    slot, writes = cp.put(MASTER, uid, blank, None, FIXED, DAY)
    blocks = [writes[0], bytes(16), writes[1]]
    assert slot == 0 and cp.slots(MASTER, uid, blocks) == [FIXED, None]
    assert cp.put(MASTER, uid, blocks, None, FIXED, DAY) == (0, None)  # already there: nothing written
    slot, more = cp.put(MASTER, uid, blocks, None, GIFT, DAY)
    both = [writes[0], more[0], more[1]]
    assert slot == 1 and cp.slots(MASTER, uid, both) == [FIXED, GIFT]
    assert cp.put(MASTER, uid, both, None, [9, 1, 100, 0, DAY, DAY], DAY) == (-1, None)  # full
    forged = [bytes([writes[0][0] ^ 1]) + writes[0][1:]] + both[1:]
    assert cp.slots(MASTER, uid, forged) == [None, GIFT]  # a changed slot fails its MAC: empty
    assert cp.slots(MASTER, uid, [both[1], both[0], both[2]]) == [None, None]  # nor does a slot move
    used = cp.mark(None, 0, 7)
    assert cp.put(MASTER, uid, both, used, [9, 1, 100, 0, DAY, DAY], DAY)[0] == 0  # a used coupon's slot is free
    purse = {"counter": 3, "balance": 100, "points": 0, "tag": 0, "ext": used}
    data, mac = layout.encode_purse(MASTER, uid, CARD_NO, "A", purse)
    assert layout.decode_purse(MASTER, uid, CARD_NO, "A", [data, mac, used]) == purse
    assert layout.decode_purse(MASTER, uid, CARD_NO, "A", [data, mac, bytes(16)]) is None  # marks wiped: refused
    plain = dict(purse)
    del plain["ext"]
    assert layout.encode_purse(MASTER, uid, CARD_NO, "A", plain)[1] != mac


def test_a_coupon_reaches_the_card_and_is_redeemed_offline_once_across_handhelds():
    with TempDir() as tmp, TempDir() as other:
        first, second = Handheld(tmp), Handheld(other)
        first.boot()
        second.boot()
        card = member_card(balance=5000)
        for hh in (first, second):  # both hold the action: the first tap applies it, the other skips it
            coupon_action(hh, FIXED)
        tap_and_leave(first, card)
        assert ident_of(card)["coupons"] and on_card(card)[0] == [FIXED, None]
        shown = redeem(first, card, ["2*102", "101"])  # 8.90: below the minimum spend
        assert shown[3] == "Coupon needs 10.00" and first.state == sale.RECEIPT
        assert "coupon" not in first.records("sale")[-1] and on_card(card)[1]["balance"] == 4110
        shown = redeem(first, card, ["2*102", "2*101"])  # 11.40
        assert shown[0] == "Total 8.40" and shown[3] == "Coupon -3.00"
        sold = first.records("sale")[-1]
        assert (sold["coupon"], sold["coupon_value"], sold["total"]) == (7, 300, 840)
        assert on_card(card)[1]["balance"] == 4110 - 840
        tap_and_leave(second, card)  # the action is on the card already: skipped
        assert second.records("action") == []
        shown = redeem(second, card, ["2*102", "2*101"])
        assert shown[3] == "Coupon used" and shown[0] == "Total 11.40"
        assert "coupon" not in second.records("sale")[-1]


def test_a_gift_is_a_line_at_price_0_and_an_expired_coupon_is_refused():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        hh.boot()
        card = member_card(balance=5000)
        coupon_action(hh, GIFT)
        tap_and_leave(hh, card)
        redeem(hh, card, ["102"])
        sold = hh.records("sale")[-1]
        assert sold["lines"][-1] == {"item": 101, "qty": 1, "price": 0} and sold["total"] == 320 and sold["coupon"] == 8
        coupon_action(hh, [9, 1, 100, 0, DAY - 10, DAY - 1], 2, 2)  # expired yesterday
        tap_and_leave(hh, card)
        assert on_card(card)[0][0] == [9, 1, 100, 0, DAY - 10, DAY - 1]  # into the used gift's slot
        shown = redeem(hh, card, ["102"])
        assert shown[3] == "Coupon expired" and "coupon" not in hh.records("sale")[-1]


def test_a_card_pulled_at_each_write_of_the_coupon_action_gets_it_once():
    # Writes: the sector 4 trailer, the slot, the slot MAC, then the identity (header, member, MAC).
    seen = []
    for writes in range(6):
        with TempDir() as tmp:
            hh = Handheld(tmp)
            hh.boot()
            card = member_card(balance=5000)
            coupon_action(hh, FIXED)
            hh.reader.tap(card)
            hh.reader.pull_after(writes)
            hh.run()
            hh.reader.pull_after(-1)
            hh.reader.tap(card)  # back (the same handheld, which finishes what it began)
            hh.run()
            if hh.state != sale.ITEMS:
                hh.reader.remove()
                hh.run()
                hh.reader.tap(card)
                hh.run()
            assert hh.state == sale.ITEMS, (writes, hh.display.text())
            slots = on_card(card)[0]
            assert ident_of(card)["actions"] == 1 and slots.count(FIXED) == 1, (writes, slots)
            results = [r for _ref, r in hh.outcomes()]
            assert results.count("committed") == 1, (writes, results)
            seen.append(results)
    assert seen[0] == ["voided", "committed"] and seen[5] == ["committed"], seen


def test_a_card_pulled_at_each_write_of_a_coupon_sale_never_uses_it_twice_nor_loses_it():
    # The purse copy: data, marks, MAC. Until the MAC lands the old copy (coupon unused, nothing paid) wins.
    seen = []
    for writes in range(4):
        with TempDir() as tmp:
            hh = Handheld(tmp)
            hh.boot()
            card = member_card(balance=5000)
            coupon_action(hh, FIXED)
            tap_and_leave(hh, card)
            hh.ring_up(card, ["2*102", "2*101"])
            hh.press("COUPON")
            hh.reader.pull_after(writes)
            hh.press("OK")
            assert hh.state == sale.UNFINISHED, (writes, hh.display.text())
            hh.reader.pull_after(-1)
            hh.reader.tap(card)
            hh.run()
            result = hh.outcomes()[-1][1]
            seen.append(result)
            slots, purse = on_card(card)
            paid = purse["balance"] == 5000 - 840
            marked = cp.used(purse.get("ext"), 0) == 7
            assert paid == marked == (result == "committed"), (writes, result, purse)
            assert purse["balance"] in (5000, 4160) and slots[0] == FIXED
            hh.reader.remove()
            hh.run()
            shown = redeem(hh, card, ["2*102", "2*101"])
            assert shown[3] == ("Coupon used" if marked else "Coupon -3.00"), (writes, shown)
    assert seen == ["voided", "voided", "voided", "committed"], seen


def test_a_full_card_leaves_the_coupon_action_to_hq():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        hh.boot()
        card = member_card(balance=5000)
        for n, coupon in enumerate((FIXED, GIFT, [9, 2, 1000, 0, DAY, DAY + 9])):
            coupon_action(hh, coupon, n + 1, n + 1)
        tap_and_leave(hh, card)
        assert on_card(card)[0] == [FIXED, GIFT]
        assert hh.outcomes()[-1] == (hh.records("action")[-1]["seq"], "voided") and "bad_action" in hh.codes()


def test_a_coupon_downlink_is_checked():
    for bad in ([7, 4, 1, 0, 1, 2], [7, 2, 10001, 0, 1, 2], [7, 1, 1, 0, 5, 4], [7, 1, 1, 0, 1], [0, 1, 1, 0, 1, 2]):
        payload = json.dumps({"from": 0, "to": 1, "actions": [[1, CARD_NO, 1, "coupon", 0, 0, -1, bad]]})
        try:
            dl.decode_actions(payload)
        except Exception as exc:
            assert getattr(exc, "code", "") == "bad_actions", bad
        else:
            raise AssertionError("accepted %r" % (bad,))
