"""What the display shows in each sale state: pure functions of the flow's context."""

from firmware import sale
from protocol.pricing import format_money

WIDTH = 21  # characters on one line of the 128x64 display


def _fit(text: str) -> str:
    return text[:WIDTH]


def _card_tail(card: dict) -> str:
    return "..." + card["ident"]["card_no"][-4:]


def render(state: str, ctx: dict, info: dict) -> list:
    """Up to four lines for state; info holds terminal facts (prices version, backlog)."""
    if state == sale.IDLE:
        lines = ["Ready", "Tap member card", "Prices v%s" % info.get("prices", "-"), "Queue %d" % info.get("backlog", 0)]
        if info.get("notice"):
            lines[0] = info["notice"]
    elif state == sale.CARD_READ:
        lines = ["Reading card..."]
    elif state == sale.ITEMS:
        card = ctx["card"]
        purse = card["purse"]
        lines = [
            "%s %s" % (_card_tail(card), ctx.get("tier_name", "")),
            "Bal %s Pts %d" % (format_money(purse["balance"]), purse["points"]),
            "%d items %s" % (sum([q for _i, q in ctx["lines"]]), format_money(ctx.get("subtotal", 0))),
            ctx.get("message") or "Item: %s_" % ctx.get("entry", ""),
        ]
    elif state == sale.CONFIRM:
        quote = ctx["quote"]
        split = ctx["split"]
        if ctx.get("message"):  # the lease does not allow the stored value (terminal._commit)
            lines = ["Total %s" % format_money(quote["total"]), "Network needed:", ctx["message"], "CASH: pay cash"]
            return [_fit(line) for line in lines]
        # The coupon staff picked: what it takes off, or (a text instead of cents) why the card refuses it.
        off = quote.get("coupon_value")
        lines = [
            "Total %s" % format_money(quote["total"]),
            "Disc %s Pts -%d" % (format_money(quote["discount"]), split["points_redeemed"]),
            "Card %s Cash %s" % (format_money(split["stored_value"]), format_money(split["cash"])),
            "OK pay  CANCEL back" if off is None else off if isinstance(off, str) else "Coupon -" + format_money(off),
        ]
    elif state in (sale.CARD_WRITTEN, sale.JOURNALED):
        lines = ["Writing card...", "Keep card on reader"]
    elif state == sale.RECEIPT:
        lines = ctx.get("receipt") or ["Done"]
    elif state == sale.UNFINISHED:
        lines = ["Card removed!", "Tap card %s" % _card_tail(ctx["card"]), "to finish the sale", "CANCEL: leave to HQ"]
    elif state == sale.CANCELLED:
        lines = ["Sale cancelled", "", "Press any key"]
    else:
        error = ctx.get("error", "")
        # A message with a line break is laid out by its author ("Card blocked:\nreported lost").
        said = error.split("\n") if "\n" in error else [error[:WIDTH], error[WIDTH : 2 * WIDTH]]
        lines = ["Error"] + said[:2] + ["Press any key"]
    return [_fit(line) for line in lines]


def receipt(record: dict) -> list:
    """The receipt of a committed sale."""
    return [
        "PAID %s #%d" % (format_money(record["total"]), record["seq"]),
        "Card %s Cash %s" % (format_money(record["stored_value"]), format_money(record["cash"])),
        "Pts +%d -%d" % (record["points_earned"], record["points_redeemed"]),
        "Bal %s Pts %d" % (format_money(record["balance_after"]), record["points_after"]),
    ]
