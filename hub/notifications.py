"""Notifications to members: queued by plan runs, delivered to the member's inbox (/me and the API), marked read.

A notification is queued (a plan run wrote it), then delivered (the member was shown it on
/me or fetched it from the API, or a gateway took it), then read (the member said so).
The product has no SMS or e-mail gateway: the inbox is the channel. `push` hands queued
notifications to `send`, the one function a gateway would replace. docs/loyalty.md,
"Notifications".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import func
from sqlmodel import Session, col, select

from hub.models import Member, Notification
from hub.refusal import Refusal

QUEUED, DELIVERED, READ = "queued", "delivered", "read"
INBOX = "inbox"  # Notification.channel of what the member was shown or fetched
INBOX_SIZE = 50  # the newest a member is shown at once

Send = Callable[[Member, str], str]  # pushes one message; the channel's name when it took it, "" when it did not


class NotificationError(Refusal):
    """A change to a notification the member may not make; nothing was changed."""


def no_gateway(member: Member, text: str) -> str:
    """The channel today: no gateway, so nothing is pushed; the message waits in the member's inbox on /me.

    A gateway (SMS, e-mail, app push) goes here: send the text to the member, return its name once it took it.
    """
    return ""


def _deliver(note: Notification, now: int, channel: str) -> None:
    if note.state == QUEUED:  # delivered once, by the first channel that reached the member
        note.state, note.delivered, note.channel = DELIVERED, now, channel


def push(db: Session, now: int, send: Send = no_gateway) -> int:
    """Hand every queued notification to send, oldest first; how many it took (marked delivered). The caller commits."""
    queued = db.exec(select(Notification).where(Notification.state == QUEUED).order_by(col(Notification.id)))
    taken = 0
    for note in list(queued):
        member = db.get(Member, note.member_id)
        channel = send(member, note.text) if member is not None else ""
        if channel:
            _deliver(note, now, channel)
            db.add(note)
            taken += 1
    db.flush()
    return taken


def inbox(db: Session, member_id: int, now: int, limit: int = INBOX_SIZE) -> list[Notification]:
    """The member's newest notifications, newest first; those still queued are delivered now. The caller commits."""
    notes = list(db.exec(
        select(Notification).where(Notification.member_id == member_id)
        .order_by(col(Notification.time).desc(), col(Notification.id).desc()).limit(limit)
    ))
    for note in notes:
        if note.state == QUEUED:
            _deliver(note, now, INBOX)
            db.add(note)
    db.flush()
    return notes


def unread(db: Session, member_id: int) -> int:
    return int(db.exec(select(func.count()).select_from(Notification).where(
        Notification.member_id == member_id, Notification.state != READ)).one())


def mark_read(db: Session, member_id: int, note_id: int, now: int) -> Notification:
    """Mark one of the member's notifications read (again: nothing changes); another member's is not found."""
    note = db.get(Notification, note_id)
    if note is None or note.member_id != member_id:  # the same answer for another's: ids tell nobody anything
        raise NotificationError("no_notification", f"you have no notification {note_id}", 404)
    if note.state != READ:
        _deliver(note, now, INBOX)  # read on a screen that never fetched it: it reached them all the same
        note.state, note.read = READ, now
        db.add(note)
        db.flush()
    return note


def mark_all_read(db: Session, member_id: int, now: int) -> int:
    """Mark every unread notification of the member read; how many."""
    notes = list(db.exec(select(Notification).where(Notification.member_id == member_id, Notification.state != READ)))
    for note in notes:
        mark_read(db, member_id, note.id or 0, now)
    return len(notes)


def delivery_of_runs(db: Session, run_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """For each plan run, its notifications: how many were queued in all, delivered (read ones too), read."""
    ids = list(run_ids)
    out = {i: {"notifications": 0, "delivered": 0, "read": 0} for i in ids}
    if not ids:
        return out
    rows = db.exec(
        select(Notification.run_id, func.count(), func.sum(col(Notification.delivered) > 0), func.sum(col(Notification.read) > 0))
        .where(col(Notification.run_id).in_(ids)).group_by(col(Notification.run_id))
    )
    for run_id, total, delivered, read in rows:
        if run_id in out:
            out[run_id] = {"notifications": int(total), "delivered": int(delivered or 0), "read": int(read or 0)}
    return out
