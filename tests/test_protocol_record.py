"""Records: decode(encode(x)) == x, and any other bytes give a typed error, never a crash."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import record

V = json.loads((Path(__file__).parent / "vectors" / "protocol.json").read_text())
SALE = V["records"][0]["record"]

u32 = st.integers(0, 2**32 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
text = st.text(max_size=40)
lines = st.lists(st.fixed_dictionaries({"item": u32, "qty": st.integers(0, 65535), "price": i32}), max_size=30)

sales = st.fixed_dictionaries(
    {
        "kind": st.just("sale"), "seq": u32, "time": u32, "device": text,
        "card_no": st.integers(0, 10**16 - 1).map(lambda n: f"{n:016d}"),
        "uid": st.binary(min_size=4, max_size=10).map(bytes.hex),
        "counter_before": u32, "counter_after": u32, "member_id": u32, "tier": st.integers(0, 255),
        "discount_bps": st.integers(0, 65535), "price_list_version": u32, "firmware": text, "lines": lines,
        "subtotal": i32, "discount": i32, "total": i32, "points_redeemed": u32, "points_value": i32,
        "stored_value": i32, "cash": i32, "points_earned": u32, "balance_after": i32, "points_after": u32,
    }
)
outcomes = st.fixed_dictionaries(
    {"kind": st.just("outcome"), "seq": u32, "time": u32, "device": text, "ref": u32,
     "result": st.sampled_from(["committed", "voided", "unknown"]), "reason": text}
)
events = st.fixed_dictionaries(
    {"kind": st.just("event"), "seq": u32, "time": u32, "device": text, "code": text,
     "message": st.text(max_size=60), "uid": st.binary(max_size=10).map(bytes.hex)}
)


@given(st.one_of(sales, outcomes, events))
def test_decode_encode_round_trip(rec):
    assert record.decode(record.encode(rec)) == rec


@given(st.binary(max_size=300))
def test_random_bytes_give_a_typed_error(data):
    try:
        record.decode(data)
    except record.RecordError as exc:
        assert exc.code in ("truncated", "bad_checksum", "unknown_version", "unknown_kind", "bad_field")


@given(st.integers(0, len(bytes.fromhex(V["records"][0]["hex"])) - 1))
def test_every_truncation_is_refused(cut):
    with pytest.raises(record.RecordError):
        record.decode(bytes.fromhex(V["records"][0]["hex"])[:cut])


@given(st.integers(0, 128 * 8 - 1))
def test_every_single_bit_flip_is_caught(bit):
    data = bytearray(bytes.fromhex(V["records"][0]["hex"]))
    data[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(record.RecordError):
        record.decode(bytes(data))


def test_encode_refuses_values_that_do_not_fit():
    with pytest.raises(record.RecordError) as err:
        record.encode(dict(SALE, seq=2**32))
    assert err.value.code == "bad_field"
    with pytest.raises(record.RecordError):
        record.encode(dict(SALE, card_no="12"))
    with pytest.raises(record.RecordError):
        record.encode(dict(SALE, kind="refund"))
    with pytest.raises(record.RecordError) as err:
        record.encode(dict(SALE, uid="not hex"))
    assert "uid" in str(err.value)


def test_long_event_messages_are_clipped_not_refused():
    rec = {"kind": "event", "seq": 1, "time": 0, "device": "d", "code": "x", "message": "é" * 300, "uid": ""}
    out = record.decode(record.encode(rec))
    assert out["message"] == "é" * 100
