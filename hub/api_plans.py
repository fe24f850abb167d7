"""/api/v1 routes for tier rules and reviews, RFM tags, targeted plans and their runs, and badges.

HQ admins change and run; shop managers read (rules, reviews, plans, runs, badges). A
member reads their own badges at /members/me/badges. A refused change answers
400/404/409 with {"detail": ..., "code": ...} and writes nothing; every change is audited.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from hub import badges as badge_rules
from hub import plans as plan_rules
from hub import tags, tiers
from hub.auth import ADMIN, MEMBER, SHOP_MANAGER, Gate, Principal
from hub.members import get_member
from hub.models import Badge, Plan, PlanRun, TierReview, TierRules
from hub.notifications import delivery_of_runs
from hub.refusal import Refusal, commit_or_refuse, refused


class RulesIn(BaseModel):
    rules: dict[str, Any] = Field(description="measure, window_days, validity_days, review, tiers (docs/loyalty.md)")
    note: str = ""


class RulesOut(BaseModel):
    version: int
    created: int
    actor: str
    note: str
    rules: dict[str, Any]


class ReviewIn(BaseModel):
    force: bool = Field(False, description="review even when a review ran in this period already")


class ReviewOut(BaseModel):
    ran: bool = Field(description="false: a review ran in this period already (nothing was done)")
    review: TierReview | None = None


class PlanIn(BaseModel):
    name: str
    plan: dict[str, Any] = Field(description="when, audience, actions, response_days (docs/loyalty.md)")


class PlanPatch(BaseModel):
    name: str | None = None
    plan: dict[str, Any] | None = None
    active: bool | None = None


class PlanOut(BaseModel):
    id: int
    version: int
    name: str
    active: bool
    created: int
    actor: str
    plan: dict[str, Any]


class RerunIn(BaseModel):
    run_id: int | None = Field(None, description="the run whose responses to run on (default: the plan's last run)")
    non_responders: bool = Field(False, description="reach those who did not respond instead")


class RunOut(BaseModel):
    id: int
    plan_id: int
    plan_version: int
    time: int
    trigger: str
    rerun_of: int | None
    reached: int
    actor: str
    summary: dict[str, Any]
    members: list[int] | None = Field(None, description="the members reached (for one run)")
    delivery: dict[str, int] | None = Field(None, description="its notifications now: how many, delivered (read too), read")


class BadgeIn(BaseModel):
    name: str
    fact: str = Field(description="purchases, visits, spend, tier or member_days")
    at_least: int
    description: str = ""
    active: bool = True


class BadgeOut(BaseModel):
    code: str
    name: str
    description: str
    earned: int


def rules_out(row: TierRules) -> RulesOut:
    return RulesOut(version=row.version, created=row.created, actor=row.actor, note=row.note, rules=json.loads(row.body))


def plan_out(plan: Plan) -> PlanOut:
    return PlanOut(**plan.model_dump(exclude={"body"}), plan=json.loads(plan.body))


def run_out(run: PlanRun, members: list[int] | None = None, delivery: dict[str, int] | None = None) -> RunOut:
    return RunOut(**run.model_dump(exclude={"summary", "id"}), id=run.id or 0, summary=json.loads(run.summary or "{}"),
                  members=members, delivery=delivery)


def plan_routes(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The routes; db_dependency yields a Session, gate checks who may use each and tells the time."""
    api = APIRouter(tags=["tiers, tags, plans, badges"])
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Staff = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER))]
    Own = Annotated[Principal, Depends(gate.require(MEMBER))]

    def now() -> int:
        return int(gate.clock())

    change = commit_or_refuse

    def read(work: Callable[[], Any]) -> Any:
        try:
            return work()
        except Refusal as exc:
            return refused(exc)

    # -- tiers --------------------------------------------------------------------------------------

    @api.get("/tiers/rules", response_model=list[RulesOut])
    def list_rules(db: Db, who: Staff) -> list[RulesOut]:
        """Every version of the tier rules, newest first (the newest applies)."""
        return [rules_out(r) for r in db.exec(select(TierRules).order_by(col(TierRules.version).desc()))]

    @api.post("/tiers/rules", response_model=RulesOut, status_code=201)
    def save_rules(body: RulesIn, db: Db, who: Admin) -> Any:
        """Save the rules as the next version (the same rules again make no new version)."""
        done = change(db, lambda: tiers.save_rules(db, who.name, now(), body.rules, body.note))
        return done if not isinstance(done, tuple) else rules_out(done[0])

    @api.post("/tiers/review", response_model=ReviewOut)
    def review(body: ReviewIn, db: Db, who: Admin) -> Any:
        """Review every member's tier now (once per review period unless force)."""
        done = change(db, lambda: tiers.review_tiers(db, now(), who.name, body.force))
        if done is None:
            return ReviewOut(ran=False)
        if isinstance(done, TierReview):
            return ReviewOut(ran=True, review=done)
        return done

    @api.get("/tiers/reviews", response_model=list[TierReview])
    def reviews(db: Db, who: Staff, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[TierReview]:
        return tiers.reviews(db, limit)

    # -- tags -------------------------------------------------------------------------------------

    @api.post("/tags/rfm", response_model=dict[str, int])
    def rfm(db: Db, who: Admin) -> Any:
        """Recompute every member's rfm tags now (manual tags stay); members per segment, and how many changed."""
        return change(db, lambda: tags.recompute_rfm(db, now(), who.name))

    # -- plans ------------------------------------------------------------------------------------

    @api.get("/plans", response_model=list[PlanOut])
    def list_plans(db: Db, who: Staff) -> list[PlanOut]:
        return [plan_out(p) for p in plan_rules.plans(db)]

    @api.post("/plans", response_model=PlanOut, status_code=201)
    def add_plan(body: PlanIn, db: Db, who: Admin) -> Any:
        done = change(db, lambda: plan_rules.add_plan(db, who.name, now(), body.name, body.plan))
        return done if not isinstance(done, Plan) else plan_out(done)

    @api.post("/plans/run-due", response_model=list[RunOut])
    def run_due(db: Db, who: Admin) -> Any:
        """Run every active plan that is due now."""
        done = change(db, lambda: plan_rules.run_due_plans(db, now(), who.name))
        return done if not isinstance(done, list) else [run_out(r) for r in done]

    @api.get("/plans/runs/{run_id}", response_model=RunOut)
    def one_run(run_id: int, db: Db, who: Staff) -> Any:
        """One run, with the members it reached."""
        return read(lambda: run_out(plan_rules.get_run(db, run_id), plan_rules.reached(db, run_id),
                                    delivery_of_runs(db, [run_id])[run_id]))

    @api.get("/plans/{plan_id}", response_model=PlanOut)
    def one_plan(plan_id: int, db: Db, who: Staff) -> Any:
        return read(lambda: plan_out(plan_rules.current_plan(db, plan_id)))

    @api.put("/plans/{plan_id}", response_model=PlanOut)
    def change_plan(plan_id: int, body: PlanPatch, db: Db, who: Admin) -> Any:
        """The plan's next version with what is sent; earlier versions stay."""
        done = change(db, lambda: plan_rules.change_plan(db, who.name, now(), plan_id, body.name, body.plan, body.active))
        return done if not isinstance(done, Plan) else plan_out(done)

    @api.post("/plans/{plan_id}/run", response_model=RunOut)
    def run(plan_id: int, db: Db, who: Admin) -> Any:
        """Run the plan now on its audience."""
        done = change(db, lambda: plan_rules.run_plan(db, who.name, now(), plan_id))
        return done if not isinstance(done, PlanRun) else run_out(done, plan_rules.reached(db, done.id or 0))

    @api.post("/plans/{plan_id}/rerun", response_model=RunOut)
    def rerun(plan_id: int, body: RerunIn, db: Db, who: Admin) -> Any:
        """Run the plan's actions again on the responders (or non-responders) of its last run or run_id."""
        done = change(db, lambda: plan_rules.rerun(db, who.name, now(), plan_id, body.run_id, body.non_responders))
        return done if not isinstance(done, PlanRun) else run_out(done, plan_rules.reached(db, done.id or 0))

    @api.get("/plans/{plan_id}/runs", response_model=list[RunOut])
    def plan_runs(plan_id: int, db: Db, who: Staff, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Any:
        def log() -> list[RunOut]:
            done = plan_rules.runs(db, plan_rules.current_plan(db, plan_id).id, limit)
            seen = delivery_of_runs(db, [r.id or 0 for r in done])
            return [run_out(r, delivery=seen[r.id or 0]) for r in done]

        return read(log)

    # -- badges -----------------------------------------------------------------------------------

    @api.get("/badges", response_model=list[Badge])
    def list_badges(db: Db, who: Staff) -> Any:
        return badge_rules.all_badges(db)

    @api.put("/badges/{code}", response_model=Badge)
    def save_badge(code: str, body: BadgeIn, db: Db, who: Admin) -> Any:
        """Create or change a badge (members keep those already granted)."""
        done = change(db, lambda: badge_rules.save_badge(db, who.name, now(), code, body.name, body.fact, body.at_least,
                                                         body.description, body.active))
        return done

    @api.post("/badges/award", response_model=dict[str, int])
    def award(db: Db, who: Admin) -> Any:
        """Grant every badge members have earned and lack; how many were granted."""
        done = change(db, lambda: badge_rules.award_badges(db, now()))
        return done if not isinstance(done, list) else {"granted": len(done)}

    @api.get("/members/me/badges", response_model=list[BadgeOut])
    def my_badges(db: Db, who: Own) -> Any:
        """The logged-in member's badges (achievements; they have no money value)."""
        if who.member_id is None:
            return []
        return badge_rules.badges_of(db, who.member_id)

    @api.get("/members/{member_id}/badges", response_model=list[BadgeOut])
    def member_badges(member_id: int, db: Db, who: Staff) -> Any:
        return read(lambda: (get_member(db, member_id), badge_rules.badges_of(db, member_id))[1])

    return api
