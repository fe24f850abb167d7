"""backlog: one handheld with 10,000 offline sales comes online; how long until the hub has them all.

The sales are priced by the protocol rules and journaled through the firmware's
own journal (ringing 10,000 sales through the card reader would take minutes
and is covered by the other scenarios); the hub's per-card balances are then
checked against the purses those sales leave.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from sqlmodel import Session, select

from firmware import sale
from firmware.version import FIRMWARE_VERSION
from hub.models import Card, Sale
from protocol.pricing import PriceList, quote, settle
from simulator.handheld import VirtualHandheld
from simulator.scenarios import Outcome, Say
from simulator.scenarios.hubcheck import sync_all
from simulator.shop import PRICE_LIST, master_key
from simulator.stack import Stack

SALES = 10_000
CARDS = 200
TARGET_S = 10


def journal_sales(handheld: VirtualHandheld, count: int, rng: random.Random) -> dict[str, dict]:
    """Journal count sales (and their outcomes) as the sale flow would; the purses they leave."""
    prices = PriceList(PRICE_LIST)
    purses = {
        f"9{n:015d}": {"counter": 0, "balance": rng.choice([0, 5000, 50000]), "points": rng.randrange(300)}
        for n in range(1, CARDS + 1)
    }
    journal = handheld.terminal.journal
    items = [item["id"] for item in PRICE_LIST["items"]]
    for _ in range(count):
        card_no = rng.choice(list(purses))
        purse = purses[card_no]
        tier = int(card_no) % 3
        lines = [(rng.choice(items), rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
        q = quote(prices, lines, tier)
        split = settle(prices, q["total"], purse["balance"], purse["points"], purse["points"] // 2, rng.random() < 0.8)
        card = {
            "uid": bytes.fromhex("0a0b0c0d"),
            "purse": purse,
            "ident": {"card_no": card_no, "member_id": int(card_no) % 100000, "tier": tier},
        }
        record = journal.append(sale.sale_record(card, q, split, prices.version, FIRMWARE_VERSION), handheld.clock.time())
        journal.append({"kind": "outcome", "ref": record["seq"], "result": "committed", "reason": ""}, handheld.clock.time())
        purses[card_no] = {"counter": purse["counter"] + 1, "balance": split["balance_after"], "points": split["points_after"]}
        handheld.clock.advance(3)
    return purses


def run(devices: int = 1, seed: int = 1, say: Say = print, sales: int = SALES) -> Outcome:
    rng = random.Random(seed)
    out = Outcome("backlog")
    master = master_key(rng)
    with tempfile.TemporaryDirectory(prefix="sim-backlog-") as tmp, Stack(Path(tmp) / "stack", master) as stack:
        mqtt = stack.register("hh-01", "shop-1")
        handheld = VirtualHandheld("hh-01", Path(tmp), master, PRICE_LIST, mqtt=mqtt, network_up=False)
        try:
            handheld.boot()
            began = time.monotonic()
            purses = journal_sales(handheld, sales, rng)
            size = handheld.flash.size("journal.bin")
            say(f"{sales} sales journaled offline in {time.monotonic() - began:.1f} s ({size // 1024} KiB of journal)")
            handheld.network.up = True
            took = sync_all([handheld], 120, say)
            out.check("all_synced", took >= 0, "backlog left after 120 s")
            say(f"caught up in {took:.2f} s")
            with Session(stack.engine) as db:
                committed = db.exec(select(Sale.seq).where(Sale.state == "committed")).all()
                hub_cards = {c.card_no: c for c in db.exec(select(Card))}
            out.check(
                "hub_holds_every_sale_once",
                len(committed) == len(set(committed)) == sales,
                f"{len(committed)} committed, {len(set(committed))} distinct, {sales} made",
            )
            wrong = [
                no
                for no, p in purses.items()
                if p["counter"]
                and (
                    no not in hub_cards
                    or (hub_cards[no].balance, hub_cards[no].points, hub_cards[no].last_counter)
                    != (p["balance"], p["points"], p["counter"])
                )
            ]
            out.check("hub_cards_equal_cards", not wrong, f"{len(wrong)} cards differ, e.g. {wrong[:3]}")
            out.check("caught_up_within_target", 0 <= took <= TARGET_S, f"{took:.1f} s")
            out.figures.update(
                {
                    "sales": sales,
                    "catchup_s": round(took, 2),
                    "journal_bytes": size,
                    "messages": handheld.sync.sent_messages if handheld.sync else 0,
                    "flash_bytes_written": handheld.flash.bytes_written,
                }
            )
        finally:
            handheld.close()
    return out
