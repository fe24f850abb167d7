"""Members through the API: profiles, bad input refused with nothing changed, photos, tiers, tags, search, the 360 view, roles."""

import base64
import struct
import zlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from hub import auth
from hub import members as rules
from hub.app import create_app
from hub.auth import ADMIN, SHOP_MANAGER, new_login
from hub.db import make_engine, migrate
from hub.masterdata import save_member_category, save_shop, save_tier
from hub.models import AuditEntry, Card, CardAction, LedgerEntry, Member, MemberTag, Sale, TierChange

# An 8x8 red JPEG as Chromium's canvas encodes it.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/4gHYSUNDX1BST0ZJTEUAAQEAAAHIAAAAAAQwAABtbnRyUkdCIFhZWiAH4AABAAEAAAAAAABhY3NwAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAQAA9tYAAQAAAADTLQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAlkZXNjAAAA8AAAACRyWFlaAAABFAAA"
    "ABRnWFlaAAABKAAAABRiWFlaAAABPAAAABR3dHB0AAABUAAAABRyVFJDAAABZAAAAChnVFJDAAABZAAAAChiVFJDAAABZAAAAChjcHJ0AAABjAAAADxtbHVjAAAAAAAA"
    "AAEAAAAMZW5VUwAAAAgAAAAcAHMAUgBHAEJYWVogAAAAAAAAb6IAADj1AAADkFhZWiAAAAAAAABimQAAt4UAABjaWFlaIAAAAAAAACSgAAAPhAAAts9YWVogAAAAAAAA"
    "9tYAAQAAAADTLXBhcmEAAAAAAAQAAAACZmYAAPKnAAANWQAAE9AAAApbAAAAAAAAAABtbHVjAAAAAAAAAAEAAAAMZW5VUwAAACAAAAAcAEcAbwBvAGcAbABlACAASQBu"
    "AGMALgAgADIAMAAxADb/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8a"
    "Gi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAA"
    "AAX/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFQEBAQAAAAAAAAAAAAAAAAAABAb/xAAUEQEAAAAAAAAAAAAAAAAAAAAA/9oADAMBAAIRAxEAPwCeAGpH/9k="
)
CARD = "9100000000000018"
LOST_CARD = "9100000000000026"
OTHER_SHOP_CARD = "9100000000000034"
CARD_PASSWORD = "open sesame 1"


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (grey pixels), made the way the format says."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def sale(seq: int, shop: str, card_no: str, member_id: int, total: int, time: int, state: str = "committed") -> Sale:
    return Sale(
        device_id=f"hh-{shop}", seq=seq, shop=shop, time=time, state=state, card_no=card_no, uid="04a1b2c3", member_id=member_id,
        tier=0, counter_before=seq - 1, counter_after=seq, price_list_version=1, firmware="0.1.0", subtotal=total, discount=0,
        total=total, points_redeemed=0, points_value=0, stored_value=total, cash=0, points_earned=total // 100,
        balance_after=0, points_after=0,
    )


def seed_member(engine, now: int = 1_700_000_000) -> int:
    """Ana, with tiers, a category, two cards (one lost), postings and sales in two shops; her member number."""
    with Session(engine) as db:
        for shop in ("north", "south"):
            save_shop(db, "test", now, shop, shop.title())
        save_tier(db, "test", now, 0, "Member", 0)
        save_tier(db, "test", now, 1, "Silver", 300)
        save_tier(db, "test", now, 2, "Gold", 500)
        save_member_category(db, "test", now, 1, "Standard")
        ana = rules.add_member(db, "test", now, "Ana Lima", "+49 151 2345678", "1990-04-23", 1, 1, ["vip"])
        assert ana.id is not None
        db.add(Card(card_no=CARD, uid="04a1b2c3", member_id=ana.id, tier=1, balance=4250, points=310, issued=now,
                    password_hash=auth.hash_password(CARD_PASSWORD)))
        db.add(Card(card_no=LOST_CARD, uid="04d4e5f6", member_id=ana.id, tier=1, balance=500, points=20, state="lost",
                    issued=now))
        for seq, (account, amount, memo) in enumerate(
            [("stored_value", 5000, "issued"), ("points", 300, "issued"), ("stored_value", -750, "sale"), ("points", 10, "sale")]
        ):
            db.add(LedgerEntry(time=now + seq, device_id="hq" if memo == "issued" else "hh-north", seq=seq, card_no=CARD,
                               account=account, amount=amount, memo=memo))
        db.add(sale(1, "north", CARD, ana.id, 750, now + 10))
        db.add(sale(2, "south", CARD, ana.id, 1200, now + 20))
        db.add(sale(3, "north", CARD, ana.id, 999, now + 30, state="voided"))
        db.commit()
        return ana.id


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def api(engine):
    _password, token = new_login(engine, "alice", ADMIN, 0)
    return TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})


