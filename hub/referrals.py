"""Referral points: what a referrer earns on a referred member's sale, and what a refund of it takes back.

docs/loyalty.md, "Referral points". The award itself is the points job's (hub.points.award_referrals);
the take-back runs inside a refund (hub.refunds.refund_sale). Both use referral_points(), so a
referrer ends up holding what the award rule gives on what the sale still has paid, whichever
came first, the refund or the award. Its own module because hub.points reads refunds and
hub.refunds takes referral points back: neither imports the other.
"""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from hub.cards import current_card
from hub.downlink_queue import queue_action
from hub.models import Card, CardAction, ReferralAward, Refund, Sale


def referral_points(paid: int, earn_per_100: int, referral_bps: int) -> int:
    """Points a referrer earns on a referred member's sale paying `paid` cents (stored value + cash), rounded down."""
    return paid * earn_per_100 * referral_bps // 1_000_000


def referral_taken(award: int, kept: int, taken_before: int) -> int:
    """Points a refund takes back from an award: down to `kept` (the award rule on what is left paid).

    Cumulative, like refund shares: every take-back of a sale together never exceeds the award,
    and the last refund of the sale leaves the referrer exactly referral_points(0) = 0.
    """
    return max(0, award - max(0, kept) - taken_before)


def take_back(db: Session, actor: str, now: int, sale: Sale, refund: Refund, paid_after: int) -> CardAction | None:
    """Queue the "refund" action taking back from the referrer what refund leaves the sale's award without.

    paid_after is the stored value and cash the sale keeps after this refund. A sale not
    awarded yet needs nothing: the job awards on what is left paid when it runs. Sets the
    refund's referral_points and referral_action_id; the caller commits with the refund.
    """
    award = db.get(ReferralAward, sale.id)
    if award is None or award.points <= 0 or award.action_id is None:
        return None
    before = db.exec(select(func.coalesce(func.sum(Refund.referral_points), 0))
                     .where(Refund.sale_id == sale.id, col(Refund.id) != refund.id)).one()
    kept = referral_points(paid_after, award.earn_per_100, award.referral_bps)
    taken = referral_taken(award.points, kept, int(before))
    if taken <= 0:
        return None
    carried = db.get(CardAction, award.action_id)
    card = db.get(Card, carried.card_no) if carried is not None else None
    if card is None:
        return None
    # The card that stands for the one the award went to: its points moved with a replacement.
    target = current_card(db, card)
    action = queue_action(db, target.card_no, "refund", now, actor, points=-taken,
                          note=f"referral points on {sale.device_id} #{sale.seq} taken back (refund {refund.id})"[:120])
    refund.referral_points, refund.referral_action_id = taken, action.id
    db.add(refund)
    return action
