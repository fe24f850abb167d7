"""The hub's side of the downlinks on a real SQLite database: what each device must hear, the
applied card actions coming back through ingest (posted once), and the devices-behind view."""

import json
import random

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hub import downlinks
from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.db import make_engine, migrate
from hub.downlink_queue import hotlist_change, queue_action
from hub.ingest import Ingestor
from hub.models import Anomaly, Card, CardAction, Device, LedgerEntry, PublishedPrices
from protocol import downlink as dl
from protocol.sync import encode_batch
from simulator.handheld import VirtualHandheld
from simulator.mifare_card import MifareClassic1K
from simulator.shop import PRICE_LIST, master_key, member_card, read_card_directly

A, B, C = "9000000000000001", "9000000000000002", "9000000000000003"


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(eng)
    with Session(eng) as db:
        db.add(Device(id="hh-a", shop="north", password_hash="x", created=0))
        db.add(Device(id="hh-b", shop="north", password_hash="x", created=0))
        db.add(Device(id="hh-s", shop="south", password_hash="x", created=0))
        db.commit()
    return eng


def device(db, device_id):
    found = db.get(Device, device_id)
    assert found is not None
    return found


def decoded_hotlist(messages):
    return [dl.decode_hotlist(payload) for _to, payload in messages]


def test_an_offline_device_gets_only_the_hotlist_changes_after_its_version(engine):
    with Session(engine) as db:
        hotlist_change(db, A, "a1", True, "lost", 10)  # v1
        hotlist_change(db, B, "b2", True, "lost", 11)  # v2
        hotlist_change(db, A, "a1", False, "found", 12)  # v3: A back in its owner's pocket
        hotlist_change(db, C, "c3", True, "replaced", 13)  # v4
        db.commit()
        newest = downlinks.latest_versions(db).hotlist
        assert newest == 4
        hh = device(db, "hh-a")
        hh.hotlist_version = 2  # it went offline after v2
        [(frm, to, cards)] = decoded_hotlist(downlinks.messages(db, hh, dl.HOTLIST, 2, newest))
        assert (frm, to, cards) == (2, 4, [[A, ""], [C, "replaced"]])
        # A device that never had any gets each card's last change only: A appears once, as taken off.
        [(frm, to, cards)] = decoded_hotlist(downlinks.messages(db, hh, dl.HOTLIST, 0, newest))
        assert (frm, to) == (0, 4) and sorted(cards) == [[A, ""], [B, "lost"], [C, "replaced"]]


def test_a_long_hotlist_goes_in_chunks_that_chain(engine):
    with Session(engine) as db:
        for n in range(120):
            hotlist_change(db, f"9{1000 + n:015d}", "", True, "lost", n)
        db.commit()
        hh = device(db, "hh-a")
        messages = downlinks.messages(db, hh, dl.HOTLIST, 0, 120)
    assert [(f, t, len(c)) for f, t, c in decoded_hotlist(messages)] == [(0, 50, 50), (50, 100, 50), (100, 120, 20)]
    assert max(len(p) for _t, p in messages) < dl.MAX_MESSAGE


def test_pending_actions_after_the_device_version_go_down(engine):
    with Session(engine) as db:
        first = queue_action(db, A, "topup", 10, "hq", amount=1500)
        tier = queue_action(db, B, "tier", 11, "hq", tier=2)
        done = queue_action(db, A, "topup", 12, "hq", amount=300, points=5)
        done.state = "applied"
        db.commit()
        latest = downlinks.latest_versions(db)
        hh = device(db, "hh-a")
        assert downlinks.behind(hh, latest) == {dl.ACTIONS: [0, done.id]}
        [(to, payload)] = downlinks.messages(db, hh, dl.ACTIONS, 0, latest.actions)
        frm, to, rows = dl.decode_actions(payload)
        assert (frm, to) == (0, done.id)  # the applied one moves the version, it is not sent
        assert rows == [[first.id, A, 1, "topup", 1500, 0, -1], [tier.id, B, 1, "tier", 0, 0, 2]]
        assert first.id is not None
        [(_to, payload)] = downlinks.messages(db, hh, dl.ACTIONS, first.id, latest.actions)
        assert dl.decode_actions(payload)[2] == [[tier.id, B, 1, "tier", 0, 0, 2]]


