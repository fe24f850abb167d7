"""Downlinks: what the hub tells a handheld, each versioned (docs/protocol.md, section 8).

Three kinds, each on its own topic terminals/<id>/down/<kind>:

* prices: the shop's price list document (protocol.pricing's format), whole;
* hotlist: the changes since the version the device has, {"from", "to", "cards": [[card_no, reason], ...]},
  reason "" taking a card off the list;
* actions: the pending card actions since the device's version, {"from", "to", "actions": [[id, card_no,
  number, kind, amount, points, tier], ...]}.

A device applies a delta only when its "from" is at most the version it holds, and
then holds "to". Decoding checks every field: a bad message raises SyncError and
changes nothing.
"""

import json

from protocol.pricing import PriceList, PricingError
from protocol.sync import SyncError

PRICES = "prices"
HOTLIST = "hotlist"
ACTIONS = "actions"
KINDS = (PRICES, HOTLIST, ACTIONS)
ACTION_KINDS = ("topup", "tier", "transfer")
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
        if not isinstance(a, list) or len(a) != 7:
            raise _fail(ACTIONS, "an action must be [id, card, number, kind, amount, points, tier], got %r" % (a,))
        _int(a[0], ACTIONS, "id", frm + 1, to)
        _card_no(a[1], ACTIONS)
        _int(a[2], ACTIONS, "number", 1, MAX_VERSION)
        if a[3] not in ACTION_KINDS:
            raise _fail(ACTIONS, "unknown action kind %r" % (a[3],))
        _int(a[4], ACTIONS, "amount", -MAX_AMOUNT, MAX_AMOUNT)
        _int(a[5], ACTIONS, "points", -MAX_AMOUNT, MAX_AMOUNT)
        _int(a[6], ACTIONS, "tier", 0 if a[3] == "tier" else -1, 255)
    return frm, to, actions


def decode_prices(payload) -> PriceList:
    """The price list in a prices downlink; SyncError('bad_prices') when it is not one the rules accept."""
    try:
        return PriceList(json.loads(payload))
    except (ValueError, TypeError) as exc:  # PricingError is a ValueError
        raise _fail(PRICES, exc.message if isinstance(exc, PricingError) else "not JSON")
