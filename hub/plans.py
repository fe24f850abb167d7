"""Targeted plans: when a plan runs, whom it reaches, what it does; each run logged, and re-runs on the responses.

A plan is a JSON document, versioned (each change is a new version; a run records the
version it used):

    {"when": {"schedule": "monthly", "day": 1} | {"schedule": "weekly", "weekday": 0}
             | {"event": "joined" | "tier_upgraded" | "birthday_month"},
     "audience": {"tiers": [1, 2], "tags": ["coffee"], "rfm": ["at-risk"], "bought_within_days": 90,
                  "not_bought_within_days": 30, "shop": "north"},
     "actions": [{"coupon": 7}, {"notify": "Hello {name}, ..."},
                 {"price": {"shop": "north", "prices": {"101": 199}, "days": 7}}],
     "response_days": 14}

Every audience filter given must hold (within a list, any entry will do). A run reaches
the members the filters select (an event plan: those the event happened to since the
plan's last run), grants each a coupon (by template), queues each a notification, and a
price action sets a promotional price list for the shop for `days` (for everyone at that
shop, so only schedule plans may have one). A re-run reaches the members of an earlier
run who responded (bought within response_days after it, or redeemed a coupon it granted),
or who did not. docs/loyalty.md, "Tiers, tags and plans".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from hub.activity import DAY, activity
from hub.masterdata import add_price_list, audit, latest_prices, publish_prices, shop_prices
from hub.members import parse_tags
from hub.models import (
    Card,
    CouponGrant,
    Member,
    MemberTag,
    Notification,
    Plan,
    PlanRun,
    PlanRunMember,
    Product,
    Sale,
    Shop,
    Tier,
    TierChange,
)
from hub.refusal import Refusal
from hub.tags import PREFIX, SEGMENT_NAMES
from hub.tiers import period_of

SCHEDULES = ("monthly", "weekly")
EVENTS = ("joined", "tier_upgraded", "birthday_month")
AUDIENCE_KEYS = {"tiers", "tags", "rfm", "bought_within_days", "not_bought_within_days", "shop"}
ACTIONS = ("coupon", "notify", "price")
DEFAULT_RESPONSE_DAYS = 14
MAX_DAYS = 3660
MAX_TEXT = 500
MAX_NAME = 80


class PlanError(Refusal):
    """A plan, run or re-run the rules refuse; nothing was written."""


@dataclass(frozen=True)
class Audience:
    tiers: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    rfm: tuple[str, ...] = ()
    bought_within_days: int = 0
    not_bought_within_days: int = 0
    shop: str = ""


@dataclass(frozen=True)
class Spec:
    """A plan document, checked."""

    when: dict[str, Any]
    audience: Audience
    actions: tuple[dict[str, Any], ...]
    response_days: int

    @property
    def event(self) -> str:
        return str(self.when.get("event", ""))


@dataclass(frozen=True)
class Facts:
    """What the audience filters look at for one member."""

    tier: int
    tags: frozenset[str]
    last_purchase: int
    shops: frozenset[str] = frozenset()


# -- the plan document (pure) -----------------------------------------------------------------------


def _whole(value: Any, what: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise PlanError("bad_number", f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return value


def _when(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanError("bad_when", "when must be an object: {schedule: monthly|weekly, ...} or {event: ...}")
    if "event" in value:
        if set(value) != {"event"} or value["event"] not in EVENTS:
            raise PlanError("bad_when", f"an event plan's when is {{event: one of {', '.join(EVENTS)}}}, got {value!r}")
        return {"event": value["event"]}
    schedule = value.get("schedule")
    if schedule == "monthly" and set(value) <= {"schedule", "day"}:
        return {"schedule": "monthly", "day": _whole(value.get("day", 1), "day of the month", 1, 28)}
    if schedule == "weekly" and set(value) <= {"schedule", "weekday"}:
        return {"schedule": "weekly", "weekday": _whole(value.get("weekday", 0), "weekday (0 Monday)", 0, 6)}
    raise PlanError("bad_when",
                    f"when must be {{schedule: monthly, day}}, {{schedule: weekly, weekday}} or {{event}}, got {value!r}")


def _audience(value: Any) -> Audience:
    if not isinstance(value, dict) or set(value) - AUDIENCE_KEYS:
        raise PlanError("bad_audience", f"audience must be an object with keys from {sorted(AUDIENCE_KEYS)}, got {value!r}")
    tiers = value.get("tiers", [])
    if not isinstance(tiers, list):
        raise PlanError("bad_audience", "audience tiers must be a list of tier numbers")
    tiers = [_whole(t, "audience tier", 0, 255) for t in tiers]
    tags = value.get("tags", [])
    if not isinstance(tags, list):
        raise PlanError("bad_audience", "audience tags must be a list")
    try:
        tags = parse_tags(tags)
    except Refusal as exc:
        raise PlanError("bad_audience", f"audience tags: {exc.message}") from None
    rfm = value.get("rfm", [])
    if not isinstance(rfm, list) or any(s not in SEGMENT_NAMES for s in rfm):
        raise PlanError("bad_audience", f"audience rfm must list segments from {', '.join(SEGMENT_NAMES)}, got {rfm!r}")
    within = _whole(value.get("bought_within_days", 0), "bought_within_days", 0, MAX_DAYS)
    not_within = _whole(value.get("not_bought_within_days", 0), "not_bought_within_days", 0, MAX_DAYS)
    if within and not_within and not_within >= within:
        raise PlanError("bad_audience", f"no member bought within {within} days but not within {not_within}: "
                                        "not_bought_within_days must be fewer")
    shop = value.get("shop", "")
    if not isinstance(shop, str):
        raise PlanError("bad_audience", "audience shop must be a shop id")
    return Audience(tuple(sorted(set(tiers))), tuple(tags), tuple(sorted(set(rfm))), within, not_within, shop)


def _action(value: Any, event: str) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ACTIONS:
        raise PlanError("bad_action",
                        f"an action is one of {{coupon: template id}}, {{notify: text}}, {{price: ...}}; got {value!r}")
    kind, arg = next(iter(value.items()))
    if kind == "coupon":
        return {"coupon": _whole(arg, "coupon template id", 1, 2**31 - 1)}
    if kind == "notify":
        if not isinstance(arg, str) or not arg.strip() or len(arg) > MAX_TEXT:
            raise PlanError("bad_action",
                            f"a notification is a text of 1-{MAX_TEXT} characters ({{name}} becomes the member's name)")
        return {"notify": arg.strip()}
    if event:
        raise PlanError("bad_action", "a promotional price is for everyone at the shop: only a schedule plan may set one")
    if not isinstance(arg, dict) or set(arg) != {"shop", "prices", "days"}:
        raise PlanError("bad_action", "a price action is {price: {shop, prices: {item: cents}, days}}")
    prices = arg["prices"]
    if not isinstance(arg["shop"], str) or not arg["shop"] or not isinstance(prices, dict) or not prices:
        raise PlanError("bad_action", "a price action names a shop and at least one item's price")
    clean: dict[str, int] = {}
    for item, cents in prices.items():
        if not str(item).isdigit():
            raise PlanError("bad_action", f"price action: {item!r} is not an item number")
        clean[str(int(item))] = _whole(cents, f"promotional price of item {item} (cents)", 0, 10_000_000)
    return {"price": {"shop": arg["shop"], "prices": clean, "days": _whole(arg["days"], "promotion days", 1, 365)}}


def parse_plan(doc: Any) -> Spec:
    """Check a plan document and read it; PlanError says what is wrong."""
    if not isinstance(doc, dict) or set(doc) - {"when", "audience", "actions", "response_days"}:
        raise PlanError("bad_plan", "a plan is an object with when, audience, actions and response_days")
    when = _when(doc.get("when"))
    audience = _audience(doc.get("audience", {}))
    actions = doc.get("actions")
    if not isinstance(actions, list) or not actions:
        raise PlanError("bad_action", "a plan needs at least one action")
    response = _whole(doc.get("response_days", DEFAULT_RESPONSE_DAYS), "response_days", 1, 365)
    return Spec(when, audience, tuple(_action(a, str(when.get("event", ""))) for a in actions), response)


def plan_doc(spec: Spec) -> dict[str, Any]:
    a = spec.audience
    audience: dict[str, Any] = {k: v for k, v in (
        ("tiers", list(a.tiers)), ("tags", list(a.tags)), ("rfm", list(a.rfm)), ("bought_within_days", a.bought_within_days),
        ("not_bought_within_days", a.not_bought_within_days), ("shop", a.shop)) if v}
    return {"when": spec.when, "audience": audience, "actions": list(spec.actions), "response_days": spec.response_days}


def in_audience(m: Facts, a: Audience, now: int) -> bool:
    """Whether a member's facts pass every filter of the audience."""
    if a.tiers and m.tier not in a.tiers:
        return False
    if a.tags and not m.tags & set(a.tags):
        return False
    if a.rfm and not m.tags & {PREFIX + s for s in a.rfm}:
        return False
    bought = m.last_purchase > 0
    if a.bought_within_days and not (bought and now - m.last_purchase <= a.bought_within_days * DAY):
        return False
    if a.not_bought_within_days and bought and now - m.last_purchase <= a.not_bought_within_days * DAY:
        return False
    return not a.shop or a.shop in m.shops


