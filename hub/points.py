"""Points at the hub: lots and their expiry, points debts, referral awards (docs/loyalty.md, "Points and stored value").

The card holds a member's spendable points; whatever the hub decides about them (an
expiry, a debt settlement, a referral award) goes to the card as a card action and is
posted when a handheld reports it applied (hub/ingest.py), so hub and card never
disagree. Lots are a projection of a member's points postings over all their cards
(replacements move points between cards, not between lots): each gain opens a lot
that expires points.validity_days later, each deduction takes the oldest lots first.
Decisions are pure functions; the jobs take the time and the actor from the caller.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import insert
from sqlalchemy import select as select_columns
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, func, select

from hub.downlink_queue import queue_action
from hub.masterdata import audit, params
from hub.members import get_member
from hub.models import Card, CardAction, LedgerEntry, Member, PointsDebt, ReferralAward, Sale
from hub.referrals import referral_points
from hub.refunds import refunded_total
from hub.refusal import Refusal

DAY = 86_400
HQ_DEVICE = "hq"
# HQ postings that move points between a member's own cards (hub.cards' replacement): not gains or spends.
MOVE_MEMOS = ("moved to ", "moved from ", "settled to ")
SETTLES = "after its replacement"  # how the note of a replacement's settlement transfer ends (hub.cards.settle_card)
# What each applied card action kind is, for the identity earned - redeemed - expired + reversals.
ACTION_CATEGORY = {"expire": "expired", "refund": "reversal", "debt": "reversal", "referral": "earned"}


class PointsError(Refusal):
    """A points change refused: code and message say why; nothing was written."""


class Move(NamedTuple):
    """One change of a member's points: when, how many (+ gained, - taken), and what it was."""

    time: int
    points: int
    category: str  # earned, redeemed, expired, reversal, other; "pending": a queued deduction, not on the card yet


class Lot(NamedTuple):
    opened: int
    expires: int  # 0: never
    points: int  # as earned
    left: int


# -- the pure rules ------------------------------------------------------------------------------


def project_lots(moves: list[Move], validity_days: int) -> tuple[list[Lot], int]:
    """(lots, deficit): gains open lots (a deficit is filled first), deductions take the oldest lots first.

    The deficit is what deductions took beyond every open lot (normally 0: a card's
    points never go below zero); later gains fill it before opening a lot.
    """
    lots: list[list[int]] = []  # [opened, expires, points, left]
    deficit = 0
    first = 0  # lots before this one are used up
    for move in sorted(moves, key=lambda m: m.time):  # stable: same-time moves keep their order
        if move.points > 0:
            gain = move.points
            filled = min(gain, deficit)
            deficit -= filled
            gain -= filled
            if gain:
                expires = move.time + validity_days * DAY if validity_days else 0
                lots.append([move.time, expires, gain, gain])
        elif move.points < 0:
            need = -move.points
            while need and first < len(lots):
                take = min(need, lots[first][3])
                lots[first][3] -= take
                need -= take
                if lots[first][3] == 0:
                    first += 1
            deficit += need
    return [Lot(*lot) for lot in lots], deficit


def due(lots: list[Lot], now: int) -> int:
    """Points in lots whose expiry has come (at or before now) and that are not used up."""
    return sum(lot.left for lot in lots if lot.expires and lot.expires <= now)


def debt_change(kind: str, requested: int, applied: int) -> int:
    """How a card action's application moves the member's points debt (+ owed more, - settled).

    A deduction the card could not take in full (its points stop at zero) leaves the rest
    owed; a "debt" action settles what it took. An expiry short of points owes nothing:
    points that are not there do not expire.
    """
    if kind == "debt":
        return applied
    if kind == "expire" or requested >= 0:
        return 0
    return max(0, applied - requested)


def applied_as_requested(requested: int, applied: int) -> bool:
    """Whether a card applied an action's points as HQ asked, or short of a deduction (stopped at zero)."""
    return applied == requested or requested <= applied <= 0