def state(engine) -> tuple:
    """Everything a refused change must leave as it was: members, tags, tier history, card actions, audit log."""
    with Session(engine) as db:
        return (
            [m.model_dump() for m in db.exec(select(Member).order_by(col(Member.id)))],
            sorted((t.member_id, t.source, t.tag) for t in db.exec(select(MemberTag))),
            len(db.exec(select(TierChange)).all()),
            len(db.exec(select(CardAction)).all()),
            len(db.exec(select(AuditEntry)).all()),
        )


def test_a_new_member_is_stored_normalised_and_audited(api):
    made = api.post("/api/v1/members", json={
        "name": "  Ana   Lima ", "phone": "0049 (151) 234-5678", "birthday": "1990-04-23", "tags": ["VIP", "coffee, vip"],
    })
    assert made.status_code == 201, made.text
    ana = made.json()
    assert (ana["name"], ana["phone"], ana["birthday"], ana["tier"]) == ("Ana Lima", "+491512345678", "1990-04-23", 0)
    assert [t["tag"] for t in ana["tags"]] == ["coffee", "vip"]
    assert api.get(f"/api/v1/members/{ana['id']}").json() == ana
    entries = api.get("/api/v1/audit", params={"entity": "member"}).json()
    assert [(e["action"], e["actor"], e["after"]["phone"]) for e in entries] == [("create", "alice", "+491512345678")]
    assert api.get("/api/v1/audit", params={"entity": "membertag"}).json()[0]["after"] == {"manual": ["coffee", "vip"]}


@pytest.mark.parametrize("body, code, words", [
    ({"name": "Bo", "phone": "0151 23x4567"}, "bad_phone", "only digits"),
    ({"name": "Bo", "phone": "12345"}, "bad_phone", "has 5 digits"),
    ({"name": "Bo", "phone": "+0151 2345678"}, "bad_phone", "country code"),
    ({"name": "Bo", "phone": "+49 151 2345678"}, "phone_taken", "belongs to member 1 (Ana Lima)"),
    ({"name": "Bo", "birthday": "23.04.1990"}, "bad_birthday", "YYYY-MM-DD"),
    ({"name": "Bo", "birthday": "1990-02-30"}, "bad_birthday", "not a day of the calendar"),
    ({"name": "Bo", "birthday": "2999-01-01"}, "bad_birthday", "in the future"),
    ({"name": "Bo", "birthday": "1850-01-01"}, "bad_birthday", "before 1900-01-01"),
    ({"name": "   "}, "bad_name", "empty"),
    ({"name": "=HYPERLINK(\"http://x\")"}, "bad_name", "formula"),
    ({"name": "Bo", "tier": 7}, "no_tier", "no tier 7"),
    ({"name": "Bo", "category_id": 9}, "no_category", "no member category 9"),
    ({"name": "Bo", "tags": ["good", "not/ok"]}, "bad_tag", "'not/ok'"),
])
def test_a_bad_new_member_is_refused_with_the_reason_and_nothing_is_added(api, engine, body, code, words):
    assert api.post("/api/v1/members", json={"name": "Ana Lima", "phone": "+49 151 2345678"}).status_code == 201
    before = state(engine)
    refused = api.post("/api/v1/members", json=body)
    assert refused.status_code in (400, 409), refused.text
    assert refused.json()["code"] == code and words in refused.json()["detail"]
    assert state(engine) == before


def test_every_problem_of_one_request_is_named(api):
    refused = api.post("/api/v1/members", json={"name": "Bo", "phone": "abc", "birthday": "yesterday"})
    detail = refused.json()["detail"]
    assert refused.status_code == 400 and "phone 'abc'" in detail and "birthday 'yesterday'" in detail


