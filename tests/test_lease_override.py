"""A per-device lease override (docs/loyalty.md, "The offline lease"): HQ gives some handhelds a smaller
offline allowance through `PUT /api/v1/devices/{id}/lease` or `hub lease set`, and the next lease that
device gets holds it. End to end on a real Mosquitto and `hub serve` with handhelds on the real firmware.
"""

import json
import os
import random
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from firmware import sale
from hub import lease
from hub import masterdata as md
from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.db import make_engine, migrate
from hub.models import AuditEntry, Device, Lease, LeaseOverride
from simulator.handheld import VirtualHandheld
from simulator.shop import master_key, member_card
from simulator.stack import Stack
from tests.stepping import until

ROOT = Path(__file__).resolve().parent.parent
MASTER = master_key(random.Random(41))
DEFAULTS = {"expires_after_s": 259200, "max_sv_per_sale": 10000, "max_sv_per_card_day": 20000,
            "max_sv_offline_total": 200000}


def test_terms_that_do_not_make_a_lease_are_refused_with_the_reason():
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_sv_per_sale": 0}, "max_sv_per_sale must be a whole number from 1 to 2147483647, got 0"),
        ({"expires_after_s": 31 * 86400}, "expires_after_s must be a whole number from 1 to 2592000"),
        ({"max_sv_per_card_day": 20.5}, "max_sv_per_card_day must be a whole number"),
        ({"max_sv_per_sale": 30000}, "max_sv_per_sale 30000 is more than max_sv_per_card_day 20000"),
        ({"max_sv_per_card_day": 300000}, "max_sv_per_card_day 300000 is more than max_sv_offline_total 200000"),
    ]
    for change, says in cases:
        with pytest.raises(lease.LeaseError) as err:
            lease.check_terms(DEFAULTS | change)
        assert err.value.code == "bad_lease" and says in err.value.message
    assert lease.check_terms(DEFAULTS | {"max_sv_per_sale": 20000}) == DEFAULTS | {"max_sv_per_sale": 20000}


def lease_of(db, device_id) -> Lease:
    row = db.get(Lease, device_id)
    assert row is not None, f"no lease for {device_id}"
    return row


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    with Session(engine) as db:
        for device_id in ("hh-1", "hh-2"):
            db.add(Device(id=device_id, shop="north", password_hash="x", created=0))
        db.commit()
    yield engine
    engine.dispose()


def test_the_api_sets_checks_and_clears_an_override_and_the_next_lease_holds_it(engine):
    _p, token = new_login(engine, "hq", ADMIN, 0)
    with Session(engine) as db:
        assert lease.issue_all(db, MASTER, 100) == 2
        db.commit()
    with TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"}) as api:
        bad = api.put("/api/v1/devices/hh-1/lease", json={"max_sv_per_sale": 5000, "max_sv_per_card_day": 4000})
        assert bad.status_code == 400 and bad.json() == {
            "code": "bad_lease", "detail": "max_sv_per_sale 5000 is more than max_sv_per_card_day 4000: "
                                           "one sale cannot take more than a card may spend in a day"}
        assert api.put("/api/v1/devices/hh-1/lease", json={"max_sv_per_sale": "50"}).status_code == 422
        assert api.put("/api/v1/devices/hh-9/lease", json={"max_sv_per_sale": 1}).json()["code"] == "unknown_device"
        assert api.get("/api/v1/devices/hh-1/lease").json() == {
            "device_id": "hh-1", "source": "parameters", **DEFAULTS, "issued_version": 1}

        # Left out: the expiry and the total stay as the device's next lease would hold them.
        done = api.put("/api/v1/devices/hh-1/lease", json={"max_sv_per_sale": 1500, "max_sv_per_card_day": 3000})
        assert done.status_code == 200, done.text
        small = DEFAULTS | {"max_sv_per_sale": 1500, "max_sv_per_card_day": 3000}
        assert done.json() == {"device_id": "hh-1", "source": "override", **small, "issued_version": 1}
        with Session(engine) as db:
            assert lease.issue_all(db, MASTER, 200) == 1  # hh-1 only: hh-2's terms did not change
            db.commit()
            doc = json.loads(lease_of(db, "hh-1").doc)
            assert (doc["version"], doc["max_sv_per_sale"], doc["max_sv_per_card_day"]) == (2, 1500, 3000)
            assert lease_of(db, "hh-2").version == 1
            # The parameters change: hh-2 follows them, hh-1 keeps its override.
            md.set_param(db, "hq", 300, "lease.max_sv_offline_total", 150000)
            assert lease.issue_all(db, MASTER, 300) == 1
            db.commit()
            assert (lease_of(db, "hh-1").version, lease_of(db, "hh-2").max_sv_offline_total) == (2, 150000)
            entry = db.exec(select(AuditEntry).where(AuditEntry.entity == "leaseoverride")).one()
            assert (entry.actor, entry.action, entry.entity_key) == ("hq", "set", "hh-1")

        cleared = api.delete("/api/v1/devices/hh-1/lease")
        assert cleared.status_code == 200 and cleared.json()["source"] == "parameters"
        again = api.delete("/api/v1/devices/hh-1/lease")
        assert again.status_code == 404 and again.json()["code"] == "no_override"
    with Session(engine) as db:
        assert db.exec(select(LeaseOverride)).all() == []
        assert lease.issue_all(db, MASTER, 400) == 1
        assert lease_of(db, "hh-1").max_sv_offline_total == 150000  # back on the parameters, as v3