def identity(moves: list[Move]) -> dict[str, int]:
    """Totals by category: points on the cards = earned - redeemed - expired + reversals + other."""
    out = {"earned": 0, "redeemed": 0, "expired": 0, "reversals": 0, "other": 0}
    for m in moves:
        if m.category == "earned":
            out["earned"] += m.points
        elif m.category == "redeemed":
            out["redeemed"] -= m.points
        elif m.category == "expired":
            out["expired"] -= m.points
        elif m.category == "reversal":
            out["reversals"] += m.points
        elif m.category == "other":
            out["other"] += m.points
    return out


# -- reading a member's points -----------------------------------------------------------------


def member_cards(db: Session, member_id: int) -> list[Card]:
    return list(db.exec(select(Card).where(Card.member_id == member_id).order_by(col(Card.issued), col(Card.card_no))))


def current_card(db: Session, member_id: int) -> Card | None:
    """The card a member's points actions go to: their newest active card (None while they have none)."""
    active = [c for c in member_cards(db, member_id) if c.state == "active"]
    return active[-1] if active else None


def member_moves(db: Session, member_id: int, pending: bool = True) -> list[Move]:
    """The member's points postings as moves (a sale split in its redemption and its earning), in posting order.

    With pending, queued deductions not yet on the card are added at the time HQ decided
    them, so a job run twice does not take the same points twice.
    """
    cards = [c.card_no for c in member_cards(db, member_id)]
    if not cards:
        return []
    # Plain rows, not ORM objects, and without the sales' own postings (skipped below anyway): the nightly
    # expiry reads every member's whole history, so this query is what its time grows with. The connection does
    # not autoflush as the session does: flush first, so postings this session added are seen as before.
    db.flush()
    entries = db.connection().execute(
        select_columns(col(LedgerEntry.time), col(LedgerEntry.amount), col(LedgerEntry.memo), col(LedgerEntry.device_id),
                       col(LedgerEntry.seq), col(LedgerEntry.card_no))
        .where(col(LedgerEntry.card_no).in_(cards), col(LedgerEntry.account) == "points", col(LedgerEntry.memo) != "sale")
        .order_by(col(LedgerEntry.time), col(LedgerEntry.id))
    ).all()
    actions = list(db.exec(select(CardAction).where(col(CardAction.card_no).in_(cards))))
    applied = {(a.applied_device, a.applied_seq, a.card_no): a for a in actions if a.state == "applied"}
    moves: list[Move] = []
    # Sales from the sales themselves: the ledger posts their net, nothing at all when it is 0.
    for s in db.exec(select(Sale.time, Sale.points_redeemed, Sale.points_earned)
                     .where(col(Sale.card_no).in_(cards), Sale.state == "committed")
                     .order_by(col(Sale.time), col(Sale.id))):
        when, redeemed, earned = s
        if redeemed:
            moves.append(Move(when, -redeemed, "redeemed"))
        if earned:
            moves.append(Move(when, earned, "earned"))
    for when, amount, memo, device_id, seq, card_no in entries:
        if memo == "sale" or (device_id == HQ_DEVICE and memo.startswith(MOVE_MEMOS)):
            continue
        if memo in ("opening", "issued"):
            moves.append(Move(when, amount, "earned"))
            continue
        action = applied.get((device_id, seq, card_no))
        if action is not None and action.note.endswith(SETTLES):
            continue  # the other half of a "settled to" posting
        category = ACTION_CATEGORY.get(action.kind, "") if action is not None else ""
        moves.append(Move(when, amount, category or ("earned" if amount > 0 and action is not None else "other")))
    if pending:
        for a in actions:
            if a.state == "pending" and a.points < 0 and not a.note.endswith(SETTLES):
                moves.append(Move(a.created, a.points, "pending"))
    return moves


