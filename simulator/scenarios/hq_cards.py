"""hq-cards: HQ issues cards at the desk reader, runs them through their life, and the handhelds follow.

A real Mosquitto, a real `hub serve`, pcscd with the virtual desk reader, handhelds on the
real firmware. HQ works only through the hub's API, as its admin pages do:
- sets up the shop and publishes its prices; new handhelds get them from the hub;
- adds members and issues their cards on the desk reader;
- reports a card lost while one handheld is offline: that handheld refuses it after it syncs;
- tops a card up: the top-up reaches the card at its next tap, once;
- replaces a card: the new card carries the old one's balance and points, the old one is refused;
- changes a price: every handheld of the shop gets it and the next sale uses it.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware import sale
from hub.cli import master_key
from simulator.handheld import Handheld
from simulator.mifare_card import MifareClassic1K
from simulator.runtime import make_handheld
from simulator.scenarios import Outcome, Say
from simulator.shop import random_uid, read_card_directly
from simulator.stack import Stack

SHOP = "north"
PRODUCTS = {101: ("Espresso", 250), 102: ("Cappuccino", 320), 103: ("Croissant", 180)}
NEW_ESPRESSO = 275
TOPUP = 1500
OPENING = 5000
PASSWORD = "card password 1"
WAIT_S = 30.0


def run(devices: int = 2, seed: int = 1, say: Say = print, runtime: str = "cpython") -> Outcome:
    out = Outcome("hq-cards")
    from simulator import pcsc

    missing = pcsc.missing()
    if missing:
        out.check("desk_reader_available", False, f"{'; '.join(missing)}: run `make setup`")
        return out
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="sim-hq-cards-") as tmp, _desk(pcsc) as desk:
        # The hub process inherits this process's PC/SC socket: it drives the same desk reader.
        with Stack(Path(tmp) / "stack") as stack:
            _Run(stack, desk, out, say, rng, max(2, devices), runtime, Path(tmp)).play()
    return out


@dataclass
class Issued:
    """A card HQ issued: the chip the member carries and its card number."""

    chip: MifareClassic1K
    number: str


@contextmanager
def _desk(pcsc: Any) -> Iterator[Any]:
    """A private pcscd with vsmartcard's virtual reader; the virtual card side of it."""
    from simulator.desk_card import DeskCard

    daemon = pcsc.PrivatePcscd()
    daemon.start()
    daemon.use_in_this_process()
    try:
        with DeskCard(daemon.vpcd_port) as desk:
            yield desk
    finally:
        daemon.stop()


