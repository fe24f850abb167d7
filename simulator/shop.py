"""A demo shop for the simulator: its price list, its members' cards, its master key."""

from __future__ import annotations

import random
from typing import Any

from protocol import card as layout
from protocol import coupon, mifare
from simulator.mifare_card import MifareClassic1K

PRICE_LIST: dict[str, Any] = {
    "version": 1,
    "currency": "EUR",
    "items": [
        {"id": 101, "name": "Espresso", "price": 250, "category": "coffee"},
        {"id": 102, "name": "Cappuccino", "price": 320, "category": "coffee"},
        {"id": 103, "name": "Croissant", "price": 180, "category": "bakery"},
        {"id": 201, "name": "Sandwich", "price": 550, "category": "food"},
        {"id": 202, "name": "Salad bowl", "price": 695, "category": "food"},
        {"id": 301, "name": "Coffee beans 250g", "price": 1290, "category": "retail"},
        {"id": 401, "name": "Gift voucher", "price": 2000, "category": "voucher", "discountable": False},
    ],
    "tiers": [
        {"tier": 0, "name": "Member", "discount_bps": 0},
        {"tier": 1, "name": "Silver", "discount_bps": 500},
        {"tier": 2, "name": "Gold", "discount_bps": 1250},
    ],
    "points": {"earn_per_100": 1, "point_value": 1},
}


def master_key(rng: random.Random) -> bytes:
    """A fleet's HQ master key (random per simulated fleet, from the scenario's seed)."""
    return bytes(rng.getrandbits(8) for _ in range(32))


def random_uid(rng: random.Random) -> bytes:
    """A 4-byte NUID; 0x08 and 0x88 first bytes are reserved (random ID / cascade tag)."""
    while True:
        uid = bytes(rng.getrandbits(8) for _ in range(4))
        if uid[0] not in (0x08, 0x88):
            return uid


def blank_card(rng: random.Random) -> MifareClassic1K:
    return MifareClassic1K.blank(random_uid(rng))


def issue_card(card: MifareClassic1K, master: bytes, ident: dict, balance: int, points: int) -> None:
    """Personalise a blank virtual card as HQ's desk does: transport key A, then the trailers."""
    for block, data in layout.issue_writes(master, card.uid, ident, balance, points):
        card.reset()
        if not card.authenticate(mifare.first_block(mifare.sector_of(block)), "A", mifare.DEFAULT_KEY, card.uid):
            raise RuntimeError(f"card {card.uid.hex()} is not blank: transport key refused")
        card.write_block(block, data)
    card.reset()


def member_card(rng: random.Random, master: bytes, number: int, balance: int, points: int, tier: int) -> MifareClassic1K:
    """A freshly issued member card with card number 9000...number."""
    card = blank_card(rng)
    ident = {"card_no": f"9{number:015d}", "member_id": number, "tier": tier}
    issue_card(card, master, ident, balance, points)
    return card


def read_card_directly(card: MifareClassic1K, master: bytes) -> dict:
    """Decode a virtual card's memory without a reader (for checks): identity and current purse."""
    blocks = card.blocks
    ident = layout.decode_identity(master, card.uid, [bytes(blocks[b]) for b in layout.IDENTITY_BLOCKS])
    ext = ident.get("coupons")  # a card with coupons has a third block per purse copy (protocol.coupon)
    copies = {
        copy: layout.decode_purse(master, card.uid, ident["card_no"], copy,
                                  [bytes(blocks[b]) for b in pair + ((layout.PURSE_BLOCKS[copy][0] + 2,) if ext else ())])
        for copy, pair in layout.PURSE_BLOCKS.items()
    }
    purse, _ = layout.choose_purse(copies["A"], copies["B"])
    slots = coupon.slots(master, card.uid, [bytes(blocks[b]) for b in (16, 17, 18)]) if ext else [None, None]
    return {"ident": ident, "purse": purse, "copies": copies, "slots": slots}
