"""Members: the rules of a profile (name, phone, birthday, category, tier, tags, photo) and the changes HQ makes.

The checks are pure functions. The changes write to the caller's session together with
their audit entries, and raise MemberError (nothing written) when the input is wrong;
the caller commits. Time and the actor are passed in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from hub.downlink_queue import queue_action
from hub.masterdata import audit, snapshot
from hub.models import (
    AuditEntry,
    Card,
    CardAction,
    LedgerEntry,
    Member,
    MemberCategory,
    MemberPhoto,
    MemberTag,
    Sale,
    Tier,
    TierChange,
)
from hub.refusal import Refusal

MANUAL = "manual"  # the tag source for tags HQ sets by hand; computed tags (RFM, ...) get their own source
MAX_NAME = 120
MAX_TAG = 32
MAX_TAGS = 20
MAX_REASON = 200
MAX_PHOTO_BYTES = 2 * 1024 * 1024
PHONE_DIGITS = (6, 15)  # E.164 allows at most 15
EARLIEST_BIRTHDAY = date(1900, 1, 1)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@")
PHOTO_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))
LEDGER_ACCOUNTS = ("stored_value", "points")  # the member's own accounts; cash and revenue are the shop's

_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")
_TAG = re.compile(r"[^\W_][\w.-]*")
_TAG_SPLIT = re.compile(r"[\s,;]+")


class MemberError(Refusal):
    """A member change the rules refuse; status is the HTTP status that says so."""


def commit(db: Session) -> None:
    """Commit; a clash the checks could not see (another writer took the phone meanwhile) becomes a MemberError."""
    try:
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        why = f"the change clashes with one made meanwhile; nothing was changed ({exc.orig})"
        raise MemberError("conflict", why, 409) from exc


# -- the checks (pure) ----------------------------------------------------------------------------


def today_of(now: int) -> date:
    return datetime.fromtimestamp(now, UTC).date()


def check_name(value: str) -> str:
    """A member's name: 1-120 printable characters, not starting like a spreadsheet formula."""
    name = " ".join(value.split())
    if not name:
        raise MemberError("bad_name", "the name is empty")
    if len(name) > MAX_NAME:
        raise MemberError("bad_name", f"the name is longer than {MAX_NAME} characters")
    if not name.isprintable():
        raise MemberError("bad_name", f"the name {name!r} has control characters")
    if name.startswith(FORMULA_START):
        raise MemberError("bad_name", f"the name {name!r} starts with {name[0]}; spreadsheets would run it as a formula")
    return name


def normalise_phone(value: str) -> str:
    """'+49 (151) 234-567' -> '+49151234567', '0049...' -> '+49...'; '' when none. Anything else is refused."""
    raw = value.strip()
    if not raw:
        return ""
    compact = _PHONE_SEPARATORS.sub("", raw)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not re.fullmatch(r"\+?[0-9]+", compact):
        raise MemberError("bad_phone", f"phone {raw!r} may hold only digits, a leading + and the separators - . / ( )")
    digits = compact.lstrip("+")
    lo, hi = PHONE_DIGITS
    if not lo <= len(digits) <= hi:
        count = f"{len(digits)} digit" + ("" if len(digits) == 1 else "s")
        raise MemberError("bad_phone", f"phone {raw!r} has {count}; a phone number has {lo} to {hi}")
    if compact.startswith("+0"):
        raise MemberError("bad_phone", f"phone {raw!r}: after + comes a country code, and none starts with 0")
    return compact


def parse_birthday(value: str, today: date) -> str:
    """An ISO date YYYY-MM-DD from 1900 to today; '' when not known."""
    raw = value.strip()
    if not raw:
        return ""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
        raise MemberError("bad_birthday", f"birthday {raw!r} is not a date written YYYY-MM-DD, e.g. 1990-04-23")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise MemberError("bad_birthday", f"birthday {raw} is not a day of the calendar") from None
    if day > today:
        raise MemberError("bad_birthday", f"birthday {raw} is in the future")
    if day < EARLIEST_BIRTHDAY:
        raise MemberError("bad_birthday", f"birthday {raw} is before {EARLIEST_BIRTHDAY.isoformat()}")
    return raw