def debt_of(db: Session, member_id: int) -> int:
    """Points the member owes (what refunds could not take back and settlements have not taken yet)."""
    return db.exec(select(func.coalesce(func.sum(PointsDebt.amount), 0)).where(PointsDebt.member_id == member_id)).one()


def available(db: Session, member_id: int) -> int:
    """Points the member's cards will hold once their pending actions are applied (the hub's view)."""
    cards = [c for c in member_cards(db, member_id) if c.state != "replaced"]
    numbers = [c.card_no for c in cards]
    pending = db.exec(
        select(func.coalesce(func.sum(CardAction.points), 0)).where(
            col(CardAction.card_no).in_(numbers), CardAction.state == "pending"
        )
    ).one() if numbers else 0
    return sum(c.points for c in cards) + pending


def statement(db: Session, member_id: int, now: int) -> dict[str, Any]:
    """A member's points: on the cards, owed, the lots with their expiry, what is due, and the identity's totals."""
    get_member(db, member_id)
    validity = params(db)["points.validity_days"]
    moves = member_moves(db, member_id)
    lots, deficit = project_lots(moves, validity)
    points = sum(c.points for c in member_cards(db, member_id))
    return {
        "member_id": member_id,
        "points": points,
        "debt": debt_of(db, member_id),
        "due": due(lots, now),
        "lots": [lot._asdict() for lot in lots if lot.left],
        "deficit": deficit,
        "totals": identity(moves),
    }


# -- the jobs --------------------------------------------------------------------------------------


def _members_with_points(db: Session) -> list[int]:
    return list(db.exec(select(Card.member_id).where(col(Card.points) > 0).distinct().order_by(col(Card.member_id))))


def expire_due(db: Session, now: int, actor: str = "expiry") -> list[CardAction]:
    """Queue an "expire" action for every member whose lots are due at now; nothing expires twice.

    A queued expiry already takes its points from the lots (see member_moves), so a second
    run finds nothing due. A member without an active card waits for one.
    """
    validity = params(db)["points.validity_days"]
    if not validity:
        return []
    out = []
    for member_id in _members_with_points(db):
        lots, _deficit = project_lots(member_moves(db, member_id), validity)
        owed = due(lots, now)
        if owed <= 0:  # most nights for most members: spare the two queries below
            continue
        amount = min(owed, available(db, member_id))
        card = current_card(db, member_id)
        if amount <= 0 or card is None:
            continue
        action = queue_action(db, card.card_no, "expire", now, actor, points=-amount,
                              note=f"points due by {now} expire")
        audit(db, actor, now, "expire", action, f"{card.card_no}#{action.number}", None)
        out.append(action)
    return out


def settle_debts(db: Session, now: int, actor: str = "debts") -> list[CardAction]:
    """Queue a "debt" action taking what each indebted member's cards have gained since, up to the debt."""
    out = []
    owing = db.exec(
        select(PointsDebt.member_id).group_by(col(PointsDebt.member_id)).having(func.sum(PointsDebt.amount) > 0)
    ).all()
    for member_id in owing:
        card = current_card(db, member_id)
        if card is None:
            continue
        cards = [c.card_no for c in member_cards(db, member_id)]
        waiting = db.exec(
            select(CardAction.id).where(col(CardAction.card_no).in_(cards), CardAction.kind == "debt",
                                        CardAction.state == "pending")
        ).first()
        if waiting is not None:
            continue  # one settlement at a time: its application says what it took
        amount = min(debt_of(db, member_id), available(db, member_id))
        if amount <= 0:
            continue
        action = queue_action(db, card.card_no, "debt", now, actor, points=-amount, note="points debt")
        audit(db, actor, now, "debt", action, f"{card.card_no}#{action.number}", None)
        out.append(action)
    return out


