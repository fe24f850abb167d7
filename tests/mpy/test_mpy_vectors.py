"""protocol/ reproduces tests/vectors/protocol.json, on MicroPython as on CPython."""

import json

from harness import raises, vectors

from protocol import access, card, mifare, pricing, record
from protocol import downlink as dl
from protocol import sync as wire
from protocol.crypto import crc32, equal, hmac_sha256

V = vectors()
MASTER = bytes.fromhex(V["master_key"])
UID = bytes.fromhex(V["uid"])


def test_hmac_sha256_matches_rfc_4231():
    for case in V["hmac_sha256"]:
        got = hmac_sha256(bytes.fromhex(case["key"]), bytes.fromhex(case["msg"])).hex()
        assert got == case["mac"], case["source"]


def test_crc32_check_values():
    for case in V["crc32"]:
        assert crc32(bytes.fromhex(case["data"])) == case["crc"], case


def test_constant_time_equal():
    assert equal(b"abc", b"abc") and not equal(b"abc", b"abd") and not equal(b"abc", b"ab")


def test_rounding_rule():
    for case in V["round_half_up"]:
        assert pricing.apply_bps(case["amount"], case["bps"]) == case["share"], case["why"]


def test_quote_and_settle():
    pl = pricing.PriceList(V["price_list"])
    q = V["quote"]
    assert pricing.quote(pl, [tuple(line) for line in q["lines"]], q["tier"]) == q["result"]
    s = V["settle"]
    got = pricing.settle(pl, s["total"], s["balance"], s["points"], s["redeem_points"], s["use_stored_value"])
    assert got == s["result"]


def test_pricing_refusals():
    pl = pricing.PriceList(V["price_list"])
    for lines, code in (([], "empty_sale"), ([(999999, 1)], "unknown_item"), ([(V["quote"]["lines"][0][0], 0)], "bad_quantity")):
        with raises(pricing.PricingError) as caught:
            pricing.quote(pl, lines, 0)
        assert caught.value is not None and getattr(caught.value, "code", None) == code, (lines, code)
    with raises(pricing.PricingError):
        pricing.PriceList({"version": 1, "items": []})
    assert pricing.format_money(12345) == "123.45" and pricing.format_money(-5) == "-0.05"


def test_key_diversification():
    assert card.mac_key(MASTER, UID).hex() == V["keys"]["mac_key"]
    for sector in V["keys"]["sectors"]:
        keys = card.sector_keys(MASTER, UID, int(sector))
        assert [k.hex() for k in keys] == V["keys"]["sectors"][sector], sector


def test_identity_blocks():
    for name in ("identity_blocked", "identity"):
        ident = V[name]["ident"]
        blocks = [bytes.fromhex(b) for b in V[name]["blocks"]]
        assert card.encode_identity(MASTER, UID, ident) == blocks, name
        assert card.decode_identity(MASTER, UID, blocks) == ident, name
    tampered = [blocks[0], bytes([blocks[1][0] ^ 1]) + blocks[1][1:], blocks[2]]
    with raises(card.CardError, "bad_mac"):
        card.decode_identity(MASTER, UID, tampered)


def test_purse_blocks():
    p = V["purse"]
    blocks = [bytes.fromhex(b) for b in p["blocks"]]
    assert card.encode_purse(MASTER, UID, p["card_no"], p["copy"], p["purse"]) == blocks
    assert card.decode_purse(MASTER, UID, p["card_no"], p["copy"], blocks) == p["purse"]
    other = "B" if p["copy"] == "A" else "A"
    assert card.decode_purse(MASTER, UID, p["card_no"], other, blocks) is None  # a copy's MAC names the copy


def test_issue_writes():
    i = V["issue_writes"]
    writes = card.issue_writes(MASTER, UID, i["ident"], i["balance"], i["points"])
    assert [[b, d.hex()] for b, d in writes] == i["writes"]


