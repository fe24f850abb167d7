"""Counter rules and offline limits end to end: a real Mosquitto and `hub serve`, handhelds on the real firmware.

HQ sets the lease limits and publishes a shop's rules; a fresh handheld gets both over MQTT, keeps
to the lease while offline, and its sales come back and pass the hub's recompute. A handheld whose
price list was tampered with is caught by that recompute, with both figures.
"""

import json
import random

from sqlmodel import Session, select

from firmware import sale
from hub import masterdata as md
from hub.models import Anomaly, Lease
from simulator.handheld import VirtualHandheld
from simulator.shop import master_key, member_card
from simulator.stack import Stack
from tests.stepping import until

MASTER = master_key(random.Random(31))



def test_a_lease_from_the_hub_limits_offline_stored_value_and_every_sale_is_checked(tmp_path):
    with Stack(tmp_path / "stack", MASTER) as stack:
        with Session(stack.engine) as db:
            md.save_shop(db, "hq", 0, "north", "North")
            coffee = md.save_category(db, "hq", 0, "coffee")
            md.save_product(db, "hq", 0, 102, "Cappuccino", coffee.id)
            md.save_tier(db, "hq", 0, 0, "Member", 0, 20000)
            md.add_price_list(db, "hq", 0, {102: 320}, effective_from=0)
            md.set_param(db, "hq", 0, "lease.max_sv_per_sale", 700)
            md.set_param(db, "hq", 0, "lease.max_sv_offline_total", 1000)
            published, _ = md.publish_prices(db, "hq", 0, "north")
            db.commit()
            doc = json.loads(published.doc)
        tampered = json.loads(json.dumps(doc))
        tampered["tiers"][0]["points_bps"] = 50000  # earns x5 where HQ said x2
        honest = VirtualHandheld("hh-1", tmp_path, MASTER, None, mqtt=stack.register("hh-1", "north"))
        cheat = VirtualHandheld("hh-2", tmp_path, MASTER, tampered, mqtt=stack.register("hh-2", "north"))
        fleet = [honest, cheat]
        try:
            for hh in fleet:
                hh.boot()

            def leased():
                """both handhelds hold the hub's lease, and the fresh one the shop's rules"""
                return honest.terminal.status()["prices"] == 1 and all(hh.terminal.status()["lease"] == 1 for hh in fleet)

            until(leased, fleet)
            with Session(stack.engine) as db:
                lease = db.get(Lease, "hh-1")
                assert lease is not None and (lease.max_sv_per_sale, lease.max_sv_offline_total) == (700, 1000)
            rng = random.Random(2)
            cards = [member_card(rng, MASTER, n, balance=5000, points=0, tier=0) for n in (1, 2, 3)]
            honest.network.up = False
            assert honest.sell(cards[0], [(102, 3)]) == sale.CONFIRM  # 9.60 from the card: over 7.00 a sale
            assert honest.lines[1:4] == ["Network needed:", "card pay max 7.00", "CASH: pay cash"]
            honest.press("CANCEL", "CANCEL")
            honest.run()
            honest.remove_card()
            honest.run()
            assert honest.sell(cards[0], [(102, 2)]) == sale.RECEIPT  # 6.40
            assert honest.sell(cards[1], [(102, 2)]) == sale.CONFIRM  # 12.80 in all: over 10.00
            assert honest.lines[2] == "offline max 10.00"
            honest.tap(cards[1])  # sell() took the card away: back on the reader, paid in cash
            honest.press("CASH", "OK")
            honest.run()
            assert honest.state == sale.RECEIPT
            honest.remove_card()
            honest.run()
            assert cheat.sell(cards[2], [(102, 1)]) == sale.RECEIPT
            honest.network.up = True
            until(lambda: honest.backlog == 0 and cheat.backlog == 0, fleet)
            # Synced: the counts start again.
            assert honest.sell(cards[1], [(102, 2)]) == sale.RECEIPT
            until(lambda: honest.backlog == 0, fleet)
            with Session(stack.engine) as db:
                found = [(a.code, a.device_id, a.detail) for a in db.exec(select(Anomaly))]
            assert [(code, device) for code, device, _d in found] == [("sale_mismatch", "hh-2")], found
            assert "points_earned: handheld 16, rules v1 give 6" in found[0][2]  # 320 x 1 x 5 vs x 2 (x1 per 100)
        finally:
            for hh in fleet:
                hh.close()
