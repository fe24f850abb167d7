"""Pricing: integer cents, one rounding rule, points and the payment split."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.pricing import PriceList, PricingError, apply_bps, format_money, quote, settle
from protocol.salecheck import verify_sale

DOC = {
    "version": 3,
    "items": [
        {"id": 1, "name": "Tea", "price": 199},
        {"id": 2, "name": "Voucher", "price": 1000, "discountable": False},
    ],
    "tiers": [{"tier": 1, "name": "Silver", "discount_bps": 500}],
    "points": {"earn_per_100": 1, "point_value": 1},
}


def test_unknown_item_is_refused_by_name():
    with pytest.raises(PricingError) as err:
        quote(PriceList(DOC), [(99, 1)], 0)
    assert err.value.code == "unknown_item"
    assert "99" in str(err.value) and "v3" in str(err.value)


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"version": 0, "items": [{"id": 1, "name": "x", "price": 1}]}, "version"),
        ({"version": 1, "items": []}, "no items"),
        ({"version": 1, "items": [{"id": 1, "name": "x", "price": 1.5}]}, "price"),
        ({"version": 1, "items": [{"id": 1, "name": "x", "price": -1}]}, "price"),
        ({"version": 1, "items": [{"id": 1, "name": "x", "price": 1}, {"id": 1, "name": "y", "price": 2}]}, "twice"),
        ({"version": 1, "items": [{"id": 1, "name": "", "price": 1}]}, "name"),
    ],
)
def test_bad_price_lists_say_what_is_wrong(doc, words):
    with pytest.raises(PricingError) as err:
        PriceList(doc)
    assert words in str(err.value)


def test_discount_applies_to_discountable_items_only():
    q = quote(PriceList(DOC), [(1, 3), (2, 1)], 1)
    assert q["subtotal"] == 1597
    assert q["discount"] == 30  # 5 % of 597 = 29.85 -> 30
    assert q["total"] == 1567


def test_unknown_tier_gets_no_discount():
    assert quote(PriceList(DOC), [(1, 1)], 7)["discount"] == 0


def test_payment_split_points_then_stored_value_then_cash():
    s = settle(PriceList(DOC), total=1000, balance=300, points=50, redeem_points=50, use_stored_value=True)
    assert (s["points_value"], s["stored_value"], s["cash"]) == (50, 300, 650)
    assert s["points_earned"] == 9  # 950 paid -> 9 whole points
    assert s["balance_after"] == 0 and s["points_after"] == 9


def test_points_never_pay_more_than_the_total():
    s = settle(PriceList(DOC), total=20, balance=0, points=500, redeem_points=500, use_stored_value=True)
    assert s["points_redeemed"] == 20 and s["cash"] == 0 and s["points_after"] == 480


def test_cannot_redeem_points_the_card_lacks():
    with pytest.raises(PricingError):
        settle(PriceList(DOC), total=100, balance=0, points=5, redeem_points=6, use_stored_value=True)


@pytest.mark.parametrize("qty", [0, -1, 1000, 1.0])
def test_bad_quantities(qty):
    with pytest.raises(PricingError):
        quote(PriceList(DOC), [(1, qty)], 0)


def test_format_money():
    assert [format_money(c) for c in (0, 5, 100, 123456, -250)] == ["0.00", "0.05", "1.00", "1234.56", "-2.50"]


@given(
    lines=st.lists(st.tuples(st.sampled_from([1, 2]), st.integers(1, 999)), min_size=1, max_size=30),
    tier=st.integers(0, 2),
    balance=st.integers(0, 10**7),
    points=st.integers(0, 10**6),
    redeem=st.integers(0, 10**6),
    use_sv=st.booleans(),
)
def test_every_sale_balances_to_the_cent(lines, tier, balance, points, redeem, use_sv):
    pl = PriceList(DOC)
    q = quote(pl, lines, tier)
    redeem = min(redeem, points)
    s = settle(pl, q["total"], balance, points, redeem, use_sv)
    assert s["points_value"] + s["stored_value"] + s["cash"] == q["total"]
    assert all(isinstance(v, int) and v >= 0 for v in s.values())
    sale = dict(q, **s, tier=tier, counter_before=0, counter_after=1)
    assert verify_sale(pl, sale, balance, points) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**8) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["id", "name", "price", "tier"]), inner),
    max_leaves=12,
)


@given(
    doc=st.fixed_dictionaries(
        {"version": json_values, "items": json_values},
        optional={"tiers": json_values, "points": json_values, "currency": json_values},
    )
)
def test_any_json_is_a_price_list_or_a_clear_error(doc):
    try:
        PriceList(doc)
    except PricingError as exc:
        assert exc.code == "bad_price_list" and exc.message


def test_verify_sale_catches_a_wrong_total():
    pl = PriceList(DOC)
    q = quote(pl, [(1, 1)], 0)
    s = settle(pl, q["total"], 1000, 0, 0, True)
    sale = dict(q, **s, tier=0, counter_before=0, counter_after=1)
    sale["total"] += 1
    assert any("total" in p for p in verify_sale(pl, sale, 1000, 0))


def test_bps_is_exact_integer_math():
    assert apply_bps(10**12, 1) == 10**8
