"""/api/v1/me/notifications: the logged-in member's inbox (fetching delivers what was queued) and marking read.

A member sees and marks only their own; another member's notification answers 404 as one
that does not exist. docs/loyalty.md, "Notifications".
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import Session

from hub import notifications
from hub.auth import MEMBER, Gate, Principal
from hub.models import Notification
from hub.refusal import commit_or_refuse


class NotificationOut(BaseModel):
    id: int
    time: int = Field(description="when it was queued (unix seconds)")
    text: str
    state: str = Field(description="delivered or read (fetching delivers what was queued)")
    delivered: int = Field(description="when it reached the member (unix seconds)")
    read: int = Field(description="when the member marked it read (unix seconds); 0 while unread")


def note_out(note: Notification) -> NotificationOut:
    return NotificationOut(id=note.id or 0, time=note.time, text=note.text, state=note.state, delivered=note.delivered,
                           read=note.read)


def notification_routes(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The routes; db_dependency yields a Session, gate checks who may use each and tells the time."""
    api = APIRouter(tags=["notifications"])
    Db = Annotated[Session, Depends(db_dependency)]
    Own = Annotated[Principal, Depends(gate.require(MEMBER))]

    def now() -> int:
        return int(gate.clock())

    @api.get("/me/notifications", response_model=list[NotificationOut])
    def my_notifications(db: Db, who: Own,
                         limit: Annotated[int, Query(ge=1, le=500)] = notifications.INBOX_SIZE) -> Any:
        """The member's newest notifications, newest first; those still queued are delivered by this answer."""
        if who.member_id is None:
            return []
        done = commit_or_refuse(db, lambda: notifications.inbox(db, who.member_id or 0, now(), limit))
        return done if not isinstance(done, list) else [note_out(n) for n in done]

    @api.post("/me/notifications/{note_id}/read", response_model=NotificationOut)
    def read(note_id: int, db: Db, who: Own) -> Any:
        """Mark one of the member's notifications read (marking it again changes nothing)."""
        done = commit_or_refuse(db, lambda: notifications.mark_read(db, who.member_id or 0, note_id, now()))
        return done if not isinstance(done, Notification) else note_out(done)

    return api
