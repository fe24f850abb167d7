"""`hub card ...` and `hub reader list`: card numbers, issuing and replacing cards at the desk reader, card states.

A refusal prints why on stderr and exits 2 with nothing changed (docs/cards.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from hub import cards, issuance
from hub.cards import CardOpError
from protocol.pricing import format_money

COMMANDS = ("card", "reader")
CLI_WAIT_MS = 5000  # a person at the desk needs a moment to put the card down


def add_parsers(sub: argparse._SubParsersAction) -> None:
    reader = sub.add_parser("reader", help="the PC/SC desk readers").add_subparsers(dest="action", required=True)
    reader.add_parser("list", help="the readers pcscd has, one name a line")

    card = sub.add_parser("card", help="member card numbers and cards").add_subparsers(dest="action", required=True)
    batch = card.add_parser("batch", help="make a run of sequential card numbers (with a Luhn check digit) as stock")
    batch.add_argument("--prefix", required=True, help="leading digits, e.g. 9000")
    batch.add_argument("--count", type=int, required=True)
    batch.add_argument("--start", type=int, default=1, help="first serial after the prefix (default 1)")
    card.add_parser("batches", help="the batches of card numbers: how many in stock, reserved, issued")
    issue = card.add_parser("issue", help="write the blank card on the desk reader for a member (next stock number)")
    issue.add_argument("--member", type=int, required=True)
    issue.add_argument("--reader", help="PC/SC reader name (default: the first one)")
    issue.add_argument("--password-stdin", action="store_true", help="read the member's card password from stdin "
                       "(default: generate one and print it once)")
    issue.add_argument("--balance", type=int, default=0, help="opening stored value in cents")
    issue.add_argument("--points", type=int, default=0)
    issue.add_argument("--tier", type=int, default=None, help="default: the member's tier")
    verify = card.add_parser("verify", help="read the card on the desk reader and compare it with the hub")
    verify.add_argument("--reader", help="PC/SC reader name (default: the first one)")
    verify.add_argument("--json", action="store_true")
    for name, text in (("lost", "report a card lost: hotlisted, every handheld refuses it"),
                       ("unfreeze", "a lost card found again: off the hotlist, back in use")):
        p = card.add_parser(name, help=text)
        p.add_argument("card_no")
    replace = card.add_parser("replace", help="write the blank card on the desk reader in place of a card; "
                              "its balance and points move")
    replace.add_argument("card_no")
    replace.add_argument("--reader", help="PC/SC reader name (default: the first one)")
    replace.add_argument("--password-stdin", action="store_true", help="a new card password from stdin "
                         "(default: the old card's password carries over)")
    passwd = card.add_parser("passwd", help="set a member's card password (generated and printed once unless "
                             "--password-stdin)")
    passwd.add_argument("card_no")
    passwd.add_argument("--password-stdin", action="store_true")
    topup = card.add_parser("topup", help="a top-up paid at HQ: the card gets it at its next tap on a handheld")
    topup.add_argument("card_no")
    topup.add_argument("amount", help="e.g. 20 or 12.50")
    show = card.add_parser("show", help="a card as the hub holds it")
    show.add_argument("card_no")
    show.add_argument("--json", action="store_true")
    card.add_parser("settle", help="move what replaced cards still hold (late offline sales) onto their new cards")


def make_card_batch(engine: Engine, prefix: str, start: int, count: int, now: int, actor: str = "cli") -> list[str]:
    """Put count sequential card numbers into stock as one batch; all of them or, on any clash, none."""
    with Session(engine) as db:
        numbers = cards.make_batch(db, actor, now, prefix, start, count)
        db.commit()
    return numbers


def run(args: argparse.Namespace, engine: Engine) -> int:
    """One command; a refusal prints why and exits 2 with nothing written."""
    try:
        lines = _run(args, engine, f"cli:{getpass.getuser()}", int(time.time()))
    except CardOpError as exc:
        print(f"hub {args.command} {args.action}: {exc.message}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


def _master() -> bytes:
    from hub.cli import master_key
    from hub.settings import Settings

    return master_key(Settings())


def _password(from_stdin: bool) -> str | None:
    return sys.stdin.readline().rstrip("\n") if from_stdin else None


def _change(engine: Engine, work: Any) -> Any:
    """Run one change in a transaction and commit it; the row it returns, as stored."""
    with Session(engine) as db:
        out = work(db)
        db.commit()
        if isinstance(out, SQLModel):
            db.refresh(out)  # the commit expired it
        return out


def _run(args: argparse.Namespace, engine: Engine, actor: str, now: int) -> list[str]:
    if args.command == "reader":
        names = issuance.readers()
        if not names:
            raise CardOpError("no_reader", "no PC/SC readers: is the reader plugged in and pcscd running?", 404)
        return names
    action = args.action
    if action == "batch":
        numbers = make_card_batch(engine, args.prefix, args.start, args.count, now, actor)
        return [f"{len(numbers)} card numbers in stock: {numbers[0]} .. {numbers[-1]}"]
    if action == "batches":
        with Session(engine) as db:
            rows = cards.batches(db)
        return [f"{b['batch']}\t{b['first']} .. {b['last']}\tstock {b['stock']}\treserved {b['reserved']}\t"
                f"issued {b['issued']}" for b in rows]
    if action == "issue":
        password = _password(args.password_stdin)
        with issuance.open_desk(args.reader, CLI_WAIT_MS) as reader:
            done = issuance.issue(engine, reader, _master(), now, actor, member_id=args.member, tier=args.tier,
                                  balance=args.balance, points=args.points, password=password)
        return [json.dumps({**done.card, **({"password": done.password} if done.password else {})})]
    if action == "replace":
        password = _password(args.password_stdin)
        with issuance.open_desk(args.reader, CLI_WAIT_MS) as reader:
            done = issuance.replace(engine, reader, _master(), now, actor, args.card_no, password)
        return [f"card {done.card['card_no']} replaces {cards.check_card_no(args.card_no)}: balance "
                f"{format_money(done.card['balance'])}, {done.card['points']} points; the old card is on the hotlist"]
    if action == "verify":
        with issuance.open_desk(args.reader, CLI_WAIT_MS) as reader:
            report = issuance.verify(engine, reader, _master())
        if args.json:
            return [json.dumps(report)]
        head = f"card {report['uid']}: " + ("OK" if report["ok"] else "PROBLEMS")
        lines = [head] + [f"  {f['level']:<4} {f['message']}" for f in report["findings"]]
        lines += [f"  anomaly {a['code']}: {a['detail']}" for a in report["anomalies"]]
        return lines
    if action == "lost":
        card = _change(engine, lambda db: cards.mark_lost(db, actor, now, args.card_no))
        return [f"card {card.card_no} is lost: on the hotlist, handhelds refuse it once they sync"]
    if action == "unfreeze":
        card = _change(engine, lambda db: cards.unfreeze(db, actor, now, args.card_no))
        return [f"card {card.card_no} is active again: off the hotlist"]
    if action == "passwd":
        given = _password(args.password_stdin)
        password = _change(engine, lambda db: cards.reset_password(db, actor, now, args.card_no, given))
        return [f"card {cards.check_card_no(args.card_no)}: password changed"] + ([] if given else [f"password: {password}"])
    if action == "topup":
        amount = cards.parse_amount(args.amount)
        act = _change(engine, lambda db: cards.topup(db, actor, now, args.card_no, amount))
        return [f"top-up #{act.number} of {format_money(act.amount)} on card {act.card_no}: pending, the card gets it "
                "at its next tap on a handheld"]
    if action == "settle":
        done = _change(engine, lambda db: [(a.card_no, a.amount, a.points) for a in cards.settle_replaced(db, actor, now)])
        return [f"transfer to {no}: {format_money(amount)}, {points:+d} points (pending)" for no, amount, points in done] or [
            "nothing to settle"]
    return _show(engine, args)


def _show(engine: Engine, args: argparse.Namespace) -> list[str]:
    with Session(engine) as db:
        detail = cards.card_detail(db, cards.get_card(db, args.card_no))
    if args.json:
        return [json.dumps(detail)]
    lines = [
        f"card {detail['card_no']}  uid {detail['uid']}  member {detail['member_id']} {detail['member_name']}".rstrip(),
        f"state {detail['state']}{' (on the hotlist)' if detail['hotlisted'] else ''}: {detail['state_meaning']}",
        f"balance {format_money(detail['balance'])}  points {detail['points']}  tier {detail['tier']}  "
        f"counter {detail['last_counter']}  sales {detail['sales']}",
    ]
    if detail["replaced_by"]:
        lines.append(f"replaced by {detail['replaced_by']}")
    if detail["replaces"]:
        lines.append(f"replaces {', '.join(detail['replaces'])}")
    if detail["pending_topups"]:
        lines.append(f"pending top-ups {format_money(detail['pending_topups'])}")
    lines += [f"pending {cards.describe_action(a)}" for a in detail["pending"]]
    lines += [f"hotlist v{e['version']}: {'listed' if e['listed'] else 'off'} ({e['reason']})" for e in detail["hotlist"]]
    return lines
