"""Every route says which roles may use it, and every other role is refused; each role sees only its own."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from hub import auth
from hub.api_auth import approve_merchant, new_merchant
from hub.app import create_app
from hub.auth import ADMIN, MEMBER, MERCHANT, PUBLIC, ROLES, SHOP_MANAGER, new_login, route_roles
from hub.db import make_engine, migrate
from hub.masterdata import save_product, save_shop
from hub.models import Card, Device, Member

CARD_NO = "9100000000000018"
OTHER_CARD = "9100000000000026"
CARD_PASSWORD = "open sesame 1"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub with one of each role: admin, manager of shop north, an approved merchant, a member with a card."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('roles') / 'hub.db'}")
    migrate(engine)
    with Session(engine) as db:
        for shop in ("north", "south"):
            save_shop(db, "test", 0, shop, shop.title())
        acme = new_merchant(db, "test", 0, "Acme")
        approve_merchant(db, "test", 0, acme.id or 0)
        rival = new_merchant(db, "test", 0, "Rival")
        approve_merchant(db, "test", 0, rival.id or 0)
        save_product(db, "test", 0, 501, "Acme soap", merchant_id=acme.id)
        save_product(db, "test", 0, 502, "Rival soap", merchant_id=rival.id)
        save_product(db, "test", 0, 101, "Espresso")
        db.add(Member(id=7, name="Mia", created=0))
        db.add(Member(id=8, name="Noor", created=0))
        for card_no, member in ((CARD_NO, 7), (OTHER_CARD, 8)):
            db.add(
                Card(card_no=card_no, uid=card_no[-8:], member_id=member, tier=0, password_hash=auth.hash_password(CARD_PASSWORD))
            )
        db.add(Device(id="hh-north", shop="north", password_hash="x", created=0))
        db.add(Device(id="hh-south", shop="south", password_hash="x", created=0))
        db.commit()
        merchants = {"acme": acme.id, "rival": rival.id}
    app = create_app(engine)
    clients = {}
    for role, extra in ((ADMIN, {}), (SHOP_MANAGER, {"shop_id": "north"}), (MERCHANT, {"merchant_id": merchants["acme"]})):
        _password, token = new_login(engine, f"{role}-user", role, 0, **extra)
        clients[role] = TestClient(app, headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)
    member = TestClient(app, follow_redirects=False)
    assert member.post("/api/v1/login", json={"username": CARD_NO, "password": CARD_PASSWORD}).status_code == 200
    clients[MEMBER] = member
    clients[PUBLIC] = TestClient(app, follow_redirects=False)
    yield app, clients, engine, merchants
    engine.dispose()


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_declares_its_roles(hub):
    app = hub[0]
    undeclared = [(m, p) for m, p, roles in route_roles(app) if not roles]
    assert undeclared == [], "routes without gate.require()/gate.public()"
    known = {*ROLES, PUBLIC}
    assert all(set(roles) <= known for _m, _p, roles in route_roles(app))


def test_every_other_role_is_refused(hub):
    app, clients, _engine, _m = hub
    checked = 0
    for method, path, roles in route_roles(app):
        if PUBLIC in roles:
            continue
        url = concrete(path)
        anonymous = clients[PUBLIC].request(method, url)
        if path.startswith("/api/"):
            assert anonymous.status_code == 401, f"{method} {path} without a login: {anonymous.status_code}"
        else:  # a page sends the browser to the login form, and back afterwards
            assert anonymous.status_code == 303, f"{method} {path} without a login: {anonymous.status_code}"
            assert anonymous.headers["location"].startswith("/login?next=")
        for role in ROLES:
            if role in roles:
                continue
            answer = clients[role].request(method, url)
            assert answer.status_code == 403, f"{method} {path} as {role}: {answer.status_code} {answer.text[:200]}"
            checked += 1
    assert checked > 50


def test_a_wrong_password_or_token_gets_nobody_in(hub):
    app, clients, _engine, _m = hub
    anonymous = clients[PUBLIC]
    wrong = anonymous.post("/api/v1/login", json={"username": f"{ADMIN}-user", "password": "not it at all"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "bad_login"
    assert "set-cookie" not in wrong.headers
    card = anonymous.post("/api/v1/login", json={"username": CARD_NO, "password": "not it at all"})
    assert card.status_code == 401
    bogus = TestClient(app, headers={"Authorization": "Bearer hub_made_up"})
    assert bogus.get("/api/v1/me").status_code == 401


def test_the_login_form_returns_to_the_page_asked_for(hub):
    _app, clients, _engine, _m = hub
    anonymous = clients[PUBLIC]
    assert anonymous.get("/").headers["location"] == "/login?next=/"
    form = anonymous.post("/login", data={"username": f"{ADMIN}-user", "password": "wrong password", "next": "/"})
    assert form.status_code == 401 and "wrong user name or password" in form.text
    # Only paths on this hub: a crafted link cannot send a fresh login elsewhere.
    member = anonymous.post("/login", data={"username": CARD_NO, "password": CARD_PASSWORD, "next": "//evil.example/"})
    assert member.status_code == 303 and member.headers["location"] == "/me"
    assert auth.COOKIE in member.cookies


def test_guessing_a_password_locks_the_name_for_a_while(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    password, _token = new_login(engine, "ana", ADMIN, 0)
    now = [1_000_000.0]
    gate = auth.Gate(engine, clock=lambda: now[0])
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(auth.AuthError, match="wrong user name or password"):
            gate.login("ana", "guess")
    with pytest.raises(auth.AuthError, match="too many wrong passwords") as locked:
        gate.login("ana", password)  # even the right one, until the lock passes
    assert locked.value.status == 429
    now[0] += auth.LOCK_SECONDS
    who, _cookie = gate.login("ana", password)
    assert who.role == ADMIN


def test_a_shop_manager_sees_only_their_shop(hub):
    _app, clients, _engine, _m = hub
    manager = clients[SHOP_MANAGER]
    assert [d["id"] for d in manager.get("/api/v1/devices").json()] == ["hh-north"]
    assert manager.get("/api/v1/devices/hh-south").status_code == 404
    assert [s["id"] for s in manager.get("/api/v1/shops").json()] == ["north"]
    refused = manager.post("/api/v1/shops/south/prices/publish")
    assert refused.status_code == 403 and refused.json()["code"] == "not_your_shop"
    everywhere = manager.post("/api/v1/price-lists", json={"prices": {"101": 250}})
    assert everywhere.status_code == 403  # a global list is HQ's
    own = manager.post("/api/v1/price-lists", json={"shop_id": "north", "prices": {"101": 260}})
    assert own.status_code == 201, own.text


def test_a_merchant_touches_only_its_own_products(hub):
    _app, clients, _engine, merchants = hub
    merchant = clients[MERCHANT]
    assert [p["id"] for p in merchant.get("/api/v1/products").json()] == [501]
    mine = merchant.put("/api/v1/products/501", json={"name": "Acme soap XL", "discountable": False})
    assert mine.status_code == 200 and mine.json()["merchant_id"] == merchants["acme"]
    theirs = merchant.put("/api/v1/products/502", json={"name": "Taken over"})
    assert theirs.status_code == 403 and theirs.json()["code"] == "not_your_product"
    hq = merchant.put("/api/v1/products/101", json={"name": "Taken over"})
    assert hq.status_code == 403
    new = merchant.put("/api/v1/products/503", json={"name": "Acme brush"})
    assert new.status_code == 200 and new.json()["merchant_id"] == merchants["acme"]
    prices = merchant.post("/api/v1/price-lists", json={"prices": {"501": 300, "502": 100}})
    assert prices.status_code == 403 and "502" in prices.json()["detail"]
    names = {p["id"]: p["name"] for p in clients[ADMIN].get("/api/v1/products").json()}
    assert names[502] == "Rival soap" and names[101] == "Espresso"


def test_an_unapproved_merchant_is_refused_until_hq_approves(hub):
    app, clients, engine, _m = hub
    with Session(engine) as db:
        late = new_merchant(db, "test", 0, "Latecomer")
        db.commit()
        late_id = late.id
    _password, token = new_login(engine, "late-user", MERCHANT, 0, merchant_id=late_id)
    late_client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    refused = late_client.get("/api/v1/products")
    assert refused.status_code == 403 and "not approved" in refused.json()["detail"]
    assert clients[ADMIN].post(f"/api/v1/merchants/{late_id}/approve").json()["approved"] is True
    assert late_client.get("/api/v1/products").status_code == 200


def test_a_member_sees_only_their_own_card(hub):
    _app, clients, _engine, _m = hub
    member = clients[MEMBER]
    assert member.get("/api/v1/me").json()["card_no"] == CARD_NO
    assert member.get(f"/api/v1/cards/{CARD_NO}").status_code == 200
    assert member.get(f"/api/v1/cards/{OTHER_CARD}").status_code == 403


def test_the_api_document_and_docs_say_who_may_use_each_route(hub):
    app, clients, _engine, _m = hub
    schema = clients[PUBLIC].get("/api/v1/openapi.json").json()
    assert schema["paths"]["/api/v1/audit"]["get"]["x-roles"] == [ADMIN]
    assert "Roles: admin, shop_manager" in schema["paths"]["/api/v1/devices"]["get"]["description"]
    # docs/roles.md is the same table (regenerate it with `hub roles > docs/roles.md`).
    assert (Path(__file__).parents[1] / "docs" / "roles.md").read_text().endswith(auth.roles_table(app))
