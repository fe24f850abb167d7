"""Price lists, tier discounts, points and the payment split; all integer cents.

The one rounding rule: a share of an amount (a discount in basis points) is
rounded half up to the whole cent, once, on the sale's discountable subtotal.
Points are never rounded up: a member earns whole points for whole units paid.
"""

MAX_QTY = 999
MAX_LINES = 30
BPS = 10000  # basis points in 100 %


class PricingError(ValueError):
    """A price list or a sale that the rules refuse; .code names the reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, for numerator >= 0, denominator > 0."""
    return (2 * numerator + denominator) // (2 * denominator)


def apply_bps(amount: int, bps: int) -> int:
    """The share bps/10000 of amount cents, by the one rounding rule."""
    return round_half_up(amount * bps, BPS)


def _int_field(doc: dict, key: str, where: str, lo: int, hi: int) -> int:
    if not isinstance(doc, dict):
        raise PricingError("bad_price_list", "%s must be an object, got %r" % (where, doc))
    value = doc.get(key)
    if type(value) is not int or value < lo or value > hi:
        raise PricingError(
            "bad_price_list", "%s: %s must be a whole number from %d to %d, got %r" % (where, key, lo, hi, value)
        )
    return value


def _list(doc: dict, key: str) -> list:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise PricingError("bad_price_list", "price list: %s must be a list" % key)
    return value


class PriceList:
    """A validated, versioned price list with its tier discounts and points rule."""

    def __init__(self, doc: dict):
        if not isinstance(doc, dict):
            raise PricingError("bad_price_list", "price list must be an object")
        self.version = _int_field(doc, "version", "price list", 1, 0xFFFFFFFF)
        self.currency = str(doc.get("currency", "EUR"))
        self.items = {}  # type: dict[int, dict]
        for item in _list(doc, "items"):
            where = "item %r" % (item.get("id") if isinstance(item, dict) else item)
            if not isinstance(item, dict):
                raise PricingError("bad_price_list", where + ": must be an object")
            item_id = _int_field(item, "id", where, 1, 0xFFFFFFFF)
            if item_id in self.items:
                raise PricingError("bad_price_list", "%s: listed twice" % where)
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise PricingError("bad_price_list", where + ": name must be a non-empty string")
            self.items[item_id] = {
                "id": item_id,
                "name": name,
                "price": _int_field(item, "price", where, 0, 10000000),
                "category": str(item.get("category", "")),
                "discountable": item.get("discountable", True) is not False,
            }
        if not self.items:
            raise PricingError("bad_price_list", "price list has no items")
        self.tiers = {}  # type: dict[int, dict]
        for tier in _list(doc, "tiers") or [{"tier": 0, "name": "Member", "discount_bps": 0}]:
            number = _int_field(tier, "tier", "tier", 0, 255)
            self.tiers[number] = {
                "tier": number,
                "name": str(tier.get("name", "Tier %d" % number)),
                "discount_bps": _int_field(tier, "discount_bps", "tier %d" % number, 0, BPS),
            }
        points = doc.get("points") or {}
        self.earn_per_100 = _int_field(points, "earn_per_100", "points", 0, 1000) if points else 1
        self.point_value = _int_field(points, "point_value", "points", 1, 10000) if points else 1

    def item(self, item_id: int) -> dict:
        """The item with this id, or PricingError('unknown_item')."""
        found = self.items.get(item_id)
        if found is None:
            raise PricingError("unknown_item", "item %r is not on price list v%d" % (item_id, self.version))
        return found

    def discount_bps(self, tier: int) -> int:
        """The tier's discount; an unknown tier gets none rather than refusing the member."""
        found = self.tiers.get(tier)
        return found["discount_bps"] if found else 0

    def tier_name(self, tier: int) -> str:
        found = self.tiers.get(tier)
        return found["name"] if found else "Tier %d" % tier


def quote(price_list: PriceList, lines: list, tier: int) -> dict:
    """Price [(item_id, qty), ...] for a member of tier: lines, subtotal, discount, total."""
    if not lines:
        raise PricingError("empty_sale", "a sale needs at least one item")
    if len(lines) > MAX_LINES:
        raise PricingError("too_many_lines", "a sale holds at most %d lines" % MAX_LINES)
    priced = []
    subtotal = 0
    discountable = 0
    for item_id, qty in lines:
        if type(qty) is not int or qty < 1 or qty > MAX_QTY:
            raise PricingError("bad_quantity", "quantity must be 1 to %d, got %r" % (MAX_QTY, qty))
        item = price_list.item(item_id)
        amount = item["price"] * qty
        priced.append({"item": item_id, "qty": qty, "price": item["price"]})
        subtotal += amount
        if item["discountable"]:
            discountable += amount
    bps = price_list.discount_bps(tier)
    discount = apply_bps(discountable, bps)
    return {
        "lines": priced,
        "subtotal": subtotal,
        "discount_bps": bps,
        "discount": discount,
        "total": subtotal - discount,
    }


def settle(price_list: PriceList, total: int, balance: int, points: int, redeem_points: int, use_stored_value: bool) -> dict:
    """Split total into points, stored value and cash; points earned on what is paid.

    Points go first (never worth more than the total), then stored value up to
    the balance when the member pays by card, then cash for the rest.
    """
    if redeem_points < 0 or redeem_points > points:
        raise PricingError("not_enough_points", "cannot redeem %d points, card holds %d" % (redeem_points, points))
    redeem_points = min(redeem_points, total // price_list.point_value)
    points_value = redeem_points * price_list.point_value
    due = total - points_value
    stored_value = min(balance, due) if use_stored_value else 0
    cash = due - stored_value
    paid = stored_value + cash
    earned = paid * price_list.earn_per_100 // 100
    return {
        "points_redeemed": redeem_points,
        "points_value": points_value,
        "stored_value": stored_value,
        "cash": cash,
        "points_earned": earned,
        "balance_after": balance - stored_value,
        "points_after": points - redeem_points + earned,
    }


def format_money(cents: int) -> str:
    """12345 -> '123.45' (no currency sign; the display and reports add it)."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return "%s%d.%02d" % (sign, cents // 100, cents % 100)


def verify_sale(price_list: PriceList, sale: dict, balance_before: int, points_before: int) -> list:
    """What is wrong with a sale record under the rules (empty when it is right)."""
    problems = []
    try:
        expected = quote(price_list, [(line["item"], line["qty"]) for line in sale["lines"]], sale["tier"])
    except PricingError as exc:
        return [exc.message]
    for key in ("subtotal", "discount_bps", "discount", "total"):
        if sale[key] != expected[key]:
            problems.append("%s is %d, the rules give %d" % (key, sale[key], expected[key]))
    for got, want in zip(sale["lines"], expected["lines"]):
        if got["price"] != want["price"]:
            problems.append("item %d priced %d, list says %d" % (got["item"], got["price"], want["price"]))
    paid = sale["stored_value"] + sale["cash"]
    checks = (
        ("points_value", sale["points_redeemed"] * price_list.point_value),
        ("total", paid + sale["points_value"]),
        ("points_earned", paid * price_list.earn_per_100 // 100),
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
