"""Member cards at HQ: number batches, card states, the hotlist, top-ups, passwords, replacement and verification.

Every change here checks its input, then writes the change, its audit entry and what the
handhelds must learn (hotlist entries, card actions) in the caller's session; a refusal
raises CardOpError with nothing written. The caller commits. Time and the actor are
passed in. Writing a card at the desk is hub/issuance.py; docs/cards.md tells the lifecycle.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from hub import auth
from hub.coupons import move_to_card as move_coupons
from hub.downlink_queue import hotlist_change, queue_action
from hub.masterdata import audit, snapshot
from hub.models import (
    Anomaly,
    AuditEntry,
    Card,
    CardAction,
    CardStock,
    HotlistEntry,
    IssueAttempt,
    LedgerEntry,
    Member,
    Sale,
)
from hub.refusal import Refusal
from hub.stored_value import bonus_for, record_bonus
from protocol import card as layout
from protocol import cardno
from protocol.pricing import format_money

HQ_DEVICE = "hq"  # the device_id of ledger entries HQ posts itself
MAX_BATCH = 10_000  # card numbers in one batch
MAX_TOPUP = 1_000_000  # cents in one top-up at HQ (10,000.00)
MAX_OPENING = 1_000_000  # cents a card may be issued with
CARRIED = "; carried to "  # note of a pending action cancelled at a replacement, its value written on the new card
OFFSET = "; offset"  # ... and applied to the old card anyway, taken off again at settlement
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud at the desk
PASSWORD_LENGTH = 10

# What each state means; the lifecycle table in docs/cards.md says the same.
STATES = {
    "active": "in use: handhelds sell against it, the member logs in with it",
    "lost": "reported lost or stolen: on the hotlist, handhelds refuse it; unfreeze puts it back in use",
    "replaced": "a new card took its place: on the hotlist for good, its balance and points moved to the new card",
}
# (operation, state now) -> state after; every other pair is refused.
TRANSITIONS = {
    ("lost", "active"): "lost",
    ("unfreeze", "lost"): "active",
    ("replace", "active"): "replaced",
    ("replace", "lost"): "replaced",
}


class CardOpError(Refusal):
    """A card operation the rules refuse; status is the HTTP status that says so; nothing was changed."""


# -- pure rules ---------------------------------------------------------------------


def next_state(card_no: str, state: str, operation: str, replaced_by: str = "") -> str:
    """The state after operation, or CardOpError(illegal_state) saying why not."""
    after = TRANSITIONS.get((operation, state))
    if after is not None:
        return after
    if state == "replaced":
        why = f"card {card_no} was replaced by {replaced_by or 'another card'}; it stays on the hotlist for good"
    elif operation == "lost":
        why = f"card {card_no} is already reported lost"
    elif operation == "unfreeze":
        why = f"card {card_no} is {state}, not lost: there is nothing to unfreeze"
    else:
        why = f"card {card_no} is {state}: it cannot be {operation}d"
    raise CardOpError("illegal_state", why, 409)


def check_card_no(text: str) -> str:
    """A card number as typed: 16 digits (spaces allowed), else CardOpError(bad_card_no)."""
    number = "".join(str(text).split())
    if len(number) != cardno.LENGTH or not number.isdigit():
        raise CardOpError("bad_card_no", f"a card number is {cardno.LENGTH} digits, got {text!r}")
    return number


def parse_amount(text: str) -> int:
    """'12.50', '12.5' or '12' -> cents; a sign, letters or a third decimal are refused."""
    raw = str(text).strip()
    whole, dot, frac = raw.partition(".")
    if not whole.isdigit() or (dot and not (frac.isdigit() and 1 <= len(frac) <= 2)):
        raise CardOpError("bad_amount", f"{text!r} is not an amount like 12.50 (digits, a dot, at most 2 decimals)")
    return int(whole) * 100 + (int(frac.ljust(2, "0")) if frac else 0)


def new_password() -> str:
    """A card password for a member: 10 letters and digits that cannot be misread."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def check_password_rule(password: str) -> None:
    try:
        auth.check_new_password(password)
    except auth.AuthError as exc:
        raise CardOpError(exc.code, exc.message) from exc


