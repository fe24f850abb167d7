"""Refunds at HQ of synced sales, whole or by lines (docs/loyalty.md, "Points and stored value").

A refund gives back, in proportion to the refunded lines' share of the sale's subtotal,
the stored value paid (onto the card), the cash paid (at HQ, posted now) and the points
redeemed (onto the card), and takes back the points earned. The card part is one
"refund" card action, posted when a handheld applies it; points the card no longer
holds become the member's debt (hub.points). A sale whose referrer was awarded points
also takes back, from the referrer's card, what the award loses (hub.referrals). Each
unit sold is refunded at most once; a sale's Refund rows are what marks it refunded
(refunded_total()).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from hub.cards import HQ_DEVICE, current_card
from hub.downlink_queue import queue_action
from hub.masterdata import audit
from hub.models import Card, CardAction, LedgerEntry, Refund, RefundLine, Sale, SaleLine
from hub.referrals import take_back
from hub.refusal import Refusal

PARTS = ("stored_value", "cash", "points_redeemed", "points_earned")


class RefundError(Refusal):
    """A refund refused: code and message say why; nothing was written."""


# -- the pure rules ------------------------------------------------------------------------------


def share(whole: int, gross_before: int, gross_after: int, subtotal: int) -> int:
    """whole's share for refunded gross going from gross_before to gross_after, of subtotal.

    Cumulative and rounded down: refund after refund never adds up to more than the sale,
    and the last one (gross_after == subtotal) gives back exactly what was left.
    """
    if subtotal <= 0:
        return 0
    return whole * gross_after // subtotal - whole * gross_before // subtotal


def refund_split(sale: dict[str, int], gross_before: int, gross_after: int) -> dict[str, int]:
    """What a refund of the lines worth gross_after - gross_before (at list price) gives and takes back."""
    out = {part: share(sale[part], gross_before, gross_after, sale["subtotal"]) for part in PARTS}
    point_value = sale["points_value"] // sale["points_redeemed"] if sale["points_redeemed"] else 0
    out["points_value"] = out["points_redeemed"] * point_value
    out["total"] = out["stored_value"] + out["cash"] + out["points_value"]
    return out


def lines_to_refund(sold: dict[int, tuple[int, int]], refunded: dict[int, int],
                    asked: list[tuple[int, int]] | None) -> dict[int, int]:
    """{item: qty} to refund now; asked None: everything not refunded yet. RefundError when it is more than was sold."""
    left = {item: qty - refunded.get(item, 0) for item, (qty, _price) in sold.items()}
    if asked is None:
        wanted = {item: q for item, q in left.items() if q > 0}
        if not wanted:
            raise RefundError("refunded", "everything in this sale was refunded already", 409)
        return wanted
    if not asked:
        raise RefundError("bad_lines", "name at least one line to refund (or none at all for the whole sale)")
    wanted = {}
    for item, qty in asked:
        if type(item) is not int or type(qty) is not int or qty < 1:
            raise RefundError("bad_lines", f"a refund line is an item number and a quantity of 1 or more, got {item!r}={qty!r}")
        if item in wanted:
            raise RefundError("bad_lines", f"item {item} named twice")
        if item not in sold:
            raise RefundError("not_sold", f"item {item} is not in this sale")
        if qty > left[item]:
            done = refunded.get(item, 0)
            raise RefundError("too_much", f"item {item}: {sold[item][0]} sold, {done} refunded already, {qty} asked")
        wanted[item] = qty
    return wanted


# -- at the hub ------------------------------------------------------------------------------------


def find_sale(db: Session, device_id: str, seq: int) -> Sale:
    sale = db.exec(select(Sale).where(Sale.device_id == device_id, Sale.seq == seq)).first()
    if sale is None:
        raise RefundError("no_sale", f"no sale {device_id} #{seq} has been synced", 404)
    return sale


def sold_lines(db: Session, sale: Sale) -> dict[int, tuple[int, int]]:
    """{item: (qty, unit price)} of a sale."""
    out: dict[int, tuple[int, int]] = {}
    for ln in db.exec(select(SaleLine).where(SaleLine.device_id == sale.device_id, SaleLine.seq == sale.seq)):
        qty, _price = out.get(ln.item, (0, ln.price))
        out[ln.item] = (qty + ln.qty, ln.price)
    return out


def refunded_lines(db: Session, sale: Sale) -> dict[int, int]:
    rows = db.exec(
        select(RefundLine.item, func.sum(RefundLine.qty))
        .join(Refund, col(Refund.id) == col(RefundLine.refund_id))
        .where(Refund.sale_id == sale.id)
        .group_by(col(RefundLine.item))
    ).all()
    return {item: int(qty) for item, qty in rows}


def refunded_total(db: Session, sale_ids: list[int]) -> dict[int, dict[str, int]]:
    """{sale id: {"total", "paid"}}: cents refunded so far, in all and of what was paid (stored value + cash)."""
    rows = db.exec(
        select(Refund.sale_id, func.sum(Refund.total), func.sum(Refund.stored_value + Refund.cash))
        .where(col(Refund.sale_id).in_(sale_ids))
        .group_by(col(Refund.sale_id))
    ).all() if sale_ids else []
    return {sale_id: {"total": int(total), "paid": int(paid)} for sale_id, total, paid in rows}


def refund_sale(db: Session, actor: str, now: int, device_id: str, seq: int,
                lines: list[tuple[int, int]] | None = None) -> Refund:
    """Refund a synced sale (lines [(item, qty)], or everything not refunded yet): one refund, one card action."""
    sale = find_sale(db, device_id, seq)
    if sale.state != "committed":
        raise RefundError("not_committed", f"sale {device_id} #{seq} is {sale.state}: only a committed sale is refunded", 409)
    sold = sold_lines(db, sale)
    done = refunded_lines(db, sale)
    wanted = lines_to_refund(sold, done, lines)
    gross_before = sum(qty * sold[item][1] for item, qty in done.items())
    gross_after = gross_before + sum(qty * sold[item][1] for item, qty in wanted.items())
    split = refund_split(sale.model_dump(), gross_before, gross_after)
    paid_before = refunded_total(db, [sale.id or 0]).get(sale.id or 0, {}).get("paid", 0)
    card = db.get(Card, sale.card_no)
    target = current_card(db, card) if card is not None else None
    refund = Refund(sale_id=sale.id or 0, time=now, actor=actor, total=split["total"], stored_value=split["stored_value"],
                    cash=split["cash"], points_value=split["points_value"], points_back=split["points_redeemed"],
                    points_taken=split["points_earned"], card_no=target.card_no if target else sale.card_no)
    db.add(refund)
    db.flush()
    for item, qty in sorted(wanted.items()):
        db.add(RefundLine(refund_id=refund.id or 0, item=item, qty=qty, price=sold[item][1]))
    points = split["points_redeemed"] - split["points_earned"]
    if split["stored_value"] or points:
        action = queue_action(db, refund.card_no, "refund", now, actor, amount=split["stored_value"], points=points,
                              note=f"refund {refund.id} of {device_id} #{seq}")
        refund.action_id = action.id
    paid_after = sale.stored_value + sale.cash - paid_before - split["stored_value"] - split["cash"]
    take_back(db, actor, now, sale, refund, paid_after)
    memo = f"refund {refund.id} of {device_id} #{seq}"[:40]
    for account, amount in (("cash", -split["cash"]), ("revenue", -split["total"])):
        if amount:
            db.add(LedgerEntry(time=now, device_id=HQ_DEVICE, seq=refund.id or 0, card_no=sale.card_no, account=account,
                               amount=amount, memo=memo))
    db.add(refund)
    audit(db, actor, now, "refund", refund, f"{device_id}#{seq}", None)
    return refund


def refund_view(db: Session, refund: Refund) -> dict[str, Any]:
    lines = db.exec(select(RefundLine).where(RefundLine.refund_id == refund.id)).all()
    action = db.get(CardAction, refund.action_id) if refund.action_id else None
    return refund.model_dump() | {
        "lines": [{"item": ln.item, "qty": ln.qty, "price": ln.price} for ln in lines],
        "action_state": action.state if action is not None else "",
    }
