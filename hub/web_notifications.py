"""The member's messages on /me: the inbox section (showing it delivers what was queued) and the forms that mark read.

Forms post, then redirect to /me with a notice, or show /me again with the error and nothing changed.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
from collections.abc import Callable
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from hub import notifications
from hub.auth import MEMBER, Gate, Principal
from hub.forms import back, commit
from hub.models import Notification
from hub.pages import td, when

HEAD = ["", "Time", "Message", ""]


def note_row(note: Notification) -> str:
    ident = f"note-{note.id}"
    if note.state == notifications.READ:
        mark, button = '<span class="muted">read</span>', ""
    else:
        mark = '<b class="on">New</b>'
        button = (f'<form class="inline" method="post" action="/me/notifications/{note.id}/read">'
                  f'<button id="{ident}-read">Mark read</button></form>')
    return (f'<tr id="{ident}" class="{"read" if note.state == notifications.READ else "unread"}">'
            f'<td id="{ident}-state">{mark}</td>{td(when(note.time))}<td id="{ident}-text">{escape(note.text)}</td>'
            f"<td>{button}</td></tr>")


def inbox_section(notes: list[Notification]) -> str:
    """The "Messages" part of /me: newest first, unread marked, a button to mark each (or all) read."""
    if not notes:
        return '<h2>Messages</h2><p id="my-notifications" class="muted">No messages.</p>'
    unread = sum(1 for n in notes if n.state != notifications.READ)
    heads = "".join(f"<th>{escape(h)}</th>" for h in HEAD)
    rows = "".join(note_row(n) for n in notes)
    all_read = ('<form class="inline" method="post" action="/me/notifications/read">'
                '<button id="notes-read-all">Mark all read</button></form>') if unread else ""
    return (f'<h2>Messages <span id="unread-count" class="muted">{unread} unread</span></h2>{all_read}'
            f'<table id="my-notifications"><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>')


def my_inbox(db: Session, who: Principal, now: int) -> str:
    """The inbox section for who; what it shows for the first time is delivered (committed here, read-only else)."""
    if who.member_id is None:
        return inbox_section([])
    notes = notifications.inbox(db, who.member_id, now)
    db.commit()
    return inbox_section(notes)


def notification_pages(db_dependency: Callable[..., Any], gate: Gate,
                       me_page: Callable[..., HTMLResponse]) -> APIRouter:
    """The forms /me posts to mark read; me_page(db, who, error=..., status=...) shows /me again on a refusal."""
    web = APIRouter(include_in_schema=False)
    Db = Annotated[Session, Depends(db_dependency)]
    Own = Annotated[Principal, Depends(gate.require(MEMBER))]

    def now() -> int:
        return int(gate.clock())

    @web.post("/me/notifications/read", response_class=HTMLResponse)
    def read_all(db: Db, who: Own) -> Response:
        count, _refused = commit(db, lambda: notifications.mark_all_read(db, who.member_id or 0, now()))
        return back("/me", f"{count} message{'' if count == 1 else 's'} marked read.")

    @web.post("/me/notifications/{note_id}/read", response_class=HTMLResponse)
    def read_one(note_id: int, db: Db, who: Own) -> Response:
        _note, refused = commit(db, lambda: notifications.mark_read(db, who.member_id or 0, note_id, now()))
        if refused is not None:
            return me_page(db, who, error=refused.message, status=refused.status)
        return back("/me", "Message marked read.")

    return web
