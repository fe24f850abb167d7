"""`hub coupon ...`: coupon templates, issuing, delivering grants, the list (docs/coupons.md).

    hub coupon template add NAME --kind fixed|percent|gift --value V [--min-spend 20.00] [--days N] [--starts D] [--ends D]
    hub coupon template list
    hub coupon issue TEMPLATE (--member ID ... | [--tier N ...] [--tag T ...])
    hub coupon deliver                      coupon grants of tier gift packs and plan runs -> coupons
    hub coupon list [--member ID]
"""

from __future__ import annotations

import argparse

from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import coupons
from hub.cli_master import run_change
from hub.masterdata import parse_money
from protocol.pricing import format_money

COMMANDS = ("coupon",)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    coupon = sub.add_parser("coupon", help="coupons: templates, issuing to members or groups, the list")
    cs = coupon.add_subparsers(dest="action", required=True)
    template = cs.add_parser("template", help="coupon templates").add_subparsers(dest="template_action", required=True)
    add = template.add_parser("add", help="a new template")
    add.add_argument("name")
    add.add_argument("--kind", required=True, choices=sorted(coupons.KINDS))
    add.add_argument("--value", required=True,
                     help="fixed: money off (3.00); percent: basis points (1500 is 15 %%); gift: the item number")
    add.add_argument("--min-spend", default="0", help="the total after the tier discount must reach it (e.g. 20.00)")
    add.add_argument("--days", type=int, default=30, help="days a coupon holds (default 30)")
    add.add_argument("--starts", default="", help="YYYY-MM-DD: not valid before")
    add.add_argument("--ends", default="", help="YYYY-MM-DD: not valid after")
    template.add_parser("list")
    issue = cs.add_parser("issue", help="issue a coupon to members, or to a group by tier and tag")
    issue.add_argument("template", type=int)
    issue.add_argument("--member", type=int, action="append", default=[])
    issue.add_argument("--tier", type=int, action="append", default=[])
    issue.add_argument("--tag", action="append", default=[])
    cs.add_parser("deliver", help="turn coupon grants (tier gift packs, plan runs) into coupons")
    ls = cs.add_parser("list", help="coupons, newest first")
    ls.add_argument("--member", type=int)


def run(args: argparse.Namespace, engine: Engine) -> int:
    """Run one coupon command; a refused change prints why and exits 2, with nothing written."""
    if args.action == "list" or (args.action == "template" and args.template_action == "list"):
        with Session(engine) as db:
            for line in _list(args, db):
                print(line)
        return 0
    return run_change(args, engine, _run)


def _value(kind: str, text: str) -> int:
    if kind == "fixed":
        return parse_money(text)
    if not text.isdigit():
        raise coupons.CouponError("bad_template", f"a {kind} coupon's value is a whole number, got {text!r}")
    return int(text)


def _list(args: argparse.Namespace, db: Session) -> list[str]:
    if args.action == "template":
        return [f"{t.id}\t{t.name}\t{t.kind} {_show(t.kind, t.value)}\tmin {format_money(t.min_spend)}\t"
                f"{t.valid_days} days\t{coupons.show_day(t.starts) or '-'} .. {coupons.show_day(t.ends) or '-'}"
                for t in coupons.templates(db)] or ["no coupon templates"]
    return [f"{c['id']}\tmember {c['member_id']}\tcard {c['card_no']}\t{c['kind']} {_show(c['kind'], c['value'])}\t"
            f"{c['from']} .. {c['until']}\t{c['state']}" + (f" by {c['redeemed_device']} #{c['redeemed_seq']}"
                                                              if c["redeemed"] else "")
            for c in coupons.coupons(db, args.member)] or ["no coupons"]


def _show(kind: str, value: int) -> str:
    return format_money(value) if kind == "fixed" else f"{value / 100:g} %" if kind == "percent" else f"item {value}"


def _run(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    if args.action == "template":
        t = coupons.add_template(db, actor, now, args.name, args.kind, _value(args.kind, args.value),
                                 parse_money(args.min_spend), args.days, args.starts, args.ends)
        return [f"coupon template {t.id}: {t.name}"]
    if args.action == "deliver":
        done = coupons.deliver_grants(db, actor, now)
        return [f"issued {len(done['issued'])} coupons"] + [f"grant {w['grant']} waits: {w['reason']}" for w in done["waiting"]]
    members = args.member or coupons.group(db, args.tier, args.tag)
    done = coupons.issue_to(db, actor, now, args.template, members)
    return ([f"issued coupons {', '.join(str(i) for i in done['issued'])}" if done["issued"] else "issued none"]
            + [f"member {s['member']} skipped: {s['reason']}" for s in done["skipped"]])
