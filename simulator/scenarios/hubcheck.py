"""Checks shared by the sync scenarios: the hub's ledger against the journals and the cards."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hub.models import Card, Sale
from simulator.handheld import Handheld, committed_sales
from simulator.mifare_card import MifareClassic1K
from simulator.scenarios import Outcome, Say
from simulator.shop import read_card_directly


def sync_all(fleet: Sequence[Handheld], timeout_s: float, say: Say, between: Callable[[], None] | None = None) -> float:
    """Run every handheld's sync loop until every journal is acknowledged; seconds taken."""
    began = time.monotonic()
    last_report = began
    while time.monotonic() - began < timeout_s:
        for handheld in fleet:
            handheld.sync_step()
        if between:
            between()
        backlog = sum(h.backlog for h in fleet)
        if backlog == 0:
            return time.monotonic() - began
        if time.monotonic() - last_report > 2:
            last_report = time.monotonic()
            say(f"  syncing: {backlog} records still waiting for the hub's ack")
        time.sleep(0.002)
    return -1.0


def sales_made(fleet: Sequence[Handheld]) -> set[tuple[str, int]]:
    """(device, seq) of every committed sale in the journals; take it before sync compacts them."""
    return {(h.device_id, s["seq"]) for h in fleet for s in committed_sales(h.journal())}


def check_hub(out: Outcome, engine: Engine, made: set[tuple[str, int]], cards: list[MifareClassic1K], master: bytes) -> None:
    """Every sale made is in the ledger once, none lost or doubled; hub balances equal the cards'."""
    with Session(engine) as db:
        rows = db.exec(select(Sale.device_id, Sale.seq).where(Sale.state == "committed")).all()
        hub_cards = {c.card_no: c for c in db.exec(select(Card))}
    in_ledger = [(d, s) for d, s in rows]
    lost = len(made - set(in_ledger))
    doubled = len(in_ledger) - len(set(in_ledger)) + len(set(in_ledger) - made)
    out.check("hub_holds_every_sale_once", lost == 0 and doubled == 0, f"lost {lost}, doubled {doubled}")
    for card in cards:
        state = read_card_directly(card, master)
        purse = state["purse"]
        hub = hub_cards.get(state["ident"]["card_no"])
        if purse["counter"] == 0:
            out.check("hub_cards_equal_cards", hub is None, f"{state['ident']['card_no']} unknown on the card side")
            continue
        same = hub is not None and (hub.balance, hub.points, hub.last_counter) == (
            purse["balance"],
            purse["points"],
            purse["counter"],
        )
        out.check("hub_cards_equal_cards", same, f"card {state['ident']['card_no']}: card {purse}, hub {hub}")
    out.figures.update({"sales_made": len(made), "sales_in_ledger": len(set(in_ledger)), "lost": lost, "doubled": doubled})
