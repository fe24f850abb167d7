"""sync: handhelds sell offline, the network comes back, they sync to a real broker and hub."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from simulator.handheld import VirtualHandheld
from simulator.scenarios import Outcome, Say
from simulator.scenarios.hubcheck import check_hub, sync_all
from simulator.scenarios.offline_shift import CARDS_PER_DEVICE, _shift
from simulator.shop import PRICE_LIST, blank_card, master_key, member_card
from simulator.stack import Stack
from simulator.vhal import SimClock

SALES_PER_DEVICE = 20
SYNC_TIMEOUT_S = 120


def run(devices: int = 3, seed: int = 1, say: Say = print, sales_per_device: int = SALES_PER_DEVICE) -> Outcome:
    rng = random.Random(seed)
    out = Outcome("sync")
    master = master_key(rng)
    cards = [
        member_card(rng, master, n + 1, rng.choice([0, 2000, 8000]), rng.randrange(500), n % 3)
        for n in range(devices * CARDS_PER_DEVICE)
    ]
    with tempfile.TemporaryDirectory(prefix="sim-sync-") as tmp, Stack(Path(tmp) / "stack") as stack:
        say(f"broker on port {stack.settings.mqtt_port}, hub at {stack.url}")
        clock = SimClock()
        fleet = []
        for i in range(devices):
            name = f"hh-{i + 1:02d}"
            mqtt = stack.register(name, "shop-1")
            fleet.append(VirtualHandheld(name, Path(tmp), master, PRICE_LIST, clock, mqtt=mqtt, network_up=False))
        try:
            for handheld in fleet:
                handheld.boot()
            tally = _shift(fleet, cards, [blank_card(rng)], rng, devices * sales_per_device, lambda line: None)
            say(f"{tally['sold']} sales made offline on {devices} handhelds; the network comes back")
            for handheld in fleet:
                handheld.network.up = True
            took = sync_all(fleet, SYNC_TIMEOUT_S, say)
            out.check("all_synced", took >= 0, f"backlog left after {SYNC_TIMEOUT_S} s")
            say(f"synced in {took:.2f} s")
            check_hub(out, stack.engine, fleet, cards, master)
            devices_api = stack.api("/api/v1/devices")
            out.check(
                "devices_online_with_no_backlog", all(d["online"] and d["backlog"] == 0 for d in devices_api), str(devices_api)
            )
            out.figures["sync_s"] = round(took, 3)
        finally:
            for handheld in fleet:
                handheld.close()
    return out