def due(when: dict[str, Any], last: int | None, now: int) -> bool:
    """Whether a scheduled plan (or a birthday-month plan, monthly on day 1) should run now, having last run at last."""
    day = datetime.fromtimestamp(now, UTC).date()
    if when.get("schedule") == "weekly":
        return day.weekday() >= when["weekday"] and (last is None or period_of(last, "weekly") != period_of(now, "weekly"))
    first = when.get("day", 1)
    return day.day >= first and (last is None or period_of(last, "monthly") != period_of(now, "monthly"))


# -- plans in the database ----------------------------------------------------------------------------


def _check_refs(db: Session, spec: Spec) -> None:
    defined = set(db.exec(select(Tier.id))) | {0}
    for tier in spec.audience.tiers:
        if tier not in defined:
            raise PlanError("no_tier", f"audience names tier {tier}, which is not defined", 404)
    shops = [spec.audience.shop] if spec.audience.shop else []
    shops += [a["price"]["shop"] for a in spec.actions if "price" in a]
    for shop in shops:
        if db.get(Shop, shop) is None:
            raise PlanError("no_shop", f"no shop {shop!r}", 404)
    for action in spec.actions:
        for item in action.get("price", {}).get("prices", {}):
            if db.get(Product, int(item)) is None:
                raise PlanError("no_product", f"price action: no product {item}", 404)


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise PlanError("bad_name", f"a plan name is 1-{MAX_NAME} characters")
    return name


