"""Stored value at the hub: top-up bonus rules, and the liability the hub owes on all cards (docs/loyalty.md).

Bonus rules come in versions, never changed once made: thresholds "pay at least P,
get B" in cents; a top-up gets the bonus of the highest threshold it reaches, under the
newest version in force at its time. hub.cards.topup applies it: the card gets paid +
bonus in one action, HQ's cash is what was paid.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from hub.masterdata import audit
from hub.models import Card, CardAction, LedgerEntry, TopupBonus, TopupBonusRules
from hub.refusal import Refusal

MAX_PAID = 1_000_000  # cents: hub.cards.MAX_TOPUP, the most one top-up at HQ takes
MAX_THRESHOLDS = 20


class StoredValueError(Refusal):
    """A stored-value change refused: code and message say why; nothing was written."""


# -- the pure rules ------------------------------------------------------------------------------


def check_thresholds(thresholds: Any) -> list[list[int]]:
    """[[min_paid, bonus], ...] sorted by min_paid, or StoredValueError saying what contradicts itself."""
    if not isinstance(thresholds, list) or len(thresholds) > MAX_THRESHOLDS:
        raise StoredValueError("bad_bonus", f"bonus rules are a list of at most {MAX_THRESHOLDS} [pay at least, bonus] pairs")
    rows = []
    for t in thresholds:
        if (not isinstance(t, (list, tuple)) or len(t) != 2 or any(type(v) is not int for v in t)):
            raise StoredValueError("bad_bonus", f"a bonus rule is [pay at least, bonus] in whole cents, got {t!r}")
        paid, bonus = t
        if not 1 <= paid <= MAX_PAID:
            raise StoredValueError("bad_bonus", f"a threshold must be 1 to {MAX_PAID} cents, got {paid}")
        if bonus < 0:
            raise StoredValueError("bad_bonus", f"a bonus cannot be negative: pay {paid} get {bonus}")
        if bonus > paid:
            raise StoredValueError("bad_bonus", f"a bonus cannot be more than what earns it: pay {paid} get {bonus}")
        rows.append([paid, bonus])
    rows.sort()
    for (p1, b1), (p2, b2) in zip(rows, rows[1:], strict=False):
        if p1 == p2:
            raise StoredValueError("overlapping_bonus", f"two bonus rules for paying {p1}: {b1} and {b2}")
        if b2 < b1:
            raise StoredValueError("overlapping_bonus", f"paying {p2} would get less ({b2}) than paying {p1} ({b1})")
    return rows


def bonus_of(thresholds: list[list[int]], paid: int) -> int:
    """The bonus of the highest threshold paid reaches (0 below the lowest)."""
    bonus = 0
    for min_paid, b in thresholds:
        if paid >= min_paid:
            bonus = b
    return bonus


# -- rules at the hub ------------------------------------------------------------------------------


def save_bonus_rules(db: Session, actor: str, now: int, thresholds: Any, effective_from: int | None = None,
                     until: int = 0) -> TopupBonusRules:
    """A new version of the bonus rules, in force from effective_from (now when not given) until `until` (0: open)."""
    rows = check_thresholds(thresholds)
    start = now if effective_from is None else effective_from
    if type(start) is not int or start < 0 or type(until) is not int or until < 0:
        raise StoredValueError("bad_period", "effective_from and until are unix seconds (until 0: open-ended)")
    if until and until <= start:
        raise StoredValueError("bad_period", f"the rules would end ({until}) before they start ({start})")
    last = db.exec(select(func.max(TopupBonusRules.version))).one() or 0
    rules = TopupBonusRules(version=last + 1, effective_from=start, until=until, body=json.dumps(rows), created=now,
                            actor=actor)
    db.add(rules)
    audit(db, actor, now, "create", rules, str(rules.version), None)
    return rules


def rules_at(db: Session, at: int) -> TopupBonusRules | None:
    """The newest version in force at time at."""
    return db.exec(
        select(TopupBonusRules)
        .where(TopupBonusRules.effective_from <= at, or_(col(TopupBonusRules.until) == 0, col(TopupBonusRules.until) > at))
        .order_by(col(TopupBonusRules.version).desc())
    ).first()


def bonus_for(db: Session, paid: int, at: int) -> tuple[int, int]:
    """(bonus, rules version) for a top-up paying `paid` cents at time at; (0, 0) when no rules are in force."""
    rules = rules_at(db, at)
    if rules is None:
        return 0, 0
    return bonus_of(json.loads(rules.body), paid), rules.version


def record_bonus(db: Session, action: CardAction, paid: int, bonus: int, version: int, now: int) -> None:
    """Keep what a top-up action was made of (paid, bonus, rules version)."""
    if version:
        db.add(TopupBonus(action_id=action.id or 0, card_no=action.card_no, time=now, paid=paid, bonus=bonus,
                          rules_version=version))


def list_rules(db: Session) -> list[dict[str, Any]]:
    return [r.model_dump() | {"thresholds": json.loads(r.body)}
            for r in db.exec(select(TopupBonusRules).order_by(col(TopupBonusRules.version)))]


# -- the liability ---------------------------------------------------------------------------------


def liability(db: Session) -> dict[str, int | bool]:
    """What the hub owes on stored value now: on the cards, plus what pending actions will add (or take).

    cards is the hub's mirror of the card balances (every card: a replaced card's
    balance is 0 once settled, and whatever late sales left is owed until then);
    ledger is the sum of stored_value postings, which must equal it.
    """
    cards = db.exec(select(func.coalesce(func.sum(Card.balance), 0))).one()
    pending = db.exec(select(func.coalesce(func.sum(CardAction.amount), 0)).where(CardAction.state == "pending")).one()
    pending_topups = db.exec(
        select(func.coalesce(func.sum(CardAction.amount), 0)).where(CardAction.state == "pending",
                                                                    CardAction.kind == "topup")
    ).one()
    ledger = db.exec(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account == "stored_value")
    ).one()
    return {
        "cards": cards,
        "pending": pending,
        "pending_topups": pending_topups,
        "liability": cards + pending,
        "ledger": ledger,
        "balanced": ledger == cards,
    }
