"""Tier reviews: the upgrade rules on a growth value, the review decision, and the job that applies it.

The rules (one JSON document, versioned: each saved version is kept and the newest
applies) name one growth measure for every tier, so that "a higher tier needs more" can
be checked; per tier a threshold and a gift pack. A review compares each member's growth
value over the rolling window with the thresholds: reaching a higher tier upgrades at
once (and grants that tier's gift pack, once per member, tier and rules version); a tier
holds for validity_days, after which the member is reviewed again and downgraded to what
the value still reaches, or the tier is renewed. Tiers the rules do not name (a staff
tier set by hand) are never reviewed. docs/loyalty.md, "Tiers, tags and plans".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from hub.activity import DAY, Activity, activity
from hub.downlink_queue import queue_action
from hub.masterdata import audit
from hub.members import change_tier
from hub.models import Card, CouponGrant, Member, Tier, TierChange, TierGift, TierReview, TierRules, TierValidity
from hub.refusal import Refusal
from protocol.pricing import format_money

MEASURES = {
    "spend": "cents paid in money (cash and stored value) in committed sales",
    "points": "points earned in committed sales (gift points do not count)",
    "topup": "cents topped up at HQ",
}
CADENCES = ("daily", "weekly", "monthly")
MAX_DAYS = 3660  # ten years
MAX_THRESHOLD = 10**12
MAX_GIFT_POINTS = 1_000_000
MAX_GIFT_COUPONS = 10
KEYS = {"measure", "window_days", "validity_days", "review", "tiers"}
TIER_KEYS = {"tier", "threshold", "gift_points", "gift_coupons"}


class TierRuleError(Refusal):
    """Tier rules that contradict themselves or name what does not exist; nothing was saved."""


@dataclass(frozen=True)
class Step:
    """One reviewed tier: the growth value that reaches it and its gift pack."""

    tier: int
    threshold: int
    gift_points: int = 0
    gift_coupons: tuple[int, ...] = ()


@dataclass(frozen=True)
class Rules:
    version: int
    measure: str
    window_days: int
    validity_days: int
    review: str
    steps: tuple[Step, ...]  # by tier, thresholds strictly increasing

    def step(self, tier: int) -> Step | None:
        return next((s for s in self.steps if s.tier == tier), None)


@dataclass(frozen=True)
class Decision:
    """What a review decides for one member: kind is upgrade, downgrade, renew or keep."""

    kind: str
    tier: int
    until: int  # the new tier holds until then (0 for the base tier)
    reason: str


# -- the rules (pure) ---------------------------------------------------------------------------------


def _whole(value: Any, what: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise TierRuleError("bad_number", f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return value


def parse_rules(doc: Any, version: int = 0) -> Rules:
    """Check a rules document and read it; TierRuleError says what is wrong (the first problem)."""
    if not isinstance(doc, dict):
        raise TierRuleError("bad_rules", "tier rules must be a JSON object")
    unknown = set(doc) - KEYS
    if unknown:
        raise TierRuleError("bad_rules", f"unknown keys {sorted(unknown)}; the rules have {sorted(KEYS)}")
    measure = doc.get("measure")
    if measure not in MEASURES:
        raise TierRuleError("bad_measure", f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    window = _whole(doc.get("window_days"), "window_days", 1, MAX_DAYS)
    validity = _whole(doc.get("validity_days"), "validity_days", 1, MAX_DAYS)
    review = doc.get("review", "monthly")
    if review not in CADENCES:
        raise TierRuleError("bad_review", f"review must be one of {', '.join(CADENCES)}, got {review!r}")
    tiers = doc.get("tiers")
    if not isinstance(tiers, list) or not tiers:
        raise TierRuleError("bad_rules", "tiers must be a non-empty list of {tier, threshold, gift_points, gift_coupons}")
    steps = []
    for entry in tiers:
        if not isinstance(entry, dict) or set(entry) - TIER_KEYS:
            raise TierRuleError("bad_rules", f"each tier is an object with keys from {sorted(TIER_KEYS)}, got {entry!r}")
        tier = _whole(entry.get("tier"), "tier", 1, 255)
        threshold = _whole(entry.get("threshold"), f"tier {tier}'s threshold", 1, MAX_THRESHOLD)
        points = _whole(entry.get("gift_points", 0), f"tier {tier}'s gift_points", 0, MAX_GIFT_POINTS)
        coupons = entry.get("gift_coupons", [])
        if not isinstance(coupons, list) or len(coupons) > MAX_GIFT_COUPONS:
            raise TierRuleError(
                "bad_rules", f"tier {tier}'s gift_coupons must be a list of at most {MAX_GIFT_COUPONS} coupon template ids"
            )
        for template in coupons:
            _whole(template, f"tier {tier}'s coupon template id", 1, 2**31 - 1)
        steps.append(Step(tier, threshold, points, tuple(coupons)))
    steps.sort(key=lambda s: s.tier)
    for low, high in zip(steps, steps[1:], strict=False):
        if low.tier == high.tier:
            raise TierRuleError("overlapping_tiers", f"tier {low.tier} is listed twice")
        if high.threshold <= low.threshold:
            raise TierRuleError(
                "overlapping_tiers",
                f"tier {high.tier} needs {high.threshold}, not more than tier {low.tier}'s {low.threshold}: "
                "a higher tier must need strictly more",
            )
    return Rules(version, measure, window, validity, review, tuple(steps))


def rules_doc(rules: Rules) -> dict[str, Any]:
    """The rules as their JSON document (what parse_rules reads)."""
    return {
        "measure": rules.measure, "window_days": rules.window_days, "validity_days": rules.validity_days,
        "review": rules.review,
        "tiers": [{"tier": s.tier, "threshold": s.threshold, "gift_points": s.gift_points,
                   "gift_coupons": list(s.gift_coupons)} for s in rules.steps],
    }


def growth(rules: Rules, act: Activity) -> int:
    """The member's growth value under the rules' measure."""
    return {"spend": act.spend, "points": act.points_earned, "topup": act.topups}[rules.measure]


def show_value(rules: Rules, value: int) -> str:
    return f"{value} points" if rules.measure == "points" else format_money(value)


def reached(rules: Rules, value: int) -> int:
    """The highest tier the value reaches (0 when none)."""
    return max((s.tier for s in rules.steps if value >= s.threshold), default=0)


def day_of(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).date().isoformat()


def review(tier: int, until: int, value: int, rules: Rules, now: int) -> Decision:
    """Review one member at now: their tier, until when it holds, their growth value."""
    if tier and rules.step(tier) is None:
        return Decision("keep", tier, until, f"tier {tier} is not in the rules (v{rules.version}): set by hand")
    target = reached(rules, value)
    measured = f"{rules.measure} {show_value(rules, value)} in the last {rules.window_days} days"
    renewed = now + rules.validity_days * DAY
    if target > tier:
        step = rules.step(target)
        assert step is not None
        why = f"{measured} reaches tier {target}'s {show_value(rules, step.threshold)} (rules v{rules.version})"
        return Decision("upgrade", target, renewed, why)
    if tier == 0 or now < until:
        return Decision("keep", tier, until, "")
    step = rules.step(tier)
    assert step is not None
    if target == tier:
        why = f"tier {tier} held until {day_of(until)}; {measured} still reaches {show_value(rules, step.threshold)}"
        return Decision("renew", tier, renewed, why + f" (rules v{rules.version})")
    why = (f"tier {tier} held until {day_of(until)}; {measured} is below its {show_value(rules, step.threshold)}"
           f" (rules v{rules.version})")
    return Decision("downgrade", target, renewed if target else 0, why)


def period_of(now: int, cadence: str) -> str:
    """The review period now falls in: '2025-03' (monthly), '2025-W09' (weekly), '2025-03-01' (daily), UTC."""
    day = datetime.fromtimestamp(now, UTC).date()
    if cadence == "monthly":
        return f"{day.year:04d}-{day.month:02d}"
    if cadence == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return day.isoformat()


# -- the rules in the database -------------------------------------------------------------------------


def current_rules(db: Session) -> Rules | None:
    row = db.exec(select(TierRules).order_by(col(TierRules.version).desc())).first()
    return None if row is None else parse_rules(json.loads(row.body), row.version)


def rules_version(db: Session, version: int) -> TierRules:
    row = db.get(TierRules, version)
    if row is None:
        raise TierRuleError("no_rules", f"no tier rules version {version}", 404)
    return row


def save_rules(db: Session, actor: str, now: int, doc: Any, note: str = "") -> tuple[TierRules, bool]:
    """Save the rules as the next version (audited); (the version, whether it is new). Same rules: no new version."""
    rules = parse_rules(doc)
    defined = set(db.exec(select(Tier.id)))
    missing = [s.tier for s in rules.steps if s.tier not in defined]
    if missing:
        raise TierRuleError("no_tier", f"no tier {missing[0]}: define it first (hub tier set {missing[0]} ...)", 404)
    if len(note) > 200:
        raise TierRuleError("bad_note", "note is longer than 200 characters")
    body = json.dumps(rules_doc(rules), sort_keys=True)
    last = db.exec(select(TierRules).order_by(col(TierRules.version).desc())).first()
    if last is not None and last.body == body:
        return last, False
    row = TierRules(version=(last.version + 1) if last else 1, created=now, actor=actor, body=body, note=note)
    db.add(row)
    audit(db, actor, now, "create", row, str(row.version), None)
    return row, True


# -- the review job ------------------------------------------------------------------------------------


def _validity(db: Session, rules: Rules, members: list[Member]) -> dict[int, int]:
    """Until when each member's current tier holds: the review's record, else from when they got the tier."""
    held = {v.member_id: v for v in db.exec(select(TierValidity))}
    latest = select(TierChange.member_id, func.max(TierChange.time)).group_by(col(TierChange.member_id))
    got = {m: int(t) for m, t in db.exec(latest)}
    out = {}
    for m in members:
        assert m.id is not None
        v = held.get(m.id)
        if v is not None and v.tier == m.tier:
            out[m.id] = v.until
        else:  # set by hand (or before the rules): it holds validity_days from then
            out[m.id] = got.get(m.id, m.created) + rules.validity_days * DAY
    return out


def _points_card(db: Session, member_id: int) -> str:
    """The card gift points go to: the member's newest active card ('' when none)."""
    card = db.exec(
        select(Card).where(Card.member_id == member_id, Card.state == "active")
        .order_by(col(Card.issued).desc(), col(Card.card_no).desc())
    ).first()
    return card.card_no if card else ""


