"""/api/v1/coupons routes: templates, issuing to a member or a group, delivering grants, the list (docs/coupons.md).

Admins change; shop managers read. Writes go through hub.coupons (checks, the change, its card
actions and audit entries in one transaction); a refused change answers 400/404/409 with
{"detail": ..., "code": ...} and writes nothing.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlmodel import Session

from hub import coupons
from hub.auth import ADMIN, SHOP_MANAGER, Gate, Principal
from hub.refusal import commit_or_refuse


class TemplateIn(BaseModel):
    name: str
    kind: str = Field(description="fixed (value: cents off), percent (value: basis points), gift (value: the item)")
    value: int
    min_spend: int = Field(0, description="cents the total after the tier discount must reach")
    valid_days: int = Field(30, description="days a coupon holds from its first valid day")
    starts: str = Field("", description="YYYY-MM-DD: no coupon of it is valid before (default: from its issue)")
    ends: str = Field("", description="YYYY-MM-DD: no coupon of it is valid after")


class IssueIn(BaseModel):
    template_id: int
    members: list[int] = Field(default_factory=list, description="these members")
    tiers: list[int] = Field(default_factory=list, description="or the members of these tiers")
    tags: list[str] = Field(default_factory=list, description="(and) with any of these tags")


def coupon_routes(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The coupon routes; db_dependency yields a Session, gate checks who may use each."""
    api = APIRouter(prefix="/coupons", tags=["coupons"])
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Reader = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER))]

    @api.get("/templates")
    def list_templates(db: Db, who: Reader) -> list[dict[str, Any]]:
        return [t.model_dump() | {"starts": coupons.show_day(t.starts), "ends": coupons.show_day(t.ends)}
                for t in coupons.templates(db)]

    @api.post("/templates", status_code=201)
    def add_template(body: TemplateIn, db: Db, who: Admin) -> Any:
        return commit_or_refuse(db, lambda: coupons.add_template(db, who.name, int(time.time()), body.name, body.kind,
                                                                 body.value, body.min_spend, body.valid_days,
                                                                 body.starts, body.ends))

    @api.post("/issue", status_code=201)
    def issue(body: IssueIn, db: Db, who: Admin) -> Any:
        def work() -> dict[str, Any]:
            members = body.members or coupons.group(db, body.tiers, body.tags)
            return coupons.issue_to(db, who.name, int(time.time()), body.template_id, members)
        return commit_or_refuse(db, work)

    @api.post("/deliver-grants")
    def deliver(db: Db, who: Admin) -> Any:
        return commit_or_refuse(db, lambda: coupons.deliver_grants(db, who.name, int(time.time())))

    @api.get("")
    def list_coupons(db: Db, who: Reader, member_id: int | None = None) -> list[dict[str, Any]]:
        return coupons.coupons(db, member_id)

    return api
