"""offline-shift: N handhelds in one shop sell to random members with no network.

Checks that every sale is journaled exactly once and that every card ends with
the balance, points and counter the protocol rules predict from the journals.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from firmware import sale
from protocol.pricing import PriceList
from protocol.salecheck import verify_sale
from simulator.handheld import Handheld, committed_sales
from simulator.mifare_card import MifareClassic1K
from simulator.runtime import make_handheld
from simulator.scenarios import Outcome, Say
from simulator.shop import PRICE_LIST, blank_card, master_key, member_card, read_card_directly
from simulator.vhal import SimClock

CARDS_PER_DEVICE = 6
SALES_PER_DEVICE = 25
PRICE_LIST_IDS = [item["id"] for item in PRICE_LIST["items"]]
REFUSAL_CODES = ("blank_card", "unknown_card")


def run(
    devices: int = 3, seed: int = 1, say: Say = print, sales_per_device: int = SALES_PER_DEVICE, runtime: str = "cpython"
) -> Outcome:
    rng = random.Random(seed)
    out = Outcome("offline-shift")
    master = master_key(rng)
    prices = PriceList(PRICE_LIST)
    members = [
        member_card(rng, master, n + 1, balance=rng.choice([0, 1500, 5000, 20000]), points=rng.randrange(0, 800), tier=n % 3)
        for n in range(devices * CARDS_PER_DEVICE)
    ]
    start = {card.uid: read_card_directly(card, master)["purse"] for card in members}
    strangers = [blank_card(rng), MifareClassic1K.blank(bytes([1, 2, 3, 4]))]
    say(f"A shop with {devices} handhelds and {len(members)} member cards, no network. Sales as they happen:")
    with tempfile.TemporaryDirectory(prefix="sim-shift-") as root:
        clock = SimClock()  # one shop, one time of day for every handheld
        fleet = [make_handheld(runtime, f"hh-{i + 1:02d}", Path(root), master, PRICE_LIST, clock) for i in range(devices)]
        try:
            for handheld in fleet:
                handheld.boot()
            began = time.monotonic()
            expected = ring_up_shift(fleet, members, strangers, rng, devices * sales_per_device, say)
            elapsed = time.monotonic() - began
            _check(out, fleet, members, start, prices, master, expected)
        finally:
            for handheld in fleet:
                handheld.close()
    out.figures.update(
        {
            "devices": devices,
            "cards": len(members),
            "sales": expected["sold"],
            "cancelled": expected["cancelled"],
            "refused_taps": expected["refused"],
            "elapsed_s": round(elapsed, 3),
            "sales_per_s": round(expected["sold"] / elapsed, 1) if elapsed else 0,
        }
    )
    return out


def ring_up_shift(fleet: Sequence[Handheld], members: list, strangers: list, rng: random.Random, count: int, say: Say) -> dict:
    """Ring up count random sales across the fleet (the other sync scenarios and the demo use it too); the tally."""
    tally = {"sold": 0, "cancelled": 0, "refused": 0}
    for n in range(count):
        handheld = rng.choice(fleet)
        handheld.clock.advance(rng.randrange(10, 120))
        if rng.random() < 0.04:
            handheld.sell(rng.choice(strangers), [(101, 1)])
            tally["refused"] += 1
            say(f"{_stamp(handheld)} a stranger's card is refused: {handheld.lines[1]!r}")
            handheld.press("OK")
            handheld.run()
            continue
        card = rng.choice(members)
        lines = [(rng.choice(list(PRICE_LIST_IDS)), rng.choice([1, 1, 1, 2, 3])) for _ in range(rng.randint(1, 4))]
        cancel = rng.random() < 0.05
        state = handheld.sell(card, lines, redeem_points=rng.random() < 0.2, pay_cash=rng.random() < 0.15, cancel=cancel)
        if cancel and state == sale.CANCELLED:
            tally["cancelled"] += 1
            say(f"{_stamp(handheld)} sale cancelled by staff")
            continue
        if state != sale.RECEIPT:
            raise RuntimeError(f"sale {n} on {handheld.device_id} ended in {state}: {handheld.lines}")
        tally["sold"] += 1
        say(f"{_stamp(handheld)} {' | '.join(handheld.lines)}")
    return tally


def _stamp(handheld: Handheld) -> str:
    return f"{time.strftime('%H:%M', time.gmtime(handheld.clock.time()))} [{handheld.device_id}]"


def _check(
    out: Outcome,
    fleet: Sequence[Handheld],
    members: list[MifareClassic1K],
    start: dict[bytes, dict],
    prices: PriceList,
    master: bytes,
    expected: dict[str, int],
) -> None:
    sales: list[dict] = []
    refusals = 0
    for handheld in fleet:
        journal = handheld.journal()
        refusals += sum(1 for r in journal.records() if r["kind"] == "event" and r["code"] in REFUSAL_CODES)
        seqs = [r["seq"] for r in journal.records()]
        out.check("seq_strictly_increasing", seqs == sorted(set(seqs)), f"{handheld.device_id}: {seqs[:10]}...")
        out.check("no_sale_left_pending", not journal.pending_sales, f"{handheld.device_id}: {sorted(journal.pending_sales)}")
        sales += committed_sales(journal)
    out.check("every_sale_journaled_once", len(sales) == expected["sold"], f"{len(sales)} journaled, {expected['sold']} sold")
    out.check("refused_cards_journaled", refusals == expected["refused"], f"{refusals} events, {expected['refused']} refused")
    keys = [(s["card_no"], s["counter_after"]) for s in sales]
    out.check("no_card_counter_used_twice", len(keys) == len(set(keys)), "a card counter appears twice")
    by_uid: dict[str, list[dict]] = {}
    for record in sales:
        by_uid.setdefault(record["uid"], []).append(record)
    for card in members:
        purse = dict(start[card.uid])
        for record in sorted(by_uid.get(card.uid.hex(), []), key=lambda r: r["counter_before"]):
            out.check("counters_chain", record["counter_before"] == purse["counter"], f"card {record['card_no']}")
            problems = verify_sale(prices, record, purse["balance"], purse["points"])
            out.check("sales_follow_the_rules", not problems, f"{record['device']}#{record['seq']}: {problems}")
            purse = {"counter": record["counter_after"], "balance": record["balance_after"], "points": record["points_after"]}
        actual = read_card_directly(card, master)["purse"]
        same = all(actual[k] == purse[k] for k in ("counter", "balance", "points"))
        out.check(
            "cards_match_journals",
            same,
            f"card {card.uid.hex()}: card has {actual}, journals predict {purse}",
        )
    out.figures["stored_value_spent_cents"] = sum(s["stored_value"] for s in sales)
    out.figures["cash_cents"] = sum(s["cash"] for s in sales)
    out.figures["points_earned"] = sum(s["points_earned"] for s in sales)
    out.figures["turnover_cents"] = sum(s["total"] for s in sales)
