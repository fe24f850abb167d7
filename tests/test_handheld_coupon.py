"""The simulator's sale driver hands over a coupon: COUPON is pressed until the wanted one is picked.

A virtual handheld on the real firmware, a card that gets two coupons from HQ's card actions at
the very tap of the sale (so the driver must read the card as the handheld does, after the tap).
"""

import random

from firmware import sale
from protocol import downlink as dl
from simulator.handheld import VirtualHandheld, committed_sales, coupon_presses
from simulator.shop import PRICE_LIST, master_key, member_card, read_card_directly
from simulator.vhal import SimClock

MASTER = master_key(random.Random(7))
NOW = 1_790_000_000
DAY = NOW // 86_400
CARD_NO = "9000000000000001"
FIXED = [7, 1, 300, 1_000, DAY - 1, DAY + 30]  # 3.00 off a total of 10.00 or more
PERCENT = [8, 2, 1_000, 0, DAY, DAY + 30]  # 10 % off


def coupon_actions(hh, coupons):
    """HQ's coupon actions for the card, as the hub's downlink carries them."""
    actions = [[n + 1, CARD_NO, n + 1, "coupon", 0, 0, -1, c] for n, c in enumerate(coupons)]
    assert hh.terminal.downlink(dl.topic(hh.device_id, dl.ACTIONS), dl.encode_actions(0, len(actions), actions))


def test_presses_count_only_the_slots_that_hold_a_coupon():
    assert coupon_presses([FIXED, PERCENT], 8) == 2
    assert coupon_presses([None, PERCENT], 8) == 1
    assert coupon_presses([FIXED, None], 8) == 0  # not on the card: nothing pressed


def test_the_driver_picks_the_wanted_coupon_and_keeps_what_the_handheld_said(tmp_path):
    hh = VirtualHandheld("hh-1", tmp_path, MASTER, PRICE_LIST, SimClock(NOW))
    try:
        hh.boot()
        card = member_card(random.Random(3), MASTER, 1, balance=5_000, points=0, tier=0)
        coupon_actions(hh, [FIXED, PERCENT])
        # Both coupons go onto the card at this tap; the driver still finds the second one.
        assert hh.sell(card, [(102, 2)], coupon=PERCENT[0]) == sale.RECEIPT
        assert read_card_directly(card, MASTER)["slots"] == [FIXED, PERCENT]
        assert hh.coupon_said == "Coupon -0.64"  # 10 % of 6.40
        sold = committed_sales(hh.journal())[-1]
        assert (sold["coupon"], sold["coupon_value"], sold["total"]) == (8, 64, 576)
        assert hh.ended_on[0] == f"PAID 5.76 #{sold['seq']}"

        assert hh.sell(card, [(102, 2), (101, 1)], coupon=FIXED[0]) == sale.RECEIPT  # 8.90: below 10.00
        assert hh.coupon_said == "Coupon needs 10.00"
        assert "coupon" not in committed_sales(hh.journal())[-1]

        assert hh.sell(card, [(102, 2)], coupon=PERCENT[0]) == sale.RECEIPT
        assert hh.coupon_said == "Coupon used"  # the card says so: the sale goes on without it

        assert hh.sell(card, [(101, 1)], coupon=99) == sale.RECEIPT  # not on the card: nothing pressed
        assert hh.coupon_said == "" and hh.ended_on[0].startswith("PAID 2.50 #")
    finally:
        hh.close()
