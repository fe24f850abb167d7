"""The hub's schedule: which jobs run how often, what is due at a time, and the runner that records each run.

The rules that run on a schedule (tier reviews, points expiry, RFM tags, plans, badges, coupons, prices)
live in their own modules and take the time from their caller; this module only decides
when to call them, with the time it is given (the wall clock in `hub serve`, a virtual
one in the simulator). A cadence is a period aligned to the epoch: a daily job runs once
in each UTC day, at the first tick of that day, and a hub that was down for a week runs
it once when it comes back, not seven times (every job catches up by itself: expiry
takes all lots due by now). A failing job is logged and recorded; it does not stop the
others, and it is due again at the next tick. docs/loyalty.md, "The schedule".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub import badges, coupons, notifications, plans, points, publishing, tags, tiers
from hub.models import JobRun

log = logging.getLogger(__name__)

HOUR = 3600
DAY = 86_400
TICK_S = 60  # how often `hub serve` asks what is due
ACTOR = "scheduler"
MAX_SUMMARY = 400


@dataclass(frozen=True)
class Job:
    """A scheduled job: runs once in each period of `every` seconds; run(db, now, actor) does it and says what it did."""

    name: str
    every: int
    run: Callable[[Session, int, str], str]  # writes to db; the runner commits, with the job's run record
    what: str


# -- the jobs: thin calls into the modules that hold the rules ----------------------------------


def _tier_review(db: Session, now: int, actor: str) -> str:
    if tiers.current_rules(db) is None:
        return "no tier rules: nothing to review"
    review = tiers.review_tiers(db, now, actor)
    if review is None:  # the review keeps its own period (monthly by default); asking daily finds it on day one
        return "reviewed in this period already"
    return (f"reviewed {review.reviewed} members (rules v{review.rules_version}): {review.upgrades} upgraded, "
            f"{review.downgrades} downgraded, {review.renewals} renewed")


def _points(db: Session, now: int, actor: str) -> str:
    done = points.run_jobs(db, now, actor)
    return ", ".join(f"{key} {value}" for key, value in done.items())


def _rfm(db: Session, now: int, actor: str) -> str:
    summary = tags.recompute_rfm(db, now, actor)
    return ", ".join(f"{key} {value}" for key, value in summary.items() if value) or "no member has bought yet"


def _badges(db: Session, now: int, actor: str) -> str:
    return f"{len(badges.award_badges(db, now))} badges granted"


def _plans(db: Session, now: int, actor: str) -> str:
    done = plans.run_due_plans(db, now, actor)
    pushed = notifications.push(db, now)  # the inbox needs no push; a gateway plugged into notifications would
    said = "; ".join(f"plan {r.plan_id} ({r.trigger}) reached {r.reached}" for r in done) or "no plan was due"
    return said + (f"; {pushed} notifications pushed" if pushed else "")


def _coupons(db: Session, now: int, actor: str) -> str:
    done = coupons.deliver_grants(db, actor, now)
    expired = coupons.expire_past(db, now)
    return f"{len(done['issued'])} grants issued as coupons, {len(done['waiting'])} waiting; {expired} coupons expired"


def _prices(db: Session, now: int, actor: str) -> str:
    published, refused = publishing.publish_changed(db, actor, now)
    said = [f"published {shop} v{version}" for shop, version in published.items()]
    said += [f"{shop} not published: {why}" for shop, why in refused.items()]
    return "; ".join(said) or "no shop's prices changed since its last publish"


# In this order: the review first (its upgrades are events plans react to, its gift packs are points), tags before
# the plans whose audiences read them.
JOBS: tuple[Job, ...] = (
    Job("tier-review", DAY, _tier_review, "tier upgrades with their gift packs, downgrades after validity (hub tiers review)"),
    Job("points", DAY, _points, "referral awards, points-debt settlements, expiry by lots (hub loyalty run)"),
    Job("rfm-tags", DAY, _rfm, "recompute every member's rfm tags (hub tags rfm)"),
    Job("badges", DAY, _badges, "grant the badges members earned (hub badges award)"),
    Job("plans", HOUR, _plans, "run the targeted plans that are due (hub plan run-due)"),
    # After the plans and the review: the coupons they granted tonight reach the cards before the shops open.
    Job("coupons", DAY, _coupons, "coupon grants to coupons, coupons past their last day marked expired (hub coupon deliver)"),
    # Last: tonight's plans may have ended or started a promotion; a list made for later takes effect on the hour.
    Job("prices", HOUR, _prices, "publish every shop whose prices changed since its last publish (hub prices publish)"),
)


# -- the decision (pure) -------------------------------------------------------------------------------


def due(jobs: Iterable[Job], last_runs: Mapping[str, int], now: int) -> list[Job]:
    """The jobs to run at now, in table order: never run, or last run in an earlier period than now's.

    A time before the last run (a clock set back) is no new period: nothing runs twice.
    """
    return [j for j in jobs if j.name not in last_runs or now // j.every > last_runs[j.name] // j.every]


def cadence(every: int) -> str:
    return {DAY: "daily", HOUR: "hourly"}.get(every, f"every {every} s")


# -- running -------------------------------------------------------------------------------------------


def last_runs(db: Session) -> dict[str, int]:
    """Each job's latest successful run (the time it ran as); a failed run does not count."""
    rows = db.exec(select(JobRun.job, func.max(JobRun.time)).where(col(JobRun.ok).is_(True)).group_by(col(JobRun.job)))
    return {job: int(t) for job, t in rows}


