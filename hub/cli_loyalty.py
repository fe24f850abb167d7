"""`hub loyalty ...`: points and stored value from the command line (docs/loyalty.md, "Points and stored value").

    hub loyalty run [--now T]               referral awards, debt settlements, expiry
    hub loyalty expire [--now T]            the expiry job alone
    hub loyalty points MEMBER [--now T]     a member's points, debt, lots and the identity's terms
    hub loyalty refund DEVICE SEQ [ITEM=QTY ...]
    hub loyalty refer MEMBER --by REFERRER
    hub loyalty bonus set PAID=BONUS ... [--from T] [--until T] | bonus list
    hub loyalty liability
"""

from __future__ import annotations

import argparse
import json
import time

from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import points, refunds, stored_value
from hub.cli_master import run_change
from hub.masterdata import parse_money
from hub.refusal import Refusal
from protocol.pricing import format_money

COMMANDS = ("loyalty",)


class CliError(Refusal):
    """A command line the loyalty commands cannot read."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    loyalty = sub.add_parser("loyalty", help="points (lots, expiry, debts, referrals), refunds, stored value")
    ls = loyalty.add_subparsers(dest="action", required=True)
    for name, what in (("run", "the points jobs: referral awards, debt settlements, expiry"), ("expire", "the expiry job")):
        job = ls.add_parser(name, help=what)
        job.add_argument("--now", type=int, help="unix seconds the job runs at (default: now)")
    pts = ls.add_parser("points", help="a member's points, debt, lots and the identity's terms")
    pts.add_argument("member", type=int)
    pts.add_argument("--now", type=int)
    refund = ls.add_parser("refund", help="refund a synced sale: whole, or ITEM=QTY lines")
    refund.add_argument("device")
    refund.add_argument("seq", type=int)
    refund.add_argument("lines", nargs="*", metavar="ITEM=QTY")
    refer = ls.add_parser("refer", help="record who referred a member")
    refer.add_argument("member", type=int)
    refer.add_argument("--by", type=int, required=True, dest="referrer", help="the referring member")
    bonus = ls.add_parser("bonus", help="top-up bonus rules").add_subparsers(dest="bonus_action", required=True)
    bset = bonus.add_parser("set", help="a new version of the rules: PAID=BONUS ... (e.g. 500.00=50.00)")
    bset.add_argument("rules", nargs="*", metavar="PAID=BONUS")
    bset.add_argument("--from", dest="effective_from", type=int, help="in force from (unix seconds; default now)")
    bset.add_argument("--until", type=int, default=0, help="in force until (unix seconds; default open-ended)")
    bonus.add_parser("list")
    ls.add_parser("liability", help="what the hub owes on stored value, and whether the ledger agrees")


def run(args: argparse.Namespace, engine: Engine) -> int:
    """Run one loyalty command; a refused change prints why and exits 2, with nothing written."""
    if args.action == "points":
        with Session(engine) as db:
            try:
                view = points.statement(db, args.member, args.now if args.now is not None else int(time.time()))
            except Refusal as exc:
                print(f"hub loyalty: {exc.message}")
                return 2
        print(json.dumps(view, indent=2))
        return 0
    return run_change(args, engine, _run)


def _pairs(texts: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for text in texts:
        left, eq, right = text.partition("=")
        if not eq:
            raise CliError("bad_argument", f"{text!r} is not {what}")
        out.append((left.strip(), right.strip()))
    return out


def _run(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    action = args.action
    when = getattr(args, "now", None)
    when = now if when is None else when
    if action == "run":
        done = points.run_jobs(db, when, actor)
        return [f"{k}: {v}" for k, v in done.items()]
    if action == "expire":
        made = points.expire_due(db, when, actor)
        return [f"{a.card_no}: {-a.points} points expire (action #{a.number})" for a in made] or ["nothing due"]
    if action == "refund":
        lines = None
        if args.lines:
            pairs = _pairs(args.lines, "ITEM=QTY")
            if not all(i.isdigit() and q.isdigit() for i, q in pairs):
                raise CliError("bad_argument", "refund lines are ITEM=QTY with whole numbers, e.g. 301=1")
            lines = [(int(i), int(q)) for i, q in pairs]
        r = refunds.refund_sale(db, actor, now, args.device, args.seq, lines)
        said = [f"refund {r.id} of {args.device} #{args.seq}: {format_money(r.total)} "
                f"({format_money(r.stored_value)} to card {r.card_no}, {format_money(r.cash)} cash, "
                f"{r.points_back} points back, {r.points_taken} points taken)"]
        return said + ([f"{r.referral_points} referral points taken back from the referrer"] if r.referral_points else [])
    if action == "refer":
        m = points.set_referrer(db, actor, now, args.member, args.referrer)
        return [f"member {m.id} referred by member {m.referrer_id}"]
    if action == "bonus" and args.bonus_action == "set":
        thresholds = [[parse_money(p), parse_money(b)] for p, b in _pairs(args.rules, "PAID=BONUS")]
        rules = stored_value.save_bonus_rules(db, actor, now, thresholds, args.effective_from, args.until)
        return [f"bonus rules v{rules.version} from {rules.effective_from}: "
                + (", ".join(f"pay {format_money(p)} get {format_money(b)}" for p, b in json.loads(rules.body)) or "none")]
    if action == "bonus":
        return [f"v{r['version']}\tfrom {r['effective_from']}\tuntil {r['until'] or '-'}\t"
                + " ".join(f"{format_money(p)}={format_money(b)}" for p, b in r["thresholds"])
                for r in stored_value.list_rules(db)] or ["no bonus rules"]
    report = stored_value.liability(db)
    return [f"{k}: {format_money(v) if isinstance(v, int) and not isinstance(v, bool) else v}" for k, v in report.items()]