class _Run:
    """One play of the scenario; each step checks what HQ or the shop would look at."""

    def __init__(
        self, stack: Stack, desk: Any, out: Outcome, say: Say, rng: random.Random, devices: int, runtime: str, root: Path
    ) -> None:
        self.stack, self.desk, self.out, self.say, self.rng = stack, desk, out, say, rng
        self.master = master_key(stack.settings)
        self.fleet: list[Handheld] = [
            make_handheld(runtime, f"hh-{n + 1}", root, self.master, None, mqtt=stack.register(f"hh-{n + 1}", SHOP))
            for n in range(devices)
        ]
        self.sales = 0
        self.replacement: Issued | None = None
        self.refused: list[Issued] = []  # blocked cards tried at a handheld

    def play(self) -> None:
        try:
            for hh in self.fleet:
                hh.boot()
            self.set_up_shop()
            cards = self.issue_cards(3)
            self.sell_everywhere(cards)
            self.lost_while_offline(cards[2])
            self.topup(cards[0])
            self.replace(cards[1])
            self.change_price(cards[0])
            self.ledger_matches_cards([cards[0]] + ([self.replacement] if self.replacement else []))
            self.out.figures["sales"] = self.sales
            # HQ hears of every try with a blocked card, and of nothing else.
            anomalies = [(a["code"], a["detail"]) for a in self.api("/api/v1/anomalies")]
            reported = sorted(next((c.number for c in self.refused if c.number in detail), detail) for _code, detail in anomalies)
            only_hotlisted = {code for code, _d in anomalies} == {"device_card_hotlisted"}
            tried = sorted(c.number for c in self.refused)
            self.out.check("only_blocked_cards_reported", only_hotlisted and reported == tried, str(anomalies))
        finally:
            for hh in self.fleet:
                hh.close()

    # -- helpers ---------------------------------------------------------------------------

    def api(self, path: str, body: Any = None, method: str | None = None) -> Any:
        return self.stack.api(path, body, method)

    def until(self, what: Callable[[], bool], why: str, handhelds: list[Handheld] | None = None) -> float:
        """Step the handhelds' sync loops until what() holds; seconds it took (a failed check after WAIT_S)."""
        began = time.monotonic()
        while time.monotonic() - began < WAIT_S:
            for hh in self.fleet if handhelds is None else handhelds:
                hh.sync_step()
            if what():
                return time.monotonic() - began
            time.sleep(0.02)
        self.out.check(why, False, f"not within {WAIT_S:.0f} s")
        return WAIT_S

    def versions(self, device: str) -> dict[str, Any]:
        return self.api(f"/api/v1/devices/{device}")

    def up_to_date(self, handhelds: list[Handheld]) -> Callable[[], bool]:
        return lambda: all(not (d := self.versions(hh.device_id))["behind"] and d["online"] for hh in handhelds)

    def synced(self) -> Callable[[], bool]:
        return lambda: all(hh.backlog == 0 for hh in self.fleet)

    def sell(self, hh: Handheld, card: Issued, lines: list[tuple[int, int]]) -> str:
        result = hh.sell(card.chip, lines)
        self.sales += result == sale.RECEIPT
        return result

    def last_sale(self, hh: Handheld, card_no: str) -> dict[str, Any]:
        """The newest sale of card_no on hh, as the hub has it once hh has synced."""
        self.until(self.synced(), "sales_synced", [hh])
        return self.api(f"/api/v1/sales?device={hh.device_id}&card={card_no}&limit=1")[0]

    def on_card(self, card: Issued) -> dict[str, Any]:
        return read_card_directly(card.chip, self.master)

    # -- the story -------------------------------------------------------------------------

    def set_up_shop(self) -> None:
        self.api(f"/api/v1/shops/{SHOP}", {"name": "North street"}, "PUT")
        for item, (name, _price) in PRODUCTS.items():
            self.api(f"/api/v1/products/{item}", {"name": name}, "PUT")
        for tier, name, bps in ((0, "Member", 0), (1, "Silver", 500)):
            self.api(f"/api/v1/tiers/{tier}", {"name": name, "discount_bps": bps}, "PUT")
        self.api("/api/v1/price-lists", {"prices": {str(i): p for i, (_n, p) in PRODUCTS.items()}, "effective_from": 0})
        published = self.api(f"/api/v1/shops/{SHOP}/prices/publish", {})
        self.say(f"HQ set up shop {SHOP} and published price list v{published['version']}")
        took = self.until(self.up_to_date(self.fleet), "prices_reach_new_handhelds")
        self.out.check("prices_reach_new_handhelds", all(self.versions(h.device_id)["prices_version"] == 1 for h in self.fleet))
        self.out.figures["first_prices_s"] = round(took, 2)

    def issue_cards(self, count: int) -> list[Issued]:
        self.api("/api/v1/card-batches", {"prefix": "9000", "start": 1, "count": 10})
        cards = []
        for n in range(count):
            member = self.api("/api/v1/members", {"name": f"Member {n + 1}", "phone": f"+4915100000{n:02d}"})
            blank = MifareClassic1K.blank(random_uid(self.rng))
            self.desk.insert(blank)
            issued = self.api(
                "/api/v1/card-issues", {"member_id": member["id"], "balance": OPENING, "password": PASSWORD, "tier": n % 2}
            )
            self.desk.remove()
            on_card = read_card_directly(blank, self.master)
            self.out.check(
                "cards_issued_at_desk",
                on_card["ident"]["card_no"] == issued["card"]["card_no"] and on_card["purse"]["balance"] == OPENING,
                f"card {issued['card']['card_no']} reads {on_card['ident']['card_no']}",
            )
            cards.append(Issued(blank, issued["card"]["card_no"]))
            self.say(f"HQ issued card {issued['card']['card_no']} to member {member['id']} at the desk reader")
        self.out.figures["cards_issued"] = count
        return cards

    def sell_everywhere(self, cards: list[Issued]) -> None:
        for hh, card in zip(self.fleet * len(cards), cards, strict=False):
            self.out.check("sales_with_hq_prices", self.sell(hh, card, [(101, 1), (103, 1)]) == sale.RECEIPT, hh.lines[0])
        self.until(self.synced(), "sales_synced")
        sold = self.api("/api/v1/sales?limit=100")
        self.out.check("sales_record_price_list_version", {s["price_list_version"] for s in sold} == {1}, f"{sold[:1]}")

    def lost_while_offline(self, card: Issued) -> None:
        away = self.fleet[-1]
        away.network.up = False
        away.sync_step()
        self.until(lambda: not self.versions(away.device_id)["online"], "handheld_went_offline", self.fleet[:-1])
        self.api(f"/api/v1/cards/{card.number}/lost", {})
        self.say(f"HQ reported card {card.number} lost while {away.device_id} is offline")
        self.until(self.up_to_date(self.fleet[:-1]), "hotlist_reaches_online_handhelds", self.fleet[:-1])
        behind = self.versions(away.device_id)["behind"]
        self.out.check("offline_handheld_shown_behind", "hotlist" in behind, f"behind: {behind}")
        away.network.up = True
        took = self.until(self.up_to_date([away]), "hotlist_reaches_handheld_after_sync", [away])
        self.out.figures["hotlist_after_reconnect_s"] = round(took, 2)
        result = self.sell(away, card, [(101, 1)])
        self.out.check(
            "lost_card_refused_after_sync",
            result == sale.ERROR and away.lines[1:3] == ["Card blocked:", "reported lost"],
            f"{result}: {away.lines}",
        )
        self.refused.append(card)
        self.out.check("lost_card_marked_blocked", self.on_card(card)["ident"]["blocked"], "the card is not marked")
        self.say(f"{away.device_id} refused the lost card: {' / '.join(away.lines[1:3])}")

    def topup(self, card: Issued) -> None:
        number = card.number
        before = self.on_card(card)["purse"]["balance"]
        self.api(f"/api/v1/cards/{number}/topups", {"amount": TOPUP})
        self.say(f"HQ took {TOPUP / 100:.2f} for card {number}; it goes onto the card at its next tap")
        self.until(self.up_to_date(self.fleet), "topup_reaches_handhelds")
        hh = self.fleet[0]
        self.out.check("sale_after_topup", self.sell(hh, card, [(102, 1)]) == sale.RECEIPT, hh.lines[0])
        after = self.on_card(card)["purse"]["balance"]
        spent = self.last_sale(hh, number)["stored_value"]
        self.out.check("topup_reaches_card_at_next_tap", after == before + TOPUP - spent, f"{before} -> {after}, spent {spent}")
        # Another handheld holds the same top-up: it must not add it again.
        other = self.fleet[1]
        self.out.check("sale_elsewhere", self.sell(other, card, [(103, 1)]) == sale.RECEIPT, other.lines[0])
        spent_elsewhere = self.last_sale(other, number)["stored_value"]
        now = self.on_card(card)["purse"]["balance"]
        self.out.check("topup_applied_once", now == after - spent_elsewhere, f"{after} -> {now}, spent {spent_elsewhere}")
        detail = self.api(f"/api/v1/cards/{number}/detail")
        actions = [a for a in detail.get("actions", []) if a.get("kind") == "topup"]
        self.out.check("topup_reported_back", [a.get("state") for a in actions] == ["applied"], f"{actions}")

    def replace(self, card: Issued) -> None:
        old = card.number
        held = self.api(f"/api/v1/cards/{old}")
        new_card = MifareClassic1K.blank(random_uid(self.rng))
        self.desk.insert(new_card)
        done = self.api(f"/api/v1/cards/{old}/replace", {})
        self.desk.remove()
        new_no = done["card"]["card_no"]
        self.replacement = Issued(new_card, new_no)
        purse = self.on_card(self.replacement)["purse"]
        self.out.check(
            "replacement_carries_balance_and_points",
            (purse["balance"], purse["points"]) == (held["balance"], held["points"]),
            f"old card held {held['balance']}/{held['points']}, new card {purse['balance']}/{purse['points']}",
        )
        self.say(f"HQ replaced card {old} with {new_no}: {purse['balance'] / 100:.2f} and {purse['points']} points moved")
        self.until(self.up_to_date(self.fleet), "replacement_hotlist_reaches_handhelds")
        hh = self.fleet[0]
        refused = self.sell(hh, card, [(101, 1)])
        self.refused.append(card)
        self.out.check("replaced_card_refused", refused == sale.ERROR and "Card blocked:" in hh.lines, f"{hh.lines}")
        self.out.check("replacement_sells", self.sell(hh, self.replacement, [(101, 1)]) == sale.RECEIPT, hh.lines[0])
        self.until(self.synced(), "replacement_synced")

    def change_price(self, card: Issued) -> None:
        self.api("/api/v1/price-lists", {"shop_id": SHOP, "prices": {"101": NEW_ESPRESSO}, "note": "espresso up"})
        published = self.api(f"/api/v1/shops/{SHOP}/prices/publish", {})
        self.say(f"HQ changed the espresso to {NEW_ESPRESSO / 100:.2f}: price list v{published['version']}")
        took = self.until(self.up_to_date(self.fleet), "new_price_reaches_every_handheld")
        self.out.figures["price_change_to_all_handhelds_s"] = round(took, 2)
        for hh in self.fleet:
            self.out.check("sale_at_new_price", self.sell(hh, card, [(101, 1)]) == sale.RECEIPT, hh.lines[0])
        self.until(self.synced(), "new_price_sales_synced")
        for hh in self.fleet:
            [last] = self.api(f"/api/v1/sales?device={hh.device_id}&limit=1")
            self.out.check(
                "next_sale_uses_new_price",
                last["price_list_version"] == published["version"] and last["lines"] == [
                    {"item": 101, "qty": 1, "price": NEW_ESPRESSO}
                ],
                f"{hh.device_id}: v{last['price_list_version']} {last['lines']}",
            )

    def ledger_matches_cards(self, cards: list[Issued]) -> None:
        for card in cards:
            purse = self.on_card(card)["purse"]
            hub = self.api(f"/api/v1/cards/{card.number}")
            self.out.check(
                "hub_ledger_matches_cards",
                (hub["balance"], hub["points"]) == (purse["balance"], purse["points"]),
                f"{card.number}: hub {hub['balance']}/{hub['points']}, card {purse['balance']}/{purse['points']}",
            )