def parse_tags(value: str | Iterable[str]) -> list[str]:
    """Tags from 'vip, coffee' or a list: lower case, sorted, once each; 1-32 letters, digits, - _ . (first a letter or digit)."""
    words = _TAG_SPLIT.split(value) if isinstance(value, str) else [w for v in value for w in _TAG_SPLIT.split(v)]
    tags = sorted({w.strip().lower() for w in words if w.strip()})
    for tag in tags:
        if len(tag) > MAX_TAG or not _TAG.fullmatch(tag):
            raise MemberError(
                "bad_tag", f"tag {tag!r} is not 1-{MAX_TAG} letters, digits, - _ . starting with a letter or digit"
            )
    if len(tags) > MAX_TAGS:
        raise MemberError("bad_tag", f"{len(tags)} tags; a member has at most {MAX_TAGS}")
    return tags


def check_tier(tier: Any, defined: set[int]) -> int:
    """A tier number: 0 (the base tier) or one HQ has defined."""
    if type(tier) is not int or not 0 <= tier <= 255:
        raise MemberError("bad_tier", f"tier must be a whole number from 0 to 255, got {tier!r}")
    if tier and tier not in defined:
        raise MemberError("no_tier", f"no tier {tier}: define it first (hub tier set {tier} ...)")
    return tier


def check_category(category_id: Any, defined: set[int]) -> int | None:
    """A member category HQ has defined, or None."""
    if category_id is None:
        return None
    if type(category_id) is not int or category_id not in defined:
        raise MemberError("no_category", f"no member category {category_id!r}: define it first (hub member-category set)")
    return category_id


def check_reason(value: str) -> str:
    reason = " ".join(value.split())
    if len(reason) > MAX_REASON:
        raise MemberError("bad_reason", f"the reason is longer than {MAX_REASON} characters")
    return reason


def photo_type(data: bytes) -> str:
    """The content type of a photo, by its first bytes: image/jpeg or image/png; anything else is refused."""
    if not data:
        raise MemberError("bad_photo", "the photo file is empty")
    if len(data) > MAX_PHOTO_BYTES:
        # Uploads are read only to one byte past the limit, so the true size is not known here.
        limit = f"{MAX_PHOTO_BYTES // 2**20} MiB ({MAX_PHOTO_BYTES:,} bytes)"
        raise MemberError("photo_too_large", f"the photo is larger than {limit}")
    for magic, content_type in PHOTO_TYPES:
        if data.startswith(magic) and (content_type != "image/png" or data[12:16] == b"IHDR"):
            return content_type
    raise MemberError("not_an_image", "the photo is not a JPEG or PNG image (judged by its first bytes)")


@dataclass(frozen=True)
class Limits:
    """What profile values are checked against besides themselves: the day, defined tiers and categories."""

    today: date
    tiers: set[int]
    categories: set[int]


def limits(db: Session, now: int) -> Limits:
    return Limits(
        today_of(now),
        set(db.exec(select(Tier.id))),
        set(db.exec(select(MemberCategory.id))),
    )


FIELDS = ("name", "phone", "birthday", "category_id", "tier", "tags")


def clean_profile(fields: dict[str, Any], lim: Limits) -> tuple[dict[str, Any], list[MemberError]]:
    """Check each field given (of FIELDS); the cleaned values and every problem found."""
    checks: dict[str, Any] = {
        "name": check_name,
        "phone": normalise_phone,
        "birthday": lambda v: parse_birthday(v, lim.today),
        "category_id": lambda v: check_category(v, lim.categories),
        "tier": lambda v: check_tier(v, lim.tiers),
        "tags": parse_tags,
    }
    clean: dict[str, Any] = {}
    problems: list[MemberError] = []
    for name, value in fields.items():
        if name not in checks:
            raise ValueError(f"not a profile field: {name}")
        try:
            clean[name] = checks[name](value)
        except MemberError as exc:
            problems.append(exc)
    return clean, problems