def _deliver(db: Session, actor: str, now: int, gift: TierGift) -> None:
    """Queue a gift's points to the member's card (a "transfer" card action), when they have one."""
    card_no = _points_card(db, gift.member_id)
    if not card_no:
        return
    action = queue_action(db, card_no, "transfer", now, actor, points=gift.points,
                          note=f"tier {gift.tier} gift pack (rules v{gift.rules_version})")
    gift.card_no, gift.action_id = card_no, action.id
    db.add(gift)


def grant_gift(db: Session, actor: str, now: int, member_id: int, step: Step, version: int) -> TierGift | None:
    """The tier's gift pack for the member, unless this member had it under these rules already."""
    if not step.gift_points and not step.gift_coupons:
        return None
    had = db.exec(select(TierGift).where(TierGift.member_id == member_id, TierGift.tier == step.tier,
                                         TierGift.rules_version == version)).first()
    if had is not None:
        return None
    gift = TierGift(member_id=member_id, tier=step.tier, rules_version=version, time=now, points=step.gift_points,
                    coupons=json.dumps(list(step.gift_coupons)))
    db.add(gift)
    db.flush()
    assert gift.id is not None
    for template in step.gift_coupons:
        db.add(CouponGrant(member_id=member_id, template_id=template, source="tier", source_id=gift.id, time=now))
    if step.gift_points:
        _deliver(db, actor, now, gift)
    return gift


