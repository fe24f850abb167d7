"""/api/v1/loyalty routes for points and stored value: refunds, referrals, the points jobs, bonus rules, liability.

Admins only. Writes go through hub.points, hub.refunds and hub.stored_value (checks, the
change, its card action and audit entry in one transaction); a refused change answers
400/404/409 with {"detail": ..., "code": ...} and writes nothing. The jobs take `now`
(unix seconds) from the request when given, so HQ can run them for a past or test time.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlmodel import Session

from hub import points, refunds, stored_value
from hub.auth import ADMIN, Gate, Principal
from hub.refusal import Refusal, commit_or_refuse, refused


class RefundIn(BaseModel):
    device_id: str
    seq: int
    lines: dict[int, int] | None = Field(None, description="item -> quantity to refund; left out: everything not refunded yet")


class ReferrerIn(BaseModel):
    referrer_id: int


class JobIn(BaseModel):
    now: int | None = Field(None, description="unix seconds the job runs at; the hub's clock when left out")


class BonusRulesIn(BaseModel):
    thresholds: list[list[int]] = Field(description="[[pay at least, bonus], ...] in cents")
    effective_from: int | None = Field(None, description="unix seconds; now when left out")
    until: int = Field(0, description="unix seconds the rules end; 0: open-ended")


def loyalty_routes(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The points and stored-value routes; db_dependency yields a Session, gate checks who may use each."""
    api = APIRouter(prefix="/loyalty", tags=["points and stored value"])
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]

    change = commit_or_refuse

    @api.post("/refunds", status_code=201)
    def refund(body: RefundIn, db: Db, who: Admin) -> Any:
        lines = None if body.lines is None else sorted(body.lines.items())
        made = change(db, lambda: refunds.refund_sale(db, who.name, int(time.time()), body.device_id, body.seq, lines))
        return made if not isinstance(made, refunds.Refund) else refunds.refund_view(db, made)

    @api.put("/members/{member_id}/referrer")
    def refer(member_id: int, body: ReferrerIn, db: Db, who: Admin) -> Any:
        made = change(db, lambda: points.set_referrer(db, who.name, int(time.time()), member_id, body.referrer_id))
        return made if not isinstance(made, points.Member) else {"member_id": member_id, "referrer_id": made.referrer_id,
                                                                 "referred_at": made.referred_at}

    @api.get("/members/{member_id}/points")
    def member_points(member_id: int, db: Db, who: Admin, now: int | None = None) -> Any:
        try:
            return points.statement(db, member_id, int(time.time()) if now is None else now)
        except Refusal as exc:
            return refused(exc)

    @api.post("/jobs/run")
    def run_jobs(body: JobIn, db: Db, who: Admin) -> Any:
        now = int(time.time()) if body.now is None else body.now
        return change(db, lambda: points.run_jobs(db, now, who.name))

    @api.post("/jobs/expire")
    def expire(body: JobIn, db: Db, who: Admin) -> Any:
        now = int(time.time()) if body.now is None else body.now
        made = change(db, lambda: points.expire_due(db, now, who.name))
        return made if not isinstance(made, list) else {"actions": len(made), "points": -sum(a.points for a in made)}

    @api.get("/bonus-rules")
    def bonus_rules(db: Db, who: Admin) -> list[dict[str, Any]]:
        return stored_value.list_rules(db)

    @api.post("/bonus-rules", status_code=201)
    def add_bonus_rules(body: BonusRulesIn, db: Db, who: Admin) -> Any:
        made = change(db, lambda: stored_value.save_bonus_rules(db, who.name, int(time.time()), body.thresholds,
                                                                body.effective_from, body.until))
        return made if not isinstance(made, stored_value.TopupBonusRules) else {"version": made.version}

    @api.get("/liability")
    def liability(db: Db, who: Admin) -> dict[str, Any]:
        return stored_value.liability(db)

    return api
