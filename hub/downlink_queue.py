"""What HQ decided that the handhelds must learn: hotlist changes and card actions, in downlink order.

These only add rows to the caller's session; the caller commits them with the change
that caused them (a card reported lost, a top-up paid at HQ), so both land or neither.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from hub.models import CardAction, HotlistEntry
from protocol.downlink import ACTION_KINDS


def hotlist_change(db: Session, card_no: str, uid: str, listed: bool, reason: str, now: int) -> HotlistEntry:
    """Put a card on the hotlist (listed) or take it off; the entry gets the next hotlist version."""
    entry = HotlistEntry(card_no=card_no, uid=uid, listed=listed, reason=reason, time=now)
    db.add(entry)
    db.flush()  # assigns the version
    return entry


def queue_action(
    db: Session,
    card_no: str,
    kind: str,
    now: int,
    actor: str,
    amount: int = 0,
    points: int = 0,
    tier: int = -1,
    note: str = "",
) -> CardAction:
    """A pending action for a card, numbered after the card's previous ones."""
    if kind not in ACTION_KINDS:
        raise ValueError(f"unknown card action {kind!r}; one of {', '.join(ACTION_KINDS)}")
    last = db.exec(select(func.max(CardAction.number)).where(CardAction.card_no == card_no)).one()
    action = CardAction(
        card_no=card_no,
        number=(last or 0) + 1,
        kind=kind,
        amount=amount,
        points=points,
        tier=tier,
        note=note,
        actor=actor,
        created=now,
    )
    db.add(action)
    db.flush()  # assigns the id, the downlink's version
    return action


def hotlist_version(db: Session) -> int:
    """The newest hotlist version (0 when nothing was ever listed)."""
    return db.exec(select(func.max(HotlistEntry.version))).one() or 0