def run_hub(tmp_path, *args):
    env = dict(os.environ, HUB_DATA_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "hub", "lease", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_lease_commands(tmp_path, engine):
    refused = run_hub(tmp_path, "set", "hh-1", "--max-sale", "300.00")
    assert refused.returncode == 2 and "max_sv_per_sale 30000 is more than max_sv_per_card_day 20000" in refused.stderr
    nothing = run_hub(tmp_path, "set", "hh-1")
    assert nothing.returncode == 2 and "name at least one limit" in nothing.stderr
    done = run_hub(tmp_path, "set", "hh-1", "--hours", "12", "--max-sale", "15.00", "--max-card-day", "30", "--max-total",
                   "100.00")
    assert done.returncode == 0, done.stderr
    assert "offline for 12h00 after its last sync" in done.stdout and "15.00 a sale, 30.00 a card a day, 100.00 in all" \
        in done.stdout
    shown = run_hub(tmp_path, "show", "hh-1")
    assert "lease from the override" in shown.stdout
    assert run_hub(tmp_path, "show", "hh-2").stdout.splitlines()[0] == "device hh-2: lease from the parameters (last issued: v0)"
    assert run_hub(tmp_path, "clear", "hh-1").returncode == 0
    twice = run_hub(tmp_path, "clear", "hh-1")
    assert twice.returncode == 2 and "has no lease override" in twice.stderr
    unknown = run_hub(tmp_path, "show", "hh-9")
    assert unknown.returncode == 2 and "no device 'hh-9'" in unknown.stderr


def test_a_device_with_an_override_gets_a_lease_with_its_limits_and_keeps_to_them_offline(tmp_path):
    with Stack(tmp_path / "stack", MASTER) as stack:
        with Session(stack.engine) as db:
            md.save_shop(db, "hq", 0, "north", "North")
            coffee = md.save_category(db, "hq", 0, "coffee")
            md.save_product(db, "hq", 0, 102, "Cappuccino", coffee.id)
            md.save_tier(db, "hq", 0, 0, "Member", 0, 10000)
            md.add_price_list(db, "hq", 0, {102: 320}, effective_from=0)
            md.publish_prices(db, "hq", 0, "north")
            db.commit()
        small = VirtualHandheld("hh-1", tmp_path, MASTER, None, mqtt=stack.register("hh-1", "north"))
        usual = VirtualHandheld("hh-2", tmp_path, MASTER, None, mqtt=stack.register("hh-2", "north"))
        fleet = [small, usual]
        try:
            for hh in fleet:
                hh.boot()
            until(lambda: all(hh.terminal.status()["lease"] == 1 for hh in fleet), fleet)
            # HQ gives hh-1 a smaller allowance through the API of the running hub.
            with pytest.raises(urllib.error.HTTPError) as refused:
                stack.api("/api/v1/devices/hh-1/lease", {"max_sv_per_sale": 0}, method="PUT")
            assert refused.value.code == 400 and "max_sv_per_sale must be" in json.loads(refused.value.read())["detail"]
            set_at = time.monotonic()
            terms = stack.api("/api/v1/devices/hh-1/lease", {"max_sv_per_sale": 500, "max_sv_per_card_day": 700,
                                                              "max_sv_offline_total": 900}, method="PUT")
            assert terms["source"] == "override"

            def overridden():
                """hh-1 holds its second lease, the one with the override"""
                return small.terminal.status()["lease"] == 2

            until(overridden, fleet)
            print(f"\noverride to lease on the handheld: {time.monotonic() - set_at:.2f} s")
            with Session(stack.engine) as db:
                held = lease_of(db, "hh-1")
                assert (held.version, held.max_sv_per_sale, held.max_sv_offline_total) == (2, 500, 900)
                assert lease_of(db, "hh-2").version == 1
            rng = random.Random(3)
            cards = [member_card(rng, MASTER, n, balance=5000, points=0, tier=0) for n in (1, 2, 3)]
            for hh in fleet:
                hh.network.up = False
            # 6.40 from the card: over hh-1's 5.00 a sale; hh-2 under the parameters sells it.
            assert small.sell(cards[0], [(102, 2)]) == sale.CONFIRM
            assert small.lines[1:3] == ["Network needed:", "card pay max 5.00"]
            small.press("CANCEL", "CANCEL")
            small.run()
            small.remove_card()
            small.run()
            assert usual.sell(cards[0], [(102, 2)]) == sale.RECEIPT
            assert small.sell(cards[1], [(102, 1)]) == sale.RECEIPT  # 3.20
            assert small.sell(cards[2], [(102, 1)]) == sale.RECEIPT  # 6.40 in all
            assert small.sell(cards[1], [(102, 1)]) == sale.CONFIRM  # 9.60 in all: over 9.00
            assert small.lines[2] == "offline max 9.00"
        finally:
            for hh in fleet:
                hh.close()
