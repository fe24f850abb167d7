"""Badges: achievements a member earns when a fact about them reaches a mark; shown to them, worth no money.

A badge has no amount, points or discount, and nothing reads it when pricing a sale;
it is granted once and stays (a member who drops a tier keeps the badge for reaching it).
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, func, select

from hub.activity import lifetime
from hub.masterdata import audit, snapshot
from hub.models import Badge, MemberBadge
from hub.refusal import Refusal

FACTS = {
    "purchases": "committed purchases, ever",
    "visits": "days with a purchase (UTC), ever",
    "spend": "cents paid in money (cash and stored value), ever",
    "tier": "the highest tier the member has held",
    "member_days": "days since the member joined",
}
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class BadgeError(Refusal):
    """A badge HQ asked for that the rules refuse; nothing was saved."""


def earned(facts: dict[str, int], badges: list[Badge]) -> list[str]:
    """The codes of the active badges whose fact has reached its mark."""
    return [b.code for b in badges if b.active and facts.get(b.fact, 0) >= b.at_least]


def save_badge(db: Session, actor: str, now: int, code: str, name: str, fact: str, at_least: int,
               description: str = "", active: bool = True) -> Badge:
    """Create or change a badge (audited); members keep badges already granted."""
    if not _CODE.fullmatch(code):
        raise BadgeError("bad_code", f"badge code {code!r} must be 1-32 of a-z, 0-9 and -, starting with a letter or digit")
    name = " ".join(name.split())
    if not name or len(name) > 80:
        raise BadgeError("bad_name", "a badge name is 1-80 characters")
    if len(description) > 200:
        raise BadgeError("bad_description", "description is longer than 200 characters")
    if fact not in FACTS:
        raise BadgeError("bad_fact", f"fact must be one of {', '.join(FACTS)}, got {fact!r}")
    if type(at_least) is not int or not 1 <= at_least <= 10**12:
        raise BadgeError("bad_number", f"at_least must be a whole number from 1 to {10**12}, got {at_least!r}")
    badge = db.get(Badge, code)
    before = snapshot(badge)
    if badge is None:
        badge = Badge(code=code, name=name, description=description, fact=fact, at_least=at_least, active=active, created=now)
    else:
        badge.name, badge.description, badge.fact, badge.at_least, badge.active = name, description, fact, at_least, active
    db.add(badge)
    audit(db, actor, now, "create" if before is None else "update", badge, code, before)
    return badge


def award_badges(db: Session, now: int) -> list[MemberBadge]:
    """Grant every badge members have earned by now and lack; the new grants."""
    badges = list(db.exec(select(Badge).where(Badge.active == True)))  # noqa: E712
    if not badges:
        return []
    have = {(g.member_id, g.code) for g in db.exec(select(MemberBadge))}
    new = []
    for member_id, facts in lifetime(db, now).items():
        for code in earned(facts, badges):
            if (member_id, code) not in have:
                grant = MemberBadge(member_id=member_id, code=code, time=now)
                db.add(grant)
                new.append(grant)
    db.flush()
    return new


def badges_of(db: Session, member_id: int) -> list[dict[str, Any]]:
    """A member's badges, earliest first: code, name, description, when earned."""
    rows = db.exec(
        select(MemberBadge, Badge).join(Badge, col(Badge.code) == col(MemberBadge.code))
        .where(MemberBadge.member_id == member_id).order_by(col(MemberBadge.time), col(MemberBadge.code))
    )
    return [{"code": b.code, "name": b.name, "description": b.description, "earned": g.time} for g, b in rows]


def all_badges(db: Session) -> list[Badge]:
    return list(db.exec(select(Badge).order_by(col(Badge.code))))


def holders(db: Session) -> dict[str, int]:
    """{badge code: how many members hold it}."""
    counts = select(MemberBadge.code, func.count()).group_by(col(MemberBadge.code))
    return {code: int(n) for code, n in db.exec(counts).all()}
