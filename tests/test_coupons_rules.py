"""The coupon rules: the worked examples of docs/coupons.md, the record fields, the hub's recompute, bad templates."""

import re
from pathlib import Path

import pytest

from hub.coupons import CouponError, check_template, parse_day
from protocol import coupon as cp
from protocol import record as rec
from protocol.pricing import PriceList, PricingError, quote
from protocol.salecheck import recompute
from simulator.shop import PRICE_LIST

DOC = Path(__file__).resolve().parent.parent / "docs" / "coupons.md"
KINDS = {"fixed": 1, "percent": 2, "gift": 3}


def examples() -> list[list[str]]:
    """The rows of the worked examples table in docs/coupons.md."""
    text = DOC.read_text().split("## Worked examples", 1)[1]
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if re.match(r"\| [A-Z] \|", line)]


def coupon_of(text: str) -> list[int]:
    """'fixed 300 min 2000' -> [1, kind, value, min_spend, 0, 0xFFFF]."""
    words = text.split()
    least = int(words[3]) if len(words) > 3 else 0
    return [1, KINDS[words[0]], int(words[1]), least, 0, 0xFFFF]


def test_the_worked_examples_of_the_doc():
    prices = PriceList(PRICE_LIST)
    rows = examples()
    assert [r[0] for r in rows] == ["A", "B", "C", "D", "E"]
    for name, tier, lines, coupon, subtotal, discount, before, value, total in rows:
        items = [(int(i), int(q)) for q, i in (w.split("x") for w in lines.split())]
        q = quote(prices, items, int(tier))
        assert (q["subtotal"], q["discount"], q["total"]) == (int(subtotal), int(discount), int(before)), name
        if value.startswith("refused: "):
            with pytest.raises(PricingError) as err:
                cp.apply(prices, q, coupon_of(coupon))
            assert err.value.message == value.removeprefix("refused: "), name
            continue
        out = cp.apply(prices, q, coupon_of(coupon))
        assert (out["coupon_value"], out["total"]) == (int(value.split()[0]), int(total)), name
        if "line" in value:
            assert out["lines"][-1] == {"item": int(value.split("line ")[1].split()[0]), "qty": 1, "price": 0}


def test_validity_and_use_are_refused_with_the_reason():
    prices = PriceList(PRICE_LIST)
    q = quote(prices, [(101, 1)], 0)
    c = [7, 1, 100, 0, 100, 110]
    for ext, day, why in ((None, 111, "Coupon expired"), (None, 99, "Coupon not valid yet"),
                          (cp.mark(None, 1, 7), 105, "Coupon used")):
        with pytest.raises(PricingError) as err:
            cp.apply(prices, q, c, ext, 1, day)
        assert err.value.message == why
    assert cp.apply(prices, q, c, cp.mark(None, 0, 7), 1, 110)["total"] == 150  # another slot's mark: not this one
    with pytest.raises(PricingError, match="Gift not on price list"):
        cp.apply(prices, q, [8, 3, 999, 0, 0, 1])


def sale_record(coupon=None) -> dict:
    prices = PriceList(PRICE_LIST)
    q = quote(prices, [(102, 2), (401, 1)], 2)
    if coupon:
        q = cp.apply(prices, q, coupon)
    total = q["total"]
    out = {"kind": "sale", "seq": 5, "time": 1790000000, "device": "hh-1", "card_no": "9000000000000001", "uid": "a1b2c3d4",
           "counter_before": 3, "counter_after": 4, "member_id": 1, "tier": 2, "discount_bps": 1250,
           "price_list_version": 1, "firmware": "0.1.0", "lines": q["lines"], "subtotal": q["subtotal"],
           "discount": q["discount"], "total": total, "points_redeemed": 0, "points_value": 0, "stored_value": total,
           "cash": 0, "points_earned": 4, "balance_after": 10000 - total, "points_after": 4}
    if coupon:
        out["coupon"], out["coupon_value"] = q["coupon"], q["coupon_value"]
    return out


def test_a_sale_names_its_coupon_and_a_sale_without_one_encodes_as_before():
    plain = sale_record()
    data = rec.encode(plain)
    assert rec.decode(data) == plain and "coupon" not in rec.decode(data)
    used = sale_record([12, 2, 1500, 0, 0, 0xFFFF])
    more = rec.encode(used)
    assert len(more) == len(data) + 8 and rec.decode(more) == used
    assert (used["coupon"], used["coupon_value"], used["total"]) == (12, 84, 2476)


def test_the_hub_recompute_uses_the_coupon_it_issued():
    prices = PriceList(PRICE_LIST)
    terms = [12, 2, 1500, 0, 0, 0xFFFF]
    used = sale_record(terms)
    used["points_earned"] = 24
    assert recompute(prices, used, terms) == []
    assert ("coupon_value", 84, 80) in recompute(prices, used, [12, 2, 1429, 0, 0, 0xFFFF])  # the card claimed more
    assert ("coupon", 12, "no such coupon") in recompute(prices, used, None)
    gift = sale_record([13, 3, 103, 0, 0, 0xFFFF])
    gift["points_earned"] = 25  # 2560 paid
    assert recompute(prices, gift, [13, 3, 103, 0, 0, 0xFFFF]) == []
    assert ("item of a line", 103, 101) in recompute(prices, gift, [13, 3, 101, 0, 0, 0xFFFF])


@pytest.mark.parametrize("kind, value, least, days, starts, ends, words", [
    ("voucher", 100, 0, 30, "", "", "kind must be one of fixed, percent, gift"),
    ("fixed", -100, 0, 30, "", "", "value must be a whole number of 0 or more"),
    ("fixed", 300, -1, 30, "", "", "min_spend must be a whole number of 0 or more"),
    ("percent", 10001, 0, 30, "", "", "basis points from 1 to 10000 (100 %)"),
    ("percent", 1500, 0, 0, "", "", "valid_days must be from 1 to 3660"),
    ("fixed", 300, 0, 30, "2025-06-10", "2025-06-01", "ends 2025-06-01 is before starts 2025-06-10"),
])
def test_bad_templates_are_refused_with_the_reason(kind, value, least, days, starts, ends, words):
    with pytest.raises(CouponError) as err:
        check_template(kind, value, least, days, parse_day(starts), parse_day(ends))
    assert err.value.code == "bad_template" and words in err.value.message
