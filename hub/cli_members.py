"""`hub member add|show|list|search|set|tag|import|export`: members from the command line."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub import member_csv
from hub import members as rules
from hub.models import Member
from hub.pages import when
from protocol.pricing import format_money

COMMANDS = ("member",)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    member = sub.add_parser("member", help="members: profiles, tiers, tags, CSV import and export")
    msub = member.add_subparsers(dest="action", required=True)

    add = msub.add_parser("add", help="add a member and print their number")
    add.add_argument("--name", required=True)
    add.add_argument("--phone", default="")
    add.add_argument("--birthday", default="", help="YYYY-MM-DD")
    add.add_argument("--category", type=int, help="member category (card type) number")
    add.add_argument("--tier", type=int, default=0)
    add.add_argument("--tag", action="append", default=[], help="a tag (repeat for more)")

    show = msub.add_parser("show", help="a member's profile, cards, balance, points history, sales and tier history")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="as one JSON object")

    listing = msub.add_parser("list", help="the newest members")
    listing.add_argument("--limit", type=int, default=50)

    search = msub.add_parser("search", help="members by name, phone, card number, tag or number")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=50)

    change = msub.add_parser("set", help="change a member's profile, tier or photo")
    change.add_argument("id", type=int)
    change.add_argument("--name")
    change.add_argument("--phone", help="'' removes it")
    change.add_argument("--birthday", help="YYYY-MM-DD; '' removes it")
    change.add_argument("--category", help="member category number; '' removes it")
    change.add_argument("--tier", type=int, help="the new tier: recorded in the tier history, queued for each active card")
    change.add_argument("--reason", default="", help="why the tier changes")
    change.add_argument("--photo", type=Path, help="a JPEG or PNG file")
    change.add_argument("--no-photo", action="store_true", help="remove the photo")

    tag = msub.add_parser("tag", help="add and remove a member's tags; prints them")
    tag.add_argument("id", type=int)
    tag.add_argument("tags", nargs="*", metavar="TAG", help="tags to add")
    tag.add_argument("--remove", action="append", default=[], metavar="TAG", help="a tag to take off (repeat for more)")

    imp = msub.add_parser("import", help="import a CSV file (see README, Members): all its rows, or nothing")
    imp.add_argument("file", type=Path)

    exp = msub.add_parser("export", help="every member as CSV (re-imports as it is)")
    exp.add_argument("file", type=Path, nargs="?", help="where to write it (default: standard output)")


def run(args: argparse.Namespace, engine: Engine) -> int:
    """Run one member command; a refused change prints why and exits 2, with nothing written."""
    actor = f"cli:{getpass.getuser()}"
    now = int(time.time())
    if args.action == "export":
        return _export(args, engine)
    with Session(engine) as db:
        try:
            out = _run(args, db, actor, now)
            rules.commit(db)
        except rules.MemberError as exc:
            db.rollback()
            if isinstance(exc, member_csv.ImportRefused):
                print(f"hub member import: nothing was imported from {args.file}: {len(exc.bad)} bad "
                      f"{'row' if len(exc.bad) == 1 else 'rows'}", file=sys.stderr)
                for bad in exc.bad:
                    print(f"  {bad}", file=sys.stderr)
            else:
                print(f"hub member {args.action}: {exc.message}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"hub member {args.action}: {exc}", file=sys.stderr)
            return 2
        for line in out:
            print(line)
    return 0


def _export(args: argparse.Namespace, engine: Engine) -> int:
    with Session(engine) as db:
        data = member_csv.export_members(db)
    if args.file is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    try:
        args.file.write_bytes(data)
    except OSError as exc:
        print(f"hub member export: {exc}", file=sys.stderr)
        return 2
    rows = data.count(b"\n") - 1
    print(f"{rows} members written to {args.file}", file=sys.stderr)
    return 0


def _line(m: Member, tiers: dict[int, str], tags: list[str]) -> str:
    tier = f"tier {m.tier}" + (f" ({tiers[m.tier]})" if m.tier in tiers else "")
    return "\t".join([str(m.id), m.name, m.phone or "-", m.birthday or "-", tier, " ".join(tags) or "-"])


def _lines(db: Session, found: list[Member]) -> list[str]:
    tiers = rules.tier_names(db)
    tags = rules.tags_of(db, [m.id or 0 for m in found])
    return [_line(m, tiers, [t.tag for t in tags[m.id or 0]]) for m in found]


def _category(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    if not text.strip().isdigit():
        raise rules.MemberError("bad_number", f"category must be a member category number, got {text!r}")
    return int(text)


def _run(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    action = args.action
    if action == "add":
        member = rules.add_member(db, actor, now, args.name, args.phone, args.birthday, args.category, args.tier, args.tag)
        return [f"member {member.id}: {member.name}"]
    if action == "list":
        return _lines(db, list(db.exec(select(Member).order_by(col(Member.id).desc()).limit(args.limit))))
    if action == "search":
        found = rules.search(db, args.query, args.limit)
        return _lines(db, found) or [f"no member matches {args.query!r}"]
    if action == "show":
        return _show(db, args.id, args.json)
    if action == "set":
        return _set(args, db, actor, now)
    if action == "tag":
        member = rules.get_member(db, args.id)
        current = set(rules.manual_tags(db, args.id))
        gone = set(rules.parse_tags(args.remove))
        missing = gone - current
        if missing:
            raise rules.MemberError("no_tag", f"member {args.id} has no tag {', '.join(sorted(missing))}")
        tags = rules.set_tags(db, actor, now, member, sorted((current - gone) | set(rules.parse_tags(args.tags))))
        return [f"member {args.id}: {' '.join(tags) or '(no tags)'}"]
    result = member_csv.import_members(db, actor, now, args.file.read_bytes())
    return [f"imported {args.file}: {result.created} new, {result.updated} changed, {result.unchanged} unchanged"]


def _set(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    changes: dict[str, Any] = {}
    for name in ("name", "phone", "birthday"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.category is not None:
        changes["category_id"] = _category(args.category)
    if not changes and args.tier is None and args.photo is None and not args.no_photo:
        raise rules.MemberError("nothing_to_do", "say what to change: --name, --phone, --birthday, --category, --tier, --photo")
    out = []
    member = rules.update_member(db, actor, now, args.id, changes) if changes else rules.get_member(db, args.id)
    if changes:
        out.append(f"member {member.id}: {member.name}")
    if args.tier is not None:
        cards = rules.change_tier(db, actor, now, member, args.tier, args.reason)
        if cards is None:
            out.append(f"member {member.id} has tier {args.tier} already")
        else:
            queued = f"queued for card {', '.join(cards)}" if cards else "no active card to write it to"
            out.append(f"member {member.id}: tier {args.tier}; {queued}")
    if args.photo is not None:
        photo = rules.set_photo(db, actor, now, args.id, args.photo.read_bytes())
        out.append(f"member {member.id}: photo saved ({photo.content_type}, {len(photo.data):,} bytes)")
    if args.no_photo:
        removed = rules.remove_photo(db, actor, now, args.id)
        out.append(f"member {member.id}: " + ("photo removed" if removed else "had no photo"))
    return out


def _show(db: Session, member_id: int, as_json: bool) -> list[str]:
    view = rules.overview(db, member_id)
    m: Member = view["member"]
    tiers: dict[int, str] = view["tier_names"]
    tags = [t.tag if t.source == rules.MANUAL else f"{t.tag} ({t.source})" for t in view["tags"]]
    if as_json:
        doc = {
            "member": m.model_dump(),
            "tags": tags,
            "photo": view["has_photo"],
            "balance": view["balance"],
            "points": view["points"],
            "cards": [c.model_dump(include={"card_no", "state", "tier", "balance", "points"}) for c in view["cards"]],
            "ledger": [e.model_dump(exclude={"id"}) for e in view["ledger"]],
            "sales": [s.model_dump(include={"time", "shop", "card_no", "state", "total", "device_id", "seq"})
                      for s in view["sales"]],
            "sales_count": view["sales_count"],
            "sales_total": view["sales_total"],
            "tier_history": [h.model_dump(exclude={"id"}) for h in view["tier_history"]],
        }
        return [json.dumps(doc, indent=1)]
    category = view["category"]
    out = [
        f"member {m.id}: {m.name}",
        f"  phone {m.phone or '-'}, birthday {m.birthday or '-'}, "
        f"category {f'{category.id} ({category.name})' if category else '-'}, "
        f"tier {m.tier}{f' ({tiers[m.tier]})' if m.tier in tiers else ''}",
        f"  tags: {' '.join(tags) or '-'}; photo: {'yes' if view['has_photo'] else 'no'}",
        f"  balance {format_money(view['balance'])}, points {view['points']}; "
        f"{view['sales_count']} sales, {format_money(view['sales_total'])} in all",
        "cards:",
    ]
    out += [f"  {c.card_no}  {c.state:<9} tier {c.tier}  balance {format_money(c.balance)}  points {c.points}"
            for c in view["cards"]] or ["  (none)"]
    out.append("balance and points history:")
    out += [f"  {when(e.time)}  {e.card_no}  {e.account:<12} {e.amount:>8}  {e.memo}" for e in view["ledger"]] or ["  (none)"]
    out.append("sales:")
    out += [f"  {when(s.time)}  {s.shop}  {s.card_no}  {s.state:<9} {format_money(s.total):>9}" for s in view["sales"]]
    out += [] if view["sales"] else ["  (none)"]
    out.append("tier history:")
    out += [f"  {when(h.time)}  {h.from_tier} -> {h.to_tier}  {h.reason or '-'}  by {h.actor}"
            for h in view["tier_history"]] or ["  (none)"]
    return out