def add_plan(db: Session, actor: str, now: int, name: str, doc: Any) -> Plan:
    """A new plan, version 1 (audited)."""
    spec = parse_plan(doc)
    _check_refs(db, spec)
    last = db.exec(select(func.max(Plan.id))).one()
    plan = Plan(id=(last or 0) + 1, version=1, name=_name(name), body=json.dumps(plan_doc(spec), sort_keys=True),
                active=True, created=now, actor=actor)
    db.add(plan)
    audit(db, actor, now, "create", plan, f"{plan.id}@1", None)
    return plan


def current_plan(db: Session, plan_id: int) -> Plan:
    plan = db.exec(select(Plan).where(Plan.id == plan_id).order_by(col(Plan.version).desc())).first()
    if plan is None:
        raise PlanError("no_plan", f"no plan {plan_id}", 404)
    return plan


def change_plan(db: Session, actor: str, now: int, plan_id: int, name: str | None = None, doc: Any = None,
                active: bool | None = None) -> Plan:
    """The plan's next version with what changed (audited); the earlier versions stay as they were."""
    old = current_plan(db, plan_id)
    body = old.body
    if doc is not None:
        spec = parse_plan(doc)
        _check_refs(db, spec)
        body = json.dumps(plan_doc(spec), sort_keys=True)
    new = Plan(id=plan_id, version=old.version + 1, name=_name(name) if name is not None else old.name, body=body,
               active=old.active if active is None else active, created=now, actor=actor)
    if (new.name, new.body, new.active) == (old.name, old.body, old.active):
        return old
    db.add(new)
    audit(db, actor, now, "update", new, f"{plan_id}@{new.version}", old.model_dump())
    return new


def plans(db: Session) -> list[Plan]:
    """Every plan's current version."""
    newest = select(Plan.id, func.max(Plan.version)).group_by(col(Plan.id))
    keys = list(db.exec(newest))
    return [p for p in (db.get(Plan, (i, v)) for i, v in sorted(keys)) if p is not None]


def spec_of(plan: Plan) -> Spec:
    return parse_plan(json.loads(plan.body))


def runs(db: Session, plan_id: int, limit: int = 50) -> list[PlanRun]:
    return list(db.exec(select(PlanRun).where(PlanRun.plan_id == plan_id).order_by(col(PlanRun.id).desc()).limit(limit)))