def carried_values(balance: int, points: int, pending: list[CardAction]) -> tuple[int, int]:
    """What a replacement card is written with: the old card's hub balance and points plus its pending actions.

    Never below zero (a card holds no debt); what is left over is settled later by a transfer.
    """
    return (
        max(0, balance + sum(a.amount for a in pending)),
        max(0, points + sum(a.points for a in pending)),
    )


def applied_action_entries(action: CardAction) -> list[tuple[str, int, str]]:
    """(account, amount, memo) the ledger posts on the card when a handheld reports the action applied.

    A card action's card-side entries wait for the card: until then Card.balance is what
    the card holds and the action is listed as pending. (HQ's cash for a top-up is posted
    when it is paid: see topup().)
    """
    memo = f"{action.kind} #{action.number}"
    return [(account, amount, memo) for account, amount in (("stored_value", action.amount), ("points", action.points)) if amount]


def finding(level: str, code: str, message: str) -> dict[str, str]:
    return {"level": level, "code": code, "message": message}


def compare(
    uid: str,
    read: dict[str, Any] | None,
    read_error: tuple[str, str] | None,
    hub: dict[str, Any] | None,
    attempt: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """What the desk found on a card against what the hub holds: findings, each ok, warn or bad.

    read: the card as firmware.cardservice read it (ident, purse, torn), or None with
    read_error (code, message). hub: the hub's card for this UID (card fields plus
    "hotlisted" and "pending", a list of pending actions), or None.
    """
    out: list[dict[str, str]] = []
    if read is None:
        code, message = read_error or ("unreadable", "the card could not be read")
        if attempt is not None and hub is None:
            out.append(finding("warn", "unfinished", f"the desk was writing this card as {attempt['card_no']} when it was "
                               f"pulled away ({message}): an unfinished issue holds that number; issue it again to finish"))
        elif code == "blank_card":
            if hub is not None:
                out.append(finding("bad", "blank", f"the card is blank, but the hub issued UID {uid} as card {hub['card_no']}"))
            else:
                out.append(finding("ok", "blank", "a blank card: not issued, ready to issue"))
        elif code == "bad_mac":
            out.append(finding("bad", "bad_mac", "the card's data fails its MAC check: altered, copied to another chip, "
                               "or written under another master key"))
        elif code == "unknown_card":
            out.append(finding("bad", "foreign", f"not one of our cards: {message}"))
        else:
            out.append(finding("bad", code, message))
        if read is None and hub is not None and code != "blank_card":
            out.append(finding("warn", "hub_card", f"the hub knows UID {uid} as card {hub['card_no']} ({hub['state']})"))
        return out
    ident, purse = read["ident"], read["purse"]
    out.append(finding("ok", "mac", "the card's identity and purse pass their MAC checks"))
    if hub is None:
        where = " (an unfinished issue holds it: issue it again to finish)" if attempt else ""
        out.append(finding("bad", "unknown_card", f"the card says it is {ident['card_no']}, but the hub has no card "
                           f"with UID {uid}{where}"))
        return out
    if hub["uid"] != uid:
        out.append(finding("bad", "uid", f"card {hub['card_no']} was issued on UID {hub['uid']}, this chip is {uid}"))
    if ident["card_no"] != hub["card_no"]:
        out.append(finding("bad", "card_no", f"the card says it is {ident['card_no']}, the hub knows UID {uid} as "
                           f"{hub['card_no']}"))
    if ident["member_id"] != hub["member_id"]:
        out.append(finding("bad", "member", f"the card is for member {ident['member_id']}, the hub says member "
                           f"{hub['member_id']}"))
    if hub["state"] == "lost":
        out.append(finding("bad", "lost", f"card {hub['card_no']} is reported lost: handhelds refuse it"))
    elif hub["state"] == "replaced":
        out.append(finding("bad", "replaced", f"card {hub['card_no']} was replaced by {hub['replaced_by']}: handhelds "
                           "refuse it"))
    elif hub.get("hotlisted"):
        out.append(finding("bad", "hotlisted", f"card {hub['card_no']} is on the hotlist"))
    else:
        out.append(finding("ok", "state", f"card {hub['card_no']} is active and not on the hotlist"))
    if ident.get("blocked"):
        out.append(finding("warn", "blocked", "a handheld marked the card blocked (it refused it as hotlisted)"))
    counter, last = purse["counter"], hub["last_counter"]
    if counter < last:
        out.append(finding("bad", "counter_behind", f"the card's counter {counter} is behind the hub's {last}: "
                           "a rolled-back card or a copy"))
    elif counter > last:
        out.append(finding("warn", "not_synced", f"the card's counter {counter} is ahead of the hub's {last}: "
                           f"{counter - last} card transaction(s) not synced yet"))
    else:
        out.append(finding("ok", "counter", f"counter {counter}, as the hub last saw it"))
    pending = hub.get("pending", [])
    for what, field in (("balance", "balance"), ("points", "points")):
        on_card, on_hub = purse[field], hub[field]
        show = format_money if field == "balance" else str
        if on_card == on_hub:
            out.append(finding("ok", field, f"{what} {show(on_card)} on the card and on the hub"))
        elif counter > last:
            out.append(finding("warn", field, f"{what}: {show(on_card)} on the card, {show(on_hub)} on the hub "
                               "(the unsynced transactions explain it)"))
        else:
            out.append(finding("bad", field, f"{what}: {show(on_card)} on the card, {show(on_hub)} on the hub"))
    if ident["tier"] != hub["tier"] and not any(a["kind"] == "tier" for a in pending):
        out.append(finding("warn", "tier", f"tier {ident['tier']} on the card, {hub['tier']} on the hub"))
    for copy in read.get("torn", []):
        out.append(finding("warn", "torn", f"purse copy {copy} is torn (a write was cut off); the other copy holds"))
    if pending:
        listed = ", ".join(describe_action(a) for a in pending)
        out.append(finding("warn", "pending", f"{len(pending)} pending action(s) reach the card at its next tap on a "
                           f"handheld: {listed}"))
    return out


def describe_action(action: dict[str, Any]) -> str:
    parts = []
    if action["amount"]:
        parts.append(("+" if action["amount"] > 0 else "") + format_money(action["amount"]))
    if action["points"]:
        parts.append(f"{action['points']:+d} points")
    if action["kind"] == "tier":
        parts.append(f"tier {action['tier']}")
    return f"{action['kind']} #{action['number']} " + " ".join(parts)


# -- reading --------------------------------------------------------------------------


def get_card(db: Session, card_no: str) -> Card:
    """The card, or CardOpError(unknown_card) that says whether the number itself looks mistyped."""
    number = check_card_no(card_no)
    card = db.get(Card, number)
    if card is None:
        typo = "" if cardno.is_valid(number) else " (and its check digit is wrong: a typo?)"
        raise CardOpError("unknown_card", f"no card {number} on the hub{typo}", 404)
    return card


def card_by_uid(db: Session, uid: str) -> Card | None:
    return db.exec(select(Card).where(Card.uid == uid)).first()


def open_attempt(db: Session, uid: str) -> IssueAttempt | None:
    return db.exec(select(IssueAttempt).where(IssueAttempt.uid == uid, IssueAttempt.state == "writing")).first()


def is_hotlisted(db: Session, card_no: str) -> bool:
    last = db.exec(
        select(HotlistEntry).where(HotlistEntry.card_no == card_no).order_by(col(HotlistEntry.version).desc())
    ).first()
    return last is not None and last.listed


def pending_actions(db: Session, card_no: str) -> list[CardAction]:
    return list(
        db.exec(
            select(CardAction)
            .where(CardAction.card_no == card_no, CardAction.state == "pending")
            .order_by(col(CardAction.number))
        )
    )


def action_out(a: CardAction) -> dict[str, Any]:
    return a.model_dump()


def hub_view(db: Session, card: Card) -> dict[str, Any]:
    """The card as compare() and the pages see it: its fields, hotlisted, pending actions."""
    view = card.model_dump(exclude={"password_hash"})
    view["hotlisted"] = is_hotlisted(db, card.card_no)
    view["pending"] = [action_out(a) for a in pending_actions(db, card.card_no)]
    return view


def card_detail(db: Session, card: Card, sales: int = 20) -> dict[str, Any]:
    """Everything HQ's card page and the member's page show: state, money, pending actions, hotlist history, sales."""
    view = hub_view(db, card)
    member = db.get(Member, card.member_id)
    view["member_name"] = member.name if member is not None else ""
    view["state_meaning"] = STATES.get(card.state, "")
    view["has_password"] = bool(card.password_hash)
    view["pending_topups"] = sum(a["amount"] for a in view["pending"] if a["kind"] == "topup")
    view["hotlist"] = [
        e.model_dump()
        for e in db.exec(select(HotlistEntry).where(HotlistEntry.card_no == card.card_no).order_by(col(HotlistEntry.version)))
    ]
    actions = select(CardAction).where(CardAction.card_no == card.card_no).order_by(col(CardAction.number))
    view["actions"] = [action_out(a) for a in db.exec(actions)]
    view["replaces"] = [c.card_no for c in db.exec(select(Card).where(Card.replaced_by == card.card_no))]
    view["recent_sales"] = [
        s.model_dump()
        for s in db.exec(
            select(Sale).where(Sale.card_no == card.card_no).order_by(col(Sale.time).desc(), col(Sale.seq).desc()).limit(sales)
        )
    ]
    view["anomalies"] = [
        a.model_dump() for a in db.exec(select(Anomaly).where(Anomaly.card_no == card.card_no).order_by(col(Anomaly.id).desc()))
    ]
    return view


def batches(db: Session) -> list[dict[str, Any]]:
    """Each batch of card numbers: label, first and last number, how many in stock, reserved, issued."""
    rows = db.execute(
        sa_select(col(CardStock.batch), col(CardStock.state), func.count(), func.min(CardStock.card_no),
                  func.max(CardStock.card_no), func.min(CardStock.created))
        .group_by(col(CardStock.batch), col(CardStock.state))
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for label, state, count, first, last, created in rows:
        entry = out.setdefault(label, {"batch": label, "first": first, "last": last, "created": created, "count": 0,
                                       "stock": 0, "reserved": 0, "issued": 0})
        entry["count"] += count
        entry[state] = entry.get(state, 0) + count
        entry["first"], entry["last"] = min(entry["first"], first), max(entry["last"], last)
    return sorted(out.values(), key=lambda b: (b["created"], b["first"]))


def hotlist_now(db: Session) -> list[dict[str, Any]]:
    """The cards on the hotlist now (their newest entry lists them), newest first."""
    newest = select(HotlistEntry.card_no, func.max(HotlistEntry.version).label("v")).group_by(HotlistEntry.card_no).subquery()
    rows = db.exec(
        select(HotlistEntry).join(newest, col(HotlistEntry.version) == newest.c.v).where(HotlistEntry.listed == True)  # noqa: E712
        .order_by(col(HotlistEntry.version).desc())
    ).all()
    return [r.model_dump() for r in rows]


def unfinished_issues(db: Session) -> list[IssueAttempt]:
    return list(db.exec(select(IssueAttempt).where(IssueAttempt.state == "writing").order_by(col(IssueAttempt.id))))


# -- changes --------------------------------------------------------------------------


def make_batch(db: Session, actor: str, now: int, prefix: str, start: int, count: int) -> list[str]:
    """Put count sequential card numbers into stock as one batch: all of them or, on any clash, none."""
    if type(count) is not int or not 1 <= count <= MAX_BATCH:
        raise CardOpError("bad_batch", f"a batch holds 1 to {MAX_BATCH} card numbers, got {count!r}")
    if type(start) is not int or start < 0:
        raise CardOpError("bad_batch", f"the first serial must be a whole number from 0, got {start!r}")
    try:
        numbers = cardno.batch(prefix, start, count)
    except ValueError as exc:
        raise CardOpError("bad_batch", str(exc)) from exc
    taken: list[str] = []
    for i in range(0, len(numbers), 500):
        taken += db.exec(select(CardStock.card_no).where(col(CardStock.card_no).in_(numbers[i : i + 500]))).all()
    if taken:
        raise CardOpError(
            "duplicate_numbers",
            f"{len(taken)} of these card numbers exist already (first {min(taken)}); nothing was added",
            409,
        )
    label = f"{prefix}:{start}+{count}@{now}"
    db.add_all([CardStock(card_no=n, batch=label, created=now) for n in numbers])
    summary = {"batch": label, "first": numbers[0], "last": numbers[-1], "count": count}
    db.add(AuditEntry(time=now, actor=actor, action="batch", entity="cardstock", entity_key=label,
                      after=json.dumps(summary, sort_keys=True)))
    return numbers


def mark_lost(db: Session, actor: str, now: int, card_no: str) -> Card:
    """Report a card lost: it goes on the hotlist, and every handheld refuses it once it learns."""
    return _hotlist_move(db, actor, now, card_no, "lost", True, "lost")


def unfreeze(db: Session, actor: str, now: int, card_no: str) -> Card:
    """A lost card found again: off the hotlist and back in use."""
    return _hotlist_move(db, actor, now, card_no, "unfreeze", False, "found")


def _hotlist_move(db: Session, actor: str, now: int, card_no: str, operation: str, listed: bool, reason: str) -> Card:
    """One change of the state table that puts the card on the hotlist or takes it off; audited."""
    card = get_card(db, card_no)
    before = snapshot(card)
    card.state = next_state(card.card_no, card.state, operation, card.replaced_by)
    db.add(card)
    hotlist_change(db, card.card_no, card.uid, listed, reason, now)
    audit(db, actor, now, operation, card, card.card_no, before)
    return card


def topup(db: Session, actor: str, now: int, card_no: str, amount: int) -> CardAction:
    """A top-up paid at HQ: HQ's cash is posted now; the card gets it at its next tap on a handheld (a pending action)."""
    card = get_card(db, card_no)
    if card.state == "replaced":
        raise CardOpError("illegal_state", f"card {card.card_no} was replaced by {card.replaced_by}: top up that card", 409)
    if card.state != "active":
        raise CardOpError("illegal_state", f"card {card.card_no} is {card.state}: no handheld would take it to apply a "
                          "top-up; unfreeze or replace it first", 409)
    if type(amount) is not int or not 1 <= amount <= MAX_TOPUP:
        raise CardOpError("bad_amount", f"a top-up is 0.01 to {format_money(MAX_TOPUP)}, got "
                          f"{format_money(amount) if type(amount) is int else repr(amount)}")
    bonus, rules = bonus_for(db, amount, now)  # the card gets paid + bonus; HQ's cash is what was paid
    pending = sum(a.amount for a in pending_actions(db, card.card_no))
    if card.balance + pending + amount + bonus > layout.MAX_BALANCE:
        raise CardOpError("bad_amount", "the card cannot hold that much stored value")
    action = queue_action(db, card.card_no, "topup", now, actor, amount=amount + bonus,
                          note=f"paid at HQ; bonus {format_money(bonus)}" if bonus else "paid at HQ")
    record_bonus(db, action, amount, bonus, rules, now)
    db.add(LedgerEntry(time=now, device_id=HQ_DEVICE, seq=action.id or 0, card_no=card.card_no, account="cash",
                       amount=amount, memo=f"topup #{action.number} paid at HQ"))
    audit(db, actor, now, "topup", action, f"{card.card_no}#{action.number}", None)
    return action


def reset_password(db: Session, actor: str, now: int, card_no: str, password: str | None = None) -> str:
    """HQ sets a member's card password (a generated one unless given); the password, to be shown once."""
    card = get_card(db, card_no)
    if card.state == "replaced":
        raise CardOpError("illegal_state", f"card {card.card_no} was replaced by {card.replaced_by}: set the password "
                          "of that card", 409)
    password = new_password() if password is None else password
    check_password_rule(password)
    before = snapshot(card)
    card.password_hash = auth.hash_password(password)
    db.add(card)
    audit(db, actor, now, "password", card, card.card_no, before)
    return password


def change_password(db: Session, actor: str, now: int, own_card_no: str, card_no: str, old: str, new: str) -> Card:
    """A member changes their own card's password: the old one first."""
    card = get_card(db, card_no)
    if card.card_no != own_card_no:
        raise CardOpError("not_your_card", "a member may change the password of their own card only", 403)
    if not auth.check_password(card.password_hash, old):
        raise CardOpError("wrong_password", "the current password is wrong; nothing was changed", 403)
    check_password_rule(new)
    before = snapshot(card)
    card.password_hash = auth.hash_password(new)
    db.add(card)
    audit(db, actor, now, "password", card, card.card_no, before)
    return card


def plan_replacement(db: Session, card_no: str) -> tuple[Card, int, int, int]:
    """(old card, tier, balance, points) of the card that replaces card_no; refused when it cannot be replaced."""
    old = get_card(db, card_no)
    next_state(old.card_no, old.state, "replace", old.replaced_by)
    member = db.get(Member, old.member_id)
    tier = member.tier if member is not None else old.tier
    balance, points = carried_values(old.balance, old.points, pending_actions(db, old.card_no))
    return old, tier, balance, points


def record_issue(db: Session, actor: str, now: int, attempt: IssueAttempt, password_hash: str) -> Card:
    """The card the desk wrote and read back, recorded: the card, its opening ledger, its number out of stock.

    For a replacement, also the old card: replaced, on the hotlist, its pending actions
    cancelled and carried, its balance, points and unused coupons moved to the new card
    (settle_card() queues whatever is left over).
    """
    card = Card(
        card_no=attempt.card_no, uid=attempt.uid, member_id=attempt.member_id, tier=attempt.tier,
        balance=attempt.balance, points=attempt.points, opening_counter=0, opening_balance=attempt.balance,
        opening_points=attempt.points, state="active", password_hash=password_hash, issued=now,
    )
    db.add(card)
    old: Card | None = None
    if attempt.replaces:
        old = get_card(db, attempt.replaces)
        before = snapshot(old)
        old.state = next_state(old.card_no, old.state, "replace", old.replaced_by)
        old.replaced_by = card.card_no
        if not password_hash:
            card.password_hash = old.password_hash
        for action in pending_actions(db, old.card_no):
            # Its value is written on the new card; on the old one it is posted and moved with the rest.
            action.state = "cancelled"
            action.note = f"{action.note}{CARRIED}{card.card_no}"[:120]
            db.add(action)
            for account, amount, memo in applied_action_entries(action):
                _post(db, now, old, account, amount, f"{memo} carried to new card")
        _post(db, now, old, "stored_value", -attempt.balance, f"moved to {card.card_no}")
        _post(db, now, old, "points", -attempt.points, f"moved to {card.card_no}")
        move_coupons(db, actor, now, old.card_no, card.card_no)
        db.add(old)
        hotlist_change(db, old.card_no, old.uid, True, "replaced", now)
        audit(db, actor, now, "replace", old, old.card_no, before)
    memo = f"moved from {attempt.replaces}" if attempt.replaces else "issued"
    for account, amount in (("stored_value", attempt.balance), ("points", attempt.points)):
        if amount:
            db.add(LedgerEntry(time=now, device_id=HQ_DEVICE, seq=0, card_no=card.card_no, account=account,
                               amount=amount, memo=memo))
    stock = db.get(CardStock, attempt.card_no)
    if stock is not None:
        stock.state = "issued"
        db.add(stock)
    attempt.state = "written"
    attempt.updated = now
    db.add(attempt)
    audit(db, actor, now, "issue", card, card.card_no, None)
    if old is not None:
        db.flush()
        settle_card(db, actor, now, old)
    return card


def _post(db: Session, now: int, card: Card, account: str, amount: int, memo: str) -> None:
    """One HQ ledger entry on card, and the card's running total with it."""
    if not amount:
        return
    db.add(LedgerEntry(time=now, device_id=HQ_DEVICE, seq=0, card_no=card.card_no, account=account, amount=amount,
                       memo=memo[:40]))
    column = {"stored_value": "balance", "points": "points"}.get(account)
    if column is not None:
        # An increment in SQL, not the value this session read: a sale ingested meanwhile is not lost.
        db.execute(update(Card).where(col(Card.card_no) == card.card_no).values({column: getattr(Card, column) + amount}))
        db.expire(card, [column])


def current_card(db: Session, card: Card) -> Card:
    """The card that now stands for card: follow replaced_by to the end."""
    seen = {card.card_no}
    while card.state == "replaced" and card.replaced_by:
        nxt = db.get(Card, card.replaced_by)
        if nxt is None or nxt.card_no in seen:
            break
        seen.add(nxt.card_no)
        card = nxt
    return card


def settle_card(db: Session, actor: str, now: int, old: Card) -> CardAction | None:
    """Move what a replaced card still holds on the hub to the card that replaced it, as a pending transfer.

    After a replacement the old card's hub balance is 0; sales it made offline before it
    was blocked (synced later) take it below, a late top-up it applied above. The
    difference goes onto the newest card as a "transfer" action, taken off (or added) at
    its next tap; the old card's ledger is brought back to 0 in the same transaction.
    """
    if old.state != "replaced":
        return None
    db.flush()
    db.refresh(old)  # the balance as stored now (sales of it may have been ingested since it was read)
    target = current_card(db, old)
    for late in db.exec(select(CardAction).where(CardAction.card_no == old.card_no, CardAction.state == "applied")):
        # Cancelled at the replacement and carried onto the new card, then applied to the old card
        # anyway by a handheld that had not heard yet: the new card has that value already.
        if CARRIED in late.note and OFFSET not in late.note:
            for account, amount, memo in applied_action_entries(late):
                _post(db, now, old, account, -amount, f"{memo} was carried already")
            late.note = f"{late.note}{OFFSET}"[:120]
            db.add(late)
    if old.balance == 0 and old.points == 0:
        return None
    if target.card_no == old.card_no:
        return None
    amount, points = old.balance, old.points
    action = queue_action(db, target.card_no, "transfer", now, actor, amount=amount, points=points,
                          note=f"settles {old.card_no} after its replacement")
    _post(db, now, old, "stored_value", -amount, f"settled to {target.card_no}")
    _post(db, now, old, "points", -points, f"settled to {target.card_no}")
    audit(db, actor, now, "settle", action, f"{target.card_no}#{action.number}", None)
    return action


def settle_replaced(db: Session, actor: str, now: int) -> list[CardAction]:
    """settle_card() for every replaced card the hub still holds value on (run after syncs)."""
    out = []
    for old in db.exec(
        select(Card).where(Card.state == "replaced", (col(Card.balance) != 0) | (col(Card.points) != 0))
    ).all():
        action = settle_card(db, actor, now, old)
        if action is not None:
            out.append(action)
    return out