def test_coupon_actions_go_in_messages_of_at_most_512_bytes_that_chain():
    # Twelve coupon actions (~90 bytes of JSON each) would be one ~1 KB message: a handheld with a nearly
    # full heap may find no free block that big, so they go in several, each under ACTIONS_BYTES, all of them.
    pending = [CardAction(id=n, card_no=f"90000000000000{n:02d}", number=1 + n % 2, kind="coupon", created=0)
               for n in range(1, 13)]
    coupons = {n: [1000 + n, 1 + n % 2, 300 if n % 2 else 1000, 0, 20000, 20030] for n in range(1, 13)}
    messages = downlinks.actions_messages(0, 15, pending, coupons)
    decoded = [dl.decode_actions(payload) for _to, payload in messages]
    assert len(messages) > 1 and all(len(payload) <= downlinks.ACTIONS_BYTES for _to, payload in messages)
    assert [to for to, _p in messages] == [to for _f, to, _a in decoded] and decoded[-1][1] == 15
    assert [f for f, _t, _a in decoded] == [0] + [t for _f, t, _a in decoded[:-1]]  # each starts where the last ended
    assert [a[0] for _f, _t, rows in decoded for a in rows] == list(range(1, 13))
    assert [a[7] for _f, _t, rows in decoded for a in rows] == [coupons[n] for n in range(1, 13)]


def test_a_newer_price_list_of_its_own_shop_goes_down(engine):
    with Session(engine) as db:
        for shop, version in (("north", 1), ("north", 2), ("south", 1)):
            doc = json.dumps(dict(PRICE_LIST, version=version))
            db.add(PublishedPrices(shop_id=shop, version=version, published=0, sha256="x", doc=doc))
        db.commit()
        latest = downlinks.latest_versions(db)
        assert latest.prices == {"north": 2, "south": 1}
        north, south = device(db, "hh-a"), device(db, "hh-s")
        north.prices_version = 1
        assert downlinks.behind(north, latest) == {dl.PRICES: [1, 2]}
        [(version, payload)] = downlinks.messages(db, north, dl.PRICES, 1, 2)
        assert version == 2 and dl.decode_prices(payload).version == 2
        south.prices_version = 1
        assert downlinks.behind(south, latest) == {}


def test_devices_behind_says_who_lacks_which_version(engine):
    with Session(engine) as db:
        hotlist_change(db, A, "a1", True, "lost", 10)
        queue_action(db, B, "topup", 10, "hq", amount=100)
        db.add(PublishedPrices(shop_id="north", version=3, published=0, sha256="x", doc="{}"))
        hh = device(db, "hh-b")
        hh.prices_version, hh.hotlist_version, hh.actions_version = 3, 1, 1
        db.commit()
        view = {d["device"]: d for d in downlinks.devices_behind(db)}
    assert view["hh-a"]["behind"] == {"prices": [0, 3], "hotlist": [0, 1], "actions": [0, 1]}
    assert view["hh-b"]["behind"] == {} and view["hh-b"]["versions"] == {"prices": 3, "hotlist": 1, "actions": 1, "lease": 0}
    assert view["hh-s"]["behind"] == {"hotlist": [0, 1], "actions": [0, 1]}  # nothing published for its shop


# -- applied actions coming back -------------------------------------------------------------


def journal_records(hh):
    return [data for _seq, data in hh.journal().entries()]