def get_run(db: Session, run_id: int) -> PlanRun:
    run = db.get(PlanRun, run_id)
    if run is None:
        raise PlanError("no_run", f"no plan run {run_id}", 404)
    return run


def reached(db: Session, run_id: int) -> list[int]:
    """The members a run reached, by number."""
    found = select(PlanRunMember.member_id).where(PlanRunMember.run_id == run_id)
    return list(db.exec(found.order_by(col(PlanRunMember.member_id))))


# -- running ---------------------------------------------------------------------------------------------


def _since(db: Session, plan: Plan) -> int:
    """Events count from the plan's last run (not a re-run), else from when the plan was made."""
    last = db.exec(select(func.max(PlanRun.time)).where(PlanRun.plan_id == plan.id, PlanRun.trigger != "rerun")).one()
    if last is not None:
        return int(last)
    return int(db.exec(select(func.min(Plan.created)).where(Plan.id == plan.id)).one() or 0)


def _candidates(db: Session, plan: Plan, spec: Spec, now: int) -> list[int]:
    """The members a run looks at before the audience filters: an event's members, or everyone."""
    if spec.event == "joined":
        since = _since(db, plan)
        found = select(Member.id).where(Member.created > since, Member.created <= now)
    elif spec.event == "tier_upgraded":
        since = _since(db, plan)
        found = select(TierChange.member_id).where(TierChange.time > since, TierChange.time <= now,
                                                   TierChange.to_tier > TierChange.from_tier)
    elif spec.event == "birthday_month":
        month = f"-{datetime.fromtimestamp(now, UTC).month:02d}-"
        found = select(Member.id).where(func.substr(Member.birthday, 5, 4) == month)
    else:
        found = select(Member.id)
    return sorted({int(i) for i in db.exec(found) if i is not None})


def select_members(db: Session, audience: Audience, now: int, candidates: Iterable[int]) -> list[int]:
    """The candidates that pass the audience filters at now."""
    ids = list(candidates)
    if not ids:
        return []
    tiers = dict(db.exec(select(Member.id, Member.tier).where(col(Member.id).in_(ids))).all())
    tags: dict[int, set[str]] = {i: set() for i in ids}
    for row in db.exec(select(MemberTag).where(col(MemberTag.member_id).in_(ids))):
        tags[row.member_id].add(row.tag)
    last = activity(db, now, now, ids)  # an empty window: only the last purchase matters here
    shops: set[int] = set()
    if audience.shop:
        bought = select(Card.member_id).join(Sale, col(Sale.card_no) == col(Card.card_no)).where(
            Sale.shop == audience.shop, Sale.state == "committed", Sale.time <= now)
        shops = {int(i) for i in db.exec(bought.distinct())}
    out = []
    for i in ids:
        facts = Facts(tiers.get(i, 0), frozenset(tags[i]), last[i].last_purchase,
                      frozenset([audience.shop]) if i in shops else frozenset())
        if in_audience(facts, audience, now):
            out.append(i)
    return out


def _promote(db: Session, actor: str, now: int, price: dict[str, Any], note: str) -> list[int]:
    """A promotional price list for the shop from now, and one putting the prices back after the days; published now."""
    shop = price["shop"]
    before = {i["id"]: i["price"] for i in shop_prices(db, shop, now)["items"]}
    promo = {int(k): v for k, v in price["prices"].items()}
    unpriced = [item for item in promo if item not in before]
    if unpriced:
        raise PlanError("no_price",
                        f"product {unpriced[0]} is not sold at shop {shop} now: a promotion needs a price to return to")
    lists = [add_price_list(db, actor, now, promo, shop, now, note)]
    end = now + price["days"] * DAY
    lists.append(add_price_list(db, actor, now, {k: before[k] for k in promo}, shop, end, note + ": end"))
    if latest_prices(db, shop) is not None:  # a shop that publishes gets the promotion now
        publish_prices(db, actor, now, shop)
    return [pl.id or 0 for pl in lists]


