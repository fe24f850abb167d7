"""Coupons at the hub: templates, issuing to a member and a group, grants, redemption from synced sales, anomalies.

A virtual handheld runs the real firmware; the hub's ingest runs on real SQLite (tests/test_points_card.Shop).
"""

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from firmware import sale
from hub import cards, coupons, issuance, refunds
from hub.app import create_app
from hub.auth import ADMIN, SHOP_MANAGER, new_login
from hub.cli import main as hub_cli
from hub.cli_cards import make_card_batch
from hub.downlinks import latest_versions, messages
from hub.ingest import Ingestor
from hub.models import (
    Anomaly,
    AuditEntry,
    CardAction,
    Coupon,
    CouponGrant,
    CouponTemplate,
    Device,
    LedgerEntry,
    Member,
    MemberTag,
    Product,
    Sale,
)
from hub.models import Shop as Shop_
from protocol import downlink as dl
from protocol.sync import encode_batch
from simulator.direct_reader import DirectReader
from simulator.handheld import VirtualHandheld
from simulator.mifare_card import MifareClassic1K
from simulator.shop import PRICE_LIST, read_card_directly
from tests.test_points_card import CARD_1, DAY, MASTER, Shop


class CouponShop(Shop):
    """The shop, with member 1's card known to the hub from its first sale."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path)
        self.card1 = self.card(1, balance=5000)
        assert self.hh.sell(self.card1, [(101, 1)]) == sale.RECEIPT
        self.sync()


@pytest.fixture
def shop(tmp_path):
    s = CouponShop(tmp_path)
    yield s
    s.close()


def deliver(shop):
    """The pending card actions, as the bridge sends them to the handheld (hub.downlinks.messages: coupons included)."""
    have = shop.hh.terminal.status()["actions"]
    with Session(shop.engine) as db:
        device = db.get(Device, shop.hh.device_id)
        assert device is not None
        newest = latest_versions(db).actions
        for _to, payload in messages(db, device, dl.ACTIONS, have, newest):
            shop.hh.terminal.downlink(dl.topic(shop.hh.device_id, dl.ACTIONS), payload)


def rows(engine, model):
    with Session(engine) as db:
        return int(db.exec(select(func.count()).select_from(model)).one())


def sell(shop, card, lines, coupon_presses=1, hh=None):
    """Ring up lines, press COUPON, pay: (the confirm screen as shown, the state it ends in)."""
    hh = hh or shop.hh
    hh.tap(card)
    hh.run()
    assert hh.state == sale.ITEMS, hh.lines
    for item, qty in lines:
        hh.press(*f"{qty}*{item}", "ENTER")
    hh.press("OK", *["COUPON"] * coupon_presses)
    hh.run()
    shown = list(hh.lines)
    hh.press("OK")
    hh.run()
    state = hh.state
    hh.remove_card()
    hh.run()
    return shown, state


def template(shop, **kw) -> int:
    args: dict = {"name": "3 off 10", "kind": "fixed", "value": 300, "min_spend": 1000, "valid_days": 30} | kw
    with Session(shop.engine) as db:
        t = coupons.add_template(db, "hq", shop.now, **args)
        db.commit()
        return t.id or 0


def test_bad_templates_are_refused_and_change_nothing(shop):
    for kw, code, words in (({"kind": "percent", "value": 10001}, "bad_template", "10000 (100 %)"),
                            ({"value": -5}, "bad_template", "value must be a whole number of 0 or more"),
                            ({"starts": "2026-01-10", "ends": "2026-01-01"}, "bad_template", "is before starts"),
                            ({"kind": "gift", "value": 999}, "bad_template", "gift item 999 is not a product")):
        with pytest.raises(coupons.CouponError) as err:
            template(shop, **kw)
        assert err.value.code == code and words in err.value.message
    assert rows(shop.engine, CouponTemplate) == 0 and rows(shop.engine, AuditEntry) == 0


def test_issue_to_a_member_and_a_group_redeem_from_the_synced_sale(shop):
    fixed = template(shop)
    with Session(shop.engine) as db:
        db.add(MemberTag(member_id=1, tag="vip", source="manual", created=0))
        db.commit()
        first = coupons.issue(db, "hq", shop.now, fixed, 1)
        first_id = first.id or 0
        done = coupons.issue_to(db, "hq", shop.now, fixed, coupons.group(db, tiers=[0]))
        full = coupons.issue_to(db, "hq", shop.now, fixed, coupons.group(db, tags=["vip"]))
        db.commit()
        assert done["issued"] == [first_id + 1]  # member 1's second
        assert done["skipped"] == [{"member": 2, "code": "no_card", "reason": "member 2 has no active card"}]
        assert full["issued"] == [] and full["skipped"][0]["code"] == "card_full"
        assert [a.kind for a in db.exec(select(CardAction).where(CardAction.card_no == CARD_1))] == ["coupon", "coupon"]
    deliver(shop)
    shown, state = sell(shop, shop.card1, [(102, 2), (101, 2)])
    assert state == sale.RECEIPT and shown[0] == "Total 8.40" and shown[3] == "Coupon -3.00", shown
    shop.sync()
    with Session(shop.engine) as db:
        used = db.get(Coupon, first_id)
        assert used is not None
        device, seq = shop.last_sale()
        assert (used.redeemed_device, used.redeemed_seq) == (device, seq) and used.redeemed
        s = db.exec(select(Sale).where(Sale.seq == seq)).one()
        assert (s.coupon, s.coupon_value, s.total, s.state) == (first_id, 300, 840, "committed")
        assert db.exec(select(Anomaly)).all() == []  # the hub's recompute agrees with the handheld
        assert [c["state"] for c in coupons.coupons(db, 1)] == ["on card", "redeemed"]
        # A long list is read a page at a time: the newest first, and how many there are.
        assert [c["state"] for c in coupons.coupons(db, 1, limit=1)] == ["on card"]
        assert coupons.count_coupons(db, 1) == 2 and coupons.count_coupons(db) >= 2
        # A refund gives back what was paid; the coupon stays spent.
        r = refunds.refund_sale(db, "hq", shop.now, device, seq)
        assert (r.total, r.stored_value) == (840, 840) and used.redeemed


def test_a_second_redemption_from_a_cloned_card_is_an_anomaly_naming_both_sales(shop):
    fixed = template(shop, min_spend=0)
    with Session(shop.engine) as db:
        cid = coupons.issue(db, "hq", shop.now, fixed, 1).id
        db.commit()
    deliver(shop)
    shop.tap(shop.card1)
    clone = MifareClassic1K.from_json(shop.card1.to_json())
    assert sell(shop, shop.card1, [(101, 1)])[1] == sale.RECEIPT
    assert sell(shop, shop.card1, [(101, 1)])[0][3] == "Coupon used"  # the real card says used
    assert sell(shop, clone, [(101, 1)])[1] == sale.RECEIPT  # the clone (the card as it was) does not
    shop.sync()
    with Session(shop.engine) as db:
        twice = db.exec(select(Anomaly).where(Anomaly.code == "coupon_redeemed_twice")).all()
        used = db.get(Coupon, cid)
        assert used is not None and len(twice) == 1 and f"{used.redeemed_device} #{used.redeemed_seq}" in twice[0].detail
        assert f"#{twice[0].seq}" in twice[0].detail and twice[0].seq != used.redeemed_seq


def test_grants_of_gift_packs_and_plans_become_coupons(shop):
    with Session(shop.engine) as db:
        db.add(Product(id=103, name="Croissant"))
        db.commit()
    gift = template(shop, name="free croissant", kind="gift", value=103, min_spend=0)
    with Session(shop.engine) as db:
        db.add(CouponGrant(member_id=1, template_id=gift, source="plan", source_id=1, time=shop.now))
        db.add(CouponGrant(member_id=2, template_id=gift, source="plan", source_id=1, time=shop.now))
        db.commit()
        done = coupons.deliver_grants(db, "hq", shop.now)
        again = coupons.deliver_grants(db, "hq", shop.now)
        db.commit()
        assert len(done["issued"]) == 1 and [w["code"] for w in done["waiting"]] == ["no_card"]
        assert again["issued"] == []  # once
    deliver(shop)
    shown, _ = sell(shop, shop.card1, [(101, 1)])
    assert shown[0] == "Total 2.50" and shown[3] == "Coupon -0.00"
    shop.sync()
    with Session(shop.engine) as db:
        grant = db.exec(select(CouponGrant).where(CouponGrant.member_id == 1)).one()
        assert grant.redeemed  # a plan sees the member responded
        s = db.get(Sale, db.exec(select(func.max(Sale.id))).one())
        assert s is not None and s.coupon and db.exec(select(Anomaly)).all() == []


def test_the_coupon_api_and_cli(shop, tmp_path, monkeypatch, capsys):
    _p, token = new_login(shop.engine, "hq", ADMIN, 0)
    with Session(shop.engine) as db:
        db.add(Shop_(id="shop-1", name="Shop 1", created=0))
        db.commit()
    _p, reader_token = new_login(shop.engine, "shop", SHOP_MANAGER, 0, shop_id="shop-1")
    with TestClient(create_app(shop.engine), headers={"Authorization": f"Bearer {token}"}) as admin:
        bad = admin.post("/api/v1/coupons/templates", json={"name": "x", "kind": "percent", "value": 20000})
        assert bad.status_code == 400 and bad.json()["code"] == "bad_template" and "100 %" in bad.json()["detail"]
        made = admin.post("/api/v1/coupons/templates", json={"name": "15 %", "kind": "percent", "value": 1500})
        assert made.status_code == 201, made.text
        issued = admin.post("/api/v1/coupons/issue", json={"template_id": made.json()["id"], "tiers": [0]})
        assert issued.status_code == 201 and len(issued.json()["issued"]) == 1
        assert [c["kind"] for c in admin.get("/api/v1/coupons").json()] == ["percent"]
        as_shop = {"Authorization": f"Bearer {reader_token}"}
        assert admin.get("/api/v1/coupons/templates", headers=as_shop).status_code == 200
        assert admin.post("/api/v1/coupons/issue", headers=as_shop, json={"template_id": 1, "members": [1]}).status_code == 403
    url = str(shop.engine.url)
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    assert hub_cli(["coupon", "template", "add", "3 off", "--kind", "fixed", "--value", "3.00", "--min-spend", "20.00"]) == 0
    assert hub_cli(["coupon", "template", "add", "bad", "--kind", "fixed", "--value", "3.00", "--starts", "2026-02-01",
                    "--ends", "2026-01-01"]) == 2
    assert hub_cli(["coupon", "issue", "2", "--member", "1", "--member", "2"]) == 0
    assert hub_cli(["coupon", "list", "--member", "1"]) == 0
    out, err = capsys.readouterr()
    assert "coupon template 2: 3 off" in out and "member 2 skipped: member 2 has no active card" in out
    assert "ends 2026-01-01 is before starts 2026-02-01" in err
    assert "fixed 3.00" in out and "percent 15 %" in out
    with Session(shop.engine) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.entity == "coupon")).first()
        assert entry is not None and json.loads(entry.after)["member_id"] == 1
        assert db.get(Member, 1) is not None


def test_a_replacement_card_gets_the_unused_coupons_and_a_late_use_of_the_old_copy_voids_or_flags_the_new(shop):
    fixed, percent = template(shop, min_spend=0), template(shop, name="10 %", kind="percent", value=1000, min_spend=0)
    with Session(shop.engine) as db:
        a = coupons.issue(db, "hq", shop.now, fixed, 1).id
        b = coupons.issue(db, "hq", shop.now, percent, 1).id
        db.commit()
    deliver(shop)
    shop.tap(shop.card1)  # A and B are on the old card
    shop.sync()
    with Session(shop.engine) as db:
        assert [c["state"] for c in coupons.coupons(db, 1)] == ["on card", "on card"]
        last_day = db.exec(select(Coupon.valid_until).where(Coupon.id == a)).one()
        assert coupons.movable(db, CARD_1, last_day + 1) == []  # not once past their dates
        # Lost without a replacement: the coupons stay where they are.
        cards.mark_lost(db, "hq", shop.now, CARD_1)
        db.commit()
        assert [c.moved_to for c in db.exec(select(Coupon))] == [None, None]
    make_card_batch(shop.engine, "9100", 1, 1, 0)
    reader = DirectReader()
    new_card = MifareClassic1K.blank(bytes.fromhex("71727374"))
    reader.insert(new_card)
    second = issuance.replace(shop.engine, reader, MASTER, shop.now, "hq", CARD_1).card["card_no"]
    with Session(shop.engine) as db:
        moved = {c.id: c for c in db.exec(select(Coupon))}
        a2, b2 = moved[a].moved_to, moved[b].moved_to
        assert a2 and b2 and (moved[a2].card_no, moved[b2].card_no) == (second, second)
        assert [(moved[n].kind, moved[n].value, moved[n].valid_from, moved[n].valid_until) for n in (a2, b2)] == [
            (moved[n].kind, moved[n].value, moved[n].valid_from, moved[n].valid_until) for n in (a, b)]
        assert {c["id"]: c["state"] for c in coupons.coupons(db, 1)} == {a: "moved", b: "moved", a2: "issued", b2: "issued"}
        actions = db.exec(select(CardAction).where(CardAction.card_no == second, CardAction.kind == "coupon")).all()
        assert sorted(f"coupon {n} (moved from {o})" for n, o in ((a2, a), (b2, b))) == sorted(x.note for x in actions)

    # A handheld that has not heard of the replacement sells on the old card with A; it syncs before A's copy
    # reached the new card: the copy is voided and never goes on the card. Nothing to look at.
    shown, state = sell(shop, shop.card1, [(101, 1)])
    assert state == sale.RECEIPT and shown[3] == "Coupon -2.50", shown
    shop.sync()
    with Session(shop.engine) as db:
        assert db.exec(select(Anomaly).where(col(Anomaly.code).like("coupon%"))).all() == []
        assert {c["id"]: c["state"] for c in coupons.coupons(db, 1)}[a2] == "void"
        copy = db.get(Coupon, a2)
        assert copy is not None and db.get(CardAction, copy.action_id).state == "cancelled"  # type: ignore[union-attr]
    deliver(shop)
    shop.tap(new_card)
    shop.sync()
    assert [s[0] if s else None for s in read_card_directly(new_card, MASTER)["slots"]] == [b2, None]

    # B is used on the new card, then the old card's B too, on a handheld that had not heard: used twice.
    assert sell(shop, new_card, [(101, 2)])[0][3] == "Coupon -0.50"
    shop.sync()
    assert sell(shop, shop.card1, [(101, 2)], coupon_presses=2)[0][3] == "Coupon -0.50"  # A is used: B
    shop.sync()
    with Session(shop.engine) as db:
        flagged = db.exec(select(Anomaly).where(col(Anomaly.code).like("coupon%"))).all()
        assert [x.code for x in flagged] == ["coupon_used_after_move"]
        assert f"coupon {b} moved to coupon {b2} on card {second}" in flagged[0].detail and "used twice" in flagged[0].detail
        assert {c["id"]: c["state"] for c in coupons.coupons(db, 1)} == {a: "redeemed", b: "redeemed", a2: "void",
                                                                       b2: "redeemed"}


def test_a_late_use_of_the_old_copy_voids_the_copy_on_the_new_card_which_keeps_it_and_its_use_is_flagged(shop):
    fixed = template(shop, min_spend=0)
    with Session(shop.engine) as db:
        a = coupons.issue(db, "hq", shop.now, fixed, 1).id
        db.commit()
    deliver(shop)
    shop.tap(shop.card1)  # A is on the old card
    shop.sync()
    # hh-b has the price list and the lease but will hear of nothing below until it syncs at the end.
    offline = VirtualHandheld("hh-b", shop.tmp_path, MASTER, PRICE_LIST, clock=shop.hh.clock)
    offline.boot()
    try:
        with Session(shop.engine) as db:
            db.add(Device(id="hh-b", shop="shop-1", password_hash="x", created=0))
            cards.mark_lost(db, "hq", shop.now, CARD_1)
            db.commit()
        make_card_batch(shop.engine, "9100", 1, 1, 0)
        reader = DirectReader()
        new_card = MifareClassic1K.blank(bytes.fromhex("71727374"))
        reader.insert(new_card)
        second = issuance.replace(shop.engine, reader, MASTER, shop.now, "hq", CARD_1).card["card_no"]
        with Session(shop.engine) as db:
            a2 = db.exec(select(Coupon.moved_to).where(Coupon.id == a)).one()
        assert a2

        # The old card turns up at hh-b, offline: the card still holds A, and the sale uses it.
        shown, state = sell(shop, shop.card1, [(101, 2)], hh=offline)
        assert state == sale.RECEIPT and shown[3] == "Coupon -3.00", shown

        # Meanwhile the new card taps at hh-a: A's copy goes into a slot, and the hub hears so.
        deliver(shop)
        shop.tap(new_card)
        shop.sync()
        assert [s[0] if s else None for s in read_card_directly(new_card, MASTER)["slots"]] == [a2, None]
        with Session(shop.engine) as db:
            assert {c["id"]: c["state"] for c in coupons.coupons(db, 1)} == {a: "moved", a2: "on card"}
            ledger_before = {e.id for e in db.exec(select(LedgerEntry))}
            new_before = shop.hub(second)

        # hh-b syncs at last: the sale stands and A is redeemed; the copy is voided at the hub, the card keeps it.
        entries = [data for _seq, data in offline.journal().entries()]
        Ingestor(shop.engine, now=lambda: shop.now).ingest([("hh-b", encode_batch(entries))])
        with Session(shop.engine) as db:
            late = db.exec(select(Sale).where(Sale.device_id == "hh-b")).one()
            assert (late.card_no, late.coupon, late.coupon_value, late.total, late.state) == (CARD_1, a, 300, 200,
                                                                                              "committed")
            flagged = db.exec(select(Anomaly).where(col(Anomaly.code).like("coupon%"))).all()
            assert [x.code for x in flagged] == ["coupon_used_after_move"]
            assert f"coupon {a} moved to coupon {a2} on card {second}" in flagged[0].detail
            assert f"{a2} is on the new card already" in flagged[0].detail and "used twice" not in flagged[0].detail
            assert {c["id"]: c["state"] for c in coupons.coupons(db, 1)} == {a: "redeemed", a2: "void"}
            copy = db.get(Coupon, a2)
            assert copy is not None and db.get(CardAction, copy.action_id).state == "applied"  # type: ignore[union-attr]
            # The ledger got what any late sale of a replaced card gets (its postings, then the old card settled
            # to the new one as a transfer, docs/cards.md) and nothing else: voiding the copy moves no money.
            added = {(e.device_id, e.card_no, e.account, e.amount) for e in db.exec(select(LedgerEntry))
                     if e.id not in ledger_before}
            assert added == {("hh-b", CARD_1, "stored_value", -200), ("hh-b", CARD_1, "revenue", 200),
                             ("hh-b", CARD_1, "points", 2),
                             ("hq", CARD_1, "stored_value", 200), ("hq", CARD_1, "points", -2)}
            transfer = db.exec(select(CardAction).where(CardAction.card_no == second, CardAction.kind == "transfer")).one()
            assert (transfer.amount, transfer.points, transfer.state) == (-200, 2, "pending")
            assert coupons.held(db, second, shop.now // DAY) == 1  # the card keeps the slot: it counts for card_full
        assert shop.hub(CARD_1) == (0, 0) and shop.hub(second) == new_before

        # The member uses the voided copy on the new card anyway (the card decides): the sale stands, flagged.
        deliver(shop)  # the transfer, too
        shown, state = sell(shop, new_card, [(101, 2)])
        assert state == sale.RECEIPT and shown[3] == "Coupon -3.00", shown
        shop.sync()
        with Session(shop.engine) as db:
            used = db.exec(select(Anomaly).where(Anomaly.code == "coupon_void_used")).all()
            assert len(used) == 1 and f"coupon {a2} was voided" in used[0].detail
            device, seq = shop.last_sale()
            assert f"{device} #{seq}" in used[0].detail
            s = db.exec(select(Sale).where(Sale.device_id == device, Sale.seq == seq)).one()
            assert (s.card_no, s.coupon, s.total, s.state) == (second, a2, 200, "committed")
            assert {c["id"]: c["state"] for c in coupons.coupons(db, 1)} == {a: "redeemed", a2: "redeemed"}
            assert [x.code for x in db.exec(select(Anomaly).where(col(Anomaly.code).like("coupon%")))] == [
                "coupon_used_after_move", "coupon_void_used"]
        # The new card paid 2.00 twice (the transfer of the old card's late sale at this tap, then this sale).
        purse = shop.on_card(new_card)
        assert shop.hub(second) == (purse["balance"], purse["points"]) == (new_before[0] - 400, new_before[1] + 4)
    finally:
        offline.close()
