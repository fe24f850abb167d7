"""Coupons on the card at the handheld: read the slots, put a coupon HQ issued into one (docs/coupons.md).

Loaded only when a card has coupons or a coupon action is due: a handheld that never meets
one does not pay the heap (tests/test_budget.py). Redemption is in terminal.py and
protocol/coupon.py; the used mark goes into the purse copy with the sale's money.
"""

from firmware.reader import AuthFailed
from protocol import card as layout
from protocol import coupon, mifare


def coupon_slots(service, uid: bytes) -> tuple:
    """(slots, sector 4's blocks 16-18 as read): [coupon or None] per slot."""
    blocks = service._read(uid, (16, 17, 18))
    return coupon.slots(service.master, uid, blocks), blocks


def put_coupon(service, card: dict, offer: list, day: int) -> bool:
    """Put a coupon into a slot (nothing written when the card holds it already); False when both slots are taken.

    A card's first coupon gives sector 4 (transport keys until then) the card's keys; the slot
    is written before its MAC, so a cut leaves the slot empty and the action due.
    """
    uid = card["uid"]
    if not card["ident"].get("coupons"):
        try:
            service._auth(uid, 4)
        except AuthFailed:  # still as the factory made it (a cut may have left it done already)
            service._authed = -1
            service.reader.select()
            service.reader.authenticate(16, "A", mifare.DEFAULT_KEY, uid)
            key_a, key_b = layout.sector_keys(service.master, uid, 4)
            service.reader.write_block(19, mifare.make_trailer(key_a, layout.APP_ACCESS, layout.GPB, key_b))
            service._authed = -1
    card["slots"], blocks = coupon_slots(service, uid)
    index, writes = coupon.put(service.master, uid, blocks, card["purse"].get("ext"), offer, day)
    if writes:
        service._write(uid, (16 + index, 18), writes)
        card["slots"][index] = offer
    return index >= 0
