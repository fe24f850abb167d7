"""`hub tiers rules|review|reviews`, `hub tags rfm`, `hub plan add|set|list|show|run|run-due|runs|rerun`, `hub badges`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub import badges, plans, tags, tiers
from hub.cli_master import run_change
from hub.models import PlanRun, TierRules
from hub.notifications import delivery_of_runs
from hub.refusal import Refusal

COMMANDS = ("tiers", "tags", "plan", "badges")


def _at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", type=int, help="act as at this time (unix seconds; default now): for replaying a day")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tiers", help="tier rules (versioned) and the tier review")
    tsub = t.add_subparsers(dest="action", required=True)
    rules = tsub.add_parser("rules", help="print the tier rules (every version with --all), or save new ones with --set")
    rules.add_argument("--set", type=Path, metavar="FILE", help="a JSON rules file ('-' for standard input)")
    rules.add_argument("--note", default="", help="why the rules change")
    rules.add_argument("--all", action="store_true", help="every version, newest first")
    review = tsub.add_parser("review", help="review every member's tier (once per review period unless --force)")
    review.add_argument("--force", action="store_true")
    _at(review)
    tsub.add_parser("reviews", help="the latest review runs")

    g = sub.add_parser("tags", help="computed member tags")
    gsub = g.add_subparsers(dest="action", required=True)
    _at(gsub.add_parser("rfm", help="recompute every member's rfm tags (manual tags stay)"))

    p = sub.add_parser("plan", help="targeted plans: add, change, run, re-run on the responses")
    psub = p.add_subparsers(dest="action", required=True)
    add = psub.add_parser("add", help="add a plan from a JSON file")
    add.add_argument("name")
    add.add_argument("--file", type=Path, required=True, help="the plan (docs/loyalty.md); '-' for standard input")
    change = psub.add_parser("set", help="make the plan's next version")
    change.add_argument("id", type=int)
    change.add_argument("--name")
    change.add_argument("--file", type=Path)
    onoff = change.add_mutually_exclusive_group()
    onoff.add_argument("--active", dest="active", action="store_true", default=None)
    onoff.add_argument("--inactive", dest="active", action="store_false")
    psub.add_parser("list", help="every plan's current version")
    show = psub.add_parser("show", help="a plan's current version as JSON")
    show.add_argument("id", type=int)
    run = psub.add_parser("run", help="run a plan now")
    run.add_argument("id", type=int)
    _at(run)
    _at(psub.add_parser("run-due", help="run every active plan that is due"))
    runs = psub.add_parser("runs", help="a plan's runs, or with --run the members one run reached")
    runs.add_argument("id", type=int)
    runs.add_argument("--run", type=int)
    rerun = psub.add_parser("rerun", help="run the plan again on the responders of its last run (or --run)")
    rerun.add_argument("id", type=int)
    rerun.add_argument("--run", type=int)
    rerun.add_argument("--non-responders", action="store_true", help="reach those who did not respond instead")
    _at(rerun)

    b = sub.add_parser("badges", help="badges: achievements members earn (no money value)")
    bsub = b.add_subparsers(dest="action")
    bsub.add_parser("list", help="the badges (the default)")
    bset = bsub.add_parser("set", help="create or change a badge")
    bset.add_argument("code")
    bset.add_argument("--name", required=True)
    bset.add_argument("--fact", required=True, choices=sorted(badges.FACTS))
    bset.add_argument("--at-least", type=int, required=True)
    bset.add_argument("--description", default="")
    bset.add_argument("--inactive", action="store_true")
    _at(bsub.add_parser("award", help="grant every badge members earned and lack"))
    mine = bsub.add_parser("member", help="a member's badges")
    mine.add_argument("id", type=int)


def _json_in(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Refusal("bad_json", f"{path} is not JSON: {exc}") from None


def run(args: argparse.Namespace, engine: Engine) -> int:
    """Run one command; a refused change prints why and exits 2, with nothing written."""
    return run_change(args, engine, _run)


def _run_line(r: PlanRun, delivery: dict[str, int] | None = None) -> str:
    again = f" of run {r.rerun_of}" if r.rerun_of else ""
    seen = ""
    if delivery and delivery["notifications"]:
        seen = f"\tnotifications delivered {delivery['delivered']}, read {delivery['read']}"
    return f"run {r.id}\t{r.time}\tv{r.plan_version}\t{r.trigger}{again}\treached {r.reached}\t{r.summary}{seen}"


def _run(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    if args.command == "tiers":
        if args.action == "rules":
            if args.set is not None:
                row, new = tiers.save_rules(db, actor, now, _json_in(args.set), args.note)
                return [f"tier rules v{row.version} " + ("saved" if new else "unchanged (the same as the newest)")]
            rows = list(db.exec(select(TierRules).order_by(col(TierRules.version).desc())))
            if not rows:
                return ["no tier rules yet: hub tiers rules --set FILE"]
            return [json.dumps({"version": r.version, "created": r.created, "actor": r.actor, "note": r.note,
                                "rules": json.loads(r.body)}, sort_keys=True) for r in (rows if args.all else rows[:1])]
        if args.action == "review":
            review = tiers.review_tiers(db, now, actor, args.force)
            if review is None:
                return ["a review ran in this period already; nothing done (--force to run it again)"]
            return [f"reviewed {review.reviewed} members with rules v{review.rules_version}: {review.upgrades} upgraded, "
                    f"{review.downgrades} downgraded, {review.renewals} renewed"]
        return [f"{r.id}\t{r.time}\t{r.period}\tv{r.rules_version}\treviewed {r.reviewed}\tup {r.upgrades}\t"
                f"down {r.downgrades}\trenewed {r.renewals}" for r in tiers.reviews(db)]
    if args.command == "tags":
        summary = tags.recompute_rfm(db, now, actor)
        return [f"{name}\t{count}" for name, count in summary.items()]
    if args.command == "plan":
        return _plan(args, db, actor, now)
    return _badges(args, db, actor, now)


def _plan(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    if args.action == "add":
        plan = plans.add_plan(db, actor, now, args.name, _json_in(args.file))
        return [f"plan {plan.id} v1 added"]
    if args.action == "set":
        doc = _json_in(args.file) if args.file is not None else None
        plan = plans.change_plan(db, actor, now, args.id, args.name, doc, args.active)
        return [f"plan {plan.id} is at v{plan.version}"]
    if args.action == "list":
        return [f"{p.id}\tv{p.version}\t{'on' if p.active else 'off'}\t{p.name}\t{p.body}" for p in plans.plans(db)]
    if args.action == "show":
        plan = plans.current_plan(db, args.id)
        return [json.dumps({"id": plan.id, "version": plan.version, "name": plan.name, "active": plan.active,
                            "plan": json.loads(plan.body)}, indent=2, sort_keys=True)]
    if args.action == "run":
        r = plans.run_plan(db, actor, now, args.id)
        return [_run_line(r), "members: " + " ".join(str(m) for m in plans.reached(db, r.id or 0))]
    if args.action == "run-due":
        done = plans.run_due_plans(db, now, actor)
        return [f"plan {r.plan_id} " + _run_line(r) for r in done] or ["no plan is due"]
    if args.action == "runs":
        if args.run is not None:
            r = plans.get_run(db, args.run)
            seen = delivery_of_runs(db, [r.id or 0])
            return [_run_line(r, seen[r.id or 0]), "members: " + " ".join(str(m) for m in plans.reached(db, r.id or 0))]
        plans.current_plan(db, args.id)
        done = plans.runs(db, args.id)
        seen = delivery_of_runs(db, [r.id or 0 for r in done])
        return [_run_line(r, seen[r.id or 0]) for r in done] or [f"plan {args.id} has not run yet"]
    r = plans.rerun(db, actor, now, args.id, args.run, args.non_responders)
    return [_run_line(r), "members: " + " ".join(str(m) for m in plans.reached(db, r.id or 0))]


def _badges(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    if args.action == "set":
        b = badges.save_badge(db, actor, now, args.code, args.name, args.fact, args.at_least, args.description,
                              not args.inactive)
        return [f"badge {b.code}: {b.fact} at least {b.at_least}"]
    if args.action == "award":
        return [f"{len(badges.award_badges(db, now))} badges granted"]
    if args.action == "member":
        return [f"{b['code']}\t{b['name']}\t{b['earned']}" for b in badges.badges_of(db, args.id)]
    return [f"{b.code}\t{b.name}\t{b.fact} >= {b.at_least}\t{'on' if b.active else 'off'}" for b in badges.all_badges(db)]