def _first(problems: list[MemberError]) -> None:
    """Raise the problems as one error (all their messages, the first's code)."""
    if problems:
        raise MemberError(problems[0].code, "; ".join(p.message for p in problems), problems[0].status)


# -- reading ---------------------------------------------------------------------------------------


def get_member(db: Session, member_id: int) -> Member:
    member = db.get(Member, member_id)
    if member is None:
        raise MemberError("no_member", f"no member {member_id}", 404)
    return member


def phone_owner(db: Session, phone: str) -> Member | None:
    return db.exec(select(Member).where(Member.phone == phone)).first() if phone else None


def tags_of(db: Session, member_ids: Iterable[int]) -> dict[int, list[MemberTag]]:
    """Each member's tags (every source), by tag."""
    ids = list(member_ids)
    out: dict[int, list[MemberTag]] = {i: [] for i in ids}
    for i in range(0, len(ids), 500):
        rows = db.exec(
            select(MemberTag).where(col(MemberTag.member_id).in_(ids[i : i + 500])).order_by(col(MemberTag.tag))
        )
        for row in rows:
            out[row.member_id].append(row)
    return out


def manual_tags(db: Session, member_id: int) -> list[str]:
    return [t.tag for t in tags_of(db, [member_id])[member_id] if t.source == MANUAL]


def has_photo(db: Session, member_id: int) -> bool:
    return db.exec(select(MemberPhoto.member_id).where(MemberPhoto.member_id == member_id)).first() is not None


def search(db: Session, q: str, limit: int = 50) -> list[Member]:
    """Members whose name holds q, whose phone or one of whose card numbers holds its digits, who have tag q, or number q."""
    text = " ".join(q.split())
    query = select(Member)
    if text:
        # SQLite's lower() folds ASCII letters only: look for the text as typed too ("Öberg").
        found: list[Any] = [
            func.lower(Member.name).contains(text.lower(), autoescape=True),
            col(Member.name).contains(text, autoescape=True),
        ]
        digits = re.sub(r"[^0-9]", "", text)
        phone_like = re.fullmatch(r"\+?[0-9\s\-./()]+", text) is not None
        if phone_like and len(digits) >= 3:
            found.append(col(Member.phone).contains(digits, autoescape=True))
            # '0151 ...' typed the national way finds '+49151...': without its trunk 0 it is the tail of the stored number.
            national = digits.lstrip("0")
            if len(national) >= 6 and national != digits:
                found.append(col(Member.phone).endswith(national, autoescape=True))
        if phone_like and len(digits) >= 4:
            found.append(col(Member.id).in_(select(Card.member_id).where(col(Card.card_no).contains(digits, autoescape=True))))
        if text.isdigit() and len(text) <= 18:
            found.append(Member.id == int(text))
        found.append(col(Member.id).in_(select(MemberTag.member_id).where(MemberTag.tag == text.lower())))
        query = query.where(or_(*found)).order_by(func.lower(Member.name), col(Member.id))
    else:
        query = query.order_by(col(Member.id).desc())  # nothing asked: the newest members
    return list(db.exec(query.limit(limit)))


def tier_names(db: Session) -> dict[int, str]:
    return {t.id: t.name for t in db.exec(select(Tier))}


