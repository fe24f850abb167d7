"""Downlinks: what the hub tells a handheld, each versioned (docs/protocol.md, section 8).

Four kinds, each on its own topic terminals/<id>/down/<kind>:

* prices: the shop's price list document (protocol.pricing's format), whole;
* hotlist: the changes since the version the device has, {"from", "to", "cards": [[card_no, reason], ...]},
  reason "" taking a card off the list;
* actions: the pending card actions since the device's version, {"from", "to", "actions": [[id, card_no,
  number, kind, amount, points, tier], ...]}.
* lease: the device's signed offline lease, whole: {"device", "version", "issued", "expires_after_s",
  "max_sv_per_sale", "max_sv_per_card_day", "max_sv_offline_total", "mac"} (below: lease_mac,
  decode_lease; hub.lease signs, firmware.downlinks applies the limits; docs/loyalty.md,
  "Counter rules and offline limits").

A device applies a delta only when its "from" is at most the version it holds, and
then holds "to". Decoding checks every field: a bad message raises SyncError and
changes nothing.
"""

import json

from protocol.card import lease_key
from protocol.crypto import equal, hmac_sha256
from protocol.pricing import PriceList, PricingError
from protocol.sync import SyncError

PRICES = "prices"
HOTLIST = "hotlist"
ACTIONS = "actions"
LEASE = "lease"
KINDS = (PRICES, HOTLIST, ACTIONS, LEASE)
# All but tier and coupon move money or points.
ACTION_KINDS = ("topup", "tier", "transfer", "refund", "expire", "referral", "debt", "coupon")
MAX_MESSAGE = 12 * 1024  # bytes: a handheld's MQTT client takes packets up to 16 KiB
MAX_VERSION = 0xFFFFFFFF
MAX_AMOUNT = 0x7FFFFFFF


def topic(device_id: str, kind: str) -> str:
    return "terminals/%s/down/%s" % (device_id, kind)


def kind_of(topic_name: str) -> str:
    """The downlink kind a down topic carries ('' for anything else)."""
    parts = topic_name.split("/")
    if len(parts) == 4 and parts[2] == "down" and parts[3] in KINDS:
        return parts[3]
    return ""


def _fail(kind: str, why: str):
    return SyncError("bad_" + kind, "%s: %s" % (kind, why))


def _int(value, kind: str, what: str, lo: int, hi: int) -> int:
    if type(value) is not int or value < lo or value > hi:
        raise _fail(kind, "%s must be a whole number from %d to %d, got %r" % (what, lo, hi, value))
    return value


def _card_no(value, kind: str) -> str:
    if not isinstance(value, str) or len(value) != 16 or not value.isdigit():
        raise _fail(kind, "card number must be 16 digits, got %r" % (value,))
    return value


def _delta(payload, kind: str, key: str) -> tuple:
    try:
        doc = json.loads(payload)
    except (ValueError, TypeError):
        raise _fail(kind, "not JSON")
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise _fail(kind, "must be an object with a %s list" % key)
    frm = _int(doc.get("from"), kind, "from", 0, MAX_VERSION)
    to = _int(doc.get("to"), kind, "to", frm, MAX_VERSION)
    return frm, to, doc[key]


def encode_hotlist(frm: int, to: int, cards: list) -> bytes:
    """Hotlist changes from version frm (exclusive) to to: [[card_no, reason or '' when taken off]]."""
    return json.dumps({"from": frm, "to": to, "cards": cards}).encode()


def decode_hotlist(payload) -> tuple:
    """(from, to, [[card_no, reason], ...]); SyncError('bad_hotlist') when malformed."""
    frm, to, cards = _delta(payload, HOTLIST, "cards")
    for entry in cards:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], str) or len(entry[1]) > 40:
            raise _fail(HOTLIST, "an entry must be [card number, reason], got %r" % (entry,))
        _card_no(entry[0], HOTLIST)
    return frm, to, cards


def encode_actions(frm: int, to: int, actions: list) -> bytes:
    """Pending card actions with ids after frm, up to to: [[id, card_no, number, kind, amount, points, tier]]."""
    return json.dumps({"from": frm, "to": to, "actions": actions}).encode()


