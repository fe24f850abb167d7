"""Coupons at HQ: templates, issuing to a member or a group, delivery to the card, redemption (docs/coupons.md).

A template says what a coupon gives (fixed cents with a minimum spend, percent off, a gift
item) and how long it is valid. Issuing one to a member makes a Coupon row and a "coupon"
card action for the member's newest active card: the next handheld the card taps on puts it
into one of the card's two coupon slots (protocol.coupon). The card spends it: a sale marks it
used on the card in the same write as the money, so no second handheld takes it. The hub
marks it redeemed when that sale syncs; a second sale with the same coupon (only a cloned or
rolled-back card can make one) is anomaly coupon_redeemed_twice, naming both sales.

Tier gift packs and plan runs grant coupons as CouponGrant rows (by template);
deliver_grants() turns each into a coupon once the member has a card with a free slot, and
a grant's redeemed time follows its coupon's, so a plan sees who responded.

A replacement card gets the old card's unused coupons again (move_to_card(), called by
hub.cards when it records the replacement): the old row is marked moved to the new one.
When a late offline sale turns out to have used the old copy after all, the new copy is
voided (redeem()), so no coupon counts twice.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import Table, and_, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, func, select

from hub.downlink_queue import queue_action
from hub.masterdata import audit
from hub.models import Card, CardAction, Coupon, CouponGrant, CouponTemplate, Member, MemberTag, Product
from hub.refusal import Refusal

KINDS = {"fixed": 1, "percent": 2, "gift": 3}  # protocol.coupon's kind numbers
SLOTS = 2  # coupons a card holds at once (protocol.coupon)
DAY = 86400
MAX_VALUE = 0xFFFFFF  # the card keeps a value in 24 bits
MAX_DAYS = 3660
COUPONS: Table = Coupon.__table__  # type: ignore[attr-defined]
GRANTS: Table = CouponGrant.__table__  # type: ignore[attr-defined]
ACTIONS: Table = CardAction.__table__  # type: ignore[attr-defined]


class CouponError(Refusal):
    """A template or an issue refused: code and message say why; nothing was written."""


# -- the rules (pure) ---------------------------------------------------------------------------------


def parse_day(text: str | int | None) -> int:
    """'YYYY-MM-DD' (or a day number) -> days since 1970-01-01; '' or None -> 0."""
    if text in (None, "", 0):
        return 0
    if isinstance(text, int):
        return text
    try:
        return datetime.date.fromisoformat(text).toordinal() - datetime.date(1970, 1, 1).toordinal()
    except (TypeError, ValueError):
        raise CouponError("bad_template", f"a day is YYYY-MM-DD, got {text!r}") from None


def show_day(day: int) -> str:
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat() if day else ""


def check_template(kind: str, value: int, min_spend: int, valid_days: int, starts: int, ends: int) -> None:
    """CouponError with the reason when a template contradicts itself."""
    if kind not in KINDS:
        raise CouponError("bad_template", f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    for name, number in (("value", value), ("min_spend", min_spend), ("valid_days", valid_days)):
        if type(number) is not int or number < 0:
            raise CouponError("bad_template", f"{name} must be a whole number of 0 or more, got {number!r}")
    if kind == "percent" and not 1 <= value <= 10000:
        raise CouponError("bad_template", f"a percent coupon's value is basis points from 1 to 10000 (100 %), got {value}")
    if kind == "fixed" and not 1 <= value <= MAX_VALUE:
        raise CouponError("bad_template", f"a fixed coupon's value is cents from 1 to {MAX_VALUE}, got {value}")
    if kind == "gift" and not 1 <= value <= MAX_VALUE:
        raise CouponError("bad_template", f"a gift coupon's value is an item number from 1 to {MAX_VALUE}, got {value}")
    if min_spend > 0x7FFFFFFF:
        raise CouponError("bad_template", f"min_spend is at most {0x7FFFFFFF} cents, got {min_spend}")
    if not 1 <= valid_days <= MAX_DAYS:
        raise CouponError("bad_template", f"valid_days must be from 1 to {MAX_DAYS}, got {valid_days}")
    if ends and ends < starts:
        raise CouponError("bad_template", f"ends {show_day(ends)} is before starts {show_day(starts)}")
    if ends > 0xFFFF or starts > 0xFFFF:
        raise CouponError("bad_template", "starts and ends must be days before 2149")


def validity(t: CouponTemplate, day: int) -> tuple[int, int]:
    """(from, until) days of a coupon of template t issued on day: from its start (or day), valid_days long, not past ends."""
    start = max(day, t.starts)
    until = start + t.valid_days - 1
    if t.ends:
        until = min(until, t.ends)
    return start, until


def terms(c: Coupon) -> list[int]:
    """The coupon as the card and the downlink carry it: [id, kind, value, min_spend, from_day, until_day]."""
    return [c.id or 0, KINDS[c.kind], c.value, c.min_spend, c.valid_from, c.valid_until]


# -- templates ------------------------------------------------------------------------------------------


def add_template(db: Session, actor: str, now: int, name: str, kind: str, value: int, min_spend: int = 0,
                 valid_days: int = 30, starts: str | int | None = None, ends: str | int | None = None) -> CouponTemplate:
    """A new template, checked (a gift must be a product HQ sells); audited."""
    first, last = parse_day(starts), parse_day(ends)
    if not isinstance(name, str) or not name.strip() or len(name) > 80:
        raise CouponError("bad_template", "name must be 1 to 80 characters")
    check_template(kind, value, min_spend, valid_days, first, last)
    if kind == "gift" and db.get(Product, value) is None:
        raise CouponError("bad_template", f"gift item {value} is not a product")
    t = CouponTemplate(name=name.strip(), kind=kind, value=value, min_spend=min_spend, valid_days=valid_days,
                       starts=first, ends=last, created=now, actor=actor)
    db.add(t)
    db.flush()
    audit(db, actor, now, "add", t, str(t.id), None)
    return t


def templates(db: Session) -> list[CouponTemplate]:
    return list(db.exec(select(CouponTemplate).order_by(col(CouponTemplate.id))))


def template(db: Session, template_id: int) -> CouponTemplate:
    t = db.get(CouponTemplate, template_id)
    if t is None:
        raise CouponError("no_template", f"no coupon template {template_id}", 404)
    if not t.active:
        raise CouponError("inactive_template", f"coupon template {template_id} is not active", 409)
    return t


# -- issuing -------------------------------------------------------------------------------------------


def newest_card(db: Session, member_id: int) -> Card | None:
    return db.exec(
        select(Card).where(Card.member_id == member_id, Card.state == "active")
        .order_by(col(Card.issued).desc(), col(Card.card_no).desc())
    ).first()


def held(db: Session, card_no: str, day: int) -> int:
    """Coupons the card holds or will hold on day: issued to it, not redeemed, not expired (the hub's count errs high).

    A voided coupon still counts once its action reached the card: the card keeps it in a slot.
    """
    on_card = select(CardAction.id).where(CardAction.card_no == card_no, CardAction.state == "applied")
    return int(db.exec(select(func.count()).select_from(Coupon).where(
        Coupon.card_no == card_no, Coupon.redeemed == 0, col(Coupon.valid_until) >= day,
        col(Coupon.moved_to).is_(None), or_(col(Coupon.voided) == 0, col(Coupon.action_id).in_(on_card)))).one())


def why_not(db: Session, t: CouponTemplate, member_id: int, now: int) -> tuple[str, str]:
    """('', card number) when a coupon of t can go to the member now, else (code, reason)."""
    if db.get(Member, member_id) is None:
        return "no_member", f"no member {member_id}"
    card = newest_card(db, member_id)
    if card is None:
        return "no_card", f"member {member_id} has no active card"
    day = now // DAY
    if validity(t, day)[1] < max(day, t.starts):
        return "template_ended", f"template {t.id} ended on {show_day(t.ends)}"
    if held(db, card.card_no, day) >= SLOTS:
        return "card_full", f"card {card.card_no} holds {SLOTS} coupons not used yet (the most a card holds)"
    return "", card.card_no


def issue(db: Session, actor: str, now: int, template_id: int, member_id: int, grant_id: int | None = None) -> Coupon:
    """One coupon of the template for the member, on its way to their card; CouponError when it cannot go."""
    t = template(db, template_id)
    code, found = why_not(db, t, member_id, now)
    if code:
        raise CouponError(code, found, 409)
    first, until = validity(t, now // DAY)
    c = Coupon(template_id=template_id, member_id=member_id, card_no=found, kind=t.kind, value=t.value,
               min_spend=t.min_spend, valid_from=first, valid_until=until, issued=now, actor=actor, grant_id=grant_id)
    db.add(c)
    db.flush()
    action = queue_action(db, found, "coupon", now, actor, note=f"coupon {c.id} ({t.name})"[:120])
    c.action_id = action.id
    db.add(c)
    audit(db, actor, now, "issue", c, str(c.id), None)
    return c


def group(db: Session, tiers: list[int] | None = None, tags: list[str] | None = None) -> list[int]:
    """Members in any of the tiers (when given) and with any of the tags (when given)."""
    query = select(Member.id)
    if tiers:
        query = query.where(col(Member.tier).in_(tiers))
    if tags:
        query = query.where(col(Member.id).in_(select(MemberTag.member_id).where(col(MemberTag.tag).in_(tags))))
    return [int(i or 0) for i in db.exec(query.order_by(col(Member.id)))]


def issue_to(db: Session, actor: str, now: int, template_id: int, members: list[int]) -> dict[str, Any]:
    """A coupon for each member who can take one; the others are listed with the reason."""
    t = template(db, template_id)
    if not members:
        raise CouponError("empty_group", "the group has no members")
    issued, skipped = [], []
    for member_id in members:
        code, why = why_not(db, t, member_id, now)
        if code:
            skipped.append({"member": member_id, "code": code, "reason": why})
        else:
            issued.append(issue(db, actor, now, template_id, member_id).id)
    return {"template": template_id, "issued": issued, "skipped": skipped}


def deliver_grants(db: Session, actor: str, now: int) -> dict[str, Any]:
    """Turn coupon grants (tier gift packs, plan runs) into coupons; a grant that cannot go yet waits, with its reason."""
    done = select(Coupon.grant_id).where(col(Coupon.grant_id).is_not(None))
    grants = db.exec(select(CouponGrant).where(col(CouponGrant.id).not_in(done)).order_by(col(CouponGrant.id)))
    issued, waiting = [], []
    for g in list(grants):
        t = db.get(CouponTemplate, g.template_id)
        code, why = ("no_template", f"no active coupon template {g.template_id}") if t is None or not t.active else \
            why_not(db, t, g.member_id, now)
        if code:
            waiting.append({"grant": g.id, "member": g.member_id, "code": code, "reason": why})
        else:
            issued.append(issue(db, actor, now, g.template_id, g.member_id, grant_id=g.id).id)
    return {"issued": issued, "waiting": waiting}


def expire_past(db: Session, now: int) -> int:
    """Mark the coupons past their last day and never redeemed as expired (the hub's list); how many this time.

    Only a mark for people reading the list: the card refuses an expired coupon by its own dates, and a sale
    made on its last day that syncs later still redeems it (redeemed wins over expired in the list).
    """
    past = list(db.exec(select(Coupon).where(Coupon.valid_until < now // DAY, Coupon.redeemed == 0, Coupon.expired == 0)))
    for c in past:
        c.expired = now
        db.add(c)
    db.flush()
    return len(past)


# -- a replacement card -------------------------------------------------------------------------------


def movable(db: Session, card_no: str, day: int) -> list[Coupon]:
    """The card's coupons a replacement takes over: issued to it (on the card or on their way), unused, valid on day."""
    return list(db.exec(select(Coupon).where(
        Coupon.card_no == card_no, Coupon.redeemed == 0, Coupon.voided == 0, col(Coupon.moved_to).is_(None),
        col(Coupon.valid_until) >= day).order_by(col(Coupon.id))))


def move_to_card(db: Session, actor: str, now: int, old_card_no: str, new_card_no: str) -> list[Coupon]:
    """Issue each movable coupon of the old card again to the new one: same terms and dates, a new id on its way.

    The old row is marked moved_to the new one; a grant goes with it (the new copy fulfils it
    now). The caller has cancelled the old card's pending actions and commits with the rest
    of the replacement.
    """
    out = []
    for old in movable(db, old_card_no, now // DAY):
        grant_id, old.grant_id = old.grant_id, None
        db.add(old)
        db.flush()  # the grant's key is unique: free it before the copy takes it
        new = Coupon(template_id=old.template_id, member_id=old.member_id, card_no=new_card_no, kind=old.kind,
                     value=old.value, min_spend=old.min_spend, valid_from=old.valid_from, valid_until=old.valid_until,
                     issued=now, actor=actor, grant_id=grant_id)
        db.add(new)
        db.flush()
        action = queue_action(db, new_card_no, "coupon", now, actor, note=f"coupon {new.id} (moved from {old.id})")
        new.action_id = action.id
        before = old.model_dump()
        old.moved_to = new.id
        db.add_all([new, old])
        audit(db, actor, now, "move", old, str(old.id), before)
        out.append(new)
    return out


def count_coupons(db: Session, member_id: int | None = None) -> int:
    """How many coupons there are (of the member)."""
    query = select(func.count()).select_from(Coupon)
    if member_id is not None:
        query = query.where(Coupon.member_id == member_id)
    return int(db.exec(query).one())


def coupons(db: Session, member_id: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Coupons, newest first (the newest `limit`), with whether each reached its card."""
    query = select(Coupon, CardAction.state).outerjoin(CardAction, col(CardAction.id) == col(Coupon.action_id))
    if member_id is not None:
        query = query.where(Coupon.member_id == member_id)
    out = []
    for c, action_state in db.exec(query.order_by(col(Coupon.id).desc()).limit(limit)).all():
        state = "redeemed" if c.redeemed else "moved" if c.moved_to else "void" if c.voided else "expired" if c.expired \
            else "on card" if action_state == "applied" else "issued"
        out.append(c.model_dump() | {"state": state, "from": show_day(c.valid_from), "until": show_day(c.valid_until)})
    return out


# -- at ingest (Core: the ingest transaction's connection) -----------------------------------------------


def sale_terms(conn: Connection, coupon_id: int) -> list[int] | None:
    """The terms of the coupon a sale names, as the hub issued them (None: no such coupon)."""
    row = conn.execute(core_select(COUPONS).where(COUPONS.c.id == coupon_id)).first()
    if row is None:
        return None
    return [row.id, KINDS[row.kind], row.value, row.min_spend, row.valid_from, row.valid_until]


def redeem(conn: Connection, sale: dict[str, Any]) -> list[tuple[str, str]]:
    """Mark the coupon of a committed sale redeemed; [(anomaly code, detail)] when it does not add up."""
    where = f"{sale['device_id']} #{sale['seq']}"
    row = conn.execute(core_select(COUPONS).where(COUPONS.c.id == sale["coupon"])).first()
    if row is None:
        return [("coupon_unknown", f"sale {where} used coupon {sale['coupon']}, which the hub never issued")]
    out = []
    if row.redeemed:
        out.append(("coupon_redeemed_twice", f"coupon {row.id} used by {row.redeemed_device} #{row.redeemed_seq} "
                                             f"and again by {where}: a cloned or rolled-back card"))
        return out
    day = sale["time"] // DAY
    if not row.valid_from <= day <= row.valid_until:
        out.append(("coupon_out_of_date", f"coupon {row.id} valid {show_day(row.valid_from)} to "
                                          f"{show_day(row.valid_until)}, used by {where} on {show_day(day)}"))
    if row.card_no != sale["card_no"]:
        out.append(("coupon_other_card", f"coupon {row.id} went to card {row.card_no}, used by {where} on {sale['card_no']}"))
    conn.execute(update(COUPONS).where(COUPONS.c.id == row.id).values(
        redeemed=sale["time"], redeemed_device=sale["device_id"], redeemed_seq=sale["seq"]))
    if row.voided:
        out.append(("coupon_void_used", f"coupon {row.id} was voided (the coupon it replaced was used on the old card), "
                                        f"used by {where} all the same"))
    grant_id = row.grant_id
    if row.moved_to is not None:
        found, grant_id = used_after_move(conn, row, sale["time"], where)
        out += found
    if grant_id is not None:
        conn.execute(update(GRANTS).where(and_(GRANTS.c.id == grant_id, GRANTS.c.redeemed == 0))
                     .values(redeemed=sale["time"]))
    return out


def used_after_move(conn: Connection, row: Any, time: int, where: str) -> tuple[list[tuple[str, str]], int | None]:
    """A coupon moved to a replacement card was used on the old card after all: void the copy, or say why not.

    ([(anomaly code, detail)], the grant the copy fulfils). The copy not on the new card yet is
    voided and its action cancelled: nothing to look at. A copy on the card already is voided at
    the hub but stays on the card (a card's slot is never taken back), and a used copy means the
    coupon was used twice: both are anomalies.
    """
    copy = row
    while copy.moved_to is not None:  # replaced more than once: the copy on the newest card
        nxt = conn.execute(core_select(COUPONS).where(COUPONS.c.id == copy.moved_to)).first()
        if nxt is None:
            return [], None
        copy = nxt
    moved = f"coupon {row.id} moved to coupon {copy.id} on card {copy.card_no} when card {row.card_no} was replaced"
    if copy.redeemed:
        return [("coupon_used_after_move", f"{moved}; {copy.id} was used by {copy.redeemed_device} #{copy.redeemed_seq} "
                                           f"and {row.id} on the old card by {where}: used twice")], copy.grant_id
    conn.execute(update(COUPONS).where(COUPONS.c.id == copy.id).values(voided=time))
    cancelled = conn.execute(update(ACTIONS).where(and_(ACTIONS.c.id == copy.action_id, ACTIONS.c.state == "pending"))
                             .values(state="cancelled", note=func.substr(ACTIONS.c.note + f"; void: {row.id} used", 1, 120)))
    if cancelled.rowcount:
        return [], copy.grant_id
    return [("coupon_used_after_move", f"{moved}; {row.id} was used on the old card by {where}, and {copy.id} is on the "
                                       f"new card already: voided at the hub, the card keeps it")], copy.grant_id


def action_terms(db: Session, action_ids: list[int]) -> dict[int, list[int]]:
    """{card action id: the coupon it carries} for the coupon actions among action_ids (the downlink's eighth element)."""
    if not action_ids:
        return {}
    rows = db.exec(select(Coupon).where(col(Coupon.action_id).in_(action_ids)))
    return {int(c.action_id or 0): terms(c) for c in rows}