def overview(db: Session, member_id: int, shop_id: str | None = None, rows: int = 50) -> dict[str, Any]:
    """Everything HQ sees of a member (the 360 view); shop_id limits the sales to one shop's."""
    member = get_member(db, member_id)
    category = db.get(MemberCategory, member.category_id) if member.category_id is not None else None
    cards = list(db.exec(select(Card).where(Card.member_id == member_id).order_by(col(Card.issued), col(Card.card_no))))
    numbers = [c.card_no for c in cards]
    pending: dict[str, int] = {}
    for action in db.exec(select(CardAction).where(col(CardAction.card_no).in_(numbers), CardAction.state == "pending")):
        pending[action.card_no] = pending.get(action.card_no, 0) + 1
    ledger = list(
        db.exec(
            select(LedgerEntry)
            .where(col(LedgerEntry.card_no).in_(numbers), col(LedgerEntry.account).in_(LEDGER_ACCOUNTS))
            .order_by(col(LedgerEntry.time).desc(), col(LedgerEntry.id).desc())
            .limit(rows)
        )
    )
    mine = or_(col(Sale.member_id) == member_id, col(Sale.card_no).in_(numbers))
    where = [mine] + ([Sale.shop == shop_id] if shop_id is not None else [])
    sales = list(db.exec(select(Sale).where(*where).order_by(col(Sale.time).desc(), col(Sale.id).desc()).limit(rows)))
    count, total = db.exec(
        select(func.count(), func.coalesce(func.sum(Sale.total), 0)).where(*where, Sale.state == "committed")
    ).one()
    history = list(
        db.exec(select(TierChange).where(TierChange.member_id == member_id).order_by(col(TierChange.id).desc()))
    )
    # A replaced card's balance and points moved to its successor: counting both would count them twice.
    holding = [c for c in cards if c.state != "replaced"]
    return {
        "member": member,
        "category": category,
        "tier_names": tier_names(db),
        "tags": tags_of(db, [member_id])[member_id],
        "has_photo": has_photo(db, member_id),
        "cards": cards,
        "pending_actions": pending,
        "balance": sum(c.balance for c in holding),
        "points": sum(c.points for c in holding),
        "ledger": ledger,
        "sales": sales,
        "sales_count": int(count),
        "sales_total": int(total),
        "tier_history": history,
    }


# -- changes -----------------------------------------------------------------------------------------


def _record(db: Session, actor: str, now: int, action: str, entity: str, key: str, before: Any, after: Any) -> None:
    """An audit entry for a change that is not one row (tags, a photo)."""
    db.add(
        AuditEntry(
            time=now, actor=actor, action=action, entity=entity, entity_key=key,
            before="" if before is None else json.dumps(before, sort_keys=True),
            after="" if after is None else json.dumps(after, sort_keys=True),
        )
    )


def _phone_free(db: Session, phone: str, member_id: int | None) -> None:
    other = phone_owner(db, phone)
    if other is not None and other.id != member_id:
        raise MemberError("phone_taken", f"phone {phone} belongs to member {other.id} ({other.name})", 409)


def add_member(
    db: Session,
    actor: str,
    now: int,
    name: str,
    phone: str = "",
    birthday: str = "",
    category_id: int | None = None,
    tier: int = 0,
    tags: Iterable[str] = (),
    member_id: int | None = None,
    lim: Limits | None = None,
) -> Member:
    """A new member (numbered member_id, else the next number); audited, tier and tags recorded as changes."""
    clean, problems = clean_profile(
        {"name": name, "phone": phone, "birthday": birthday, "category_id": category_id, "tier": tier, "tags": list(tags)},
        lim or limits(db, now),
    )
    _first(problems)
    if member_id is not None and db.get(Member, member_id) is not None:
        raise MemberError("member_exists", f"member {member_id} exists already", 409)
    _phone_free(db, clean["phone"], None)
    member = Member(
        id=member_id, name=clean["name"], phone=clean["phone"], birthday=clean["birthday"],
        category_id=clean["category_id"], created=now,
    )
    db.add(member)
    db.flush()  # the number, for the audit entry and the tags
    assert member.id is not None
    audit(db, actor, now, "create", member, str(member.id), None)
    if clean["tier"]:
        change_tier(db, actor, now, member, clean["tier"], "new member")
    if clean["tags"]:
        set_tags(db, actor, now, member, clean["tags"], new_member=True)
    return member


def update_member(db: Session, actor: str, now: int, member_id: int, changes: dict[str, Any]) -> Member:
    """Change some of name, phone, birthday, category_id; audited when anything changed."""
    if set(changes) - {"name", "phone", "birthday", "category_id"}:
        raise ValueError(f"not profile fields: {sorted(set(changes) - {'name', 'phone', 'birthday', 'category_id'})}")
    member = get_member(db, member_id)
    clean, problems = clean_profile(changes, limits(db, now))
    _first(problems)
    if "phone" in clean:
        _phone_free(db, clean["phone"], member_id)
    before = snapshot(member)
    for name, value in clean.items():
        setattr(member, name, value)
    if snapshot(member) != before:
        db.add(member)
        audit(db, actor, now, "update", member, str(member_id), before)
    return member


