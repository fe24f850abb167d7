"""The hub's schedule (hub/scheduler.py): what is due when, runs recorded once, a failing job alone, the serve thread."""

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from hub import scheduler
from hub.masterdata import set_param
from hub.models import Card, CardAction, JobRun, Member
from hub.scheduler import DAY, HOUR, JOBS, Job, Ticker, due, run_due
from simulator.stack import Stack
from tests.plans_world import add_member, at, buy, card_no, doc_text, hub_db

ROOT = Path(__file__).resolve().parent.parent
DAILY = Job("daily", DAY, lambda db, now, actor: "done", "a daily job")
HOURLY = Job("hourly", HOUR, lambda db, now, actor: "done", "an hourly job")


def names(jobs):
    return [j.name for j in jobs]


def test_a_job_never_run_is_due_and_the_table_order_holds():
    assert names(due([DAILY, HOURLY], {}, at("2027-03-01T22:00"))) == ["daily", "hourly"]
    assert names(due(JOBS, {}, 0)) == ["tier-review", "points", "rfm-tags", "badges", "plans", "coupons", "prices"]


def doc_examples():
    """The rows of docs/loyalty.md's table "last successful run | now | due": (last, now, the jobs due)."""
    text = doc_text()
    table = text[text.index("| last successful run (UTC) |"):]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        last, now, said = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((last.replace(" ", "T"), now.replace(" ", "T"),
                     [] if said.startswith("nothing") else said.split(" (")[0].split(", ")))
    return rows


@pytest.mark.parametrize(("last", "now", "expected"), doc_examples())
def test_a_job_runs_once_in_each_period_of_its_cadence(last, now, expected):
    last_runs = {"daily": at(last), "hourly": at(last)}
    assert names(due([DAILY, HOURLY], last_runs, at(now))) == expected


def test_the_doc_has_its_examples():
    assert len(doc_examples()) == 5


def test_a_failing_job_is_logged_and_recorded_and_does_not_stop_the_others(tmp_path, caplog):
    engine = hub_db(tmp_path)

    def boom(db, now, actor):
        db.add(Member(name="half done", created=now))  # written before the failure: must not stay
        db.flush()
        raise RuntimeError("the disk is full")

    jobs = [DAILY, Job("boom", DAY, boom, "fails"), HOURLY]
    now = at("2027-03-01T22:00")
    runs = run_due(engine, now, jobs)
    assert [(r.job, r.ok) for r in runs] == [("daily", True), ("boom", False), ("hourly", True)]
    assert runs[1].summary == "RuntimeError: the disk is full"
    assert "scheduled job boom" in caplog.text
    with Session(engine) as db:
        assert db.exec(select(Member).where(Member.name == "half done")).first() is None
        assert scheduler.last_runs(db) == {"daily": now, "hourly": now}
    # The failed job is due again at the next tick; the others are not.
    assert [(r.job, r.ok) for r in run_due(engine, now + 60, jobs)] == [("boom", False)]


def test_run_twice_at_the_same_time_runs_nothing_twice(tmp_path):
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        set_param(db, "test", 0, "points.validity_days", 30)
        ana = add_member(db, "Ana", at("2027-01-01"))
        buy(db, ana, 5_000, at("2027-01-10"))  # 50 points earned, due on 2027-02-09
        card = db.get(Card, card_no(ana))
        assert card is not None
        card.points = 50
        db.add(card)
        db.commit()
    now = at("2027-02-10T22:00")
    first = run_due(engine, now)
    assert [r.job for r in first] == names(JOBS) and all(r.ok for r in first)
    assert "expire_actions 1" in next(r.summary for r in first if r.job == "points")
    assert run_due(engine, now) == []
    assert run_due(engine, now + HOUR)[0].job == "plans"  # hourly: the next hour
    # Forced (hub jobs run points), the job itself finds the expiry queued already.
    forced = scheduler.run_job(engine, scheduler.job_named("points"), now)
    assert "expire_actions 0" in forced.summary
    with Session(engine) as db:
        expiries = db.exec(select(CardAction).where(CardAction.kind == "expire")).all()
        assert [(a.card_no, a.points) for a in expiries] == [(card_no(ana), -50)]
        assert len(db.exec(select(JobRun).where(JobRun.job == "points")).all()) == 2


def test_the_ticker_runs_what_is_due_with_its_clock_until_stopped(tmp_path):
    engine = hub_db(tmp_path)
    clock = [at("2027-03-01T22:00")]
    ticker = Ticker(engine, tick_s=0.05, clock=lambda: clock[0])
    ticker.start()
    try:
        wait_for(lambda: len(runs_of(engine)) == len(JOBS))
        clock[0] += DAY
        wait_for(lambda: len(runs_of(engine)) == 2 * len(JOBS))
    finally:
        ticker.stop()
    assert sorted({r.time for r in runs_of(engine)}) == [at("2027-03-01T22:00"), at("2027-03-02T22:00")]


def test_hub_serve_runs_the_schedule_and_a_simulation_stack_does_not(tmp_path):
    with Stack(tmp_path / "on", scheduler=True) as stack:
        wait_for(lambda: {r.job for r in runs_of(stack.engine)} == set(names(JOBS)), timeout=20)
        assert all(r.ok for r in runs_of(stack.engine))
        assert abs(runs_of(stack.engine)[0].time - time.time()) < 60  # the wall clock
    with Stack(tmp_path / "off") as stack:  # the scenarios' virtual clock runs the jobs itself
        time.sleep(1)
        assert runs_of(stack.engine) == []


def runs_of(engine):
    with Session(engine) as db:
        return list(db.exec(select(JobRun).order_by(col(JobRun.id))))


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_the_doc_lists_every_job_with_its_cadence():
    text = doc_text()
    table = text[text.index("| job | cadence | what it runs |"):].splitlines()[2:]
    rows = itertools.takewhile(lambda line: line.startswith("|"), table)
    listed = [tuple(c.strip().strip("`") for c in line.strip("|").split("|")[:2]) for line in rows]
    assert listed == [(j.name, scheduler.cadence(j.every)) for j in JOBS]


def hub_cli(tmp_path, *args):
    env = dict(os.environ, HUB_DATA_DIR=str(tmp_path / "hub-data"))
    return subprocess.run([sys.executable, "-m", "hub", "jobs", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_hub_jobs_runs_what_is_due_at_a_time_and_lists_it(tmp_path):
    night = str(at("2027-03-01T22:00"))
    first = hub_cli(tmp_path, "run", "--at", night)
    assert first.returncode == 0, first.stderr
    assert [line.split(":")[0] for line in first.stdout.splitlines()] == names(JOBS)
    assert "tier-review: no tier rules: nothing to review" in first.stdout
    again = hub_cli(tmp_path, "run", "--at", night)
    assert again.returncode == 0 and again.stdout.startswith("nothing is due at 2027-03-01 22:00:00")
    listed = hub_cli(tmp_path, "list", "--at", night).stdout.splitlines()
    assert [line.split()[:5] for line in listed[1:]] == [
        [j.name, scheduler.cadence(j.every), "2027-03-01", "22:00:00", "no"] for j in JOBS]
    forced = hub_cli(tmp_path, "run", "badges", "--at", night)
    assert forced.stdout == "badges: 0 badges granted\n"
    unknown = hub_cli(tmp_path, "run", "nightly")
    assert unknown.returncode == 2 and "no job 'nightly'; the jobs are: tier-review, points" in unknown.stderr
