"""Members in and out of CSV files: the export, and an import that takes a whole file or nothing of it.

A file is read (read_rows), every row checked against the others and the database
(plan_import, pure), and only when no row is bad written in the caller's transaction
(import_members). Each bad row is reported by its line in the file and what is wrong.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text as sql
from sqlmodel import Session, col, select

from hub import members as rules
from hub.masterdata import audit, snapshot
from hub.models import Member, MemberTag

COLUMNS = ("id", "name", "phone", "birthday", "category", "tier", "tags")
REQUIRED = ("name",)
MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
BOM = "\ufeff"
IMPORT_REASON = "CSV import"


@dataclass(frozen=True)
class BadRow:
    """One line of a file (0: the file as a whole) and everything wrong with it."""

    line: int
    problems: tuple[str, ...]

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "the file"
        return f"{where}: {'; '.join(self.problems)}"


class ImportRefused(rules.MemberError):
    """A file with bad rows (or that is no CSV at all); nothing of it was imported."""

    def __init__(self, bad: list[BadRow]) -> None:
        rows = "row" if len(bad) == 1 else "rows"
        super().__init__("bad_csv", f"nothing was imported: {len(bad)} bad {rows}: " + " | ".join(map(str, bad)))
        self.bad = bad


@dataclass(frozen=True)
class Planned:
    """A good row: the member it is (None: a new one numbered by the hub) and its checked values."""

    line: int
    member_id: int | None
    values: dict[str, Any]


@dataclass(frozen=True)
class Known:
    """What the database holds that a file is checked against."""

    limits: rules.Limits
    phones: dict[str, int]  # phone -> the member holding it


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    lines: int = 0  # rows read (blank ones not counted)


def read_rows(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header's column names (lower case) and each non-blank row with the line it starts on."""
    if len(data) > MAX_BYTES:
        raise ImportRefused([BadRow(0, (f"the file has {len(data):,} bytes; at most {MAX_BYTES:,}: split it",))])
    try:
        text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRefused(
            [BadRow(line, (f"byte 0x{data[exc.start]:02X} is not UTF-8 text: save the file as CSV UTF-8",))]
        ) from None
    first = text.split("\n", 1)[0]
    # Excel in many European locales separates with semicolons.
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []
    last = 0
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((last + 1, cells))
            last = reader.line_num
            if len(rows) > MAX_ROWS + 1:
                raise ImportRefused([BadRow(last, (f"the file has more than {MAX_ROWS:,} rows: split it",))])
    except csv.Error as exc:
        raise ImportRefused([BadRow(reader.line_num, (f"not readable as CSV: {exc}",))]) from None
    if not rows:
        raise ImportRefused([BadRow(1, (f"the file is empty; it needs a header row: {','.join(COLUMNS)}",))])
    header_line, header = rows[0]
    names = [h.strip().lower() for h in header]
    problems = [f"unknown column {n!r} (the columns are {', '.join(COLUMNS)})" for n in names if n not in COLUMNS]
    problems += [f"column {n!r} appears twice" for n in sorted({n for n in names if names.count(n) > 1})]
    problems += [f"the header has no {n!r} column" for n in REQUIRED if n not in names]
    if problems:
        raise ImportRefused([BadRow(header_line, tuple(problems))])
    return names, rows[1:]


def _number(text: str, what: str, lo: int, hi: int) -> int:
    if not text.isascii() or not text.isdigit() or not lo <= int(text) <= hi:
        raise rules.MemberError("bad_number", f"{what} {text!r} is not a whole number from {lo} to {hi}")
    return int(text)


def plan_import(names: list[str], rows: list[tuple[int, list[str]]], known: Known) -> tuple[list[Planned], list[BadRow]]:
    """Check every row (alone, against the other rows, against the database); the good rows and every bad one."""
    planned: list[Planned] = []
    bad: list[BadRow] = []
    id_line: dict[int, int] = {}
    phone_line: dict[str, int] = {}
    line_id: dict[int, int | None] = {}
    for line, cells in rows:
        if len(cells) != len(names):
            bad.append(BadRow(line, (f"has {len(cells)} fields; the header has {len(names)}",)))
            continue
        cell = {n: c.strip() for n, c in zip(names, cells, strict=True)}
        problems: list[str] = []
        member_id = None
        if cell.get("id"):
            try:
                member_id = _number(cell["id"], "id", 1, 2**31 - 1)  # an INTEGER column on every database
            except rules.MemberError as exc:
                problems.append(exc.message)
        fields: dict[str, Any] = {"name": cell["name"]}
        for column in ("phone", "birthday", "tags"):
            if column in cell:
                fields[column] = cell[column]
        for column, key, blank in (("category", "category_id", None), ("tier", "tier", "keep")):
            if column in cell and cell[column]:
                try:
                    fields[key] = _number(cell[column], column, 0, 255)
                except rules.MemberError as exc:
                    problems.append(exc.message)
            elif column in cell and blank != "keep":
                fields[key] = blank
        values, errors = rules.clean_profile(fields, known.limits)
        problems += [e.message for e in errors]
        if member_id is not None:
            if member_id in id_line:
                problems.append(f"member id {member_id} is also on line {id_line[member_id]}")
            else:
                id_line[member_id] = line
        line_id[line] = member_id
        phone = values.get("phone", "")
        if phone:
            if phone in phone_line:
                problems.append(f"phone {phone} is also on line {phone_line[phone]}")
            else:
                phone_line[phone] = line
        if problems:
            bad.append(BadRow(line, tuple(problems)))
        else:
            planned.append(Planned(line, member_id, values))
    # A phone clashes with the database unless its holder is a row of this file (which then states their phone).
    restated = set(id_line) if "phone" in names else set()
    for phone, line in phone_line.items():
        holder = known.phones.get(phone)
        if holder is not None and holder != line_id[line] and holder not in restated:
            bad.append(BadRow(line, (f"phone {phone} belongs to member {holder}, who is not in this file",)))
    bad.sort(key=lambda b: b.line)
    merged: list[BadRow] = []
    for b in bad:  # one report per line
        if merged and merged[-1].line == b.line:
            merged[-1] = BadRow(b.line, merged[-1].problems + b.problems)
        else:
            merged.append(b)
    bad_lines = {b.line for b in merged}
    return [p for p in planned if p.line not in bad_lines], merged