def change_tier(
    db: Session, actor: str, now: int, member: Member, tier: int, reason: str, rules_version: int = 0
) -> list[str] | None:
    """Set a member's tier: tier history, audit, and a "tier" card action for each active card.

    The cards that get the new tier at their next tap; None when the tier was the member's already.
    rules_version: the tier rules a review applied (hub.tiers); 0 for a change by hand.
    """
    tier = check_tier(tier, set(db.exec(select(Tier.id))))
    reason = check_reason(reason)
    if tier == member.tier:
        return None
    assert member.id is not None
    before = snapshot(member)
    change = TierChange(member_id=member.id, time=now, from_tier=member.tier, to_tier=tier, reason=reason, actor=actor,
                        rules_version=rules_version)
    member.tier = tier
    db.add(member)
    db.add(change)
    audit(db, actor, now, "tier", member, str(member.id), before)
    active = select(Card.card_no).where(Card.member_id == member.id, Card.state == "active")
    cards = list(db.exec(active.order_by(col(Card.card_no))))
    for card_no in cards:
        queue_action(db, card_no, "tier", now, actor, tier=tier, note=f"tier {change.from_tier} -> {tier}")
    db.flush()
    return cards


def set_tier(db: Session, actor: str, now: int, member_id: int, tier: int, reason: str = "") -> list[str] | None:
    return change_tier(db, actor, now, get_member(db, member_id), tier, reason)


def set_tags(
    db: Session, actor: str, now: int, member: Member, tags: Iterable[str], source: str = MANUAL, new_member: bool = False
) -> list[str]:
    """Make tags a member's whole set of tags from source (the others stay); audited when they changed.

    new_member: the member was just made and has no tags (saves a query a member when importing many).
    """
    assert member.id is not None
    wanted = parse_tags(list(tags))
    mine = select(MemberTag).where(MemberTag.member_id == member.id, MemberTag.source == source)
    rows = {} if new_member else {t.tag: t for t in db.exec(mine)}
    if sorted(rows) == wanted:
        return wanted
    for tag, row in rows.items():
        if tag not in wanted:
            db.delete(row)
    for tag in wanted:
        if tag not in rows:
            db.add(MemberTag(member_id=member.id, source=source, tag=tag, created=now))
    _record(db, actor, now, "tags", "membertag", str(member.id), {source: sorted(rows)}, {source: wanted})
    return wanted


def set_member_tags(db: Session, actor: str, now: int, member_id: int, tags: Iterable[str]) -> list[str]:
    return set_tags(db, actor, now, get_member(db, member_id), tags)


def set_photo(db: Session, actor: str, now: int, member_id: int, data: bytes) -> MemberPhoto:
    """Store a member's photo (JPEG or PNG by its first bytes, at most MAX_PHOTO_BYTES), replacing any before it."""
    get_member(db, member_id)
    content_type = photo_type(data)
    photo = db.get(MemberPhoto, member_id)
    before = None if photo is None else {"content_type": photo.content_type, "bytes": len(photo.data), "sha256": photo.sha256}
    digest = hashlib.sha256(data).hexdigest()
    if photo is None:
        photo = MemberPhoto(member_id=member_id, content_type=content_type, data=data, sha256=digest, uploaded=now)
    else:
        photo.content_type, photo.data, photo.sha256, photo.uploaded = content_type, data, digest, now
    db.add(photo)
    _record(db, actor, now, "photo", "memberphoto", str(member_id), before,
            {"content_type": content_type, "bytes": len(data), "sha256": digest})
    return photo


def remove_photo(db: Session, actor: str, now: int, member_id: int) -> bool:
    """Delete a member's photo; False when there was none."""
    get_member(db, member_id)
    photo = db.get(MemberPhoto, member_id)
    if photo is None:
        return False
    _record(db, actor, now, "delete", "memberphoto", str(member_id),
            {"content_type": photo.content_type, "bytes": len(photo.data), "sha256": photo.sha256}, None)
    db.delete(photo)
    return True
