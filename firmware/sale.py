"""The sale lifecycle as one table, and the pure decisions the sale flow makes.

idle -> card_read -> items -> confirm -> card_written -> journaled -> receipt
The sale record is journaled (pending) on the way from confirm to card_written,
before the card is touched; its outcome is journaled after. A card pulled away
mid-write leaves the sale unfinished until the card is tapped again. Card actions
from HQ are applied the same way (record, card write, outcome) right after the
card is read, before the sale goes on.
"""

IDLE = "idle"
CARD_READ = "card_read"
ITEMS = "items"
CONFIRM = "confirm"
CARD_WRITTEN = "card_written"
JOURNALED = "journaled"
RECEIPT = "receipt"
UNFINISHED = "unfinished"
CANCELLED = "cancelled"
ERROR = "error"

# state -> {event: next state}. Anything else is refused, never guessed. One line a state, "state event:next
# event:next ...": text, which stays in flash (as a dict of dicts the table took the handheld ~1 KB of heap).
TRANSITIONS = """
idle card:card_read
card_read read_ok:items refused:error resolved:receipt card_lost:unfinished
items add:items remove:items bad_item:items ok:confirm cancel:cancelled
confirm toggle:confirm back:items written:card_written card_lost:unfinished refused:error
card_written journaled:journaled
journaled printed:receipt
unfinished resolved:receipt card_lost:unfinished abandon:idle
receipt done:idle card:card_read
cancelled done:idle card:card_read
error done:idle card:card_read
"""


def next_state(state: str, event: str) -> str:
    """The state after event, by the table; ValueError for an event the state does not take (a bug)."""
    i = TRANSITIONS.find("\n%s " % state)
    line = TRANSITIONS[i : TRANSITIONS.find("\n", i + 1)] + " " if i >= 0 else ""
    j = line.find(" %s:" % event)
    if j < 0:
        raise ValueError("event %r not allowed in state %r" % (event, state))
    j += len(event) + 2
    return line[j : line.find(" ", j)]


def parse_entry(entry: str) -> tuple:
    """Keypad entry 'ITEM' or 'QTY*ITEM' -> (item_id, qty); ValueError when malformed."""
    qty = "1"
    item = entry
    if "*" in entry:
        qty, item = entry.split("*", 1)
    if not qty.isdigit() or not item.isdigit():
        raise ValueError("enter ITEM or QTY*ITEM, got %r" % entry)
    return int(item), int(qty)


def add_line(lines: list, item_id: int, qty: int) -> list:
    """Lines with qty more of item_id (a repeated item adds to its line)."""
    out = []
    merged = False
    for line_item, line_qty in lines:
        if line_item == item_id and not merged:
            out.append((line_item, line_qty + qty))
            merged = True
        else:
            out.append((line_item, line_qty))
    if not merged:
        out.append((item_id, qty))
    return out


def sale_record(card: dict, quote: dict, split: dict, price_list_version: int, firmware: str) -> dict:
    """The sale record for the journal (seq, time and device are filled in on append)."""
    purse = card["purse"]
    ident = card["ident"]
    record = {
        "kind": "sale",
        "card_no": ident["card_no"],
        "uid": card["uid"].hex(),
        "counter_before": purse["counter"],
        "counter_after": purse["counter"] + 1,
        "member_id": ident["member_id"],
        "tier": ident["tier"],
        "discount_bps": quote["discount_bps"],
        "price_list_version": price_list_version,
        "firmware": firmware,
        "lines": quote["lines"],
        "subtotal": quote["subtotal"],
        "discount": quote["discount"],
        "total": quote["total"],
    }
    if "coupon" in quote:
        record["coupon"] = quote["coupon"]
        record["coupon_value"] = quote["coupon_value"]
    for key in split:
        record[key] = split[key]
    return record


def purse_after(sale: dict, tag: int) -> dict:
    """The purse a sale writes to the card."""
    return {
        "counter": sale["counter_after"],
        "balance": sale["balance_after"],
        "points": sale["points_after"],
        "tag": tag,
    }


def wrote_purse(card: dict, purse: dict) -> None:
    """The card as it is after purse went into its older copy (the other copy is written next)."""
    copy = card["write_copy"]
    card["copies"][copy] = purse
    card["purse"] = purse
    card["write_copy"] = "A" if copy == "B" else "B"


def resolve(sale: dict, card: dict, tag: int) -> str | None:
    """Did a pending sale's card write land? 'committed', 'voided', or None when unknowable here.

    Our tag at counter_after proves the write landed; the newest copy still at
    counter_before, or counter_after written by someone else, proves it did not.
    A card used twice elsewhere since is left to the hub.
    """
    for copy in card["copies"].values():
        if copy is not None and copy["counter"] == sale["counter_after"]:
            return "committed" if copy["tag"] == tag else "voided"
    if card["purse"]["counter"] == sale["counter_before"]:
        return "voided"
    return None


def action_record(card: dict, action: list) -> dict | None:
    """The record of a card action [id, card, number, kind, amount, points, tier]; None when the card cannot take it.

    A tier change writes the identity only (counter unchanged); a top-up or a
    transfer writes the identity, then the purse (counter + 1). Points never go
    below zero: a deduction beyond what the card holds takes all it holds, and the
    record's points say what was taken (the hub books the rest as a debt).
    """
    purse = card["purse"]
    kind = action[3]
    money = kind != "tier" and kind != "coupon"  # a coupon goes into its slot, not the purse
    balance = purse["balance"] + (action[4] if money else 0)
    delta = action[5] if money else 0
    if purse["points"] + delta < 0:
        delta = -purse["points"]
    points = purse["points"] + delta
    if balance < 0 or balance > 0x7FFFFFFF or points > 0xFFFFFFFF:
        return None
    return {
        "kind": "action",
        "card_no": card["ident"]["card_no"],
        "uid": card["uid"].hex(),
        "act": kind,
        "action": action[0],
        "number": action[2],
        "amount": action[4] if money else 0,
        "points": delta,
        "tier": action[6] if kind == "tier" else card["ident"]["tier"],
        "counter_before": purse["counter"],
        "counter_after": purse["counter"] + (1 if money else 0),
        "balance_after": balance,
        "points_after": points,
    }


def resolve_action(act: dict, card: dict, tag: int) -> str | None:
    """Did a pending card action land? 'committed', 'voided', 'finish' (write its purse now), or None (unknowable).

    The identity (with the action's number) is written before the purse: a card
    whose identity is below the number holds nothing of it. One at the number
    whose newest purse is still at counter_before lacks only the purse write.
    """
    if card["ident"]["actions"] < act["number"]:
        return "voided"
    if act["counter_after"] == act["counter_before"]:
        return "committed"
    result = resolve(act, card, tag)
    if result == "voided":
        return "finish" if card["purse"]["counter"] == act["counter_before"] else None
    return result
