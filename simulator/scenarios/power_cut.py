"""power-cut: cut the power at every write of a sale, and at every write of the recovery.

Every journal append and every card block write is cut three ways (before it,
torn in the middle, right after it), then the handheld boots, the card is
tapped again, and the journal and the card must agree.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from firmware import sale
from simulator.handheld import committed_sales
from simulator.mifare_card import MifareClassic1K
from simulator.power import CUT_MODES, PowerCut
from simulator.runtime import make_handheld
from simulator.scenarios import Outcome, Say
from simulator.shop import PRICE_LIST, master_key, member_card, read_card_directly

LINES = [(102, 2), (103, 1)]
Cut = tuple[int, str]


class _Bench:
    """A handheld and a card in a known state, made afresh for every case."""

    def __init__(self, root: Path, master: bytes, card: MifareClassic1K, runtime: str) -> None:
        self.master = master
        self.card = MifareClassic1K.from_json(card.to_json())
        self.handheld = make_handheld(runtime, "hh-cut", root, master, PRICE_LIST, count_writes=True)
        self.handheld.boot()
        self.before = read_card_directly(self.card, master)["purse"]

    def sell(self, cut: Cut | None) -> bool:
        """Ring up the sale, cut at cut; True when the power died."""
        switch = self.handheld.switch
        switch.reset_count()
        if cut:
            switch.arm(*cut)
        try:
            self.handheld.sell(self.card, LINES, redeem_points=True)
        except PowerCut:
            return True
        return False

    def recover(self, cut: Cut | None) -> int:
        """Boot and tap the card as staff would after a power cut; the writes it took."""
        handheld = self.handheld
        try:
            handheld.boot(cut)
            handheld.tap(self.card)
            handheld.run()
            if handheld.state == sale.ITEMS:
                # No unfinished sale to resolve: a new one began; staff cancel it.
                handheld.press("CANCEL")
            handheld.press("OK")
            handheld.run()
            handheld.remove_card()
            handheld.run()
        except PowerCut:
            pass
        return handheld.switch.writes


def run(devices: int = 1, seed: int = 1, say: Say = print, runtime: str = "cpython") -> Outcome:
    rng = random.Random(seed)
    out = Outcome("power-cut")
    master = master_key(rng)
    card = member_card(rng, master, 1, balance=1000, points=150, tier=1)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sim-cut-") as tmp:
        root = Path(tmp)
        bench = _Bench(root / "dry", master, card, runtime)
        bench.sell(None)
        sale_writes = list(bench.handheld.switch.log)
        bench.handheld.close()
        say(f"one sale makes {len(sale_writes)} writes: {', '.join(sale_writes)}")
        out.check("sale_writes_found", len(sale_writes) >= 4, f"only {sale_writes}")
        cases = 0
        for index, what in enumerate(sale_writes):
            for mode in CUT_MODES:
                recovery_writes = _case(out, root / f"c{cases}", master, card, [(index, mode)], runtime)
                cases += 1
                say(f"cut {mode:6} write {index} ({what}): recovery made {recovery_writes} writes")
                for r_index in range(recovery_writes):
                    for r_mode in CUT_MODES:
                        _case(out, root / f"c{cases}", master, card, [(index, mode), (r_index, r_mode)], runtime)
                        cases += 1
    out.figures.update(
        {
            "sale_writes": len(sale_writes),
            "cases": cases,
            "elapsed_s": round(time.monotonic() - began, 2),
        }
    )
    say(f"{cases} power cuts, {sum(out.checks.values())}/{len(out.checks)} checks hold")
    return out


def _case(out: Outcome, root: Path, master: bytes, card: MifareClassic1K, cuts: list[Cut], runtime: str) -> int:
    """Sell with cuts[0], recover with each later cut, recover cleanly, check; the clean recovery's writes."""
    bench = _Bench(root, master, card, runtime)
    label = " then ".join(f"{mode}@{index}" for index, mode in cuts)
    try:
        bench.sell(cuts[0])
        for cut in cuts[1:]:
            bench.recover(cut)
        writes = bench.recover(None)
        _check(out, bench, label)
        return writes
    finally:
        bench.handheld.close()


def _check(out: Outcome, bench: _Bench, label: str) -> None:
    handheld = bench.handheld
    try:
        after = read_card_directly(bench.card, bench.master)["purse"]
    except Exception as exc:  # any decode failure means the card lost its purse
        out.check("card_always_holds_a_valid_purse", False, f"{label}: {exc}")
        return
    out.check("card_always_holds_a_valid_purse", True)
    journal = handheld.journal()
    sales = committed_sales(journal)
    changed = after["counter"] != bench.before["counter"]
    steps = after["counter"] - bench.before["counter"]
    out.check("nothing_doubled", len(sales) <= 1 and steps <= 1, f"{label}: {len(sales)} sales, counter +{steps}")
    out.check("journal_and_card_agree", (len(sales) == 1) == changed, f"{label}: {len(sales)} sales, card changed={changed}")
    if sales and changed:
        got = (after["balance"], after["points"])
        want = (sales[0]["balance_after"], sales[0]["points_after"])
        out.check("card_holds_the_journaled_sale", got == want, f"{label}: card {got}, journal {want}")
    if not changed:
        out.check("unsold_card_untouched", after == bench.before or after["counter"] == bench.before["counter"], label)
    out.check("nothing_left_unfinished", not journal.pending_sales, f"{label}: {sorted(journal.pending_sales)}")
    seqs = [r["seq"] for r in journal.records()]
    out.check("seq_never_repeats", seqs == sorted(set(seqs)), f"{label}: {seqs}")
    # The handheld goes on selling after the recovery.
    state = handheld.sell(bench.card, LINES)
    later = read_card_directly(bench.card, bench.master)["purse"]
    out.check(
        "next_sale_works",
        state == sale.RECEIPT
        and later["counter"] == after["counter"] + 1
        and len(committed_sales(handheld.journal())) == len(sales) + 1,
        f"{label}: state {state}, counter {after['counter']}->{later['counter']}",
    )
