"""Downlinks end to end: a real Mosquitto, a real `hub serve` process, virtual handhelds on the real firmware.

HQ's changes are made in the hub's database as HQ's own code makes them (hub.downlink_queue,
published price lists); the hub notices them, the handhelds get them over MQTT, use them at
the next tap, and their records come back to the ledger.
"""

import json
import random

import pytest
from sqlmodel import Session, select

from firmware import sale
from hub.downlink_queue import hotlist_change, queue_action
from hub.downlinks import devices_behind
from hub.models import Card, CardAction, Device, LedgerEntry, PublishedPrices, Sale
from protocol import downlink as dl
from simulator.handheld import VirtualHandheld, committed_sales
from simulator.shop import PRICE_LIST, master_key, member_card, read_card_directly
from simulator.stack import Stack
from tests.stepping import until

MASTER = master_key(random.Random(21))
A, B, C = "9000000000000001", "9000000000000002", "9000000000000003"



def received(hh):
    """Record every downlink the handheld's sync loop hands over: [(kind, payload)]."""
    seen = []
    assert hh.sync is not None
    take = hh.sync.on_down

    def spy(topic, payload):
        seen.append((dl.kind_of(topic), payload))
        return take(topic, payload)

    hh.sync.on_down = spy
    return seen


@pytest.fixture
def shop(tmp_path):
    with Stack(tmp_path / "stack", MASTER) as stack:
        fleet = []
        for name in ("hh-1", "hh-2"):
            hh = VirtualHandheld(name, tmp_path, MASTER, PRICE_LIST, mqtt=stack.register(name, "north"))
            hh.boot()
            fleet.append(hh)
        try:
            yield stack, fleet
        finally:
            for hh in fleet:
                hh.close()


def test_hq_changes_reach_the_handhelds_are_used_and_come_back_once(shop):
    stack, (one, two) = shop
    rng = random.Random(1)
    regular = member_card(rng, MASTER, 1, balance=1000, points=0, tier=0)
    lost = member_card(rng, MASTER, 2, balance=4000, points=0, tier=0)
    newer = json.loads(json.dumps(PRICE_LIST))
    newer["version"] = 2
    newer["items"][0]["price"] = 275
    with Session(stack.engine) as db:
        db.add(Card(card_no=A, uid=regular.uid.hex(), member_id=1, tier=0, balance=1000, opening_balance=1000))
        db.add(PublishedPrices(shop_id="north", version=2, published=0, sha256="x", doc=json.dumps(newer)))
        hotlist_change(db, B, lost.uid.hex(), True, "lost", 10)
        topup = queue_action(db, A, "topup", 10, "hq", amount=1500)
        db.commit()
        topup_id = topup.id
    want = {"prices": 2, "hotlist": 1, "actions": topup_id}

    def everyone_has_it():
        """both handhelds hold price list 2, hotlist 1 and the top-up"""
        return all({k: hh.terminal.status()[k] for k in want} == want for hh in (one, two))

    until(everyone_has_it, [one, two])
    # A hotlisted card: refused with a clear message and marked blocked on the card.
    assert one.sell(lost, [(101, 1)]) == sale.ERROR and one.lines[1:3] == ["Card blocked:", "reported lost"]
    assert read_card_directly(lost, MASTER)["ident"]["blocked"]
    # The top-up: applied at the next tap, on whichever handheld sees the card first, once.
    assert one.sell(regular, [(101, 1)]) == sale.RECEIPT
    assert two.sell(regular, [(101, 1)]) == sale.RECEIPT
    assert read_card_directly(regular, MASTER)["purse"]["balance"] == 1000 + 1500 - 275 - 275
    assert [s["price_list_version"] for s in committed_sales(two.journal())] == [2]

    def synced():
        """every record acknowledged and the top-up posted"""
        with Session(stack.engine) as db:
            action = db.get(CardAction, topup_id)
            return one.backlog == 0 and two.backlog == 0 and action is not None and action.state == "applied"

    until(synced, [one, two])
    with Session(stack.engine) as db:
        action = db.get(CardAction, topup_id)
        assert action is not None and action.applied_device == "hh-1"
        posted = db.exec(select(LedgerEntry).where(LedgerEntry.memo == "topup")).all()
        assert [(p.account, p.amount) for p in posted] == [("stored_value", 1500)]
        card = db.get(Card, A)
        assert card is not None and card.balance == read_card_directly(regular, MASTER)["purse"]["balance"]
        assert {s.price_list_version for s in db.exec(select(Sale))} == {2}
        view = {d["device"]: d for d in devices_behind(db)}
        assert view["hh-1"]["behind"] == {} and view["hh-1"]["versions"] == want | {"lease": 1}  # and the lease the hub issued


def test_a_device_back_from_offline_gets_only_what_changed_since_its_version(shop):
    stack, (one, two) = shop
    with Session(stack.engine) as db:
        hotlist_change(db, A, "", True, "lost", 10)
        db.commit()
    until(lambda: one.terminal.status()["hotlist"] == two.terminal.status()["hotlist"] == 1, [one, two])
    seen = received(two)
    two.network.up = False
    two.sync_step()  # the link drops: the broker says so for it
    until(lambda: not _online(stack, "hh-2"), [one])
    with Session(stack.engine) as db:
        hotlist_change(db, B, "", True, "lost", 11)
        hotlist_change(db, C, "", True, "replaced", 12)
        hotlist_change(db, B, "", False, "found", 13)
        db.commit()
    until(lambda: one.terminal.status()["hotlist"] == 4, [one])
    with Session(stack.engine) as db:
        assert {d["device"]: d["behind"] for d in devices_behind(db)}["hh-2"] == {"hotlist": [1, 4]}
    two.network.up = True
    until(lambda: two.terminal.status()["hotlist"] == 4, [two])
    deltas = [dl.decode_hotlist(p) for kind, p in seen if kind == dl.HOTLIST]
    assert deltas and all(frm == 1 for frm, _to, _cards in deltas)
    assert sorted(deltas[0][2]) == [[B, ""], [C, "replaced"]]  # not A again, B only as it is now
    assert two.terminal.downlinks.hotlist == {A: "lost", B: "", C: "replaced"}
    until(lambda: _versions(stack, "hh-2")[1] == 4, [two])  # and the hub heard it from the device


def _online(stack, device_id):
    with Session(stack.engine) as db:
        found = db.get(Device, device_id)
        return found is not None and found.online


def _versions(stack, device_id):
    with Session(stack.engine) as db:
        found = db.get(Device, device_id)
        assert found is not None
        return found.prices_version, found.hotlist_version, found.actions_version
