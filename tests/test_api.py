"""The hub's HTTP API and dashboard over a ledger filled by the real ingest."""

import random

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.cli import make_card_batch
from hub.db import make_engine, migrate
from hub.ingest import Ingestor
from hub.models import Device
from protocol import record as rec
from protocol.sync import encode_batch
from simulator.handheld import VirtualHandheld
from simulator.shop import PRICE_LIST, master_key, member_card


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    rng = random.Random(2)
    master = master_key(rng)
    card = member_card(rng, master, 77, balance=2000, points=0, tier=1)
    hh = VirtualHandheld("hh-api", root, master, PRICE_LIST)
    hh.boot()
    hh.clock.now = 2_000_000_000
    for _ in range(3):
        hh.sell(card, [(102, 1), (103, 2)])
    records = [data for _s, data in hh.journal().entries()]
    hh.close()
    engine = make_engine(f"sqlite:///{root / 'hub.db'}")
    migrate(engine)
    with Session(engine) as s:
        s.add(Device(id="hh-api", shop="north", password_hash="x", created=0, head_seq=len(records) + 2))
        s.add(Device(id="hh-idle", shop="south", password_hash="x", created=0))
        s.commit()
    make_card_batch(engine, "9100", 1, 3, 0)
    ingest = Ingestor(engine)
    ingest.ingest([("hh-api", encode_batch(records))])
    ingest.ingest([("hh-api", encode_batch([rec.encode(dict(rec.decode(records[0]), device="hh-x"))]))])
    _password, token = new_login(engine, "hq", ADMIN, 0)
    return TestClient(create_app(engine, lambda: True), headers={"Authorization": f"Bearer {token}"})


def test_health(client):
    assert client.get("/api/v1/health").json() == {"status": "ok", "database": True, "mqtt": True, "devices": 2, "ingest": {}}


def test_devices_show_sync_state_and_backlog(client):
    devices = {d["id"]: d for d in client.get("/api/v1/devices").json()}
    assert devices["hh-api"]["acked_seq"] == 6 and devices["hh-api"]["backlog"] == 2
    assert [d["id"] for d in client.get("/api/v1/devices", params={"shop": "south"}).json()] == ["hh-idle"]
    assert client.get("/api/v1/devices/nope").status_code == 404


def test_sales_filters(client):
    sales = client.get("/api/v1/sales", params={"card": "9000000000000077"}).json()
    assert len(sales) == 3 and all(s["total"] == 646 for s in sales)  # 3.20 + 2 x 1.80 = 6.80, less 5 % = 6.46
    assert sales[0]["lines"] == [{"item": 102, "qty": 1, "price": 320}, {"item": 103, "qty": 2, "price": 180}]
    assert client.get("/api/v1/sales", params={"shop": "south"}).json() == []
    assert client.get("/api/v1/sales", params={"since": 2_000_000_000 + 10**6}).json() == []
    assert client.get("/api/v1/sales", params={"limit": 0}).status_code == 422


def test_cards_and_anomalies(client):
    card = client.get("/api/v1/cards/9000000000000077").json()
    assert (card["balance"], card["last_counter"], card["sales"]) == (2000 - 3 * 646, 3, 3)
    assert client.get("/api/v1/cards/0000000000000000").status_code == 404
    [anomaly] = client.get("/api/v1/anomalies").json()
    assert anomaly["code"] == "device_mismatch" and anomaly["device_id"] == "hh-api"


def test_openapi_is_versioned(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/health", "/api/v1/devices", "/api/v1/sales", "/api/v1/cards/{card_no}", "/api/v1/anomalies"} <= set(paths)


def test_dashboard_html(client):
    page = client.get("/").text
    assert "hh-api" in page and "hh-idle" in page and "device_mismatch" in page


def test_card_numbers_in_stock(client):
    stock = client.get("/api/v1/card-numbers").json()
    assert [c["card_no"] for c in stock] == ["9100000000000018", "9100000000000026", "9100000000000034"]
    assert all(c["state"] == "stock" for c in stock)
    assert client.get("/api/v1/card-numbers", params={"state": "issued"}).json() == []