def import_members(db: Session, actor: str, now: int, data: bytes) -> ImportResult:
    """Import a CSV file into the caller's session: all its rows, or ImportRefused and nothing at all."""
    names, rows = read_rows(data)
    known = Known(rules.limits(db, now), {m.phone: m.id or 0 for m in db.exec(select(Member).where(Member.phone != ""))})
    planned, bad = plan_import(names, rows, known)
    if bad:
        raise ImportRefused(bad)
    result = ImportResult(lines=len(rows))
    ids = [p.member_id for p in planned if p.member_id is not None]
    existing: dict[int, Member] = {}
    for i in range(0, len(ids), 500):
        existing.update({m.id or 0: m for m in db.exec(select(Member).where(col(Member.id).in_(ids[i : i + 500])))})
    # Phones that move between members in this file are let go first: the unique index must never see two holders.
    stated = {p.member_id: p.values["phone"] for p in planned if "phone" in p.values}
    moving = [m for m in existing.values() if m.phone and m.id in stated and stated[m.id] != m.phone]
    before_phone = {m.id: m.phone for m in moving}
    for member in moving:
        member.phone = ""
        db.add(member)
    db.flush()
    # New members in bulk: the per-row way (hub.members.add_member) takes minutes for a file of many thousands.
    fresh = [p for p in planned if p.member_id is None or p.member_id not in existing]
    made = [
        Member(id=p.member_id, name=p.values["name"], phone=p.values.get("phone", ""), birthday=p.values.get("birthday", ""),
               category_id=p.values.get("category_id"), created=now)
        for p in fresh
    ]
    db.add_all(made)
    db.flush()  # their numbers
    for plan, new in zip(fresh, made, strict=True):
        audit(db, actor, now, "create", new, str(new.id), None)
        if plan.values.get("tags"):
            rules.set_tags(db, actor, now, new, plan.values["tags"], new_member=True)
        if plan.values.get("tier"):
            rules.change_tier(db, actor, now, new, plan.values["tier"], "new member")
    result.created = len(fresh)
    tags_now = {i: [t.tag for t in ts if t.source == rules.MANUAL] for i, ts in rules.tags_of(db, list(existing)).items()}
    for plan in planned:
        old = existing.get(plan.member_id or 0)
        if old is None:
            continue
        try:
            changed = _update(db, actor, now, plan, old, before_phone.get(old.id), tags_now[old.id or 0])
        except rules.MemberError as exc:  # the database changed since the check (another writer): still nothing
            raise ImportRefused([BadRow(plan.line, (exc.message,))]) from None
        if changed:
            result.updated += 1
        else:
            result.unchanged += 1
    db.flush()
    if ids and db.get_bind().dialect.name == "postgresql":
        # Rows inserted with their own numbers do not move PostgreSQL's sequence; the next new member must not clash.
        db.execute(sql("SELECT setval(pg_get_serial_sequence('member', 'id'), (SELECT max(id) FROM member))"))
    return result


def _update(db: Session, actor: str, now: int, plan: Planned, member: Member, old_phone: str | None, tags: list[str]) -> bool:
    """Write one checked row to the member it names; whether anything changed."""
    values = dict(plan.values)
    tier = values.pop("tier", None)
    wanted_tags = values.pop("tags", None)
    before = snapshot(member) or {}
    if old_phone is not None:  # let go of just before, to move between members
        before["phone"] = old_phone
    for name, value in values.items():
        setattr(member, name, value)
    changed = snapshot(member) != before
    if changed:
        db.add(member)
        audit(db, actor, now, "update", member, str(member.id), before)
    if tier is not None and rules.change_tier(db, actor, now, member, tier, IMPORT_REASON) is not None:
        changed = True
    if wanted_tags is not None and sorted(tags) != wanted_tags:
        rules.set_tags(db, actor, now, member, wanted_tags)
        changed = True
    return changed


def export_members(db: Session) -> bytes:
    """Every member as CSV (UTF-8 with a byte-order mark, for Excel), in the columns import_members reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    tags: dict[int, list[str]] = {}
    for row in db.exec(select(MemberTag).where(MemberTag.source == rules.MANUAL).order_by(col(MemberTag.tag))):
        tags.setdefault(row.member_id, []).append(row.tag)
    for m in db.exec(select(Member).order_by(col(Member.id))):
        category = "" if m.category_id is None else m.category_id
        writer.writerow([m.id, m.name, m.phone, m.birthday, category, m.tier, " ".join(tags.get(m.id or 0, []))])
    return (BOM + out.getvalue()).encode("utf-8")
