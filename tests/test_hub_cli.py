"""The `hub` command: registering devices, listing them, a broker that reloads without restarting."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware.mqtt import MQTTClient, MQTTConnectError
from firmware.netio import Network
from hub.broker import free_port
from simulator.vhal import SimClock

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, HUB_DATA_DIR=str(tmp_path / "hub"), HUB_MQTT_PORT=str(free_port()))


def hub(env, *args):
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def login(port, user, password):
    client = MQTTClient(Network(), SimClock(), user, "127.0.0.1", port, user=user, password=password)
    client.connect(clean_session=True)
    client.close()


def test_device_add_and_list(env):
    added = hub(env, "device", "add", "hh-01", "--shop", "north")
    assert added.returncode == 0, added.stderr
    creds = json.loads(added.stdout)
    assert creds["device_id"] == "hh-01" and len(creds["mqtt_password"]) >= 20
    again = hub(env, "device", "add", "hh-01", "--shop", "north")
    assert again.returncode == 2 and "already registered" in again.stderr
    bad = hub(env, "device", "add", "hh/01", "--shop", "north")
    assert bad.returncode != 0
    listing = hub(env, "device", "list").stdout
    assert "hh-01" in listing and "north" in listing and "offline" in listing
    db = Path(env["HUB_DATA_DIR"]) / "hub.db"
    assert creds["mqtt_password"].encode() not in db.read_bytes()  # stored hashed only


def test_broker_admits_registered_devices_and_reloads_on_add(env):
    first = json.loads(hub(env, "device", "add", "hh-01", "--shop", "north").stdout)
    port = int(env["HUB_MQTT_PORT"])
    broker = subprocess.Popen([sys.executable, "-m", "hub", "broker"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert broker.stdout is not None
        assert "mosquitto on" in broker.stdout.readline()
        login(port, "hh-01", first["mqtt_password"])
        with pytest.raises(MQTTConnectError):
            login(port, "hh-01", "wrong password")
        second = json.loads(hub(env, "device", "add", "hh-02", "--shop", "north").stdout)
        deadline = time.monotonic() + 10
        while True:  # the running broker picks the new device up without a restart
            try:
                login(port, "hh-02", second["mqtt_password"])
                break
            except (MQTTConnectError, OSError):
                assert time.monotonic() < deadline, "the new device was never admitted"
                time.sleep(0.2)
        assert broker.poll() is None
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=20)
    assert not (Path(env["HUB_DATA_DIR"]) / "hub-broker.pid").exists()


def test_card_batch_makes_valid_numbers_once(env):
    from hub.cli import make_card_batch, open_db
    from hub.settings import Settings
    from protocol import cardno

    made = hub(env, "card", "batch", "--prefix", "9000", "--count", "25")
    assert made.returncode == 0, made.stderr
    assert "25 card numbers in stock: 9000000000000019 .." in made.stdout
    clash = hub(env, "card", "batch", "--prefix", "9000", "--count", "10", "--start", "20")
    assert clash.returncode == 2 and "6 of these card numbers exist already" in clash.stderr
    bad = hub(env, "card", "batch", "--prefix", "90x", "--count", "1")
    assert bad.returncode != 0
    engine = open_db(Settings(data_dir=Path(env["HUB_DATA_DIR"])))
    assert len(make_card_batch(engine, "9000", 26, 5, 0)) == 5  # the clash added nothing: 26.. is still free
    from sqlmodel import Session, select

    from hub.models import CardStock

    with Session(engine) as db:
        stock = db.exec(select(CardStock)).all()
    assert len(stock) == 30 and all(cardno.is_valid(c.card_no) for c in stock)


def test_master_data_from_the_command_line_reaches_the_published_price_list(env):
    for args in (
        ("shop", "set", "north", "--name", "North street"),
        ("product", "set", "101", "--name", "Espresso", "--category", "Drinks"),
        ("product", "set", "102", "--name", "Gift card", "--no-discount"),
        ("tier", "set", "1", "--name", "Silver", "--discount-bps", "500"),
        ("member-category", "set", "2", "--name", "Staff"),
        ("param", "set", "points.point_value", "5"),
        ("price", "add", "101=2.50", "102=20"),
    ):
        done = hub(env, *args)
        assert done.returncode == 0, (args, done.stderr)
    refused = hub(env, "price", "add", "101=2.505")
    assert refused.returncode == 2 and "'2.505' is not an amount like 12.50" in refused.stderr
    refused = hub(env, "price", "add", "101=3", "999=1")
    assert refused.returncode == 2 and "no product 999" in refused.stderr
    assert "version 1" in hub(env, "prices", "publish", "north").stdout
    assert "(unchanged)" in hub(env, "prices", "publish", "north").stdout
    doc = json.loads(hub(env, "prices", "show", "north").stdout)
    assert {i["id"]: i["price"] for i in doc["items"]} == {101: 250, 102: 2000}  # the refused lists left no trace
    assert doc["points"]["point_value"] == 5 and doc["tiers"] == [{"tier": 1, "name": "Silver", "discount_bps": 500}]
    log = hub(env, "audit", "--entity", "product").stdout.splitlines()
    assert len(log) == 2 and all("cli:" in line and "\tcreate\tproduct " in line for line in log)
