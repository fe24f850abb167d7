"""Points and stored value through /api/v1/loyalty and `hub loyalty`, on a hub holding a sale a real handheld synced."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.models import CardAction, Refund
from tests.test_points_card import CARD_1, DAY, Shop

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shop(tmp_path):
    s = Shop(tmp_path)
    card = s.card(1, balance=5000)
    assert s.hh.sell(card, [(301, 2), (101, 1)]) == "receipt"  # 28.30 by card, 28 points
    s.sync()
    yield s
    s.close()


@pytest.fixture
def admin(shop):
    _p, token = new_login(shop.engine, "hq", ADMIN, 0)
    with TestClient(create_app(shop.engine), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_the_loyalty_api(shop, admin):
    device, seq = shop.last_sale()
    too_much = admin.post("/api/v1/loyalty/refunds", json={"device_id": device, "seq": seq, "lines": {"301": 3}})
    assert too_much.status_code == 400 and too_much.json() == {
        "detail": "item 301: 2 sold, 0 refunded already, 3 asked", "code": "too_much"}
    done = admin.post("/api/v1/loyalty/refunds", json={"device_id": device, "seq": seq, "lines": {"301": 1}})
    assert done.status_code == 201, done.text
    body = done.json()
    assert (body["total"], body["stored_value"], body["points_taken"], body["lines"]) == (
        1290, 1290, 12, [{"item": 301, "qty": 1, "price": 1290}])
    assert body["action_state"] == "pending"

    assert admin.put("/api/v1/loyalty/members/2/referrer", json={"referrer_id": 1}).json()["referrer_id"] == 1
    again = admin.put("/api/v1/loyalty/members/2/referrer", json={"referrer_id": 1})
    assert again.status_code == 409 and again.json()["code"] == "referrer_set"

    bad = admin.post("/api/v1/loyalty/bonus-rules", json={"thresholds": [[50000, 5000], [50000, 4000]]})
    assert bad.status_code == 400 and bad.json()["code"] == "overlapping_bonus"
    assert admin.post("/api/v1/loyalty/bonus-rules", json={"thresholds": [[50000, 5000]]}).json() == {"version": 1}
    assert [r["thresholds"] for r in admin.get("/api/v1/loyalty/bonus-rules").json()] == [[[50000, 5000]]]

    assert admin.get("/api/v1/loyalty/liability").json() == {
        "cards": 5000 - 2830, "pending": 1290, "pending_topups": 0, "liability": 5000 - 2830 + 1290,
        "ledger": 5000 - 2830, "balanced": True}
    statement = admin.get(f"/api/v1/loyalty/members/1/points?now={shop.now}").json()
    assert (statement["points"], statement["debt"], statement["totals"]["earned"]) == (28, 0, 28)
    ran = admin.post("/api/v1/loyalty/jobs/run", json={"now": shop.now + 400 * DAY}).json()
    # The refund's -12 is queued; the 16 points left of the lot expire after 365 days.
    assert ran == {"referral_actions": 0, "debt_actions": 0, "expire_actions": 1, "points_expiring": 16}
    assert admin.post("/api/v1/loyalty/jobs/expire", json={"now": shop.now + 400 * DAY}).json() == {"actions": 0, "points": 0}


def run_hub(shop, *args):
    env = dict(os.environ, HUB_DATA_DIR=str(shop.tmp_path))
    return subprocess.run([sys.executable, "-m", "hub", "loyalty", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_loyalty_commands(shop):
    device, seq = shop.last_sale()
    refused = run_hub(shop, "refund", device, str(seq), "301=5")
    assert refused.returncode == 2 and "item 301: 2 sold, 0 refunded already, 5 asked" in refused.stderr
    done = run_hub(shop, "refund", device, str(seq))
    assert done.returncode == 0, done.stderr
    assert "28.30 (28.30 to card 9000000000000001, 0.00 cash, 0 points back, 28 points taken)" in done.stdout
    twice = run_hub(shop, "refund", device, str(seq))
    assert twice.returncode == 2 and "refunded already" in twice.stderr
    with Session(shop.engine) as db:
        assert len(db.exec(select(Refund)).all()) == 1
        assert [(a.card_no, a.kind, a.amount, a.points) for a in db.exec(select(CardAction))] == [
            (CARD_1, "refund", 2830, -28)]

    negative = run_hub(shop, "bonus", "set", "500.00=-5")
    assert negative.returncode == 2
    made = run_hub(shop, "bonus", "set", "500.00=50.00", "200.00=15.00")
    assert made.returncode == 0 and "pay 200.00 get 15.00, pay 500.00 get 50.00" in made.stdout, made.stderr
    backwards = run_hub(shop, "bonus", "set", "500.00=50.00", "--from", "2000", "--until", "1000")
    assert backwards.returncode == 2 and "before they start" in backwards.stderr
    liability = run_hub(shop, "liability")
    assert "liability: 50.00" in liability.stdout and "balanced: True" in liability.stdout
    nothing = run_hub(shop, "expire", "--now", str(shop.now))
    assert nothing.returncode == 0 and nothing.stdout.strip() == "nothing due"