def test_records():
    for case in V["records"]:
        kind = case["record"]["kind"]
        assert record.encode(case["record"]).hex() == case["hex"], kind
        assert record.decode(bytes.fromhex(case["hex"])) == case["record"], kind


def test_bad_records():
    for case in V["bad_records"]:
        with raises(record.RecordError) as caught:
            record.decode(bytes.fromhex(case["hex"]))
        assert caught.value is not None and getattr(caught.value, "code", None) == case["error"], case["why"]


def test_out_of_range_fields_are_refused_not_wrapped():
    # MicroPython's struct wraps what CPython's refuses: record.py must check ranges itself.
    good = dict(V["records"][0]["record"])
    for field, value in (("seq", -1), ("seq", 1 << 32), ("time", 1 << 40)):
        bad = dict(good)
        bad[field] = value
        with raises(record.RecordError) as caught:
            record.encode(bad)
        assert caught.value is not None and getattr(caught.value, "code", None) == "bad_field", (field, value)


def test_access_bits_round_trip():
    conds = [(1, 0, 0), (1, 0, 0), (1, 0, 0), (0, 1, 1)]
    assert access.decode_access_bits(access.encode_access_bits(conds)) == conds
    assert access.decode_access_bits(mifare.TRANSPORT_ACCESS) == [(0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 1)]
    with raises(ValueError):
        access.decode_access_bits(bytes([0xFF, 0xFF, 0xFF]))
    assert access.data_allowed((1, 0, 0), "write", "B") and not access.data_allowed((1, 0, 0), "write", "A")


def test_sync_wire_format():
    records = [bytes.fromhex(c["hex"]) for c in V["records"]]
    assert wire.decode_batch(wire.encode_batch(records)) == records
    for bad in (b"", b"\x02", b"\x01\x00", b"\x01\x00\x05ab"):
        with raises(wire.SyncError):
            wire.decode_batch(bad)
    assert wire.decode_ack(wire.encode_ack(42)) == 42
    for bad in (b"{}", b"nope", b'{"acked": -1}', b'{"acked": 1.5}', b'{"acked": "3"}'):
        with raises(wire.SyncError):
            wire.decode_ack(bad)
    assert wire.device_of(wire.records_topic("hh-1")) == "hh-1"


def test_downlink_wire_format():
    assert dl.kind_of(dl.topic("hh-1", dl.HOTLIST)) == "hotlist" and dl.kind_of("terminals/hh-1/down/ack") == ""
    cards = [["9000000000000042", "lost"], ["9000000000000059", ""]]
    assert dl.decode_hotlist(dl.encode_hotlist(3, 9, cards)) == (3, 9, cards)
    actions = [[7, "9000000000000042", 2, "topup", 1500, 0, -1], [8, "9000000000000042", 3, "tier", 0, 0, 2]]
    assert dl.decode_actions(dl.encode_actions(6, 8, actions)) == (6, 8, actions)
    assert dl.decode_prices(json.dumps(V["price_list"]).encode()).version == 42
    bad = (
        (dl.decode_hotlist, b"nope"),
        (dl.decode_hotlist, b'{"from": 5, "to": 4, "cards": []}'),
        (dl.decode_hotlist, b'{"from": 0, "to": 1, "cards": [["12", "lost"]]}'),
        (dl.decode_actions, b'{"from": 0, "to": 1, "actions": [[1, "9000000000000042", 1, "gift", 1, 0, -1]]}'),
        (dl.decode_actions, b'{"from": 0, "to": 1, "actions": [[2, "9000000000000042", 1, "topup", 1, 0, -1]]}'),
        (dl.decode_actions, b'{"from": 0, "to": 1, "actions": [[1, "9000000000000042", 1, "topup", 1.5, 0, -1]]}'),
        (dl.decode_prices, b'{"version": 0, "items": []}'),
        (dl.decode_prices, b"\xff"),
    )
    for decode, payload in bad:
        with raises(wire.SyncError) as caught:
            decode(payload)
        assert caught.value is not None and getattr(caught.value, "code", "").startswith("bad_"), payload
