"""A handheld online all along keeps its offline lease through quiet days (found by the loyalty-year scenario).

The lease counts from the last sync, an ack from the hub covering every record. A till
with nothing to send got no ack, so after lease.expires_after_s of quiet it refused stored
value as "offline too long" though it never lost the network. It now publishes its status
at least hourly; the hub answers every status with an ack. Offline, the lease still runs out.
"""

import random
import time

from sqlmodel import Session

from firmware import sale
from hub import masterdata as md
from simulator.handheld import VirtualHandheld
from simulator.shop import master_key, member_card
from simulator.stack import Stack
from simulator.vhal import SimClock

MASTER = master_key(random.Random(41))
HOUR = 3600


def until(what, hh, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what.__doc__}"
        hh.sync_step()
        time.sleep(0.01)


def test_a_quiet_online_handheld_keeps_its_lease_and_an_offline_one_does_not(tmp_path):
    with Stack(tmp_path / "stack", MASTER) as stack:
        with Session(stack.engine) as db:
            md.save_shop(db, "hq", 0, "north", "North")
            md.save_product(db, "hq", 0, 102, "Cappuccino")
            md.save_tier(db, "hq", 0, 0, "Member", 0)
            md.add_price_list(db, "hq", 0, {102: 320}, effective_from=0)
            md.set_param(db, "hq", 0, "lease.expires_after_s", 24 * HOUR)
            md.publish_prices(db, "hq", 0, "north")
            db.commit()
        hh = VirtualHandheld("hh-1", tmp_path, MASTER, None, SimClock(), mqtt=stack.register("hh-1", "north"))
        try:
            hh.boot()

            def ready():
                """the shop's prices and the hub's lease on the handheld"""
                return hh.terminal.status()["prices"] == 1 and hh.terminal.status()["lease"] == 1

            until(ready, hh)
            card = member_card(random.Random(1), MASTER, 1, balance=5000, points=0, tier=0)
            assert hh.sell(card, [(102, 1)]) == sale.RECEIPT
            until(lambda: hh.backlog == 0, hh)
            # Two quiet days online: no sale, only the hourly status and the hub's ack.
            for _ in range(48):
                hh.clock.advance(HOUR)

                def heard():
                    """the hub's answer to this hour's status"""
                    return hh.terminal.downlinks.synced_at == hh.clock.time()

                until(heard, hh)
            assert hh.sell(card, [(102, 1)]) == sale.RECEIPT, hh.lines
            until(lambda: hh.backlog == 0, hh)
            # The network goes: a day and a minute later the lease has run out.
            hh.network.up = False
            hh.sync_step()
            hh.clock.advance(24 * HOUR + 60)
            assert hh.sell(card, [(102, 1)]) == sale.CONFIRM
            assert hh.lines[1:3] == ["Network needed:", "offline too long"]
        finally:
            hh.close()
