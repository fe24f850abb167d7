"""The handheld's sync loop: selling never waits for the network; a refused login is reported once."""

import random
import time

import pytest

from firmware import sale
from firmware.sync import BACKOFF_MAX_MS, BACKOFF_MIN_MS, next_backoff
from hub.broker import free_port
from simulator.handheld import VirtualHandheld
from simulator.shop import PRICE_LIST, master_key, member_card
from simulator.stack import Stack

MASTER = master_key(random.Random(9))


def test_backoff_grows_to_a_cap_with_jitter():
    delays = []
    backoff = 0
    for _ in range(12):
        backoff = next_backoff(backoff, 0.5)
        delays.append(backoff)
    assert delays[0] == BACKOFF_MIN_MS and delays[-1] == BACKOFF_MAX_MS
    assert delays == sorted(delays)
    assert next_backoff(4000, 0.0) == 6000 and next_backoff(4000, 0.999) == 9996


def test_sales_go_on_while_no_broker_answers(tmp_path):
    rng = random.Random(1)
    card = member_card(rng, MASTER, 1, balance=5000, points=0, tier=0)
    dead = {"mqtt_host": "127.0.0.1", "mqtt_port": free_port(), "mqtt_password": "x"}
    hh = VirtualHandheld("hh-dead", tmp_path, MASTER, PRICE_LIST, mqtt=dead)
    try:
        hh.boot()
        began = time.monotonic()
        for _ in range(5):
            assert hh.sell(card, [(101, 1)]) == sale.RECEIPT
        assert time.monotonic() - began < 5  # each sale took well under a second
        assert hh.backlog == 10 and hh.sync is not None and not hh.sync.connected
    finally:
        hh.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("stack"), MASTER) as running:
        yield running


def test_wrong_password_is_reported_once_and_sales_go_on(stack, tmp_path):
    mqtt = stack.register("hh-wrong", "north")
    mqtt["mqtt_password"] = "not the password"
    hh = VirtualHandheld("hh-wrong", tmp_path, MASTER, PRICE_LIST, mqtt=mqtt)
    card = member_card(random.Random(2), MASTER, 2, balance=5000, points=0, tier=0)
    try:
        hh.boot()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            hh.sync_step()
            time.sleep(0.05)
        assert hh.sell(card, [(101, 1)]) == sale.RECEIPT
        events = [r for r in hh.journal().records() if r["kind"] == "event"]
        assert [e["code"] for e in events] == ["sync_refused"]
        assert "5" in events[0]["message"] or "authori" in events[0]["message"].lower()
    finally:
        hh.close()


def test_online_handheld_syncs_each_sale_and_shows_online(stack, tmp_path):
    mqtt = stack.register("hh-live", "north")
    hh = VirtualHandheld("hh-live", tmp_path, MASTER, PRICE_LIST, mqtt=mqtt)
    card = member_card(random.Random(3), MASTER, 3, balance=5000, points=0, tier=0)
    try:
        hh.boot()
        assert hh.sell(card, [(102, 2)]) == sale.RECEIPT
        deadline = time.monotonic() + 10
        while hh.backlog and time.monotonic() < deadline:
            hh.sync_step()
            time.sleep(0.01)
        assert hh.backlog == 0
        device = stack.api("/api/v1/devices/hh-live")
        assert device["online"] and device["acked_seq"] == 2 and device["firmware"]
        [sold] = stack.api("/api/v1/sales?device=hh-live")
        assert sold["total"] == 640 and sold["card_no"] == "9000000000000003"
        hh.close()  # switched off: the link drops without a DISCONNECT, the broker publishes the will
        deadline = time.monotonic() + 10
        while stack.api("/api/v1/devices/hh-live")["online"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not stack.api("/api/v1/devices/hh-live")["online"]
    finally:
        hh.close()
