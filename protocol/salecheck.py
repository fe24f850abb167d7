"""Recompute a sale record under the rules it names: what the hub checks of every synced sale.

Apart from pricing.py because the handheld never runs it: each module the handheld
imports costs it heap (tests/test_budget.py), and protocol/ ships whole anyway.
"""

from protocol import coupon as cp
from protocol.pricing import PriceList, PricingError, earn_points, quote


def recompute(price_list: PriceList, sale: dict, coupon=None) -> list:
    """[(field, recorded, the rules' figure)] for each figure of a sale record the rules give otherwise.

    The payment choices (points redeemed, stored value, cash) are the member's; what
    follows from them is checked: their sum, what the points paid, the points earned,
    and that cash was paid beside stored value only once the card was emptied. A sale
    naming a coupon is priced with coupon ([id, kind, value, min_spend, from, until],
    the hub's terms; None: unknown), its gift line last.
    """
    lines = sale["lines"]
    used = sale.get("coupon", 0)
    if used and coupon is not None and coupon[1] == cp.GIFT:
        lines = lines[:-1]
    try:
        expected = quote(price_list, [(line["item"], line["qty"]) for line in lines], sale["tier"])
        if used and coupon is not None:
            expected = cp.apply(price_list, expected, coupon)
    except PricingError as exc:
        return [("lines", len(sale["lines"]), exc.message)]
    out = []  # type: list
    if used and (coupon is None or coupon[0] != used):
        out.append(("coupon", used, "no such coupon"))
    if len(expected["lines"]) != len(sale["lines"]):
        out.append(("lines", len(sale["lines"]), len(expected["lines"])))
    for got, want in zip(sale["lines"], expected["lines"]):
        if got["item"] != want["item"]:
            out.append(("item of a line", got["item"], want["item"]))
        elif got["price"] != want["price"]:
            out.append(("price of item %d" % got["item"], got["price"], want["price"]))
    paid = sale["stored_value"] + sale["cash"]
    figures = (
        ("subtotal", expected["subtotal"]),
        ("discount_bps", expected["discount_bps"]),
        ("discount", expected["discount"]),
        ("coupon_value", expected.get("coupon_value", 0)),
        ("total", expected["total"]),
        ("points_value", sale["points_redeemed"] * price_list.point_value),
        ("points_earned", earn_points(price_list, paid, expected["total"], expected.get("excluded", 0), sale["tier"])),
    )
    for key, want in figures:
        if key in sale and sale[key] != want:
            out.append((key, sale[key], want))
    if paid + sale["points_value"] != sale["total"]:
        out.append(("points_value + stored_value + cash", paid + sale["points_value"], sale["total"]))
    if sale["points_value"] > sale["total"] or sale["points_redeemed"] > sale["total"] // price_list.point_value:
        out.append(("points_redeemed", sale["points_redeemed"], sale["total"] // price_list.point_value))
    if sale["cash"] > 0 and sale["stored_value"] > 0 and sale["balance_after"] != 0:
        out.append(("balance_after (card and cash)", sale["balance_after"], 0))
    return out


def verify_sale(price_list: PriceList, sale: dict, balance_before: int, points_before: int) -> list:
    """What is wrong with a sale record under the rules (empty when it is right)."""
    problems = ["%s is %s, the rules give %s" % d for d in recompute(price_list, sale)]
    checks = (
        ("balance_after", balance_before - sale["stored_value"]),
        ("points_after", points_before - sale["points_redeemed"] + sale["points_earned"]),
        ("counter_after", sale["counter_before"] + 1),
    )
    for key, want in checks:
        if sale[key] != want:
            problems.append("%s is %d, the rules give %d" % (key, sale[key], want))
    if sale["stored_value"] > balance_before or sale["points_redeemed"] > points_before:
        problems.append("paid more stored value or points than the card held")
    if min(sale["stored_value"], sale["cash"], sale["points_redeemed"]) < 0:
        problems.append("negative payment")
    return problems