def decode_actions(payload) -> tuple:
    """(from, to, [[id, card_no, number, kind, amount, points, tier], ...]); SyncError('bad_actions')."""
    frm, to, actions = _delta(payload, ACTIONS, "actions")
    for a in actions:
        # A coupon action carries the coupon as an eighth element (protocol.coupon): [id, kind, value, min, from, until].
        if not isinstance(a, list) or len(a) != (8 if len(a) > 3 and a[3] == "coupon" else 7):
            raise _fail(ACTIONS, "an action must be [id, card, number, kind, amount, points, tier], got %r" % (a,))
        _int(a[0], ACTIONS, "id", frm + 1, to)
        _card_no(a[1], ACTIONS)
        _int(a[2], ACTIONS, "number", 1, MAX_VERSION)
        if a[3] not in ACTION_KINDS:
            raise _fail(ACTIONS, "unknown action kind %r" % (a[3],))
        _int(a[4], ACTIONS, "amount", -MAX_AMOUNT, MAX_AMOUNT)
        _int(a[5], ACTIONS, "points", -MAX_AMOUNT, MAX_AMOUNT)
        _int(a[6], ACTIONS, "tier", 0 if a[3] == "tier" else -1, 255)
        if len(a) == 8:
            from protocol.coupon import valid  # loaded only when a coupon comes

            if not valid(a[7]):
                raise _fail(ACTIONS, "bad coupon %r" % (a[7],))
    return frm, to, actions


def decode_prices(payload) -> PriceList:
    """The price list in a prices downlink; SyncError('bad_prices') when it is not one the rules accept."""
    try:
        return PriceList(json.loads(payload))
    except (ValueError, TypeError) as exc:  # PricingError is a ValueError
        raise _fail(PRICES, exc.message if isinstance(exc, PricingError) else "not JSON")


# -- the offline lease ------------------------------------------------------------------------------
# Here rather than in a module of its own, and only what both sides need (hub.lease signs,
# firmware.downlinks applies the limits): every module and function costs the handheld heap
# (tests/test_budget.py). The MAC is HMAC-SHA256 under card.lease_key(master, device), truncated
# to 16 bytes; a lease that does not verify counts as none.

LEASE_LIMITS = ("expires_after_s", "max_sv_per_sale", "max_sv_per_card_day", "max_sv_offline_total")


def lease_mac(master: bytes, lease: dict) -> str:
    """The MAC of a lease: over device, version, issued and the limits, in that order."""
    values = [lease["version"], lease["issued"]] + [lease[k] for k in LEASE_LIMITS]
    signed = ("LEASE|%s|" % lease["device"] + "|".join(["%d" % v for v in values])).encode()
    return hmac_sha256(lease_key(master, lease["device"]), signed)[:16].hex()


def decode_lease(master: bytes, device_id: str, payload) -> list:
    """[version, expires_after_s, max_sv_per_sale, max_sv_per_card_day, max_sv_offline_total] of a verified lease.

    SyncError('bad_lease') when it is malformed, another device's, or its signature does not verify.
    """
    try:
        lease = json.loads(payload)
    except (ValueError, TypeError):
        raise _fail(LEASE, "not JSON")
    if not isinstance(lease, dict) or lease.get("device") != device_id:
        raise _fail(LEASE, "not an object made for this device")
    _int(lease.get("version"), LEASE, "version", 0, MAX_VERSION)
    _int(lease.get("issued"), LEASE, "issued", 0, MAX_VERSION)
    _int(lease.get("expires_after_s"), LEASE, "expires_after_s", 0, 30 * 86400)  # a month offline at most
    for key in LEASE_LIMITS[1:]:
        _int(lease.get(key), LEASE, key, 0, MAX_AMOUNT)
    given = lease.get("mac")
    if not isinstance(given, str) or not equal(given.encode(), lease_mac(master, lease).encode()):
        raise _fail(LEASE, "bad signature")
    return [lease["version"]] + [lease[k] for k in LEASE_LIMITS]

