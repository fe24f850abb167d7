"""`sim handheld`: one virtual handheld driven from the terminal, screen and all."""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

from protocol.pricing import format_money
from simulator.handheld import VirtualHandheld
from simulator.mifare_card import MifareClassic1K
from simulator.shop import PRICE_LIST, blank_card, master_key, member_card, read_card_directly

HELP = """commands:
  tap N          put card N on the reader        remove   take the card away
  101 ENTER      type keys (digits, *, ENTER, OK, CANCEL, CLEAR, POINTS, CASH)
  2*101 ENTER    two of item 101                 items    the price list
  cards          the cards and what they hold    quit     leave"""


def _screen(lines: list[str]) -> str:
    width = 21
    rows = (lines + [""] * 4)[:4]
    return "\n".join(["+" + "-" * width + "+"] + [f"|{row:<{width}}|" for row in rows] + ["+" + "-" * width + "+"])


def _cards_text(cards: list[MifareClassic1K], master: bytes) -> str:
    out = []
    for n, card in enumerate(cards, 1):
        try:
            state = read_card_directly(card, master)
            purse = state["purse"]
            out.append(f"  {n}) card ...{state['ident']['card_no'][-4:]} tier {state['ident']['tier']} "
                       f"balance {format_money(purse['balance'])} points {purse['points']}")
        except Exception as exc:  # a blank or foreign card is listed for what it is
            out.append(f"  {n}) card {card.uid.hex()}: {exc}")
    return "\n".join(out)


def run_interactive(folder: str | None, n_cards: int, seed: int) -> int:
    rng = random.Random(seed)
    master = master_key(random.Random(seed))
    cards = [member_card(rng, master, n + 1, 5000 * (n + 1), 100 * n, n % 3) for n in range(n_cards)]
    cards.append(blank_card(rng))
    tmp = None if folder else tempfile.TemporaryDirectory(prefix="sim-handheld-")
    root = Path(tmp.name if tmp else folder or ".")
    handheld = VirtualHandheld("hh-01", root, master, PRICE_LIST, echo=lambda lines: None)
    try:
        handheld.boot()
        print(HELP)
        print(_cards_text(cards, master))
        print(_screen(handheld.display.lines))
        for raw in sys.stdin:
            words = raw.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            try:
                _command(handheld, cards, master, words)
            except (ValueError, IndexError) as exc:
                print(f"? {exc}\n{HELP}")
                continue
            handheld.run()
            print(_screen(handheld.display.lines), flush=True)
    finally:
        handheld.close()
        if tmp:
            tmp.cleanup()
    return 0


def _command(handheld: VirtualHandheld, cards: list[MifareClassic1K], master: bytes, words: list[str]) -> None:
    if words[0] == "tap":
        index = int(words[1]) - 1
        if not 0 <= index < len(cards):
            raise ValueError(f"no card {words[1]}: cards are 1 to {len(cards)}")
        handheld.tap(cards[index])
    elif words[0] == "remove":
        handheld.remove_card()
    elif words[0] == "cards":
        print(_cards_text(cards, master))
    elif words[0] == "items":
        for item in PRICE_LIST["items"]:
            print(f"  {item['id']}  {item['name']:<20} {format_money(item['price']):>8}")
    else:
        for word in words:
            handheld.press(*(list(word) if word[0].isdigit() else [word.upper()]))
