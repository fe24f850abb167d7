"""Coupons end to end: a real Mosquitto and `hub serve`, two handhelds on the real firmware.

HQ issues a coupon to a member; it reaches the card through a handheld; the member uses it on
a handheld that is offline; another offline handheld refuses it because the card says used; the
sale syncs, passes the hub's recompute, and the coupon is redeemed once.
"""

import random

from sqlmodel import Session, col, select

from firmware import sale
from hub import coupons
from hub import masterdata as md
from hub.models import Anomaly, Coupon, Member, Sale
from simulator.handheld import VirtualHandheld
from simulator.shop import master_key, member_card, read_card_directly
from simulator.stack import Stack
from tests.stepping import until

MASTER = master_key(random.Random(41))



def sell(hh, card, lines, keys=("COUPON",)):
    """Ring up, press keys on the confirm screen, pay: the confirm screen as shown."""
    hh.tap(card)
    hh.run()
    for item, qty in lines:
        hh.press(*f"{qty}*{item}", "ENTER")
    hh.press("OK", *keys)
    hh.run()
    shown = list(hh.lines)
    hh.press("OK")
    hh.run()
    assert hh.state == sale.RECEIPT, hh.lines
    hh.remove_card()
    hh.run()
    return shown


def test_a_coupon_from_hq_is_used_offline_once_and_the_hub_marks_it(tmp_path):
    with Stack(tmp_path / "stack", MASTER) as stack:
        with Session(stack.engine) as db:
            md.save_shop(db, "hq", 0, "north", "North")
            coffee = md.save_category(db, "hq", 0, "coffee")
            md.save_product(db, "hq", 0, 101, "Espresso", coffee.id)
            md.save_product(db, "hq", 0, 102, "Cappuccino", coffee.id)
            md.save_tier(db, "hq", 0, 0, "Member", 0, 10000)
            md.add_price_list(db, "hq", 0, {101: 250, 102: 320}, effective_from=0)
            md.publish_prices(db, "hq", 0, "north")
            db.commit()
        fleet = [VirtualHandheld(d, tmp_path, MASTER, None, mqtt=stack.register(d, "north")) for d in ("hh-1", "hh-2")]
        one, two = fleet
        try:
            for hh in fleet:
                hh.boot()
            until(lambda: all(hh.terminal.status()["prices"] == 1 for hh in fleet), fleet)
            card = member_card(random.Random(3), MASTER, 1, balance=5000, points=0, tier=0)
            sell(one, card, [(101, 1)], keys=())  # the hub learns the card and its member

            def known():
                """the hub holds the card's first sale"""
                with Session(stack.engine) as db:
                    return db.exec(select(Sale)).first() is not None

            until(known, fleet)
            with Session(stack.engine) as db:
                db.add(Member(id=1, name="Ana", created=0))
                t = coupons.add_template(db, "hq", 0, "15 % off 5.00", "percent", 1500, min_spend=500, valid_days=30)
                coupon_id = coupons.issue(db, "hq", one.clock.time(), t.id or 0, 1).id
                db.commit()
            until(lambda: all(hh.terminal.status()["actions"] >= 1 for hh in fleet), fleet)
            for hh in fleet:
                hh.network.up = False
            shown = sell(one, card, [(102, 2)])  # the action is written, then the coupon used: 6.40 - 15 %
            assert shown[0] == "Total 5.44" and shown[3] == "Coupon -0.96"
            assert read_card_directly(card, MASTER)["slots"][0][0] == coupon_id
            shown = sell(two, card, [(102, 2)])
            assert shown[3] == "Coupon used" and shown[0] == "Total 6.40"
            for hh in fleet:
                hh.network.up = True

            def synced():
                """both handhelds' sales are on the hub, committed"""
                with Session(stack.engine) as db:
                    return len(db.exec(select(Sale).where(Sale.state == "committed")).all()) == 3

            until(synced, fleet)
            with Session(stack.engine) as db:
                used = db.get(Coupon, coupon_id)
                assert used is not None and used.redeemed_device == "hh-1" and used.redeemed
                assert [s.coupon for s in db.exec(select(Sale).order_by(col(Sale.id)))] == [0, coupon_id, 0]
                assert db.exec(select(Anomaly)).all() == []  # the recompute agrees, nothing used twice
        finally:
            for hh in fleet:
                hh.close()
