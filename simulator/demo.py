"""`sim demo` (what `make demo` runs): a shop's day with a real broker and hub.

Three handhelds sell offline, the network comes back, they sync; the summary
says what was made, what reached the ledger, what was lost or doubled. Then the
shop stays open (a sale every few seconds, synced live) until Ctrl-C.
"""

from __future__ import annotations

import random
import shutil
import socket
import time
from pathlib import Path

from simulator.handheld import VirtualHandheld
from simulator.scenarios import Outcome
from simulator.scenarios.hubcheck import check_hub, sales_made, sync_all
from simulator.scenarios.offline_shift import CARDS_PER_DEVICE, ring_up_shift
from simulator.shop import PRICE_LIST, blank_card, master_key, member_card
from simulator.stack import Stack
from simulator.vhal import SimClock

DEVICES = 3
OFFLINE_SALES = 45
LIVE_EVERY_S = 3.0


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def run_demo(folder: Path, once: bool, pace: float) -> int:
    if folder.exists():
        shutil.rmtree(folder)  # each demo starts a fresh shop
    rng = random.Random(2026)
    master = master_key(rng)
    cards = [member_card(rng, master, n + 1, rng.choice([0, 2000, 10000]), rng.randrange(400), n % 3)
             for n in range(DEVICES * CARDS_PER_DEVICE)]
    stack = Stack(folder / "stack", master)
    if _port_free(8000):
        stack.settings.http_port = 8000
    print(f"Starting Mosquitto (port {stack.settings.mqtt_port}) and the hub (SQLite in {stack.settings.data_dir})...")
    stack.start()
    clock = SimClock(int(time.time()) - 4 * 3600)  # the shop opened four hours ago
    fleet = [VirtualHandheld(f"hh-{i + 1:02d}", folder, master, PRICE_LIST, clock,
                             mqtt=stack.register(f"hh-{i + 1:02d}", "demo-shop"), network_up=False)
             for i in range(DEVICES)]
    try:
        for handheld in fleet:
            handheld.boot()
        print(f"\nThe shop's network is down. {DEVICES} handhelds sell offline:")

        def say(line: str) -> None:
            print(line, flush=True)
            time.sleep(pace)

        tally = ring_up_shift(fleet, cards, [blank_card(rng)], rng, OFFLINE_SALES, say)
        made = sales_made(fleet)
        print(f"\nThe network is back: {sum(h.backlog for h in fleet)} journal records to sync.")
        for handheld in fleet:
            handheld.network.up = True
        took = sync_all(fleet, 60, print)
        out = Outcome("demo")
        check_hub(out, stack.engine, made, cards, master)
        f = out.figures
        print(f"\n== Summary: {tally['sold']} sales made, {f['sales_in_ledger']} in the hub's ledger, "
              f"{f['lost']} lost, {f['doubled']} doubled; synced in {took:.2f} s; "
              f"card balances on the hub {'match' if out.checks.get('hub_cards_equal_cards') else 'DO NOT match'} the cards.")
        print(f"Dashboard: {stack.url}/   API: {stack.url}/api/docs")
        print(f"Log in as sim-admin, password {stack.admin_password} (or send Authorization: Bearer {stack.token})")
        if once:
            return 0 if out.ok else 1
        print("The shop stays open: a sale every few seconds, synced as it happens. Ctrl-C to close.")
        while True:
            end = time.monotonic() + LIVE_EVERY_S
            while time.monotonic() < end:
                for handheld in fleet:
                    handheld.sync_step()
                time.sleep(0.05)
            clock.now = int(time.time())
            ring_up_shift(fleet, cards, [blank_card(rng)], rng, 1, lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("\nClosing the shop.")
        return 0
    finally:
        for handheld in fleet:
            handheld.close()
        stack.stop()