@pytest.mark.parametrize("patch, code", [
    ({"phone": "not a phone"}, "bad_phone"),
    ({"phone": "+49 170 9999999"}, "phone_taken"),
    ({"birthday": "1990-13-01"}, "bad_birthday"),
    ({"name": ""}, "bad_name"),
    ({"name": None}, "bad_request"),
    ({"category_id": 5}, "no_category"),
])
def test_a_bad_profile_change_leaves_the_profile_as_it_was(api, engine, patch, code):
    ana = seed_member(engine)
    rules_bo = api.post("/api/v1/members", json={"name": "Bo", "phone": "+49 170 9999999"})
    assert rules_bo.status_code == 201
    before = state(engine)
    refused = api.patch(f"/api/v1/members/{ana}", json=patch)
    assert refused.status_code in (400, 409) and refused.json()["code"] == code, refused.text
    assert state(engine) == before


def test_a_profile_change_sets_only_what_is_sent(api, engine):
    ana = seed_member(engine)
    changed = api.patch(f"/api/v1/members/{ana}", json={"phone": "0170 1112223", "category_id": None})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["phone"], body["birthday"], body["category_id"]) == ("Ana Lima", "01701112223", "1990-04-23", None)
    update = api.get("/api/v1/audit", params={"entity": "member", "key": str(ana)}).json()[0]
    assert update["action"] == "update" and update["before"]["phone"] == "+491512345678"
    assert update["after"]["category_id"] is None
    assert api.patch("/api/v1/members/999", json={"name": "X"}).status_code == 404


def test_a_photo_is_checked_by_its_bytes_stored_and_served_back(api, engine):
    ana = seed_member(engine)
    jpeg = api.put(f"/api/v1/members/{ana}/photo", files={"photo": ("me.jpg", JPEG, "image/jpeg")})
    assert jpeg.status_code == 200 and jpeg.json()["photo"] == f"/api/v1/members/{ana}/photo"
    served = api.get(f"/api/v1/members/{ana}/photo")
    assert served.content == JPEG and served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    # The type comes from the bytes, not from what the upload claims.
    assert api.put(f"/api/v1/members/{ana}/photo", files={"photo": ("me.jpg", png(), "image/jpeg")}).status_code == 200
    assert api.get(f"/api/v1/members/{ana}/photo").headers["content-type"] == "image/png"
    before = (state(engine), api.get(f"/api/v1/members/{ana}/photo").content)
    for name, data, code in [
        ("big.jpg", JPEG[:3] + bytes(rules.MAX_PHOTO_BYTES), "photo_too_large"),
        ("notes.jpg", b"just some text, named like a photo", "not_an_image"),
        ("anim.gif", b"GIF89a" + bytes(40), "not_an_image"),
        ("fake.png", b"\x89PNG\r\n\x1a\n" + bytes(40), "not_an_image"),
        ("empty.png", b"", "bad_photo"),
    ]:
        refused = api.put(f"/api/v1/members/{ana}/photo", files={"photo": (name, data, "image/jpeg")})
        assert refused.status_code == 400 and refused.json()["code"] == code, (name, refused.text)
        assert (state(engine), api.get(f"/api/v1/members/{ana}/photo").content) == before
    assert "2 MiB" in api.put(f"/api/v1/members/{ana}/photo", files={"photo": ("b.jpg", JPEG + bytes(3 << 20))}).json()["detail"]
    assert api.delete(f"/api/v1/members/{ana}/photo").status_code == 204
    assert api.get(f"/api/v1/members/{ana}/photo").status_code == 404
    assert api.delete(f"/api/v1/members/{ana}/photo").json()["code"] == "no_photo"
    photos = api.get("/api/v1/audit", params={"entity": "memberphoto"}).json()
    assert [e["action"] for e in photos] == ["delete", "photo", "photo"] and photos[1]["after"]["content_type"] == "image/png"


