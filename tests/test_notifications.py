"""Notifications reach the member: a plan run queues them, /me and the API deliver them, the member marks them read.

Real SQLite, the real app through HTTP, and the /me page in Chromium; the time is virtual.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect
from sqlmodel import Session, col, select

from hub import auth, notifications, plans, scheduler
from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.cli import main as hub_cli
from hub.models import Card, Member, Notification
from tests.browser import needs_chromium, serve
from tests.plans_world import add_member, at, buy, card_no, doc_text, hub_db

PASSWORD = "open sesame 1"
HELLO = {
    "when": {"schedule": "monthly", "day": 1},
    "audience": {"bought_within_days": 90},
    "actions": [{"notify": "Hello {name}, coffee is on us in June"}],
}
THANKS = {
    "when": {"schedule": "weekly", "weekday": 0},
    "audience": {"bought_within_days": 90},
    "actions": [{"notify": "Thanks {name}: 2x points this week"}],
}


def world(tmp_path: Any) -> tuple[Any, dict[str, int]]:
    """Ana and Ben bought in May and can log in with their cards; Cleo never bought. Two plans ran: June 1, then June 2."""
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        ids = {name: add_member(db, name, at("2025-01-01")) for name in ("Ana", "Ben", "Cleo")}
        for name in ("Ana", "Ben"):
            buy(db, ids[name], 1200, at("2025-05-20"))
            card = db.get(Card, card_no(ids[name]))
            assert card is not None
            card.password_hash = auth.hash_password(PASSWORD)
            db.add(card)
        plans.add_plan(db, "hq", at("2025-05-01"), "Hello", HELLO)
        plans.add_plan(db, "hq", at("2025-05-01"), "Thanks", THANKS)
        db.commit()
        plans.run_plan(db, "hq", at("2025-06-01T09:00"), 1)
        plans.run_plan(db, "hq", at("2025-06-02T09:00"), 2)
        db.commit()
    return engine, ids


def states(engine: Any, member_id: int) -> list[tuple[str, str, int, int]]:
    with Session(engine) as db:
        rows = db.exec(select(Notification).where(Notification.member_id == member_id).order_by(col(Notification.id)))
        return [(n.text.split(",")[0].split(":")[0], n.state, n.delivered, n.read) for n in rows]


def test_the_inbox_delivers_newest_first_and_read_is_marked_once(tmp_path):
    engine, ids = world(tmp_path)
    assert states(engine, ids["Ana"]) == [("Hello Ana", "queued", 0, 0), ("Thanks Ana", "queued", 0, 0)]
    shown = at("2025-06-03T08:00")
    with Session(engine) as db:
        got = [(n.text, n.state) for n in notifications.inbox(db, ids["Ana"], shown)]
        db.commit()
    assert got == [("Thanks Ana: 2x points this week", "delivered"), ("Hello Ana, coffee is on us in June", "delivered")]
    assert states(engine, ids["Ana"]) == [("Hello Ana", "delivered", shown, 0), ("Thanks Ana", "delivered", shown, 0)]
    assert states(engine, ids["Ben"]) == [("Hello Ben", "queued", 0, 0), ("Thanks Ben", "queued", 0, 0)]  # not Ana's

    with Session(engine) as db:
        hello = db.exec(select(Notification).where(Notification.member_id == ids["Ana"])).first()
        assert hello is not None and hello.id is not None
        notifications.mark_read(db, ids["Ana"], hello.id, at("2025-06-03T08:05"))
        db.commit()
        notifications.mark_read(db, ids["Ana"], hello.id, at("2025-06-04T10:00"))  # again: the first time stays
        db.commit()
        # Ben cannot mark Ana's: it is "not found" for him, and nothing changes.
        with pytest.raises(notifications.NotificationError) as refused:
            notifications.mark_read(db, ids["Ben"], hello.id, at("2025-06-04T10:00"))
        db.rollback()
        assert (refused.value.code, refused.value.status) == ("no_notification", 404)
        assert notifications.unread(db, ids["Ana"]) == 1
    assert states(engine, ids["Ana"])[0] == ("Hello Ana", "read", shown, at("2025-06-03T08:05"))

    # Read on a screen that never fetched it: it reached the member, so it is delivered at that moment too.
    with Session(engine) as db:
        first_ben = db.exec(select(Notification).where(Notification.member_id == ids["Ben"])).first()
        assert first_ben is not None and first_ben.id is not None
        notifications.mark_read(db, ids["Ben"], first_ben.id, at("2025-06-05"))
        db.commit()
        assert notifications.mark_all_read(db, ids["Ben"], at("2025-06-06")) == 1
        db.commit()
    assert states(engine, ids["Ben"]) == [("Hello Ben", "read", at("2025-06-05"), at("2025-06-05")),
                                          ("Thanks Ben", "read", at("2025-06-06"), at("2025-06-06"))]


def test_the_plan_run_log_counts_delivered_and_read(tmp_path, monkeypatch, capsys):
    engine, ids = world(tmp_path)
    with Session(engine) as db:
        notifications.inbox(db, ids["Ana"], at("2025-06-03"))
        hello = db.exec(select(Notification).where(Notification.member_id == ids["Ana"], Notification.run_id == 1)).one()
        notifications.mark_read(db, ids["Ana"], hello.id or 0, at("2025-06-03"))
        db.commit()
        assert notifications.delivery_of_runs(db, [1, 2]) == {1: {"notifications": 2, "delivered": 1, "read": 1},
                                                             2: {"notifications": 2, "delivered": 1, "read": 0}}
    _password, token = new_login(engine, "hq", ADMIN, 0)
    api = TestClient(create_app(engine, clock=lambda: at("2025-06-04")), headers={"Authorization": f"Bearer {token}"})
    one = api.get("/api/v1/plans/runs/1").json()
    assert one["delivery"] == {"notifications": 2, "delivered": 1, "read": 1}
    assert one["summary"] == {"coupons": 0, "notifications": 2, "price_lists": []}  # what the run itself did stays
    assert [r["delivery"]["delivered"] for r in api.get("/api/v1/plans/2/runs").json()] == [1]

    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))  # hub_db's database is hub.db there
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    assert hub_cli(["plan", "runs", "1"]) == 0
    assert "notifications delivered 1, read 1" in capsys.readouterr().out


def test_the_api_shows_a_member_their_own_and_marks_read(tmp_path):
    engine, ids = world(tmp_path)
    app = create_app(engine, clock=lambda: at("2025-06-03T12:00"))
    ana, ben = TestClient(app), TestClient(app)
    assert ana.post("/api/v1/login", json={"username": card_no(ids["Ana"]), "password": PASSWORD}).status_code == 200
    assert ben.post("/api/v1/login", json={"username": card_no(ids["Ben"]), "password": PASSWORD}).status_code == 200

    inbox = ana.get("/api/v1/me/notifications").json()
    assert [n["text"] for n in inbox] == ["Thanks Ana: 2x points this week", "Hello Ana, coffee is on us in June"]
    assert {(n["state"], n["delivered"], n["read"]) for n in inbox} == {("delivered", at("2025-06-03T12:00"), 0)}

    read = ana.post(f"/api/v1/me/notifications/{inbox[1]['id']}/read")
    assert read.status_code == 200 and (read.json()["state"], read.json()["read"]) == ("read", at("2025-06-03T12:00"))
    theirs = ben.post(f"/api/v1/me/notifications/{inbox[0]['id']}/read")
    assert theirs.status_code == 404 and theirs.json() == {"detail": f"you have no notification {inbox[0]['id']}",
                                                          "code": "no_notification"}
    assert [n["state"] for n in ana.get("/api/v1/me/notifications").json()] == ["delivered", "read"]
    assert [n["text"] for n in ben.get("/api/v1/me/notifications").json()] == ["Thanks Ben: 2x points this week",
                                                                                "Hello Ben, coffee is on us in June"]
    assert ana.post("/api/v1/me/notifications/999/read").json()["code"] == "no_notification"


def test_a_gateway_plugs_in_as_one_function_and_the_plans_job_pushes_through_it(tmp_path):
    engine, ids = world(tmp_path)
    # Today's channel pushes nothing: the plans job (which runs both plans on schedule too) leaves every
    # notification queued for the inbox.
    run = scheduler.run_job(engine, scheduler.job_named("plans"), at("2025-06-02T10:00"))
    assert run.ok and "pushed" not in run.summary
    assert {s[1] for s in states(engine, ids["Ana"])} == {"queued"}

    sent: list[tuple[str, str]] = []

    def sms(member: Member, text: str) -> str:  # a gateway that took every message with a phone number
        sent.append((member.name, text))
        return "sms"

    with Session(engine) as db:
        queued = len(db.exec(select(Notification).where(Notification.state == "queued")).all())
        assert queued == 8  # the two manual runs, and the job's own scheduled ones
        assert notifications.push(db, at("2025-06-02T10:00"), sms) == queued == len(sent)
        db.commit()
        assert notifications.push(db, at("2025-06-02T11:00"), sms) == 0  # delivered once
        ana = db.exec(select(Notification).where(Notification.member_id == ids["Ana"])).all()
        assert {(n.state, n.channel, n.delivered) for n in ana} == {("delivered", "sms", at("2025-06-02T10:00"))}
    assert sorted(sent)[0] == ("Ana", "Hello Ana, coffee is on us in June")


@pytest.fixture
def site(tmp_path: Any) -> Iterator[tuple[str, dict[str, int], Any]]:
    engine, ids = world(tmp_path)
    with serve(create_app(engine, clock=lambda: at("2025-06-03T12:00"))) as base:
        yield base, ids, engine
    engine.dispose()


@needs_chromium
def test_the_member_reads_messages_on_their_page(browser: Browser, site: Any) -> None:
    base, ids, engine = site
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base)
    page = context.new_page()
    try:
        page.goto("/login")
        page.fill("input[name=username]", card_no(ids["Ana"]))
        page.fill("input[name=password]", PASSWORD)
        page.click("#login button")
        expect(page.locator("#unread-count")).to_have_text("2 unread")
        rows = page.locator("#my-notifications tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("Thanks Ana: 2x points this week")  # newest first
        expect(rows.nth(1)).to_contain_text("Hello Ana, coffee is on us in June")
        expect(rows.nth(0).locator("b.on")).to_have_text("New")
        assert {s[1] for s in states(engine, ids["Ana"])} == {"delivered"}  # shown: delivered

        hello = rows.nth(1).get_attribute("id")
        page.click(f"#{hello}-read")
        expect(page.locator("#notice")).to_have_text("Message marked read.")
        expect(page.locator("#unread-count")).to_have_text("1 unread")
        expect(page.locator(f"#{hello}-state")).to_have_text("read")
        assert page.locator(f"#{hello}-read").count() == 0

        page.click("#notes-read-all")
        expect(page.locator("#notice")).to_have_text("1 message marked read.")
        expect(page.locator("#unread-count")).to_have_text("0 unread")
        assert page.locator("#notes-read-all").count() == 0
        assert {s[1] for s in states(engine, ids["Ana"])} == {"read"}
        assert {s[1] for s in states(engine, ids["Ben"])} == {"queued"}  # Ben has not looked yet

        # A crafted form for a notification that is not hers: the page says so and nothing changes.
        with Session(engine) as db:
            bens = db.exec(select(Notification).where(Notification.member_id == ids["Ben"])).first()
            assert bens is not None
        answer = page.request.post(f"{base}/me/notifications/{bens.id}/read")
        assert answer.status == 404 and f"you have no notification {bens.id}" in answer.text()
        assert {s[1] for s in states(engine, ids["Ben"])} == {"queued"}
    finally:
        context.close()


def test_the_doc_names_the_states_and_the_gateway_function():
    text = doc_text()
    section = text[text.index("### Notifications"):text.index("### Routes and commands")]
    for state in (notifications.QUEUED, notifications.DELIVERED, notifications.READ):
        assert f"| `{state}` |" in section
    assert f"`hub.notifications.{notifications.no_gateway.__name__}(member, text)`" in section
