"""`hub jobs list|run`: the hub's scheduled jobs (hub.scheduler) from the command line.

    hub jobs list [--at T]            each job, its cadence, its last run and whether it is due at T
    hub jobs run [JOB ...] [--at T]   run what is due at T (default now), or the jobs named whether due or not
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import scheduler

COMMANDS = ("jobs",)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="the scheduled jobs (tier review, points expiry, rfm tags, badges, plans)")
    js = jobs.add_subparsers(dest="action", required=True)
    listing = js.add_parser("list", help="each job, its cadence, its last run and whether it is due")
    listing.add_argument("--at", type=int, help="whether due at this time (unix seconds; default now)")
    listing.add_argument("--runs", type=int, default=0, metavar="N", help="also the N latest runs")
    run = js.add_parser("run", help="run the jobs due now (or at --at), or the jobs named whether due or not")
    run.add_argument("names", nargs="*", metavar="JOB")
    run.add_argument("--at", type=int, help="act as at this time (unix seconds; default now): for replaying a day")


def _when(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def run(args: argparse.Namespace, engine: Engine) -> int:
    """List or run jobs; an unknown job name exits 2 with nothing run, a failed job exits 1."""
    now = args.at if args.at is not None else int(time.time())
    if args.action == "list":
        with Session(engine) as db:
            last = scheduler.last_runs(db)
            due = {j.name for j in scheduler.due(scheduler.JOBS, last, now)}
            recent = scheduler.recent_runs(db, limit=args.runs) if args.runs else []
        print(f"{'job':<13}{'cadence':<9}{'last run (UTC)':<21}{'due':<5}what")
        for job in scheduler.JOBS:
            when = _when(last[job.name]) if job.name in last else "never"
            print(f"{job.name:<13}{scheduler.cadence(job.every):<9}{when:<21}{'yes' if job.name in due else 'no':<5}{job.what}")
        for r in recent:
            print(f"{_when(r.time)}\t{r.job}\t{'ok' if r.ok else 'FAILED'}\t{r.summary}")
        return 0
    try:
        chosen = [scheduler.job_named(name) for name in args.names]
    except KeyError as exc:
        print(f"hub jobs run: {exc.args[0]}", file=sys.stderr)
        return 2
    runs = [scheduler.run_job(engine, job, now) for job in chosen] if chosen else scheduler.run_due(engine, now)
    for r in runs:
        print(f"{r.job}: {'' if r.ok else 'FAILED: '}{r.summary}")
    if not runs:
        print(f"nothing is due at {_when(now)} UTC")
    return 0 if all(r.ok for r in runs) else 1