def test_an_applied_topup_is_posted_once_even_when_two_handhelds_report_it(engine, tmp_path):
    rng = random.Random(4)
    master = master_key(rng)
    card = member_card(rng, master, 1, balance=1000, points=0, tier=0)
    clone = MifareClassic1K.from_json(card.to_json())  # copied before the top-up reached the card
    with Session(engine) as db:
        db.add(Card(card_no=A, uid=card.uid.hex(), member_id=1, tier=0, balance=1000, opening_balance=1000))
        action = queue_action(db, A, "topup", 10, "hq", amount=1500, points=30)
        db.commit()
        assert action.id is not None
        topup = dl.encode_actions(0, action.id, [[action.id, A, 1, "topup", 1500, 30, -1]])
    made = []
    for name, tapped in (("hh-a", card), ("hh-b", clone)):
        hh = VirtualHandheld(name, tmp_path, master, PRICE_LIST)
        hh.boot()
        hh.terminal.downlink(dl.topic(name, dl.ACTIONS), topup)
        hh.sell(tapped, [(101, 1)])
        made.append((name, journal_records(hh)))
        hh.close()
    ingest = Ingestor(engine, lambda: 99)
    for name, records in made:
        ingest.ingest([(name, encode_batch(records))])
    with Session(engine) as db:
        applied = db.get(CardAction, action.id)
        assert applied is not None and (applied.state, applied.applied_device, applied.applied_seq) == ("applied", "hh-a", 1)
        postings = db.exec(select(LedgerEntry).where(LedgerEntry.memo == "topup")).all()
        assert sorted((p.account, p.amount) for p in postings) == [("points", 30), ("stored_value", 1500)]
        codes = sorted(a.code for a in db.exec(select(Anomaly)))
        assert codes == ["action_applied_twice", "counter_repeat"]  # the clone shows, twice
        hub_card = db.get(Card, A)
        assert hub_card is not None and hub_card.points == 30 + 2 + 2
        # The genuine card holds 10.00 + 15.00 - 2.50; the hub also took the clone's sale, and listed it.
        assert read_card_directly(card, master)["purse"]["balance"] == 2250
        assert hub_card.balance == 1000 + 1500 - 250 - 250


def test_an_action_the_handheld_could_not_settle_is_listed(engine, tmp_path):
    rng = random.Random(5)
    master = master_key(rng)
    card = member_card(rng, master, 1, balance=1000, points=0, tier=0)
    with Session(engine) as db:
        action = queue_action(db, A, "topup", 10, "hq", amount=500)
        db.commit()
        assert action.id is not None
        topup = dl.encode_actions(0, action.id, [[action.id, A, 1, "topup", 500, 0, -1]])
    hh = VirtualHandheld("hh-a", tmp_path, master, PRICE_LIST)
    try:
        hh.boot()
        hh.terminal.downlink(dl.topic("hh-a", dl.ACTIONS), topup)
        guard = hh.pn532.card_write_guard
        assert guard is not None

        def pull(block, data):
            if block == 4:
                hh.pn532.inject("card_removed")  # gone before the rest of the identity is written
            return guard(block, data)

        hh.pn532.card_write_guard = pull
        hh.tap(card)
        hh.run()
        hh.press("CANCEL")  # the card does not come back
        hh.run()
        records = journal_records(hh)
    finally:
        hh.close()
    Ingestor(engine).ingest([("hh-a", encode_batch(records))])
    with Session(engine) as db:
        pending = db.get(CardAction, action.id)
        assert pending is not None and pending.state == "pending"
        assert [a.code for a in db.exec(select(Anomaly))] == ["action_unknown"]
        assert db.exec(select(LedgerEntry)).all() == []


def test_devices_api_shows_versions_and_what_is_behind(engine):
    with Session(engine) as db:
        hotlist_change(db, A, "a1", True, "lost", 10)
        device(db, "hh-a").hotlist_version = 1
        db.commit()
    _password, token = new_login(engine, "hq", ADMIN, 0)
    client = TestClient(create_app(engine, lambda: True), headers={"Authorization": f"Bearer {token}"})
    found = {d["id"]: d for d in client.get("/api/v1/devices").json()}
    assert found["hh-a"]["hotlist_version"] == 1 and found["hh-a"]["behind"] == {}
    assert found["hh-b"]["behind"] == {"hotlist": [0, 1]}
    assert client.get("/api/v1/devices/hh-b").json()["behind"] == {"hotlist": [0, 1]}
