"""Regenerate tests/vectors/protocol.json from protocol/ (only when a format change is intended).

    .venv/bin/python tests/vectors/make_vectors.py

The RFC 4231, CRC-32 and rounding cases are written by hand below and come from
outside our code; the card and record cases pin today's encodings, so any
change to them shows up as a failing test until the vectors are regenerated
and docs/protocol.md is updated.
"""

from __future__ import annotations

import json
from pathlib import Path

from protocol import card, pricing, record

MASTER = bytes(range(32))
UID = bytes.fromhex("a1b2c3d4")

PRICE_LIST = {
    "version": 42,
    "items": [
        {"id": 101, "name": "Espresso", "price": 250, "category": "coffee"},
        {"id": 103, "name": "Croissant", "price": 185, "category": "bakery"},
        {"id": 401, "name": "Gift voucher", "price": 2000, "category": "voucher", "discountable": False},
    ],
    "tiers": [{"tier": 0, "name": "Member", "discount_bps": 0}, {"tier": 2, "name": "Gold", "discount_bps": 1250}],
    "points": {"earn_per_100": 2, "point_value": 5},
}

SALE = {
    "kind": "sale",
    "seq": 17,
    "time": 1790000000,
    "device": "hh-01",
    "card_no": "9000000000000042",
    "uid": UID.hex(),
    "counter_before": 6,
    "counter_after": 7,
    "member_id": 42,
    "tier": 2,
    "discount_bps": 1250,
    "price_list_version": 42,
    "firmware": "0.1.0",
    "lines": [
        {"item": 101, "qty": 2, "price": 250},
        {"item": 103, "qty": 1, "price": 185},
        {"item": 401, "qty": 1, "price": 2000},
    ],
    "subtotal": 2685,
    "discount": 86,
    "total": 2599,
    "points_redeemed": 100,
    "points_value": 500,
    "stored_value": 1500,
    "cash": 599,
    "points_earned": 41,
    "balance_after": 0,
    "points_after": 61,
}


def build() -> dict:
    ident: dict = {"card_no": "9000000000000042", "member_id": 42, "tier": 2, "category": 1,
                   "issued_day": 20000, "expiry_day": 21000, "blocked": False, "actions": 0}
    blocked = dict(ident, blocked=True, actions=3)
    purse = {"counter": 7, "balance": 12345, "points": 678, "tag": card.txn_tag("hh-01", 17)}
    outcome = {"kind": "outcome", "seq": 18, "time": 1790000005, "device": "hh-01", "ref": 17, "result": "committed",
               "reason": ""}
    event = {"kind": "event", "seq": 19, "time": 1790000010, "device": "hh-01", "code": "bad_mac",
             "message": "card data failed its MAC check", "uid": UID.hex()}
    action = {"kind": "action", "seq": 20, "time": 1790000020, "device": "hh-01", "card_no": "9000000000000042",
              "uid": UID.hex(), "act": "topup", "action": 1234, "number": 3, "amount": 2000, "points": 50, "tier": 2,
              "counter_before": 7, "counter_after": 8, "balance_after": 14345, "points_after": 728}
    sale_bytes = record.encode(SALE)
    pl = pricing.PriceList(PRICE_LIST)
    quote = pricing.quote(pl, [(101, 2), (103, 1), (401, 1)], 2)
    return {
        "about": "Test vectors for docs/protocol.md. Hex strings are bytes; integers are cents or counts.",
        "hmac_sha256": [
            {"source": "RFC 4231 case 1", "key": "0b" * 20, "msg": b"Hi There".hex(),
             "mac": "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
            {"source": "RFC 4231 case 2", "key": b"Jefe".hex(), "msg": b"what do ya want for nothing?".hex(),
             "mac": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
            {"source": "RFC 4231 case 6 (key longer than a block)", "key": "aa" * 131,
             "msg": b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
             "mac": "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        ],
        "crc32": [{"data": b"123456789".hex(), "crc": 0xCBF43926}, {"data": "", "crc": 0}],
        "round_half_up": [
            {"amount": 999, "bps": 1250, "share": 125, "why": "124.875 rounds up"},
            {"amount": 1000, "bps": 1250, "share": 125, "why": "exact"},
            {"amount": 1, "bps": 5000, "share": 1, "why": "0.5 rounds up"},
            {"amount": 1, "bps": 4999, "share": 0, "why": "0.4999 rounds down"},
            {"amount": 685, "bps": 1250, "share": 86, "why": "85.625 rounds up"},
            {"amount": 12, "bps": 10000, "share": 12, "why": "100 %"},
        ],
        "price_list": PRICE_LIST,
        "quote": {"lines": [[101, 2], [103, 1], [401, 1]], "tier": 2, "result": quote},
        "settle": {
            "total": quote["total"], "balance": 1500, "points": 120, "redeem_points": 100, "use_stored_value": True,
            "result": pricing.settle(pl, quote["total"], 1500, 120, 100, True),
        },
        "master_key": MASTER.hex(),
        "uid": UID.hex(),
        "keys": {
            "mac_key": card.mac_key(MASTER, UID).hex(),
            "sectors": {str(s): [k.hex() for k in card.sector_keys(MASTER, UID, s)] for s in card.APP_SECTORS},
        },
        "identity": {"ident": ident, "blocks": [b.hex() for b in card.encode_identity(MASTER, UID, ident)]},
        "identity_blocked": {"ident": blocked, "blocks": [b.hex() for b in card.encode_identity(MASTER, UID, blocked)]},
        "purse": {"card_no": ident["card_no"], "copy": "B", "purse": purse,
                  "blocks": [b.hex() for b in card.encode_purse(MASTER, UID, ident["card_no"], "B", purse)]},
        "issue_writes": {"ident": ident, "balance": 5000, "points": 10,
                         "writes": [[b, d.hex()] for b, d in card.issue_writes(MASTER, UID, ident, 5000, 10)]},
        "records": [
            {"record": SALE, "hex": sale_bytes.hex()},
            {"record": outcome, "hex": record.encode(outcome).hex()},
            {"record": event, "hex": record.encode(event).hex()},
            {"record": action, "hex": record.encode(action).hex()},
        ],
        "bad_records": [
            {"hex": sale_bytes[:-1].hex(), "error": "bad_checksum", "why": "last byte missing"},
            {"hex": sale_bytes[:8].hex(), "error": "truncated", "why": "header only"},
            {"hex": (b"\x02" + sale_bytes[1:-4] + _crc(b"\x02" + sale_bytes[1:-4])).hex(), "error": "unknown_version",
             "why": "format version 2"},
            {"hex": (sale_bytes[:-5] + _crc(sale_bytes[:-5])).hex(), "error": "truncated",
             "why": "valid checksum over a sale cut short"},
        ],
    }


def _crc(data: bytes) -> bytes:
    from protocol.crypto import crc32

    return crc32(data).to_bytes(4, "big")


if __name__ == "__main__":
    path = Path(__file__).with_name("protocol.json")
    path.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