def test_a_tier_change_is_recorded_audited_and_queued_for_each_active_card(api, engine):
    ana = seed_member(engine)
    changed = api.put(f"/api/v1/members/{ana}/tier", json={"tier": 2, "reason": "spent 1000 this year"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["changed"] is True and changed.json()["card_actions"] == [CARD]  # not the lost card
    assert changed.json()["member"]["tier"] == 2
    with Session(engine) as db:
        actions = db.exec(select(CardAction)).all()
        assert [(a.card_no, a.kind, a.tier, a.state, a.actor) for a in actions] == [(CARD, "tier", 2, "pending", "alice")]
    history = api.get(f"/api/v1/members/{ana}/overview").json()["tier_history"]
    assert [(h["from_tier"], h["to_tier"], h["reason"], h["actor"]) for h in history] == [
        (1, 2, "spent 1000 this year", "alice"), (0, 1, "new member", "test"),
    ]
    tier_audit = api.get("/api/v1/audit", params={"entity": "member", "key": str(ana)}).json()[0]
    assert tier_audit["action"] == "tier" and (tier_audit["before"]["tier"], tier_audit["after"]["tier"]) == (1, 2)
    before = state(engine)
    again = api.put(f"/api/v1/members/{ana}/tier", json={"tier": 2})
    assert again.json()["changed"] is False and again.json()["card_actions"] == []
    for body, code in [({"tier": 7}, "no_tier"), ({"tier": 300}, "bad_tier"), ({"tier": 1, "reason": "x" * 201}, "bad_reason")]:
        refused = api.put(f"/api/v1/members/{ana}/tier", json=body)
        assert refused.status_code == 400 and refused.json()["code"] == code
    assert state(engine) == before


def test_manual_tags_are_replaced_and_computed_ones_stay(api, engine):
    ana = seed_member(engine)
    with Session(engine) as db:
        db.add(MemberTag(member_id=ana, source="rfm", tag="champion", created=0))
        db.commit()
    put = api.put(f"/api/v1/members/{ana}/tags", json={"tags": ["Coffee", "weekend"]})
    assert put.status_code == 200
    assert [(t["tag"], t["source"]) for t in put.json()["tags"]] == [
        ("champion", "rfm"), ("coffee", "manual"), ("weekend", "manual"),
    ]
    before = state(engine)
    refused = api.put(f"/api/v1/members/{ana}/tags", json={"tags": ["ok", "x" * 33]})
    assert refused.status_code == 400 and refused.json()["code"] == "bad_tag"
    assert state(engine) == before


def test_search_finds_members_by_name_phone_card_number_tag_and_number(api, engine):
    ana = seed_member(engine)
    api.post("/api/v1/members", json={"name": "Bruno Anand", "phone": "030 1234567", "tags": ["staff"]})

    def names(q: str) -> list[str]:
        return [m["name"] for m in api.get("/api/v1/members", params={"q": q}).json()]

    assert names("ana") == ["Ana Lima", "Bruno Anand"]  # case does not matter
    assert names("LIMA") == ["Ana Lima"]
    assert names("151 234") == ["Ana Lima"]  # the digits of a phone, as typed
    assert names(CARD[-6:]) == ["Ana Lima"]
    assert names("VIP") == ["Ana Lima"] and names("staff") == ["Bruno Anand"]
    assert names(str(ana)) == ["Ana Lima"]
    assert names("100%") == [] and names("nobody") == []
    assert names("") == ["Bruno Anand", "Ana Lima"]  # nothing asked: the newest first


def test_the_360_view_has_cards_balance_points_history_sales_and_tiers(api, engine):
    ana = seed_member(engine)
    view = api.get(f"/api/v1/members/{ana}/overview").json()
    assert view["member"]["name"] == "Ana Lima" and view["category"] == "Standard" and view["tier_name"] == "Silver"
    assert [(c["card_no"], c["state"], c["balance"], c["points"]) for c in view["cards"]] == [
        (CARD, "active", 4250, 310), (LOST_CARD, "lost", 500, 20),
    ]
    assert (view["balance"], view["points"]) == (4750, 330)  # a lost card's value is still the member's
    assert [(e["account"], e["amount"]) for e in view["ledger"]] == [
        ("points", 10), ("stored_value", -750), ("points", 300), ("stored_value", 5000),
    ]
    assert [(s["seq"], s["state"], s["total"]) for s in view["sales"]] == [(3, "voided", 999), (2, "committed", 1200),
                                                                            (1, "committed", 750)]
    assert (view["sales_count"], view["sales_total"]) == (2, 1950)  # the voided sale is not spending
    assert [h["to_tier"] for h in view["tier_history"]] == [1]
    assert api.get("/api/v1/members/999/overview").json()["code"] == "no_member"


def test_a_shop_manager_reads_members_and_their_own_shops_sales_but_changes_nothing(api, engine):
    ana = seed_member(engine)
    api.put(f"/api/v1/members/{ana}/photo", files={"photo": ("me.png", png())})
    _password, token = new_login(engine, "nils", SHOP_MANAGER, 0, shop_id="north")
    manager = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
    found = manager.get("/api/v1/members", params={"q": "ana"}).json()
    assert [(m["name"], m["photo"]) for m in found] == [("Ana Lima", f"/api/v1/members/{ana}/photo")]
    assert manager.get(f"/api/v1/members/{ana}").json()["phone"] == "+491512345678"
    assert manager.get(f"/api/v1/members/{ana}/photo").content == png()
    view = manager.get(f"/api/v1/members/{ana}/overview").json()
    assert {s["shop"] for s in view["sales"]} == {"north"} and (view["sales_count"], view["sales_total"]) == (1, 750)
    before = state(engine)
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/members", {"json": {"name": "Mallory"}}),
        ("PATCH", f"/api/v1/members/{ana}", {"json": {"name": "Mallory"}}),
        ("PUT", f"/api/v1/members/{ana}/tier", {"json": {"tier": 2}}),
        ("PUT", f"/api/v1/members/{ana}/tags", {"json": {"tags": []}}),
        ("DELETE", f"/api/v1/members/{ana}/photo", {}),
        ("GET", "/api/v1/members/export", {}),
        ("POST", "/api/v1/members/import", {"files": {"file": ("m.csv", b"name\nMallory\n")}}),
    ]
    for method, path, kwargs in attempts:
        assert manager.request(method, path, **kwargs).status_code == 403, (method, path)
    assert state(engine) == before


def test_a_member_reads_their_own_profile_only(engine):
    ana = seed_member(engine)
    client = TestClient(create_app(engine))
    assert client.post("/api/v1/login", json={"username": CARD, "password": CARD_PASSWORD}).status_code == 200
    own = client.get("/api/v1/members/me")
    assert own.status_code == 200
    assert own.json() == {"id": ana, "name": "Ana Lima", "phone": "+491512345678", "birthday": "1990-04-23",
                          "category_id": 1, "tier": 1, "tier_name": "Silver"}
    for path in (f"/api/v1/members/{ana}", "/api/v1/members", f"/api/v1/members/{ana}/overview"):
        assert client.get(path).status_code == 403, path


def test_the_phone_rule_holds_in_the_database_too(engine):
    seed_member(engine)
    with Session(engine) as db:  # as if another writer took the phone between the check and the commit
        db.add(Member(name="Sneaky", phone="+491512345678", created=0))
        with pytest.raises(rules.MemberError, match="UNIQUE") as clash:
            rules.commit(db)
        assert clash.value.code == "conflict" and clash.value.status == 409
    with Session(engine) as db:  # but any number of members may have no phone
        db.add_all([Member(name="A", created=0), Member(name="B", created=0)])
        db.commit()


@pytest.mark.parametrize("typed, stored", [
    ("+49 151 2345678", "+491512345678"),
    ("0049-151-2345678", "+491512345678"),
    ("(030) 123.45.67", "0301234567"),
    ("030/1234567", "0301234567"),
    ("", ""),
])
def test_phone_numbers_are_normalised(typed, stored):
    assert rules.normalise_phone(typed) == stored


def test_upgrading_a_hub_normalises_phones_and_takes_each_members_tier_from_their_cards(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from hub.db import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
        conn.execute(text("INSERT INTO member (id, name, phone, created) VALUES (1, 'Ana', '0049 151 2345678', 0),"
                          " (2, 'Bo', '', 0), (3, 'Cy', '', 0)"))
        cards = ((CARD, 1, 2, "active"), (LOST_CARD, 1, 3, "lost"), (OTHER_SHOP_CARD, 3, 1, "active"))
        for card_no, member, tier, card_state in cards:
            conn.execute(text("INSERT INTO card (card_no, uid, member_id, tier, balance, points, last_counter, opening_counter,"
                              " opening_balance, opening_points, sales, state, password_hash, replaced_by, issued)"
                              " VALUES (:c, :c, :m, :t, 0, 0, 0, 0, 0, 0, 0, :s, '', '', 0)"),
                         {"c": card_no, "m": member, "t": tier, "s": card_state})
    migrate(engine)
    with Session(engine) as db:
        assert [(m.id, m.phone, m.tier, m.birthday) for m in db.exec(select(Member).order_by(col(Member.id)))] == [
            (1, "+491512345678", 2, ""), (2, "", 0, ""), (3, "", 1, ""),
        ]
    engine.dispose()
