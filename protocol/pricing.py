"""Price lists, tier discounts, points and the payment split; all integer cents.

The one rounding rule: a share of an amount (a discount in basis points) is
rounded half up to the whole cent, once, on the sale's discountable subtotal.
Points are never rounded up: a member earns whole points for whole units paid
(earn_points says how, in one integer expression).

The price list is the versioned rule set a sale names (price_list_version): prices,
tier discounts and points multipliers, the points rate, the categories that earn
no points and what a point is worth. docs/loyalty.md has worked examples.
"""

MAX_QTY = 999
MAX_LINES = 30
BPS = 10000  # basis points in 100 %
MAX_POINTS_BPS = 10 * BPS  # a tier earns at most x10


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
        # Each item and tier as a tuple of what the rules use: a dict each would take the handheld ~4x the heap.
        self.items = {}  # type: dict[int, tuple]  # id -> (price, discountable, category)
        for item in _list(doc, "items"):
            where = "item %r" % (item.get("id") if isinstance(item, dict) else item)
            if not isinstance(item, dict):
                raise PricingError("bad_price_list", where + ": must be an object")
            item_id = _int_field(item, "id", where, 1, 0xFFFFFFFF)
            if item_id in self.items:
                raise PricingError("bad_price_list", "%s: listed twice" % where)
            name = item.get("name")  # checked, not kept: the handheld shows no item names
            if not isinstance(name, str) or not name:
                raise PricingError("bad_price_list", where + ": name must be a non-empty string")
            self.items[item_id] = (
                _int_field(item, "price", where, 0, 10000000),
                item.get("discountable", True) is not False,
                str(item.get("category", "")),
            )
        if not self.items:
            raise PricingError("bad_price_list", "price list has no items")
        self.tiers = {}  # type: dict[int, tuple]  # number -> (name, discount_bps, points_bps)
        for tier in _list(doc, "tiers") or [{"tier": 0, "name": "Member", "discount_bps": 0}]:
            number = _int_field(tier, "tier", "tier", 0, 255)
            where = "tier %d" % number
            self.tiers[number] = (
                str(tier.get("name", "Tier %d" % number)),
                _int_field(tier, "discount_bps", where, 0, BPS),
                # Lists published before multipliers existed earn x1.
                _int_field(tier, "points_bps", where, 0, MAX_POINTS_BPS) if "points_bps" in tier else BPS,
            )
        points = doc.get("points") or {}
        self.earn_per_100 = _int_field(points, "earn_per_100", "points", 0, 1000) if points else 1
        self.point_value = _int_field(points, "point_value", "points", 1, 10000) if points else 1
        # The categories that earn no points: names some item of the list has, each once.
        self.excluded = points.get("excluded") or []  # type: list[str]
        known = [item[2] for item in self.items.values()]
        for n, name in enumerate(self.excluded if isinstance(self.excluded, list) else [None]):
            if name not in known or name in self.excluded[:n]:  # also refuses '' and what is not text
                raise PricingError("bad_price_list", "points: excluded must list item categories, each once: %r" % (name,))

    def item(self, item_id: int) -> tuple:
        """(price, discountable, category) of the item with this id, or PricingError('unknown_item')."""
        found = self.items.get(item_id)
        if found is None:
            raise PricingError("unknown_item", "item %r is not on price list v%d" % (item_id, self.version))
        return found

    def discount_bps(self, tier: int) -> int:
        """The tier's discount; an unknown tier gets none rather than refusing the member."""
        found = self.tiers.get(tier)
        return found[1] if found else 0

    def tier_name(self, tier: int) -> str:
        found = self.tiers.get(tier)
        return found[0] if found else "Tier %d" % tier


def quote(price_list: PriceList, lines: list, tier: int) -> dict:
    """Price [(item_id, qty), ...] for a member of tier: lines, subtotal, discount, total."""
    if not lines:
        raise PricingError("empty_sale", "a sale needs at least one item")
    if len(lines) > MAX_LINES:
        raise PricingError("too_many_lines", "a sale holds at most %d lines" % MAX_LINES)
    priced = []
    subtotal = 0
    discountable = 0
    excluded = 0
    for item_id, qty in lines:
        if type(qty) is not int or qty < 1 or qty > MAX_QTY:
            raise PricingError("bad_quantity", "quantity must be 1 to %d, got %r" % (MAX_QTY, qty))
        price, can_discount, category = price_list.item(item_id)
        amount = price * qty
        priced.append({"item": item_id, "qty": qty, "price": price})
        subtotal += amount
        if can_discount:
            discountable += amount
        if category in price_list.excluded:
            excluded += amount
    bps = price_list.discount_bps(tier)
    discount = apply_bps(discountable, bps)
    out = {
        "lines": priced,
        "subtotal": subtotal,
        "discount_bps": bps,
        "discount": discount,
        "total": subtotal - discount,
    }
    if excluded:  # the cents of lines that earn no points (earn_points); absent when none
        out["excluded"] = excluded
    return out


def earn_points(price_list: PriceList, paid: int, total: int, excluded: int, tier: int) -> int:
    """Points earned on paid cents (stored value + cash) of a sale of total, excluded of it in no-points categories.

    Money earns up to the value of the goods that earn: base = min(paid, total - excluded),
    excluded at list price. points = floor(base * earn_per_100 * multiplier_bps / (100 * 10000)).
    """
    base = min(paid, max(0, total - excluded))
    found = price_list.tiers.get(tier)  # an unknown tier earns x1
    return base * price_list.earn_per_100 * (found[2] if found else BPS) // (100 * BPS)


def settle(price_list: PriceList, total: int, balance: int, points: int, redeem_points: int, use_stored_value: bool,
           tier: int = -1, excluded: int = 0) -> dict:
    """Split total into points, stored value and cash; points earned on what is paid (earn_points).

    Points go first (never worth more than the total), then stored value up to
    the balance when the member pays by card, then cash for the rest. tier and
    excluded come from the quote (tier -1: no multiplier).
    """
    if redeem_points < 0 or redeem_points > points:
        raise PricingError("not_enough_points", "cannot redeem %d points, card holds %d" % (redeem_points, points))
    redeem_points = min(redeem_points, total // price_list.point_value)
    points_value = redeem_points * price_list.point_value
    due = total - points_value
    stored_value = min(balance, due) if use_stored_value else 0
    cash = due - stored_value
    paid = stored_value + cash
    earned = earn_points(price_list, paid, total, excluded, tier)
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
