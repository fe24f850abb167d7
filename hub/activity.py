"""What members did, as tier reviews, RFM tags, plans and badges see it: purchases, spend, points, top-ups.

A purchase is a committed sale on any of the member's cards (a replaced card's sales
stay the member's). Spend is what the member paid in money, cash plus stored value, in
cents: points redeemed are not spend, so a reward never buys the next tier. Top-ups are
HQ's top-ups (card actions of kind "topup" not cancelled), by the time HQ took them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import distinct, func, true
from sqlmodel import Session, col, select

from hub.models import Card, CardAction, Member, Sale, TierChange

DAY = 86400


@dataclass(frozen=True)
class Activity:
    """One member's activity in a window (since, until], and their last purchase up to until."""

    purchases: int = 0
    spend: int = 0  # cents
    points_earned: int = 0
    topups: int = 0  # cents
    last_purchase: int = 0  # unix seconds; 0 when the member never bought


def activity(db: Session, since: int, until: int, member_ids: Iterable[int] | None = None) -> dict[int, Activity]:
    """Every member's (or the given members') activity in (since, until]."""
    ids = list(member_ids) if member_ids is not None else list(db.exec(select(Member.id)))
    figures: dict[int, dict[str, int]] = {i: {} for i in ids if i is not None}
    committed = [Sale.state == "committed", Sale.time <= until]
    mine = col(Card.member_id).in_(list(figures)) if member_ids is not None else true()
    in_window = (
        select(Card.member_id, func.count(), func.coalesce(func.sum(Sale.cash + Sale.stored_value), 0),
               func.coalesce(func.sum(Sale.points_earned), 0))
        .join(Card, col(Card.card_no) == col(Sale.card_no))
        .where(*committed, Sale.time > since, mine)
        .group_by(col(Card.member_id))
    )
    for member_id, count, spend, points in db.exec(in_window):
        if member_id in figures:
            figures[member_id].update(purchases=int(count), spend=int(spend), points_earned=int(points))
    last = (
        select(Card.member_id, func.max(Sale.time))
        .join(Card, col(Card.card_no) == col(Sale.card_no))
        .where(*committed, mine)
        .group_by(col(Card.member_id))
    )
    for member_id, when in db.exec(last):
        if member_id in figures:
            figures[member_id]["last_purchase"] = int(when)
    topups = (
        select(Card.member_id, func.coalesce(func.sum(CardAction.amount), 0))
        .join(Card, col(Card.card_no) == col(CardAction.card_no))
        .where(CardAction.kind == "topup", CardAction.state != "cancelled", CardAction.created > since,
               CardAction.created <= until, mine)
        .group_by(col(Card.member_id))
    )
    for member_id, cents in db.exec(topups):
        if member_id in figures:
            figures[member_id]["topups"] = int(cents)
    return {i: Activity(**f) for i, f in figures.items()}


def lifetime(db: Session, now: int) -> dict[int, dict[str, int]]:
    """Each member's facts up to now: purchases, visits (days with a purchase), spend, tier (highest held), member_days."""
    out: dict[int, dict[str, int]] = {}
    for member in db.exec(select(Member)):
        assert member.id is not None
        out[member.id] = {"purchases": 0, "visits": 0, "spend": 0, "tier": member.tier,
                          "member_days": max(0, (now - member.created) // DAY)}
    day = col(Sale.time) // DAY  # the UTC day
    rows = db.exec(
        select(Card.member_id, func.count(), func.count(distinct(day)), func.coalesce(func.sum(Sale.cash + Sale.stored_value), 0))
        .join(Card, col(Card.card_no) == col(Sale.card_no))
        .where(Sale.state == "committed", Sale.time <= now)
        .group_by(col(Card.member_id))
    )
    for member_id, count, visits, spend in rows:
        if member_id in out:
            out[member_id].update(purchases=int(count), visits=int(visits), spend=int(spend))
    highest = select(TierChange.member_id, func.max(TierChange.to_tier)).where(TierChange.time <= now).group_by(
        col(TierChange.member_id)
    )
    for member_id, tier in db.exec(highest):
        if member_id in out:
            out[member_id]["tier"] = max(out[member_id]["tier"], int(tier))
    return out
