"""Coupons on the member card, and the discount rule: shared by handheld and hub (docs/coupons.md).

A coupon is [id, kind, value, min_spend, from_day, until_day]: kind 1 fixed (value cents
off), 2 percent (value basis points off the discountable lines), 3 gift (value: the item
given, a line at price 0); min_spend in cents of the total after the tier discount; valid
on days from_day..until_day (days since 1970-01-01, UTC), both included.

Sector 4 holds two slots (blocks 16, 17) and their MACs (block 18, 8 bytes each). Whether
a slot's coupon is used is not in the slot but in each purse copy's third block
(card.PURSE_EXT: the used coupon id per slot, under the purse MAC), so the purse write of
a sale marks its coupon used in the same copy as the money: a tear leaves the old copy
(unused, nothing paid) or the new one (used, paid), never one without the other.

The handheld imports this module only when a card has coupons, and it is kept small:
every name costs heap there (tests/test_budget.py). The hub's rules are in hub/coupons.py.
"""

import struct

from protocol import card, crypto, pricing

GIFT = 3
SLOT = ">IIIHH"  # id, kind << 24 | value, min spend, from day, until day


def valid(c) -> bool:
    """Whether c is a coupon: [id, kind 1-3, value (at most 100 % for kind 2), min spend, from day, until day >= it]."""
    if not isinstance(c, list) or len(c) != 6:
        return False
    for v in c:
        if type(v) is not int or v < 0:
            return False
    return (0 < c[0] <= 0xFFFFFFFF and 1 <= c[1] <= 3 and c[2] <= (10000 if c[1] == 2 else 0xFFFFFF)
            and c[3] <= 0x7FFFFFFF and c[4] <= c[5] <= 0xFFFF)


def _mac(master: bytes, uid: bytes, index: int, data: bytes) -> bytes:
    return crypto.hmac_sha256(card.mac_key(master, uid), b"CP" + bytes([index]) + uid + data)[:8]


def slots(master: bytes, uid: bytes, blocks: list) -> list:
    """[coupon or None] per slot of sector 4 as read (blocks 16-18): None when empty or its MAC fails (torn or forged)."""
    out = []  # type: list
    for i in (0, 1):
        data = blocks[i]
        if data == bytes(16) or not crypto.equal(blocks[2][8 * i : 8 * i + 8], _mac(master, uid, i, data)):
            out.append(None)
            continue
        c = list(struct.unpack(SLOT, data))
        out.append([c[0], c[1] >> 24, c[1] & 0xFFFFFF] + c[2:])
    return out


def used(ext, index: int) -> int:
    """The id of the coupon the purse's third block marks used in slot index (0: none)."""
    return struct.unpack_from(">I", ext, 4 * index)[0] if ext else 0


def mark(ext, index: int, coupon_id: int) -> bytes:
    """The purse's third block with slot index's coupon marked used."""
    out = bytearray(ext or bytes(16))
    struct.pack_into(">I", out, 4 * index, coupon_id)
    return bytes(out)


def put(master: bytes, uid: bytes, blocks: list, ext, coupon: list, day: int) -> tuple:
    """(slot, [slot block, MAC block]) putting coupon on a card whose sector 4 reads blocks.

    The slot that holds it already (writes None), else a free one: empty, used or expired;
    (-1, None) when both are taken. The other slot's MAC is kept as read.
    """
    held = slots(master, uid, blocks)
    free = -1
    for i in (0, 1):
        c = held[i]
        if c is not None and c[0] == coupon[0]:
            return i, None
        if free < 0 and (c is None or used(ext, i) == c[0] or c[5] < day):
            free = i
    if free < 0:
        return -1, None
    data = struct.pack(SLOT, coupon[0], coupon[1] << 24 | coupon[2], coupon[3], coupon[4], coupon[5])
    macs = bytearray(blocks[2])
    macs[8 * free : 8 * free + 8] = _mac(master, uid, free, data)
    return free, [data, bytes(macs)]


def apply(price_list, q: dict, coupon: list, ext=None, index: int = 0, day: int = 0) -> dict:
    """The quote q with the coupon: coupon, coupon_value (cents off), total; a gift adds its line at price 0.

    PricingError (its message fits a display line) when the coupon is used (ext marks it), not valid on day
    (day 0: not checked), the total after the tier discount is below its minimum spend, or the gift is not
    on the list. Percent: apply_bps of the discountable lines after their tier discount (rounded half up);
    fixed: at most the total.
    """
    total = q["total"]
    why = ""
    if used(ext, index) == coupon[0]:
        why = "Coupon used"
    elif day and day > coupon[5]:
        why = "Coupon expired"
    elif day and day < coupon[4]:
        why = "Coupon not valid yet"
    elif total < coupon[3]:
        why = "Coupon needs " + pricing.format_money(coupon[3])
    elif coupon[1] == GIFT and coupon[2] not in price_list.items:
        why = "Gift not on price list"
    if why:
        raise pricing.PricingError("coupon", why)
    out = dict(q)
    off = 0
    if coupon[1] == 1:
        off = min(coupon[2], total)
    elif coupon[1] == 2:
        base = -q["discount"]  # the tier discount is on the discountable lines only
        for line in q["lines"]:
            if price_list.items[line["item"]][1]:  # (price, discountable, category)
                base += line["price"] * line["qty"]
        off = pricing.apply_bps(base, coupon[2])
    else:
        out["lines"] = q["lines"] + [{"item": coupon[2], "qty": 1, "price": 0}]
    out["coupon"] = coupon[0]
    out["coupon_value"] = off
    out["total"] = total - off
    return out
