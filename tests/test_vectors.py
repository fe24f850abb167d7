"""protocol/ reproduces every test vector in tests/vectors/protocol.json (see docs/protocol.md)."""

import json
from pathlib import Path

import pytest

from protocol import card, pricing, record
from protocol.crypto import crc32, hmac_sha256

V = json.loads((Path(__file__).parent / "vectors" / "protocol.json").read_text())
MASTER = bytes.fromhex(V["master_key"])
UID = bytes.fromhex(V["uid"])


@pytest.mark.parametrize("case", V["hmac_sha256"], ids=lambda c: c["source"])
def test_hmac_matches_rfc_4231(case):
    assert hmac_sha256(bytes.fromhex(case["key"]), bytes.fromhex(case["msg"])).hex() == case["mac"]


def test_crc32_check_values():
    for case in V["crc32"]:
        assert crc32(bytes.fromhex(case["data"])) == case["crc"]


@pytest.mark.parametrize("case", V["round_half_up"], ids=lambda c: c["why"])
def test_rounding_rule(case):
    assert pricing.apply_bps(case["amount"], case["bps"]) == case["share"]


def test_quote_and_settle():
    pl = pricing.PriceList(V["price_list"])
    q = V["quote"]
    assert pricing.quote(pl, [tuple(line) for line in q["lines"]], q["tier"]) == q["result"]
    s = V["settle"]
    assert pricing.settle(pl, s["total"], s["balance"], s["points"], s["redeem_points"], s["use_stored_value"]) == s["result"]


def test_key_diversification():
    assert card.mac_key(MASTER, UID).hex() == V["keys"]["mac_key"]
    for sector, keys in V["keys"]["sectors"].items():
        assert [k.hex() for k in card.sector_keys(MASTER, UID, int(sector))] == keys


@pytest.mark.parametrize("name", ["identity", "identity_blocked"])
def test_identity_blocks(name):
    ident = V[name]["ident"]
    blocks = [bytes.fromhex(b) for b in V[name]["blocks"]]
    assert card.encode_identity(MASTER, UID, ident) == blocks
    assert card.decode_identity(MASTER, UID, blocks) == ident


def test_purse_blocks():
    p = V["purse"]
    blocks = [bytes.fromhex(b) for b in p["blocks"]]
    assert card.encode_purse(MASTER, UID, p["card_no"], p["copy"], p["purse"]) == blocks
    assert card.decode_purse(MASTER, UID, p["card_no"], p["copy"], blocks) == p["purse"]


def test_issue_writes():
    i = V["issue_writes"]
    writes = card.issue_writes(MASTER, UID, i["ident"], i["balance"], i["points"])
    assert [[b, d.hex()] for b, d in writes] == i["writes"]


@pytest.mark.parametrize("case", V["records"], ids=lambda c: c["record"]["kind"])
def test_records(case):
    assert record.encode(case["record"]).hex() == case["hex"]
    assert record.decode(bytes.fromhex(case["hex"])) == case["record"]


@pytest.mark.parametrize("case", V["bad_records"], ids=lambda c: c["why"])
def test_bad_records(case):
    with pytest.raises(record.RecordError) as err:
        record.decode(bytes.fromhex(case["hex"]))
    assert err.value.code == case["error"]