def record_debt(conn: Connection, action: Any, card: dict[str, Any], applied: int, time: int) -> None:
    """At ingest: book how an applied card action (a CardAction row) moved the member's debt."""
    change = debt_change(action.kind, action.points, applied)
    if change:
        memo = "settled" if action.kind == "debt" else f"{action.kind} #{action.number} short"
        conn.execute(insert(PointsDebt), [{"member_id": card["member_id"], "card_no": card["card_no"], "time": time,
                                           "amount": change, "action_id": action.id, "memo": memo}])


# -- referrals -------------------------------------------------------------------------------------


def set_referrer(db: Session, actor: str, now: int, member_id: int, referrer_id: int) -> Member:
    """Record who referred a member; from now on the referrer earns on their sales. Set once."""
    member = get_member(db, member_id)
    get_member(db, referrer_id)
    if member.referrer_id is not None:
        raise PointsError("referrer_set", f"member {member_id} was referred by member {member.referrer_id} already", 409)
    if referrer_id == member_id:
        raise PointsError("bad_referrer", "a member cannot refer themselves")
    seen, up = {member_id}, db.get(Member, referrer_id)
    while up is not None and up.referrer_id is not None:  # a referral chain must not loop back
        if up.referrer_id in seen:
            raise PointsError("bad_referrer", f"member {referrer_id} was referred (through others) by {member_id}")
        seen.add(up.referrer_id)
        up = db.get(Member, up.referrer_id)
    before = member.model_dump()
    member.referrer_id = referrer_id
    member.referred_at = now
    db.add(member)
    audit(db, actor, now, "refer", member, str(member_id), before)
    return member


def award_referrals(db: Session, now: int, actor: str = "referrals") -> list[CardAction]:
    """Award referrers their points on referred members' synced sales not yet awarded: one action per referrer.

    Each sale is awarded once (ReferralAward's key), on what was paid less what HQ had
    refunded of it by then (a later refund takes back: hub.referrals). A referrer without
    an active card waits for one.
    """
    p = params(db)
    rows = db.exec(
        select(Sale, Member)
        .join(Member, col(Member.id) == col(Sale.member_id))
        .outerjoin(ReferralAward, col(ReferralAward.sale_id) == col(Sale.id))
        .where(Sale.state == "committed", col(Member.referrer_id).is_not(None), col(ReferralAward.sale_id).is_(None),
               col(Sale.time) >= col(Member.referred_at))
        .order_by(col(Sale.id))
    ).all()
    by_referrer: dict[int, list[ReferralAward]] = {}
    refunded = refunded_total(db, [sale.id or 0 for sale, _member in rows])
    for sale, member in rows:
        assert member.referrer_id is not None and sale.id is not None
        paid = sale.stored_value + sale.cash - refunded.get(sale.id, {}).get("paid", 0)
        award = ReferralAward(sale_id=sale.id, referrer_id=member.referrer_id, member_id=member.id or 0, time=now,
                              points=referral_points(paid, p["points.earn_per_100"], p["points.referral_bps"]),
                              earn_per_100=p["points.earn_per_100"], referral_bps=p["points.referral_bps"])
        by_referrer.setdefault(member.referrer_id, []).append(award)
    out = []
    for referrer_id, awards in by_referrer.items():
        card = current_card(db, referrer_id)
        if card is None:
            continue
        total = sum(a.points for a in awards)
        action = None
        if total:
            action = queue_action(db, card.card_no, "referral", now, actor, points=total,
                                  note=f"referral points on {len(awards)} sales")
            out.append(action)
        for award in awards:
            award.action_id = action.id if action is not None else None
            db.add(award)
    return out


def run_jobs(db: Session, now: int, actor: str = "loyalty") -> dict[str, int]:
    """The scheduled points work, in order: referral awards, debt settlements, expiry. Counts of actions queued."""
    referrals = award_referrals(db, now, actor)
    db.flush()
    debts = settle_debts(db, now, actor)
    db.flush()
    expired = expire_due(db, now, actor)
    return {
        "referral_actions": len(referrals),
        "debt_actions": len(debts),
        "expire_actions": len(expired),
        "points_expiring": -sum(a.points for a in expired),
    }
