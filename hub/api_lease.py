"""/api/v1/devices/{id}/lease routes: a device's offline lease terms, and HQ's override of them (docs/loyalty.md).

Admins only. Writes go through hub.lease (checks, the change and its audit entry in one
transaction); a refused change answers 400/404 with {"detail": ..., "code": ...} and writes
nothing. The bridge issues the device its next lease with the new terms at its next look.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictInt
from sqlmodel import Session

from hub import lease
from hub.auth import ADMIN, Gate, Principal
from hub.refusal import Refusal, commit_or_refuse, refused


class LeaseIn(BaseModel):
    expires_after_s: StrictInt | None = Field(None, description="seconds after its last sync it may take stored value")
    max_sv_per_sale: StrictInt | None = Field(None, description="cents of stored value one sale may take offline")
    max_sv_per_card_day: StrictInt | None = Field(None, description="cents one card may spend a day on it offline")
    max_sv_offline_total: StrictInt | None = Field(None, description="cents it may take in all between syncs")


def lease_routes(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The lease routes; db_dependency yields a Session, gate checks who may use each."""
    api = APIRouter(prefix="/devices", tags=["offline leases"])
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]

    @api.get("/{device_id}/lease")
    def show(device_id: str, db: Db, who: Admin) -> Any:
        try:
            return lease.device_terms(db, device_id)
        except Refusal as exc:
            return refused(exc)

    @api.put("/{device_id}/lease")
    def set_override(device_id: str, body: LeaseIn, db: Db, who: Admin) -> Any:
        """Limits left out stay as the device's next lease would hold them now."""
        made = commit_or_refuse(db, lambda: lease.set_override(db, who.name, int(time.time()), device_id,
                                                                body.model_dump()))
        return made if not isinstance(made, lease.LeaseOverride) else lease.device_terms(db, device_id)

    @api.delete("/{device_id}/lease")
    def clear_override(device_id: str, db: Db, who: Admin) -> Any:
        made = commit_or_refuse(db, lambda: lease.clear_override(db, who.name, int(time.time()), device_id))
        return made if not isinstance(made, dict) else lease.device_terms(db, device_id)

    return api
