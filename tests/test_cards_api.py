"""The card API under /api/v1 with the real desk reader (private pcscd + vpcd + virtual card) and real SQLite."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hub.app import create_app
from hub.auth import ADMIN, SHOP_MANAGER, new_login
from hub.db import make_engine, migrate
from hub.masterdata import save_shop
from hub.models import Card, CardAction, CardStock, HotlistEntry, IssueAttempt, LedgerEntry, Member
from protocol import cardno
from simulator import pcsc
from simulator.mifare_card import MifareClassic1K
from simulator.shop import master_key, read_card_directly

MASTER = master_key(random.Random(909))
FIRST, SECOND, THIRD = (cardno.make("8200", n) for n in (1, 2, 3))


class Hub:
    def __init__(self, engine: Any, admin: TestClient, manager: TestClient, anyone: TestClient) -> None:
        self.engine, self.admin, self.manager, self.anyone = engine, admin, manager, anyone

    def rows(self) -> list[Any]:
        with Session(self.engine) as db:
            return [[r.model_dump() for r in db.exec(select(t))]
                    for t in (Card, CardStock, IssueAttempt, LedgerEntry, HotlistEntry, CardAction)]

    def member(self, card_no: str, password: str) -> TestClient:
        client = TestClient(self.admin.app)
        answer = client.post("/api/v1/login", json={"username": card_no, "password": password})
        assert answer.status_code == 200, answer.text
        return client


@pytest.fixture
def hub(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, pcscd: pcsc.PrivatePcscd) -> Iterator[Hub]:
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER.hex())
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    with Session(engine) as db:
        db.add(Member(id=5, name="Ada Lovelace", created=0))
        save_shop(db, "test", 0, "north", "North")
        db.commit()
    app = create_app(engine)
    _p, admin_token = new_login(engine, "hq", ADMIN, 0)
    _p, manager_token = new_login(engine, "boss", SHOP_MANAGER, 0, shop_id="north")
    with TestClient(app, headers={"Authorization": f"Bearer {admin_token}"}) as admin:
        yield Hub(engine, admin, TestClient(app, headers={"Authorization": f"Bearer {manager_token}"}), TestClient(app))
    engine.dispose()


def refusal(answer: Any, status: int, code: str, words: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code and words in body["detail"], body


def test_batches_and_readers(hub: Hub, pcscd: pcsc.PrivatePcscd) -> None:
    assert hub.admin.get("/api/v1/readers").json() == {"readers": pcscd.reader_names}
    made = hub.admin.post("/api/v1/card-batches", json={"prefix": "8200", "count": 3})
    assert made.status_code == 201
    assert {k: made.json()[k] for k in ("first", "last", "count", "stock")} == {"first": FIRST, "last": THIRD, "count": 3,
                                                                              "stock": 3}
    before = hub.rows()
    refusal(hub.admin.post("/api/v1/card-batches", json={"prefix": "8200", "start": 3, "count": 5}), 409,
            "duplicate_numbers", "1 of these card numbers exist already (first " + THIRD)
    refusal(hub.admin.post("/api/v1/card-batches", json={"prefix": "82a", "count": 5}), 400, "bad_batch", "prefix")
    assert hub.rows() == before
    assert [b["count"] for b in hub.admin.get("/api/v1/card-batches").json()] == [3]


def test_issue_then_the_member_sees_their_card_and_changes_the_password(hub: Hub, desk: Any, pcscd: Any) -> None:
    hub.admin.post("/api/v1/card-batches", json={"prefix": "8200", "count": 3})
    before = hub.rows()
    refusal(hub.admin.post("/api/v1/card-issues", json={"member_id": 5}), 409, "no_card",
            "no card on the desk reader: put a blank card on it")
    refusal(hub.admin.post("/api/v1/card-issues", json={"member_id": 5, "reader": "Desk 1"}), 404, "unknown_reader",
            "no PC/SC reader named 'Desk 1'; readers: 'Virtual PCD 00 00', 'Virtual PCD 00 01'")
    card = MifareClassic1K.blank(bytes.fromhex("a1a2a3a4"))
    desk.insert(card)
    refusal(hub.admin.post("/api/v1/card-issues", json={"member_id": 6}), 404, "unknown_member", "no member 6")
    refusal(hub.admin.post("/api/v1/card-issues", json={"member_id": 5, "password": "short"}), 400, "weak_password",
            "at least 8")
    assert hub.rows() == before
    desk.remove_at_write(8, landed=True)
    refusal(hub.admin.post("/api/v1/card-issues", json={"member_id": 5, "balance": 1000}), 409, "card_pulled",
            "put it back and issue again to finish")
    [attempt] = hub.admin.get("/api/v1/card-issues").json()
    assert (attempt["uid"], attempt["card_no"], attempt["state"]) == ("a1a2a3a4", FIRST, "writing")
    desk.insert(card)
    issued = hub.admin.post("/api/v1/card-issues", json={"member_id": 5, "reader": pcscd.reader_name, "balance": 1000})
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["resumed"] and body["card"]["card_no"] == FIRST and body["card"]["balance"] == 1000
    password = body["password"]
    assert len(password) == 10 and "password_hash" not in body["card"]
    assert hub.admin.get("/api/v1/card-issues").json() == []
    refusal(hub.admin.post("/api/v1/card-issues", json={"member_id": 5}), 409, "already_issued", "issued already")

    member = hub.member(FIRST, password)
    mine = member.get(f"/api/v1/cards/{FIRST}/detail").json()
    assert (mine["card_no"], mine["balance"], mine["state"], mine["member_name"]) == (FIRST, 1000, "active", "Ada Lovelace")
    assert "password_hash" not in mine
    refusal(member.post(f"/api/v1/cards/{FIRST}/password", json={"old_password": "guess guess", "new_password": "n3w pass"}),
            403, "wrong_password", "the current password is wrong")
    refusal(member.post(f"/api/v1/cards/{SECOND}/password", json={"old_password": password, "new_password": "n3w pass"}),
            404, "unknown_card", f"no card {SECOND}")
    changed = member.post(f"/api/v1/cards/{FIRST}/password", json={"old_password": password, "new_password": "n3w pass!"})
    assert changed.status_code == 200 and changed.json() == {"card_no": FIRST, "password": None}
    hub.member(FIRST, "n3w pass!")
    # HQ resets it; the generated one is answered once.
    reset = hub.admin.post(f"/api/v1/cards/{FIRST}/password", json={}).json()
    hub.member(FIRST, reset["password"])
    # A shop manager may look the card up, not change it.
    assert hub.manager.get(f"/api/v1/cards/{FIRST}/detail").json()["balance"] == 1000
    assert hub.manager.post(f"/api/v1/cards/{FIRST}/lost").status_code == 403


def test_lost_unfreeze_topup_replace_verify(hub: Hub, desk: Any) -> None:
    hub.admin.post("/api/v1/card-batches", json={"prefix": "8200", "count": 3})
    old = MifareClassic1K.blank(bytes.fromhex("b1b2b3b4"))
    desk.insert(old)
    assert hub.admin.post("/api/v1/card-issues", json={"member_id": 5, "balance": 500, "points": 9,
                                                       "password": "member pass 1"}).status_code == 201
    verified = hub.admin.post("/api/v1/card-verifications", json={}).json()
    assert verified["ok"] and verified["card"]["card_no"] == FIRST
    topup = hub.admin.post(f"/api/v1/cards/{FIRST}/topups", json={"amount": 2500})
    assert topup.status_code == 201 and (topup.json()["kind"], topup.json()["state"]) == ("topup", "pending")
    assert hub.admin.get(f"/api/v1/cards/{FIRST}/detail").json()["pending_topups"] == 2500
    before = hub.rows()
    refusal(hub.admin.post(f"/api/v1/cards/{FIRST}/topups", json={"amount": -5}), 400, "bad_amount", "a top-up is 0.01")
    refusal(hub.admin.post(f"/api/v1/cards/{FIRST}/unfreeze"), 409, "illegal_state", "nothing to unfreeze")
    refusal(hub.admin.post("/api/v1/cards/12345/lost"), 400, "bad_card_no", "a card number is 16 digits")
    refusal(hub.admin.post(f"/api/v1/cards/{SECOND}/lost"), 404, "unknown_card", f"no card {SECOND} on the hub")
    assert hub.rows() == before
    lost = hub.admin.post(f"/api/v1/cards/{FIRST}/lost").json()
    assert lost["state"] == "lost" and lost["hotlisted"] and lost["hotlist"][-1]["reason"] == "lost"
    assert [e["card_no"] for e in hub.admin.get("/api/v1/card-hotlist").json()] == [FIRST]
    assert not hub.admin.post("/api/v1/card-verifications", json={}).json()["ok"]
    refusal(hub.admin.post(f"/api/v1/cards/{FIRST}/lost"), 409, "illegal_state", "already reported lost")
    refusal(hub.admin.post(f"/api/v1/cards/{FIRST}/replace", json={}), 409, "already_issued",
            f"card b1b2b3b4 is issued already, as card {FIRST}")  # the old card is still on the reader
    new = MifareClassic1K.blank(bytes.fromhex("c1c2c3c4"))
    desk.insert(new)
    replaced = hub.admin.post(f"/api/v1/cards/{FIRST}/replace", json={})
    assert replaced.status_code == 201, replaced.text
    assert (replaced.json()["card"]["card_no"], replaced.json()["card"]["balance"]) == (SECOND, 3000)
    assert read_card_directly(new, MASTER)["purse"]["points"] == 9
    assert [e["reason"] for e in hub.admin.get(f"/api/v1/cards/{FIRST}/detail").json()["hotlist"]] == ["lost", "replaced"]
    hub.member(SECOND, "member pass 1")
    refusal(hub.admin.post(f"/api/v1/cards/{FIRST}/unfreeze"), 409, "illegal_state", f"was replaced by {SECOND}")
    refusal(hub.admin.post(f"/api/v1/cards/{FIRST}/topups", json={"amount": 100}), 409, "illegal_state",
            "top up that card")
    assert hub.admin.post("/api/v1/card-settlements").json() == []
    desk.remove()
    refusal(hub.admin.post("/api/v1/card-verifications", json={}), 409, "no_card", "no card on the desk reader")
