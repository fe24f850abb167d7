"""Counter rules (tier multipliers, categories that earn no points), the hub's recompute of every
synced sale, and the offline lease: docs/loyalty.md, "Counter rules and offline limits"."""

import json
import random
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from firmware.downlinks import Downlinks
from hub import masterdata as md
from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.db import make_engine, migrate
from hub.ingest import Ingestor
from hub.lease import issue_all, sign
from hub.models import Anomaly, Device, Lease, Sale
from protocol import downlink as dl
from protocol.pricing import PriceList, PricingError, quote, settle
from protocol.sync import SyncError, encode_batch
from simulator.handheld import VirtualHandheld
from simulator.shop import master_key, member_card
from simulator.vhal import SimFlash

DOC = (Path(__file__).resolve().parent.parent / "docs" / "loyalty.md").read_text()
SECTION = DOC[DOC.index("## Counter rules and offline limits"):]
MASTER = master_key(random.Random(77))

EXAMPLE = {
    "version": 4,
    "items": [
        {"id": 102, "name": "Cappuccino", "price": 320, "category": "coffee"},
        {"id": 150, "name": "Tea", "price": 199, "category": "tea"},
        {"id": 401, "name": "Gift card", "price": 2000, "category": "gift cards", "discountable": False},
    ],
    "tiers": [
        {"tier": 0, "name": "Member", "discount_bps": 0},
        {"tier": 1, "name": "Silver", "discount_bps": 500, "points_bps": 12500},
        {"tier": 2, "name": "Gold", "discount_bps": 1250, "points_bps": 15000},
    ],
    "points": {"earn_per_100": 2, "point_value": 1, "excluded": ["gift cards"]},
}


def older(doc):
    """The same document as a hub published it before multipliers and exclusions existed."""
    out = json.loads(json.dumps(doc))
    for tier in out["tiers"]:
        tier.pop("points_bps", None)
    out["points"].pop("excluded", None)
    return out


def sale_of(doc, lines, tier, balance, points, redeem):
    pl = PriceList(doc)
    q = quote(pl, lines, tier)
    return q, settle(pl, q["total"], balance, points, redeem, True, tier, q.get("excluded", 0))


def in_section(*phrases):
    for phrase in phrases:
        assert phrase in SECTION, f"docs/loyalty.md no longer says {phrase!r}"


# -- the rules --------------------------------------------------------------------------------------


def test_worked_example_1_gold_with_an_excluded_gift_card():
    q, s = sale_of(EXAMPLE, [(102, 2), (401, 1)], 2, balance=1000, points=500, redeem=200)
    assert (q["subtotal"], q["discount"], q["total"], q["excluded"]) == (2640, 80, 2560, 2000)
    assert (s["points_value"], s["stored_value"], s["cash"]) == (200, 1000, 1360)
    assert s["points_earned"] == 16 == 560 * 2 * 15000 // 1000000
    in_section("| base | min(2360, 2560 - 2000) | 560 |", "| points earned | 560 x 2 x 15000 // 1000000 | 16 |")
    # A handheld that still holds the document from before the counter rules: x1, nothing excluded.
    _q, old = sale_of(older(EXAMPLE), [(102, 2), (401, 1)], 2, balance=1000, points=500, redeem=200)
    assert old["points_earned"] == 47
    in_section("2360 x 2 x 10000 // 1000000 | 47 |")


def test_worked_example_2_silver_rounds_points_down():
    q, s = sale_of(EXAMPLE, [(150, 3)], 1, balance=0, points=0, redeem=0)
    assert (q["subtotal"], q["discount"], q["total"], s["cash"], s["points_earned"]) == (597, 30, 567, 567, 14)
    in_section("subtotal 597, discount 30", "total 567, points", "567 x 2 x 12500 // 1000000 = 14")