def review_tiers(db: Session, now: int, actor: str = "tier-review", force: bool = False) -> TierReview | None:
    """Review every member under the newest rules; None when a review ran in this period already (and not force).

    Writes tier changes (history, audit, card actions), validity, gift packs and the review's own row to
    the caller's session; the caller commits. A second run at the same time changes nothing.
    """
    rules = current_rules(db)
    if rules is None:
        raise TierRuleError("no_rules", "no tier rules yet: save some first (hub tiers rules --set FILE)", 409)
    period = period_of(now, rules.review)
    if not force and db.exec(select(TierReview).where(TierReview.period == period)).first() is not None:
        return None
    members = list(db.exec(select(Member).order_by(col(Member.id))))
    values = activity(db, now - rules.window_days * DAY, now)
    until = _validity(db, rules, members)
    held = {v.member_id: v for v in db.exec(select(TierValidity))}
    run = TierReview(time=now, period=period, rules_version=rules.version, actor=actor, reviewed=len(members))
    for member in members:
        assert member.id is not None
        decision = review(member.tier, until[member.id], growth(rules, values[member.id]), rules, now)
        if decision.kind == "keep":
            continue
        if decision.kind in ("upgrade", "downgrade"):
            change_tier(db, actor, now, member, decision.tier, decision.reason, rules.version)
        if decision.kind == "upgrade":
            run.upgrades += 1
            step = rules.step(decision.tier)
            assert step is not None
            grant_gift(db, actor, now, member.id, step, rules.version)
        elif decision.kind == "downgrade":
            run.downgrades += 1
        else:
            run.renewals += 1
        row = held.get(member.id) or TierValidity(member_id=member.id, tier=0, until=0, rules_version=0)
        row.tier, row.until, row.rules_version = decision.tier, decision.until, rules.version
        db.add(row)
    # Gift points wait for a card when the member had none at the upgrade.
    for gift in db.exec(select(TierGift).where(TierGift.points > 0, col(TierGift.action_id).is_(None))):
        _deliver(db, actor, now, gift)
    db.add(run)
    db.flush()
    return run


def reviews(db: Session, limit: int = 50) -> list[TierReview]:
    return list(db.exec(select(TierReview).order_by(col(TierReview.id).desc()).limit(limit)))


def history(db: Session, member_id: int) -> list[TierChange]:
    return list(db.exec(select(TierChange).where(TierChange.member_id == member_id).order_by(col(TierChange.id))))