def job_named(name: str, jobs: Sequence[Job] = JOBS) -> Job:
    for job in jobs:
        if job.name == name:
            return job
    raise KeyError(f"no job {name!r}; the jobs are: {', '.join(j.name for j in jobs)}")


def run_job(engine: Engine, job: Job, now: int, actor: str = ACTOR) -> JobRun:
    """Run one job at now in its own transaction, committed with its run record; a failure is logged and recorded."""
    with Session(engine) as db:
        try:
            summary = job.run(db, now, actor)
            run = JobRun(job=job.name, time=now, ok=True, summary=summary[:MAX_SUMMARY])
            db.add(run)
            db.commit()
            db.refresh(run)
            return run
        except Exception as exc:  # one job's failure must not stop the others or the loop
            db.rollback()
            log.exception("scheduled job %s at %d failed; it is due again at the next tick", job.name, now)
            failed = JobRun(job=job.name, time=now, ok=False, summary=f"{type(exc).__name__}: {exc}"[:MAX_SUMMARY])
    with Session(engine) as db:
        try:
            db.add(failed)
            db.commit()
            db.refresh(failed)
        except Exception:
            log.exception("could not record the failure of job %s", job.name)
    return failed


def run_due(engine: Engine, now: int, jobs: Sequence[Job] = JOBS, actor: str = ACTOR) -> list[JobRun]:
    """Run every job due at now, each in its own transaction; their run records (failed ones too)."""
    with Session(engine) as db:
        last = last_runs(db)
    return [run_job(engine, job, now, actor) for job in due(jobs, last, now)]


def recent_runs(db: Session, job: str | None = None, limit: int = 20) -> list[JobRun]:
    query = select(JobRun).order_by(col(JobRun.time).desc(), col(JobRun.id).desc()).limit(limit)
    return list(db.exec(query.where(JobRun.job == job) if job else query))


class Ticker:
    """The scheduler thread of `hub serve`: run_due with the wall clock at start and every TICK_S seconds."""

    def __init__(self, engine: Engine, tick_s: float = TICK_S, clock: Callable[[], float] = time.time) -> None:
        self.engine, self.tick_s, self.clock = engine, tick_s, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hub-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for run in run_due(self.engine, int(self.clock())):
                    log.info("job %s: %s", run.job, run.summary)
            except Exception:  # the database was away for a moment: the next tick tries again
                log.exception("the scheduler could not look at its jobs; trying again in %s s", self.tick_s)
            self._stop.wait(self.tick_s)