def test_points_paying_for_the_sale_earn_nothing_and_points_pay_for_excluded_goods_first():
    # Only a gift card: no points whatever is paid; points are worth 5 cents each here.
    doc = dict(EXAMPLE, points={"earn_per_100": 2, "point_value": 5, "excluded": ["gift cards"]})
    assert sale_of(doc, [(401, 1)], 2, balance=5000, points=0, redeem=0)[1]["points_earned"] == 0
    _q, s = sale_of(doc, [(401, 1), (102, 1)], 0, balance=0, points=400, redeem=400)
    assert (s["points_value"], s["cash"], s["points_earned"]) == (2000, 320, 6)  # 320 x 2 x 1: the coffee's cash


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d["tiers"][2].update(points_bps=100001), "points_bps"),
        (lambda d: d["tiers"][2].update(points_bps=-1), "points_bps"),
        (lambda d: d["points"].update(earn_per_100=-2), "earn_per_100"),
        (lambda d: d["points"].update(excluded=["tobacco"]), "each once: 'tobacco'"),
        (lambda d: d["points"].update(excluded=["gift cards", "gift cards"]), "once"),
        (lambda d: d["points"].update(excluded="gift cards"), "excluded must list item categories"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(change, words):
    doc = json.loads(json.dumps(EXAMPLE))
    change(doc)
    with pytest.raises(PricingError) as err:
        PriceList(doc)
    assert words in err.value.message


# -- HQ sets the rules and publishes them -------------------------------------------------------------


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    return engine


def stock(db, points_bps=15000, gift_earns=False):
    md.save_shop(db, "hq", 0, "north", "North")
    coffee = md.save_category(db, "hq", 0, "coffee")
    gifts = md.save_category(db, "hq", 0, "gift cards", earns_points=gift_earns)
    md.save_product(db, "hq", 0, 102, "Cappuccino", coffee.id)
    md.save_product(db, "hq", 0, 401, "Gift card", gifts.id, discountable=False)
    md.save_tier(db, "hq", 0, 0, "Member", 0)
    md.save_tier(db, "hq", 0, 2, "Gold", 1250, points_bps)
    md.set_param(db, "hq", 0, "points.earn_per_100", 2)
    md.add_price_list(db, "hq", 0, {102: 320, 401: 2000}, effective_from=0)


def test_published_rules_carry_the_multiplier_and_exclusions_only_when_set(engine):
    with Session(engine) as db:
        stock(db, points_bps=10000, gift_earns=True)
        first, _ = md.publish_prices(db, "hq", 1, "north")
        doc = json.loads(first.doc)
        assert "points_bps" not in doc["tiers"][1] and "excluded" not in doc["points"]  # reads as before
        gifts = db.exec(select(md.ProductCategory).where(md.ProductCategory.name == "gift cards")).one()
        md.save_category(db, "hq", 2, "gift cards", gifts.id, earns_points=False)
        md.save_tier(db, "hq", 2, 2, "Gold", 1250, 15000)
        second, changed = md.publish_prices(db, "hq", 3, "north")
        doc = json.loads(second.doc)
        assert changed and second.version == 2
        assert doc["tiers"][1]["points_bps"] == 15000 and doc["points"]["excluded"] == ["gift cards"]
        md.save_category(db, "hq", 4, "gift card range", gifts.id)  # a rename keeps the flag
        assert gifts.earns_points is False


def test_hq_refuses_a_multiplier_out_of_range_and_changes_nothing(engine):
    _password, token = new_login(engine, "alice", ADMIN, 0)
    api = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
    bad = api.put("/api/v1/tiers/2", json={"name": "Gold", "discount_bps": 1250, "points_bps": 100001})
    assert bad.status_code == 400 and "from 0 to 100000" in bad.json()["detail"]
    assert api.get("/api/v1/tiers").json() == []
    ok = api.put("/api/v1/tiers/2", json={"name": "Gold", "discount_bps": 1250, "points_bps": 15000})
    assert ok.status_code == 200 and ok.json()["points_bps"] == 15000
    made = api.post("/api/v1/product-categories", json={"name": "Tobacco", "earns_points": False})
    assert made.status_code == 201 and made.json()["earns_points"] is False


# -- the hub checks the handheld ------------------------------------------------------------------------


def shift(root, name, doc, number):
    """A handheld selling from doc: two sales by one Gold card (card number); its journal's records."""
    rng = random.Random(name)
    card = member_card(rng, MASTER, number, balance=3000, points=300, tier=2)
    hh = VirtualHandheld(name, root, MASTER, doc)
    hh.boot()
    assert hh.sell(card, [(102, 2), (401, 1)], redeem_points=True) == "receipt"
    assert hh.sell(card, [(102, 1)]) == "receipt"
    records = [data for _s, data in hh.journal().entries()]
    hh.close()
    return records


def anomalies(engine):
    with Session(engine) as db:
        return [(a.code, a.device_id, a.seq, a.detail) for a in db.exec(select(Anomaly).order_by(col(Anomaly.id)))]


def test_honest_sales_pass_and_a_tampered_price_list_is_caught_with_both_figures(engine, tmp_path):
    with Session(engine) as db:
        stock(db)
        published, _ = md.publish_prices(db, "hq", 1, "north")
        for name in ("hh-honest", "hh-tampered", "hh-unknown"):
            db.add(Device(id=name, shop="north", password_hash="x", created=0))
        db.commit()
        doc = json.loads(published.doc)
    tampered = json.loads(json.dumps(doc))
    tampered["items"][0]["price"] = 250  # the coffee, cheaper than HQ published
    tampered["tiers"][1]["points_bps"] = 30000  # and Gold earning double
    unknown = dict(doc, version=9)
    ingest = Ingestor(engine)
    ingest.ingest([("hh-honest", encode_batch(shift(tmp_path, "hh-honest", doc, 1)))])
    assert anomalies(engine) == []
    ingest.ingest([("hh-tampered", encode_batch(shift(tmp_path, "hh-tampered", tampered, 2)))])
    found = anomalies(engine)
    assert [(code, device, seq) for code, device, seq, _d in found] == [("sale_mismatch", "hh-tampered", 1),
                                                                        ("sale_mismatch", "hh-tampered", 3)]
    detail = found[0][3]
    assert "price of item 102: handheld 250, rules v1 give 320" in detail
    assert "subtotal: handheld 2500, rules v1 give 2640" in detail and "points_earned: handheld" in detail
    ingest.ingest([("hh-unknown", encode_batch(shift(tmp_path, "hh-unknown", unknown, 3)))])
    assert [a for a in anomalies(engine) if a[1] == "hh-unknown"][0][:2] == ("unknown_rules_version", "hh-unknown")
    with Session(engine) as db:  # the sales are in the ledger all the same: the card holds them
        assert len(db.exec(select(Sale).where(Sale.device_id == "hh-tampered")).all()) == 2


def test_a_shop_with_no_published_rules_is_not_checked(engine, tmp_path):
    with Session(engine) as db:
        db.add(Device(id="hh-south", shop="south", password_hash="x", created=0))
        db.commit()
    Ingestor(engine).ingest([("hh-south", encode_batch(shift(tmp_path, "hh-south", EXAMPLE, 4)))])
    assert anomalies(engine) == []


# -- the lease -------------------------------------------------------------------------------------------


def test_leases_are_issued_again_only_when_their_terms_change(engine):
    with Session(engine) as db:
        db.add(Device(id="hh-1", shop="north", password_hash="x", created=0))
        assert issue_all(db, MASTER, 100) == 1 and issue_all(db, MASTER, 200) == 0
        md.set_param(db, "hq", 300, "lease.max_sv_per_sale", 5000)
        assert issue_all(db, MASTER, 300) == 1
        db.commit()
        lease = db.get(Lease, "hh-1")
        assert lease is not None and (lease.version, lease.issued) == (2, 300)
        assert dl.decode_lease(MASTER, "hh-1", lease.doc) == [2, 259200, 5000, 20000, 200000]
        with pytest.raises(SyncError):
            dl.decode_lease(master_key(random.Random(1)), "hh-1", lease.doc)  # another HQ's key


def lease_table():
    """Worked example 3's steps, read from docs/loyalty.md: (card, cents, hours since the sync, answer)."""
    table = SECTION[SECTION.index("Worked example 3"):]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in re.findall(r"^\| (?:\d+|sync) \|.*$", table, re.M)]
    assert len(rows) == 9, rows
    return [(card, round(float(sv) * 100) if sv else 0, int(hours), answer) for _s, card, sv, hours, answer in rows]


def test_worked_example_3_the_lease_at_the_counter(tmp_path):
    in_section("a lease of 1 day,\n50.00 per sale, 80.00 per card a day, 150.00 in all")
    flash = SimFlash(tmp_path / "flash")
    held = Downlinks(flash, MASTER, "hh-1")
    terms = {"device": "hh-1", "version": 1, "issued": 0, "expires_after_s": 86400, "max_sv_per_sale": 5000,
             "max_sv_per_card_day": 8000, "max_sv_offline_total": 15000}
    assert held.take(dl.LEASE, json.dumps(sign(MASTER, terms)).encode())
    synced = 1_790_000_000 - 1_790_000_000 % 86400  # midnight: the example stays in one day
    held.synced(synced)
    for card, cents, hours, answer in lease_table():
        now = synced + hours * 3600
        if card == "":
            held.synced(now)
            synced = now
            continue
        said = held.refusal(card, cents, now)
        assert (said or "sold") == answer, (card, cents, hours)
        if not said:
            held.spent(card, cents, now)