def _execute(db: Session, actor: str, now: int, plan: Plan, spec: Spec, members: list[int], trigger: str,
             rerun_of: int | None = None) -> PlanRun:
    run = PlanRun(plan_id=plan.id, plan_version=plan.version, time=now, trigger=trigger, rerun_of=rerun_of,
                  reached=len(members), actor=actor)
    db.add(run)
    db.flush()
    assert run.id is not None
    names = dict(db.exec(select(Member.id, Member.name).where(col(Member.id).in_(members))).all())
    summary: dict[str, Any] = {"coupons": 0, "notifications": 0, "price_lists": []}
    for member_id in members:
        db.add(PlanRunMember(run_id=run.id, member_id=member_id))
    for action in spec.actions:
        if "coupon" in action:
            for member_id in members:
                db.add(CouponGrant(member_id=member_id, template_id=action["coupon"], source="plan", source_id=run.id, time=now))
            summary["coupons"] += len(members)
        elif "notify" in action:
            for member_id in members:
                text = action["notify"].replace("{name}", names.get(member_id, ""))[:MAX_TEXT]
                db.add(Notification(member_id=member_id, run_id=run.id, time=now, text=text))
            summary["notifications"] += len(members)
        elif "price" in action and rerun_of is None:  # a re-run reaches members; the shop's promotion is set already
            summary["price_lists"] += _promote(db, actor, now, action["price"], f"plan {plan.id} run {run.id}")
    run.summary = json.dumps(summary, sort_keys=True)
    db.add(run)
    audit(db, actor, now, "run", run, str(run.id), None)
    db.flush()
    return run


def run_plan(db: Session, actor: str, now: int, plan_id: int, trigger: str = "manual") -> PlanRun:
    """Run the plan now on its audience (an event plan: the members its event happened to since its last run)."""
    plan = current_plan(db, plan_id)
    if not plan.active:
        raise PlanError("inactive_plan", f"plan {plan_id} is switched off; switch it on to run it", 409)
    spec = spec_of(plan)
    members = select_members(db, spec.audience, now, _candidates(db, plan, spec, now))
    return _execute(db, actor, now, plan, spec, members, trigger)


def responders(db: Session, run: PlanRun, days: int) -> set[int]:
    """The members a run reached who bought within days after it, or redeemed a coupon it granted."""
    members = reached(db, run.id or 0)
    bought = select(Card.member_id).join(Sale, col(Sale.card_no) == col(Card.card_no)).where(
        col(Card.member_id).in_(members), Sale.state == "committed", Sale.time > run.time, Sale.time <= run.time + days * DAY)
    redeemed = select(CouponGrant.member_id).where(CouponGrant.source == "plan", CouponGrant.source_id == run.id,
                                                   CouponGrant.redeemed > 0)
    return {int(i) for i in db.exec(bought.distinct())} | {int(i) for i in db.exec(redeemed.distinct())}


def rerun(db: Session, actor: str, now: int, plan_id: int, run_id: int | None = None,
          non_responders: bool = False) -> PlanRun:
    """Run the plan's actions again on the members who responded to its last run (or run_id), or who did not."""
    plan = current_plan(db, plan_id)
    if not plan.active:
        raise PlanError("inactive_plan", f"plan {plan_id} is switched off; switch it on to run it", 409)
    spec = spec_of(plan)
    if run_id is None:
        last = db.exec(select(PlanRun).where(PlanRun.plan_id == plan_id).order_by(col(PlanRun.id).desc())).first()
        if last is None:
            raise PlanError("never_ran", f"plan {plan_id} has not run yet: there are no responses to run on", 409)
        prev = last
    else:
        prev = get_run(db, run_id)
        if prev.plan_id != plan_id:
            raise PlanError("other_plan", f"run {run_id} is a run of plan {prev.plan_id}, not of plan {plan_id}")
    answered = responders(db, prev, spec.response_days)
    members = [m for m in reached(db, prev.id or 0) if (m in answered) != non_responders]
    return _execute(db, actor, now, plan, spec, members, "rerun", rerun_of=prev.id)


def run_due_plans(db: Session, now: int, actor: str = "plans") -> list[PlanRun]:
    """Run every active plan that is due now: schedules once per period, events when they happened to someone."""
    done = []
    for plan in plans(db):
        if not plan.active:
            continue
        spec = spec_of(plan)
        if spec.event in ("joined", "tier_upgraded"):
            members = select_members(db, spec.audience, now, _candidates(db, plan, spec, now))
            if members:
                done.append(_execute(db, actor, now, plan, spec, members, "event"))
            continue
        last = db.exec(select(func.max(PlanRun.time)).where(PlanRun.plan_id == plan.id, PlanRun.trigger == "schedule")).one()
        if due(spec.when, None if last is None else int(last), now):
            members = select_members(db, spec.audience, now, _candidates(db, plan, spec, now))
            done.append(_execute(db, actor, now, plan, spec, members, "schedule"))
    return done
